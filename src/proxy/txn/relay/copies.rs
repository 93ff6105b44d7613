//! The datagrams the relay makes from the request it keeps: the request for branch `n`
//! (its own Via branch, its backend's pin), the CANCEL and ACK of a branch, and the
//! responses of our own for the client (100 Trying, 200 to a CANCEL, 503, 408, 487).

use super::entry::Layout;
use crate::proxy::MAX_HEADERS;
use crate::sip::{
    self, hex16, BranchId, BranchKey, Echo, Frame, Headers, Message, Status, TopViaRemoval,
    BRANCH_LEN,
};
use std::net::SocketAddr;

/// Finds where branch `base` and the pin of `backend` sit in `sent` (the request as it went
/// to `backend` on branch 0).
pub(super) fn layout(sent: &[u8], key: &BranchKey, base: BranchId, backend: SocketAddr) -> Layout {
    let offset = |at: usize| u16::try_from(at).ok();
    let branch_at = memchr::memmem::find(sent, base.text().as_bytes()).and_then(offset);
    let pin = key.pin(backend).text();
    let mut pins = [None; 2];
    let mut found = memchr::memmem::find_iter(sent, pin.as_bytes());
    for slot in &mut pins {
        *slot = found.next().and_then(offset);
    }
    Layout { branch_at, pins }
}

/// Writes the request for branch `n` toward `backend` into `out`: `sent` with branch `n`'s
/// Via branch and `backend`'s pin. `None` when it does not fit, or the pin would change
/// length (a backend of the other address family).
pub(super) fn request_for(
    out: &mut [u8],
    sent: &[u8],
    layout: &Layout,
    key: &BranchKey,
    branch: BranchId,
    backend: SocketAddr,
) -> Option<usize> {
    let copy = out.get_mut(..sent.len())?;
    copy.copy_from_slice(sent);
    if let Some(at) = layout.branch_at {
        let at = usize::from(at);
        let text = branch.text();
        copy.get_mut(at..at + BRANCH_LEN)?
            .copy_from_slice(text.as_bytes());
    }
    let pin = key.pin(backend).text();
    for at in layout.pins.iter().flatten() {
        let at = usize::from(*at);
        let old = copy.get(at..)?;
        // The pin text is all token characters up to the next delimiter.
        let old_len = old
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .unwrap_or(old.len());
        if old_len != pin.as_bytes().len() {
            return None;
        }
        copy[at..at + old_len].copy_from_slice(pin.as_bytes());
    }
    Some(sent.len())
}

/// Writes the CANCEL (or, with `response_to`, the ACK of the non-2xx final response whose
/// To line that is) of `request` into `out`.
pub(super) fn hop_request(
    out: &mut [u8],
    request: &[u8],
    response_to: Option<&[u8]>,
) -> Option<usize> {
    let mut headers = Headers::<MAX_HEADERS>::new();
    let sent = sip::parse(request, &mut headers).ok()?;
    match response_to {
        None => sip::write_cancel(out, &sent).ok(),
        Some(to) => sip::write_ack(out, &sent, to).ok(),
    }
}

/// Writes our own final response `status` for the client into `out`, from `sent` (the
/// request as it went out: our Via on top, the client's below it).
pub(super) fn own_final(
    out: &mut [u8],
    sent: &[u8],
    status: Status,
    to_tag: &[u8],
) -> Option<usize> {
    let len = {
        let mut headers = Headers::<MAX_HEADERS>::new();
        let msg = sip::parse(sent, &mut headers).ok()?;
        let echo = Echo::from_message(&msg).ok()?;
        // The source only stamps our own Via, which goes below.
        let source = SocketAddr::from(([0, 0, 0, 0], 0));
        sip::write_reply(out, &echo, status, source, to_tag).ok()?
    };
    let removal = {
        let mut headers = Headers::<MAX_HEADERS>::new();
        let msg = sip::parse(&out[..len], &mut headers).ok()?;
        TopViaRemoval::new(&msg)
    };
    let mut frame = Frame::new(out, 0, len);
    removal.apply(&mut frame).ok()?;
    let (start, len) = (frame.start(), frame.len());
    out.copy_within(start..start + len, 0);
    Some(len)
}

/// Writes our response `status` to the client's request `msg` into `out` (the To tag, when
/// the request has none, from our branch: the same for every retransmission).
pub(super) fn reply_to(
    msg: &Message<'_, '_>,
    status: Status,
    source: SocketAddr,
    base: &sip::BranchId,
    out: &mut [u8],
) -> Option<usize> {
    let echo = Echo::from_message(msg).ok()?;
    let tag = hex16(base.id());
    sip::write_reply(out, &echo, status, source, &tag).ok()
}

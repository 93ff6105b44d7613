//! The balancer's rewrites, planned from a parsed [`Message`] and applied in place to the
//! [`Frame`] holding it. A plan holds offsets and small texts on the stack, not a borrow
//! of the datagram, so the parse's borrow ends before the buffer is edited.

use super::edits::{Edit, Edits, RewriteError};
use super::frame::Frame;
use super::message::Message;
use super::scan::is_token_str;
use super::text::{push_decimal, push_ip};
use super::via_stamp::ViaStamp;
use arrayvec::ArrayVec;
use std::net::{IpAddr, SocketAddr};

/// Room for the lines inserted at the top: our Via and, when missing, Max-Forwards.
pub const TOP_LINES_MAX: usize = 320;

/// The Max-Forwards inserted when a request has none (§16.6 step 3).
pub const DEFAULT_MAX_FORWARDS_LINE: &[u8] = b"Max-Forwards: 70\r\n";

/// The request's Max-Forwards is zero: it must not be forwarded (§16.3 step 3; answer
/// 483 unless it is an ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxForwardsExhausted;

/// The rewrite of a request on its way to the next hop.
#[derive(Clone, Debug)]
pub struct RequestRewrite {
    headers_start: usize,
    len: usize,
    top_lines: ArrayVec<u8, TOP_LINES_MAX>,
    stamp: ViaStamp,
    max_forwards: Option<(usize, usize, ArrayVec<u8, 3>)>,
    route_removal: Option<(usize, usize)>,
}

/// Our Via header line up to the branch value (`Via: SIP/2.0/UDP 10.0.0.1:5070;branch=`),
/// formatted once per socket: per message only the branch is appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaPrefix {
    bytes: ArrayVec<u8, VIA_PREFIX_MAX>,
}

/// Longest Via prefix: name, protocol, a transport token, `[IPv6]:port`, `;branch=`.
pub const VIA_PREFIX_MAX: usize = 128;

impl ViaPrefix {
    /// The prefix for `transport` (a token such as `UDP`) and our `sent_by` address.
    /// `None` if the transport is not a token or does not fit.
    pub fn new(transport: &str, sent_by: SocketAddr) -> Option<Self> {
        if !is_token_str(transport.as_bytes()) {
            return None;
        }
        let mut bytes = ArrayVec::new();
        let ok = bytes.try_extend_from_slice(b"Via: SIP/2.0/").is_ok()
            && bytes.try_extend_from_slice(transport.as_bytes()).is_ok()
            && bytes.try_push(b' ').is_ok()
            && match sent_by.ip() {
                IpAddr::V4(_) => push_ip(&mut bytes, sent_by.ip()),
                IpAddr::V6(_) => {
                    bytes.try_push(b'[').is_ok()
                        && push_ip(&mut bytes, sent_by.ip())
                        && bytes.try_push(b']').is_ok()
                }
            }
            && bytes.try_push(b':').is_ok()
            && push_decimal(&mut bytes, sent_by.port().into())
            && bytes.try_extend_from_slice(b";branch=").is_ok();
        ok.then_some(ViaPrefix { bytes })
    }

    /// The prefix text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl RequestRewrite {
    /// An empty plan for `msg`; applying it only drops octets past the message's end.
    pub fn new(msg: &Message<'_, '_>) -> Self {
        RequestRewrite {
            headers_start: msg.headers_start,
            len: msg.len,
            top_lines: ArrayVec::new(),
            stamp: ViaStamp::default(),
            max_forwards: None,
            route_removal: None,
        }
    }

    /// Inserts our Via (`prefix` + `branch`) above all others (§16.6 step 8).
    pub fn add_via(&mut self, prefix: &ViaPrefix, branch: &[u8]) -> Result<(), RewriteError> {
        let lines = &mut self.top_lines;
        lines
            .try_extend_from_slice(prefix.as_bytes())
            .and_then(|()| lines.try_extend_from_slice(branch))
            .and_then(|()| lines.try_extend_from_slice(b"\r\n"))
            .map_err(|_| RewriteError::NoRoom)
    }

    /// Adds `received`/fills `rport` on the sender's Via for a request from `source`.
    pub fn stamp_source(&mut self, msg: &Message<'_, '_>, source: SocketAddr) {
        self.stamp = ViaStamp::new(msg.buf, &msg.top_via, source);
    }

    /// Decrements Max-Forwards, or inserts `Max-Forwards: 70` when it is absent.
    /// Call after [`RequestRewrite::add_via`] so the inserted line goes below our Via.
    pub fn forward_max_forwards(
        &mut self,
        msg: &Message<'_, '_>,
    ) -> Result<(), MaxForwardsExhausted> {
        match msg.max_forwards {
            Some(mf) if mf.value == 0 => Err(MaxForwardsExhausted),
            Some(mf) => {
                let mut digits = ArrayVec::new();
                // 0..=254 always fits in three digits.
                push_decimal(&mut digits, u32::from(mf.value - 1));
                self.max_forwards = Some((msg.offset_of(mf.digits), mf.digits.len(), digits));
                Ok(())
            }
            None => {
                // Fails only when the top lines are full, which our Via line cannot make.
                let _ = self
                    .top_lines
                    .try_extend_from_slice(DEFAULT_MAX_FORWARDS_LINE);
                Ok(())
            }
        }
    }

    /// Removes the topmost Route value (loose routing, §16.4), if there is one.
    /// Returns whether there was one.
    pub fn remove_top_route(&mut self, msg: &Message<'_, '_>) -> bool {
        self.route_removal = msg
            .top_route
            .map(|r| (msg.offset_of(r.removal), r.removal.len()));
        self.route_removal.is_some()
    }

    /// Applies the plan to `frame`, which must hold the datagram the message was parsed
    /// from, starting at the same byte.
    pub fn apply(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        frame.truncate(self.len);
        let mut edits = Edits::new();
        if !self.top_lines.is_empty() {
            edits.push(Edit {
                at: self.headers_start,
                remove: 0,
                insert: &self.top_lines,
            })?;
        }
        self.stamp.push_edits(&mut edits)?;
        if let Some((at, remove, digits)) = &self.max_forwards {
            edits.push(Edit {
                at: *at,
                remove: *remove,
                insert: digits,
            })?;
        }
        if let Some((at, remove)) = self.route_removal {
            edits.push(Edit {
                at,
                remove,
                insert: &[],
            })?;
        }
        edits.apply(frame)
    }
}

/// The removal of the topmost Via value (a response on its way back, §16.7 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopViaRemoval {
    at: usize,
    remove: usize,
    len: usize,
}

impl TopViaRemoval {
    /// Plans the removal of `msg`'s top Via value.
    pub fn new(msg: &Message<'_, '_>) -> Self {
        TopViaRemoval {
            at: msg.offset_of(msg.top_via.removal),
            remove: msg.top_via.removal.len(),
            len: msg.len,
        }
    }

    /// Applies it to `frame` (the datagram the message was parsed from).
    pub fn apply(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        frame.truncate(self.len);
        frame.splice(self.at, self.remove, &[])?;
        Ok(())
    }
}

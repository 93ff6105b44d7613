//! The balancer's rewrites, planned from a parsed [`Message`] and applied in place to the
//! [`Frame`] holding it. A plan holds offsets and values, not a borrow of the datagram, so
//! the parse's borrow ends before the buffer is edited; texts are written when the plan is
//! applied, straight into the datagram where they can be.

use super::branch::{BranchId, BRANCH_LEN};
use super::copy::copy_short;
use super::edits::{Edit, Edits, RewriteError};
use super::frame::Frame;
use super::message::Message;
use super::pin::Pin;
use super::record_route::{top_route_removals, RoutePrefix, ROUTE_SUFFIX};
use super::scan::is_token_str;
use super::text::{push_decimal, push_host_port};
use super::via_stamp::ViaStamp;
use arrayvec::ArrayVec;
use std::net::SocketAddr;

/// The Max-Forwards inserted when a request has none (§16.6 step 3).
pub const DEFAULT_MAX_FORWARDS_LINE: &[u8] = b"Max-Forwards: 70\r\n";

/// The request's Max-Forwards is zero: it must not be forwarded (§16.3 step 3; answer
/// 483 unless it is an ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxForwardsExhausted;

/// The rewrite of a request on its way to the next hop. A few words (it borrows our Via
/// prefix), so that it stays in registers between planning and applying.
#[derive(Clone, Copy, Debug)]
pub struct RequestRewrite<'p> {
    headers_start: usize,
    len: usize,
    via: Option<(&'p ViaPrefix, BranchId)>,
    insert_max_forwards: bool,
    stamp: ViaStamp,
    /// Offset and length of the Max-Forwards digits, and the new value.
    max_forwards: Option<(usize, usize, u8)>,
    /// Offsets and lengths of up to two cuts that remove values from the top of Route
    /// (length 0: no cut; a datagram's offsets fit 32 bits).
    route_removal: [(u32, u32); 2],
    /// Our route lines (two Record-Route, the top one first, or one Path) and the pin they
    /// carry.
    route_lines: Option<(&'p [RoutePrefix], Pin)>,
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
            && push_host_port(&mut bytes, sent_by)
            && bytes.try_extend_from_slice(b";branch=").is_ok();
        ok.then_some(ViaPrefix { bytes })
    }

    /// The prefix text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl<'p> RequestRewrite<'p> {
    /// An empty plan for `msg`; applying it only drops octets past the message's end.
    pub fn new(msg: &Message<'_, '_>) -> Self {
        RequestRewrite {
            headers_start: msg.headers_start,
            len: msg.len,
            via: None,
            insert_max_forwards: false,
            stamp: ViaStamp::default(),
            max_forwards: None,
            route_removal: [(0, 0); 2],
            route_lines: None,
        }
    }

    /// Inserts our Via (`prefix` + `branch`) above all others (§16.6 step 8).
    pub fn add_via(&mut self, prefix: &'p ViaPrefix, branch: BranchId) {
        self.via = Some((prefix, branch));
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
                let at = msg.offset_of(mf.digits);
                self.max_forwards = Some((at, mf.digits.len(), mf.value - 1));
                Ok(())
            }
            None => {
                self.insert_max_forwards = true;
                Ok(())
            }
        }
    }

    /// Removes the topmost Route value (loose routing, §16.4), if there is one.
    /// Returns whether there was one.
    pub fn remove_top_route(&mut self, msg: &Message<'_, '_>) -> bool {
        let Some(route) = msg.top_route else {
            return false;
        };
        self.route_removal[0] = cut(msg.offset_of(route.removal), route.removal.len());
        true
    }

    /// Removes the first `count` Route values (1 or 2: our double entry), in whichever
    /// lines they are.
    pub fn remove_top_routes(&mut self, msg: &Message<'_, '_>, count: usize) {
        let cuts = top_route_removals(msg, count);
        for (slot, &(at, len)) in self.route_removal.iter_mut().zip(&cuts) {
            *slot = cut(at, len);
        }
    }

    /// Inserts our two Record-Route lines below our Via, `lines[0]` on top, each carrying
    /// `pin` (RFC 3261 §16.6 step 4; two lines: RFC 5658 double record-routing, one entry
    /// per side).
    pub fn add_record_route(&mut self, lines: &'p [RoutePrefix; 2], pin: Pin) {
        self.route_lines = Some((lines, pin));
    }

    /// Inserts our Path line below our Via (RFC 3327: a REGISTER on its way to the
    /// registrar), carrying `pin`.
    pub fn add_path(&mut self, line: &'p RoutePrefix, pin: Pin) {
        self.route_lines = Some((std::slice::from_ref(line), pin));
    }

    /// Applies the plan to `frame`, which must hold the datagram the message was parsed
    /// from, starting at the same byte.
    pub fn apply(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        frame.truncate(self.len);
        // Nothing below the top lines (our Via alone): the edit list and the stamp texts are
        // not built (100 instructions per message, insn-count.sh insert_via).
        if !self.stamp.is_empty() || self.max_forwards.is_some() || self.route_removal[0].1 > 0 {
            self.apply_edits(frame)?;
        }
        // The top lines last: every other edit lies at or after the first header line, and
        // one at the same offset (a Route line removed there) belongs below them.
        self.insert_top_lines(frame)
    }

    /// The edits below the top lines: the Via stamp, Max-Forwards, the Route removal.
    fn apply_edits(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        let stamp_texts = self.stamp.texts();
        let mut digits = ArrayVec::<u8, 3>::new();
        let mut edits = Edits::new();
        self.stamp.push_edits(&stamp_texts, &mut edits)?;
        if let Some((at, remove, value)) = self.max_forwards {
            // 0..=254 always fits in three digits.
            push_decimal(&mut digits, u32::from(value));
            edits.push(Edit {
                at,
                remove,
                insert: &digits,
            })?;
        }
        for &(at, remove) in self.route_removal.iter().filter(|c| c.1 > 0) {
            edits.push(Edit {
                at: at as usize,
                remove: remove as usize,
                insert: &[],
            })?;
        }
        edits.apply(frame)
    }

    /// Writes our Via, our Record-Route lines and, when the request had none, Max-Forwards
    /// in front of the first header line, formatted straight into the frame.
    fn insert_top_lines(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        let via_len = self
            .via
            .map_or(0, |(prefix, _)| prefix.as_bytes().len() + BRANCH_LEN + 2);
        let line_len = |prefix: &RoutePrefix, pin: &Pin| {
            prefix.as_bytes().len() + pin.len() + ROUTE_SUFFIX.len()
        };
        let rr_len = self.route_lines.map_or(0, |(lines, pin)| {
            lines.iter().map(|prefix| line_len(prefix, &pin)).sum()
        });
        let mf_len = if self.insert_max_forwards {
            DEFAULT_MAX_FORWARDS_LINE.len()
        } else {
            0
        };
        if via_len + rr_len + mf_len == 0 {
            return Ok(());
        }
        frame.insert_front_with(self.headers_start, via_len + rr_len + mf_len, |out| {
            let (via, rest) = out.split_at_mut(via_len);
            let (rr, mf) = rest.split_at_mut(rr_len);
            if let Some((lines, pin)) = self.route_lines {
                let mut at = 0;
                for prefix in lines {
                    let line = &mut rr[at..at + line_len(prefix, &pin)];
                    let (text, rest) = line.split_at_mut(prefix.as_bytes().len());
                    text.copy_from_slice(prefix.as_bytes());
                    let (pin_text, suffix) = rest.split_at_mut(pin.len());
                    pin.write(pin_text);
                    suffix.copy_from_slice(ROUTE_SUFFIX);
                    at += line.len();
                }
            }
            if let Some((prefix, branch)) = self.via {
                let (text, rest) = via.split_at_mut(prefix.as_bytes().len());
                copy_short(text, prefix.as_bytes());
                // `rest` is the branch and CRLF by `via_len`'s construction.
                if let Some((branch_text, crlf)) = rest.split_first_chunk_mut::<BRANCH_LEN>() {
                    branch.write(branch_text);
                    crlf.copy_from_slice(b"\r\n");
                }
            }
            // A fixed-size copy: `mf` is that line or empty, and an empty copy_from_slice
            // would still call memcpy.
            if let Some(line) = mf.first_chunk_mut::<{ DEFAULT_MAX_FORWARDS_LINE.len() }>() {
                line.copy_from_slice(DEFAULT_MAX_FORWARDS_LINE);
            }
        })?;
        Ok(())
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

/// A cut of `len` octets at `at` in the plan's compact form; offsets and lengths within a
/// datagram (at most 65535 octets) always fit.
fn cut(at: usize, len: usize) -> (u32, u32) {
    (
        u32::try_from(at).unwrap_or(u32::MAX),
        u32::try_from(len).unwrap_or(0),
    )
}

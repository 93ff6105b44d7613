//! The server-side marks on the sender's top Via: `received` when sent-by is not the
//! packet's source address (RFC 3261 §18.2.1), and the `rport` value the client asked for
//! (RFC 3581 §4, which also requires `received` then).

use super::edits::{Edit, Edits, RewriteError};
use super::message::TopVia;
use super::scan::offset_in;
use super::text::{push_decimal, push_ip};
use super::via::Rport;
use arrayvec::ArrayVec;
use std::net::{IpAddr, SocketAddr};

/// `;received=` plus the longest IPv6 text.
const RECEIVED_MAX: usize = 10 + 45;

/// The edits to the top Via: where they go and what they say, without their text. The
/// text is formatted when the stamp is applied ([`ViaStamp::texts`]), so a plan holding a
/// stamp stays a few words that the compiler keeps in registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViaStamp {
    /// `=PORT` goes at this offset (just after the bare `rport` name).
    rport: Option<(usize, u16)>,
    /// The received value.
    received: Option<Received>,
}

/// Where the received address goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Received {
    /// Offset of the edit.
    at: usize,
    /// Bytes replaced there: an existing `received` value, or none.
    remove: usize,
    /// The packet's source address.
    ip: IpAddr,
    /// True when `;received=` must be written too (the Via had no such parameter).
    with_name: bool,
}

/// The texts of a [`ViaStamp`], formatted on the caller's stack.
#[derive(Clone, Debug, Default)]
pub struct StampTexts {
    rport: ArrayVec<u8, 6>,
    received: ArrayVec<u8, RECEIVED_MAX>,
}

impl ViaStamp {
    /// The stamp for `top`, the top Via of a request read from `buf` (the datagram) that
    /// arrived from `source`. Empty when nothing needs adding.
    pub fn new(buf: &[u8], top: &TopVia<'_>, source: SocketAddr) -> ViaStamp {
        let via = &top.via;
        let ip = source.ip().to_canonical();
        let mut stamp = ViaStamp::default();
        let fill_rport = matches!(via.rport, Some(Rport::Empty { .. }));
        if let Some(Rport::Empty { name }) = via.rport {
            stamp.rport = Some((offset_in(buf, name) + name.len(), source.port()));
        }
        if fill_rport || via.host_ip() != Some(ip) {
            stamp.received = Some(match via.received {
                Some(existing) => Received {
                    at: offset_in(buf, existing),
                    remove: existing.len(),
                    ip,
                    with_name: false,
                },
                None => Received {
                    at: offset_in(buf, via.value) + via.value.len(),
                    remove: 0,
                    ip,
                    with_name: true,
                },
            });
        }
        stamp
    }

    /// The inserted texts, for [`ViaStamp::push_edits`] and [`ViaStamp::edits`].
    pub fn texts(&self) -> StampTexts {
        let mut texts = StampTexts::default();
        if let Some((_, port)) = self.rport {
            // '=' and at most five digits: always fits.
            texts.rport.push(b'=');
            push_decimal(&mut texts.rport, port.into());
        }
        if let Some(r) = self.received {
            if r.with_name {
                // Ten bytes into an empty 55-byte buffer: always fits.
                let _ = texts.received.try_extend_from_slice(b";received=");
            }
            push_ip(&mut texts.received, r.ip);
        }
        texts
    }

    /// True if the stamp changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rport.is_none() && self.received.is_none()
    }

    /// Adds this stamp's edits (offsets from the start of the datagram), with `texts`
    /// (this stamp's [`ViaStamp::texts`]).
    pub fn push_edits<'e>(
        &self,
        texts: &'e StampTexts,
        edits: &mut Edits<'e>,
    ) -> Result<(), RewriteError> {
        self.for_each_edit(texts, |e| edits.push(e))
    }

    /// The edits as a fixed list, in ascending offset order, for copying a line with them;
    /// `texts` is this stamp's [`ViaStamp::texts`].
    pub fn edits<'e>(&self, texts: &'e StampTexts) -> ArrayVec<Edit<'e>, 2> {
        let mut out = ArrayVec::new();
        // Two edits at most: `push` cannot fail.
        let _ = self.for_each_edit(texts, |e| {
            out.try_push(e).map_err(|_| RewriteError::TooManyEdits)
        });
        out.sort_unstable_by_key(|e| e.at);
        out
    }

    /// Calls `f` with the `rport` edit, then the `received` one, where the stamp has them.
    #[inline(always)]
    fn for_each_edit<'e>(
        &self,
        texts: &'e StampTexts,
        mut f: impl FnMut(Edit<'e>) -> Result<(), RewriteError>,
    ) -> Result<(), RewriteError> {
        if let Some((at, _)) = self.rport {
            f(Edit {
                at,
                remove: 0,
                insert: &texts.rport,
            })?;
        }
        if let Some(r) = self.received {
            f(Edit {
                at: r.at,
                remove: r.remove,
                insert: &texts.received,
            })?;
        }
        Ok(())
    }
}

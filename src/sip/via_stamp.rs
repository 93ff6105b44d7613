//! The server-side marks on the sender's top Via: `received` when sent-by is not the
//! packet's source address (RFC 3261 §18.2.1), and the `rport` value the client asked for
//! (RFC 3581 §4, which also requires `received` then).

use super::edits::{Edit, Edits, RewriteError};
use super::message::TopVia;
use super::scan::offset_in;
use super::text::{push_decimal, push_ip};
use super::via::Rport;
use arrayvec::ArrayVec;
use std::net::SocketAddr;

/// `;received=` plus the longest IPv6 text.
const RECEIVED_MAX: usize = 10 + 45;

/// The edits to the top Via, with their text formatted on the stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViaStamp {
    /// `=PORT`, inserted at `rport_at` (just after the bare `rport` name).
    rport: Option<(usize, ArrayVec<u8, 6>)>,
    /// The received value: `(at, remove, text)`. Replaces an existing `received` value, or
    /// is appended as `;received=IP` at the end of the Via value.
    received: Option<(usize, usize, ArrayVec<u8, RECEIVED_MAX>)>,
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
            let mut text = ArrayVec::new();
            // '=' and at most five digits: always fits.
            text.push(b'=');
            push_decimal(&mut text, source.port().into());
            stamp.rport = Some((offset_in(buf, name) + name.len(), text));
        }
        if fill_rport || via.host_ip() != Some(ip) {
            let mut text = ArrayVec::new();
            stamp.received = Some(match via.received {
                Some(existing) => {
                    push_ip(&mut text, ip);
                    (offset_in(buf, existing), existing.len(), text)
                }
                None => {
                    text.extend(*b";received=");
                    push_ip(&mut text, ip);
                    (offset_in(buf, via.value) + via.value.len(), 0, text)
                }
            });
        }
        stamp
    }

    /// True if the stamp changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rport.is_none() && self.received.is_none()
    }

    /// Adds this stamp's edits (offsets from the start of the datagram).
    pub fn push_edits<'e>(&'e self, edits: &mut Edits<'e>) -> Result<(), RewriteError> {
        // As `edits()` lists them, without building that list.
        if let Some((at, text)) = &self.rport {
            edits.push(Edit {
                at: *at,
                remove: 0,
                insert: text,
            })?;
        }
        if let Some((at, remove, text)) = &self.received {
            edits.push(Edit {
                at: *at,
                remove: *remove,
                insert: text,
            })?;
        }
        Ok(())
    }

    /// The edits as a fixed list, in ascending offset order, for copying a line with them.
    pub fn edits(&self) -> ArrayVec<Edit<'_>, 2> {
        let mut out = ArrayVec::new();
        if let Some((at, text)) = &self.rport {
            out.push(Edit {
                at: *at,
                remove: 0,
                insert: text,
            });
        }
        if let Some((at, remove, text)) = &self.received {
            out.push(Edit {
                at: *at,
                remove: *remove,
                insert: text,
            });
        }
        out.sort_unstable_by_key(|e| e.at);
        out
    }
}

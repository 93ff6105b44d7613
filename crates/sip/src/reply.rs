//! Stateless responses written into a caller's buffer (RFC 3261 §8.2.6, §16.3): 400, 482,
//! 483, 503 with Retry-After, or any status. Via (every value, in order, the top one with
//! `received`/`rport`), From, To (with a tag added when it has none), Call-ID and CSeq are
//! copied from the request.

use super::edits::Edit;
use super::header_name::HeaderName;
use super::message::{CSeq, Header, Message, Partial, TopVia};
use super::name_addr::NameAddr;
use super::scan::offset_in;
use super::start_line::StartLine;
use super::text::push_decimal;
use super::via::{Rport, Via};
use super::via_stamp::ViaStamp;
use arrayvec::ArrayVec;
use std::fmt;
use std::net::SocketAddr;

/// A status to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// `Retry-After` seconds, if any.
    pub retry_after: Option<u32>,
}

impl Status {
    /// 400 with a reason saying what was wrong.
    pub fn bad_request(reason: &'static str) -> Status {
        Status {
            code: 400,
            reason,
            retry_after: None,
        }
    }
    /// 482 Loop Detected.
    pub const LOOP_DETECTED: Status = Status {
        code: 482,
        reason: "Loop Detected",
        retry_after: None,
    };
    /// 483 Too Many Hops.
    pub const TOO_MANY_HOPS: Status = Status {
        code: 483,
        reason: "Too Many Hops",
        retry_after: None,
    };
    /// 503 Service Unavailable with `Retry-After`.
    pub fn service_unavailable(retry_after: u32) -> Status {
        Status {
            code: 503,
            reason: "Service Unavailable",
            retry_after: Some(retry_after),
        }
    }
}

/// Why no reply was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// Never answer an ACK (§17.2.1) or a response.
    NotAnswerable,
    /// Via, From, To, Call-ID or CSeq is missing or unusable.
    MissingFields,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyError::NotAnswerable => "ACKs and responses are never answered",
            ReplyError::MissingFields => "request lacks the fields a response must echo",
            ReplyError::BufferTooSmall => "reply buffer too small",
        })
    }
}

impl std::error::Error for ReplyError {}

/// What a reply echoes from the request; built from a full or a partial parse.
#[derive(Clone, Copy, Debug)]
pub struct Echo<'b, 'h> {
    buf: &'b [u8],
    headers: &'h [Header<'b>],
    top_via: TopVia<'b>,
    to: NameAddr<'b>,
    cseq: CSeq<'b>,
}

impl<'b, 'h> Echo<'b, 'h> {
    /// From a valid request. Fails for an ACK and for responses.
    pub fn from_message(msg: &Message<'b, 'h>) -> Result<Self, ReplyError> {
        answerable(msg.start)?;
        Ok(Echo {
            buf: msg.buf,
            headers: msg.headers,
            top_via: msg.top_via,
            to: msg.to_addr().ok_or(ReplyError::MissingFields)?,
            cseq: msg.cseq,
        })
    }

    /// From a request that failed validation, if enough of it parsed (start line, top Via,
    /// From, To, Call-ID, CSeq) to build a valid response.
    pub fn from_partial(p: &Partial<'b, 'h>) -> Result<Self, ReplyError> {
        let f = &p.fields;
        answerable(f.start.ok_or(ReplyError::MissingFields)?)?;
        match (f.top_via, f.to, f.from, f.call_id, f.cseq) {
            (Some(top_via), Some(to), Some(_), Some(_), Some(cseq)) if cseq.method != b"ACK" => {
                Ok(Echo {
                    buf: p.buf,
                    headers: p.headers,
                    top_via,
                    to: NameAddr::parse(to).map_err(|_| ReplyError::MissingFields)?,
                    cseq,
                })
            }
            _ => Err(ReplyError::MissingFields),
        }
    }
}

/// Where a response to `via` goes (§18.2.2, RFC 3581): `received` (else the sent-by IP) and
/// `rport` (else the sent-by port, else 5060). `None` when the host needs DNS.
pub fn response_destination(via: &Via<'_>) -> Option<SocketAddr> {
    let ip = match via.received {
        Some(r) => super::via::ip_literal(
            r.strip_prefix(b"[")
                .and_then(|r| r.strip_suffix(b"]"))
                .unwrap_or(r),
            r.contains(&b':'),
        )?,
        None => via.host_ip()?,
    };
    let port = match via.rport {
        Some(Rport::Port(p)) => p,
        _ => via.port.unwrap_or(super::DEFAULT_PORT),
    };
    Some(SocketAddr::new(ip, port))
}

/// Where our stateless reply to a request from `source` goes: the source address, with
/// the source port when the client asked for rport, else the Via's port.
pub fn reply_destination(via: &Via<'_>, source: SocketAddr) -> SocketAddr {
    match via.rport {
        Some(_) => source,
        None => SocketAddr::new(source.ip(), via.port.unwrap_or(super::DEFAULT_PORT)),
    }
}

fn answerable(start: StartLine<'_>) -> Result<(), ReplyError> {
    match start {
        StartLine::Request { method, .. } if method != b"ACK" => Ok(()),
        _ => Err(ReplyError::NotAnswerable),
    }
}

/// A bounded writer over the caller's buffer.
struct Out<'o> {
    buf: &'o mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        let end = self.len + bytes.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(ReplyError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Copies `line` (which starts at `line_at` in the datagram) applying `edits`
    /// (ascending datagram offsets, inside the line).
    fn put_edited(
        &mut self,
        line: &[u8],
        line_at: usize,
        edits: &[Edit<'_>],
    ) -> Result<(), ReplyError> {
        let mut copied = 0;
        for e in edits {
            let Some(at) =
                e.at.checked_sub(line_at)
                    .filter(|&at| at >= copied && at + e.remove <= line.len())
            else {
                continue;
            };
            self.put(&line[copied..at])?;
            self.put(e.insert)?;
            copied = at + e.remove;
        }
        self.put(&line[copied..])
    }
}

/// What a response adds to the echoed headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    /// Header lines (each ending in CRLF) written after the echoed ones, e.g. a Contact.
    pub headers: &'a [u8],
    /// Answer for another method of the same CSeq number: a 487 to an INVITE built from
    /// its CANCEL says `CSeq: n INVITE`.
    pub cseq_method: Option<&'a [u8]>,
    /// Copy the request's Record-Route lines: a response that establishes a dialog
    /// (RFC 3261 §12.1.1).
    pub record_route: bool,
}

/// Writes the response `status` to the request `echo` into `out`; returns its length.
/// `source` is where the request came from (for `received`/`rport` on the top Via);
/// `to_tag` is used when the request's To has no tag (make it stable per request, so a
/// retransmission gets the same answer).
pub fn write_reply(
    out: &mut [u8],
    echo: &Echo<'_, '_>,
    status: Status,
    source: SocketAddr,
    to_tag: &[u8],
) -> Result<usize, ReplyError> {
    write_response(out, echo, status, source, to_tag, Extras::default())
}

/// [`write_reply`] with extra headers or another CSeq method.
pub fn write_response(
    out: &mut [u8],
    echo: &Echo<'_, '_>,
    status: Status,
    source: SocketAddr,
    to_tag: &[u8],
    extras: Extras<'_>,
) -> Result<usize, ReplyError> {
    let mut w = Out { buf: out, len: 0 };
    let mut code = ArrayVec::<u8, 10>::new();
    push_decimal(&mut code, status.code.into());
    w.put(b"SIP/2.0 ")?;
    w.put(&code)?;
    w.put(b" ")?;
    w.put(status.reason.as_bytes())?;
    w.put(b"\r\n")?;
    let stamp = ViaStamp::new(echo.buf, &echo.top_via, source);
    let stamp_texts = stamp.texts();
    let via_edits = stamp.edits(&stamp_texts);
    // Via: every line, in order. From, To, Call-ID, CSeq: the first line of each only (a
    // request with duplicates gets a 400 that still has one of each).
    let mut top_via_done = false;
    let mut echoed = [false; 4];
    for h in echo.headers {
        let line_at = offset_in(echo.buf, h.line);
        let once = match h.name {
            HeaderName::From => 0,
            HeaderName::To => 1,
            HeaderName::CallId => 2,
            HeaderName::CSeq => 3,
            HeaderName::Via if !top_via_done => {
                top_via_done = true;
                w.put_edited(h.line, line_at, &via_edits)?;
                continue;
            }
            HeaderName::Via => {
                w.put(h.line)?;
                continue;
            }
            HeaderName::RecordRoute if extras.record_route => {
                w.put(h.line)?;
                continue;
            }
            _ => continue,
        };
        if std::mem::replace(&mut echoed[once], true) {
            continue;
        }
        if h.name == HeaderName::To && echo.to.tag.is_none() {
            let to_end = offset_in(echo.buf, echo.to.value) + echo.to.value.len();
            let tag = [
                Edit {
                    at: to_end,
                    remove: 0,
                    insert: b";tag=",
                },
                Edit {
                    at: to_end,
                    remove: 0,
                    insert: to_tag,
                },
            ];
            w.put_edited(h.line, line_at, &tag)?;
        } else if let (HeaderName::CSeq, Some(method)) = (h.name, extras.cseq_method) {
            let mut number = ArrayVec::<u8, 10>::new();
            push_decimal(&mut number, echo.cseq.number);
            w.put(b"CSeq: ")?;
            w.put(&number)?;
            w.put(b" ")?;
            w.put(method)?;
            w.put(b"\r\n")?;
        } else {
            w.put(h.line)?;
        }
    }
    if let Some(seconds) = status.retry_after {
        let mut digits = ArrayVec::<u8, 10>::new();
        push_decimal(&mut digits, seconds);
        w.put(b"Retry-After: ")?;
        w.put(&digits)?;
        w.put(b"\r\n")?;
    }
    w.put(extras.headers)?;
    w.put(b"Server: sipshard\r\nContent-Length: 0\r\n\r\n")?;
    Ok(w.len)
}

//! The repair of a request a strict router sent us (RFC 3261 §16.4; RFC 2543 routing): its
//! Request-URI is a URI we put in a Record-Route, and the real target is the last Route
//! value. The plan takes that value's URI as the new Request-URI and removes the value from
//! the Route; the request is then handled as if a loose router had sent it.

use super::edits::RewriteError;
use super::frame::Frame;
use super::message::Message;
use super::name_addr::NameAddr;
use super::params::CommaValues;
use super::uri::check_request_uri;
use super::HeaderName;
use arrayvec::ArrayVec;

/// Longest Request-URI the repair copies (the last Route value's URI).
pub const STRICT_TARGET_MAX: usize = 1024;

/// The §16.4 repair of one request, as offsets into its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrictRouteRepair {
    /// The Request-URI: offset and length.
    request_uri: (usize, usize),
    /// The URI of the last Route value (inside its angle brackets).
    target: (usize, usize),
    /// The cut that removes that value: its whole line when it is alone there, else from
    /// the end of the value before it.
    removal: (usize, usize),
    /// The message's length.
    len: usize,
}

impl StrictRouteRepair {
    /// The repair of `msg`, a request whose Request-URI the caller found to be one of our
    /// Record-Route URIs. `None` when it has no Route (nothing to take the target from) or
    /// the last Route value is not a name-addr whose URI can be a Request-URI.
    pub fn plan(msg: &Message<'_, '_>) -> Option<Self> {
        let request_uri = msg.request_uri()?;
        let last_line = msg.headers.iter().rfind(|h| h.name == HeaderName::Route)?;
        let mut values = CommaValues::new(last_line.value);
        let mut before: Option<&[u8]> = None;
        let mut last = values.next()?;
        for value in values {
            before = Some(last);
            last = value;
        }
        let target = NameAddr::parse(last).ok()?.uri;
        check_request_uri(target).ok()?;
        let removal = match before {
            None => (msg.offset_of(last_line.line), last_line.line.len()),
            Some(previous) => {
                let from = msg.offset_of(previous) + previous.len();
                (from, msg.offset_of(last) + last.len() - from)
            }
        };
        Some(StrictRouteRepair {
            request_uri: (msg.offset_of(request_uri), request_uri.len()),
            target: (msg.offset_of(target), target.len()),
            removal,
            len: msg.len,
        })
    }

    /// Applies the repair to `frame`, which holds the message parsed for the plan.
    pub fn apply(&self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        frame.truncate(self.len);
        let (at, len) = self.target;
        let target: ArrayVec<u8, STRICT_TARGET_MAX> = frame
            .bytes()
            .get(at..at + len)
            .and_then(|uri| uri.try_into().ok())
            .ok_or(RewriteError::NoRoom)?;
        // The Route value lies after the start line: cut it first, the start line's
        // offsets keep their meaning.
        let (at, remove) = self.removal;
        frame
            .splice(at, remove, &[])
            .map_err(|_| RewriteError::NoRoom)?;
        let (at, remove) = self.request_uri;
        frame
            .splice(at, remove, &target)
            .map_err(|_| RewriteError::NoRoom)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Headers};

    fn repaired(text: &str) -> Option<String> {
        let mut headers = Headers::<32>::new();
        let msg = parse(text.as_bytes(), &mut headers).expect("test message parses");
        let repair = StrictRouteRepair::plan(&msg)?;
        let mut buf = vec![0u8; 64 + text.len()];
        buf[64..].copy_from_slice(text.as_bytes());
        let mut frame = Frame::new(&mut buf, 64, text.len());
        repair.apply(&mut frame).expect("fits");
        Some(String::from_utf8(frame.bytes().to_vec()).unwrap())
    }

    fn bye(uri: &str, routes: &str) -> String {
        format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             {routes}From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn the_last_route_value_becomes_the_request_uri() {
        let us = "sip:192.0.2.10:5060;lr;pin=abc";
        let cases = [
            (
                "Route: <sip:proxy.example;lr>\r\nRoute: <sip:bob@198.51.100.9:5062>\r\n",
                "sip:bob@198.51.100.9:5062",
                "Route: <sip:proxy.example;lr>\r\n",
            ),
            (
                "Route: <sip:p1;lr>, <sip:p2;lr> ,<sip:bob@198.51.100.9;transport=udp>\r\n",
                "sip:bob@198.51.100.9;transport=udp",
                "Route: <sip:p1;lr>, <sip:p2;lr>\r\n",
            ),
            (
                "Route: \"Bob\" <sip:bob@198.51.100.9>\r\n",
                "sip:bob@198.51.100.9",
                "",
            ),
        ];
        for (routes, uri, left) in cases {
            assert_eq!(
                repaired(&bye(us, routes)).as_deref(),
                Some(bye(uri, left).as_str()),
                "{routes:?}"
            );
        }
    }

    #[test]
    fn nothing_to_repair_without_a_route_or_a_usable_target() {
        assert_eq!(repaired(&bye("sip:192.0.2.10;lr", "")), None);
        let headers_in_uri = "Route: <sip:p1;lr>, <sip:bob@198.51.100.9?Subject=x>\r\n";
        assert_eq!(repaired(&bye("sip:192.0.2.10;lr", headers_in_uri)), None);
    }
}

//! Our entries in a dialog's route set: the Record-Route (and, for a registration, Path)
//! lines we insert, and the removal of our values from the top of a request's Route.
//!
//! An entry is `<sip:ADDR;lr;pin=PIN>`: one of our addresses, loose routing, and the pin of
//! the backend the dialog was given ([`crate::Pin`]). The line up to the pin is formatted
//! once per address ([`RoutePrefix`]); per message only the pin is written.

use super::message::Message;
use super::params::CommaValues;
use super::pin::PIN_PARAM;
use super::text::push_host_port;
use super::HeaderName;
use arrayvec::ArrayVec;
use std::net::SocketAddr;

/// The URI parameter of our Path entries that holds the registering user agent's source
/// address as a pin: requests the farm sends through that entry are delivered there (the
/// address a NAT maps the phone to, which its Contact may not give).
pub const SOURCE_PARAM: &[u8] = b"src";

/// Longest route prefix: the header name, `<sip:[IPv6]:port;lr;pin=`.
pub const ROUTE_PREFIX_MAX: usize = 96;

/// What follows the pin on each of our lines.
pub(crate) const ROUTE_SUFFIX: &[u8] = b">\r\n";

/// A header line of ours up to the pin value (`Record-Route: <sip:10.0.0.1:5070;lr;pin=`),
/// formatted once per address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePrefix {
    bytes: ArrayVec<u8, ROUTE_PREFIX_MAX>,
}

impl RoutePrefix {
    /// The `Record-Route` line prefix naming `addr`.
    pub fn record_route(addr: SocketAddr) -> Self {
        Self::new(b"Record-Route", addr, PIN_PARAM)
    }

    /// The `Path` line prefix naming `addr` (RFC 3327), its pin naming the registering
    /// user agent's source address ([`SOURCE_PARAM`]).
    pub fn path(addr: SocketAddr) -> Self {
        Self::new(b"Path", addr, SOURCE_PARAM)
    }

    fn new(name: &[u8], addr: SocketAddr, param: &[u8]) -> Self {
        let mut bytes = ArrayVec::new();
        // The longest name and address fit ROUTE_PREFIX_MAX: every push succeeds.
        let _ = bytes.try_extend_from_slice(name);
        let _ = bytes.try_extend_from_slice(b": <sip:");
        let _ = push_host_port(&mut bytes, addr);
        let _ = bytes.try_extend_from_slice(b";lr;");
        let _ = bytes.try_extend_from_slice(param);
        let _ = bytes.try_push(b'=');
        RoutePrefix { bytes }
    }

    /// The prefix text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value's part of the prefix (`<sip:ADDR;lr;pin=`): how the entry starts in a
    /// Route that copies it verbatim.
    pub fn value_start(&self) -> &[u8] {
        let value = self.bytes.iter().position(|&b| b == b'<').unwrap_or(0);
        &self.bytes[value..]
    }
}

/// Every Route value of `msg`, top first, across lines.
pub fn route_values<'b, 'm>(msg: &'m Message<'b, '_>) -> impl Iterator<Item = &'b [u8]> + 'm {
    msg.headers
        .iter()
        .filter(|h| h.name == HeaderName::Route)
        .flat_map(|h| CommaValues::new(h.value))
}

/// Where to cut to remove the first `count` Route values of `msg` (at most two lines are
/// touched for two values): a line whose every value goes is removed whole; otherwise from
/// its first value removed up to its first value kept. Offsets are into the message.
pub fn top_route_removals(msg: &Message<'_, '_>, count: usize) -> ArrayVec<(usize, usize), 2> {
    let mut cuts = ArrayVec::new();
    let mut left = count;
    for header in msg.headers.iter().filter(|h| h.name == HeaderName::Route) {
        if left == 0 || cuts.is_full() {
            break;
        }
        // One value more than goes, if the line has it: then the line stays.
        let values: ArrayVec<&[u8], 3> = CommaValues::new(header.value)
            .take((left + 1).min(3))
            .collect();
        let cut = if values.len() <= left {
            (msg.offset_of(header.line), header.line.len())
        } else {
            // values[left] is the first value kept.
            let from = msg.offset_of(values[0]);
            (from, msg.offset_of(values[left]) - from)
        };
        cuts.push(cut);
        left = left.saturating_sub(values.len());
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Headers};

    fn cut(text: &str, count: usize) -> String {
        let mut headers = Headers::<32>::new();
        let msg = parse(text.as_bytes(), &mut headers).expect("test message parses");
        let cuts = top_route_removals(&msg, count);
        let mut out = text.as_bytes().to_vec();
        for &(at, len) in cuts.iter().rev() {
            out.drain(at..at + len);
        }
        String::from_utf8(out).unwrap()
    }

    fn request(routes: &str) -> String {
        format!(
            "BYE sip:b@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             {routes}From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn removes_the_top_values_across_and_within_lines() {
        let cases = [
            ("Route: <sip:a;lr>\r\nRoute: <sip:b;lr>\r\n", 2, ""),
            (
                "Route: <sip:a;lr>\r\nRoute: <sip:b;lr>\r\n",
                1,
                "Route: <sip:b;lr>\r\n",
            ),
            ("Route: <sip:a;lr>, <sip:b;lr>\r\n", 2, ""),
            (
                "Route: <sip:a;lr>, <sip:b;lr>\r\n",
                1,
                "Route: <sip:b;lr>\r\n",
            ),
            (
                "Route: <sip:a;lr>,<sip:b;lr> , <sip:c;lr>\r\n",
                2,
                "Route: <sip:c;lr>\r\n",
            ),
            (
                "Route: <sip:a;lr>\r\nRoute: <sip:b;lr>,<sip:c;lr>\r\n",
                2,
                "Route: <sip:c;lr>\r\n",
            ),
            (
                "Route: <sip:a;lr>\r\nRoute: <sip:b;lr>\r\nRoute: <sip:c;lr>\r\n",
                2,
                "Route: <sip:c;lr>\r\n",
            ),
            ("Route: <sip:a;lr>\r\n", 2, ""),
            ("", 2, ""),
        ];
        for (routes, count, left) in cases {
            assert_eq!(
                cut(&request(routes), count),
                request(left),
                "{routes:?} {count}"
            );
        }
    }

    #[test]
    fn lists_route_values_in_order() {
        let text = request("Route: <sip:a;lr>,<sip:b;lr>\r\nRoute: <sip:c;lr>\r\n");
        let mut headers = Headers::<32>::new();
        let msg = parse(text.as_bytes(), &mut headers).unwrap();
        let values: Vec<&[u8]> = route_values(&msg).collect();
        assert_eq!(values, [&b"<sip:a;lr>"[..], b"<sip:b;lr>", b"<sip:c;lr>"]);
    }

    #[test]
    fn prefixes_name_the_address_and_leave_the_pin_open() {
        let v4 = RoutePrefix::record_route("10.0.0.1:5070".parse().unwrap());
        assert_eq!(v4.as_bytes(), b"Record-Route: <sip:10.0.0.1:5070;lr;pin=");
        let v6 = RoutePrefix::record_route("[2001:db8::ffff:1:2:3]:65535".parse().unwrap());
        assert_eq!(
            v6.as_bytes(),
            b"Record-Route: <sip:[2001:db8::ffff:1:2:3]:65535;lr;pin="
        );
        let longest = RoutePrefix::record_route(
            "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"
                .parse()
                .unwrap(),
        );
        assert!(longest.as_bytes().ends_with(b";lr;pin="), "{longest:?}");
    }
}

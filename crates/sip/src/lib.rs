//! The SIP wire layer: a zero-copy parser, in-place rewrites, stateless replies and
//! stateless branches. It knows nothing of sockets; every function works on byte slices
//! and fixed storage, and none allocates. It is a crate of its own so that nothing above it
//! (balancing, proxy, sockets, shards) can leak into it.
//!
//! The path of a request through this layer:
//! ```
//! use sipshard_sip::{self as sip, BranchKey, Frame, Headers, RequestRewrite, ViaPrefix};
//! let datagram = b"OPTIONS sip:b@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
//!     From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
//!     Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
//! // The receive buffer has headroom in front of the datagram.
//! let mut buf = [0u8; 1024];
//! buf[256..256 + datagram.len()].copy_from_slice(datagram);
//! let key = BranchKey::new(b"secret");
//! // Our Via up to the branch, formatted once per socket.
//! let prefix = ViaPrefix::new("UDP", "10.0.0.1:5070".parse().unwrap()).unwrap();
//!
//! // Parse and plan in a scope: the plan keeps offsets, not a borrow of the buffer.
//! let plan = {
//!     let mut headers = Headers::<32>::new();
//!     let msg = sip::parse(&buf[256..256 + datagram.len()], &mut headers).unwrap();
//!     let mut plan = RequestRewrite::new(&msg);
//!     plan.add_via(&prefix, key.branch_id(&msg));
//!     plan.stamp_source(&msg, "198.51.100.7:40000".parse().unwrap());
//!     plan.forward_max_forwards(&msg).unwrap();
//!     plan
//! };
//!
//! let mut frame = Frame::new(&mut buf, 256, datagram.len());
//! plan.apply(&mut frame).unwrap();
//! let out = frame.bytes();
//! assert!(out.starts_with(b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKsd"));
//! let text = std::str::from_utf8(out).unwrap();
//! assert!(text.contains(";rport=40000;received=198.51.100.7\r\n"));
//! assert!(text.contains("Max-Forwards: 70\r\n"));
//! ```

#![deny(unsafe_code)]

mod branch;
mod cancel_ack;
pub mod checks;
mod classes;
mod contact;
mod copy;
mod edits;
mod error;
mod find;
mod frame;
mod header_name;
mod lines;
mod message;
mod name_addr;
mod params;
mod pin;
mod record_route;
mod reply;
mod rewrite;
mod scan;
mod start_line;
mod strict_route;
mod text;
mod uri;
mod via;
mod via_plain;
mod via_stamp;

/// The port of a SIP URI or Via sent-by that gives none (RFC 3261 §19.1.2, UDP and TCP).
pub const DEFAULT_PORT: u16 = 5060;

pub use branch::{Branch, BranchId, BranchKey, BRANCH_LEN};
pub use cancel_ack::{write_ack, write_cancel};
pub use classes::token_end;
pub use contact::{ContactLine, CONTACT_LINE_MAX};
pub use edits::{Edit, Edits, RewriteError};
pub use error::ParseError;
pub use frame::{Frame, NoRoom};
pub use header_name::HeaderName;
pub use message::{
    parse, parse_lenient, parse_strict, parse_with, CSeq, Checks, Fields, Header, Headers,
    MaxForwards, Message, Partial, TopRoute, TopVia,
};
pub use name_addr::NameAddr;
pub use params::CommaValues;
pub use pin::{Pin, PinError, PinText, PIN_MAX_LEN, PIN_PARAM};
pub use record_route::{
    route_values, top_route_removals, RoutePrefix, ROUTE_PREFIX_MAX, SOURCE_PARAM,
};
pub use reply::{
    reply_destination, response_destination, write_reply, write_response, Echo, Extras, ReplyError,
    Status,
};
pub use rewrite::{MaxForwardsExhausted, RequestRewrite, TopViaRemoval, ViaPrefix};
pub use scan::{is_token_str, is_uri_char};
pub use start_line::StartLine;
pub use strict_route::{StrictRouteRepair, STRICT_TARGET_MAX};
pub use text::{hex16, push_decimal, push_ip};
pub use uri::{check_request_uri, SipUri};
pub use via::{ip_literal, Rport, Via};
pub use via_stamp::{StampTexts, ViaStamp};

/// Test inputs around `sample`: itself, every truncation, and every one-byte change to one of
/// `bytes` (for checking that a fast path never disagrees with the general parser).
#[cfg(test)]
pub(crate) fn one_byte_variants(sample: &[u8], bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut cases = vec![sample.to_vec()];
    for len in 0..sample.len() {
        cases.push(sample[..len].to_vec());
    }
    for pos in 0..sample.len() {
        for &b in bytes {
            let mut v = sample.to_vec();
            v[pos] = b;
            cases.push(v);
        }
    }
    cases
}

/// For every one-byte variant of every sample, `agrees` holds: it returns whether a fast
/// path, where it accepts the input, gives the general parser's result.
#[cfg(test)]
pub(crate) fn assert_fast_path_agrees(
    samples: &[&[u8]],
    bytes: &[u8],
    agrees: impl Fn(&[u8]) -> bool,
) {
    for sample in samples {
        for v in one_byte_variants(sample, bytes) {
            assert!(agrees(&v), "{:?}", String::from_utf8_lossy(&v));
        }
    }
}

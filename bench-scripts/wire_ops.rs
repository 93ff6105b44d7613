//! The request rewrite the wire benchmarks time, shared by `benches/wire.rs` (criterion) and
//! `bench-scripts/parse_loop.rs` (instruction counts), so both measure the same code.

use sipshard::sip::{self, BranchKey, Frame, Headers, RequestRewrite, ViaPrefix};
use std::hint::black_box;
use std::net::SocketAddr;

/// The benchmarks' INVITE (733 bytes with SDP).
pub const INVITE: &[u8] = include_bytes!("../tests/data/messages/invite.sip");
/// Headroom in front of the datagram in the benchmarks' buffer.
pub const ROOM: usize = 512;

/// Puts the INVITE back at `ROOM` in `buf` (the last rewrite moved it), parses it, adds our
/// Via with its branch and, with `source`, also stamps the client's Via and decrements
/// Max-Forwards (the whole forward rewrite); applies the edits in place and returns the
/// rewritten length.
#[inline(always)]
pub fn rewrite_invite(
    buf: &mut [u8],
    prefix: &ViaPrefix,
    key: &BranchKey,
    source: Option<SocketAddr>,
) -> usize {
    buf[ROOM..ROOM + INVITE.len()].copy_from_slice(black_box(INVITE));
    let rw = {
        let mut headers = Headers::<32>::new();
        let m = sip::parse(&buf[ROOM..ROOM + INVITE.len()], &mut headers).unwrap();
        let mut rw = RequestRewrite::new(&m);
        rw.add_via(prefix, key.branch(&m).as_bytes()).unwrap();
        if let Some(source) = source {
            rw.stamp_source(&m, source);
            rw.forward_max_forwards(&m).unwrap();
        }
        rw
    };
    let mut frame = Frame::new(buf, ROOM, INVITE.len());
    rw.apply(&mut frame).unwrap();
    frame.len()
}

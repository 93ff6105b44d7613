//! The request rewrite the wire benchmarks time, shared by `benches/wire.rs` (criterion) and
//! `bench-scripts/parse_loop.rs` (instruction counts), so both measure the same code.

use sipshard::sip::{self, BranchKey, Frame, Headers, RequestRewrite, ViaPrefix};
use std::hint::black_box;
use std::net::SocketAddr;

/// The benchmarks' INVITE (733 bytes with SDP).
pub const INVITE: &[u8] = include_bytes!("../tests/data/messages/invite.sip");
/// Headroom in front of the datagram in the benchmarks' buffer.
pub const ROOM: usize = 512;

/// Datagrams per batch in the batch benchmarks: as many as the balancer's `recvmmsg`
/// receives at once.
pub const BATCH: usize = 32;
/// Bytes from one batch slot to the next (headroom, the INVITE, tailroom).
pub const SLOT: usize = 2048;

/// A buffer of [`BATCH`] slots.
pub fn batch_buffer() -> Vec<u8> {
    vec![0u8; BATCH * SLOT]
}

/// Puts the INVITE at `ROOM` in every slot, as a `recvmmsg` of [`BATCH`] datagrams would.
#[inline(always)]
pub fn receive_batch(slots: &mut [u8]) {
    for slot in slots.chunks_exact_mut(SLOT) {
        slot[ROOM..ROOM + INVITE.len()].copy_from_slice(black_box(INVITE));
    }
}

/// [`receive_batch`], then the rewrite of [`rewrite_in_place`] on every slot in turn, as
/// the balancer handles a received batch; returns the sum of the rewritten lengths.
///
/// Unlike [`rewrite_invite`], each datagram was written a whole batch earlier: a rewrite
/// that starts right after the copy finds the copy's stores still in flight, and the
/// first wide loads of the datagram wait for them (a store-forwarding stall that the
/// balancer, reading what the kernel wrote before `recvmmsg` returned, does not have).
#[inline(always)]
pub fn rewrite_batch(
    slots: &mut [u8],
    prefix: &ViaPrefix,
    key: &BranchKey,
    source: Option<SocketAddr>,
) -> usize {
    receive_batch(slots);
    slots
        .chunks_exact_mut(SLOT)
        .map(|slot| rewrite_in_place(slot, prefix, key, source))
        .sum()
}

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
    rewrite_in_place(buf, prefix, key, source)
}

/// Parses the INVITE at `ROOM` in `buf` and rewrites it in place (see [`rewrite_invite`]).
#[inline(always)]
pub fn rewrite_in_place(
    buf: &mut [u8],
    prefix: &ViaPrefix,
    key: &BranchKey,
    source: Option<SocketAddr>,
) -> usize {
    let rw = {
        let mut headers = Headers::<32>::new();
        let m = sip::parse(&buf[ROOM..ROOM + INVITE.len()], &mut headers).unwrap();
        let mut rw = RequestRewrite::new(&m);
        rw.add_via(prefix, key.branch_id(&m));
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

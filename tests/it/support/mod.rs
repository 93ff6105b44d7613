//! Helpers shared by the integration tests.

pub mod counting_alloc;
pub mod farm;
pub mod fuzz_checks;
pub mod fuzz_stateful;
pub mod lab;
pub mod netns;
pub mod process;
pub mod sipp;

use sipshard::sip::{self, BranchKey, Frame, Headers, RequestRewrite, TopViaRemoval, ViaPrefix};
use std::net::SocketAddr;

/// Headroom and tailroom around the datagram in test buffers.
pub const ROOM: usize = 512;

/// A typical INVITE with SDP (~730 bytes).
pub const INVITE: &[u8] = include_bytes!("../../data/messages/invite.sip");
/// A typical 200 OK to it, with our Via on top (~800 bytes).
pub const OK200: &[u8] = include_bytes!("../../data/messages/ok200.sip");

/// A receive buffer holding `msg` after `ROOM` bytes of headroom.
pub fn buffer_with(msg: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; ROOM + msg.len() + ROOM];
    buf[ROOM..ROOM + msg.len()].copy_from_slice(msg);
    buf
}

/// Parses `msg`, lets `plan` fill a rewrite, applies it; returns the rewritten bytes.
pub fn rewrite_request<'p>(
    msg: &[u8],
    plan: impl FnOnce(&sip::Message<'_, '_>, &mut RequestRewrite<'p>),
) -> Vec<u8> {
    let mut buf = buffer_with(msg);
    let rewrite = {
        let mut headers = Headers::<64>::new();
        let parsed =
            sip::parse(&buf[ROOM..ROOM + msg.len()], &mut headers).expect("test message parses");
        let mut rewrite = RequestRewrite::new(&parsed);
        plan(&parsed, &mut rewrite);
        rewrite
    };
    let mut frame = Frame::new(&mut buf, ROOM, msg.len());
    rewrite.apply(&mut frame).expect("rewrite applies");
    frame.bytes().to_vec()
}

/// Adds only our Via.
pub fn insert_via(msg: &[u8], sent_by: SocketAddr, key: &BranchKey) -> Vec<u8> {
    let prefix = ViaPrefix::new("UDP", sent_by).unwrap();
    rewrite_request(msg, |m, rw| rw.add_via(&prefix, key.branch_id(m)))
}

/// Strips the top Via value.
pub fn strip_via(msg: &[u8]) -> Vec<u8> {
    let mut buf = buffer_with(msg);
    let removal = {
        let mut headers = Headers::<64>::new();
        let parsed =
            sip::parse(&buf[ROOM..ROOM + msg.len()], &mut headers).expect("test message parses");
        TopViaRemoval::new(&parsed)
    };
    let mut frame = Frame::new(&mut buf, ROOM, msg.len());
    removal.apply(&mut frame).expect("strip applies");
    frame.bytes().to_vec()
}

/// Lossy text of bytes, for assertions and messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

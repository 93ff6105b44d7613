//! Runs one wire-layer operation on the benches' messages N times, for instruction counts
//! (`valgrind --tool=callgrind` or `perf stat -e instructions:u`), which unlike wall-clock
//! timings repeat exactly on a busy machine.
//!   cargo build --release --example parse_loop
//!   perf stat -e instructions:u target/release/examples/parse_loop invite 100000
//! Modes: `invite`, `ok200` (parse only), `insert_via` (parse + branch + our Via, as the
//! `request/parse_insert_via` bench), `forward` (`request/parse_full_forward_rewrite`).

use sipshard::sip::{self, BranchKey, Frame, Headers, RequestRewrite, ViaPrefix};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("../tests/data/messages/invite.sip");
const OK200: &[u8] = include_bytes!("../tests/data/messages/ok200.sip");
const ROOM: usize = 512;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "invite".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let key = BranchKey::new(b"bench");
    let prefix = ViaPrefix::new("UDP", "10.0.0.1:5070".parse().unwrap()).unwrap();
    let source = "198.51.100.7:40312".parse().unwrap();
    let mut buf = vec![0u8; ROOM + INVITE.len() + ROOM];
    let mut total = 0usize;
    for _ in 0..n {
        match mode.as_str() {
            "invite" | "ok200" => {
                let msg = if mode == "invite" { INVITE } else { OK200 };
                let mut headers = Headers::<32>::new();
                let m = sip::parse(black_box(msg), &mut headers).unwrap();
                total += black_box(m.len);
            }
            "insert_via" | "forward" => {
                buf[ROOM..ROOM + INVITE.len()].copy_from_slice(black_box(INVITE));
                let rw = {
                    let mut headers = Headers::<32>::new();
                    let m = sip::parse(&buf[ROOM..ROOM + INVITE.len()], &mut headers).unwrap();
                    let mut rw = RequestRewrite::new(&m);
                    rw.add_via(&prefix, key.branch(&m).as_bytes()).unwrap();
                    if mode == "forward" {
                        rw.stamp_source(&m, source);
                        rw.forward_max_forwards(&m).unwrap();
                    }
                    rw
                };
                let mut frame = Frame::new(&mut buf, ROOM, INVITE.len());
                rw.apply(&mut frame).unwrap();
                total += black_box(frame.len());
            }
            other => panic!("unknown mode {other}"),
        }
    }
    println!("{total}");
}

//! Runs one wire-layer operation on the benches' messages N times, for instruction counts
//! (`valgrind --tool=callgrind` or `perf stat -e instructions:u`), which unlike wall-clock
//! timings repeat exactly on a busy machine.
//!   cargo build --release --example parse_loop
//!   perf stat -e instructions:u target/release/examples/parse_loop invite 100000
//! Modes: `invite`, `ok200` (parse only), `insert_via` (parse + branch + our Via, as the
//! `request/parse_insert_via` bench), `forward` (`request/parse_full_forward_rewrite`).

mod wire_ops;

use sipshard::sip::{self, BranchKey, Headers, ViaPrefix};
use std::hint::black_box;
use wire_ops::{rewrite_invite, INVITE, ROOM};

const OK200: &[u8] = include_bytes!("../tests/data/messages/ok200.sip");

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
                let source = (mode == "forward").then_some(source);
                total += black_box(rewrite_invite(&mut buf, &prefix, &key, source));
            }
            other => panic!("unknown mode {other}"),
        }
    }
    println!("{total}");
}

//! Runs one wire-layer operation on the benches' messages N times, for instruction counts
//! (`valgrind --tool=callgrind` or `perf stat -e instructions:u`), which unlike wall-clock
//! timings repeat exactly on a busy machine.
//!   cargo build --release --example parse_loop
//!   perf stat -e instructions:u target/release/examples/parse_loop invite 100000
//! Modes: `invite`, `ok200` (parse only), `insert_via` (parse + branch + our Via, as the
//! `request/parse_insert_via` bench), `forward` (`request/parse_full_forward_rewrite`),
//! `insert_via_batch` and `forward_batch` (the same on a batch of 32 datagrams received
//! first, as the balancer handles them; N counts batches), `receive_batch` (the batch's
//! copy alone).
//! With a third argument `time`, the N operations run in 20 timed blocks and the fastest
//! and median block's nanoseconds per operation are printed (`bench-scripts/loop-ab.sh`
//! alternates two builds this way): quicker than criterion for an A/B of one change.

mod wire_ops;

use sipshard::sip::{self, BranchKey, Headers, ViaPrefix};
use std::hint::black_box;
use std::net::SocketAddr;
use wire_ops::{batch_buffer, receive_batch, rewrite_batch, rewrite_invite, BATCH, INVITE, ROOM};

const OK200: &[u8] = include_bytes!("../tests/data/messages/ok200.sip");

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "invite".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let key = BranchKey::new(b"bench");
    let prefix = ViaPrefix::new("UDP", "10.0.0.1:5070".parse().unwrap()).unwrap();
    let source: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut buf = vec![0u8; ROOM + INVITE.len() + ROOM];
    let mut slots = batch_buffer();
    // `extra_headers`: the INVITE with 20 more header lines the proxy does not use, for
    // the marginal cost of one header line (compare with `invite`).
    let with_extra: Vec<u8> = {
        let at = INVITE
            .windows(14)
            .position(|w| w == b"\nMax-Forwards:")
            .map_or(0, |p| p + 1);
        let mut v = INVITE[..at].to_vec();
        for _ in 0..20 {
            v.extend_from_slice(b"X-Account-Info: premium;region=eu-west\r\n");
        }
        v.extend_from_slice(&INVITE[at..]);
        v
    };
    let timed = args.next().is_some_and(|a| a == "time");
    // The mode resolved once, not per operation.
    enum Op<'m> {
        Parse(&'m [u8]),
        Rewrite(Option<SocketAddr>),
        RewriteBatch(Option<SocketAddr>),
        ReceiveBatch,
    }
    let op = match mode.as_str() {
        "invite" => Op::Parse(INVITE),
        "ok200" => Op::Parse(OK200),
        "extra_headers" => Op::Parse(&with_extra),
        "insert_via" => Op::Rewrite(None),
        "forward" => Op::Rewrite(Some(source)),
        "insert_via_batch" => Op::RewriteBatch(None),
        "forward_batch" => Op::RewriteBatch(Some(source)),
        "receive_batch" => Op::ReceiveBatch,
        other => panic!("unknown mode {other}"),
    };
    // A batch mode's operation is a batch of datagrams; N and the figures count datagrams.
    let per_op = match op {
        Op::RewriteBatch(_) | Op::ReceiveBatch => BATCH,
        _ => 1,
    };
    let n = n / per_op;
    let mut total = 0usize;
    let mut one = || match op {
        Op::Parse(msg) => {
            let mut headers = Headers::<32>::new();
            let m = sip::parse(black_box(msg), &mut headers).unwrap();
            total += black_box(m.len);
        }
        Op::Rewrite(source) => {
            total += black_box(rewrite_invite(&mut buf, &prefix, &key, source));
        }
        Op::RewriteBatch(source) => {
            total += black_box(rewrite_batch(&mut slots, &prefix, &key, source));
        }
        Op::ReceiveBatch => {
            receive_batch(&mut slots);
            total += black_box(slots[ROOM]) as usize;
        }
    };
    if !timed {
        (0..n).for_each(|_| one());
        println!("{total}");
        return;
    }
    const BLOCKS: usize = 20;
    let per_block = (n / BLOCKS).max(1);
    let mut ns: Vec<f64> = (0..BLOCKS)
        .map(|_| {
            let start = std::time::Instant::now();
            (0..per_block).for_each(|_| one());
            start.elapsed().as_nanos() as f64 / (per_block * per_op) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!("{mode} min {:.0} median {:.0} ns", ns[0], ns[BLOCKS / 2]);
}

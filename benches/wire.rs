//! Wire-layer micro-benchmarks: parse, parse + insert Via (with the branch), strip Via,
//! on a typical ~730-byte INVITE with SDP and a typical ~800-byte 200 OK.
//! Run: `cargo bench --bench wire`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sipshard::sip::{self, BranchKey, Frame, Headers, TopViaRemoval, ViaPrefix};
use std::hint::black_box;
use std::net::SocketAddr;

#[path = "../bench-scripts/wire_ops.rs"]
mod wire_ops;
use wire_ops::{
    batch_buffer, receive_batch, rewrite_batch, rewrite_in_place, rewrite_invite, BATCH, INVITE,
    ROOM,
};

const OK200: &[u8] = include_bytes!("../tests/data/messages/ok200.sip");

fn buffer_with(msg: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; ROOM + msg.len() + ROOM];
    buf[ROOM..ROOM + msg.len()].copy_from_slice(msg);
    buf
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, msg) in [("invite", INVITE), ("ok200", OK200)] {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut headers = Headers::<32>::new();
                let m = sip::parse(black_box(msg), &mut headers).unwrap();
                black_box(m.len)
            })
        });
    }
    g.finish();
}

fn insert_via(c: &mut Criterion) {
    let key = BranchKey::new(b"bench");
    let ours: SocketAddr = "10.0.0.1:5070".parse().unwrap();
    // Formatted once per socket in the balancer.
    let prefix = ViaPrefix::new("UDP", ours).unwrap();
    let source: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    // The datagram is restored before each round (the rewrite moves it); this measures
    // that copy alone, to subtract.
    let mut buf = buffer_with(INVITE);
    g.bench_function("restore_datagram_only", |b| {
        b.iter(|| {
            buf[ROOM..ROOM + INVITE.len()].copy_from_slice(black_box(INVITE));
            black_box(&buf);
        })
    });
    g.bench_function("parse_insert_via", |b| {
        b.iter(|| black_box(rewrite_invite(&mut buf, &prefix, &key, None)))
    });
    g.bench_function("parse_full_forward_rewrite", |b| {
        b.iter(|| black_box(rewrite_invite(&mut buf, &prefix, &key, Some(source))))
    });
    // Parse + insert Via alone, on a datagram received before the timing starts: criterion
    // writes a fresh copy for each iteration outside the timed part, BATCH at a time (a
    // receive batch's worth, so the copies are still in cache, as a received batch is).
    g.bench_function("parse_insert_via_received", |b| {
        b.iter_batched_ref(
            || buffer_with(INVITE),
            |buf| rewrite_in_place(buf, &prefix, &key, None),
            BatchSize::NumIterations(BATCH as u64),
        )
    });
    g.finish();
    // The same on a batch received first, as the balancer handles one: the rewrite does
    // not start right after the copy into its buffer (see `wire_ops::rewrite_batch`).
    let mut g = c.benchmark_group("batch32");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut slots = batch_buffer();
    g.bench_function("receive_only", |b| {
        b.iter(|| {
            receive_batch(&mut slots);
            black_box(&slots);
        })
    });
    g.bench_function("parse_insert_via", |b| {
        b.iter(|| black_box(rewrite_batch(&mut slots, &prefix, &key, None)))
    });
    g.bench_function("parse_full_forward_rewrite", |b| {
        b.iter(|| black_box(rewrite_batch(&mut slots, &prefix, &key, Some(source))))
    });
    g.finish();
}

fn strip_via(c: &mut Criterion) {
    let key = BranchKey::new(b"bench");
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Bytes(OK200.len() as u64));
    let mut buf = buffer_with(OK200);
    g.bench_function("parse_verify_strip_via", |b| {
        b.iter(|| {
            buf[ROOM..ROOM + OK200.len()].copy_from_slice(black_box(OK200));
            let strip = {
                let mut headers = Headers::<32>::new();
                let m = sip::parse(&buf[ROOM..ROOM + OK200.len()], &mut headers).unwrap();
                black_box(key.verify(m.top_via.via.branch.unwrap()));
                TopViaRemoval::new(&m)
            };
            let mut frame = Frame::new(&mut buf, ROOM, OK200.len());
            strip.apply(&mut frame).unwrap();
            black_box(frame.len())
        })
    });
    g.finish();
}

fn branch(c: &mut Criterion) {
    let key = BranchKey::new(b"bench");
    let mut headers = Headers::<32>::new();
    let m = sip::parse(INVITE, &mut headers).unwrap();
    let b = key.branch(&m);
    let mut g = c.benchmark_group("branch");
    g.bench_function("make", |bench| {
        bench.iter(|| black_box(key.branch(black_box(&m))))
    });
    g.bench_function("verify", |bench| {
        bench.iter(|| black_box(key.verify(black_box(b.as_bytes()))))
    });
    g.finish();
}

/// The field parsers a forwarded INVITE runs, one by one (the parts of `parse/invite`).
fn fields(c: &mut Criterion) {
    use sipshard::sip::{checks, StartLine, Via};
    let mut g = c.benchmark_group("field");
    g.bench_function("start_line", |b| {
        b.iter(|| {
            StartLine::parse(black_box(
                b"INVITE sip:+15551234567@carrier.example.com SIP/2.0",
            ))
            .is_ok()
        })
    });
    g.bench_function("via", |b| {
        b.iter(|| {
            Via::parse(black_box(
                b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport",
            ))
            .map(|v| v.port)
        })
    });
    g.bench_function("call_id", |b| {
        b.iter(|| checks::call_id_ok(black_box(b"3848276298220188511@192.0.2.10")))
    });
    g.bench_function("cseq", |b| {
        b.iter(|| checks::parse_cseq(black_box(b"1 INVITE")).is_some())
    });
    g.bench_function("max_forwards", |b| {
        b.iter(|| checks::parse_max_forwards(black_box(b"70")))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = parse, insert_via, strip_via, branch, fields
}
criterion_main!(benches);

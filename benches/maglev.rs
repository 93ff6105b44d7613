//! Backend-selection micro-benchmarks: building a Maglev table of the default size
//! (65537) for 3, 10 and 100 backends, and one lookup (Call-ID hash + table read) on a
//! typical Call-ID, reported per lookup.
//! Run: `cargo bench --bench maglev`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sipshard::balance::{call_id_hash, Maglev, DEFAULT_TABLE_SIZE};
use std::hint::black_box;

/// A typical Call-ID (RFC 3261's example style: random part @ host).
const CALL_ID: &[u8] = b"a84b4c76e66710@pc33.atlanta.com";

/// Address keys for `n` backends, as sipshard passes them.
fn keys(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:5060", i / 250, i % 250 + 1))
        .collect()
}

/// `(key, weight 1)` pairs borrowing `keys`.
fn backends(keys: &[String]) -> Vec<(&[u8], u32)> {
    keys.iter().map(|k| (k.as_bytes(), 1)).collect()
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for n in [3u32, 10, 100] {
        let keys = keys(n);
        let list = backends(&keys);
        g.bench_with_input(BenchmarkId::from_parameter(n), &list, |b, list| {
            b.iter(|| Maglev::build(black_box(list), DEFAULT_TABLE_SIZE).unwrap())
        });
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_lookup");
    g.throughput(Throughput::Elements(1));
    for n in [3u32, 100] {
        let keys = keys(n);
        let table = Maglev::build(&backends(&keys), DEFAULT_TABLE_SIZE).unwrap();
        g.bench_function(BenchmarkId::new("hash_and_lookup", n), |b| {
            b.iter(|| table.lookup(call_id_hash(black_box(CALL_ID))))
        });
    }
    g.finish();
}

criterion_group!(benches, build, lookup);
criterion_main!(benches);

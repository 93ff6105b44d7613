//! Backend selection: the Call-ID hash's fixed vectors and the Maglev table's properties
//! (minimal disruption, weights, order independence, drained backends, errors), checked
//! over 1,000,000 generated Call-IDs.

use proptest::prelude::*;
use sipshard::balance::{call_id_hash, Maglev, MaglevError, DEFAULT_TABLE_SIZE};
use std::sync::OnceLock;

/// How many Call-IDs the distribution tests hash.
const CALLS: usize = 1_000_000;

/// A backend as the tests describe it: a numeric id (its key is `key(id)`) and a weight.
type Spec = (u32, u32);

/// SplitMix64: a fixed, deterministic scramble for generating Call-IDs and shuffles.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Call-ID hashes of `CALLS` deterministic Call-IDs like `17-9c3f0a...@host`.
fn hashes() -> &'static [u64] {
    static HASHES: OnceLock<Vec<u64>> = OnceLock::new();
    HASHES.get_or_init(|| {
        (0..CALLS as u64)
            .map(|i| call_id_hash(format!("{i}-{:x}@host", splitmix(i)).as_bytes()))
            .collect()
    })
}

/// The key of backend `id`: its address text, as sipshard passes it.
fn key(id: u32) -> String {
    format!("10.0.{}.{}:5060", id / 250, id % 250 + 1)
}

/// `(id, weight)` specs with weight 1 for ids `0..n`.
fn equal(n: u32) -> Vec<Spec> {
    (0..n).map(|id| (id, 1)).collect()
}

/// Builds the table for `specs` at `size`.
fn build(specs: &[Spec], size: u32) -> Result<Maglev, MaglevError> {
    let keys: Vec<String> = specs.iter().map(|&(id, _)| key(id)).collect();
    let backends: Vec<(&[u8], u32)> = keys
        .iter()
        .zip(specs)
        .map(|(k, &(_, w))| (k.as_bytes(), w))
        .collect();
    Maglev::build(&backends, size)
}

/// The backend id (not index) each Call-ID goes to under `specs`; `u32::MAX` for none.
fn mapping(specs: &[Spec]) -> Vec<u32> {
    let table = build(specs, DEFAULT_TABLE_SIZE).expect("valid backend set");
    hashes()
        .iter()
        .map(|&h| table.lookup(h).map_or(u32::MAX, |i| specs[i].0))
        .collect()
}

/// `specs` without the backend with id `gone`.
fn without(specs: &[Spec], gone: u32) -> Vec<Spec> {
    specs
        .iter()
        .copied()
        .filter(|&(id, _)| id != gone)
        .collect()
}

/// Checks that removing `gone` from `specs` moves only the calls it should.
fn check_removal(specs: &[Spec], gone: u32) {
    let n = specs.len() as f64;
    let before = mapping(specs);
    let after = mapping(&without(specs, gone));
    let mut moved = 0usize;
    let mut others_moved = 0usize;
    for (&b, &a) in before.iter().zip(&after) {
        assert_ne!(a, u32::MAX);
        assert_ne!(a, gone, "a call still goes to the removed backend");
        if a != b {
            moved += 1;
            if b != gone {
                others_moved += 1;
            }
        }
    }
    let of_gone = before.iter().filter(|&&b| b == gone).count();
    let moved_f = moved as f64 / CALLS as f64;
    let others_f = others_moved as f64 / CALLS as f64;
    println!(
        "N={n} remove {gone}: moved {moved_f:.4} (ideal {:.4}), others moved {others_f:.4}",
        1.0 / n
    );
    assert_eq!(
        moved - others_moved,
        of_gone,
        "every call of the removed one moves"
    );
    assert!(moved_f <= 1.0 / n + 0.01, "moved {moved_f} with N={n}");
    assert!(others_f <= 0.01, "others moved {others_f} with N={n}");
}

#[test]
fn removing_one_backend_moves_about_one_nth() {
    for n in [3u32, 5, 10] {
        for gone in 0..n {
            check_removal(&equal(n), gone);
        }
    }
}

#[test]
fn removing_one_weighted_backend_moves_little() {
    let specs: Vec<Spec> = vec![(0, 1), (1, 2), (2, 3), (3, 4)];
    for gone in 0..4 {
        let before = mapping(&specs);
        let after = mapping(&without(&specs, gone));
        let others = before
            .iter()
            .zip(&after)
            .filter(|&(&b, &a)| b != gone && a != b)
            .count();
        assert!(others as f64 / CALLS as f64 <= 0.01, "{gone}: {others}");
    }
}

#[test]
fn returning_backend_restores_every_call() {
    let specs = equal(5);
    let before = mapping(&specs);
    for gone in 0..5 {
        let mut back = without(&specs, gone);
        back.push((gone, 1));
        assert_eq!(mapping(&back), before, "backend {gone} returned");
    }
    // The table itself is a pure function of the backend set.
    let again = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
    assert_eq!(again, build(&specs, DEFAULT_TABLE_SIZE).unwrap());
}

#[test]
fn draining_is_the_same_as_removing() {
    let specs = equal(5);
    let mut drained = specs.clone();
    drained[2].1 = 0;
    assert_eq!(mapping(&drained), mapping(&without(&specs, 2)));
}

/// Asserts `|actual / expected - 1| <= 0.02` for each backend's share.
fn assert_shares(counts: &[u64], weights: &[u32], what: &str) {
    let total: u64 = counts.iter().sum();
    let weight_sum: u32 = weights.iter().sum();
    for (&count, &w) in counts.iter().zip(weights) {
        let actual = count as f64 / total as f64;
        let expected = f64::from(w) / f64::from(weight_sum);
        let error = (actual / expected - 1.0).abs();
        assert!(
            error <= 0.02,
            "{what}: weight {w} of {weights:?}: share {actual:.5}, expected {expected:.5}"
        );
    }
}

#[test]
fn weights_are_honoured_in_entries_and_calls() {
    for weights in [
        vec![1u32, 2, 3, 4],
        vec![1, 1, 10],
        vec![5, 5, 5],
        vec![100, 1],
    ] {
        let specs: Vec<Spec> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (i as u32, w))
            .collect();
        let table = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
        let entries: Vec<u64> = table
            .entries_per_backend()
            .iter()
            .map(|&e| u64::from(e))
            .collect();
        assert_eq!(entries.iter().sum::<u64>(), u64::from(DEFAULT_TABLE_SIZE));
        assert_shares(&entries, &weights, "table entries");
        let mut calls = vec![0u64; specs.len()];
        for &h in hashes() {
            calls[table.lookup(h).unwrap()] += 1;
        }
        assert_shares(&calls, &weights, "calls");
    }
}

#[test]
fn equal_weights_split_the_table_evenly() {
    for n in [3u32, 10, 100] {
        let table = build(&equal(n), DEFAULT_TABLE_SIZE).unwrap();
        let entries = table.entries_per_backend();
        let low = DEFAULT_TABLE_SIZE / n;
        assert!(
            entries.iter().all(|&e| e == low || e == low + 1),
            "{entries:?}"
        );
    }
}

/// A deterministic Fisher-Yates shuffle of `specs` driven by `seed`.
fn shuffled(specs: &[Spec], seed: u64) -> Vec<Spec> {
    let mut v = specs.to_vec();
    for i in (1..v.len()).rev() {
        let j = (splitmix(seed ^ i as u64) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

#[test]
fn input_order_does_not_matter() {
    let specs: Vec<Spec> = (0..10).map(|id| (id, id % 4)).collect();
    let reference = mapping(&specs);
    let reversed: Vec<Spec> = specs.iter().rev().copied().collect();
    assert_eq!(mapping(&reversed), reference);
    for seed in 1..4 {
        assert_eq!(mapping(&shuffled(&specs, seed)), reference, "seed {seed}");
    }
}

#[test]
fn drained_backend_gets_nothing() {
    let specs: Vec<Spec> = vec![(0, 1), (1, 0), (2, 3)];
    let table = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
    assert_eq!(table.entries_per_backend()[1], 0);
    assert!(hashes().iter().all(|&h| table.lookup(h) != Some(1)));
}

#[test]
fn no_active_backend_means_no_lookup() {
    for specs in [vec![], vec![(0, 0)], vec![(0, 0), (1, 0), (2, 0)]] {
        let table = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
        assert_eq!(table.size(), DEFAULT_TABLE_SIZE);
        assert!(table.entries_per_backend().iter().all(|&e| e == 0));
        for h in [0, 1, u64::MAX, call_id_hash(b"c1@host")] {
            assert_eq!(table.lookup(h), None);
        }
    }
}

#[test]
fn every_active_backend_gets_an_entry() {
    // Weight 1 next to u32::MAX would round to no entry; each still gets one.
    let table = build(&[(0, u32::MAX), (1, 1), (2, 1)], 7).unwrap();
    assert_eq!(table.entries_per_backend(), vec![5, 1, 1]);
    // As many active backends as slots: one slot each.
    let table = build(&equal(13), 13).unwrap();
    assert!(table.entries_per_backend().iter().all(|&e| e == 1));
}

#[test]
fn bad_sizes_are_rejected() {
    for size in [0u32, 1, 4, 9, 65536, 65535, 1_000_000, u32::MAX] {
        let err = build(&equal(3), size).unwrap_err();
        assert!(
            matches!(err, MaglevError::SizeNotPrime(s) if s == size)
                || matches!(err, MaglevError::SizeTooLarge { size: s, .. } if s == size),
            "{size}: {err}"
        );
    }
    for size in [2u32, 3, 5, 251, 65537, 1_000_003] {
        assert!(build(&[(0, 1)], size).is_ok(), "{size}");
    }
    let err = build(&equal(3), 4).unwrap_err();
    assert_eq!(err, MaglevError::SizeNotPrime(4));
    assert!(err.to_string().contains("not prime"), "{err}");
}

#[test]
fn duplicate_key_is_rejected() {
    let backends: [(&[u8], u32); 3] = [
        (b"10.0.0.1:5060", 1),
        (b"10.0.0.2:5060", 1),
        (b"10.0.0.1:5060", 0),
    ];
    let err = Maglev::build(&backends, DEFAULT_TABLE_SIZE).unwrap_err();
    assert_eq!(err, MaglevError::DuplicateKey("10.0.0.1:5060".to_string()));
    assert!(err.to_string().contains("10.0.0.1:5060"), "{err}");
}

#[test]
fn size_below_active_backends_is_rejected() {
    let err = build(&equal(5), 3).unwrap_err();
    assert_eq!(err, MaglevError::TooManyBackends { active: 5, size: 3 });
    assert!(err.to_string().contains("smaller than"), "{err}");
    // Drained backends need no slot.
    let mut specs = equal(5);
    specs[0].1 = 0;
    specs[1].1 = 0;
    assert!(build(&specs, 3).is_ok());
}

#[test]
fn too_many_backends_to_index_is_rejected() {
    let keys: Vec<String> = (0..70_000u32).map(key).collect();
    let backends: Vec<(&[u8], u32)> = keys.iter().map(|k| (k.as_bytes(), 0)).collect();
    let err = Maglev::build(&backends, DEFAULT_TABLE_SIZE).unwrap_err();
    assert!(
        matches!(err, MaglevError::BackendLimit { count: 70_000, .. }),
        "{err}"
    );
}

// Vectors cross-checked with an independent XXH3 implementation, the `xxhash` package from
// PyPI (python-xxhash 3.x, wrapping the C reference xxHash 0.8):
//     python3 -c 'import xxhash; print(xxhash.xxh3_64_intdigest(b"..."))'
// They cover each of XXH3's input-length code paths (0, 1-3, 4-8, 9-16, 17-128, 129-240,
// over 240 bytes).
#[test]
fn call_id_hash_vectors() {
    let long = b"3848276298220188511@atlanta.example.com".repeat(8);
    let x200 = [b'x'; 200];
    let vectors: [(&[u8], u64); 9] = [
        (b"", 3244421341483603138),
        (b"a", 16629034431890738719),
        (b"abc", 8696274497037089104),
        (b"c1@host", 6355432996225168769),
        (b"0123456789abcdef", 7224786756799439149),
        (b"a84b4c76e66710@pc33.atlanta.com", 10265403458512198433),
        (
            b"f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com",
            7855041937140786040,
        ),
        (&x200, 5831900175964364371),
        (&long, 2754330928764502695),
    ];
    for (input, expected) in vectors {
        assert_eq!(
            call_id_hash(input),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// The fixed 3-backend set of the lookup vectors.
const FIXED: [(&[u8], u32); 3] = [
    (b"10.0.0.1:5060", 1),
    (b"10.0.0.2:5060", 1),
    (b"10.0.0.3:5060", 2),
];

// Fixed lookups and whole-table fingerprints: any change to the table algorithm (seeds,
// canonical order, fill, weighting, the multiply-shift mapping) shows up here. Such a change
// is a change of behaviour between instances: two sipshard versions would disagree about
// where a call goes.
//
// The expected values were cross-checked with an independent implementation of the
// specification in `src/balance/maglev.rs`'s module doc, in Python over the PyPI `xxhash`
// package (which wraps the C reference xxHash); it gave the same values:
//
//     import xxhash
//     OFF, SKP = 0x6d676c762d6f6666, 0x6d676c762d736b70
//     def build(backends, M):
//         act = sorted((k, w, i) for i, (k, w) in enumerate(backends) if w > 0)
//         mx = max(w for _, w, _ in act)
//         st = [[i, w, xxhash.xxh3_64_intdigest(k, seed=OFF) % M,
//                xxhash.xxh3_64_intdigest(k, seed=SKP) % (M - 1) + 1, mx - w]
//               for k, w, i in act]
//         t, filled = [None] * M, 0
//         while filled < M:
//             for s in st:
//                 s[4] += s[1]
//                 if s[4] < mx: continue
//                 s[4] -= mx
//                 while t[s[2]] is not None: s[2] = (s[2] + s[3]) % M
//                 t[s[2]] = s[0]; s[2] = (s[2] + s[3]) % M; filled += 1
//                 if filled == M: break
//         return t
//     def lookup(t, h): return t[(h * len(t)) >> 64]
//     def fingerprint(t):
//         acc = 0
//         for s in range(len(t)):
//             acc = (acc * 31 + lookup(t, -((-(s << 64)) // len(t))) + 1) % 2**64
//         return acc
#[test]
fn fixed_lookups() {
    let table = Maglev::build(&FIXED, DEFAULT_TABLE_SIZE).unwrap();
    assert_eq!(table.entries_per_backend(), vec![16385, 16384, 32768]);
    let calls: [(&[u8], usize); 8] = [
        (b"a84b4c76e66710@pc33.atlanta.com", 2),
        (b"f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com", 2),
        (b"c1@host", 1),
        (b"1-call@host", 1),
        (b"2-call@host", 0),
        (b"3-call@host", 2),
        (b"4-call@host", 2),
        (b"5-call@host", 0),
    ];
    for (call_id, expected) in calls {
        let got = table.lookup(call_id_hash(call_id));
        assert_eq!(
            got,
            Some(expected),
            "{:?}",
            String::from_utf8_lossy(call_id)
        );
    }
    let raw: [(u64, usize); 4] = [
        (0, 2),
        (u64::MAX, 1),
        (1 << 63, 2),
        (0x1234_5678_9abc_def0, 1),
    ];
    for (hash, expected) in raw {
        assert_eq!(table.lookup(hash), Some(expected), "{hash:#x}");
    }
}

/// Folds every slot of `table` (read through `lookup` at the smallest hash that maps to
/// each slot, so the multiply-shift mapping is checked too) into one number.
fn fingerprint(table: &Maglev) -> u64 {
    let m = u128::from(table.size());
    (0..m).fold(0u64, |acc, slot| {
        let hash = u64::try_from((slot << 64).div_ceil(m)).unwrap();
        let index = table.lookup(hash).unwrap() as u64;
        acc.wrapping_mul(31).wrapping_add(index + 1)
    })
}

#[test]
fn fixed_table_fingerprints() {
    let table = Maglev::build(&FIXED, DEFAULT_TABLE_SIZE).unwrap();
    assert_eq!(fingerprint(&table), 14485494201662034159);
    let small = Maglev::build(&FIXED, 251).unwrap();
    assert_eq!(small.entries_per_backend(), vec![63, 63, 125]);
    assert_eq!(fingerprint(&small), 564652797812799026);
    let specs: Vec<Spec> = (0..10).map(|id| (id, id % 4)).collect();
    let weighted = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
    let entries = [0, 5042, 10083, 15124, 0, 5041, 10082, 15123, 0, 5042];
    assert_eq!(weighted.entries_per_backend(), entries);
    assert_eq!(fingerprint(&weighted), 14175498032723530257);
}

/// Table sizes for the property tests: small primes so each case is fast, and the default.
const PRIMES: [u32; 8] = [2, 3, 13, 251, 1009, 4099, 10007, DEFAULT_TABLE_SIZE];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Lookups land only on listed backends with weight > 0, and every one of those owns
    /// at least one entry.
    #[test]
    fn lookup_picks_only_active_backends(
        weights in prop::collection::vec(prop_oneof![Just(0u32), 1u32..10, any::<u32>()], 0..24),
        size in prop::sample::select(PRIMES.to_vec()),
        probes in prop::collection::vec(any::<u64>(), 64),
    ) {
        let specs: Vec<Spec> = weights.iter().enumerate().map(|(i, &w)| (i as u32, w)).collect();
        let active = weights.iter().filter(|&&w| w > 0).count();
        prop_assume!(active <= size as usize);
        let table = build(&specs, size).unwrap();
        for h in probes {
            match table.lookup(h) {
                Some(i) => {
                    prop_assert!(i < weights.len());
                    prop_assert!(weights[i] > 0);
                }
                None => prop_assert_eq!(active, 0),
            }
        }
        let entries = table.entries_per_backend();
        prop_assert_eq!(entries.len(), weights.len());
        for (&e, &w) in entries.iter().zip(&weights) {
            prop_assert_eq!(e == 0, w == 0);
        }
        let total: u64 = entries.iter().map(|&e| u64::from(e)).sum();
        prop_assert_eq!(total, if active == 0 { 0 } else { u64::from(size) });
    }

    /// Arbitrary keys (duplicates included), weights and sizes: build returns a result,
    /// never panics, and a built table's lookups stay in range.
    #[test]
    fn build_never_panics(
        backends in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..3), any::<u32>()), 0..12),
        size in 0u32..3000,
        probes in prop::collection::vec(any::<u64>(), 16),
    ) {
        let refs: Vec<(&[u8], u32)> = backends.iter().map(|(k, w)| (k.as_slice(), *w)).collect();
        if let Ok(table) = Maglev::build(&refs, size) {
            for h in probes {
                if let Some(i) = table.lookup(h) {
                    prop_assert!(i < refs.len() && refs[i].1 > 0);
                }
            }
        }
    }
}

/// The preference order of a hash (failover and forking): the lookup's choice first, then
/// distinct other backends, never a drained one, as many as asked and no more than there
/// are, the same whatever order the backends are listed in, and spread: every backend is
/// some call's second choice.
#[test]
fn the_preference_order_starts_with_the_lookup_and_lists_distinct_live_backends() {
    let specs: Vec<Spec> = (0..5).map(|id| (id, u32::from(id != 3))).collect();
    let m = build(&specs, DEFAULT_TABLE_SIZE).unwrap();
    let mut reversed = specs.clone();
    reversed.reverse();
    let r = build(&reversed, DEFAULT_TABLE_SIZE).unwrap();
    let mut seconds = [0u32; 5];
    for &h in &hashes()[..20_000] {
        let order: Vec<usize> = m.preference(h, 3).collect();
        assert_eq!(order.len(), 3);
        assert_eq!(Some(order[0]), m.lookup(h));
        assert!(!order.contains(&3), "drained backend in {order:?}");
        let mut distinct = order.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{order:?}");
        // The reversed listing names the same backends (index i there is 4 - i here).
        let theirs: Vec<usize> = r.preference(h, 3).map(|i| 4 - i).collect();
        assert_eq!(theirs, order);
        seconds[order[1]] += 1;
        // Asking for more than there are: every live backend, once.
        assert_eq!(m.preference(h, 10).count(), 4);
    }
    for (id, &n) in seconds.iter().enumerate() {
        assert_eq!(n == 0, id == 3, "second choices: {seconds:?}");
    }
}

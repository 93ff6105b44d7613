//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as Katran does it.
//!
//! The table is a pure function of the backend *set* (keys and weights): every sipshard
//! instance given the same backends, in any order, on any build or machine, builds the same
//! table and so sends a Call-ID to the same backend. This whole description is part of the
//! specification; changing any step changes which backend a call goes to.
//!
//! Build, for a prime table size `M`:
//! 1. Backends with weight 0 (drained) are left out. The others are put in canonical order:
//!    sorted by key bytes (lexicographic).
//! 2. Each backend gets `offset = xxh3_64(key, seed OFFSET_SEED) % M` and
//!    `skip = xxh3_64(key, seed SKIP_SEED) % (M - 1) + 1`; its preference list is
//!    `permutation[j] = (offset + j * skip) % M` for `j = 0, 1, ..` (a permutation of
//!    `0..M` because `M` is prime and `1 <= skip < M`).
//! 3. The table is filled round by round until full. Each backend starts with a credit of
//!    `max_weight - weight`. In each round every backend, in canonical order, adds its
//!    weight to its credit; when the credit reaches `max_weight`, it subtracts `max_weight`
//!    and takes the next slot of its preference list that is still empty. The fill stops
//!    the moment the last slot is taken. So every backend takes a slot in the first round
//!    (each gets at least one entry, however small its weight), the heaviest take one slot
//!    per round, and a backend of weight `w` takes `w / max_weight` slots per round: entry
//!    counts are proportional to weights, within about one entry.
//!
//! Build cost is `O(M * max_weight / mean_weight)`: about `M` steps for equal weights.
//!
//! Lookup: `index = (hash as u128 * M as u128) >> 64` (multiply-shift, not `hash % M`), then
//! one table read.

use arrayvec::ArrayVec;
use std::fmt;
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The default table size: a prime comfortably larger than 100 × the largest expected
/// backend count, so weights are honoured finely and few calls move when a backend leaves.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

/// The largest table size accepted (about 16.7 million entries, 32 MiB), so that no
/// configuration value can make a build allocate without bound.
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// The most backends a build accepts, counting drained ones: table entries are `u16`
/// indexes, and `u16::MAX` marks an empty slot while the table is being filled.
pub const MAX_BACKENDS: usize = u16::MAX as usize;

/// Seed of the XXH3-64 hash of a backend key that gives its offset (ASCII "mglv-off").
const OFFSET_SEED: u64 = 0x6d67_6c76_2d6f_6666;

/// Seed of the XXH3-64 hash of a backend key that gives its skip (ASCII "mglv-skp").
const SKIP_SEED: u64 = 0x6d67_6c76_2d73_6b70;

/// Marks a slot not yet taken during the fill.
const EMPTY: u16 = u16::MAX;

/// Why a Maglev table could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MaglevError {
    /// The table size is not prime, so some backends' preference lists would not visit
    /// every slot.
    #[error(
        "Maglev table size {0} is not prime: each backend's preference list must visit every slot"
    )]
    SizeNotPrime(u32),
    /// The table size is above [`MAX_TABLE_SIZE`].
    #[error("Maglev table size {size} is larger than the maximum {max}")]
    SizeTooLarge {
        /// The size asked for.
        size: u32,
        /// The largest size accepted.
        max: u32,
    },
    /// Fewer table slots than backends with weight > 0: some would get no entry.
    #[error("Maglev table size {size} is smaller than the {active} backends with weight > 0: each needs at least one entry")]
    TooManyBackends {
        /// Backends with weight > 0.
        active: usize,
        /// The table size asked for.
        size: u32,
    },
    /// More backends listed (drained ones included) than table entries can index.
    #[error("{count} backends listed, more than the {max} a Maglev table can index")]
    BackendLimit {
        /// Backends listed.
        count: usize,
        /// The most accepted.
        max: usize,
    },
    /// Two backends have the same key, so the canonical order (and which of the two gets
    /// which slots) would be ambiguous.
    #[error("backend key {0:?} is listed more than once: keys must be unique")]
    DuplicateKey(String),
}

/// A Maglev lookup table: maps a 64-bit hash to the index of a backend.
///
/// Built off the packet path with [`Maglev::build`]; [`Maglev::lookup`] is one
/// multiply-shift and one table read.
#[derive(Clone, PartialEq, Eq)]
pub struct Maglev {
    /// `table[slot]` is an index into the `backends` slice given to `build`. Empty when no
    /// backend has weight > 0.
    table: Box<[u16]>,
    /// The table size asked for (the table's length when it is not empty).
    size: u32,
    /// How many backends were listed, drained ones included.
    backends: usize,
    /// How many have weight > 0 (own entries of the table).
    active: usize,
}

/// The most backends a preference order lists.
pub const PREFERENCE_MAX: usize = 16;

/// The backends of one hash in order of preference ([`Maglev::preference`]).
#[derive(Clone, Debug)]
pub struct Preference<'t> {
    table: &'t [u16],
    at: usize,
    walked: usize,
    seen: ArrayVec<u16, PREFERENCE_MAX>,
    max: usize,
}

impl Iterator for Preference<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.seen.len() < self.max && self.walked < self.table.len() {
            let backend = self.table[self.at];
            self.at = (self.at + 1) % self.table.len();
            self.walked += 1;
            if !self.seen.contains(&backend) {
                self.seen.push(backend);
                return Some(usize::from(backend));
            }
        }
        None
    }
}

/// One backend with weight > 0, as the fill sees it.
struct Slot {
    /// Index into the caller's `backends` slice.
    index: u16,
    /// Weight, > 0.
    weight: u64,
    /// Next preferred slot (`permutation[j]` for the current `j`).
    next: u64,
    /// Distance between consecutive preferred slots, in `1..M`.
    skip: u64,
    /// Accumulated weight not yet spent on slots.
    credit: u64,
}

impl Maglev {
    /// Builds the lookup table. `backends[i] = (key, weight)`: key identifies the backend
    /// (sipshard passes the address text, e.g. b"10.0.0.2:5060"), weight >= 0 (0 = drained:
    /// gets no entries). `size` must be prime and >= the number of backends with weight > 0.
    /// The result must not depend on the order of `backends`: two instances listing the same
    /// backends in another order get the same key -> backend mapping.
    pub fn build(backends: &[(&[u8], u32)], size: u32) -> Result<Maglev, MaglevError> {
        check_size(size)?;
        check_backends(backends)?;
        let active = canonical_active(backends);
        if active.len() > size as usize {
            return Err(MaglevError::TooManyBackends {
                active: active.len(),
                size,
            });
        }
        let table = if active.is_empty() {
            Box::default()
        } else {
            fill(&active, size)
        };
        Ok(Maglev {
            table,
            size,
            backends: backends.len(),
            active: active.len(),
        })
    }

    /// Index (into the `backends` slice given to build) of the backend for `hash`;
    /// None when no backend has weight > 0. One modulo/multiply and one table read.
    ///
    /// The slot is `(hash as u128 * size as u128) >> 64` (multiply-shift), fixed by the
    /// specification.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let slot = (u128::from(hash) * self.table.len() as u128) >> 64;
        self.table.get(slot as usize).map(|&b| usize::from(b))
    }

    /// The backends for `hash` in order of preference (indices into the `backends` slice
    /// given to build): [`Maglev::lookup`]'s choice first, then each other backend in the
    /// order it first appears walking the table on from that slot, up to `max` of them
    /// (and at most every backend with weight > 0, [`PREFERENCE_MAX`]).
    /// Consistent like the lookup: the failover and fork order of a call is the same on
    /// every instance and every shard.
    pub fn preference(&self, hash: u64, max: usize) -> Preference<'_> {
        let len = self.table.len();
        let slot = if len == 0 {
            0
        } else {
            ((u128::from(hash) * len as u128) >> 64) as usize
        };
        Preference {
            table: &self.table,
            at: slot,
            walked: 0,
            seen: ArrayVec::new(),
            max: max.min(self.active).min(PREFERENCE_MAX),
        }
    }

    /// Table size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// How many table entries each backend owns, indexed like `backends` (for tests/metrics).
    pub fn entries_per_backend(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.backends];
        for &b in self.table.iter() {
            if let Some(c) = counts.get_mut(usize::from(b)) {
                *c += 1;
            }
        }
        counts
    }
}

impl fmt::Debug for Maglev {
    /// Size and entry counts, not the whole table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("size", &self.size)
            .field("entries_per_backend", &self.entries_per_backend())
            .finish()
    }
}

/// Checks that `size` is prime and not above [`MAX_TABLE_SIZE`].
fn check_size(size: u32) -> Result<(), MaglevError> {
    if size > MAX_TABLE_SIZE {
        return Err(MaglevError::SizeTooLarge {
            size,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::SizeNotPrime(size));
    }
    Ok(())
}

/// True if `n` is prime (trial division: at most ~2,000 divisions up to [`MAX_TABLE_SIZE`]).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let n = u64::from(n);
    (3u64..)
        .step_by(2)
        .take_while(|d| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

/// Checks the backend count and that keys are unique (drained backends included).
fn check_backends(backends: &[(&[u8], u32)]) -> Result<(), MaglevError> {
    if backends.len() > MAX_BACKENDS {
        return Err(MaglevError::BackendLimit {
            count: backends.len(),
            max: MAX_BACKENDS,
        });
    }
    let mut keys: Vec<&[u8]> = backends.iter().map(|&(key, _)| key).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(MaglevError::DuplicateKey(
            String::from_utf8_lossy(w[0]).into_owned(),
        )),
        None => Ok(()),
    }
}

/// A backend with weight > 0: its index in the caller's slice, key and weight.
type Active<'a> = (u16, &'a [u8], u32);

/// The backends with weight > 0, sorted by key (keys are unique, checked before).
/// Indexes fit `u16`: the count was checked against [`MAX_BACKENDS`].
fn canonical_active<'a>(backends: &[(&'a [u8], u32)]) -> Vec<Active<'a>> {
    let mut active: Vec<Active<'a>> = backends
        .iter()
        .enumerate()
        .filter(|(_, &(_, weight))| weight > 0)
        .filter_map(|(i, &(key, weight))| Some((u16::try_from(i).ok()?, key, weight)))
        .collect();
    active.sort_unstable_by_key(|&(_, key, _)| key);
    active
}

/// Fills a table of `size` slots (prime) for the `active` backends (canonical order,
/// at least one, at most `size`).
fn fill(active: &[Active<'_>], size: u32) -> Box<[u16]> {
    let m = u64::from(size);
    let max_weight = u64::from(active.iter().map(|&(_, _, w)| w).max().unwrap_or(1));
    let mut slots: Vec<Slot> = active
        .iter()
        .map(|&backend| new_slot(backend, m, max_weight))
        .collect();
    let mut table = vec![EMPTY; size as usize];
    let mut filled = 0usize;
    while filled < table.len() {
        for s in slots.iter_mut() {
            s.credit += s.weight;
            if s.credit < max_weight {
                continue;
            }
            s.credit -= max_weight;
            take_next(s, &mut table, m);
            filled += 1;
            if filled == table.len() {
                break;
            }
        }
    }
    table.into_boxed_slice()
}

/// The fill state of a backend for a table of `m` slots (prime), where the largest weight
/// is `max_weight`.
fn new_slot((index, key, weight): Active<'_>, m: u64, max_weight: u64) -> Slot {
    let offset = xxh3_64_with_seed(key, OFFSET_SEED) % m;
    // `m` is prime, so >= 2 and `m - 1` >= 1.
    let skip = xxh3_64_with_seed(key, SKIP_SEED) % (m - 1) + 1;
    let weight = u64::from(weight);
    Slot {
        index,
        weight,
        next: offset,
        skip,
        credit: max_weight.saturating_sub(weight),
    }
}

/// Gives `s` the next empty slot of its preference list. The caller guarantees an empty
/// slot exists; the preference list visits every slot within `m` steps, and the slots it
/// has passed are all taken, so one is found before wrapping.
fn take_next(s: &mut Slot, table: &mut [u16], m: u64) {
    for _ in 0..m {
        let slot = s.next as usize;
        s.next = (s.next + s.skip) % m;
        if let Some(entry) = table.get_mut(slot) {
            if *entry == EMPTY {
                *entry = s.index;
                return;
            }
        }
    }
}

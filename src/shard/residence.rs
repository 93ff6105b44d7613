//! Residence time: how long a datagram stays in the balancer, from the kernel stamping its
//! arrival (`SO_TIMESTAMPNS`) to the end of the `sendmmsg` that sent its batch on. This is
//! the latency the balancer adds on top of one more pass through the kernel's UDP path,
//! measured on the balancer itself, so a load generator sharing a core with it cannot blur it.
//!
//! The histogram has fixed decimal buckets: 1 µs wide below 100 µs, then ten per decade
//! (10 µs wide up to 1 ms, 100 µs up to 10 ms, ... 10 ms up to 1 s), and one for 1 s and
//! more: 461 counters, each a bucket's count, so a quantile is known to within one bucket
//! (≤ 10%). One shard writes its histogram; readers sum shards when asked.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Buckets below 100 µs (1 µs each).
const FINE: usize = 100;
/// Buckets per decade above 100 µs.
const PER_DECADE: usize = 90;
/// Decades above 100 µs: 100 µs–1 ms, 1–10 ms, 10–100 ms, 100 ms–1 s.
const DECADES: usize = 4;
/// Number of buckets: the fine ones, the decades, and one for 1 s and more.
pub const BUCKETS: usize = FINE + PER_DECADE * DECADES + 1;
/// Where the overflow bucket starts, µs.
#[cfg(test)]
const OVERFLOW_US: u64 = 1_000_000;

/// The bucket holding a residence of `us` microseconds.
pub fn bucket_of(us: u64) -> usize {
    if us < FINE as u64 {
        return us as usize;
    }
    let mut start = FINE as u64;
    for decade in 0..DECADES {
        let step = start / 10;
        if us < start * 10 {
            return FINE + decade * PER_DECADE + ((us - start) / step) as usize;
        }
        start *= 10;
    }
    BUCKETS - 1
}

/// The exclusive upper edge of `bucket`, µs; `None` for the overflow bucket.
pub fn upper_edge_us(bucket: usize) -> Option<u64> {
    if bucket < FINE {
        return Some(bucket as u64 + 1);
    }
    if bucket >= BUCKETS - 1 {
        return None;
    }
    let (decade, within) = ((bucket - FINE) / PER_DECADE, (bucket - FINE) % PER_DECADE);
    let start = FINE as u64 * 10u64.pow(decade as u32);
    Some(start + (within as u64 + 1) * (start / 10))
}

/// One shard's residence histogram, written by that shard only.
#[derive(Debug)]
pub struct ResidenceHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for ResidenceHistogram {
    fn default() -> Self {
        ResidenceHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl ResidenceHistogram {
    /// Records a datagram received at `rx_ns` and done at `done_ns` (both ns since the
    /// epoch). A receive time after `done_ns` (the wall clock stepped back) counts as 0.
    /// Only the owning shard calls this.
    #[inline]
    pub fn record(&self, rx_ns: u64, done_ns: u64) {
        let ns = done_ns.saturating_sub(rx_ns);
        let bucket = &self.buckets[bucket_of(ns / 1000)];
        bucket.store(bucket.load(Relaxed).wrapping_add(1), Relaxed);
        self.sum_ns
            .store(self.sum_ns.load(Relaxed).wrapping_add(ns), Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> Residence {
        Residence {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

/// A residence histogram read out: counts per bucket (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Residence {
    counts: Vec<u64>,
    sum_ns: u64,
}

impl Default for Residence {
    fn default() -> Self {
        Residence {
            counts: vec![0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Residence {
    /// Adds `other`'s counts into `self`.
    pub fn add(&mut self, other: &Residence) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }

    /// Total residence of the datagrams recorded, ns.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Datagrams recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Datagrams whose residence was below `us` microseconds, where `us` is a bucket
    /// edge (exactly; for any other value, the count below the edge of its bucket).
    pub fn below_us(&self, us: u64) -> u64 {
        self.counts[..bucket_of(us)].iter().sum()
    }

    /// The `q`-quantile (0 < q ≤ 1) as the upper edge of its bucket, µs: at least a
    /// fraction `q` of the datagrams stayed less than that. `None` when nothing was
    /// recorded; `Some(u64::MAX)` when the quantile falls in the overflow bucket (≥ 1 s).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(upper_edge_us(bucket).unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    /// One line: count and p50/p99/p99.9/max bucket edges.
    pub fn summary(&self) -> String {
        let show = |q| match self.quantile_us(q) {
            Some(u64::MAX) => ">=1s".to_string(),
            Some(us) => format!("<{us}us"),
            None => "-".to_string(),
        };
        format!(
            "residence over {} datagrams: p50 {} p99 {} p99.9 {} max {}",
            self.count(),
            show(0.5),
            show(0.99),
            show(0.999),
            show(1.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        // Every bucket's upper edge is the next bucket's first value.
        let mut expected_start = 0;
        for bucket in 0..BUCKETS - 1 {
            assert_eq!(bucket_of(expected_start), bucket, "start {expected_start}");
            let edge = upper_edge_us(bucket).unwrap();
            assert!(edge > expected_start);
            assert_eq!(bucket_of(edge - 1), bucket, "edge {edge}");
            expected_start = edge;
        }
        assert_eq!(expected_start, OVERFLOW_US);
        assert_eq!(bucket_of(OVERFLOW_US), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX / 1000), BUCKETS - 1);
        assert_eq!(upper_edge_us(BUCKETS - 1), None);
        // Relative width never above 10%.
        for bucket in FINE..BUCKETS - 1 {
            let lo = upper_edge_us(bucket - 1).unwrap();
            let hi = upper_edge_us(bucket).unwrap();
            assert!((hi - lo) * 10 <= lo, "{lo}..{hi}");
        }
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let h = ResidenceHistogram::default();
        assert_eq!(h.read().quantile_us(0.5), None);
        let base = 1_700_000_000_000_000_000u64;
        // 990 datagrams at 7.5 µs, 9 at 42 µs, 1 at 2.5 ms.
        for _ in 0..990 {
            h.record(base, base + 7_500);
        }
        for _ in 0..9 {
            h.record(base, base + 42_000);
        }
        h.record(base, base + 2_500_000);
        let r = h.read();
        assert_eq!(r.count(), 1000);
        assert_eq!(r.quantile_us(0.5), Some(8));
        assert_eq!(r.quantile_us(0.99), Some(8));
        assert_eq!(r.quantile_us(0.995), Some(43));
        assert_eq!(r.quantile_us(0.999), Some(43));
        assert_eq!(r.quantile_us(1.0), Some(2_600));
        assert_eq!(r.below_us(8), 990);
        assert_eq!(r.below_us(50), 999);
        // A clock stepped back counts as 0, not as a huge residence.
        h.record(base + 5, base);
        assert_eq!(h.read().below_us(1), 1);
        let mut sum = r.clone();
        sum.add(&h.read());
        assert_eq!(sum.count(), 2001);
        assert_eq!(r.sum_ns(), 990 * 7_500 + 9 * 42_000 + 2_500_000);
        assert_eq!(sum.sum_ns(), 2 * r.sum_ns());
        assert!(r.summary().contains("p99 <8us"), "{}", r.summary());
    }
}

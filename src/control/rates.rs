//! Per-backend rates (new calls and in-dialog requests per second), from the shards' totals
//! sampled by the control thread about once per [`RATE_WINDOW`].

use crate::shard::BackendCounters;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often the totals are sampled: the rates cover the last such window.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One backend's rates over the last window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BackendRates {
    /// Dialog-creating requests sent to it per second.
    pub new_calls_per_s: f64,
    /// In-dialog requests sent to it per second.
    pub in_dialog_per_s: f64,
}

/// The last sample of the totals and the rates measured up to it.
#[derive(Debug)]
pub struct Rates {
    sampled_at: Instant,
    totals: HashMap<SocketAddr, BackendCounters>,
    rates: HashMap<SocketAddr, BackendRates>,
}

impl Rates {
    /// Starts with `totals` at `now` and no rates yet (all zero).
    pub fn new(now: Instant, totals: HashMap<SocketAddr, BackendCounters>) -> Rates {
        Rates {
            sampled_at: now,
            totals,
            rates: HashMap::new(),
        }
    }

    /// True once a window has passed since the last sample.
    pub fn due(&self, now: Instant) -> bool {
        now.duration_since(self.sampled_at) >= RATE_WINDOW
    }

    /// Takes a new sample: the rates become the change since the last one over the time
    /// between them. A backend new since then counts from zero. Returns the backends the
    /// stateful mode gave up on since the last sample (their failure count grew).
    pub fn sample(
        &mut self,
        now: Instant,
        totals: HashMap<SocketAddr, BackendCounters>,
    ) -> Vec<SocketAddr> {
        let seconds = now.duration_since(self.sampled_at).as_secs_f64();
        if seconds <= 0.0 {
            return Vec::new();
        }
        let failing = totals
            .iter()
            .filter(|(addr, now)| {
                let before = self.totals.get(addr).map_or(0, |b| b.failures);
                now.failures > before
            })
            .map(|(addr, _)| *addr)
            .collect();
        let per_second = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
        self.rates = totals
            .iter()
            .map(|(addr, now)| {
                let before = self.totals.get(addr).copied().unwrap_or_default();
                let rates = BackendRates {
                    new_calls_per_s: per_second(now.new_calls, before.new_calls),
                    in_dialog_per_s: per_second(now.in_dialog, before.in_dialog),
                };
                (*addr, rates)
            })
            .collect();
        self.totals = totals;
        self.sampled_at = now;
        failing
    }

    /// `addr`'s rates over the last window (zero before the first window ends).
    pub fn of(&self, addr: SocketAddr) -> BackendRates {
        self.rates.get(&addr).copied().unwrap_or_default()
    }

    /// The time until the next sample is due.
    pub fn until_due(&self, now: Instant) -> Duration {
        RATE_WINDOW.saturating_sub(now.duration_since(self.sampled_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(
        addr: SocketAddr,
        new_calls: u64,
        in_dialog: u64,
    ) -> HashMap<SocketAddr, BackendCounters> {
        let counters = BackendCounters {
            new_calls,
            in_dialog,
            ..BackendCounters::default()
        };
        HashMap::from([(addr, counters)])
    }

    #[test]
    fn rates_are_the_change_over_the_window() {
        let addr: SocketAddr = "10.0.0.20:5060".parse().unwrap();
        let start = Instant::now();
        let mut rates = Rates::new(start, totals(addr, 100, 50));
        assert!(!rates.due(start));
        assert_eq!(rates.of(addr), BackendRates::default());
        let later = start + Duration::from_secs(2);
        assert!(rates.due(later));
        rates.sample(later, totals(addr, 300, 70));
        assert_eq!(
            rates.of(addr),
            BackendRates {
                new_calls_per_s: 100.0,
                in_dialog_per_s: 10.0
            }
        );
        // Nothing more sent: both fall to zero.
        let idle = later + Duration::from_secs(1);
        rates.sample(idle, totals(addr, 300, 70));
        assert_eq!(rates.of(addr), BackendRates::default());
    }
}

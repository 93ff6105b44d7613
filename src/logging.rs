//! Logs: `tracing` events with structured fields, to stderr as text or JSON lines, filtered by
//! level; and a per-reason budget so that a flood of bad packets cannot fill the disk.

use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// Environment variable that overrides `--log-level` (a `tracing` filter directive).
pub const LOG_ENV: &str = "SIPSHARD_LOG";

/// Installs the global subscriber: `SIPSHARD_LOG` if set, else `level`. A second call (tests
/// starting several balancers in one process) keeps the first subscriber.
pub fn init(level: &str, json: bool) {
    let filter = EnvFilter::try_from_env(LOG_ENV)
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_thread_names(true);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A budget of `burst` events per `window` for each of `N` reasons. Events over budget are
/// counted, and the count is handed to the next event let through, which reports it.
#[derive(Clone, Debug)]
pub struct LogLimiter<const N: usize> {
    window: Duration,
    burst: u32,
    slots: [Slot; N],
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl<const N: usize> LogLimiter<N> {
    /// At most `burst` events per `window` per reason.
    pub fn new(burst: u32, window: Duration) -> Self {
        LogLimiter {
            window,
            burst,
            slots: [Slot::default(); N],
        }
    }

    /// Whether an event for `reason` may be logged at `now`: `Some(n)` yes, `n` events of
    /// this reason having been suppressed since the last one logged; `None` no (counted).
    pub fn admit(&mut self, reason: usize, now: Instant) -> Option<u64> {
        let slot = self.slots.get_mut(reason)?;
        let fresh = slot
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.window);
        if fresh {
            slot.window_start = Some(now);
            slot.used = 0;
        }
        if slot.used < self.burst {
            slot.used += 1;
            Some(std::mem::take(&mut slot.suppressed))
        } else {
            slot.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_reason_and_reports_what_it_suppressed() {
        let mut limiter = LogLimiter::<2>::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let admitted: Vec<_> = (0..10).map(|_| limiter.admit(0, t0)).collect();
        assert_eq!(&admitted[..3], &[Some(0), Some(0), Some(0)]);
        assert!(admitted[3..].iter().all(Option::is_none));
        // Another reason has its own budget.
        assert_eq!(limiter.admit(1, t0), Some(0));
        // A new window lets events through again and reports the 7 suppressed ones.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.admit(0, later), Some(7));
        assert_eq!(limiter.admit(0, later), Some(0));
        // Out-of-range reasons are never logged.
        assert_eq!(limiter.admit(5, t0), None);
    }
}

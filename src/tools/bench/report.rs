//! The bench's final report: totals, rates and latency percentiles, as text or JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles, microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    fn text(&self) -> String {
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {} ms",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// What a bench run did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BenchReport {
    /// `calls` or `messages`.
    pub mode: String,
    /// Target address.
    pub target: String,
    /// Workers.
    pub workers: usize,
    /// Offered rate, per second.
    pub rate: f64,
    /// Seconds from start to end (drain included).
    pub elapsed_s: f64,
    /// Calls or requests started.
    pub offered: u64,
    /// Finished with 2xx.
    pub completed: u64,
    /// Finished with 3xx–6xx.
    pub failed: u64,
    /// Not finished within the timeout.
    pub timed_out: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// Datagrams the local socket could not send.
    pub send_failures: u64,
    /// Completed per second.
    pub completed_per_s: f64,
    /// Datagrams sent + received per second.
    pub msgs_per_s: f64,
    /// Request → final response (messages), or INVITE → 200 (calls, call setup).
    pub latency_us: Percentiles,
    /// INVITE → 200 to the BYE (calls mode).
    pub call_us: Option<Percentiles>,
}

impl BenchReport {
    /// Human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} to {}: {} worker(s), {:.0}/s offered for {:.2} s\n\
             offered {}  completed {}  failed {}  timed out {}  retransmitted {}\n\
             {:.0} completed/s, {:.0} msgs/s ({} sent, {} received, {} not sent)\n",
            self.mode,
            self.target,
            self.workers,
            self.rate,
            self.elapsed_s,
            self.offered,
            self.completed,
            self.failed,
            self.timed_out,
            self.retransmissions,
            self.completed_per_s,
            self.msgs_per_s,
            self.sent,
            self.received,
            self.send_failures
        );
        let first = if self.call_us.is_some() {
            "setup (INVITE → 200)"
        } else {
            "latency (request → final response)"
        };
        out.push_str(&format!("{first}: {}\n", self.latency_us.text()));
        if let Some(call) = &self.call_us {
            out.push_str(&format!("call (INVITE → BYE's 200): {}\n", call.text()));
        }
        out
    }

    /// JSON report.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// True if every offered request or call completed.
    pub fn all_completed(&self) -> bool {
        self.offered > 0 && self.completed == self.offered
    }
}

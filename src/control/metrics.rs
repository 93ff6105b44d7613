//! The Prometheus text exposition (format 0.0.4): per-shard traffic and drops, per-backend
//! traffic, state and probe RTT, reloads, build info. Per-shard counters are summed per
//! backend only here, when scraped.

use super::health::State;
use super::status::{BackendStatus, Status};
use crate::proxy::{DropReason, ReplyKind};
use crate::shard::residence::Residence;
use crate::shard::Counters;
use crate::shard::SteeringCounts;
use std::fmt::Write as _;

/// What one scrape shows.
pub struct MetricsView<'a> {
    /// Each shard's counters, by shard index.
    pub shards: &'a [Counters],
    /// Each shard's residence histogram, by shard index (empty when not measured).
    pub residence: &'a [Residence],
    /// Backends and reloads.
    pub status: &'a Status,
    /// What the Call-ID steering programs did (`None`: none runs).
    pub steering: Option<SteeringCounts>,
    /// `--mode stateful`: the transaction layer's series are shown.
    pub stateful: bool,
}

/// A per-shard counter: name, help, and how to read it.
type ShardSeries = (&'static str, &'static str, fn(&Counters) -> u64);

/// The `le` bounds of the residence histogram exposed, µs (each is a bucket edge of
/// [`crate::shard::residence`], so the counts are exact).
const RESIDENCE_LE_US: [u64; 25] = [
    2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1_000, 2_500, 5_000, 10_000,
    25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
];

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One series per backend, `name{backend="ADDR"} VALUE`; a backend without a value is
/// left out.
fn per_backend(
    out: &mut String,
    backends: &[BackendStatus],
    (name, kind): (&str, &str),
    help: &str,
    value: impl Fn(&BackendStatus) -> Option<String>,
) {
    family(out, name, kind, help);
    for b in backends {
        if let Some(v) = value(b) {
            let _ = writeln!(out, "{name}{{backend=\"{}\"}} {v}", b.addr);
        }
    }
}

/// The residence-time histogram, one per shard.
fn residence(out: &mut String, shards: &[Residence]) {
    let name = "sipshard_residence_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from the kernel's receive timestamp of a datagram to the end of the send of its batch.",
    );
    for (k, r) in shards.iter().enumerate() {
        for le in RESIDENCE_LE_US {
            let _ = writeln!(
                out,
                "{name}_bucket{{shard=\"{k}\",le=\"{}\"}} {}",
                le as f64 / 1e6,
                r.below_us(le)
            );
        }
        let count = r.count();
        let _ = writeln!(out, "{name}_bucket{{shard=\"{k}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{shard=\"{k}\"}} {}",
            r.sum_ns() as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{{shard=\"{k}\"}} {count}");
    }
}

/// A per-shard counter split by one more label: `name{shard="K",label="..."} VALUE` for
/// every shard and every (label value, key) in `kinds`.
fn per_shard_by<K: Copy, const N: usize>(
    out: &mut String,
    shards: &[Counters],
    (name, help): (&str, &str),
    label: &str,
    kinds: [(&str, K); N],
    value: impl Fn(&Counters, K) -> u64,
) {
    family(out, name, "counter", help);
    for (k, c) in shards.iter().enumerate() {
        for (label_value, kind) in kinds {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{k}\",{label}=\"{label_value}\"}} {}",
                value(c, kind)
            );
        }
    }
}

/// The transaction layer's series (stateful mode), per shard.
fn relay(out: &mut String, shards: &[Counters]) {
    family(
        out,
        "sipshard_transactions",
        "gauge",
        "Transactions alive in the shard (stateful mode).",
    );
    for (k, c) in shards.iter().enumerate() {
        let _ = writeln!(
            out,
            "sipshard_transactions{{shard=\"{k}\"}} {}",
            c.relay.transactions
        );
    }
    let plain: [ShardSeries; 4] = [
        (
            "sipshard_retransmissions_absorbed_total",
            "Retransmitted requests (and ACKs of our non-2xx finals) answered or absorbed by a transaction, never forwarded.",
            |c| c.relay.absorbed,
        ),
        (
            "sipshard_forks_total",
            "Dialog-creating INVITEs forked to several backends.",
            |c| c.relay.forks,
        ),
        (
            "sipshard_branches_total",
            "Requests sent on a further branch (a fork or a failover).",
            |c| c.relay.branches,
        ),
        (
            "sipshard_transactions_refused_total",
            "New requests answered 503 because the shard's transaction table was full.",
            |c| c.relay.table_full,
        ),
    ];
    for (name, help, get) in plain {
        family(out, name, "counter", help);
        for (k, c) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{k}\"}} {}", get(c));
        }
    }
    per_shard_by(
        out,
        shards,
        (
            "sipshard_failovers_total",
            "Requests moved to the next backend, by cause: no answer within --failover-after-ms, or a failover code.",
        ),
        "cause",
        [("no_answer", false), ("status", true)],
        |c, status| {
            if status {
                c.relay.failovers_status
            } else {
                c.relay.failovers_no_answer
            }
        },
    );
    per_shard_by(
        out,
        shards,
        (
            "sipshard_cancels_total",
            "CANCELs: from clients that cancelled a transaction here, and sent by the balancer to backends.",
        ),
        "direction",
        [("from_client", false), ("to_backend", true)],
        |c, sent| {
            if sent {
                c.relay.cancels_sent
            } else {
                c.relay.client_cancels
            }
        },
    );
    per_shard_by(
        out,
        shards,
        (
            "sipshard_handoffs_total",
            "Client requests that reached a shard other than their call's owner: handed to the owner, refused by its full channel (handled where they arrived), and taken from other shards.",
        ),
        "result",
        [("handed", 0), ("refused", 1), ("taken", 2)],
        |c, which| match which {
            0 => c.relay.handed,
            1 => c.relay.handoff_refused,
            _ => c.relay.taken,
        },
    );
    per_shard_by(
        out,
        shards,
        (
            "sipshard_local_finals_total",
            "Final responses the balancer made itself: 408 when no backend answered in time, other (487 after a CANCEL nobody answered, 500 for a lone 503).",
        ),
        "status",
        [("408", true), ("other", false)],
        |c, timeout| {
            if timeout {
                c.relay.timeouts
            } else {
                c.relay.generated_other
            }
        },
    );
}

/// Renders one scrape.
pub fn render(view: &MetricsView<'_>) -> String {
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "sipshard_build_info",
        "gauge",
        "Version of the running binary.",
    );
    let _ = writeln!(
        out,
        "sipshard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    if let Some(counts) = view.steering {
        family(
            &mut out,
            "sipshard_steering_datagrams_total",
            "counter",
            "Public datagrams the Call-ID steering program saw: placed on the shard that owns their Call-ID, or left to the kernel's hash (no Call-ID found, or its shard's socket gone).",
        );
        for (result, n) in [
            ("classified", counts.classified),
            ("fallback", counts.fallback),
            ("select_failed", counts.select_failed),
        ] {
            let _ = writeln!(
                out,
                "sipshard_steering_datagrams_total{{result=\"{result}\"}} {n}"
            );
        }
    }

    let per_shard: [ShardSeries; 4] = [
        ("sipshard_received_total", "Datagrams received.", |c| {
            c.received
        }),
        (
            "sipshard_sent_total",
            "Datagrams sent (forwarded and stateless replies).",
            |c| c.sent,
        ),
        (
            "sipshard_requests_forwarded_total",
            "Requests forwarded.",
            |c| c.requests_forwarded,
        ),
        (
            "sipshard_responses_forwarded_total",
            "Responses forwarded.",
            |c| c.responses_forwarded,
        ),
    ];
    for (name, help, get) in per_shard {
        family(&mut out, name, "counter", help);
        for (k, c) in view.shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{k}\"}} {}", get(c));
        }
    }
    per_shard_by(
        &mut out,
        view.shards,
        (
            "sipshard_replies_total",
            "Stateless replies sent, by status.",
        ),
        "reply",
        ReplyKind::ALL.map(|k| (k.label(), k)),
        Counters::replied,
    );
    per_shard_by(
        &mut out,
        view.shards,
        ("sipshard_drops_total", "Datagrams dropped, by reason."),
        "reason",
        DropReason::ALL.map(|r| (r.label(), r)),
        Counters::dropped,
    );

    if view.stateful {
        relay(&mut out, view.shards);
    }
    if !view.residence.is_empty() {
        residence(&mut out, view.residence);
    }

    let backends = &view.status.backends;
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_requests_total", "counter"),
        "Requests sent to the backend.",
        |b| Some(b.requests.to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_pinned_requests_total", "counter"),
        "In-dialog requests routed to the backend by the pin of our Route entry.",
        |b| Some(b.pinned_requests.to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_moved_requests_total", "counter"),
        "Requests whose pin named a backend gone or down, sent to this one by the hash.",
        |b| Some(b.moved_requests.to_string()),
    );
    if view.stateful {
        per_backend(
            &mut out,
            backends,
            ("sipshard_backend_failures_total", "counter"),
            "Requests the stateful mode moved away from the backend (silent for \
             --failover-after-ms, or a failover code).",
            |b| Some(b.failures.to_string()),
        );
    }
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_new_calls_total", "counter"),
        "Dialog-creating requests (new calls) sent to the backend.",
        |b| Some(b.new_calls.to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_in_dialog_requests_total", "counter"),
        "In-dialog requests (with a To tag) sent to the backend.",
        |b| Some(b.in_dialog_requests.to_string()),
    );
    family(
        &mut out,
        "sipshard_backend_responses_total",
        "counter",
        "Responses from the backend, by class.",
    );
    for b in backends {
        for (i, n) in b.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "sipshard_backend_responses_total{{backend=\"{}\",class=\"{}xx\"}} {n}",
                b.addr,
                i + 1
            );
        }
    }
    family(
        &mut out,
        "sipshard_backend_state",
        "gauge",
        "1 for the backend's current state.",
    );
    for b in backends {
        for state in State::ALL {
            let _ = writeln!(
                out,
                "sipshard_backend_state{{backend=\"{}\",state=\"{}\"}} {}",
                b.addr,
                state.label(),
                u8::from(b.state == state)
            );
        }
    }
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_up", "gauge"),
        "1 when the backend takes new calls.",
        |b| Some(u8::from(b.state.takes_calls()).to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_drained", "gauge"),
        "1 when an operator drained the backend (no new calls, its dialogs go on).",
        |b| Some(u8::from(b.drained).to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_weight", "gauge"),
        "Configured weight.",
        |b| Some(b.weight.to_string()),
    );
    per_backend(
        &mut out,
        backends,
        ("sipshard_backend_probe_rtt_seconds", "gauge"),
        "Round-trip time of the last answered OPTIONS probe.",
        |b| b.probe_rtt_ms.map(|ms| (ms / 1e3).to_string()),
    );
    family(
        &mut out,
        "sipshard_reloads_total",
        "counter",
        "Configuration reloads, by result.",
    );
    let _ = writeln!(
        out,
        "sipshard_reloads_total{{result=\"ok\"}} {}",
        view.status.reloads
    );
    let _ = writeln!(
        out,
        "sipshard_reloads_total{{result=\"failed\"}} {}",
        view.status.reloads_failed
    );
    family(
        &mut out,
        "sipshard_published_generation",
        "gauge",
        "Number of the last backend set published (0: the one at start).",
    );
    let _ = writeln!(
        out,
        "sipshard_published_generation {}",
        view.status.generation
    );
    family(
        &mut out,
        "sipshard_shard_generation",
        "gauge",
        "Number of the backend set the shard routes with.",
    );
    for (k, g) in view.status.shard_generations.iter().enumerate() {
        let _ = writeln!(out, "sipshard_shard_generation{{shard=\"{k}\"}} {g}");
    }
    family(&mut out, "sipshard_workers", "gauge", "Worker shards.");
    let _ = writeln!(out, "sipshard_workers {}", view.status.workers);
    out
}

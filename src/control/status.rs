//! What `status` reports (the control API's answer, `sipshard ctl status`, the metrics'
//! backend series): typed, serialised with serde.

use super::health::State;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One backend as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Address.
    pub addr: SocketAddr,
    /// Configured weight.
    pub weight: u32,
    /// Its health.
    pub state: State,
    /// Drained by an operator (`ctl drain`): no new calls, its dialogs go on.
    #[serde(default)]
    pub drained: bool,
    /// Whether OPTIONS probes are sent to it.
    pub probed: bool,
    /// Round-trip time of the last answered probe, in milliseconds.
    pub probe_rtt_ms: Option<f64>,
    /// Requests sent to it (all shards).
    pub requests: u64,
    /// Of those, in-dialog requests routed to it by our Route entry's pin (a drained
    /// backend is idle when these stop).
    #[serde(default)]
    pub pinned_requests: u64,
    /// Of those, requests whose pin named a backend gone or down, sent here instead.
    #[serde(default)]
    pub moved_requests: u64,
    /// Of those, dialog-creating requests: new calls.
    #[serde(default)]
    pub new_calls: u64,
    /// Of those, requests inside a dialog (ACK, BYE, re-INVITE ...).
    #[serde(default)]
    pub in_dialog_requests: u64,
    /// New calls per second over the last second.
    #[serde(default)]
    pub new_calls_per_s: f64,
    /// In-dialog requests per second over the last second (a drained backend is idle once
    /// this stays at 0).
    #[serde(default)]
    pub in_dialog_per_s: f64,
    /// Responses from it by class (1xx..6xx).
    pub responses: [u64; 6],
    /// Requests the stateful mode moved away from it (it stayed silent, or answered a
    /// failover code).
    #[serde(default)]
    pub failures: u64,
}

/// What `sipshard ctl status` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Every configured backend.
    pub backends: Vec<BackendStatus>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Rejected reloads since start.
    pub reloads_failed: u64,
    /// Worker shards.
    pub workers: usize,
    /// The last backend set published (0: the one at start).
    pub generation: u64,
    /// The set each shard routes with (equal to `generation` once all have picked it up).
    pub shard_generations: Vec<u64>,
    /// `--mode stateful`.
    #[serde(default)]
    pub stateful: bool,
    /// Transactions alive in each shard (stateful mode; empty otherwise).
    #[serde(default)]
    pub transactions: Vec<u64>,
}

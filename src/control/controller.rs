//! The control thread: it owns the configuration and every backend's health, turns probe
//! outcomes, reloads and operator commands into new backend sets, and publishes them to the
//! shards. Everything else (signal handler, HTTP endpoints) talks to it over a channel.

use super::health::{Health, State};
use super::metrics::{self, MetricsView};
use super::probe::{ProbeOutcome, ProbeReport, ProbeTarget, Prober};
use super::rates::Rates;
use super::status::{BackendStatus, Status};
use crate::balance::Backend;
use crate::config::{restart_only_changes, BalanceConfig, ConfigError, Loader, ProbePolicy};
use crate::shard::Publisher;
use crate::shard::{BackendCounters, ShardStats, SteeringPrograms};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a caller waits for the control thread's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control thread did not carry out a command.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The configuration read for a reload was refused; the running one is kept.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address is not one of the configured backends.
    #[error("{0} is not a configured backend")]
    UnknownBackend(SocketAddr),
    /// The control thread did not answer in time (or has stopped).
    #[error("the control thread did not answer")]
    NoAnswer,
}

/// What an operator does to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Out of rotation at once: new calls and its dialogs' requests go to the others.
    Disable,
    /// Drained: no new calls, while the requests of its established dialogs (pinned by our
    /// Record-Route entry) keep reaching it, until the operator removes it.
    Drain,
    /// Back in rotation: undoes a disable or a drain; it takes the state its probes say.
    Enable,
}

/// A request to the control thread.
enum Command {
    Probe(ProbeReport),
    Reload(mpsc::Sender<Result<String, ControlError>>),
    Operate(
        SocketAddr,
        Operation,
        mpsc::Sender<Result<String, ControlError>>,
    ),
    Status(mpsc::Sender<Status>),
    Metrics(mpsc::Sender<String>),
    Stop,
}

/// A handle on the control thread, for signal handlers and HTTP endpoints. Cheap to clone.
#[derive(Clone)]
pub struct ControlHandle {
    commands: mpsc::Sender<Command>,
}

impl ControlHandle {
    fn ask<T>(&self, make: impl FnOnce(mpsc::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.commands.send(make(tx)).ok()?;
        rx.recv_timeout(ANSWER_TIMEOUT).ok()
    }

    /// Re-reads the configuration; `Ok` says what changed, `Err` why the file was refused (the
    /// running configuration is kept).
    pub fn reload(&self) -> Result<String, ControlError> {
        self.ask(Command::Reload)
            .unwrap_or(Err(ControlError::NoAnswer))
    }

    /// Enables (`true`) or disables an operator's hold on a backend.
    pub fn set_enabled(&self, addr: SocketAddr, enabled: bool) -> Result<String, ControlError> {
        let operation = if enabled {
            Operation::Enable
        } else {
            Operation::Disable
        };
        self.operate(addr, operation)
    }

    /// Carries out an operator's `operation` on a backend; `Ok` says its state now.
    pub fn operate(&self, addr: SocketAddr, operation: Operation) -> Result<String, ControlError> {
        self.ask(|tx| Command::Operate(addr, operation, tx))
            .unwrap_or(Err(ControlError::NoAnswer))
    }

    /// Backends, states and counters.
    pub fn status(&self) -> Option<Status> {
        self.ask(Command::Status)
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> Option<String> {
        self.ask(Command::Metrics)
    }
}

/// The running control thread.
pub struct Controller {
    handle: ControlHandle,
    thread: Option<JoinHandle<()>>,
}

impl Controller {
    /// Starts the control thread for a running plane: `config` is what the plane started
    /// with, `loader` what a reload reads.
    pub fn start(
        loader: Loader,
        config: BalanceConfig,
        publisher: Publisher,
        shards: Vec<Arc<ShardStats>>,
        steering: SteeringPrograms,
    ) -> std::io::Result<Controller> {
        let (tx, rx) = mpsc::channel();
        let reports = tx.clone();
        let prober = Prober::start(
            SocketAddr::new(config.internal_ip, 0),
            probe_targets(&config),
            move |report| {
                let _ = reports.send(Command::Probe(report));
            },
        )?;
        tracing::info!(from = %prober.local_addr(), "probing backends");
        let publisher_totals = publisher.backend_totals();
        let mut state = ControlState {
            loader,
            health: config
                .backends
                .iter()
                .map(|b| (b.addr, Health::default()))
                .collect(),
            config,
            publisher,
            shards,
            prober,
            reloads: 0,
            reloads_failed: 0,
            drained: HashSet::new(),
            published: Vec::new(),
            rates: Rates::new(Instant::now(), publisher_totals),
            steering,
        };
        // The plane started with every backend up: that set is published already.
        state.published = state.effective();
        let thread = std::thread::Builder::new()
            .name("sipshard-control".into())
            .spawn(move || loop {
                let wait = state.rates.until_due(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(command) => {
                        if !state.handle(command) {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                state.sample_rates();
            })?;
        Ok(Controller {
            handle: ControlHandle { commands: tx },
            thread: Some(thread),
        })
    }

    /// A handle for signal handlers and endpoints.
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.handle.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn probe_targets(config: &BalanceConfig) -> Vec<ProbeTarget> {
    config
        .backends
        .iter()
        .map(|b| ProbeTarget {
            addr: b.addr,
            policy: b.probe.clone(),
        })
        .collect()
}

struct ControlState {
    loader: Loader,
    config: BalanceConfig,
    health: HashMap<SocketAddr, Health>,
    publisher: Publisher,
    shards: Vec<Arc<ShardStats>>,
    prober: Prober,
    reloads: u64,
    reloads_failed: u64,
    /// Backends an operator drained (`ctl drain`), until enabled again or removed.
    drained: HashSet<SocketAddr>,
    /// The backend set last published (weights after health).
    published: Vec<Backend>,
    /// Per-backend rates, sampled about once a second.
    rates: Rates,
    /// The Call-ID steering programs, for their counts.
    steering: SteeringPrograms,
}

impl ControlState {
    /// Handles one command; false to stop.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Probe(report) => self.on_probe(report),
            Command::Reload(reply) => {
                let _ = reply.send(self.reload());
            }
            Command::Operate(addr, operation, reply) => {
                let _ = reply.send(self.operate(addr, operation));
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Metrics(reply) => {
                let _ = reply.send(self.metrics());
            }
            Command::Stop => return false,
        }
        true
    }

    /// Samples the traffic totals for the rates when a window has passed. A probed backend
    /// the stateful mode gave up on during the window (silent past `--failover-after-ms`,
    /// or a failover code) counts as one failed probe: live traffic takes it down sooner
    /// than its probes alone would.
    fn sample_rates(&mut self) {
        let now = Instant::now();
        if !self.rates.due(now) {
            return;
        }
        for addr in self.rates.sample(now, self.publisher.backend_totals()) {
            let Some(policy) = self.policy_of(addr).cloned() else {
                continue;
            };
            if policy.interval.is_zero() {
                // Not probed: always up, as configured.
                continue;
            }
            let Some(health) = self.health.get_mut(&addr) else {
                continue;
            };
            let before = health.state();
            if let Some(after) = health.on_timeout(&policy) {
                let (from, to) = (before.label(), after.label());
                tracing::warn!(backend = %addr, from, to, "backend failed live requests");
                self.publish();
            }
        }
    }

    /// The backends with the weights health allows, in configuration order.
    fn effective(&self) -> Vec<Backend> {
        self.config
            .backends
            .iter()
            .map(|b| {
                let up = self
                    .health
                    .get(&b.addr)
                    .is_none_or(|h| h.state().takes_calls());
                let mut backend = b.backend(up);
                if self.drained.contains(&b.addr) {
                    backend.weight = 0;
                }
                backend
            })
            .collect()
    }

    /// Publishes the effective set when it differs from the last one published.
    fn publish(&mut self) {
        if self.effective() != self.published {
            self.publish_now();
        }
    }

    /// Builds and publishes the effective set, even if unchanged (a reload always installs a
    /// fresh table in every shard).
    fn publish_now(&mut self) {
        let backends = self.effective();
        match self.publisher.publish(&backends) {
            Ok(()) => self.published = backends,
            // The configuration was validated, so the table builds; keep the old set if not.
            Err(e) => tracing::error!(error = %e, "cannot build the backend table"),
        }
    }

    fn policy_of(&self, addr: SocketAddr) -> Option<&ProbePolicy> {
        let backend = self.config.backends.iter().find(|b| b.addr == addr)?;
        Some(&backend.probe)
    }

    fn on_probe(&mut self, report: ProbeReport) {
        let Some(policy) = self.policy_of(report.addr).cloned() else {
            return; // Removed by a reload since the probe was sent.
        };
        let Some(health) = self.health.get_mut(&report.addr) else {
            return;
        };
        let before = health.state();
        let changed = match report.outcome {
            ProbeOutcome::Reply { code, rtt } => health.on_reply(code, rtt, &policy),
            ProbeOutcome::Timeout => health.on_timeout(&policy),
        };
        if let Some(after) = changed {
            let (from, to) = (before.label(), after.label());
            match after {
                State::Down => {
                    tracing::warn!(backend = %report.addr, from, to, outcome = ?report.outcome, "backend down")
                }
                _ => {
                    tracing::info!(backend = %report.addr, from, to, outcome = ?report.outcome, "backend state changed")
                }
            }
            self.publish();
        }
    }

    fn operate(&mut self, addr: SocketAddr, operation: Operation) -> Result<String, ControlError> {
        let health = self
            .health
            .get_mut(&addr)
            .ok_or(ControlError::UnknownBackend(addr))?;
        match operation {
            Operation::Disable => {
                health.disable();
            }
            Operation::Enable => {
                health.enable();
                self.drained.remove(&addr);
            }
            Operation::Drain => {
                self.drained.insert(addr);
            }
        }
        let state = health.state().label();
        let drained = self.drained.contains(&addr);
        tracing::info!(backend = %addr, state, drained, "operator: {operation:?}");
        // Published only when the set the shards route with changes.
        self.publish();
        Ok(format!(
            "{addr}: {state}{}",
            if drained { ", drained" } else { "" }
        ))
    }

    fn reload(&mut self) -> Result<String, ControlError> {
        let new = match self.loader.load() {
            Ok(c) => c,
            Err(e) => {
                self.reloads_failed += 1;
                tracing::warn!(error = %e, "reload refused; the running configuration is kept");
                return Err(e.into());
            }
        };
        let notes: Vec<String> = restart_only_changes(&self.config, &new)
            .into_iter()
            .map(|key| format!("{key} changed: takes effect at the next restart"))
            .collect();
        let old = &self.config;
        let added = new
            .backends
            .iter()
            .filter(|b| !self.health.contains_key(&b.addr))
            .count();
        let removed = old
            .backends
            .iter()
            .filter(|b| !new.backends.iter().any(|n| n.addr == b.addr))
            .count();
        self.health
            .retain(|addr, _| new.backends.iter().any(|b| b.addr == *addr));
        self.drained
            .retain(|addr| new.backends.iter().any(|b| b.addr == *addr));
        for b in &new.backends {
            self.health.entry(b.addr).or_default();
        }
        self.config.backends = new.backends;
        self.prober.set_targets(probe_targets(&self.config));
        self.publish_now();
        self.reloads += 1;
        let summary = format!(
            "reloaded: {} backend(s), {added} added, {removed} removed{}{}",
            self.config.backends.len(),
            if notes.is_empty() { "" } else { "; " },
            notes.join("; ")
        );
        tracing::info!(
            backends = self.config.backends.len(),
            added,
            removed,
            "{summary}"
        );
        Ok(summary)
    }

    fn status(&self) -> Status {
        let totals = self.publisher.backend_totals();
        Status {
            backends: self
                .config
                .backends
                .iter()
                .map(|b| {
                    let health = self.health.get(&b.addr).cloned().unwrap_or_default();
                    let counters = totals
                        .get(&b.addr)
                        .copied()
                        .unwrap_or(BackendCounters::default());
                    let rates = self.rates.of(b.addr);
                    BackendStatus {
                        addr: b.addr,
                        weight: b.weight,
                        state: health.state(),
                        probed: !b.probe.interval.is_zero(),
                        probe_rtt_ms: health.last_rtt().map(|d| d.as_secs_f64() * 1e3),
                        requests: counters.requests,
                        drained: self.drained.contains(&b.addr),
                        pinned_requests: counters.pinned,
                        moved_requests: counters.moved,
                        new_calls: counters.new_calls,
                        in_dialog_requests: counters.in_dialog,
                        new_calls_per_s: rates.new_calls_per_s,
                        in_dialog_per_s: rates.in_dialog_per_s,
                        responses: counters.responses,
                        failures: counters.failures,
                    }
                })
                .collect(),
            reloads: self.reloads,
            reloads_failed: self.reloads_failed,
            workers: self.shards.len(),
            generation: self.publisher.generation(),
            shard_generations: self.shards.iter().map(|s| s.generation()).collect(),
            stateful: self.config.stateful.is_some(),
            transactions: match self.config.stateful {
                Some(_) => self
                    .shards
                    .iter()
                    .map(|s| s.read().relay.transactions)
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    fn metrics(&self) -> String {
        let shards: Vec<_> = self.shards.iter().map(|s| s.read()).collect();
        let residence: Vec<_> = if self.config.residence_time {
            self.shards.iter().map(|s| s.residence.read()).collect()
        } else {
            Vec::new()
        };
        metrics::render(&MetricsView {
            shards: &shards,
            residence: &residence,
            status: &self.status(),
            steering: self.steering.counts(),
            stateful: self.config.stateful.is_some(),
        })
    }
}

//! `sipshard balance`: validated config → data plane, control thread and endpoints → stop on
//! SIGINT/SIGTERM, reload on SIGHUP.

use crate::config::{BalanceArgs, BalanceConfig, Loader, StatefulOptions};
use crate::control::{ControlHandle, Controller, Endpoints, HttpServer};
use crate::logging;
use crate::proxy::txn::server::Timers;
use crate::proxy::txn::RelayConfig;
use crate::proxy::{DropReason, Mode, ReplyKind};
use crate::shard::{self, Counters, Plane, PlaneConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The data plane's settings from the validated configuration.
pub fn plane_config(config: &BalanceConfig) -> PlaneConfig {
    PlaneConfig {
        listen: config.listen.clone(),
        advertise: Some(config.advertise),
        internal_ip: config.internal_ip,
        internal_base_port: config.internal_base_port,
        backends: config.backends.iter().map(|b| b.backend(true)).collect(),
        workers: config.workers,
        pin: true,
        secret: config.secret.expose().to_vec(),
        retry_after: config.retry_after,
        table_size: config.table_size,
        residence_time: config.residence_time,
        steering: config.steering,
        busy_poll: config.busy_poll,
        record_route: config.record_route,
        path: config.path,
        mode: Mode::Proxy,
        relay: config.stateful.as_ref().map(relay_config),
    }
}

/// The transaction layer's settings from the stateful options.
pub fn relay_config(options: &StatefulOptions) -> RelayConfig {
    let nanos = |d: std::time::Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64;
    RelayConfig {
        capacity: options.max_transactions,
        timers: Timers {
            t1_ns: nanos(options.t1),
            t2_ns: nanos(options.t2),
            t4_ns: Timers::default().t4_ns,
            linger_ns: Timers::default().linger_ns,
        },
        failover_after_ns: Some(nanos(options.failover_after)).filter(|&n| n > 0),
        max_attempts: options.max_attempts,
        failover_codes: options.failover_codes.iter().copied().take(8).collect(),
        fork: options.fork,
        // The plane sets its own (`--retry-after`).
        retry_after: RelayConfig::default().retry_after,
    }
}

/// Why a balancer did not start.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    /// The data plane did not start.
    #[error(transparent)]
    Plane(#[from] shard::StartError),
    /// The control thread did not start.
    #[error("cannot start the control thread: {0}")]
    Control(std::io::Error),
    /// An HTTP endpoint could not be served.
    #[error("cannot serve {what} on {addr}: {source}")]
    Serve {
        /// `metrics` or `the control API`.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running balancer: data plane, control thread (probes, reload) and HTTP endpoints.
pub struct Balancer {
    plane: Plane,
    services: Services,
}

impl Balancer {
    /// Starts everything `config` asks for; `args` is what a reload re-reads.
    pub fn start(args: &BalanceArgs, config: &BalanceConfig) -> Result<Balancer, BalancerError> {
        Balancer::start_as(Mode::Proxy, args, config)
    }

    /// [`Balancer::start`] with the shards in `mode`: a proxy (`balance`) or a redirect
    /// server (`redirect`), with the same probes, reloads, metrics and control.
    pub fn start_as(
        mode: Mode,
        args: &BalanceArgs,
        config: &BalanceConfig,
    ) -> Result<Balancer, BalancerError> {
        let plane = shard::start(&PlaneConfig {
            mode,
            ..plane_config(config)
        })?;
        match Services::start(args, config, &plane) {
            Ok(services) => Ok(Balancer { plane, services }),
            Err(e) => {
                plane.stop();
                Err(e)
            }
        }
    }

    /// The bound public addresses.
    pub fn public_addrs(&self) -> &[SocketAddr] {
        self.plane.public_addrs()
    }

    /// The bound internal addresses.
    pub fn internal_addrs(&self) -> &[SocketAddr] {
        self.plane.internal_addrs()
    }

    /// The metrics endpoint's address, if serving.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.services.metrics.as_ref().map(HttpServer::addr)
    }

    /// The control endpoint's address, if serving.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.services.control.as_ref().map(HttpServer::addr)
    }

    /// A handle on the control thread (reload, status, metrics).
    pub fn control(&self) -> ControlHandle {
        self.services.controller.handle()
    }

    /// The flag that stops the data plane (set by SIGINT/SIGTERM).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.plane.stop_flag()
    }

    /// Stops everything; returns the counters summed over the shards.
    pub fn stop(self) -> Counters {
        self.plane.stop_flag().store(true, Ordering::Release);
        self.wait()
    }

    /// Waits until the stop flag is set and the shards have sent what their last batch
    /// produced; then stops the endpoints and the control thread.
    pub fn wait(self) -> Counters {
        let total = shard::total(&self.plane.wait_each());
        drop(self.services);
        total
    }
}

/// Runs the balancer until SIGINT or SIGTERM; SIGHUP reloads the configuration.
pub fn run(args: &BalanceArgs) -> ExitCode {
    run_as(Mode::Proxy, args)
}

/// The subcommand that runs shards in `mode`.
fn command(mode: Mode) -> &'static str {
    match mode {
        Mode::Proxy => "sipshard balance",
        Mode::Redirect => "sipshard redirect",
    }
}

/// [`run`] with the shards in `mode` (`sipshard redirect` runs [`Mode::Redirect`]).
pub fn run_as(mode: Mode, args: &BalanceArgs) -> ExitCode {
    let name = command(mode);
    let config = match BalanceConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log_level, config.log_json);
    if config.secret.is_random() {
        tracing::warn!("no --secret given: using a random one (instances of one deployment must share a secret)");
    }
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let balancer = match Balancer::start_as(mode, args, &config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signal_handle = signals.handle();
    let (stop, control) = (balancer.stop_flag(), balancer.control());
    let signal_thread = std::thread::Builder::new()
        .name("sipshard-signals".into())
        .spawn(move || on_signals(signals, &stop, &control));
    tracing::info!(
        workers = config.workers,
        public = %join(balancer.public_addrs()),
        internal = %join(balancer.internal_addrs()),
        backends = config.backends.len(),
        metrics = %balancer.metrics_addr().map(|a| a.to_string()).unwrap_or_default(),
        control = %balancer.control_addr().map(|a| a.to_string()).unwrap_or_default(),
        "{name} started"
    );
    let shard_stats = balancer.plane.shard_stats();
    let total = balancer.wait();
    signal_handle.close();
    if let Ok(thread) = signal_thread {
        let _ = thread.join();
    }
    let residence = if config.residence_time {
        format!("; {}", shard::residence_total(&shard_stats).summary())
    } else {
        String::new()
    };
    tracing::info!("stopped; {}{residence}", summary(&total));
    ExitCode::SUCCESS
}

/// The control thread and the HTTP endpoints, stopped in order when dropped.
struct Services {
    // Fields drop in order: endpoints first, then the controller they talk to.
    metrics: Option<HttpServer>,
    control: Option<HttpServer>,
    controller: Controller,
}

impl Services {
    fn start(
        args: &BalanceArgs,
        config: &BalanceConfig,
        plane: &Plane,
    ) -> Result<Services, BalancerError> {
        let controller = Controller::start(
            Loader::new(args.clone()),
            config.clone(),
            plane.publisher(),
            plane.shard_stats(),
            plane.steering_programs(),
        )
        .map_err(BalancerError::Control)?;
        let serve = |addr: Option<SocketAddr>, endpoints, what| {
            addr.map(|addr| {
                HttpServer::start(addr, endpoints, controller.handle())
                    .map_err(|source| BalancerError::Serve { what, addr, source })
            })
            .transpose()
        };
        Ok(Services {
            metrics: serve(config.metrics, Endpoints::Metrics, "metrics")?,
            control: serve(config.control, Endpoints::Control, "the control API")?,
            controller,
        })
    }
}

/// SIGHUP reloads; SIGINT/SIGTERM set the stop flag and end the loop.
fn on_signals(mut signals: Signals, stop: &AtomicBool, control: &ControlHandle) {
    for signal in signals.forever() {
        match signal {
            SIGHUP => match control.reload() {
                Ok(summary) => tracing::info!("SIGHUP: {summary}"),
                Err(reason) => {
                    tracing::warn!("SIGHUP: reload refused, configuration kept: {reason}")
                }
            },
            _ => {
                tracing::info!(signal, "stopping");
                stop.store(true, Ordering::Release);
                return;
            }
        }
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line of totals: forwarded, replies, drops by reason.
pub fn summary(c: &shard::Counters) -> String {
    let replies: Vec<String> = ReplyKind::ALL
        .iter()
        .filter(|k| c.replied(**k) > 0)
        .map(|k| format!("{}={}", k.label(), c.replied(*k)))
        .collect();
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| c.dropped(**r) > 0)
        .map(|r| format!("{}={}", r.label(), c.dropped(*r)))
        .collect();
    format!(
        "received {}, sent {}, requests forwarded {}, responses forwarded {}, replies [{}], drops [{}]",
        c.received,
        c.sent,
        c.requests_forwarded,
        c.responses_forwarded,
        replies.join(" "),
        drops.join(" ")
    )
}

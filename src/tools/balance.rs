//! `sipshard balance`: validated config → data plane, control thread and endpoints → stop on
//! SIGINT/SIGTERM, reload on SIGHUP.

use crate::balance::backends::Backend;
use crate::config::{BalanceArgs, BalanceConfig};
use crate::control::{ControlHandle, Controller, Endpoints, HttpServer};
use crate::logging;
use crate::shard::{self, DropReason, Plane, PlaneConfig, ReplyKind};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// The data plane's settings from the validated configuration.
pub fn plane_config(config: &BalanceConfig) -> PlaneConfig {
    PlaneConfig {
        listen: config.listen.clone(),
        advertise: Some(config.advertise),
        internal_ip: config.internal_ip,
        internal_base_port: config.internal_base_port,
        backends: config
            .backends
            .iter()
            .map(|b| Backend {
                addr: b.addr,
                weight: b.weight,
            })
            .collect(),
        workers: config.workers,
        pin: true,
        secret: config.secret.clone(),
        retry_after: config.retry_after,
        table_size: config.table_size,
    }
}

/// Runs the balancer until SIGINT or SIGTERM: data plane, control thread (probes, reload),
/// metrics and control endpoints; SIGHUP reloads the configuration.
pub fn run(args: &BalanceArgs) -> ExitCode {
    let config = match BalanceConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sipshard balance: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log_level, config.log_json);
    if config.secret_is_random {
        tracing::warn!("no --secret given: using a random one (instances of one deployment must share a secret)");
    }
    let plane = match shard::start(&plane_config(&config)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sipshard balance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = plane.stop_flag();
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sipshard balance: cannot handle signals: {e}");
            plane.stop();
            return ExitCode::FAILURE;
        }
    };
    let signal_handle = signals.handle();
    let services = match Services::start(args, &config, &plane) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sipshard balance: {e}");
            plane.stop();
            return ExitCode::FAILURE;
        }
    };
    let control = services.controller.handle();
    let signal_thread = std::thread::Builder::new()
        .name("sipshard-signals".into())
        .spawn(move || on_signals(signals, &stop, &control));
    tracing::info!(
        workers = config.workers,
        public = %join(plane.public_addrs()),
        internal = %join(plane.internal_addrs()),
        backends = config.backends.len(),
        metrics = %services.metrics.as_ref().map(|s| s.addr().to_string()).unwrap_or_default(),
        control = %services.control.as_ref().map(|s| s.addr().to_string()).unwrap_or_default(),
        "sipshard balance started"
    );
    // Shards stop reading when the flag is set, send what their last batch produced, and
    // exit; the other threads follow.
    let total = shard::total(&plane.wait_each());
    drop(services);
    signal_handle.close();
    if let Ok(thread) = signal_thread {
        let _ = thread.join();
    }
    tracing::info!("stopped; {}", summary(&total));
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
    ) -> Result<Services, String> {
        let controller = Controller::start(
            args.clone(),
            config.clone(),
            plane.publisher(),
            plane.shard_stats(),
        )
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
        let serve = |addr: Option<std::net::SocketAddr>, endpoints, what| {
            addr.map(|addr| {
                HttpServer::start(addr, endpoints, controller.handle())
                    .map_err(|e| format!("cannot serve {what} on {addr}: {e}"))
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

fn join(addrs: &[std::net::SocketAddr]) -> String {
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
        "received {}, requests forwarded {}, responses forwarded {}, replies [{}], drops [{}]",
        c.received,
        c.requests_forwarded,
        c.responses_forwarded,
        replies.join(" "),
        drops.join(" ")
    )
}

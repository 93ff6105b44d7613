//! `sipshard balance`: validated config → running data plane → stop on SIGINT/SIGTERM.

use crate::balance::backends::Backend;
use crate::config::{BalanceArgs, BalanceConfig};
use crate::shard::{self, DropReason, PlaneConfig, ReplyKind};
use std::process::ExitCode;

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

/// Runs the balancer until SIGINT or SIGTERM.
pub fn run(args: &BalanceArgs) -> ExitCode {
    let config = match BalanceConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sipshard balance: {e}");
            return ExitCode::from(2);
        }
    };
    if config.secret_is_random {
        eprintln!("sipshard balance: no --secret given: using a random one (instances of one deployment must share a secret)");
    }
    let plane = match shard::start(&plane_config(&config)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sipshard balance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = plane.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("sipshard balance: cannot handle signal {signal}: {e}");
        }
    }
    eprintln!(
        "sipshard balance: {} worker(s); public {}; internal {}; {} backend(s)",
        config.workers,
        join(plane.public_addrs()),
        join(plane.internal_addrs()),
        config.backends.len()
    );
    let total = shard::total(&plane.wait_each());
    eprintln!("sipshard balance: stopped; {}", summary(&total));
    ExitCode::SUCCESS
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

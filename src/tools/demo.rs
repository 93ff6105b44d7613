//! `sipshard demo`: the README's main job on an embedded default. Starts 3 responders and
//! a balancer on loopback in one process, drives a few seconds of full calls through the
//! balancer, and prints calls completed, the spread over the backends, throughput and
//! call-setup latency percentiles.

use super::bench::engine::Mode;
use super::bench::report::BenchReport;
use super::bench::{run_load, Load};
use super::responder::Responder;
use crate::balance::Backend;
use crate::shard::{self, Counters, PlaneConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Offered calls per second.
const RATE: u32 = 2000;
/// Seconds of offered load.
const SECONDS: u64 = 3;
/// Backends.
const BACKENDS: usize = 3;

/// Runs the demo; fails if any call failed.
pub fn run() -> ExitCode {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    println!("sipshard demo: {BACKENDS} responders and a balancer on loopback, {RATE} calls/s for {SECONDS} s through it.\n");
    let mut responders = Vec::new();
    for _ in 0..BACKENDS {
        match Responder::start(SocketAddr::new(loopback, 0), 1, false) {
            Ok(r) => responders.push(r),
            Err(e) => return fail(&e.to_string()),
        }
    }
    let plane = match shard::start(&PlaneConfig {
        listen: vec![SocketAddr::new(loopback, 0)],
        advertise: None,
        internal_ip: loopback,
        internal_base_port: None,
        backends: responders
            .iter()
            .map(|r| Backend {
                addr: r.addr(),
                weight: 1,
                up: true,
            })
            .collect(),
        workers: 1,
        pin: false,
        secret: b"demo".to_vec(),
        retry_after: 5,
        table_size: crate::balance::DEFAULT_TABLE_SIZE,
        residence_time: false,
        steering: crate::net::Steering::Random,
        busy_poll: std::time::Duration::ZERO,
        record_route: true,
        path: true,
        mode: crate::proxy::Mode::Proxy,
        relay: None,
    }) {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    println!(
        "balancer  public {}  internal {}",
        plane.public_addrs()[0],
        plane.internal_addrs()[0]
    );
    for (i, r) in responders.iter().enumerate() {
        println!("backend {i}  {}", r.addr());
    }
    let report = run_load(&Load {
        duration: Some(Duration::from_secs(SECONDS)),
        timeout: Duration::from_secs(5),
        ..Load::new(plane.public_addrs()[0], Mode::Calls, f64::from(RATE))
    });
    let balancer = plane.stop();
    let invites: Vec<u64> = responders
        .into_iter()
        .map(|r| r.stop().count("INVITE"))
        .collect();
    match report {
        Ok(report) => {
            print_report(&report, &balancer, &invites);
            if report.all_completed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("sipshard demo: {message}");
    ExitCode::FAILURE
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn print_report(r: &BenchReport, balancer: &Counters, invites: &[u64]) {
    let secs = r.elapsed_s.max(1e-9);
    println!(
        "\ncalls     offered {}  completed {}  failed {}  timed out {}  retransmissions {}",
        r.offered, r.completed, r.failed, r.timed_out, r.retransmissions
    );
    let total: u64 = invites.iter().sum::<u64>().max(1);
    let spread: Vec<String> = invites
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "backend {i}: {n} ({:.1}%)",
                *n as f64 * 100.0 / total as f64
            )
        })
        .collect();
    println!("spread    {}", spread.join("  "));
    let forwarded = balancer.requests_forwarded + balancer.responses_forwarded;
    println!(
        "rate      {:.0} calls/s completed; balancer forwarded {} messages ({:.0}/s), dropped {}",
        r.completed as f64 / secs,
        forwarded,
        forwarded as f64 / secs,
        balancer.drops.iter().sum::<u64>()
    );
    let h = &r.latency_us;
    println!(
        "setup     INVITE → 200 OK: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(h.p50),
        ms(h.p90),
        ms(h.p99),
        ms(h.p999),
        ms(h.max)
    );
    println!("\n`sipshard balance --help` runs it for real, `sipshard bench --help` measures a farm; `cargo test` runs the test suite.");
}

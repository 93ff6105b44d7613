//! Graceful stop of a running `sipshard balance` (a child process) under call load: SIGTERM
//! or SIGINT ends it with status 0 within 5 s, and its last log line sums up what it did.

use crate::support::farm::{free_tcp_port, free_udp_port};
use crate::support::process::{loopback_addr, serial, BalancerProcess};
use sipshard::tools::bench::engine::Mode;
use sipshard::tools::bench::{run_load, Load};
use sipshard::tools::ctl;
use sipshard::tools::responder::Responder;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// The sum over shards of a per-shard counter in a scrape.
fn per_shard_total(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{shard=")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The number after `label` (e.g. "received ") in the summary line.
fn summary_number(summary: &str, label: &str) -> u64 {
    let rest = &summary[summary
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not in {summary:?}"))
        + label.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {summary:?}"))
}

/// Calls at ~1000/s through a balancer with 2 backends; `signal` after ~1 s: the balancer
/// exits with 0 within 5 s, logs the signal and a final summary that accounts for at least
/// the traffic the bench saw complete, and frees its public port.
fn stops_cleanly_under_load(signal: libc::c_int) {
    let _serial = serial();
    let responders: Vec<Responder> = (0..2)
        .map(|_| Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap())
        .collect();
    let (listen, metrics) = (
        loopback_addr(free_udp_port()),
        loopback_addr(free_tcp_port()),
    );
    let mut args: Vec<String> = vec![
        "--listen".into(),
        listen.to_string(),
        "--workers".into(),
        "2".into(),
        "--secret".into(),
        "shutdown-test".into(),
        "--metrics".into(),
        metrics.to_string(),
        "--residence-time".into(),
        "on".into(),
    ];
    for r in &responders {
        args.push("--backend".into());
        args.push(r.addr().to_string());
    }
    let mut balancer = BalancerProcess::spawn(&args, None);
    balancer.wait_ready(metrics, "/metrics");

    let load = Load {
        duration: Some(Duration::from_secs(4)),
        // Calls cut by the stop time out; keep that short.
        timeout: Duration::from_secs(2),
        ..Load::new(listen, Mode::Calls, 1000.0)
    };
    let bench = std::thread::spawn(move || run_load(&load));

    // Signal only once calls are flowing through (at least ~1 s in, at most 10 s).
    std::thread::sleep(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let forwarded = ctl::request(metrics, "GET", "/metrics")
            .ok()
            .map_or(0, |(_, body)| {
                per_shard_total(&body, "sipshard_requests_forwarded_total")
            });
        if forwarded > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no request forwarded within 10 s: {}",
            balancer.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    balancer.signal(signal);
    let (status, took, stderr) = balancer.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status} after {took:?}: {stderr}");
    assert!(
        stderr.contains(&format!("stopping signal={signal}")),
        "{stderr}"
    );
    let summary = stderr
        .lines()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_else(|| panic!("no final summary line: {stderr}"));
    assert!(
        stderr.trim_end().ends_with(summary.trim_end()),
        "the summary is not the last line: {stderr}"
    );
    let received = summary_number(summary, "received ");
    let requests = summary_number(summary, "requests forwarded ");
    let responses = summary_number(summary, "responses forwarded ");
    // Every datagram received is in the residence histogram.
    assert_eq!(
        summary_number(summary, "residence over "),
        received,
        "{summary}"
    );

    let report = bench.join().unwrap().unwrap();
    eprintln!(
        "signal {signal}: exit after {took:?}; {summary}; bench offered {} completed {} timed out {}",
        report.offered, report.completed, report.timed_out
    );
    // Some calls completed before the stop; each needed its INVITE and BYE forwarded and
    // both 200s forwarded back, which the summary must count.
    assert!(report.completed > 0, "{report:?}");
    assert!(
        requests >= 2 * report.completed && responses >= 2 * report.completed,
        "{summary} vs {report:?}"
    );
    assert!(received >= requests + responses, "{summary}");
    // The stop is not silent about later traffic: calls offered after it did not complete.
    assert!(report.completed < report.offered, "{report:?}");

    // The public port is free again (bounded retry: the exit is observed before the kernel
    // has necessarily released everything).
    let deadline = Instant::now() + Duration::from_secs(5);
    while UdpSocket::bind(listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "{listen} still bound 5 s after the balancer exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for r in responders {
        r.stop();
    }
}

#[test]
fn sigterm_under_load_stops_cleanly_within_5_s() {
    stops_cleanly_under_load(libc::SIGTERM);
}

#[test]
fn sigint_under_load_stops_cleanly_within_5_s() {
    stops_cleanly_under_load(libc::SIGINT);
}

//! The stateful mode under real SIP peers (sipp): a lossy client's retransmissions absorbed
//! (each backend sees each INVITE once, where the stateless mode forwards the duplicates),
//! and a backend that swallows everything costing no call when probes are off.

use crate::support::farm::{balance_args, free_tcp_port, free_udp_port};
use crate::support::process::serial;
use crate::support::sipp::{
    final_stat, read_trace, scenario, strings, unattended_args, Direction, ScratchDir, Sipp,
    SippServer,
};
use sipshard::config::BalanceConfig;
use sipshard::shard::RelayCounters;
use sipshard::tools::balance::Balancer;
use sipshard::tools::ctl::{request, status_table};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// How often each Call-ID's INVITE reached the servers whose traces are `traces`.
fn invites_per_call(traces: &[std::path::PathBuf]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for trace in traces {
        for m in read_trace(trace) {
            if m.direction == Direction::Received && m.method.as_deref() == Some("INVITE") {
                *seen.entry(m.call_id).or_default() += 1;
            }
        }
    }
    seen
}

/// What a run of the lossy client gave.
struct LossyRun {
    /// The client's failed calls by cause (sipp's Failed* columns that are not zero).
    failures: Vec<(String, u64)>,
    successful: u64,
    failed: u64,
    retransmissions: u64,
    invites: HashMap<String, usize>,
    relay: RelayCounters,
}

/// `calls` calls from a sipp client that loses 10% of its messages, through a balancer in
/// `mode`, to two sipp servers that answer after 1 s.
fn lossy_run(mode: &str, calls: u64) -> LossyRun {
    let dir = ScratchDir::new(&format!("lossy-{mode}"));
    let uas: Vec<SippServer> = (0..2)
        .map(|n| {
            let slow = scenario("uas_slow_answer.xml");
            SippServer::start(&dir.0, &format!("uas{n}"), &slow, 90)
        })
        .collect();
    let backends: Vec<SocketAddr> = uas.iter().map(|u| u.addr).collect();
    let args = balance_args(
        &backends,
        &["--workers", "1", "--mode", mode, "--probe-interval-ms", "0"],
    );
    let config = BalanceConfig::from_args(&args).unwrap();
    let balancer = Balancer::start(&args, &config).unwrap();
    let stats = dir.file("uac.csv");
    let mut uac = strings(&[
        "-sn",
        "uac",
        &balancer.public_addrs()[0].to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-r",
        "100",
        "-l",
        "400",
        "-m",
        &calls.to_string(),
        "-lost",
        "10",
        "-trace_err",
        "-trace_msg",
        "-message_file",
        dir.file("uac.log").to_str().unwrap(),
    ]);
    uac.extend(unattended_args(&stats));
    Sipp::spawn(&dir.0, &uac).wait_exit(Duration::from_secs(120));
    let relay = balancer.stop().relay;
    let traces: Vec<_> = uas.into_iter().map(SippServer::stop).collect();
    if let Ok(keep) = std::env::var("SIPSHARD_KEEP_SIPP") {
        let _ = std::process::Command::new("cp")
            .args(["-r", dir.0.to_str().unwrap(), &keep])
            .status();
    }
    let failures = [
        "FailedCallRejected(C)",
        "FailedMaxUDPRetrans(C)",
        "FailedUnexpectedMessage(C)",
        "FailedCannotSendMessage(C)",
        "FailedTimeoutOnRecv(C)",
        "FailedTimeoutOnSend(C)",
    ]
    .iter()
    .map(|c| (c.to_string(), final_stat(&stats, c)))
    .filter(|(_, n)| *n > 0)
    .collect();
    LossyRun {
        failures,
        successful: final_stat(&stats, "SuccessfulCall(C)"),
        failed: final_stat(&stats, "FailedCall(C)"),
        retransmissions: final_stat(&stats, "Retransmissions(C)"),
        invites: invites_per_call(&traces),
        relay,
    }
}

#[test]
fn a_lossy_clients_retransmissions_are_absorbed_and_each_invite_reaches_a_backend_once() {
    let _serial = serial();
    const CALLS: u64 = 300;
    let stateful = lossy_run("stateful", CALLS);
    assert_eq!(stateful.failed, 0, "failed calls: {:?}", stateful.failures);
    assert_eq!(stateful.successful, CALLS);
    assert!(stateful.retransmissions > 0, "the client did retransmit");
    assert_eq!(stateful.invites.len() as u64, CALLS);
    let twice: Vec<_> = stateful.invites.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "INVITEs forwarded more than once: {twice:?}"
    );
    assert!(stateful.relay.absorbed > 0, "{:?}", stateful.relay);

    // The same run statelessly: the client's INVITE retransmissions reach the backends.
    let stateless = lossy_run("stateless", CALLS);
    let extra: usize = stateless.invites.values().map(|n| n - 1).sum();
    assert!(
        extra > 0,
        "stateless: no duplicate INVITE at the backends ({} client retransmissions)",
        stateless.retransmissions
    );
    eprintln!(
        "lossy client, {CALLS} calls: stateful {} retransmissions, {} absorbed, 0 duplicate \
         INVITEs; stateless {} retransmissions, {extra} duplicate INVITEs at the backends",
        stateful.retransmissions, stateful.relay.absorbed, stateless.retransmissions
    );
}

/// What a run against two sipp servers and a backend that swallows everything gave.
struct SwallowRun {
    successful: u64,
    failed: u64,
    /// The Call-IDs of the INVITEs the silent backend got.
    swallowed: std::collections::HashSet<String>,
    /// How often each Call-ID's INVITE reached the sipp servers.
    answered: HashMap<String, usize>,
    relay: RelayCounters,
    status: sipshard::control::Status,
    metrics: String,
    hole: SocketAddr,
}

/// `calls` calls at 20/s, each held 200 ms, through a stateful balancer (with `flags`) to
/// two sipp servers and a socket that never answers.
fn swallow_run(name: &str, calls: u64, flags: &[&str]) -> SwallowRun {
    let dir = ScratchDir::new(name);
    let uas: Vec<SippServer> = (0..2)
        .map(|n| {
            let holder = scenario("uas_dialog_holder.xml");
            SippServer::start(&dir.0, &format!("uas{n}"), &holder, 90)
        })
        .collect();
    // Bound, never read: datagrams to it vanish.
    let hole = UdpSocket::bind("127.0.0.1:0").unwrap();
    hole.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut backends: Vec<SocketAddr> = uas.iter().map(|u| u.addr).collect();
    backends.push(hole.local_addr().unwrap());
    let metrics_port = format!("127.0.0.1:{}", free_tcp_port());
    let control_port = format!("127.0.0.1:{}", free_tcp_port());
    let mut all_flags = vec![
        "--workers",
        "1",
        "--mode",
        "stateful",
        "--metrics",
        &metrics_port,
        "--control",
        &control_port,
    ];
    all_flags.extend_from_slice(flags);
    let args = balance_args(&backends, &all_flags);
    let config = BalanceConfig::from_args(&args).unwrap();
    let balancer = Balancer::start(&args, &config).unwrap();
    let stats = dir.file("uac.csv");
    let mut uac = strings(&[
        &balancer.public_addrs()[0].to_string(),
        "-sf",
        scenario("uac_long_call.xml").to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-m",
        &calls.to_string(),
        "-r",
        "20",
        "-d",
        "200",
        "-default_behaviors",
        "all,-bye",
    ]);
    uac.extend(unattended_args(&stats));
    Sipp::spawn(&dir.0, &uac).wait_exit(Duration::from_secs(120));
    let (_, metrics) = request(balancer.metrics_addr().unwrap(), "GET", "/metrics").unwrap();
    let status = balancer.control().status().unwrap();
    let relay = balancer.stop().relay;
    // What the hole got: the INVITEs of the calls sent to it, our retransmissions, probes.
    let mut swallowed = std::collections::HashSet::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = hole.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("OPTIONS ") {
            continue;
        }
        assert!(text.starts_with("INVITE "), "only INVITEs reach it: {text}");
        let call_id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap()
            .to_string();
        swallowed.insert(call_id);
    }
    let traces: Vec<_> = uas.into_iter().map(SippServer::stop).collect();
    SwallowRun {
        successful: final_stat(&stats, "SuccessfulCall(C)"),
        failed: final_stat(&stats, "FailedCall(C)"),
        swallowed,
        answered: invites_per_call(&traces),
        relay,
        status,
        metrics,
        hole: hole.local_addr().unwrap(),
    }
}

#[test]
fn a_backend_that_swallows_everything_costs_no_call_without_probes() {
    let _serial = serial();
    const CALLS: u64 = 60;
    let run = swallow_run(
        "swallow",
        CALLS,
        &["--probe-interval-ms", "0", "--failover-after-ms", "500"],
    );
    assert_eq!(run.failed, 0, "failed calls");
    assert_eq!(run.successful, CALLS);
    assert!(
        !run.swallowed.is_empty(),
        "no call was hashed to the silent backend"
    );
    assert_eq!(run.relay.failovers_no_answer, run.swallowed.len() as u64);
    for call in &run.swallowed {
        assert_eq!(
            run.answered.get(call),
            Some(&1),
            "{call} completed elsewhere, once"
        );
    }
    // Counted per backend, in the status and the metrics.
    let hole = run
        .status
        .backends
        .iter()
        .find(|b| b.addr == run.hole)
        .unwrap();
    assert_eq!(hole.failures, run.relay.failovers_no_answer);
    assert_eq!(
        hole.state,
        sipshard::control::State::Up,
        "not probed: always up"
    );
    assert!(status_table(&run.status).contains("stateful: transactions"));
    let series = format!(
        "sipshard_failovers_total{{shard=\"0\",cause=\"no_answer\"}} {}",
        run.relay.failovers_no_answer
    );
    assert!(run.metrics.contains(&series), "{series} in {}", run.metrics);
    let failures = format!(
        "sipshard_backend_failures_total{{backend=\"{}\"}} {}",
        run.hole, run.relay.failovers_no_answer
    );
    assert!(run.metrics.contains(&failures), "{failures}");
    eprintln!(
        "silent backend: {} of {CALLS} calls moved after 500 ms, 0 failed",
        run.swallowed.len()
    );
}

#[test]
fn live_failures_take_a_probed_backend_down_before_its_probes_would() {
    let _serial = serial();
    const CALLS: u64 = 160;
    // Probes every 10 minutes: on probes alone, the silent backend would stay up for the
    // whole run and get a third of the calls.
    let run = swallow_run(
        "swallow-probed",
        CALLS,
        &[
            "--probe-interval-ms",
            "600000",
            "--probe-failures",
            "2",
            "--failover-after-ms",
            "300",
        ],
    );
    assert_eq!(run.failed, 0, "failed calls");
    assert_eq!(run.successful, CALLS);
    let hole = run
        .status
        .backends
        .iter()
        .find(|b| b.addr == run.hole)
        .unwrap();
    assert_eq!(
        hole.state,
        sipshard::control::State::Down,
        "{:?}",
        run.status
    );
    assert!(!run.swallowed.is_empty());
    // A third of 160 calls would be 53: once down, it gets none.
    assert!(
        run.swallowed.len() < 30,
        "{} calls went to the silent backend",
        run.swallowed.len()
    );
    eprintln!(
        "probed silent backend: down after {} of {CALLS} calls",
        run.swallowed.len()
    );
}

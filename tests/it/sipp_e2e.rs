//! End to end with sipp, a real SIP client and server: `sipp -sn uac` → sipshard →
//! 3 × `sipp -sn uas`. 2,000 complete calls (INVITE/100/180/200/ACK/BYE/200) at
//! 200 calls/s must all succeed, every backend must get calls, and every request of a
//! call must reach one backend. The balancer probes the sipp servers with OPTIONS (sipp's
//! `-aa` answers them) and must see them all up. Needs `sipp` (Debian package sip-tester; .ci/run installs it).

use crate::support::farm::{balance_args, free_udp_port};
use crate::support::process::serial;
use crate::support::sipp::{
    final_stat, read_trace, strings, unattended_args, Direction, ScratchDir, Sipp, SippServer,
};
use sipshard::config::BalanceConfig;
use sipshard::control::State;
use sipshard::tools::balance::Balancer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

const CALLS: usize = 2000;
const RATE: usize = 200;

#[test]
fn two_thousand_sipp_calls_through_the_balancer() {
    let _serial = serial();
    let dir = ScratchDir::new("e2e");
    let uas: Vec<SippServer> = (0..3)
        .map(|n| SippServer::start_with(&dir.0, &format!("uas{n}"), &["-sn", "uas"], 90))
        .collect();
    // The whole balancer, with OPTIONS probes every 200 ms answered by sipp.
    let backends: Vec<SocketAddr> = uas.iter().map(|u| u.addr).collect();
    let args = balance_args(
        &backends,
        &[
            "--workers",
            &2.min(sipshard::config::online_cores()).to_string(),
            "--secret",
            "sipp-e2e",
            "--probe-interval-ms",
            "200",
            "--probe-timeout-ms",
            "150",
        ],
    );
    let config = BalanceConfig::from_args(&args).unwrap();
    let plane = Balancer::start(&args, &config).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let stats = dir.file("uac.csv");
    let mut uac_args = strings(&[
        "-sn",
        "uac",
        &plane.public_addrs()[0].to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-r",
        &RATE.to_string(),
        "-m",
        &CALLS.to_string(),
    ]);
    // No pause: sipp's uac sends the BYE right after the ACK, and sipp's uas counts a BYE
    // before its ACK as a failed call. With the default Call-ID steering both reach the
    // call's shard and leave in order (random steering could swap them).
    uac_args.extend(unattended_args(&stats));
    let status = Sipp::spawn(&dir.0, &uac_args).wait_exit(Duration::from_secs(90));
    let health = plane.control().status().unwrap();
    let counters = plane.stop();
    for b in &health.backends {
        assert_eq!(b.state, State::Up, "{health:?}");
        assert!(
            b.probe_rtt_ms.is_some(),
            "sipp answered no probe: {health:?}"
        );
    }
    let (ok, failed) = (
        final_stat(&stats, "SuccessfulCall(C)"),
        final_stat(&stats, "FailedCall(C)"),
    );
    assert_eq!(
        (ok, failed),
        (CALLS as u64, 0),
        "balancer counters: {counters:?}"
    );
    assert!(status.success(), "sipp uac exit status {status}");

    // Stop the servers so their traces are complete, then read who got what.
    let logs: Vec<_> = uas.into_iter().map(SippServer::stop).collect();
    let mut backend_of: HashMap<String, usize> = HashMap::new();
    let mut per_backend = [0usize; 3];
    let mut probes = [0usize; 3];
    for (b, log) in logs.iter().enumerate() {
        let requests = read_trace(log)
            .into_iter()
            .filter(|m| m.direction == Direction::Received)
            .filter_map(|m| Some((m.method?, m.call_id)));
        for (method, call_id) in requests {
            if call_id.starts_with("sipshard-probe-") {
                assert_eq!(method, "OPTIONS");
                probes[b] += 1;
                continue;
            }
            if method == "INVITE" {
                per_backend[b] += 1;
            }
            let first = *backend_of.entry(call_id.clone()).or_insert(b);
            assert_eq!(
                first, b,
                "{method} of call {call_id} reached backend {b}, earlier requests backend {first}"
            );
        }
    }
    assert_eq!(
        backend_of.len(),
        CALLS,
        "every call seen by exactly one backend"
    );
    assert_eq!(per_backend.iter().sum::<usize>(), CALLS);
    assert!(
        per_backend.iter().all(|&n| n > 0),
        "every backend got calls: {per_backend:?}"
    );
    assert!(probes.iter().all(|&n| n > 0), "probes: {probes:?}");
}

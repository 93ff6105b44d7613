//! End to end with sipp, a real SIP client and server: `sipp -sn uac` → sipshard →
//! 3 × `sipp -sn uas`. 2,000 complete calls (INVITE/100/180/200/ACK/BYE/200) at
//! 200 calls/s must all succeed, every backend must get calls, and every request of a
//! call must reach one backend. The balancer probes the sipp servers with OPTIONS (sipp's
//! `-aa` answers them) and must see them all up. Needs `sipp` (Debian package sip-tester; .ci/run installs it).

use crate::support::farm::{balance_args, free_udp_port};
use crate::support::process::serial;
use crate::support::sipp::final_stat;
use sipshard::config::BalanceConfig;
use sipshard::control::State;
use sipshard::tools::balance::Balancer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CALLS: usize = 2000;
const RATE: usize = 200;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipshard-sipp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sipp(dir: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

struct Uas {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_uas(dir: &Path, n: usize) -> Uas {
    let port = free_udp_port();
    let log = dir.join(format!("uas{n}.log"));
    let args: Vec<String> = [
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-nostdin",
        // Answer the balancer's OPTIONS probes with 200.
        "-aa",
        "-timeout",
        "90",
        "-trace_msg",
        "-message_file",
        log.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = sipp(dir, &args)
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    Uas {
        child,
        log,
        addr: SocketAddr::new("127.0.0.1".parse().unwrap(), port),
    }
}

/// (method, Call-ID) of every request a sipp trace says was received.
fn received_requests(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("UDP message received")
        .skip(1)
        .filter_map(|block| {
            let message = block.split_once(":\n").map(|(_, m)| m.trim_start())?;
            let first = message.lines().next()?;
            if first.starts_with("SIP/2.0") {
                return None;
            }
            let method = first.split(' ').next()?.to_owned();
            let call_id = message.lines().find_map(|l| {
                l.strip_prefix("Call-ID: ")
                    .or_else(|| l.strip_prefix("i: "))
            })?;
            Some((method, call_id.trim().to_owned()))
        })
        .collect()
}

#[test]
fn two_thousand_sipp_calls_through_the_balancer() {
    let _serial = serial();
    let dir = scratch_dir();
    let uas: Vec<Uas> = (0..3).map(|n| start_uas(&dir, n)).collect();
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

    let stats = dir.join("uac.csv");
    let uac_args: Vec<String> = [
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
        // No pause: sipp's uac sends the BYE right after the ACK, and sipp's uas counts a
        // BYE before its ACK as a failed call. With the default Call-ID steering both reach
        // the call's shard and leave in order (random steering could swap them).
        "-nostdin",
        "-timeout",
        "60",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        stats.to_str().unwrap(),
        "-fd",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let status = sipp(&dir, &uac_args).status().expect("sipp runs");
    let health = plane.control().status().unwrap();
    let counters = plane.stop();
    for b in &health.backends {
        assert_eq!(b.state, State::Up, "{health:?}");
        assert!(
            b.probe_rtt_ms.is_some(),
            "sipp answered no probe: {health:?}"
        );
    }
    drop(uas.iter().map(|u| u.log.clone()).collect::<Vec<_>>());
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
    let logs: Vec<PathBuf> = uas.iter().map(|u| u.log.clone()).collect();
    drop(uas);
    let mut backend_of: HashMap<String, usize> = HashMap::new();
    let mut per_backend = [0usize; 3];
    let mut probes = [0usize; 3];
    for (b, log) in logs.iter().enumerate() {
        for (method, call_id) in received_requests(log) {
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
    let _ = std::fs::remove_dir_all(&dir);
}

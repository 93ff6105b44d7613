//! Reload of a running `sipshard balance` (a child process, real UDP on loopback): SIGHUP and
//! `POST /reload` under call load lose nothing, a reload adds and removes backends, and a bad
//! file is refused with the running configuration kept.

use crate::support::farm::{free_tcp_port, free_udp_port};
use crate::support::process::{loopback_addr, serial, BalancerProcess};
use sipshard::control::State;
use sipshard::control::Status;
use sipshard::tools::bench::engine::Mode;
use sipshard::tools::bench::report::BenchReport;
use sipshard::tools::bench::{run_load, Load};
use sipshard::tools::ctl;
use sipshard::tools::responder::{Responder, ResponderCounters};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sipshard-test-reload-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces `path` with `text` in one step (write aside, rename), so a reload racing the
/// write never reads half a file.
fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("partial");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// The fixed part of a balancer's configuration.
#[derive(Clone, Copy)]
struct Ports {
    listen: SocketAddr,
    control: SocketAddr,
    metrics: SocketAddr,
}

impl Ports {
    fn pick() -> Ports {
        Ports {
            listen: loopback_addr(free_udp_port()),
            control: loopback_addr(free_tcp_port()),
            metrics: loopback_addr(free_tcp_port()),
        }
    }
}

/// A TOML configuration: the fixed part, then `backends` (address, weight) in that order.
fn config_text(
    ports: &Ports,
    backends: &[(SocketAddr, u32)],
    probe_interval_ms: u64,
    comment: &str,
) -> String {
    let mut text = format!(
        "# {comment}\n\
         listen = \"{}\"\n\
         secret = \"reload-test-secret\"\n\
         workers = 2\n\
         control = \"{}\"\n\
         metrics = \"{}\"\n\
         probe_interval_ms = {probe_interval_ms}\n\
         probe_timeout_ms = 150\n",
        ports.listen, ports.control, ports.metrics
    );
    for (addr, weight) in backends {
        text.push_str(&format!(
            "\n# {comment}: backend {addr}\n[[backend]]\naddr = \"{addr}\"   # {comment}\nweight = {weight}\n"
        ));
    }
    text
}

/// `sipshard ctl reload` succeeds (exit 0) and its answer contains `expected`.
fn reload_says(control: SocketAddr, expected: &str) {
    let out = ctl_cli(control, &["reload"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(expected), "{stdout}");
}

/// `--config PATH`.
fn config_args(config: &Path) -> Vec<String> {
    vec!["--config".into(), config.display().to_string()]
}

fn status(control: SocketAddr) -> Status {
    let (code, body) = ctl::request(control, "GET", "/status").expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("a status document")
}

fn shard_generations(control: SocketAddr) -> Vec<u64> {
    status(control).shard_generations
}

fn scrape(metrics: SocketAddr) -> String {
    let (code, body) = ctl::request(metrics, "GET", "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(scrape: &str, series: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls until `cond` holds (at most `within`); false if it never did.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sipshard ctl --control ADDR ARGS...`.
fn ctl_cli(control: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipshard"))
        .args(["ctl", "--control", &control.to_string()])
        .args(args)
        .env_remove("SIPSHARD_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn calls(target: SocketAddr, rate: f64, duration: Option<Duration>, count: Option<u64>) -> Load {
    Load {
        duration,
        count,
        // Calls retransmit (T1 doubling), so a lost datagram costs time, not the call.
        timeout: Duration::from_secs(20),
        ..Load::new(target, Mode::Calls, rate)
    }
}

fn assert_all_completed(report: &BenchReport, what: &str) {
    assert!(report.offered > 0, "{what}: nothing offered: {report:?}");
    assert_eq!(
        (
            report.completed,
            report.failed,
            report.timed_out,
            report.send_failures
        ),
        (report.offered, 0, 0, 0),
        "{what}: {report:?}"
    );
}

/// Requests the balancer forwards in calls mode (INVITE, ACK, BYE), as a responder counts them.
fn call_requests(c: &ResponderCounters) -> u64 {
    c.count("INVITE") + c.count("ACK") + c.count("BYE")
}

#[test]
fn reload_under_load_loses_nothing() {
    let _serial = serial();
    let dir = TempDir::new("under-load");
    let responders: Vec<Responder> = (0..3)
        .map(|_| Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap())
        .collect();
    let backends: Vec<(SocketAddr, u32)> = responders
        .iter()
        .zip([1, 2, 3])
        .map(|(r, w)| (r.addr(), w))
        .collect();
    let ports = Ports::pick();
    let config = dir.0.join("balance.toml");
    write_atomically(&config, &config_text(&ports, &backends, 200, "initial"));
    let mut balancer = BalancerProcess::spawn(&config_args(&config), None);
    balancer.wait_ready(ports.control, "/status");
    let pid = balancer.pid();

    // 20 reloads, every ~250 ms, alternating SIGHUP and POST /reload; before each, the file
    // is rewritten with an equivalent configuration: same backends and weights in another
    // order, other comments, another probe interval.
    const RELOADS: u64 = 20;
    let reloader = {
        let (config, ports, backends) = (config.clone(), ports, backends.clone());
        std::thread::spawn(move || -> Vec<String> {
            let mut problems = Vec::new();
            std::thread::sleep(Duration::from_millis(300));
            for i in 0..RELOADS {
                let started = Instant::now();
                let mut order = backends.clone();
                order.rotate_left((i % 3) as usize);
                if i % 2 == 1 {
                    order.reverse();
                }
                let text = config_text(&ports, &order, 150 + 50 * (i % 5), &format!("variant {i}"));
                write_atomically(&config, &text);
                if i % 2 == 0 {
                    // SAFETY: kill(2) on our own child, still running (the test waits for
                    // it only after this thread is joined).
                    unsafe {
                        libc::kill(pid, libc::SIGHUP);
                    }
                    // A SIGHUP reload is asynchronous, and signals of one kind coalesce: wait
                    // until this one is counted before the next.
                    let counted = eventually(Duration::from_secs(10), || {
                        ctl::request(ports.control, "GET", "/status")
                            .ok()
                            .and_then(|(_, body)| serde_json::from_str::<Status>(&body).ok())
                            .is_some_and(|s| s.reloads + s.reloads_failed > i)
                    });
                    if !counted {
                        problems.push(format!("reload {i} (SIGHUP) not counted within 10 s"));
                    }
                } else {
                    match ctl::request(ports.control, "POST", "/reload") {
                        Ok((200, body))
                            if body.contains("reloaded: 3 backend(s), 0 added, 0 removed")
                                && !body.contains("next restart") => {}
                        other => problems.push(format!("reload {i} (POST): {other:?}")),
                    }
                }
                if let Some(rest) = Duration::from_millis(250).checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            problems
        })
    };

    let report = run_load(&calls(
        ports.listen,
        300.0,
        Some(Duration::from_secs(6)),
        None,
    ))
    .unwrap();
    let problems = reloader.join().unwrap();
    assert!(problems.is_empty(), "{problems:?}\n{}", balancer.stderr());
    assert_all_completed(&report, "calls across 20 reloads");
    assert!(report.offered >= 1000, "{report:?}");

    // Every reload counted as a success (SIGHUP ones are asynchronous: poll briefly).
    let mut last = String::new();
    let counted = eventually(Duration::from_secs(10), || {
        last = scrape(ports.metrics);
        sample(&last, "sipshard_reloads_total{result=\"ok\"}") == Some(RELOADS)
    });
    assert!(counted, "{last}\n{}", balancer.stderr());
    assert_eq!(
        sample(&last, "sipshard_reloads_total{result=\"failed\"}"),
        Some(0),
        "{last}"
    );
    let status = status(ports.control);
    assert_eq!(status.backends.len(), 3, "{status:?}");
    assert!(
        status.backends.iter().all(|b| b.state == State::Up),
        "{status:?}"
    );
    // Each reload installed a fresh table in every shard while calls flowed (no probe
    // changed a state, so the 20 publications are the reloads'), and every shard routes
    // with the last one.
    assert_eq!(status.generation, RELOADS, "{status:?}");
    let applied = eventually(Duration::from_secs(2), || {
        shard_generations(ports.control)
            .iter()
            .all(|&g| g == RELOADS)
    });
    assert!(applied, "{:?}", status.shard_generations);

    let (exit, _, stderr) = {
        balancer.signal(libc::SIGTERM);
        balancer.wait_exit(Duration::from_secs(10))
    };
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("stopped;"), "{stderr}");
    assert_eq!(
        stderr
            .matches("SIGHUP: reloaded: 3 backend(s), 0 added, 0 removed")
            .count(),
        (RELOADS / 2) as usize,
        "{stderr}"
    );
    assert!(!stderr.contains("refused"), "{stderr}");

    // No call moved between backends: each responder saw every request of the calls it had
    // (an INVITE without its BYE, or the reverse, would be a call that moved), give or take
    // the bench's retransmissions. And the balancer's per-backend counters match what each
    // backend really received, reorderings notwithstanding.
    let seen: Vec<ResponderCounters> = responders.into_iter().map(Responder::stop).collect();
    let mismatch: u64 = seen
        .iter()
        .map(|c| c.count("INVITE").abs_diff(c.count("BYE")))
        .sum();
    assert!(
        mismatch <= report.retransmissions,
        "INVITE/BYE per backend differ by {mismatch} (retransmissions {}): {seen:?}",
        report.retransmissions
    );
    for (((addr, _), c), b) in backends.iter().zip(&seen).zip(
        backends
            .iter()
            .map(|(a, _)| status.backends.iter().find(|b| b.addr == *a).unwrap()),
    ) {
        assert!(c.count("INVITE") > 0, "{addr} got no call: {seen:?}");
        assert_eq!(
            b.requests,
            call_requests(c),
            "{addr}: balancer counted {} requests, the backend got {c:?}",
            b.requests
        );
    }
    let invites: u64 = seen.iter().map(|c| c.count("INVITE")).sum();
    assert!(
        invites >= report.offered,
        "{invites} INVITEs for {report:?}"
    );
}

#[test]
fn reload_adds_and_removes_backends_and_a_bad_file_is_refused() {
    let _serial = serial();
    let dir = TempDir::new("add-remove");
    let a = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let b = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let ports = Ports::pick();
    let config = dir.0.join("balance.toml");
    write_atomically(
        &config,
        &config_text(&ports, &[(a_addr, 1), (b_addr, 1)], 200, "two backends"),
    );
    let mut balancer = BalancerProcess::spawn(&config_args(&config), None);
    balancer.wait_ready(ports.control, "/status");
    assert_eq!(status(ports.control).backends.len(), 2);
    // The third responder starts only now: the balancer child inherits every socket
    // descriptor of this process that lacks FD_CLOEXEC, and the responder's readiness
    // waiter is such a descriptor (a plain dup(2)); inherited, it would keep the third
    // backend's port bound after the responder stops, and the check below could not
    // listen there.
    let c = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let c_addr = c.addr();

    // Add the third backend: `sipshard ctl reload` says so and exits 0.
    let three = [(a_addr, 1), (b_addr, 1), (c_addr, 1)];
    write_atomically(&config, &config_text(&ports, &three, 200, "three backends"));
    reload_says(ports.control, "reloaded: 3 backend(s), 1 added, 0 removed");
    // New calls reach all three (the responders' OPTIONS counts would include the
    // balancer's own probes, so calls are used and counted as INVITEs and requests).
    let report = run_load(&calls(ports.listen, 300.0, None, Some(300))).unwrap();
    assert_all_completed(&report, "calls after adding a backend");
    let after_add = status(ports.control);
    assert_eq!(after_add.backends.len(), 3, "{after_add:?}");
    for backend in &after_add.backends {
        assert!(
            backend.requests > 0,
            "{} got nothing: {after_add:?}",
            backend.addr
        );
    }

    // Bad files are refused (exit 1, the offending key named); the running set is kept.
    let mut bad_weight = config_text(&ports, &three, 200, "bad weight");
    bad_weight = bad_weight.replacen("weight = 1\n", "weight = 5000\n", 1);
    let unknown_key = config_text(&ports, &three, 200, "unknown key")
        .replace("probe_interval_ms = 200\n", "probe_intervall_ms = 200\n");
    for (text, names) in [
        (bad_weight, ["weight", "5000"]),
        (unknown_key, ["probe_intervall_ms", "unknown"]),
    ] {
        write_atomically(&config, &text);
        let out = ctl_cli(ports.control, &["reload"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for name in names {
            assert!(stderr.contains(name), "{name:?} not in {stderr:?}");
        }
    }
    let out = ctl_cli(ports.control, &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    for addr in [a_addr, b_addr, c_addr] {
        assert!(table.contains(&addr.to_string()), "{addr} not in\n{table}");
    }
    assert!(table.contains("reloads 1 ok / 2 refused"), "{table}");
    let kept = status(ports.control);
    assert_eq!(kept.backends.len(), 3, "{kept:?}");
    assert!(
        kept.backends.iter().all(|b| b.state == State::Up),
        "{kept:?}"
    );
    let report = run_load(&calls(ports.listen, 300.0, None, Some(300))).unwrap();
    assert_all_completed(&report, "calls after the refused reloads");

    // Remove the third backend; then stop it and listen on its address ourselves: no new
    // call may reach it (and an unanswered call would also time out in the bench).
    write_atomically(
        &config,
        &config_text(&ports, &[(b_addr, 1), (a_addr, 1)], 200, "third removed"),
    );
    reload_says(ports.control, "reloaded: 2 backend(s), 0 added, 1 removed");
    let c_seen = c.stop();
    assert!(
        c_seen.count("INVITE") > 0,
        "the added backend never got a call: {c_seen:?}"
    );
    // The responder's executor tears its io_uring down asynchronously, so the port may
    // stay bound for a moment after stop() returns: retry (bounded).
    let mut sniffer = None;
    let bound = eventually(Duration::from_secs(10), || {
        sniffer = UdpSocket::bind(c_addr).ok();
        sniffer.is_some()
    });
    assert!(
        bound,
        "{c_addr} still bound 10 s after the responder stopped"
    );
    let sniffer = sniffer.unwrap();
    let report = run_load(&calls(ports.listen, 300.0, None, Some(300))).unwrap();
    assert_all_completed(&report, "calls after removing a backend");
    sniffer.set_nonblocking(true).unwrap();
    let mut stray = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = sniffer.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // A probe sent just before the prober took the new target list is not traffic.
        if !text.starts_with("OPTIONS ") {
            stray.push(text);
        }
    }
    assert!(
        stray.is_empty(),
        "{} datagram(s) reached the removed backend: {:?}",
        stray.len(),
        stray.first()
    );
    let after_remove = status(ports.control);
    let listed: Vec<SocketAddr> = after_remove.backends.iter().map(|b| b.addr).collect();
    assert_eq!(listed, vec![b_addr, a_addr], "{after_remove:?}");
    assert_eq!(
        (after_remove.reloads, after_remove.reloads_failed),
        (2, 2),
        "{after_remove:?}"
    );

    balancer.signal(libc::SIGTERM);
    let (exit, _, stderr) = balancer.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("stopped;"), "{stderr}");
    let (a_seen, b_seen) = (a.stop(), b.stop());
    assert!(a_seen.count("BYE") > 0 && b_seen.count("BYE") > 0);
}

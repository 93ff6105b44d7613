//! The logs of a running `sipshard balance` (a child process) under a flood of bad
//! datagrams: drop lines are rate-limited per shard and reason (10 per 10 s) while the
//! counters (metrics, final summary) still count every drop; with `--log-format json`, every
//! line of stderr is a JSON object.

use crate::support::farm::{free_tcp_port, free_udp_port};
use crate::support::process::{loopback_addr, serial, BalancerProcess};
use sipshard::tools::ctl;
use sipshard::tools::responder::Responder;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Drop lines allowed per shard and reason in one window, and the window.
const BURST: usize = 10;
const WINDOW: Duration = Duration::from_secs(10);

/// Unparsable datagrams sent (no SIP start line, no Via: not even a 400 is possible).
const GARBAGE: u64 = 2000;
/// Responses whose top Via is someone else's.
const FOREIGN: u64 = 200;

/// `sipshard_drops_total` by (shard, reason), non-zero samples only.
fn drops(metrics: SocketAddr) -> BTreeMap<(u64, String), u64> {
    let (code, body) = ctl::request(metrics, "GET", "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("sipshard_drops_total{shard=\"") else {
            continue;
        };
        let (shard, rest) = rest.split_once("\",reason=\"").expect(line);
        let (reason, value) = rest.split_once("\"} ").expect(line);
        let value: u64 = value.trim().parse().expect(line);
        if value > 0 {
            out.insert((shard.parse().expect(line), reason.to_string()), value);
        }
    }
    out
}

fn total(drops: &BTreeMap<(u64, String), u64>, reason: &str) -> u64 {
    drops
        .iter()
        .filter(|((_, r), _)| r == reason)
        .map(|(_, n)| n)
        .sum()
}

/// Sends `count` copies of `make(i)` in batches of 100, each batch only once the balancer
/// has counted the previous one as dropped for `reason` (so the receive buffer never holds
/// more than a batch, and loopback does not lose any).
fn send_paced(
    client: &UdpSocket,
    to: SocketAddr,
    metrics: SocketAddr,
    reason: &str,
    count: u64,
    make: impl Fn(u64) -> Vec<u8>,
) {
    let before = total(&drops(metrics), reason);
    let mut sent = 0;
    while sent < count {
        let batch = (count - sent).min(100);
        for i in sent..sent + batch {
            client.send_to(&make(i), to).unwrap();
        }
        sent += batch;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counted = total(&drops(metrics), reason) - before;
            if counted == sent {
                break;
            }
            assert!(
                counted < sent,
                "{counted} {reason} drops counted for {sent} sent"
            );
            assert!(
                Instant::now() < deadline,
                "{reason}: {counted} of {sent} counted after 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn foreign_response(i: u64) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKforeign{i}\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
         Call-ID: foreign-{i}@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// One "datagram dropped" log line.
#[derive(Debug)]
struct DropLine {
    shard: u64,
    reason: String,
    suppressed: u64,
}

/// `key=value` from a text log line (value possibly quoted).
fn text_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(' ').next(),
    }
}

fn parse_text_drop(line: &str) -> Option<DropLine> {
    if !line.contains("datagram dropped") {
        return None;
    }
    Some(DropLine {
        shard: text_field(line, "shard")?.parse().ok()?,
        reason: text_field(line, "reason")?.to_string(),
        suppressed: text_field(line, "suppressed")?.parse().ok()?,
    })
}

fn parse_json_drop(event: &serde_json::Value) -> Option<DropLine> {
    let fields = event.get("fields")?;
    if fields.get("message")?.as_str()? != "datagram dropped" {
        return None;
    }
    Some(DropLine {
        shard: fields.get("shard")?.as_u64()?,
        reason: fields.get("reason")?.as_str()?.to_string(),
        suppressed: fields.get("suppressed")?.as_u64()?,
    })
}

/// A balancer at debug level with one backend; `GARBAGE` unparsable datagrams and
/// `FOREIGN` foreign-Via responses from one client socket; then SIGTERM.
fn flood_is_counted_in_full_but_logged_within_budget(json: bool) {
    let _serial = serial();
    let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let (listen, metrics) = (
        loopback_addr(free_udp_port()),
        loopback_addr(free_tcp_port()),
    );
    let mut args: Vec<String> = [
        "--listen",
        &listen.to_string(),
        "--backend",
        &responder.addr().to_string(),
        "--workers",
        "2",
        "--secret",
        "logs-test",
        "--metrics",
        &metrics.to_string(),
        // The file/flag level is info: SIPSHARD_LOG=debug must override it.
        "--log-level",
        "info",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if json {
        args.extend(["--log-format".to_string(), "json".to_string()]);
    }
    let mut balancer = BalancerProcess::spawn(&args, Some("debug"));
    balancer.wait_ready(metrics, "/metrics");
    assert!(drops(metrics).is_empty(), "{:?}", drops(metrics));

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    send_paced(&client, listen, metrics, "unparsable", GARBAGE, |_| {
        b"hello\r\n\r\n".to_vec()
    });
    send_paced(
        &client,
        listen,
        metrics,
        "foreign_via",
        FOREIGN,
        foreign_response,
    );
    // Every drop happened within `flood`: that many windows can have started.
    let flood = started.elapsed();
    let windows = (flood.as_secs_f64() / WINDOW.as_secs_f64()).floor() as usize + 1;
    let budget = BURST * windows;
    let counted = drops(metrics);
    balancer.signal(libc::SIGTERM);
    let (status, _, stderr) = balancer.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}: {stderr}");
    responder.stop();

    // The counters have every drop, of exactly these two reasons.
    assert_eq!(total(&counted, "unparsable"), GARBAGE, "{counted:?}");
    assert_eq!(total(&counted, "foreign_via"), FOREIGN, "{counted:?}");
    assert_eq!(
        counted.values().sum::<u64>(),
        GARBAGE + FOREIGN,
        "{counted:?}"
    );
    // So does the final summary.
    assert!(
        stderr.contains(&format!(
            "drops [unparsable={GARBAGE} foreign_via={FOREIGN}]"
        )),
        "{stderr}"
    );

    // The logs: in JSON, every line is an event with a message.
    let mut lines = Vec::new();
    for line in stderr.lines() {
        if json {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(
                event
                    .get("fields")
                    .and_then(|f| f.get("message"))
                    .is_some_and(|m| m.is_string()),
                "no fields.message: {line}"
            );
            lines.extend(parse_json_drop(&event));
        } else if line.contains("datagram dropped") {
            lines.push(
                parse_text_drop(line)
                    .unwrap_or_else(|| panic!("a drop line without its fields: {line}")),
            );
        }
    }
    assert!(
        stderr.lines().any(|l| l.contains("stopped;")),
        "no summary: {stderr}"
    );
    let mut logged: BTreeMap<(u64, String), (usize, u64)> = BTreeMap::new();
    for l in &lines {
        let entry = logged.entry((l.shard, l.reason.clone())).or_default();
        entry.0 += 1;
        entry.1 += l.suppressed;
    }
    // Each (shard, reason) that dropped anything logged at least once and at most its
    // budget; nothing is logged for what did not drop; lines and the suppressed counts they
    // report never exceed the drops.
    for (key, &n) in &counted {
        let (lines, suppressed) = logged.get(key).copied().unwrap_or_default();
        assert!(
            (1..=budget).contains(&lines),
            "{key:?}: {lines} drop lines for {n} drops (budget {budget} over {flood:?}):\n{stderr}"
        );
        assert!(
            lines as u64 + suppressed <= n,
            "{key:?}: {lines} lines + {suppressed} reported suppressed > {n} drops"
        );
    }
    for key in logged.keys() {
        assert!(
            counted.contains_key(key),
            "{key:?} logged but not counted: {counted:?}"
        );
    }
}

#[test]
fn drop_logs_are_rate_limited_and_counters_complete_text() {
    flood_is_counted_in_full_but_logged_within_budget(false);
}

#[test]
fn drop_logs_are_rate_limited_and_counters_complete_json() {
    flood_is_counted_in_full_but_logged_within_budget(true);
}

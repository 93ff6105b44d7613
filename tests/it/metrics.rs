//! The metrics and control endpoints over real HTTP: after a known load, the Prometheus
//! series carry exactly the counts the load generator saw; `/status` lists the backends; an
//! operator's disable takes a backend out of rotation and enable puts it back.

use crate::support::farm::{balance_args, balancer, free_tcp_port, wait_for_state};
use crate::support::process::serial;
use sipshard::control::State;
use sipshard::tools::bench::{run_load, Load, Mode};
use sipshard::tools::ctl::{request, status_table};
use sipshard::tools::responder::Responder;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Every sample of a scrape: `name{labels}` → value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = request(addr, "GET", "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (series.to_string(), value.parse().expect("numeric value"))
        })
        .collect()
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn sum(samples: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

fn options(target: SocketAddr, count: u64) -> Load {
    Load {
        count: Some(count),
        timeout: Duration::from_secs(5),
        ..Load::new(target, Mode::Messages("OPTIONS".into()), 500.0)
    }
}

#[test]
fn scraped_series_match_the_traffic_and_the_control_api_works() {
    let _serial = serial();
    let responders: Vec<Responder> = (0..2)
        .map(|_| Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = responders.iter().map(Responder::addr).collect();
    let workers = 2.min(sipshard::config::online_cores());
    let args = balance_args(
        &addrs,
        &[
            "--workers",
            &workers.to_string(),
            "--secret",
            "metrics",
            "--metrics",
            &format!("127.0.0.1:{}", free_tcp_port()),
            "--control",
            &format!("127.0.0.1:{}", free_tcp_port()),
            "--probe-interval-ms",
            "100",
            "--residence-time",
            "on",
        ],
    );
    let b = balancer(&args);
    let (public, metrics, control) = (
        b.public_addrs()[0],
        b.metrics_addr().unwrap(),
        b.control_addr().unwrap(),
    );

    let load = run_load(&options(public, 400)).unwrap();
    assert_eq!(load.completed, 400, "{load:?}");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"\r\n\r\n", public).unwrap();
    client.send_to(b"hello\r\n\r\n", public).unwrap();
    // Let the probes report an RTT and the two datagrams be counted.
    std::thread::sleep(Duration::from_millis(400));

    let m = scrape(metrics);
    let get = |name: &str, labels: &[&str]| sum(&m, name, labels);
    assert_eq!(get("sipshard_build_info", &["version="]), 1.0);
    assert_eq!(get("sipshard_workers", &[]), workers as f64);
    assert_eq!(
        get("sipshard_requests_forwarded_total", &[]),
        load.sent as f64
    );
    assert_eq!(
        get("sipshard_responses_forwarded_total", &[]),
        load.received as f64
    );
    assert_eq!(
        get("sipshard_received_total", &[]),
        (load.sent + load.received + 2) as f64
    );
    // Every datagram received has its residence time in the histogram, dropped ones too.
    let received = get("sipshard_received_total", &[]);
    assert_eq!(get("sipshard_residence_seconds_count", &[]), received);
    assert_eq!(
        get("sipshard_residence_seconds_bucket", &["le=\"+Inf\""]),
        received
    );
    assert!(get("sipshard_residence_seconds_sum", &[]) > 0.0);
    // Cumulative buckets: never decreasing, and on loopback nothing stays a whole second.
    for k in 0..workers {
        let shard = format!("shard=\"{k}\"");
        let mut buckets: Vec<(f64, f64)> = m
            .iter()
            .filter(|(s, _)| {
                s.starts_with("sipshard_residence_seconds_bucket{") && s.contains(&shard)
            })
            .filter_map(|(s, &v)| {
                let le = s.split("le=\"").nth(1)?.split('"').next()?;
                Some((le.parse::<f64>().unwrap_or(f64::INFINITY), v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 26, "{buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        let below_one_second = buckets[buckets.len() - 2];
        assert_eq!(below_one_second.0, 1.0);
        assert_eq!(below_one_second.1, buckets[buckets.len() - 1].1);
    }
    assert_eq!(get("sipshard_drops_total", &["reason=\"keepalive\""]), 1.0);
    assert_eq!(get("sipshard_drops_total", &["reason=\"unparsable\""]), 1.0);
    assert_eq!(get("sipshard_drops_total", &[]), 2.0);
    if workers > 1 {
        // The Call-ID program placed every request and response of the load (the
        // keep-alive and the unparsable datagram have no Call-ID).
        assert!(
            get(
                "sipshard_steering_datagrams_total",
                &["result=\"classified\""]
            ) >= load.sent as f64
        );
        assert_eq!(
            get(
                "sipshard_steering_datagrams_total",
                &["result=\"fallback\""]
            ),
            2.0
        );
    }
    assert_eq!(
        get("sipshard_sent_total", &[]),
        (load.sent + load.received) as f64
    );
    assert_eq!(
        get("sipshard_backend_requests_total", &[]),
        load.sent as f64
    );
    assert_eq!(
        get("sipshard_backend_responses_total", &["class=\"2xx\""]),
        load.received as f64
    );
    assert_eq!(
        get("sipshard_backend_responses_total", &[]),
        load.received as f64
    );
    for a in &addrs {
        let backend = format!("backend=\"{a}\"");
        assert!(get("sipshard_backend_requests_total", &[&backend]) > 0.0);
        assert_eq!(get("sipshard_backend_up", &[&backend]), 1.0);
        assert_eq!(
            get("sipshard_backend_state", &[&backend, "state=\"up\""]),
            1.0
        );
        assert_eq!(get("sipshard_backend_state", &[&backend]), 1.0);
        assert!(get("sipshard_backend_probe_rtt_seconds", &[&backend]) > 0.0);
    }
    assert_eq!(get("sipshard_reloads_total", &["result=\"ok\""]), 0.0);
    // Shard series: one per shard.
    let shards = m
        .keys()
        .filter(|k| k.starts_with("sipshard_received_total{"))
        .count();
    assert_eq!(shards, workers);

    // The metrics port serves metrics only; the control port serves the API.
    assert_eq!(request(metrics, "POST", "/reload").unwrap().0, 404);
    assert_eq!(request(metrics, "POST", "/metrics").unwrap().0, 405);
    assert_eq!(request(metrics, "GET", "/status").unwrap().0, 404);
    let (code, json) = request(control, "GET", "/status").unwrap();
    assert_eq!(code, 200);
    let status: sipshard::control::Status = serde_json::from_str(&json).unwrap();
    assert_eq!(status.backends.len(), 2);
    assert_eq!(status.workers, workers);
    let table = status_table(&status);
    assert!(table.starts_with("BACKEND"), "{table}");
    assert!(table.contains(&addrs[0].to_string()), "{table}");

    // Disable the first backend: every new request goes to the second.
    let first = format!("backend=\"{}\"", addrs[0]);
    let (code, body) =
        request(control, "POST", &format!("/backends/{}/disable", addrs[0])).unwrap();
    assert_eq!(
        (code, body.trim()),
        (200, format!("{}: admin-disabled", addrs[0]).as_str())
    );
    wait_for_state(&b, addrs[0], State::AdminDisabled, Duration::from_secs(2));
    let before = get("sipshard_backend_requests_total", &[&first]);
    let more = run_load(&options(public, 200)).unwrap();
    assert_eq!(more.completed, 200, "{more:?}");
    let m2 = scrape(metrics);
    // The disable published set 1, and every shard routes with it.
    assert_eq!(sum(&m2, "sipshard_published_generation", &[]), 1.0);
    for k in 0..workers {
        let shard = format!("shard=\"{k}\"");
        assert_eq!(sum(&m2, "sipshard_shard_generation", &[&shard]), 1.0);
    }
    assert_eq!(
        sum(&m2, "sipshard_backend_requests_total", &[&first]),
        before
    );
    assert_eq!(
        sum(
            &m2,
            "sipshard_backend_state",
            &[&first, "state=\"admin-disabled\""]
        ),
        1.0
    );
    // An unknown backend is refused; enabling puts the first one back.
    assert_eq!(
        request(control, "POST", "/backends/127.0.0.1:9/disable")
            .unwrap()
            .0,
        404
    );
    let (code, _) = request(control, "POST", &format!("/backends/{}/enable", addrs[0])).unwrap();
    assert_eq!(code, 200);
    wait_for_state(&b, addrs[0], State::Up, Duration::from_secs(2));

    b.stop();
    for r in responders {
        r.stop();
    }
}

#[test]
fn residence_time_off_by_default_leaves_the_histogram_out() {
    let _serial = serial();
    let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let args = balance_args(
        &[responder.addr()],
        &[
            "--workers",
            "1",
            "--secret",
            "metrics",
            "--metrics",
            &format!("127.0.0.1:{}", free_tcp_port()),
            "--probe-interval-ms",
            "0",
        ],
    );
    let b = balancer(&args);
    let load = run_load(&options(b.public_addrs()[0], 20)).unwrap();
    assert_eq!(load.completed, 20, "{load:?}");
    let m = scrape(b.metrics_addr().unwrap());
    assert_eq!(sum(&m, "sipshard_received_total", &[]), 40.0);
    assert!(
        !m.keys().any(|k| k.starts_with("sipshard_residence")),
        "{:?}",
        m.keys()
            .filter(|k| k.starts_with("sipshard_residence"))
            .collect::<Vec<_>>()
    );
    b.stop();
    responder.stop();
}

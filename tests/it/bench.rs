//! `sipshard bench` against real peers on loopback: every call or request completes against
//! the responder (directly and through the balancer), and against a peer that answers
//! nothing, loss shows up as retransmissions and timeouts, not hangs.

use crate::support::process::serial;
use sipshard::balance::Backend;
use sipshard::shard::{start, PlaneConfig};
use sipshard::tools::bench::engine::Mode;
use sipshard::tools::bench::{run_load, Load};
use sipshard::tools::responder::Responder;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn load(target: SocketAddr, mode: Mode, rate: f64, count: u64, workers: usize) -> Load {
    Load {
        count: Some(count),
        workers,
        timeout: Duration::from_secs(5),
        ..Load::new(target, mode, rate)
    }
}

#[test]
fn calls_and_messages_complete_against_the_responder() {
    let _serial = serial();
    let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let calls = run_load(&load(responder.addr(), Mode::Calls, 2000.0, 1000, 2)).unwrap();
    assert_eq!(
        (
            calls.offered,
            calls.completed,
            calls.failed,
            calls.timed_out
        ),
        (1000, 1000, 0, 0)
    );
    // INVITE, ACK, BYE out; 100, 180, 200, 200 back.
    assert_eq!((calls.sent, calls.received), (3000, 4000));
    assert_eq!(calls.latency_us.count, 1000);
    assert_eq!(calls.call_us.as_ref().unwrap().count, 1000);
    let options = run_load(&load(
        responder.addr(),
        Mode::Messages("OPTIONS".into()),
        5000.0,
        2000,
        1,
    ))
    .unwrap();
    assert_eq!(
        (options.completed, options.sent, options.received),
        (2000, 2000, 2000)
    );
    let invites = run_load(&load(
        responder.addr(),
        Mode::Messages("INVITE".into()),
        5000.0,
        500,
        1,
    ))
    .unwrap();
    // INVITE and its ACK out; 100, 180, 200 back.
    assert_eq!(
        (invites.completed, invites.sent, invites.received),
        (500, 1000, 1500)
    );
    let seen = responder.stop();
    assert_eq!(seen.count("INVITE"), 1500);
    assert_eq!(seen.count("BYE"), 1000);
    assert_eq!(seen.count("OPTIONS"), 2000);
}

/// 1,000 calls through a balancer, with and without record-routing. With it, the
/// responder copies our Record-Route into its 180 and 200 and the bench's ACK and BYE
/// follow that route set, so every in-dialog request reaches its backend by the pin.
#[test]
fn calls_complete_through_the_balancer() {
    for record_route in [false, true] {
        let _serial = serial();
        let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
        let plane = start(&PlaneConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            advertise: None,
            internal_ip: "127.0.0.1".parse().unwrap(),
            internal_base_port: None,
            backends: vec![Backend {
                addr: responder.addr(),
                weight: 1,
                up: true,
            }],
            workers: 1,
            pin: false,
            secret: b"bench-test".to_vec(),
            retry_after: 5,
            table_size: 65537,
            residence_time: true,
            steering: sipshard::net::Steering::Random,
            busy_poll: std::time::Duration::ZERO,
            record_route,
            path: false,
            mode: sipshard::proxy::Mode::Proxy,
            relay: None,
        })
        .unwrap();
        let target = plane.public_addrs()[0];
        let report = run_load(&load(target, Mode::Calls, 2000.0, 1000, 1)).unwrap();
        assert!(report.all_completed(), "{}", report.text());
        let backend = plane.publisher().backend_totals()[&responder.addr()];
        let counters = plane.stop();
        assert_eq!(counters.requests_forwarded, 3000);
        assert_eq!(counters.responses_forwarded, 4000);
        assert_eq!((backend.new_calls, backend.in_dialog), (1000, 2000));
        let pinned = if record_route { 2000 } else { 0 };
        assert_eq!(backend.pinned, pinned, "record-route {record_route}");
        responder.stop();
    }
}

#[test]
fn loss_shows_as_retransmissions_and_timeouts() {
    let _serial = serial();
    // A socket that reads nothing: every request is lost.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut lost = load(silent.local_addr().unwrap(), Mode::Calls, 100.0, 5, 1);
    lost.timeout = Duration::from_millis(1600);
    let report = run_load(&lost).unwrap();
    assert_eq!(
        (report.offered, report.completed, report.timed_out),
        (5, 0, 5)
    );
    // T1 = 500 ms doubling: retransmissions at 0.5 s and 1.5 s before the 1.6 s timeout.
    assert_eq!(report.retransmissions, 10, "{}", report.text());
    // Messages mode does not retransmit: loss is counted exactly.
    let mut lost = load(
        silent.local_addr().unwrap(),
        Mode::Messages("OPTIONS".into()),
        100.0,
        5,
        1,
    );
    lost.timeout = Duration::from_millis(600);
    let report = run_load(&lost).unwrap();
    assert_eq!(
        (report.timed_out, report.retransmissions, report.sent),
        (5, 0, 5)
    );
}

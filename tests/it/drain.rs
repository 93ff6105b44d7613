//! Draining a backend through the control API (`sipshard ctl drain`): no new calls reach it,
//! the requests of its dialogs (pinned by our Record-Route entry) still do, the status says
//! so, and `enable` puts it back.

use crate::support::farm::{
    balance_args, balancer, send_call_ids, wait_for_state, RecordingBackend, Seen,
};
use crate::support::lab::request;
use crate::support::process::serial;
use sipshard::control::{Operation, State};
use sipshard::sip::BranchKey;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "drain-test";

/// Sends `msg` from a fresh socket until it is answered (a few tries).
fn send_until_answered(balancer: SocketAddr, call_id: &str, extra: &str) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let msg = request(
        "OPTIONS",
        client.local_addr().unwrap(),
        "z9hG4bKdr1",
        call_id,
        extra,
    );
    let mut buf = [0u8; 4096];
    for _ in 0..10 {
        client.send_to(msg.as_bytes(), balancer).unwrap();
        if client.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("{call_id} unanswered");
}

fn count_on(seen: &Seen, prefix: &str, index: usize) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(id, &i)| id.starts_with(prefix) && i == index)
        .count()
}

#[test]
fn a_drained_backend_takes_no_new_calls_and_keeps_its_dialogs() {
    let _serial = serial();
    let seen: Seen = Arc::new(Mutex::new(HashMap::new()));
    let backends: Vec<RecordingBackend> = (0..2)
        .map(|i| RecordingBackend::start("127.0.0.1:0".parse().unwrap(), i, seen.clone()))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let b = balancer(&balance_args(
        &addrs,
        &[
            "--workers",
            "1",
            "--secret",
            SECRET,
            "--probe-interval-ms",
            "100",
        ],
    ));
    let public = b.public_addrs()[0];
    let limit = Duration::from_secs(3);

    // Before: new calls spread over both.
    let ids = |tag: &str| -> Vec<String> { (0..200).map(|i| format!("{tag}-{i}")).collect() };
    send_call_ids(public, &ids("before"));
    assert!(count_on(&seen, "before-", 0) > 0 && count_on(&seen, "before-", 1) > 0);

    let answer = b.control().operate(addrs[0], Operation::Drain).unwrap();
    assert_eq!(answer, format!("{}: up, drained", addrs[0]));
    wait_for_state(&b, addrs[0], State::Up, limit);

    // Drained: no new call reaches it.
    send_call_ids(public, &ids("drained"));
    assert_eq!(count_on(&seen, "drained-", 0), 0);
    assert_eq!(count_on(&seen, "drained-", 1), 200);

    // A request of one of its dialogs (our Route entry, pinned to it) still does.
    let pin = BranchKey::new(SECRET.as_bytes()).pin(addrs[0]).text();
    let route = format!(
        "Route: <sip:{public};lr;pin={}>\r\n",
        String::from_utf8_lossy(pin.as_bytes())
    );
    send_until_answered(public, "dialog-of-drained", &route);
    assert_eq!(seen.lock().unwrap().get("dialog-of-drained"), Some(&0));

    let status = b.control().status().unwrap();
    let drained = status.backends.iter().find(|s| s.addr == addrs[0]).unwrap();
    assert!(drained.drained && drained.state == State::Up, "{drained:?}");
    assert_eq!(drained.weight, 1, "the configured weight is kept");
    assert!(drained.pinned_requests >= 1, "{drained:?}");

    // Enabled again: new calls reach it.
    b.control().operate(addrs[0], Operation::Enable).unwrap();
    wait_for_state(&b, addrs[0], State::Up, limit);
    send_call_ids(public, &ids("after"));
    assert!(count_on(&seen, "after-", 0) > 0);
    let status = b.control().status().unwrap();
    assert!(!status.backends.iter().any(|s| s.drained), "{status:?}");
    b.stop();
}

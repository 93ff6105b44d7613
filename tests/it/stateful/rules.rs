//! Each rule of the stateful mode, as datagrams on loopback.

use super::*;

const WAIT: Duration = Duration::from_millis(1500);
const QUIET: Duration = Duration::from_millis(300);

/// The first datagram starting with `start` on any backend: (backend, text, sender).
fn at_some_backend(lab: &StatefulLab, start: &str) -> (usize, String, SocketAddr) {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        for (i, socket) in lab.backends.iter().enumerate() {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with(start) {
                    return (i, text, from);
                }
            }
        }
    }
    panic!("no {start:?} at any backend");
}

fn starts(got: &[(String, SocketAddr)], start: &str) -> usize {
    got.iter().filter(|(m, _)| m.starts_with(start)).count()
}

#[test]
fn an_invite_gets_100_trying_and_its_retransmissions_never_reach_the_backend() {
    let lab = StatefulLab::start(1, test_relay());
    let me = lab.client_addr();
    let invite = request("INVITE", me, "z9hG4bK-absorb", "absorb@x", "");
    lab.client_sends(&invite);
    expect(&lab.client, "SIP/2.0 100 Trying", WAIT);
    let (forwarded, balancer) = expect(&lab.backends[0], "INVITE ", WAIT);
    // Retransmissions: answered with the kept 100, never forwarded.
    lab.client_sends(&invite);
    expect(&lab.client, "SIP/2.0 100 Trying", WAIT);
    lab.backend_sends(
        0,
        &respond(&forwarded, "180 Ringing", "b1", balancer),
        balancer,
    );
    expect(&lab.client, "SIP/2.0 180 Ringing", WAIT);
    lab.client_sends(&invite);
    expect(&lab.client, "SIP/2.0 180 Ringing", WAIT);
    lab.backend_sends(
        0,
        &respond(&forwarded, "486 Busy Here", "b1", balancer),
        balancer,
    );
    let (busy, _) = expect(&lab.client, "SIP/2.0 486", WAIT);
    assert_eq!(top_branch(&busy), "z9hG4bK-absorb", "our Via is gone");
    // The balancer ACKs the 486 itself, on the INVITE's branch.
    let (ack, _) = expect(&lab.backends[0], "ACK ", WAIT);
    assert_eq!(top_branch(&ack), top_branch(&forwarded));
    // The client's ACK of the 486 ends here.
    lab.client_sends(&request("ACK", me, "z9hG4bK-absorb", "absorb@x", ""));
    let later = drain(&lab.backends[0], QUIET);
    assert_eq!(starts(&later, "INVITE"), 0, "{later:?}");
    assert_eq!(starts(&later, "ACK"), 0, "{later:?}");
    let counters = lab.stop();
    assert_eq!(
        counters.absorbed, 3,
        "two INVITE retransmissions and the ACK"
    );
}

#[test]
fn a_503_moves_the_call_and_the_dialog_stays_on_the_backend_that_answered() {
    let lab = StatefulLab::start(2, test_relay());
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-moved", "moved@x", ""));
    let (first, invite, balancer) = at_some_backend(&lab, "INVITE ");
    let second = 1 - first;
    lab.backend_sends(
        first,
        &respond(&invite, "503 Service Unavailable", "f", balancer),
        balancer,
    );
    // Its 503 is ACKed by the balancer, and the INVITE goes to the other backend on a branch
    // of its own, pinned to it.
    let (ack, _) = expect(&lab.backends[first], "ACK ", WAIT);
    assert_eq!(top_branch(&ack), top_branch(&invite));
    let (moved, balancer2) = expect(&lab.backends[second], "INVITE ", WAIT);
    assert_ne!(top_branch(&moved), top_branch(&invite));
    let rr_first: Vec<&str> = invite
        .lines()
        .filter(|l| l.starts_with("Record-Route"))
        .collect();
    let rr_moved: Vec<&str> = moved
        .lines()
        .filter(|l| l.starts_with("Record-Route"))
        .collect();
    assert_eq!(rr_moved.len(), 2);
    assert_ne!(rr_first, rr_moved, "the pin names the new backend");
    let ok = respond(
        &moved,
        "200 OK",
        "s",
        lab.backends[second].local_addr().unwrap(),
    );
    lab.backend_sends(second, &ok, balancer2);
    let (ok, _) = expect(&lab.client, "SIP/2.0 200", WAIT);
    // ACK and BYE follow the route set to the backend that answered.
    lab.client_sends(&in_dialog("ACK", &ok, me, "z9hG4bK-moved-ack", 1));
    expect(&lab.backends[second], "ACK ", WAIT);
    lab.client_sends(&in_dialog("BYE", &ok, me, "z9hG4bK-moved-bye", 2));
    let (bye, from) = expect(&lab.backends[second], "BYE ", WAIT);
    lab.backend_sends(second, &ok_to(&bye), from);
    expect(&lab.client, "SIP/2.0 200", WAIT);
    let to_first = drain(&lab.backends[first], QUIET);
    assert_eq!(
        to_first.len(),
        0,
        "nothing more for the failed one: {to_first:?}"
    );
    // The 503, not relayed, still counts against the backend that sent it, with the
    // failure.
    let totals = lab.plane.publisher().backend_totals();
    let failed = totals[&lab.backends[first].local_addr().unwrap()];
    assert_eq!((failed.responses[4], failed.failures), (1, 1), "{failed:?}");
    let counters = lab.stop();
    assert_eq!(counters.failovers_status, 1);
    assert_eq!(counters.branches, 1);
}

#[test]
fn a_silent_backend_loses_the_call_after_the_failover_time() {
    let lab = StatefulLab::start(2, test_relay());
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-silent", "silent@x", ""));
    let (first, invite, _) = at_some_backend(&lab, "INVITE ");
    let started = Instant::now();
    // The first backend never answers: after 400 ms the other one gets the call.
    let (moved, balancer) = expect(&lab.backends[1 - first], "INVITE ", WAIT);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(top_branch(&moved), top_branch(&invite));
    let contact = lab.backends[1 - first].local_addr().unwrap();
    lab.backend_sends(
        1 - first,
        &respond(&moved, "200 OK", "s", contact),
        balancer,
    );
    expect(&lab.client, "SIP/2.0 200", WAIT);
    // Meanwhile the silent one got our retransmissions (timer A) of its own branch.
    let resent = drain(&lab.backends[first], QUIET);
    assert!(resent
        .iter()
        .all(|(m, _)| m.starts_with("INVITE ") && top_branch(m) == top_branch(&invite)));
    let counters = lab.stop();
    assert_eq!(counters.failovers_no_answer, 1);
}

#[test]
fn when_nobody_answers_the_client_gets_408_and_our_retransmissions_went_out() {
    let relay = RelayConfig {
        max_attempts: 1,
        failover_after_ns: None,
        timers: Timers {
            t1_ns: 30 * MS,
            t2_ns: 400 * MS,
            t4_ns: 500 * MS,
            linger_ns: 500 * MS,
        },
        ..test_relay()
    };
    let lab = StatefulLab::start(1, relay);
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-408", "timeout@x", ""));
    // Timer B: 64 T1 = 1.92 s.
    let (timeout, _) = expect(&lab.client, "SIP/2.0 408", Duration::from_secs(4));
    assert_eq!(top_branch(&timeout), "z9hG4bK-408");
    assert!(header(&timeout, "To").unwrap().contains("tag="));
    // Timer A sent the INVITE again at 30, 90, 210, 450, 930 ms... on its one branch.
    let copies = drain(&lab.backends[0], QUIET);
    assert!(copies.len() >= 5, "{} copies", copies.len());
    assert!(copies
        .iter()
        .all(|(m, _)| top_branch(m) == top_branch(&copies[0].0)));
    let after = drain(&lab.backends[0], QUIET);
    assert!(after.is_empty(), "nothing after timer B: {after:?}");
    let counters = lab.stop();
    assert_eq!(counters.timeouts, 1);
}

#[test]
fn a_fork_relays_the_first_2xx_cancels_the_loser_and_keeps_its_487() {
    let lab = forking_lab();
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-fork", "fork@x", ""));
    let (a, invite_a, balancer_a) = expect_both(&lab);
    let (invite_b, balancer_b) = invite_a.1.clone();
    let (b, invite_a) = (1 - a, invite_a.0);
    assert_ne!(top_branch(&invite_a), top_branch(&invite_b));
    for (i, inv, to) in [(a, &invite_a, balancer_a), (b, &invite_b, balancer_b)] {
        lab.backend_sends(i, &respond(inv, "180 Ringing", &format!("t{i}"), to), to);
    }
    expect(&lab.client, "SIP/2.0 180", WAIT);
    expect(&lab.client, "SIP/2.0 180", WAIT);
    let contact = lab.backends[a].local_addr().unwrap();
    lab.backend_sends(a, &respond(&invite_a, "200 OK", "ta", contact), balancer_a);
    expect(&lab.client, "SIP/2.0 200", WAIT);
    // The loser gets a CANCEL with its INVITE's branch; its 487 is ACKed, not relayed.
    let (cancel, from) = expect(&lab.backends[b], "CANCEL ", WAIT);
    assert_eq!(top_branch(&cancel), top_branch(&invite_b));
    lab.backend_sends(b, &ok_to(&cancel), from);
    lab.backend_sends(
        b,
        &respond(&invite_b, "487 Request Terminated", "tb", from),
        from,
    );
    let (ack, _) = expect(&lab.backends[b], "ACK ", WAIT);
    assert_eq!(top_branch(&ack), top_branch(&invite_b));
    let client_got = drain(&lab.client, QUIET);
    assert_eq!(starts(&client_got, "SIP/2.0 487"), 0, "{client_got:?}");
    let counters = lab.stop();
    assert_eq!((counters.forks, counters.cancels_sent), (1, 1));
}

/// The INVITE at both backends: (the first backend, (its INVITE, (the other's INVITE and
/// sender)), the first's sender).
#[allow(clippy::type_complexity)]
fn expect_both(lab: &StatefulLab) -> (usize, (String, (String, SocketAddr)), SocketAddr) {
    let (a, invite_a, balancer_a) = at_some_backend(lab, "INVITE ");
    let (invite_b, balancer_b) = expect(&lab.backends[1 - a], "INVITE ", WAIT);
    (a, (invite_a, (invite_b, balancer_b)), balancer_a)
}

#[test]
fn a_6xx_ends_the_fork() {
    let lab = forking_lab();
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-6xx", "global@x", ""));
    let (a, (invite_a, (invite_b, balancer_b)), balancer_a) = expect_both(&lab);
    let b = 1 - a;
    lab.backend_sends(
        b,
        &respond(&invite_b, "180 Ringing", "tb", balancer_b),
        balancer_b,
    );
    expect(&lab.client, "SIP/2.0 180", WAIT);
    lab.backend_sends(
        a,
        &respond(&invite_a, "603 Decline", "ta", balancer_a),
        balancer_a,
    );
    let (cancel, from) = expect(&lab.backends[b], "CANCEL ", WAIT);
    assert_eq!(top_branch(&cancel), top_branch(&invite_b));
    lab.backend_sends(b, &ok_to(&cancel), from);
    lab.backend_sends(
        b,
        &respond(&invite_b, "487 Request Terminated", "tb", from),
        from,
    );
    expect(&lab.client, "SIP/2.0 603", WAIT);
    let rest = drain(&lab.client, QUIET);
    assert_eq!(starts(&rest, "SIP/2.0 4"), 0, "only the 603: {rest:?}");
    lab.stop();
}

#[test]
fn a_client_cancel_mid_fork_cancels_every_branch_and_a_late_2xx_still_goes_through() {
    let lab = forking_lab();
    let me = lab.client_addr();
    let invite = request("INVITE", me, "z9hG4bK-cxl", "cancel@x", "");
    lab.client_sends(&invite);
    let (a, (invite_a, (invite_b, balancer_b)), balancer_a) = expect_both(&lab);
    let b = 1 - a;
    lab.backend_sends(
        a,
        &respond(&invite_a, "180 Ringing", "ta", balancer_a),
        balancer_a,
    );
    lab.backend_sends(
        b,
        &respond(&invite_b, "180 Ringing", "tb", balancer_b),
        balancer_b,
    );
    expect(&lab.client, "SIP/2.0 180", WAIT);
    expect(&lab.client, "SIP/2.0 180", WAIT);
    let cancel = invite
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    lab.client_sends(&cancel);
    let (ok, _) = expect(&lab.client, "SIP/2.0 200", WAIT);
    assert!(header(&ok, "CSeq").unwrap().ends_with("CANCEL"));
    let (cancel_a, from_a) = expect(&lab.backends[a], "CANCEL ", WAIT);
    let (cancel_b, from_b) = expect(&lab.backends[b], "CANCEL ", WAIT);
    assert_eq!(top_branch(&cancel_a), top_branch(&invite_a));
    assert_eq!(top_branch(&cancel_b), top_branch(&invite_b));
    // A retransmitted CANCEL: 200 again, nothing more to the backends.
    lab.client_sends(&cancel);
    expect(&lab.client, "SIP/2.0 200", WAIT);
    // Backend a had already answered: its 200 crosses the CANCEL and goes through;
    // backend b's 487 is the INVITE's answer no more (a 2xx went), and is ACKed.
    lab.backend_sends(a, &ok_to(&cancel_a), from_a);
    let contact = lab.backends[a].local_addr().unwrap();
    lab.backend_sends(a, &respond(&invite_a, "200 OK", "ta", contact), from_a);
    expect(&lab.client, "SIP/2.0 200 OK", WAIT);
    lab.backend_sends(b, &ok_to(&cancel_b), from_b);
    lab.backend_sends(
        b,
        &respond(&invite_b, "487 Request Terminated", "tb", from_b),
        from_b,
    );
    expect(&lab.backends[b], "ACK ", WAIT);
    let rest = drain(&lab.client, QUIET);
    assert_eq!(starts(&rest, "SIP/2.0 487"), 0, "{rest:?}");
    let more = drain(&lab.backends[a], QUIET);
    assert_eq!(starts(&more, "CANCEL"), 0, "{more:?}");
    let counters = lab.stop();
    assert_eq!(counters.client_cancels, 1);
    assert_eq!(counters.cancels_sent, 2);
}

#[test]
fn a_client_cancel_gets_the_backends_487() {
    let lab = StatefulLab::start(1, test_relay());
    let me = lab.client_addr();
    let invite = request("INVITE", me, "z9hG4bK-c487", "c487@x", "");
    lab.client_sends(&invite);
    let (forwarded, balancer) = expect(&lab.backends[0], "INVITE ", WAIT);
    lab.backend_sends(
        0,
        &respond(&forwarded, "180 Ringing", "t", balancer),
        balancer,
    );
    expect(&lab.client, "SIP/2.0 180", WAIT);
    let cancel = invite
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    lab.client_sends(&cancel);
    expect(&lab.client, "SIP/2.0 200", WAIT);
    let (cancel, from) = expect(&lab.backends[0], "CANCEL ", WAIT);
    lab.backend_sends(0, &ok_to(&cancel), from);
    lab.backend_sends(
        0,
        &respond(&forwarded, "487 Request Terminated", "t", from),
        from,
    );
    let (terminated, _) = expect(&lab.client, "SIP/2.0 487", WAIT);
    assert!(header(&terminated, "CSeq").unwrap().ends_with("INVITE"));
    expect(&lab.backends[0], "ACK ", WAIT);
    lab.stop();
}

#[test]
fn a_full_table_answers_503_with_retry_after() {
    let relay = RelayConfig {
        capacity: 1,
        ..test_relay()
    };
    let lab = StatefulLab::start(1, relay);
    let me = lab.client_addr();
    lab.client_sends(&request("INVITE", me, "z9hG4bK-full1", "full1@x", ""));
    expect(&lab.backends[0], "INVITE ", WAIT);
    lab.client_sends(&request("INVITE", me, "z9hG4bK-full2", "full2@x", ""));
    let (refused, _) = expect(&lab.client, "SIP/2.0 503", WAIT);
    assert_eq!(header(&refused, "Retry-After"), Some("7"));
    let counters = lab.stop();
    assert_eq!(counters.table_full, 1);
    assert_eq!(counters.transactions, 1);
}

/// Two backends, every dialog-creating INVITE forked to both.
fn forking_lab() -> StatefulLab {
    let relay = RelayConfig {
        fork: 2,
        ..test_relay()
    };
    StatefulLab::start(2, relay)
}

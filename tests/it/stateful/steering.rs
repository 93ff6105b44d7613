//! Call-ID steering under the stateful mode: one peer (one source address and port, like a
//! busy trunk) spreads its calls over both shards, and every message of a call reaches the
//! shard holding its transaction: each INVITE's retransmission is absorbed there, none
//! reaches the backend.

use super::*;
use sipshard::balance::owner_shard;

const CALLS: usize = 400;

#[test]
fn one_peers_calls_spread_over_both_shards_and_each_stays_on_its_owner() {
    let lab = StatefulLab::start_with(1, quiet_relay(1024), 2, Steering::CallId);
    let me = lab.client_addr();
    let call_id = |n: usize| format!("trunk-{n}@steer.example.com");
    // In rounds of 20 calls (an INVITE and its retransmission each), so that no socket
    // buffer can overflow.
    let mut forwarded = 0;
    for round in 0..CALLS / 20 {
        for n in round * 20..(round + 1) * 20 {
            let invite = request("INVITE", me, &format!("z9hG4bK-st{n}"), &call_id(n), "");
            lab.client_sends(&invite);
            lab.client_sends(&invite);
        }
        forwarded += drain(&lab.backends[0], Duration::from_millis(100))
            .iter()
            .filter(|(m, _)| m.starts_with("INVITE "))
            .count();
    }
    forwarded += drain(&lab.backends[0], Duration::from_millis(300)).len();
    let counts = lab.plane.steering_counts();
    let shards = lab.plane.stop_each();
    assert_eq!(forwarded, CALLS, "each INVITE forwarded once");
    let absorbed: u64 = shards.iter().map(|c| c.relay.absorbed).sum();
    assert_eq!(
        absorbed, CALLS as u64,
        "each retransmission absorbed by its owner"
    );
    let mut owned = [0u64; 2];
    for n in 0..CALLS {
        owned[owner_shard(call_id(n).as_bytes(), 2)] += 1;
    }
    let live: Vec<u64> = shards.iter().map(|c| c.relay.transactions).collect();
    assert_eq!(
        live, owned,
        "each shard holds the transactions of the calls it owns"
    );
    for c in &shards {
        let share = c.relay.transactions as f64 / CALLS as f64;
        assert!((0.4..=0.6).contains(&share), "{live:?}");
    }
    let counts = counts.expect("the Call-ID program runs (tests run as root)");
    assert_eq!(counts.fallback, 0);
}

#[test]
fn requests_reaching_another_shard_are_handed_to_the_owner() {
    // Flow steering keeps the one client on one shard: the calls the other shard owns
    // reach the wrong one, and must be handed over to the shard whose internal socket
    // their responses come back to.
    let lab = StatefulLab::start_with(1, quiet_relay(256), 2, Steering::Flow);
    let me = lab.client_addr();
    const N: usize = 40;
    let call_id = |n: usize| format!("handed-{n}@flow.example.com");
    for n in 0..N {
        let invite = request("INVITE", me, &format!("z9hG4bK-ho{n}"), &call_id(n), "");
        lab.client_sends(&invite);
        let (forwarded, balancer) = expect(&lab.backends[0], "INVITE ", Duration::from_secs(1));
        expect(&lab.client, "SIP/2.0 100", Duration::from_secs(1));
        let ringing = respond(&forwarded, "180 Ringing", "r", balancer);
        lab.backend_sends(0, &ringing, balancer);
        expect(&lab.client, "SIP/2.0 180", Duration::from_secs(1));
        // The retransmission reaches the transaction that saw the 180, whichever shard
        // the kernel gave it to.
        lab.client_sends(&invite);
        expect(&lab.client, "SIP/2.0 180", Duration::from_secs(1));
    }
    let late = drain(&lab.backends[0], Duration::from_millis(200));
    let shards = lab.plane.stop_each();
    let total = sipshard::shard::total(&shards);
    assert_eq!(
        starts_with(&late, "INVITE "),
        0,
        "no INVITE forwarded twice"
    );
    assert_eq!(
        total.relay.absorbed, N as u64,
        "each retransmission answered"
    );
    assert_eq!(total.relay.handed, total.relay.taken);
    assert_eq!(total.relay.handoff_refused, 0);
    // The client's datagrams all reached one shard; the calls the other owns went over,
    // both the INVITE and its copy.
    let client_shard = shards
        .iter()
        .position(|c| c.received >= 2 * N as u64)
        .expect("one shard took every client datagram");
    let owned_elsewhere = (0..N)
        .filter(|&n| owner_shard(call_id(n).as_bytes(), 2) != client_shard)
        .count();
    assert!(owned_elsewhere > 0);
    assert_eq!(total.relay.handed, 2 * owned_elsewhere as u64);
}

fn starts_with(got: &[(String, SocketAddr)], start: &str) -> usize {
    got.iter().filter(|(m, _)| m.starts_with(start)).count()
}

/// Room for `capacity` transactions, and no retransmission or failover of our own within
/// a test's few seconds.
fn quiet_relay(capacity: usize) -> RelayConfig {
    RelayConfig {
        timers: Timers {
            t1_ns: 5_000 * MS,
            t2_ns: 5_000 * MS,
            t4_ns: 5_000 * MS,
            linger_ns: 5_000 * MS,
        },
        failover_after_ns: None,
        capacity,
        ..test_relay()
    }
}

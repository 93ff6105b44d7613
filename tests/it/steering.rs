//! How public datagrams spread over the shards. With `--steering callid` (the default) the
//! datagrams of one peer (one source address and port, like a busy SIP trunk) reach the
//! shard that owns each one's call, so they spread over every shard call by call; with
//! `--steering random` each datagram goes to any shard; with `--steering flow` the
//! kernel's hash keeps them all on one.

use crate::support::lab::*;
use sipshard::net::{shard_of, Steering, SteeringCounts};

const REQUESTS: u64 = 200;

/// Sends `REQUESTS` OPTIONS from the lab's one client socket; returns what each shard
/// received (the backend does not answer, so every datagram counted is a public one).
fn received_per_shard(steering: Steering) -> Vec<u64> {
    received_per_shard_by_call(steering, |n| format!("steer-{n}@test")).0
}

/// [`received_per_shard`] with the Call-ID of request `n` from `call_id`; also returns the
/// Call-ID steering program's counts.
fn received_per_shard_by_call(
    steering: Steering,
    call_id: impl Fn(u64) -> String,
) -> (Vec<u64>, Option<SteeringCounts>) {
    let lab = Lab::with_steering(false, 2, 1, steering);
    let me = lab.client.local_addr().unwrap();
    // In rounds of 20, so that no socket buffer can overflow.
    for round in 0..REQUESTS / 20 {
        for n in round * 20..(round + 1) * 20 {
            lab.client_sends(&request(
                "OPTIONS",
                me,
                &format!("z9hG4bKsteer{n}"),
                &call_id(n),
                "Max-Forwards: 70\r\n",
            ));
        }
        for n in round * 20..(round + 1) * 20 {
            let (forwarded, _) =
                recv(&lab.backend).unwrap_or_else(|| panic!("request {n} not forwarded"));
            assert!(forwarded.starts_with("OPTIONS "), "{forwarded}");
        }
    }
    let counts = lab.plane.steering_counts();
    let shards = lab.plane.stop_each();
    let total = sipshard::shard::total(&shards);
    assert_eq!(total.requests_forwarded, REQUESTS);
    (shards.iter().map(|c| c.received).collect(), counts)
}

#[test]
fn callid_steering_places_every_call_on_the_shard_that_owns_it() {
    // 100 calls of two requests each, from one socket.
    let call_id = |n: u64| format!("call-{}@trunk.example.com", n % 100);
    let (per_shard, counts) = received_per_shard_by_call(Steering::CallId, call_id);
    let mut owned = vec![0u64; 2];
    for n in 0..REQUESTS {
        owned[shard_of(call_id(n).as_bytes(), 2) as usize] += 1;
    }
    // Exactly where the owner function says (so both requests of a call on one shard),
    // and spread over both.
    assert_eq!(per_shard, owned);
    assert!(per_shard.iter().all(|&n| n >= 60), "{per_shard:?}");
    let counts = counts.expect("the Call-ID program runs (tests run as root)");
    assert_eq!((counts.classified, counts.fallback), (REQUESTS, 0));
}

#[test]
fn random_steering_spreads_one_peer_over_every_shard() {
    let per_shard = received_per_shard(Steering::Random);
    assert_eq!(per_shard.iter().sum::<u64>(), REQUESTS);
    // About 100 each; fewer than 50 on one shard has a probability below 1e-12.
    assert!(per_shard.iter().all(|&n| n >= 50), "{per_shard:?}");
}

#[test]
fn flow_steering_keeps_one_peer_on_one_shard() {
    let mut per_shard = received_per_shard(Steering::Flow);
    per_shard.sort_unstable();
    assert_eq!(per_shard, vec![0, REQUESTS]);
}

//! How public datagrams spread over the shards: with `--steering random` (the default) the
//! datagrams of one peer — one source address and port, like a busy SIP trunk — reach every
//! shard; with `--steering flow` the kernel's hash keeps them on one.

use crate::support::lab::*;
use sipshard::net::Steering;

const REQUESTS: u64 = 200;

/// Sends `REQUESTS` OPTIONS from the lab's one client socket; returns what each shard
/// received (the backend does not answer, so every datagram counted is a public one).
fn received_per_shard(steering: Steering) -> Vec<u64> {
    let lab = Lab::with_steering(false, 2, 1, steering);
    let me = lab.client.local_addr().unwrap();
    // In rounds of 20, so that no socket buffer can overflow.
    for round in 0..REQUESTS / 20 {
        for n in round * 20..(round + 1) * 20 {
            lab.client_sends(&request(
                "OPTIONS",
                me,
                &format!("z9hG4bKsteer{n}"),
                &format!("steer-{n}@test"),
                "Max-Forwards: 70\r\n",
            ));
        }
        for n in round * 20..(round + 1) * 20 {
            let (forwarded, _) =
                recv(&lab.backend).unwrap_or_else(|| panic!("request {n} not forwarded"));
            assert!(forwarded.starts_with("OPTIONS "), "{forwarded}");
        }
    }
    let shards = lab.plane.stop_each();
    let total = sipshard::shard::total(&shards);
    assert_eq!(total.requests_forwarded, REQUESTS);
    shards.iter().map(|c| c.received).collect()
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

//! How public datagrams spread over the shards. With `--steering callid` (the default) the
//! datagrams of one peer (one source address and port, like a busy SIP trunk) reach the
//! shard that owns each one's call, so they spread over every shard call by call; with
//! `--steering random` each datagram goes to any shard; with `--steering flow` the
//! kernel's hash keeps them all on one.

use crate::support::lab::*;
use sipshard::balance::owner_shard;
use sipshard::net::{Steering, SteeringCounts};

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
        owned[owner_shard(call_id(n).as_bytes(), 2)] += 1;
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

/// A small xorshift generator, so the test is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A SIP-like datagram, often malformed: Via lines, look-alike headers, a Call-ID in
/// either form and any case with blanks around the colon and values of any length,
/// sometimes cut short or with one byte changed.
fn random_datagram(rng: &mut Rng) -> Vec<u8> {
    let eol = if rng.below(4) == 0 { "\n" } else { "\r\n" };
    let mut m = format!("REGISTER sip:example.com SIP/2.0{eol}");
    for v in 0..rng.below(30) {
        m += &format!("Via: SIP/2.0/UDP 10.0.0.{v}:5060;branch=z9hG4bK{v}{eol}");
    }
    if rng.below(3) == 0 {
        m += [
            "Call-IDs: no",
            "iX: no",
            "Call-Info: no",
            "I-am: no",
            "call-i: no",
        ][rng.below(5)];
        m += eol;
    }
    let name: String = if rng.below(2) == 0 { "Call-ID" } else { "i" }
        .chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let mut blanks = |n: usize| -> String {
        (0..n)
            .map(|_| if rng.below(3) == 0 { '\t' } else { ' ' })
            .collect()
    };
    let (before, after, trailing) = (blanks(10), blanks(3), blanks(2));
    let long = rng.below(4) == 0;
    let length = 1 + rng.below(if long { 300 } else { 60 });
    let value: String = (0..length)
        .map(|_| (b'!' + rng.below(94) as u8) as char)
        .collect();
    let before = &before[..rng.below(before.len() + 1)];
    m += &format!("{name}{before}:{after}{value}{trailing}{eol}CSeq: 1 REGISTER{eol}{eol}");
    let mut d = m.into_bytes();
    if rng.below(6) == 0 {
        let cut = rng.below(d.len() + 1);
        d.truncate(cut);
    }
    if rng.below(8) == 0 && !d.is_empty() {
        let at = rng.below(d.len());
        d[at] = rng.below(256) as u8;
    }
    d
}

/// The kernel program and its Rust model agree on every one of 2,000 random datagrams,
/// IPv4 and IPv6, two and four sockets: each one the model places arrives at its shard's
/// socket, and the program's counts equal the model's.
#[test]
fn the_call_id_program_agrees_with_its_rust_model() {
    use sipshard::net::{find_call_id, reuseport_group, CallIdSteering, Limits};
    use std::os::fd::AsRawFd;
    let limits = Limits::default();
    for (bind, sockets) in [("127.0.0.1:0", 2), ("[::1]:0", 2), ("127.0.0.1:0", 4)] {
        let (group, addr) = reuseport_group(bind.parse().unwrap(), sockets).unwrap();
        let fds: Vec<_> = group.iter().map(|s| s.as_raw_fd()).collect();
        let program = CallIdSteering::attach(&fds, &limits).expect("loads (tests run as root)");
        let group: Vec<std::net::UdpSocket> = group.into_iter().map(Into::into).collect();
        let sender = std::net::UdpSocket::bind(std::net::SocketAddr::new(addr.ip(), 0)).unwrap();
        let mut rng = Rng(0xf022 + sockets as u64);
        let (mut classified, mut fallback, mut misplaced, mut received) = (0, 0, 0, 0);
        let mut buf = vec![0u8; 65536];
        // In rounds of 50, drained in between, so that no receive buffer overflows.
        for _ in 0..40 {
            for _ in 0..50 {
                let d = random_datagram(&mut rng);
                match find_call_id(&d, &limits) {
                    Some(_) => classified += 1,
                    None => fallback += 1,
                }
                sender.send_to(&d, addr).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            for (k, socket) in group.iter().enumerate() {
                // Non-blocking: the loop ends once the socket is empty.
                while let Ok(n) = socket.recv(&mut buf) {
                    received += 1;
                    if let Some(value) = find_call_id(&buf[..n], &limits) {
                        misplaced += usize::from(owner_shard(value, sockets) != k);
                    }
                }
            }
        }
        let counts = program.counts().unwrap();
        assert_eq!((received, misplaced), (2000, 0), "{bind} x{sockets}");
        assert_eq!(
            (counts.classified, counts.fallback, counts.select_failed),
            (classified, fallback, 0),
            "{bind} x{sockets}"
        );
        assert!(
            classified > 500 && fallback > 100,
            "{classified} / {fallback}"
        );
    }
}

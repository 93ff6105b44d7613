//! 0 heap allocations per forwarded message in steady state: the balancer's per-datagram
//! decision and rewrite (request to a backend, response back, reply 503/483/400), counted
//! by a global allocator that tallies the measuring thread's allocations.

use sipshard::balance::backends::{Backend, Snapshot};
use sipshard::net::{HEADROOM, REPLY_LEN};
use sipshard::shard::forward::{Advertised, Forwarder, Side};
use sipshard::shard::{Exit, Verdict};
use sipshard::sip::BranchKey;
use std::cell::RefCell;
use std::net::SocketAddr;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations_during;

const INVITE: &[u8] = include_bytes!("data/messages/invite.sip");

fn forwarder(weight: u32) -> Forwarder {
    let backends = [Backend {
        addr: "10.0.0.20:5060".parse().unwrap(),
        weight,
    }];
    Forwarder {
        key: BranchKey::new(b"alloc"),
        snapshot: RefCell::new(Snapshot::new(&backends, 65537).unwrap()),
        public: vec![Advertised::new("192.0.2.1:5060".parse().unwrap())],
        internal: vec![
            Advertised::new("10.0.0.1:6000".parse().unwrap()),
            Advertised::new("10.0.0.1:6001".parse().unwrap()),
        ],
        retry_after: 5,
    }
}

#[test]
fn forwarding_makes_no_heap_allocation() {
    let f = forwarder(1);
    let client: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut slot = vec![0u8; HEADROOM + 65535 + 512];
    let mut reply = vec![0u8; REPLY_LEN];

    // Prepare the inputs outside the measured region.
    slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
    let Verdict::Forward { start, len, .. } =
        f.handle(Side::Public, &mut slot, &mut reply, INVITE.len(), client)
    else {
        panic!("INVITE not forwarded");
    };
    let forwarded = String::from_utf8(slot[start..start + len].to_vec()).unwrap();
    let ok = forwarded.replacen(
        "INVITE sip:+15551234567@carrier.example.com SIP/2.0",
        "SIP/2.0 200 OK",
        1,
    );
    let zero_mf = String::from_utf8(INVITE.to_vec()).unwrap().replacen(
        "Max-Forwards: 70",
        "Max-Forwards: 0",
        1,
    );
    let bad =
        String::from_utf8(INVITE.to_vec())
            .unwrap()
            .replacen("CSeq: 1 INVITE", "CSeq: 1 BYE", 1);
    let drained = forwarder(0);
    let backend: SocketAddr = "10.0.0.20:5060".parse().unwrap();

    let mut verdicts = [0usize; 5];
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
            if let Verdict::Forward { .. } =
                f.handle(Side::Public, &mut slot, &mut reply, INVITE.len(), client)
            {
                verdicts[0] += 1;
            }
            slot[HEADROOM..HEADROOM + ok.len()].copy_from_slice(ok.as_bytes());
            if let Verdict::Forward {
                exit: Exit::Public, ..
            } = f.handle(Side::Internal, &mut slot, &mut reply, ok.len(), backend)
            {
                verdicts[1] += 1;
            }
            slot[HEADROOM..HEADROOM + zero_mf.len()].copy_from_slice(zero_mf.as_bytes());
            if let Verdict::Reply { .. } =
                f.handle(Side::Public, &mut slot, &mut reply, zero_mf.len(), client)
            {
                verdicts[2] += 1;
            }
            slot[HEADROOM..HEADROOM + bad.len()].copy_from_slice(bad.as_bytes());
            if let Verdict::Reply { .. } =
                f.handle(Side::Public, &mut slot, &mut reply, bad.len(), client)
            {
                verdicts[3] += 1;
            }
            slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
            if let Verdict::Reply { .. } =
                drained.handle(Side::Public, &mut slot, &mut reply, INVITE.len(), client)
            {
                verdicts[4] += 1;
            }
        }
    });
    assert_eq!(verdicts, [1000; 5], "every message took its expected path");
    assert_eq!(
        allocations, 0,
        "heap allocations in 5000 forwarding decisions"
    );
}

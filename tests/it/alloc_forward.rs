//! 0 heap allocations per forwarded message in steady state: the balancer's per-datagram
//! decision and rewrite (request to a backend, response back, reply 503/483/400), counted
//! by a global allocator that tallies the measuring thread's allocations.

use sipshard::balance::{Backend, Snapshot};
use sipshard::net::{HEADROOM, REPLY_LEN};
use sipshard::proxy::{
    Advertised, Arrival, Exit, Forwarder, RecordRouting, ReplyKind, Side, Verdict,
};
use sipshard::sip::BranchKey;
use std::cell::RefCell;
use std::net::SocketAddr;

use crate::support::counting_alloc::allocations_during;

const INVITE: &[u8] = include_bytes!("../data/messages/invite.sip");

/// A datagram from `source` on `side`.
fn at(side: Side, source: SocketAddr) -> Arrival {
    Arrival { side, source }
}

fn forwarder(weight: u32) -> Forwarder {
    let backends = [Backend {
        addr: "10.0.0.20:5060".parse().unwrap(),
        weight,
        up: true,
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
        path_lines: None,
        record_routing: Some(RecordRouting::new(
            &["192.0.2.1:5060".parse().unwrap()],
            &[
                "10.0.0.1:6000".parse().unwrap(),
                "10.0.0.1:6001".parse().unwrap(),
            ],
        )),
    }
}

/// The in-dialog BYE a UA sends after the 200 OK of `forwarded` (our INVITE with our two
/// Record-Route lines): its route set is the Record-Route values in reverse order.
fn bye_through_route_set(forwarded: &str) -> String {
    let mut routes: Vec<&str> = forwarded
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .collect();
    assert_eq!(routes.len(), 2, "{forwarded}");
    routes.reverse();
    format!(
        "BYE sip:callee@10.0.0.30 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40312;branch=z9hG4bKb1;rport\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n\
         Call-ID: another-call-id\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        routes.join(", ")
    )
}

#[test]
fn record_routing_and_pinned_routing_make_no_heap_allocation() {
    let f = forwarder(1);
    let client: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut slot = vec![0u8; HEADROOM + 65535 + 512];
    let mut reply = vec![0u8; REPLY_LEN];
    slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
    let Verdict::Forward { start, len, .. } = f.handle(
        at(Side::Public, client),
        &mut slot,
        HEADROOM,
        INVITE.len(),
        &mut reply,
    ) else {
        panic!("INVITE not forwarded");
    };
    let forwarded = String::from_utf8(slot[start..start + len].to_vec()).unwrap();
    let bye = bye_through_route_set(&forwarded);
    let forged = bye.replace(";pin=4", ";pin=5");
    let backend: SocketAddr = "10.0.0.20:5060".parse().unwrap();

    let mut verdicts = [0usize; 3];
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
            if let Verdict::Forward { dest, .. } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                INVITE.len(),
                &mut reply,
            ) {
                verdicts[0] += usize::from(dest == backend);
            }
            slot[HEADROOM..HEADROOM + bye.len()].copy_from_slice(bye.as_bytes());
            if let Verdict::Forward { dest, .. } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                bye.len(),
                &mut reply,
            ) {
                verdicts[1] += usize::from(dest == backend);
            }
            slot[HEADROOM..HEADROOM + forged.len()].copy_from_slice(forged.as_bytes());
            if let Verdict::Reply {
                kind: ReplyKind::ForgedRoute,
                ..
            } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                forged.len(),
                &mut reply,
            ) {
                verdicts[2] += 1;
            }
        }
    });
    assert_eq!(verdicts, [1000; 3], "every message took its expected path");
    assert_eq!(allocations, 0, "heap allocations in 3000 decisions");
}

#[test]
fn forwarding_makes_no_heap_allocation() {
    let f = forwarder(1);
    let client: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut slot = vec![0u8; HEADROOM + 65535 + 512];
    let mut reply = vec![0u8; REPLY_LEN];

    // Prepare the inputs outside the measured region.
    slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
    let Verdict::Forward { start, len, .. } = f.handle(
        at(Side::Public, client),
        &mut slot,
        HEADROOM,
        INVITE.len(),
        &mut reply,
    ) else {
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
            if let Verdict::Forward { .. } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                INVITE.len(),
                &mut reply,
            ) {
                verdicts[0] += 1;
            }
            slot[HEADROOM..HEADROOM + ok.len()].copy_from_slice(ok.as_bytes());
            if let Verdict::Forward {
                exit: Exit::Public, ..
            } = f.handle(
                at(Side::Internal, backend),
                &mut slot,
                HEADROOM,
                ok.len(),
                &mut reply,
            ) {
                verdicts[1] += 1;
            }
            slot[HEADROOM..HEADROOM + zero_mf.len()].copy_from_slice(zero_mf.as_bytes());
            if let Verdict::Reply { .. } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                zero_mf.len(),
                &mut reply,
            ) {
                verdicts[2] += 1;
            }
            slot[HEADROOM..HEADROOM + bad.len()].copy_from_slice(bad.as_bytes());
            if let Verdict::Reply { .. } = f.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                bad.len(),
                &mut reply,
            ) {
                verdicts[3] += 1;
            }
            slot[HEADROOM..HEADROOM + INVITE.len()].copy_from_slice(INVITE);
            if let Verdict::Reply { .. } = drained.handle(
                at(Side::Public, client),
                &mut slot,
                HEADROOM,
                INVITE.len(),
                &mut reply,
            ) {
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

/// The I/O around the decision: a batch received with kernel timestamps, each datagram's
/// residence time recorded, the batch sent on. 0 allocations once the batch exists.
#[test]
fn batch_io_with_residence_time_makes_no_heap_allocation() {
    use sipshard::net::now_ns;
    use sipshard::net::{enable_rx_timestamps, udp_socket, Batch, Payload, SocketOptions};
    use sipshard::shard::residence::ResidenceHistogram;
    use std::os::fd::AsRawFd;

    let options = SocketOptions {
        reuse_port: false,
        buffer_bytes: 1 << 20,
    };
    let bind = || udp_socket("127.0.0.1:0".parse().unwrap(), options).unwrap();
    let (balancer, peer) = (bind(), bind());
    let balancer_addr = balancer.local_addr().unwrap().as_socket().unwrap();
    let peer_addr = peer.local_addr().unwrap().as_socket().unwrap();
    enable_rx_timestamps(balancer.as_raw_fd()).unwrap();
    let mut batch = Batch::new(16).with_rx_timestamps();
    let residence = ResidenceHistogram::default();
    const ROUNDS: usize = 50;
    const PER_ROUND: usize = 16;
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut handled = 0;
    let allocations = allocations_during(|| {
        for _ in 0..ROUNDS {
            for _ in 0..PER_ROUND {
                sender.send_to(INVITE, balancer_addr).unwrap();
            }
            let mut got = 0;
            while got < PER_ROUND {
                let Ok(n) = batch.recv(balancer.as_raw_fd()) else {
                    continue;
                };
                for i in 0..n {
                    let payload = Payload::Frame {
                        start: HEADROOM,
                        len: batch.datagram_len(i),
                    };
                    batch.send(i, balancer.as_raw_fd(), payload, peer_addr);
                }
                let report = batch.flush();
                assert_eq!(report.sent, n as u64);
                let done = now_ns();
                for i in 0..n {
                    residence.record(batch.rx_time_ns(i).expect("kernel timestamp"), done);
                }
                got += n;
            }
            handled += got;
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(handled, ROUNDS * PER_ROUND);
    assert_eq!(residence.read().count(), (ROUNDS * PER_ROUND) as u64);
    drop(peer);
}

//! 0 heap allocations per forwarded message in steady state: the balancer's per-datagram
//! decision and rewrite (request to a backend, response back, reply 503/483/400), counted
//! by a global allocator that tallies the measuring thread's allocations.

use sipshard::balance::{Backend, Snapshot};
use sipshard::net::{HEADROOM, REPLY_LEN};
use sipshard::proxy::{
    Advertised, Arrival, Exit, Forwarder, Mode, RecordRouting, ReplyKind, Side, Verdict,
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
        mode: Mode::Proxy,
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

/// `bye` as a strict router (RFC 2543) sends it: its first Route value (our public entry)
/// as the Request-URI, its Request-URI as the last Route value.
fn strict_routed(bye: &str) -> String {
    let route = bye
        .lines()
        .find_map(|l| l.strip_prefix("Route: "))
        .expect("a routed BYE");
    let ours = route.split(", ").next().unwrap();
    let uri = ours.trim_start_matches('<').trim_end_matches('>');
    bye.replacen(
        "BYE sip:callee@10.0.0.30 SIP/2.0",
        &format!("BYE {uri} SIP/2.0"),
        1,
    )
    .replacen(
        &format!("Route: {route}\r\n"),
        "Route: <sip:callee@10.0.0.30>\r\n",
        1,
    )
}

/// A slot and a reply buffer, reused message after message as a shard reuses its batch.
struct Buffers {
    slot: Vec<u8>,
    reply: Vec<u8>,
}

impl Buffers {
    fn new() -> Self {
        Buffers {
            slot: vec![0u8; HEADROOM + 65535 + 512],
            reply: vec![0u8; REPLY_LEN],
        }
    }

    /// Copies `msg` into the slot (as a receive would) and asks `f` for its verdict.
    fn decide(&mut self, f: &Forwarder, side: Side, source: SocketAddr, msg: &[u8]) -> Verdict {
        self.slot[HEADROOM..HEADROOM + msg.len()].copy_from_slice(msg);
        f.handle(
            at(side, source),
            &mut self.slot,
            HEADROOM,
            msg.len(),
            &mut self.reply,
        )
    }

    /// The bytes of a forwarded message.
    fn forwarded(&self, verdict: Verdict) -> String {
        let Verdict::Forward { start, len, .. } = verdict else {
            panic!("not forwarded: {verdict:?}");
        };
        String::from_utf8(self.slot[start..start + len].to_vec()).unwrap()
    }
}

#[test]
fn record_routing_and_pinned_routing_make_no_heap_allocation() {
    let f = forwarder(1);
    let client: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut b = Buffers::new();
    let verdict = b.decide(&f, Side::Public, client, INVITE);
    let bye = bye_through_route_set(&b.forwarded(verdict));
    let forged = bye.replace(";pin=4", ";pin=5");
    let strict = strict_routed(&bye);
    let backend: SocketAddr = "10.0.0.20:5060".parse().unwrap();

    let mut verdicts = [0usize; 4];
    let allocations = allocations_during(|| {
        for _ in 0..1000 {
            if let Verdict::Forward { dest, .. } = b.decide(&f, Side::Public, client, INVITE) {
                verdicts[0] += usize::from(dest == backend);
            }
            if let Verdict::Forward { dest, .. } =
                b.decide(&f, Side::Public, client, bye.as_bytes())
            {
                verdicts[1] += usize::from(dest == backend);
            }
            if let Verdict::Reply {
                kind: ReplyKind::ForgedRoute,
                ..
            } = b.decide(&f, Side::Public, client, forged.as_bytes())
            {
                verdicts[2] += 1;
            }
            if let Verdict::Forward { dest, .. } =
                b.decide(&f, Side::Public, client, strict.as_bytes())
            {
                verdicts[3] += usize::from(dest == backend);
            }
        }
    });
    assert_eq!(verdicts, [1000; 4], "every message took its expected path");
    assert_eq!(allocations, 0, "heap allocations in 4000 decisions");
}

#[test]
fn forwarding_makes_no_heap_allocation() {
    let f = forwarder(1);
    let client: SocketAddr = "198.51.100.7:40312".parse().unwrap();
    let mut b = Buffers::new();

    // Prepare the inputs outside the measured region.
    let verdict = b.decide(&f, Side::Public, client, INVITE);
    let forwarded = b.forwarded(verdict);
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
            if let Verdict::Forward { .. } = b.decide(&f, Side::Public, client, INVITE) {
                verdicts[0] += 1;
            }
            if let Verdict::Forward {
                exit: Exit::Public, ..
            } = b.decide(&f, Side::Internal, backend, ok.as_bytes())
            {
                verdicts[1] += 1;
            }
            if let Verdict::Reply { .. } = b.decide(&f, Side::Public, client, zero_mf.as_bytes()) {
                verdicts[2] += 1;
            }
            if let Verdict::Reply { .. } = b.decide(&f, Side::Public, client, bad.as_bytes()) {
                verdicts[3] += 1;
            }
            if let Verdict::Reply { .. } = b.decide(&drained, Side::Public, client, INVITE) {
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

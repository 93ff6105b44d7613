//! Proof that the per-message work of the wire layer makes no heap allocation: parse,
//! branch, full request rewrite, response strip, and a stateless reply, counted by a
//! global allocator that tallies the allocations of the measuring thread.

use crate::support::counting_alloc::allocations_during;

use crate::support::{INVITE, OK200, ROOM};
use sipshard::sip::{
    self, parse_lenient, BranchKey, Echo, Frame, Headers, RequestRewrite, Status, TopViaRemoval,
    ViaPrefix,
};
use std::net::SocketAddr;

/// What the balancer does per message, on fixed buffers.
fn per_message_work(
    rx: &mut [u8],
    reply: &mut [u8],
    key: &BranchKey,
    source: SocketAddr,
    ours: &ViaPrefix,
) -> usize {
    let mut done = 0;
    // A request: parse, branch, full rewrite.
    rx[ROOM..ROOM + INVITE.len()].copy_from_slice(INVITE);
    let rw = {
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&rx[ROOM..ROOM + INVITE.len()], &mut headers).unwrap();
        let mut rw = RequestRewrite::new(&m);
        rw.add_via(ours, key.branch_id(&m));
        rw.stamp_source(&m, source);
        rw.forward_max_forwards(&m).unwrap();
        rw.remove_top_route(&m);
        // And a stateless reply to it.
        let echo = Echo::from_message(&m).unwrap();
        done +=
            sip::write_reply(reply, &echo, Status::service_unavailable(5), source, b"tag").unwrap();
        rw
    };
    let mut frame = Frame::new(rx, ROOM, INVITE.len());
    rw.apply(&mut frame).unwrap();
    done += frame.len();

    // A response: parse, verify the branch, strip our Via.
    rx[ROOM..ROOM + OK200.len()].copy_from_slice(OK200);
    let strip = {
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&rx[ROOM..ROOM + OK200.len()], &mut headers).unwrap();
        done += usize::from(key.verify(m.top_via.via.branch.unwrap()));
        TopViaRemoval::new(&m)
    };
    let mut frame = Frame::new(rx, ROOM, OK200.len());
    strip.apply(&mut frame).unwrap();
    done += frame.len();

    // A malformed request answered with 400 from a lenient parse.
    let bad = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: x\r\n\
        From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let mut headers = Headers::<64>::new();
    let p = parse_lenient(bad, &mut headers);
    let echo = Echo::from_partial(&p).unwrap();
    done += sip::write_reply(
        reply,
        &echo,
        Status::bad_request(p.error.unwrap().reason()),
        source,
        b"t",
    )
    .unwrap();
    done
}

#[test]
fn wire_layer_makes_no_heap_allocation() {
    let key = BranchKey::new(b"alloc-test");
    let source: SocketAddr = "[2001:db8::99]:40000".parse().unwrap();
    let ours = ViaPrefix::new("UDP", "10.0.0.1:5070".parse().unwrap()).unwrap();
    let mut rx = vec![0u8; ROOM + 2048 + ROOM];
    let mut reply = vec![0u8; 2048];
    // Warm-up (nothing in the path should need it, but lazy statics would show up here).
    let warm = per_message_work(&mut rx, &mut reply, &key, source, &ours);
    assert!(warm > 0);
    let count = allocations_during(|| {
        for _ in 0..1000 {
            std::hint::black_box(per_message_work(&mut rx, &mut reply, &key, source, &ours));
        }
    });
    assert_eq!(
        count, 0,
        "heap allocations in 1000 rounds of per-message work"
    );
    // The counter itself works: a Vec allocation is seen.
    let seen = allocations_during(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert_eq!(seen, 1);
}

/// The transaction layer's table and timer wheel, full and churning (a transaction in, its
/// timer set, the oldest out and its timer cancelled or fired), allocate nothing once built.
#[test]
fn transaction_table_and_timers_make_no_heap_allocation() {
    use sipshard::proxy::txn::{Table, TimerWheel};
    const CAPACITY: usize = 1024;
    const MS: u64 = 1_000_000;
    let mut table: Table<u64, u64> = Table::new(CAPACITY);
    let mut wheel = TimerWheel::new(CAPACITY, 4096, 10 * MS, 0);
    let mut live = std::collections::VecDeque::with_capacity(CAPACITY);
    let mut fired = 0;
    let mut now = 0;
    let allocations = allocations_during(|| {
        for n in 0..100_000u64 {
            let hash = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            if live.len() == CAPACITY {
                let (old_hash, old_key, handle, timer) = live.pop_front().unwrap();
                assert_eq!(table.find(old_hash, &old_key), Some(handle));
                table.remove(handle).unwrap();
                wheel.cancel(timer);
            }
            let handle = table.insert(hash, n, n).unwrap();
            let timer = wheel.schedule(now, 100 * MS, n).unwrap();
            live.push_back((hash, n, handle, timer));
            now += MS / 4;
            fired += wheel.expire(now, |_| {});
        }
    });
    assert_eq!(table.len(), CAPACITY);
    assert!(fired > 0, "some timers fired before their transaction left");
    assert_eq!(allocations, 0, "heap allocations in 100,000 transactions");
}

/// Handing datagrams between shards (the channels of Call-ID steering's fallback) recycles
/// the channel's buffers: nothing is allocated once it is made.
#[test]
fn handing_datagrams_over_makes_no_heap_allocation() {
    use sipshard::net::Handoffs;
    let handoffs = Handoffs::new(2, 32, 2048);
    let source: SocketAddr = "198.51.100.7:5060".parse().unwrap();
    let mut taken = 0usize;
    let allocations = allocations_during(|| {
        for _ in 0..10_000 {
            for _ in 0..8 {
                handoffs.channel(0, 1).send(INVITE, source).unwrap();
            }
            for channel in handoffs.inbound(1) {
                taken += channel.drain(|d, s| assert!(d == INVITE && s == source));
            }
        }
    });
    assert_eq!(taken, 80_000);
    assert_eq!(allocations, 0, "heap allocations in 80,000 handoffs");
}

/// A shard's stateful relay over 20,000 calls (each INVITE a new transaction with its 100
/// Trying, forwarded on branch 0, a 180 relayed and kept, a retransmission answered from
/// it, a 486 relayed and ACKed toward the backend, the client's ACK absorbed, timers run)
/// allocates nothing once built.
#[test]
fn the_stateful_relay_makes_no_heap_allocation() {
    use sipshard::balance::{Backend, Snapshot};
    use sipshard::proxy::txn::{Admission, Relay, RelayConfig, RelayEvent, ResponseFate, Sends};
    use sipshard::proxy::Exit;
    const MS: u64 = 1_000_000;
    struct Count(usize);
    impl Sends for Count {
        fn send(&mut self, _: Exit, _: SocketAddr, datagram: &[u8]) {
            assert!(!datagram.is_empty());
            self.0 += 1;
        }
        fn event(&mut self, _: RelayEvent) {}
    }
    let key = BranchKey::new(b"alloc");
    let backend: SocketAddr = "10.0.0.9:5060".parse().unwrap();
    let source: SocketAddr = "198.51.100.7:5060".parse().unwrap();
    let snapshot = Snapshot::new(
        &[Backend {
            addr: backend,
            weight: 1,
            up: true,
        }],
        251,
    )
    .unwrap();
    let texts: Vec<[String; 7]> = (0..256)
        .map(|n| {
            let head = |start: &str, method: &str, vias: &str| {
                format!(
                    "{start}\r\n{vias}From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
                     Call-ID: alloc-{n}@x\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                )
            };
            let client = format!("Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-{n}\r\n");
            let invite = head("INVITE sip:b@example.com SIP/2.0", "INVITE", &client);
            let branch = {
                let mut headers = Headers::<16>::new();
                let msg = sip::parse(invite.as_bytes(), &mut headers).unwrap();
                key.branch(&msg)
            };
            let ours = format!(
                "Via: SIP/2.0/UDP 10.0.0.1:6000;branch={}\r\n{client}",
                std::str::from_utf8(branch.as_bytes()).unwrap()
            );
            [
                head("INVITE sip:b@example.com SIP/2.0", "INVITE", &ours),
                head("SIP/2.0 180 Ringing", "INVITE", &ours),
                head("SIP/2.0 180 Ringing", "INVITE", &client),
                head("SIP/2.0 486 Busy Here", "INVITE", &ours),
                head("SIP/2.0 486 Busy Here", "INVITE", &client),
                head("ACK sip:b@example.com SIP/2.0", "ACK", &client),
                invite,
            ]
        })
        .collect();
    let config = RelayConfig {
        capacity: 512,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(config, key.clone(), 0);
    let mut sends = Count(0);
    let mut reply = vec![0u8; 4096];
    let mut now = 0;
    let mut repeated = 0;
    let mut relayed = 0;
    let allocations = allocations_during(|| {
        for round in 0..20_000usize {
            let [sent, ringing, ringing_out, busy, busy_out, ack, invite] =
                &texts[round % texts.len()];
            let client =
                |relay: &mut Relay, sends: &mut Count, text: &str, now: u64, reply: &mut [u8]| {
                    let mut headers = Headers::<16>::new();
                    let msg = sip::parse(text.as_bytes(), &mut headers).unwrap();
                    relay.request(&msg, source, now, reply, sends)
                };
            let Admission::New(ticket) = client(&mut relay, &mut sends, invite, now, &mut reply)
            else {
                panic!("round {round}: not a new transaction");
            };
            relay.forwarded(
                ticket,
                &snapshot,
                sent.as_bytes(),
                Exit::Internal(0),
                backend,
                0,
                now,
                &mut sends,
            );
            for (text, out, at) in [
                (ringing, ringing_out, now + MS),
                (busy, busy_out, now + 3 * MS),
            ] {
                let mut headers = Headers::<16>::new();
                let msg = sip::parse(text.as_bytes(), &mut headers).unwrap();
                if let ResponseFate::Deliver(t) = relay.response(&snapshot, &msg, at, &mut sends) {
                    relayed += usize::from(relay.deliver(t, out.as_bytes(), at, &mut sends));
                }
                if at == now + MS {
                    let again = client(&mut relay, &mut sends, invite, now + 2 * MS, &mut reply);
                    repeated += usize::from(matches!(again, Admission::Reply(_)));
                }
            }
            let absorbed = client(&mut relay, &mut sends, ack, now + 4 * MS, &mut reply);
            assert_eq!(absorbed, Admission::Absorbed);
            // 256 calls take 38 s: each call's branch (Completed for timer D, 5 s, after its
            // 486) is gone long before its Via branch comes round again.
            now += 150 * MS;
            relay.expire(&snapshot, now, &mut sends);
        }
    });
    assert_eq!(
        repeated, 20_000,
        "every retransmission answered from the kept 180"
    );
    assert_eq!(relayed, 40_000, "the 180 and the 486 of every call relayed");
    // 100 Trying and the ACK of the 486, per call.
    assert!(sends.0 >= 40_000, "{} datagrams of our own", sends.0);
    assert_eq!(allocations, 0, "heap allocations in 20,000 stateful calls");
}

/// A full stateful relay answers every new request with a 503 of its own, allocating
/// nothing and holding no more than its capacity.
#[test]
fn a_full_stateful_relay_refuses_without_allocating() {
    use sipshard::balance::{Backend, Snapshot};
    use sipshard::proxy::txn::{Admission, Relay, RelayConfig, RelayEvent, Sends};
    use sipshard::proxy::Exit;
    struct Refusals(usize);
    impl Sends for Refusals {
        fn send(&mut self, _: Exit, _: SocketAddr, _: &[u8]) {}
        fn event(&mut self, event: RelayEvent) {
            self.0 += usize::from(event == RelayEvent::TableFull);
        }
    }
    let source: SocketAddr = "198.51.100.7:5060".parse().unwrap();
    let snapshot = Snapshot::new(
        &[Backend {
            addr: "10.0.0.9:5060".parse().unwrap(),
            weight: 1,
            up: true,
        }],
        251,
    )
    .unwrap();
    let invites: Vec<String> = (0..1000)
        .map(|n| {
            format!(
                "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-full{n}\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: full-{n}@x\r\n\
                 CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        })
        .collect();
    let config = RelayConfig {
        capacity: 4,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(config, BranchKey::new(b"full"), 0);
    let mut sends = Refusals(0);
    let mut reply = vec![0u8; 4096];
    let mut refused = 0;
    let allocations = allocations_during(|| {
        for invite in &invites {
            let mut headers = Headers::<16>::new();
            let msg = sip::parse(invite.as_bytes(), &mut headers).unwrap();
            match relay.request(&msg, source, 0, &mut reply, &mut sends) {
                Admission::Reply(len) => {
                    refused += usize::from(reply[..len].starts_with(b"SIP/2.0 503"))
                }
                Admission::New(_) => {}
                other => panic!("{other:?}"),
            }
            relay.expire(&snapshot, 0, &mut sends);
        }
    });
    assert_eq!(
        (refused, sends.0),
        (996, 996),
        "all but the 4 the table holds"
    );
    assert_eq!(relay.len(), 4);
    assert_eq!(allocations, 0, "heap allocations while full");
}

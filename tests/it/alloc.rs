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

/// A shard's server transactions over 20,000 calls (each INVITE new, a 180 and a 486 kept,
/// a retransmission answered from the kept response, the ACK absorbed, timers run) allocate
/// nothing once built.
#[test]
fn server_transactions_make_no_heap_allocation() {
    use sipshard::proxy::txn::server::Timers;
    use sipshard::proxy::txn::{RequestFate, ServerSide};
    const MS: u64 = 1_000_000;
    let texts: Vec<[String; 4]> = (0..256)
        .map(|n| {
            let head = |start: &str, method: &str, vias: &str| {
                format!(
                    "{start}\r\n{vias}From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
                     Call-ID: alloc-{n}@x\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                )
            };
            let client = format!("Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-{n}\r\n");
            let both = format!("Via: SIP/2.0/UDP 10.0.0.1:6000;branch=z9hG4bKours\r\n{client}");
            [
                head("INVITE sip:b@example.com SIP/2.0", "INVITE", &client),
                head("SIP/2.0 180 Ringing", "INVITE", &both),
                head("SIP/2.0 486 Busy Here", "INVITE", &both),
                head("ACK sip:b@example.com SIP/2.0", "ACK", &client),
            ]
        })
        .collect();
    let mut side = ServerSide::new(512, Timers::default(), 0);
    let mut now = 0;
    let mut repeated = 0;
    let step = |side: &mut ServerSide, text: &str, now: u64| -> bool {
        let mut headers = Headers::<16>::new();
        let msg = sip::parse(text.as_bytes(), &mut headers).unwrap();
        if msg.is_request() {
            matches!(side.request(&msg, now), RequestFate::Repeat(_))
        } else {
            side.response(&msg, text.as_bytes(), now);
            false
        }
    };
    let allocations = allocations_during(|| {
        for round in 0..20_000usize {
            let [invite, ringing, busy, ack] = &texts[round % texts.len()];
            step(&mut side, invite, now);
            step(&mut side, ringing, now);
            repeated += usize::from(step(&mut side, invite, now + MS));
            step(&mut side, busy, now + 2 * MS);
            step(&mut side, ack, now + 3 * MS);
            // 256 calls take 5.1 s: each call's transaction (Confirmed for T4 = 5 s after
            // its ACK) is gone before its branch comes round again.
            now += 20 * MS;
            side.expire(now, |_| {});
        }
    });
    assert_eq!(
        repeated, 20_000,
        "every retransmission answered from the kept 180"
    );
    assert_eq!(
        allocations, 0,
        "heap allocations in 20,000 server transactions"
    );
}

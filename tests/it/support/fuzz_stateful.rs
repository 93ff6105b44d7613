//! The invariants of the stateful mode under arbitrary input, checked by the `stateful`
//! fuzz target (`fuzz/fuzz_targets/stateful.rs`, which includes this file with `#[path]`)
//! and by the corpus replay (`tests/it/fuzz_corpus.rs`).
//!
//! The input is a script of steps, each `[op, len, payload...]`:
//! - op 0: the client sends `payload` (any bytes) to the public side;
//! - op 1: the client sends its last datagram again;
//! - op 2: the backend that got request `payload[0]` (of those sent to the farm so far)
//!   answers it with status `100 + payload[1..3] % 600`;
//! - op 3: the clock moves on by `(payload[0] + 1) × 10 ms` and the timers run;
//! - anything else ends the script.
//!
//! It runs the same glue as the shard (relay first, then the stateless rewrite) and checks:
//! nothing panics; every datagram the relay makes itself (100 Trying, CANCEL, ACK, a
//! request copy, a kept or generated response) parses; the table never holds more than its
//! capacity; and once the clock has run far enough, every transaction is gone.

use sipshard::balance::{Backend, Snapshot};
use sipshard::proxy::txn::server::Timers;
use sipshard::proxy::txn::{
    Admission, Relay, RelayConfig, RelayEvent, ResponseFate, Sends, Ticket,
};
use sipshard::proxy::{
    Advertised, Arrival, Exit, Forwarder, Mode, RecordRouting, Side, Verdict, MAX_HEADERS,
};
use sipshard::sip::{self, BranchKey, Headers};
use std::cell::RefCell;
use std::net::SocketAddr;

const MS: u64 = 1_000_000;
const ROOM: usize = 512;
const CAPACITY: usize = 8;

/// Records what the relay sends on its own, checking each datagram parses.
#[derive(Default)]
struct Recorder {
    to_farm: Vec<(SocketAddr, Vec<u8>)>,
}

impl Recorder {
    fn farm(&mut self, dest: SocketAddr, datagram: &[u8]) {
        if self.to_farm.len() < 64 {
            self.to_farm.push((dest, datagram.to_vec()));
        }
    }
}

impl Sends for Recorder {
    fn send(&mut self, exit: Exit, dest: SocketAddr, datagram: &[u8]) {
        let mut headers = Headers::<{ MAX_HEADERS + 8 }>::new();
        if let Err(e) = sip::parse(datagram, &mut headers) {
            panic!(
                "the relay sent an unparsable datagram ({e:?}): {:?}",
                String::from_utf8_lossy(datagram)
            );
        }
        if matches!(exit, Exit::Internal(_)) {
            self.farm(dest, datagram);
        }
    }

    fn event(&mut self, _: RelayEvent) {}
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A backend's response `status` to `request` (its Vias, From, To with a tag, Call-ID,
/// CSeq), or `None` for an ACK or something unparsable.
fn response_to(request: &[u8], status: u16) -> Option<Vec<u8>> {
    let mut headers = Headers::<{ MAX_HEADERS + 8 }>::new();
    let msg = sip::parse(request, &mut headers).ok()?;
    if msg.method()? == b"ACK" {
        return None;
    }
    let mut out = format!("SIP/2.0 {status} Fuzz\r\n").into_bytes();
    for h in msg.headers {
        match h.name {
            sip::HeaderName::Via
            | sip::HeaderName::From
            | sip::HeaderName::CallId
            | sip::HeaderName::CSeq => out.extend_from_slice(h.line),
            sip::HeaderName::To if msg.to_tagged() == Some(true) => out.extend_from_slice(h.line),
            sip::HeaderName::To => {
                let line = h.line.strip_suffix(b"\r\n").unwrap_or(h.line);
                out.extend_from_slice(line);
                out.extend_from_slice(b";tag=fz\r\n");
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

/// The rig: a forwarder and a relay over three backends.
struct Rig {
    forwarder: Forwarder,
    relay: Relay,
    sent: Recorder,
    now: u64,
    client: SocketAddr,
}

impl Rig {
    fn new() -> Rig {
        let key = BranchKey::new(b"fuzz-stateful");
        let backends: Vec<Backend> = (0..3)
            .map(|i| Backend {
                addr: addr(&format!("10.0.0.2{i}:5060")),
                weight: 1,
                up: true,
            })
            .collect();
        let public = [addr("192.0.2.1:5060")];
        let internal = [addr("10.0.0.1:6000")];
        let forwarder = Forwarder {
            key: key.clone(),
            snapshot: RefCell::new(Snapshot::new(&backends, 251).unwrap()),
            public: public.iter().map(|&a| Advertised::new(a)).collect(),
            internal: internal.iter().map(|&a| Advertised::new(a)).collect(),
            retry_after: 5,
            record_routing: Some(RecordRouting::new(&public, &internal)),
            path_lines: None,
            mode: Mode::Proxy,
        };
        let config = RelayConfig {
            capacity: CAPACITY,
            timers: Timers {
                t1_ns: 50 * MS,
                t2_ns: 400 * MS,
                t4_ns: 500 * MS,
                linger_ns: 500 * MS,
            },
            failover_after_ns: Some(200 * MS),
            fork: 2,
            ..RelayConfig::default()
        };
        Rig {
            forwarder,
            relay: Relay::new(config, key, 0),
            sent: Recorder::default(),
            now: 0,
            client: addr("198.51.100.7:5060"),
        }
    }

    /// What the shard does with a datagram from `source` on `side`.
    fn datagram(&mut self, side: Side, source: SocketAddr, datagram: &[u8]) {
        let mut slot = vec![0u8; ROOM + datagram.len() + ROOM];
        slot[ROOM..ROOM + datagram.len()].copy_from_slice(datagram);
        let mut reply = vec![0u8; 8192];
        let len = datagram.len();
        enum Plan {
            Stateless,
            Done,
            New(Ticket),
            Deliver(Ticket),
        }
        let plan = {
            let mut headers = Headers::<MAX_HEADERS>::new();
            match sip::parse(&slot[ROOM..ROOM + len], &mut headers) {
                Err(_) => Plan::Stateless,
                Ok(msg) => match (side, msg.is_request()) {
                    (Side::Public, true) => {
                        let admission =
                            self.relay
                                .request(&msg, source, self.now, &mut reply, &mut self.sent);
                        match admission {
                            Admission::Stateless => Plan::Stateless,
                            Admission::New(t) => Plan::New(t),
                            Admission::Absorbed => Plan::Done,
                            Admission::Reply(n) => {
                                let mut h = Headers::<{ MAX_HEADERS + 8 }>::new();
                                assert!(sip::parse(&reply[..n], &mut h).is_ok());
                                Plan::Done
                            }
                        }
                    }
                    (Side::Internal, false) => {
                        let snapshot = self.forwarder.snapshot.borrow();
                        match self
                            .relay
                            .response(&snapshot, &msg, self.now, &mut self.sent)
                        {
                            ResponseFate::Stateless => Plan::Stateless,
                            ResponseFate::Absorbed => Plan::Done,
                            ResponseFate::Deliver(t) => Plan::Deliver(t),
                        }
                    }
                    _ => Plan::Stateless,
                },
            }
        };
        let arrival = Arrival { side, source };
        let verdict = match plan {
            Plan::Done => return,
            _ => self
                .forwarder
                .handle(arrival, &mut slot, ROOM, len, &mut reply),
        };
        let snapshot = self.forwarder.snapshot.borrow();
        match (plan, verdict) {
            (
                Plan::New(t),
                Verdict::Forward {
                    exit,
                    dest,
                    start,
                    len,
                    backend,
                    ..
                },
            ) => {
                let sent = &slot[start..start + len];
                let index = backend.map_or(0, |b| b.index);
                self.relay.forwarded(
                    t,
                    &snapshot,
                    sent,
                    exit,
                    dest,
                    index,
                    self.now,
                    &mut self.sent,
                );
                self.sent.farm(dest, sent);
            }
            (Plan::New(t), Verdict::Reply { kind, len, .. }) => {
                self.relay.refused(t, kind.code(), &reply[..len], self.now)
            }
            (Plan::New(t), Verdict::Drop(_)) => self.relay.abandon(t),
            (Plan::Deliver(t), Verdict::Forward { start, len, .. }) => {
                let bytes = &slot[start..start + len];
                self.relay.deliver(t, bytes, self.now, &mut self.sent);
            }
            (
                Plan::Stateless,
                Verdict::Forward {
                    exit: Exit::Internal(_),
                    dest,
                    start,
                    len,
                    ..
                },
            ) => {
                self.sent.farm(dest, &slot[start..start + len]);
            }
            _ => {}
        }
        assert!(self.relay.len() <= CAPACITY);
    }

    fn run_timers(&mut self, until: u64) {
        while self.now < until {
            self.now = (self.now + 10 * MS).min(until);
            let snapshot = self.forwarder.snapshot.borrow();
            self.relay.expire(&snapshot, self.now, &mut self.sent);
        }
    }
}

/// Runs the script `data`; panics on a broken invariant.
pub fn check_stateful(data: &[u8]) {
    let mut rig = Rig::new();
    let mut last: Vec<u8> = Vec::new();
    let mut rest = data;
    let mut steps = 0;
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        steps += 1;
        if steps > 64 {
            break;
        }
        match op {
            0 => {
                last = payload.to_vec();
                rig.datagram(Side::Public, rig.client, payload);
            }
            1 => {
                let again = last.clone();
                rig.datagram(Side::Public, rig.client, &again);
            }
            2 => {
                let (Some(&which), Some(code)) = (payload.first(), payload.get(1..3)) else {
                    continue;
                };
                let n = rig.sent.to_farm.len();
                if n == 0 {
                    continue;
                }
                let (backend, request) = rig.sent.to_farm[usize::from(which) % n].clone();
                let status = 100 + u16::from_le_bytes([code[0], code[1]]) % 600;
                if let Some(response) = response_to(&request, status) {
                    rig.datagram(Side::Internal, backend, &response);
                }
            }
            3 => {
                let step = u64::from(payload.first().copied().unwrap_or(0)) + 1;
                let until = rig.now + step * 10 * MS;
                rig.run_timers(until);
            }
            _ => break,
        }
    }
    // Every transaction ends: the longest chain is a provisional answer, timer C (3 min),
    // our CANCEL and timer B (64 T1) after it, then the linger.
    let end = rig.now + 200_000 * MS;
    rig.run_timers(end);
    assert!(
        rig.relay.is_empty(),
        "{} transactions left after the clock ran out",
        rig.relay.len()
    );
}

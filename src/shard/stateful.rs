//! The shard's stateful path (`--mode stateful`): each datagram goes to the shard's
//! [`Relay`] first, which absorbs it, answers it, or hands it to the stateless rewrite
//! (the forwarder) and takes the rewritten message back. What the relay sends on its own
//! (100 Trying, further branches, CANCELs, ACKs, retransmissions, kept responses) goes
//! through the shard's outboxes, flushed after each batch and on each tick.

use super::{forward_slot, ShardState};
use crate::net::{Batch, Outbox, Payload, HEADROOM};
use crate::proxy::txn::relay::REQUEST_MAX;
use crate::proxy::txn::{Admission, Relay, RelayEvent, ResponseFate, Sends, Ticket};
use crate::proxy::{
    Arrival, BackendTally, DialogRole, DropReason, Exit, Pinning, Side, Verdict, MAX_HEADERS,
};
use crate::sip::{self, Headers};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Datagrams an outbox holds before it is flushed.
const OUTBOX_LEN: usize = 64;

/// The stateful part of a shard.
pub(super) struct Stateful {
    relay: RefCell<Relay>,
    outboxes: RefCell<Outboxes>,
    /// The time of the batch being handled.
    now: Cell<u64>,
}

/// One outbox per socket the relay sends on.
struct Outboxes {
    boxes: Vec<(RawFd, Outbox)>,
}

impl Outboxes {
    /// Queues `datagram` for `dest` on `fd`, flushing that outbox first when full.
    /// Returns what a flush reported: (sent, dropped).
    fn queue(&mut self, fd: RawFd, dest: SocketAddr, datagram: &[u8]) -> (u64, u64) {
        let at = match self.boxes.iter().position(|(f, _)| *f == fd) {
            Some(at) => at,
            None => {
                // One per socket, made the first time it is used: a handful per shard.
                self.boxes
                    .push((fd, Outbox::with_datagram_size(OUTBOX_LEN, REQUEST_MAX)));
                self.boxes.len() - 1
            }
        };
        let outbox = &mut self.boxes[at].1;
        let mut report = (0, 0);
        if outbox.is_full() {
            report = outbox.flush(fd);
        }
        outbox.queue(dest, |buf| {
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            len
        });
        report
    }

    /// Sends everything queued: (sent, dropped).
    fn flush(&mut self) -> (u64, u64) {
        let mut total = (0, 0);
        for (fd, outbox) in &mut self.boxes {
            if !outbox.is_empty() {
                let (sent, dropped) = outbox.flush(*fd);
                total = (total.0 + sent, total.1 + dropped);
            }
        }
        total
    }
}

impl Stateful {
    pub(super) fn new(relay: Relay) -> Self {
        Stateful {
            relay: RefCell::new(relay),
            outboxes: RefCell::new(Outboxes { boxes: Vec::new() }),
            now: Cell::new(crate::net::now_ns()),
        }
    }

    /// A batch starts at `now_ns`.
    pub(super) fn set_now(&self, now_ns: u64) {
        self.now.set(now_ns);
    }

    /// Runs the relay's timers and sends what is queued.
    pub(super) fn tick(&self, state: &ShardState) {
        let now = crate::net::now_ns();
        self.now.set(now);
        {
            let snapshot = state.forwarder.snapshot.borrow();
            let mut relay = self.relay.borrow_mut();
            let mut sends = ShardSends {
                state,
                outboxes: &self.outboxes,
                arrived_on: None,
            };
            relay.expire(&snapshot, now, &mut sends);
            state.stats.set_transactions(relay.len());
        }
        self.flush(state);
    }

    /// Sends what the relay queued.
    pub(super) fn flush(&self, state: &ShardState) {
        let (sent, dropped) = self.outboxes.borrow_mut().flush();
        state.stats.add_sent(sent);
        state.dropped(DropReason::SendBufferFull, dropped, None);
    }
}

/// The relay's outputs, carried out by the shard.
struct ShardSends<'s> {
    state: &'s ShardState,
    outboxes: &'s RefCell<Outboxes>,
    /// The socket the datagram being handled came in on.
    arrived_on: Option<RawFd>,
}

impl Sends for ShardSends<'_> {
    fn send(&mut self, exit: Exit, dest: SocketAddr, datagram: &[u8]) {
        let fallback = self.arrived_on.unwrap_or_else(|| self.state.exits.any());
        let fd = self.state.exits.fd(exit, dest, fallback);
        let (sent, dropped) = self.outboxes.borrow_mut().queue(fd, dest, datagram);
        self.state.stats.add_sent(sent);
        self.state
            .dropped(DropReason::SendBufferFull, dropped, None);
    }

    fn event(&mut self, event: RelayEvent) {
        self.state.stats.relay_event(event);
        match event {
            RelayEvent::Branch { backend } => self.state.tally(BackendTally {
                index: backend,
                status: 0,
                pinning: Pinning::Hashed,
                role: DialogRole::Outside,
            }),
            RelayEvent::Failover { backend, .. } => {
                if let Some(stats) = self.state.backend_stats.borrow().get(usize::from(backend)) {
                    stats.failed();
                }
            }
            _ => {}
        }
    }
}

/// What the relay made of a datagram, once its parse is dropped.
enum Plan {
    Stateless,
    Reply { len: usize, dest: SocketAddr },
    Absorbed,
    New(Ticket),
    Deliver(Ticket),
}

/// Handles datagram `i` of `batch` (arrived on `fd`, on `side`) in stateful mode.
pub(super) fn handle_slot(
    batch: &mut Batch,
    i: usize,
    fd: RawFd,
    side: Side,
    state: &ShardState,
    stateful: &Stateful,
) {
    let Some(source) = batch.source(i).filter(|_| !batch.truncated(i)) else {
        return forward_slot(batch, i, fd, side, state);
    };
    let now = stateful.now.get();
    let len = batch.datagram_len(i);
    let mut sends = ShardSends {
        state,
        outboxes: &stateful.outboxes,
        arrived_on: Some(fd),
    };
    let plan = {
        let (slot, reply) = batch.slot_mut(i);
        let datagram = &slot[HEADROOM..HEADROOM + len];
        let mut headers = Headers::<MAX_HEADERS>::new();
        match sip::parse(datagram, &mut headers) {
            Err(_) => Plan::Stateless,
            Ok(msg) => {
                let mut relay = stateful.relay.borrow_mut();
                match (side, msg.is_request()) {
                    (Side::Public, true) => {
                        match relay.request(&msg, source, now, reply, &mut sends) {
                            Admission::Stateless => Plan::Stateless,
                            Admission::New(ticket) => Plan::New(ticket),
                            Admission::Absorbed => Plan::Absorbed,
                            Admission::Reply(len) => Plan::Reply {
                                len,
                                dest: sip::reply_destination(&msg.top_via.via, source),
                            },
                        }
                    }
                    (Side::Internal, false) => {
                        let snapshot = state.forwarder.snapshot.borrow();
                        match relay.response(&snapshot, &msg, now, &mut sends) {
                            ResponseFate::Stateless => Plan::Stateless,
                            ResponseFate::Absorbed => Plan::Absorbed,
                            ResponseFate::Deliver(ticket) => Plan::Deliver(ticket),
                        }
                    }
                    _ => Plan::Stateless,
                }
            }
        }
    };
    match plan {
        Plan::Stateless => forward_slot(batch, i, fd, side, state),
        Plan::Absorbed => {}
        Plan::Reply { len, dest } => {
            batch.send(i, fd, Payload::Reply { offset: 0, len }, dest);
        }
        Plan::New(ticket) => forward_new(batch, i, fd, side, source, state, stateful, ticket),
        Plan::Deliver(ticket) => deliver(batch, i, fd, side, source, state, stateful, ticket),
    }
}

/// A new transaction's request: rewritten by the forwarder, then branch 0 of the relay.
#[allow(clippy::too_many_arguments)]
fn forward_new(
    batch: &mut Batch,
    i: usize,
    fd: RawFd,
    side: Side,
    source: SocketAddr,
    state: &ShardState,
    stateful: &Stateful,
    ticket: Ticket,
) {
    let now = stateful.now.get();
    let len = batch.datagram_len(i);
    let (slot, reply) = batch.slot_mut(i);
    let verdict = state
        .forwarder
        .handle(Arrival { side, source }, slot, HEADROOM, len, reply);
    state.stats.record(&verdict);
    let mut relay = stateful.relay.borrow_mut();
    let mut sends = ShardSends {
        state,
        outboxes: &stateful.outboxes,
        arrived_on: Some(fd),
    };
    match verdict {
        Verdict::Forward {
            exit,
            dest,
            start,
            len,
            backend,
            ..
        } => {
            let index = backend.map_or(0, |t| t.index);
            {
                let snapshot = state.forwarder.snapshot.borrow();
                let sent = &slot[start..start + len];
                relay.forwarded(ticket, &snapshot, sent, exit, dest, index, now, &mut sends);
            }
            if let Some(tally) = backend {
                state.tally(tally);
            }
            let out = state.exits.fd(exit, dest, fd);
            batch.send(i, out, Payload::Frame { start, len }, dest);
        }
        Verdict::Reply {
            dest, len, backend, ..
        } => {
            relay.refused(ticket, &reply[..len], now);
            if let Some(tally) = backend {
                state.tally(tally);
            }
            batch.send(i, fd, Payload::Reply { offset: 0, len }, dest);
        }
        Verdict::Drop(reason) => {
            relay.abandon(ticket);
            super::log_drop(state, reason, Some(source));
        }
    }
}

/// A backend's response to a transaction here: our Via removed by the forwarder, then
/// sent if the relay says so.
#[allow(clippy::too_many_arguments)]
fn deliver(
    batch: &mut Batch,
    i: usize,
    fd: RawFd,
    side: Side,
    source: SocketAddr,
    state: &ShardState,
    stateful: &Stateful,
    ticket: Ticket,
) {
    let now = stateful.now.get();
    let len = batch.datagram_len(i);
    let (slot, reply) = batch.slot_mut(i);
    let verdict = state
        .forwarder
        .handle(Arrival { side, source }, slot, HEADROOM, len, reply);
    let mut sends = ShardSends {
        state,
        outboxes: &stateful.outboxes,
        arrived_on: Some(fd),
    };
    match verdict {
        Verdict::Forward {
            exit,
            dest,
            start,
            len,
            backend,
            ..
        } => {
            if let Some(tally) = backend {
                state.tally(tally);
            }
            let bytes = &slot[start..start + len];
            let goes = stateful
                .relay
                .borrow_mut()
                .deliver(ticket, bytes, now, &mut sends);
            if goes {
                state.stats.record(&verdict);
                let out = state.exits.fd(exit, dest, fd);
                batch.send(i, out, Payload::Frame { start, len }, dest);
            }
        }
        other => {
            state.stats.record(&other);
            if let Verdict::Drop(reason) = other {
                super::log_drop(state, reason, Some(source));
            }
        }
    }
}

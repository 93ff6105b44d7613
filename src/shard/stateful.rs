//! The shard's stateful path (`--mode stateful`): each datagram goes to the shard's
//! [`Relay`] first, which absorbs it, answers it, or hands it to the stateless rewrite
//! (the forwarder) and takes the rewritten message back. What the relay sends on its own
//! (100 Trying, further branches, CANCELs, ACKs, retransmissions, kept responses) goes
//! through the shard's outboxes, flushed after each batch and on each tick.
//!
//! A client's request that reached a shard other than its call's owner (the steering
//! program could not place it, or steering is not by Call-ID) is handed to the owner over
//! a lock-free channel ([`Handoffs`]) and handled there on its next tick.

use super::stats::HandoffEvent;
use super::{carry_out, forward_datagram, forward_slot, Out, ShardState};
use crate::balance::owner_shard;
use crate::net::{Batch, Handoffs, Outbox, Payload, HEADROOM, REPLY_LEN, TAILROOM};
use crate::proxy::txn::relay::REQUEST_MAX;
use crate::proxy::txn::{Admission, Relay, RelayEvent, ResponseFate, Sends, Ticket};
use crate::proxy::{
    Arrival, BackendTally, DialogRole, DropReason, Exit, Pinning, Side, Verdict, MAX_HEADERS,
};
use crate::sip::{self, Headers};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Datagrams an outbox holds before it is flushed.
const OUTBOX_LEN: usize = 64;
/// Datagrams a handoff channel holds (per ordered pair of shards).
pub(super) const HANDOFF_LEN: usize = 256;
/// Longest datagram handed over (a longer one is handled where it arrived, counted).
pub(super) const HANDOFF_MAX: usize = REQUEST_MAX;

/// The stateful part of a shard.
pub(super) struct Stateful {
    relay: RefCell<Relay>,
    outboxes: RefCell<Outboxes>,
    /// The time of the batch being handled.
    now: Cell<u64>,
    /// The channels between the shards (more than one shard), this shard's index.
    handoffs: Option<(Arc<Handoffs>, usize)>,
    /// Where a datagram handed over is handled: a slot with headroom, and a reply buffer.
    handed: RefCell<(Vec<u8>, Vec<u8>)>,
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
    /// The stateful part of shard `index`, with the channels between the shards.
    pub(super) fn new(relay: Relay, handoffs: Option<(Arc<Handoffs>, usize)>) -> Self {
        Stateful {
            relay: RefCell::new(relay),
            outboxes: RefCell::new(Outboxes { boxes: Vec::new() }),
            now: Cell::new(crate::net::now_ns()),
            handed: RefCell::new((
                vec![0; HEADROOM + HANDOFF_MAX + TAILROOM],
                vec![0; REPLY_LEN],
            )),
            handoffs,
        }
    }

    /// What the relay sends, queued on this shard's outboxes; `arrived_on`: the socket of
    /// the datagram being handled, if any.
    fn sends<'s>(&'s self, state: &'s ShardState, arrived_on: Option<RawFd>) -> ShardSends<'s> {
        ShardSends {
            state,
            outboxes: &self.outboxes,
            arrived_on,
        }
    }

    /// A batch starts at `now_ns`.
    pub(super) fn set_now(&self, now_ns: u64) {
        self.now.set(now_ns);
    }

    /// Handles what other shards handed over, runs the relay's timers and sends what is
    /// queued.
    pub(super) fn tick(&self, state: &ShardState) {
        let now = crate::net::now_ns();
        self.now.set(now);
        self.take_handed(state);
        {
            let snapshot = state.forwarder.snapshot.borrow();
            let mut relay = self.relay.borrow_mut();
            let mut sends = self.sends(state, None);
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

    /// Handles the client requests other shards handed to this one, as if they had
    /// arrived on its public socket.
    fn take_handed(&self, state: &ShardState) {
        let Some((handoffs, me)) = &self.handoffs else {
            return;
        };
        let mut handed = self.handed.borrow_mut();
        let (slot, reply) = &mut *handed;
        for channel in handoffs.inbound(*me) {
            channel.drain(|datagram, source| {
                state.stats.handoff(HandoffEvent::Taken);
                let len = datagram.len();
                slot[HEADROOM..HEADROOM + len].copy_from_slice(datagram);
                let fd = state.exits.fd(Exit::Public, source, state.exits.any());
                let arrival = (fd, Side::Public, source);
                let Some(out) = handle_datagram(slot, reply, len, arrival, state, self, false)
                else {
                    return;
                };
                let bytes = match out.payload {
                    Payload::Frame { start, len } => &slot[start..start + len],
                    Payload::Reply { offset, len } => &reply[offset..offset + len],
                };
                let (sent, dropped) = self.outboxes.borrow_mut().queue(out.fd, out.dest, bytes);
                state.stats.add_sent(sent);
                state.dropped(DropReason::SendBufferFull, dropped, None);
            });
        }
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
    HandedOver,
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
    let len = batch.datagram_len(i);
    let (slot, reply) = batch.slot_mut(i);
    let arrival = (fd, side, source);
    if let Some(out) = handle_datagram(slot, reply, len, arrival, state, stateful, true) {
        batch.send(i, out.fd, out.payload, out.dest);
    }
}

/// The stateful decision for the datagram at `slot[HEADROOM..HEADROOM + len]`, which
/// arrived as `(fd, side, source)`: what it sends from its slot or reply buffer. A client's
/// request for a call another shard owns is handed over there when `may_hand_over`.
fn handle_datagram(
    slot: &mut [u8],
    reply: &mut [u8],
    len: usize,
    (fd, side, source): (RawFd, Side, SocketAddr),
    state: &ShardState,
    stateful: &Stateful,
    may_hand_over: bool,
) -> Option<Out> {
    let now = stateful.now.get();
    let mut sends = stateful.sends(state, Some(fd));
    let plan = {
        let datagram = &slot[HEADROOM..HEADROOM + len];
        let mut headers = Headers::<MAX_HEADERS>::new();
        match sip::parse(datagram, &mut headers) {
            Err(_) => Plan::Stateless,
            Ok(msg) => match (side, msg.is_request()) {
                (Side::Public, true) => {
                    let handed =
                        may_hand_over && hand_over(stateful, state, msg.call_id, datagram, source);
                    if handed {
                        Plan::HandedOver
                    } else {
                        let mut relay = stateful.relay.borrow_mut();
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
                }
                (Side::Internal, false) => {
                    let snapshot = state.forwarder.snapshot.borrow();
                    let mut relay = stateful.relay.borrow_mut();
                    match relay.response(&snapshot, &msg, now, &mut sends) {
                        ResponseFate::Stateless => Plan::Stateless,
                        ResponseFate::Deliver(ticket) => Plan::Deliver(ticket),
                        ResponseFate::Absorbed => {
                            // Counted against its backend like a relayed one.
                            if let Some(index) = snapshot.index_of(source) {
                                state.tally(BackendTally {
                                    index: index as u16,
                                    status: msg.status().unwrap_or(0),
                                    pinning: Pinning::Hashed,
                                    role: DialogRole::Outside,
                                });
                            }
                            Plan::Absorbed
                        }
                    }
                }
                _ => Plan::Stateless,
            },
        }
    };
    let arrival = Arrival { side, source };
    match plan {
        Plan::Stateless => forward_datagram(slot, reply, len, fd, side, source, state),
        Plan::HandedOver | Plan::Absorbed => None,
        Plan::Reply { len, dest } => Some(Out {
            fd,
            payload: Payload::Reply { offset: 0, len },
            dest,
        }),
        Plan::New(ticket) => {
            let verdict = state.forwarder.handle(arrival, slot, HEADROOM, len, reply);
            state.stats.record(&verdict);
            forward_new(slot, reply, verdict, fd, source, state, stateful, ticket)
        }
        Plan::Deliver(ticket) => {
            let verdict = state.forwarder.handle(arrival, slot, HEADROOM, len, reply);
            deliver(slot, verdict, fd, source, state, stateful, ticket)
        }
    }
}

/// Hands a client's request to the shard that owns its call, if that is another one.
/// False when it stays here (this shard owns it, one shard, or the channel refused it:
/// counted).
fn hand_over(
    stateful: &Stateful,
    state: &ShardState,
    call_id: &[u8],
    datagram: &[u8],
    source: SocketAddr,
) -> bool {
    let Some((handoffs, me)) = &stateful.handoffs else {
        return false;
    };
    let owner = owner_shard(call_id, state.exits.internal.len());
    if owner == *me {
        return false;
    }
    match handoffs.channel(*me, owner).send(datagram, source) {
        Ok(()) => {
            state.stats.handoff(HandoffEvent::Handed);
            true
        }
        Err(_) => {
            state.stats.handoff(HandoffEvent::Refused);
            false
        }
    }
}

/// A new transaction's request, as the forwarder decided it: branch 0 of the relay.
#[allow(clippy::too_many_arguments)]
fn forward_new(
    slot: &[u8],
    reply: &[u8],
    verdict: Verdict,
    fd: RawFd,
    source: SocketAddr,
    state: &ShardState,
    stateful: &Stateful,
    ticket: Ticket,
) -> Option<Out> {
    let now = stateful.now.get();
    let mut relay = stateful.relay.borrow_mut();
    match verdict {
        Verdict::Forward {
            exit,
            dest,
            start,
            len,
            backend,
            ..
        } => {
            let mut sends = stateful.sends(state, Some(fd));
            let index = backend.map_or(0, |t| t.index);
            let snapshot = state.forwarder.snapshot.borrow();
            let sent = &slot[start..start + len];
            relay.forwarded(ticket, &snapshot, sent, exit, dest, index, now, &mut sends);
        }
        Verdict::Reply { kind, len, .. } => relay.refused(ticket, kind.code(), &reply[..len], now),
        Verdict::Drop(_) => relay.abandon(ticket),
    }
    carry_out(verdict, fd, source, state)
}

/// A backend's response to a transaction here, our Via removed by the forwarder: sent if
/// the relay says so.
fn deliver(
    slot: &[u8],
    verdict: Verdict,
    fd: RawFd,
    source: SocketAddr,
    state: &ShardState,
    stateful: &Stateful,
    ticket: Ticket,
) -> Option<Out> {
    if let Verdict::Forward {
        start,
        len,
        backend,
        ..
    } = verdict
    {
        let mut sends = stateful.sends(state, Some(fd));
        let bytes = &slot[start..start + len];
        let now = stateful.now.get();
        let mut relay = stateful.relay.borrow_mut();
        if !relay.deliver(ticket, bytes, now, &mut sends) {
            // Held or left out (§16.7): counted against its backend all the same.
            if let Some(tally) = backend {
                state.tally(tally);
            }
            return None;
        }
    }
    state.stats.record(&verdict);
    carry_out(verdict, fd, source, state)
}

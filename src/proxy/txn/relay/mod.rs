//! The stateful proxy (`--mode stateful`, RFC 3261 §16 over §17 transactions), one per
//! shard, deciding without I/O. It sits beside the stateless [`crate::proxy::Forwarder`]:
//! the shard asks the relay first, and the forwarder still does every rewrite (our Via,
//! Record-Route, the response's Via removal). What the relay adds:
//!
//! - a server transaction per new request from a client (INVITE and out-of-dialog
//!   non-INVITE): 100 Trying at once for an INVITE, retransmissions answered from the kept
//!   response and never forwarded, the ACK of a non-2xx final absorbed;
//! - client transactions (branches) toward the backends: our own retransmissions (timers
//!   A/E), failover to the next backend of the call's Maglev preference order when a
//!   backend stays silent (`--failover-after-ms`) or answers a failover code, parallel
//!   forking (`--fork`), CANCEL of the losing branches, the ACK of their non-2xx finals,
//!   and the §16.7 choice of the final response (408 when nobody answered);
//! - the client's CANCEL: 200 at once, a CANCEL on every pending branch.
//!
//! In-dialog requests, the ACK of a 2xx and anything without a transaction here stay on
//! the stateless path. Everything is allocated when the shard starts.

mod branches;
mod copies;
mod entry;
mod timers;

use super::key::ServerKey;
use super::select::{Best, Selection};
use super::server::{Kind, ServerTransaction, Timers};
use super::store::ResponseStore;
use super::table::{Handle, Table, TableFull};
use super::wheel::TimerWheel;
use crate::balance::{call_id_hash, Snapshot};
use crate::proxy::Exit;
use crate::sip::{self, BranchKey, HeaderName, Message, Status};
use arrayvec::ArrayVec;
pub use entry::MAX_BRANCHES;
use entry::{Cancel, Entry, Layout};
use std::net::SocketAddr;

/// Timer wheel slots (of [`TICK_NS`] each: about 41 s per revolution).
const SLOTS: usize = 4096;
/// Timer resolution.
pub const TICK_NS: u64 = 10_000_000;
/// Longest request kept for retransmission and failover (a longer one is sent once, on one
/// branch).
pub const REQUEST_MAX: usize = 4096;
/// Most branches forked at once.
pub const MAX_FORK: u8 = 4;
/// Timers one branch holds at once (A, B and the failover timer; or C; or D, K or M).
const TIMERS_PER_BRANCH: usize = 3;

/// How the relay behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Transactions per shard (`--max-transactions`).
    pub capacity: usize,
    /// T1, T2, T4.
    pub timers: Timers,
    /// Give up on a backend that sent nothing at all after this long (`--failover-after-ms`).
    pub failover_after_ns: Option<u64>,
    /// Backends one request is tried on, the first included (`--max-attempts`).
    pub max_attempts: u8,
    /// Final responses that move the request to the next backend (`--failover-codes`).
    pub failover_codes: ArrayVec<u16, 8>,
    /// Backends a dialog-creating INVITE goes to at once (`--fork`).
    pub fork: u8,
    /// Retry-After of the 503 a full table answers.
    pub retry_after: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let mut failover_codes = ArrayVec::new();
        failover_codes.push(503);
        RelayConfig {
            capacity: 32_768,
            timers: Timers::default(),
            failover_after_ns: Some(2_000_000_000),
            max_attempts: 3,
            failover_codes,
            fork: 1,
            retry_after: 5,
        }
    }
}

/// Why a request moved to the next backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverCause {
    /// The backend sent nothing within `--failover-after-ms`.
    NoAnswer,
    /// It answered one of `--failover-codes`.
    Status,
}

/// What the relay did, for the shard's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// A retransmitted request (or the ACK of our non-2xx) was absorbed.
    Absorbed,
    /// A request went to backend `backend` on a further branch (a fork or a failover).
    Branch {
        /// The backend's index.
        backend: u16,
    },
    /// Backend `backend` failed the request, which moved on.
    Failover {
        /// The backend's index.
        backend: u16,
        /// Why.
        cause: FailoverCause,
    },
    /// A dialog-creating INVITE was forked.
    Forked,
    /// The client CANCELed a transaction here.
    ClientCancel,
    /// A CANCEL went to a backend.
    CancelSent,
    /// We answered the client with this final status ourselves (408, 500, 487).
    Generated(u16),
    /// The table was full: 503.
    TableFull,
}

/// What the relay sends and reports: the shard queues the datagrams and counts the events.
pub trait Sends {
    /// Sends `datagram` to `dest` from `exit`.
    fn send(&mut self, exit: Exit, dest: SocketAddr, datagram: &[u8]);
    /// Counts `event`.
    fn event(&mut self, event: RelayEvent);
}

/// A message the relay passes to the stateless rewrite, and takes back after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    handle: Handle,
    branch: u8,
    status: u16,
}

/// What to do with a request from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// No transaction here: forward it statelessly.
    Stateless,
    /// A new transaction: rewrite and forward it, then report with
    /// [`Relay::forwarded`] (or [`Relay::refused`] / [`Relay::abandon`]).
    New(Ticket),
    /// Answer the client with the `len` bytes written to the reply buffer.
    Reply(usize),
    /// Nothing goes out.
    Absorbed,
}

/// What to do with a response from a backend.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseFate {
    /// Not for a transaction here: relay it statelessly.
    Stateless,
    /// Nothing goes out.
    Absorbed,
    /// Remove our Via, then ask [`Relay::deliver`] whether it goes to the client.
    Deliver(Ticket),
}

/// One shard's stateful proxy.
pub struct Relay {
    config: RelayConfig,
    key: BranchKey,
    table: Table<ServerKey, Entry>,
    /// Our branches' hashes, to their entry and branch slot.
    branches: Table<u64, (Handle, u8)>,
    wheel: TimerWheel,
    responses: ResponseStore,
    requests: ResponseStore,
    fired: Vec<u64>,
    scratch: Box<[u8]>,
    hop: Box<[u8]>,
    /// The time of the event being handled (for timers started deep inside it).
    clock_ns: u64,
}

impl Relay {
    /// A relay with everything allocated for `config.capacity` transactions, making its
    /// branches with `key`, at `now_ns`.
    pub fn new(mut config: RelayConfig, key: BranchKey, now_ns: u64) -> Self {
        config.fork = config.fork.clamp(1, MAX_FORK);
        config.max_attempts = config.max_attempts.clamp(1, MAX_BRANCHES as u8);
        let capacity = config.capacity.max(1);
        let branches = capacity * usize::from(config.fork.max(config.max_attempts));
        let timers = 2 * capacity + TIMERS_PER_BRANCH * branches;
        Relay {
            table: Table::new(capacity),
            branches: Table::new(branches),
            wheel: TimerWheel::new(timers, SLOTS, TICK_NS, now_ns),
            responses: ResponseStore::new(2 * capacity),
            requests: ResponseStore::with_size(capacity, REQUEST_MAX),
            fired: Vec::with_capacity(timers),
            scratch: vec![0; REQUEST_MAX].into_boxed_slice(),
            hop: vec![0; REQUEST_MAX].into_boxed_slice(),
            config,
            key,
            clock_ns: now_ns,
        }
    }

    /// Transactions alive.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when none is alive.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A request from the client at `source`, at `now_ns`. A reply is written to `reply`.
    pub fn request(
        &mut self,
        msg: &Message<'_, '_>,
        source: SocketAddr,
        now_ns: u64,
        reply: &mut [u8],
        sends: &mut impl Sends,
    ) -> Admission {
        self.clock_ns = now_ns;
        let method = msg.method().unwrap_or_default();
        if method == b"CANCEL" {
            return self.client_cancel(msg, source, reply, sends);
        }
        let Some(server_key) = ServerKey::of(msg) else {
            return Admission::Stateless;
        };
        let hash = server_key.hash_with(call_id_hash);
        let found = self.table.find(hash, &server_key);
        match (found, method) {
            (Some(handle), b"ACK") => {
                let step = self.entry(handle).server.ack();
                self.apply_server(handle, &step, now_ns);
                sends.event(RelayEvent::Absorbed);
                Admission::Absorbed
            }
            (None, b"ACK") => Admission::Stateless,
            (Some(handle), _) => {
                sends.event(RelayEvent::Absorbed);
                let step = self.entry(handle).server.request_again();
                let last = self.entry(handle).last.filter(|_| step.send);
                match last.and_then(|s| self.responses.get(s)) {
                    Some(kept) if kept.len() <= reply.len() => {
                        reply[..kept.len()].copy_from_slice(kept);
                        Admission::Reply(kept.len())
                    }
                    _ => Admission::Absorbed,
                }
            }
            // In-dialog requests stay stateless: their route set names the backend.
            (None, _) if msg.to_tagged() != Some(false) => Admission::Stateless,
            (None, _) => self.admit(msg, source, server_key, hash, now_ns, reply, sends),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        msg: &Message<'_, '_>,
        source: SocketAddr,
        server_key: ServerKey,
        hash: u64,
        now_ns: u64,
        reply: &mut [u8],
        sends: &mut impl Sends,
    ) -> Admission {
        let invite = msg.method() == Some(b"INVITE");
        let kind = if invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let base = self.key.branch_id(msg);
        let client = sip::reply_destination(&msg.top_via.via, source);
        let entry = Entry {
            server: ServerTransaction::new(kind, self.config.timers),
            server_timers: ArrayVec::new(),
            server_done: false,
            last: None,
            best: None,
            selection: Selection::default(),
            request: None,
            layout: Layout::default(),
            base,
            hash: call_id_hash(msg.call_id),
            client,
            exit: Exit::Public,
            branches: ArrayVec::new(),
            cancelled: false,
            answered: false,
            finished: false,
            invite,
        };
        let handle = match self.table.insert(hash, server_key, entry) {
            Ok(handle) => handle,
            Err(TableFull) => {
                sends.event(RelayEvent::TableFull);
                let status = Status::service_unavailable(self.config.retry_after);
                return match copies::reply_to(msg, status, source, &base, reply) {
                    Some(len) => Admission::Reply(len),
                    None => Admission::Absorbed,
                };
            }
        };
        if invite {
            let trying = Status {
                code: 100,
                reason: "Trying",
                retry_after: None,
            };
            if let Some(len) = copies::reply_to(msg, trying, source, &base, &mut self.hop) {
                let hop = std::mem::take(&mut self.hop);
                self.respond_client(handle, 100, &hop[..len], now_ns);
                sends.send(Exit::Public, client, &hop[..len]);
                self.hop = hop;
            }
        }
        Admission::New(Ticket {
            handle,
            branch: 0,
            status: 0,
        })
    }

    /// The new request of `ticket` went out as `sent` from `exit` to the backend `backend`
    /// (index `index` in `snapshot`): branch 0. A dialog-creating INVITE is forked now.
    #[allow(clippy::too_many_arguments)]
    pub fn forwarded(
        &mut self,
        ticket: Ticket,
        snapshot: &Snapshot,
        sent: &[u8],
        exit: Exit,
        backend: SocketAddr,
        index: u16,
        now_ns: u64,
        sends: &mut impl Sends,
    ) {
        self.clock_ns = now_ns;
        let handle = ticket.handle;
        let Some(entry) = self.table.get_mut(handle) else {
            return;
        };
        entry.exit = exit;
        entry.layout = copies::layout(sent, &self.key, entry.base, backend);
        let base = entry.base;
        let invite = entry.invite;
        let kept = self.requests.keep(None, sent);
        self.entry(handle).request = kept;
        self.start_branch(handle, base, backend, index, now_ns);
        if invite && self.config.fork > 1 && kept.is_some() {
            let mut forked = false;
            for _ in 1..self.config.fork {
                forked |= self.start_next(handle, snapshot, now_ns, sends);
            }
            if forked {
                sends.event(RelayEvent::Forked);
            }
        }
    }

    /// The new request of `ticket` was answered by us instead with `status` (`reply`: a
    /// 403, a 483, a 503 when no backend takes calls): kept for its retransmissions.
    pub fn refused(&mut self, ticket: Ticket, status: u16, reply: &[u8], now_ns: u64) {
        self.clock_ns = now_ns;
        if self.table.get(ticket.handle).is_some() {
            self.finish_with(ticket.handle, status, reply, now_ns);
            self.remove_if_over(ticket.handle);
        }
    }

    /// The new request of `ticket` was dropped: no transaction.
    pub fn abandon(&mut self, ticket: Ticket) {
        self.remove(ticket.handle);
    }

    /// A response from a backend, at `now_ns`.
    pub fn response(
        &mut self,
        snapshot: &Snapshot,
        msg: &Message<'_, '_>,
        now_ns: u64,
        sends: &mut impl Sends,
    ) -> ResponseFate {
        self.clock_ns = now_ns;
        let Some(id) = msg.top_via.via.branch.and_then(|b| self.key.read(b)) else {
            return ResponseFate::Stateless;
        };
        let id = id.id();
        let Some(&(handle, slot)) = self
            .branches
            .find(id, &id)
            .and_then(|h| self.branches.get(h))
        else {
            return ResponseFate::Stateless;
        };
        if msg.cseq.method == b"CANCEL" {
            // The answer to our own CANCEL: it ends here.
            return ResponseFate::Absorbed;
        }
        let status = msg.status().unwrap_or(0);
        let Some(step) = self
            .table
            .get_mut(handle)
            .and_then(|e| e.branches.get_mut(usize::from(slot)))
            .map(|b| b.txn.response(status))
        else {
            return ResponseFate::Stateless;
        };
        if step.ack {
            let to = msg.headers.iter().find(|h| h.name == HeaderName::To);
            if let Some(to) = to {
                self.write_hop(handle, slot, Some(to.line), sends);
            }
        }
        self.apply_client(handle, slot, &step, now_ns);
        if !step.pass_on {
            return ResponseFate::Absorbed;
        }
        let ticket = Ticket {
            handle,
            branch: slot,
            status,
        };
        let entry = self.entry(handle);
        let branch = &mut entry.branches[usize::from(slot)];
        if status >= 200 {
            branch.pending = false;
        }
        let superseded = branch.superseded;
        if status < 200 {
            if branch.cancel == Cancel::Wanted {
                self.send_cancel(handle, slot, sends);
            }
            let entry = self.entry(handle);
            let over = entry.finished || entry.answered && status == 100;
            return if status == 100 || superseded || over {
                ResponseFate::Absorbed
            } else {
                ResponseFate::Deliver(ticket)
            };
        }
        if status < 300 {
            // Every 2xx goes to the client, even a late one after a CANCEL (§16.7.4).
            self.entry(handle).answered = true;
            self.cancel_others(handle, slot, sends);
            return ResponseFate::Deliver(ticket);
        }
        if superseded {
            // A cancelled loser's final: ACKed above, never relayed; the last one lets
            // the best final go.
            if !self.entry(handle).pending() {
                self.finish(handle, now_ns, sends);
                self.remove_if_over(handle);
            }
            return ResponseFate::Absorbed;
        }
        let failover_code = self.config.failover_codes.contains(&status);
        let entry = self.entry(handle);
        let failover = failover_code && status < 600 && entry.may_move();
        let backend = entry.branches[usize::from(slot)].index;
        if failover && self.start_next(handle, snapshot, now_ns, sends) {
            sends.event(RelayEvent::Failover {
                backend,
                cause: FailoverCause::Status,
            });
            self.remove_if_over(handle);
            return ResponseFate::Absorbed;
        }
        let entry = self.entry(handle);
        entry.selection.offer(slot, status);
        if entry.selection.global_failure() {
            self.cancel_others(handle, slot, sends);
        }
        ResponseFate::Deliver(ticket)
    }

    /// The response of `ticket`, our Via removed (`bytes`): true if it goes to the client
    /// now. A non-2xx final waits while another branch is pending, and goes only if it is
    /// the best (§16.7); the best one may go out through `sends` instead.
    pub fn deliver(
        &mut self,
        ticket: Ticket,
        bytes: &[u8],
        now_ns: u64,
        sends: &mut impl Sends,
    ) -> bool {
        self.clock_ns = now_ns;
        let handle = ticket.handle;
        let Some(entry) = self.table.get_mut(handle) else {
            return ticket.status < 300;
        };
        if ticket.status < 300 {
            let sent = self.respond_client(handle, ticket.status, bytes, now_ns);
            self.remove_if_over(handle);
            // A 2xx goes whatever the server transaction says (a fork's second 2xx).
            return sent || ticket.status >= 200;
        }
        let best_is_this = matches!(
            entry.selection.best(),
            Best::Relay { branch, .. } if branch == ticket.branch
        );
        if best_is_this {
            entry.best = self.responses.keep(entry.best, bytes);
        }
        if self.entry(handle).pending() {
            return false;
        }
        let sent_here = best_is_this && self.finish_with(handle, ticket.status, bytes, now_ns);
        if !sent_here {
            self.finish(handle, now_ns, sends);
        }
        self.remove_if_over(handle);
        sent_here
    }

    fn entry(&mut self, handle: Handle) -> &mut Entry {
        self.table
            .get_mut(handle)
            .unwrap_or_else(|| unreachable!("handles are used before their entry goes"))
    }

    /// The response `bytes` (`status`) for the client of `handle`: its server transaction
    /// moves on, and keeps it (replacing the last one) when it goes out, to answer
    /// retransmissions. True if it goes out.
    fn respond_client(&mut self, handle: Handle, status: u16, bytes: &[u8], now_ns: u64) -> bool {
        let Some(entry) = self.table.get_mut(handle) else {
            return false;
        };
        let step = entry.server.respond(status);
        if step.send {
            entry.last = self.responses.keep(entry.last, bytes);
        }
        self.apply_server(handle, &step, now_ns);
        step.send
    }

    /// Removes the entry once its server transaction and every branch are over.
    fn remove_if_over(&mut self, handle: Handle) {
        let over = self
            .table
            .get(handle)
            .is_some_and(|e| e.server_done && !e.any_live());
        if over {
            self.remove(handle);
        }
    }

    /// Removes the entry, its timers, its branches' index entries and its kept bytes. The
    /// entry is read where it lies and dropped there (it is large: no move).
    fn remove(&mut self, handle: Handle) {
        let Some(entry) = self.table.get(handle) else {
            return;
        };
        for (_, id) in &entry.server_timers {
            self.wheel.cancel(*id);
        }
        for branch in &entry.branches {
            for (_, id) in &branch.timers {
                self.wheel.cancel(*id);
            }
            let id = branch.id.id();
            if let Some(h) = self.branches.find(id, &id) {
                self.branches.remove(h);
            }
        }
        for stored in [entry.last, entry.best].into_iter().flatten() {
            self.responses.release(stored);
        }
        if let Some(stored) = entry.request {
            self.requests.release(stored);
        }
        self.table.discard(handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one transaction reserves, as docs/configuration.md states it (about 9 KiB:
    /// a 4 KiB request slot, two 2 KiB response slots, the entry with its key under 1 KiB,
    /// index and wheel slots). The entry is written into the table when a transaction
    /// starts: its size is a copy on every new request.
    #[test]
    fn a_transaction_reserves_about_nine_kib() {
        let entry = std::mem::size_of::<Entry>() + std::mem::size_of::<ServerKey>();
        assert!(entry <= 1024, "entry {entry} bytes");
        let per_transaction = entry + REQUEST_MAX + 2 * super::super::STORED_RESPONSE_MAX;
        assert!(per_transaction <= 9 * 1024, "{per_transaction} bytes");
    }
}

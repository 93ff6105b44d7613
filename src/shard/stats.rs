//! Live counters a shard writes and the metrics endpoint reads.
//!
//! Each counter has exactly one writer, its shard's thread, so an increment is a relaxed load
//! and a relaxed store (plain `mov`s on x86, no locked instruction and no cache line shared
//! with another writer). Readers (a scrape, the final summary) load them relaxed and sum
//! across shards only when asked.

use super::residence::ResidenceHistogram;
use crate::proxy::txn::{FailoverCause, RelayEvent};
use crate::proxy::{DialogRole, DropReason, MessageKind, Pinning, ReplyKind, Verdict};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A shard's totals as read out of its live counters ([`ShardStats::read`]), summed
/// across shards when reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent (accepted by the kernel): forwarded messages and stateless replies.
    pub sent: u64,
    /// Requests forwarded.
    pub requests_forwarded: u64,
    /// Responses forwarded.
    pub responses_forwarded: u64,
    /// Replies sent, by [`ReplyKind`].
    pub replies: [u64; ReplyKind::COUNT],
    /// Drops, by [`DropReason`].
    pub drops: [u64; DropReason::COUNT],
    /// The stateful mode's work (all zero in stateless mode).
    pub relay: RelayCounters,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.received += other.received;
        self.sent += other.sent;
        self.requests_forwarded += other.requests_forwarded;
        self.responses_forwarded += other.responses_forwarded;
        for (a, b) in self.replies.iter_mut().zip(other.replies) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
        self.relay.add(&other.relay);
    }

    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Replies of one kind.
    pub fn replied(&self, kind: ReplyKind) -> u64 {
        self.replies[kind as usize]
    }
}

/// One shard's totals: written by that shard only.
#[derive(Debug, Default)]
pub struct ShardStats {
    received: AtomicU64,
    sent: AtomicU64,
    requests_forwarded: AtomicU64,
    responses_forwarded: AtomicU64,
    replies: [AtomicU64; ReplyKind::COUNT],
    drops: [AtomicU64; DropReason::COUNT],
    generation: AtomicU64,
    /// Residence times of the datagrams this shard handled.
    pub residence: ResidenceHistogram,
    /// The stateful relay's counters.
    relay: RelayStats,
}

impl ShardStats {
    /// Records the generation of the backend set the shard now routes with.
    pub fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Relaxed);
    }

    /// The generation of the backend set the shard routes with.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Tallies a verdict. Only the owning shard calls this.
    #[inline]
    pub fn record(&self, verdict: &Verdict) {
        match *verdict {
            Verdict::Forward {
                kind: MessageKind::Request,
                ..
            } => bump(&self.requests_forwarded, 1),
            Verdict::Forward {
                kind: MessageKind::Response,
                ..
            } => bump(&self.responses_forwarded, 1),
            Verdict::Reply { kind, .. } => bump(&self.replies[kind as usize], 1),
            Verdict::Drop(reason) => self.drop_n(reason, 1),
        }
    }

    /// Tallies `n` drops for `reason`. Only the owning shard calls this.
    #[inline]
    pub fn drop_n(&self, reason: DropReason, n: u64) {
        if n > 0 {
            bump(&self.drops[reason as usize], n);
        }
    }

    /// Tallies `n` received datagrams. Only the owning shard calls this.
    #[inline]
    pub fn add_received(&self, n: u64) {
        bump(&self.received, n);
    }

    /// Tallies `n` datagrams sent. Only the owning shard calls this.
    #[inline]
    pub fn add_sent(&self, n: u64) {
        bump(&self.sent, n);
    }

    /// The totals so far.
    pub fn read(&self) -> Counters {
        Counters {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            requests_forwarded: self.requests_forwarded.load(Relaxed),
            responses_forwarded: self.responses_forwarded.load(Relaxed),
            replies: std::array::from_fn(|i| self.replies[i].load(Relaxed)),
            drops: std::array::from_fn(|i| self.drops[i].load(Relaxed)),
            relay: self.relay.read(),
        }
    }

    /// Counts what the stateful relay did.
    #[inline]
    pub fn relay_event(&self, event: RelayEvent) {
        let r = &self.relay;
        let counter = match event {
            RelayEvent::Absorbed => &r.absorbed,
            RelayEvent::Branch { .. } => &r.branches,
            RelayEvent::Failover {
                cause: FailoverCause::NoAnswer,
                ..
            } => &r.failovers_no_answer,
            RelayEvent::Failover {
                cause: FailoverCause::Status,
                ..
            } => &r.failovers_status,
            RelayEvent::Forked => &r.forks,
            RelayEvent::ClientCancel => &r.client_cancels,
            RelayEvent::CancelSent => &r.cancels_sent,
            RelayEvent::Generated(408) => &r.timeouts,
            RelayEvent::Generated(_) => &r.generated_other,
            RelayEvent::TableFull => &r.table_full,
        };
        bump(counter, 1);
    }

    /// Counts a handoff of a client's request between shards.
    #[inline]
    pub fn handoff(&self, event: HandoffEvent) {
        let r = &self.relay;
        bump(
            match event {
                HandoffEvent::Handed => &r.handed,
                HandoffEvent::Refused => &r.handoff_refused,
                HandoffEvent::Taken => &r.taken,
            },
            1,
        );
    }

    /// Sets how many transactions the shard's relay holds.
    pub fn set_transactions(&self, live: usize) {
        self.relay.live.store(live as u64, Relaxed);
    }
}

/// A client's request between two shards (stateful mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffEvent {
    /// Handed to the shard that owns its call.
    Handed,
    /// The channel was full (or the datagram too long): handled where it arrived.
    Refused,
    /// Taken from another shard.
    Taken,
}

/// The stateful relay's counters of one shard (one writer: the shard).
#[derive(Debug, Default)]
struct RelayStats {
    live: AtomicU64,
    absorbed: AtomicU64,
    branches: AtomicU64,
    failovers_no_answer: AtomicU64,
    failovers_status: AtomicU64,
    forks: AtomicU64,
    client_cancels: AtomicU64,
    cancels_sent: AtomicU64,
    timeouts: AtomicU64,
    generated_other: AtomicU64,
    table_full: AtomicU64,
    handed: AtomicU64,
    handoff_refused: AtomicU64,
    taken: AtomicU64,
}

impl RelayStats {
    fn read(&self) -> RelayCounters {
        RelayCounters {
            transactions: self.live.load(Relaxed),
            absorbed: self.absorbed.load(Relaxed),
            branches: self.branches.load(Relaxed),
            failovers_no_answer: self.failovers_no_answer.load(Relaxed),
            failovers_status: self.failovers_status.load(Relaxed),
            forks: self.forks.load(Relaxed),
            client_cancels: self.client_cancels.load(Relaxed),
            cancels_sent: self.cancels_sent.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            generated_other: self.generated_other.load(Relaxed),
            table_full: self.table_full.load(Relaxed),
            handed: self.handed.load(Relaxed),
            handoff_refused: self.handoff_refused.load(Relaxed),
            taken: self.taken.load(Relaxed),
        }
    }
}

/// What the stateful relay did, read from a shard (or summed over shards).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Transactions alive now.
    pub transactions: u64,
    /// Retransmitted requests (and ACKs of our non-2xx finals) absorbed.
    pub absorbed: u64,
    /// Requests sent on a further branch (a fork or a failover).
    pub branches: u64,
    /// Backends given up on for silence (`--failover-after-ms`).
    pub failovers_no_answer: u64,
    /// Backends given up on for a failover code.
    pub failovers_status: u64,
    /// INVITEs forked.
    pub forks: u64,
    /// CANCELs from clients that cancelled a transaction here.
    pub client_cancels: u64,
    /// CANCELs sent to backends.
    pub cancels_sent: u64,
    /// 408s we answered (no backend answered in time).
    pub timeouts: u64,
    /// Other finals we answered (487 after a CANCEL nobody answered, 500 for a lone 503).
    pub generated_other: u64,
    /// Requests refused with 503 because the table was full.
    pub table_full: u64,
    /// Client requests handed to the shard that owns their call.
    pub handed: u64,
    /// Client requests the owner's channel refused (full): handled where they arrived.
    pub handoff_refused: u64,
    /// Client requests taken from other shards.
    pub taken: u64,
}

impl RelayCounters {
    /// Adds `other` (another shard's).
    pub fn add(&mut self, other: &RelayCounters) {
        self.transactions += other.transactions;
        self.absorbed += other.absorbed;
        self.branches += other.branches;
        self.failovers_no_answer += other.failovers_no_answer;
        self.failovers_status += other.failovers_status;
        self.forks += other.forks;
        self.client_cancels += other.client_cancels;
        self.cancels_sent += other.cancels_sent;
        self.timeouts += other.timeouts;
        self.generated_other += other.generated_other;
        self.table_full += other.table_full;
        self.handed += other.handed;
        self.handoff_refused += other.handoff_refused;
        self.taken += other.taken;
    }
}

/// One backend's traffic through one shard: written by that shard only.
#[derive(Debug, Default)]
pub struct BackendStats {
    requests: AtomicU64,
    pinned: AtomicU64,
    moved: AtomicU64,
    new_calls: AtomicU64,
    in_dialog: AtomicU64,
    failures: AtomicU64,
    responses: [AtomicU64; 6],
}

/// What [`BackendStats`] holds, read out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendCounters {
    /// Requests sent to the backend.
    pub requests: u64,
    /// Of those, in-dialog requests routed to it by the pin of our Route entry.
    pub pinned: u64,
    /// Of those, requests whose pin named a backend gone or down, sent here by the hash.
    pub moved: u64,
    /// Of those, dialog-creating requests (new calls).
    pub new_calls: u64,
    /// Of those, requests inside a dialog (To tag), however they found the backend.
    pub in_dialog: u64,
    /// Requests the stateful relay moved away from this backend (silence or a failover
    /// code).
    pub failures: u64,
    /// Responses from the backend by class: `responses[0]` is 1xx ... `responses[5]` 6xx.
    pub responses: [u64; 6],
}

impl BackendCounters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &BackendCounters) {
        self.requests += other.requests;
        self.pinned += other.pinned;
        self.moved += other.moved;
        self.new_calls += other.new_calls;
        self.in_dialog += other.in_dialog;
        self.failures += other.failures;
        for (a, b) in self.responses.iter_mut().zip(other.responses) {
            *a += b;
        }
    }
}

impl BackendStats {
    /// A request was sent to the backend, found as `pinning` says, with `role` toward
    /// dialogs. Only the owning shard calls this.
    #[inline]
    pub fn request(&self, pinning: Pinning, role: DialogRole) {
        bump(&self.requests, 1);
        match pinning {
            Pinning::Hashed => {}
            Pinning::Pinned => bump(&self.pinned, 1),
            Pinning::Moved => bump(&self.moved, 1),
        }
        match role {
            DialogRole::Creates => bump(&self.new_calls, 1),
            DialogRole::Within => bump(&self.in_dialog, 1),
            DialogRole::Outside => {}
        }
    }

    /// A response with `status` (100..=699) came from the backend. Only the owning shard
    /// calls this.
    /// The stateful relay gave up on this backend for a request.
    pub fn failed(&self) {
        bump(&self.failures, 1);
    }

    #[inline]
    pub fn response(&self, status: u16) {
        if let Some(class) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            bump(class, 1);
        }
    }

    /// The totals so far.
    pub fn read(&self) -> BackendCounters {
        BackendCounters {
            requests: self.requests.load(Relaxed),
            pinned: self.pinned.load(Relaxed),
            moved: self.moved.load(Relaxed),
            new_calls: self.new_calls.load(Relaxed),
            in_dialog: self.in_dialog.load(Relaxed),
            failures: self.failures.load(Relaxed),
            responses: std::array::from_fn(|i| self.responses[i].load(Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Exit, MessageKind};

    #[test]
    fn records_verdicts_and_backend_classes() {
        let stats = ShardStats::default();
        let dest = "127.0.0.1:5060".parse().unwrap();
        let forward = |kind| Verdict::Forward {
            exit: Exit::Public,
            dest,
            start: 0,
            len: 1,
            kind,
            backend: None,
        };
        stats.record(&forward(MessageKind::Request));
        stats.record(&forward(MessageKind::Request));
        stats.record(&forward(MessageKind::Response));
        stats.record(&Verdict::Drop(DropReason::ForeignVia));
        stats.drop_n(DropReason::SendFailed, 3);
        stats.add_received(9);
        let c = stats.read();
        assert_eq!(
            (c.received, c.requests_forwarded, c.responses_forwarded),
            (9, 2, 1)
        );
        assert_eq!(c.dropped(DropReason::ForeignVia), 1);
        assert_eq!(c.dropped(DropReason::SendFailed), 3);

        let backend = BackendStats::default();
        backend.request(Pinning::Hashed, DialogRole::Creates);
        for status in [100, 180, 200, 486, 503, 603, 99, 700] {
            backend.response(status);
        }
        let b = backend.read();
        assert_eq!(b.requests, 1);
        backend.request(Pinning::Pinned, DialogRole::Within);
        backend.request(Pinning::Pinned, DialogRole::Within);
        backend.request(Pinning::Moved, DialogRole::Within);
        backend.request(Pinning::Hashed, DialogRole::Outside);
        let b = backend.read();
        assert_eq!((b.requests, b.pinned, b.moved), (5, 2, 1));
        assert_eq!((b.new_calls, b.in_dialog), (1, 3));
        assert_eq!(b.responses, [2, 1, 0, 1, 1, 1]);
    }
}

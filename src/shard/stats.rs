//! Live counters a shard writes and the metrics endpoint reads.
//!
//! Each counter has exactly one writer, its shard's thread, so an increment is a relaxed load
//! and a relaxed store (plain `mov`s on x86, no locked instruction and no cache line shared
//! with another writer). Readers (a scrape, the final summary) load them relaxed and sum
//! across shards only when asked.

use super::residence::ResidenceHistogram;
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
        }
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

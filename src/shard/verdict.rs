//! What happens to one datagram, and the per-socket counters that tally it.

use std::net::SocketAddr;

/// Which socket a datagram leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The shard's public socket for the destination's address family.
    Public,
    /// Internal socket `k` (any shard's: the Call-ID picks it, not the receiving shard).
    Internal(usize),
    /// The socket the datagram arrived on (stateless replies).
    Same,
}

/// Why a datagram was not forwarded or answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// Not SIP, or too malformed to answer (and responses, which are never answered).
    Unparsable = 0,
    /// An empty datagram or only CRLFs: a NAT keep-alive.
    KeepAlive,
    /// A malformed ACK (never answered, §17.2.1).
    BadAck,
    /// An ACK with Max-Forwards 0 (not forwarded, never answered).
    AckTooManyHops,
    /// An ACK while no backend takes new calls (a request would get a 503).
    NoBackend,
    /// An ACK carrying our branch: it looped back (a request would get a 482).
    LoopedAck,
    /// A response whose top Via is not ours (or whose branch does not verify).
    ForeignVia,
    /// A response with no Via left after ours.
    NoNextVia,
    /// The next hop is a host name; sipshard does not resolve names yet.
    NeedsDns,
    /// A backend's request goes to an address family sipshard has no public socket for.
    NoSocketForFamily,
    /// A request on the internal side from an address that is not a backend.
    UnknownPeer,
    /// The reply did not fit its buffer.
    ReplyTooLarge,
    /// The rewrite did not fit the slot's head/tailroom.
    NoRoom,
    /// Longer than the largest datagram.
    Truncated,
    /// The source address family is unknown.
    BadSource,
    /// The socket's send buffer stayed full.
    SendBufferFull,
    /// The kernel refused the send.
    SendFailed,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 17;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Unparsable,
        DropReason::KeepAlive,
        DropReason::BadAck,
        DropReason::AckTooManyHops,
        DropReason::NoBackend,
        DropReason::LoopedAck,
        DropReason::ForeignVia,
        DropReason::NoNextVia,
        DropReason::NeedsDns,
        DropReason::NoSocketForFamily,
        DropReason::UnknownPeer,
        DropReason::ReplyTooLarge,
        DropReason::NoRoom,
        DropReason::Truncated,
        DropReason::BadSource,
        DropReason::SendBufferFull,
        DropReason::SendFailed,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Unparsable => "unparsable",
            DropReason::KeepAlive => "keepalive",
            DropReason::BadAck => "bad_ack",
            DropReason::AckTooManyHops => "ack_too_many_hops",
            DropReason::NoBackend => "no_backend",
            DropReason::LoopedAck => "looped_ack",
            DropReason::ForeignVia => "foreign_via",
            DropReason::NoNextVia => "no_next_via",
            DropReason::NeedsDns => "needs_dns",
            DropReason::NoSocketForFamily => "no_socket_for_family",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::ReplyTooLarge => "reply_too_large",
            DropReason::NoRoom => "no_room",
            DropReason::Truncated => "truncated",
            DropReason::BadSource => "bad_source",
            DropReason::SendBufferFull => "send_buffer_full",
            DropReason::SendFailed => "send_failed",
        }
    }
}

/// The stateless replies sipshard sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ReplyKind {
    /// 400 Bad Request.
    BadRequest = 0,
    /// 482 Loop Detected.
    LoopDetected,
    /// 483 Too Many Hops.
    TooManyHops,
    /// 503: no backend takes new calls.
    ServiceUnavailable,
    /// 503: the next hop of a backend's request is a host name (sipshard does not resolve).
    NextHopNeedsDns,
}

impl ReplyKind {
    /// Number of kinds.
    pub const COUNT: usize = 5;
    /// Every kind, in counter order.
    pub const ALL: [ReplyKind; Self::COUNT] = [
        ReplyKind::BadRequest,
        ReplyKind::LoopDetected,
        ReplyKind::TooManyHops,
        ReplyKind::ServiceUnavailable,
        ReplyKind::NextHopNeedsDns,
    ];
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            ReplyKind::BadRequest => "400",
            ReplyKind::LoopDetected => "482",
            ReplyKind::TooManyHops => "483",
            ReplyKind::ServiceUnavailable => "503",
            ReplyKind::NextHopNeedsDns => "503_needs_dns",
        }
    }

    /// Status code.
    pub fn code(self) -> u16 {
        match self {
            ReplyKind::BadRequest => 400,
            ReplyKind::LoopDetected => 482,
            ReplyKind::TooManyHops => 483,
            ReplyKind::ServiceUnavailable | ReplyKind::NextHopNeedsDns => 503,
        }
    }
}

/// A message to or from a backend, for the per-backend counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendTally {
    /// The backend's index in the shard's snapshot.
    pub index: u16,
    /// A response's status code; 0 for a request.
    pub status: u16,
}

/// The outcome of handling one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send `len` bytes of the slot from `start` to `dest` via `exit`.
    Forward {
        /// Socket to send from.
        exit: Exit,
        /// Next hop.
        dest: SocketAddr,
        /// Offset of the rewritten message in the slot.
        start: usize,
        /// Its length.
        len: usize,
        /// True for a request (false for a response).
        request: bool,
        /// The backend this request goes to or this response comes from, if any.
        backend: Option<BackendTally>,
    },
    /// Send the first `len` bytes of the reply buffer to `dest` from the receiving socket.
    Reply {
        /// Which reply.
        kind: ReplyKind,
        /// Where.
        dest: SocketAddr,
        /// Length.
        len: usize,
    },
    /// Nothing is sent.
    Drop(DropReason),
}

/// A shard's totals as read out of its live counters ([`super::ShardStats::read`]), summed
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

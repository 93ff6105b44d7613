//! What happens to one datagram: the proxy's verdict, which the shard carries out, and the
//! reasons and reply kinds its counters are kept by.

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
    /// An ACK whose Route names us with a pin we did not make (a request would get a 403).
    ForgedRoute,
    /// An ACK to a redirect server's 302 (or any ACK it gets): absorbed, as a UAS does.
    AbsorbedAck,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 19;
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
        DropReason::ForgedRoute,
        DropReason::AbsorbedAck,
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
            DropReason::ForgedRoute => "forged_route",
            DropReason::AbsorbedAck => "absorbed_ack",
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
    /// 403: the request's Route names us with a pin we did not make.
    ForgedRoute,
    /// 302: a redirect server's answer to a new call, naming the backend.
    Redirect,
    /// 200: a redirect server's answer to an OPTIONS or a CANCEL.
    Ok,
    /// 481: a redirect server is in no dialog.
    NoDialog,
    /// 405: a method a redirect server does not redirect.
    MethodNotAllowed,
}

impl ReplyKind {
    /// Number of kinds.
    pub const COUNT: usize = 10;
    /// Every kind, in counter order.
    pub const ALL: [ReplyKind; Self::COUNT] = [
        ReplyKind::BadRequest,
        ReplyKind::LoopDetected,
        ReplyKind::TooManyHops,
        ReplyKind::ServiceUnavailable,
        ReplyKind::NextHopNeedsDns,
        ReplyKind::ForgedRoute,
        ReplyKind::Redirect,
        ReplyKind::Ok,
        ReplyKind::NoDialog,
        ReplyKind::MethodNotAllowed,
    ];
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            ReplyKind::BadRequest => "400",
            ReplyKind::LoopDetected => "482",
            ReplyKind::TooManyHops => "483",
            ReplyKind::ServiceUnavailable => "503",
            ReplyKind::NextHopNeedsDns => "503_needs_dns",
            ReplyKind::ForgedRoute => "403_forged_route",
            ReplyKind::Redirect => "302",
            ReplyKind::Ok => "200",
            ReplyKind::NoDialog => "481",
            ReplyKind::MethodNotAllowed => "405",
        }
    }

    /// Status code.
    pub fn code(self) -> u16 {
        match self {
            ReplyKind::BadRequest => 400,
            ReplyKind::LoopDetected => 482,
            ReplyKind::TooManyHops => 483,
            ReplyKind::ServiceUnavailable | ReplyKind::NextHopNeedsDns => 503,
            ReplyKind::ForgedRoute => 403,
            ReplyKind::Redirect => 302,
            ReplyKind::Ok => 200,
            ReplyKind::NoDialog => 481,
            ReplyKind::MethodNotAllowed => 405,
        }
    }
}

/// How a request from a client found its backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pinning {
    /// By the Call-ID's hash: a new dialog, or one we are not in the route set of.
    #[default]
    Hashed,
    /// By the pin in our Route entry: an in-dialog request.
    Pinned,
    /// The pin named a backend that is gone or down: by the hash instead.
    Moved,
}

/// Where a request stands toward dialogs, for the per-backend call counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DialogRole {
    /// It may create a dialog (an INVITE, SUBSCRIBE, REFER or NOTIFY without a To tag): a
    /// new call.
    Creates,
    /// Inside a dialog (its To has a tag): an ACK, BYE or re-INVITE of an established call.
    Within,
    /// Neither (OPTIONS, REGISTER, a CANCEL, a response).
    #[default]
    Outside,
}

/// A message to or from a backend, for the per-backend counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendTally {
    /// The backend's index in the shard's snapshot.
    pub index: u16,
    /// A response's status code; 0 for a request.
    pub status: u16,
    /// How a client's request found the backend.
    pub pinning: Pinning,
    /// A request's place toward dialogs.
    pub role: DialogRole,
}

/// Whether a forwarded message is a request or a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A request.
    Request,
    /// A response.
    Response,
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
        /// A request or a response.
        kind: MessageKind,
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
        /// The backend a redirect names, for the per-backend counters.
        backend: Option<BackendTally>,
    },
    /// Nothing is sent.
    Drop(DropReason),
}

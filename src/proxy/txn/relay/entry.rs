//! What the relay keeps per server transaction: the server transaction toward the client,
//! the client transactions (branches) toward the backends, the request as sent and the
//! responses kept for the client.

use super::super::client::{self, ClientTransaction};
use super::super::select::Selection;
use super::super::server::{self, ServerTransaction};
use super::super::store::Stored;
use super::super::wheel::TimerId;
use crate::proxy::Exit;
use crate::sip::BranchId;
use arrayvec::ArrayVec;
use std::net::SocketAddr;

/// Client transactions one server transaction can make over its life (forks and failover
/// attempts together).
pub const MAX_BRANCHES: usize = 4;

/// Where the CANCEL of a branch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cancel {
    /// Not wanted.
    No,
    /// Wanted, but nothing came back yet: it goes when a provisional response does (§9.1).
    Wanted,
    /// Sent.
    Sent,
}

/// One client transaction toward a backend.
pub(super) struct Branch {
    /// Our Via branch (its hash is how its responses find it).
    pub id: BranchId,
    /// The backend.
    pub backend: SocketAddr,
    /// The backend's index in the snapshot it was chosen from.
    pub index: u16,
    pub txn: ClientTransaction,
    pub timers: ArrayVec<(client::Timer, TimerId), 4>,
    /// No final response yet, and not given up on.
    pub pending: bool,
    /// The transaction is not over (its entry in the branch index stands).
    pub live: bool,
    /// We cancelled it because another branch won: its non-2xx final never goes to the
    /// client.
    pub superseded: bool,
    pub cancel: Cancel,
}

/// Where the request as sent keeps the parts that differ between branches.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Layout {
    /// Offset of our Via's branch value.
    pub branch_at: Option<u16>,
    /// Offsets of the backend's pin in our Record-Route entries.
    pub pins: [Option<u16>; 2],
}

/// One server transaction and its branches.
pub(super) struct Entry {
    pub server: ServerTransaction,
    pub server_timers: ArrayVec<(server::Timer, TimerId), 2>,
    /// The server transaction is over (the entry goes once its branches are too).
    pub server_done: bool,
    /// The last response the client got (sent again for a retransmitted request).
    pub last: Option<Stored>,
    /// The best non-2xx final response so far, waiting for the other branches.
    pub best: Option<Stored>,
    pub selection: Selection,
    /// The request as sent on branch 0.
    pub request: Option<Stored>,
    pub layout: Layout,
    /// Branch 0's Via branch (the stateless one); the others derive from it.
    pub base: BranchId,
    /// The Call-ID hash: the call's backend preference order.
    pub hash: u64,
    /// Where responses to the client go.
    pub client: SocketAddr,
    /// The internal socket the request leaves from.
    pub exit: Exit,
    pub branches: ArrayVec<Branch, MAX_BRANCHES>,
    /// The client CANCELed it.
    pub cancelled: bool,
    /// A 2xx went to the client.
    pub answered: bool,
    /// A non-2xx final went to the client.
    pub finished: bool,
    /// An INVITE transaction.
    pub invite: bool,
}

impl Entry {
    /// A branch still waits for a final response.
    pub fn pending(&self) -> bool {
        self.branches.iter().any(|b| b.pending)
    }

    /// A branch's transaction is not over.
    pub fn any_live(&self) -> bool {
        self.branches.iter().any(|b| b.live)
    }

    /// A failed branch may still move to another backend: nobody cancelled, answered or
    /// failed the request globally (6xx).
    pub fn may_move(&self) -> bool {
        !self.cancelled && !self.answered && !self.finished && !self.selection.global_failure()
    }

    /// The backend was tried already.
    pub fn tried(&self, backend: SocketAddr) -> bool {
        self.branches.iter().any(|b| b.backend == backend)
    }
}

/// Timer tokens: which entry (index and generation), which branch (or the server
/// transaction) and which timer.
pub(super) mod token {
    use super::super::super::client;
    use super::super::super::server;
    use super::super::super::table::Handle;

    /// Bits of a handle's generation kept in a token.
    pub const GENERATION_MASK: u32 = 0x000f_ffff;
    /// The branch slot of the server transaction's timers.
    const SERVER: u64 = 15;

    /// A timer of the relay.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Which {
        Server(server::Timer),
        Branch(u8, client::Timer),
    }

    const SERVER_TIMERS: [server::Timer; 5] = [
        server::Timer::G,
        server::Timer::H,
        server::Timer::I,
        server::Timer::J,
        server::Timer::L,
    ];
    const CLIENT_TIMERS: [client::Timer; 9] = [
        client::Timer::A,
        client::Timer::B,
        client::Timer::C,
        client::Timer::D,
        client::Timer::E,
        client::Timer::F,
        client::Timer::K,
        client::Timer::M,
        client::Timer::NoAnswer,
    ];

    pub fn pack(handle: Handle, which: Which) -> u64 {
        let (slot, code) = match which {
            Which::Server(t) => (SERVER, SERVER_TIMERS.iter().position(|&x| x == t)),
            Which::Branch(slot, t) => (u64::from(slot), CLIENT_TIMERS.iter().position(|&x| x == t)),
        };
        u64::from(handle.index())
            | u64::from(handle.generation() & GENERATION_MASK) << 32
            | slot << 52
            | (code.unwrap_or(0) as u64) << 56
    }

    pub fn unpack(token: u64) -> (u32, u32, Which) {
        let slot = (token >> 52) & 0xf;
        let code = (token >> 56) as usize;
        let which = if slot == SERVER {
            Which::Server(SERVER_TIMERS[code.min(SERVER_TIMERS.len() - 1)])
        } else {
            Which::Branch(slot as u8, CLIENT_TIMERS[code.min(CLIENT_TIMERS.len() - 1)])
        };
        (token as u32, (token >> 32) as u32 & GENERATION_MASK, which)
    }
}

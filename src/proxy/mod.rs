//! The proxy layer: what to do with one SIP message, decided without I/O.
//!
//! It sits over the wire layer ([`crate::sip`]) and backend choice ([`crate::balance`]) and
//! under the shard, which receives datagrams, asks this layer for a [`Verdict`] and carries
//! it out. Today it holds the stateless proxy ([`Forwarder`], RFC 3261 §16.11); the
//! transaction layer of the stateful mode will sit beside it.

mod redirect;
mod route_set;
mod stateless;
pub mod txn;
mod verdict;

pub use redirect::Mode;
pub use route_set::{dialog_role, our_routes, path_lines, OurRoutes, RecordRouting};
pub use stateless::{Advertised, Arrival, Forwarder, Side, MAX_HEADERS};
pub use verdict::{
    BackendTally, DialogRole, DropReason, Exit, MessageKind, Pinning, ReplyKind, Verdict,
};

//! sipshard: a thread-per-core SIP (RFC 3261) load balancer.
//!
//! Layers, each depending only on those below it: [`sip`] (wire format), [`balance`]
//! (backend choice), `net` (sockets and batch I/O), `shard` (the per-core loop), [`tools`].

#![deny(unsafe_code)]

pub mod balance;
pub mod config;
pub mod control;
pub mod logging;
pub mod net;
pub mod proxy;
pub mod shard;
pub mod tools;

/// The SIP wire layer, its own crate ([`sipshard_sip`]): it cannot depend on any other layer.
pub use sipshard_sip as sip;

//! sipshard: a thread-per-core SIP (RFC 3261) load balancer.
//!
//! Layers, each using only layers below it (docs/architecture.md; `tests/it/layering.rs`
//! checks it): [`sip`] (the wire format, a crate of its own), [`balance`] (backend choice)
//! and [`logging`]; [`proxy`] (what to do with a message, no I/O) and [`net`] (sockets,
//! batch I/O, the pinned executors) beside it; [`shard`] (the per-core loop); [`config`];
//! [`control`] (the control thread, probes, metrics, HTTP); [`tools`] (the commands).

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

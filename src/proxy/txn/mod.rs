//! The transaction layer of the stateful mode (RFC 3261 §17), beside the stateless proxy:
//! per shard, a bounded table of transactions and a timer wheel for their timers, both
//! allocated when the shard starts, so that no message and no transaction allocates.
//!
//! Built so far, each allocation-free once made:
//! - the table ([`Table`]) and the §17.2.3 key of a request's transaction ([`key`]);
//! - the timer wheel ([`TimerWheel`]);
//! - the pool that keeps each transaction's last response ([`ResponseStore`]);
//! - the state machines of the server ([`server`]) and client ([`client`]) transactions;
//! - the choice of the final response among branches ([`select`]), and a call's failover
//!   order ([`crate::balance::Maglev::preference`]);
//! - [`ServerSide`]: a shard's server transactions driven by requests, responses and the
//!   clock (new, repeat the kept response, absorb, relay, full).
//!
//! Wiring them into the shard (`--mode stateful`), failover, forking and CANCEL come next;
//! nothing routes through this layer yet.

pub mod client;
pub mod key;
pub mod select;
pub mod server;
mod server_side;
mod store;
mod table;
mod wheel;

pub use server_side::{RequestFate, ServerSide, TICK_NS};
pub use store::{ResponseStore, Stored, STORED_RESPONSE_MAX};
pub use table::{Handle, Table, TableFull};
pub use wheel::{TimerId, TimerWheel, WheelFull};

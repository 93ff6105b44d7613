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
//! - [`Relay`]: a shard's stateful proxy over them (server and client transactions,
//!   retransmission absorption, failover, forking, CANCEL), driven by the shard in
//!   `--mode stateful`.

pub mod client;
pub mod key;
pub mod relay;
pub mod select;
pub mod server;
mod store;
mod table;
mod wheel;

pub use relay::{
    Admission, FailoverCause, Relay, RelayConfig, RelayEvent, ResponseFate, Sends, Ticket, TICK_NS,
};
pub use store::{ResponseStore, Stored, STORED_RESPONSE_MAX};
pub use table::{Handle, Table, TableFull};
pub use wheel::{TimerId, TimerWheel, WheelFull};

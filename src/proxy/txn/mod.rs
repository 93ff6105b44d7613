//! The transaction layer of the stateful mode (RFC 3261 §17), beside the stateless proxy:
//! per shard, a bounded table of transactions and a timer wheel for their timers, both
//! allocated when the shard starts, so that no message and no transaction allocates.
//!
//! Built so far: the table ([`Table`]) and the wheel ([`TimerWheel`]). The transaction
//! state machines and `--mode stateful` come next; nothing routes through this layer yet.

mod table;
mod wheel;

pub use table::{Handle, Table, TableFull};
pub use wheel::{TimerId, TimerWheel, WheelFull};

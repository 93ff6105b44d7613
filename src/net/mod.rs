//! Sockets and batch I/O: socket setup with socket2, `recvmmsg`/`sendmmsg` on raw fds, and
//! the two ways to park while sockets are idle: `poll(2)` for a shard that serves only its
//! sockets, glommio for a thread that also runs timers and other tasks.

mod batch;
mod handoff;
mod outbox;
mod readiness;
pub mod runtime;
mod sockaddr;
mod socket;
mod steering;
mod waiter;

pub use batch::{now_ns, Batch, FlushReport, Payload, HEADROOM, MAX_DATAGRAM, REPLY_LEN, TAILROOM};
pub use handoff::{Handoff, HandoffError, Handoffs};
pub use outbox::{Outbox, OUTBOX_DATAGRAM};
pub use readiness::Readiness;
pub use socket::{enable_rx_timestamps, reuseport_group, udp_socket, BindError, SocketOptions};
pub use steering::{
    find_call_id, spread_randomly, CallIdSteering, Limits, Steering, SteeringCounts,
};
pub use waiter::readiness_waiter;

//! Sockets and batch I/O: socket setup with socket2, `recvmmsg`/`sendmmsg` on raw fds
//! (glommio is used only to park while a socket is idle), and fixed buffers.

pub mod batch;
pub mod outbox;
pub mod sockaddr;
pub mod socket;
pub mod waiter;

pub use batch::{Batch, FlushReport, Payload, HEADROOM, MAX_DATAGRAM, REPLY_LEN, TAILROOM};
pub use outbox::{Outbox, OUTBOX_DATAGRAM};
pub use socket::{reuseport_group, udp_socket, SocketOptions};
pub use waiter::readiness_waiter;

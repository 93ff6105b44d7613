//! Parking on glommio until a raw socket is readable.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, RawFd};

/// A glommio socket over a duplicate of `fd`, used only to wait (`peek_from`) until `fd`
/// has a datagram; the datagrams themselves are read with `recvmmsg` on `fd`.
pub fn readiness_waiter(fd: RawFd) -> io::Result<glommio::net::UdpSocket> {
    // Close-on-exec, like every socket std and socket2 make: a process spawned later (a
    // test's child, say) must not inherit the socket and keep its port bound.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) has no memory effects; it returns a new descriptor or -1.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `copy` is a valid UDP socket descriptor that nothing else owns; glommio takes
    // ownership and closes it on drop.
    Ok(unsafe { glommio::net::UdpSocket::from_raw_fd(copy) })
}

//! UDP socket setup (socket2): SO_REUSEPORT, buffer sizes, IPV6_V6ONLY, non-blocking.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// A socket that could not be made or bound to its address.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: io::Error,
}

impl BindError {
    /// The error for `addr`, from the OS error (for `map_err`).
    pub fn at(addr: SocketAddr) -> impl Fn(io::Error) -> BindError + Copy {
        move |source| BindError { addr, source }
    }
}

/// How to set a socket up.
#[derive(Clone, Copy, Debug)]
pub struct SocketOptions {
    /// Join the address's SO_REUSEPORT group (one socket per shard on the public port).
    pub reuse_port: bool,
    /// SO_RCVBUF / SO_SNDBUF wanted, bytes (the kernel may cap it at net.core.*mem_max).
    pub buffer_bytes: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            reuse_port: true,
            buffer_bytes: 4 << 20,
        }
    }
}

/// A bound, non-blocking UDP socket.
pub fn udp_socket(addr: SocketAddr, options: SocketOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // `[::]` means IPv6 only; IPv4 gets its own --listen.
        socket.set_only_v6(true)?;
    }
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer than asked is not an error (the kernel caps it).
    let _ = socket.set_recv_buffer_size(options.buffer_bytes);
    let _ = socket.set_send_buffer_size(options.buffer_bytes);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// `count` sockets in one SO_REUSEPORT group on `addr`. Port 0 picks an ephemeral port
/// with the first bind and shares it with the rest. Returns the sockets and the bound
/// address.
///
/// A fixed port already bound by another process is an error (`AddrInUse`), not a group
/// silently shared with it: the SO_REUSEPORT group would otherwise take the other process's
/// sockets in, and the two would split the traffic.
pub fn reuseport_group(addr: SocketAddr, count: usize) -> io::Result<(Vec<Socket>, SocketAddr)> {
    let options = SocketOptions::default();
    if addr.port() != 0 {
        // A plain bind fails if anything holds the address, SO_REUSEPORT or not.
        drop(udp_socket(
            addr,
            SocketOptions {
                reuse_port: false,
                ..options
            },
        )?);
    }
    let first = udp_socket(addr, options)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not IP"))?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(udp_socket(bound, options)?);
    }
    Ok((sockets, bound))
}

/// Asks the kernel to stamp each datagram `fd` receives with its arrival time
/// (`SO_TIMESTAMPNS_NEW`, `CLOCK_REALTIME`), which a [`Batch`](super::Batch) made
/// [`with_rx_timestamps`](super::Batch::with_rx_timestamps) collects.
pub fn enable_rx_timestamps(fd: std::os::fd::RawFd) -> io::Result<()> {
    set_socket_option(fd, libc::SO_TIMESTAMPNS_NEW, &(1 as libc::c_int))
}

/// `setsockopt(fd, SOL_SOCKET, name, value)` for an option socket2 does not offer.
/// `T` must be the plain C type the kernel expects for `name`.
#[allow(unsafe_code)]
pub(crate) fn set_socket_option<T>(
    fd: std::os::fd::RawFd,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised T for the whole call and the length passed is
    // its size; the kernel only reads it (and copies what it keeps).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_port_held_by_another_group_is_refused() {
        let (first, bound) = reuseport_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_eq!(first.len(), 2);
        let e = reuseport_group(bound, 2).expect_err("a second group on the port");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        let (again, _) = reuseport_group(bound, 2).unwrap();
        assert_eq!(again.len(), 2);
    }
}

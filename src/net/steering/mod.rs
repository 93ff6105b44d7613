//! Which socket of an SO_REUSEPORT group the kernel gives a datagram to. By default the
//! kernel hashes the 4-tuple, so every datagram of one peer (one SIP trunk, one source port)
//! lands on the same socket, hence the same shard. sipshard instead attaches a program to
//! the group: an eBPF one that finds each datagram's Call-ID and picks the socket of the
//! shard that owns the call ([`CallIdSteering`]: one busy trunk spreads over every core and
//! a call's messages stay in order on one shard), or a classic BPF one that picks a socket
//! at random ([`spread_randomly`]).

mod asm;
mod bpf;
mod callid;

pub use callid::{find_call_id, CallIdSteering, Limits, SteeringCounts};

use super::socket::set_socket_option;
use std::io;
use std::os::fd::RawFd;

/// How datagrams arriving on a public address are spread over the shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steering {
    /// Each datagram to the shard that owns its call (`fnv1a32(Call-ID) % shards`), by an
    /// eBPF program; a datagram it cannot place goes by the kernel's hash.
    #[default]
    CallId,
    /// Each datagram to a shard drawn at random: even one peer spreads over every shard.
    Random,
    /// The kernel's hash of the source and destination addresses and ports: each peer
    /// sticks to one shard.
    Flow,
}

/// Makes the SO_REUSEPORT group of `fd` (any socket of the group, already bound) hand each
/// datagram to one of its first `group_size` sockets at random
/// (`SO_ATTACH_REUSEPORT_CBPF`: `A = random(); A %= group_size; return A`).
pub fn spread_randomly(fd: RawFd, group_size: usize) -> io::Result<()> {
    let size = u32::try_from(group_size)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "group size"))?;
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = [
        // A = a random 32-bit number (an ancillary load, not packet data).
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32,
        ),
        op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, size),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // `fprog` points at `program`, alive for the call; the kernel copies the program.
    set_socket_option(fd, libc::SO_ATTACH_REUSEPORT_CBPF, &fprog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::reuseport_group;
    use std::os::fd::AsRawFd;

    /// Datagrams each socket of the group holds, after `count` from one source.
    fn spread(steer: bool, count: usize) -> Vec<usize> {
        let (group, addr) = reuseport_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        if steer {
            spread_randomly(group[0].as_raw_fd(), group.len()).unwrap();
        }
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..count {
            sender.send_to(b"x", addr).unwrap();
        }
        let mut buf = [0u8; 8];
        group
            .into_iter()
            .map(|s| {
                let s: std::net::UdpSocket = s.into();
                let mut n = 0;
                // Non-blocking: the loop ends once the socket is empty.
                while s.recv(&mut buf).is_ok() {
                    n += 1;
                }
                n
            })
            .collect()
    }

    #[test]
    fn one_source_spreads_over_the_group_only_when_steered() {
        let flow = spread(false, 300);
        assert_eq!(flow.iter().sum::<usize>(), 300);
        assert_eq!(flow.iter().filter(|&&n| n > 0).count(), 1, "{flow:?}");
        let random = spread(true, 300);
        assert_eq!(random.iter().sum::<usize>(), 300);
        // Each socket gets about 100; below 50 has a probability of ~1e-9.
        assert!(random.iter().all(|&n| n >= 50), "{random:?}");
    }

    #[test]
    fn an_empty_group_is_refused() {
        let (group, _) = reuseport_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        assert!(spread_randomly(group[0].as_raw_fd(), 0).is_err());
    }
}

//! Waiting for any of a few sockets to become readable with one `poll(2)`: the cheapest park
//! for a thread that has nothing else to run (measured against glommio's io_uring park in
//! docs/benchmarks.md).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The sockets one thread watches, and which were readable after the last wait.
pub struct Readiness {
    fds: Vec<libc::pollfd>,
}

impl Readiness {
    /// Watches `fds` for incoming data.
    pub fn new(fds: &[RawFd]) -> Readiness {
        Readiness {
            fds: fds
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    /// Blocks until a socket is readable or `timeout` passes; returns how many are ready
    /// (0 on timeout or interruption).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<usize> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the given length.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// True if socket `k` had data (or an error to collect) at the last wait.
    pub fn is_ready(&self, k: usize) -> bool {
        self.fds
            .get(k)
            .is_some_and(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
    }

    /// Marks every socket ready (to drain them all once, before the first wait).
    pub fn mark_all_ready(&mut self) {
        for p in &mut self.fds {
            p.revents = libc::POLLIN;
        }
    }

    /// Marks socket `k` drained (not ready until the next wait says so).
    pub fn mark_drained(&mut self, k: usize) {
        if let Some(p) = self.fds.get_mut(k) {
            p.revents = 0;
        }
    }

    /// True if any socket is marked ready.
    pub fn any_ready(&self) -> bool {
        (0..self.fds.len()).any(|k| self.is_ready(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn reports_the_readable_socket_and_times_out_otherwise() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = Readiness::new(&[a.as_raw_fd(), b.as_raw_fd()]);
        assert_eq!(r.wait(Duration::from_millis(10)).unwrap(), 0);
        assert!(!r.is_ready(0) && !r.is_ready(1));
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), 1);
        assert!(!r.is_ready(0) && r.is_ready(1));
        r.mark_all_ready();
        assert!(r.is_ready(0) && r.is_ready(1));
        r.mark_drained(1);
        assert!(r.is_ready(0) && !r.is_ready(1) && r.any_ready());
        r.mark_drained(0);
        assert!(!r.any_ready());
    }
}

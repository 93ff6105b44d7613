//! Batched UDP I/O on raw fds: `recvmmsg` drains up to a batch of datagrams into fixed
//! slots (each with headroom for in-place rewrites), and `sendmmsg` sends what the slots
//! produced — the rewritten datagram in place, or a reply built beside it — grouped by the
//! socket each must leave from. Nothing here allocates after construction.

#![allow(unsafe_code)]

use super::sockaddr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Room in front of each datagram, for the lines a rewrite inserts.
pub const HEADROOM: usize = 512;
/// Room behind each datagram.
pub const TAILROOM: usize = 512;
/// Largest datagram accepted (the UDP maximum); longer ones are truncated by the kernel and
/// dropped.
pub const MAX_DATAGRAM: usize = 65535;
/// Size of one receive slot.
const SLOT_LEN: usize = HEADROOM + MAX_DATAGRAM + TAILROOM;
/// Size of one reply buffer.
pub const REPLY_LEN: usize = 8192;
/// Control buffer of one receive slot, in 8-byte words: room for one
/// `SCM_TIMESTAMPNS_NEW` message (`CMSG_SPACE(16)` = 32 bytes on 64-bit Linux).
const CONTROL_WORDS: usize = 4;

/// What a slot sends, once processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `len` bytes of the slot's buffer from `start` (the rewritten datagram).
    Frame {
        /// Offset in the slot buffer.
        start: usize,
        /// Length.
        len: usize,
    },
    /// `len` bytes of the slot's reply buffer from `offset`.
    Reply {
        /// Offset in the reply buffer.
        offset: usize,
        /// Length.
        len: usize,
    },
}

#[derive(Clone, Copy)]
struct Outgoing {
    fd: RawFd,
    payload: Payload,
    dest: SocketAddr,
}

/// Counts of what a flush did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams dropped because the socket's send buffer stayed full.
    pub would_block: u64,
    /// Datagrams the kernel refused (unreachable, permission, ...).
    pub failed: u64,
}

/// A batch of receive slots and what each will send (up to `fanout` datagrams per slot).
pub struct Batch {
    capacity: usize,
    fanout: usize,
    slots: Vec<u8>,
    replies: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
    outgoing: Vec<Option<Outgoing>>,
    /// Control buffers of the receive slots (empty unless receive timestamps are on).
    controls: Vec<u64>,
    /// Kernel receive time of each datagram of the batch, ns since the Unix epoch; 0 when
    /// the datagram came without one.
    rx_times: Vec<u64>,
}

/// An all-zero `mmsghdr`, to be pointed at buffers before use.
pub(crate) fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; all-zero (null pointers, zero lengths) is valid.
    unsafe { std::mem::zeroed() }
}

impl Batch {
    /// A batch of `capacity` slots (clamped to 1..=1024), each sending at most one datagram.
    pub fn new(capacity: usize) -> Self {
        Self::with_fanout(capacity, 1)
    }

    /// A batch whose slots may each send up to `fanout` datagrams (clamped to 1..=8), e.g.
    /// 100, 180 and 200 to one INVITE.
    pub fn with_fanout(capacity: usize, fanout: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        let fanout = fanout.clamp(1, 8);
        let entries = capacity * fanout;
        Batch {
            capacity,
            fanout,
            slots: vec![0; capacity * SLOT_LEN],
            replies: vec![0; capacity * REPLY_LEN],
            addrs: vec![sockaddr::empty(); entries],
            iovecs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                entries
            ],
            headers: (0..entries).map(|_| empty_header()).collect(),
            received: 0,
            outgoing: vec![None; entries],
            controls: Vec::new(),
            rx_times: Vec::new(),
        }
    }

    /// Also collects each datagram's kernel receive time, which the sockets must report
    /// (see [`enable_rx_timestamps`](super::enable_rx_timestamps)); read it with
    /// [`Batch::rx_time_ns`].
    pub fn with_rx_timestamps(mut self) -> Self {
        self.controls = vec![0; self.capacity * CONTROL_WORDS];
        self.rx_times = vec![0; self.capacity];
        self
    }

    /// Receives up to a batch of datagrams without blocking. `Ok(0)` never happens:
    /// an empty socket is `Err(WouldBlock)`.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        self.outgoing.iter_mut().for_each(|o| *o = None);
        let slots = self.slots.as_mut_ptr();
        for i in 0..self.capacity {
            self.iovecs[i] = libc::iovec {
                // SAFETY: slot i lies inside `slots` (capacity * SLOT_LEN bytes).
                iov_base: unsafe { slots.add(i * SLOT_LEN + HEADROOM) }.cast(),
                iov_len: MAX_DATAGRAM,
            };
            let namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            self.point_header(i, namelen);
            if !self.controls.is_empty() {
                let h = &mut self.headers[i].msg_hdr;
                h.msg_control = self.controls[i * CONTROL_WORDS..].as_mut_ptr().cast();
                h.msg_controllen = CONTROL_WORDS * 8;
            }
        }
        // SAFETY: every header points at live buffers owned by self (names, one iovec each,
        // slot memory of MAX_DATAGRAM bytes); the kernel writes at most that much.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                self.capacity as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        if !self.controls.is_empty() {
            for i in 0..self.received {
                self.rx_times[i] = rx_time_of(&self.headers[i].msg_hdr);
            }
        }
        Ok(self.received)
    }

    /// True if the batch collects receive timestamps.
    pub fn collects_rx_times(&self) -> bool {
        !self.controls.is_empty()
    }

    /// Kernel receive time of datagram `i` of the last batch, ns since the Unix epoch
    /// (`CLOCK_REALTIME`); `None` unless the batch collects timestamps and the kernel gave one.
    pub fn rx_time_ns(&self, i: usize) -> Option<u64> {
        self.rx_times[..self.received.min(self.rx_times.len())]
            .get(i)
            .copied()
            .filter(|&t| t != 0)
    }

    /// Most datagrams one `recv` takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of datagrams in the batch.
    pub fn len(&self) -> usize {
        self.received
    }

    /// True if the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Where datagram `i` came from (`None` for an unknown address family).
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        sockaddr::to_std(&self.addrs[i])
    }

    /// True if datagram `i` was longer than [`MAX_DATAGRAM`] and got cut.
    pub fn truncated(&self, i: usize) -> bool {
        self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Length of datagram `i`.
    pub fn datagram_len(&self, i: usize) -> usize {
        self.headers[i].msg_len as usize
    }

    /// Slot `i`'s whole buffer (the datagram starts at [`HEADROOM`]) and its reply buffer
    /// ([`REPLY_LEN`] bytes).
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], &mut [u8]) {
        (
            &mut self.slots[i * SLOT_LEN..(i + 1) * SLOT_LEN],
            &mut self.replies[i * REPLY_LEN..(i + 1) * REPLY_LEN],
        )
    }

    /// Slot `i` sends `payload` to `dest` from socket `fd` (after what it already sends).
    /// Returns false when the slot already sends `fanout` datagrams.
    pub fn send(&mut self, i: usize, fd: RawFd, payload: Payload, dest: SocketAddr) -> bool {
        let entries = &mut self.outgoing[i * self.fanout..(i + 1) * self.fanout];
        match entries.iter_mut().find(|o| o.is_none()) {
            Some(free) => {
                *free = Some(Outgoing { fd, payload, dest });
                true
            }
            None => false,
        }
    }

    /// Sends everything the slots produced, one `sendmmsg` run per socket.
    pub fn flush(&mut self) -> FlushReport {
        let mut report = FlushReport::default();
        loop {
            // The next socket with something left to send, and its entries, in slot order.
            let used = self.received * self.fanout;
            let Some(fd) = self.outgoing[..used].iter().flatten().map(|o| o.fd).next() else {
                break;
            };
            let mut count = 0;
            for entry in 0..used {
                if let Some(o) = self.outgoing[entry] {
                    if o.fd == fd {
                        self.prepare_send(count, entry / self.fanout, o);
                        self.outgoing[entry] = None;
                        count += 1;
                    }
                }
            }
            self.send_prepared(fd, count, &mut report);
        }
        report
    }

    /// Fills header `n` to send slot `i`'s payload.
    fn prepare_send(&mut self, n: usize, i: usize, o: Outgoing) {
        let (base, len) = match o.payload {
            Payload::Frame { start, len } => {
                let len = len.min(SLOT_LEN.saturating_sub(start));
                // SAFETY: start + len lies within slot i (clamped above).
                (
                    unsafe {
                        self.slots
                            .as_mut_ptr()
                            .add(i * SLOT_LEN + start.min(SLOT_LEN))
                    },
                    len,
                )
            }
            Payload::Reply { offset, len } => {
                let offset = offset.min(REPLY_LEN);
                // SAFETY: offset..offset + len lies within reply i (clamped here).
                (
                    unsafe { self.replies.as_mut_ptr().add(i * REPLY_LEN + offset) },
                    len.min(REPLY_LEN - offset),
                )
            }
        };
        self.iovecs[n] = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        let namelen = sockaddr::from_std(o.dest, &mut self.addrs[n]);
        self.point_header(n, namelen);
    }

    /// Points header `n` at address `n` (of `namelen` bytes) and iovec `n`.
    fn point_header(&mut self, n: usize, namelen: libc::socklen_t) {
        let h = &mut self.headers[n];
        h.msg_hdr.msg_name = (&mut self.addrs[n] as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = namelen;
        h.msg_hdr.msg_iov = &mut self.iovecs[n];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    /// Sends headers `0..count` on `fd`.
    fn send_prepared(&mut self, fd: RawFd, count: usize, report: &mut FlushReport) {
        let sent = send_all(fd, &mut self.headers[..count]);
        report.sent += sent.sent;
        report.would_block += sent.would_block;
        report.failed += sent.failed;
    }
}

/// The `SCM_TIMESTAMPNS_NEW` time in a received message's control data, ns since the Unix
/// epoch; 0 if there is none.
fn rx_time_of(h: &libc::msghdr) -> u64 {
    // SAFETY: `h` was filled by recvmmsg: msg_control/msg_controllen describe the control
    // data the kernel wrote into our buffer, which the CMSG_* macros walk within bounds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(h);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET
                && c.cmsg_type == libc::SO_TIMESTAMPNS_NEW
                && c.cmsg_len as usize >= libc::CMSG_LEN(16) as usize
            {
                // struct __kernel_timespec { i64 tv_sec; i64 tv_nsec; }, possibly unaligned.
                let data = libc::CMSG_DATA(cmsg).cast::<[i64; 2]>().read_unaligned();
                let (secs, nanos) = (data[0], data[1]);
                return u64::try_from(secs)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000_000))
                    .and_then(|ns| ns.checked_add(u64::try_from(nanos).ok()?))
                    .unwrap_or(0);
            }
            cmsg = libc::CMSG_NXTHDR(h, cmsg);
        }
    }
    0
}

/// Sends every prepared header on `fd` with `sendmmsg`, retrying briefly while the socket's
/// send buffer is full and skipping a datagram the kernel refuses.
pub(crate) fn send_all(fd: RawFd, headers: &mut [libc::mmsghdr]) -> FlushReport {
    let mut report = FlushReport::default();
    let (count, mut done, mut full_retries) = (headers.len(), 0, 0);
    while done < count {
        // SAFETY: headers done..count were prepared by the caller and point at live buffers
        // it owns for the duration of the call.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr().add(done),
                (count - done) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            done += n as usize;
            report.sent += n as u64;
            continue;
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock if full_retries < 64 => {
                full_retries += 1;
                std::thread::yield_now();
            }
            io::ErrorKind::WouldBlock => {
                report.would_block += (count - done) as u64;
                break;
            }
            _ => {
                // The first remaining datagram was refused; skip it, send the rest.
                report.failed += 1;
                done += 1;
            }
        }
    }
    report
}

/// Now, ns since the Unix epoch (`CLOCK_REALTIME`, the clock of the kernel's receive
/// timestamps that [`Batch::rx_time_ns`] gives).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::socket::{udp_socket, SocketOptions};
    use socket2::Socket;
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    /// A non-blocking socket on an ephemeral loopback port, and its address.
    fn bound() -> (Socket, SocketAddr) {
        let options = SocketOptions {
            reuse_port: false,
            buffer_bytes: 1 << 20,
        };
        let socket = udp_socket("127.0.0.1:0".parse().unwrap(), options).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        (socket, addr)
    }

    #[test]
    fn kernel_receive_times_come_with_the_batch_when_asked() {
        let (a, a_addr) = bound();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let now = now_ns;

        // Without the socket option or the batch's control buffers: no time.
        let mut plain = Batch::new(4);
        sender.send_to(b"a", a_addr).unwrap();
        assert_eq!(plain.recv(a.as_raw_fd()).unwrap(), 1);
        assert_eq!(
            (plain.collects_rx_times(), plain.rx_time_ns(0)),
            (false, None)
        );

        crate::net::enable_rx_timestamps(a.as_raw_fd()).unwrap();
        let mut batch = Batch::new(4).with_rx_timestamps();
        assert!(batch.collects_rx_times());
        let before = now();
        for _ in 0..3 {
            sender.send_to(b"b", a_addr).unwrap();
        }
        assert_eq!(batch.recv(a.as_raw_fd()).unwrap(), 3);
        let after = now();
        for i in 0..3 {
            let t = batch.rx_time_ns(i).expect("a receive time");
            assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
        }
        assert_eq!(batch.rx_time_ns(3), None);
    }

    #[test]
    fn receives_a_batch_and_sends_frames_and_replies() {
        let (a, a_addr) = bound();
        let (b, b_addr) = bound();
        let mut batch = Batch::new(8);
        assert_eq!(
            batch.recv(a.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..3u8 {
            b.send_to(&[b'x', i], &a_addr.into()).unwrap();
        }
        let n = batch.recv(a.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        for i in 0..n {
            assert_eq!(batch.source(i), Some(b_addr));
            assert_eq!(batch.datagram_len(i), 2);
            assert!(!batch.truncated(i));
            let (slot, reply) = batch.slot_mut(i);
            assert_eq!(&slot[HEADROOM..HEADROOM + 2], &[b'x', i as u8]);
            if i == 1 {
                reply[..5].copy_from_slice(b"reply");
                assert!(batch.send(
                    i,
                    a.as_raw_fd(),
                    Payload::Reply { offset: 0, len: 5 },
                    b_addr
                ));
                assert!(!batch.send(
                    i,
                    a.as_raw_fd(),
                    Payload::Reply { offset: 0, len: 5 },
                    b_addr
                ));
            } else {
                // Prepend a byte in the headroom, as a rewrite would.
                slot[HEADROOM - 1] = b'>';
                batch.send(
                    i,
                    a.as_raw_fd(),
                    Payload::Frame {
                        start: HEADROOM - 1,
                        len: 3,
                    },
                    b_addr,
                );
            }
        }
        let report = batch.flush();
        assert_eq!(
            report,
            FlushReport {
                sent: 3,
                would_block: 0,
                failed: 0
            }
        );
        let b: std::net::UdpSocket = b.into();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((len, _)) = b.recv_from(&mut buf) {
            got.push(buf[..len].to_vec());
        }
        assert_eq!(
            got,
            vec![b">x\x00".to_vec(), b"reply".to_vec(), b">x\x02".to_vec()]
        );
    }
}

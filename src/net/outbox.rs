//! A send-only batch: datagrams written into fixed buffers, sent with one `sendmmsg`.
//! For load generation (new requests, retransmissions), where nothing was received first.

#![allow(unsafe_code)]

use super::batch::{empty_header, send_all};
use super::sockaddr;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Largest datagram an outbox slot holds.
pub const OUTBOX_DATAGRAM: usize = 2048;

/// Datagrams waiting to be sent.
pub struct Outbox {
    capacity: usize,
    /// Bytes per datagram buffer.
    size: usize,
    buffers: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    queued: usize,
}

impl Outbox {
    /// An outbox of `capacity` datagrams (clamped to 1..=1024) of [`OUTBOX_DATAGRAM`] bytes.
    pub fn new(capacity: usize) -> Self {
        Self::with_datagram_size(capacity, OUTBOX_DATAGRAM)
    }

    /// An outbox of `capacity` datagrams (clamped to 1..=1024) of `size` bytes.
    pub fn with_datagram_size(capacity: usize, size: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        Outbox {
            capacity,
            size,
            buffers: vec![0; capacity * size],
            lens: vec![0; capacity],
            addrs: vec![sockaddr::empty(); capacity],
            iovecs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                capacity
            ],
            headers: (0..capacity).map(|_| empty_header()).collect(),
            queued: 0,
        }
    }

    /// True when no more datagrams fit (flush first).
    pub fn is_full(&self) -> bool {
        self.queued == self.capacity
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues a datagram for `dest`, written by `write` into a buffer of the outbox's
    /// datagram size (it returns the length used). Returns false when full.
    pub fn queue(&mut self, dest: SocketAddr, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.queued;
        let buffer = &mut self.buffers[i * self.size..(i + 1) * self.size];
        self.lens[i] = write(buffer).min(self.size);
        let namelen = sockaddr::from_std(dest, &mut self.addrs[i]);
        self.headers[i].msg_hdr.msg_namelen = namelen;
        self.queued += 1;
        true
    }

    /// Sends everything queued on `fd`. Returns (sent, dropped because the send buffer
    /// stayed full or the kernel refused).
    pub fn flush(&mut self, fd: RawFd) -> (u64, u64) {
        let count = self.queued;
        let base = self.buffers.as_mut_ptr();
        for i in 0..count {
            self.iovecs[i] = libc::iovec {
                // SAFETY: buffer i lies inside `buffers` (capacity × size bytes).
                iov_base: unsafe { base.add(i * self.size) }.cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.headers[i];
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_iov = &mut self.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        let report = send_all(fd, &mut self.headers[..count]);
        self.queued = 0;
        (report.sent, report.would_block + report.failed)
    }
}

//! Datagrams handed from the shard that received them to the shard that owns their call,
//! for those the kernel's Call-ID steering could not place: one bounded channel per
//! ordered pair of shards, without locks. Each channel's buffers are allocated when it is
//! made and go round between a free queue and a ready queue, so a handoff never allocates.

use crossbeam_queue::ArrayQueue;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a datagram was not handed over (the receiving shard counts it and handles it
/// itself or drops it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffError {
    /// The owner has not taken the earlier ones yet: every buffer is in use.
    Full,
    /// Longer than a handoff buffer.
    TooLarge,
}

/// A datagram in transit.
struct Parcel {
    bytes: Box<[u8]>,
    len: usize,
    source: SocketAddr,
}

/// The channel from one shard to another.
pub struct Handoff {
    ready: ArrayQueue<Box<Parcel>>,
    free: ArrayQueue<Box<Parcel>>,
    max_len: usize,
    handed: AtomicU64,
    refused: AtomicU64,
}

impl Handoff {
    /// A channel of `capacity` datagrams of at most `max_len` bytes.
    pub fn new(capacity: usize, max_len: usize) -> Self {
        let capacity = capacity.max(1);
        let free = ArrayQueue::new(capacity);
        for _ in 0..capacity {
            let parcel = Box::new(Parcel {
                bytes: vec![0u8; max_len].into_boxed_slice(),
                len: 0,
                source: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            });
            // `free` has room for exactly `capacity` parcels.
            let _ = free.push(parcel);
        }
        Handoff {
            ready: ArrayQueue::new(capacity),
            free,
            max_len,
            handed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Hands `datagram`, which came from `source`, over (the sending shard only).
    pub fn send(&self, datagram: &[u8], source: SocketAddr) -> Result<(), HandoffError> {
        if datagram.len() > self.max_len {
            self.refused.fetch_add(1, Relaxed);
            return Err(HandoffError::TooLarge);
        }
        let Some(mut parcel) = self.free.pop() else {
            self.refused.fetch_add(1, Relaxed);
            return Err(HandoffError::Full);
        };
        parcel.bytes[..datagram.len()].copy_from_slice(datagram);
        parcel.len = datagram.len();
        parcel.source = source;
        // Every parcel is in exactly one of the two queues, each sized for all of them.
        let _ = self.ready.push(parcel);
        self.handed.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Gives every datagram handed so far to `take`, oldest first (the owning shard only);
    /// returns how many.
    pub fn drain(&self, mut take: impl FnMut(&[u8], SocketAddr)) -> usize {
        let mut n = 0;
        while let Some(parcel) = self.ready.pop() {
            take(&parcel.bytes[..parcel.len], parcel.source);
            let _ = self.free.push(parcel);
            n += 1;
        }
        n
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Datagrams handed over, and refused, since the channel was made.
    pub fn counts(&self) -> (u64, u64) {
        (self.handed.load(Relaxed), self.refused.load(Relaxed))
    }
}

/// The channels between `n` shards: one per ordered pair.
pub struct Handoffs {
    shards: usize,
    channels: Vec<Handoff>,
}

impl Handoffs {
    /// Channels of `capacity` datagrams of at most `max_len` bytes between `shards` shards.
    pub fn new(shards: usize, capacity: usize, max_len: usize) -> Self {
        Handoffs {
            shards,
            channels: (0..shards * shards)
                .map(|_| Handoff::new(capacity, max_len))
                .collect(),
        }
    }

    /// The channel from shard `from` to shard `to`.
    pub fn channel(&self, from: usize, to: usize) -> &Handoff {
        &self.channels[from * self.shards + to]
    }

    /// Every channel into shard `to`.
    pub fn inbound(&self, to: usize) -> impl Iterator<Item = &Handoff> {
        (0..self.shards)
            .filter(move |&from| from != to)
            .map(move |from| self.channel(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, 7], port))
    }

    #[test]
    fn datagrams_arrive_in_order_and_a_full_channel_refuses() {
        let channel = Handoff::new(2, 16);
        channel.send(b"first", addr(1)).unwrap();
        channel.send(b"second", addr(2)).unwrap();
        assert_eq!(channel.send(b"third", addr(3)), Err(HandoffError::Full));
        assert_eq!(channel.send(&[0; 17], addr(4)), Err(HandoffError::TooLarge));
        let mut got = Vec::new();
        assert_eq!(channel.drain(|d, s| got.push((d.to_vec(), s))), 2);
        assert_eq!(
            got,
            [(b"first".to_vec(), addr(1)), (b"second".to_vec(), addr(2))]
        );
        assert!(channel.is_empty());
        channel.send(b"again", addr(5)).unwrap();
        assert_eq!(channel.counts(), (3, 2));
    }

    /// One thread hands 200,000 numbered datagrams to another: each arrives once, in
    /// order, or was refused and counted.
    #[test]
    fn between_two_threads_nothing_is_lost_or_reordered() {
        let handoffs = Arc::new(Handoffs::new(2, 64, 64));
        let consumer = {
            let handoffs = handoffs.clone();
            std::thread::spawn(move || {
                let mut next = 0u64;
                let mut received = 0u64;
                while next < 200_000 {
                    for channel in handoffs.inbound(1) {
                        channel.drain(|d, _| {
                            let n = u64::from_le_bytes(d[..8].try_into().unwrap());
                            assert!(n >= next, "{n} after {next}");
                            next = n + 1;
                            received += 1;
                        });
                    }
                }
                received
            })
        };
        let channel = handoffs.channel(0, 1);
        let (mut sent, mut failures) = (0u64, 0u64);
        for n in 0..200_000u64 {
            loop {
                match channel.send(&n.to_le_bytes(), addr(9)) {
                    Ok(()) => {
                        sent += 1;
                        break;
                    }
                    Err(_) => {
                        failures += 1;
                        // Only the last one waits for room, so that the consumer stops.
                        if n < 199_999 {
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            }
        }
        let received = consumer.join().unwrap();
        assert_eq!(received, sent);
        assert_eq!(channel.counts(), (sent, failures));
    }
}

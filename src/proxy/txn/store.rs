//! The last response of each server transaction, kept so that a retransmitted request is
//! answered again without the backend: a pool of fixed-size buffers allocated when the
//! shard starts, one per transaction at most. A response longer than a buffer is not kept
//! (the retransmission is then absorbed without an answer, and the client's next one, or
//! the backend's own retransmission of the response, gets through).

/// Longest response kept.
pub const STORED_RESPONSE_MAX: usize = 2048;

/// A kept response. Stale once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    index: u32,
    generation: u32,
}

/// The pool.
#[derive(Debug)]
pub struct ResponseStore {
    /// Bytes per buffer.
    size: usize,
    bytes: Box<[u8]>,
    lens: Vec<u16>,
    generations: Vec<u32>,
    free: Vec<u32>,
}

impl ResponseStore {
    /// A pool of `capacity` buffers of [`STORED_RESPONSE_MAX`] bytes.
    pub fn new(capacity: usize) -> Self {
        Self::with_size(capacity, STORED_RESPONSE_MAX)
    }

    /// A pool of `capacity` buffers of `size` bytes (at most 65535).
    pub fn with_size(capacity: usize, size: usize) -> Self {
        let size = size.min(usize::from(u16::MAX));
        ResponseStore {
            size,
            bytes: vec![0u8; capacity * size].into_boxed_slice(),
            lens: vec![0; capacity],
            generations: vec![0; capacity],
            free: (0..capacity as u32).rev().collect(),
        }
    }

    /// Keeps `response`, replacing what `previous` held (a transaction keeps one response:
    /// the last). `None` when it is too long or no buffer is free.
    pub fn keep(&mut self, previous: Option<Stored>, response: &[u8]) -> Option<Stored> {
        if let Some(old) = previous {
            self.release(old);
        }
        if response.len() > self.size {
            return None;
        }
        let index = self.free.pop()?;
        let at = index as usize * self.size;
        self.bytes[at..at + response.len()].copy_from_slice(response);
        self.lens[index as usize] = response.len() as u16;
        Some(Stored {
            index,
            generation: self.generations[index as usize],
        })
    }

    /// The response `stored` holds, unless released.
    pub fn get(&self, stored: Stored) -> Option<&[u8]> {
        let i = stored.index as usize;
        if self.generations.get(i) != Some(&stored.generation) {
            return None;
        }
        let at = i * self.size;
        Some(&self.bytes[at..at + usize::from(self.lens[i])])
    }

    /// Gives `stored`'s buffer back (when its transaction ends).
    pub fn release(&mut self, stored: Stored) {
        let i = stored.index as usize;
        if self.generations.get(i) == Some(&stored.generation) {
            self.generations[i] = self.generations[i].wrapping_add(1);
            // `free` was allocated for every buffer: this push never grows it.
            self.free.push(stored.index);
        }
    }

    /// Buffers in use.
    pub fn in_use(&self) -> usize {
        self.lens.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_response_of_each_transaction() {
        let mut store = ResponseStore::new(2);
        let trying = store.keep(None, b"SIP/2.0 100 Trying").unwrap();
        let ringing = store.keep(Some(trying), b"SIP/2.0 180 Ringing").unwrap();
        assert_eq!(store.get(trying), None, "replaced");
        assert_eq!(store.get(ringing), Some(&b"SIP/2.0 180 Ringing"[..]));
        let other = store.keep(None, b"SIP/2.0 200 OK").unwrap();
        assert_eq!(
            store.keep(None, b"SIP/2.0 486 Busy Here"),
            None,
            "all in use"
        );
        assert_eq!(store.in_use(), 2);
        store.release(other);
        store.release(other);
        assert_eq!(store.in_use(), 1, "released once");
        assert_eq!(store.keep(None, &[b'x'; STORED_RESPONSE_MAX + 1]), None);
        let big = store.keep(None, &[b'y'; STORED_RESPONSE_MAX]).unwrap();
        assert_eq!(store.get(big).map(<[u8]>::len), Some(STORED_RESPONSE_MAX));
        assert_eq!(
            store.get(other),
            None,
            "the reused buffer does not answer the old handle"
        );
    }
}

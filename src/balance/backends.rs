//! The immutable backend set a shard routes with: addresses, weights and their Maglev
//! table, built off the packet path and handed to every shard.

use super::maglev::{Maglev, MaglevError};
use ahash::AHashMap;
use std::net::SocketAddr;

/// One backend, its weight (0 = drained: keeps its calls' in-flight responses flowing,
/// receives no new Call-IDs) and whether it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Where requests go.
    pub addr: SocketAddr,
    /// Relative share of new Call-IDs (0 while it is down or drained).
    pub weight: u32,
    /// Up (its probes pass, or it is not probed): the requests of the dialogs pinned to it
    /// keep reaching it, whatever its weight.
    pub up: bool,
}

/// A backend set and its lookup table. Cloned once per shard, so each core reads its own copy.
#[derive(Clone, Debug)]
pub struct Snapshot {
    backends: Vec<Backend>,
    maglev: Maglev,
    index: AHashMap<SocketAddr, u16>,
}

impl Snapshot {
    /// Builds the table for `backends` (table size `table_size`, prime).
    pub fn new(backends: &[Backend], table_size: u32) -> Result<Self, MaglevError> {
        let keys: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
        let entries: Vec<(&[u8], u32)> = keys
            .iter()
            .zip(backends)
            .map(|(k, b)| (k.as_bytes(), b.weight))
            .collect();
        Ok(Snapshot {
            backends: backends.to_vec(),
            maglev: Maglev::build(&entries, table_size)?,
            index: backends
                .iter()
                .enumerate()
                .map(|(i, b)| (b.addr, i as u16))
                .collect(),
        })
    }

    /// The backend for a Call-ID hash; `None` when no backend takes new calls.
    #[inline]
    pub fn pick(&self, call_id_hash: u64) -> Option<SocketAddr> {
        self.pick_index(call_id_hash).map(|i| self.backends[i].addr)
    }

    /// The index (in [`Snapshot::backends`]) of the backend for a Call-ID hash.
    #[inline]
    pub fn pick_index(&self, call_id_hash: u64) -> Option<usize> {
        self.maglev.lookup(call_id_hash)
    }

    /// True if `addr` is one of the backends, whatever its weight (requests from the
    /// internal side must be).
    #[inline]
    pub fn is_backend(&self, addr: SocketAddr) -> bool {
        self.index.contains_key(&addr)
    }

    /// The index of the backend at `addr`, whatever its weight.
    #[inline]
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.index.get(&addr).map(|&i| usize::from(i))
    }

    /// The backends, in configuration order.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The Maglev table.
    pub fn maglev(&self) -> &Maglev {
        &self.maglev
    }
}

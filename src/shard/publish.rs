//! Publication of backend sets: the control thread builds one immutable [`Snapshot`] (the
//! Maglev table is built once), and every shard receives its own copy, with its own
//! per-backend counters, over its own channel. A shard swaps snapshot and counters together
//! between two datagrams, so each message is routed by one whole set, old or new.

use super::stats::{BackendCounters, BackendStats};
use crate::balance::MaglevError;
use crate::balance::{Backend, Snapshot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

/// What one shard receives: its copy of the snapshot and, aligned with its backends, the
/// counters it writes for each.
pub struct ShardUpdate {
    /// Publication number: 0 for the set the plane starts with, then 1, 2, ...
    pub generation: u64,
    /// The backend set and its table.
    pub snapshot: Snapshot,
    /// `backend_stats[i]` counts traffic of `snapshot.backends()[i]` through this shard.
    pub backend_stats: Vec<Arc<BackendStats>>,
}

/// Per-backend counters of every shard, by backend address. A backend keeps its counters
/// across reloads while it stays configured.
type Registry = HashMap<SocketAddr, Vec<Arc<BackendStats>>>;

/// Sends new backend sets to every shard; cheap to clone (the control thread, reload and the
/// metrics endpoint each hold one).
#[derive(Clone)]
pub struct Publisher {
    senders: Vec<mpsc::Sender<ShardUpdate>>,
    registry: Arc<Mutex<Registry>>,
    table_size: u32,
    generation: Arc<AtomicU64>,
}

impl Publisher {
    /// A publisher for `shards` shards, and the receiving end each shard polls.
    pub fn new(shards: usize, table_size: u32) -> (Publisher, Vec<mpsc::Receiver<ShardUpdate>>) {
        let (senders, receivers) = (0..shards).map(|_| mpsc::channel()).unzip();
        let publisher = Publisher {
            senders,
            registry: Arc::default(),
            table_size,
            generation: Arc::default(),
        };
        (publisher, receivers)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry stays consistent whatever a panicking holder was doing: every
        // operation on it is a single insert, lookup or retain.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One update per shard for `snapshot`, registering counters for new backends and
    /// forgetting those of backends no longer in it.
    pub fn updates_for(&self, snapshot: Snapshot) -> Vec<ShardUpdate> {
        let shards = self.senders.len();
        let generation = self.generation.load(Ordering::Acquire);
        let mut registry = self.registry();
        registry.retain(|addr, _| snapshot.is_backend(*addr));
        let per_backend: Vec<Vec<Arc<BackendStats>>> = snapshot
            .backends()
            .iter()
            .map(|b| {
                registry
                    .entry(b.addr)
                    .or_insert_with(|| (0..shards).map(|_| Arc::default()).collect())
                    .clone()
            })
            .collect();
        (0..shards)
            .map(|k| ShardUpdate {
                generation,
                snapshot: snapshot.clone(),
                backend_stats: per_backend.iter().map(|s| s[k].clone()).collect(),
            })
            .collect()
    }

    /// Builds the table for `backends` (a weight of 0 gives no new calls, and the address
    /// still counts as a backend) and sends it to every shard. A shard that has stopped is
    /// skipped.
    pub fn publish(&self, backends: &[Backend]) -> Result<(), MaglevError> {
        let snapshot = Snapshot::new(backends, self.table_size)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        for (sender, update) in self.senders.iter().zip(self.updates_for(snapshot)) {
            let _ = sender.send(update);
        }
        Ok(())
    }

    /// The number of the last set published (0: the one the plane started with).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Each configured backend's counters, summed over the shards.
    pub fn backend_totals(&self) -> HashMap<SocketAddr, BackendCounters> {
        self.registry()
            .iter()
            .map(|(addr, shards)| {
                let mut total = BackendCounters::default();
                for s in shards {
                    total.add(&s.read());
                }
                (*addr, total)
            })
            .collect()
    }
}

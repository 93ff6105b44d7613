//! One shard's transaction table: at most `capacity` entries, every slot allocated at
//! construction, found by a key through an open-addressing index (linear probing,
//! backward-shift deletion), so inserting, finding and removing never allocate.
//!
//! The caller hashes the key (the shards already hash Call-IDs and branches with their own
//! keyed hash); the table compares whole keys, so a hash collision never mixes up two
//! transactions.

/// The table holds `capacity` entries already: the request gets 503 and is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// An entry of the table. Stale once the entry is removed (timers hold these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// The slot index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when the handle was made.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<K, V> {
    generation: u32,
    /// The entry and its key's hash; `None` when free.
    entry: Option<(u64, K, V)>,
    /// Next free slot.
    next_free: u32,
}

/// Entries of type `V` found by keys of type `K`.
#[derive(Debug)]
pub struct Table<K, V> {
    slots: Vec<Slot<K, V>>,
    /// Slot index by hash, `EMPTY` where none; a power of two, at least twice the capacity.
    index: Vec<u32>,
    free: u32,
    len: usize,
}

impl<K: Eq, V> Table<K, V> {
    /// A table for `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(EMPTY as usize - 1);
        let slots = (0..capacity)
            .map(|i| Slot {
                generation: 0,
                entry: None,
                next_free: if i + 1 < capacity {
                    i as u32 + 1
                } else {
                    EMPTY
                },
            })
            .collect();
        Table {
            slots,
            index: vec![EMPTY; (capacity * 2).max(2).next_power_of_two()],
            free: if capacity > 0 { 0 } else { EMPTY },
            len: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Inserts `value` under `key` (whose hash is `hash`). The caller has checked that the
    /// key is not there yet ([`Table::find`]).
    pub fn insert(&mut self, hash: u64, key: K, value: V) -> Result<Handle, TableFull> {
        let at = self.free;
        if at == EMPTY {
            return Err(TableFull);
        }
        let slot = &mut self.slots[at as usize];
        self.free = slot.next_free;
        slot.entry = Some((hash, key, value));
        let handle = Handle {
            index: at,
            generation: slot.generation,
        };
        let mut i = self.home(hash);
        while self.index[i] != EMPTY {
            i = self.step(i);
        }
        self.index[i] = at;
        self.len += 1;
        Ok(handle)
    }

    /// The entry under `key`, if any.
    pub fn find(&self, hash: u64, key: &K) -> Option<Handle> {
        let mut i = self.home(hash);
        loop {
            let at = self.index[i];
            if at == EMPTY {
                return None;
            }
            let slot = &self.slots[at as usize];
            if let Some((h, k, _)) = &slot.entry {
                if *h == hash && k == key {
                    return Some(Handle {
                        index: at,
                        generation: slot.generation,
                    });
                }
            }
            i = self.step(i);
        }
    }

    /// The value of `handle`, unless it is stale.
    pub fn get(&self, handle: Handle) -> Option<&V> {
        let slot = self.slots.get(handle.index as usize)?;
        match &slot.entry {
            Some((_, _, v)) if slot.generation == handle.generation => Some(v),
            _ => None,
        }
    }

    /// The value of `handle`, mutably, unless it is stale.
    pub fn get_mut(&mut self, handle: Handle) -> Option<&mut V> {
        let slot = self.slots.get_mut(handle.index as usize)?;
        match &mut slot.entry {
            Some((_, _, v)) if slot.generation == handle.generation => Some(v),
            _ => None,
        }
    }

    /// Removes the entry of `handle` and returns its value, unless it is stale.
    pub fn remove(&mut self, handle: Handle) -> Option<V> {
        let slot = self.slots.get_mut(handle.index as usize)?;
        if slot.generation != handle.generation || slot.entry.is_none() {
            return None;
        }
        let (hash, _, value) = slot.entry.take()?;
        self.free_slot(handle.index, hash);
        Some(value)
    }

    /// Removes the entry of `handle` where it lies, without moving it out (for large
    /// values the caller has already read what it needs from). False if it was gone.
    pub fn discard(&mut self, handle: Handle) -> bool {
        let Some(slot) = self.slots.get_mut(handle.index as usize) else {
            return false;
        };
        let hash = match &slot.entry {
            Some((hash, _, _)) if slot.generation == handle.generation => *hash,
            _ => return false,
        };
        slot.entry = None;
        self.free_slot(handle.index, hash);
        true
    }

    /// Slot `index`, whose entry (of `hash`) was just taken, goes back to the free list.
    fn free_slot(&mut self, index: u32, hash: u64) {
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.next_free = self.free;
        self.free = index;
        self.len -= 1;
        self.unindex(hash, index);
    }

    /// The handle of the entry in slot `index` if its generation's low bits are
    /// `generation & mask` (a handle packed into a timer token lost the high bits).
    pub fn handle_at(&self, index: u32, generation: u32, mask: u32) -> Option<Handle> {
        let slot = self.slots.get(index as usize)?;
        (slot.entry.is_some() && slot.generation & mask == generation & mask).then_some(Handle {
            index,
            generation: slot.generation,
        })
    }

    fn home(&self, hash: u64) -> usize {
        // The high bits: the caller's hash may be weak in the low ones.
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (self.index.len() - 1)
    }

    fn step(&self, i: usize) -> usize {
        (i + 1) & (self.index.len() - 1)
    }

    /// Takes slot `at` out of the index, shifting later entries of its probe run back so
    /// that every entry stays reachable from its home without tombstones.
    fn unindex(&mut self, hash: u64, at: u32) {
        let mut hole = self.home(hash);
        while self.index[hole] != at {
            hole = self.step(hole);
        }
        let mut i = self.step(hole);
        while self.index[i] != EMPTY {
            let moved = self.index[i];
            let home = match &self.slots[moved as usize].entry {
                Some((h, _, _)) => self.home(*h),
                None => unreachable!("the index names only occupied slots"),
            };
            // Move it into the hole unless its home lies cyclically in (hole, i].
            let distance = |from: usize, to: usize| to.wrapping_sub(from) & (self.index.len() - 1);
            if distance(home, i) >= distance(hole, i) {
                self.index[hole] = moved;
                hole = i;
            }
            i = self.step(i);
        }
        self.index[hole] = EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_it_holds_and_refuses_past_capacity() {
        let mut table: Table<u64, &str> = Table::new(2);
        let a = table.insert(7, 7, "a").unwrap();
        // Same hash, another key: a collision, told apart by the key.
        let b = table.insert(7, 8, "b").unwrap();
        assert_eq!(table.insert(9, 9, "c"), Err(TableFull));
        assert_eq!(table.find(7, &7), Some(a));
        assert_eq!(table.find(7, &8), Some(b));
        assert_eq!(table.find(7, &9), None);
        assert_eq!(table.remove(a), Some("a"));
        assert_eq!(table.remove(a), None, "removed twice");
        assert_eq!(table.get(a), None, "stale handle");
        assert_eq!(
            table.find(7, &8),
            Some(b),
            "still found after its neighbour left"
        );
        let c = table.insert(9, 9, "c").unwrap();
        assert_eq!(table.get(c), Some(&"c"));
        assert_eq!(
            table.get(a),
            None,
            "the reused slot does not answer the old handle"
        );
        *table.get_mut(c).unwrap() = "d";
        assert_eq!(table.remove(c), Some("d"));
        assert_eq!(table.len(), 1);
    }

    /// Against a HashMap: random inserts, finds and removes with many collisions (hashes
    /// from 0..64) agree at every step.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut table: Table<u32, u32> = Table::new(100);
        let mut model: HashMap<u32, (Handle, u32)> = HashMap::new();
        for step in 0..20_000u32 {
            let key = (next() % 300) as u32;
            let hash = u64::from(key % 64);
            match (next() % 3, model.get(&key).copied()) {
                (0, None) => match table.insert(hash, key, step) {
                    Ok(h) => {
                        model.insert(key, (h, step));
                    }
                    Err(TableFull) => assert_eq!(model.len(), 100),
                },
                (1, Some((h, value))) => {
                    assert_eq!(table.remove(h), Some(value));
                    model.remove(&key);
                }
                _ => {}
            }
            assert_eq!(table.len(), model.len());
            let found = table.find(hash, &key);
            assert_eq!(
                found,
                model.get(&key).map(|(h, _)| *h),
                "key {key} step {step}"
            );
            if let Some(h) = found {
                assert_eq!(table.get(h), Some(&model[&key].1));
            }
        }
        for (key, (h, value)) in &model {
            assert_eq!(table.find(u64::from(key % 64), key), Some(*h));
            assert_eq!(table.get(*h), Some(value));
        }
    }
}

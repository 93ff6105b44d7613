//! A hashed timer wheel for one shard's transaction timers (RFC 3261 §17: A to K): a fixed
//! number of slots, each a ring of ticks, and a fixed pool of timer entries allocated at
//! construction, so scheduling, cancelling and expiring never allocate.
//!
//! A timer lives in the slot of its deadline tick; one due more than a revolution ahead
//! waits there until its round comes. Expiring walks the slots between the last tick seen
//! and now (at most one revolution) and fires every entry whose deadline has passed.

/// No free timer entry: the wheel holds `capacity` timers already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelFull;

/// A scheduled timer, to cancel it. Stale once it fired or was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: u64,
    token: u64,
    next: u32,
    prev: u32,
    slot: u32,
    generation: u32,
    live: bool,
}

/// The wheel: slots of `tick_ns` nanoseconds each, `capacity` timers at most.
#[derive(Debug)]
pub struct TimerWheel {
    tick_ns: u64,
    heads: Vec<u32>,
    entries: Vec<Entry>,
    free: u32,
    /// The last tick expired.
    current: u64,
    live: usize,
}

impl TimerWheel {
    /// A wheel of `slots` slots (rounded up to a power of two) of `tick_ns` each, for at
    /// most `capacity` timers, starting at time `now_ns`.
    pub fn new(capacity: usize, slots: usize, tick_ns: u64, now_ns: u64) -> Self {
        let slots = slots.max(1).next_power_of_two();
        let capacity = capacity.min(NONE as usize - 1);
        let entries = (0..capacity)
            .map(|i| Entry {
                deadline: 0,
                token: 0,
                next: if i + 1 < capacity { i as u32 + 1 } else { NONE },
                prev: NONE,
                slot: NONE,
                generation: 0,
                live: false,
            })
            .collect();
        let tick_ns = tick_ns.max(1);
        TimerWheel {
            tick_ns,
            heads: vec![NONE; slots],
            entries,
            free: if capacity > 0 { 0 } else { NONE },
            current: now_ns / tick_ns,
            live: 0,
        }
    }

    /// Timers scheduled and not yet fired or cancelled.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Schedules `token` to fire once `now_ns + after_ns` has passed (rounded up to the
    /// next tick, and never in a tick already expired).
    pub fn schedule(
        &mut self,
        now_ns: u64,
        after_ns: u64,
        token: u64,
    ) -> Result<TimerId, WheelFull> {
        let index = self.free;
        if index == NONE {
            return Err(WheelFull);
        }
        let deadline = now_ns
            .saturating_add(after_ns)
            .div_ceil(self.tick_ns)
            .max(self.current + 1);
        let slot = (deadline & (self.heads.len() as u64 - 1)) as u32;
        let head = self.heads[slot as usize];
        let entry = &mut self.entries[index as usize];
        self.free = entry.next;
        entry.deadline = deadline;
        entry.token = token;
        entry.next = head;
        entry.prev = NONE;
        entry.slot = slot;
        entry.live = true;
        let id = TimerId {
            index,
            generation: entry.generation,
        };
        if head != NONE {
            self.entries[head as usize].prev = index;
        }
        self.heads[slot as usize] = index;
        self.live += 1;
        Ok(id)
    }

    /// Cancels `id`; false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get(id.index as usize) {
            Some(e) if e.live && e.generation == id.generation => {
                self.unlink(id.index);
                true
            }
            _ => false,
        }
    }

    /// Fires, in no particular order, every timer whose deadline has passed at `now_ns`:
    /// `fire` gets its token. Returns how many fired.
    pub fn expire(&mut self, now_ns: u64, mut fire: impl FnMut(u64)) -> usize {
        let target = now_ns / self.tick_ns;
        if target <= self.current {
            return 0;
        }
        let steps = (target - self.current).min(self.heads.len() as u64);
        let mut fired = 0;
        for step in 1..=steps {
            let slot = ((self.current + step) & (self.heads.len() as u64 - 1)) as usize;
            let mut at = self.heads[slot];
            while at != NONE {
                let entry = self.entries[at as usize];
                if entry.deadline <= target {
                    self.unlink(at);
                    fire(entry.token);
                    fired += 1;
                }
                at = entry.next;
            }
        }
        self.current = target;
        fired
    }

    /// Takes entry `index` out of its slot and back to the free list.
    fn unlink(&mut self, index: u32) {
        let Entry {
            next, prev, slot, ..
        } = self.entries[index as usize];
        if prev == NONE {
            self.heads[slot as usize] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NONE {
            self.entries[next as usize].prev = prev;
        }
        let entry = &mut self.entries[index as usize];
        entry.live = false;
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free;
        entry.prev = NONE;
        entry.slot = NONE;
        self.free = index;
        self.live -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn fired(wheel: &mut TimerWheel, now: u64) -> Vec<u64> {
        let mut tokens = Vec::new();
        wheel.expire(now, |t| tokens.push(t));
        tokens.sort_unstable();
        tokens
    }

    #[test]
    fn timers_fire_once_their_deadline_has_passed() {
        let mut wheel = TimerWheel::new(8, 16, 10 * MS, 0);
        wheel.schedule(0, 500 * MS, 1).unwrap(); // T1
        wheel.schedule(0, 1000 * MS, 2).unwrap();
        wheel.schedule(0, 32_000 * MS, 3).unwrap(); // 64*T1: many revolutions ahead
        assert_eq!(fired(&mut wheel, 499 * MS), Vec::<u64>::new());
        assert_eq!(fired(&mut wheel, 500 * MS), vec![1]);
        assert_eq!(fired(&mut wheel, 10_000 * MS), vec![2]);
        assert_eq!(wheel.len(), 1);
        assert_eq!(fired(&mut wheel, 31_990 * MS), Vec::<u64>::new());
        assert_eq!(fired(&mut wheel, 32_000 * MS), vec![3]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn cancelled_timers_never_fire_and_their_ids_go_stale() {
        let mut wheel = TimerWheel::new(2, 4, MS, 0);
        let a = wheel.schedule(0, 5 * MS, 1).unwrap();
        let b = wheel.schedule(0, 5 * MS, 2).unwrap();
        assert_eq!(wheel.schedule(0, 5 * MS, 3), Err(WheelFull));
        assert!(wheel.cancel(a));
        assert!(!wheel.cancel(a), "cancelled twice");
        // The freed entry is reused; the old id does not cancel the new timer.
        let c = wheel.schedule(0, 7 * MS, 3).unwrap();
        assert!(!wheel.cancel(a));
        assert_eq!(fired(&mut wheel, 6 * MS), vec![2]);
        assert!(!wheel.cancel(b), "already fired");
        assert_eq!(fired(&mut wheel, 7 * MS), vec![3]);
        assert!(!wheel.cancel(c));
        assert!(wheel.is_empty());
    }

    #[test]
    fn a_timer_scheduled_in_the_past_fires_at_the_next_tick() {
        let mut wheel = TimerWheel::new(4, 8, MS, 100 * MS);
        wheel.schedule(50 * MS, 0, 9).unwrap();
        assert_eq!(fired(&mut wheel, 100 * MS), Vec::<u64>::new());
        assert_eq!(fired(&mut wheel, 101 * MS), vec![9]);
    }

    /// Against a plain list: random schedules, cancels and expiries at random times fire
    /// exactly the timers due, each once.
    #[test]
    fn agrees_with_a_list_of_deadlines() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let tick = 4 * MS;
        let mut wheel = TimerWheel::new(64, 32, tick, 0);
        let mut model: Vec<(u64, u64, TimerId)> = Vec::new(); // (deadline tick, token, id)
        let mut now = 0;
        for token in 0..5_000u64 {
            match next() % 4 {
                0 | 1 => {
                    let after = next() % (400 * MS);
                    if let Ok(id) = wheel.schedule(now, after, token) {
                        let deadline = (now + after).div_ceil(tick).max(now / tick + 1);
                        model.push((deadline, token, id));
                    } else {
                        assert_eq!(model.len(), 64);
                    }
                }
                2 if !model.is_empty() => {
                    let (_, _, id) = model.swap_remove((next() % model.len() as u64) as usize);
                    assert!(wheel.cancel(id));
                }
                _ => {
                    now += next() % (300 * MS);
                    let mut got = fired(&mut wheel, now);
                    let due = now / tick;
                    let mut want: Vec<u64> = model
                        .iter()
                        .filter(|(d, _, _)| *d <= due)
                        .map(|(_, t, _)| *t)
                        .collect();
                    model.retain(|(d, _, _)| *d > due);
                    want.sort_unstable();
                    got.sort_unstable();
                    assert_eq!(got, want, "at {now}");
                }
            }
            assert_eq!(wheel.len(), model.len());
        }
    }
}

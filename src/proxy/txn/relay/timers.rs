//! The relay's clock: its timers on the shard's wheel, and what each does when it fires.

use super::entry::token::{self, Which};
use super::{FailoverCause, Relay, RelayEvent, Sends};
use crate::balance::Snapshot;
use crate::proxy::txn::client;
use crate::proxy::txn::server;
use crate::proxy::txn::table::Handle;
use crate::proxy::Exit;

impl Relay {
    /// Runs the timers due at `now_ns` (`snapshot`: the backends a failover may move to).
    /// Returns how many fired.
    pub fn expire(&mut self, snapshot: &Snapshot, now_ns: u64, sends: &mut impl Sends) -> usize {
        self.clock_ns = now_ns;
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now_ns, |token| fired.push(token));
        let count = fired.len();
        for &token in &fired {
            let (index, generation, which) = token::unpack(token);
            let Some(handle) = self
                .table
                .handle_at(index, generation, token::GENERATION_MASK)
            else {
                continue;
            };
            match which {
                Which::Server(timer) => self.server_timer(handle, timer, now_ns, sends),
                Which::Branch(slot, timer) => {
                    self.branch_timer(handle, slot, timer, snapshot, now_ns, sends)
                }
            }
            self.remove_if_over(handle);
        }
        fired.clear();
        self.fired = fired;
        count
    }

    fn server_timer(
        &mut self,
        handle: Handle,
        timer: server::Timer,
        now_ns: u64,
        sends: &mut impl Sends,
    ) {
        let entry = self.entry(handle);
        entry.server_timers.retain(|(t, _)| *t != timer);
        let step = entry.server.timer(timer);
        if step.send {
            let (last, client) = (entry.last, entry.client);
            if let Some(response) = last.and_then(|s| self.responses.get(s)) {
                sends.send(Exit::Public, client, response);
            }
        }
        self.apply_server(handle, &step, now_ns);
    }

    fn branch_timer(
        &mut self,
        handle: Handle,
        slot: u8,
        timer: client::Timer,
        snapshot: &Snapshot,
        now_ns: u64,
        sends: &mut impl Sends,
    ) {
        let Some(branch) = self.entry(handle).branches.get_mut(usize::from(slot)) else {
            return;
        };
        branch.timers.retain(|(t, _)| *t != timer);
        let step = branch.txn.timer(timer);
        let index = branch.index;
        if step.resend {
            self.send_request(handle, slot, sends);
        }
        if step.cancel {
            self.send_cancel(handle, slot, sends);
        }
        self.apply_client(handle, slot, &step, now_ns);
        if !step.timed_out {
            return;
        }
        let branch = &mut self.entry(handle).branches[usize::from(slot)];
        branch.pending = false;
        let superseded = branch.superseded;
        let can_move =
            timer == client::Timer::NoAnswer && !superseded && self.entry(handle).may_move();
        if can_move && self.start_next(handle, snapshot, now_ns, sends) {
            sends.event(RelayEvent::Failover {
                backend: index,
                cause: FailoverCause::NoAnswer,
            });
        }
        if !self.entry(handle).pending() {
            self.finish(handle, now_ns, sends);
        }
    }

    /// Stops and starts the server transaction's timers as `step` says; marks it over.
    pub(super) fn apply_server(&mut self, handle: Handle, step: &server::Step, now_ns: u64) {
        if step.terminated {
            let entry = self.entry(handle);
            entry.server_done = true;
            let armed = std::mem::take(&mut entry.server_timers);
            for (_, id) in armed {
                self.wheel.cancel(id);
            }
            return;
        }
        for &stop in &step.stop {
            let entry = self.entry(handle);
            if let Some(at) = entry.server_timers.iter().position(|(t, _)| *t == stop) {
                let (_, id) = entry.server_timers.remove(at);
                self.wheel.cancel(id);
            }
        }
        for &(timer, after_ns) in &step.start {
            let token = token::pack(handle, Which::Server(timer));
            if let Ok(id) = self.wheel.schedule(now_ns, after_ns, token) {
                let entry = self.entry(handle);
                // A restarted timer (G) replaces its old entry.
                if let Some(at) = entry.server_timers.iter().position(|(t, _)| *t == timer) {
                    let (_, old) = entry.server_timers.remove(at);
                    self.wheel.cancel(old);
                }
                let entry = self.entry(handle);
                let _ = entry.server_timers.try_push((timer, id));
            }
        }
    }

    /// Stops and starts branch `slot`'s timers as `step` says; ends the branch when its
    /// transaction is over.
    pub(super) fn apply_client(
        &mut self,
        handle: Handle,
        slot: u8,
        step: &client::Step,
        now_ns: u64,
    ) {
        let Some(branch) = self.entry(handle).branches.get_mut(usize::from(slot)) else {
            return;
        };
        if step.terminated {
            branch.live = false;
            branch.pending = false;
            let armed = std::mem::take(&mut branch.timers);
            let id = branch.id.id();
            for (_, timer) in armed {
                self.wheel.cancel(timer);
            }
            if let Some(h) = self.branches.find(id, &id) {
                self.branches.remove(h);
            }
            return;
        }
        for &stop in &step.stop {
            let branch = &mut self.entry(handle).branches[usize::from(slot)];
            if let Some(at) = branch.timers.iter().position(|(t, _)| *t == stop) {
                let (_, id) = branch.timers.remove(at);
                self.wheel.cancel(id);
            }
        }
        for &(timer, after_ns) in &step.start {
            let token = token::pack(handle, Which::Branch(slot, timer));
            if let Ok(id) = self.wheel.schedule(now_ns, after_ns, token) {
                let branch = &mut self.entry(handle).branches[usize::from(slot)];
                if let Some(at) = branch.timers.iter().position(|(t, _)| *t == timer) {
                    let (_, old) = branch.timers.remove(at);
                    self.wheel.cancel(old);
                }
                let branch = &mut self.entry(handle).branches[usize::from(slot)];
                let _ = branch.timers.try_push((timer, id));
            }
        }
    }
}

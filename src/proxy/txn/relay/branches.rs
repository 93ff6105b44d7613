//! The relay's branches: starting one (the first, a fork, a failover), sending its
//! request again, cancelling it, and ending the server transaction with the best final
//! response once no branch is pending.

use super::copies;
use super::entry::{Branch, Cancel};
use super::{Admission, Relay, RelayEvent, Sends};
use crate::balance::call_id_hash;
use crate::balance::{Snapshot, PREFERENCE_MAX};
use crate::proxy::txn::client::{self, ClientTransaction};
use crate::proxy::txn::key::ServerKey;
use crate::proxy::txn::select::Best;
use crate::proxy::txn::server::Kind;
use crate::proxy::txn::table::Handle;
use crate::proxy::Exit;
use crate::sip::{hex16, BranchId, Message, Status};
use arrayvec::ArrayVec;
use std::net::SocketAddr;

impl Relay {
    /// Starts a branch toward `backend` with Via branch `id` (the request already went, or
    /// goes now through the caller).
    pub(super) fn start_branch(
        &mut self,
        handle: Handle,
        id: BranchId,
        backend: SocketAddr,
        index: u16,
        now_ns: u64,
    ) -> Option<u8> {
        let timers = self.config.timers;
        let no_answer = self.config.failover_after_ns;
        let entry = self.entry(handle);
        let kind = if entry.invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let slot = entry.branches.len() as u8;
        let (txn, first) = ClientTransaction::start(kind, timers, no_answer);
        let branch = Branch {
            id,
            backend,
            index,
            txn,
            timers: ArrayVec::new(),
            pending: true,
            live: true,
            superseded: false,
            cancel: Cancel::No,
        };
        entry.branches.try_push(branch).ok()?;
        if self
            .branches
            .insert(id.id(), id.id(), (handle, slot))
            .is_err()
        {
            // No room in the branch index: its responses would not be found.
            let branch = &mut self.entry(handle).branches[usize::from(slot)];
            branch.live = false;
            branch.pending = false;
            return None;
        }
        self.apply_client(handle, slot, &first, now_ns);
        Some(slot)
    }

    /// Sends the request on a new branch to the next backend of the call's preference
    /// order that is up, not tried yet and of the first one's address family. False when
    /// there is none, or no branch or attempt left.
    pub(super) fn start_next(
        &mut self,
        handle: Handle,
        snapshot: &Snapshot,
        now_ns: u64,
        sends: &mut impl Sends,
    ) -> bool {
        let max = usize::from(self.config.max_attempts.max(self.config.fork));
        let Some(entry) = self.table.get(handle) else {
            return false;
        };
        if entry.branches.len() >= max || entry.request.is_none() {
            return false;
        }
        let first = entry.branches.first().map(|b| b.backend);
        let backends = snapshot.backends();
        let next = snapshot
            .maglev()
            .preference(entry.hash, PREFERENCE_MAX)
            .filter_map(|i| backends.get(i).map(|b| (i, b)))
            .find(|(_, b)| {
                b.up && !entry.tried(b.addr)
                    && first.is_none_or(|f| f.is_ipv4() == b.addr.is_ipv4())
            });
        let Some((index, backend)) = next else {
            return false;
        };
        let (index, addr) = (index as u16, backend.addr);
        let id = self.key.derive(entry.base, entry.branches.len() as u8);
        let Some(slot) = self.start_branch(handle, id, addr, index, now_ns) else {
            return false;
        };
        if !self.send_request(handle, slot, sends) {
            return false;
        }
        sends.event(RelayEvent::Branch { backend: index });
        true
    }

    /// Sends branch `slot`'s request (again). False when it cannot be written.
    pub(super) fn send_request(
        &mut self,
        handle: Handle,
        slot: u8,
        sends: &mut impl Sends,
    ) -> bool {
        let Some(len) = self.write_branch_request(handle, slot) else {
            return false;
        };
        let entry = self.entry(handle);
        let (exit, backend) = (entry.exit, entry.branches[usize::from(slot)].backend);
        sends.send(exit, backend, &self.scratch[..len]);
        true
    }

    /// Writes branch `slot`'s request into the scratch buffer.
    fn write_branch_request(&mut self, handle: Handle, slot: u8) -> Option<usize> {
        let entry = self.table.get(handle)?;
        let branch = entry.branches.get(usize::from(slot))?;
        let request = self.requests.get(entry.request?)?;
        copies::request_for(
            &mut self.scratch,
            request,
            &entry.layout,
            &self.key,
            branch.id,
            branch.backend,
        )
    }

    /// The client's CANCEL: 200 at once; every pending branch is CANCELed.
    pub(super) fn client_cancel(
        &mut self,
        msg: &Message<'_, '_>,
        source: SocketAddr,
        reply: &mut [u8],
        sends: &mut impl Sends,
    ) -> Admission {
        let Some(invite_key) = ServerKey::of_cancelled(msg) else {
            return Admission::Stateless;
        };
        let hash = invite_key.hash_with(call_id_hash);
        let Some(handle) = self.table.find(hash, &invite_key) else {
            return Admission::Stateless;
        };
        let base = self.entry(handle).base;
        let ok = Status {
            code: 200,
            reason: "OK",
            retry_after: None,
        };
        let answer = copies::reply_to(msg, ok, source, &base, reply);
        let entry = self.entry(handle);
        if !entry.cancelled && !entry.answered && !entry.finished {
            entry.cancelled = true;
            sends.event(RelayEvent::ClientCancel);
            for slot in 0..entry.branches.len() as u8 {
                self.cancel_branch(handle, slot, sends);
            }
        } else {
            // A retransmitted CANCEL, or one too late: 200 again, nothing more.
            sends.event(RelayEvent::Absorbed);
        }
        match answer {
            Some(len) => Admission::Reply(len),
            None => Admission::Absorbed,
        }
    }

    /// CANCELs every pending branch but `winner`; their non-2xx finals never reach the
    /// client.
    pub(super) fn cancel_others(&mut self, handle: Handle, winner: u8, sends: &mut impl Sends) {
        let count = self.entry(handle).branches.len() as u8;
        for slot in (0..count).filter(|&s| s != winner) {
            let branch = &mut self.entry(handle).branches[usize::from(slot)];
            if branch.pending {
                branch.superseded = true;
                self.cancel_branch(handle, slot, sends);
            }
        }
    }

    /// CANCELs branch `slot` if it is a pending INVITE: now if it answered provisionally,
    /// else once it does (§9.1).
    fn cancel_branch(&mut self, handle: Handle, slot: u8, sends: &mut impl Sends) {
        let branch = &mut self.entry(handle).branches[usize::from(slot)];
        if !branch.pending || branch.cancel != Cancel::No || branch.txn.kind() != Kind::Invite {
            return;
        }
        if branch.txn.state() == client::State::Proceeding {
            self.send_cancel(handle, slot, sends);
        } else {
            branch.cancel = Cancel::Wanted;
        }
    }

    /// Sends branch `slot`'s CANCEL: its request's Via, so its branch (§9.1). Its final
    /// response then gets 64×T1 to come.
    pub(super) fn send_cancel(&mut self, handle: Handle, slot: u8, sends: &mut impl Sends) {
        let branch = &mut self.entry(handle).branches[usize::from(slot)];
        branch.cancel = Cancel::Sent;
        let step = branch.txn.cancelled();
        let now_ns = self.clock_ns;
        self.apply_client(handle, slot, &step, now_ns);
        if self.write_hop(handle, slot, None, sends) {
            sends.event(RelayEvent::CancelSent);
        }
    }

    /// Sends branch `slot`'s CANCEL, or with `response_to` (the final's To line) the ACK of
    /// its non-2xx final.
    pub(super) fn write_hop(
        &mut self,
        handle: Handle,
        slot: u8,
        response_to: Option<&[u8]>,
        sends: &mut impl Sends,
    ) -> bool {
        let Some(len) = self.write_branch_request(handle, slot) else {
            return false;
        };
        let Some(hop) = copies::hop_request(&mut self.hop, &self.scratch[..len], response_to)
        else {
            return false;
        };
        let entry = self.entry(handle);
        let (exit, backend) = (entry.exit, entry.branches[usize::from(slot)].backend);
        sends.send(exit, backend, &self.hop[..hop]);
        true
    }

    /// No branch is pending: the client gets the best final response kept, or one of ours
    /// (408 when nobody answered, 487 once it CANCELed, 500 for a lone 503).
    pub(super) fn finish(&mut self, handle: Handle, now_ns: u64, sends: &mut impl Sends) {
        let Some(entry) = self.table.get(handle) else {
            return;
        };
        if entry.answered || entry.finished || entry.server_done {
            return;
        }
        let client = entry.client;
        let (code, len) = match entry.selection.best() {
            Best::Relay { status, .. } => {
                let kept = entry.best.and_then(|b| self.responses.get(b));
                let Some(bytes) = kept else {
                    return self.give_up(handle);
                };
                self.hop[..bytes.len()].copy_from_slice(bytes);
                (status, bytes.len())
            }
            Best::Generate(code) => {
                let code = if entry.cancelled && code == 408 {
                    487
                } else {
                    code
                };
                let request = entry.request.and_then(|r| self.requests.get(r));
                let Some(request) = request else {
                    return self.give_up(handle);
                };
                let status = Status {
                    code,
                    reason: reason_of(code),
                    retry_after: None,
                };
                let tag = hex16(entry.base.id());
                let written = copies::own_final(&mut self.hop, request, status, &tag);
                let Some(len) = written else {
                    return self.give_up(handle);
                };
                sends.event(RelayEvent::Generated(code));
                (code, len)
            }
        };
        let hop = std::mem::take(&mut self.hop);
        if self.finish_with(handle, code, &hop[..len], now_ns) {
            sends.send(Exit::Public, client, &hop[..len]);
        }
        self.hop = hop;
    }

    /// No final response can be sent (the request was too long to keep, or lacks what a
    /// response must echo): the server transaction ends without one, and the client's own
    /// timer ends its side.
    fn give_up(&mut self, handle: Handle) {
        let entry = self.entry(handle);
        entry.finished = true;
        entry.server_done = true;
        let armed = std::mem::take(&mut entry.server_timers);
        for (_, id) in armed {
            self.wheel.cancel(id);
        }
    }

    /// The final response `bytes` (`status`) goes to the client: the server transaction
    /// keeps it. True if it goes out.
    pub(super) fn finish_with(
        &mut self,
        handle: Handle,
        status: u16,
        bytes: &[u8],
        now_ns: u64,
    ) -> bool {
        let entry = self.entry(handle);
        if entry.finished || entry.answered {
            return false;
        }
        entry.finished = true;
        self.respond_client(handle, status, bytes, now_ns)
    }
}

/// The reason phrase of a final response we make.
fn reason_of(code: u16) -> &'static str {
    match code {
        408 => "Request Timeout",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        _ => "Error",
    }
}

//! The server side of a shard's stateful mode: its server transactions (the table, their
//! timers, their last responses) driven by the client's requests, the backends' responses
//! and the clock, deciding without I/O. What it decides: forward a new request, send a
//! kept response again instead of forwarding a retransmission, absorb, relay a response,
//! or refuse when full.

use super::key::ServerKey;
use super::server::{Kind, ServerTransaction, Step, Timer, Timers};
use super::store::{ResponseStore, Stored};
use super::table::{Handle, Table, TableFull};
use super::wheel::{TimerId, TimerWheel};
use crate::balance::call_id_hash;
use crate::sip::Message;
use arrayvec::ArrayVec;

/// Timer wheel slots (of [`TICK_NS`] each: about 41 s per revolution).
const SLOTS: usize = 4096;
/// Timer resolution.
pub const TICK_NS: u64 = 10_000_000;
/// Bits of a handle's generation kept in a timer token.
const GENERATION_MASK: u32 = 0x0fff_ffff;

/// What to do with a request from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestFate<'s> {
    /// A new transaction: forward the request (an INVITE's client gets 100 Trying first).
    New {
        /// An INVITE.
        invite: bool,
    },
    /// A retransmission: send this response again, forward nothing.
    Repeat(&'s [u8]),
    /// A retransmission with nothing to repeat, or the ACK of our non-2xx final: forward
    /// nothing.
    Absorb,
    /// No transaction here (no usable branch, the ACK of a 2xx, a CANCEL): forward it
    /// statelessly.
    Stateless,
    /// Every transaction slot is taken: answer 503 and count.
    Full,
}

struct Entry {
    transaction: ServerTransaction,
    stored: Option<Stored>,
    armed: ArrayVec<(Timer, TimerId), 2>,
}

/// One shard's server transactions.
pub struct ServerSide {
    table: Table<ServerKey, Entry>,
    wheel: TimerWheel,
    store: ResponseStore,
    timers: Timers,
    /// Tokens of the timers that fired, taken from the wheel before they are handled
    /// (allocated for every timer the wheel can hold).
    fired: Vec<u64>,
}

impl ServerSide {
    /// Room for `capacity` transactions, with `timers`, starting at `now_ns`.
    pub fn new(capacity: usize, timers: Timers, now_ns: u64) -> Self {
        ServerSide {
            table: Table::new(capacity),
            wheel: TimerWheel::new(2 * capacity, SLOTS, TICK_NS, now_ns),
            store: ResponseStore::new(capacity),
            timers,
            fired: Vec::with_capacity(2 * capacity),
        }
    }

    /// Transactions alive.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when none is alive.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A request from the client, at `now_ns`.
    pub fn request(&mut self, msg: &Message<'_, '_>, now_ns: u64) -> RequestFate<'_> {
        let method = msg.method().unwrap_or_default();
        if method == b"CANCEL" {
            return RequestFate::Stateless;
        }
        let Some(key) = ServerKey::of(msg) else {
            return RequestFate::Stateless;
        };
        let hash = key.hash_with(call_id_hash);
        match (self.table.find(hash, &key), method) {
            (Some(handle), b"ACK") => {
                let step = self.entry(handle).transaction.ack();
                self.apply(handle, &step, now_ns);
                RequestFate::Absorb
            }
            // The ACK of a 2xx (or of a transaction gone): end to end, as today.
            (None, b"ACK") => RequestFate::Stateless,
            (Some(handle), _) => {
                let step = self.entry(handle).transaction.request_again();
                let stored = self.entry(handle).stored;
                match stored.and_then(|s| self.store.get(s)).filter(|_| step.send) {
                    Some(response) => RequestFate::Repeat(response),
                    None => RequestFate::Absorb,
                }
            }
            (None, _) => {
                let invite = method == b"INVITE";
                let kind = if invite {
                    Kind::Invite
                } else {
                    Kind::NonInvite
                };
                let entry = Entry {
                    transaction: ServerTransaction::new(kind, self.timers),
                    stored: None,
                    armed: ArrayVec::new(),
                };
                match self.table.insert(hash, key, entry) {
                    Ok(_) => RequestFate::New { invite },
                    Err(TableFull) => RequestFate::Full,
                }
            }
        }
    }

    /// A response to the client (ours, such as 100 Trying, or a backend's), at `now_ns`:
    /// true if it goes out. It is kept to answer retransmissions. A response whose
    /// transaction is unknown (over, or never made) goes out as in stateless mode.
    pub fn response(&mut self, msg: &Message<'_, '_>, bytes: &[u8], now_ns: u64) -> bool {
        let Some(key) = ServerKey::of_response(msg) else {
            return true;
        };
        let Some(handle) = self.table.find(key.hash_with(call_id_hash), &key) else {
            return true;
        };
        self.respond(handle, msg.status().unwrap_or(0), bytes, now_ns)
    }

    /// A response we make for the client's request `request` (100 Trying, a 503), at
    /// `now_ns`: kept like a relayed one. True if it goes out.
    pub fn own_response(
        &mut self,
        request: &Message<'_, '_>,
        status: u16,
        bytes: &[u8],
        now_ns: u64,
    ) -> bool {
        let Some(key) = ServerKey::of(request) else {
            return true;
        };
        match self.table.find(key.hash_with(call_id_hash), &key) {
            Some(handle) => self.respond(handle, status, bytes, now_ns),
            None => true,
        }
    }

    fn respond(&mut self, handle: Handle, status: u16, bytes: &[u8], now_ns: u64) -> bool {
        let step = self.entry(handle).transaction.respond(status);
        if step.send {
            let previous = self.entry(handle).stored;
            let kept = self.store.keep(previous, bytes);
            self.entry(handle).stored = kept;
        }
        self.apply(handle, &step, now_ns);
        step.send
    }

    /// Runs the timers due at `now_ns`; `resend` gets each response to send again (timer
    /// G). Returns how many timers fired.
    pub fn expire(&mut self, now_ns: u64, mut resend: impl FnMut(&[u8])) -> usize {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now_ns, |token| fired.push(token));
        let count = fired.len();
        for &token in &fired {
            let (index, generation, timer) = unpack(token);
            let Some(handle) = self.table.handle_at(index, generation, GENERATION_MASK) else {
                continue;
            };
            let entry = self.entry(handle);
            entry.armed.retain(|(t, _)| *t != timer);
            let step = entry.transaction.timer(timer);
            if step.send {
                if let Some(response) = entry.stored.and_then(|s| self.store.get(s)) {
                    resend(response);
                }
            }
            self.apply(handle, &step, now_ns);
        }
        fired.clear();
        self.fired = fired;
        count
    }

    fn entry(&mut self, handle: Handle) -> &mut Entry {
        self.table
            .get_mut(handle)
            .unwrap_or_else(|| unreachable!("handles are used before their entry goes"))
    }

    /// Stops and starts the timers `step` names; removes the transaction when it ended.
    fn apply(&mut self, handle: Handle, step: &Step, now_ns: u64) {
        if step.terminated {
            if let Some(entry) = self.table.remove(handle) {
                for (_, id) in entry.armed {
                    self.wheel.cancel(id);
                }
                if let Some(stored) = entry.stored {
                    self.store.release(stored);
                }
            }
            return;
        }
        for &stop in &step.stop {
            let entry = self.entry(handle);
            if let Some(at) = entry.armed.iter().position(|(t, _)| *t == stop) {
                let (_, id) = entry.armed.remove(at);
                self.wheel.cancel(id);
            }
        }
        for &(timer, after_ns) in &step.start {
            let token = pack(handle, timer);
            // The wheel holds two timers per transaction: it is never full here.
            if let Ok(id) = self.wheel.schedule(now_ns, after_ns, token) {
                let entry = self.entry(handle);
                // A restarted timer (G) replaces its old entry.
                entry.armed.retain(|(t, _)| *t != timer);
                let _ = entry.armed.try_push((timer, id));
            }
        }
    }
}

fn timer_code(timer: Timer) -> u64 {
    match timer {
        Timer::G => 0,
        Timer::H => 1,
        Timer::I => 2,
        Timer::J => 3,
        Timer::L => 4,
    }
}

fn pack(handle: Handle, timer: Timer) -> u64 {
    u64::from(handle.index())
        | u64::from(handle.generation() & GENERATION_MASK) << 32
        | timer_code(timer) << 60
}

fn unpack(token: u64) -> (u32, u32, Timer) {
    let timer = match token >> 60 {
        0 => Timer::G,
        1 => Timer::H,
        2 => Timer::I,
        3 => Timer::J,
        _ => Timer::L,
    };
    (token as u32, (token >> 32) as u32 & GENERATION_MASK, timer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse, Headers};

    const MS: u64 = 1_000_000;

    fn request(method: &str, branch: &str) -> String {
        format!(
            "{method} sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
             Call-ID: side@x\r\nCSeq: 1 {}\r\nContent-Length: 0\r\n\r\n",
            if method == "ACK" { "ACK" } else { method }
        )
    }

    fn response(status: u16, method: &str, branch: &str) -> String {
        format!(
            "SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/UDP 10.0.0.1:6000;branch=z9hG4bKours\r\n\
             Via: SIP/2.0/UDP 198.51.100.7:5060;branch={branch}\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
             Call-ID: side@x\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn on_request(side: &mut ServerSide, text: &str, now: u64) -> String {
        let mut headers = Headers::<16>::new();
        let msg = parse(text.as_bytes(), &mut headers).unwrap();
        match side.request(&msg, now) {
            RequestFate::Repeat(bytes) => {
                format!("repeat {}", String::from_utf8_lossy(&bytes[8..11]))
            }
            other => format!("{other:?}"),
        }
    }

    fn on_response(side: &mut ServerSide, text: &str, now: u64) -> bool {
        let mut headers = Headers::<16>::new();
        let msg = parse(text.as_bytes(), &mut headers).unwrap();
        side.response(&msg, text.as_bytes(), now)
    }

    #[test]
    fn retransmissions_are_answered_from_the_kept_response_and_never_forwarded() {
        let timers = Timers {
            t1_ns: 500 * MS,
            t2_ns: 4_000 * MS,
            t4_ns: 5_000 * MS,
        };
        let mut side = ServerSide::new(4, timers, 0);
        let invite = request("INVITE", "z9hG4bK1");
        assert_eq!(on_request(&mut side, &invite, 0), "New { invite: true }");
        // Nothing kept yet: absorbed.
        assert_eq!(on_request(&mut side, &invite, MS), "Absorb");
        assert!(on_response(
            &mut side,
            &response(180, "INVITE", "z9hG4bK1"),
            2 * MS
        ));
        assert_eq!(on_request(&mut side, &invite, 3 * MS), "repeat 180");
        assert!(on_response(
            &mut side,
            &response(486, "INVITE", "z9hG4bK1"),
            4 * MS
        ));
        assert!(!on_response(
            &mut side,
            &response(500, "INVITE", "z9hG4bK1"),
            5 * MS
        ));
        assert_eq!(on_request(&mut side, &invite, 6 * MS), "repeat 486");
        // Timer G sends the 486 again until the ACK comes.
        let mut resent = Vec::new();
        side.expire(600 * MS, |r| resent.push(r[8..11].to_vec()));
        assert_eq!(resent, [b"486".to_vec()]);
        assert_eq!(
            on_request(&mut side, &request("ACK", "z9hG4bK1"), 700 * MS),
            "Absorb"
        );
        side.expire(5_000 * MS, |_| panic!("no more resends after the ACK"));
        assert_eq!(side.len(), 1, "Confirmed until timer I");
        side.expire(5_800 * MS, |_| {});
        assert!(side.is_empty());
        // A 2xx's ACK, or one for a transaction gone, goes on statelessly.
        assert_eq!(
            on_request(&mut side, &request("ACK", "z9hG4bK9"), 6_000 * MS),
            "Stateless"
        );
    }

    #[test]
    fn a_full_table_refuses_and_other_requests_stay_stateless() {
        let mut side = ServerSide::new(1, Timers::default(), 0);
        assert_eq!(
            on_request(&mut side, &request("OPTIONS", "z9hG4bKa"), 0),
            "New { invite: false }"
        );
        assert_eq!(
            on_request(&mut side, &request("OPTIONS", "z9hG4bKb"), 0),
            "Full"
        );
        assert_eq!(
            on_request(&mut side, &request("OPTIONS", "1234"), 0),
            "Stateless"
        );
        assert_eq!(
            on_request(&mut side, &request("CANCEL", "z9hG4bKa"), 0),
            "Stateless"
        );
        // Its 200 ends it after timer J (64 T1 = 32 s).
        assert!(on_response(
            &mut side,
            &response(200, "OPTIONS", "z9hG4bKa"),
            MS
        ));
        assert_eq!(
            on_request(&mut side, &request("OPTIONS", "z9hG4bKa"), 2 * MS),
            "repeat 200"
        );
        side.expire(33_000 * MS, |_| {});
        assert!(side.is_empty());
        assert_eq!(
            on_request(&mut side, &request("OPTIONS", "z9hG4bKb"), 34_000 * MS),
            "New { invite: false }"
        );
    }
}

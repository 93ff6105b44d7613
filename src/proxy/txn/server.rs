//! Server transactions over UDP (RFC 3261 §17.2, with RFC 6026's Accepted state): the
//! state machine of the transaction that faces the client, without I/O or storage. Each
//! event returns what to do: send (or send again) the response last given, absorb the
//! request, schedule a timer, or end the transaction.

use arrayvec::ArrayVec;

/// The transaction timers' base values (RFC 3261 §17.1.1.1; `--t1-ms`, `--t2-ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms by default.
    pub t1_ns: u64,
    /// Longest retransmission interval of non-INVITE requests and INVITE responses, 4 s.
    pub t2_ns: u64,
    /// Longest time a message stays in the network, 5 s.
    pub t4_ns: u64,
    /// How long a transaction that has its final answer stays to absorb retransmissions:
    /// timers D, J, L and M. RFC 3261 and 6026 give them 64×T1 (32 s) over UDP; 5 s here
    /// by default, like Kamailio tm's wait timer, so that a shard at thousands of calls/s
    /// holds seconds of transactions, not half a minute. A retransmission later than this
    /// is forwarded as a new request (the backend's own transaction answers it).
    pub linger_ns: u64,
}

impl Timers {
    /// How long a non-INVITE transaction stays after its final answer (timers J and K):
    /// T1, long enough for a retransmission that crossed the final in flight. A later one
    /// means the final was lost; it is forwarded, and the backend's own transaction (which
    /// keeps its answer for 64×T1) sends it again. Message-heavy traffic (OPTIONS,
    /// REGISTER, MESSAGE) then holds a tenth of a second of transactions, not five.
    pub fn non_invite_linger_ns(&self) -> u64 {
        self.t1_ns.min(self.linger_ns)
    }
}

/// Short timers for the state machines' tests: T1 500, T2 4,000, T4 5,000 (nanoseconds).
#[cfg(test)]
pub(super) const TEST_TIMERS: Timers = Timers {
    t1_ns: 500,
    t2_ns: 4_000,
    t4_ns: 5_000,
    linger_ns: 32_000,
};

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1_ns: 500_000_000,
            t2_ns: 4_000_000_000,
            t4_ns: 5_000_000_000,
            linger_ns: 5_000_000_000,
        }
    }
}

/// INVITE, or any other method (ACK never makes a transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An INVITE transaction (§17.2.1).
    Invite,
    /// A non-INVITE transaction (§17.2.2).
    NonInvite,
}

/// Where a server transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Non-INVITE: no response given yet.
    Trying,
    /// A provisional response given (an INVITE starts here: its 100 Trying).
    Proceeding,
    /// A final response given (INVITE: a non-2xx one, waiting for its ACK).
    Completed,
    /// INVITE: the ACK of its non-2xx final response came.
    Confirmed,
    /// INVITE: a 2xx given (RFC 6026); later 2xx are relayed, retransmitted INVITEs absorbed.
    Accepted,
    /// Over: the entry goes.
    Terminated,
}

/// The server transactions' timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// G: send the non-2xx final response of an INVITE again (T1, doubling, up to T2).
    G,
    /// H: the ACK never came (64 T1).
    H,
    /// I: the ACK's retransmissions are over (T4).
    I,
    /// J: the non-INVITE request's retransmissions are over (64 T1).
    J,
    /// L: the INVITE's retransmissions after a 2xx are over (64 T1, RFC 6026).
    L,
}

/// What to do with a message or a timer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Send the response just given (or, for a retransmission or timer G, the last one).
    pub send: bool,
    /// Timers to start, with their durations.
    pub start: ArrayVec<(Timer, u64), 2>,
    /// Timers to stop.
    pub stop: ArrayVec<Timer, 2>,
    /// The transaction is over: remove it (its timers with it).
    pub terminated: bool,
}

impl Step {
    fn send() -> Step {
        Step {
            send: true,
            ..Step::default()
        }
    }

    fn start(mut self, timer: Timer, after_ns: u64) -> Step {
        self.start.push((timer, after_ns));
        self
    }

    fn stop(mut self, timer: Timer) -> Step {
        self.stop.push(timer);
        self
    }

    fn terminated() -> Step {
        Step {
            terminated: true,
            ..Step::default()
        }
    }
}

/// One server transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTransaction {
    kind: Kind,
    state: State,
    timers: Timers,
    /// Timer G's next interval.
    g_interval_ns: u64,
}

impl ServerTransaction {
    /// A transaction for a new request. An INVITE's starts in Proceeding: the caller sends
    /// 100 Trying at once ([`ServerTransaction::respond`] with 100).
    pub fn new(kind: Kind, timers: Timers) -> Self {
        ServerTransaction {
            kind,
            state: match kind {
                Kind::Invite => State::Proceeding,
                Kind::NonInvite => State::Trying,
            },
            timers,
            g_interval_ns: timers.t1_ns,
        }
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// INVITE or not.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A response with `status` goes to the client (ours, or the backend's relayed).
    /// `send: false` when the transaction no longer takes that response (a provisional
    /// after a final one, a non-2xx after a final one).
    pub fn respond(&mut self, status: u16) -> Step {
        let t1 = self.timers.t1_ns;
        match (self.kind, self.state, status) {
            (_, State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                Step::send()
            }
            (Kind::Invite, State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                Step::send().start(Timer::L, self.timers.linger_ns)
            }
            // RFC 6026: every 2xx of the INVITE is relayed while Accepted (forking).
            (Kind::Invite, State::Accepted, 200..=299) => Step::send(),
            (Kind::Invite, State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                Step::send()
                    .start(Timer::G, self.g_interval_ns)
                    .start(Timer::H, 64 * t1)
            }
            (Kind::NonInvite, State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                Step::send().start(Timer::J, self.timers.non_invite_linger_ns())
            }
            _ => Step::default(),
        }
    }

    /// The client sent the request again: absorbed, with the last response sent again when
    /// there is one to repeat.
    pub fn request_again(&mut self) -> Step {
        match (self.kind, self.state) {
            (_, State::Proceeding) | (_, State::Completed) => Step::send(),
            // Trying: nothing to repeat yet; Accepted: the 2xx is repeated by the backend
            // (end to end), not by us; Confirmed: the ACK came, the request is stale.
            _ => Step::default(),
        }
    }

    /// An ACK matched this transaction (same branch): the ACK of its non-2xx final
    /// response, absorbed here. (The ACK of a 2xx has a branch of its own and never matches
    /// a server transaction, §17.1.1.3: it is forwarded like any in-dialog request.)
    pub fn ack(&mut self) -> Step {
        if self.kind == Kind::Invite && self.state == State::Completed {
            self.state = State::Confirmed;
            return Step::default()
                .stop(Timer::G)
                .stop(Timer::H)
                .start(Timer::I, self.timers.t4_ns);
        }
        Step::default()
    }

    /// `timer` fired.
    pub fn timer(&mut self, timer: Timer) -> Step {
        match (self.state, timer) {
            (State::Completed, Timer::G) => {
                self.g_interval_ns = (self.g_interval_ns * 2).min(self.timers.t2_ns);
                Step::send().start(Timer::G, self.g_interval_ns)
            }
            (State::Completed, Timer::H)
            | (State::Confirmed, Timer::I)
            | (State::Completed, Timer::J)
            | (State::Accepted, Timer::L) => {
                self.state = State::Terminated;
                Step::terminated()
            }
            // A timer stopped too late to be cancelled: nothing.
            _ => Step::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = TEST_TIMERS;

    fn started(step: &Step) -> Vec<(Timer, u64)> {
        step.start.to_vec()
    }

    #[test]
    fn an_invite_rejected_waits_for_its_ack_and_repeats_its_answer() {
        let mut t = ServerTransaction::new(Kind::Invite, T);
        assert_eq!(t.state(), State::Proceeding);
        assert!(t.respond(100).send);
        // The INVITE again: the 100 again, nothing forwarded.
        assert!(t.request_again().send);
        assert!(t.respond(180).send);
        let final_step = t.respond(486);
        assert!(final_step.send);
        assert_eq!(started(&final_step), [(Timer::G, 500), (Timer::H, 32_000)]);
        assert_eq!(t.state(), State::Completed);
        // A late provisional or another final: not sent.
        assert!(!t.respond(183).send);
        assert!(!t.respond(500).send);
        // Timer G doubles up to T2, each time sending the 486 again.
        let intervals: Vec<u64> = (0..5).map(|_| t.timer(Timer::G).start[0].1).collect();
        assert_eq!(intervals, [1_000, 2_000, 4_000, 4_000, 4_000]);
        assert!(t.request_again().send, "the 486 again");
        let ack = t.ack();
        assert_eq!(t.state(), State::Confirmed);
        assert_eq!(ack.stop.to_vec(), [Timer::G, Timer::H]);
        assert_eq!(started(&ack), [(Timer::I, 5_000)]);
        assert!(!t.request_again().send);
        assert!(!t.timer(Timer::G).send, "a G that fired late sends nothing");
        assert!(t.timer(Timer::I).terminated);
        assert_eq!(t.state(), State::Terminated);
    }

    #[test]
    fn an_invite_whose_ack_never_comes_ends_at_timer_h() {
        let mut t = ServerTransaction::new(Kind::Invite, T);
        t.respond(100);
        t.respond(503);
        assert!(t.timer(Timer::H).terminated);
    }

    #[test]
    fn an_accepted_invite_relays_every_2xx_and_absorbs_its_retransmissions() {
        let mut t = ServerTransaction::new(Kind::Invite, T);
        t.respond(100);
        let ok = t.respond(200);
        assert!(ok.send);
        assert_eq!(started(&ok), [(Timer::L, 32_000)]);
        assert_eq!(t.state(), State::Accepted);
        assert!(t.respond(200).send, "a second 2xx (another fork branch)");
        assert!(!t.respond(486).send, "no non-2xx after a 2xx");
        assert!(!t.request_again().send, "absorbed, not answered by us");
        assert!(t.timer(Timer::L).terminated);
    }

    #[test]
    fn a_non_invite_absorbs_retransmissions_then_repeats_its_final_answer() {
        let mut t = ServerTransaction::new(Kind::NonInvite, T);
        assert_eq!(t.state(), State::Trying);
        assert!(!t.request_again().send, "nothing to repeat yet");
        assert!(t.respond(100).send);
        assert!(t.request_again().send, "the provisional again");
        let done = t.respond(200);
        assert!(done.send);
        assert_eq!(
            started(&done),
            [(Timer::J, 500)],
            "T1: non_invite_linger_ns"
        );
        assert!(t.request_again().send, "the 200 again");
        assert!(!t.respond(200).send);
        assert!(t.timer(Timer::J).terminated);
    }
}

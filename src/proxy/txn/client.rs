//! Client transactions over UDP (RFC 3261 §17.1, with RFC 6026's Accepted state): the
//! state machine of the transaction toward one backend, without I/O or storage. Each event
//! returns what to do: send the request again, ACK a non-2xx final response, pass a
//! response on to the server side, give up on the backend, or end the transaction.

use super::server::{Kind, Timers};
use arrayvec::ArrayVec;

/// How long a proxy waits for a final response to an INVITE after a provisional one
/// (§16.6 step 11: more than 3 minutes).
pub const TIMER_C_NS: u64 = 180_000_000_000;

/// Where a client transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing back yet.
    Calling,
    /// Non-INVITE sent, nothing back yet.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came (INVITE: a non-2xx one, which we ACKed).
    Completed,
    /// INVITE: a 2xx came (RFC 6026); later 2xx are passed on too.
    Accepted,
    /// Over: the entry goes.
    Terminated,
}

/// The client transactions' timers, and the balancer's failover timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A: send the INVITE again (T1, doubling).
    A,
    /// B: no answer to the INVITE (64 T1): 408.
    B,
    /// C: no final answer to the INVITE after a provisional one (3 min): CANCEL it.
    C,
    /// D: retransmitted non-2xx finals are over (32 s).
    D,
    /// E: send the non-INVITE again (T1, doubling up to T2; T2 once Proceeding).
    E,
    /// F: no final answer to the non-INVITE (64 T1): 408.
    F,
    /// K: retransmitted non-INVITE finals are over (T4).
    K,
    /// M: retransmitted 2xx of the INVITE are over (64 T1, RFC 6026).
    M,
    /// The backend sent nothing at all within `--failover-after-ms`: try the next one.
    NoAnswer,
}

/// What to do with a response or a timer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Send the request to the backend again.
    pub resend: bool,
    /// Send the ACK of the non-2xx final response just received (the same branch).
    pub ack: bool,
    /// Pass the response on to the server side (it decides what the client gets).
    pub pass_on: bool,
    /// The backend did not answer in time: B or F (no final answer: 408), or
    /// [`Timer::NoAnswer`] (no answer at all: fail over).
    pub timed_out: bool,
    /// Timer C: CANCEL the INVITE (its answer still comes through this transaction).
    pub cancel: bool,
    /// Timers to start, with their durations.
    pub start: ArrayVec<(Timer, u64), 3>,
    /// Timers to stop.
    pub stop: ArrayVec<Timer, 4>,
    /// The transaction is over: remove it (its timers with it).
    pub terminated: bool,
}

impl Step {
    /// With the response passed on to the server side.
    fn pass_on(self) -> Step {
        Step {
            pass_on: true,
            ..self
        }
    }

    /// The transaction ends, `timed_out` saying whether for want of an answer.
    fn ended(timed_out: bool) -> Step {
        Step {
            timed_out,
            terminated: true,
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
}

/// One client transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTransaction {
    kind: Kind,
    state: State,
    timers: Timers,
    /// Timer A's or E's next interval.
    interval_ns: u64,
    /// Whether anything came back yet.
    answered: bool,
}

impl ClientTransaction {
    /// A transaction for a request about to be sent, and the timers to start with it:
    /// A and B (INVITE) or E and F, and [`Timer::NoAnswer`] after `no_answer_ns` when the
    /// balancer fails over (`--failover-after-ms`).
    pub fn start(kind: Kind, timers: Timers, no_answer_ns: Option<u64>) -> (Self, Step) {
        let t1 = timers.t1_ns;
        let (state, first) = match kind {
            Kind::Invite => (
                State::Calling,
                Step::default().start(Timer::A, t1).start(Timer::B, 64 * t1),
            ),
            Kind::NonInvite => (
                State::Trying,
                Step::default()
                    .start(Timer::E, t1.min(timers.t2_ns))
                    .start(Timer::F, 64 * t1),
            ),
        };
        let first = match no_answer_ns {
            Some(after) => first.start(Timer::NoAnswer, after),
            None => first,
        };
        let transaction = ClientTransaction {
            kind,
            state,
            timers,
            interval_ns: t1,
            answered: false,
        };
        (transaction, first)
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// INVITE or not.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A response with `status` came from the backend.
    pub fn response(&mut self, status: u16) -> Step {
        let first_answer = !std::mem::replace(&mut self.answered, true);
        let mut step = Step::default();
        if first_answer {
            step = step.stop(Timer::NoAnswer);
        }
        match (self.kind, self.state, status) {
            (Kind::Invite, State::Calling, 100..=199) => {
                self.state = State::Proceeding;
                step.pass_on()
                    .stop(Timer::A)
                    .stop(Timer::B)
                    .start(Timer::C, TIMER_C_NS)
            }
            (Kind::Invite, State::Proceeding, 100..=199) => step.pass_on(),
            (Kind::Invite, State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                step.pass_on()
                    .stop(Timer::A)
                    .stop(Timer::B)
                    .stop(Timer::C)
                    .start(Timer::M, self.timers.linger_ns)
            }
            (Kind::Invite, State::Accepted, 200..=299) => step.pass_on(),
            (Kind::Invite, State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                Step { ack: true, ..step }
                    .pass_on()
                    .stop(Timer::A)
                    .stop(Timer::B)
                    .stop(Timer::C)
                    .start(Timer::D, self.timers.linger_ns)
            }
            // The final response again: our ACK was lost. ACK again, pass nothing on.
            (Kind::Invite, State::Completed, 300..=699) => Step { ack: true, ..step },
            (Kind::NonInvite, State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                step.pass_on()
            }
            (Kind::NonInvite, State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                step.pass_on()
                    .stop(Timer::E)
                    .stop(Timer::F)
                    .start(Timer::K, self.timers.non_invite_linger_ns())
            }
            // Anything else (a retransmitted final, a provisional after a final) is absorbed.
            _ => step,
        }
    }

    /// We CANCELed it (the client's CANCEL, a fork's loser): its final response gets 64×T1
    /// to come (timer B), then the branch is over.
    pub fn cancelled(&mut self) -> Step {
        match (self.kind, self.state) {
            (Kind::Invite, State::Proceeding) => {
                Step::default().start(Timer::B, 64 * self.timers.t1_ns)
            }
            _ => Step::default(),
        }
    }

    /// `timer` fired.
    pub fn timer(&mut self, timer: Timer) -> Step {
        let t2 = self.timers.t2_ns;
        match (self.state, timer) {
            (State::Calling, Timer::A) => {
                self.interval_ns *= 2;
                Step {
                    resend: true,
                    ..Step::default()
                }
                .start(Timer::A, self.interval_ns)
            }
            (State::Trying | State::Proceeding, Timer::E) => {
                self.interval_ns = if self.state == State::Proceeding {
                    t2
                } else {
                    (self.interval_ns * 2).min(t2)
                };
                Step {
                    resend: true,
                    ..Step::default()
                }
                .start(Timer::E, self.interval_ns)
            }
            (State::Calling, Timer::B) | (State::Trying | State::Proceeding, Timer::F) => {
                self.state = State::Terminated;
                Step::ended(true)
            }
            (State::Calling | State::Trying, Timer::NoAnswer) if !self.answered => {
                self.state = State::Terminated;
                Step::ended(true)
            }
            // Timer C: CANCEL it, and give the 487 64×T1 to come (§16.8: then the branch
            // is over, as if a 408 came), so that a backend that never answers cannot
            // hold the transaction forever.
            (State::Proceeding, Timer::C) if self.kind == Kind::Invite => Step {
                cancel: true,
                ..Step::default()
            }
            .start(Timer::B, 64 * self.timers.t1_ns),
            (State::Proceeding, Timer::B) if self.kind == Kind::Invite => {
                self.state = State::Terminated;
                Step::ended(true)
            }
            (State::Completed, Timer::D | Timer::K) | (State::Accepted, Timer::M) => {
                self.state = State::Terminated;
                Step::ended(false)
            }
            // A timer stopped too late to be cancelled: nothing.
            _ => Step::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::server::TEST_TIMERS as T;
    use super::*;

    #[test]
    fn an_invite_is_sent_again_until_answered_then_acked_when_rejected() {
        let (mut t, first) = ClientTransaction::start(Kind::Invite, T, Some(2_000));
        assert_eq!(
            first.start.to_vec(),
            [
                (Timer::A, 500),
                (Timer::B, 32_000),
                (Timer::NoAnswer, 2_000)
            ]
        );
        let intervals: Vec<u64> = (0..3)
            .map(|_| {
                let step = t.timer(Timer::A);
                assert!(step.resend);
                step.start[0].1
            })
            .collect();
        assert_eq!(intervals, [1_000, 2_000, 4_000]);
        let ringing = t.response(180);
        assert!(ringing.pass_on);
        assert_eq!(ringing.stop.to_vec(), [Timer::NoAnswer, Timer::A, Timer::B]);
        assert_eq!(t.state(), State::Proceeding);
        assert!(!t.timer(Timer::A).resend, "stopped A fired late: nothing");
        assert!(!t.timer(Timer::NoAnswer).timed_out, "it did answer");
        let busy = t.response(486);
        assert!(busy.pass_on && busy.ack);
        assert_eq!(t.state(), State::Completed);
        let again = t.response(486);
        assert!(again.ack && !again.pass_on, "ACKed again, not passed on");
        assert!(t.timer(Timer::D).terminated);
    }

    #[test]
    fn a_silent_backend_is_given_up_after_the_failover_time() {
        let (mut t, _) = ClientTransaction::start(Kind::Invite, T, Some(2_000));
        t.timer(Timer::A);
        let gave_up = t.timer(Timer::NoAnswer);
        assert!(gave_up.timed_out && gave_up.terminated);
        // Without failover: timer B, the 408 case.
        let (mut t, _) = ClientTransaction::start(Kind::Invite, T, None);
        let b = t.timer(Timer::B);
        assert!(b.timed_out && b.terminated);
    }

    #[test]
    fn an_accepted_invite_passes_every_2xx_on() {
        let (mut t, _) = ClientTransaction::start(Kind::Invite, T, None);
        let ok = t.response(200);
        assert!(
            ok.pass_on && !ok.ack,
            "the 2xx is ACKed end to end, not here"
        );
        assert_eq!(t.state(), State::Accepted);
        assert!(t.response(200).pass_on, "a retransmitted or forked 2xx");
        assert!(!t.response(180).pass_on);
        assert!(t.timer(Timer::M).terminated);
    }

    #[test]
    fn a_long_ringing_invite_is_cancelled_at_timer_c() {
        let (mut t, _) = ClientTransaction::start(Kind::Invite, T, None);
        let ringing = t.response(180);
        assert_eq!(ringing.start.to_vec(), [(Timer::C, TIMER_C_NS)]);
        let cancel = t.timer(Timer::C);
        assert!(cancel.cancel);
        assert_eq!(cancel.start.to_vec(), [(Timer::B, 32_000)]);
        assert!(t.response(487).ack);
        // A backend that never answers the CANCEL: over at timer B.
        let (mut mute, _) = ClientTransaction::start(Kind::Invite, T, None);
        mute.response(180);
        mute.timer(Timer::C);
        assert!(mute.timer(Timer::B).terminated);
    }

    #[test]
    fn a_non_invite_is_sent_again_at_t2_once_proceeding() {
        let (mut t, first) = ClientTransaction::start(Kind::NonInvite, T, None);
        assert_eq!(first.start.to_vec(), [(Timer::E, 500), (Timer::F, 32_000)]);
        let intervals: Vec<u64> = (0..4).map(|_| t.timer(Timer::E).start[0].1).collect();
        assert_eq!(intervals, [1_000, 2_000, 4_000, 4_000]);
        assert!(t.response(100).pass_on);
        let (mut p, _) = ClientTransaction::start(Kind::NonInvite, T, None);
        p.response(100);
        assert_eq!(p.timer(Timer::E).start[0].1, 4_000, "T2 once proceeding");
        let done = t.response(200);
        assert!(done.pass_on);
        assert_eq!(
            done.start.to_vec(),
            [(Timer::K, 500)],
            "T1: non_invite_linger_ns"
        );
        assert!(
            !t.response(200).pass_on,
            "a retransmitted final is absorbed"
        );
        assert!(t.timer(Timer::K).terminated);
        let (mut silent, _) = ClientTransaction::start(Kind::NonInvite, T, None);
        assert!(silent.timer(Timer::F).timed_out);
    }
}

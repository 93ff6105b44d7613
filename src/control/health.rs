//! Backend health from OPTIONS probes: the per-backend state machine, without I/O.
//!
//! A backend that answers nothing (timeout) or answers with a code the policy does not
//! accept (by default: any 5xx) fails a probe; `failures_to_down` failures in a row take it
//! out. Probing goes on while it is down; `successes_to_up` successes in a row bring it
//! back (the first of them moves it to `Probing`). An operator can disable a backend;
//! probes still run, so its state is known when it is enabled again.

use crate::config::ProbePolicy;
use std::time::Duration;

/// A backend's state; serialised (status API, `ctl`) and labelled (metrics, logs) as `up`,
/// `down`, `probing` or `admin-disabled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Takes new calls.
    Up,
    /// Failed its probes; takes no new calls.
    Down,
    /// Was down and has started answering; takes no new calls yet.
    Probing,
    /// Taken out by an operator.
    AdminDisabled,
}

impl State {
    /// Every state, in the order metrics list them.
    pub const ALL: [State; 4] = [State::Up, State::Down, State::Probing, State::AdminDisabled];

    /// The state's name in logs and metric labels (the same as its serialised form).
    pub fn label(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Probing => "probing",
            State::AdminDisabled => "admin-disabled",
        }
    }

    /// True if new calls may go to the backend.
    pub fn takes_calls(self) -> bool {
        self == State::Up
    }
}

/// One backend's probe history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    state: State,
    /// The state probes alone say (kept while admin-disabled).
    probed: State,
    failures: u32,
    successes: u32,
    last_rtt: Option<Duration>,
}

impl Default for Health {
    /// A configured backend starts up: traffic flows from the start, probes correct it.
    fn default() -> Self {
        Health {
            state: State::Up,
            probed: State::Up,
            failures: 0,
            successes: 0,
            last_rtt: None,
        }
    }
}

impl Health {
    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Round-trip time of the last answered probe.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// A probe was answered with `code` after `rtt`. Returns the new state if it changed.
    pub fn on_reply(&mut self, code: u16, rtt: Duration, policy: &ProbePolicy) -> Option<State> {
        self.last_rtt = Some(rtt);
        if policy.accept.accepts(code) {
            self.success(policy)
        } else {
            self.failure(policy)
        }
    }

    /// A probe went unanswered. Returns the new state if it changed.
    pub fn on_timeout(&mut self, policy: &ProbePolicy) -> Option<State> {
        self.failure(policy)
    }

    /// An operator disables the backend. Returns the new state if it changed.
    pub fn disable(&mut self) -> Option<State> {
        self.set(State::AdminDisabled)
    }

    /// An operator enables it again: it takes the state its probes say.
    pub fn enable(&mut self) -> Option<State> {
        if self.state == State::AdminDisabled {
            self.set(self.probed)
        } else {
            None
        }
    }

    fn success(&mut self, policy: &ProbePolicy) -> Option<State> {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        let next = match self.probed {
            State::Up => State::Up,
            _ if self.successes >= policy.successes_to_up.max(1) => State::Up,
            _ => State::Probing,
        };
        self.probe_says(next)
    }

    fn failure(&mut self, policy: &ProbePolicy) -> Option<State> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        let next = match self.probed {
            State::Up if self.failures < policy.failures_to_down.max(1) => State::Up,
            _ => State::Down,
        };
        self.probe_says(next)
    }

    fn probe_says(&mut self, next: State) -> Option<State> {
        self.probed = next;
        if self.state == State::AdminDisabled {
            return None;
        }
        self.set(next)
    }

    fn set(&mut self, next: State) -> Option<State> {
        (self.state != next).then(|| {
            self.state = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Accept;

    const RTT: Duration = Duration::from_millis(3);

    #[test]
    fn labels_are_the_serialised_names() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.label()));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
        }
        assert_eq!(State::AdminDisabled.label(), "admin-disabled");
    }

    #[test]
    fn goes_down_after_the_failure_threshold_and_back_after_the_success_threshold() {
        let policy = ProbePolicy::default();
        let mut h = Health::default();
        assert_eq!(h.state(), State::Up);
        assert_eq!(h.on_timeout(&policy), None);
        assert_eq!(h.on_reply(503, RTT, &policy), None);
        // A success in between resets the count.
        assert_eq!(h.on_reply(200, RTT, &policy), None);
        assert_eq!(h.on_timeout(&policy), None);
        assert_eq!(h.on_timeout(&policy), None);
        assert_eq!(h.on_timeout(&policy), Some(State::Down));
        assert!(!h.state().takes_calls());
        assert_eq!(h.on_timeout(&policy), None);
        assert_eq!(h.on_reply(200, RTT, &policy), Some(State::Probing));
        assert_eq!(h.on_reply(404, RTT, &policy), Some(State::Up));
        assert_eq!(h.last_rtt(), Some(RTT));
    }

    #[test]
    fn a_failure_while_probing_goes_back_down() {
        let policy = ProbePolicy::default();
        let mut h = Health::default();
        for _ in 0..3 {
            h.on_timeout(&policy);
        }
        assert_eq!(h.on_reply(200, RTT, &policy), Some(State::Probing));
        assert_eq!(h.on_reply(500, RTT, &policy), Some(State::Down));
    }

    #[test]
    fn accepted_codes() {
        assert!(Accept::AnyButServerError.accepts(200));
        assert!(Accept::AnyButServerError.accepts(404));
        assert!(!Accept::AnyButServerError.accepts(503));
        let only_ok = Accept::Codes(vec![200]);
        assert!(only_ok.accepts(200));
        assert!(!only_ok.accepts(404));
        let policy = ProbePolicy {
            accept: only_ok,
            failures_to_down: 1,
            ..ProbePolicy::default()
        };
        let mut h = Health::default();
        assert_eq!(h.on_reply(404, RTT, &policy), Some(State::Down));
    }

    #[test]
    fn admin_disable_hides_probe_changes_until_enabled() {
        let policy = ProbePolicy::default();
        let mut h = Health::default();
        assert_eq!(h.disable(), Some(State::AdminDisabled));
        for _ in 0..3 {
            assert_eq!(h.on_timeout(&policy), None);
        }
        assert_eq!(h.state(), State::AdminDisabled);
        assert_eq!(h.enable(), Some(State::Down));
        assert_eq!(h.enable(), None);
        h.on_reply(200, RTT, &policy);
        assert_eq!(h.on_reply(200, RTT, &policy), Some(State::Up));
    }

    #[test]
    fn thresholds_of_zero_act_as_one() {
        let policy = ProbePolicy {
            failures_to_down: 0,
            successes_to_up: 0,
            ..ProbePolicy::default()
        };
        let mut h = Health::default();
        assert_eq!(h.on_timeout(&policy), Some(State::Down));
        assert_eq!(h.on_reply(200, RTT, &policy), Some(State::Up));
    }
}

//! Health-probe settings: the policy a backend is probed with, and the probe options that
//! give it, global (`--probe-*` flags, `probe_*` keys) and per backend (`probe_*` keys of a
//! `[[backend]]` table, which override the global ones for it).

use super::error::{invalid, ConfigError, Origin};
use super::layer::{Layer, Located};
use std::time::Duration;

/// Longest probe interval: one hour.
pub const MAX_PROBE_INTERVAL_MS: i128 = 3_600_000;
/// Most consecutive results a threshold may ask for.
pub const MAX_PROBE_THRESHOLD: i128 = 100;

/// Which probe replies count as success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Any response except a 5xx (the server is there and not overloaded or failing).
    AnyButServerError,
    /// Exactly these status codes.
    Codes(Vec<u16>),
}

impl Accept {
    /// True if a reply with `code` is a successful probe.
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            Accept::AnyButServerError => !(500..=599).contains(&code),
            Accept::Codes(codes) => codes.contains(&code),
        }
    }
}

/// Probing settings (per backend or global).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Time between probes.
    pub interval: Duration,
    /// A probe unanswered this long fails.
    pub timeout: Duration,
    /// Consecutive failures that take a backend out.
    pub failures_to_down: u32,
    /// Consecutive successes that bring it back.
    pub successes_to_up: u32,
    /// Which replies are successes.
    pub accept: Accept,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failures_to_down: 3,
            successes_to_up: 2,
            accept: Accept::AnyButServerError,
        }
    }
}

/// How a probe key is named in messages: as itself (global) or under a backend.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Global,
    Backend(&'a str),
}

/// The policy the probe options of `layer` give on top of `base`.
pub(crate) fn resolve(
    layer: &Layer,
    base: &ProbePolicy,
    scope: Scope<'_>,
) -> Result<ProbePolicy, ConfigError> {
    let error = |key: &'static str, item_origin: &Origin, reason: String| match scope {
        Scope::Global => invalid(item_origin, key, None, reason),
        Scope::Backend(addr) => invalid(
            item_origin,
            "backend",
            Some(addr),
            format!("{key}: {reason}"),
        ),
    };
    let mut policy = base.clone();
    let timeout_ms: Option<Located<i128>> = layer.int("probe_timeout_ms");
    if let Some(i) = &layer.int("probe_interval_ms") {
        if !(0..=MAX_PROBE_INTERVAL_MS).contains(&i.value) {
            return Err(error(
                "probe_interval_ms",
                &i.origin,
                format!(
                    "{} is out of range (0..={MAX_PROBE_INTERVAL_MS}; 0 turns probing off)",
                    i.value
                ),
            ));
        }
        policy.interval = Duration::from_millis(i.value as u64);
    }
    if let Some(t) = &timeout_ms {
        if !(1..=MAX_PROBE_INTERVAL_MS).contains(&t.value) {
            return Err(error(
                "probe_timeout_ms",
                &t.origin,
                format!("{} is out of range (1..={MAX_PROBE_INTERVAL_MS})", t.value),
            ));
        }
        policy.timeout = Duration::from_millis(t.value as u64);
    }
    for (item, key, slot) in [
        (
            layer.int("probe_failures"),
            "probe_failures",
            &mut policy.failures_to_down,
        ),
        (
            layer.int("probe_successes"),
            "probe_successes",
            &mut policy.successes_to_up,
        ),
    ] {
        if let Some(n) = &item {
            if !(1..=MAX_PROBE_THRESHOLD).contains(&n.value) {
                return Err(error(
                    key,
                    &n.origin,
                    format!("{} is out of range (1..={MAX_PROBE_THRESHOLD})", n.value),
                ));
            }
            *slot = n.value as u32;
        }
    }
    if let Some(a) = &layer.text("probe_accept") {
        policy.accept =
            parse_accept(&a.value).map_err(|reason| error("probe_accept", &a.origin, reason))?;
    }
    if !policy.interval.is_zero() && policy.timeout > policy.interval {
        // A timeout not given here follows a shorter interval down.
        let Some(given) = &timeout_ms else {
            policy.timeout = policy.interval;
            return Ok(policy);
        };
        let origin = given.origin.clone();
        return Err(error(
            "probe_timeout_ms",
            &origin,
            format!(
                "{} ms is longer than the probe interval ({} ms): one probe per backend is \
                     in flight at a time",
                policy.timeout.as_millis(),
                policy.interval.as_millis()
            ),
        ));
    }
    Ok(policy)
}

/// `any` (every reply but a 5xx) or a comma-separated list of status codes (100..=699).
pub fn parse_accept(text: &str) -> Result<Accept, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("any") {
        return Ok(Accept::AnyButServerError);
    }
    let mut codes = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.parse::<u16>() {
            Ok(code) if (100..=699).contains(&code) => codes.push(code),
            _ => {
                return Err(format!(
                    "{part:?} is not a status code (expected `any` or codes 100..=699 separated \
                     by commas)"
                ))
            }
        }
    }
    Ok(Accept::Codes(codes))
}

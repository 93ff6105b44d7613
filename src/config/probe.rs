//! Health-probe settings: the policy a backend is probed with, and the probe options that
//! give it, global (`--probe-*` flags, `probe_*` keys) and per backend (`probe_*` keys of a
//! `[[backend]]` table, which override the global ones for it).

use super::error::{invalid, ConfigError, Origin};
use super::layer::{declared, Layer};
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
    /// The policy of the declared defaults of the probe options (`config::options`).
    fn default() -> Self {
        resolve(&super::options::defaults(), Scope::Global).unwrap_or_else(|e| {
            unreachable!("the declared probe defaults are valid (a unit test checks): {e}")
        })
    }
}

/// How a probe key is named in messages: as itself (global) or under a backend.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Global,
    Backend(&'a str),
}

/// The policy the probe options of `layer` give; `layer` holds the declared defaults under
/// what was given.
pub(crate) fn resolve(layer: &Layer, scope: Scope<'_>) -> Result<ProbePolicy, ConfigError> {
    let error = |key: &'static str, item_origin: &Origin, reason: String| match scope {
        Scope::Global => invalid(item_origin, key, None, reason),
        Scope::Backend(addr) => invalid(
            item_origin,
            "backend",
            Some(addr),
            format!("{key}: {reason}"),
        ),
    };
    let int = |key: &'static str, range: std::ops::RangeInclusive<i128>, note: &str| {
        let item = declared(layer.int(key), key)?;
        if !range.contains(&item.value) {
            return Err(error(
                key,
                &item.origin,
                format!(
                    "{} is out of range ({}..={}{note})",
                    item.value,
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(item)
    };
    let interval = int(
        "probe_interval_ms",
        0..=MAX_PROBE_INTERVAL_MS,
        "; 0 turns probing off",
    )?;
    let timeout = int("probe_timeout_ms", 1..=MAX_PROBE_INTERVAL_MS, "")?;
    let failures = int("probe_failures", 1..=MAX_PROBE_THRESHOLD, "")?;
    let successes = int("probe_successes", 1..=MAX_PROBE_THRESHOLD, "")?;
    let accept = declared(layer.text("probe_accept"), "probe_accept")?;
    // In range, so the conversions hold.
    let mut policy = ProbePolicy {
        interval: Duration::from_millis(interval.value as u64),
        timeout: Duration::from_millis(timeout.value as u64),
        failures_to_down: failures.value as u32,
        successes_to_up: successes.value as u32,
        accept: parse_accept(&accept.value)
            .map_err(|reason| error("probe_accept", &accept.origin, reason))?,
    };
    if !policy.interval.is_zero() && policy.timeout > policy.interval {
        // A timeout not given (the default) follows a shorter interval down.
        if timeout.origin == Origin::Default {
            policy.timeout = policy.interval;
            return Ok(policy);
        }
        return Err(error(
            "probe_timeout_ms",
            &timeout.origin,
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

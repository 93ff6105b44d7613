//! The health-probe options: global (`--probe-*` flags, `probe_*` keys) and per backend
//! (`probe_*` keys of a `[[backend]]` table, which override the global ones for it).

use super::{invalid, ConfigError, Located};
use crate::control::health::{Accept, ProbePolicy};
use std::time::Duration;

/// Longest probe interval: one hour.
pub const MAX_PROBE_INTERVAL_MS: i128 = 3_600_000;
/// Most consecutive results a threshold may ask for.
pub const MAX_PROBE_THRESHOLD: i128 = 100;

/// Probe options as given in one place (command line, file top level, or one backend).
#[derive(Clone, Debug, Default)]
pub(super) struct ProbeLayer {
    pub interval_ms: Option<Located<i128>>,
    pub timeout_ms: Option<Located<i128>>,
    pub failures: Option<Located<i128>>,
    pub successes: Option<Located<i128>>,
    /// `any`, or status codes separated by commas.
    pub accept: Option<Located<String>>,
}

/// How a probe key is named in messages: as itself (global) or under a backend.
#[derive(Clone, Copy)]
pub(super) enum Scope<'a> {
    Global,
    Backend(&'a str),
}

impl ProbeLayer {
    /// `over` wins wherever it gives a value.
    pub fn merge(self, over: ProbeLayer) -> ProbeLayer {
        ProbeLayer {
            interval_ms: over.interval_ms.or(self.interval_ms),
            timeout_ms: over.timeout_ms.or(self.timeout_ms),
            failures: over.failures.or(self.failures),
            successes: over.successes.or(self.successes),
            accept: over.accept.or(self.accept),
        }
    }

    /// The policy these options give on top of `base`.
    pub fn resolve(
        &self,
        base: &ProbePolicy,
        scope: Scope<'_>,
    ) -> Result<ProbePolicy, ConfigError> {
        let error = |key: &'static str, item_origin: &super::Origin, reason: String| match scope {
            Scope::Global => invalid(item_origin, key, None, reason),
            Scope::Backend(addr) => invalid(
                item_origin,
                "backend",
                Some(addr),
                format!("{key}: {reason}"),
            ),
        };
        let mut policy = base.clone();
        if let Some(i) = &self.interval_ms {
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
        if let Some(t) = &self.timeout_ms {
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
                &self.failures,
                "probe_failures",
                &mut policy.failures_to_down,
            ),
            (
                &self.successes,
                "probe_successes",
                &mut policy.successes_to_up,
            ),
        ] {
            if let Some(n) = item {
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
        if let Some(a) = &self.accept {
            policy.accept = parse_accept(&a.value)
                .map_err(|reason| error("probe_accept", &a.origin, reason))?;
        }
        if !policy.interval.is_zero() && policy.timeout > policy.interval {
            // A timeout not given here follows a shorter interval down.
            let Some(given) = &self.timeout_ms else {
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

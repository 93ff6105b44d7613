//! The options of the stateful mode (`--mode stateful`): checked here, used by the shards'
//! transaction layer.

use super::error::{invalid, ConfigError};
use super::layer::{declared, Layer};
use std::time::Duration;

/// Most backends a request is tried on (`--max-attempts`).
pub const MAX_ATTEMPTS: i128 = 4;
/// Most backends an INVITE is forked to (`--fork`).
pub const MAX_FORK: i128 = 4;
/// Most transactions per shard (`--max-transactions`).
pub const MAX_TRANSACTIONS: i128 = 1 << 20;

/// How the stateful mode behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulOptions {
    /// A backend that sent nothing within this long loses the request to the next one
    /// (zero: never; timers B and F end it instead).
    pub failover_after: Duration,
    /// Backends one request is tried on, the first included.
    pub max_attempts: u8,
    /// Final responses that move a request to the next backend (never a 6xx).
    pub failover_codes: Vec<u16>,
    /// Backends a dialog-creating INVITE goes to at once.
    pub fork: u8,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// Transactions per shard.
    pub max_transactions: usize,
}

/// `None` in stateless mode; the checked options in stateful mode. The stateful options
/// are checked in either mode, so a mistake shows before the mode is switched.
pub(crate) fn check(layer: &Layer) -> Result<Option<StatefulOptions>, ConfigError> {
    let int = |key: &'static str, range: std::ops::RangeInclusive<i128>| {
        let item = declared(layer.int(key), key)?;
        if !range.contains(&item.value) {
            return Err(invalid(
                &item.origin,
                key,
                Some(&item.value.to_string()),
                format!("expected {} to {}", range.start(), range.end()),
            ));
        }
        Ok(item.value)
    };
    let failover_after = int("failover_after_ms", 0..=600_000)?;
    let max_attempts = int("max_attempts", 1..=MAX_ATTEMPTS)?;
    let fork = int("fork", 1..=MAX_FORK)?;
    let t1 = int("t1_ms", 1..=60_000)?;
    let t2 = int("t2_ms", 1..=600_000)?;
    let max_transactions = int("max_transactions", 1..=MAX_TRANSACTIONS)?;
    if t2 < t1 {
        let item = declared(layer.int("t2_ms"), "t2_ms")?;
        return Err(invalid(
            &item.origin,
            "t2_ms",
            Some(&t2.to_string()),
            format!("T2 must not be shorter than T1 ({t1} ms)"),
        ));
    }
    let codes = declared(layer.text("failover_codes"), "failover_codes")?;
    let failover_codes = parse_failover_codes(&codes.value)
        .map_err(|why| invalid(&codes.origin, "failover_codes", Some(&codes.value), why))?;
    let mode = declared(layer.text("mode"), "mode")?;
    let stateful = match mode.value.trim().to_ascii_lowercase().as_str() {
        "stateless" => false,
        "stateful" => true,
        _ => {
            return Err(invalid(
                &mode.origin,
                "mode",
                Some(&mode.value),
                "expected stateless or stateful".to_string(),
            ))
        }
    };
    // In range, so the conversions hold.
    Ok(stateful.then(|| StatefulOptions {
        failover_after: Duration::from_millis(failover_after as u64),
        max_attempts: max_attempts as u8,
        failover_codes,
        fork: fork as u8,
        t1: Duration::from_millis(t1 as u64),
        t2: Duration::from_millis(t2 as u64),
        max_transactions: max_transactions as usize,
    }))
}

/// Status codes 300..=599 separated by commas (at most 8; `none` for no code at all).
pub fn parse_failover_codes(text: &str) -> Result<Vec<u16>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut codes = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.parse::<u16>() {
            Ok(code) if (300..=599).contains(&code) => codes.push(code),
            Ok(code) if (600..=699).contains(&code) => {
                return Err(format!(
                    "{code}: a 6xx is a global failure and never moves a request"
                ))
            }
            _ => {
                return Err(format!(
                    "{part:?} is not a status code (expected codes 300..=599 separated by \
                     commas, or `none`)"
                ))
            }
        }
    }
    if codes.len() > 8 {
        return Err("at most 8 codes".to_string());
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use crate::config::BalanceConfig;

    const BASE: &str = "listen = \"127.0.0.1\"\nworkers = 1\n[[backend]]\naddr = \"127.0.0.2\"\n";

    fn with(extra: &str) -> Result<BalanceConfig, String> {
        let text = format!("{extra}\n{BASE}");
        BalanceConfig::from_toml_str(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn stateless_by_default_and_stateful_with_its_defaults() {
        assert_eq!(with("").unwrap().stateful, None);
        let s = with("mode = \"stateful\"").unwrap().stateful.unwrap();
        assert_eq!(s.failover_after.as_millis(), 2000);
        assert_eq!((s.max_attempts, s.fork), (3, 1));
        assert_eq!(s.failover_codes, [503]);
        assert_eq!((s.t1.as_millis(), s.t2.as_millis()), (500, 4000));
        let s = with("mode = \"stateful\"\nfailover_codes = [500, 503]\nfork = 2")
            .unwrap()
            .stateful
            .unwrap();
        assert_eq!((s.failover_codes, s.fork), (vec![500, 503], 2));
    }

    #[test]
    fn bad_stateful_options_are_refused_by_name() {
        for (extra, names) in [
            ("mode = \"stately\"", "mode"),
            ("failover_codes = \"603\"", "failover_codes"),
            ("failover_codes = \"abc\"", "failover_codes"),
            ("fork = 9", "fork"),
            ("max_attempts = 0", "max_attempts"),
            ("t1_ms = 5000\nt2_ms = 100", "t2_ms"),
        ] {
            let error = with(extra).unwrap_err();
            assert!(error.contains(names), "{extra}: {error}");
        }
    }
}

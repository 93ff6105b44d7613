//! What a reload cannot apply: the restart-only options whose value changed, from the option
//! declarations.

use super::options::{Reload, OPTIONS};
use super::BalanceConfig;

/// The keys of the options a reload does not apply (they wait for a restart).
pub fn restart_only_keys() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|o| matches!(o.reload, Reload::AtRestart(_)))
        .map(|o| o.key)
}

/// The keys of the restart-only options that differ between `running` and `loaded`, in
/// declaration order.
pub fn restart_only_changes(running: &BalanceConfig, loaded: &BalanceConfig) -> Vec<&'static str> {
    OPTIONS
        .iter()
        .filter(|o| match o.reload {
            Reload::AtRestart(differs) => differs(running, loaded),
            Reload::Applies => false,
        })
        .map(|o| o.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> BalanceConfig {
        let text = format!(
            "listen = \"127.0.0.1:5060\"\nworkers = 1\n{extra}[[backend]]\naddr = \"127.0.0.2\"\n"
        );
        BalanceConfig::from_toml_str(&text).expect("valid")
    }

    #[test]
    fn names_each_changed_restart_only_option_and_nothing_else() {
        let running = config("");
        // Two random secrets are "no secret given" both times.
        assert_eq!(
            restart_only_changes(&running, &config("")),
            Vec::<&str>::new()
        );
        assert_eq!(
            restart_only_changes(&running, &config("retry_after = 9\nsecret = \"s\"\n")),
            ["secret", "retry_after"]
        );
        // Probe settings and backends apply at once.
        assert_eq!(
            restart_only_changes(&running, &config("probe_interval_ms = 50\n")),
            Vec::<&str>::new()
        );
    }
}

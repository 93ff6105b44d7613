//! Why a configuration was rejected, and where the offending value came from.

use std::path::{Path, PathBuf};

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The command line (the key is shown as its flag, `--key`).
    CommandLine,
    /// A config file; `path` is `None` for text given to [`super::BalanceConfig::from_toml_str`].
    File {
        /// The file.
        path: Option<PathBuf>,
        /// 1-based line of the value (of the `[[backend]]` header for a backend).
        line: usize,
    },
    /// Not given anywhere: a default, or a rule across several options.
    Default,
}

/// Why a configuration was rejected. Every message names the flag or key and the reason, e.g.
/// `--backend "10.0.0.1:99999": port out of range (1..=65535)`,
/// `--workers: 0 is not allowed (1..=2)`,
/// `config file /x.toml: line 3: unknown key "lissen" (expected one of ...)`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {}: {source}", .path.display())]
    Read {
        /// The file given with `--config`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML, has an unknown key, or has a table where a value
    /// belongs (or the reverse).
    #[error("{}{message}", file_prefix(.path.as_deref(), *.line))]
    Toml {
        /// The file (`None` for [`super::BalanceConfig::from_toml_str`]).
        path: Option<PathBuf>,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A value is missing, malformed, out of range or conflicts with another.
    #[error("{}: {reason}", subject(.origin, .key, .value.as_deref()))]
    Invalid {
        /// Where the offending value came from.
        origin: Origin,
        /// The TOML key (`retry_after`); shown as the flag (`--retry-after`) for command-line
        /// values.
        key: &'static str,
        /// The offending entry of a list (an address), when naming it helps.
        value: Option<String>,
        /// Why it is rejected.
        reason: String,
    },
    /// No secret was configured and no random one could be read from `/dev/urandom`.
    #[error(
        "secret: none given, and reading {} random bytes from /dev/urandom failed: {source}",
        super::secret::RANDOM_SECRET_LEN
    )]
    Random {
        /// The I/O error.
        source: std::io::Error,
    },
}

fn file_prefix(path: Option<&Path>, line: Option<usize>) -> String {
    let mut out = match path {
        Some(path) => format!("config file {}: ", path.display()),
        None => "config: ".to_string(),
    };
    if let Some(line) = line {
        out.push_str(&format!("line {line}: "));
    }
    out
}

fn subject(origin: &Origin, key: &str, value: Option<&str>) -> String {
    let mut out = match origin {
        Origin::CommandLine => format!("--{}", key.replace('_', "-")),
        Origin::File { path, line } => {
            format!("{}{key}", file_prefix(path.as_deref(), Some(*line)))
        }
        Origin::Default => key.to_string(),
    };
    if let Some(value) = value {
        out.push_str(&format!(" {value:?}"));
    }
    out
}

pub(crate) fn invalid(
    origin: &Origin,
    key: &'static str,
    value: Option<&str>,
    reason: String,
) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.clone(),
        key,
        value: value.map(str::to_string),
        reason,
    }
}

/// A value of the wrong type: "expected EXPECTED, found TYPE[TAIL]" (`found` is a TOML type
/// name such as `string`).
pub(crate) fn wrong_type(
    origin: &Origin,
    key: &'static str,
    expected: &str,
    tail: &str,
    found: &str,
) -> ConfigError {
    let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    invalid(
        origin,
        key,
        None,
        format!("expected {expected}, found {article} {found}{tail}"),
    )
}

//! Balancer configuration: command line and TOML file into one validated config.
//!
//! Two layers feed one [`BalanceConfig`]: an optional TOML file (`--config FILE`) and the
//! command line ([`BalanceArgs`]). Both are first read into the same raw form, each value
//! remembering where it came from; the command line then replaces the file value by value
//! (a list given on the command line replaces the file's list), and one validation pass turns
//! the result into typed values. Every error names the flag or key, the file and line when the
//! value came from a file, and the reason (see [`ConfigError`]).
//!
//! Addresses are IP literals only (no DNS): `1.2.3.4:5060`, `[2001:db8::1]:5060`, or without a
//! port (`1.2.3.4`, `[2001:db8::1]`, `2001:db8::1`), which then defaults to 5060.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

mod probe;

use crate::control::health::ProbePolicy;
use crate::net::Steering;
pub use probe::parse_accept;
use probe::ProbeLayer;
use serde::Deserialize;
use std::time::Duration;
use toml::{Spanned, Value};

/// The SIP port used when an address gives none.
pub const DEFAULT_PORT: u16 = 5060;
/// Default `Retry-After` seconds in the 503 sent when no backend is up.
pub const DEFAULT_RETRY_AFTER: u32 = 5;
/// Default Maglev table size (a prime).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// Largest accepted Maglev table size (bounds the memory of one table).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;
/// Largest accepted backend weight.
pub const MAX_WEIGHT: u32 = 1000;
/// Length of the random secret drawn when none is configured.
pub const RANDOM_SECRET_LEN: usize = 32;

/// `sipshard balance` arguments.
///
/// Every option can also be set in the TOML file given with `--config`; a value given here
/// replaces the file's (a repeated flag replaces the file's whole list).
#[derive(clap::Args, Clone, Default)]
pub struct BalanceArgs {
    /// Public address(es) to listen on (repeatable): IPv4 `1.2.3.4:5060`, IPv6 `[::1]:5060`;
    /// port defaults to 5060 if omitted.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Backend `ADDR[;weight=W]` (repeatable). Port defaults to 5060. Weight default 1, 0 =
    /// drained.
    #[arg(long = "backend", value_name = "ADDR[;weight=W]")]
    pub backend: Vec<String>,
    /// `IP[:BASEPORT]`: address of the internal sockets toward the backends; shard k binds
    /// BASEPORT+k, ephemeral ports when no port is given.
    #[arg(long, value_name = "IP[:BASEPORT]")]
    pub internal: Option<String>,
    /// Worker cores (default: every online core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Secret keying the stateless branches (instances of one deployment must share it).
    #[arg(long, value_name = "S")]
    pub secret: Option<String>,
    /// TOML config file; command-line values override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address put in our Via for requests that arrive from backends (default: the first
    /// listen IP, which then must not be unspecified).
    #[arg(long, value_name = "IP")]
    pub advertise: Option<IpAddr>,
    /// Retry-After seconds in a 503 when no backend is up (default 5).
    #[arg(long, value_name = "SECONDS")]
    pub retry_after: Option<u32>,
    /// Maglev table size, prime (default 65537).
    #[arg(long, value_name = "PRIME")]
    pub table_size: Option<u32>,
    /// Serve Prometheus metrics over HTTP at `ADDR` (`GET /metrics`).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Serve the control API over HTTP at `ADDR` (`sipshard ctl`: status, reload,
    /// enable/disable a backend).
    #[arg(long, value_name = "ADDR")]
    pub control: Option<String>,
    /// Log level: error, warn, info (default), debug, trace; or a `tracing` filter directive.
    /// The SIPSHARD_LOG environment variable, when set, wins.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: text (default) or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Measure each datagram's residence time (kernel receive timestamp to the end of its
    /// send) into a histogram per shard: `on` or `off` (default; on costs about 4% more CPU
    /// per datagram, the kernel's timestamp and its copy to the shard).
    #[arg(long, value_name = "on|off")]
    pub residence_time: Option<String>,
    /// How datagrams to a public address are spread over the shards: `random` (default;
    /// any shard takes any datagram, so one busy peer spreads over every core) or `flow`
    /// (the kernel's hash of addresses and ports: each peer sticks to one shard).
    #[arg(long, value_name = "random|flow")]
    pub steering: Option<String>,
    /// Microseconds an idle shard keeps polling its sockets without blocking before it
    /// parks (default 0: it parks at once). Trades CPU for latency: no wake-up delay for a
    /// datagram that arrives within the window.
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<u64>,
    /// Milliseconds between two OPTIONS probes of a backend (default 1000; 0 = no probes,
    /// the backend is always up).
    #[arg(long, value_name = "MS")]
    pub probe_interval_ms: Option<u64>,
    /// A probe unanswered after this many milliseconds fails (default 500, or the interval
    /// when that is shorter).
    #[arg(long, value_name = "MS")]
    pub probe_timeout_ms: Option<u64>,
    /// Consecutive failed probes that take a backend down (default 3).
    #[arg(long, value_name = "N")]
    pub probe_failures: Option<u32>,
    /// Consecutive good probes that bring it back up (default 2).
    #[arg(long, value_name = "N")]
    pub probe_successes: Option<u32>,
    /// Probe replies that count as success: `any` (every reply but a 5xx, the default) or
    /// status codes separated by commas (`200,404`).
    #[arg(long, value_name = "any|CODES")]
    pub probe_accept: Option<String>,
}

impl fmt::Debug for BalanceArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceArgs")
            .field("listen", &self.listen)
            .field("backend", &self.backend)
            .field("internal", &self.internal)
            .field("workers", &self.workers)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("config", &self.config)
            .field("advertise", &self.advertise)
            .field("retry_after", &self.retry_after)
            .field("table_size", &self.table_size)
            .field("metrics", &self.metrics)
            .field("control", &self.control)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("residence_time", &self.residence_time)
            .field("steering", &self.steering)
            .field("busy_poll_us", &self.busy_poll_us)
            .field("probe_interval_ms", &self.probe_interval_ms)
            .field("probe_timeout_ms", &self.probe_timeout_ms)
            .field("probe_failures", &self.probe_failures)
            .field("probe_successes", &self.probe_successes)
            .field("probe_accept", &self.probe_accept)
            .finish()
    }
}

/// One backend: where to send, and its share of the calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BackendSpec {
    /// The backend's SIP address (UDP).
    pub addr: SocketAddr,
    /// Relative share of calls, `0..=1000`; 0 means drained (receives no new calls).
    pub weight: u32,
}

/// The validated configuration of `sipshard balance`.
#[derive(Clone, PartialEq, Eq)]
pub struct BalanceConfig {
    /// Public addresses (at least one, no duplicates).
    pub listen: Vec<SocketAddr>,
    /// Backends (at least one, no duplicate address, at least one with weight > 0).
    pub backends: Vec<BackendSpec>,
    /// IP of the internal sockets toward the backends; a concrete address (it goes in our Via).
    pub internal_ip: IpAddr,
    /// `Some(p)`: shard k binds port `p + k`; `None`: ephemeral ports.
    pub internal_base_port: Option<u16>,
    /// Address put in our Via for requests that arrive from backends; concrete.
    pub advertise: IpAddr,
    /// Worker shards, one per core: `1..=` the cores this process may run on.
    pub workers: usize,
    /// Secret keying the stateless branches (never empty).
    pub secret: Vec<u8>,
    /// True when `secret` was drawn at random because none was configured.
    pub secret_is_random: bool,
    /// Retry-After seconds in the 503 sent when no backend is up.
    pub retry_after: u32,
    /// Maglev table size: prime, at least the number of backends.
    pub table_size: u32,
    /// Probe policy of each backend, aligned with `backends`.
    pub probes: Vec<ProbePolicy>,
    /// Where to serve Prometheus metrics.
    pub metrics: Option<SocketAddr>,
    /// Where to serve the control API.
    pub control: Option<SocketAddr>,
    /// Log filter directive (`info`, `sipshard=debug`, ...).
    pub log_level: String,
    /// Logs as JSON lines instead of text.
    pub log_json: bool,
    /// Measure residence times (kernel receive timestamps).
    pub residence_time: bool,
    /// How datagrams to a public address are spread over the shards.
    pub steering: Steering,
    /// How long an idle shard polls without blocking before it parks.
    pub busy_poll: Duration,
}

impl fmt::Debug for BalanceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted(usize);
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "<{} bytes redacted>", self.0)
            }
        }
        f.debug_struct("BalanceConfig")
            .field("listen", &self.listen)
            .field("backends", &self.backends)
            .field("internal_ip", &self.internal_ip)
            .field("internal_base_port", &self.internal_base_port)
            .field("advertise", &self.advertise)
            .field("workers", &self.workers)
            .field("secret", &Redacted(self.secret.len()))
            .field("secret_is_random", &self.secret_is_random)
            .field("retry_after", &self.retry_after)
            .field("table_size", &self.table_size)
            .field("probes", &self.probes)
            .field("metrics", &self.metrics)
            .field("control", &self.control)
            .field("log_level", &self.log_level)
            .field("log_json", &self.log_json)
            .field("residence_time", &self.residence_time)
            .field("steering", &self.steering)
            .field("busy_poll", &self.busy_poll)
            .finish()
    }
}

impl BalanceConfig {
    /// Merges the TOML file (if `--config`) with the command line (command line wins, lists
    /// replace lists), validates.
    pub fn from_args(args: &BalanceArgs) -> Result<BalanceConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Layer::from_toml(&text, Some(path))?
            }
            None => Layer::default(),
        };
        file.merge(Layer::from_args(args)).validate(online_cores())
    }

    /// Parses and validates a TOML document on its own (for tests and reload); errors give
    /// the line but no file name.
    pub fn from_toml_str(text: &str) -> Result<BalanceConfig, ConfigError> {
        Layer::from_toml(text, None)?.validate(online_cores())
    }
}

/// The number of cores this process may run on (`std::thread::available_parallelism`,
/// which honours the CPU affinity mask and cgroup quota); 1 when it cannot be determined.
/// `workers` may not exceed it.
pub fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The command line (the key is shown as its flag, `--key`).
    CommandLine,
    /// A config file; `path` is `None` for text given to [`BalanceConfig::from_toml_str`].
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
        /// The file (`None` for [`BalanceConfig::from_toml_str`]).
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
    #[error("secret: none given, and reading {RANDOM_SECRET_LEN} random bytes from /dev/urandom failed: {source}")]
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

// ---------------------------------------------------------------------------------------------
// The raw layer: values as given, each with its origin.

#[derive(Clone, Debug)]
pub(crate) struct Located<T> {
    value: T,
    origin: Origin,
}

#[derive(Clone, Debug)]
struct RawBackend {
    /// `ADDR` (file) or `ADDR[;weight=W]` (command line).
    spec: Located<String>,
    /// The file's `weight` key.
    weight: Option<Located<i64>>,
    /// The file's `probe_*` keys of this backend.
    probe: ProbeLayer,
}

/// A backend that passed its own checks, with the text it was given as (for later messages).
struct CheckedBackend {
    spec: BackendSpec,
    given: Located<String>,
    probe: ProbeLayer,
}

/// One source of configuration; `None` means "not given here".
#[derive(Clone, Debug, Default)]
struct Layer {
    listen: Option<Located<Vec<Located<String>>>>,
    backend: Option<Located<Vec<RawBackend>>>,
    internal: Option<Located<String>>,
    advertise: Option<Located<String>>,
    workers: Option<Located<i128>>,
    secret: Option<Located<String>>,
    retry_after: Option<Located<i128>>,
    table_size: Option<Located<i128>>,
    metrics: Option<Located<String>>,
    control: Option<Located<String>>,
    log_level: Option<Located<String>>,
    log_format: Option<Located<String>>,
    residence_time: Option<Located<String>>,
    steering: Option<Located<String>>,
    busy_poll_us: Option<Located<i128>>,
    probe: ProbeLayer,
}

/// The TOML file as deserialized: every key of [`BalanceArgs`] except `config`. Scalars are
/// kept as [`Value`] so that a wrong type is reported with its key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<Value>>,
    backend: Option<Spanned<Vec<Spanned<FileBackend>>>>,
    internal: Option<Spanned<Value>>,
    advertise: Option<Spanned<Value>>,
    workers: Option<Spanned<Value>>,
    secret: Option<Spanned<Value>>,
    retry_after: Option<Spanned<Value>>,
    table_size: Option<Spanned<Value>>,
    metrics: Option<Spanned<Value>>,
    control: Option<Spanned<Value>>,
    log_level: Option<Spanned<Value>>,
    log_format: Option<Spanned<Value>>,
    residence_time: Option<Spanned<Value>>,
    steering: Option<Spanned<Value>>,
    busy_poll_us: Option<Spanned<Value>>,
    probe_interval_ms: Option<Spanned<Value>>,
    probe_timeout_ms: Option<Spanned<Value>>,
    probe_failures: Option<Spanned<Value>>,
    probe_successes: Option<Spanned<Value>>,
    probe_accept: Option<Spanned<Value>>,
}

/// The top-level keys of the file.
const FILE_KEYS: [&str; 20] = [
    "listen",
    "backend",
    "internal",
    "advertise",
    "workers",
    "secret",
    "retry_after",
    "table_size",
    "metrics",
    "control",
    "log_level",
    "log_format",
    "residence_time",
    "steering",
    "busy_poll_us",
    "probe_interval_ms",
    "probe_timeout_ms",
    "probe_failures",
    "probe_successes",
    "probe_accept",
];
/// The keys of a `[[backend]]` table.
const BACKEND_KEYS: [&str; 7] = [
    "addr",
    "weight",
    "probe_interval_ms",
    "probe_timeout_ms",
    "probe_failures",
    "probe_successes",
    "probe_accept",
];

/// One `[[backend]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    addr: Option<Spanned<Value>>,
    weight: Option<Spanned<Value>>,
    probe_interval_ms: Option<Spanned<Value>>,
    probe_timeout_ms: Option<Spanned<Value>>,
    probe_failures: Option<Spanned<Value>>,
    probe_successes: Option<Spanned<Value>>,
    probe_accept: Option<Spanned<Value>>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// An article and the TOML type name of a value, for messages.
fn type_name(value: &Value) -> String {
    let name = value.type_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// Turns a TOML or serde error into a [`ConfigError::Toml`] with a line and a message that
/// names the key.
fn toml_error(err: &toml::de::Error, text: &str, path: Option<&Path>) -> ConfigError {
    let span = err.span();
    let line = span.as_ref().map(|s| line_of(text, s.start));
    let raw = err.message().trim();
    let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
        // serde's wording: "unknown field `NAME`, expected ...".
        match rest.split_once('`') {
            Some((name, tail)) => {
                let tail = tail.trim_start_matches(',').trim();
                if tail.is_empty() {
                    format!("unknown key {name:?}")
                } else {
                    format!("unknown key {name:?} ({tail})")
                }
            }
            None => raw.to_string(),
        }
    } else {
        // Name the key when the line shows one of ours: `key = ...` or a `[key]` header.
        // Nothing else of the line is quoted: it could be part of the secret.
        let context = span.and_then(|s| {
            let start = s.start.min(text.len());
            let line_start = text.as_bytes()[..start]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let line_end = text.as_bytes()[line_start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| line_start + i);
            let line_text = text.get(line_start..line_end)?.trim();
            let (key, header) = if line_text.starts_with('[') {
                let name = line_text.split(']').next()?.trim_start_matches('[').trim();
                (name, true)
            } else {
                (line_text.split_once('=')?.0.trim(), false)
            };
            let key = key.trim_matches(|c| c == '"' || c == '\'');
            let known = FILE_KEYS.contains(&key) || BACKEND_KEYS.contains(&key);
            match (known, header) {
                (false, _) => None,
                (true, true) if line_text.starts_with("[[") => Some(format!("[[{key}]]")),
                (true, true) => Some(format!("[{key}]")),
                (true, false) => Some(key.to_string()),
            }
        });
        match context {
            Some(context)
                if raw.starts_with("invalid type: map, expected a sequence")
                    && context.starts_with('[')
                    && !context.starts_with("[[") =>
            {
                format!("{context}: this key holds a list of tables; write [{context}]")
            }
            Some(context) => format!("{context}: {raw}"),
            None => raw.to_string(),
        }
    };
    // Our private type names mean nothing to a user.
    let message = message.replace(
        "struct FileBackend",
        "a table with `addr` and an optional `weight`",
    );
    ConfigError::Toml {
        path: path.map(Path::to_path_buf),
        line,
        message,
    }
}

impl Layer {
    /// The command line as a layer; empty lists and absent options are "not given".
    fn from_args(args: &BalanceArgs) -> Layer {
        let cli = |value: String| Located {
            value,
            origin: Origin::CommandLine,
        };
        let int = |value: i128| Located {
            value,
            origin: Origin::CommandLine,
        };
        Layer {
            listen: (!args.listen.is_empty()).then(|| Located {
                value: args.listen.iter().cloned().map(cli).collect(),
                origin: Origin::CommandLine,
            }),
            backend: (!args.backend.is_empty()).then(|| Located {
                value: args
                    .backend
                    .iter()
                    .map(|spec| RawBackend {
                        spec: cli(spec.clone()),
                        weight: None,
                        probe: ProbeLayer::default(),
                    })
                    .collect(),
                origin: Origin::CommandLine,
            }),
            internal: args.internal.clone().map(cli),
            advertise: args.advertise.map(|ip| cli(ip.to_string())),
            workers: args.workers.map(|n| int(n as i128)),
            secret: args.secret.clone().map(cli),
            retry_after: args.retry_after.map(|n| int(i128::from(n))),
            table_size: args.table_size.map(|n| int(i128::from(n))),
            metrics: args.metrics.clone().map(cli),
            control: args.control.clone().map(cli),
            log_level: args.log_level.clone().map(cli),
            log_format: args.log_format.clone().map(cli),
            residence_time: args.residence_time.clone().map(cli),
            steering: args.steering.clone().map(cli),
            busy_poll_us: args.busy_poll_us.map(|n| int(i128::from(n))),
            probe: ProbeLayer {
                interval_ms: args.probe_interval_ms.map(|n| int(i128::from(n))),
                timeout_ms: args.probe_timeout_ms.map(|n| int(i128::from(n))),
                failures: args.probe_failures.map(|n| int(i128::from(n))),
                successes: args.probe_successes.map(|n| int(i128::from(n))),
                accept: args.probe_accept.clone().map(cli),
            },
        }
    }

    /// A TOML document as a layer: syntax, unknown keys and value types are checked here.
    fn from_toml(text: &str, path: Option<&Path>) -> Result<Layer, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| toml_error(&e, text, path))?;
        let origin = |span: std::ops::Range<usize>| Origin::File {
            path: path.map(Path::to_path_buf),
            line: line_of(text, span.start),
        };
        let string = |key: &'static str, item: Spanned<Value>| {
            let origin = origin(item.span());
            match item.into_inner() {
                Value::String(value) => Ok(Located { value, origin }),
                other => Err(wrong_type(&origin, key, "a string", "", &other)),
            }
        };
        let integer = |key: &'static str, item: Spanned<Value>| {
            let origin = origin(item.span());
            match item.into_inner() {
                Value::Integer(value) => Ok(Located { value, origin }),
                other => Err(wrong_type(&origin, key, "an integer", "", &other)),
            }
        };
        // A switch: true/false, or "on"/"off" as on the command line.
        let switch = |key: &'static str, item: Spanned<Value>| {
            let origin = origin(item.span());
            match item.into_inner() {
                Value::String(value) => Ok(Located { value, origin }),
                Value::Boolean(on) => Ok(Located {
                    value: if on { "on" } else { "off" }.to_string(),
                    origin,
                }),
                other => Err(wrong_type(
                    &origin,
                    key,
                    "true, false, \"on\" or \"off\"",
                    "",
                    &other,
                )),
            }
        };
        let wide = |located: Located<i64>| Located {
            value: i128::from(located.value),
            origin: located.origin,
        };
        // `probe_accept`: "any", one code, or a list of codes; kept as the text the command
        // line would give, so both are checked alike.
        let accept = |key: &'static str, item: Spanned<Value>| {
            let origin = origin(item.span());
            let text = match item.into_inner() {
                Value::String(s) => s,
                Value::Integer(code) => code.to_string(),
                Value::Array(items) => {
                    let mut codes = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::Integer(code) => codes.push(code.to_string()),
                            other => {
                                return Err(wrong_type(
                                    &origin,
                                    key,
                                    "a list of status codes",
                                    " in the list",
                                    &other,
                                ))
                            }
                        }
                    }
                    codes.join(",")
                }
                other => {
                    return Err(wrong_type(
                        &origin,
                        key,
                        "\"any\" or a list of status codes",
                        "",
                        &other,
                    ))
                }
            };
            Ok(Located {
                value: text,
                origin,
            })
        };
        // The probe keys of the top level (`in_backend` false) or of one `[[backend]]`
        // (whose errors name the backend key).
        let probe_layer = |values: [Option<Spanned<Value>>; 5], in_backend: bool| {
            let [interval, timeout, failures, successes, accepted] = values;
            let key = |own: &'static str| if in_backend { "backend" } else { own };
            let int = |own, v: Option<Spanned<Value>>| {
                v.map(|v| integer(key(own), v))
                    .transpose()
                    .map(|v| v.map(wide))
            };
            Ok::<_, ConfigError>(ProbeLayer {
                interval_ms: int("probe_interval_ms", interval)?,
                timeout_ms: int("probe_timeout_ms", timeout)?,
                failures: int("probe_failures", failures)?,
                successes: int("probe_successes", successes)?,
                accept: accepted
                    .map(|v| accept(key("probe_accept"), v))
                    .transpose()?,
            })
        };

        let listen = match file.listen {
            None => None,
            Some(item) => {
                let list_origin = origin(item.span());
                let values = match item.into_inner() {
                    // One address may be given as a plain string.
                    Value::String(one) => vec![one],
                    Value::Array(items) => {
                        let mut values = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                Value::String(s) => values.push(s),
                                other => {
                                    return Err(wrong_type(
                                        &list_origin,
                                        "listen",
                                        "a list of address strings",
                                        " in the list",
                                        &other,
                                    ))
                                }
                            }
                        }
                        values
                    }
                    other => {
                        return Err(wrong_type(
                            &list_origin,
                            "listen",
                            "a list of address strings",
                            "",
                            &other,
                        ))
                    }
                };
                Some(Located {
                    value: values
                        .into_iter()
                        .map(|value| Located {
                            value,
                            origin: list_origin.clone(),
                        })
                        .collect(),
                    origin: list_origin,
                })
            }
        };

        let backend = match file.backend {
            None => None,
            Some(list) => {
                let list_origin = origin(list.span());
                let mut backends = Vec::new();
                for table in list.into_inner() {
                    let table_origin = origin(table.span());
                    let table = table.into_inner();
                    let Some(addr) = table.addr else {
                        return Err(invalid(
                            &table_origin,
                            "backend",
                            None,
                            "missing key \"addr\"".to_string(),
                        ));
                    };
                    let spec = string("backend", addr)?;
                    let weight = table.weight.map(|w| integer("backend", w)).transpose()?;
                    let probe = probe_layer(
                        [
                            table.probe_interval_ms,
                            table.probe_timeout_ms,
                            table.probe_failures,
                            table.probe_successes,
                            table.probe_accept,
                        ],
                        true,
                    )?;
                    backends.push(RawBackend {
                        spec,
                        weight,
                        probe,
                    });
                }
                Some(Located {
                    value: backends,
                    origin: list_origin,
                })
            }
        };

        Ok(Layer {
            listen,
            backend,
            internal: file.internal.map(|v| string("internal", v)).transpose()?,
            advertise: file.advertise.map(|v| string("advertise", v)).transpose()?,
            workers: file
                .workers
                .map(|v| integer("workers", v))
                .transpose()?
                .map(wide),
            secret: file.secret.map(|v| string("secret", v)).transpose()?,
            retry_after: file
                .retry_after
                .map(|v| integer("retry_after", v))
                .transpose()?
                .map(wide),
            table_size: file
                .table_size
                .map(|v| integer("table_size", v))
                .transpose()?
                .map(wide),
            metrics: file.metrics.map(|v| string("metrics", v)).transpose()?,
            control: file.control.map(|v| string("control", v)).transpose()?,
            log_level: file.log_level.map(|v| string("log_level", v)).transpose()?,
            log_format: file
                .log_format
                .map(|v| string("log_format", v))
                .transpose()?,
            residence_time: file
                .residence_time
                .map(|v| switch("residence_time", v))
                .transpose()?,
            steering: file.steering.map(|v| string("steering", v)).transpose()?,
            busy_poll_us: file
                .busy_poll_us
                .map(|v| integer("busy_poll_us", v))
                .transpose()?
                .map(wide),
            probe: probe_layer(
                [
                    file.probe_interval_ms,
                    file.probe_timeout_ms,
                    file.probe_failures,
                    file.probe_successes,
                    file.probe_accept,
                ],
                false,
            )?,
        })
    }

    /// `over` wins wherever it gives a value; a list replaces a list.
    fn merge(self, over: Layer) -> Layer {
        Layer {
            listen: over.listen.or(self.listen),
            backend: over.backend.or(self.backend),
            internal: over.internal.or(self.internal),
            advertise: over.advertise.or(self.advertise),
            workers: over.workers.or(self.workers),
            secret: over.secret.or(self.secret),
            retry_after: over.retry_after.or(self.retry_after),
            table_size: over.table_size.or(self.table_size),
            metrics: over.metrics.or(self.metrics),
            control: over.control.or(self.control),
            log_level: over.log_level.or(self.log_level),
            log_format: over.log_format.or(self.log_format),
            residence_time: over.residence_time.or(self.residence_time),
            steering: over.steering.or(self.steering),
            busy_poll_us: over.busy_poll_us.or(self.busy_poll_us),
            probe: self.probe.merge(over.probe),
        }
    }

    /// Checks every value and every rule across values; `online` is the core count.
    fn validate(self, online: usize) -> Result<BalanceConfig, ConfigError> {
        let listen = check_listen(self.listen)?;
        let backend_list = check_backends(self.backend, &listen)?;
        let backends: Vec<BackendSpec> = backend_list.iter().map(|b| b.spec).collect();
        let workers = check_workers(self.workers.as_ref(), online)?;
        let table_size = check_table_size(self.table_size.as_ref(), backends.len())?;
        let retry_after = check_retry_after(self.retry_after.as_ref())?;
        let (internal_ip, internal_base_port) =
            check_internal(self.internal.as_ref(), &listen, workers)?;
        check_families(&backend_list, internal_ip)?;
        let advertise = check_advertise(self.advertise.as_ref(), &listen)?;
        // The global probe options are checked alone first, so their errors name them.
        self.probe
            .resolve(&ProbePolicy::default(), probe::Scope::Global)?;
        let probes = backend_list
            .iter()
            .map(|b| {
                // On the global *options* (not the resolved policy), so a default timeout
                // follows this backend's own interval.
                self.probe.clone().merge(b.probe.clone()).resolve(
                    &ProbePolicy::default(),
                    probe::Scope::Backend(&b.given.value),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = check_service_addr(self.metrics.as_ref(), "metrics")?;
        let control = check_service_addr(self.control.as_ref(), "control")?;
        if let (Some(m), Some(c), Some(given)) = (metrics, control, self.control.as_ref()) {
            if m == c {
                return Err(invalid(
                    &given.origin,
                    "control",
                    Some(&given.value),
                    format!("{c} is also the metrics address; give them different ports"),
                ));
            }
        }
        let log_level = check_log_level(self.log_level.as_ref())?;
        let log_json = check_choice(
            self.log_format.as_ref(),
            "log_format",
            &[("text", false), ("json", true)],
            false,
        )?;
        let residence_time = check_choice(
            self.residence_time.as_ref(),
            "residence_time",
            &[("on", true), ("off", false)],
            false,
        )?;
        let steering = check_choice(
            self.steering.as_ref(),
            "steering",
            &[("random", Steering::Random), ("flow", Steering::Flow)],
            Steering::default(),
        )?;
        let busy_poll = check_busy_poll(self.busy_poll_us.as_ref())?;
        // Last: the random secret costs a read.
        let (secret, secret_is_random) = check_secret(self.secret.as_ref())?;
        Ok(BalanceConfig {
            listen,
            backends,
            internal_ip,
            internal_base_port,
            advertise,
            workers,
            secret,
            secret_is_random,
            retry_after,
            table_size,
            probes,
            metrics,
            control,
            log_level,
            log_json,
            residence_time,
            steering,
            busy_poll,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// One check per option, in the order `validate` runs them.

/// A value of the wrong type: "expected EXPECTED, found TYPE[TAIL]".
fn wrong_type(
    origin: &Origin,
    key: &'static str,
    expected: &str,
    tail: &str,
    found: &Value,
) -> ConfigError {
    invalid(
        origin,
        key,
        None,
        format!("expected {expected}, found {}{tail}", type_name(found)),
    )
}

/// A list that must hold at least one item; `why` says so when it does not.
fn non_empty<T>(
    list: Option<Located<Vec<T>>>,
    key: &'static str,
    why: &str,
) -> Result<Located<Vec<T>>, ConfigError> {
    match list {
        Some(list) if !list.value.is_empty() => Ok(list),
        given => Err(invalid(
            &given.map_or(Origin::Default, |l| l.origin),
            key,
            None,
            why.to_string(),
        )),
    }
}

/// At least one address, each an IP literal (not multicast/broadcast), no duplicates.
fn check_listen(
    list: Option<Located<Vec<Located<String>>>>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let list = non_empty(
        list,
        "listen",
        "at least one address is required (--listen ADDR, or `listen` in the config file)",
    )?;
    let mut listen: Vec<SocketAddr> = Vec::with_capacity(list.value.len());
    for item in &list.value {
        let at = |reason: String| invalid(&item.origin, "listen", Some(&item.value), reason);
        let (ip, port) = parse_host_port(&item.value).map_err(at)?;
        if let Some(reason) = not_bindable(ip) {
            return Err(at(reason));
        }
        let addr = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
        if listen.contains(&addr) {
            return Err(at(format!("duplicate listen address {addr}")));
        }
        listen.push(addr);
    }
    Ok(listen)
}

/// At least one backend, each a destination IP literal with weight `0..=1000`, no duplicate
/// address, none equal to a listen address, at least one weight above 0. Each parsed backend
/// keeps the text and origin it came from, for later messages.
fn check_backends(
    list: Option<Located<Vec<RawBackend>>>,
    listen: &[SocketAddr],
) -> Result<Vec<CheckedBackend>, ConfigError> {
    let list = non_empty(
        list,
        "backend",
        "at least one backend is required (--backend ADDR, or a [[backend]] table in the \
         config file)",
    )?;
    let mut backends: Vec<CheckedBackend> = Vec::with_capacity(list.value.len());
    for raw in &list.value {
        let spec = &raw.spec;
        let at = |reason: String| invalid(&spec.origin, "backend", Some(&spec.value), reason);
        let (addr_text, params) = match spec.value.split_once(';') {
            Some((addr, params)) => (addr, Some(params)),
            None => (spec.value.as_str(), None),
        };
        let mut weight = None;
        if let Some(params) = params {
            if matches!(spec.origin, Origin::File { .. }) {
                return Err(at(
                    "`;` parameters belong to the command line; in the file, give \
                     the weight as `weight = W`"
                        .to_string(),
                ));
            }
            weight = Some(parse_weight_params(params).map_err(at)?);
        }
        if let Some(w) = &raw.weight {
            weight = Some(
                check_weight(i128::from(w.value))
                    .map_err(|reason| invalid(&w.origin, "backend", Some(&spec.value), reason))?,
            );
        }
        let (ip, port) = parse_host_port(addr_text).map_err(at)?;
        if let Some(reason) = not_a_destination(ip) {
            return Err(at(reason));
        }
        let addr = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
        if backends.iter().any(|b| b.spec.addr == addr) {
            return Err(at(format!("duplicate backend address {addr}")));
        }
        if listen.contains(&addr) {
            return Err(at(format!(
                "{addr} is one of our listen addresses (requests would loop)"
            )));
        }
        backends.push(CheckedBackend {
            spec: BackendSpec {
                addr,
                weight: weight.unwrap_or(1),
            },
            given: spec.clone(),
            probe: raw.probe.clone(),
        });
    }
    if backends.iter().all(|b| b.spec.weight == 0) {
        return Err(invalid(
            &list.origin,
            "backend",
            None,
            "every backend has weight 0 (drained); at least one needs a weight above 0".to_string(),
        ));
    }
    Ok(backends)
}

/// `1..=online`; default `online`.
fn check_workers(workers: Option<&Located<i128>>, online: usize) -> Result<usize, ConfigError> {
    let Some(w) = workers else {
        return Ok(online);
    };
    let at = |reason: String| invalid(&w.origin, "workers", None, reason);
    if w.value < 1 {
        return Err(at(format!("{} is not allowed (1..={online})", w.value)));
    }
    match usize::try_from(w.value) {
        Ok(n) if n <= online => Ok(n),
        _ => Err(at(format!(
            "{} is more than the {online} cores available (1..={online})",
            w.value
        ))),
    }
}

/// A prime in `2..=MAX_TABLE_SIZE`, at least the number of backends; default 65537.
fn check_table_size(
    table_size: Option<&Located<i128>>,
    backends: usize,
) -> Result<u32, ConfigError> {
    let (size, origin) = match table_size {
        None => (DEFAULT_TABLE_SIZE, Origin::Default),
        Some(t) => {
            let at = |reason: String| invalid(&t.origin, "table_size", None, reason);
            let size = u32::try_from(t.value)
                .ok()
                .filter(|&n| n <= MAX_TABLE_SIZE)
                .ok_or_else(|| {
                    at(format!(
                        "{} is out of range (a prime, 2..={MAX_TABLE_SIZE})",
                        t.value
                    ))
                })?;
            if !is_prime(size) {
                return Err(at(format!("{size} is not prime (for example 65537)")));
            }
            (size, t.origin.clone())
        }
    };
    if (size as usize) < backends {
        return Err(invalid(
            &origin,
            "table_size",
            None,
            format!("{size} is smaller than the number of backends ({backends})"),
        ));
    }
    Ok(size)
}

/// `0..=u32::MAX`; default 5.
fn check_retry_after(retry_after: Option<&Located<i128>>) -> Result<u32, ConfigError> {
    let Some(r) = retry_after else {
        return Ok(DEFAULT_RETRY_AFTER);
    };
    u32::try_from(r.value).map_err(|_| {
        invalid(
            &r.origin,
            "retry_after",
            None,
            format!("{} is out of range (0..={})", r.value, u32::MAX),
        )
    })
}

/// `IP[:BASEPORT]` with a concrete IP (default: the first listen IP, which must then be
/// concrete); the ports `BASEPORT..BASEPORT+workers` must fit in 16 bits and not overlap a
/// listen socket on the same IP.
fn check_internal(
    internal: Option<&Located<String>>,
    listen: &[SocketAddr],
    workers: usize,
) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let first = listen[0]; // check_listen returned at least one
    let Some(item) = internal else {
        if not_a_destination(first.ip()).is_some() {
            return Err(invalid(
                &Origin::Default,
                "internal",
                None,
                format!(
                    "not given, and the first listen address {first} is not a concrete IP; \
                     give --internal IP[:PORT] (or `internal` in the config file): our Via \
                     toward the backends needs a concrete address"
                ),
            ));
        }
        return Ok((first.ip(), None));
    };
    let at = |reason: String| invalid(&item.origin, "internal", Some(&item.value), reason);
    let (ip, port) = parse_host_port(&item.value).map_err(|reason| {
        if reason == PORT_RANGE {
            at(format!("{reason}; omit the port to use ephemeral ports"))
        } else {
            at(reason)
        }
    })?;
    if let Some(reason) = not_a_destination(ip) {
        return Err(at(format!(
            "{reason}: the internal address goes in our Via, it must be a concrete IP"
        )));
    }
    if let Some(base) = port {
        // workers >= 1, and usize fits in u64 on every supported target.
        let last = u64::from(base) + workers as u64 - 1;
        if last > u64::from(u16::MAX) {
            return Err(at(format!(
                "base port {base} + {workers} workers runs past 65535 (shard k binds {base}+k)"
            )));
        }
        for l in listen {
            let same_ip = l.ip() == ip || (l.ip().is_unspecified() && l.is_ipv4() == ip.is_ipv4());
            if same_ip && (u64::from(base)..=last).contains(&u64::from(l.port())) {
                return Err(at(format!(
                    "internal ports {base}..={last} overlap the listen address {l}"
                )));
            }
        }
    }
    Ok((ip, port))
}

/// The internal sockets reach every backend: same address family.
fn check_families(backends: &[CheckedBackend], internal_ip: IpAddr) -> Result<(), ConfigError> {
    for backend in backends {
        let addr = backend.spec.addr;
        if addr.is_ipv4() != internal_ip.is_ipv4() {
            return Err(invalid(
                &backend.given.origin,
                "backend",
                Some(&backend.given.value),
                format!(
                    "{} backend, but the internal address {internal_ip} is {}; backends must \
                     use the internal address's family",
                    family(addr.ip()),
                    family(internal_ip)
                ),
            ));
        }
    }
    Ok(())
}

/// A concrete IP; default: the first listen IP, which must then be concrete.
fn check_advertise(
    advertise: Option<&Located<String>>,
    listen: &[SocketAddr],
) -> Result<IpAddr, ConfigError> {
    let first = listen[0]; // check_listen returned at least one
    let Some(item) = advertise else {
        if not_a_destination(first.ip()).is_some() {
            return Err(invalid(
                &Origin::Default,
                "advertise",
                None,
                format!(
                    "not given, and the first listen address {first} is not a concrete IP; \
                     give --advertise IP (or `advertise` in the config file): our Via toward \
                     clients needs a concrete address"
                ),
            ));
        }
        return Ok(first.ip());
    };
    let at = |reason: String| invalid(&item.origin, "advertise", Some(&item.value), reason);
    let ip = parse_ip(&item.value).map_err(at)?;
    if let Some(reason) = not_a_destination(ip) {
        return Err(at(format!(
            "{reason}: the advertised address goes in our Via, it must be a concrete IP"
        )));
    }
    Ok(ip)
}

/// An `IP:PORT` to serve HTTP on (metrics or control); port required.
fn check_service_addr(
    item: Option<&Located<String>>,
    key: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(item) = item else {
        return Ok(None);
    };
    let at = |reason: String| invalid(&item.origin, key, Some(&item.value), reason);
    let (ip, port) = parse_host_port(&item.value).map_err(at)?;
    let Some(port) = port else {
        return Err(at(
            "a port is required (for example 127.0.0.1:9090)".to_string()
        ));
    };
    if let Some(reason) = not_bindable(ip) {
        return Err(at(reason));
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

/// A level name or a `tracing` filter directive; default `info`.
fn check_log_level(item: Option<&Located<String>>) -> Result<String, ConfigError> {
    let Some(item) = item else {
        return Ok("info".to_string());
    };
    let text = item.value.trim();
    // A bare word must be a level: `loud` would otherwise read as a target name and
    // silently log nothing.
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bare_word = !text.contains(['=', ',']);
    let level_ok = !bare_word || LEVELS.contains(&text.to_ascii_lowercase().as_str());
    match tracing_subscriber::EnvFilter::try_new(text) {
        Ok(_) if !text.is_empty() && level_ok => Ok(text.to_string()),
        _ => Err(invalid(
            &item.origin,
            "log_level",
            Some(&item.value),
            "expected error, warn, info, debug, trace or a filter such as `sipshard=debug`"
                .to_string(),
        )),
    }
}

/// One of a few words, in any case: the value paired with the word given, `default` when
/// the key is absent. The error lists the words.
fn check_choice<T: Copy>(
    item: Option<&Located<String>>,
    key: &'static str,
    choices: &[(&str, T)],
    default: T,
) -> Result<T, ConfigError> {
    let Some(item) = item else {
        return Ok(default);
    };
    let word = item.value.trim().to_ascii_lowercase();
    match choices.iter().find(|(w, _)| *w == word) {
        Some(&(_, value)) => Ok(value),
        None => {
            let words: Vec<&str> = choices.iter().map(|&(w, _)| w).collect();
            Err(invalid(
                &item.origin,
                key,
                Some(&item.value),
                format!("expected {}", words.join(" or ")),
            ))
        }
    }
}

/// Longest busy-poll window accepted, µs.
pub const MAX_BUSY_POLL_US: i128 = 10_000;

/// 0 (default) to [`MAX_BUSY_POLL_US`] microseconds.
fn check_busy_poll(item: Option<&Located<i128>>) -> Result<Duration, ConfigError> {
    match item {
        None => Ok(Duration::ZERO),
        Some(i) if (0..=MAX_BUSY_POLL_US).contains(&i.value) => {
            Ok(Duration::from_micros(i.value as u64))
        }
        Some(i) => Err(invalid(
            &i.origin,
            "busy_poll_us",
            Some(&i.value.to_string()),
            format!("expected 0 to {MAX_BUSY_POLL_US} (microseconds)"),
        )),
    }
}

/// Non-empty when given; else 32 random bytes.
fn check_secret(secret: Option<&Located<String>>) -> Result<(Vec<u8>, bool), ConfigError> {
    let Some(item) = secret else {
        return Ok((random_secret()?, true));
    };
    if item.value.is_empty() {
        return Err(invalid(
            &item.origin,
            "secret",
            None,
            "must not be empty (omit it for a random per-process secret)".to_string(),
        ));
    }
    Ok((item.value.as_bytes().to_vec(), false))
}

fn random_secret() -> Result<Vec<u8>, ConfigError> {
    let mut secret = vec![0u8; RANDOM_SECRET_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|source| ConfigError::Random { source })?;
    Ok(secret)
}

// ---------------------------------------------------------------------------------------------
// Address and value parsing. Reasons are returned as text; the caller adds the key.

const PORT_RANGE: &str = "port out of range (1..=65535)";

/// `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT` or bare `IPv6`; the port is `None` when omitted.
fn parse_host_port(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty address".to_string());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing `]` after the IPv6 address".to_string());
        };
        let ip = match parse_ip(host)? {
            IpAddr::V6(ip) => IpAddr::V6(ip),
            IpAddr::V4(_) => {
                return Err(
                    "brackets are for IPv6 addresses only; write IPv4 as 1.2.3.4:5060".to_string(),
                )
            }
        };
        if after.is_empty() {
            return Ok((ip, None));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "unexpected {after:?} after `]` (expected `:PORT` or nothing)"
            ));
        };
        return Ok((ip, Some(parse_port(port)?)));
    }
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Ok((IpAddr::V6(ip), None));
    }
    match text.rsplit_once(':') {
        None => Ok((parse_ip(text)?, None)),
        Some((host, port)) => {
            if host.contains(':') {
                if host.parse::<Ipv6Addr>().is_ok() {
                    return Err(format!(
                        "an IPv6 address with a port must be in brackets: [{host}]:{port}"
                    ));
                }
                // Not an address in any form; report the whole text.
                return Err(parse_ip(text).err().unwrap_or_else(|| not_an_ip(text)));
            }
            let ip = parse_ip(host)?;
            Ok((ip, Some(parse_port(port)?)))
        }
    }
}

/// An IP literal (IPv6 also in brackets); a name or anything else is rejected with a reason.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if inner.is_empty() {
        return Err("empty address".to_string());
    }
    if inner.contains('%') {
        return Err(format!(
            "{inner:?}: IPv6 zone ids (`%...`) are not supported"
        ));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Err("a port is not allowed here, only an IP".to_string());
    }
    let bracketed = inner.len() != text.len();
    match inner.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) if bracketed => Err("brackets are for IPv6 addresses only".to_string()),
        Ok(ip) => Ok(ip),
        Err(_) => Err(not_an_ip(inner)),
    }
}

fn not_an_ip(text: &str) -> String {
    format!("{text:?} is not an IP address: IP literals are required (DNS names are not resolved)")
}

fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing port after `:`".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {text:?} is not a number"));
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(PORT_RANGE.to_string()),
        Ok(port) => Ok(port),
    }
}

/// `weight=W` (the part after the first `;` of a command-line backend).
fn parse_weight_params(params: &str) -> Result<u32, String> {
    let mut weight = None;
    for param in params.split(';') {
        let param = param.trim();
        if param.is_empty() {
            return Err("empty `;` parameter (expected `;weight=W`)".to_string());
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim() != "weight" {
            return Err(format!(
                "unknown parameter {:?} (only `;weight=W` is accepted)",
                name.trim()
            ));
        }
        if weight.is_some() {
            return Err("weight given twice".to_string());
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "weight {value:?} is not an integer (0..={MAX_WEIGHT})"
            ));
        }
        weight = Some(match value.parse::<i128>() {
            Ok(w) => check_weight(w)?,
            // All digits: only overflow can fail, and that is out of range anyway.
            Err(_) => return Err(format!("weight {value} out of range (0..={MAX_WEIGHT})")),
        });
    }
    weight.ok_or_else(|| "missing weight".to_string())
}

fn check_weight(w: i128) -> Result<u32, String> {
    u32::try_from(w)
        .ok()
        .filter(|&w| w <= MAX_WEIGHT)
        .ok_or_else(|| format!("weight {w} out of range (0..={MAX_WEIGHT})"))
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// Why `ip` cannot be a local address to listen on, if it cannot.
fn not_bindable(ip: IpAddr) -> Option<String> {
    if ip.is_multicast() || is_broadcast(ip) {
        return Some(format!("{ip} is a multicast or broadcast address"));
    }
    None
}

/// Why `ip` cannot be a destination, if it cannot.
fn not_a_destination(ip: IpAddr) -> Option<String> {
    if ip.is_unspecified() {
        return Some(format!("{ip} is the unspecified address"));
    }
    not_bindable(ip)
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

//! Balancer configuration: command line and TOML file into one validated config.
//!
//! Every option is declared once in `options` (key, flag, kind, help, where it may appear,
//! whether a reload applies it). Two layers feed one [`BalanceConfig`]: an optional TOML file
//! (`--config FILE`, read by `file`) and the command line ([`BalanceArgs`], built by
//! `cli`). Each value remembers where it came from; the command line replaces the file value
//! by value (a list given on the command line replaces the file's list), and one validation
//! pass (`validate`) turns the result into typed values. Every error names the flag or key,
//! the file and line when the value came from a file, and the reason (see [`ConfigError`]).
//!
//! Addresses are IP literals only (no DNS): `1.2.3.4:5060`, `[2001:db8::1]:5060`, or without a
//! port (`1.2.3.4`, `[2001:db8::1]`, `2001:db8::1`), which then defaults to 5060.

mod address;
mod cli;
mod error;
mod file;
mod layer;
mod options;
mod probe;
mod reload;
mod secret;
mod stateful;
mod validate;

pub use address::MAX_WEIGHT;
pub use cli::BalanceArgs;
pub use error::{ConfigError, Origin};
pub use probe::{parse_accept, Accept, ProbePolicy, MAX_PROBE_INTERVAL_MS, MAX_PROBE_THRESHOLD};
pub use reload::{restart_only_changes, restart_only_keys};
pub use secret::{Secret, RANDOM_SECRET_LEN};
pub use stateful::{parse_failover_codes, StatefulOptions};
pub use validate::MAX_BUSY_POLL_US;

use crate::balance::Backend;
use crate::net::Steering;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// One backend: where to send, its share of the calls, and how it is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// The backend's SIP address (UDP).
    pub addr: SocketAddr,
    /// Relative share of calls, `0..=1000`; 0 means drained (receives no new calls).
    pub weight: u32,
    /// Its health probes (the global probe options with its own on top).
    pub probe: ProbePolicy,
}

impl BackendSpec {
    /// The backend as the balancing layer sees it: up with its configured weight, or down
    /// with weight 0.
    pub fn backend(&self, up: bool) -> Backend {
        Backend {
            addr: self.addr,
            weight: if up { self.weight } else { 0 },
            up,
        }
    }
}

/// The validated configuration of `sipshard balance`.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub secret: Secret,
    /// Retry-After seconds in the 503 sent when no backend is up.
    pub retry_after: u32,
    /// Maglev table size: prime, at least the number of backends.
    pub table_size: u32,
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
    /// Stay in the dialogs' route sets: Record-Route with the backend pinned.
    pub record_route: bool,
    /// A client's REGISTER gets our Path entry (RFC 3327).
    pub path: bool,
    /// `--mode stateful` and its options; `None` in stateless mode.
    pub stateful: Option<StatefulOptions>,
}

impl BalanceConfig {
    /// Merges the TOML file (if `--config`) with the command line (command line wins, lists
    /// replace lists), validates.
    pub fn from_args(args: &BalanceArgs) -> Result<BalanceConfig, ConfigError> {
        let file = match args.config_file() {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                file::read(&text, Some(path))?
            }
            None => layer::Layer::default(),
        };
        validate::validate(file.merge(args.layer()?), online_cores())
    }

    /// Parses and validates a TOML document on its own (for tests); errors give the line but
    /// no file name.
    pub fn from_toml_str(text: &str) -> Result<BalanceConfig, ConfigError> {
        validate::validate(file::read(text, None::<&Path>)?, online_cores())
    }
}

/// Loads the configuration again for a reload: the `--config` file read anew, the command
/// line given at start on top.
#[derive(Clone, Debug)]
pub struct Loader {
    args: BalanceArgs,
}

impl Loader {
    /// A loader for the command line `args`.
    pub fn new(args: BalanceArgs) -> Loader {
        Loader { args }
    }

    /// Reads and validates the configuration now.
    pub fn load(&self) -> Result<BalanceConfig, ConfigError> {
        BalanceConfig::from_args(&self.args)
    }
}

/// The number of cores this process may run on (`std::thread::available_parallelism`,
/// which honours the CPU affinity mask and cgroup quota); 1 when it cannot be determined.
/// `workers` may not exceed it.
pub fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

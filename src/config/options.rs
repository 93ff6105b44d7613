//! Every option of `sipshard balance`, declared once: its TOML key and flag, what values it
//! takes, its help text, where it may appear and whether a reload applies it.
//!
//! The command line ([`super::cli`]), the file reader ([`super::file`]), the layering
//! ([`super::layer`]) and the reload report ([`super::reload`]) all work from this table; a
//! new option is one entry here plus its check in [`super::validate`].

use super::error::Origin;
use super::layer::{Layer, Located, Raw};
use super::BalanceConfig;

/// How an option's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Addresses: a repeatable flag; in the file a string or a list of strings.
    Addresses,
    /// Backends: a repeatable `ADDR[;weight=W]` flag; in the file `[[backend]]` tables.
    Backends,
    /// Free text; in the file a string.
    Text,
    /// Text never shown in logs or messages; in the file a string.
    Secret,
    /// An IP literal (the command line rejects anything else); in the file a string.
    Ip,
    /// A non-negative integer that fits 32 bits on the command line; in the file an integer.
    U32,
    /// A non-negative integer that fits 64 bits on the command line; in the file an integer.
    U64,
    /// `on` or `off`; in the file also `true` or `false`.
    Switch,
    /// `any` or status codes; in the file also one integer or a list of integers.
    Codes,
    /// A file path, on the command line only.
    Path,
}

/// Where an option may be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The command line only.
    CommandLine,
    /// The command line and the file's top level.
    Everywhere,
    /// Those, and inside a `[[backend]]` table (for that backend alone).
    AlsoPerBackend,
}

/// What an option is when it is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// This word, as on the command line; it goes through the same check as a value given.
    Word(&'static str),
    /// This number; it goes through the same check as a value given.
    Number(u64),
    /// Computed from other options or the machine, as the text says (its check does it).
    Computed(&'static str),
    /// Required: the configuration is refused without it.
    Required,
    /// Absent: the feature it configures is off.
    Off,
}

/// What a reload does with a changed value.
#[derive(Clone, Copy)]
pub(crate) enum Reload {
    /// Applied at once.
    Applies,
    /// Kept until the next restart; the function says whether two configurations differ in
    /// this option (the reload's answer names it then).
    AtRestart(fn(&BalanceConfig, &BalanceConfig) -> bool),
}

/// One option.
#[derive(Clone, Copy)]
pub(crate) struct Opt {
    /// The TOML key, and the name in messages about file values.
    pub key: &'static str,
    /// The long flag: the key with `-` for `_`.
    pub flag: &'static str,
    /// The placeholder in the help.
    pub value_name: &'static str,
    /// The help text (its first sentence is the short help).
    pub help: &'static str,
    pub kind: Kind,
    pub scope: Scope,
    pub reload: Reload,
    pub fallback: Fallback,
}

impl Opt {
    /// The help with its default.
    pub fn help_with_default(&self) -> String {
        match self.fallback {
            Fallback::Word(value) => format!("{} [default: {value}]", self.help),
            Fallback::Number(value) => format!("{} [default: {value}]", self.help),
            Fallback::Computed(how) => format!("{} [default: {how}]", self.help),
            Fallback::Required | Fallback::Off => self.help.to_string(),
        }
    }
}

#[allow(clippy::too_many_arguments)] // a row of the table below
const fn opt(
    key: &'static str,
    flag: &'static str,
    value_name: &'static str,
    kind: Kind,
    scope: Scope,
    fallback: Fallback,
    reload: Reload,
    help: &'static str,
) -> Opt {
    Opt {
        key,
        flag,
        value_name,
        help,
        kind,
        scope,
        reload,
        fallback,
    }
}

use crate::balance::DEFAULT_TABLE_SIZE;
use Fallback::{Computed, Number, Off, Required, Word};
use Kind::*;
use Reload::{Applies, AtRestart};
use Scope::{AlsoPerBackend, CommandLine, Everywhere};

/// Every option, in the order of the help.
#[rustfmt::skip]
pub(crate) const OPTIONS: &[Opt] = &[
    opt("listen", "listen", "ADDR", Addresses, Everywhere, Required,
        AtRestart(|a, b| a.listen != b.listen),
        "Public address(es) to listen on (repeatable): IPv4 `1.2.3.4:5060`, IPv6 \
         `[::1]:5060`; port defaults to 5060 if omitted."),
    opt("backend", "backend", "ADDR[;weight=W]", Backends, Everywhere, Required, Applies,
        "Backend `ADDR[;weight=W]` (repeatable). Port defaults to 5060. Weight default 1, 0 = \
         drained."),
    opt("internal", "internal", "IP[:BASEPORT]", Text, Everywhere,
        Computed("the first listen IP, ephemeral ports"),
        AtRestart(|a, b| {
            (a.internal_ip, a.internal_base_port) != (b.internal_ip, b.internal_base_port)
        }),
        "`IP[:BASEPORT]`: address of the internal sockets toward the backends; shard k binds \
         BASEPORT+k, ephemeral ports when no port is given."),
    opt("workers", "workers", "N", U64, Everywhere, Computed("every online core"),
        AtRestart(|a, b| a.workers != b.workers),
        "Worker cores."),
    opt("secret", "secret", "S", Secret, Everywhere, Computed("32 random bytes, drawn at start"),
        AtRestart(|a, b| a.secret.differs_as_configured(&b.secret)),
        "Secret keying the stateless branches (instances of one deployment must share it)."),
    opt("config", "config", "FILE", Path, CommandLine, Off, Applies,
        "TOML config file; command-line values override it."),
    opt("advertise", "advertise", "IP", Ip, Everywhere, Computed("the first listen IP"),
        AtRestart(|a, b| a.advertise != b.advertise),
        "Address put in our Via for requests that arrive from backends (without it, the \
         first listen IP must not be unspecified)."),
    opt("retry_after", "retry-after", "SECONDS", U32, Everywhere, Number(5),
        AtRestart(|a, b| a.retry_after != b.retry_after),
        "Retry-After seconds in a 503 when no backend is up."),
    opt("table_size", "table-size", "PRIME", U32, Everywhere, Number(DEFAULT_TABLE_SIZE as u64),
        AtRestart(|a, b| a.table_size != b.table_size),
        "Maglev table size, prime."),
    opt("metrics", "metrics", "ADDR", Text, Everywhere, Off,
        AtRestart(|a, b| a.metrics != b.metrics),
        "Serve Prometheus metrics over HTTP at `ADDR` (`GET /metrics`)."),
    opt("control", "control", "ADDR", Text, Everywhere, Off,
        AtRestart(|a, b| a.control != b.control),
        "Serve the control API over HTTP at `ADDR` (`sipshard ctl`: status, reload, \
         enable/disable a backend)."),
    opt("log_level", "log-level", "LEVEL", Text, Everywhere, Word("info"),
        AtRestart(|a, b| a.log_level != b.log_level),
        "Log level: error, warn, info, debug, trace; or a `tracing` filter directive. The \
         SIPSHARD_LOG environment variable, when set, wins."),
    opt("log_format", "log-format", "FORMAT", Text, Everywhere, Word("text"),
        AtRestart(|a, b| a.log_json != b.log_json),
        "Log format: text or json."),
    opt("residence_time", "residence-time", "on|off", Switch, Everywhere, Word("off"),
        AtRestart(|a, b| a.residence_time != b.residence_time),
        "Measure each datagram's residence time (kernel receive timestamp to the end of its \
         send) into a histogram per shard: `on` or `off` (on costs about 4% more CPU per \
         datagram, the kernel's timestamp and its copy to the shard)."),
    opt("steering", "steering", "callid|random|flow", Text, Everywhere, Word("callid"),
        AtRestart(|a, b| a.steering != b.steering),
        "How datagrams to a public address are spread over the shards: `random` (any shard \
         takes any datagram, so one busy peer spreads over every core) or `flow` \
         (the kernel's hash of addresses and ports: each peer sticks to one shard)."),
    opt("busy_poll_us", "busy-poll-us", "US", U64, Everywhere, Number(0),
        AtRestart(|a, b| a.busy_poll != b.busy_poll),
        "Microseconds an idle shard keeps polling its sockets without blocking before it \
         parks (0: it parks at once). Trades CPU for latency: no wake-up delay for a \
         datagram that arrives within the window."),
    opt("record_route", "record-route", "on|off", Switch, Everywhere, Word("on"),
        AtRestart(|a, b| a.record_route != b.record_route),
        "Stay in the route set of the dialogs it forwards: a Record-Route entry on each side \
         (public and internal), carrying the backend chosen, so that in-dialog requests reach \
         that backend whatever the farm's changes, and reach clients through the balancer."),
    opt("path", "path", "on|off", Switch, Everywhere, Word("on"),
        AtRestart(|a, b| a.path != b.path),
        "Give a client's REGISTER our Path entry (RFC 3327), naming our internal address and \
         carrying the client's source address, so that requests the farm sends to the \
         registered user agent come back through the balancer and reach it behind a NAT."),
    opt("mode", "mode", "stateless|stateful", Text, Everywhere, Word("stateless"),
        AtRestart(|a, b| a.stateful.is_some() != b.stateful.is_some()),
        "`stateless` forwards each message on its own; `stateful` keeps a transaction per \
         new request: 100 Trying at once, retransmissions absorbed, failover to the next \
         backend, forking, CANCEL."),
    opt("failover_after_ms", "failover-after-ms", "MS", U64, Everywhere, Number(2000),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: a backend that sent no response at all within MS loses the request \
         to the next backend of the call's preference order (0: never)."),
    opt("max_attempts", "max-attempts", "N", U32, Everywhere, Number(3),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: backends one request is tried on, the first included (1..=4)."),
    opt("failover_codes", "failover-codes", "CODES", Codes, Everywhere, Word("503"),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: final responses (3xx..5xx, separated by commas, or `none`) that \
         move the request to the next backend; a 6xx never does."),
    opt("fork", "fork", "K", U32, Everywhere, Number(1),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: a dialog-creating INVITE goes to the first K backends of its \
         preference order at once (1..=4); the first 2xx wins, the others are CANCELed."),
    opt("t1_ms", "t1-ms", "MS", U64, Everywhere, Number(500),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: RFC 3261 T1 (round-trip estimate; retransmission and timeout \
         timers derive from it)."),
    opt("t2_ms", "t2-ms", "MS", U64, Everywhere, Number(4000),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: RFC 3261 T2 (longest retransmission interval of a non-INVITE)."),
    opt("max_transactions", "max-transactions", "N", U64, Everywhere, Number(32768),
        AtRestart(|a, b| a.stateful != b.stateful),
        "Stateful mode: transactions per shard, allocated at start (about 8.5 KiB each); \
         when full, new requests get 503 with Retry-After."),
    opt("probe_interval_ms", "probe-interval-ms", "MS", U64, AlsoPerBackend, Number(1000), Applies,
        "Milliseconds between two OPTIONS probes of a backend (0 = no probes, the backend \
         is always up)."),
    opt("probe_timeout_ms", "probe-timeout-ms", "MS", U64, AlsoPerBackend, Number(500), Applies,
        "A probe unanswered after this many milliseconds fails (when not given: the default, \
         or the interval when that is shorter)."),
    opt("probe_failures", "probe-failures", "N", U32, AlsoPerBackend, Number(3), Applies,
        "Consecutive failed probes that take a backend down."),
    opt("probe_successes", "probe-successes", "N", U32, AlsoPerBackend, Number(2), Applies,
        "Consecutive good probes that bring it back up."),
    opt("probe_accept", "probe-accept", "any|CODES", Codes, AlsoPerBackend, Word("any"), Applies,
        "Probe replies that count as success: `any` (every reply but a 5xx) or status \
         codes separated by commas (`200,404`)."),
];

/// The keys of a `[[backend]]` table besides the per-backend options.
pub(crate) const BACKEND_OWN_KEYS: [&str; 2] = ["addr", "weight"];

/// The values used for options not given: a layer of every [`Fallback::Word`] and
/// [`Fallback::Number`].
pub(crate) fn defaults() -> Layer {
    let mut layer = Layer::default();
    for o in OPTIONS {
        let raw = match o.fallback {
            Fallback::Word(text) => Raw::Text(text.into()),
            Fallback::Number(n) => Raw::Int(i128::from(n)),
            Fallback::Computed(_) | Fallback::Required | Fallback::Off => continue,
        };
        layer.set(o.key, Located::new(raw, Origin::Default));
    }
    layer
}

/// The option with this TOML key.
pub(crate) fn by_key(key: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.key == key)
}

/// The keys the file's top level accepts.
pub(crate) fn file_keys() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|o| o.scope != CommandLine)
        .map(|o| o.key)
}

/// The keys a `[[backend]]` table accepts.
pub(crate) fn backend_keys() -> impl Iterator<Item = &'static str> {
    BACKEND_OWN_KEYS.into_iter().chain(
        OPTIONS
            .iter()
            .filter(|o| o.scope == AlsoPerBackend)
            .map(|o| o.key),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_defaults_pass_their_checks() {
        // Every Value default, alone, through the whole validation: with only the required
        // options given, the configuration is accepted and holds the declared values.
        let text = "listen = \"127.0.0.1\"\nworkers = 1\n[[backend]]\naddr = \"127.0.0.2\"\n";
        let c = BalanceConfig::from_toml_str(text).expect("defaults are valid");
        assert_eq!(c.table_size, crate::balance::DEFAULT_TABLE_SIZE);
        assert_eq!(c.backends[0].probe, crate::config::ProbePolicy::default());
        for o in OPTIONS {
            match o.fallback {
                Fallback::Word(_) => assert!(defaults().text(o.key).is_some(), "{}", o.key),
                Fallback::Number(_) => assert!(defaults().int(o.key).is_some(), "{}", o.key),
                _ => {}
            }
        }
    }

    #[test]
    fn flags_are_keys_with_hyphens_and_unique() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert_eq!(o.flag, o.key.replace('_', "-"), "{}", o.key);
            assert!(OPTIONS[..i].iter().all(|p| p.key != o.key), "{}", o.key);
            assert!(!o.help.is_empty());
        }
    }
}

//! The balancer's configuration: command line (parsed by clap, as `main` does) and TOML
//! files, defaults, overrides, and every rejection with a message naming the key and reason.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{CommandFactory, Parser};
use proptest::prelude::*;
use sipshard::config::{
    online_cores, BackendSpec, BalanceArgs, BalanceConfig, ConfigError, Origin, ProbePolicy,
};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: BalanceArgs,
}

/// Parses `balance ARGS...` with clap.
fn args(argv: &[&str]) -> BalanceArgs {
    let full: Vec<&str> = std::iter::once("balance")
        .chain(argv.iter().copied())
        .collect();
    match Wrapper::try_parse_from(&full) {
        Ok(wrapper) => wrapper.args,
        Err(e) => panic!("clap rejected {full:?}: {e}"),
    }
}

fn cli(argv: &[&str]) -> Result<BalanceConfig, ConfigError> {
    BalanceConfig::from_args(&args(argv))
}

fn cli_ok(argv: &[&str]) -> BalanceConfig {
    cli(argv).unwrap_or_else(|e| panic!("{argv:?} rejected: {e}"))
}

fn cli_err(argv: &[&str]) -> String {
    match cli(argv) {
        Ok(config) => panic!("{argv:?} accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A TOML file in the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sipshard-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "message {message:?} lacks {part:?}");
    }
}

const EXAMPLE: &str = r#"
listen = ["0.0.0.0:5060", "[::]:5060"]
internal = "10.0.0.1:5070"
advertise = "203.0.113.10"
workers = 2
secret = "change-me"
retry_after = 5
table_size = 65537
[[backend]]
addr = "10.0.0.2:5060"
weight = 2
[[backend]]
addr = "10.0.0.3"      # port defaults to 5060
"#;

// ---------------------------------------------------------------------------------------------
// Accepted configurations

#[test]
fn clap_definition_is_consistent() {
    Wrapper::command().debug_assert();
    let help = Wrapper::command().render_long_help().to_string();
    for flag in [
        "--listen",
        "--backend",
        "--internal",
        "--workers",
        "--secret",
        "--config",
        "--advertise",
        "--retry-after",
        "--table-size",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn defaults() {
    let c = cli_ok(&["--listen", "10.0.0.1:5060", "--backend", "10.0.0.2"]);
    assert_eq!(c.listen, vec![sa("10.0.0.1:5060")]);
    assert_eq!(
        c.backends,
        vec![BackendSpec {
            addr: sa("10.0.0.2:5060"),
            weight: 1,
            probe: ProbePolicy::default(),
        }]
    );
    assert_eq!(c.internal_ip, ip("10.0.0.1"));
    assert_eq!(c.internal_base_port, None);
    assert_eq!(c.advertise, ip("10.0.0.1"));
    assert_eq!(c.workers, online_cores());
    assert!(c.workers >= 1);
    assert!(c.secret.is_random());
    assert_eq!(c.secret.expose().len(), 32);
    assert_eq!(c.retry_after, 5);
    assert_eq!(c.table_size, 65537);
}

#[test]
fn random_secrets_differ() {
    let argv = ["--listen", "10.0.0.1", "--backend", "10.0.0.2"];
    let (a, b) = (cli_ok(&argv), cli_ok(&argv));
    assert!(a.secret.is_random() && b.secret.is_random());
    assert_ne!(a.secret, b.secret);
}

#[test]
fn address_forms() {
    let table = [
        ("1.2.3.4", "1.2.3.4:5060"),
        ("1.2.3.4:5070", "1.2.3.4:5070"),
        (" 1.2.3.4:5070 ", "1.2.3.4:5070"),
        ("1.2.3.4:65535", "1.2.3.4:65535"),
        ("[2001:db8::1]:5070", "[2001:db8::1]:5070"),
        ("[2001:db8::1]", "[2001:db8::1]:5060"),
        ("2001:db8::1", "[2001:db8::1]:5060"),
        ("::1", "[::1]:5060"),
        ("[::ffff:10.0.0.1]:5062", "[::ffff:10.0.0.1]:5062"),
    ];
    for (given, expected) in table {
        // As a listen address (with an IPv4 and an IPv6 backend matching its family).
        let backend = if sa(expected).is_ipv4() {
            "10.9.9.9"
        } else {
            "[2001:db8::99]"
        };
        let c = cli_ok(&["--listen", given, "--backend", backend]);
        assert_eq!(c.listen, vec![sa(expected)], "listen {given:?}");
        // As a backend address.
        let listen = if sa(expected).is_ipv4() {
            "10.9.9.9"
        } else {
            "[2001:db8::99]"
        };
        let c = cli_ok(&["--listen", listen, "--backend", given]);
        assert_eq!(c.backends[0].addr, sa(expected), "backend {given:?}");
    }
}

#[test]
fn ipv6_deployment() {
    let c = cli_ok(&[
        "--listen",
        "[2001:db8::1]:5060",
        "--backend",
        "[2001:db8::2]:5070;weight=3",
        "--backend",
        "2001:db8::3",
    ]);
    assert_eq!(c.listen, vec![sa("[2001:db8::1]:5060")]);
    assert_eq!(
        c.backends,
        vec![
            BackendSpec {
                addr: sa("[2001:db8::2]:5070"),
                weight: 3,
                probe: ProbePolicy::default(),
            },
            BackendSpec {
                addr: sa("[2001:db8::3]:5060"),
                weight: 1,
                probe: ProbePolicy::default(),
            },
        ]
    );
    assert_eq!(c.internal_ip, ip("2001:db8::1"));
    assert_eq!(c.advertise, ip("2001:db8::1"));

    // Unspecified listen: internal and advertise must be given.
    let c = cli_ok(&[
        "--listen",
        "[::]:5060",
        "--internal",
        "[fd00::1]:6000",
        "--advertise",
        "2001:db8::1",
        "--backend",
        "[fd00::2]",
        "--workers",
        "1",
    ]);
    assert_eq!(c.internal_ip, ip("fd00::1"));
    assert_eq!(c.internal_base_port, Some(6000));
    assert_eq!(c.advertise, ip("2001:db8::1"));
}

#[test]
fn weights() {
    let table: [(&str, u32); 6] = [
        ("10.0.0.2", 1),
        ("10.0.0.2;weight=0", 0),
        ("10.0.0.2;weight=1", 1),
        ("10.0.0.2:5070;weight=7", 7),
        ("10.0.0.2; weight = 1000 ", 1000),
        ("[2001:db8::2]:5060;weight=5", 5),
    ];
    for (spec, weight) in table {
        let listen = if spec.starts_with('[') {
            "[2001:db8::1]"
        } else {
            "10.0.0.1"
        };
        // A second backend with weight 1 keeps a drained one acceptable.
        let other = if spec.starts_with('[') {
            "[2001:db8::9]"
        } else {
            "10.0.0.9"
        };
        let c = cli_ok(&["--listen", listen, "--backend", spec, "--backend", other]);
        assert_eq!(c.backends[0].weight, weight, "{spec:?}");
        assert_eq!(c.backends[1].weight, 1);
    }
}

#[test]
fn explicit_values() {
    let n = online_cores();
    let workers = n.to_string();
    let c = cli_ok(&[
        "--listen",
        "0.0.0.0:5060",
        "--listen",
        "10.0.0.1:5062",
        "--backend",
        "10.0.0.2",
        "--internal",
        "10.0.0.1:6000",
        "--advertise",
        "203.0.113.10",
        "--workers",
        &workers,
        "--secret",
        "s3cret",
        "--retry-after",
        "0",
        "--table-size",
        "7",
    ]);
    assert_eq!(c.listen, vec![sa("0.0.0.0:5060"), sa("10.0.0.1:5062")]);
    assert_eq!(c.internal_ip, ip("10.0.0.1"));
    assert_eq!(c.internal_base_port, Some(6000));
    assert_eq!(c.advertise, ip("203.0.113.10"));
    assert_eq!(c.workers, n);
    assert_eq!(c.secret.expose(), b"s3cret");
    assert!(!c.secret.is_random());
    assert_eq!(c.retry_after, 0);
    assert_eq!(c.table_size, 7);

    // Internal port range reaching exactly 65535.
    let base = (65536 - n).to_string();
    let c = cli_ok(&[
        "--listen",
        "10.0.0.1",
        "--backend",
        "10.0.0.2",
        "--internal",
        &format!("10.0.0.1:{base}"),
        "--workers",
        &workers,
    ]);
    assert_eq!(c.internal_base_port, Some((65536 - n) as u16));
}

#[test]
fn example_file_round_trips() {
    let result = BalanceConfig::from_toml_str(EXAMPLE);
    if online_cores() < 2 {
        // The example asks for 2 workers; a one-core machine must say why it refuses.
        let e = result.unwrap_err().to_string();
        assert_contains(&e, &["line 5", "workers: 2 is more than the 1 cores"]);
        return;
    }
    let c = result.unwrap();
    assert_eq!(c.listen, vec![sa("0.0.0.0:5060"), sa("[::]:5060")]);
    assert_eq!(c.internal_ip, ip("10.0.0.1"));
    assert_eq!(c.internal_base_port, Some(5070));
    assert_eq!(c.advertise, ip("203.0.113.10"));
    assert_eq!(c.workers, 2);
    assert_eq!(c.secret.expose(), b"change-me");
    assert!(!c.secret.is_random());
    assert_eq!(c.retry_after, 5);
    assert_eq!(c.table_size, 65537);
    assert_eq!(
        c.backends,
        vec![
            BackendSpec {
                addr: sa("10.0.0.2:5060"),
                weight: 2,
                probe: ProbePolicy::default(),
            },
            BackendSpec {
                addr: sa("10.0.0.3:5060"),
                weight: 1,
                probe: ProbePolicy::default(),
            },
        ]
    );

    // The same document read as a file through --config gives the same config.
    let file = TempFile::new(EXAMPLE);
    assert_eq!(cli_ok(&["--config", file.path()]), c);

    // The command-line equivalent given in docs/configuration.md.
    let from_flags = cli_ok(&[
        "--listen",
        "0.0.0.0:5060",
        "--listen",
        "[::]:5060",
        "--internal",
        "10.0.0.1:5070",
        "--advertise",
        "203.0.113.10",
        "--workers",
        "2",
        "--backend",
        "10.0.0.2:5060;weight=2",
        "--backend",
        "10.0.0.3",
        "--secret",
        "change-me",
    ]);
    assert_eq!(from_flags, c);

    // The documented drain: the command-line list replaces the file's.
    let drained = cli_ok(&[
        "--config",
        file.path(),
        "--backend",
        "10.0.0.2;weight=0",
        "--backend",
        "10.0.0.3",
    ]);
    assert_eq!(drained.backends[0].weight, 0);
    assert_eq!(drained.backends[1].weight, 1);
}

#[test]
fn command_line_overrides_file() {
    let file = TempFile::new(
        r#"
listen = ["10.0.0.1:5060", "10.0.0.1:5061"]
internal = "10.0.0.1:7000"
workers = 1
secret = "from-file"
retry_after = 9
table_size = 13
[[backend]]
addr = "10.0.0.2"
weight = 4
[[backend]]
addr = "10.0.0.3"
"#,
    );
    // The file alone.
    let c = cli_ok(&["--config", file.path()]);
    assert_eq!(c.listen, vec![sa("10.0.0.1:5060"), sa("10.0.0.1:5061")]);
    assert_eq!(c.backends.len(), 2);
    assert_eq!(c.backends[0].weight, 4);
    assert_eq!(c.internal_base_port, Some(7000));
    assert_eq!(c.secret.expose(), b"from-file");
    assert_eq!((c.workers, c.retry_after, c.table_size), (1, 9, 13));

    // Command-line values win; a list given on the command line replaces the file's list.
    let c = cli_ok(&[
        "--config",
        file.path(),
        "--listen",
        "10.0.0.5:5080",
        "--backend",
        "10.0.0.7;weight=2",
        "--secret",
        "from-cli",
        "--retry-after",
        "3",
        "--internal",
        "10.0.0.5",
    ]);
    assert_eq!(c.listen, vec![sa("10.0.0.5:5080")]);
    assert_eq!(
        c.backends,
        vec![BackendSpec {
            addr: sa("10.0.0.7:5060"),
            weight: 2,
            probe: ProbePolicy::default(),
        }]
    );
    assert_eq!(c.secret.expose(), b"from-cli");
    assert_eq!(c.retry_after, 3);
    assert_eq!(c.internal_ip, ip("10.0.0.5"));
    assert_eq!(c.internal_base_port, None);
    // Not given on the command line: still the file's.
    assert_eq!((c.workers, c.table_size), (1, 13));
    assert_eq!(c.advertise, ip("10.0.0.5"));
}

#[test]
fn one_listen_address_as_a_string() {
    let c = BalanceConfig::from_toml_str(
        "listen = \"10.0.0.1:5060\"\nworkers = 1\n[[backend]]\naddr = \"10.0.0.2\"\n",
    )
    .unwrap();
    assert_eq!(c.listen, vec![sa("10.0.0.1:5060")]);
}

#[test]
fn debug_output_hides_the_secret() {
    let c = cli_ok(&[
        "--listen",
        "10.0.0.1",
        "--backend",
        "10.0.0.2",
        "--secret",
        "hunter2-topsecret",
    ]);
    let text = format!("{c:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redacted"), "{text}");
    let a = args(&["--secret", "hunter2-topsecret"]);
    assert!(!format!("{a:?}").contains("hunter2"));
}

// ---------------------------------------------------------------------------------------------
// Rejections on the command line: each message names the flag (and the entry) and the reason.

#[test]
fn command_line_errors() {
    let n = online_cores();
    let more = (n + 1).to_string();
    // Valid --listen and --backend, plus `extra`.
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--listen", "10.0.0.1:5060", "--backend", "10.0.0.2"];
        v.extend_from_slice(extra);
        v
    }
    // The given --listen, a valid --backend, plus `extra`.
    fn listen_only<'a>(listen: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--listen", listen, "--backend", "10.0.0.2"];
        v.extend_from_slice(extra);
        v
    }
    // A valid --listen and the given --backend.
    fn backend_only(backend: &str) -> Vec<&str> {
        vec!["--listen", "10.0.0.1:5060", "--backend", backend]
    }
    let workers_zero = format!("--workers: 0 is not allowed (1..={n})");
    let workers_more = format!("--workers: {} is more than the {n} cores available", n + 1);

    let table: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // listen
        (
            vec!["--backend", "10.0.0.2"],
            vec!["listen: at least one address is required", "--listen"],
        ),
        (listen_only("", &[]), vec!["--listen \"\": empty address"]),
        (
            listen_only("sip.example.com:5060", &[]),
            vec![
                "--listen \"sip.example.com:5060\"",
                "is not an IP address",
                "IP literals are required",
            ],
        ),
        (
            listen_only("localhost", &[]),
            vec!["--listen \"localhost\"", "IP literals are required"],
        ),
        (
            listen_only("1.2.3.4:abc", &[]),
            vec!["--listen \"1.2.3.4:abc\"", "port \"abc\" is not a number"],
        ),
        (
            listen_only("1.2.3.4:", &[]),
            vec!["--listen \"1.2.3.4:\"", "missing port"],
        ),
        (
            listen_only("1.2.3.4:70000", &[]),
            vec!["--listen \"1.2.3.4:70000\": port out of range (1..=65535)"],
        ),
        (
            listen_only("1.2.3.4:0", &[]),
            vec!["--listen \"1.2.3.4:0\": port out of range"],
        ),
        (
            listen_only("1.2.3.4:-1", &[]),
            vec!["--listen \"1.2.3.4:-1\"", "not a number"],
        ),
        (
            listen_only("[::1", &[]),
            vec!["--listen \"[::1\"", "missing `]`"],
        ),
        (
            listen_only("[::1]x", &[]),
            vec!["--listen \"[::1]x\"", "unexpected \"x\" after `]`"],
        ),
        (
            listen_only("[1.2.3.4]:5060", &[]),
            vec!["--listen \"[1.2.3.4]:5060\"", "brackets are for IPv6"],
        ),
        (
            listen_only("2001:db8::1:99999", &[]),
            vec!["must be in brackets: [2001:db8::1]:99999"],
        ),
        (
            listen_only("[fe80::1%eth0]:5060", &[]),
            vec![
                "--listen \"[fe80::1%eth0]:5060\"",
                "zone ids",
                "not supported",
            ],
        ),
        (listen_only("fe80::1%2", &[]), vec!["zone ids"]),
        (
            listen_only("224.0.0.1", &[]),
            vec!["--listen \"224.0.0.1\"", "multicast or broadcast"],
        ),
        (
            vec![
                "--listen",
                "10.0.0.1",
                "--listen",
                "10.0.0.1:5060",
                "--backend",
                "10.0.0.2",
            ],
            vec!["--listen \"10.0.0.1:5060\": duplicate listen address 10.0.0.1:5060"],
        ),
        // backend
        (
            vec!["--listen", "10.0.0.1"],
            vec!["backend: at least one backend is required", "--backend"],
        ),
        (
            backend_only("10.0.0.1:99999"),
            vec!["--backend \"10.0.0.1:99999\": port out of range"],
        ),
        (
            backend_only("proxy1.example.com"),
            vec![
                "--backend \"proxy1.example.com\"",
                "IP literals are required",
            ],
        ),
        (
            backend_only("0.0.0.0:5060"),
            vec!["--backend \"0.0.0.0:5060\"", "unspecified address"],
        ),
        (
            backend_only("255.255.255.255"),
            vec!["--backend \"255.255.255.255\"", "broadcast"],
        ),
        (
            backend_only("10.0.0.2;weight=1001"),
            vec!["--backend \"10.0.0.2;weight=1001\": weight 1001 out of range (0..=1000)"],
        ),
        (
            backend_only("10.0.0.2;weight=99999999999999999999999999999999999999999999"),
            vec!["weight 99999999999999999999999999999999999999999999 out of range (0..=1000)"],
        ),
        (
            backend_only("10.0.0.2;weight=abc"),
            vec![
                "--backend \"10.0.0.2;weight=abc\"",
                "weight \"abc\" is not an integer",
            ],
        ),
        (
            backend_only("10.0.0.2;weight=-1"),
            vec!["weight \"-1\" is not an integer (0..=1000)"],
        ),
        (
            backend_only("10.0.0.2;weight="),
            vec!["weight \"\" is not an integer"],
        ),
        (
            backend_only("10.0.0.2;wieght=2"),
            vec!["unknown parameter \"wieght\" (only `;weight=W` is accepted)"],
        ),
        (
            backend_only("10.0.0.2;weight=1;weight=2"),
            vec!["weight given twice"],
        ),
        (backend_only("10.0.0.2;"), vec!["empty `;` parameter"]),
        (
            backend_only("10.0.0.2,weight=2"),
            vec!["--backend \"10.0.0.2,weight=2\"", "not an IP address"],
        ),
        (
            vec![
                "--listen",
                "10.0.0.1",
                "--backend",
                "10.0.0.2",
                "--backend",
                "10.0.0.2:5060",
            ],
            vec!["--backend \"10.0.0.2:5060\": duplicate backend address 10.0.0.2:5060"],
        ),
        (
            backend_only("10.0.0.1"),
            vec!["--backend \"10.0.0.1\"", "one of our listen addresses"],
        ),
        (
            vec![
                "--listen",
                "10.0.0.1",
                "--backend",
                "10.0.0.2;weight=0",
                "--backend",
                "10.0.0.3;weight=0",
            ],
            vec![
                "--backend: every backend has weight 0",
                "at least one needs a weight above 0",
            ],
        ),
        (
            backend_only("[2001:db8::2]"),
            vec![
                "--backend \"[2001:db8::2]\"",
                "IPv6 backend, but the internal address 10.0.0.1 is IPv4",
            ],
        ),
        // workers
        (with(&["--workers", "0"]), vec![workers_zero.as_str()]),
        (with(&["--workers", &more]), vec![workers_more.as_str()]),
        // internal
        (
            listen_only("0.0.0.0:5060", &["--advertise", "203.0.113.1"]),
            vec![
                "internal: not given",
                "0.0.0.0:5060",
                "--internal",
                "concrete",
            ],
        ),
        (
            with(&["--internal", "0.0.0.0"]),
            vec!["--internal \"0.0.0.0\"", "unspecified", "concrete IP"],
        ),
        (
            with(&["--internal", "internal.example"]),
            vec![
                "--internal \"internal.example\"",
                "IP literals are required",
            ],
        ),
        (
            with(&["--internal", "10.0.0.1:0"]),
            vec![
                "--internal \"10.0.0.1:0\": port out of range",
                "omit the port",
            ],
        ),
        (
            with(&["--internal", "10.0.0.1:65536"]),
            vec!["--internal \"10.0.0.1:65536\": port out of range"],
        ),
        (
            with(&["--internal", "10.0.0.1:5060", "--workers", "1"]),
            vec![
                "--internal \"10.0.0.1:5060\"",
                "internal ports 5060..=5060 overlap the listen address 10.0.0.1:5060",
            ],
        ),
        (
            listen_only(
                "0.0.0.0:5060",
                &[
                    "--internal",
                    "10.0.0.1:5060",
                    "--advertise",
                    "192.0.2.1",
                    "--workers",
                    "1",
                ],
            ),
            vec!["overlap the listen address 0.0.0.0:5060"],
        ),
        (
            with(&["--internal", "[fd00::1]"]),
            vec![
                "--backend \"10.0.0.2\"",
                "IPv4 backend, but the internal address fd00::1 is IPv6",
            ],
        ),
        // advertise
        (
            listen_only("0.0.0.0", &["--internal", "10.0.0.1"]),
            vec!["advertise: not given", "0.0.0.0:5060", "--advertise"],
        ),
        (
            with(&["--advertise", "0.0.0.0"]),
            vec!["--advertise \"0.0.0.0\"", "unspecified"],
        ),
        (
            with(&["--advertise", "239.1.1.1"]),
            vec!["--advertise \"239.1.1.1\"", "multicast"],
        ),
        // secret
        (with(&["--secret", ""]), vec!["--secret: must not be empty"]),
        // table size
        (
            with(&["--table-size", "65536"]),
            vec!["--table-size: 65536 is not prime"],
        ),
        (
            with(&["--table-size", "1"]),
            vec!["--table-size: 1 is not prime"],
        ),
        (
            with(&["--table-size", "0"]),
            vec!["--table-size: 0 is not prime"],
        ),
        (
            with(&["--table-size", "16777259"]),
            vec!["--table-size: 16777259 is out of range"],
        ),
        (
            vec![
                "--listen",
                "10.0.0.1",
                "--backend",
                "10.0.0.2",
                "--backend",
                "10.0.0.3",
                "--backend",
                "10.0.0.4",
                "--table-size",
                "2",
            ],
            vec!["--table-size: 2 is smaller than the number of backends (3)"],
        ),
        // config file
        (
            with(&["--config", "/nonexistent/sipshard.toml"]),
            vec!["config file /nonexistent/sipshard.toml:", "No such file"],
        ),
    ];
    for (argv, parts) in &table {
        let message = cli_err(argv);
        assert_contains(&message, parts);
    }

    // Base port + workers past 65535 (needs at least 2 cores to be reachable).
    if n >= 2 {
        let workers = n.to_string();
        let base = 65536 - n + 1;
        let internal = format!("10.0.0.1:{base}");
        let message = cli_err(&[
            "--listen",
            "10.0.0.1",
            "--backend",
            "10.0.0.2",
            "--internal",
            &internal,
            "--workers",
            &workers,
        ]);
        assert_contains(
            &message,
            &[
                &format!("--internal \"{internal}\""),
                &format!("base port {base} + {n} workers runs past 65535"),
            ],
        );
    }
}

#[test]
fn clap_rejects_malformed_numbers_naming_the_flag() {
    for (argv, flag) in [
        (["--workers", "two"], "--workers"),
        (["--workers", "--retry-after=-1"], "--workers"),
        (["--retry-after", "4294967296"], "--retry-after"),
        (["--retry-after=-1", "--workers=1"], "--retry-after"),
        (["--table-size", "x"], "--table-size"),
        (["--advertise", "host.example"], "--advertise"),
    ] {
        let argv = std::iter::once("balance").chain(argv);
        let e = Wrapper::try_parse_from(argv)
            .err()
            .expect("accepted")
            .to_string();
        assert!(e.contains(flag), "{e}");
    }
}

#[test]
fn errors_carry_their_origin() {
    match cli(&[
        "--listen",
        "10.0.0.1",
        "--backend",
        "10.0.0.2",
        "--workers",
        "0",
    ]) {
        Err(ConfigError::Invalid { origin, key, .. }) => {
            assert_eq!(origin, Origin::CommandLine);
            assert_eq!(key, "workers");
        }
        other => panic!("{other:?}"),
    }
    let file =
        TempFile::new("listen = [\"10.0.0.1\"]\nworkers = 0\n[[backend]]\naddr = \"10.0.0.2\"\n");
    match cli(&["--config", file.path()]) {
        Err(ConfigError::Invalid { origin, key, .. }) => {
            assert_eq!(
                origin,
                Origin::File {
                    path: Some(file.0.clone()),
                    line: 2
                }
            );
            assert_eq!(key, "workers");
        }
        other => panic!("{other:?}"),
    }
    match cli(&["--config", "/nonexistent/x.toml"]) {
        Err(ConfigError::Read { path, .. }) => {
            assert_eq!(path, PathBuf::from("/nonexistent/x.toml"))
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Rejections in a file: each message names the file, the line, the key and the reason.

const HEAD: &str = "listen = [\"10.0.0.1:5060\"]\nworkers = 1\n"; // lines 1-2
const ONE_BACKEND: &str = "[[backend]]\naddr = \"10.0.0.2\"\n";

#[test]
fn file_errors() {
    let table: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{HEAD}lissen = [\"10.0.0.1\"]\n{ONE_BACKEND}"),
            vec![
                "line 3: unknown key \"lissen\"",
                "expected one of",
                "`listen`",
            ],
        ),
        (
            format!("{HEAD}{ONE_BACKEND}wieght = 2\n"),
            vec!["line 5: unknown key \"wieght\"", "`weight`"],
        ),
        (
            format!("{HEAD}[stats]\nport = 9090\n{ONE_BACKEND}"),
            vec!["line 3: unknown key \"stats\""],
        ),
        (
            format!("{HEAD}[metrics]\nport = 9090\n{ONE_BACKEND}"),
            vec!["line 3: metrics: expected a string, found a table"],
        ),
        (
            format!("{HEAD}retry_after = \n{ONE_BACKEND}"),
            vec!["line 3: retry_after: "],
        ),
        (
            format!("{HEAD}workers = 2\n{ONE_BACKEND}"),
            vec!["line 3: workers: duplicate key"],
        ),
        (
            format!("listen = [\"10.0.0.1\"]\nworkers = \"two\"\n{ONE_BACKEND}"),
            vec!["line 2: workers: expected an integer, found a string"],
        ),
        (
            format!("listen = [\"10.0.0.1\"]\nworkers = 1.5\n{ONE_BACKEND}"),
            vec!["line 2: workers: expected an integer, found a float"],
        ),
        (
            format!("listen = [\"10.0.0.1\"]\nworkers = 0\n{ONE_BACKEND}"),
            vec!["line 2: workers: 0 is not allowed (1..="],
        ),
        (
            format!("listen = [\"10.0.0.1\"]\nworkers = -4\n{ONE_BACKEND}"),
            vec!["line 2: workers: -4 is not allowed (1..="],
        ),
        (
            format!("listen = 5060\nworkers = 1\n{ONE_BACKEND}"),
            vec!["line 1: listen: expected a list of address strings, found an integer"],
        ),
        (
            format!("listen = [\"10.0.0.1\", 5060]\nworkers = 1\n{ONE_BACKEND}"),
            vec![
                "line 1: listen: expected a list of address strings, found an integer in the list",
            ],
        ),
        (
            format!("listen = []\nworkers = 1\n{ONE_BACKEND}"),
            vec!["line 1: listen: at least one address is required"],
        ),
        (
            format!("listen = [\"10.0.0.1\", \"sip.example.com\"]\nworkers = 1\n{ONE_BACKEND}"),
            vec![
                "line 1: listen \"sip.example.com\"",
                "IP literals are required",
            ],
        ),
        (
            format!("{HEAD}internal = 10\n{ONE_BACKEND}"),
            vec!["line 3: internal: expected a string, found an integer"],
        ),
        (
            format!("{HEAD}internal = \"10.0.0.1:70000\"\n{ONE_BACKEND}"),
            vec!["line 3: internal \"10.0.0.1:70000\": port out of range"],
        ),
        (
            format!("{HEAD}advertise = \"::\"\n{ONE_BACKEND}"),
            vec!["line 3: advertise \"::\"", "unspecified"],
        ),
        (
            format!("{HEAD}advertise = \"[::1]:5060\"\n{ONE_BACKEND}"),
            vec!["line 3: advertise \"[::1]:5060\": a port is not allowed here, only an IP"],
        ),
        (
            format!("{HEAD}secret = \"\"\n{ONE_BACKEND}"),
            vec!["line 3: secret: must not be empty"],
        ),
        (
            format!("{HEAD}secret = 12345\n{ONE_BACKEND}"),
            vec!["line 3: secret: expected a string, found an integer"],
        ),
        (
            format!("{HEAD}retry_after = -1\n{ONE_BACKEND}"),
            vec!["line 3: retry_after: -1 is out of range (0..=4294967295)"],
        ),
        (
            format!("{HEAD}table_size = 4294967311\n{ONE_BACKEND}"),
            vec!["line 3: table_size: 4294967311 is out of range"],
        ),
        (
            format!("{HEAD}table_size = 100\n{ONE_BACKEND}"),
            vec!["line 3: table_size: 100 is not prime"],
        ),
        (
            format!("{HEAD}backend = []\n"),
            vec!["line 3: backend: at least one backend is required"],
        ),
        (
            format!("{HEAD}[backend]\naddr = \"10.0.0.2\"\n"),
            vec!["line 3: [backend]: this key holds a list of tables; write [[backend]]"],
        ),
        (
            format!("{HEAD}{ONE_BACKEND}[[backend]]\nweight = 2\n"),
            vec!["line 5: backend: missing key \"addr\""],
        ),
        (
            format!("{HEAD}backend = [\"10.0.0.2\"]\n"),
            vec![
                "line 3: backend: invalid type: string \"10.0.0.2\", expected a table with `addr`",
            ],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = 10\n"),
            vec!["line 4: backend: expected a string, found an integer"],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = \"10.0.0.2;weight=3\"\n"),
            vec!["line 4: backend \"10.0.0.2;weight=3\"", "`weight = W`"],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = \"10.0.0.2\"\nweight = 5000\n"),
            vec!["line 5: backend \"10.0.0.2\": weight 5000 out of range (0..=1000)"],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = \"10.0.0.2\"\nweight = \"2\"\n"),
            vec!["line 5: backend: expected an integer, found a string"],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = \"10.0.0.2:99999\"\n"),
            vec!["line 4: backend \"10.0.0.2:99999\": port out of range"],
        ),
        (
            format!("{HEAD}{ONE_BACKEND}[[backend]]\naddr = \"10.0.0.2:5060\"\n"),
            vec!["line 6: backend \"10.0.0.2:5060\": duplicate backend address"],
        ),
        (
            format!("{HEAD}[[backend]]\naddr = \"10.0.0.2\"\nweight = 0\n"),
            vec!["line 3: backend: every backend has weight 0"],
        ),
    ];
    for (text, parts) in &table {
        // Through a file given with --config: the message starts with the file name.
        let file = TempFile::new(text);
        let message = cli_err(&["--config", file.path()]);
        let prefix = format!("config file {}: ", file.path());
        assert!(message.starts_with(&prefix), "{message:?} for\n{text}");
        assert_contains(&message, parts);
        // Through from_toml_str: the same message without a file name.
        let message = BalanceConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(message.starts_with("config: "), "{message:?}");
        assert_contains(&message, parts);
    }
}

#[test]
fn file_without_backends() {
    // Nothing to point at: the message names the key and both ways to give it.
    let file = TempFile::new(HEAD);
    let message = cli_err(&["--config", file.path()]);
    assert_contains(
        &message,
        &[
            "backend: at least one backend is required",
            "--backend",
            "[[backend]]",
        ],
    );
}

#[test]
fn file_errors_never_show_the_secret() {
    for text in [
        "secret = \"hunter2-topsecret\nworkers = 1\n",
        "secret = \"hunter2-topsecret\" junk\n",
        "secret = \"\"\"hunter2-topsecret\n",
        "secret = 'hunter2-topsecret\n",
        "secret = \"\"\"\nhunter2 = topsecret\n",
        "secret = \"\"\"\n[hunter2]\n",
        "secret = \"\"\"\nworkers = hunter2\n",
    ] {
        let message = BalanceConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.starts_with("config: line "), "{message}");
    }
}

#[test]
fn file_syntax_error_names_the_line() {
    let message =
        BalanceConfig::from_toml_str("workers = 1\nlisten = [\"10.0.0.1\"\n").unwrap_err();
    assert!(matches!(message, ConfigError::Toml { .. }), "{message:?}");
    let message = message.to_string();
    assert!(message.starts_with("config: line "), "{message}");
}

// ---------------------------------------------------------------------------------------------
// No input makes the configuration layer panic.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_address_text_is_handled(text in "[ -~]{0,40}", pick in 0usize..3) {
        let mut argv = vec!["--secret", "s", "--listen", "10.0.0.1", "--backend", "10.0.0.2"];
        match pick {
            0 => argv[3] = &text,
            1 => argv[5] = &text,
            _ => argv.extend(["--internal", &text]),
        }
        let argv: Vec<&str> = argv;
        if let Ok(parsed) = Wrapper::try_parse_from(std::iter::once("balance").chain(argv.iter().copied())) {
            let _ = BalanceConfig::from_args(&parsed.args);
        }
    }

    #[test]
    fn any_address_like_text_is_handled(text in "[0-9a-fA-F:.\\[\\]%;=weight ]{0,30}") {
        let argv = ["balance", "--secret", "s", "--listen", "10.0.0.1", "--backend", &text, "--internal", &text];
        if let Ok(parsed) = Wrapper::try_parse_from(argv) {
            let _ = BalanceConfig::from_args(&parsed.args);
        }
    }

    #[test]
    fn any_toml_text_is_handled(text in "(listen|backend|\\[\\[backend\\]\\]|addr|weight|workers|secret|table_size|retry_after|internal|advertise|=|\"|'|\\[|\\]|,|\n|-?[0-9]{1,22}|10\\.0\\.0\\.[0-9]|::1| )*") {
        let _ = BalanceConfig::from_toml_str(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Probing, endpoints and logs

const ONE: &[&str] = &["--listen", "127.0.0.1:5060", "--backend", "127.0.0.2"];

fn with(extra: &[&str]) -> Vec<&'static str> {
    ONE.iter()
        .copied()
        .chain(extra.iter().map(|s| &*String::leak(s.to_string())))
        .collect()
}

#[test]
fn probe_defaults_and_per_backend_overrides() {
    use sipshard::config::Accept;
    use std::time::Duration;
    let c = cli_ok(ONE);
    assert_eq!(
        c.backends
            .iter()
            .map(|b| b.probe.clone())
            .collect::<Vec<_>>(),
        vec![ProbePolicy::default()]
    );
    assert_eq!(c.backends[0].probe.interval, Duration::from_millis(1000));
    assert_eq!(c.backends[0].probe.timeout, Duration::from_millis(500));
    assert_eq!(
        (
            c.backends[0].probe.failures_to_down,
            c.backends[0].probe.successes_to_up
        ),
        (3, 2)
    );
    assert_eq!(c.backends[0].probe.accept, Accept::AnyButServerError);
    assert_eq!((c.metrics, c.control), (None, None));
    assert_eq!((c.log_level.as_str(), c.log_json), ("info", false));
    assert!(!c.residence_time);
    assert_eq!(c.steering, sipshard::net::Steering::CallId);
    assert_eq!(c.busy_poll, Duration::ZERO);

    // Flags; a timeout not given follows a shorter interval.
    let c = cli_ok(&with(&[
        "--probe-interval-ms",
        "200",
        "--probe-failures",
        "5",
        "--probe-successes",
        "1",
        "--probe-accept",
        "200, 404",
        "--metrics",
        "127.0.0.1:9090",
        "--control",
        "[::1]:9091",
        "--log-level",
        "sipshard=debug",
        "--log-format",
        "JSON",
        "--residence-time",
        "On",
        "--steering",
        "flow",
        "--busy-poll-us",
        "50",
    ]));
    assert_eq!(c.busy_poll, Duration::from_micros(50));
    assert!(c.residence_time);
    assert_eq!(c.steering, sipshard::net::Steering::Flow);
    let p = &c.backends[0].probe;
    assert_eq!(p.interval, Duration::from_millis(200));
    assert_eq!(p.timeout, Duration::from_millis(200));
    assert_eq!((p.failures_to_down, p.successes_to_up), (5, 1));
    assert_eq!(p.accept, Accept::Codes(vec![200, 404]));
    assert_eq!(c.metrics, Some(sa("127.0.0.1:9090")));
    assert_eq!(c.control, Some(sa("[::1]:9091")));
    assert_eq!((c.log_level.as_str(), c.log_json), ("sipshard=debug", true));

    // File: global keys, one backend overriding some, another not probed at all.
    let file = TempFile::new(
        r#"
listen = "127.0.0.1:5060"
probe_interval_ms = 2000
probe_timeout_ms = 300
probe_accept = [200]
metrics = "127.0.0.1:9100"
[[backend]]
addr = "127.0.0.2"
[[backend]]
addr = "127.0.0.3"
probe_failures = 1
probe_accept = "any"
[[backend]]
addr = "127.0.0.4"
probe_interval_ms = 0
"#,
    );
    let c = cli_ok(&["--config", file.path()]);
    assert_eq!(c.backends.len(), 3);
    assert_eq!(c.backends[0].probe.interval, Duration::from_millis(2000));
    assert_eq!(c.backends[0].probe.timeout, Duration::from_millis(300));
    assert_eq!(c.backends[0].probe.accept, Accept::Codes(vec![200]));
    assert_eq!(c.backends[1].probe.failures_to_down, 1);
    assert_eq!(c.backends[1].probe.accept, Accept::AnyButServerError);
    assert_eq!(c.backends[1].probe.interval, Duration::from_millis(2000));
    assert!(c.backends[2].probe.interval.is_zero());
    assert_eq!(c.metrics, Some(sa("127.0.0.1:9100")));
    // The command line overrides the file's global probe keys, not a backend's own.
    let c = cli_ok(&["--config", file.path(), "--probe-accept", "any"]);
    assert_eq!(c.backends[0].probe.accept, Accept::AnyButServerError);
    assert!(c.backends[2].probe.interval.is_zero());
}

#[test]
fn probe_and_endpoint_errors() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--probe-interval-ms", "3600001"],
            &["--probe-interval-ms", "out of range"],
        ),
        (
            &["--probe-timeout-ms", "0"],
            &["--probe-timeout-ms", "out of range"],
        ),
        (
            &["--probe-interval-ms", "100", "--probe-timeout-ms", "200"],
            &["--probe-timeout-ms", "longer than the probe interval"],
        ),
        (
            &["--probe-failures", "0"],
            &["--probe-failures", "out of range (1..=100)"],
        ),
        (
            &["--probe-successes", "101"],
            &["--probe-successes", "out of range"],
        ),
        (
            &["--probe-accept", "2xx"],
            &["--probe-accept", "\"2xx\" is not a status code"],
        ),
        (
            &["--probe-accept", "700"],
            &["--probe-accept", "not a status code"],
        ),
        (&["--probe-accept", ""], &["--probe-accept"]),
        (
            &["--metrics", "127.0.0.1"],
            &["--metrics", "a port is required"],
        ),
        (
            &["--metrics", "localhost:9090"],
            &["--metrics", "not an IP address"],
        ),
        (&["--control", "224.0.0.1:9"], &["--control"]),
        (
            &["--metrics", "127.0.0.1:9090", "--control", "127.0.0.1:9090"],
            &["--control", "also the metrics address"],
        ),
        (
            &["--log-level", "loud"],
            &["--log-level", "expected error, warn"],
        ),
        (
            &["--log-format", "xml"],
            &["--log-format", "expected text or json"],
        ),
        (
            &["--busy-poll-us", "10001"],
            &["--busy-poll-us", "10001", "expected 0 to 10000"],
        ),
        (
            &["--steering", "round-robin"],
            &[
                "--steering",
                "round-robin",
                "expected callid or random or flow",
            ],
        ),
        (
            &["--residence-time", "yes"],
            &["--residence-time", "yes", "expected on or off"],
        ),
    ];
    for (extra, parts) in cases {
        let e = cli_err(&with(extra));
        assert_contains(&e, parts);
    }
    let file_cases: &[(&str, &[&str])] = &[
        (
            "probe_interval_ms = \"1s\"\n",
            &["line 2", "probe_interval_ms", "expected an integer"],
        ),
        (
            "busy_poll_us = \"50\"\n",
            &["line 2", "busy_poll_us", "expected an integer"],
        ),
        (
            "busy_poll_us = -1\n",
            &["line 2", "busy_poll_us", "expected 0 to 10000"],
        ),
        (
            "steering = \"hash\"\n",
            &["line 2", "steering", "expected callid or random or flow"],
        ),
        (
            "residence_time = 1\n",
            &["line 2", "residence_time", "expected true, false"],
        ),
        (
            "residence_time = \"maybe\"\n",
            &["residence_time", "expected on or off"],
        ),
        (
            "probe_accept = [\"200\"]\n",
            &["probe_accept", "expected a list of status codes"],
        ),
        (
            "probe_accept = true\n",
            &["probe_accept", "expected \"any\" or a list"],
        ),
        ("probe_failures = 0\n", &["probe_failures", "out of range"]),
        ("log_level = 3\n", &["log_level", "expected a string"]),
    ];
    for (text, parts) in file_cases {
        let file = TempFile::new(&format!(
            "listen = \"127.0.0.1:5060\"\n{text}[[backend]]\naddr = \"127.0.0.2\"\n"
        ));
        assert_contains(&cli_err(&["--config", file.path()]), parts);
    }
    // Per-backend errors name the backend.
    let file = TempFile::new(
        "listen = \"127.0.0.1:5060\"\n[[backend]]\naddr = \"127.0.0.2\"\nprobe_timeout_ms = 5000\n",
    );
    assert_contains(
        &cli_err(&["--config", file.path()]),
        &[
            "backend \"127.0.0.2\"",
            "probe_timeout_ms",
            "longer than the probe interval",
        ],
    );
    let file = TempFile::new(
        "listen = \"127.0.0.1:5060\"\n[[backend]]\naddr = \"127.0.0.2\"\nprobe_failures = -1\n",
    );
    assert_contains(
        &cli_err(&["--config", file.path()]),
        &["backend", "probe_failures", "out of range"],
    );
}

#[test]
fn a_backends_own_interval_gets_the_default_timeout_unless_one_is_given() {
    use std::time::Duration;
    let text = |global_timeout: &str| {
        format!(
            "listen = \"127.0.0.1:5060\"\nprobe_interval_ms = 200\n{global_timeout}\
             [[backend]]\naddr = \"127.0.0.2\"\n[[backend]]\naddr = \"127.0.0.3\"\nprobe_interval_ms = 1000\n"
        )
    };
    let file = TempFile::new(&text(""));
    let c = cli_ok(&["--config", file.path()]);
    assert_eq!(c.backends[0].probe.timeout, Duration::from_millis(200));
    assert_eq!(c.backends[1].probe.timeout, Duration::from_millis(500));
    let file = TempFile::new(&text("probe_timeout_ms = 150\n"));
    let c = cli_ok(&["--config", file.path()]);
    assert_eq!(c.backends[0].probe.timeout, Duration::from_millis(150));
    assert_eq!(c.backends[1].probe.timeout, Duration::from_millis(150));
}

#[test]
fn residence_time_is_a_switch_in_a_file() {
    for (text, on) in [
        ("false", false),
        ("true", true),
        ("\"off\"", false),
        ("\"ON\"", true),
    ] {
        let c = BalanceConfig::from_toml_str(&format!(
            "listen = \"10.0.0.1:5060\"\nworkers = 1\nresidence_time = {text}\nsteering = \"FLOW\"\n[[backend]]\naddr = \"10.0.0.2\"\n"
        ))
        .unwrap();
        assert_eq!(c.residence_time, on, "{text}");
        assert_eq!(c.steering, sipshard::net::Steering::Flow);
    }
}

// ---------------------------------------------------------------------------------------------
// The manual covers every option.

#[test]
fn configuration_manual_lists_every_flag_and_what_needs_a_restart() {
    let manual = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let command = Wrapper::command();
    let flags: Vec<&str> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|f| *f != "help")
        .collect();
    assert!(flags.len() >= 20, "{flags:?}");
    for flag in flags {
        assert!(
            manual.contains(&format!("| `--{flag}")),
            "docs/configuration.md has no row for --{flag}"
        );
    }
    // The default the help gives (from the option's declaration) is the one the manual gives.
    for arg in command.get_arguments() {
        let (Some(flag), Some(help)) = (arg.get_long(), arg.get_help()) else {
            continue;
        };
        let help = help.to_string();
        let Some(default) = help
            .split_once("[default: ")
            .and_then(|(_, rest)| rest.strip_suffix(']'))
        else {
            continue;
        };
        let row = manual
            .lines()
            .find(|l| l.starts_with(&format!("| `--{flag}")))
            .expect("a row");
        // Columns: flag, TOML key, default, constraints; `\|` inside a cell is not a border.
        let cells: Vec<&str> = row.split(" | ").collect();
        let cell = cells.get(2).copied().unwrap_or_default();
        let cell = cell.trim().trim_start_matches('`');
        let words: Vec<&str> = default
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .collect();
        let first = words.first().copied().unwrap_or_default();
        assert!(
            cell.starts_with(first) || cell.contains(&format!("`{first}`")),
            "--{flag}: the help says default {default:?}, the manual's row says {cell:?}"
        );
    }
    let restart_row = manual
        .lines()
        .skip_while(|l| !l.starts_with("| takes effect at once | needs a restart |"))
        .nth(2)
        .expect("the reload table");
    let restart_cell = restart_row.rsplit('|').nth(1).expect("its second column");
    for key in sipshard::config::restart_only_keys() {
        assert!(
            restart_cell.contains(&format!("`{key}`")),
            "the reload table of docs/configuration.md does not list {key} as needing a restart"
        );
    }
}

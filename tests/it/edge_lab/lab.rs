//! The lab: three network namespaces joined by two veth pairs, Kamailio and the balancer in
//! them, and the scratch directory that keeps their configurations and logs.

use super::*;
use crate::support::netns::{veth, Netns};
use sipshard::control::Status;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails the test, saying what is missing, unless it runs as root with `ip` and `kamailio`.
pub(super) fn require_root_and_tools() {
    // SAFETY: geteuid(2) has no preconditions and no memory effects.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the edge lab makes network namespaces: it must run as root"
    );
    for (tool, package) in [
        ("ip", "iproute2"),
        ("ss", "iproute2"),
        ("kamailio", "kamailio"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            found,
            "the edge lab needs `{tool}` (Debian package {package}; .ci/run installs it)"
        );
    }
}

/// The three namespaces, the daemons in them, and the scratch directory.
pub(super) struct Lab {
    /// Kamailio and the balancer (dropped first: killed before their namespaces go).
    pub(super) daemons: Vec<Daemon>,
    /// The phones' network.
    pub(super) public: Netns,
    /// The balancer's namespace, on both networks.
    pub(super) balancer: Netns,
    /// The farm's network.
    pub(super) farm: Netns,
    /// Configurations and logs.
    pub(super) dir: ScratchDir,
}

impl Lab {
    /// Builds the networks, starts the farm, then the balancer (`--record-route on` or
    /// off). `id` tells two labs of one run apart (2 or 3 bytes: it is part of interface
    /// names).
    pub(super) fn start(id: &str, record_route: bool) -> Lab {
        require_root_and_tools();
        let pid = std::process::id();
        let dir = ScratchDir::new(format!("sipshard-edge-{id}-{pid}"));
        let namespace = |role: &str| Netns::create(format!("sipshard-edge-{id}-{role}-{pid}"));
        let mut lab = Lab {
            daemons: Vec::new(),
            public: namespace("public"),
            balancer: namespace("balancer"),
            farm: namespace("farm"),
            dir,
        };
        lab.wire(&format!("{id}{pid}"));
        lab.forbid_forwarding();
        lab.start_farm();
        lab.start_balancer(record_route);
        lab
    }

    /// The veth pairs and addresses; then checks that neither edge network has a route to
    /// the other.
    pub(super) fn wire(&self, suffix: &str) {
        let names = |side: &str| format!("{side}{suffix}");
        veth(&self.public, &names("pp"), &self.balancer, &names("pb"));
        veth(&self.balancer, &names("fb"), &self.farm, &names("ff"));
        let add = |netns: &Netns, ip: Ipv4Addr, dev: &str| {
            netns.ip(&["addr", "add", &format!("{ip}/24"), "dev", dev]);
        };
        add(&self.public, PHONE, &names("pp"));
        add(&self.balancer, BALANCER_PUBLIC, &names("pb"));
        add(&self.balancer, BALANCER_INTERNAL, &names("fb"));
        for ip in BACKENDS.into_iter().chain([REGISTRAR, FARM_UA]) {
            add(&self.farm, ip, &names("ff"));
        }
        assert!(
            !has_route(&self.public, FARM_UA),
            "the public side reaches the farm"
        );
        assert!(
            !has_route(&self.farm, PHONE),
            "the farm reaches the public side"
        );
    }

    /// Turns IP forwarding off in the balancer's namespace (a fresh one starts with it off;
    /// this makes sure) and checks it.
    pub(super) fn forbid_forwarding(&self) {
        let path = "/proc/sys/net/ipv4/ip_forward";
        let value = self
            .balancer
            .shell(&format!("echo 0 > {path} && cat {path}"));
        assert_eq!(
            value.trim(),
            "0",
            "IP forwarding in the balancer's namespace"
        );
    }

    /// The registrar and the two backends, each bound before this returns.
    pub(super) fn start_farm(&mut self) {
        let registrar = REGISTRAR_CFG.replace("@LISTEN@", &REGISTRAR.to_string());
        self.start_kamailio("registrar", REGISTRAR, &registrar);
        for (n, ip) in BACKENDS.into_iter().enumerate() {
            let config = BACKEND_CFG
                .replace("@LISTEN@", &ip.to_string())
                .replace("@REGISTRAR@", &REGISTRAR.to_string());
            self.start_kamailio(&format!("backend{n}"), ip, &config);
        }
    }

    /// One Kamailio, in the foreground, logging to the scratch directory.
    pub(super) fn start_kamailio(&mut self, name: &str, ip: Ipv4Addr, config: &str) {
        let config_path = self.dir.write(&format!("{name}.cfg"), config);
        let mut command = self.farm.command("kamailio");
        command
            .args(["-DD", "-E", "-m", "16", "-M", "4", "-f"])
            .arg(&config_path)
            .arg("-P")
            .arg(self.dir.path(&format!("{name}.pid")))
            .arg("-Y")
            .arg(self.dir.path(""));
        let daemon = Daemon::spawn(name, command, self.dir.path(&format!("{name}.log")));
        self.daemons.push(daemon);
        self.wait_bound(&self.farm, SocketAddr::from((ip, SIP_PORT)));
    }

    /// `sipshard balance` in its namespace, between the two networks.
    pub(super) fn start_balancer(&mut self, record_route: bool) {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        let public = SocketAddr::from((BALANCER_PUBLIC, SIP_PORT));
        let mut command = self.balancer.command(env!("CARGO_BIN_EXE_sipshard"));
        command
            .arg("balance")
            .args(["--listen", &public.to_string()])
            .args(["--internal", &format!("{BALANCER_INTERNAL}:5070")])
            .args(["--backend", &format!("{}:{SIP_PORT}", BACKENDS[0])])
            .args(["--backend", &format!("{}:{SIP_PORT}", BACKENDS[1])])
            .args(["--secret", "edge-lab", "--control", CONTROL])
            .args([
                "--workers",
                &workers.to_string(),
                "--probe-interval-ms",
                "0",
            ])
            .args(["--record-route", if record_route { "on" } else { "off" }]);
        let log = self.dir.path("balancer.log");
        self.daemons.push(Daemon::spawn("balancer", command, log));
        self.wait_bound(&self.balancer, public);
        self.wait_controlled();
    }

    /// Waits for a daemon's socket; on failure says which daemons died and why.
    pub(super) fn wait_bound(&self, netns: &Netns, addr: SocketAddr) {
        if let Err(why) = netns.wait_udp_bound(addr, STARTUP) {
            panic!("{why}\n{}", self.daemon_report());
        }
    }

    /// Waits until the balancer's control API answers.
    pub(super) fn wait_controlled(&self) {
        let deadline = Instant::now() + STARTUP;
        while self.try_status().is_err() {
            assert!(
                Instant::now() < deadline,
                "no control API: {}",
                self.daemon_report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of each daemon's log.
    pub(super) fn daemon_report(&self) -> String {
        self.daemons
            .iter()
            .map(Daemon::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `sipshard ctl status --json`, run in the balancer's namespace.
    pub(super) fn try_status(&self) -> Result<Status, String> {
        let output = self
            .balancer
            .command(env!("CARGO_BIN_EXE_sipshard"))
            .args(["ctl", "--control", CONTROL, "status", "--json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
    }

    /// The balancer's status.
    pub(super) fn status(&self) -> Status {
        self.try_status()
            .unwrap_or_else(|e| panic!("ctl status: {e}"))
    }

    /// A PJSIP user agent on `ip` in `netns`.
    pub(super) fn user_agent(
        &self,
        python: &Path,
        netns: &Netns,
        ip: Ipv4Addr,
        name: &str,
    ) -> UserAgent {
        UserAgent::start(python, netns, ip, &self.dir, name)
    }

    /// Marks the run as passed: its scratch directory can go.
    pub(super) fn succeeded(&self) {
        self.dir.remove_when_dropped();
    }
}

/// True if `netns` has a route to `ip`.
pub(super) fn has_route(netns: &Netns, ip: Ipv4Addr) -> bool {
    netns
        .command("ip")
        .args(["route", "get", &ip.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A directory for one lab's files, removed when dropped after `remove_when_dropped`
/// (kept, and named on stderr, when the test failed).
pub(super) struct ScratchDir {
    root: PathBuf,
    remove: std::cell::Cell<bool>,
}

impl ScratchDir {
    /// A fresh `$TMPDIR/name`.
    pub(super) fn new(name: String) -> ScratchDir {
        let root = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        ScratchDir {
            root,
            remove: std::cell::Cell::new(false),
        }
    }

    /// The path of `name` in it.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `contents` to `name` in it; returns the path.
    pub(super) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The run passed: remove it when dropped.
    pub(super) fn remove_when_dropped(&self) {
        self.remove.set(true);
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.remove.get() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("edge lab: logs kept in {}", self.root.display());
        }
    }
}

/// A long-running child (Kamailio, the balancer) whose output goes to a log file; killed
/// when dropped.
pub(super) struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its stdout and stderr in `log`.
    pub(super) fn spawn(name: &str, mut command: Command, log: PathBuf) -> Daemon {
        let file = File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Its name and the last lines of its log.
    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("--- {} ({}):\n{tail}", self.name, self.log.display())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

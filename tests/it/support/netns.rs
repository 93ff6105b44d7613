//! Network namespaces for tests that need real network separation (run as root): made
//! with `ip netns`, entered with `ip netns exec`, and removed, with every process still in
//! them, when dropped.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `ip ARGS` and fails the test with its stderr if it does not succeed.
pub fn ip(args: &[&str]) {
    let output = run(Command::new("ip").args(args));
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command` to its end with no input, its output collected.
fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// A network namespace of our own, with its loopback up. Dropping it kills the processes
/// left in it and deletes it (and with it the interfaces it holds).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` (which must be unique on the machine: put the process
    /// id in it) and brings its loopback up.
    pub fn create(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip ARGS` inside it (`ip -n NAME ARGS`), failing the test if that fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A command that runs `program` inside it (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `sh -c SCRIPT` inside it and returns its standard output; fails the test if
    /// the script fails.
    pub fn shell(&self, script: &str) -> String {
        let output = run(self.command("sh").args(["-c", script]));
        assert!(
            output.status.success(),
            "`{script}` in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls (at most `within`) until a UDP socket is bound to `addr` inside it.
    pub fn wait_udp_bound(&self, addr: SocketAddr, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let wanted = addr.to_string();
        loop {
            let listening = self.shell("ss -Hnlu");
            if listening.split_whitespace().any(|word| word == wanted) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nothing bound {addr} in {}: {listening}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ids of the processes inside it.
    fn pids(&self) -> Vec<libc::pid_t> {
        let output = run(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect()
    }

    /// Kills what runs inside it (all of it was started by the test), for at most 5 s.
    fn kill_processes(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) has no memory effects; the pid is one of the processes
                // in this namespace, which only the test put there.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_processes();
        let _ = run(Command::new("ip").args(["netns", "delete", &self.name]));
    }
}

/// Joins `a` and `b` with a veth pair: interface `a_name` in `a`, `b_name` in `b` (names
/// of at most 15 bytes), both up.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    ip(&[
        "link", "add", a_name, "netns", &a.name, "type", "veth", "peer", "name", b_name, "netns",
        &b.name,
    ]);
    a.ip(&["link", "set", a_name, "up"]);
    b.ip(&["link", "set", b_name, "up"]);
}

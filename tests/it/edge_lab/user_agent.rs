//! A PJSIP user agent driven over its stdin and stdout (tests/edge/ua.py), and what it
//! reports.

use super::lab::ScratchDir;
use super::*;
use crate::support::netns::Netns;
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// What a user agent reports about one call (see tests/edge/ua.py).
#[derive(Debug, Deserialize)]
pub(super) struct CallReport {
    /// Its Call-ID.
    pub(super) call_id: Option<String>,
    /// Answered and acknowledged.
    pub(super) confirmed: bool,
    /// Over.
    pub(super) disconnected: bool,
    /// "local" or "remote".
    pub(super) hung_up_by: Option<String>,
    /// The final response to the BYE this side sent.
    pub(super) bye_status: Option<u16>,
    /// The final response to the INVITE this side sent.
    pub(super) invite_status: Option<u16>,
    /// The final response to the re-INVITE this side sent.
    pub(super) reinvite_status: Option<u16>,
    /// The methods of the requests it received in the call.
    pub(super) received: Vec<String>,
    /// Set when a wait timed out.
    pub(super) error: Option<String>,
}

impl CallReport {
    /// True if a BYE came in.
    pub(super) fn received_bye(&self) -> bool {
        self.received.iter().any(|m| m == "BYE")
    }
}

/// A user agent's answer to `register`.
#[derive(Debug, Deserialize)]
pub(super) struct Registration {
    /// The final status of the REGISTER (none if it timed out).
    pub(super) status: Option<u16>,
}

/// The Python that has `pjsua2`; fails the test, saying how to get one, when there is none.
pub(super) fn edge_python() -> PathBuf {
    let python =
        std::env::var_os(PYTHON_VAR).map_or_else(|| PathBuf::from(DEFAULT_PYTHON), PathBuf::from);
    let imports = Command::new(&python)
        .args(["-c", "import pjsua2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        imports,
        "the edge lab needs a Python with PJSIP's binding: {} cannot `import pjsua2`. \
         Make it as .ci/run does (python3 -m venv /opt/sipshard-edge-venv && \
         /opt/sipshard-edge-venv/bin/pip install pjsua2-python), or point {PYTHON_VAR} at one",
        python.display()
    );
    python
}

/// A PJSIP user agent (tests/edge/ua.py): commands on its stdin, one JSON line per reply
/// or event on its stdout. Killed when dropped.
pub(super) struct UserAgent {
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    pub(super) lines: Receiver<String>,
    /// Lines read while waiting for another kind.
    pub(super) backlog: VecDeque<serde_json::Value>,
    pub(super) stderr: PathBuf,
}

impl UserAgent {
    /// Starts the driver on `ip` in `netns` and waits for it to be ready.
    pub(super) fn start(
        python: &Path,
        netns: &Netns,
        ip: Ipv4Addr,
        dir: &ScratchDir,
        name: &str,
    ) -> UserAgent {
        let stderr = dir.path(&format!("{name}.stderr"));
        let mut child = netns
            .command(python)
            .arg(UA_SCRIPT)
            .args([
                "--bind",
                &ip.to_string(),
                "--domain",
                &REGISTRAR.to_string(),
            ])
            .arg("--log")
            .arg(dir.path(&format!("{name}.pjsip.log")))
            .args(["--lifetime", "60"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} user agent: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = UserAgent {
            name: name.to_string(),
            child,
            stdin,
            lines,
            backlog: VecDeque::new(),
            stderr,
        };
        agent.next("reply", "ready", STARTUP);
        agent
    }

    /// Registers `user` at `registrar`, through `proxy`; incoming calls to it follow
    /// `policy`. The REGISTER's final status.
    pub(super) fn register(
        &mut self,
        user: &str,
        registrar: &str,
        proxy: Option<&str>,
        policy: &str,
    ) -> Option<u16> {
        self.send(&format!(
            "register {user} {registrar} {} {policy}",
            proxy.unwrap_or("-")
        ));
        let reply = self.next("reply", "register", UA_REPLY);
        self.decode::<Registration>(reply).status
    }

    /// One whole call from `user` to `target` through `proxy`, per `plan` ("hangup",
    /// "wait-bye", "reinvite").
    pub(super) fn call(
        &mut self,
        user: &str,
        target: &str,
        proxy: Option<&str>,
        plan: &str,
    ) -> CallReport {
        self.send(&format!(
            "call {user} {target} {} {plan}",
            proxy.unwrap_or("-")
        ));
        let reply = self.next("reply", "call", UA_REPLY);
        self.decode(reply)
    }

    /// The report of the next incoming call to end.
    pub(super) fn incoming(&mut self) -> CallReport {
        let event = self.next("event", "incoming", UA_REPLY);
        self.decode(event)
    }

    /// Writes one command line.
    pub(super) fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .unwrap_or_else(|e| panic!("{}: cannot send `{command}`: {e}", self.describe()));
    }

    /// Decodes a reply or event into its type.
    pub(super) fn decode<T: for<'de> Deserialize<'de>>(&self, value: serde_json::Value) -> T {
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{}: unexpected report {value}: {e}", self.describe()))
    }

    /// The next line whose `key` is `value` (lines of other kinds are kept for later), at
    /// most `within` from now.
    pub(super) fn next(&mut self, key: &str, value: &str, within: Duration) -> serde_json::Value {
        let matches = |line: &serde_json::Value| line[key] == value;
        if let Some(at) = self.backlog.iter().position(matches) {
            return self.backlog.remove(at).unwrap();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {key} {value} within {within:?}", self.describe())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before {key} {value}", self.describe())
                }
            };
            let parsed: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.describe()));
            if matches(&parsed) {
                return parsed;
            }
            self.backlog.push_back(parsed);
        }
    }

    /// Its name and where its stderr is (for failure messages).
    pub(super) fn describe(&self) -> String {
        format!(
            "user agent {} (stderr: {})",
            self.name,
            self.stderr.display()
        )
    }
}

impl Drop for UserAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

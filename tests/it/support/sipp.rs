//! sipp (the SIP test tool, Debian package sip-tester) as a child process of a test: its
//! scenario files under tests/data/sipp, a guard that kills it, and readers of what it
//! leaves behind (the statistics CSV of `-trace_stat`, the message trace of `-trace_msg`).

use super::farm::free_udp_port;
use super::process::loopback_addr;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A scenario file of tests/data/sipp.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sipp")
        .join(name)
}

/// A directory under the system temp dir for sipp's files, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("sipshard-sipp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    /// Removes the directory, unless the test failed: then its traces stay for a look.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sipp's files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running sipp, killed (and reaped) when dropped.
pub struct Sipp {
    child: Child,
}

impl Sipp {
    /// Starts `sipp ARGS` in `dir`, its terminal output discarded.
    pub fn spawn(dir: &Path, args: &[String]) -> Sipp {
        let child = Command::new("sipp")
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (apt-get install sip-tester)");
        Sipp { child }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the exit, at most `within`; kills it and fails if it takes longer.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("sipp did not finish within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The arguments of a sipp client that runs to its end on its own: no keyboard, a 60 s
/// limit that counts as an error, and its statistics written to `stats` (read them with
/// [`final_stat`]).
pub fn unattended_args(stats: &Path) -> Vec<String> {
    strings(&[
        "-nostdin",
        "-timeout",
        "60",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        stats.to_str().unwrap(),
        "-fd",
        "1",
    ])
}

/// Strings of `args`.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A sipp server (`-sf SCENARIO`) on a free loopback port, tracing every message to its
/// own file and answering OPTIONS probes (`-aa`).
pub struct SippServer {
    pub addr: SocketAddr,
    pub trace: PathBuf,
    sipp: Sipp,
}

impl SippServer {
    /// Starts server `name` on the scenario file `scenario_file` (its trace is `name.log`
    /// in `dir`); it gives up after `timeout_s` seconds whatever happens.
    pub fn start(dir: &Path, name: &str, scenario_file: &Path, timeout_s: u64) -> SippServer {
        let scenario = ["-sf", scenario_file.to_str().unwrap()];
        SippServer::start_with(dir, name, &scenario, timeout_s)
    }

    /// [`SippServer::start`] with the scenario given as sipp arguments (`-sn uas` for the
    /// built-in server).
    pub fn start_with(dir: &Path, name: &str, scenario: &[&str], timeout_s: u64) -> SippServer {
        let addr = loopback_addr(free_udp_port());
        let trace = dir.join(format!("{name}.log"));
        let mut args = strings(scenario);
        args.extend(strings(&[
            "-i",
            &addr.ip().to_string(),
            "-p",
            &addr.port().to_string(),
            "-nostdin",
            "-aa",
            "-timeout",
            &timeout_s.to_string(),
            "-trace_msg",
            "-message_file",
            trace.to_str().unwrap(),
        ]));
        SippServer {
            addr,
            trace,
            sipp: Sipp::spawn(dir, &args),
        }
    }

    /// Stops the server (its trace is complete then) and returns the trace's path.
    pub fn stop(self) -> PathBuf {
        let trace = self.trace.clone();
        drop(self.sipp);
        trace
    }
}

/// Whether a traced message was sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One message of a sipp message trace.
#[derive(Clone, Debug)]
pub struct Traced {
    pub direction: Direction,
    /// The method of a request, `None` for a response.
    pub method: Option<String>,
    /// The status code of a response.
    pub code: Option<u16>,
    pub call_id: String,
    /// The method of the CSeq header (what a response answers).
    pub cseq_method: String,
}

/// Every message of a sipp `-trace_msg` file (empty if there is none).
pub fn read_trace(path: &Path) -> Vec<Traced> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split("-----------------------------------------------")
        .filter_map(traced_message)
        .collect()
}

/// One block of a trace: `TIMESTAMP\nUDP message sent|received ...:\n\nMESSAGE`. sipp
/// traces an unexpected message a second time (`Unexpected UDP message received:`): that
/// block is left out.
fn traced_message(block: &str) -> Option<Traced> {
    let mut lines = block.lines().skip(1);
    let what = lines.next()?;
    let direction = if what.starts_with("Unexpected") {
        return None;
    } else if what.contains("message sent") {
        Direction::Sent
    } else if what.contains("message received") {
        Direction::Received
    } else {
        return None;
    };
    let mut lines = lines.skip_while(|l| l.trim().is_empty());
    let first = lines.next()?;
    let (method, code) = match first.strip_prefix("SIP/2.0 ") {
        Some(rest) => (None, rest.split(' ').next()?.parse().ok()),
        None => (Some(first.split(' ').next()?.to_owned()), None),
    };
    let mut call_id = None;
    let mut cseq_method = None;
    for line in lines.take_while(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => call_id = Some(value.trim().to_owned()),
            "cseq" => cseq_method = value.split_whitespace().nth(1).map(str::to_owned),
            _ => {}
        }
    }
    Some(Traced {
        direction,
        method,
        code,
        call_id: call_id?,
        cseq_method: cseq_method?,
    })
}

/// The requests a server received: (method, Call-ID), the balancer's probes left out.
pub fn received_requests(trace: &[Traced]) -> Vec<(String, String)> {
    trace
        .iter()
        .filter(|m| m.direction == Direction::Received && !is_probe(&m.call_id))
        .filter_map(|m| Some((m.method.clone()?, m.call_id.clone())))
        .collect()
}

/// How many responses to `method` a client received, by status code.
pub fn answers_to(trace: &[Traced], method: &str) -> HashMap<u16, u64> {
    let mut codes = HashMap::new();
    for m in trace {
        if let (Direction::Received, Some(code)) = (m.direction, m.code) {
            if m.cseq_method == method {
                *codes.entry(code).or_default() += 1;
            }
        }
    }
    codes
}

/// An OPTIONS probe of the balancer's control thread.
pub fn is_probe(call_id: &str) -> bool {
    call_id.starts_with("sipshard-probe-")
}

/// The final value of `column` in a sipp statistics file (`-trace_stat -stf FILE`).
pub fn final_stat(stats: &Path, column: &str) -> u64 {
    let csv = std::fs::read_to_string(stats).expect("sipp wrote its statistics");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let i = header
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no column {column} in {}", stats.display()));
    last[i].trim().parse().unwrap()
}

/// The call number of a Call-ID sipp made (`-cid_str`'s default `%u-%p@%s`): the order in
/// which the calls were placed.
pub fn call_number(call_id: &str) -> Option<u64> {
    call_id.split('-').next()?.parse().ok()
}

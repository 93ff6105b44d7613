//! Established calls through the balancer with sipp as the real peers: a sipp caller
//! (tests/data/sipp/uac_long_call.xml) places calls through an in-process balancer to sipp
//! servers that each hold their own dialogs (tests/data/sipp/uas_dialog_holder.xml: a BYE for
//! a dialog a server does not hold gets 481, as from a B2BUA), so a BYE sent to the wrong
//! backend fails its call.
//!
//! - A farm change while 500 calls are established (a backend added and the weights changed,
//!   by a reload of the configuration file): with `--record-route on` every ACK and BYE
//!   follows its dialog's pin, all 500 calls end normally and every BYE is answered 200;
//!   with `--record-route off` the BYEs follow the new hash and the calls whose hash moved
//!   fail (how many is printed; more than none: that is what the pin protects against).
//! - A drain under load (`ctl drain` through the in-process controller, or weight 0 in the
//!   configuration file and a reload) while calls keep
//!   arriving: not one new call reaches the drained backend once the drain is applied, all
//!   of its established calls end normally at it, and its in-dialog traffic falls to 0 in the
//!   status once they have ended.
//!
//! Counts are asserted, never durations. Needs `sipp` (Debian package sip-tester).

mod drain;
mod farm_change;

use crate::support::farm::{balancer, free_udp_port, wait_for_state};
use crate::support::process::{loopback_addr, serial};
use crate::support::sipp::{
    answers_to, call_number, final_stat, read_trace, received_requests, scenario, strings,
    unattended_args, ScratchDir, Sipp, SippServer,
};
use sipshard::config::{online_cores, BalanceArgs};
use sipshard::control::{BackendStatus, Operation, State, Status};
use sipshard::tools::balance::Balancer;
use sipshard::tools::ctl::status_table;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Calls established when the farm changes.
const FARM_CALLS: u64 = 500;
/// Calls per second while they are placed (2.5 s for all of them).
const FARM_RATE: u64 = 200;
/// How long each call stays established after its ACK: room for the farm change after
/// the last call is up and before the first BYE.
const FARM_CALL_MS: u64 = 8000;

/// Calls placed in the drain test, at `DRAIN_RATE` per second (10 s of arrivals).
const DRAIN_CALLS: u64 = 1000;
const DRAIN_RATE: u64 = 100;
/// How long each call of the drain test lasts after its ACK.
const DRAIN_CALL_MS: u64 = 3000;
/// New calls placed before the drain (a few seconds in: the backend has established calls).
const CALLS_BEFORE_DRAIN: u64 = 400;

/// The longest any wait of these tests may take.
const PATIENCE: Duration = Duration::from_secs(60);

fn workers() -> String {
    2.min(online_cores()).to_string()
}

/// A balancer's configuration file: loopback listen address, OPTIONS probes every 200 ms,
/// `record_route`, then the backends with their weights.
fn farm_config(listen: SocketAddr, record_route: bool, backends: &[(SocketAddr, u32)]) -> String {
    let mut text = format!(
        "listen = \"{listen}\"\n\
         secret = \"live-calls\"\n\
         workers = {}\n\
         probe_interval_ms = 200\n\
         probe_timeout_ms = 150\n\
         record_route = {record_route}\n",
        workers()
    );
    for (addr, weight) in backends {
        text.push_str(&format!(
            "\n[[backend]]\naddr = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text
}

/// Replaces `path` with `text` in one step (write aside, rename).
fn write_atomically(path: &Path, text: &str) {
    let aside = path.with_extension("partial");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// Starts `count` sipp servers that hold their own dialogs, named `uas0`, `uas1`, ...
fn start_dialog_holders(dir: &ScratchDir, count: usize) -> Vec<SippServer> {
    (0..count)
        .map(|i| {
            SippServer::start(
                &dir.0,
                &format!("uas{i}"),
                &scenario("uas_dialog_holder.xml"),
                120,
            )
        })
        .collect()
}

/// What the caller leaves behind: its statistics and message trace.
struct Caller {
    sipp: Sipp,
    stats: PathBuf,
    trace: PathBuf,
}

/// Starts a sipp caller placing `calls` calls at `rate` per second through `balancer`, each
/// established for `call_ms` after its ACK.
fn start_caller(
    dir: &ScratchDir,
    balancer: SocketAddr,
    calls: u64,
    rate: u64,
    call_ms: u64,
) -> Caller {
    let stats = dir.file("uac.csv");
    let trace = dir.file("uac.log");
    let mut args = strings(&[
        &balancer.to_string(),
        "-sf",
        scenario("uac_long_call.xml").to_str().unwrap(),
        "-i",
        "127.0.0.1",
        "-p",
        &free_udp_port().to_string(),
        "-m",
        &calls.to_string(),
        "-r",
        &rate.to_string(),
        "-d",
        &call_ms.to_string(),
        // Every call may be up at once.
        "-l",
        &(2 * calls).to_string(),
        // A failed call is not followed by a BYE of sipp's own (its answer would blur the
        // count of answers to the scenario's BYEs).
        "-default_behaviors",
        "all,-bye",
        "-trace_msg",
        "-message_file",
        trace.to_str().unwrap(),
    ]);
    args.extend(unattended_args(&stats));
    Caller {
        sipp: Sipp::spawn(&dir.0, &args),
        stats,
        trace,
    }
}

/// How the caller's calls ended.
#[derive(Debug)]
struct CallerOutcome {
    exit: ExitStatus,
    successful: u64,
    failed: u64,
    /// Answers to the BYEs, by status code.
    bye_answers: BTreeMap<u16, u64>,
}

/// Waits for the caller to finish and reads how its calls ended.
fn caller_outcome(mut caller: Caller) -> CallerOutcome {
    let exit = caller.sipp.wait_exit(PATIENCE);
    let trace = read_trace(&caller.trace);
    CallerOutcome {
        exit,
        successful: final_stat(&caller.stats, "SuccessfulCall(C)"),
        failed: final_stat(&caller.stats, "FailedCall(C)"),
        bye_answers: answers_to(&trace, "BYE").into_iter().collect(),
    }
}

/// Where one call's requests went, by backend index.
#[derive(Debug, Default)]
struct CallPath {
    invite: Vec<usize>,
    in_dialog: Vec<usize>,
}

impl CallPath {
    /// Some in-dialog request reached another backend than the INVITE.
    fn moved(&self) -> bool {
        self.in_dialog.iter().any(|b| !self.invite.contains(b))
    }
}

/// Stops the servers (so that their traces are complete) and reads where each call's
/// requests went.
fn call_paths(servers: Vec<SippServer>) -> HashMap<String, CallPath> {
    let mut paths: HashMap<String, CallPath> = HashMap::new();
    for (index, server) in servers.into_iter().enumerate() {
        let trace = read_trace(&server.stop());
        for (method, call_id) in received_requests(&trace) {
            let path = paths.entry(call_id).or_default();
            match method.as_str() {
                "INVITE" => path.invite.push(index),
                _ => path.in_dialog.push(index),
            }
        }
    }
    paths
}

fn backend(status: &Status, addr: SocketAddr) -> &BackendStatus {
    status
        .backends
        .iter()
        .find(|b| b.addr == addr)
        .unwrap_or_else(|| panic!("{addr} not in the status: {status:?}"))
}

fn total(status: &Status, counter: impl Fn(&BackendStatus) -> u64) -> u64 {
    status.backends.iter().map(counter).sum()
}

/// Polls the status until `done` holds; fails after `PATIENCE` or when the caller has
/// exited (then it never will).
fn wait_for_status(
    b: &Balancer,
    caller: &mut Caller,
    what: &str,
    done: impl Fn(&Status) -> bool,
) -> Status {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = b.control().status().expect("control answers");
        if done(&status) {
            return status;
        }
        if let Some(exit) = caller.sipp.exited() {
            panic!(
                "the caller exited ({exit}) before {what}:\n{}",
                status_table(&status)
            );
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {PATIENCE:?}:\n{}",
            status_table(&status)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every call placed and its ACK sent on: the INVITEs and the ACKs went through.
fn all_established(status: &Status, calls: u64) -> bool {
    total(status, |b| b.new_calls) >= calls && total(status, |b| b.in_dialog_requests) >= calls
}

/// A balancer started from the configuration file `config` (reloads re-read it); returns
/// once `backends` are all up.
fn balancer_from_file(config: &Path, backends: &[SocketAddr]) -> Balancer {
    let b = balancer(&BalanceArgs::from_flags(["--config", config.to_str().unwrap()]).unwrap());
    for &addr in backends {
        wait_for_state(&b, addr, State::Up, PATIENCE);
    }
    b
}

/// Rewrites the configuration file with `farm` and reloads it through the control thread
/// (what SIGHUP and `sipshard ctl reload` ask for); returns the reload's answer once every
/// backend is up and every shard routes with the new set.
fn reload_farm(b: &Balancer, config: &Path, file_text: &str, farm: &[(SocketAddr, u32)]) -> String {
    write_atomically(config, file_text);
    let reloaded = b.control().reload().expect("the new farm is accepted");
    for &(addr, _) in farm {
        wait_for_state(b, addr, State::Up, PATIENCE);
    }
    reloaded
}

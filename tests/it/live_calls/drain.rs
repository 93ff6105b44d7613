//! A backend drained while calls keep arriving.

use super::*;

/// The drained backend's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
struct DrainedSample {
    new_calls: u64,
    in_dialog_requests: u64,
    pinned_requests: u64,
    in_dialog_per_s: f64,
}

impl DrainedSample {
    fn of(status: &Status, addr: SocketAddr) -> DrainedSample {
        let b = backend(status, addr);
        DrainedSample {
            new_calls: b.new_calls,
            in_dialog_requests: b.in_dialog_requests,
            pinned_requests: b.pinned_requests,
            in_dialog_per_s: b.in_dialog_per_s,
        }
    }
}

/// Samples the drained backend's counters every 250 ms until the caller exits (each
/// sample that differs from the one before).
fn sample_until_exit(b: &Balancer, caller: &mut Caller, drained: SocketAddr) -> Vec<DrainedSample> {
    let deadline = Instant::now() + PATIENCE;
    let mut samples: Vec<DrainedSample> = Vec::new();
    while caller.sipp.exited().is_none() && Instant::now() < deadline {
        let sample = DrainedSample::of(&b.control().status().unwrap(), drained);
        if samples.last() != Some(&sample) {
            samples.push(sample);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    samples
}

/// Polls until the drained backend's in-dialog rate is 0 (bounded); returns that status.
fn wait_until_idle(b: &Balancer, drained: SocketAddr) -> Status {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = b.control().status().unwrap();
        if backend(&status, drained).in_dialog_per_s == 0.0 {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{drained} never idle:\n{}",
            status_table(&status)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The two ways an operator drains a backend (docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DrainBy {
    /// `sipshard ctl drain`: the configured weight stays, the status says `drained`.
    Operator,
    /// `weight = 0` in the configuration file, then a reload.
    WeightZero,
}

/// The balancer of a drain test, and the file it was started from.
struct Farm {
    balancer: Balancer,
    config: PathBuf,
    listen: SocketAddr,
}

/// A balancer with the default `--record-route on` in front of `backends` (weight 1 each),
/// started from a configuration file, all of them up.
fn farm_from_file(dir: &ScratchDir, backends: &[SocketAddr]) -> Farm {
    let listen = loopback_addr(free_udp_port());
    let config = dir.file("balance.toml");
    let weights: Vec<(SocketAddr, u32)> = backends.iter().map(|&a| (a, 1)).collect();
    write_atomically(&config, &farm_config(listen, true, &weights));
    Farm {
        balancer: balancer_from_file(&config, backends),
        config,
        listen,
    }
}

/// Drains `addr` `by` one way or the other and waits until every shard routes with the new
/// set; returns the status then.
fn drain(farm: &Farm, backends: &[SocketAddr], addr: SocketAddr, by: DrainBy) -> Status {
    let b = &farm.balancer;
    match by {
        DrainBy::Operator => {
            let answer = b.control().operate(addr, Operation::Drain).unwrap();
            assert_eq!(answer, format!("{addr}: up, drained"));
        }
        DrainBy::WeightZero => {
            let weights: Vec<(SocketAddr, u32)> = backends
                .iter()
                .map(|&a| (a, u32::from(a != addr)))
                .collect();
            let text = farm_config(farm.listen, true, &weights);
            reload_farm(b, &farm.config, &text, &weights);
        }
    }
    wait_for_state(b, addr, State::Up, PATIENCE);
    b.control().status().unwrap()
}

/// What the drain test saw.
struct DrainRun {
    by: DrainBy,
    drained: SocketAddr,
    caller: CallerOutcome,
    /// The status once the drain was applied.
    at_drain: Status,
    /// The status once the drained backend was idle, and a while after.
    idle: Status,
    last: Status,
    /// Where each call's requests went (backend 0 is the drained one).
    paths: HashMap<String, CallPath>,
}

impl DrainRun {
    fn at_drain(&self) -> DrainedSample {
        DrainedSample::of(&self.at_drain, self.drained)
    }

    fn last(&self) -> DrainedSample {
        DrainedSample::of(&self.last, self.drained)
    }
}

/// Every call ended with a 200 to its BYE, and all of a call's requests reached one backend.
fn assert_every_call_ended_normally(run: &DrainRun) {
    let caller = &run.caller;
    assert_eq!(
        (caller.successful, caller.failed),
        (DRAIN_CALLS, 0),
        "{caller:?}"
    );
    assert!(caller.exit.success(), "{caller:?}");
    assert_eq!(
        caller.bye_answers,
        BTreeMap::from([(200, DRAIN_CALLS)]),
        "{caller:?}"
    );
    assert_eq!(run.paths.len() as u64, DRAIN_CALLS);
    let moved: Vec<&String> = run
        .paths
        .iter()
        .filter(|(_, p)| p.moved())
        .map(|(id, _)| id)
        .collect();
    assert!(
        moved.is_empty(),
        "calls whose requests reached two backends: {moved:?}"
    );
}

/// The balancer sent the drained backend no new call after the drain was applied, while
/// calls kept coming; and the servers agree: the drained one got as many INVITEs as the
/// balancer had sent it then, all before the calls placed after the drain.
fn assert_no_new_call_after_the_drain(run: &DrainRun) {
    let drained = run.drained;
    assert_eq!(
        run.last().new_calls,
        run.at_drain().new_calls,
        "new calls reached {drained} after the drain"
    );
    let calls_after_drain =
        total(&run.last, |b| b.new_calls) - total(&run.at_drain, |b| b.new_calls);
    println!(
        "{calls_after_drain} calls placed after the drain, none to {drained}; it had taken {}",
        run.at_drain().new_calls
    );
    assert!(
        calls_after_drain >= DRAIN_CALLS / 4,
        "too few calls after the drain to show anything: {calls_after_drain}"
    );
    let invites_at_drained: u64 = run
        .paths
        .values()
        .map(|p| p.invite.iter().filter(|&&b| b == 0).count() as u64)
        .sum();
    assert_eq!(invites_at_drained, run.at_drain().new_calls);
    let last_drained_call = run
        .paths
        .iter()
        .filter(|(_, p)| p.invite.contains(&0))
        .filter_map(|(id, _)| call_number(id))
        .max()
        .unwrap_or(0);
    let later_calls = run
        .paths
        .keys()
        .filter_map(|id| call_number(id))
        .filter(|&n| n > last_drained_call)
        .count() as u64;
    assert!(
        later_calls >= calls_after_drain,
        "calls after the drained backend's last one: {later_calls}, after the drain \
         {calls_after_drain}"
    );
}

/// The drained backend's established calls went on at it (their ACKs and BYEs, by the pin,
/// after the drain); then its in-dialog traffic fell to 0 and stayed there.
fn assert_its_dialogs_went_on_then_stopped(run: &DrainRun) {
    let (at_drain, last) = (run.at_drain(), run.last());
    let idle = DrainedSample::of(&run.idle, run.drained);
    assert!(
        last.in_dialog_requests > at_drain.in_dialog_requests,
        "no in-dialog request reached {} after the drain: {at_drain:?} {last:?}",
        run.drained
    );
    assert_eq!(
        last.in_dialog_requests, last.pinned_requests,
        "every in-dialog request to it came by its pin"
    );
    assert_eq!(idle.in_dialog_per_s, 0.0);
    assert_eq!(
        (last.in_dialog_requests, last.in_dialog_per_s),
        (idle.in_dialog_requests, 0.0),
        "in-dialog traffic to {} went on after it was idle",
        run.drained
    );
    let status = backend(&run.last, run.drained);
    assert_eq!(status.state, State::Up, "{status:?}");
    match run.by {
        DrainBy::Operator => assert!(status.drained && status.weight == 1, "{status:?}"),
        DrainBy::WeightZero => assert!(!status.drained && status.weight == 0, "{status:?}"),
    }
}

#[test]
fn a_backend_drained_under_load_takes_no_new_call_and_ends_its_calls() {
    drain_under_load(DrainBy::Operator);
}

#[test]
fn a_backend_given_weight_zero_under_load_takes_no_new_call_and_ends_its_calls() {
    drain_under_load(DrainBy::WeightZero);
}

/// Calls flow through three backends; backend 0 is drained `by` one way or the other; its
/// calls end, no new call reaches it, and its in-dialog rate falls to 0.
fn drain_under_load(by: DrainBy) {
    let _serial = serial();
    let dir = ScratchDir::new(&format!("drain-{by:?}"));
    let servers = start_dialog_holders(&dir, 3);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let drained = addrs[0];
    let farm = farm_from_file(&dir, &addrs);
    let b = &farm.balancer;

    let mut caller = start_caller(
        &dir,
        b.public_addrs()[0],
        DRAIN_CALLS,
        DRAIN_RATE,
        DRAIN_CALL_MS,
    );
    wait_for_status(b, &mut caller, "calls flowing", |s| {
        total(s, |b| b.new_calls) >= CALLS_BEFORE_DRAIN
    });
    let at_drain = drain(&farm, &addrs, drained, by);
    let samples = sample_until_exit(b, &mut caller, drained);
    let caller = caller_outcome(caller);
    let idle = wait_until_idle(b, drained);
    // Over a whole rate window more: nothing reaches it any more.
    std::thread::sleep(Duration::from_millis(1200));
    let last = b.control().status().unwrap();
    println!(
        "the farm when the drain was applied:\n{}",
        status_table(&at_drain)
    );
    println!("the farm at the end:\n{}", status_table(&last));
    println!("the drained backend while its calls ended: {samples:#?}");
    farm.balancer.stop();
    let run = DrainRun {
        by,
        drained,
        caller,
        at_drain,
        idle,
        last,
        paths: call_paths(servers),
    };

    assert_every_call_ended_normally(&run);
    assert_no_new_call_after_the_drain(&run);
    assert_its_dialogs_went_on_then_stopped(&run);
}

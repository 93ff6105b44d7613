//! Health probing end to end: a backend that stops answering OPTIONS is marked down within
//! interval × threshold (+ timeout), new calls then all succeed on the others, only its
//! Call-IDs move and they spread over every remaining backend, and when it answers again it
//! is marked up and gets its Call-IDs back.

use crate::support::farm::{
    balance_args, balancer, send_call_ids, wait_for_state, RecordingBackend, Seen,
};
use crate::support::process::serial;
use sipshard::config::BalanceArgs;
use sipshard::control::State;
use sipshard::tools::bench::{run_load, Load, Mode};
use sipshard::tools::responder::Responder;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

const INTERVAL_MS: u64 = 100;
const TIMEOUT_MS: u64 = 80;
const FAILURES: u32 = 3;
const SUCCESSES: u32 = 2;

fn args(backends: &[SocketAddr]) -> BalanceArgs {
    balance_args(
        backends,
        &[
            "--workers",
            &2.min(sipshard::config::online_cores()).to_string(),
            "--secret",
            "health-test",
            "--probe-interval-ms",
            &INTERVAL_MS.to_string(),
            "--probe-timeout-ms",
            &TIMEOUT_MS.to_string(),
            "--probe-failures",
            &FAILURES.to_string(),
            "--probe-successes",
            &SUCCESSES.to_string(),
        ],
    )
}

/// The nominal detection bound, with slack for a loaded 2-core machine.
fn down_limit() -> Duration {
    Duration::from_millis(INTERVAL_MS * u64::from(FAILURES) + TIMEOUT_MS) + Duration::from_secs(3)
}

fn calls(target: SocketAddr, rate: f64, seconds: f64) -> Load {
    Load {
        duration: Some(Duration::from_secs_f64(seconds)),
        timeout: Duration::from_secs(8),
        ..Load::new(target, Mode::Calls, rate)
    }
}

#[test]
fn a_stopped_backend_is_marked_down_new_calls_all_succeed_and_it_comes_back() {
    let _serial = serial();
    let mut responders: Vec<Responder> = (0..3)
        .map(|_| Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = responders.iter().map(Responder::addr).collect();
    let b = balancer(&args(&addrs));
    let public = b.public_addrs()[0];

    // Calls in progress while the backend dies (only reported: calls on it can fail).
    let during = std::thread::spawn(move || run_load(&calls(public, 150.0, 3.0)).unwrap());
    std::thread::sleep(Duration::from_millis(800));
    let dead = responders.remove(2).stop();
    let took = wait_for_state(&b, addrs[2], State::Down, down_limit());
    let during = during.join().unwrap();
    eprintln!(
        "marked down after {took:?} (nominal {} ms); calls while it died: {} offered, {} failed, {} timed out; the dead backend had answered {} INVITEs",
        INTERVAL_MS * u64::from(FAILURES) + TIMEOUT_MS,
        during.offered,
        during.failed,
        during.timed_out,
        dead.count("INVITE")
    );

    // Every new call after that succeeds, on the two live backends.
    let after = run_load(&calls(public, 200.0, 2.0)).unwrap();
    assert!(after.offered >= 300, "{after:?}");
    assert_eq!((after.failed, after.timed_out), (0, 0), "{after:?}");
    assert_eq!(after.completed, after.offered, "{after:?}");

    // Back: answering again, it is marked up and takes calls again.
    let revived = Responder::start(addrs[2], 1, false).unwrap();
    wait_for_state(&b, addrs[2], State::Up, down_limit());
    let back = run_load(&calls(public, 200.0, 1.5)).unwrap();
    assert_eq!((back.failed, back.timed_out), (0, 0), "{back:?}");
    let revived = revived.stop();
    assert!(
        revived.count("INVITE") > 0,
        "the revived backend got no calls"
    );
    let status = b.control().status().unwrap();
    assert!(
        status.backends.iter().all(|s| s.state == State::Up),
        "{status:?}"
    );
    b.stop();
    for r in responders {
        r.stop();
    }
}

/// Which backend each Call-ID reached, after sending them all through the balancer.
fn placement(public: SocketAddr, seen: &Seen, ids: &[String]) -> HashMap<String, usize> {
    seen.lock().unwrap().clear();
    send_call_ids(public, ids);
    let seen = seen.lock().unwrap();
    ids.iter()
        .map(|id| {
            (
                id.clone(),
                *seen.get(id).expect("every answered Call-ID was seen"),
            )
        })
        .collect()
}

#[test]
fn only_the_dead_backends_call_ids_move_spread_over_all_others_and_return() {
    let _serial = serial();
    const BACKENDS: usize = 4;
    const CALL_IDS: usize = 4000;
    let seen = Seen::default();
    let mut backends: Vec<Option<RecordingBackend>> = (0..BACKENDS)
        .map(|i| {
            Some(RecordingBackend::start(
                "127.0.0.1:0".parse().unwrap(),
                i,
                seen.clone(),
            ))
        })
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.as_ref().unwrap().addr).collect();
    let b = balancer(&args(&addrs));
    let public = b.public_addrs()[0];
    let ids: Vec<String> = (0..CALL_IDS).map(|i| format!("remap-{i}@test")).collect();

    let before = placement(public, &seen, &ids);
    let victim = 1;
    // Killed under load: a stream of other requests flows while it dies.
    let load = std::thread::spawn(move || {
        run_load(&Load {
            mode: Mode::Messages("OPTIONS".into()),
            ..calls(public, 500.0, 1.5)
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    backends[victim].take().unwrap().kill();
    wait_for_state(&b, addrs[victim], State::Down, down_limit());
    let _ = load.join().unwrap();

    let after = placement(public, &seen, &ids);
    let on_victim = ids.iter().filter(|id| before[*id] == victim).count();
    let mut moved_to = [0usize; BACKENDS];
    let mut others_moved = 0;
    for id in &ids {
        match (before[id], after[id]) {
            (b, a) if b == victim => moved_to[a] += 1,
            (b, a) if b != a => others_moved += 1,
            _ => {}
        }
    }
    let others = CALL_IDS - on_victim;
    eprintln!(
        "victim had {on_victim} of {CALL_IDS} Call-IDs; they went to {moved_to:?}; \
         {others_moved} of the other {others} moved ({:.2}%)",
        100.0 * others_moved as f64 / others as f64
    );
    assert!(
        on_victim > CALL_IDS / 8,
        "victim had too few Call-IDs to judge: {on_victim}"
    );
    assert_eq!(moved_to[victim], 0);
    // Spread over every remaining backend, not onto one neighbour: each gets at least a
    // fifth of them (a third on average).
    for (i, n) in moved_to.iter().enumerate().filter(|(i, _)| *i != victim) {
        assert!(
            *n * 5 >= on_victim,
            "backend {i} got only {n} of {on_victim}: {moved_to:?}"
        );
    }
    // Calls of live backends stay where they are (Maglev: about 1% churn at most).
    assert!(
        others_moved * 50 <= others,
        "{others_moved} of {others} moved"
    );

    // Back up: every Call-ID returns to where it was.
    backends[victim] = Some(RecordingBackend::start(addrs[victim], victim, seen.clone()));
    wait_for_state(&b, addrs[victim], State::Up, down_limit());
    let returned = placement(public, &seen, &ids);
    let differ = ids.iter().filter(|id| returned[*id] != before[*id]).count();
    assert_eq!(
        differ, 0,
        "{differ} Call-IDs did not return to their backend"
    );
    b.stop();
}

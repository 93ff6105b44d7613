//! 500 established calls while the farm changes (a backend added, the weights changed).

use super::*;

/// What one run of the farm change showed.
#[derive(Debug)]
struct FarmChange {
    caller: CallerOutcome,
    /// The reload's answer.
    reloaded: String,
    /// In-dialog requests forwarded while the farm changed (0: no BYE had left yet).
    in_dialog_during_change: u64,
    /// Calls whose in-dialog requests reached another backend than their INVITE.
    moved: usize,
    /// Calls seen by the servers.
    calls_seen: usize,
    /// Requests the added backend got: (INVITEs, in-dialog).
    added_backend: (usize, usize),
}

/// The farm before: three backends of weight 1 (the fourth server is not in it yet).
fn farm_before(servers: &[SocketAddr]) -> Vec<(SocketAddr, u32)> {
    servers[..3].iter().map(|&a| (a, 1)).collect()
}

/// The farm after: the fourth backend added, and the weights changed.
fn farm_after(servers: &[SocketAddr]) -> Vec<(SocketAddr, u32)> {
    vec![
        (servers[0], 2),
        (servers[1], 1),
        (servers[2], 3),
        (servers[3], 2),
    ]
}

/// 500 calls established through three backends of weight 1; then a reload adds a fourth
/// and changes the weights; then every call sends its BYE.
fn farm_change_under_established_calls(record_route: bool) -> FarmChange {
    let dir = ScratchDir::new(&format!("farm-record-route-{}", on_off(record_route)));
    let servers = start_dialog_holders(&dir, 4);
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let listen = loopback_addr(free_udp_port());
    let config = dir.file("balance.toml");
    let before = farm_before(&addrs);
    write_atomically(&config, &farm_config(listen, record_route, &before));
    let b = balancer_from_file(&config, &addrs[..3]);

    let mut caller = start_caller(
        &dir,
        b.public_addrs()[0],
        FARM_CALLS,
        FARM_RATE,
        FARM_CALL_MS,
    );
    let established = wait_for_status(&b, &mut caller, "all calls established", |s| {
        all_established(s, FARM_CALLS)
    });
    let after = farm_after(&addrs);
    let reloaded = reload_farm(
        &b,
        &config,
        &farm_config(listen, record_route, &after),
        &after,
    );
    let changed = b.control().status().unwrap();
    let in_dialog_during_change =
        total(&changed, |b| b.in_dialog_requests) - total(&established, |b| b.in_dialog_requests);

    let caller = caller_outcome(caller);
    println!(
        "record-route {}: the farm after the BYEs:\n{}",
        on_off(record_route),
        status_table(&b.control().status().unwrap())
    );
    b.stop();
    let paths = call_paths(servers);
    FarmChange {
        caller,
        reloaded,
        in_dialog_during_change,
        moved: paths.values().filter(|p| p.moved()).count(),
        calls_seen: paths.len(),
        added_backend: (
            paths.values().filter(|p| p.invite.contains(&3)).count(),
            paths.values().filter(|p| p.in_dialog.contains(&3)).count(),
        ),
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The farm changed while every call was established, before any BYE.
fn assert_changed_mid_call(run: &FarmChange) {
    assert!(
        run.reloaded.contains("1 added"),
        "the reload added no backend: {run:?}"
    );
    assert_eq!(
        run.in_dialog_during_change, 0,
        "in-dialog requests went through while the farm changed: the test's premise (all \
         calls established, no BYE yet) does not hold: {run:?}"
    );
    assert_eq!(run.calls_seen as u64, FARM_CALLS, "{run:?}");
    assert_eq!(
        run.added_backend.0, 0,
        "a new call reached the added backend: {run:?}"
    );
}

#[test]
fn record_route_keeps_established_calls_on_their_backend_across_a_farm_change() {
    let _serial = serial();
    let run = farm_change_under_established_calls(true);
    println!("record-route on: {run:#?}");
    assert_changed_mid_call(&run);
    assert_eq!(
        (run.caller.successful, run.caller.failed),
        (FARM_CALLS, 0),
        "{run:?}"
    );
    assert!(run.caller.exit.success(), "{run:?}");
    assert_eq!(
        run.caller.bye_answers,
        BTreeMap::from([(200, FARM_CALLS)]),
        "every BYE answered 200: {run:?}"
    );
    assert_eq!(run.moved, 0, "no BYE reached another backend: {run:?}");
    assert_eq!(
        run.added_backend.1, 0,
        "the added backend got in-dialog requests: {run:?}"
    );
}

#[test]
fn without_record_route_a_farm_change_breaks_established_calls() {
    let _serial = serial();
    let run = farm_change_under_established_calls(false);
    println!("record-route off: {run:#?}");
    assert_changed_mid_call(&run);
    let failed = run.caller.failed;
    println!(
        "record-route off: {failed} of {FARM_CALLS} established calls failed after the farm \
         changed ({:.1} %; a fourth backend of the same weight alone would move about 1/4; \
         with these weights the shares that shrink, 1/3 to 2/8 and 1/3 to 1/8, move at least \
         29 %); BYE answers {:?}",
        100.0 * failed as f64 / FARM_CALLS as f64,
        run.caller.bye_answers
    );
    assert!(failed > 0, "no call broke: the test shows nothing: {run:?}");
    assert_eq!(run.caller.successful + failed, FARM_CALLS, "{run:?}");
    assert_eq!(
        failed as usize, run.moved,
        "the failed calls are those whose BYE moved: {run:?}"
    );
    assert_eq!(
        run.caller.bye_answers.get(&481).copied(),
        Some(failed),
        "{run:?}"
    );
    assert!(
        run.added_backend.1 > 0,
        "no BYE followed the new hash to the added backend: {run:?}"
    );
}

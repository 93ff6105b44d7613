//! The balancer between two real networks, with real user agents on both sides.
//!
//! The test builds three network namespaces of its own and joins them with two veth pairs:
//!
//! ```text
//!   public namespace           balancer namespace               farm namespace
//!  ┌──────────────────┐      ┌─────────────────────┐      ┌──────────────────────────────┐
//!  │ phone            │ veth │ sipshard balance    │ veth │ 10.77.0.20 Kamailio backend  │
//!  │ 198.51.100.10 ───┼──────┼─ 198.51.100.1:5060  │      │ 10.77.0.21 Kamailio backend  │
//!  │ (PJSIP)          │      │  10.77.0.1:5070+k ──┼──────┼ 10.77.0.30 Kamailio registrar│
//!  └──────────────────┘      │ ip_forward = 0      │      │ 10.77.0.40 farm UA (PJSIP)   │
//!                            └─────────────────────┘      └──────────────────────────────┘
//! ```
//!
//! The public and farm namespaces each know only their own /24, and the balancer's
//! namespace does not forward: the only way between a phone and the farm is through
//! sipshard. The backends (tests/edge/backend.cfg) record-route, follow the Route of
//! in-dialog requests and hand everything else to the registrar (tests/edge/registrar.cfg),
//! a REGISTER with their own Path entry added. The registrar stores each contact with its
//! Path and relays calls along it, so a call to a phone registered through the balancer
//! goes registrar → backend → balancer (our Path entry) → phone. The user agents are PJSIP,
//! driven by tests/edge/ua.py (one process per namespace), which reports what each call
//! saw as JSON lines.
//!
//! Needs root, `ip` (iproute2), `kamailio`, and a Python with PJSIP's binding (`pjsua2`):
//! `$SIPSHARD_EDGE_PYTHON`, by default the venv `.ci/run` makes. The test fails, with the
//! reason, when one is missing. Each lab's scratch directory (configurations, logs of
//! every process, PJSIP's message log) is kept when the test fails.

mod lab;
mod user_agent;

use crate::support::process::serial;
use lab::Lab;
use std::net::Ipv4Addr;
use std::time::Duration;
use user_agent::{edge_python, CallReport, UserAgent};

/// The variable naming the Python that has `pjsua2`.
const PYTHON_VAR: &str = "SIPSHARD_EDGE_PYTHON";
/// Where `.ci/run` makes that Python's venv.
const DEFAULT_PYTHON: &str = "/opt/sipshard-edge-venv/bin/python";
/// The user agent driver.
const UA_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/edge/ua.py");
/// The Kamailio configuration of a backend (@LISTEN@, @REGISTRAR@ to fill).
const BACKEND_CFG: &str = include_str!("../../edge/backend.cfg");
/// The Kamailio configuration of the registrar (@LISTEN@ to fill).
const REGISTRAR_CFG: &str = include_str!("../../edge/registrar.cfg");

/// The phone, in the public namespace.
const PHONE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The balancer's public address.
const BALANCER_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The balancer's internal address (shard k's socket on port 5070 + k).
const BALANCER_INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The Kamailio backends.
const BACKENDS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 77, 0, 20), Ipv4Addr::new(10, 77, 0, 21)];
/// The Kamailio registrar; its address is also the domain of every AOR.
const REGISTRAR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 30);
/// The user agent in the farm: callee of the phone's calls, caller of the phone.
const FARM_UA: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 40);
/// The SIP port of everyone but the balancer's internal sockets.
const SIP_PORT: u16 = 5060;
/// The balancer's control API, on its namespace's loopback.
const CONTROL: &str = "127.0.0.1:5080";

/// The longest a daemon may take to bind its socket.
const STARTUP: Duration = Duration::from_secs(10);
/// The longest a user agent may take to answer a command: its own deadlines (12 s for a
/// call, 4 s more for the answer to its BYE) and some slack.
const UA_REPLY: Duration = Duration::from_secs(25);

/// The phone's outbound proxy: the balancer's public address.
fn via_balancer() -> String {
    format!("sip:{BALANCER_PUBLIC}:{SIP_PORT};lr")
}

/// The farm user agent's outbound proxy: the registrar.
fn via_registrar() -> String {
    format!("sip:{REGISTRAR}:{SIP_PORT};lr")
}

/// The registrar's URI.
fn registrar_uri() -> String {
    format!("sip:{REGISTRAR}")
}

/// The address of record of `user`.
fn aor(user: &str) -> String {
    format!("sip:{user}@{REGISTRAR}")
}

/// Scenarios a–d: calls from the phone to the farm (the caller hangs up; the callee hangs
/// up; a re-INVITE), and from the farm to the phone registered through the balancer; the
/// phone's in-dialog requests were routed by the pin.
#[test]
fn calls_cross_the_balancer_both_ways() {
    let _serial = serial();
    let python = edge_python();
    let lab = Lab::start("on", true);
    let mut farm_ua = lab.user_agent(&python, &lab.farm, FARM_UA, "farm-ua");
    let mut phone = lab.user_agent(&python, &lab.public, PHONE, "phone");
    register_callees(&mut farm_ua);

    phone_calls_and_hangs_up(&mut phone, &mut farm_ua);
    phone_calls_and_callee_hangs_up(&mut phone, &mut farm_ua);
    phone_calls_and_reinvites(&mut phone, &mut farm_ua);
    farm_calls_the_registered_phone(&mut phone, &mut farm_ua);

    let status = lab.status();
    let pinned: u64 = status.backends.iter().map(|b| b.pinned_requests).sum();
    let moved: u64 = status.backends.iter().map(|b| b.moved_requests).sum();
    // At least: ACK and BYE (a), ACK (b), ACK, re-INVITE, ACK, BYE (c), BYE (d).
    eprintln!("edge lab: pinned_requests {pinned}, moved_requests {moved}");
    assert!(
        pinned >= 8,
        "in-dialog requests not routed by pin: {status:?}"
    );
    assert_eq!(moved, 0, "no backend went away: {status:?}");
    lab.succeeded();
}

/// The check that shows the lab can fail: without our Record-Route, the phone's route set
/// names a backend it has no route to, so the call is answered but its BYE never reaches
/// the farm.
#[test]
fn without_record_route_the_phones_bye_cannot_reach_the_farm() {
    let _serial = serial();
    let python = edge_python();
    let lab = Lab::start("off", false);
    let mut farm_ua = lab.user_agent(&python, &lab.farm, FARM_UA, "farm-ua");
    let mut phone = lab.user_agent(&python, &lab.public, PHONE, "phone");
    register_callees(&mut farm_ua);

    let call = phone.call("alice", &aor("answer"), Some(&via_balancer()), "hangup");
    eprintln!("edge lab, record-route off: caller {call:?}");
    assert_answered(&call, "the phone (without record-route)");
    assert_eq!(call.hung_up_by.as_deref(), Some("local"), "{call:?}");
    assert_eq!(call.bye_status, None, "the BYE got an answer: {call:?}");

    let status = lab.status();
    let pinned: u64 = status.backends.iter().map(|b| b.pinned_requests).sum();
    assert_eq!(pinned, 0, "nothing to pin without record-route: {status:?}");
    lab.succeeded();
}

/// The farm user agent's two AORs: `answer` waits for the caller's BYE, `hangup` hangs up
/// once the call is answered.
fn register_callees(farm_ua: &mut UserAgent) {
    for (user, policy) in [("answer", "answer"), ("hangup", "answer-hangup")] {
        let status = farm_ua.register(user, &registrar_uri(), None, policy);
        assert_eq!(status, Some(200), "farm UA's registration of {user}");
    }
}

/// Scenario a: the phone calls, the callee answers, the phone hangs up; its BYE gets 200.
fn phone_calls_and_hangs_up(phone: &mut UserAgent, farm_ua: &mut UserAgent) {
    let call = phone.call("alice", &aor("answer"), Some(&via_balancer()), "hangup");
    assert_answered(&call, "a: the phone");
    assert_eq!(call.hung_up_by.as_deref(), Some("local"), "a: {call:?}");
    assert_eq!(call.bye_status, Some(200), "a: the phone's BYE: {call:?}");

    let callee = farm_ua.incoming();
    assert_same_call(&call, &callee, "a");
    assert_eq!(
        callee.hung_up_by.as_deref(),
        Some("remote"),
        "a: {callee:?}"
    );
    assert!(
        callee.received_bye(),
        "a: the callee got no BYE: {callee:?}"
    );
}

/// Scenario b: the callee hangs up; its BYE crosses farm → balancer → phone and gets 200.
fn phone_calls_and_callee_hangs_up(phone: &mut UserAgent, farm_ua: &mut UserAgent) {
    let call = phone.call("alice", &aor("hangup"), Some(&via_balancer()), "wait-bye");
    assert_answered(&call, "b: the phone");
    assert_eq!(call.hung_up_by.as_deref(), Some("remote"), "b: {call:?}");
    assert!(call.received_bye(), "b: the phone got no BYE: {call:?}");

    let callee = farm_ua.incoming();
    assert_same_call(&call, &callee, "b");
    assert_eq!(callee.hung_up_by.as_deref(), Some("local"), "b: {callee:?}");
    assert_eq!(
        callee.bye_status,
        Some(200),
        "b: the callee's BYE: {callee:?}"
    );
}

/// Scenario c: a re-INVITE inside the call gets 200, then the phone hangs up.
fn phone_calls_and_reinvites(phone: &mut UserAgent, farm_ua: &mut UserAgent) {
    let call = phone.call("alice", &aor("answer"), Some(&via_balancer()), "reinvite");
    assert_answered(&call, "c: the phone");
    assert_eq!(
        call.reinvite_status,
        Some(200),
        "c: the re-INVITE: {call:?}"
    );
    assert_eq!(call.bye_status, Some(200), "c: the phone's BYE: {call:?}");

    let callee = farm_ua.incoming();
    assert_same_call(&call, &callee, "c");
    let invites = callee.received.iter().filter(|m| *m == "INVITE").count();
    assert_eq!(invites, 2, "c: the callee saw no re-INVITE: {callee:?}");
    assert!(
        callee.received_bye(),
        "c: the callee got no BYE: {callee:?}"
    );
}

/// Scenario d: the phone registers through the balancer (the registrar stores our Path);
/// the farm UA calls the phone's AOR through the registrar, the phone answers and hangs up.
fn farm_calls_the_registered_phone(phone: &mut UserAgent, farm_ua: &mut UserAgent) {
    let registered = phone.register(
        "bob",
        &registrar_uri(),
        Some(&via_balancer()),
        "answer-hangup",
    );
    assert_eq!(registered, Some(200), "d: the phone's registration");

    let call = farm_ua.call("carol", &aor("bob"), Some(&via_registrar()), "wait-bye");
    assert_answered(&call, "d: the farm UA");
    assert_eq!(call.hung_up_by.as_deref(), Some("remote"), "d: {call:?}");
    assert!(call.received_bye(), "d: the farm UA got no BYE: {call:?}");

    let answered = phone.incoming();
    assert_same_call(&call, &answered, "d");
    assert_eq!(
        answered.hung_up_by.as_deref(),
        Some("local"),
        "d: {answered:?}"
    );
    assert_eq!(
        answered.bye_status,
        Some(200),
        "d: the phone's BYE: {answered:?}"
    );
}

/// The caller's view of an answered call: 200 to its INVITE, the call confirmed, and over.
fn assert_answered(call: &CallReport, who: &str) {
    assert_eq!(call.error, None, "{who}: {call:?}");
    assert_eq!(call.invite_status, Some(200), "{who}: the INVITE: {call:?}");
    assert!(call.confirmed && call.disconnected, "{who}: {call:?}");
}

/// The callee's view of the caller's call: the same Call-ID, confirmed (it got the ACK),
/// over, no error.
fn assert_same_call(caller: &CallReport, callee: &CallReport, scenario: &str) {
    eprintln!("edge lab {scenario}: caller {caller:?}\nedge lab {scenario}: callee {callee:?}");
    assert_eq!(
        callee.call_id, caller.call_id,
        "{scenario}: another call reached the callee"
    );
    assert_eq!(callee.error, None, "{scenario}: {callee:?}");
    assert!(
        callee.confirmed && callee.disconnected,
        "{scenario}: {callee:?}"
    );
}

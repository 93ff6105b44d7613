//! The balancer in the dialog's route set, decision by decision (no sockets): our two
//! Record-Route entries with the backend's pin, in-dialog requests routed by the pin (kept
//! for a drained backend, moved when it is gone or down), forged pins refused, our entries
//! removed, and nothing from the public side routed anywhere but to the farm.

use sipshard::balance::{Backend, Snapshot};
use sipshard::net::{HEADROOM, REPLY_LEN};
use sipshard::proxy::{
    path_lines, Advertised, Arrival, BackendTally, DialogRole, DropReason, Exit, Forwarder, Mode,
    Pinning, RecordRouting, ReplyKind, Side, Verdict,
};
use sipshard::sip::BranchKey;
use std::cell::RefCell;
use std::net::SocketAddr;

const PUBLIC: &str = "192.0.2.1:5060";
const INTERNAL: [&str; 2] = ["10.0.0.1:6000", "10.0.0.1:6001"];
const CLIENT: &str = "198.51.100.7:40312";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn backends(up: [bool; 3], weights: [u32; 3]) -> Vec<Backend> {
    (0..3)
        .map(|i| Backend {
            addr: sa(&format!("10.0.0.2{i}:5060")),
            weight: weights[i],
            up: up[i],
        })
        .collect()
}

fn forwarder(set: &[Backend]) -> Forwarder {
    let internal: Vec<SocketAddr> = INTERNAL.iter().map(|a| sa(a)).collect();
    Forwarder {
        key: BranchKey::new(b"route-set"),
        snapshot: RefCell::new(Snapshot::new(set, 65537).unwrap()),
        public: vec![Advertised::new(sa(PUBLIC))],
        internal: internal.iter().map(|&a| Advertised::new(a)).collect(),
        retry_after: 5,
        record_routing: Some(RecordRouting::new(&[sa(PUBLIC)], &internal)),
        path_lines: Some(path_lines(&internal)),
        mode: Mode::Proxy,
    }
}

/// What the forwarder does with `msg`: the verdict and the bytes it sends.
fn handle(f: &Forwarder, side: Side, source: &str, msg: &str) -> (Verdict, String) {
    let mut slot = vec![0u8; HEADROOM + msg.len() + 1024];
    let mut reply = vec![0u8; REPLY_LEN];
    slot[HEADROOM..HEADROOM + msg.len()].copy_from_slice(msg.as_bytes());
    let arrival = Arrival {
        side,
        source: sa(source),
    };
    let verdict = f.handle(arrival, &mut slot, HEADROOM, msg.len(), &mut reply);
    let out = match verdict {
        Verdict::Forward { start, len, .. } => &slot[start..start + len],
        Verdict::Reply { len, .. } => &reply[..len],
        Verdict::Drop(_) => &[][..],
    };
    (verdict, String::from_utf8_lossy(out).into_owned())
}

fn invite(call_id: &str, extra: &str) -> String {
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40312;branch=z9hG4bK-{call_id};rport\r\n\
         {extra}Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@198.51.100.7:40312>\r\nContent-Length: 0\r\n\r\n"
    )
}

fn in_dialog(method: &str, call_id: &str, routes: &str) -> String {
    format!(
        "{method} sip:bob@10.0.0.30:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40312;branch=z9hG4bK-{method}-{call_id};rport\r\n\
         {routes}Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn record_routes(forwarded: &str) -> Vec<String> {
    forwarded
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .map(str::to_string)
        .collect()
}

/// The Route header a client's UA builds from the Record-Route values it received: the
/// values in reverse order, `after` below ours.
fn client_route(rr: &[String], after: &str) -> String {
    let mut values: Vec<&str> = rr.iter().map(String::as_str).collect();
    values.reverse();
    format!("Route: {}{after}\r\n", values.join(","))
}

/// A Call-ID whose hash picks backend `index` of `f`'s set, found by trying.
fn call_id_for(f: &Forwarder, index: usize) -> String {
    (0..10_000)
        .map(|n| format!("call-{n}"))
        .find(|c| {
            let (verdict, _) = handle(f, Side::Public, CLIENT, &invite(c, ""));
            matches!(verdict, Verdict::Forward { backend: Some(BackendTally { index: i, .. }), .. } if usize::from(i) == index)
        })
        .expect("a Call-ID for every backend")
}

fn dest_and_pinning(verdict: Verdict) -> (SocketAddr, Pinning) {
    match verdict {
        Verdict::Forward {
            dest,
            backend: Some(tally),
            exit: Exit::Internal(_),
            ..
        } => (dest, tally.pinning),
        other => panic!("not forwarded to the farm: {other:?}"),
    }
}

/// The verdict is the 403 to a forged Route entry.
fn assert_forged(verdict: Verdict) {
    assert!(
        matches!(
            verdict,
            Verdict::Reply {
                kind: ReplyKind::ForgedRoute,
                ..
            }
        ),
        "{verdict:?}"
    );
}

/// Where a request leaving from the public side goes.
fn toward_client(verdict: Verdict) -> SocketAddr {
    match verdict {
        Verdict::Forward {
            exit: Exit::Public,
            dest,
            ..
        } => dest,
        other => panic!("not forwarded toward a client: {other:?}"),
    }
}

#[test]
fn a_dialog_creating_request_gets_our_two_entries_pinned_to_its_backend() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let call = call_id_for(&f, 1);
    let (verdict, out) = handle(&f, Side::Public, CLIENT, &invite(&call, ""));
    let (dest, pinning) = dest_and_pinning(verdict);
    assert_eq!((dest, pinning), (set[1].addr, Pinning::Hashed));
    let rr = record_routes(&out);
    assert_eq!(rr.len(), 2, "{out}");
    // Toward the farm: our internal entry on top (the farm uses it), the public one below.
    assert!(rr[0].starts_with("<sip:10.0.0.1:600"), "{rr:?}");
    assert!(
        rr[1].starts_with(&format!("<sip:{PUBLIC};lr;pin=")),
        "{rr:?}"
    );
    let pin = rr[1].split("pin=").nth(1).unwrap().trim_end_matches('>');
    assert_eq!(f.key.unpin(pin.as_bytes()), Ok(set[1].addr));
    // Our Via is still on top; in-dialog requests and other methods get no entry.
    assert!(out
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("Via: SIP/2.0/UDP 10.0.0.1:600"));
    for msg in [
        in_dialog("BYE", &call, ""),
        invite(&call, "").replace("INVITE", "OPTIONS"),
    ] {
        let (_, out) = handle(&f, Side::Public, CLIENT, &msg);
        assert!(record_routes(&out).is_empty(), "{out}");
    }
}

#[test]
fn in_dialog_requests_follow_the_pin_not_the_hash() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let call = call_id_for(&f, 2);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite(&call, ""));
    let rr = record_routes(&out);

    // The farm changes: backend 2's Call-IDs now hash elsewhere, but the dialog stays.
    let changed = backends([true; 3], [1, 1, 0]);
    f.replace_snapshot(Snapshot::new(&changed, 65537).unwrap());
    let farm_proxy = ",<sip:10.0.0.22:5060;lr;ftag=x>";
    let bye = in_dialog("BYE", &call, &client_route(&rr, farm_proxy));
    let (verdict, out) = handle(&f, Side::Public, CLIENT, &bye);
    assert_eq!(
        dest_and_pinning(verdict),
        (set[2].addr, Pinning::Pinned),
        "{out}"
    );
    // Both of our entries are gone; the farm proxy's stays on top for it to consume.
    let routes: Vec<&str> = out.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(routes, ["Route: <sip:10.0.0.22:5060;lr;ftag=x>"], "{out}");

    // Down: the hash takes over, and says so.
    let down = backends([true, true, false], [1, 1, 0]);
    f.replace_snapshot(Snapshot::new(&down, 65537).unwrap());
    let (verdict, _) = handle(&f, Side::Public, CLIENT, &bye);
    let (dest, pinning) = dest_and_pinning(verdict);
    assert_ne!(dest, set[2].addr);
    assert_eq!(pinning, Pinning::Moved);

    // Removed from the configuration: the same.
    f.replace_snapshot(Snapshot::new(&set[..2], 65537).unwrap());
    let (verdict, _) = handle(&f, Side::Public, CLIENT, &bye);
    assert_eq!(dest_and_pinning(verdict).1, Pinning::Moved);
}

#[test]
fn a_pin_we_did_not_make_is_refused() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let other = forwarder(&set);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite("forged-1", ""));
    let rr = record_routes(&out);
    let routes = client_route(&rr, "").replace(";pin=4", ";pin=5");
    let (verdict, out) = handle(
        &f,
        Side::Public,
        CLIENT,
        &in_dialog("BYE", "forged-1", &routes),
    );
    assert_forged(verdict);
    assert!(out.starts_with("SIP/2.0 403 Forbidden\r\n"), "{out}");
    // Another secret's pin, and a forged ACK (never answered): refused, counted apart.
    let mut other_key = other;
    other_key.key = BranchKey::new(b"another deployment");
    let (_, theirs) = handle(&other_key, Side::Public, CLIENT, &invite("forged-2", ""));
    let their_routes = client_route(&record_routes(&theirs), "");
    let (verdict, _) = handle(
        &f,
        Side::Public,
        CLIENT,
        &in_dialog("BYE", "forged-2", &their_routes),
    );
    assert_forged(verdict);
    let (verdict, _) = handle(
        &f,
        Side::Public,
        CLIENT,
        &in_dialog("ACK", "forged-1", &routes),
    );
    assert_eq!(verdict, Verdict::Drop(DropReason::ForgedRoute));
}

#[test]
fn from_the_public_side_nothing_goes_anywhere_but_the_farm() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite("relay-1", ""));
    let rr = record_routes(&out);
    let third_party = ",<sip:203.0.113.99:5060;lr>";
    for msg in [
        in_dialog("BYE", "relay-1", &client_route(&rr, third_party)),
        in_dialog("BYE", "relay-1", "Route: <sip:203.0.113.99:5060;lr>\r\n"),
        in_dialog("MESSAGE", "relay-2", "").replace(
            "sip:bob@10.0.0.30:5060",
            "sip:x@203.0.113.99;maddr=203.0.113.99",
        ),
    ] {
        let (verdict, _) = handle(&f, Side::Public, CLIENT, &msg);
        let (dest, _) = dest_and_pinning(verdict);
        assert!(set.iter().any(|b| b.addr == dest), "{dest} for\n{msg}");
    }
}

#[test]
fn the_farm_side_uses_the_route_set_too() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite("farm-1", ""));
    let rr = record_routes(&out);
    // The callee's side (in the farm) keeps the Record-Route order: our internal entry first.
    let routes = format!("Route: {}\r\n", rr.join(","));
    let bye = in_dialog("BYE", "farm-1", &routes)
        .replace("sip:bob@10.0.0.30:5060", "sip:alice@198.51.100.7:40312")
        .replace("198.51.100.7:40312;branch", "10.0.0.30:5060;branch");
    let (verdict, out) = handle(&f, Side::Internal, "10.0.0.21:5060", &bye);
    assert_eq!(toward_client(verdict), sa(CLIENT));
    assert!(
        !out.lines().any(|l| l.starts_with("Route:")),
        "our entries are not removed:\n{out}"
    );

    // A dialog the farm creates toward a client: our public entry on top (the client uses
    // it), pinned to the backend it came from.
    let outbound = invite("farm-2", "")
        .replace(
            "sip:bob@example.com SIP",
            "sip:alice@198.51.100.7:40312 SIP",
        )
        .replace("198.51.100.7:40312;branch", "10.0.0.21:5060;branch");
    let (verdict, out) = handle(&f, Side::Internal, "10.0.0.21:5060", &outbound);
    assert!(
        matches!(
            verdict,
            Verdict::Forward {
                exit: Exit::Public,
                ..
            }
        ),
        "{verdict:?}"
    );
    let rr = record_routes(&out);
    assert!(
        rr[0].starts_with(&format!("<sip:{PUBLIC};lr;pin=")),
        "{rr:?}"
    );
    assert!(rr[1].starts_with("<sip:10.0.0.1:600"), "{rr:?}");
    let pin = rr[0].split("pin=").nth(1).unwrap().trim_end_matches('>');
    assert_eq!(f.key.unpin(pin.as_bytes()), Ok(sa("10.0.0.21:5060")));
}

#[test]
fn a_drained_backend_keeps_its_dialogs() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let call = call_id_for(&f, 0);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite(&call, ""));
    let rr = record_routes(&out);
    // Weight 0 (drained), still up: new calls go elsewhere, its dialogs still reach it.
    let drained = backends([true; 3], [0, 1, 1]);
    f.replace_snapshot(Snapshot::new(&drained, 65537).unwrap());
    let (verdict, _) = handle(&f, Side::Public, CLIENT, &invite(&call, ""));
    assert_ne!(dest_and_pinning(verdict).0, set[0].addr);
    let (verdict, _) = handle(
        &f,
        Side::Public,
        CLIENT,
        &in_dialog("BYE", &call, &client_route(&rr, "")),
    );
    assert_eq!(dest_and_pinning(verdict), (set[0].addr, Pinning::Pinned));
}

#[test]
fn a_register_gets_our_path_and_the_farm_reaches_the_registered_agent_through_it() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    // The phone is behind a NAT: its Contact names its private address, it sends from
    // another one.
    let nat = "198.51.100.99:61000";
    let register: &str =
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKreg1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=r1\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.168.1.20:5060>\r\nSupported: path\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n";
    let (verdict, out) = handle(&f, Side::Public, nat, register);
    dest_and_pinning(verdict);
    let paths: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Path: "))
        .collect();
    assert_eq!(paths.len(), 1, "{out}");
    assert!(paths[0].starts_with("<sip:10.0.0.1:600"), "{paths:?}");
    assert!(
        record_routes(&out).is_empty(),
        "a REGISTER gets no Record-Route:\n{out}"
    );
    let source = paths[0].split("src=").nth(1).unwrap().trim_end_matches('>');
    assert_eq!(f.key.unpin(source.as_bytes()), Ok(sa(nat)));

    // An incoming call from the farm, routed by the registrar through our Path entry to the
    // Contact (which nobody can reach): it goes to the address the phone registered from.
    let invite = format!(
        "INVITE sip:alice@192.168.1.20:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.21:5060;branch=z9hG4bKin1\r\n\
         Route: {}\r\nMax-Forwards: 69\r\nFrom: <sip:carol@example.com>;tag=c1\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: incoming-1\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@10.0.0.21:5060>\r\nContent-Length: 0\r\n\r\n",
        paths[0]
    );
    let (verdict, out) = handle(&f, Side::Internal, "10.0.0.21:5060", &invite);
    assert_eq!(toward_client(verdict), sa(nat));
    assert!(
        !out.lines().any(|l| l.starts_with("Route:")),
        "our Path entry is not removed:\n{out}"
    );
    // The new dialog is record-routed toward the client, pinned to the backend it came from.
    let rr = record_routes(&out);
    assert!(
        rr[0].starts_with(&format!("<sip:{PUBLIC};lr;pin=")),
        "{rr:?}"
    );

    // A Path entry of ours with a source we did not vouch for: refused, nothing relayed.
    let forged = invite.replace("src=4", "src=6");
    let (verdict, _) = handle(&f, Side::Internal, "10.0.0.21:5060", &forged);
    assert_forged(verdict);
}

/// Each request's place toward dialogs, for the per-backend new-call and in-dialog counters:
/// an INVITE without a To tag starts a call, a BYE with one is inside it, an OPTIONS is
/// neither.
#[test]
fn requests_are_tallied_as_new_calls_in_dialog_or_neither() {
    let f = forwarder(&backends([true; 3], [1; 3]));
    let role = |msg: &str| match handle(&f, Side::Public, CLIENT, msg).0 {
        Verdict::Forward {
            backend: Some(tally),
            ..
        } => tally.role,
        other => panic!("not forwarded to a backend: {other:?}"),
    };
    assert_eq!(role(&invite("roles", "")), DialogRole::Creates);
    assert_eq!(role(&in_dialog("BYE", "roles", "")), DialogRole::Within);
    assert_eq!(role(&in_dialog("INVITE", "roles", "")), DialogRole::Within);
    let options = invite("roles", "").replacen("INVITE", "OPTIONS", 2);
    assert_eq!(role(&options), DialogRole::Outside);
}

/// A request as an RFC 2543 strict router sends it: our Record-Route URI `ours` as the
/// Request-URI, the rest of the route set in Route, the remote target last.
fn strict_routed(method: &str, call_id: &str, ours: &str, routes: &str) -> String {
    in_dialog(method, call_id, &format!("Route: {routes}\r\n")).replacen(
        "sip:bob@10.0.0.30:5060 SIP/2.0",
        &format!("{ours} SIP/2.0"),
        1,
    )
}

/// `uri` with the last digit of its pin changed: a pin we did not make.
fn forge_pin(uri: &str) -> String {
    let (head, pin) = uri.split_once(";pin=").expect("a pinned URI");
    let (digits, last) = pin.split_at(pin.len() - 1);
    let other = if last == "0" { "1" } else { "0" };
    format!("{head};pin={digits}{other}")
}

/// The URI inside an entry `<...>`.
fn uri_of(entry: &str) -> &str {
    entry.trim_start_matches('<').trim_end_matches('>')
}

/// §16.4: a request whose Request-URI is our Record-Route URI came from a strict router; the
/// last Route value becomes its Request-URI and leaves the Route, and the pin that URI
/// carried still routes it. Both directions, and a forged pin there is refused too.
#[test]
fn a_strict_routers_request_takes_the_last_route_as_its_request_uri() {
    let set = backends([true; 3], [1; 3]);
    let f = forwarder(&set);
    let call = call_id_for(&f, 0);
    let (_, out) = handle(&f, Side::Public, CLIENT, &invite(&call, ""));
    let rr = record_routes(&out);
    // The farm changes, so only the pin can bring the BYE to backend 0.
    f.replace_snapshot(Snapshot::new(&backends([true; 3], [0, 1, 1]), 65537).unwrap());

    // From a client: our public entry (the second) is the Request-URI.
    let bye = strict_routed(
        "BYE",
        &call,
        uri_of(&rr[1]),
        "<sip:10.0.0.20:5060;lr>, <sip:bob@10.0.0.30:5060>",
    );
    let (verdict, out) = handle(&f, Side::Public, CLIENT, &bye);
    assert_eq!(
        dest_and_pinning(verdict),
        (set[0].addr, Pinning::Pinned),
        "{out}"
    );
    assert!(
        out.starts_with("BYE sip:bob@10.0.0.30:5060 SIP/2.0\r\n"),
        "{out}"
    );
    let routes: Vec<&str> = out.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(routes, ["Route: <sip:10.0.0.20:5060;lr>"], "{out}");

    // From the farm: our internal entry (the first) is the Request-URI, the client's
    // Contact the last Route value.
    let bye = strict_routed(
        "BYE",
        &call,
        uri_of(&rr[0]),
        "<sip:alice@198.51.100.7:40312>",
    );
    let (verdict, out) = handle(&f, Side::Internal, "10.0.0.20:5060", &bye);
    assert_eq!(toward_client(verdict), sa(CLIENT), "{out}");
    assert!(
        out.starts_with("BYE sip:alice@198.51.100.7:40312 SIP/2.0\r\n"),
        "{out}"
    );
    assert!(!out.contains("\r\nRoute:"), "{out}");

    // A pin we did not make in the Request-URI: 403, as in a Route.
    let forged = strict_routed(
        "BYE",
        &call,
        &forge_pin(uri_of(&rr[1])),
        "<sip:bob@10.0.0.30:5060>",
    );
    let (verdict, _) = handle(&f, Side::Public, CLIENT, &forged);
    assert_forged(verdict);
}

//! In-place rewrites: our Via on top, strip of the top Via value, received/rport,
//! Max-Forwards, Route removal, truncation, and the buffer-room rules.

use crate::support::*;
use sipshard::sip::{
    self, BranchKey, Frame, Headers, MaxForwardsExhausted, RequestRewrite, RewriteError, ViaPrefix,
};
use std::net::SocketAddr;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn req(via: &str, extra: &str) -> String {
    format!(
        "BYE sip:bob@192.0.2.20 SIP/2.0\r\nVia: {via}\r\n{extra}From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n\
         Call-ID: rw-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn our_via_goes_on_top_and_only_the_start_line_moves() {
    let key = BranchKey::new(b"k");
    let mut buf = buffer_with(INVITE);
    let prefix = ViaPrefix::new("UDP", addr("10.1.2.3:5071")).unwrap();
    let (start_line_len, branch, rw) = {
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&buf[ROOM..ROOM + INVITE.len()], &mut headers).unwrap();
        let branch = key.branch(&m);
        let mut rw = RequestRewrite::new(&m);
        rw.add_via(&prefix, key.branch_id(&m));
        (m.headers_start, branch, rw)
    };
    let mut frame = Frame::new(&mut buf, ROOM, INVITE.len());
    rw.apply(&mut frame).unwrap();
    let out = frame.bytes().to_vec();
    let via_line = format!(
        "Via: SIP/2.0/UDP 10.1.2.3:5071;branch={}\r\n",
        text(branch.as_bytes())
    );
    // The start line moved into the headroom; everything after our Via did not move.
    assert_eq!(frame.start(), ROOM - via_line.len());
    assert_eq!(&out[..start_line_len], &INVITE[..start_line_len]);
    assert_eq!(
        text(&out[start_line_len..start_line_len + via_line.len()]),
        via_line
    );
    assert_eq!(
        &out[start_line_len + via_line.len()..],
        &INVITE[start_line_len..]
    );
    assert_eq!(
        &buf[ROOM + start_line_len..ROOM + INVITE.len()],
        &INVITE[start_line_len..]
    );

    let mut headers = Headers::<64>::new();
    let again = sip::parse(&out, &mut headers).unwrap();
    assert_eq!(again.via_count, 2);
    assert_eq!(again.top_via.via.host, b"10.1.2.3");
    assert_eq!(again.top_via.via.branch, Some(branch.as_bytes()));
    assert_eq!(
        again.second_via.unwrap().branch,
        Some(&b"z9hG4bK74bf9a1c"[..])
    );
}

#[test]
fn ipv6_sent_by_is_bracketed() {
    let out = insert_via(INVITE, addr("[2001:db8::7]:5070"), &BranchKey::new(b"k"));
    let mut headers = Headers::<64>::new();
    let m = sip::parse(&out, &mut headers).unwrap();
    assert!(text(&out).contains("\r\nVia: SIP/2.0/UDP [2001:db8::7]:5070;branch=z9hG4bKsd"));
    assert_eq!(
        (m.top_via.via.host, m.top_via.via.port),
        (&b"2001:db8::7"[..], Some(5070))
    );
}

#[test]
fn strip_top_via_whole_line_or_first_value() {
    // Whole line.
    let out = strip_via(OK200);
    assert!(text(&out).starts_with(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport=40312"
    ));
    assert_eq!(
        out.len(),
        OK200.len()
            - "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKsd0123456789abcdef01234567\r\n".len()
    );
    // First value of a comma list, with odd spacing and a fold.
    let table = [
        (
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKb",
            "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKb\r\n",
        ),
        (
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa ,\r\n SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKb",
            "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKb\r\n",
        ),
        (
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa,SIP/2.0/UDP h1,SIP/2.0/UDP h2",
            "Via: SIP/2.0/UDP h1,SIP/2.0/UDP h2\r\n",
        ),
    ];
    for (vias, expected_line) in table {
        let msg = req(vias, "").replacen("BYE sip:bob@192.0.2.20 SIP/2.0", "SIP/2.0 200 OK", 1);
        let out = text(&strip_via(msg.as_bytes()));
        assert!(
            out.contains(&format!("200 OK\r\n{expected_line}From:")),
            "{vias:?} -> {out}"
        );
    }
}

#[test]
fn received_and_rport() {
    let table: [(&str, &str, &str); 6] = [
        // rport without value: fill it, and add received even when the address matches.
        (
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
            "192.0.2.1:5060",
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=5060;received=192.0.2.1",
        ),
        // NAT: different address and port.
        (
            "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1",
            "203.0.113.9:61000",
            "SIP/2.0/UDP 10.0.0.5:5060;rport=61000;branch=z9hG4bK1;received=203.0.113.9",
        ),
        // Host name sent-by: received is added (§18.2.1), rport not asked for.
        (
            "SIP/2.0/UDP ua.example.com;branch=z9hG4bK1",
            "192.0.2.1:5060",
            "SIP/2.0/UDP ua.example.com;branch=z9hG4bK1;received=192.0.2.1",
        ),
        // Same address, no rport: nothing to do.
        (
            "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1",
            "192.0.2.1:5070",
            "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1",
        ),
        // An existing received is replaced, not duplicated; an rport with a value is kept.
        (
            "SIP/2.0/UDP 10.0.0.5;received=1.1.1.1;rport=9;branch=z9hG4bK1",
            "192.0.2.2:7000",
            "SIP/2.0/UDP 10.0.0.5;received=192.0.2.2;rport=9;branch=z9hG4bK1",
        ),
        // IPv6 source.
        (
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1;rport",
            "[2001:db8::2]:5555",
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1;rport=5555;received=2001:db8::2",
        ),
    ];
    for (via, source, expected) in table {
        let msg = req(via, "");
        let out = rewrite_request(msg.as_bytes(), |m, rw| rw.stamp_source(m, addr(source)));
        let out = text(&out);
        assert!(
            out.contains(&format!("\r\nVia: {expected}\r\nFrom:")),
            "{via} from {source}:\n{out}"
        );
        let mut headers = Headers::<16>::new();
        assert!(sip::parse(out.as_bytes(), &mut headers).is_ok());
    }
    // An IPv4-mapped IPv6 source (dual-stack socket) counts as the IPv4 address.
    let msg = req("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", "");
    let out = rewrite_request(msg.as_bytes(), |m, rw| {
        rw.stamp_source(m, addr("[::ffff:192.0.2.1]:5060"))
    });
    assert_eq!(out, msg.as_bytes());
}

#[test]
fn max_forwards() {
    let key = BranchKey::new(b"k");
    let table = [
        ("70", "69"),
        ("10", "9"),
        ("0068", "67"),
        ("1", "0"),
        ("255", "254"),
    ];
    for (before, after) in table {
        let msg = req(
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            &format!("Max-Forwards: {before}\r\n"),
        );
        let out = rewrite_request(msg.as_bytes(), |m, rw| rw.forward_max_forwards(m).unwrap());
        assert_eq!(
            text(&out),
            msg.replace(
                &format!("Max-Forwards: {before}\r\n"),
                &format!("Max-Forwards: {after}\r\n")
            )
        );
    }
    // Zero: not forwarded.
    let msg = req(
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "Max-Forwards: 0\r\n",
    );
    let mut headers = Headers::<16>::new();
    let m = sip::parse(msg.as_bytes(), &mut headers).unwrap();
    assert_eq!(
        RequestRewrite::new(&m).forward_max_forwards(&m),
        Err(MaxForwardsExhausted)
    );
    // Absent: inserted, below our Via.
    let msg = req("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "");
    let prefix = ViaPrefix::new("UDP", addr("10.0.0.1:5070")).unwrap();
    let out = rewrite_request(msg.as_bytes(), |m, rw| {
        rw.add_via(&prefix, key.branch_id(m));
        rw.forward_max_forwards(m).unwrap();
    });
    let out = text(&out);
    let via_at = out.find("Via: SIP/2.0/UDP 10.0.0.1:5070").unwrap();
    let mf_at = out.find("Max-Forwards: 70\r\n").unwrap();
    let client_via_at = out.find("Via: SIP/2.0/UDP 192.0.2.1").unwrap();
    assert!(via_at < mf_at && mf_at < client_via_at, "{out}");
}

#[test]
fn top_route_removal() {
    let table = [
        ("Route: <sip:10.0.0.1:5060;lr>\r\n", ""),
        (
            "Route: <sip:10.0.0.1:5060;lr>, <sip:p2.example.com;lr>\r\n",
            "Route: <sip:p2.example.com;lr>\r\n",
        ),
        (
            "Route: <sip:10.0.0.1;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n",
            "Route: <sip:p3.example.com;lr>\r\n",
        ),
    ];
    for (routes, left) in table {
        let msg = req("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", routes);
        let out = rewrite_request(msg.as_bytes(), |m, rw| assert!(rw.remove_top_route(m)));
        assert_eq!(text(&out), msg.replace(routes, left));
    }
    let msg = req("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "");
    let out = rewrite_request(msg.as_bytes(), |m, rw| assert!(!rw.remove_top_route(m)));
    assert_eq!(out, msg.as_bytes());
}

#[test]
fn all_rewrites_together_and_trailing_octets_dropped() {
    let key = BranchKey::new(b"k");
    let msg = req(
        "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1",
        "Route: <sip:lb.example.com;lr>\r\nMax-Forwards: 10\r\n",
    ) + "trailing junk";
    let prefix = ViaPrefix::new("UDP", addr("10.0.0.1:5070")).unwrap();
    let out = rewrite_request(msg.as_bytes(), |m, rw| {
        rw.add_via(&prefix, key.branch_id(m));
        rw.stamp_source(m, addr("203.0.113.9:6000"));
        rw.forward_max_forwards(m).unwrap();
        rw.remove_top_route(m);
    });
    let out = text(&out);
    assert!(!out.contains("junk"));
    assert!(!out.contains("Route:"));
    assert!(out.contains("Max-Forwards: 9\r\n"));
    assert!(out.contains(
        "Via: SIP/2.0/UDP 10.0.0.5:5060;rport=6000;branch=z9hG4bK1;received=203.0.113.9\r\n"
    ));
    assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
    let mut headers = Headers::<16>::new();
    let m = sip::parse(out.as_bytes(), &mut headers).unwrap();
    assert_eq!(m.top_via.via.host, b"10.0.0.1");
    assert_eq!(m.len, out.len());
}

#[test]
fn no_room_is_an_error() {
    let key = BranchKey::new(b"k");
    let mut buf = INVITE.to_vec();
    let len = buf.len();
    let prefix = ViaPrefix::new("UDP", addr("10.0.0.1:5070")).unwrap();
    let rw = {
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&buf, &mut headers).unwrap();
        let mut rw = RequestRewrite::new(&m);
        rw.add_via(&prefix, key.branch_id(&m));
        rw
    };
    let mut frame = Frame::new(&mut buf, 0, len);
    assert_eq!(rw.apply(&mut frame), Err(RewriteError::NoRoom));
}

#[test]
fn record_route_lines_go_below_our_via_and_carry_the_pin() {
    let key = BranchKey::new(b"k");
    let prefix = ViaPrefix::new("UDP", addr("10.1.2.3:5071")).unwrap();
    let lines = [
        sip::RoutePrefix::record_route(addr("10.1.2.3:5071")),
        sip::RoutePrefix::record_route(addr("[2001:db8::7]:5060")),
    ];
    let backend = addr("10.9.9.9:5080");
    let out = rewrite_request(INVITE, |m, rw| {
        rw.add_via(&prefix, key.branch_id(m));
        rw.add_record_route(&lines, key.pin(backend));
        rw.forward_max_forwards(m).unwrap();
    });
    let pin = key.pin(backend).text();
    let pin = text(pin.as_bytes());
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().split("\r\n").collect();
    assert!(
        lines[1].starts_with("Via: SIP/2.0/UDP 10.1.2.3:5071;branch="),
        "{lines:?}"
    );
    assert_eq!(
        lines[2],
        format!("Record-Route: <sip:10.1.2.3:5071;lr;pin={pin}>")
    );
    assert_eq!(
        lines[3],
        format!("Record-Route: <sip:[2001:db8::7]:5060;lr;pin={pin}>")
    );
    // An endpoint's parse accepts it, our entries are the top two, the body is intact.
    let mut headers = Headers::<64>::new();
    let m = sip::parse_strict(&out, &mut headers).expect("rewritten INVITE parses strictly");
    let rr: Vec<&[u8]> = m
        .headers
        .iter()
        .filter(|h| h.name == sip::HeaderName::RecordRoute)
        .map(|h| h.value)
        .collect();
    assert_eq!(rr.len(), 2, "{rr:?}");
    let first = sip::NameAddr::parse(rr[0]).unwrap();
    let uri = sip::SipUri::parse(first.uri).unwrap();
    let pin_value = uri.param(sip::PIN_PARAM).flatten().unwrap();
    assert_eq!(key.unpin(pin_value), Ok(backend));
    assert!(out.ends_with(&INVITE[INVITE.len() - 40..]));
}

#[test]
fn both_of_our_route_values_are_removed() {
    let two_lines = req(
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "Route: <sip:203.0.113.10;lr;pin=x>\r\nRoute: <sip:10.0.0.1:5070;lr;pin=x>,<sip:10.0.0.20;lr>\r\n",
    );
    let out = rewrite_request(two_lines.as_bytes(), |m, rw| rw.remove_top_routes(m, 2));
    assert_eq!(
        text(&out),
        req(
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "Route: <sip:10.0.0.20;lr>\r\n"
        )
    );
}

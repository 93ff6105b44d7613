//! The balancer, message by message, over real loopback UDP (IPv4 and IPv6): exactly what
//! the backend or the client receives for each kind of datagram.

use crate::support::lab::*;
use sipshard::proxy::{DropReason, ReplyKind};
use sipshard::sip::BranchKey;

fn both_families(test: impl Fn(bool)) {
    test(false);
    test(true);
}

#[test]
fn request_reaches_the_backend_with_our_via_received_rport_and_max_forwards() {
    both_families(|v6| {
        let lab = Lab::new(v6, 2, 1);
        let me = lab.client.local_addr().unwrap();
        lab.client_sends(&request(
            "INVITE",
            me,
            "z9hG4bKc1",
            "call-1",
            "Max-Forwards: 70\r\n",
        ));
        let (got, from) = recv(&lab.backend).expect("backend gets the INVITE");
        assert!(
            lab.plane.internal_addrs().contains(&from),
            "sent from an internal socket"
        );
        let v = vias(&got);
        assert_eq!(v.len(), 2, "{got}");
        // Our Via: the internal socket it left from, and a branch made with our secret.
        assert!(
            v[0].starts_with(&format!("SIP/2.0/UDP {}", sent_by_text(from))),
            "{}",
            v[0]
        );
        let branch = v[0].split("branch=").nth(1).unwrap();
        assert!(BranchKey::new(SECRET).verify(branch.as_bytes()));
        // The client's Via, with rport filled and received added.
        assert_eq!(
            v[1],
            format!(
                "SIP/2.0/UDP {me};branch=z9hG4bKc1;rport={};received={}",
                me.port(),
                me.ip()
            )
        );
        assert_eq!(header(&got, "Max-Forwards").as_deref(), Some("69"));
        let counters = lab.stop();
        assert_eq!(counters.requests_forwarded, 1);
    });
}

fn sent_by_text(addr: std::net::SocketAddr) -> String {
    addr.to_string()
}

#[test]
fn response_returns_to_the_client_without_our_via() {
    both_families(|v6| {
        let lab = Lab::new(v6, 2, 1);
        let me = lab.client.local_addr().unwrap();
        lab.client_sends(&request("OPTIONS", me, "z9hG4bKc2", "call-2", ""));
        let (req, _) = recv(&lab.backend).unwrap();
        // The backend answers to the top Via, as a UAS does.
        let ok = response_to(&req, 200, "OK");
        lab.backend
            .send_to(ok.as_bytes(), top_via_addr(&req))
            .unwrap();
        let (got, from) = recv(&lab.client).expect("client gets the 200");
        assert_eq!(
            from,
            lab.public(),
            "the response comes from the public address"
        );
        assert!(got.starts_with("SIP/2.0 200 OK\r\n"));
        let v = vias(&got);
        assert_eq!(
            v,
            vec![format!(
                "SIP/2.0/UDP {me};branch=z9hG4bKc2;rport={};received={}",
                me.port(),
                me.ip()
            )]
        );
        assert_eq!(
            header(&got, "To").as_deref(),
            Some("<sip:bob@example.com>;tag=uas1")
        );
        let counters = lab.stop();
        assert_eq!(
            (counters.requests_forwarded, counters.responses_forwarded),
            (1, 1)
        );
    });
}

#[test]
fn max_forwards_zero_gets_483_and_is_not_forwarded() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 1);
        let me = lab.client.local_addr().unwrap();
        lab.client_sends(&request(
            "INVITE",
            me,
            "z9hG4bKc3",
            "call-3",
            "Max-Forwards: 0\r\n",
        ));
        let (got, _) = recv(&lab.client).expect("483");
        assert!(got.starts_with("SIP/2.0 483 Too Many Hops\r\n"), "{got}");
        assert_eq!(header(&got, "Call-ID").as_deref(), Some("call-3"));
        assert!(header(&got, "To").unwrap().contains(";tag="));
        // An ACK with Max-Forwards 0 is neither forwarded nor answered.
        lab.client_sends(&request(
            "ACK",
            me,
            "z9hG4bKc3",
            "call-3",
            "Max-Forwards: 0\r\n",
        ));
        assert_silent(&lab.backend);
        assert_silent(&lab.client);
        let counters = lab.stop();
        assert_eq!(counters.replied(ReplyKind::TooManyHops), 1);
        assert_eq!(counters.dropped(DropReason::AckTooManyHops), 1);
    });
}

#[test]
fn no_backend_up_gets_503_with_retry_after() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 0);
        let me = lab.client.local_addr().unwrap();
        lab.client_sends(&request("INVITE", me, "z9hG4bKc4", "call-4", ""));
        let (got, _) = recv(&lab.client).expect("503");
        assert!(
            got.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{got}"
        );
        assert_eq!(header(&got, "Retry-After").as_deref(), Some("7"));
        // An ACK cannot be answered: dropped, and counted as such.
        lab.client_sends(&request("ACK", me, "z9hG4bKc4", "call-4", ""));
        assert_silent(&lab.client);
        assert_silent(&lab.backend);
        let counters = lab.stop();
        assert_eq!(counters.replied(ReplyKind::ServiceUnavailable), 1);
        assert_eq!(counters.dropped(DropReason::NoBackend), 1);
    });
}

#[test]
fn response_with_a_foreign_via_is_dropped_and_counted() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 1);
        let me = lab.client.local_addr().unwrap();
        let internal = lab.plane.internal_addrs()[0];
        // A response whose top Via is the client's own, not ours.
        let forged = response_to(&request("INVITE", me, "z9hG4bKc5", "call-5", ""), 200, "OK");
        lab.backend.send_to(forged.as_bytes(), internal).unwrap();
        // A response with our sent-by but a branch not made with our secret.
        let other = BranchKey::new(b"someone else");
        let req = request("INVITE", me, "z9hG4bKc5", "call-5", "");
        let mut headers = sipshard::sip::Headers::<32>::new();
        let m = sipshard::sip::parse(req.as_bytes(), &mut headers).unwrap();
        let fake_branch = String::from_utf8(other.branch(&m).as_bytes().to_vec()).unwrap();
        let spoofed = forged.replacen(
            "Via: ",
            &format!("Via: SIP/2.0/UDP {internal};branch={fake_branch}\r\nVia: "),
            1,
        );
        lab.backend.send_to(spoofed.as_bytes(), internal).unwrap();
        assert_silent(&lab.client);
        assert_eq!(lab.stop().dropped(DropReason::ForeignVia), 2);
    });
}

#[test]
fn our_route_is_removed_and_others_are_kept() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 1);
        let me = lab.client.local_addr().unwrap();
        let route = format!(
            "Route: <sip:{};lr>, <sip:proxy.example.com;lr>\r\n",
            lab.public()
        );
        lab.client_sends(&request("BYE", me, "z9hG4bKc6", "call-6", &route));
        let (got, _) = recv(&lab.backend).unwrap();
        assert_eq!(
            header(&got, "Route").as_deref(),
            Some("<sip:proxy.example.com;lr>")
        );
        lab.stop();
    });
}

#[test]
fn malformed_request_gets_400_and_garbage_is_dropped() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 1);
        let me = lab.client.local_addr().unwrap();
        let bad = request("INVITE", me, "z9hG4bKc7", "call-7", "")
            .replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
        lab.client_sends(&bad);
        let (got, _) = recv(&lab.client).expect("400");
        assert!(
            got.starts_with("SIP/2.0 400 CSeq method does not match\r\n"),
            "{got}"
        );
        lab.client
            .send_to(b"\x16\x03\x01 not sip at all", lab.public())
            .unwrap();
        lab.client.send_to(b"\r\n\r\n", lab.public()).unwrap();
        assert_silent(&lab.client);
        assert_silent(&lab.backend);
        let counters = lab.stop();
        assert_eq!(counters.replied(ReplyKind::BadRequest), 1);
        assert_eq!(counters.dropped(DropReason::Unparsable), 1);
        assert_eq!(counters.dropped(DropReason::KeepAlive), 1);
    });
}

#[test]
fn looping_request_gets_482() {
    both_families(|v6| {
        let lab = Lab::new(v6, 1, 1);
        let me = lab.client.local_addr().unwrap();
        lab.client_sends(&request("OPTIONS", me, "z9hG4bKc8", "call-8", ""));
        let (forwarded, _) = recv(&lab.backend).unwrap();
        // The backend, a proxy, adds its Via and sends it back to our public address: our
        // branch is in it, one Via down.
        let backend = lab.backend.local_addr().unwrap();
        let looped = forwarded.replacen(
            "Via: ",
            &format!("Via: SIP/2.0/UDP {backend};branch=z9hG4bKloop\r\nVia: "),
            1,
        );
        lab.backend
            .send_to(looped.as_bytes(), lab.public())
            .unwrap();
        let (got, _) = recv(&lab.backend).expect("482 to the sender");
        assert!(got.starts_with("SIP/2.0 482 Loop Detected\r\n"), "{got}");
        assert_eq!(lab.stop().replied(ReplyKind::LoopDetected), 1);
    });
}

#[test]
fn backend_request_goes_by_request_uri_and_its_response_comes_back() {
    both_families(|v6| {
        let lab = Lab::new(v6, 2, 1);
        let me = lab.client.local_addr().unwrap();
        let backend = lab.backend.local_addr().unwrap();
        let internal = lab.plane.internal_addrs()[0];
        // A BYE from the callee side, through the backend, to the client's Contact.
        let bye = request(
            "BYE",
            backend,
            "z9hG4bKb1",
            "call-9",
            "Max-Forwards: 69\r\n",
        )
        .replacen(
            "BYE sip:bob@example.com",
            &format!("BYE sip:alice@{}", sent_by_text(me)),
            1,
        );
        lab.backend.send_to(bye.as_bytes(), internal).unwrap();
        let (got, from) = recv(&lab.client).expect("client gets the BYE");
        assert_eq!(from, lab.public());
        let v = vias(&got);
        assert_eq!(v.len(), 2);
        assert!(
            v[0].starts_with(&format!("SIP/2.0/UDP {};branch=z9hG4bK", lab.public())),
            "{}",
            v[0]
        );
        assert_eq!(header(&got, "Max-Forwards").as_deref(), Some("68"));
        // The client's 200 goes back through us to the backend.
        let ok = response_to(&got, 200, "OK");
        lab.client
            .send_to(ok.as_bytes(), top_via_addr(&got))
            .unwrap();
        let (back, from) = recv(&lab.backend).expect("backend gets the 200");
        assert!(lab.plane.internal_addrs().contains(&from));
        assert!(back.starts_with("SIP/2.0 200 OK\r\n"));
        assert_eq!(vias(&back).len(), 1);
        // A next hop that needs DNS: 503, counted apart.
        let named = bye.replacen(
            &format!("BYE sip:alice@{}", sent_by_text(me)),
            "BYE sip:alice@client.example.com",
            1,
        );
        lab.backend.send_to(named.as_bytes(), internal).unwrap();
        let (refused, _) = recv(&lab.backend).expect("503 to the backend");
        assert!(
            refused.starts_with("SIP/2.0 503 Next Hop Needs DNS\r\n"),
            "{refused}"
        );
        // A request from an address that is not a backend is dropped.
        lab.client.send_to(bye.as_bytes(), internal).unwrap();
        assert_silent(&lab.client);
        let counters = lab.stop();
        assert_eq!(counters.dropped(DropReason::UnknownPeer), 1);
        assert_eq!(counters.replied(ReplyKind::NextHopNeedsDns), 1);
    });
}

//! Redirect mode (`sipshard redirect`), decision by decision and through a running one: a
//! new call gets a 302 whose Contact names the backend `balance` would pick, with the user
//! part of the request's URI; ACKs are absorbed; OPTIONS and CANCEL get 200; in-dialog
//! requests 481; other methods 405 with `Allow`; no backend up: 503.

use crate::support::farm::{balance_args, free_udp_port};
use crate::support::lab::header;
use sipshard::balance::{call_id_hash, Backend, Snapshot};
use sipshard::config::BalanceConfig;
use sipshard::net::{HEADROOM, REPLY_LEN};
use sipshard::proxy::{
    Advertised, Arrival, BackendTally, DialogRole, DropReason, Forwarder, Mode, ReplyKind, Side,
    Verdict,
};
use sipshard::sip::BranchKey;
use sipshard::tools::balance::Balancer;
use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const PUBLIC: &str = "192.0.2.1:5060";
const CLIENT: &str = "198.51.100.7:40312";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Three backends; when not `up`, as the control thread publishes them down (weight 0).
fn farm(up: bool) -> Vec<Backend> {
    (0..3)
        .map(|i| Backend {
            addr: sa(&format!("10.0.0.2{i}:5060")),
            weight: u32::from(up),
            up,
        })
        .collect()
}

fn redirector(set: &[Backend]) -> Forwarder {
    Forwarder {
        key: BranchKey::new(b"redirect"),
        snapshot: RefCell::new(Snapshot::new(set, 65537).unwrap()),
        public: vec![Advertised::new(sa(PUBLIC))],
        internal: vec![Advertised::new(sa("10.0.0.1:6000"))],
        retry_after: 7,
        record_routing: None,
        path_lines: None,
        mode: Mode::Redirect,
    }
}

fn request(method: &str, call_id: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:+15551234@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40312;branch=z9hG4bK-{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:alice@198.51.100.7:40312>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The verdict and the reply's text.
fn answer(f: &Forwarder, msg: &str) -> (Verdict, String) {
    let mut slot = vec![0u8; HEADROOM + msg.len() + 512];
    let mut reply = vec![0u8; REPLY_LEN];
    slot[HEADROOM..HEADROOM + msg.len()].copy_from_slice(msg.as_bytes());
    let arrival = Arrival {
        side: Side::Public,
        source: sa(CLIENT),
    };
    let verdict = f.handle(arrival, &mut slot, HEADROOM, msg.len(), &mut reply);
    let text = match verdict {
        Verdict::Reply { len, .. } => String::from_utf8_lossy(&reply[..len]).into_owned(),
        _ => String::new(),
    };
    (verdict, text)
}

#[test]
fn a_new_call_is_redirected_to_the_backend_balance_would_pick() {
    let set = farm(true);
    let f = redirector(&set);
    let snapshot = Snapshot::new(&set, 65537).unwrap();
    for n in 0..50 {
        let call_id = format!("redirect-{n}");
        let (verdict, text) = answer(&f, &request("INVITE", &call_id, ""));
        let index = snapshot
            .pick_index(call_id_hash(call_id.as_bytes()))
            .unwrap();
        let expected = BackendTally {
            index: index as u16,
            status: 0,
            pinning: sipshard::proxy::Pinning::Hashed,
            role: DialogRole::Creates,
        };
        assert!(
            matches!(verdict, Verdict::Reply { kind: ReplyKind::Redirect, dest, backend: Some(b), .. }
                if dest == sa(CLIENT) && b == expected),
            "{verdict:?}"
        );
        assert!(
            text.starts_with("SIP/2.0 302 Moved Temporarily\r\n"),
            "{text}"
        );
        let contact = format!("Contact: <sip:+15551234@{}>\r\n", set[index].addr);
        assert!(text.contains(&contact), "{text}");
        // The dialog fields are echoed, with a To tag added.
        assert!(text.contains(&format!("Call-ID: {call_id}\r\n")), "{text}");
        assert!(text.contains("To: <sip:bob@example.com>;tag="), "{text}");
    }
}

#[test]
fn everything_but_a_new_call_gets_a_fixed_answer() {
    let f = redirector(&farm(true));
    let kind = |msg: &str| match answer(&f, msg) {
        (Verdict::Reply { kind, .. }, text) => (Some(kind), text),
        (Verdict::Drop(reason), _) => {
            assert_eq!(reason, DropReason::AbsorbedAck);
            (None, String::new())
        }
        (other, _) => panic!("a redirect server forwards nothing: {other:?}"),
    };
    assert_eq!(kind(&request("ACK", "r-ack", ";tag=b1")).0, None);
    let (options, text) = kind(&request("OPTIONS", "r-options", ""));
    assert_eq!(options, Some(ReplyKind::Ok));
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Allow: INVITE, ACK, CANCEL, OPTIONS\r\n"),
        "{text}"
    );
    assert_eq!(
        kind(&request("CANCEL", "r-cancel", "")).0,
        Some(ReplyKind::Ok)
    );
    let (bye, text) = kind(&request("BYE", "r-bye", ";tag=b1"));
    assert_eq!(bye, Some(ReplyKind::NoDialog));
    assert!(text.starts_with("SIP/2.0 481 "), "{text}");
    let (reinvite, _) = kind(&request("INVITE", "r-reinvite", ";tag=b1"));
    assert_eq!(reinvite, Some(ReplyKind::NoDialog));
    let (register, text) = kind(&request("REGISTER", "r-register", ""));
    assert_eq!(register, Some(ReplyKind::MethodNotAllowed));
    assert!(
        text.starts_with("SIP/2.0 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Allow: INVITE, ACK, CANCEL, OPTIONS\r\n"),
        "{text}"
    );

    // No backend takes calls: 503 with Retry-After, as balance answers.
    let down = redirector(&farm(false));
    let (verdict, text) = answer(&down, &request("INVITE", "r-down", ""));
    assert!(matches!(
        verdict,
        Verdict::Reply {
            kind: ReplyKind::ServiceUnavailable,
            backend: None,
            ..
        }
    ));
    assert!(text.contains("Retry-After: 7\r\n"), "{text}");
}

/// Through a running redirect server on loopback: each INVITE gets its 302 naming one of
/// the configured backends (never contacted: nothing listens there), and the per-backend
/// new-call counters add up to the calls redirected.
#[test]
fn a_running_redirect_server_answers_over_udp_and_counts_per_backend() {
    let backends: Vec<SocketAddr> = (0..2)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_udp_port())))
        .collect();
    let args = balance_args(
        &backends,
        &[
            "--workers",
            "1",
            "--probe-interval-ms",
            "0",
            "--secret",
            "r",
        ],
    );
    let config = BalanceConfig::from_args(&args).unwrap();
    let server = Balancer::start_as(Mode::Redirect, &args, &config).expect("starts");
    let public = server.public_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let from = client.local_addr().unwrap();
    let mut buf = [0u8; 4096];
    let calls = 40;
    for n in 0..calls {
        let invite = request("INVITE", &format!("udp-{n}"), "")
            .replace("198.51.100.7:40312", &from.to_string());
        let text = (0..5)
            .find_map(|_| {
                client.send_to(invite.as_bytes(), public).unwrap();
                let (len, _) = client.recv_from(&mut buf).ok()?;
                Some(String::from_utf8_lossy(&buf[..len]).into_owned())
            })
            .expect("a 302 within five tries");
        assert!(text.starts_with("SIP/2.0 302 "), "{text}");
        let contact = header(&text, "Contact").expect("a Contact");
        assert!(
            backends
                .iter()
                .any(|b| contact == format!("<sip:+15551234@{b}>")),
            "{contact}"
        );
    }
    let status = server.control().status().unwrap();
    let redirected: u64 = status.backends.iter().map(|b| b.new_calls).sum();
    assert!(redirected >= calls, "{status:?}");
    assert!(
        status.backends.iter().all(|b| b.new_calls > 0),
        "{status:?}"
    );
    let totals = server.stop();
    assert!(totals.replied(ReplyKind::Redirect) >= calls);
    assert_eq!(totals.requests_forwarded, 0);
}

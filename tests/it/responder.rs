//! The responder over loopback UDP: what it answers to each method.

use crate::support::lab::{header, recv, request, vias};
use sipshard::tools::responder::Responder;
use std::net::UdpSocket;
use std::time::Duration;

fn setup() -> (Responder, UdpSocket) {
    let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    (responder, client)
}

fn status_line(msg: &str) -> &str {
    msg.split("\r\n").next().unwrap()
}

#[test]
fn invite_gets_100_180_200_with_tag_and_contact() {
    let (responder, client) = setup();
    let me = client.local_addr().unwrap();
    client
        .send_to(
            request("INVITE", me, "z9hG4bKr1", "r-1", "Max-Forwards: 70\r\n").as_bytes(),
            responder.addr(),
        )
        .unwrap();
    let answers: Vec<String> = (0..3)
        .map(|_| recv(&client).expect("three responses").0)
        .collect();
    let lines: Vec<&str> = answers.iter().map(|a| status_line(a)).collect();
    assert_eq!(
        lines,
        [
            "SIP/2.0 100 Trying",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK"
        ]
    );
    let ok = &answers[2];
    let to = header(ok, "To").unwrap();
    assert!(to.starts_with("<sip:bob@example.com>;tag="), "{to}");
    assert_eq!(
        header(&answers[1], "To"),
        Some(to.clone()),
        "one tag for the dialog"
    );
    assert_eq!(
        header(ok, "Contact"),
        Some(format!("<sip:responder@{}>", responder.addr()))
    );
    assert_eq!(header(ok, "CSeq").as_deref(), Some("1 INVITE"));
    assert_eq!(
        vias(ok),
        [format!(
            "SIP/2.0/UDP {me};branch=z9hG4bKr1;rport={};received=127.0.0.1",
            me.port()
        )]
    );
    // The ACK is absorbed.
    client
        .send_to(
            request("ACK", me, "z9hG4bKr1a", "r-1", "").as_bytes(),
            responder.addr(),
        )
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(recv(&client).is_none());
    let seen = responder.stop();
    assert_eq!(
        (seen.count("INVITE"), seen.count("ACK"), seen.sent),
        (1, 1, 3)
    );
}

#[test]
fn cancel_gets_200_and_487_for_the_invite() {
    let (responder, client) = setup();
    let me = client.local_addr().unwrap();
    client
        .send_to(
            request("CANCEL", me, "z9hG4bKr2", "r-2", "").as_bytes(),
            responder.addr(),
        )
        .unwrap();
    let first = recv(&client).unwrap().0;
    let second = recv(&client).unwrap().0;
    assert_eq!(status_line(&first), "SIP/2.0 200 OK");
    assert_eq!(header(&first, "CSeq").as_deref(), Some("1 CANCEL"));
    assert_eq!(status_line(&second), "SIP/2.0 487 Request Terminated");
    assert_eq!(header(&second, "CSeq").as_deref(), Some("1 INVITE"));
    assert_eq!(responder.stop().count("CANCEL"), 1);
}

#[test]
fn other_methods_get_200_and_garbage_is_counted() {
    let (responder, client) = setup();
    let me = client.local_addr().unwrap();
    for (i, method) in ["BYE", "OPTIONS", "REGISTER", "MESSAGE", "INFO"]
        .iter()
        .enumerate()
    {
        let msg = request(method, me, &format!("z9hG4bKo{i}"), &format!("o-{i}"), "");
        client.send_to(msg.as_bytes(), responder.addr()).unwrap();
        let (answer, _) = recv(&client).unwrap();
        assert_eq!(status_line(&answer), "SIP/2.0 200 OK", "{method}");
        assert_eq!(header(&answer, "CSeq"), Some(format!("1 {method}")));
    }
    client.send_to(b"not sip", responder.addr()).unwrap();
    client.send_to(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n\r\n", responder.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let seen = responder.stop();
    assert_eq!(
        (
            seen.count("BYE"),
            seen.count("OPTIONS"),
            seen.count("other")
        ),
        (1, 1, 1)
    );
    assert_eq!((seen.unparsable, seen.responses), (1, 1));
}

/// The responder's sockets (and the duplicates it parks on) are close-on-exec: a process
/// spawned while it runs does not keep its port bound after it stops.
#[test]
fn a_child_process_does_not_inherit_the_responders_socket() {
    use sipshard::tools::responder::Responder;
    let responder = Responder::start("127.0.0.1:0".parse().unwrap(), 1, false).unwrap();
    let addr = responder.addr();
    // Make the responder park on its socket (the duplicate is made then).
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"\r\n\r\n", addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut child = std::process::Command::new("sleep")
        .arg("3")
        .spawn()
        .unwrap();
    responder.stop();
    let mut bound = Err(std::io::Error::other("not tried"));
    for _ in 0..100 {
        bound = std::net::UdpSocket::bind(addr);
        if bound.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(bound.is_ok(), "port {addr} still bound: {bound:?}");
}

//! Stateless responses: 400, 482, 483, 503 built from the request as §8.2.6 requires.

use crate::support::text;
use sipshard::sip::{
    self, parse_lenient, write_reply, Echo, HeaderName, Headers, ReplyError, Status,
};
use std::net::SocketAddr;

const SOURCE: &str = "203.0.113.9:6000";

fn req(method: &str, extra: &str, to: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKr1\r\n\
         v: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKr0\r\n\
         {extra}From: \"A\" <sip:a@example.com>;tag=ft\r\n{to}\r\n\
         Call-ID: reply-1@example.com\r\nCSeq: 5 {method}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    )
}

fn reply_to(msg: &str, status: Status) -> Result<String, ReplyError> {
    let source: SocketAddr = SOURCE.parse().unwrap();
    let mut headers = Headers::<32>::new();
    let mut out = [0u8; 2048];
    let m = sip::parse(msg.as_bytes(), &mut headers).map_err(|_| ReplyError::MissingFields)?;
    let echo = Echo::from_message(&m)?;
    let n = write_reply(&mut out, &echo, status, source, b"lbtag")?;
    Ok(text(&out[..n]))
}

#[test]
fn echoes_vias_from_to_call_id_cseq() {
    let msg = req("INVITE", "Max-Forwards: 0\r\n", "To: <sip:bob@example.com>");
    let out = reply_to(&msg, Status::TOO_MANY_HOPS).unwrap();
    let expected = "SIP/2.0 483 Too Many Hops\r\n\
        Via: SIP/2.0/UDP 10.0.0.5:5060;rport=6000;branch=z9hG4bKr1;received=203.0.113.9\r\n\
        v: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKr0\r\n\
        From: \"A\" <sip:a@example.com>;tag=ft\r\n\
        To: <sip:bob@example.com>;tag=lbtag\r\n\
        Call-ID: reply-1@example.com\r\n\
        CSeq: 5 INVITE\r\n\
        Server: sipshard\r\n\
        Content-Length: 0\r\n\r\n";
    assert_eq!(out, expected);
    let mut headers = Headers::<32>::new();
    let parsed = sip::parse(out.as_bytes(), &mut headers).unwrap();
    assert_eq!(parsed.status(), Some(483));
    assert_eq!(parsed.via_count, 2);
    assert_eq!(parsed.to_addr().unwrap().tag, Some(&b"lbtag"[..]));
}

#[test]
fn existing_to_tag_is_kept_and_503_has_retry_after() {
    let msg = req("BYE", "", "To: <sip:bob@example.com>;tag=callee");
    let out = reply_to(&msg, Status::service_unavailable(30)).unwrap();
    assert!(out.starts_with("SIP/2.0 503 Service Unavailable\r\n"));
    assert!(out.contains("\r\nTo: <sip:bob@example.com>;tag=callee\r\n"));
    assert!(!out.contains("lbtag"));
    assert!(out.contains("\r\nRetry-After: 30\r\n"));
    assert!(!out.contains("Content-Type"));
    let out = reply_to(&msg, Status::LOOP_DETECTED).unwrap();
    assert!(out.starts_with("SIP/2.0 482 Loop Detected\r\n"));
}

#[test]
fn never_answers_ack_or_responses() {
    let ack = req("ACK", "", "To: <sip:bob@example.com>;tag=x");
    assert_eq!(
        reply_to(&ack, Status::bad_request("x")),
        Err(ReplyError::NotAnswerable)
    );
    let response = req("INVITE", "", "To: <sip:bob@example.com>;tag=x").replacen(
        "INVITE sip:bob@example.com SIP/2.0",
        "SIP/2.0 180 Ringing",
        1,
    );
    assert_eq!(
        reply_to(&response, Status::bad_request("x")),
        Err(ReplyError::NotAnswerable)
    );
}

#[test]
fn bad_request_from_a_partial_parse() {
    let msg = req(
        "INVITE",
        "Max-Forwards: many\r\nDate: Fri, 01 Jan 2010 16:00:00 EST\r\n",
        "To: <sip:bob@example.com>",
    );
    let mut headers = Headers::<32>::new();
    let p = parse_lenient(msg.as_bytes(), &mut headers);
    let err = p.error.unwrap();
    assert_eq!(err, sip::ParseError::Invalid(HeaderName::MaxForwards));
    let echo = Echo::from_partial(&p).unwrap();
    let mut out = [0u8; 2048];
    let n = write_reply(
        &mut out,
        &echo,
        Status::bad_request(err.reason()),
        SOURCE.parse().unwrap(),
        b"t",
    )
    .unwrap();
    let out = text(&out[..n]);
    assert!(
        out.starts_with("SIP/2.0 400 Invalid Max-Forwards\r\n"),
        "{out}"
    );
    let mut headers = Headers::<32>::new();
    assert!(sip::parse(out.as_bytes(), &mut headers).is_ok());
}

#[test]
fn no_reply_without_the_fields_to_echo() {
    // No CSeq, and an ACK whose start line is broken: neither can be answered.
    for msg in [
        req("INVITE", "", "To: <sip:bob@example.com>").replace("CSeq: 5 INVITE\r\n", ""),
        req("INVITE", "", "To: <sip:bob@example.com>")
            .replace("Call-ID: reply-1@example.com\r\n", "Call-ID: a b\r\n"),
        req("ACK", "Max-Forwards: x\r\n", "To: <sip:bob@example.com>"),
        "garbage\r\n\r\n".to_owned(),
    ] {
        let mut headers = Headers::<32>::new();
        let p = parse_lenient(msg.as_bytes(), &mut headers);
        assert!(p.error.is_some());
        assert!(Echo::from_partial(&p).is_err(), "{msg}");
    }
}

#[test]
fn duplicate_headers_are_echoed_once() {
    let msg = req(
        "INVITE",
        "",
        "To: <sip:bob@example.com>\r\nTo: <sip:eve@example.com>",
    );
    let mut headers = Headers::<32>::new();
    let p = parse_lenient(msg.as_bytes(), &mut headers);
    assert_eq!(p.error, Some(sip::ParseError::Duplicate(HeaderName::To)));
    let mut out = [0u8; 2048];
    let n = write_reply(
        &mut out,
        &Echo::from_partial(&p).unwrap(),
        Status::bad_request("Duplicate To"),
        SOURCE.parse().unwrap(),
        b"t",
    )
    .unwrap();
    let out = text(&out[..n]);
    assert_eq!(out.matches("\r\nTo:").count(), 1);
    assert!(!out.contains("eve"));
}

#[test]
fn small_buffer_is_an_error() {
    let msg = req("INVITE", "", "To: <sip:bob@example.com>");
    let mut headers = Headers::<32>::new();
    let m = sip::parse(msg.as_bytes(), &mut headers).unwrap();
    let echo = Echo::from_message(&m).unwrap();
    for size in [0, 10, 100, 200] {
        let mut out = vec![0u8; size];
        assert_eq!(
            write_reply(
                &mut out,
                &echo,
                Status::TOO_MANY_HOPS,
                SOURCE.parse().unwrap(),
                b"t"
            ),
            Err(ReplyError::BufferTooSmall)
        );
    }
}

//! Table-driven parser tests, one group per rule of the issue: start lines, header names
//! and compact forms, multi-value and multi-line headers, folding, Via, Call-ID, CSeq,
//! Max-Forwards, From/To tags, Route, Content-Length.

use sipshard::sip::{self, parse_lenient, HeaderName, Headers, ParseError, Rport, StartLine};

/// A minimal valid request with `extra` header lines spliced in after the Via.
fn request(extra: &str) -> String {
    format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
         {extra}\
         From: <sip:alice@example.com>;tag=f1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 7 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn parse_ok(text: &str, check: impl FnOnce(&sip::Message<'_, '_>)) {
    let mut headers = Headers::<64>::new();
    match sip::parse(text.as_bytes(), &mut headers) {
        Ok(m) => check(&m),
        Err(e) => panic!("{e:?} for\n{text}"),
    }
}

fn parse_err(text: &str) -> ParseError {
    let mut headers = Headers::<64>::new();
    match sip::parse(text.as_bytes(), &mut headers) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e,
    }
}

fn strict_err(text: &str) -> ParseError {
    let mut headers = Headers::<64>::new();
    match sip::parse_strict(text.as_bytes(), &mut headers) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn start_lines() {
    parse_ok(&request(""), |m| {
        assert_eq!(
            m.start,
            StartLine::Request {
                method: b"OPTIONS",
                uri: b"sip:bob@example.com"
            }
        );
        assert!(m.is_request());
    });
    let unknown = request("").replace("OPTIONS", "FOOBAR");
    parse_ok(&unknown, |m| assert_eq!(m.method(), Some(&b"FOOBAR"[..])));
    let response = request("").replacen(
        "OPTIONS sip:bob@example.com SIP/2.0",
        "SIP/2.0 486 Busy Here",
        1,
    );
    parse_ok(&response, |m| {
        assert_eq!(m.status(), Some(486));
        assert_eq!(m.method(), None);
    });
    let table = [
        ("OPTIONS sip:bob@example.com SIP/2.1", ParseError::Version),
        (
            "OPTIONS sip:bob@example.com HTTP/1.1",
            ParseError::StartLine,
        ),
        (
            "OPTIONS  sip:bob@example.com SIP/2.0",
            ParseError::StartLine,
        ),
        ("OPTIONS bob@example.com SIP/2.0", ParseError::RequestUri),
        ("OPT:IONS sip:bob@example.com SIP/2.0", ParseError::Method),
    ];
    for (line, err) in table {
        let text = request("").replacen("OPTIONS sip:bob@example.com SIP/2.0", line, 1);
        assert_eq!(parse_err(&text), err, "{line}");
    }
    let mut headers = Headers::<8>::new();
    assert_eq!(sip::parse(b"", &mut headers).err(), Some(ParseError::Empty));
    assert_eq!(
        sip::parse(b"\r\n\r\n", &mut headers).err(),
        Some(ParseError::Empty)
    );
    assert_eq!(
        sip::parse(b"OPTIONS sip:x SIP/2.0", &mut headers).err(),
        Some(ParseError::StartLine)
    );
}

#[test]
fn compact_forms_and_case() {
    let text = "INVITE sip:bob@example.com SIP/2.0\r\n\
                v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc\r\n\
                f: <sip:a@example.com>;tag=1\r\n\
                t: <sip:b@example.com>\r\n\
                i: compact@x\r\n\
                cSeQ: 1 INVITE\r\n\
                m: <sip:a@192.0.2.1>\r\n\
                c: application/sdp\r\n\
                k: timer\r\n\
                s: hello\r\n\
                e: gzip\r\n\
                o: presence\r\n\
                u: refer\r\n\
                r: <sip:c@example.com>\r\n\
                MAX-FORWARDS: 9\r\n\
                l: 4\r\n\r\nbody";
    parse_ok(text, |m| {
        assert_eq!(m.call_id, b"compact@x");
        assert_eq!(m.from_addr().unwrap().tag, Some(&b"1"[..]));
        assert_eq!(m.to_addr().unwrap().uri, b"sip:b@example.com");
        assert_eq!(m.max_forwards.unwrap().value, 9);
        assert_eq!(m.body, b"body");
        let names: Vec<HeaderName> = m.headers.iter().map(|h| h.name).collect();
        use HeaderName::*;
        assert_eq!(
            names,
            [
                Via,
                From,
                To,
                CallId,
                CSeq,
                Contact,
                ContentType,
                Supported,
                Subject,
                ContentEncoding,
                Event,
                AllowEvents,
                ReferTo,
                MaxForwards,
                ContentLength
            ]
        );
    });
}

#[test]
fn several_values_in_one_line_and_several_lines() {
    let text = "SIP/2.0 200 OK\r\n\
                Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKp1 , SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp2\r\n\
                Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKp3\r\n\
                From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
                Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    parse_ok(text, |m| {
        assert_eq!(m.via_count, 3);
        assert_eq!(m.top_via.via.host, b"10.0.0.1");
        assert_eq!(
            m.top_via.removal,
            b"SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKp1 , "
        );
        assert_eq!(m.second_via.unwrap().host, b"192.0.2.1");
    });
}

#[test]
fn folding_and_spaces_around_colons() {
    let text = request("")
        .replace(
            "From: <sip:alice@example.com>;tag=f1",
            "From\t :\r\n\t<sip:alice@example.com>\r\n ;tag=f1",
        )
        .replace("CSeq: 7 OPTIONS", "CSeq:7\r\n OPTIONS");
    parse_ok(&text, |m| {
        assert_eq!(m.from_addr().unwrap().tag, Some(&b"f1"[..]));
        assert_eq!((m.cseq.number, m.cseq.method), (7, &b"OPTIONS"[..]));
        let from = m
            .headers
            .iter()
            .find(|h| h.name == HeaderName::From)
            .unwrap();
        assert!(from.line.starts_with(b"From\t :\r\n\t<sip"));
        assert!(from.line.ends_with(b";tag=f1\r\n"));
    });
    // A fold is not allowed to start the header section.
    let bad = request("").replace("\r\nVia:", "\r\n Via:");
    assert_eq!(parse_err(&bad), ParseError::HeaderLine);
    assert_eq!(
        parse_err(&request("NoColonHere\r\n")),
        ParseError::HeaderLine
    );
    assert_eq!(
        parse_err(&request(": empty name\r\n")),
        ParseError::HeaderLine
    );
}

#[test]
fn via_forms() {
    type Check = fn(&sip::Via<'_>);
    let table: [(&str, Check); 6] = [
        ("SIP/2.0/UDP host.example.com;branch=z9hG4bK1", |v| {
            assert_eq!(
                (v.host, v.port, v.host_is_ipv6),
                (&b"host.example.com"[..], None, false)
            );
        }),
        ("SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK1;rport", |v| {
            assert_eq!((v.host, v.port), (&b"192.0.2.9"[..], Some(5080)));
            assert!(matches!(v.rport, Some(Rport::Empty { .. })));
        }),
        (
            "SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bK1;rport=7;received=2001:db8::6",
            |v| {
                assert_eq!(
                    (v.host, v.port, v.host_is_ipv6),
                    (&b"2001:db8::5"[..], Some(5062), true)
                );
                assert_eq!(v.rport, Some(Rport::Port(7)));
                assert_eq!(v.received, Some(&b"2001:db8::6"[..]));
            },
        ),
        (
            "SIP/2.0/UDP h;maddr=239.1.1.1;ttl=1;branch=z9hG4bK1;foo;bar=baz",
            |v| {
                assert_eq!((v.maddr, v.ttl), (Some(&b"239.1.1.1"[..]), Some(1)));
            },
        ),
        ("sip / 2.0 / tls h ; branch = z9hG4bK1", |v| {
            assert_eq!(v.transport, b"tls");
            assert_eq!(v.branch, Some(&b"z9hG4bK1"[..]));
        }),
        (
            "SIP/2.0/WSS h:443;branch=z9hG4bK1;received=192.0.2.200",
            |v| {
                assert_eq!((v.transport, v.port), (&b"WSS"[..], Some(443)));
            },
        ),
    ];
    for (value, check) in table {
        let text = request("").replace("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc", value);
        parse_ok(&text, |m| check(&m.top_via.via));
    }
    for bad in [
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h:70000",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP h, ,",
    ] {
        let text = request("").replace("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc", bad);
        assert_eq!(
            parse_err(&text),
            ParseError::Invalid(HeaderName::Via),
            "{bad}"
        );
    }
}

#[test]
fn single_value_headers() {
    let table = [
        ("Call-ID: a b", ParseError::Invalid(HeaderName::CallId)),
        ("CSeq: x OPTIONS", ParseError::Invalid(HeaderName::CSeq)),
        (
            "CSeq: 2147483648 OPTIONS",
            ParseError::Invalid(HeaderName::CSeq),
        ),
        ("CSeq: 7 INVITE", ParseError::CSeqMethod),
        (
            "Content-Length: -1",
            ParseError::Invalid(HeaderName::ContentLength),
        ),
        ("Content-Length: 5", ParseError::BodyTruncated),
    ];
    for (replacement, err) in table {
        let name = replacement.split(':').next().unwrap();
        let text: String = request("")
            .split("\r\n")
            .map(|l| {
                if l.starts_with(&format!("{name}:")) {
                    replacement.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(parse_err(&text), err, "{replacement}");
    }
    // From/To grammar: checked on demand by a proxy, during the parse in strict mode.
    for (find, replace, name) in [
        (
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com",
            HeaderName::To,
        ),
        (
            "From: <sip:alice@example.com>;tag=f1",
            "From: alice",
            HeaderName::From,
        ),
    ] {
        let text = request("").replace(find, replace);
        parse_ok(&text, |m| {
            assert!(m.to_addr().is_none() || m.from_addr().is_none())
        });
        assert_eq!(strict_err(&text), ParseError::Invalid(name));
    }
    assert_eq!(
        parse_err(&request("Max-Forwards: 256\r\n")),
        ParseError::Invalid(HeaderName::MaxForwards)
    );
    assert_eq!(
        parse_err(&request("Max-Forwards: 2\r\nMax-Forwards: 2\r\n")),
        ParseError::Duplicate(HeaderName::MaxForwards)
    );
    assert_eq!(
        parse_err(&request("i: other\r\n")),
        ParseError::Duplicate(HeaderName::CallId)
    );
    parse_ok(&request("Max-Forwards: 0\r\n"), |m| {
        assert_eq!(m.max_forwards.unwrap().value, 0)
    });
    for missing in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let text: String = request("")
            .split("\r\n")
            .filter(|l| !l.starts_with(&format!("{missing}:")))
            .collect::<Vec<_>>()
            .join("\r\n");
        assert!(
            matches!(parse_err(&text), ParseError::Missing(_)),
            "{missing}"
        );
    }
}

#[test]
fn from_to_tags_and_routes() {
    let text = request("Route: <sip:lb.example.com;lr>, <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com>\r\n")
        .replace("To: <sip:bob@example.com>", "To: \"Bob\" <sip:bob@example.com>;tag=t9");
    parse_ok(&text, |m| {
        assert_eq!(m.to_addr().unwrap().tag, Some(&b"t9"[..]));
        assert_eq!(m.to_addr().unwrap().display, Some(&b"\"Bob\""[..]));
        let route = m.top_route.unwrap();
        assert_eq!(route.addr.uri, b"sip:lb.example.com;lr");
        assert!(sip::SipUri::parse(route.addr.uri).unwrap().has_lr());
        assert_eq!(route.removal, b"<sip:lb.example.com;lr>, ");
    });
    let single = request("Route: <sip:lb.example.com>\r\n");
    parse_ok(&single, |m| {
        let route = m.top_route.unwrap();
        assert_eq!(route.removal, b"Route: <sip:lb.example.com>\r\n");
        assert!(!sip::SipUri::parse(route.addr.uri).unwrap().has_lr());
    });
    // A broken top Route is an error; a broken later one only for the full checks.
    assert_eq!(
        parse_err(&request("Route: <sip:x;lr\r\n")),
        ParseError::Invalid(HeaderName::Route)
    );
    let later_broken = request("Route: <sip:x;lr>, <\r\n");
    parse_ok(&later_broken, |m| {
        assert_eq!(m.top_route.unwrap().addr.uri, b"sip:x;lr")
    });
    assert_eq!(
        strict_err(&later_broken),
        ParseError::Invalid(HeaderName::Route)
    );
}

#[test]
fn proxy_checks_ignore_headers_forwarding_does_not_use() {
    // §16.3: "an element would not reject a request because of a malformed Date".
    let table = [
        ("Date: yesterday\r\n", HeaderName::Date),
        ("Contact: sip:a@b?x=y\r\n", HeaderName::Contact),
        ("Record-Route: <sip:x\r\n", HeaderName::RecordRoute),
        ("Warning: 1812 x \"y\"\r\n", HeaderName::Warning),
        ("Retry-After: never\r\n", HeaderName::RetryAfter),
    ];
    for (line, name) in table {
        let text = request(line);
        parse_ok(&text, |m| assert!(m.headers.iter().any(|h| h.name == name)));
        let mut headers = Headers::<64>::new();
        assert_eq!(
            sip::parse_strict(text.as_bytes(), &mut headers).err(),
            Some(ParseError::Invalid(name)),
            "{line}"
        );
    }
    // Via values past the second are counted, and checked only by the full checks.
    let text = request("Via: SIP/2.0/UDP a;branch=z9hG4bK2, SIP/2.0/UDP ;;\r\n");
    parse_ok(&text, |m| assert_eq!(m.via_count, 3));
    let mut headers = Headers::<64>::new();
    assert_eq!(
        sip::parse_strict(text.as_bytes(), &mut headers).err(),
        Some(ParseError::Invalid(HeaderName::Via))
    );
}

#[test]
fn content_length_bounds_the_body() {
    let text = request("").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 3\r\n\r\nabcEXTRA",
    );
    parse_ok(&text, |m| {
        assert_eq!(m.body, b"abc");
        assert_eq!(&text.as_bytes()[m.len - 3..m.len], b"abc");
        assert_eq!(m.len, text.len() - 5);
    });
    // Without Content-Length, UDP's datagram is the message.
    let text = request("").replace("Content-Length: 0\r\n\r\n", "\r\nrest of datagram");
    parse_ok(&text, |m| {
        assert_eq!(m.body, b"rest of datagram");
        assert_eq!(m.len, text.len());
    });
    // Bare LF line ends are accepted.
    let lf = request("").replace("\r\n", "\n");
    parse_ok(&lf, |m| assert_eq!(m.call_id, b"call-1@example.com"));
}

#[test]
fn too_many_headers_is_an_error_not_a_panic() {
    let mut extra = String::new();
    for i in 0..10 {
        extra.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    let text = request(&extra);
    let mut headers = Headers::<8>::new();
    assert_eq!(
        sip::parse(text.as_bytes(), &mut headers).err(),
        Some(ParseError::TooManyHeaders)
    );
}

#[test]
fn lenient_parse_keeps_what_a_400_needs() {
    let text = request("Max-Forwards: lots\r\nDate: yesterday\r\n");
    let mut headers = Headers::<64>::new();
    let p = parse_lenient(text.as_bytes(), &mut headers);
    assert_eq!(p.error, Some(ParseError::Invalid(HeaderName::MaxForwards)));
    assert!(p.fields.top_via.is_some() && p.fields.call_id.is_some() && p.fields.cseq.is_some());
    assert!(p.fields.from.is_some() && p.fields.to.is_some());
    assert_eq!(p.headers.len(), 8);
}

/// Every byte in the middle of an unknown header name, short names (one 16-byte window,
/// the parser's fast path) and long ones: the name is accepted exactly when the byte is a
/// token character (RFC 3261 §25.1).
#[test]
fn unknown_header_names_are_tokens() {
    let token_byte = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
    for b in 0..=255u8 {
        // Bytes that would end the name or the line are not part of this test.
        if matches!(b, b':' | b'\r' | b'\n' | b' ' | b'\t') {
            continue;
        }
        for name_start in ["X-a", "X-Very-Long-Header-Name-a"] {
            let mut text = request("").into_bytes();
            let at = text.windows(5).position(|w| w == b"From:").unwrap();
            let line = [name_start.as_bytes(), &[b], b"b: value\r\n"].concat();
            text.splice(at..at, line.iter().copied());
            let mut headers = Headers::<64>::new();
            let parsed = sip::parse(&text, &mut headers);
            assert_eq!(
                parsed.is_ok(),
                token_byte(b),
                "byte {b:#04x} in {name_start}"
            );
            if let Ok(m) = parsed {
                let h = m
                    .headers
                    .iter()
                    .find(|h| h.raw_name().starts_with(b"X-"))
                    .unwrap();
                assert_eq!(h.name, HeaderName::Other);
                assert_eq!(h.raw_name().len(), name_start.len() + 2);
            }
        }
    }
}

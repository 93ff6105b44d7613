//! The invariants checked by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the corpus
//! replay test (`tests/it/fuzz_corpus.rs`). Both use this one file (the fuzz targets with
//! `#[path]`), so the
//! fuzzers and `cargo test` check exactly the same things.
//!
//! Every check panics on a violated invariant; a panic is what the fuzzer reports as a
//! crash. Nothing here may panic for a merely malformed input: malformed input must come
//! back from the parser as an error.
//!
//! Two levels of checking exist (`sip::Checks`): `parse`/`parse_lenient` make a proxy's
//! checks (only the top two Via values and the top Route value are parsed; Contact,
//! Record-Route, Date, ... and the Request-URI's SIP grammar are not checked), while
//! `parse_strict` checks everything. So a message we rewrite may expose a value that the
//! proxy parse never looked at (the second Route value, the third Via value): the checks
//! below allow exactly that error, and demand a clean result when `parse_strict` accepted
//! the input.

use arrayvec::ArrayVec;
use sipshard::sip::CommaValues;
use sipshard::sip::ViaPrefix;
use sipshard::sip::{
    parse, parse_lenient, parse_strict, BranchKey, Fields, Frame, Header, HeaderName, Headers,
    Message, NameAddr, ParseError, RequestRewrite, Rport, SipUri, StartLine, TopViaRemoval, Via,
};
use sipshard::sip::{push_decimal, push_ip};
use sipshard::sip::{write_reply, Echo, ReplyError, Status};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Header storage for parsing fuzz input (what the balancer uses).
pub const HEADERS: usize = 64;
/// Header storage for re-parsing our own output, which may have a few more lines.
pub const HEADERS_OUT: usize = HEADERS + 8;
/// Reply buffer size.
pub const REPLY_BUF: usize = 4096;
/// Head- and tailroom of the rewrite frame.
pub const ROOM: usize = 512;

pub const SECRET: &[u8] = b"fuzz-secret";
pub const TO_TAG: &[u8] = b"fuzztag";

/// Our Via sent-by (a documentation address; nothing is sent anywhere).
pub fn sent_by() -> SocketAddr {
    "192.0.2.10:5070".parse().unwrap()
}

/// The source address the datagram is pretended to come from.
pub fn source() -> SocketAddr {
    "198.51.100.7:40000".parse().unwrap()
}

/// Our Via up to the branch, as the balancer formats it once per socket.
pub fn via_prefix() -> ViaPrefix {
    ViaPrefix::new("UDP", sent_by()).expect("our Via prefix")
}

/// An address taken from the last bytes of `data`, so the fuzzer steers the hand-written
/// address formatting (`sip::text`): IPv4, IPv6, or IPv4-mapped IPv6.
pub fn derived_addr(data: &[u8]) -> SocketAddr {
    const TAIL: usize = 19;
    let mut tail = [0u8; TAIL];
    let n = data.len().min(TAIL);
    tail[TAIL - n..].copy_from_slice(&data[data.len() - n..]);
    let port = u16::from_be_bytes([tail[1], tail[2]]);
    let v6: [u8; 16] = tail[3..].try_into().unwrap();
    let ip = match tail[0] % 3 {
        0 => IpAddr::V4(Ipv4Addr::new(v6[0], v6[1], v6[2], v6[3])),
        1 => IpAddr::V6(Ipv6Addr::from(v6)),
        _ => IpAddr::V6(Ipv4Addr::new(v6[0], v6[1], v6[2], v6[3]).to_ipv6_mapped()),
    };
    SocketAddr::new(ip, port)
}

// ---------------------------------------------------------------------------------------
// Slice bookkeeping
// ---------------------------------------------------------------------------------------

/// Asserts that `inner` is a sub-slice of `outer` (by address, not by content). Empty
/// slices are exempt: an absent field may be a dangling `&[]`.
#[track_caller]
fn within(outer: &[u8], inner: &[u8], what: &str) {
    if inner.is_empty() {
        return;
    }
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    assert!(
        i >= o && i + inner.len() <= o + outer.len(),
        "{what} is not inside its container ({} bytes at +{} of {})",
        inner.len(),
        i.wrapping_sub(o),
        outer.len()
    );
}

fn offset(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

fn check_via(data: &[u8], via: &Via<'_>, what: &str) {
    within(data, via.value, what);
    for (part, name) in [
        (Some(via.transport), "transport"),
        (Some(via.host), "host"),
        (via.branch, "branch"),
        (via.received, "received"),
        (via.maddr, "maddr"),
    ] {
        if let Some(p) = part {
            within(via.value, p, &format!("{what}.{name}"));
        }
    }
    if let Some(Rport::Empty { name }) = via.rport {
        within(via.value, name, &format!("{what}.rport"));
        assert!(
            name.eq_ignore_ascii_case(b"rport"),
            "{what}: bare rport name is {name:?}"
        );
    }
    assert!(!via.transport.is_empty(), "{what}: empty transport");
    assert!(!via.host.is_empty(), "{what}: empty host");
}

fn check_name_addr(data: &[u8], na: &NameAddr<'_>, what: &str) {
    within(data, na.value, what);
    for (part, name) in [
        (na.display, "display"),
        (Some(na.uri), "uri"),
        (Some(na.params), "params"),
        (na.tag, "tag"),
    ] {
        if let Some(p) = part {
            within(na.value, p, &format!("{what}.{name}"));
        }
    }
    // Any URI the parser accepted is worth a SIP-URI parse; it must not panic.
    check_sip_uri(na.uri);
}

fn check_start(data: &[u8], start: &StartLine<'_>) {
    match *start {
        StartLine::Request { method, uri } => {
            within(data, method, "method");
            within(data, uri, "request URI");
            assert!(!method.is_empty() && !uri.is_empty());
        }
        StartLine::Response { code, reason } => {
            within(data, reason, "reason phrase");
            assert!((100..=699).contains(&code), "status code {code}");
        }
    }
}

/// Checks every slice of a (possibly partial) parse against `data`.
fn check_fields(data: &[u8], headers: &[Header<'_>], f: &Fields<'_>) {
    assert!(
        f.len <= data.len(),
        "len {} > datagram {}",
        f.len,
        data.len()
    );
    if let Some(start) = &f.start {
        check_start(data, start);
        assert!(f.headers_start <= data.len());
    }
    // Header lines are consecutive, start at headers_start and end in LF.
    let mut next = f.headers_start;
    for (k, h) in headers.iter().enumerate() {
        within(data, h.line, "header line");
        within(h.line, h.raw_name(), "header name");
        within(h.line, h.value, "header value");
        assert_eq!(
            offset(data, h.line),
            next,
            "header {k} does not follow the previous one"
        );
        assert_eq!(
            offset(h.line, h.raw_name()),
            0,
            "header {k}: name not at line start"
        );
        assert_eq!(
            h.line.last(),
            Some(&b'\n'),
            "header {k}: line does not end in LF"
        );
        assert_eq!(h.name, HeaderName::classify(h.raw_name()));
        next += h.line.len();
    }
    // The header lines a field came from, by name.
    let lines_of = |name: HeaderName| headers.iter().filter(move |h| h.name == name);
    let in_some = |name: HeaderName, part: &[u8], what: &str| {
        if part.is_empty() {
            return;
        }
        assert!(
            lines_of(name).any(|h| {
                let (l, p) = (h.value.as_ptr() as usize, part.as_ptr() as usize);
                p >= l && p + part.len() <= l + h.value.len()
            }),
            "{what} is not inside a {name:?} header value"
        );
    };
    if let Some(tv) = &f.top_via {
        check_via(data, &tv.via, "top Via");
        in_some(HeaderName::Via, tv.via.value, "top Via");
        within(data, tv.removal, "top Via removal");
        within(tv.removal, tv.via.value, "top Via value in its removal");
        assert!(
            lines_of(HeaderName::Via).any(|h| {
                let (l, r) = (h.line.as_ptr() as usize, tv.removal.as_ptr() as usize);
                r >= l && r + tv.removal.len() <= l + h.line.len()
            }),
            "top Via removal is not inside a Via line"
        );
        assert!(f.via_count >= 1);
    } else {
        assert!(f.second_via.is_none());
    }
    if let Some(v) = &f.second_via {
        check_via(data, v, "second Via");
        in_some(HeaderName::Via, v.value, "second Via");
        assert!(f.via_count >= 2);
    }
    if let Some(c) = f.call_id {
        within(data, c, "Call-ID");
        in_some(HeaderName::CallId, c, "Call-ID");
    }
    if let Some(c) = &f.cseq {
        within(data, c.method, "CSeq method");
        in_some(HeaderName::CSeq, c.method, "CSeq method");
        assert!(c.number < 1 << 31);
    }
    // From and To are kept raw (a proxy does not use them); parsed on demand.
    for (value, name, what) in [
        (f.from, HeaderName::From, "From"),
        (f.to, HeaderName::To, "To"),
    ] {
        if let Some(v) = value {
            within(data, v, what);
            in_some(name, v, what);
            if let Ok(n) = NameAddr::parse(v) {
                check_name_addr(data, &n, what);
            }
        }
    }
    if let Some(mf) = &f.max_forwards {
        within(data, mf.digits, "Max-Forwards digits");
        in_some(HeaderName::MaxForwards, mf.digits, "Max-Forwards digits");
        assert!(mf.digits.iter().all(u8::is_ascii_digit));
    }
    if let Some(r) = &f.top_route {
        check_name_addr(data, &r.addr, "top Route");
        in_some(HeaderName::Route, r.addr.value, "top Route");
        within(data, r.removal, "top Route removal");
        within(r.removal, r.addr.value, "top Route value in its removal");
    }
    within(data, f.body, "body");
    if !f.body.is_empty() {
        assert_eq!(
            offset(data, f.body) + f.body.len(),
            f.len,
            "body does not end at len"
        );
    }
}

/// The Fields a successful parse corresponds to.
fn fields_of<'b>(m: &Message<'b, '_>) -> Fields<'b> {
    Fields {
        start: Some(m.start),
        headers_start: m.headers_start,
        top_via: Some(m.top_via),
        second_via: m.second_via,
        via_count: m.via_count,
        call_id: Some(m.call_id),
        cseq: Some(m.cseq),
        from: Some(m.from),
        to: Some(m.to),
        max_forwards: m.max_forwards,
        top_route: m.top_route,
        content_length: m.content_length,
        body: m.body,
        len: m.len,
    }
}

fn is_sip_scheme(uri: &[u8]) -> bool {
    let lower = |n: usize| uri.len() >= n && uri[..n].eq_ignore_ascii_case(&b"sips:"[..n]);
    (uri.len() >= 4 && uri[..4].eq_ignore_ascii_case(b"sip:")) || lower(5)
}

/// `SipUri::parse` must not panic, and what it returns must borrow from the input.
fn check_sip_uri(uri: &[u8]) -> bool {
    match SipUri::parse(uri) {
        Ok(u) => {
            assert!(is_sip_scheme(uri), "a non-sip URI parsed as one");
            for (p, what) in [
                (u.user, "user"),
                (Some(u.host), "host"),
                (Some(u.params), "params"),
                (u.headers, "headers"),
            ] {
                if let Some(p) = p {
                    within(uri, p, &format!("SipUri.{what}"));
                }
            }
            assert!(!u.host.is_empty());
            let _ = (
                u.has_lr(),
                u.host_ip(),
                u.param(b"transport"),
                u.param(b"maddr"),
            );
            true
        }
        Err(_) => false,
    }
}

fn key() -> BranchKey {
    BranchKey::new(SECRET)
}

// ---------------------------------------------------------------------------------------
// Target `parse`
// ---------------------------------------------------------------------------------------

/// The `parse` target: strict and lenient parse, their agreement, every borrowed slice, the
/// branch MAC, the Request-URI, and a stateless 400 for whatever the lenient parse allows.
/// A backend pin: any text is refused or names a backend without panicking, and the pin of
/// an address derived from the input names that address again.
fn check_pin(data: &[u8]) {
    let key = key();
    let _ = key.unpin(data);
    let backend = derived_addr(data);
    let pin = key.pin(backend).text();
    assert_eq!(key.unpin(pin.as_bytes()), Ok(backend), "{pin:?}");
    assert!(pin.as_bytes().len() <= sipshard::sip::PIN_MAX_LEN);
}

pub fn check_parse(data: &[u8]) {
    // Neither of these may panic on anything.
    check_sip_uri(data);
    let _ = key().verify(data);
    check_text(derived_addr(data));
    check_pin(data);

    let mut storage = Headers::<HEADERS>::new();
    let strict = parse(data, &mut storage);
    if let Ok(msg) = &strict {
        // The quick To-tag test agrees with the full name-addr parse.
        if let Some(to) = msg.to_addr() {
            assert_eq!(msg.to_tagged(), Some(to.tag.is_some()), "to_tagged");
        }
    }
    let mut lenient_storage = Headers::<HEADERS>::new();
    let lenient = parse_lenient(data, &mut lenient_storage);
    check_fields(data, lenient.headers, &lenient.fields);
    let mut full_storage = Headers::<HEADERS>::new();
    let full = parse_strict(data, &mut full_storage);

    // The full checks are a superset of the proxy's: what they accept, the proxy accepts,
    // and both see the same message.
    match (&full, &strict) {
        (Ok(f), Ok(p)) => {
            check_fields(data, f.headers, &fields_of(f));
            assert_eq!(
                fields_of(f),
                fields_of(p),
                "parse_strict and parse see different fields"
            );
            assert_eq!(
                f.headers, p.headers,
                "parse_strict and parse see different headers"
            );
        }
        (Ok(_), Err(e)) => panic!("parse_strict accepts what parse rejects ({e:?})"),
        (Err(_), _) => {}
    }
    let full_ok = full.is_ok();

    match &strict {
        Ok(msg) => {
            assert_eq!(
                lenient.error, None,
                "strict parse Ok but lenient reports an error"
            );
            assert!(msg.len <= data.len());
            assert!(std::ptr::eq(msg.buf, data));
            check_fields(data, msg.headers, &fields_of(msg));
            assert_eq!(
                lenient.fields,
                fields_of(msg),
                "lenient fields differ from strict"
            );
            assert_eq!(
                lenient.headers, msg.headers,
                "lenient headers differ from strict"
            );
            assert_eq!(msg.second_via.is_some(), msg.via_count >= 2);
            check_message_extras(data, msg, full_ok);
        }
        Err(e) => {
            assert_eq!(
                lenient.error,
                Some(*e),
                "lenient parse reports a different first error than strict"
            );
        }
    }

    // A 400 for whatever the lenient parse found.
    let status = Status::bad_request(lenient.error.map_or("Bad Request", |e| e.reason()));
    let partial_reply = Echo::from_partial(&lenient).ok().map(|echo| {
        let mut out = [0u8; REPLY_BUF];
        match write_reply(&mut out, &echo, status, source(), TO_TAG) {
            Ok(n) => {
                assert!(n <= REPLY_BUF);
                let reply = &out[..n];
                assert!(reply.starts_with(b"SIP/2.0 400 "), "reply start line");
                assert!(
                    reply.ends_with(b"\r\nContent-Length: 0\r\n\r\n"),
                    "reply end"
                );
                Some(reply.to_vec())
            }
            Err(ReplyError::BufferTooSmall) => None,
            Err(e) => panic!("write_reply from a partial parse failed: {e:?}"),
        }
    });

    // For a valid request the reply from the full parse must be the same bytes, and valid.
    if let Ok(msg) = &strict {
        let full = Echo::from_message(msg);
        assert_eq!(
            full.is_ok(),
            partial_reply.is_some(),
            "Echo::from_message and Echo::from_partial disagree"
        );
        if let Ok(echo) = full {
            let mut out = [0u8; REPLY_BUF];
            match write_reply(&mut out, &echo, status, source(), TO_TAG) {
                Ok(n) => {
                    let reply = &out[..n];
                    assert_eq!(
                        partial_reply.clone().flatten().as_deref(),
                        Some(reply),
                        "replies from the full and the partial parse differ"
                    );
                    check_reply(msg, reply, full_ok);
                }
                Err(ReplyError::BufferTooSmall) => {
                    assert_eq!(partial_reply, Some(None), "only one reply fitted");
                }
                Err(e) => panic!("write_reply for a valid request failed: {e:?}"),
            }
        }
    }
}

/// The hand-written number and address formatting (`sip::text`, `ViaPrefix`) agrees with
/// std's `Display`.
fn check_text(addr: SocketAddr) {
    let mut out = ArrayVec::<u8, 64>::new();
    assert!(push_ip(&mut out, addr.ip()));
    assert_eq!(
        &out[..],
        addr.ip().to_string().as_bytes(),
        "push_ip({})",
        addr.ip()
    );
    // The port, and the IPv4 address as a number for the full u32 range.
    let as_number = match addr.ip().to_canonical() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => (u128::from(v6) >> 96) as u32,
    };
    for v in [u32::from(addr.port()), as_number] {
        let mut out = ArrayVec::<u8, 10>::new();
        assert!(push_decimal(&mut out, v));
        assert_eq!(&out[..], v.to_string().as_bytes(), "push_decimal({v})");
    }
    let prefix = ViaPrefix::new("TCP", addr).expect("Via prefix");
    let expected = match addr {
        SocketAddr::V4(a) => format!("Via: SIP/2.0/TCP {}:{};branch=", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("Via: SIP/2.0/TCP [{}]:{};branch=", a.ip(), a.port()),
    };
    assert_eq!(
        prefix.as_bytes(),
        expected.as_bytes(),
        "ViaPrefix for {addr}"
    );
}

/// Checks on a successful parse beyond its slices. `full_ok`: `parse_strict` accepts it too.
fn check_message_extras(data: &[u8], msg: &Message<'_, '_>, full_ok: bool) {
    // Parsing the message proper again gives the same message.
    let mut storage = Headers::<HEADERS>::new();
    let again = parse(&data[..msg.len], &mut storage)
        .unwrap_or_else(|e| panic!("data[..msg.len] does not parse again: {e:?}"));
    assert_eq!(again.len, msg.len);
    assert_eq!(fields_of(&again), fields_of(msg));

    // Branches: ours verify, under our key only; any top branch can be checked.
    let key = key();
    if let Some(b) = msg.top_via.via.branch {
        let _ = key.verify(b);
    }
    let ours = key.branch(msg);
    assert!(
        key.verify(ours.as_bytes()),
        "our own branch does not verify"
    );
    assert!(!BranchKey::new(b"another secret").verify(ours.as_bytes()));
    assert_eq!(
        ours,
        key.branch(&again),
        "branch is not a function of the message"
    );

    // Under the full checks the Request-URI passed check_request_uri, so a sip/sips one
    // parses, without headers; under the proxy's, it only has to be harmless to parse.
    if let Some(uri) = msg.request_uri() {
        let parsed = check_sip_uri(uri);
        if full_ok {
            assert_eq!(
                parsed,
                is_sip_scheme(uri),
                "sip Request-URI accepted but unparsable"
            );
            if parsed {
                assert!(SipUri::parse(uri).unwrap().headers.is_none());
            }
        }
    }
    assert_eq!(msg.is_request(), msg.method().is_some());
    assert_eq!(msg.is_request(), msg.status().is_none());
    if let Some(m) = msg.method() {
        assert_eq!(
            m, msg.cseq.method,
            "CSeq method differs from the request method"
        );
    }
}

/// A reply to a valid request is itself a valid response echoing the request's fields.
fn check_reply(req: &Message<'_, '_>, reply: &[u8], full_ok: bool) {
    if full_ok {
        let mut storage = Headers::<HEADERS_OUT>::new();
        if let Err(e) = parse_strict(reply, &mut storage) {
            panic!(
                "our 400 fails parse_strict: {e:?}\n{}",
                String::from_utf8_lossy(reply)
            );
        }
    }
    let mut storage = Headers::<HEADERS_OUT>::new();
    let r = parse(reply, &mut storage).unwrap_or_else(|e| {
        panic!(
            "our 400 does not parse: {e:?}\n{}",
            String::from_utf8_lossy(reply)
        )
    });
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.len, reply.len());
    assert_eq!(r.call_id, req.call_id);
    assert_eq!(r.cseq, req.cseq);
    assert_eq!(r.from, req.from, "reply From is not the request's");
    // The request's To parsed (or there would be no reply); ours is it plus a tag.
    let (req_to, r_to) = (
        req.to_addr().unwrap(),
        r.to_addr().expect("reply To does not parse"),
    );
    assert_eq!(r_to.uri, req_to.uri);
    assert_eq!(r_to.tag, Some(req_to.tag.unwrap_or(TO_TAG)));
    assert_eq!(r.via_count, req.via_count);
    check_stamped(&req.top_via.via, &r.top_via.via, source(), "reply top Via");
    assert_eq!(r.second_via, req.second_via);
}

/// `stamped` is `orig` after ViaStamp for a request from `src`.
fn check_stamped(orig: &Via<'_>, stamped: &Via<'_>, src: SocketAddr, what: &str) {
    assert_eq!(stamped.transport, orig.transport, "{what}: transport");
    assert_eq!(stamped.host, orig.host, "{what}: host");
    assert_eq!(stamped.host_is_ipv6, orig.host_is_ipv6, "{what}: host kind");
    assert_eq!(stamped.port, orig.port, "{what}: port");
    assert_eq!(stamped.branch, orig.branch, "{what}: branch");
    assert_eq!(stamped.maddr, orig.maddr, "{what}: maddr");
    assert_eq!(stamped.ttl, orig.ttl, "{what}: ttl");
    let fill_rport = matches!(orig.rport, Some(Rport::Empty { .. }));
    if fill_rport {
        assert_eq!(
            stamped.rport,
            Some(Rport::Port(src.port())),
            "{what}: rport not filled"
        );
    } else {
        assert_eq!(stamped.rport, orig.rport, "{what}: rport changed");
    }
    // An IPv4-mapped source is stamped as the IPv4 address it is.
    let ip = src.ip().to_canonical();
    if fill_rport || orig.host_ip() != Some(ip) {
        let ip = ip.to_string();
        assert_eq!(
            stamped.received,
            Some(ip.as_bytes()),
            "{what}: received not stamped"
        );
    } else {
        assert_eq!(stamped.received, orig.received, "{what}: received changed");
    }
}

// ---------------------------------------------------------------------------------------
// Target `rewrite`
// ---------------------------------------------------------------------------------------

/// A frame buffer holding `data` with `ROOM` bytes of head- and tailroom.
fn framed(data: &[u8]) -> Vec<u8> {
    let mut buf = vec![b'#'; ROOM + data.len() + ROOM];
    buf[ROOM..ROOM + data.len()].copy_from_slice(data);
    buf
}

/// The values of every Route header, in order.
fn route_values<'b>(headers: &[Header<'b>]) -> Vec<&'b [u8]> {
    headers
        .iter()
        .filter(|h| h.name == HeaderName::Route)
        .flat_map(|h| CommaValues::new(h.value))
        .collect()
}

/// The `rewrite` target: a request gets the full forwarding rewrite, then its Via back off;
/// a lone Via insertion must strip back to the exact original bytes; a response loses its
/// top Via.
pub fn check_rewrite(data: &[u8]) {
    let mut storage = Headers::<HEADERS>::new();
    let Ok(msg) = parse(data, &mut storage) else {
        return;
    };
    let mut full_storage = Headers::<HEADERS>::new();
    let full_ok = parse_strict(data, &mut full_storage).is_ok();
    let original = &data[..msg.len];
    if msg.is_request() {
        check_empty_plan(data, &msg);
        check_stamp_only(data, &msg, derived_addr(data));
        check_full_rewrite(data, &msg, full_ok);
        check_edge_rewrite(data, &msg, full_ok);
        check_insert_strip(data, &msg, original);
        check_strict_repair(data, &msg, full_ok);
    } else {
        check_response_strip(data, &msg, full_ok);
    }
}

/// The edge rewrite: our Via, our two Record-Route lines with a pin, our two Route values
/// removed. The output parses, its top two Record-Route values carry a pin that names the
/// backend, and two Route values fewer remain, the rest in order.
fn check_edge_rewrite(data: &[u8], msg: &Message<'_, '_>, full_ok: bool) {
    let key = key();
    let backend = derived_addr(data);
    let prefix = via_prefix();
    let lines = [
        sipshard::sip::RoutePrefix::record_route(sent_by()),
        sipshard::sip::RoutePrefix::record_route(source()),
    ];
    let mut plan = RequestRewrite::new(msg);
    plan.add_via(&prefix, key.branch_id(msg));
    plan.add_record_route(&lines, key.pin(backend));
    plan.remove_top_routes(msg, 2);
    let before = route_values(msg.headers);
    // The proxy parse checked only the top Route value; a later one becomes the top.
    let allowed =
        (!before.is_empty() && !full_ok).then_some(ParseError::Invalid(HeaderName::Route));

    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    plan.apply(&mut frame)
        .unwrap_or_else(|e| panic!("edge rewrite failed: {e:?}"));
    let out = frame.bytes();
    let mut st = Headers::<HEADERS_OUT>::new();
    let p = reparse(out, &mut st, allowed, full_ok, "edge-rewritten request");
    let rr: Vec<&[u8]> = p
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::RecordRoute)
        .flat_map(|h| CommaValues::new(h.value))
        .take(2)
        .collect();
    assert_eq!(rr.len(), 2, "our Record-Route values are missing");
    for value in rr {
        let addr = NameAddr::parse(value).expect("our Record-Route value parses");
        let uri = SipUri::parse(addr.uri).expect("our Record-Route URI parses");
        let pin = uri
            .param(sipshard::sip::PIN_PARAM)
            .flatten()
            .expect("our pin");
        assert_eq!(
            key.unpin(pin),
            Ok(backend),
            "our pin does not name the backend"
        );
    }
    let after = route_values(p.headers);
    assert_eq!(after, before.iter().skip(2).copied().collect::<Vec<_>>());
}

/// The repair of a strict router's request (§16.4): the output parses, its Request-URI is
/// the last Route value's URI, and that value is gone from the Route, the rest in order.
fn check_strict_repair(data: &[u8], msg: &Message<'_, '_>, full_ok: bool) {
    let Some(repair) = sipshard::sip::StrictRouteRepair::plan(msg) else {
        return;
    };
    let before = route_values(msg.headers);
    let last = before.last().expect("a repair needs a Route value");
    let target = NameAddr::parse(last).expect("the target parses").uri;
    let allowed = (!full_ok).then_some(ParseError::Invalid(HeaderName::Route));
    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    if let Err(e) = repair.apply(&mut frame) {
        // Only a target longer than the copy holds, or a growth past the frame's room, may
        // not fit (the shard counts a no_room drop).
        let request_uri = msg.request_uri().map_or(0, <[u8]>::len);
        let growth = target.len().saturating_sub(request_uri);
        assert!(
            target.len() > sipshard::sip::STRICT_TARGET_MAX || growth > ROOM,
            "strict-route repair failed: {e:?}"
        );
        return;
    }
    let out = frame.bytes();
    let mut st = Headers::<HEADERS_OUT>::new();
    let p = reparse(out, &mut st, allowed, full_ok, "repaired request");
    match p.fields.start {
        Some(StartLine::Request { uri, .. }) => assert_eq!(uri, target, "the new Request-URI"),
        other => panic!("the repaired request has no request line: {other:?}"),
    }
    let after = route_values(p.headers);
    assert_eq!(after, before[..before.len() - 1].to_vec());
}

/// An empty plan only drops the octets past the message.
fn check_empty_plan(data: &[u8], msg: &Message<'_, '_>) {
    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    RequestRewrite::new(msg)
        .apply(&mut frame)
        .expect("empty plan");
    assert_eq!(
        frame.bytes(),
        &data[..msg.len],
        "empty plan changed the message"
    );
}

/// Re-parses our own output leniently. The first error must be `None`, or `allowed` (a
/// value the proxy parse of the input never looked at, now moved to where it is parsed).
/// With `full_ok` (the input passed `parse_strict`) the output must pass it too.
fn reparse<'b, 'h>(
    out: &'b [u8],
    storage: &'h mut Headers<'b, HEADERS_OUT>,
    allowed: Option<ParseError>,
    full_ok: bool,
    what: &str,
) -> sipshard::sip::Partial<'b, 'h> {
    if full_ok {
        let mut st = Headers::<HEADERS_OUT>::new();
        if let Err(e) = parse_strict(out, &mut st) {
            panic!(
                "{what} fails parse_strict: {e:?}\n{}",
                String::from_utf8_lossy(out)
            );
        }
    }
    let p = parse_lenient(out, storage);
    check_fields(out, p.headers, &p.fields);
    if let Some(e) = p.error.filter(|&e| Some(e) != allowed) {
        panic!(
            "{what} does not parse: {e:?} (allowed: {allowed:?})\n{}",
            String::from_utf8_lossy(out)
        );
    }
    p
}

/// Only `received`/`rport` on the sender's Via, for a source the input chooses: the hand
/// formatting of IPv4, IPv6 and ports must match std's, and nothing else changes.
fn check_stamp_only(data: &[u8], msg: &Message<'_, '_>, src: SocketAddr) {
    let mut plan = RequestRewrite::new(msg);
    plan.stamp_source(msg, src);
    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    plan.apply(&mut frame)
        .unwrap_or_else(|e| panic!("stamp for {src} failed: {e:?}"));
    let out = frame.bytes();
    let mut st = Headers::<HEADERS_OUT>::new();
    let r = parse(out, &mut st).unwrap_or_else(|e| {
        panic!(
            "request stamped for {src} does not parse: {e:?}\n{}",
            String::from_utf8_lossy(out)
        )
    });
    check_stamped(&msg.top_via.via, &r.top_via.via, src, "stamped Via");
    assert_eq!(r.via_count, msg.via_count);
    assert_eq!(r.second_via, msg.second_via);
    assert_eq!(r.headers.len(), msg.headers.len());
    assert_eq!(r.body, msg.body);
}

fn check_full_rewrite(data: &[u8], msg: &Message<'_, '_>, full_ok: bool) {
    let key = key();
    let branch = key.branch(msg);
    let prefix = via_prefix();
    let mut plan = RequestRewrite::new(msg);
    plan.add_via(&prefix, key.branch_id(msg));
    plan.stamp_source(msg, source());
    let exhausted = plan.forward_max_forwards(msg).is_err();
    assert_eq!(exhausted, msg.max_forwards.is_some_and(|m| m.value == 0));
    let had_route = plan.remove_top_route(msg);
    assert_eq!(had_route, msg.top_route.is_some());
    // The proxy parse checked only the top Route value; the next one becomes the top.
    let allowed = (had_route && !full_ok).then_some(ParseError::Invalid(HeaderName::Route));

    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    plan.apply(&mut frame)
        .unwrap_or_else(|e| panic!("full rewrite failed: {e:?}"));

    let removal = {
        let out = frame.bytes();
        let mut st = Headers::<HEADERS_OUT>::new();
        let p = reparse(out, &mut st, allowed, full_ok, "rewritten request");
        let r = &p.fields;
        assert_eq!(r.len, out.len(), "rewritten request has trailing octets");
        assert_eq!(r.start, Some(msg.start));
        // Our Via on top, the sender's (stamped) below it.
        let top = &r.top_via.expect("no top Via after rewrite").via;
        assert_eq!(top.transport, b"UDP");
        assert_eq!(
            top.host,
            sent_by().ip().to_string().as_bytes(),
            "top Via is not ours"
        );
        assert_eq!(top.port, Some(sent_by().port()));
        assert_eq!(top.branch, Some(branch.as_bytes()));
        assert!(
            key.verify(top.branch.unwrap()),
            "our branch does not verify after rewrite"
        );
        assert_eq!(r.via_count, msg.via_count.saturating_add(1));
        let second = r.second_via.expect("no second Via after add_via");
        assert_eq!(
            second.host, msg.top_via.via.host,
            "second Via is not the sender's"
        );
        check_stamped(
            &msg.top_via.via,
            &second,
            source(),
            "sender's Via after rewrite",
        );
        // Max-Forwards decremented, or inserted.
        let mf = r.max_forwards.map(|m| m.value);
        match msg.max_forwards {
            Some(m) if m.value == 0 => assert_eq!(mf, Some(0)),
            Some(m) => assert_eq!(mf, Some(m.value - 1), "Max-Forwards not decremented"),
            None => assert_eq!(mf, Some(70), "Max-Forwards not inserted"),
        }
        // One Route value fewer, the rest in order.
        let before = route_values(msg.headers);
        let after = route_values(p.headers);
        if had_route {
            assert_eq!(
                after,
                before[1..],
                "Route values after removing the top one"
            );
        } else {
            assert_eq!(after, before);
        }
        // Everything else as it was.
        assert_eq!(r.call_id, Some(msg.call_id));
        assert_eq!(r.cseq, Some(msg.cseq));
        assert_eq!(r.from, Some(msg.from));
        assert_eq!(r.to, Some(msg.to));
        assert_eq!(r.content_length, msg.content_length);
        assert_eq!(r.body, msg.body);
        // Stripping needs a full Message: only when the output parses cleanly.
        let mut st = Headers::<HEADERS_OUT>::new();
        parse(out, &mut st).ok().map(|r| TopViaRemoval::new(&r))
    };
    let Some(removal) = removal else {
        return;
    };

    // Strip our Via again: the sender's Via is back on top.
    removal
        .apply(&mut frame)
        .expect("TopViaRemoval after full rewrite");
    let out = frame.bytes();
    let mut st = Headers::<HEADERS_OUT>::new();
    let r = parse(out, &mut st).unwrap_or_else(|e| {
        panic!(
            "request without our Via does not parse: {e:?}\n{}",
            String::from_utf8_lossy(out)
        )
    });
    assert_eq!(r.via_count, msg.via_count);
    check_stamped(
        &msg.top_via.via,
        &r.top_via.via,
        source(),
        "sender's Via after our Via is stripped",
    );
    assert_eq!(r.second_via, msg.second_via);
}

/// Inserting only our Via and stripping it again gives back the original bytes.
fn check_insert_strip(data: &[u8], msg: &Message<'_, '_>, original: &[u8]) {
    let branch = key().branch(msg);
    let prefix = via_prefix();
    let mut plan = RequestRewrite::new(msg);
    plan.add_via(&prefix, key().branch_id(msg));
    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    plan.apply(&mut frame)
        .unwrap_or_else(|e| panic!("Via insertion failed: {e:?}"));
    let removal = {
        let out = frame.bytes();
        let mut st = Headers::<HEADERS_OUT>::new();
        // The input's top two Via values were parsed; after ours they are second and third,
        // and the third is not parsed: the output parses whenever the input did.
        let r = parse(out, &mut st).unwrap_or_else(|e| {
            panic!(
                "request with our Via does not parse: {e:?}\n{}",
                String::from_utf8_lossy(out)
            )
        });
        assert_eq!(r.top_via.via.branch, Some(branch.as_bytes()));
        assert_eq!(r.second_via, Some(msg.top_via.via));
        TopViaRemoval::new(&r)
    };
    removal
        .apply(&mut frame)
        .expect("TopViaRemoval after insertion");
    assert!(
        frame.bytes() == original,
        "insert + strip is not the identity\noriginal: {:?}\nresult:   {:?}",
        String::from_utf8_lossy(original),
        String::from_utf8_lossy(frame.bytes())
    );
}

/// A response loses its top Via; what is left parses when a Via is left.
fn check_response_strip(data: &[u8], msg: &Message<'_, '_>, full_ok: bool) {
    let mut buf = framed(data);
    let mut frame = Frame::new(&mut buf, ROOM, data.len());
    TopViaRemoval::new(msg)
        .apply(&mut frame)
        .expect("TopViaRemoval on a response");
    let out = frame.bytes();
    assert_eq!(out.len(), msg.len - msg.top_via.removal.len());
    let mut st = Headers::<HEADERS_OUT>::new();
    if msg.via_count > 1 {
        // The proxy parse did not look at the third Via value; it is now the second.
        let allowed =
            (msg.via_count > 2 && !full_ok).then_some(ParseError::Invalid(HeaderName::Via));
        let p = reparse(
            out,
            &mut st,
            allowed,
            full_ok,
            "response without its top Via",
        );
        let r = &p.fields;
        if p.error.is_none() {
            // (A lenient parse stops counting a Via line at its first bad value.)
            assert_eq!(r.via_count, msg.via_count - 1);
        }
        assert_eq!(
            r.top_via.map(|t| t.via),
            msg.second_via,
            "new top Via is not the old second"
        );
        assert_eq!(r.start, Some(msg.start));
        assert_eq!(r.call_id, Some(msg.call_id));
        assert_eq!(r.cseq, Some(msg.cseq));
        assert_eq!(r.body, msg.body);
    } else {
        let p = parse_lenient(out, &mut st);
        assert_eq!(
            p.error,
            Some(ParseError::Missing(HeaderName::Via)),
            "a response without any Via"
        );
    }
}

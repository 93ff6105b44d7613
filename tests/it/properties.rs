//! Property tests over generated valid messages: inserting our Via and stripping it again
//! gives back the message byte for byte, and a parse of the rewritten message sees our Via
//! on top with the original ones below, in order.

use crate::support::{insert_via, rewrite_request, strip_via};
use proptest::prelude::*;
use sipshard::sip::{self, BranchKey, CommaValues, HeaderName, Headers, ViaPrefix};
use std::net::SocketAddr;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,5}){0,2}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (0u16..0xffff, 1u16..0xffff).prop_map(|(a, b)| format!("[2001:db8:{a:x}::{b:x}]")),
    ]
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("  "), Just("\t"), Just("\r\n ")]
}

/// One Via value with random sent-by, params and spacing.
fn via_value() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("UDP"), Just("TCP"), Just("TLS"), Just("SCTP")],
        host(),
        proptest::option::of(1u16..=65535),
        token(),
        any::<bool>(),
        proptest::option::of(token()),
        ws(),
    )
        .prop_map(|(transport, host, port, branch, rport, extra, sp)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let rport = if rport { ";rport" } else { "" };
            let extra = extra.map(|e| format!(";x-{e}")).unwrap_or_default();
            format!("SIP/2.0/{transport} {host}{port}{sp};branch=z9hG4bK{branch}{rport}{extra}")
        })
}

/// Via values grouped into header lines (several values per line sometimes).
fn via_lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        (
            prop::collection::vec(via_value(), 1..=3),
            any::<bool>(),
            ws(),
        ),
        1..=3,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .map(|(values, compact, sp)| {
                let name = if compact { "v" } else { "Via" };
                format!("{name}:{sp} {}\r\n", values.join(&format!(",{sp}")))
            })
            .collect()
    })
}

prop_compose! {
    fn request()(
        method in prop_oneof![Just("INVITE".to_owned()), Just("BYE".to_owned()), Just("OPTIONS".to_owned()), token()],
        user in token(),
        uri_host in host(),
        vias in via_lines(),
        from_tag in token(),
        to_tag in proptest::option::of(token()),
        call_id in "[a-zA-Z0-9.@_-]{1,40}",
        cseq in 0u32..(1 << 31),
        max_forwards in proptest::option::of(1u8..=255),
        route in proptest::option::of(host()),
        extra in prop::collection::vec((token(), "[ -~]{0,30}"), 0..4),
        body in "[ -~\r\n]{0,200}",
        with_length in any::<bool>(),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
    ) -> String {
        let mut headers: Vec<String> = vec![
            format!("From: <sip:a@example.com>;tag={from_tag}\r\n"),
            format!("To: <sip:{user}@{uri_host}>{}\r\n", to_tag.map(|t| format!(";tag={t}")).unwrap_or_default()),
            format!("Call-ID: {call_id}\r\n"),
            format!("CSeq: {cseq} {method}\r\n"),
        ];
        if let Some(mf) = max_forwards { headers.push(format!("Max-Forwards: {mf}\r\n")); }
        if let Some(r) = route { headers.push(format!("Route: <sip:{r};lr>\r\n")); }
        for (name, value) in extra { headers.push(format!("X-{name}: {}\r\n", value.trim())); }
        // Shuffle the non-Via headers deterministically from `order`.
        let n = headers.len();
        for i in (1..n).rev() { headers.swap(i, (order as usize ^ (i * 2654435761)) % (i + 1)); }
        let mut msg = format!("{method} sip:{user}@{uri_host} SIP/2.0\r\n");
        // Via lines go at a random position among the others.
        let at = (order as usize >> 8) % (n + 1);
        for (i, h) in headers.iter().enumerate() {
            if i == at { msg.extend(vias.iter().cloned()); }
            msg.push_str(h);
        }
        if at == n { msg.extend(vias.iter().cloned()); }
        if with_length { msg.push_str(&format!("Content-Length: {}\r\n", body.len())); }
        msg.push_str("\r\n");
        msg.push_str(&body);
        msg
    }
}

/// All Via values of a message, in order, as text.
fn via_values(msg: &[u8]) -> Vec<Vec<u8>> {
    let mut headers = Headers::<64>::new();
    let m = sip::parse(msg, &mut headers).expect("parses");
    m.headers
        .iter()
        .filter(|h| h.name == HeaderName::Via)
        .flat_map(|h| CommaValues::new(h.value).map(<[u8]>::to_vec))
        .collect()
}

fn our_addr() -> SocketAddr {
    "10.0.0.1:5070".parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_requests_parse(msg in request()) {
        let mut headers = Headers::<64>::new();
        let parsed = sip::parse(msg.as_bytes(), &mut headers);
        prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), msg);
    }

    #[test]
    fn strip_undoes_insert(msg in request()) {
        let key = BranchKey::new(b"prop");
        let inserted = insert_via(msg.as_bytes(), our_addr(), &key);
        let stripped = strip_via(&inserted);
        prop_assert_eq!(stripped, msg.as_bytes().to_vec());
    }

    #[test]
    fn rewritten_message_has_our_via_on_top_and_the_old_ones_below(msg in request()) {
        let key = BranchKey::new(b"prop");
        let before = via_values(msg.as_bytes());
        let inserted = insert_via(msg.as_bytes(), our_addr(), &key);
        let after = via_values(&inserted);
        prop_assert_eq!(after.len(), before.len() + 1);
        prop_assert_eq!(&after[1..], &before[..]);
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&inserted, &mut headers).unwrap();
        prop_assert_eq!(m.top_via.via.host, b"10.0.0.1");
        prop_assert!(key.verify(m.top_via.via.branch.unwrap()));
    }

    #[test]
    fn full_rewrite_keeps_the_message_valid(msg in request(), src_port in 1u16..=65535) {
        let key = BranchKey::new(b"prop");
        let source: SocketAddr = format!("198.51.100.7:{src_port}").parse().unwrap();
        let mut original_call_id = Vec::new();
        let prefix = ViaPrefix::new("UDP", our_addr()).unwrap();
        let out = rewrite_request(msg.as_bytes(), |m, rw| {
            original_call_id = m.call_id.to_vec();
            rw.add_via(&prefix, key.branch_id(m));
            rw.stamp_source(m, source);
            rw.forward_max_forwards(m).unwrap();
            rw.remove_top_route(m);
        });
        let mut headers = Headers::<64>::new();
        let m = sip::parse(&out, &mut headers).unwrap();
        prop_assert_eq!(m.call_id, &original_call_id[..]);
        prop_assert_eq!(m.top_route, None);
        prop_assert!(m.max_forwards.is_some());
        let second = m.second_via.unwrap();
        prop_assert_eq!(second.received.map(<[u8]>::to_vec), Some(b"198.51.100.7".to_vec()));
    }
}

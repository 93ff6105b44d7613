//! The usual Via value, `SIP/2.0/UDP host:port;branch=...;rport`, parsed a word at a time:
//! the fast path of [`Via::parse`], which falls back to the general parser for anything
//! else.

use super::classes::{host_end, token_end};
use super::header_name::eq_lowercase;
use super::header_name::FOLD;
use super::scan::is_token;
use super::via::{name_key, Via, BRANCH, MADDR, RECEIVED, RPORT, TTL};

impl<'a> Via<'a> {
    /// The usual shape, `SIP/2.0/TRANSPORT host[:port]*(;name[=token])`, with no white space
    /// but the one SP and no quoted values, in one pass. `None` for anything else, valid or
    /// not: [`Via::parse_general`] decides then. Every value it accepts, the general parser
    /// accepts with the same result.
    #[inline(always)]
    pub(crate) fn parse_plain(value: &'a [u8]) -> Option<Via<'a>> {
        let s = value;
        let proto = s.first_chunk::<8>()?;
        if !eq_lowercase(proto, b"sip/2.0/") {
            return None;
        }
        let (transport, rest) = plain_transport(s)?;
        let host_start = s.len() - rest.len();
        let mut i = host_end(s, host_start);
        if i == host_start {
            return None;
        }
        let host = &s[host_start..i];
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let (p, end) = plain_port(s, i + 1)?;
            port = Some(p);
            i = end;
        }
        let mut via = Via::sent_by(value, transport, host, false, port);
        // Each parameter is `;name` or `;name=value`, both token runs; whatever follows
        // one must be the next `;` (checked at the top of the loop) or the end.
        while i < s.len() {
            if s[i] != b';' {
                return None;
            }
            let name_start = i + 1;
            let (key, name_end) = match known_name(s, name_start) {
                Some((key, len)) => (key, name_start + len),
                None => {
                    let end = token_end(s, name_start);
                    if end == name_start {
                        return None;
                    }
                    (name_key_of(s, name_start, end), end)
                }
            };
            let value = if s.get(name_end) == Some(&b'=') {
                let value_end = token_end(s, name_end + 1);
                if value_end == name_end + 1 {
                    return None;
                }
                i = value_end;
                Some(&s[name_end + 1..value_end])
            } else {
                i = name_end;
                None
            };
            let name = &s[name_start..name_end];
            // The value is a token run: no need to check it again.
            via.param_keyed(key, name, value, true).ok()?;
        }
        Some(via)
    }
}

/// [`name_key`] of the name `s[start..end]`: one load of the eight bytes before `end`,
/// shifted down to the name.
#[inline(always)]
fn name_key_of(s: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    let word = end
        .checked_sub(8)
        .and_then(|first| s.get(first..end))
        .and_then(|w| w.first_chunk::<8>());
    match word {
        Some(w) if (1..=8).contains(&len) => (u64::from_le_bytes(*w) | FOLD) >> (64 - 8 * len),
        _ => name_key(&s[start..end]),
    }
}

/// The eight bytes of `s` from `i` as a little-endian word, zeros past the end of `s`
/// (all zeros if `s` is shorter than eight bytes).
#[inline(always)]
fn word_from(s: &[u8], i: usize) -> u64 {
    if let Some(w) = s.get(i..).and_then(|r| r.first_chunk::<8>()) {
        return u64::from_le_bytes(*w);
    }
    // Fewer than eight bytes left: the last eight of `s`, shifted down to `i`.
    let left = s.len().saturating_sub(i);
    match s.last_chunk::<8>() {
        Some(w) if left > 0 => u64::from_le_bytes(*w) >> (8 * (8 - left)),
        _ => 0,
    }
}

/// The name of a parameter the Via records (`branch`, `rport`, `received`, `maddr`,
/// `ttl`, any case) starting at `start`, recognised from one word without a class run:
/// its key and length. `None` for other names, or when a token byte follows.
#[inline(always)]
fn known_name(s: &[u8], start: usize) -> Option<(u64, usize)> {
    let w = word_from(s, start);
    let (key, len) = match (w as u8) | 0x20 {
        b'b' => (BRANCH, 6),
        b'r' if (w >> 8) as u8 | 0x20 == b'p' => (RPORT, 5),
        b'r' => (RECEIVED, 8),
        b'm' => (MADDR, 5),
        b't' => (TTL, 3),
        _ => return None,
    };
    // Bytes past the end of `s` are zero in `w`, 0x20 after folding: never a name's byte.
    let folded = (w | FOLD) & (u64::MAX >> (64 - 8 * len));
    let ends = !s.get(start + len).is_some_and(|&b| is_token(b));
    (folded == key && ends).then_some((key, len))
}

/// The transport token of a plain Via (it starts at 8, after `SIP/2.0/`) and what follows
/// the SP after it. `UDP`, `TCP` or `TLS` and the SP in one word compare, any other token by
/// a class run. `None` without a token and SP.
#[inline(always)]
fn plain_transport(s: &[u8]) -> Option<(&[u8], &[u8])> {
    // The letters folded to lower case, the SP exact.
    const FOLD: u32 = 0x0020_2020;
    if let Some((w, rest)) = s.get(8..).and_then(|r| r.split_first_chunk::<4>()) {
        let folded = u32::from_le_bytes(*w) | FOLD;
        if folded == u32::from_le_bytes(*b"udp ")
            || folded == u32::from_le_bytes(*b"tcp ")
            || folded == u32::from_le_bytes(*b"tls ")
        {
            return Some((&w[..3], rest));
        }
    }
    let end = token_end(s, 8);
    match (s.get(8..end), s.get(end + 1..)) {
        (Some(t), Some(rest)) if !t.is_empty() && s[end] == b' ' => Some((t, rest)),
        _ => None,
    }
}

/// The port of a plain Via, one to five digits at `start` worth at most 65535, and the index
/// after them. `None` otherwise (no digit, six digits or more, too large): the general
/// parser decides then. Eight bytes at a time when there are eight.
#[inline(always)]
fn plain_port(s: &[u8], start: usize) -> Option<(u16, usize)> {
    let (value, n) = match s.get(start..).and_then(|r| r.first_chunk::<8>()) {
        Some(w) => leading_digits8(u64::from_le_bytes(*w))?,
        None => leading_digits_short(s.get(start..)?)?,
    };
    (value <= 65535).then_some((value as u16, start + n))
}

/// The value and count of the one to five ASCII digits that start `w` (eight bytes,
/// little-endian); `None` for no digit or more than five.
#[inline(always)]
fn leading_digits8(w: u64) -> Option<(u32, usize)> {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    // A byte of `not_digit` is zero exactly when that byte of `w` is `0`..=`9`: high half
    // 3, and low half at most 9 (adding 6 leaves it below 16; it cannot carry out).
    let not_digit = ((w & HIGH) ^ THREES) | (((w & LOW) + SIXES) & HIGH);
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if n == 0 || n > 5 {
        return None;
    }
    // The digits' values, moved up so zeros pad the most significant end (the low bytes),
    // then combined pairwise: 2, 4, then 8 digits per lane.
    let d = (w & LOW) << (64 - 8 * n);
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_ffff_0000_ffff;
    let d = (d.wrapping_mul(10_000) + (d >> 32)) & 0xffff_ffff;
    Some((d as u32, n))
}

/// [`leading_digits8`] for fewer than eight bytes, one byte at a time.
#[inline]
fn leading_digits_short(rest: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    let mut n = 0;
    while let Some(d) = rest.get(n).map(|b| b.wrapping_sub(b'0')) {
        if d > 9 || n == 5 {
            break;
        }
        value = value * 10 + u32::from(d);
        n += 1;
    }
    let more = rest.get(n).is_some_and(u8::is_ascii_digit);
    (n > 0 && !more).then_some((value, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::via::Rport;

    #[test]
    fn plain_agrees_with_general() {
        let samples: [&[u8]; 14] = [
            b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport",
            b"SIP/2.0/TCP h.example.com;received=1.2.3.4;rport=5;maddr=x;ttl=3;lr",
            b"sip/2.0/udp h:1;BRANCH=a;RPort=65535;TTL=255",
            b"SIP/2.0/UDP h:99999;branch=z9hG4bK1",
            b"SIP/2.0/Tls h:65535;branch=x;",
            b"SIP/2.0/tCp h:65536;branch=x",
            b"SIP/2.0/SCTP h:00001;branch=x;rport=00001",
            b"SIP/2.0/WSS h:0;RECEIVED=r;MADDR=m;Ttl=0;rport=0",
            b"SIP/2.0/UDP h;receivedx=1;xreceived=2;branc=3;branchh=4;RPORT",
            b"SIP/2.0/UDPX h;rport;;branch=b",
            b"SIP/2.0/UD h;=x;branch==b",
            b"SIP/2.0/UDP a;ttl=256;maddr",
            b"SIP/2.0/UDP h;rp=1;r;rports=2;Receive=x;ttl",
            b"SIP/2.0/UDP 192.0.2.10;RECEIVED=192.0.2.1;bRaNcH=z9hG4bK.1;MADDR=m;rport",
        ];
        let bytes = b" \t\r\n;:=,\"[]<>/.0aZ9-_~!%\x00\x7f\xff";
        crate::assert_fast_path_agrees(&samples, bytes, |v| {
            Via::parse_plain(v).is_none_or(|plain| Ok(plain) == Via::parse_general(v))
        });
    }

    #[test]
    fn plain_edges() {
        let plain = Via::parse_plain;
        assert_eq!(plain(b"SIP/2.0/UDP h:65535").unwrap().port, Some(65535));
        assert_eq!(plain(b"SIP/2.0/UDP h:00000").unwrap().port, Some(0));
        assert_eq!(plain(b"SIP/2.0/UDP h:65536"), None);
        assert_eq!(plain(b"SIP/2.0/UDP h:000001"), None);
        assert_eq!(Via::parse(b"SIP/2.0/UDP h:000001").unwrap().port, Some(1));
        assert_eq!(plain(b"SIP/2.0/UDP h:"), None);
        assert_eq!(plain(b"SIP/2.0/UDP h;"), None);
        assert_eq!(plain(b"SIP/2.0/UDP h;;x"), None);
        assert_eq!(plain(b"SIP/2.0/udp h").unwrap().transport, b"udp");
        assert_eq!(plain(b"SIP/2.0/UDPS h").unwrap().transport, b"UDPS");
        assert_eq!(plain(b"SIP/2.0/TLS-SCTP h").unwrap().transport, b"TLS-SCTP");
        assert_eq!(plain(b"SIP/2.0/X h").unwrap().transport, b"X");
        assert_eq!(plain(b"SIP/2.0/UDP h").unwrap().host, b"h");
        assert_eq!(plain(b"SIP/2.0/UDP "), None);
        assert_eq!(plain(b"SIP/2.0/UDP"), None);
        assert_eq!(plain(b"SIP/2.0/ h"), None);
        let v = plain(b"SIP/2.0/UDP h;BRANCH=b;ReCeIvEd=r;Rport;maddr=m;tTL=7").unwrap();
        assert_eq!(v.branch, Some(&b"b"[..]));
        assert_eq!(v.received, Some(&b"r"[..]));
        assert_eq!(v.rport, Some(Rport::Empty { name: b"Rport" }));
        assert_eq!(v.maddr, Some(&b"m"[..]));
        assert_eq!(v.ttl, Some(7));
        let v = plain(b"SIP/2.0/UDP h;branchx=b;receive=r;rports;xttl=1").unwrap();
        assert_eq!(
            (v.branch, v.received, v.rport, v.ttl),
            (None, None, None, None)
        );
    }

    /// Both digit readers agree with a byte-by-byte reading, for every byte at every place.
    #[test]
    fn leading_digits() {
        let expected = |v: &[u8]| {
            let n = v.iter().take_while(|b| b.is_ascii_digit()).count();
            let value = v[..n]
                .iter()
                .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
            (1..=5).contains(&n).then_some((value, n))
        };
        let every_byte: Vec<u8> = (0..=255).collect();
        for sample in [
            b"65535;ab",
            b"00000000",
            b"1;999999",
            b"123456;x",
            b"9876\xff\xff\x00\x7f",
        ] {
            for v in crate::one_byte_variants(sample, &every_byte) {
                if let Some(w) = v.first_chunk::<8>() {
                    assert_eq!(
                        leading_digits8(u64::from_le_bytes(*w)),
                        expected(&v),
                        "{v:?}"
                    );
                }
                for len in 0..v.len().min(8) {
                    let short = &v[..len];
                    assert_eq!(leading_digits_short(short), expected(short), "{short:?}");
                }
            }
        }
    }

    /// A name's key is its length and its bytes up to case, as [`eq_lowercase`] compares.
    #[test]
    fn name_keys() {
        let names: [&[u8]; 14] = [
            b"rp",
            b"Maddr",
            b"maddr2",
            b"r",
            b"branch",
            b"BRANCH",
            b"branc",
            b"branchx",
            b"received",
            b"receivedx",
            b"rport",
            b"t",
            b"ttl",
            b"x-ttl",
        ];
        for a in names {
            for b in names {
                // Longer names all share the key 0, which no known name has.
                let same = match (a.len() > 8, b.len() > 8) {
                    (false, false) => eq_lowercase(a, &b.to_ascii_lowercase()),
                    (long_a, long_b) => long_a && long_b,
                };
                assert_eq!(name_key(a) == name_key(b), same, "{a:?} {b:?}");
            }
            let mut s = b"SIP/2.0/UDP h;".to_vec();
            let start = s.len();
            s.extend_from_slice(a);
            assert_eq!(name_key_of(&s, start, s.len()), name_key(a), "{a:?}");
        }
        assert_eq!(name_key_of(b"ttl", 0, 3), TTL);
        // Recognised names agree with a token run and the key of what it finds.
        let tails: [&[u8]; 6] = [b"", b"=", b";", b"x", b"-", b"=1;x"];
        for a in names {
            for tail in tails {
                let mut s = b"SIP/2.0/UDP h;".to_vec();
                let start = s.len();
                s.extend_from_slice(a);
                s.extend_from_slice(tail);
                let end = crate::classes::token_end(&s, start);
                if let Some((key, len)) = known_name(&s, start) {
                    assert_eq!((key, start + len), (name_key(&s[start..end]), end), "{s:?}");
                } else {
                    assert!(
                        ![BRANCH, RPORT, RECEIVED, MADDR, TTL].contains(&name_key(&s[start..end]))
                    );
                }
            }
        }
        assert_eq!(
            word_from(b"abcdefghij", 7),
            u64::from_le_bytes(*b"hij\0\0\0\0\0")
        );
        assert_eq!(word_from(b"abcdefghij", 10), 0);
        assert_eq!(word_from(b"abc", 1), 0);
        assert_eq!(name_key(b"receivedx"), 0);
        assert_eq!(name_key(b""), 0);
    }
}

//! One Via header value (RFC 3261 §20.42, §25.1 `via-parm`), RFC 3581 `rport` included.

use super::classes::{host_end, token_end};
use super::header_name::eq_lowercase;
use super::params::{BadParams, Params};
use super::scan::{is_host_char, is_token, is_token_str, is_ws, parse_decimal, skip_ws};
use std::net::{IpAddr, Ipv6Addr};

/// The `rport` parameter (RFC 3581).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rport<'a> {
    /// `;rport` with no value: the client asks us to fill it. `name` is the bare name,
    /// borrowed from the message, so a rewrite can append `=PORT` right after it.
    Empty { name: &'a [u8] },
    /// `;rport=PORT`.
    Port(u16),
}

/// A parsed Via value. Every slice borrows from the message buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// The whole value, `SIP/2.0/UDP host:port;params`, without surrounding white space.
    pub value: &'a [u8],
    /// Transport token (`UDP`, `TCP`, `TLS`, `SCTP`, or any other token).
    pub transport: &'a [u8],
    /// Host of sent-by, without the brackets of an IPv6 reference.
    pub host: &'a [u8],
    /// True if the host was an IPv6 reference `[...]`.
    pub host_is_ipv6: bool,
    /// Port of sent-by, if present.
    pub port: Option<u16>,
    /// `branch` parameter value.
    pub branch: Option<&'a [u8]>,
    /// `received` parameter value.
    pub received: Option<&'a [u8]>,
    /// `rport` parameter.
    pub rport: Option<Rport<'a>>,
    /// `maddr` parameter value.
    pub maddr: Option<&'a [u8]>,
    /// `ttl` parameter value.
    pub ttl: Option<u8>,
}

/// Marker error: the Via value is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadVia;

impl From<BadParams> for BadVia {
    fn from(_: BadParams) -> Self {
        BadVia
    }
}

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

impl<'a> Via<'a> {
    /// Parses one Via value (already split at commas and trimmed).
    pub fn parse(value: &'a [u8]) -> Result<Via<'a>, BadVia> {
        match Self::parse_plain(value) {
            Some(via) => Ok(via),
            None => Self::parse_general(value),
        }
    }

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
        let mut via = Via {
            value,
            transport,
            host,
            host_is_ipv6: false,
            port,
            branch: None,
            received: None,
            rport: None,
            maddr: None,
            ttl: None,
        };
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
                    let end = token_end_outlined(s, name_start);
                    if end == name_start {
                        return None;
                    }
                    (name_key_ending(s, end, &s[name_start..end]), end)
                }
            };
            let value = if s.get(name_end) == Some(&b'=') {
                let value_end = plain_value_end(s, name_end + 1);
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

    /// Records one parameter the Via knows; others are ignored.
    /// `value_is_token`: the caller has checked that a value is a token.
    #[inline]
    fn param(
        &mut self,
        name: &'a [u8],
        value: Option<&'a [u8]>,
        value_is_token: bool,
    ) -> Result<(), BadParams> {
        self.param_keyed(name_key(name), name, value, value_is_token)
    }

    /// [`Via::param`] with the name's [`name_key`] already computed.
    #[inline(always)]
    fn param_keyed(
        &mut self,
        key: u64,
        name: &'a [u8],
        value: Option<&'a [u8]>,
        value_is_token: bool,
    ) -> Result<(), BadParams> {
        match key {
            BRANCH => {
                let v = value.ok_or(BadParams)?;
                if !value_is_token && !is_token_str(v) {
                    return Err(BadParams);
                }
                self.branch = Some(v);
            }
            RECEIVED => {
                self.received = Some(value.ok_or(BadParams)?);
            }
            RPORT => {
                self.rport = Some(match value {
                    None => Rport::Empty { name },
                    Some(v) => Rport::Port(parse_decimal(v, 65535).ok_or(BadParams)? as u16),
                });
            }
            MADDR => {
                self.maddr = Some(value.ok_or(BadParams)?);
            }
            TTL => {
                let v = value.ok_or(BadParams)?;
                self.ttl = Some(parse_decimal(v, 255).ok_or(BadParams)? as u8);
            }
            _ => {}
        }
        Ok(())
    }

    /// Any valid Via value: white space wherever the grammar allows it, IPv6 references,
    /// quoted parameter values.
    fn parse_general(value: &'a [u8]) -> Result<Via<'a>, BadVia> {
        let s = value;
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        // SLASH = SWS "/" SWS. The usual `SIP/2.0/` is matched in one comparison.
        let mut i = skip_ws(s, 0);
        if s.len() >= i + 8 && eq_lowercase(&s[i..i + 8], b"sip/2.0/") {
            i += 8;
        } else {
            let name_end = token_end(s, i);
            if !s[i..name_end].eq_ignore_ascii_case(b"SIP") {
                return Err(BadVia);
            }
            i = expect(s, name_end, b'/')?;
            let version_end = token_end(s, i);
            if &s[i..version_end] != b"2.0" {
                return Err(BadVia);
            }
            i = expect(s, version_end, b'/')?;
        }
        let transport_end = token_end(s, i);
        if transport_end == i {
            return Err(BadVia);
        }
        let transport = &s[i..transport_end];
        // LWS sent-by
        i = skip_ws(s, transport_end);
        if i == transport_end {
            return Err(BadVia);
        }
        let (host, host_is_ipv6, mut i) = parse_host(s, i)?;
        let mut port = None;
        let after_host = skip_ws(s, i);
        if after_host < s.len() && s[after_host] == b':' {
            let p = skip_ws(s, after_host + 1);
            let mut e = p;
            while e < s.len() && s[e].is_ascii_digit() {
                e += 1;
            }
            port = Some(parse_decimal(&s[p..e], 65535).ok_or(BadVia)? as u16);
            i = e;
        }
        let mut via = Via {
            value,
            transport,
            host,
            host_is_ipv6,
            port,
            branch: None,
            received: None,
            rport: None,
            maddr: None,
            ttl: None,
        };
        Params::new(&s[i..]).for_each_checked(|p| via.param(p.name, p.value, false))?;
        Ok(via)
    }

    /// True if the branch starts with the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The sent-by host as an IP address, if it is an IP literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        ip_literal(self.host, self.host_is_ipv6)
    }
}

/// Parses `host` as an IP literal without allocating. `bracketed` hosts must be IPv6.
pub fn ip_literal(host: &[u8], bracketed: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(host).ok()?;
    if bracketed {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// OR-ed into every byte of a parameter name: folds upper case onto lower case, as
/// [`eq_lowercase`] does.
const NAME_FOLD: u64 = 0x2020_2020_2020_2020;

/// A parameter name of one to eight bytes as one word: its bytes OR 0x20 (never zero), in
/// little-endian order, zero above the name. Two names have the same key exactly when they
/// have the same length and are equal under [`eq_lowercase`]. 0 (no name's key) for
/// longer or empty names.
const fn name_key(name: &[u8]) -> u64 {
    if name.is_empty() || name.len() > 8 {
        return 0;
    }
    let mut key = 0u64;
    let mut k = name.len();
    while k > 0 {
        k -= 1;
        key = key << 8 | (name[k] | 0x20) as u64;
    }
    key
}

/// [`name_key`] of `name`, which ends at `end` in `s`: one load of the eight bytes before
/// `end`, shifted down to the name.
#[inline(always)]
fn name_key_ending(s: &[u8], end: usize, name: &[u8]) -> u64 {
    let len = name.len();
    let word = end
        .checked_sub(8)
        .and_then(|start| s.get(start..end))
        .and_then(|w| w.first_chunk::<8>());
    match word {
        Some(w) if (1..=8).contains(&len) => (u64::from_le_bytes(*w) | NAME_FOLD) >> (64 - 8 * len),
        _ => name_key(name),
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
    let folded = (w | NAME_FOLD) & (u64::MAX >> (64 - 8 * len));
    let ends = !s.get(start + len).is_some_and(|&b| is_token(b));
    (folded == key && ends).then_some((key, len))
}

const BRANCH: u64 = name_key(b"branch");
const RECEIVED: u64 = name_key(b"received");
const RPORT: u64 = name_key(b"rport");
const MADDR: u64 = name_key(b"maddr");
const TTL: u64 = name_key(b"ttl");

/// The transport token of a plain Via (it starts at 8, after `SIP/2.0/`) and what follows
/// the SP after it. `UDP`, `TCP` or `TLS` and the SP in one word compare, any other token by
/// a class run (kept out of line). `None` without a token and SP.
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
    let end = token_end_outlined(s, 8);
    match (s.get(8..end), s.get(end + 1..)) {
        (Some(t), Some(rest)) if !t.is_empty() && s[end] == b' ' => Some((t, rest)),
        _ => None,
    }
}

/// [`token_end`], kept out of line: in [`Via::parse_plain`]'s loop, where the usual
/// parameters do not need it, its inlined class constants would be loaded on every call.
#[inline(never)]
fn token_end_outlined(s: &[u8], pos: usize) -> usize {
    token_end(s, pos)
}

/// End of the token run at `start` (as [`token_end`]): host-name characters first, the
/// cheaper class that most values (branch IDs, addresses, ports) stay within, then the
/// other token characters only if the run stopped at one.
#[inline(always)]
fn plain_value_end(s: &[u8], start: usize) -> usize {
    let end = host_end(s, start);
    if s.get(end).is_some_and(|&b| is_token(b)) {
        token_end_outlined(s, end)
    } else {
        end
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

/// Skips white space, expects `c`, skips white space after it.
fn expect(s: &[u8], i: usize, c: u8) -> Result<usize, BadVia> {
    let i = skip_ws(s, i);
    if i < s.len() && s[i] == c {
        Ok(skip_ws(s, i + 1))
    } else {
        Err(BadVia)
    }
}

/// Parses a host (name, IPv4 or `[IPv6]`) at `i`: returns the host without brackets,
/// whether it was bracketed, and the index after it.
pub(crate) fn parse_host(s: &[u8], i: usize) -> Result<(&[u8], bool, usize), BadVia> {
    if s.get(i) == Some(&b'[') {
        let close = s[i..].iter().position(|&b| b == b']').ok_or(BadVia)? + i;
        let inner = &s[i + 1..close];
        if ip_literal(inner, true).is_none() {
            return Err(BadVia);
        }
        return Ok((inner, true, close + 1));
    }
    let mut e = i;
    while e < s.len() && is_host_char(s[e]) {
        e += 1;
    }
    if e == i || (e < s.len() && !matches!(s[e], b':' | b';') && !is_ws(s[e])) {
        return Err(BadVia);
    }
    Ok((&s[i..e], false, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_udp_via() {
        let v = Via::parse(b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch, Some(&b"z9hG4bK776"[..]));
        assert!(matches!(v.rport, Some(Rport::Empty { name }) if name == b"rport"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.host_ip(), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn ipv6_and_params() {
        let v = Via::parse(
            b"SIP/2.0/TCP [2001:db8::9:1]:5070;received=2001:db8::9:255;rport=1234;maddr=224.2.0.1;ttl=16;x=y;branch=z9hG4bKa",
        )
        .unwrap();
        assert_eq!(v.host, b"2001:db8::9:1");
        assert!(v.host_is_ipv6);
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received, Some(&b"2001:db8::9:255"[..]));
        assert_eq!(v.rport, Some(Rport::Port(1234)));
        assert_eq!(v.maddr, Some(&b"224.2.0.1"[..]));
        assert_eq!(v.ttl, Some(16));
        assert_eq!(v.host_ip(), Some("2001:db8::9:1".parse().unwrap()));
    }

    #[test]
    fn whitespace_everywhere() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5061 ; branch = x").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, b"192.0.2.2");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.branch, Some(&b"x"[..]));
        assert!(!v.has_rfc3261_branch());
    }

    #[test]
    fn hostnames_and_defaults() {
        let v = Via::parse(b"SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf").unwrap();
        assert_eq!(v.host, b"t2.example.com");
        assert_eq!(v.port, None);
        assert_eq!(v.host_ip(), None);
    }

    /// The plain-shape parser never disagrees with the general one: every one-byte change
    /// and every truncation of some typical values.
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
        for sample in samples {
            for v in crate::sip::one_byte_variants(sample, bytes) {
                if let Some(plain) = Via::parse_plain(&v) {
                    assert_eq!(
                        Ok(plain),
                        Via::parse_general(&v),
                        "{:?}",
                        String::from_utf8_lossy(&v)
                    );
                }
            }
        }
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
            for v in crate::sip::one_byte_variants(sample, &every_byte) {
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

    #[test]
    fn value_runs() {
        let every_byte: Vec<u8> = (0..=255).collect();
        let sample = b"SIP/2.0/UDP h;branch=z9hG4bK.a-b_c!d;rport";
        for v in crate::sip::one_byte_variants(sample, &every_byte) {
            for start in [0, 14, 21, 30, 36, v.len()] {
                let expected = crate::sip::classes::token_end(&v, start);
                assert_eq!(plain_value_end(&v, start), expected, "{v:?} {start}");
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
            s.extend_from_slice(a);
            assert_eq!(name_key_ending(&s, s.len(), a), name_key(a), "{a:?}");
        }
        assert_eq!(name_key_ending(b"ttl", 3, b"ttl"), TTL);
        // Recognised names agree with a token run and the key of what it finds.
        let tails: [&[u8]; 6] = [b"", b"=", b";", b"x", b"-", b"=1;x"];
        for a in names {
            for tail in tails {
                let mut s = b"SIP/2.0/UDP h;".to_vec();
                let start = s.len();
                s.extend_from_slice(a);
                s.extend_from_slice(tail);
                let end = crate::sip::classes::token_end(&s, start);
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

    #[test]
    fn malformed() {
        for bad in [
            &b""[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDP ",
            b"SIP/3.0/UDP h",
            b"HTTP/2.0/UDP h",
            b"SIP/2.0/UDPh",
            b"SIP/2.0/UDP h:99999",
            b"SIP/2.0/UDP h:",
            b"SIP/2.0/UDP [::1",
            b"SIP/2.0/UDP [nonsense]",
            b"SIP/2.0/UDP 192.0.2.15;;",
            b"SIP/2.0/UDP h;branch",
            b"SIP/2.0/UDP h;rport=x",
            b"SIP/2.0/UDP h;ttl=256",
            b"SIP/2.0/UDP h junk",
            b"SIP/2.0/UDP h@x",
        ] {
            assert_eq!(
                Via::parse(bad),
                Err(BadVia),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! One Via header value (RFC 3261 §20.42, §25.1 `via-parm`), RFC 3581 `rport` included.

use super::classes::{host_end, token_end};
use super::header_name::eq_lowercase;
use super::params::{BadParams, Params};
use super::scan::{is_host_char, is_token_str, is_ws, parse_decimal, skip_ws};
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
    #[inline]
    pub(crate) fn parse_plain(value: &'a [u8]) -> Option<Via<'a>> {
        let s = value;
        let proto = s.first_chunk::<8>()?;
        if !eq_lowercase(proto, b"sip/2.0/") {
            return None;
        }
        let transport_end = token_end(s, 8);
        if transport_end == 8 || s.get(transport_end) != Some(&b' ') {
            return None;
        }
        let transport = &s[8..transport_end];
        let host_start = transport_end + 1;
        let mut i = host_end(s, host_start);
        if i == host_start {
            return None;
        }
        let host = &s[host_start..i];
        let mut port = None;
        if s.get(i) == Some(&b':') {
            // One to five digits; longer runs (leading zeros, or too large) are left to
            // the general parser.
            let digits_start = i + 1;
            i = digits_start;
            let mut v = 0u32;
            while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|&d| d < 10) {
                v = v * 10 + u32::from(d);
                i += 1;
                if i - digits_start > 5 {
                    return None;
                }
            }
            if i == digits_start || v > 65535 {
                return None;
            }
            port = Some(v as u16);
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
        while i < s.len() {
            if s[i] != b';' {
                return None;
            }
            let name_start = i + 1;
            let name_end = token_end(s, name_start);
            if name_end == name_start {
                return None;
            }
            let name = &s[name_start..name_end];
            let value = match s.get(name_end) {
                Some(b'=') => {
                    let value_end = token_end(s, name_end + 1);
                    if value_end == name_end + 1 {
                        return None;
                    }
                    i = value_end;
                    Some(&s[name_end + 1..value_end])
                }
                _ => {
                    i = name_end;
                    None
                }
            };
            if i < s.len() && s[i] != b';' {
                return None;
            }
            // The value is a token run: no need to check it again.
            via.param(name, value, true).ok()?;
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
        match (name.len(), name[0] | 0x20) {
            (6, b'b') if eq_lowercase(name, b"branch") => {
                let v = value.ok_or(BadParams)?;
                if !value_is_token && !is_token_str(v) {
                    return Err(BadParams);
                }
                self.branch = Some(v);
            }
            (8, b'r') if eq_lowercase(name, b"received") => {
                self.received = Some(value.ok_or(BadParams)?);
            }
            (5, b'r') if eq_lowercase(name, b"rport") => {
                self.rport = Some(match value {
                    None => Rport::Empty { name },
                    Some(v) => Rport::Port(parse_decimal(v, 65535).ok_or(BadParams)? as u16),
                });
            }
            (5, b'm') if eq_lowercase(name, b"maddr") => {
                self.maddr = Some(value.ok_or(BadParams)?);
            }
            (3, b't') if eq_lowercase(name, b"ttl") => {
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
        let samples: [&[u8]; 4] = [
            b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport",
            b"SIP/2.0/TCP h.example.com;received=1.2.3.4;rport=5;maddr=x;ttl=3;lr",
            b"sip/2.0/udp h:1;BRANCH=a;RPort=65535;TTL=255",
            b"SIP/2.0/UDP h:99999;branch=z9hG4bK1",
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

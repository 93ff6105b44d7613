//! One Via header value (RFC 3261 §20.42, §25.1 `via-parm`), RFC 3581 `rport` included.

use super::classes::token_end;
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

    /// A Via of `value` with its protocol and sent-by, no parameters yet.
    #[inline(always)]
    pub(super) fn sent_by(
        value: &'a [u8],
        transport: &'a [u8],
        host: &'a [u8],
        host_is_ipv6: bool,
        port: Option<u16>,
    ) -> Via<'a> {
        Via {
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
        }
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
    pub(super) fn param_keyed(
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
    pub(super) fn parse_general(value: &'a [u8]) -> Result<Via<'a>, BadVia> {
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
        let mut via = Via::sent_by(value, transport, host, host_is_ipv6, port);
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

/// A parameter name of one to eight bytes as one word: its bytes OR 0x20 (never zero), in
/// little-endian order, zero above the name. Two names have the same key exactly when they
/// have the same length and are equal under [`eq_lowercase`]. 0 (no name's key) for
/// longer or empty names.
pub(super) const fn name_key(name: &[u8]) -> u64 {
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

pub(super) const BRANCH: u64 = name_key(b"branch");
pub(super) const RECEIVED: u64 = name_key(b"received");
pub(super) const RPORT: u64 = name_key(b"rport");
pub(super) const MADDR: u64 = name_key(b"maddr");
pub(super) const TTL: u64 = name_key(b"ttl");

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

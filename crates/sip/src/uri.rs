//! URIs: scheme checks for any URI, and a full parse of `sip:`/`sips:` URIs
//! (RFC 3261 §19.1, §25.1) for routing decisions (host, port, `lr`, `maddr`).

use super::scan::{is_uri_char, parse_decimal};
use super::via::{ip_literal, parse_host};
use std::net::IpAddr;

/// Marker error: the URI is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadUri;

/// Length of a valid scheme at the start of `uri` (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`
/// followed by `:`), not counting the colon.
pub fn scheme_len(uri: &[u8]) -> Option<usize> {
    // The usual `sip:` in one comparison: the letters folded to lower case, the colon exact.
    if let Some(head) = uri.first_chunk::<4>() {
        if u32::from_le_bytes(*head) | 0x0020_2020 == u32::from_le_bytes(*b"sip:") {
            return Some(3);
        }
    }
    scheme_len_by_grammar(uri)
}

/// [`scheme_len`] by the grammar alone, byte by byte.
fn scheme_len_by_grammar(uri: &[u8]) -> Option<usize> {
    let first = *uri.first()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let n = uri
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))?;
    (uri[n] == b':').then_some(n)
}

/// Checks an absolute URI's outer shape: a scheme, then only URI characters.
pub fn check_absolute(uri: &[u8]) -> Result<(), BadUri> {
    let n = scheme_len(uri).ok_or(BadUri)?;
    if uri.len() == n + 1 || !uri.iter().all(|&b| is_uri_char(b)) {
        return Err(BadUri);
    }
    Ok(())
}

/// Checks a Request-URI (§16.3, §19.1.1): an absolute URI; a `sip`/`sips` one must
/// parse and carry no headers component.
pub fn check_request_uri(uri: &[u8]) -> Result<(), BadUri> {
    check_absolute(uri)?;
    if is_sip_scheme(uri) {
        let parsed = SipUri::parse(uri)?;
        if parsed.headers.is_some() {
            return Err(BadUri);
        }
    }
    Ok(())
}

fn is_sip_scheme(uri: &[u8]) -> bool {
    uri.len() >= 4
        && (uri[..4].eq_ignore_ascii_case(b"sip:")
            || uri[..5.min(uri.len())].eq_ignore_ascii_case(b"sips:"))
}

/// A parsed `sip:` or `sips:` URI, borrowing from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// True for `sips:`.
    pub secure: bool,
    /// userinfo (user and optional password), without the `@`.
    pub user: Option<&'a [u8]>,
    /// Host, without the brackets of an IPv6 reference.
    pub host: &'a [u8],
    /// True if the host was an IPv6 reference.
    pub host_is_ipv6: bool,
    /// Port, if present.
    pub port: Option<u16>,
    /// The raw `;param...` section (possibly empty).
    pub params: &'a [u8],
    /// The headers component after `?`, if any.
    pub headers: Option<&'a [u8]>,
}

impl<'a> SipUri<'a> {
    /// Parses a `sip:`/`sips:` URI.
    pub fn parse(uri: &'a [u8]) -> Result<SipUri<'a>, BadUri> {
        let n = scheme_len(uri).ok_or(BadUri)?;
        let scheme = &uri[..n];
        let secure = if scheme.eq_ignore_ascii_case(b"sips") {
            true
        } else if scheme.eq_ignore_ascii_case(b"sip") {
            false
        } else {
            return Err(BadUri);
        };
        if !uri.iter().all(|&b| is_uri_char(b)) {
            return Err(BadUri);
        }
        let rest = &uri[n + 1..];
        // userinfo cannot contain an unescaped '@', and nothing after the host can either.
        let (user, hostpart) = match rest.iter().position(|&b| b == b'@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if user.is_some_and(|u| u.is_empty()) {
            return Err(BadUri);
        }
        let (host, host_is_ipv6, mut i) = parse_host(hostpart, 0).map_err(|_| BadUri)?;
        let mut port = None;
        if hostpart.get(i) == Some(&b':') {
            let start = i + 1;
            let mut e = start;
            while e < hostpart.len() && hostpart[e].is_ascii_digit() {
                e += 1;
            }
            port = Some(parse_decimal(&hostpart[start..e], 65535).ok_or(BadUri)? as u16);
            i = e;
        }
        let tail = &hostpart[i..];
        let (params, headers) = match tail.iter().position(|&b| b == b'?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        if !params.is_empty() && params[0] != b';' {
            return Err(BadUri);
        }
        if params
            .split(|&b| b == b';')
            .skip(1)
            .any(|p| p.is_empty() || p[0] == b'=')
        {
            return Err(BadUri);
        }
        Ok(SipUri {
            secure,
            user,
            host,
            host_is_ipv6,
            port,
            params,
            headers,
        })
    }

    /// The value of URI parameter `name`: `Some(None)` for a bare parameter like `lr`,
    /// `Some(Some(v))` for `name=v`, `None` when absent. Names compare case-insensitively.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.params.split(|&b| b == b';').skip(1).find_map(|p| {
            let (n, v) = match p.iter().position(|&b| b == b'=') {
                Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
                None => (p, None),
            };
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// True if the URI carries the loose-routing `lr` parameter.
    pub fn has_lr(&self) -> bool {
        self.param(b"lr").is_some()
    }

    /// The host as an IP address, if it is an IP literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        ip_literal(self.host, self.host_is_ipv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-word `sip:` check agrees with the scheme grammar for every one-byte change.
    #[test]
    fn scheme_fast_path() {
        let every_byte: Vec<u8> = (0..=255).collect();
        for sample in [&b"sip:a@b"[..], b"SIPS:x", b"tel:+1"] {
            for uri in crate::one_byte_variants(sample, &every_byte) {
                assert_eq!(scheme_len(&uri), scheme_len_by_grammar(&uri), "{uri:?}");
            }
        }
    }

    #[test]
    fn full_sip_uri() {
        let u =
            SipUri::parse(b"sip:alice:pw@[2001:db8::1]:5070;transport=udp;lr?subject=x").unwrap();
        assert!(!u.secure);
        assert_eq!(u.user, Some(&b"alice:pw"[..]));
        assert_eq!(u.host, b"2001:db8::1");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param(b"transport"), Some(Some(&b"udp"[..])));
        assert!(u.has_lr());
        assert_eq!(u.headers, Some(&b"subject=x"[..]));
        assert_eq!(u.host_ip(), Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn user_part_may_hold_semicolons_and_question_marks() {
        let u = SipUri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host, b"example.com");
        assert_eq!(u.params, b"");
        let u = SipUri::parse(b"SIPS:a?b@192.0.2.1;LR").unwrap();
        assert!(u.secure);
        assert!(u.has_lr());
        assert_eq!(u.headers, None);
    }

    #[test]
    fn request_uri_rules() {
        assert!(check_request_uri(b"sip:user@example.com").is_ok());
        assert!(check_request_uri(b"tel:+1-555-0100").is_ok());
        assert!(check_request_uri(b"soap.beep://192.0.2.103:3002").is_ok());
        assert!(check_request_uri(b"<sip:user@example.com>").is_err());
        assert!(check_request_uri(b"sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(check_request_uri(b"sip:").is_err());
        assert!(check_request_uri(b"user@example.com").is_err());
        assert!(check_request_uri(b"sip:@example.com").is_err());
        assert!(check_request_uri(b"sip:example.com;;lr").is_err());
        assert!(check_request_uri(b"sip:example.com:x").is_err());
    }
}

//! `name-addr / addr-spec` values with header parameters: From, To, Contact, Route,
//! Record-Route (RFC 3261 §20.10, §25.1).

use super::params::{BadParams, Params};
use super::scan::{is_token, is_uri_char, quoted_string_end, skip_ws, token_end};
use super::uri::check_absolute;

/// A parsed `[display-name] <URI> *(;param)` or `URI *(;param)` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The whole value, trimmed.
    pub value: &'a [u8],
    /// Display name as written (quotes kept), if any.
    pub display: Option<&'a [u8]>,
    /// The URI, without the angle brackets.
    pub uri: &'a [u8],
    /// True if the URI was written inside `<...>`.
    pub bracketed: bool,
    /// The raw header-parameter section after the URI (possibly empty).
    pub params: &'a [u8],
    /// The `tag` parameter value, if present.
    pub tag: Option<&'a [u8]>,
}

/// Marker error: the value is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadNameAddr;

impl From<BadParams> for BadNameAddr {
    fn from(_: BadParams) -> Self {
        BadNameAddr
    }
}

impl<'a> NameAddr<'a> {
    /// Parses one value (already split at commas where the header allows several).
    pub fn parse(value: &'a [u8]) -> Result<NameAddr<'a>, BadNameAddr> {
        let s = value;
        let mut i = skip_ws(s, 0);
        if i >= s.len() {
            return Err(BadNameAddr);
        }
        let mut display = None;
        let mut bracketed = false;
        if s[i] == b'"' {
            let end = quoted_string_end(s, i).ok_or(BadNameAddr)?;
            display = Some(&s[i..end]);
            i = skip_ws(s, end);
            if s.get(i) != Some(&b'<') {
                return Err(BadNameAddr);
            }
            bracketed = true;
        } else if s[i] == b'<' {
            bracketed = true;
        } else {
            // Either `token *(LWS token) <URI>` or a bare addr-spec starting with a scheme.
            let start = i;
            let mut j = i;
            loop {
                let t = token_end(s, j);
                if t == j {
                    break;
                }
                let k = skip_ws(s, t);
                if s.get(k) == Some(&b'<') {
                    display = Some(&s[start..t]);
                    bracketed = true;
                    i = k;
                    break;
                }
                if k > t && k < s.len() && is_token(s[k]) {
                    j = k;
                    continue;
                }
                break;
            }
        }
        let (uri, after) = if bracketed {
            let close = s[i..].iter().position(|&b| b == b'>').ok_or(BadNameAddr)? + i;
            (&s[i + 1..close], close + 1)
        } else {
            // addr-spec form: the URI ends at the first ';' (header parameters follow) and
            // may not contain '?' or ',' (§20: such URIs must be enclosed in <>).
            let mut e = i;
            while e < s.len() && is_uri_char(s[e]) && s[e] != b';' {
                if matches!(s[e], b'?' | b',') {
                    return Err(BadNameAddr);
                }
                e += 1;
            }
            (&s[i..e], e)
        };
        check_absolute(uri).map_err(|_| BadNameAddr)?;
        let params = &s[after..];
        let mut tag = None;
        Params::new(params).for_each_checked(|p| {
            if p.name.eq_ignore_ascii_case(b"tag") {
                tag = Some(p.value.ok_or(BadParams)?);
            }
            Ok(())
        })?;
        Ok(NameAddr {
            value,
            display,
            uri,
            bracketed,
            params,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.uri, b"sip:jdrosen@example.com");
        assert_eq!(n.tag, Some(&b"98asjd8"[..]));
        assert!(n.bracketed);

        let n =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.uri, b"sip:vivekg@chair-dnrc.example.com");
        assert_eq!(n.tag, Some(&b"1918181833n"[..]));
        assert!(!n.bracketed);

        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some(&b"caller"[..]));
        assert_eq!(n.tag, Some(&b"323"[..]));

        let n =
            NameAddr::parse(b"token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").unwrap();
        assert_eq!(n.display, Some(&b"token1~` token2'+_ token3*%!.-"[..]));
        assert_eq!(n.tag, None);

        let n =
            NameAddr::parse(b"<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
                .unwrap();
        assert_eq!(
            n.uri,
            b"sip:services.example.com;lr;unknownwith=value;unknown-no-value"
        );
        assert_eq!(n.params, b"");
        assert!(NameAddr::parse(b"isbn:2983792873").is_ok());
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"\"Mr. J. User <sip:j.user@example.com>"[..],
            b"\"Watson, Thomas\" < sip:t.watson@example.org >",
            b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            b"sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            b"<sip:caller@example.org>;;;;",
            b"<sip:x@y",
            b"",
            b"<>",
            b"nouri",
            b"<sip:a@b>;tag",
        ] {
            assert!(
                NameAddr::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

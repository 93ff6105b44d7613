//! Request line and status line (RFC 3261 §7.1, §7.2): exactly one SP between elements,
//! SIP/2.0 only. The Request-URI's shape is checked here (a scheme, URI characters only);
//! its full SIP-URI grammar is checked by [`crate::uri::check_request_uri`].

use super::classes::{all_uri_chars, token_end};
use super::error::ParseError;
use super::scan::is_token_str;
use super::uri::{check_absolute, scheme_len};

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// The method token (case-sensitive; unknown methods are valid).
        method: &'a [u8],
        /// The Request-URI.
        uri: &'a [u8],
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase (may be empty; may be UTF-8).
        reason: &'a [u8],
    },
}

const VERSION: &[u8] = b"SIP/2.0";

fn is_version(s: &[u8]) -> bool {
    // Seven bytes compared as one word; letters folded with 0x20 where VERSION has letters
    // (`/`, `2`, `.` and `0` must match exactly).
    const FOLD: u64 = 0x0020_2020;
    const LOWER: u64 = u64::from_le_bytes(*b"sip/2.0\0");
    match s.first_chunk::<7>() {
        Some(v) if s.len() == 7 => {
            let mut word = [0u8; 8];
            word[..7].copy_from_slice(v);
            u64::from_le_bytes(word) | FOLD == LOWER
        }
        _ => false,
    }
}

/// `w` is ` SIP/2.0` (the letters in any case), as a request line ends: one word compare.
fn is_sp_version(w: &[u8; 8]) -> bool {
    // The letters folded to lower case; SP, `/`, `2`, `.` and `0` exact.
    const FOLD: u64 = 0x0000_0000_2020_2000;
    u64::from_le_bytes(*w) | FOLD == u64::from_le_bytes(*b" sip/2.0")
}

/// The length of the method if `line` starts with one of the RFC 3261 methods (exact case)
/// and SP, in one or two word compares; `None` for others (found by a class run then).
fn common_method_end(line: &[u8]) -> Option<usize> {
    const FOUR: u64 = 0xffff_ffff;
    const SEVEN: u64 = 0x00ff_ffff_ffff_ffff;
    const fn word(m: &[u8; 8]) -> u64 {
        u64::from_le_bytes(*m)
    }
    let w = u64::from_le_bytes(*line.first_chunk::<8>()?);
    match (w & FOUR, w & SEVEN) {
        (_, x) if x == word(b"INVITE \0") || x == word(b"CANCEL \0") => Some(6),
        (x, _) if x == word(b"ACK \0\0\0\0") || x == word(b"BYE \0\0\0\0") => Some(3),
        _ if w == word(b"OPTIONS ") => Some(7),
        _ => None,
    }
}

/// `SIP/` followed by something other than `2.0` and no space: a version we do not speak.
fn looks_like_version(s: &[u8]) -> bool {
    starts_with_sip_slash(s) && !s.contains(&b' ')
}

fn starts_with_sip_slash(s: &[u8]) -> bool {
    // One word: the letters folded to lower case (only `S`/`s` fold onto `s`, and so on),
    // the `/` exact.
    s.first_chunk::<4>()
        .is_some_and(|w| u32::from_le_bytes(*w) | 0x0020_2020 == u32::from_le_bytes(*b"sip/"))
}

impl<'a> StartLine<'a> {
    /// Parses the start line, given without its line terminator.
    pub fn parse(line: &'a [u8]) -> Result<StartLine<'a>, ParseError> {
        if starts_with_sip_slash(line) {
            return Self::parse_status(line);
        }
        match Self::parse_plain_request(line) {
            Some(start) => Ok(start),
            None => Self::parse_request(line),
        }
    }

    /// A valid request line, checked with class runs 16 bytes at a time: ` SIP/2.0` at the
    /// end in one word compare, a token and one SP before the Request-URI, and only URI
    /// characters (no SP) between them. `None` when it is not valid:
    /// [`StartLine::parse_request`] then says why.
    #[inline]
    fn parse_plain_request(line: &'a [u8]) -> Option<StartLine<'a>> {
        let uri_stop = line.len().checked_sub(8)?;
        if !is_sp_version(line.last_chunk::<8>()?) {
            return None;
        }
        let method_end = common_method_end(line).unwrap_or_else(|| token_end(line, 0));
        if method_end == 0 || line.get(method_end) != Some(&b' ') {
            return None;
        }
        let uri = line.get(method_end + 1..uri_stop)?;
        if !all_uri_chars(uri) {
            return None;
        }
        let scheme = scheme_len(uri)?;
        (uri.len() > scheme + 1).then_some(StartLine::Request {
            method: &line[..method_end],
            uri,
        })
    }

    fn parse_request(line: &'a [u8]) -> Result<StartLine<'a>, ParseError> {
        let mut parts = line.splitn(3, |&b| b == b' ');
        let method = parts.next().unwrap_or_default();
        let uri = parts.next().ok_or(ParseError::StartLine)?;
        let version = parts.next().ok_or(ParseError::StartLine)?;
        if !is_token_str(method) {
            return Err(ParseError::Method);
        }
        if !is_version(version) {
            return Err(if looks_like_version(version) {
                ParseError::Version
            } else {
                ParseError::StartLine
            });
        }
        check_absolute(uri).map_err(|_| ParseError::RequestUri)?;
        Ok(StartLine::Request { method, uri })
    }

    fn parse_status(line: &'a [u8]) -> Result<StartLine<'a>, ParseError> {
        let version = &line[..line.len().min(VERSION.len())];
        if !is_version(version) {
            return Err(ParseError::Version);
        }
        let rest = &line[version.len()..];
        let rest = rest.strip_prefix(b" ").ok_or(ParseError::StartLine)?;
        // A status line without the SP before an empty reason phrase is tolerated.
        let (code, reason) = match rest.iter().position(|&b| b == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::StatusCode);
        }
        let code = code.iter().fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        if reason.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(ParseError::StartLine);
        }
        Ok(StartLine::Response { code, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(
            StartLine::parse(b"INVITE sip:bob@example.com SIP/2.0"),
            Ok(StartLine::Request {
                method: b"INVITE",
                uri: b"sip:bob@example.com"
            })
        );
        assert!(
            StartLine::parse(b"!interesting-Method0123456789_*+`.%indeed'~ sip:x@y SIP/2.0")
                .is_ok()
        );
        assert!(StartLine::parse(b"OPTIONS sip:x@y sip/2.0").is_ok());
    }

    #[test]
    fn responses() {
        assert_eq!(
            StartLine::parse(b"SIP/2.0 180 Ringing"),
            Ok(StartLine::Response {
                code: 180,
                reason: b"Ringing"
            })
        );
        assert_eq!(
            StartLine::parse(b"SIP/2.0 100 "),
            Ok(StartLine::Response {
                code: 100,
                reason: b""
            })
        );
        assert!(StartLine::parse(b"SIP/2.0 200").is_ok());
    }

    #[test]
    fn sip_slash_word_compare() {
        let every_byte: Vec<u8> = (0..=255).collect();
        for v in crate::one_byte_variants(b"SIP/2.0 200 OK", &every_byte) {
            assert_eq!(
                starts_with_sip_slash(&v),
                v.get(..4).is_some_and(|h| h.eq_ignore_ascii_case(b"SIP/")),
                "{v:?}"
            );
        }
        assert!(!starts_with_sip_slash(b"SIP"));
    }

    #[test]
    fn version_word_compare() {
        let every_byte: Vec<u8> = (0..=255).collect();
        for v in crate::one_byte_variants(b"SIP/2.0", &every_byte) {
            assert_eq!(is_version(&v), v.eq_ignore_ascii_case(VERSION), "{v:?}");
        }
        assert!(is_version(b"sIp/2.0"));
        assert!(!is_version(b"SIP/2.0 "));
        assert!(!is_version(b"SIP/2."));
    }

    #[test]
    fn sp_version_word_compare() {
        let every_byte: Vec<u8> = (0..=255).collect();
        for v in crate::one_byte_variants(b" SIP/2.0", &every_byte) {
            if let Some(w) = v.first_chunk::<8>().filter(|_| v.len() == 8) {
                assert_eq!(
                    is_sp_version(w),
                    v.eq_ignore_ascii_case(b" SIP/2.0"),
                    "{v:?}"
                );
            }
        }
        assert!(is_sp_version(b" sIp/2.0"));
    }

    #[test]
    fn common_methods() {
        for (line, end) in [
            (&b"INVITE sip:a SIP/2.0"[..], Some(6)),
            (b"CANCEL sip:a SIP/2.0", Some(6)),
            (b"ACK sip:a SIP/2.0", Some(3)),
            (b"BYE sip:a SIP/2.0", Some(3)),
            (b"OPTIONS sip:a SIP/2.0", Some(7)),
            (b"invite sip:a SIP/2.0", None),
            (b"INVITES sip:a SIP/2.0", None),
            (b"ACKS sip:a SIP/2.0", None),
            (b"BYE", None),
            (b"REGISTER sip:a SIP/2.0", None),
        ] {
            assert_eq!(common_method_end(line), end, "{line:?}");
            if let Some(end) = end {
                assert_eq!(token_end(line, 0), end);
            }
        }
    }

    /// The chunked URI-character check agrees with the byte table at every length.
    #[test]
    fn all_uri_chars_agrees_with_table() {
        let every_byte: Vec<u8> = (0..=255).collect();
        let sample = b"sip:+15551234567@carrier.example.com;transport=udp";
        for v in crate::one_byte_variants(sample, &every_byte) {
            assert_eq!(
                all_uri_chars(&v),
                v.iter().all(|&b| crate::scan::is_uri_char(b)),
                "{v:?}"
            );
        }
    }

    /// The one-pass request-line check never disagrees with the general one.
    #[test]
    fn plain_agrees_with_general() {
        let samples: [&[u8]; 11] = [
            b"INVITE sip:+15551234567@carrier.example.com SIP/2.0",
            b"OPTIONS tel:+1-555;x=y sip/2.0",
            b"!interesting-Method0123456789_*+`.%indeed'~ sip:x@y SIP/2.0",
            b"ACK sip:a SIP/2.0",
            b"X s:a SIP/2.0",
            b"REGISTER sips:registrar.example.com;transport=tcp?x=%20y SIP/2.0",
            b"BYE sip:bob@192.0.2.4 SIP/2.0 SIP/2.0",
            b"A sip: SIP/2.0",
            b"BYE sip:bob@192.0.2.4 SIP/2.0",
            b"CANCEL sip:bob@192.0.2.4 SIP/2.0",
            b"OPTIONS sip:192.0.2.4 SIP/2.0",
        ];
        let bytes = b" \t\r\n;:=,\"[]<>/.0aZ9-_~!%\\^{|}\x00\x7f\xff";
        crate::assert_fast_path_agrees(&samples, bytes, |v| {
            StartLine::parse_plain_request(v)
                .is_none_or(|plain| Ok(plain) == StartLine::parse_request(v))
        });
    }

    #[test]
    fn malformed() {
        let table: [(&[u8], ParseError); 12] = [
            (b"", ParseError::StartLine),
            (b"INVITE", ParseError::StartLine),
            (b"INVITE  sip:x@y  SIP/2.0", ParseError::StartLine),
            (b"INVITE sip:x@y SIP/2.0  ", ParseError::StartLine),
            (b"INVITE sip:x@y; lr SIP/2.0", ParseError::StartLine),
            (b"INVITE <sip:x@y> SIP/2.0", ParseError::RequestUri),
            (b"INVITE sip:x@y SIP/7.0", ParseError::Version),
            (b"IN(VITE sip:x@y SIP/2.0", ParseError::Method),
            (b"SIP/7.0 200 OK", ParseError::Version),
            (
                b"SIP/2.0 4294967301 better not break the receiver",
                ParseError::StatusCode,
            ),
            (b"SIP/2.0 099 Low", ParseError::StatusCode),
            (b"SIP/2.0  200 OK", ParseError::StatusCode),
        ];
        for (line, err) in table {
            assert_eq!(
                StartLine::parse(line),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

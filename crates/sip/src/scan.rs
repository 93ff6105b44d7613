//! Byte-level scanning shared by every SIP field parser: character classes from the
//! RFC 3261 grammar (§25.1), whitespace skipping and bounded integer parsing.
//!
//! Inside a header value, a line fold (CRLF followed by SP/HTAB) counts as white space,
//! so the field parsers treat CR and LF like SP: the message parser has already
//! checked that every line break inside a value is a fold.

/// Character class bits, one table lookup per byte.
const TOKEN: u8 = 1;
const WS: u8 = 2;
const URI: u8 = 4;
const HOST: u8 = 8;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mut bits = 0u8;
        // token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            bits |= TOKEN;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            bits |= WS;
        }
        // Any visible ASCII character that may appear unescaped in a URI (RFC 3986 / RFC
        // 3261 §25.1 reserved, unreserved and "%" for escapes). Excludes SP, '"', '<', '>',
        // '\\', '^', '{', '|', '}' and controls.
        if c > 0x20
            && c < 0x7f
            && !matches!(c, b'"' | b'<' | b'>' | b'\\' | b'^' | b'{' | b'|' | b'}')
        {
            bits |= URI;
        }
        if alnum || matches!(c, b'-' | b'.') {
            bits |= HOST;
        }
        t[b] = bits;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

/// `token` character (RFC 3261 §25.1).
#[inline]
pub fn is_token(b: u8) -> bool {
    CLASS[b as usize] & TOKEN != 0
}

/// Linear white space inside a value: SP, HTAB, and the CR/LF of a line fold.
#[inline]
pub fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

/// A character allowed in a URI without escaping.
#[inline]
pub fn is_uri_char(b: u8) -> bool {
    CLASS[b as usize] & URI != 0
}

/// A character of a host name or IPv4 address.
#[inline]
pub fn is_host_char(b: u8) -> bool {
    CLASS[b as usize] & HOST != 0
}

/// Index of the first byte at or after `i` that is not white space.
#[inline]
pub fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

/// Index just past the token starting at `i` (equal to `i` if there is none).
#[inline]
pub fn token_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_token(s[i]) {
        i += 1;
    }
    i
}

/// `s` without leading and trailing white space.
#[inline]
pub fn trim(s: &[u8]) -> &[u8] {
    let start = skip_ws(s, 0);
    let mut end = s.len();
    while end > start && is_ws(s[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// True if `s` is a non-empty run of token characters.
#[inline]
pub fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Parses a non-empty run of ASCII digits no larger than `max`.
/// Leading zeros are accepted; anything else (sign, overflow, other bytes) is `None`.
#[inline]
pub fn parse_decimal(s: &[u8], max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s.len() <= 9 {
        // No overflow possible: one multiply-add per digit.
        let mut v: u64 = 0;
        for &b in s {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return (v <= max).then_some(v);
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// End index of a quoted string starting at `s[i] == '"'`: the index just past the
/// closing quote. Backslash escapes one byte (`quoted-pair`). `None` when unterminated.
#[inline]
pub fn quoted_string_end(s: &[u8], i: usize) -> Option<usize> {
    debug_assert_eq!(s.get(i), Some(&b'"'));
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    None
}

/// `a == b`, compared inline for the short strings a method or a token usually is (two
/// overlapping words up to 16 bytes) instead of through `memcmp`.
#[inline(always)]
pub fn eq_short(a: &[u8], b: &[u8]) -> bool {
    fn ends<const W: usize>(s: &[u8]) -> (Option<&[u8; W]>, Option<&[u8; W]>) {
        (s.first_chunk(), s.last_chunk())
    }
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        8..=16 => ends::<8>(a) == ends::<8>(b),
        4..=7 => ends::<4>(a) == ends::<4>(b),
        _ => a == b,
    }
}

/// Offset of `part` inside `whole`. `part` must be a sub-slice of `whole`.
#[inline]
pub fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    let offset = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(offset + part.len() <= whole.len(), "not a sub-slice");
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_class_matches_rfc3261() {
        for b in b"azAZ09-.!%*_+`'~" {
            assert!(is_token(*b), "{}", *b as char);
        }
        for b in b" \t\r\n\",;:<>@()[]{}/?=\\" {
            assert!(!is_token(*b), "{}", *b as char);
        }
    }

    #[test]
    fn decimal_bounds() {
        assert_eq!(parse_decimal(b"0", 255), Some(0));
        assert_eq!(parse_decimal(b"255", 255), Some(255));
        assert_eq!(parse_decimal(b"256", 255), None);
        assert_eq!(parse_decimal(b"007", 255), Some(7));
        assert_eq!(parse_decimal(b"", 255), None);
        assert_eq!(parse_decimal(b"-1", 255), None);
        assert_eq!(parse_decimal(b"1a", 255), None);
        assert_eq!(parse_decimal(b"36893488147419103232", u64::MAX), None);
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_string_end(br#""abc" x"#, 0), Some(5));
        assert_eq!(quoted_string_end(br#""a\"b" x"#, 0), Some(6));
        assert_eq!(quoted_string_end(br#""abc"#, 0), None);
        assert_eq!(quoted_string_end(b"\"ab\\", 0), None);
    }

    #[test]
    fn eq_short_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..24u8).map(|i| b'A' + i).collect();
        for len in 0..=24 {
            let a = &base[..len];
            assert!(eq_short(a, a));
            for pos in 0..len {
                let mut b = a.to_vec();
                b[pos] ^= 0x20;
                assert!(!eq_short(a, &b), "len {len} pos {pos}");
            }
            assert!(!eq_short(a, &base[..len.saturating_sub(1)]) || len == 0);
        }
    }

    #[test]
    fn trims_folds() {
        assert_eq!(trim(b" \r\n\tab c \r\n "), b"ab c");
        assert_eq!(trim(b"   "), b"");
    }
}

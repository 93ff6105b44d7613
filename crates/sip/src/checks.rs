//! Grammar checks for headers sipshard does not act on but must not pass when malformed
//! (RFC 4475 §3.1.2: Date with a zone other than GMT, overlarge Retry-After, 4-digit
//! Warning codes), and the scalar single-value headers it does act on.

use super::classes::all_visible;
use super::params::CommaValues;
use super::scan::{parse_decimal, skip_ws, token_end, trim};

/// Largest CSeq sequence number (§8.1.1.5: below 2**31).
pub const CSEQ_MAX: u64 = (1 << 31) - 1;

/// `Date: rfc1123-date` (§20.17): `Sun, 06 Nov 1994 08:49:37 GMT`, GMT only.
pub fn date_ok(v: &[u8]) -> bool {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    v.len() == 29
        && DAYS.contains(&&v[0..3])
        && &v[3..5] == b", "
        && digits(&v[5..7])
        && v[7] == b' '
        && MONTHS.contains(&&v[8..11])
        && v[11] == b' '
        && digits(&v[12..16])
        && v[16] == b' '
        && digits(&v[17..19])
        && v[19] == b':'
        && digits(&v[20..22])
        && v[22] == b':'
        && digits(&v[23..25])
        && &v[25..] == b" GMT"
}

/// `Retry-After: delta-seconds [comment] *(;param)` (§20.33), the delta within 32 bits.
pub fn retry_after_ok(v: &[u8]) -> bool {
    let digits_end = v
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(v.len());
    parse_decimal(&v[..digits_end], u64::from(u32::MAX)).is_some()
}

/// `Warning: 3DIGIT SP agent SP text` for every comma-separated value (§20.43).
pub fn warning_ok(v: &[u8]) -> bool {
    CommaValues::new(v)
        .all(|w| w.len() > 4 && w[..3].iter().all(u8::is_ascii_digit) && w[3] == b' ')
}

/// `CSeq: 1*DIGIT LWS Method` (§20.16) → (number, method).
#[inline]
pub fn parse_cseq(v: &[u8]) -> Option<(u32, &[u8])> {
    // The digits, accumulated as they are found; up to 10 fit in a u64 without overflow
    // (longer runs, as with leading zeros, go through `parse_decimal`).
    let mut digits_end = 0;
    let mut value = 0u64;
    while let Some(d) = v
        .get(digits_end)
        .map(|b| b.wrapping_sub(b'0'))
        .filter(|&d| d < 10)
    {
        value = value * 10 + u64::from(d);
        digits_end += 1;
        if digits_end > 10 {
            digits_end += v[digits_end..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(v.len() - digits_end);
            value = parse_decimal(&v[..digits_end], CSEQ_MAX)?;
            break;
        }
    }
    if digits_end == 0 || value > CSEQ_MAX {
        return None;
    }
    cseq_method(v, digits_end, value as u32)
}

/// The rest of a CSeq value whose number ends at `digits_end`: LWS, then a method token that
/// ends the value.
fn cseq_method(v: &[u8], digits_end: usize, number: u32) -> Option<(u32, &[u8])> {
    let method_start = skip_ws(v, digits_end);
    if method_start == digits_end {
        return None;
    }
    let method_end = token_end(v, method_start);
    (method_end > method_start && method_end == v.len())
        .then(|| (number, &v[method_start..method_end]))
}

/// `Call-ID: word ["@" word]` (§20.8): non-empty, visible ASCII, no white space.
#[inline]
pub fn call_id_ok(v: &[u8]) -> bool {
    !v.is_empty() && all_visible(v)
}

/// `Max-Forwards: 1*DIGIT` in 0..=255 (§20.22).
#[inline]
pub fn parse_max_forwards(v: &[u8]) -> Option<u8> {
    decimal_trimmed(v, 255).map(|n| n as u8)
}

/// `Content-Length: 1*DIGIT` (§20.14), bounded by the largest datagram.
#[inline]
pub fn parse_content_length(v: &[u8]) -> Option<u32> {
    decimal_trimmed(v, u64::from(u32::MAX)).map(|n| n as u32)
}

/// `parse_decimal(trim(v), max)`, without the trim when `v` is digits only (as a parsed
/// header value is): a value with surrounding white space fails the first try.
#[inline]
fn decimal_trimmed(v: &[u8], max: u64) -> Option<u64> {
    parse_decimal(v, max).or_else(|| parse_decimal(trim(v), max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(date_ok(b"Sat, 13 Nov 2010 23:29:00 GMT"));
        assert!(!date_ok(b"Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!date_ok(b"Fri, 1 Jan 2010 16:00:00 GMT"));
        assert!(!date_ok(b""));
    }

    /// The accumulating digit loop of `parse_cseq` agrees with the plain definition.
    #[test]
    fn cseq_agrees_with_definition() {
        fn reference(v: &[u8]) -> Option<(u32, &[u8])> {
            let digits_end = v
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(v.len());
            let number = parse_decimal(&v[..digits_end], CSEQ_MAX)? as u32;
            cseq_method(v, digits_end, number)
        }
        let samples: [&[u8]; 6] = [
            b"1 INVITE",
            b"2147483647 ACK",
            b"0000000000000000009 BYE",
            b"99999999999 X",
            b"4294967296 REGISTER",
            b"12345678901234567890123 A",
        ];
        for sample in samples {
            for v in crate::one_byte_variants(sample, b" \t\r\n09aZ-!") {
                assert_eq!(
                    parse_cseq(&v),
                    reference(&v),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
    }

    #[test]
    fn scalars() {
        assert!(retry_after_ok(b"120"));
        assert!(retry_after_ok(b"120 (in a meeting);duration=60"));
        assert!(!retry_after_ok(b"949302838503028349304023988"));
        assert!(!retry_after_ok(b"soon"));
        assert!(warning_ok(b"301 isi.edu \"Incompatible\", 399 x \"y\""));
        assert!(!warning_ok(b"1812 overture \"In Progress\""));
        assert_eq!(parse_cseq(b"0009\r\n  INVITE"), Some((9, &b"INVITE"[..])));
        assert_eq!(
            parse_cseq(b"2147483647 ACK"),
            Some((2147483647, &b"ACK"[..]))
        );
        assert_eq!(parse_cseq(b"2147483648 ACK"), None);
        assert_eq!(parse_cseq(b"36893488147419103232 INVITE"), None);
        assert_eq!(parse_cseq(b"1INVITE"), None);
        assert_eq!(parse_cseq(b"1 INVITE x"), None);
        assert_eq!(parse_cseq(b"INVITE"), None);
        assert_eq!(parse_max_forwards(b"0068"), Some(68));
        assert_eq!(parse_max_forwards(b"300"), None);
        assert_eq!(parse_content_length(b"-999"), None);
        assert!(call_id_ok(b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"));
        assert!(!call_id_ok(b"a b"));
    }
}

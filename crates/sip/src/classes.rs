//! Runs of one character class (RFC 3261 §25.1), checked 16 bytes at a time with SSE2 on
//! x86_64 (a table lookup per byte elsewhere): the end of a header name (`token`) or a host
//! name, and whether a Call-ID or a Request-URI holds only its allowed characters.

#![allow(unsafe_code)]

use super::scan::{is_host_char, is_token, is_uri_char};

/// Bit i set where `chunk[i] == b`.
#[inline(always)]
pub fn eq_mask16(chunk: &[u8; 16], b: u8) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        movemask(eq(load16(chunk), b))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk
            .iter()
            .enumerate()
            .fold(0, |m, (i, &c)| m | (u32::from(c == b) << i))
    }
}

#[cfg(target_arch = "x86_64")]
use super::find::load16;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_add_epi8, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_movemask_epi8,
    _mm_or_si128, _mm_set1_epi8,
};

/// Bytes in `lo..lo + n` (n < 128): shifted so the range starts at -128, then one signed
/// comparison.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn in_range(v: __m128i, lo: u8, n: u8) -> __m128i {
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    unsafe {
        let shifted = _mm_add_epi8(v, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
        _mm_cmplt_epi8(shifted, _mm_set1_epi8(0x80u8.wrapping_add(n) as i8))
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn eq(v: __m128i, b: u8) -> __m128i {
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn or(a: __m128i, b: __m128i) -> __m128i {
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_or_si128(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn movemask(v: __m128i) -> u32 {
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_movemask_epi8(v) as u32 }
}

/// Index of the first byte at or after `pos` for which `in_class` is false, or `s.len()`:
/// 16 bytes at a time through `mask16`, the rest one by one.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn run_end(
    s: &[u8],
    pos: usize,
    mask16: impl Fn(&[u8; 16]) -> u32,
    in_class: impl Fn(u8) -> bool,
) -> usize {
    let mut i = pos;
    while let Some(chunk) = s.get(i..).and_then(|r| r.first_chunk::<16>()) {
        let others = !mask16(chunk) & 0xffff;
        if others != 0 {
            return i + others.trailing_zeros() as usize;
        }
        i += 16;
    }
    scalar_run_end(s, i, in_class)
}

/// Index of the first byte at or after `pos` for which `in_class` is false, or `s.len()`
/// (`pos` itself if it is past the end), one byte at a time.
#[inline(always)]
fn scalar_run_end(s: &[u8], pos: usize, in_class: impl Fn(u8) -> bool) -> usize {
    let mut i = pos;
    while i < s.len() && in_class(s[i]) {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `pos` that is not a token character, or `s.len()`
/// (`pos` itself if it is past the end).
///
/// Most tokens (header and parameter names, branch IDs, transports, methods) are letters,
/// digits, `-` and `.`: the host-name class, tested in a third of the token class's
/// operations. The full class is run only where that run stops at another token character.
#[inline(always)]
pub fn token_end(s: &[u8], pos: usize) -> usize {
    let end = host_end(s, pos);
    if s.get(end).is_some_and(|&b| is_token(b)) {
        full_token_end(s, end)
    } else {
        end
    }
}

/// [`token_end`] through the whole token class; out of line, so that its class constants
/// are not loaded where the host-name run suffices.
#[inline(never)]
fn full_token_end(s: &[u8], pos: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        run_end(s, pos, token_mask16, is_token)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scalar_run_end(s, pos, is_token)
    }
}

/// End of the run of host-name characters (letters, digits, `-`, `.`) starting at `pos`:
/// a host name or an IPv4 address.
#[inline]
pub fn host_end(s: &[u8], pos: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        run_end(s, pos, host_char_mask16, is_host_char)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scalar_run_end(s, pos, is_host_char)
    }
}

/// Bit i set where `chunk[i]` is a host-name character (letter, digit, `-`, `.`): the
/// class of [`host_end`], and for a caller that holds a 16-byte window already.
#[inline(always)]
pub fn host_char_mask16(chunk: &[u8; 16]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let v = load16(chunk);
        // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
        let lower = or(v, unsafe { _mm_set1_epi8(0x20) });
        let letters = in_range(lower, b'a', 26);
        let digits = in_range(v, b'0', 10);
        let dash_dot = in_range(v, b'-', 2);
        movemask(or(letters, or(digits, dash_dot)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        chunk
            .iter()
            .enumerate()
            .fold(0, |m, (i, &b)| m | (u32::from(is_host_char(b)) << i))
    }
}

/// True if `in_class` holds for every byte of `s`. From 16 bytes on, whole 16-byte chunks
/// through `mask16` and then the last 16 bytes (overlapping the chunks), so no byte is
/// checked singly; shorter slices byte by byte, without an early exit.
#[cfg(target_arch = "x86_64")]
#[inline]
fn all_in_class(
    s: &[u8],
    mask16: impl Fn(&[u8; 16]) -> u32,
    in_class: impl Fn(u8) -> bool,
) -> bool {
    if let Some(last) = s.last_chunk::<16>() {
        let mut all = mask16(last);
        let mut rest = s;
        while let Some((chunk, tail)) = rest.split_first_chunk::<16>() {
            all &= mask16(chunk);
            rest = tail;
        }
        return all == 0xffff;
    }
    s.iter().fold(true, |ok, &b| ok & in_class(b))
}

/// True if every byte of `s` is visible ASCII (`VCHAR`, 0x21..=0x7e), as a Call-ID is
/// written.
#[inline]
pub fn all_visible(s: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        all_in_class(s, visible_mask16, is_visible)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        s.iter().all(|&b| is_visible(b))
    }
}

#[inline(always)]
fn is_visible(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn visible_mask16(chunk: &[u8; 16]) -> u32 {
    movemask(in_range(load16(chunk), 0x21, 0x7f - 0x21))
}

/// Bit i set where `chunk[i]` is a token character: alphanumeric or one of
/// `-.!%*_+` `` ` `` `'~`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn token_mask16(chunk: &[u8; 16]) -> u32 {
    let v = load16(chunk);
    // `v | 0x20` folds upper case onto lower case.
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    let lower = or(v, unsafe { _mm_set1_epi8(0x20) });
    let letters = in_range(lower, b'a', 26);
    let digits = in_range(v, b'0', 10);
    let star_plus = in_range(v, b'*', 2);
    let dash_dot = in_range(v, b'-', 2);
    let underscore_backtick = in_range(v, b'_', 2);
    let others = or(or(eq(v, b'!'), eq(v, b'%')), or(eq(v, b'\''), eq(v, b'~')));
    movemask(or(
        or(letters, digits),
        or(or(star_plus, dash_dot), or(underscore_backtick, others)),
    ))
}

/// Bit i set where `chunk[i]` is a URI character: visible ASCII except
/// `"` `<` `>` `\` `^` `{` `|` `}`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn uri_mask16(chunk: &[u8; 16]) -> u32 {
    let v = load16(chunk);
    let visible = in_range(v, 0x21, 0x7f - 0x21);
    // `b | 2` is `>` only for `<` and `>`, and `^` only for `\` and `^`; `{ | }` are a range.
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    let folded = or(v, unsafe { _mm_set1_epi8(2) });
    let excluded = or(
        or(eq(v, b'"'), in_range(v, b'{', 3)),
        or(eq(folded, b'>'), eq(folded, b'^')),
    );
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    movemask(unsafe { _mm_andnot_si128(excluded, visible) })
}

/// True if every byte of `s` may appear unescaped in a URI ([`is_uri_char`]).
#[inline]
pub fn all_uri_chars(s: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        all_in_class(s, uri_mask16, is_uri_char)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        s.iter().all(|&b| is_uri_char(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_run(end: impl Fn(&[u8], usize) -> usize, class: impl Fn(u8) -> bool) {
        for b in 0..=255u8 {
            for pos in [0, 3, 15, 16, 17, 30] {
                let mut s = vec![b'a'; 40];
                s[pos] = b;
                let expected = if class(b) { 40 } else { pos };
                assert_eq!(end(&s, 0), expected, "byte {b} at {pos}");
                assert_eq!(end(&s, pos.min(2)), expected);
                assert_eq!(end(&s[..pos + 1], 0), if class(b) { pos + 1 } else { pos });
            }
        }
        assert_eq!(end(b"abc", 3), 3);
        assert_eq!(end(b"abc", 9), 9);
    }

    #[test]
    fn token_runs() {
        check_run(token_end, is_token);
        assert_eq!(token_end(b"Via: x", 0), 3);
    }

    /// Runs that leave the host-name class for other token characters and come back, from
    /// several starts, with every byte at every position: as the byte-at-a-time definition.
    #[test]
    fn token_runs_across_classes() {
        let every_byte: Vec<u8> = (0..=255).collect();
        let sample = b"SIP/2.0/UDP h;branch=z9hG4bK.a-b_c!d;rport";
        for v in crate::one_byte_variants(sample, &every_byte) {
            for start in [0, 14, 21, 30, 36, v.len()] {
                let expected = crate::scan::token_end(&v, start);
                assert_eq!(token_end(&v, start), expected, "{v:?} {start}");
            }
        }
    }

    #[test]
    fn byte_masks() {
        let chunk = *b"Via: a:b\r\n:xyz:::";
        let m = eq_mask16(chunk.first_chunk::<16>().unwrap(), b':');
        assert_eq!(m, 1 << 3 | 1 << 6 | 1 << 10 | 1 << 14 | 1 << 15);
    }

    #[test]
    fn host_runs() {
        check_run(host_end, is_host_char);
        assert_eq!(host_end(b"192.0.2.1:5060", 0), 9);
    }

    #[test]
    fn visible_bytes() {
        for b in 0..=255u8 {
            for len in [1, 5, 15, 16, 17, 31, 32, 33, 40] {
                for pos in [0, len / 2, len - 1] {
                    let mut s = vec![b'a'; len];
                    s[pos] = b;
                    assert_eq!(all_visible(&s), is_visible(b), "byte {b} at {pos} of {len}");
                }
            }
        }
        assert!(all_visible(b""));
    }
}

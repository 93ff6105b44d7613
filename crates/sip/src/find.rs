//! Byte search tuned for header lines (~40 bytes): SSE2, 16 bytes per step, inlined.
//!
//! Measured on the reference INVITE (benches/wire.rs, 2026-11-21): splitting lines and
//! names with `memchr` costs 182 ns, with this 82 ns: at these lengths memchr's dispatch
//! and setup cost more than the search. Elsewhere than x86_64 it falls back to memchr.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
};

/// Loads 16 bytes into an SSE2 register (shared by the sip layer's SIMD scans).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn load16(chunk: &[u8; 16]) -> __m128i {
    // SAFETY: the pointer covers exactly the 16 readable bytes of `chunk`; unaligned loads
    // are what `loadu` is for; SSE2 is part of the x86_64 baseline.
    unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) }
}

/// Bit i set where byte i of `v` equals a byte of `pats`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mask(v: __m128i, pats: &[__m128i]) -> u32 {
    // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
    unsafe {
        let mut hits = _mm_cmpeq_epi8(v, pats[0]);
        for p in &pats[1..] {
            hits = _mm_or_si128(hits, _mm_cmpeq_epi8(v, *p));
        }
        _mm_movemask_epi8(hits) as u32
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn find_any(s: &[u8], from: usize, bytes: &[u8]) -> Option<usize> {
    let mut pats = [load16(&[0; 16]); 3];
    for (p, &b) in pats.iter_mut().zip(bytes) {
        // SAFETY: SSE2 is part of the x86_64 baseline.
        *p = unsafe { _mm_set1_epi8(b as i8) };
    }
    let pats = &pats[..bytes.len()];
    let mut i = from;
    while let Some(chunk) = s.get(i..i + 16) {
        let m = mask(load16(chunk.try_into().ok()?), pats);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    s.get(i..)?
        .iter()
        .position(|b| bytes.contains(b))
        .map(|p| p + i)
}

/// Index of the first `byte` in `s` at or after `from`.
#[inline(always)]
pub fn find(s: &[u8], from: usize, byte: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        find_any(s, from, &[byte])
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr(byte, s.get(from..)?).map(|p| p + from)
    }
}

/// Index of the first of `a`, `b`, `c` in `s` at or after `from`.
#[inline(always)]
pub fn find3(s: &[u8], from: usize, a: u8, b: u8, c: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        find_any(s, from, &[a, b, c])
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr3(a, b, c, s.get(from..)?).map(|p| p + from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_plain_search() {
        let text: Vec<u8> = (0..200u32)
            .map(|i| b"abc:\r\n,\"<xyz"[(i * 7 % 12) as usize])
            .collect();
        for from in 0..=text.len() {
            for len in [0, 1, 15, 16, 17, 40, 200] {
                let s = &text[..len.min(text.len())];
                let plain = |set: &[u8]| {
                    s.get(from..)
                        .and_then(|t| t.iter().position(|b| set.contains(b)))
                        .map(|p| p + from)
                };
                assert_eq!(find(s, from, b'\n'), plain(b"\n"));
                assert_eq!(find(s, from, b':'), plain(b":"));
                assert_eq!(find3(s, from, b',', b'"', b'<'), plain(b",\"<"));
            }
        }
        assert_eq!(find(b"abc", 9, b'a'), None);
    }
}

//! Where the lines of a datagram end, found 64 bytes at a time (SSE2 on x86_64, a portable
//! version elsewhere).
//!
//! [`LineEnds`] keeps a bitmap of the LF positions in a 64-byte window not returned yet,
//! so the next line end costs a trailing-zero count and a bit clear, not a search: a
//! typical header line (~40 bytes) shares its window with the next one.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use super::find::load16;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8};

/// Width of the window of [`LineEnds`].
const WINDOW: usize = 64;

/// The LF positions of a datagram, one 64-byte window at a time.
#[derive(Clone, Debug)]
pub struct LineEnds<'a> {
    buf: &'a [u8],
    /// Start of the current window.
    base: usize,
    /// Bit i set where `buf[base + i]` is an LF not returned yet.
    mask: u64,
}

impl<'a> LineEnds<'a> {
    /// Line ends of `buf` from `pos` on (the iterator's first item is the first LF at or
    /// after `pos`); scans the window there.
    #[inline(always)]
    pub fn starting_at(buf: &'a [u8], pos: usize) -> Self {
        let mut ends = LineEnds {
            buf,
            base: 0,
            mask: 0,
        };
        ends.load(pos);
        ends
    }

    #[inline(always)]
    fn load(&mut self, at: usize) {
        self.base = at;
        self.mask = match self.buf.get(at..) {
            Some(rest) => lf_mask(rest),
            None => 0,
        };
    }
}

impl Iterator for LineEnds<'_> {
    type Item = usize;

    /// Index of the LF after the one returned last: the window's lowest LF bit, cleared as it is returned, so consecutive lines cost a
    /// trailing-zero count and a bit clear each.
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            let next = self.base + WINDOW;
            if next >= self.buf.len() {
                return None;
            }
            self.load(next);
        }
        let lf = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(lf)
    }
}

/// Bit i set where `s[i] == b'\n'`, for the first 64 bytes of `s`.
#[inline]
fn lf_mask(s: &[u8]) -> u64 {
    match s.first_chunk::<WINDOW>() {
        Some(window) => lf_mask64(window),
        None => {
            // The datagram's last bytes: NUL never matches.
            let mut window = [0u8; WINDOW];
            window[..s.len()].copy_from_slice(s);
            lf_mask64(&window)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lf_mask64(window: &[u8; WINDOW]) -> u64 {
    let (chunks, _) = window.as_chunks::<16>();
    let mut mask = 0u64;
    for (k, chunk) in chunks.iter().enumerate() {
        // SAFETY: SSE2 register operations only; SSE2 is part of the x86_64 baseline.
        let bits =
            unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(load16(chunk), _mm_set1_epi8(b'\n' as i8))) };
        mask |= u64::from(bits as u16) << (16 * k);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn lf_mask64(window: &[u8; WINDOW]) -> u64 {
    window
        .iter()
        .enumerate()
        .fold(0u64, |m, (i, &b)| m | (u64::from(b == b'\n') << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_agree_with_a_plain_search() {
        let text: Vec<u8> = (0..300u32)
            .map(|i| b"ab\ncd:\r\n efgh\n\n"[(i * 7 % 15) as usize])
            .collect();
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 300] {
            let s = &text[..len];
            let plain = |from: usize| {
                s.get(from..)
                    .and_then(|t| t.iter().position(|&b| b == b'\n'))
                    .map(|p| p + from)
            };
            // From every start, the first LF and then line after line, as the parser
            // takes them.
            for from in 0..=len + 2 {
                let mut ends = LineEnds::starting_at(s, from);
                let mut expected = plain(from);
                let mut got = ends.next();
                while let Some(lf) = expected {
                    assert_eq!(got, Some(lf), "len {len} from {from}");
                    expected = plain(lf + 1);
                    got = ends.next();
                }
                assert_eq!(got, None, "len {len} from {from}");
            }
        }
    }
}

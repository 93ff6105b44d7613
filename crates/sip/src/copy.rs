//! Short copies without a call into the C library: the start-line move and the Via text of
//! every forwarded request are 8 to 64 bytes, for which two overlapping fixed-size copies
//! (both loads before both stores) beat `memmove`'s call and size dispatch.

use std::ops::Range;

/// `buf.copy_within(src, dst)`, overlap allowed.
#[inline(always)]
pub(crate) fn move_within(buf: &mut [u8], src: Range<usize>, dst: usize) {
    let n = src.len();
    let fits = src.end <= buf.len() && dst.checked_add(n).is_some_and(|e| e <= buf.len());
    match n {
        32..=64 if fits => move_two::<32>(buf, src.start, dst, n),
        16..=31 if fits => move_two::<16>(buf, src.start, dst, n),
        8..=15 if fits => move_two::<8>(buf, src.start, dst, n),
        _ => buf.copy_within(src, dst),
    }
}

/// `dst.copy_from_slice(src)` (equal lengths).
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        32..=64 if dst.len() == n => copy_two::<32>(dst, src),
        16..=31 if dst.len() == n => copy_two::<16>(dst, src),
        8..=15 if dst.len() == n => copy_two::<8>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Moves `n` bytes (`W <= n <= 2W`, both ranges inside `buf`) from `src` to `dst` as the
/// first and the last `W` bytes, both read before either is written.
#[inline(always)]
fn move_two<const W: usize>(buf: &mut [u8], src: usize, dst: usize, n: usize) {
    let head = chunk::<W>(buf, src);
    let tail = chunk::<W>(buf, src + n - W);
    buf[dst..dst + W].copy_from_slice(&head);
    buf[dst + n - W..dst + n].copy_from_slice(&tail);
}

/// [`move_two`] between two slices of length `n`.
#[inline(always)]
fn copy_two<const W: usize>(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    let (head, tail) = (chunk::<W>(src, 0), chunk::<W>(src, n - W));
    dst[..W].copy_from_slice(&head);
    dst[n - W..].copy_from_slice(&tail);
}

#[inline(always)]
fn chunk<const W: usize>(s: &[u8], at: usize) -> [u8; W] {
    let mut out = [0u8; W];
    out.copy_from_slice(&s[at..at + W]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_agree_with_copy_within() {
        let original: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=80 {
            for src in [0, 1, 50, 100] {
                for dst in [0, 3, 40, 49, 50, 51, 60, 99, 100, 101, 120] {
                    if src + n > original.len() || dst + n > original.len() {
                        continue;
                    }
                    let mut expected = original.clone();
                    expected.copy_within(src..src + n, dst);
                    let mut got = original.clone();
                    move_within(&mut got, src..src + n, dst);
                    assert_eq!(got, expected, "n {n} src {src} dst {dst}");
                }
            }
        }
    }

    #[test]
    fn copies_agree_with_copy_from_slice() {
        let src: Vec<u8> = (0..100u8).collect();
        for n in 0..=80 {
            let mut got = vec![0xAAu8; 100];
            let mut expected = got.clone();
            expected[10..10 + n].copy_from_slice(&src[..n]);
            copy_short(&mut got[10..10 + n], &src[..n]);
            assert_eq!(got, expected, "n {n}");
        }
    }
}

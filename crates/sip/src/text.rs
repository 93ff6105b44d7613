//! Number and address text without `core::fmt` (which costs ~100 ns per call on the
//! packet path): decimal integers and IPv4 dotted quads into fixed buffers.

use arrayvec::ArrayVec;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Appends `v` in decimal. Returns false if it does not fit.
pub fn push_decimal<const N: usize>(out: &mut ArrayVec<u8, N>, v: u32) -> bool {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.try_extend_from_slice(&digits[i..]).is_ok()
}

/// An octet's decimal digits followed by `sep`, as four bytes (only the first
/// `digits + 1` are the text), and that length.
#[inline(always)]
fn octet_text(v: u8, sep: u8) -> ([u8; 4], usize) {
    let (h, t, o) = (v / 100, v / 10 % 10, v % 10);
    let digits = 1 + usize::from(v >= 10) + usize::from(v >= 100);
    let all = [b'0' + h, b'0' + t, b'0' + o, sep];
    let word = u32::from_le_bytes(all) >> (8 * (3 - digits));
    (word.to_le_bytes(), digits + 1)
}

/// Appends `addr` as a URI or a Via sent-by writes it: `IPv4:port` or `[IPv6]:port`.
/// Returns false if it does not fit.
pub fn push_host_port<const N: usize>(out: &mut ArrayVec<u8, N>, addr: SocketAddr) -> bool {
    let host = match addr.ip() {
        IpAddr::V4(_) => push_ip(out, addr.ip()),
        IpAddr::V6(_) => {
            out.try_push(b'[').is_ok() && push_ip(out, addr.ip()) && out.try_push(b']').is_ok()
        }
    };
    host && out.try_push(b':').is_ok() && push_decimal(out, addr.port().into())
}

/// Appends an IP address as `received` and Via sent-by want it: dotted quad, or IPv6 text
/// without brackets. Returns false if it does not fit.
pub fn push_ip<const N: usize>(out: &mut ArrayVec<u8, N>, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            // Each octet as one 4-byte word (digits and the dot after them), the words
            // packed at their lengths: no loop per digit, no division but by constants.
            let mut text = [0u8; 19];
            let mut len = 0;
            for (k, &octet) in v4.octets().iter().enumerate() {
                let (word, n) = octet_text(octet, if k < 3 { b'.' } else { 0 });
                text[len..len + 4].copy_from_slice(&word);
                len += n;
            }
            // The last octet's separator is not part of the text.
            out.try_extend_from_slice(&text[..len - 1]).is_ok()
        }
        // IPv6 text has compression rules; std's formatter is right and rare here.
        IpAddr::V6(v6) => write!(out, "{v6}").is_ok(),
    }
}

/// Writes `v` as lowercase hex into `out`, right-aligned (the last byte is the lowest
/// nibble); `out.len()` digits, higher nibbles beyond them dropped.
pub fn put_hex(out: &mut [u8], mut v: u64) {
    // Whole groups of eight digits a word at a time (the branch's 16 + 8), the rest singly.
    let mut end = out.len();
    while end >= 8 {
        out[end - 8..end].copy_from_slice(&hex8(v as u32));
        v = v.checked_shr(32).unwrap_or(0);
        end -= 8;
    }
    for slot in out[..end].iter_mut().rev() {
        *slot = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// Lowercase hex digits as a number (at most 16 of them); `None` for anything else.
pub(crate) fn read_hex(s: &[u8]) -> Option<u64> {
    if s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(digit))
    })
}

/// `v` as 8 lowercase hex digits, computed in one 64-bit word: the nibbles spread one per
/// byte, then each turned into its digit without a table (`'0' + d`, plus 39 for `a..f`).
#[inline]
fn hex8(v: u32) -> [u8; 8] {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let mut x = u64::from(v);
    x = (x | x << 16) & 0x0000_ffff_0000_ffff;
    x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
    x = (x | x << 4) & LOW_NIBBLES;
    // Byte k now holds nibble k (least significant first); 1 in the bytes of 10..=15.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let digits = x + 0x3030_3030_3030_3030 + letters * 39;
    // The most significant nibble goes first in the text.
    digits.to_be_bytes()
}

/// `v` as 16 lowercase hex digits (a tag or an identifier).
pub fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    put_hex(&mut out, v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_addresses() {
        for v in [0u32, 7, 10, 69, 255, 5060, 65535, u32::MAX] {
            let mut out = ArrayVec::<u8, 16>::new();
            assert!(push_decimal(&mut out, v));
            assert_eq!(&out[..], v.to_string().as_bytes());
        }
        for ip in [
            "0.0.0.0",
            "192.0.2.1",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let mut out = ArrayVec::<u8, 64>::new();
            assert!(push_ip(&mut out, ip.parse().unwrap()));
            assert_eq!(&out[..], ip.as_bytes());
        }
        // Every octet value in every position, against std's formatting.
        for v in 0..=255u8 {
            for ip in [
                [v, 0, 9, 10],
                [99, v, 100, 1],
                [1, 2, v, 255],
                [10, 0, 0, v],
            ] {
                let ip = std::net::Ipv4Addr::from(ip);
                let mut out = ArrayVec::<u8, 15>::new();
                assert!(push_ip(&mut out, ip.into()));
                assert_eq!(&out[..], ip.to_string().as_bytes());
            }
        }
        let mut small = ArrayVec::<u8, 14>::new();
        assert!(!push_ip(&mut small, "255.255.255.255".parse().unwrap()));
        assert!(small.is_empty());
        assert_eq!(&hex16(0xfeed_0000_0000_00a1), b"feed0000000000a1");
        for v in [
            0u64,
            1,
            0x9,
            0xa,
            0xf,
            0x10,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0xa5a5_5a5a,
        ] {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 24] {
                let mut fast = vec![0u8; len];
                put_hex(&mut fast, v);
                let plain: Vec<u8> = (0..len)
                    .map(|i| {
                        let shift = 4 * (len - 1 - i);
                        let nibble = if shift < 64 { (v >> shift) & 0xf } else { 0 };
                        b"0123456789abcdef"[nibble as usize]
                    })
                    .collect();
                assert_eq!(fast, plain, "{v:x} in {len} digits");
            }
        }
        let mut short = [0u8; 4];
        put_hex(&mut short, 0x12345);
        assert_eq!(&short, b"2345");
        let mut tiny = ArrayVec::<u8, 2>::new();
        assert!(!push_decimal(&mut tiny, 123));
    }
}

//! Number and address text without `core::fmt` (which costs ~100 ns per call on the
//! packet path): decimal integers and IPv4 dotted quads into fixed buffers.

use arrayvec::ArrayVec;
use std::io::Write;
use std::net::IpAddr;

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

/// Appends an IP address as `received` and Via sent-by want it: dotted quad, or IPv6 text
/// without brackets. Returns false if it does not fit.
pub fn push_ip<const N: usize>(out: &mut ArrayVec<u8, N>, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            push_decimal(out, a.into())
                && out.try_push(b'.').is_ok()
                && push_decimal(out, b.into())
                && out.try_push(b'.').is_ok()
                && push_decimal(out, c.into())
                && out.try_push(b'.').is_ok()
                && push_decimal(out, d.into())
        }
        // IPv6 text has compression rules; std's formatter is right and rare here.
        IpAddr::V6(v6) => write!(out, "{v6}").is_ok(),
    }
}

/// Writes `v` as lowercase hex into `out`, right-aligned (the last byte is the lowest
/// nibble); `out.len()` digits, higher nibbles beyond them dropped.
pub fn put_hex(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
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
        assert_eq!(&hex16(0xfeed_0000_0000_00a1), b"feed0000000000a1");
        let mut short = [0u8; 4];
        put_hex(&mut short, 0x12345);
        assert_eq!(&short, b"2345");
        let mut tiny = ArrayVec::<u8, 2>::new();
        assert!(!push_decimal(&mut tiny, 123));
    }
}

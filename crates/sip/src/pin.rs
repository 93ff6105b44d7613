//! Backend pins: the value our Record-Route and Path entries carry to name the backend a
//! dialog (or a registration) is pinned to, authenticated with the deployment secret, so
//! that the balancer finds the backend of an in-dialog request without keeping state. A
//! proxy may put what it likes in the URI it record-routes with (RFC 3261 §16.6 step 4);
//! ours carries `;pin=TEXT`.
//!
//! Text: a family digit (`4` or `6`), the backend's address in hex (8 or 32 digits), its
//! port (4 hex digits) and a 32-bit check value (8 hex digits), all lowercase:
//! `4` `0a000014` `13c4` `1f2e3d4c`, 21 or 45 octets, every one a URI parameter character.
//! The check value is SipHash-2-4 under a key of its own, derived from the deployment's
//! secret, over a label and the address, so a branch's check value cannot be replayed as a
//! pin's. Instances that share
//! the secret make and accept the same pins.

use super::branch::BranchKey;
use super::text::{put_hex, read_hex};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The URI parameter of our Record-Route and Path entries that holds the pin.
pub const PIN_PARAM: &[u8] = b"pin";

/// Longest pin text (an IPv6 backend).
pub const PIN_MAX_LEN: usize = 1 + 32 + 4 + 8;

/// Separates the pin MAC's input from the branch check value's.
const PIN_LABEL: u8 = b'P';

/// A pin before it is written out: the backend and its check value (a few words, so a
/// rewrite plan carries it and writes the text straight into the datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The backend's address octets (IPv4 in the first four), kept as bytes so the value
    /// stays small (24 octets) in a rewrite plan.
    address: [u8; 16],
    port: u16,
    v6: bool,
    check: u32,
}

impl Pin {
    fn new(backend: SocketAddr, check: u32) -> Pin {
        let mut address = [0u8; 16];
        let v6 = match backend.ip() {
            IpAddr::V4(ip) => {
                address[..4].copy_from_slice(&ip.octets());
                false
            }
            IpAddr::V6(ip) => {
                address = ip.octets();
                true
            }
        };
        Pin {
            address,
            port: backend.port(),
            v6,
            check,
        }
    }

    /// The backend it names.
    pub fn backend(&self) -> SocketAddr {
        let ip: IpAddr = if self.v6 {
            Ipv6Addr::from(self.address).into()
        } else {
            let [a, b, c, d, ..] = self.address;
            Ipv4Addr::new(a, b, c, d).into()
        };
        SocketAddr::new(ip, self.port)
    }

    /// Length of its text: 21 octets for an IPv4 backend, 45 for IPv6.
    pub fn len(&self) -> usize {
        if !self.v6 {
            1 + 8 + 4 + 8
        } else {
            PIN_MAX_LEN
        }
    }

    /// Never: a pin always has text (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the text into the first [`Pin::len`] octets of `out`, which must have room.
    pub fn write(&self, out: &mut [u8]) {
        let address_digits = match self.backend().ip() {
            IpAddr::V4(ip) => {
                out[0] = b'4';
                put_hex(&mut out[1..9], u64::from(u32::from(ip)));
                8
            }
            IpAddr::V6(ip) => {
                out[0] = b'6';
                let value = u128::from(ip);
                put_hex(&mut out[1..17], (value >> 64) as u64);
                put_hex(&mut out[17..33], value as u64);
                32
            }
        };
        let port_at = 1 + address_digits;
        put_hex(&mut out[port_at..port_at + 4], u64::from(self.port));
        put_hex(&mut out[port_at + 4..port_at + 12], u64::from(self.check));
    }

    /// The text.
    pub fn text(&self) -> PinText {
        let mut bytes = [0u8; PIN_MAX_LEN];
        self.write(&mut bytes);
        PinText {
            bytes,
            len: self.len() as u8,
        }
    }
}

/// A pin's text, ready to go into a URI parameter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PinText {
    bytes: [u8; PIN_MAX_LEN],
    len: u8,
}

impl PinText {
    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for PinText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinText({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Why a pin text names no backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// Not the layout of a pin.
    Malformed,
    /// The layout of a pin, but its check value was not made with this key: forged, or made
    /// by a deployment with another secret.
    Forged,
}

/// The MAC's input: label, family, address octets, port.
fn mac_input(backend: SocketAddr) -> ([u8; 20], usize) {
    let mut input = [0u8; 20];
    input[0] = PIN_LABEL;
    let len = match backend.ip() {
        IpAddr::V4(ip) => {
            input[1] = 4;
            input[2..6].copy_from_slice(&ip.octets());
            6
        }
        IpAddr::V6(ip) => {
            input[1] = 6;
            input[2..18].copy_from_slice(&ip.octets());
            18
        }
    };
    input[len..len + 2].copy_from_slice(&backend.port().to_be_bytes());
    (input, len + 2)
}

/// Up to 32 lowercase hex digits as a number (two halves of at most 16).
fn read_hex_wide(s: &[u8]) -> Option<u128> {
    let split = s.len().saturating_sub(16);
    let (high, low) = s.split_at(split);
    let high = if high.is_empty() { 0 } else { read_hex(high)? };
    Some(u128::from(high) << (4 * low.len()) | u128::from(read_hex(low)?))
}

impl BranchKey {
    /// The pin naming `backend`.
    pub fn pin(&self, backend: SocketAddr) -> Pin {
        let (input, len) = mac_input(backend);
        Pin::new(backend, self.pin_check_value(&input[..len]))
    }

    /// The backend `text` names, if it is a pin made with this key.
    pub fn unpin(&self, text: &[u8]) -> Result<SocketAddr, PinError> {
        let (backend, check) = match text {
            [b'4', rest @ ..] if rest.len() == 8 + 4 + 8 => {
                let ip = read_hex_wide(&rest[..8]).ok_or(PinError::Malformed)? as u32;
                let port = read_hex_wide(&rest[8..12]).ok_or(PinError::Malformed)? as u16;
                let check = read_hex_wide(&rest[12..]).ok_or(PinError::Malformed)?;
                (SocketAddr::new(Ipv4Addr::from(ip).into(), port), check)
            }
            [b'6', rest @ ..] if rest.len() == 32 + 4 + 8 => {
                let ip = read_hex_wide(&rest[..32]).ok_or(PinError::Malformed)?;
                let port = read_hex_wide(&rest[32..36]).ok_or(PinError::Malformed)? as u16;
                let check = read_hex_wide(&rest[36..]).ok_or(PinError::Malformed)?;
                (SocketAddr::new(Ipv6Addr::from(ip).into(), port), check)
            }
            _ => return Err(PinError::Malformed),
        };
        let (input, len) = mac_input(backend);
        if u128::from(self.pin_check_value(&input[..len])) == check {
            Ok(backend)
        } else {
            Err(PinError::Forged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends() -> [SocketAddr; 4] {
        [
            "10.0.0.20:5060".parse().unwrap(),
            "192.0.2.255:1".parse().unwrap(),
            "[2001:db8::1]:5070".parse().unwrap(),
            "[::ffff:10.0.0.1]:65535".parse().unwrap(),
        ]
    }

    #[test]
    fn a_pin_names_its_backend_under_the_same_secret_only() {
        let key = BranchKey::new(b"deployment");
        let same = BranchKey::new(b"deployment");
        let other = BranchKey::new(b"another");
        for backend in backends() {
            let pin = key.pin(backend).text();
            let text = pin.as_bytes();
            assert_eq!(text.len(), if backend.is_ipv4() { 21 } else { 45 });
            assert!(crate::is_token_str(text), "{pin:?}");
            assert_eq!(same.unpin(text), Ok(backend), "{pin:?}");
            assert_eq!(other.unpin(text), Err(PinError::Forged), "{pin:?}");
        }
        // Family, 10.0.0.20, 5060, then the check value.
        let pin = key.pin(backends()[0]);
        assert!(pin.text().as_bytes().starts_with(b"40a00001413c4"));
        assert_eq!(pin.backend(), backends()[0]);
    }

    #[test]
    fn every_one_byte_change_is_refused() {
        let key = BranchKey::new(b"deployment");
        for backend in backends() {
            let pin = key.pin(backend).text();
            let variants = crate::one_byte_variants(pin.as_bytes(), b"0123456789abcdefABCDEF46g;-");
            for variant in &variants[1..] {
                if variant.as_slice() == pin.as_bytes() {
                    continue;
                }
                // A change in the address, port or check value must not verify; only a
                // change that keeps the text (same byte) names the backend.
                assert!(
                    key.unpin(variant).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(variant)
                );
            }
        }
        assert_eq!(key.unpin(b""), Err(PinError::Malformed));
        assert_eq!(key.unpin(&[b'4'; 300]), Err(PinError::Malformed));
    }
}

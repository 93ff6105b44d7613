//! The `Contact` line of a redirect (RFC 3261 §8.3, §21.3.3): the target a client is sent
//! to, written on the stack.

use super::text::push_host_port;
use arrayvec::ArrayVec;
use std::net::SocketAddr;

/// Longest Contact line: the header name, `<sip:`, a user part, `@[IPv6]:port>` and CRLF.
pub const CONTACT_LINE_MAX: usize = 320;

/// `Contact: <sip:USER@ADDR>` and CRLF, ready to be echoed in a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactLine {
    bytes: ArrayVec<u8, CONTACT_LINE_MAX>,
}

impl ContactLine {
    /// The line naming `addr`, with `user` (the user part of the request's URI, which the
    /// next hop routes on) when there is one and it fits; without it otherwise.
    pub fn new(user: Option<&[u8]>, addr: SocketAddr) -> Self {
        Self::build(user, addr).unwrap_or_else(|| {
            // Without a user part the longest address fits.
            Self::build(None, addr).unwrap_or_else(|| unreachable!("an address always fits"))
        })
    }

    fn build(user: Option<&[u8]>, addr: SocketAddr) -> Option<Self> {
        let mut bytes = ArrayVec::new();
        bytes.try_extend_from_slice(b"Contact: <sip:").ok()?;
        if let Some(user) = user {
            bytes.try_extend_from_slice(user).ok()?;
            bytes.try_push(b'@').ok()?;
        }
        (push_host_port(&mut bytes, addr) && bytes.try_extend_from_slice(b">\r\n").is_ok())
            .then_some(ContactLine { bytes })
    }

    /// The line's text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_user_and_the_address() {
        let v4: SocketAddr = "10.0.0.20:5060".parse().unwrap();
        assert_eq!(
            ContactLine::new(Some(b"+15551234"), v4).as_bytes(),
            b"Contact: <sip:+15551234@10.0.0.20:5060>\r\n"
        );
        assert_eq!(
            ContactLine::new(None, v4).as_bytes(),
            b"Contact: <sip:10.0.0.20:5060>\r\n"
        );
        let v6: SocketAddr = "[2001:db8::20]:5070".parse().unwrap();
        assert_eq!(
            ContactLine::new(Some(b"bob"), v6).as_bytes(),
            b"Contact: <sip:bob@[2001:db8::20]:5070>\r\n"
        );
        // A user part too long for the line: the address alone.
        let long = vec![b'u'; CONTACT_LINE_MAX];
        assert_eq!(
            ContactLine::new(Some(&long), v4).as_bytes(),
            b"Contact: <sip:10.0.0.20:5060>\r\n"
        );
    }
}

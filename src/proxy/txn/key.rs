//! What a request's server transaction is found by (RFC 3261 §17.2.3): the top Via's
//! branch and sent-by, and the method, an ACK belonging to its INVITE. Kept by value, of
//! bounded size, so the table stores keys without allocating; a request whose branch lacks
//! the RFC 3261 magic cookie, or whose branch or host is too long to keep, has no key and
//! is handled statelessly.

use crate::sip::{Message, Via, DEFAULT_PORT};
use arrayvec::ArrayVec;

/// Longest branch kept in a key.
pub const KEY_BRANCH_MAX: usize = 64;
/// Longest sent-by host kept in a key.
pub const KEY_HOST_MAX: usize = 64;
/// Longest method kept in a key.
pub const KEY_METHOD_MAX: usize = 16;

/// The §17.2.3 key of a server transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    branch: ArrayVec<u8, KEY_BRANCH_MAX>,
    /// Lower case: host names compare without case.
    host: ArrayVec<u8, KEY_HOST_MAX>,
    port: u16,
    /// The method that created the transaction: INVITE for an ACK.
    method: ArrayVec<u8, KEY_METHOD_MAX>,
}

impl ServerKey {
    /// The key of the transaction `msg` belongs to; `None` when it cannot have one.
    pub fn of(msg: &Message<'_, '_>) -> Option<ServerKey> {
        let method = match msg.method()? {
            b"ACK" => &b"INVITE"[..],
            other => other,
        };
        Self::from_via(&msg.top_via.via, method)
    }

    /// The key of the INVITE transaction the CANCEL `msg` cancels (§9.2: the same top Via).
    pub fn of_cancelled(msg: &Message<'_, '_>) -> Option<ServerKey> {
        Self::from_via(&msg.top_via.via, b"INVITE")
    }

    /// The key of the server transaction a response from a backend answers: the Via below
    /// ours is the client's, and the CSeq names the method. `None` as for [`ServerKey::of`].
    pub fn of_response(msg: &Message<'_, '_>) -> Option<ServerKey> {
        if msg.is_request() {
            return None;
        }
        Self::from_via(&msg.second_via?, msg.cseq.method)
    }

    /// The key of the client's `via` for a request of `method`.
    fn from_via(via: &Via<'_>, method: &[u8]) -> Option<ServerKey> {
        let branch = via.branch.filter(|b| b.starts_with(b"z9hG4bK"))?;
        let mut host: ArrayVec<u8, KEY_HOST_MAX> = via.host.try_into().ok()?;
        host.make_ascii_lowercase();
        Some(ServerKey {
            branch: branch.try_into().ok()?,
            host,
            port: via.port.unwrap_or(DEFAULT_PORT),
            method: method.try_into().ok()?,
        })
    }

    /// Whether the key's transaction is an INVITE one (an ACK's is).
    pub fn is_invite(&self) -> bool {
        &self.method[..] == b"INVITE"
    }

    /// The bytes the table's hash is taken over (branch, host, port, method).
    pub fn hash_with(&self, hash: impl Fn(&[u8]) -> u64) -> u64 {
        hash(&self.branch)
            ^ hash(&self.host).rotate_left(17)
            ^ u64::from(self.port).rotate_left(41)
            ^ hash(&self.method).rotate_left(29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse, Headers};

    fn key(method: &str, via: &str) -> Option<ServerKey> {
        let text = format!(
            "{method} sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: k\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        let mut headers = Headers::<16>::new();
        let msg = parse(text.as_bytes(), &mut headers).expect("test request parses");
        ServerKey::of(&msg)
    }

    #[test]
    fn an_ack_and_a_retransmission_find_their_invite_and_a_cancel_its_own() {
        let invite = key("INVITE", "pc33.example.com;branch=z9hG4bK776").unwrap();
        assert!(invite.is_invite());
        assert_eq!(
            key("INVITE", "PC33.Example.COM:5060;branch=z9hG4bK776"),
            Some(invite.clone())
        );
        assert_eq!(
            key("ACK", "pc33.example.com;branch=z9hG4bK776"),
            Some(invite.clone())
        );
        let cancel = key("CANCEL", "pc33.example.com;branch=z9hG4bK776").unwrap();
        assert_ne!(cancel, invite);
        assert!(!cancel.is_invite());
        // Another sent-by or branch: another transaction (branch case matters).
        assert_ne!(
            key("INVITE", "pc33.example.com:5070;branch=z9hG4bK776"),
            Some(invite.clone())
        );
        assert_ne!(
            key("INVITE", "pc33.example.com;branch=z9hG4bk776"),
            Some(invite.clone())
        );
        let hash = |b: &[u8]| {
            b.iter()
                .fold(0u64, |h, &x| h.wrapping_mul(31) ^ u64::from(x))
        };
        assert_eq!(
            invite.hash_with(hash),
            key("ACK", "pc33.example.com;branch=z9hG4bK776")
                .unwrap()
                .hash_with(hash)
        );
    }

    #[test]
    fn a_response_finds_the_transaction_of_its_request() {
        let response = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:6000;branch=z9hG4bKours\r\n\
                        Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776\r\n\
                        From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: k\r\n\
                        CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let mut headers = Headers::<16>::new();
        let msg = parse(response.as_bytes(), &mut headers).unwrap();
        assert_eq!(
            ServerKey::of_response(&msg),
            key("INVITE", "pc33.example.com;branch=z9hG4bK776")
        );
    }

    #[test]
    fn requests_without_a_keepable_branch_have_no_key() {
        assert_eq!(
            key("INVITE", "pc33.example.com;branch=1234"),
            None,
            "RFC 2543 branch"
        );
        assert_eq!(key("INVITE", "pc33.example.com"), None);
        let long = format!(
            "pc33.example.com;branch=z9hG4bK{}",
            "x".repeat(KEY_BRANCH_MAX)
        );
        assert_eq!(key("INVITE", &long), None);
    }
}

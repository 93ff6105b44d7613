//! Stateless branch values (RFC 3261 §16.11).
//!
//! A stateless proxy must give a request, its retransmissions and its CANCEL (and the ACK
//! of a non-2xx) the same branch, without remembering anything. The branch is therefore a
//! function of fields that do not change between them:
//!
//! * an RFC 3261 client's request: its own branch and its Via sent-by (§9.1 makes the
//!   CANCEL's top Via equal to the INVITE's);
//! * an older client's request: its top Via, the To tag, the From tag, the Call-ID, the
//!   CSeq number and the Request-URI (§16.11's list for RFC 2543 compatibility).
//!
//! Layout: `z9hG4bK` `sd` + 16 hex digits of a keyed 64-bit hash of those fields + 8 hex
//! digits of a check value, a SipHash-1-3 MAC of the hash under the deployment secret
//! (the rounds Rust's `HashMap` uses against chosen inputs; a forger must still guess
//! the 32-bit check value, and the check is on the path of every forwarded request).
//! [`BranchKey::verify`] recomputes the check value, so a response whose top Via carries a
//! branch we did not make (forged or another proxy's) is recognised and dropped, and a
//! request that already carries one of our branches is a loop (§16.3 step 4).

use super::message::Message;
use super::text::{put_hex, read_hex};
use super::via::MAGIC_COOKIE;
use siphasher::sip::{SipHasher13, SipHasher24};
use std::hash::Hasher;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// What follows the magic cookie in every branch sipshard makes.
const MARK: &[u8] = b"sd";
/// Length of a sipshard branch: cookie, mark, 16 hex digits of hash, 8 of check value.
pub const BRANCH_LEN: usize = MAGIC_COOKIE.len() + MARK.len() + 16 + 8;

/// A branch value, ready to go into our Via.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch([u8; BRANCH_LEN]);

impl Branch {
    /// The branch text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A branch before it is written out: the hash and its check value. Two words, so a plan
/// carries it in registers and writes the text straight into the datagram
/// ([`BranchId::write`]) instead of copying a freshly written text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BranchId {
    id: u64,
    check: u32,
}

impl BranchId {
    /// Writes the branch text (`BRANCH_LEN` bytes) into `out`.
    #[inline]
    pub fn write(&self, out: &mut [u8; BRANCH_LEN]) {
        let (cookie, rest) = out.split_at_mut(MAGIC_COOKIE.len());
        cookie.copy_from_slice(MAGIC_COOKIE);
        let (mark, rest) = rest.split_at_mut(MARK.len());
        mark.copy_from_slice(MARK);
        let (hash, check) = rest.split_at_mut(16);
        put_hex(hash, self.id);
        put_hex(check, u64::from(self.check));
    }

    /// The branch text.
    pub fn text(&self) -> Branch {
        let mut out = [0u8; BRANCH_LEN];
        self.write(&mut out);
        Branch(out)
    }

    /// The 64-bit hash the branch carries: what a stateful proxy finds its client
    /// transaction by.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Keys derived from the per-deployment secret.
#[derive(Clone)]
pub struct BranchKey {
    seed: u64,
    mac: SipHasher13,
    /// The pins' MAC: a key of its own, and SipHash-2-4, so the branch check value's hash
    /// (on every forwarded message) stays the only caller of SipHash-1-3 and inlined there.
    pin_mac: SipHasher24,
}

impl std::fmt::Debug for BranchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BranchKey(..)")
    }
}

impl BranchKey {
    /// Derives the keys from `secret` (any bytes; the same secret gives the same branches,
    /// so every instance of one deployment recognises the others' branches).
    pub fn new(secret: &[u8]) -> Self {
        let derive = |label: u64| {
            let mut h = SipHasher24::new_with_keys(0x7369_7073_6861_7264, label);
            h.write(secret);
            h.finish()
        };
        BranchKey {
            seed: derive(1),
            mac: SipHasher13::new_with_keys(derive(2), derive(3)),
            pin_mac: SipHasher24::new_with_keys(derive(4), derive(5)),
        }
    }

    fn check_value(&self, id: u64) -> u32 {
        self.mac.hash(&id.to_le_bytes()) as u32
    }

    /// The 32-bit MAC of a pin's input under this key.
    pub(crate) fn pin_check_value(&self, bytes: &[u8]) -> u32 {
        self.pin_mac.hash(bytes) as u32
    }

    /// The stateless branch for a request we forward, as text.
    pub fn branch(&self, msg: &Message<'_, '_>) -> Branch {
        self.branch_id(msg).text()
    }

    /// The stateless branch for a request we forward, not yet written out (what
    /// [`crate::RequestRewrite::add_via`] takes).
    pub fn branch_id(&self, msg: &Message<'_, '_>) -> BranchId {
        let via = &msg.top_via.via;
        let chain = |h: u64, part: &[u8]| xxh3_64_with_seed(part, h);
        let opt = |h: u64, part: Option<&[u8]>| match part {
            Some(p) => chain(h, p),
            None => h.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15,
        };
        let id = match via.branch {
            Some(b) if b.len() > MAGIC_COOKIE.len() && via.has_rfc3261_branch() => {
                // Two hashes that do not wait for each other, under different seeds (the
                // port is folded into the second): their latencies overlap.
                let port = u64::from(via.port.unwrap_or(0));
                let of_branch = xxh3_64_with_seed(b, self.seed);
                let of_sent_by = xxh3_64_with_seed(via.host, self.seed.rotate_left(32) ^ port);
                of_branch ^ of_sent_by.rotate_left(23)
            }
            _ => {
                let h = chain(self.seed ^ 1, via.value);
                let h = opt(h, msg.to_addr().and_then(|a| a.tag));
                let h = opt(h, msg.from_addr().and_then(|a| a.tag));
                let h = chain(h, msg.call_id);
                let h = chain(h, &msg.cseq.number.to_le_bytes());
                opt(h, msg.request_uri())
            }
        };
        BranchId {
            id,
            check: self.check_value(id),
        }
    }

    /// True if `branch` was made by [`BranchKey::branch`] (or [`BranchKey::derive`]) with
    /// this secret.
    pub fn verify(&self, branch: &[u8]) -> bool {
        self.read(branch).is_some()
    }

    /// The branch `branch` names, if it was made with this secret.
    pub fn read(&self, branch: &[u8]) -> Option<BranchId> {
        if branch.len() != BRANCH_LEN {
            return None;
        }
        let (head, rest) = branch.split_at(MAGIC_COOKIE.len() + MARK.len());
        if &head[..MAGIC_COOKIE.len()] != MAGIC_COOKIE || &head[MAGIC_COOKIE.len()..] != MARK {
            return None;
        }
        match (read_hex(&rest[..16]), read_hex(&rest[16..])) {
            (Some(id), Some(check)) if u64::from(self.check_value(id)) == check => Some(BranchId {
                id,
                check: check as u32,
            }),
            _ => None,
        }
    }

    /// Branch `n` of a stateful proxy's request whose stateless branch is `base`: each
    /// client transaction of one server transaction (a fork, a failover attempt) needs its
    /// own (§16.6 step 8). Branch 0 is `base` itself, so a CANCEL or ACK forwarded
    /// statelessly still matches the first one.
    pub fn derive(&self, base: BranchId, n: u8) -> BranchId {
        if n == 0 {
            return base;
        }
        let id = base.id ^ u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        BranchId {
            id,
            check: self.check_value(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Headers};

    #[test]
    fn derived_branches_differ_verify_and_read_back() {
        let key = BranchKey::new(b"secret");
        let text = b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
            From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let mut headers = Headers::<8>::new();
        let msg = parse(text, &mut headers).unwrap();
        let base = key.branch_id(&msg);
        assert_eq!(key.derive(base, 0), base);
        let ids: Vec<u64> = (0..8).map(|n| key.derive(base, n).id()).collect();
        for (i, a) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|b| b != a), "{ids:x?}");
        }
        for n in 0..8 {
            let branch = key.derive(base, n);
            assert_eq!(key.read(branch.text().as_bytes()), Some(branch));
            assert_eq!(
                BranchKey::new(b"other").read(branch.text().as_bytes()),
                None
            );
        }
    }
}

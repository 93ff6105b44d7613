//! Stateless branches (§16.11): the same for an INVITE, its retransmission, its CANCEL and
//! the ACK of a non-2xx; different across transactions; verifiable only with our secret.

use sipshard::sip::{self, Branch, BranchKey, Headers};

fn msg(method: &str, cseq_method: &str, branch: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=ft\r\nTo: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: br-1@example.com\r\nCSeq: 11 {cseq_method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn branch_of(key: &BranchKey, text: &str) -> Branch {
    let mut headers = Headers::<16>::new();
    key.branch(&sip::parse(text.as_bytes(), &mut headers).unwrap())
}

#[test]
fn one_transaction_one_branch() {
    let key = BranchKey::new(b"deployment secret");
    let invite = branch_of(&key, &msg("INVITE", "INVITE", "z9hG4bKclient1", ""));
    let retransmission = branch_of(&key, &msg("INVITE", "INVITE", "z9hG4bKclient1", ""));
    let cancel = branch_of(&key, &msg("CANCEL", "CANCEL", "z9hG4bKclient1", ""));
    let ack_non_2xx = branch_of(&key, &msg("ACK", "ACK", "z9hG4bKclient1", ";tag=callee"));
    assert_eq!(invite, retransmission);
    assert_eq!(invite, cancel);
    assert_eq!(invite, ack_non_2xx);
    let other = branch_of(&key, &msg("INVITE", "INVITE", "z9hG4bKclient2", ""));
    assert_ne!(invite, other);
    // Same client branch from another sent-by is another transaction.
    let elsewhere = branch_of(
        &key,
        &msg("INVITE", "INVITE", "z9hG4bKclient1", "").replace("192.0.2.1:5060", "192.0.2.1:5062"),
    );
    assert_ne!(invite, elsewhere);
    let other_host = branch_of(
        &key,
        &msg("INVITE", "INVITE", "z9hG4bKclient1", "").replace("192.0.2.1:5060", "192.0.2.2:5060"),
    );
    assert_ne!(invite, other_host);
    assert_ne!(elsewhere, other_host);
    assert!(invite.as_bytes().starts_with(b"z9hG4bK"));
}

#[test]
fn rfc2543_clients_get_a_stable_branch_too() {
    let key = BranchKey::new(b"s");
    let invite = branch_of(&key, &msg("INVITE", "INVITE", "old1", ""));
    let cancel = branch_of(&key, &msg("CANCEL", "CANCEL", "old1", ""));
    assert_eq!(invite, cancel);
    // The bare magic cookie (RFC 4475 badbranch) is not a usable transaction id.
    let bare = branch_of(&key, &msg("INVITE", "INVITE", "z9hG4bK", ""));
    let bare_cancel = branch_of(&key, &msg("CANCEL", "CANCEL", "z9hG4bK", ""));
    assert_eq!(bare, bare_cancel);
    let next_request = branch_of(
        &key,
        &msg("INVITE", "INVITE", "old1", "").replace("CSeq: 11", "CSeq: 12"),
    );
    assert_ne!(invite, next_request);
}

#[test]
fn verify_accepts_ours_only() {
    let key = BranchKey::new(b"secret-a");
    let b = branch_of(&key, &msg("INVITE", "INVITE", "z9hG4bKx", ""));
    assert!(key.verify(b.as_bytes()));
    assert!(!BranchKey::new(b"secret-b").verify(b.as_bytes()));
    // Any single changed character breaks it.
    for i in 0..b.as_bytes().len() {
        let mut forged = b.as_bytes().to_vec();
        forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
        assert!(!key.verify(&forged), "position {i}");
    }
    for other in [
        &b""[..],
        b"z9hG4bK",
        b"z9hG4bKclient1",
        &b.as_bytes()[..b.as_bytes().len() - 1],
    ] {
        assert!(!key.verify(other));
    }
    let mut longer = b.as_bytes().to_vec();
    longer.push(b'0');
    assert!(!key.verify(&longer));
}

#[test]
fn two_instances_with_one_secret_agree() {
    let a = BranchKey::new(b"shared");
    let b = BranchKey::new(b"shared");
    let text = msg("INVITE", "INVITE", "z9hG4bKq", "");
    assert_eq!(branch_of(&a, &text), branch_of(&b, &text));
    assert!(b.verify(branch_of(&a, &text).as_bytes()));
}

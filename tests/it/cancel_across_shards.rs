//! With 2 workers, a CANCEL sent from another client port than its INVITE (so that
//! SO_REUSEPORT may hand it to another shard) must reach the backend with exactly the
//! INVITE's top Via: same branch, same sent-by (§9.1, §17.2.3).

use crate::support::lab::*;
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn cancel_from_another_port_carries_the_invites_top_via() {
    let lab = Lab::new(false, 2, 1);
    let me = lab.client.local_addr().unwrap();
    let calls = 60;
    for n in 0..calls {
        let branch = format!("z9hG4bKinv{n}");
        let call_id = format!("cancel-{n}@test");
        lab.client_sends(&request(
            "INVITE",
            me,
            &branch,
            &call_id,
            "Max-Forwards: 70\r\n",
        ));
        let (invite, _) = recv(&lab.backend).expect("INVITE forwarded");
        // The CANCEL leaves from a fresh socket (a NAT rebinding), with the INVITE's Via.
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let cancel = request("CANCEL", me, &branch, &call_id, "Max-Forwards: 70\r\n");
        other.send_to(cancel.as_bytes(), lab.public()).unwrap();
        let (forwarded, _) = recv(&lab.backend).expect("CANCEL forwarded");
        assert!(forwarded.starts_with("CANCEL "));
        assert_eq!(vias(&forwarded)[0], vias(&invite)[0], "call {n}");
    }
    let shards = lab.plane.stop_each();
    // The test means something only if both shards took part.
    assert!(
        shards.iter().all(|c| c.received > 0),
        "one shard got nothing: {shards:?}"
    );
    let total = sipshard::shard::total(&shards);
    assert_eq!(total.requests_forwarded, 2 * calls);
}

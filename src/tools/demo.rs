//! `sipshard demo`: what the balancer does to one message, on an embedded INVITE.
//!
//! Until the data plane exists this shows the wire layer at work: it parses an embedded
//! INVITE, rewrites it as the balancer will (our Via, received/rport, Max-Forwards), then
//! times the per-message work.

use crate::sip::{self, BranchKey, Frame, Header, RequestRewrite, ViaPrefix};
use std::process::ExitCode;
use std::time::Instant;

/// A typical INVITE with SDP, as a softphone sends it.
pub const SAMPLE_INVITE: &[u8] = b"INVITE sip:+15551234567@carrier.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a1c;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@192.0.2.10>;tag=9fxced76sl\r\n\
To: <sip:+15551234567@carrier.example.com>\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n\
Supported: replaces, timer\r\n\
User-Agent: ExamplePhone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 212\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=call\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendrecv\r\n";

const HEADROOM: usize = 512;

/// Runs the demo.
pub fn run() -> ExitCode {
    println!("sipshard demo: the SIP wire layer on an embedded INVITE.");
    println!("(The balancer, responder and bench are not built yet; this shows what they will run per message.)\n");
    let key = BranchKey::new(b"demo-secret");
    let source = "198.51.100.7:40312".parse().expect("literal address");
    let our_via = "10.0.0.1:5070".parse().expect("literal address");
    let Some(prefix) = ViaPrefix::new("UDP", our_via) else {
        return ExitCode::FAILURE;
    };
    let mut buf = vec![0u8; HEADROOM + SAMPLE_INVITE.len() + 512];
    buf[HEADROOM..HEADROOM + SAMPLE_INVITE.len()].copy_from_slice(SAMPLE_INVITE);

    let mut headers = [Header::EMPTY; 64];
    let plan = match sip::parse(&buf[HEADROOM..HEADROOM + SAMPLE_INVITE.len()], &mut headers) {
        Ok(msg) => {
            let mut plan = RequestRewrite::new(&msg);
            let branch = key.branch(&msg);
            if plan.add_via(&prefix, branch.as_bytes()).is_err()
                || plan.forward_max_forwards(&msg).is_err()
            {
                eprintln!("demo: could not plan the rewrite");
                return ExitCode::FAILURE;
            }
            plan.stamp_source(&msg, source);
            plan
        }
        Err(e) => {
            eprintln!("demo: embedded INVITE did not parse: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut frame = Frame::new(&mut buf, HEADROOM, SAMPLE_INVITE.len());
    if let Err(e) = plan.apply(&mut frame) {
        eprintln!("demo: rewrite failed: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "--- forwarded to the backend ---\n{}",
        String::from_utf8_lossy(frame.bytes())
    );

    let rounds = 200_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut scratch = [0u8; HEADROOM + 1024];
        scratch[HEADROOM..HEADROOM + SAMPLE_INVITE.len()].copy_from_slice(SAMPLE_INVITE);
        let mut headers = [Header::EMPTY; 64];
        let Ok(msg) = sip::parse(
            &scratch[HEADROOM..HEADROOM + SAMPLE_INVITE.len()],
            &mut headers,
        ) else {
            return ExitCode::FAILURE;
        };
        let mut plan = RequestRewrite::new(&msg);
        let _ = plan.add_via(&prefix, key.branch(&msg).as_bytes());
        let mut frame = Frame::new(&mut scratch, HEADROOM, SAMPLE_INVITE.len());
        let _ = plan.apply(&mut frame);
        std::hint::black_box(frame.bytes());
    }
    let per = started.elapsed() / rounds;
    println!("parse + branch + insert Via: {per:?} per INVITE ({} bytes), {rounds} rounds (copy of the datagram included)", SAMPLE_INVITE.len());
    println!("\nNext: `cargo test` runs the test suite; see README.md.");
    ExitCode::SUCCESS
}

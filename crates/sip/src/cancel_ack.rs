//! The requests a client transaction makes from the request it sent: the CANCEL of an
//! INVITE (§9.1) and the ACK of an INVITE's non-2xx final response (§17.1.1.3). Both carry
//! the sent request's Request-URI, top Via (so its branch), Route, From, Call-ID and CSeq
//! number; the CANCEL its To, the ACK the response's To (with the tag of the UAS).

use crate::header_name::HeaderName;
use crate::message::Message;
use crate::reply::ReplyError;
use crate::text::push_decimal;
use arrayvec::ArrayVec;

/// Writes the CANCEL of `sent` (an INVITE as it went out) into `out`; returns its length.
pub fn write_cancel(out: &mut [u8], sent: &Message<'_, '_>) -> Result<usize, ReplyError> {
    write_hop_request(out, sent, b"CANCEL", None)
}

/// Writes the ACK of the non-2xx final response whose To line is `response_to` (the whole
/// line, CRLF included) to `sent` (an INVITE as it went out) into `out`; returns its length.
pub fn write_ack(
    out: &mut [u8],
    sent: &Message<'_, '_>,
    response_to: &[u8],
) -> Result<usize, ReplyError> {
    write_hop_request(out, sent, b"ACK", Some(response_to))
}

fn write_hop_request(
    out: &mut [u8],
    sent: &Message<'_, '_>,
    method: &[u8],
    to_line: Option<&[u8]>,
) -> Result<usize, ReplyError> {
    let uri = sent.request_uri().ok_or(ReplyError::NotAnswerable)?;
    let mut len = 0;
    let mut put = |bytes: &[u8]| -> Result<(), ReplyError> {
        let end = len + bytes.len();
        out.get_mut(len..end)
            .ok_or(ReplyError::BufferTooSmall)?
            .copy_from_slice(bytes);
        len = end;
        Ok(())
    };
    put(method)?;
    put(b" ")?;
    put(uri)?;
    put(b" SIP/2.0\r\n")?;
    let mut via_done = false;
    let mut once = [false; 3];
    for h in sent.headers {
        let first = match h.name {
            HeaderName::Via if !via_done => {
                via_done = true;
                put(h.line)?;
                continue;
            }
            HeaderName::Route => {
                put(h.line)?;
                continue;
            }
            HeaderName::From => 0,
            HeaderName::To => 1,
            HeaderName::CallId => 2,
            _ => continue,
        };
        if std::mem::replace(&mut once[first], true) {
            continue;
        }
        match (h.name, to_line) {
            (HeaderName::To, Some(line)) => put(line)?,
            _ => put(h.line)?,
        }
    }
    if !(via_done && once.iter().all(|&seen| seen)) {
        return Err(ReplyError::MissingFields);
    }
    let mut number = ArrayVec::<u8, 10>::new();
    push_decimal(&mut number, sent.cseq.number);
    put(b"Max-Forwards: 70\r\nCSeq: ")?;
    put(&number)?;
    put(b" ")?;
    put(method)?;
    put(b"\r\nContent-Length: 0\r\n\r\n")?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Headers};

    const SENT: &[u8] = b"INVITE sip:b@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:6000;branch=z9hG4bKsd1\r\n\
        Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKc;received=192.0.2.7\r\n\
        Record-Route: <sip:10.0.0.1:6000;lr>\r\n\
        Route: <sip:edge.example.com;lr>\r\n\
        Max-Forwards: 69\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
        Call-ID: c@x\r\nCSeq: 7 INVITE\r\nContact: <sip:a@192.0.2.7>\r\n\
        Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\r\n")
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_cancel_and_an_ack_keep_the_sent_branch_and_route_only() {
        let mut headers = Headers::<16>::new();
        let sent = parse(SENT, &mut headers).unwrap();
        let mut out = [0u8; 1024];
        let n = write_cancel(&mut out, &sent).unwrap();
        assert_eq!(
            lines(&out[..n]),
            [
                "CANCEL sip:b@example.com SIP/2.0",
                "Via: SIP/2.0/UDP 10.0.0.1:6000;branch=z9hG4bKsd1",
                "Route: <sip:edge.example.com;lr>",
                "From: <sip:a@example.com>;tag=1",
                "To: <sip:b@example.com>",
                "Call-ID: c@x",
                "Max-Forwards: 70",
                "CSeq: 7 CANCEL",
                "Content-Length: 0",
                "",
                ""
            ]
        );
        {
            let mut parsed = Headers::<16>::new();
            assert!(parse(&out[..n], &mut parsed).is_ok());
        }
        let n = write_ack(&mut out, &sent, b"To: <sip:b@example.com>;tag=u\r\n").unwrap();
        let ack = lines(&out[..n]);
        assert_eq!(ack[0], "ACK sip:b@example.com SIP/2.0");
        assert_eq!(ack[4], "To: <sip:b@example.com>;tag=u");
        assert_eq!(ack[7], "CSeq: 7 ACK");
        assert_eq!(
            write_cancel(&mut out[..40], &sent),
            Err(ReplyError::BufferTooSmall)
        );
    }
}

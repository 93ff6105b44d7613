//! The route sets of the calls in flight (RFC 3261 §12.1.2): the Record-Route values of the
//! 200 to a call's INVITE, in reverse order, which its ACK and BYE carry as `Route`, as a
//! user agent's would. A table indexed by call number, allocated once.

use crate::sip::{CommaValues, HeaderName, Message};
use arrayvec::ArrayVec;

/// Longest route set kept (a longer one is not followed: the call's ACK and BYE go without
/// Route, as with no Record-Route).
pub const ROUTE_SET_MAX: usize = 480;
/// Route sets kept at once; a call whose entry was taken by a later call sends without one.
const ENTRIES: usize = 1 << 14;
/// Record-Route values read from one response.
const VALUES_MAX: usize = 8;

#[derive(Clone)]
struct Entry {
    call: u64,
    len: u16,
    bytes: [u8; ROUTE_SET_MAX],
}

/// Route sets by call number.
pub struct RouteSets {
    entries: Vec<Entry>,
}

impl Default for RouteSets {
    fn default() -> Self {
        RouteSets {
            entries: vec![
                Entry {
                    call: u64::MAX,
                    len: 0,
                    bytes: [0; ROUTE_SET_MAX],
                };
                ENTRIES
            ],
        }
    }
}

impl RouteSets {
    /// Learns call `call`'s route set from `response` (the 2xx to its INVITE): its
    /// Record-Route values, last first, comma-separated. No Record-Route: none.
    pub fn learn(&mut self, call: u64, response: &Message<'_, '_>) {
        let mut values: ArrayVec<&[u8], VALUES_MAX> = ArrayVec::new();
        let record_routes = response
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::RecordRoute)
            .flat_map(|h| CommaValues::new(h.value));
        for value in record_routes {
            if values.try_push(value).is_err() {
                return; // More hops than a bench call follows.
            }
        }
        let entry = &mut self.entries[(call % ENTRIES as u64) as usize];
        entry.call = call;
        entry.len = 0;
        let mut at = 0;
        for (i, value) in values.iter().rev().enumerate() {
            let separator: &[u8] = if i == 0 { b"" } else { b", " };
            let end = at + separator.len() + value.len();
            let Some(out) = entry.bytes.get_mut(at..end) else {
                return; // Too long: not followed.
            };
            out[..separator.len()].copy_from_slice(separator);
            out[separator.len()..].copy_from_slice(value);
            at = end;
        }
        entry.len = at as u16;
    }

    /// Call `call`'s route set, if it has one.
    pub fn get(&self, call: u64) -> Option<&[u8]> {
        let entry = &self.entries[(call % ENTRIES as u64) as usize];
        (entry.call == call && entry.len > 0).then(|| &entry.bytes[..usize::from(entry.len)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse, Headers};

    fn ok_with(record_routes: &str) -> String {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bK1\r\n{record_routes}\
             From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: 7-0-1@sipshard-bench\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn learned(record_routes: &str) -> Option<String> {
        let text = ok_with(record_routes);
        let mut headers = Headers::<32>::new();
        let msg = parse(text.as_bytes(), &mut headers).unwrap();
        let mut sets = RouteSets::default();
        sets.learn(7, &msg);
        assert_eq!(sets.get(8), None, "another call has none");
        sets.get(7).map(|r| String::from_utf8(r.to_vec()).unwrap())
    }

    #[test]
    fn the_route_set_is_the_record_route_reversed() {
        assert_eq!(
            learned("Record-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>, <sip:p3;lr>\r\n")
                .as_deref(),
            Some("<sip:p3;lr>, <sip:p2;lr>, <sip:p1;lr>")
        );
        assert_eq!(learned(""), None);
        let long = format!("Record-Route: <sip:{};lr>\r\n", "p".repeat(ROUTE_SET_MAX));
        assert_eq!(learned(&long), None);
    }
}

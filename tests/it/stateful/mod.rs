//! The stateful mode over loopback: a balancer with `--mode stateful`, a client socket and
//! backend sockets played by the test, so each rule of the transaction layer shows as the
//! datagrams that arrive (or do not) on each side.

mod rules;
mod sipp_calls;
mod steering;

use sipshard::balance::Backend;
use sipshard::net::Steering;
use sipshard::proxy::txn::server::Timers;
use sipshard::proxy::txn::RelayConfig;
use sipshard::shard::{start, Plane, PlaneConfig, RelayCounters};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;

/// A stateful balancer on loopback with a client and `n` backends.
struct StatefulLab {
    plane: Plane,
    client: UdpSocket,
    backends: Vec<UdpSocket>,
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// Relay settings for tests: T1 100 ms (so B, F and D come within seconds), failover after
/// 400 ms.
fn test_relay() -> RelayConfig {
    RelayConfig {
        capacity: 64,
        timers: Timers {
            t1_ns: 100 * MS,
            t2_ns: 400 * MS,
            t4_ns: 500 * MS,
            linger_ns: 500 * MS,
        },
        failover_after_ns: Some(400 * MS),
        ..RelayConfig::default()
    }
}

impl StatefulLab {
    fn start(backends: usize, relay: RelayConfig) -> StatefulLab {
        StatefulLab::start_with(backends, relay, 1, Steering::Random)
    }

    /// [`StatefulLab::start`] with `workers` shards spread over by `steering`.
    fn start_with(
        backends: usize,
        relay: RelayConfig,
        workers: usize,
        steering: Steering,
    ) -> StatefulLab {
        let sockets: Vec<UdpSocket> = (0..backends).map(|_| socket()).collect();
        let config = PlaneConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            advertise: None,
            internal_ip: "127.0.0.1".parse().unwrap(),
            internal_base_port: None,
            backends: sockets
                .iter()
                .map(|s| Backend {
                    addr: s.local_addr().unwrap(),
                    weight: 1,
                    up: true,
                })
                .collect(),
            workers,
            pin: false,
            secret: b"stateful-lab".to_vec(),
            retry_after: 7,
            table_size: 251,
            residence_time: false,
            steering,
            busy_poll: Duration::ZERO,
            record_route: true,
            path: false,
            mode: sipshard::proxy::Mode::Proxy,
            relay: Some(relay),
        };
        StatefulLab {
            plane: start(&config).unwrap(),
            client: socket(),
            backends: sockets,
        }
    }

    fn public(&self) -> SocketAddr {
        self.plane.public_addrs()[0]
    }

    fn client_addr(&self) -> SocketAddr {
        self.client.local_addr().unwrap()
    }

    fn client_sends(&self, msg: &str) {
        self.client.send_to(msg.as_bytes(), self.public()).unwrap();
    }

    /// Backend `i` answers `to` (a request it received from the balancer).
    fn backend_sends(&self, i: usize, msg: &str, to: SocketAddr) {
        self.backends[i].send_to(msg.as_bytes(), to).unwrap();
    }

    /// The relay's counters, summed over the shards.
    fn relay(&self) -> RelayCounters {
        let mut total = RelayCounters::default();
        for s in self.plane.shard_stats() {
            total.add(&s.read().relay);
        }
        total
    }

    fn stop(self) -> RelayCounters {
        let counters = self.relay();
        self.plane.stop();
        counters
    }
}

/// Everything that arrives on `socket` within `wait`.
fn drain(socket: &UdpSocket, wait: Duration) -> Vec<(String, SocketAddr)> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            got.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
        }
    }
    got
}

/// The first datagram on `socket` whose first line starts with `start`, within `wait`
/// (others are skipped).
fn expect(socket: &UdpSocket, start: &str, wait: Duration) -> (String, SocketAddr) {
    let deadline = Instant::now() + wait;
    let mut skipped = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(start) {
                return (text, from);
            }
            skipped.push(first_line(&text).to_string());
        }
    }
    panic!("no {start:?} within {wait:?}; got {skipped:?}");
}

fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or_default()
}

/// The value of the first header `name` of `msg`.
fn header<'m>(msg: &'m str, name: &str) -> Option<&'m str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The branch of `msg`'s top Via.
fn top_branch(msg: &str) -> String {
    let via = header(msg, "Via").unwrap();
    via.split(';')
        .find_map(|p| p.strip_prefix("branch="))
        .unwrap()
        .to_string()
}

/// A client INVITE (or other `method`) from `from`.
fn request(method: &str, from: SocketAddr, branch: &str, call_id: &str, extra: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch={branch};rport\r\n{extra}\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:alice@{from}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A backend's response `status` to `req`: its Vias, From, Call-ID and CSeq, its To with
/// `tag`, its Record-Route for a 2xx or 1xx, and a Contact.
fn respond(req: &str, status: &str, tag: &str, contact: SocketAddr) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    let code: u16 = status[..3].parse().unwrap();
    for line in req.lines() {
        let name = line.split(':').next().unwrap_or_default().trim();
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => out.push_str(&format!("{line}\r\n")),
            "Record-Route" if code < 300 => out.push_str(&format!("{line}\r\n")),
            "To" => out.push_str(&format!("{line};tag={tag}\r\n")),
            _ => {}
        }
    }
    out.push_str(&format!(
        "Contact: <sip:bob@{contact}>\r\nContent-Length: 0\r\n\r\n"
    ));
    out
}

/// The ACK or BYE a client sends inside the dialog a 2xx `ok` made: Route from its
/// Record-Route (reversed), Request-URI its Contact.
fn in_dialog(method: &str, ok: &str, from: SocketAddr, branch: &str, cseq: u32) -> String {
    let mut routes: Vec<&str> = ok
        .lines()
        .filter_map(|l| l.strip_prefix("Record-Route: "))
        .collect();
    routes.reverse();
    let contact = header(ok, "Contact").unwrap();
    let uri = contact.trim_start_matches('<').trim_end_matches('>');
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch={branch};rport\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        routes.join(", "),
        header(ok, "From").unwrap(),
        header(ok, "To").unwrap(),
        header(ok, "Call-ID").unwrap(),
    )
}

/// A backend's 200 to a CANCEL or BYE `req` (no tag changes).
fn ok_to(req: &str) -> String {
    let mut out = "SIP/2.0 200 OK\r\n".to_string();
    for line in req.lines() {
        let name = line.split(':').next().unwrap_or_default().trim();
        if matches!(name, "Via" | "From" | "To" | "Call-ID" | "CSeq") {
            out.push_str(&format!("{line}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

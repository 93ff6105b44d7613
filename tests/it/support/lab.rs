//! A balancer on loopback with a test-controlled client socket and backend socket, so a
//! test can send a datagram and assert exactly what arrives on the other side.

use sipshard::balance::Backend;
use sipshard::net::Steering;
use sipshard::shard::{start, Counters, Plane, PlaneConfig};
use sipshard::sip::{self, HeaderName, Headers};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The secret the lab balancer uses.
pub const SECRET: &[u8] = b"lab-secret";

/// A running balancer with one client and one backend socket.
pub struct Lab {
    /// The balancer.
    pub plane: Plane,
    /// A client.
    pub client: UdpSocket,
    /// The (single) backend, played by the test.
    pub backend: UdpSocket,
}

/// Loopback of the family.
pub fn loopback(ipv6: bool) -> IpAddr {
    if ipv6 {
        "::1".parse().unwrap()
    } else {
        "127.0.0.1".parse().unwrap()
    }
}

fn socket(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s
}

impl Lab {
    /// A balancer with `workers` shards in front of one backend of `weight`.
    pub fn new(ipv6: bool, workers: usize, weight: u32) -> Lab {
        Lab::with_steering(ipv6, workers, weight, Steering::Random)
    }

    /// [`Lab::new`] with the given spread of public datagrams over the shards.
    pub fn with_steering(ipv6: bool, workers: usize, weight: u32, steering: Steering) -> Lab {
        let ip = loopback(ipv6);
        let backend = socket(ip);
        let config = PlaneConfig {
            listen: vec![SocketAddr::new(ip, 0)],
            advertise: None,
            internal_ip: ip,
            internal_base_port: None,
            backends: vec![Backend {
                addr: backend.local_addr().unwrap(),
                weight,
                up: true,
            }],
            workers,
            pin: false,
            secret: SECRET.to_vec(),
            retry_after: 7,
            table_size: 65537,
            residence_time: true,
            steering,
            busy_poll: std::time::Duration::ZERO,
            record_route: false,
            path: false,
            mode: sipshard::proxy::Mode::Proxy,
            relay: None,
        };
        Lab {
            plane: start(&config).unwrap(),
            client: socket(ip),
            backend,
        }
    }

    /// The balancer's public address.
    pub fn public(&self) -> SocketAddr {
        self.plane.public_addrs()[0]
    }

    /// Client sends `msg` to the balancer.
    pub fn client_sends(&self, msg: &str) {
        self.client.send_to(msg.as_bytes(), self.public()).unwrap();
    }

    /// Stops the balancer, returning its counters.
    pub fn stop(self) -> Counters {
        self.plane.stop()
    }
}

/// Receives one datagram (None after the socket's timeout, or `quiet` if given).
pub fn recv(socket: &UdpSocket) -> Option<(String, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

/// Asserts that nothing arrives within 300 ms.
pub fn assert_silent(socket: &UdpSocket) {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let got = recv(socket);
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(got.is_none(), "expected nothing, got {got:?}");
}

/// A request from `from` (the client's address) with extra header lines.
pub fn request(method: &str, from: SocketAddr, branch: &str, call_id: &str, extra: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch={branch};rport\r\n\
         {extra}From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The response a UAS would send to `request`: same Vias, From, Call-ID, CSeq, a To tag.
pub fn response_to(request: &str, code: u16, reason: &str) -> String {
    let mut headers = Headers::<64>::new();
    let m = sip::parse(request.as_bytes(), &mut headers).expect("request parses");
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for h in m.headers {
        let line = String::from_utf8_lossy(h.line);
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                out.push_str(&line)
            }
            HeaderName::To => out.push_str(&line.replacen("\r\n", ";tag=uas1\r\n", 1)),
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// Where a response to `msg` goes: its top Via's sent-by.
pub fn top_via_addr(msg: &str) -> SocketAddr {
    let mut headers = Headers::<64>::new();
    let m = sip::parse(msg.as_bytes(), &mut headers).expect("parses");
    let via = m.top_via.via;
    SocketAddr::new(via.host_ip().expect("IP sent-by"), via.port.unwrap_or(5060))
}

/// All Via values of a message, in order.
pub fn vias(msg: &str) -> Vec<String> {
    let mut headers = Headers::<64>::new();
    let m = sip::parse(msg.as_bytes(), &mut headers).expect("parses");
    m.headers
        .iter()
        .filter(|h| h.name == HeaderName::Via)
        .flat_map(|h| sip::CommaValues::new(h.value))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The value of the first header named `name` (case-insensitive), if any.
pub fn header(msg: &str, name: &str) -> Option<String> {
    msg.split("\r\n").find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    })
}

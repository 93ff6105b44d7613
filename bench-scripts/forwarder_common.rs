//! What the yardstick forwarders (`bare_forwarder`, `glommio_forwarder`) share: the command
//! line, the two sockets, and the decision for one datagram.

use sipshard::net::{udp_socket, Batch, Payload, SocketOptions, HEADROOM};
use socket2::Socket;
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// `--to`, the front socket (bound to `--listen`) and the back socket toward `--to`.
pub struct Setup {
    pub to: SocketAddr,
    pub front: Socket,
    pub back: Socket,
}

fn arg(name: &str) -> Option<SocketAddr> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

/// Reads `--listen ADDR --to ADDR` (exit 2 with a usage line otherwise) and binds the sockets.
pub fn setup(program: &str) -> Setup {
    let (Some(listen), Some(to)) = (arg("--listen"), arg("--to")) else {
        eprintln!("usage: {program} --listen ADDR --to ADDR");
        std::process::exit(2);
    };
    let options = SocketOptions {
        reuse_port: false,
        ..SocketOptions::default()
    };
    let front = udp_socket(listen, options).expect("bind --listen");
    let back_ip = if to.ip().is_loopback() {
        to.ip()
    } else {
        listen.ip()
    };
    let back = udp_socket(SocketAddr::new(back_ip, 0), options).expect("bind back socket");
    eprintln!("{program}: {listen} -> {to}");
    Setup { to, front, back }
}

/// Datagram `i` of `batch`: from the front it goes to `to` from the back socket (and its
/// source becomes the client); from the back it goes to the last client from the front.
pub fn forward(
    batch: &mut Batch,
    i: usize,
    from_front: bool,
    (front_fd, back_fd): (RawFd, RawFd),
    to: SocketAddr,
    client: &Cell<Option<SocketAddr>>,
) {
    let payload = Payload::Frame {
        start: HEADROOM,
        len: batch.datagram_len(i),
    };
    if from_front {
        client.set(batch.source(i).or(client.get()));
        batch.send(i, back_fd, payload, to);
    } else if let Some(c) = client.get() {
        batch.send(i, front_fd, payload, c);
    }
}

//! The physical-limit yardstick for the benchmarks: a UDP forwarder that does
//! `recvmmsg`/`sendmmsg` and nothing else (no SIP parsing, no rewriting). Datagrams arriving
//! on `--listen` go to the fixed `--to` address from a second socket; datagrams arriving on
//! that socket go back to the last client seen on `--listen`. One thread, blocking poll.
//!
//! Build: `cargo build --release --example bare_forwarder`
//! Run:   `target/release/examples/bare_forwarder --listen 127.0.0.1:5060 --to 127.0.0.1:5090`

use sipshard::net::{udp_socket, Batch, Payload, SocketOptions, HEADROOM};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

fn arg(name: &str) -> Option<SocketAddr> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let (Some(listen), Some(to)) = (arg("--listen"), arg("--to")) else {
        eprintln!("usage: bare_forwarder --listen ADDR --to ADDR");
        std::process::exit(2);
    };
    let options = SocketOptions {
        reuse_port: false,
        ..SocketOptions::default()
    };
    let front = udp_socket(listen, options).expect("bind --listen");
    let back_local = SocketAddr::new(to.ip(), 0);
    let back = udp_socket(
        if to.ip().is_loopback() {
            back_local
        } else {
            SocketAddr::new(listen.ip(), 0)
        },
        options,
    )
    .expect("bind back socket");
    let (front_fd, back_fd) = (front.as_raw_fd(), back.as_raw_fd());
    let mut batch = Batch::new(32);
    let mut client: Option<SocketAddr> = None;
    let mut forwarded: u64 = 0;
    let mut fds = [libc_pollfd(front_fd), libc_pollfd(back_fd)];
    eprintln!("bare_forwarder: {listen} -> {to}");
    loop {
        if poll(&mut fds) == 0 {
            continue;
        }
        for (fd, from_front) in [(front_fd, true), (back_fd, false)] {
            while let Ok(n) = batch.recv(fd) {
                for i in 0..n {
                    let len = batch.datagram_len(i);
                    let payload = Payload::Frame {
                        start: HEADROOM,
                        len,
                    };
                    if from_front {
                        client = batch.source(i).or(client);
                        batch.send(i, back_fd, payload, to);
                    } else if let Some(c) = client {
                        batch.send(i, front_fd, payload, c);
                    }
                }
                forwarded += batch.flush().sent;
                if n < 32 {
                    break;
                }
            }
        }
        if forwarded == u64::MAX {
            break;
        }
    }
}

fn libc_pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn poll(fds: &mut [libc::pollfd]) -> i32 {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) }
}

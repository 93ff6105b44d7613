//! The physical-limit yardstick for the benchmarks: a UDP forwarder that does
//! `recvmmsg`/`sendmmsg` and nothing else (no SIP parsing, no rewriting). Datagrams arriving
//! on `--listen` go to the fixed `--to` address from a second socket; datagrams arriving on
//! that socket go back to the last client seen on `--listen`. One thread, blocking poll.
//!
//! Build: `cargo build --release --example bare_forwarder`
//! Run:   `target/release/examples/bare_forwarder --listen 127.0.0.1:5060 --to 127.0.0.1:5090`

mod forwarder_common;

use sipshard::net::{Batch, Readiness};
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::Duration;

fn main() {
    let setup = forwarder_common::setup("bare_forwarder");
    let (front_fd, back_fd) = (setup.front.as_raw_fd(), setup.back.as_raw_fd());
    let mut batch = Batch::new(32);
    let client = Cell::new(None);
    let mut readiness = Readiness::new(&[front_fd, back_fd]);
    loop {
        if readiness.wait(Duration::from_millis(100)).unwrap_or(0) == 0 {
            continue;
        }
        for (fd, from_front) in [(front_fd, true), (back_fd, false)] {
            while let Ok(n) = batch.recv(fd) {
                for i in 0..n {
                    forwarder_common::forward(
                        &mut batch,
                        i,
                        from_front,
                        (front_fd, back_fd),
                        setup.to,
                        &client,
                    );
                }
                batch.flush();
                if n < 32 {
                    break;
                }
            }
        }
    }
}

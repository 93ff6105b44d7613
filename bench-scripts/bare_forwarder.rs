//! The physical-limit yardstick for the benchmarks: a UDP forwarder that does
//! `recvmmsg`/`sendmmsg` and nothing else (no SIP parsing, no rewriting). Datagrams arriving
//! on `--listen` go to the fixed `--to` address from a second socket; datagrams arriving on
//! that socket go back to the last client seen on `--listen`. One thread, blocking poll.
//! With `--residence`, it measures each datagram's residence time as sipshard does (kernel
//! receive timestamp to the end of the batch's send) and prints the histogram's summary to
//! stderr every second, so the two can be compared side by side.
//!
//! Build: `cargo build --release --example bare_forwarder`
//! Run:   `target/release/examples/bare_forwarder --listen 127.0.0.1:5060 --to 127.0.0.1:5090 [--residence]`

mod forwarder_common;

use sipshard::net::now_ns;
use sipshard::net::{enable_rx_timestamps, Batch, Readiness};
use sipshard::shard::residence::ResidenceHistogram;
use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let setup = forwarder_common::setup("bare_forwarder");
    let (front_fd, back_fd) = (setup.front.as_raw_fd(), setup.back.as_raw_fd());
    let mut batch = Batch::new(32);
    let residence = ResidenceHistogram::default();
    let measure = std::env::args().any(|a| a == "--residence");
    if measure {
        enable_rx_timestamps(front_fd).expect("SO_TIMESTAMPNS");
        enable_rx_timestamps(back_fd).expect("SO_TIMESTAMPNS");
        batch = batch.with_rx_timestamps();
    }
    let mut last_report = Instant::now();
    let client = Cell::new(None);
    let mut readiness = Readiness::new(&[front_fd, back_fd]);
    loop {
        if measure && last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("{}", residence.read().summary());
            last_report = Instant::now();
        }
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
                if measure {
                    let done = now_ns();
                    (0..n)
                        .filter_map(|i| batch.rx_time_ns(i))
                        .for_each(|rx| residence.record(rx, done));
                }
                if n < 32 {
                    break;
                }
            }
        }
    }
}

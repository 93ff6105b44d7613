//! The I/O model alone: `bare_forwarder`'s job (no SIP parsing, fixed destination) done the
//! way a sipshard shard does its I/O: one glommio executor, one task per socket, each
//! draining with `recvmmsg`, sending with `sendmmsg`, and parking on glommio (`peek_from`)
//! when its socket is empty (`sipshard::shard::runtime::serve`). Comparing it with
//! `bare_forwarder` (poll(2)) and `sipshard balance` at one rate separates the cost of the
//! I/O model from the cost of the SIP work.
//!
//! Build: `cargo build --release --example glommio_forwarder`
//! Run:   `target/release/examples/glommio_forwarder --listen 127.0.0.1:5060 --to 127.0.0.1:5090`

use sipshard::net::{udp_socket, Batch, Payload, SocketOptions, HEADROOM};
use sipshard::shard::runtime;
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn arg(name: &str) -> Option<SocketAddr> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let (Some(listen), Some(to)) = (arg("--listen"), arg("--to")) else {
        eprintln!("usage: glommio_forwarder --listen ADDR --to ADDR");
        std::process::exit(2);
    };
    let options = SocketOptions {
        reuse_port: false,
        ..SocketOptions::default()
    };
    let front = udp_socket(listen, options).expect("bind --listen");
    let back = udp_socket(SocketAddr::new(to.ip(), 0), options).expect("bind back socket");
    let stop = Arc::new(AtomicBool::new(false));
    eprintln!("glommio_forwarder: {listen} -> {to}");
    let handle = runtime::spawn_shard(0, false, "glommio-forwarder", move || async move {
        let (front_fd, back_fd) = (front.as_raw_fd(), back.as_raw_fd());
        let client: Rc<Cell<Option<SocketAddr>>> = Rc::default();
        let tasks = [(front_fd, true), (back_fd, false)].map(|(fd, from_front)| {
            let (client, stop) = (client.clone(), stop.clone());
            glommio::spawn_local(async move {
                let mut batch = Batch::new(32);
                runtime::serve(
                    fd,
                    &mut batch,
                    &stop,
                    |_| {},
                    |batch, i| {
                        let len = batch.datagram_len(i);
                        let payload = Payload::Frame {
                            start: HEADROOM,
                            len,
                        };
                        if from_front {
                            client.set(batch.source(i).or(client.get()));
                            batch.send(i, back_fd, payload, to);
                        } else if let Some(c) = client.get() {
                            batch.send(i, front_fd, payload, c);
                        }
                    },
                    |_| {},
                )
                .await
            })
            .detach()
        });
        for task in tasks {
            task.await;
        }
        drop((front, back));
    })
    .expect("executor starts");
    let _ = handle.join();
}

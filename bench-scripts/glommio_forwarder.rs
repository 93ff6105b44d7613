//! The I/O model alone: `bare_forwarder`'s job (no SIP parsing, fixed destination) done the
//! way a sipshard shard does its I/O: one glommio executor, one task per socket, each
//! draining with `recvmmsg`, sending with `sendmmsg`, and parking on glommio (`peek_from`)
//! when its socket is empty (`sipshard::net::runtime::serve`). Comparing it with
//! `bare_forwarder` (poll(2)) and `sipshard balance` at one rate separates the cost of the
//! I/O model from the cost of the SIP work.
//!
//! Build: `cargo build --release --example glommio_forwarder`
//! Run:   `target/release/examples/glommio_forwarder --listen 127.0.0.1:5060 --to 127.0.0.1:5090`

mod forwarder_common;

use sipshard::net::runtime;
use sipshard::net::Batch;
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() {
    let setup = forwarder_common::setup("glommio_forwarder");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = runtime::spawn_shard(0, false, "glommio-forwarder", move || async move {
        let fds = (setup.front.as_raw_fd(), setup.back.as_raw_fd());
        let client: Rc<Cell<Option<SocketAddr>>> = Rc::default();
        let tasks = [(fds.0, true), (fds.1, false)].map(|(fd, from_front)| {
            let (client, stop, to) = (client.clone(), stop.clone(), setup.to);
            glommio::spawn_local(async move {
                let mut batch = Batch::new(32);
                runtime::serve(
                    fd,
                    &mut batch,
                    &stop,
                    |_| {},
                    |batch, i| forwarder_common::forward(batch, i, from_front, fds, to, &client),
                    |_| {},
                )
                .await
            })
            .detach()
        });
        for task in tasks {
            task.await;
        }
        drop(setup);
    })
    .expect("executor starts");
    let _ = handle.join();
}

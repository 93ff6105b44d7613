//! The per-core machinery shared by the balancer and the responder: a pinned glommio
//! executor per shard, and the drain loop of one socket.

use crate::net::{readiness_waiter, Batch, FlushReport};
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often an idle socket task looks at the stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// Starts shard `index` on its own thread: a glommio executor pinned to the `index`-th
/// online core when `pin` is set. Locked memory is kept small (64 KiB of I/O memory), so
/// it starts for an ordinary user too.
pub fn spawn_shard<T, F, Fut>(
    index: usize,
    pin: bool,
    name: &str,
    run: F,
) -> Result<glommio::ExecutorJoinHandle<T>, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let placement = match cores.get(index) {
        Some(core) if pin => Placement::Fixed(core.id),
        _ => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(&format!("{name}-{index}"))
        .io_memory(64 << 10)
        .ring_depth(256)
        .spawn(run)
        .map_err(|e| e.to_string())
}

/// Drains `fd` in batches of `batch`'s size while it has data, calling `on_datagram` for
/// each datagram and sending what the slots produced after each batch; parks on glommio
/// while the socket is idle; `on_flush` sees each batch's send report. Returns, with the
/// send totals, once `stop` is set.
pub async fn serve(
    fd: RawFd,
    batch: &mut Batch,
    stop: &AtomicBool,
    mut on_batch_start: impl FnMut(usize),
    mut on_datagram: impl FnMut(&mut Batch, usize),
    mut on_flush: impl FnMut(&FlushReport),
) -> FlushReport {
    let mut totals = FlushReport::default();
    let Ok(waiter) = readiness_waiter(fd) else {
        return totals;
    };
    // After a partial batch the socket is (almost surely) empty: park at once rather than
    // spend a recvmmsg on EAGAIN.
    let mut drained = false;
    while !stop.load(Ordering::Acquire) {
        let received = if drained {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            batch.recv(fd)
        };
        match received {
            Ok(n) => {
                drained = n < batch.capacity();
                on_batch_start(n);
                for i in 0..n {
                    on_datagram(batch, i);
                }
                let report = batch.flush();
                on_flush(&report);
                totals.sent += report.sent;
                totals.would_block += report.would_block;
                totals.failed += report.failed;
                // A ready socket never parks: let timers and other tasks run.
                glommio::yield_if_needed().await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                drained = false;
                let mut probe = [0u8; 1];
                let readable = async {
                    let _ = waiter.peek_from(&mut probe).await;
                };
                let tick = async {
                    glommio::timer::sleep(IDLE_CHECK).await;
                };
                futures_lite::future::or(readable, tick).await;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => glommio::timer::sleep(Duration::from_millis(1)).await,
        }
    }
    totals
}

//! The per-core machinery shared by the balancer and the responder: a pinned glommio
//! executor per shard, and the drain loop of one socket.

use crate::net::{readiness_waiter, Batch, FlushReport, Readiness};
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
) -> Result<glommio::ExecutorJoinHandle<T>, SpawnError>
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
        .map_err(|e| SpawnError {
            thread: format!("{name}-{index}"),
            reason: e.to_string(),
        })
}

/// A pinned executor that could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start executor {thread}: {reason}")]
pub struct SpawnError {
    /// The executor's thread name (`NAME-INDEX`).
    pub thread: String,
    /// glommio's reason.
    pub reason: String,
}

/// The `n` datagrams just received: `on_datagram` for each, then one send of what they
/// produced.
fn handle_and_send(
    batch: &mut Batch,
    n: usize,
    mut on_datagram: impl FnMut(&mut Batch, usize),
) -> FlushReport {
    for i in 0..n {
        on_datagram(batch, i);
    }
    batch.flush()
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
                let report = handle_and_send(batch, n, &mut on_datagram);
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

/// What [`serve_sockets`] calls back.
pub trait SocketHandler {
    /// A batch of `n` datagrams arrived on socket `k`.
    fn batch_start(&mut self, _k: usize, _n: usize) {}
    /// Datagram `i` of the batch, from socket `k`: decide, queue sends in `batch`.
    fn datagram(&mut self, k: usize, batch: &mut Batch, i: usize);
    /// The batch was sent (`batch` still tells what was received).
    fn flushed(&mut self, _batch: &Batch, _report: &FlushReport) {}
    /// Called at least every `tick` (and after each round of draining).
    fn tick(&mut self) {}
}

/// Serves `fds` from the calling thread until `stop` is set: takes one batch from each
/// readable socket in turn (so a socket that stays full cannot starve the others), sends what
/// each batch produced, and once every socket has come back with a partial batch (it is
/// empty), blocks in one `poll(2)` over all of them, waking at least every `tick` (for the
/// stop flag and [`SocketHandler::tick`]). The thread runs nothing else meanwhile: this is
/// for a shard whose only work is its sockets, where it parks as cheaply as a bare poll loop.
///
/// With a non-zero `busy_poll`, an idle shard first polls without blocking for that long
/// before it blocks: the thread stays on its core, so a datagram arriving meanwhile is taken
/// without the wake-up latency of a parked thread (large in a VM, whose idle vCPU halts), at
/// the price of the CPU spent spinning.
pub fn serve_sockets(
    fds: &[RawFd],
    batch: &mut Batch,
    stop: &AtomicBool,
    tick: Duration,
    busy_poll: Duration,
    handler: &mut impl SocketHandler,
) {
    let mut readiness = Readiness::new(fds);
    readiness.mark_all_ready();
    while !stop.load(Ordering::Acquire) {
        for (k, &fd) in fds.iter().enumerate() {
            if !readiness.is_ready(k) {
                continue;
            }
            match batch.recv(fd) {
                Ok(n) => {
                    handler.batch_start(k, n);
                    let report =
                        handle_and_send(batch, n, |batch, i| handler.datagram(k, batch, i));
                    handler.flushed(batch, &report);
                    if n < batch.capacity() {
                        readiness.mark_drained(k);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Empty (WouldBlock), or an error to report later: wait for it again.
                Err(_) => readiness.mark_drained(k),
            }
        }
        handler.tick();
        if !readiness.any_ready() && park(&mut readiness, tick, busy_poll).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits for a readable socket: spins for up to `busy_poll` with non-blocking polls, then
/// blocks for up to `tick`.
fn park(readiness: &mut Readiness, tick: Duration, busy_poll: Duration) -> io::Result<usize> {
    if !busy_poll.is_zero() {
        let until = std::time::Instant::now() + busy_poll;
        while std::time::Instant::now() < until {
            let ready = readiness.wait(Duration::ZERO)?;
            if ready > 0 {
                return Ok(ready);
            }
            std::hint::spin_loop();
        }
    }
    readiness.wait(tick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;

    /// Records which socket each datagram came from, in order; stops after `total`.
    struct Recorder {
        order: Vec<usize>,
        total: usize,
        stop: Arc<AtomicBool>,
        deadline: std::time::Instant,
    }

    impl SocketHandler for Recorder {
        fn datagram(&mut self, k: usize, _batch: &mut Batch, _i: usize) {
            self.order.push(k);
            if self.order.len() == self.total {
                self.stop.store(true, Ordering::Release);
            }
        }

        fn tick(&mut self) {
            // A lost datagram must fail the test, not hang it.
            if std::time::Instant::now() > self.deadline {
                self.stop.store(true, Ordering::Release);
            }
        }
    }

    #[test]
    fn a_socket_that_stays_full_does_not_starve_the_other() {
        let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Far more than one batch waits on the busy socket before serving starts.
        // (Within the default receive buffer: nothing may be dropped.)
        const BUSY: usize = 200;
        for _ in 0..BUSY {
            sender.send_to(b"x", busy.local_addr().unwrap()).unwrap();
        }
        for _ in 0..3 {
            sender.send_to(b"y", quiet.local_addr().unwrap()).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut recorder = Recorder {
            order: Vec::new(),
            total: BUSY + 3,
            stop: stop.clone(),
            deadline: std::time::Instant::now() + Duration::from_secs(10),
        };
        let mut batch = Batch::new(32);
        let fds = [busy.as_raw_fd(), quiet.as_raw_fd()];
        serve_sockets(
            &fds,
            &mut batch,
            &stop,
            Duration::from_millis(5),
            Duration::ZERO,
            &mut recorder,
        );
        assert_eq!(recorder.order.len(), BUSY + 3);
        // The quiet socket is served right after the busy one's first batch.
        let first_quiet = recorder.order.iter().position(|&k| k == 1).unwrap();
        assert_eq!(first_quiet, 32, "{:?}", &recorder.order[..40]);
    }

    #[test]
    fn a_busy_polling_shard_takes_datagrams_that_come_while_it_spins_and_after() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut recorder = Recorder {
            order: Vec::new(),
            total: 20,
            stop: stop.clone(),
            deadline: std::time::Instant::now() + Duration::from_secs(10),
        };
        // Datagrams 1 ms apart (within the 2 ms spin) and 20 ms apart (after it, parked).
        let sender = std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            for n in 0..20 {
                let gap = if n % 2 == 0 { 1 } else { 20 };
                std::thread::sleep(Duration::from_millis(gap));
                s.send_to(b"x", addr).unwrap();
            }
        });
        let mut batch = Batch::new(8);
        serve_sockets(
            &[socket.as_raw_fd()],
            &mut batch,
            &stop,
            Duration::from_millis(5),
            Duration::from_millis(2),
            &mut recorder,
        );
        sender.join().unwrap();
        assert_eq!(recorder.order.len(), 20);
    }
}

//! One load-generating worker: one socket on one executor. Two modes:
//! - calls: full INVITE/100/180/200/ACK/BYE/200 call flows, INVITE and BYE retransmitted
//!   with RFC 3261 timers (T1 doubling, BYE capped at T2), so loss shows up as
//!   retransmissions and timeouts, not hangs;
//! - messages: an open-loop stream of independent requests (OPTIONS, or INVITE answered
//!   with an ACK), not retransmitted, so loss shows up exactly as timeouts.
//!
//! The ACK and BYE of a call follow its route set (the 200's Record-Route), as a user
//! agent's would.
//!
//! New requests and retransmissions leave in `sendmmsg` batches (an [`Outbox`]); responses
//! are drained with `recvmmsg`, and ACK/BYE go back in the same batch's `sendmmsg`.

use super::route_sets::RouteSets;
use crate::net::runtime;
use crate::net::{
    udp_socket, Batch, BindError, Outbox, Payload, SocketOptions, HEADROOM, OUTBOX_DATAGRAM,
};
use crate::sip::{self, Headers};
use arrayvec::ArrayVec;
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 3261 T1.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2.
const T2: Duration = Duration::from_secs(4);
/// Requests in flight tracked at once (a ring; a request still open when its slot comes
/// round again counts as timed out).
const RING: usize = 1 << 18;
/// New requests per send that the default pacing aims at.
const SEND_BURST: f64 = 8.0;
/// Bounds of the default time between two sends of new requests.
const SEND_INTERVAL_MIN: Duration = Duration::from_micros(100);
const SEND_INTERVAL_MAX: Duration = Duration::from_millis(1);
/// How often retransmissions and timeouts are serviced.
const TIMER_SCAN: Duration = Duration::from_millis(20);

/// What a worker generates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Full call flows.
    Calls,
    /// Independent requests of this method (OPTIONS or INVITE).
    Messages(String),
}

/// Why a load did not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A worker's socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A worker's executor did not start.
    #[error(transparent)]
    Spawn(#[from] runtime::SpawnError),
    /// A worker failed while running (its executor's error, or its histograms could not be
    /// merged).
    #[error("a load worker failed: {0}")]
    Worker(String),
}

/// One worker's share of the load.
#[derive(Clone, Debug)]
pub struct WorkerLoad {
    /// Worker index (in the Call-IDs, so workers never collide).
    pub index: usize,
    /// Where requests go.
    pub target: SocketAddr,
    /// Local address (port 0: ephemeral).
    pub local: SocketAddr,
    /// Mode.
    pub mode: Mode,
    /// Offered requests (messages) or calls per second, for this worker.
    pub rate: f64,
    /// Time between two sends of new requests.
    pub send_interval: Duration,
    /// Stop offering after this long.
    pub duration: Option<Duration>,
    /// Stop offering after this many.
    pub count: Option<u64>,
    /// A request or call not finished this long after it started counts as timed out.
    pub timeout: Duration,
    /// Core to pin to.
    pub core: Option<usize>,
}

/// Live counters a worker updates and the progress line reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests or calls started.
    pub offered: AtomicU64,
    /// Finished with a 2xx.
    pub completed: AtomicU64,
    /// Finished with a 3xx–6xx.
    pub failed: AtomicU64,
    /// Not finished within the timeout.
    pub timed_out: AtomicU64,
    /// Retransmissions sent.
    pub retransmissions: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Datagrams received.
    pub received: AtomicU64,
    /// Datagrams the socket could not take.
    pub send_failures: AtomicU64,
    /// Set when the worker has finished.
    pub finished: AtomicBool,
}

/// What a worker measured.
#[derive(Clone, Debug)]
pub struct WorkerResult {
    /// Request → final response (messages), or INVITE → 200 (calls), microseconds.
    pub latency_us: Histogram<u64>,
    /// INVITE → 200 to the BYE (calls mode only), microseconds.
    pub call_us: Histogram<u64>,
    /// The local address used.
    pub local: SocketAddr,
}

/// A histogram of 1 µs .. 1 h with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Free,
    /// Waiting for the final response to the first request (INVITE, or the message).
    Requesting,
    /// Calls: 200 received, ACK and BYE sent, waiting for the BYE's 200.
    Byeing,
}

#[derive(Clone, Copy)]
struct Slot {
    n: u64,
    phase: Phase,
    started: Instant,
    last_sent: Instant,
    interval: Duration,
    to_tag: [u8; 32],
    to_tag_len: u8,
}

impl Slot {
    fn free() -> Self {
        let now = Instant::now();
        Slot {
            n: u64::MAX,
            phase: Phase::Free,
            started: now,
            last_sent: now,
            interval: T1,
            to_tag: [0; 32],
            to_tag_len: 0,
        }
    }
}

/// The request kinds a worker writes.
#[derive(Clone, Copy)]
enum Request {
    /// The first request: INVITE (calls) or the message's method.
    First,
    /// ACK to a 2xx (new branch) or a non-2xx (the INVITE's branch).
    Ack { for_2xx: bool },
    /// BYE (calls).
    Bye,
}

struct Worker {
    load: WorkerLoad,
    local: SocketAddr,
    run: u32,
    slots: Vec<Slot>,
    next: u64,
    oldest: u64,
    progress: Arc<Progress>,
    latency: Histogram<u64>,
    call: Histogram<u64>,
    /// The calls' route sets, which their ACK and BYE follow.
    routes: RouteSets,
}

impl Worker {
    fn method(&self) -> &str {
        match &self.load.mode {
            Mode::Calls => "INVITE",
            Mode::Messages(m) => m,
        }
    }

    fn slot(&mut self, n: u64) -> Option<&mut Slot> {
        let slot = &mut self.slots[(n % RING as u64) as usize];
        (slot.n == n && slot.phase != Phase::Free).then_some(slot)
    }

    /// Writes request `kind` of number `n` into `out`; returns its length.
    fn write(&self, out: &mut [u8], n: u64, kind: Request, to_tag: &[u8]) -> usize {
        let total = out.len();
        let mut w = &mut out[..];
        let (local, target, run, worker) =
            (self.local, self.load.target, self.run, self.load.index);
        let first = self.method();
        let (method, cseq, branch) = match kind {
            Request::First => (first, 1, 'f'),
            Request::Ack { for_2xx: true } => ("ACK", 1, 'a'),
            Request::Ack { for_2xx: false } => ("ACK", 1, 'f'),
            Request::Bye => ("BYE", 2, 'b'),
        };
        let _ = write!(
            w,
            "{method} sip:service@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{run}-{worker}-{n}-{branch};rport\r\n\
             Max-Forwards: 70\r\n"
        );
        if let (Request::Ack { for_2xx: true } | Request::Bye, Some(route)) =
            (kind, self.routes.get(n))
        {
            let _ = w.write_all(b"Route: ");
            let _ = w.write_all(route);
            let _ = w.write_all(b"\r\n");
        }
        let _ = write!(
            w,
            "From: <sip:bench@{local}>;tag=b{n}\r\nTo: <sip:service@{target}>"
        );
        if !to_tag.is_empty() {
            let _ = w.write_all(b";tag=");
            let _ = w.write_all(to_tag);
        }
        let _ = write!(
            w,
            "\r\nCall-ID: {n}-{worker}-{run}@sipshard-bench\r\nCSeq: {cseq} {method}\r\nContact: <sip:bench@{local}>\r\nContent-Length: 0\r\n\r\n"
        );
        total - w.len()
    }

    /// Starts request or call number `next`, queued in `outbox`.
    fn start_one(&mut self, now: Instant, outbox: &mut Outbox) {
        let n = self.next;
        let slot = (n % RING as u64) as usize;
        if self.slots[slot].phase != Phase::Free {
            self.progress.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        self.slots[slot] = Slot {
            n,
            phase: Phase::Requesting,
            started: now,
            last_sent: now,
            ..Slot::free()
        };
        self.next += 1;
        self.progress.offered.fetch_add(1, Ordering::Relaxed);
        let target = self.load.target;
        outbox.queue(target, |buf| self.write(buf, n, Request::First, &[]));
    }

    /// Retransmits what is due (calls mode) and times out what is too old.
    fn scan_timers(&mut self, now: Instant, outbox: &mut Outbox, fd: i32) {
        let retransmit = self.load.mode == Mode::Calls;
        while self.oldest < self.next && self.slot(self.oldest).is_none() {
            self.oldest += 1;
        }
        for n in self.oldest..self.next {
            let Some(slot) = self.slot(n).copied() else {
                continue;
            };
            if now.duration_since(slot.started) > self.load.timeout {
                self.progress.timed_out.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.slot(n) {
                    s.phase = Phase::Free;
                }
                continue;
            }
            if !retransmit || now.duration_since(slot.last_sent) < slot.interval {
                continue;
            }
            if outbox.is_full() {
                self.flush(outbox, fd);
            }
            let tag = slot.to_tag;
            let kind = if slot.phase == Phase::Byeing {
                Request::Bye
            } else {
                Request::First
            };
            let target = self.load.target;
            outbox.queue(target, |buf| {
                self.write(buf, n, kind, &tag[..slot.to_tag_len as usize])
            });
            self.progress
                .retransmissions
                .fetch_add(1, Ordering::Relaxed);
            if let Some(s) = self.slot(n) {
                s.last_sent = now;
                s.interval = if s.phase == Phase::Byeing {
                    (s.interval * 2).min(T2)
                } else {
                    s.interval * 2
                };
            }
        }
    }

    fn flush(&self, outbox: &mut Outbox, fd: i32) {
        let (sent, dropped) = outbox.flush(fd);
        self.progress.sent.fetch_add(sent, Ordering::Relaxed);
        self.progress
            .send_failures
            .fetch_add(dropped, Ordering::Relaxed);
    }

    /// Handles a response; writes ACK/BYE into `reply`, returning (offset, len) of each.
    fn on_response(
        &mut self,
        datagram: &[u8],
        reply: &mut [u8],
        now: Instant,
    ) -> ArrayVec<(usize, usize), 2> {
        let mut sends = ArrayVec::new();
        let mut headers = Headers::<32>::new();
        let Ok(msg) = sip::parse(datagram, &mut headers) else {
            return sends;
        };
        let Some(code) = msg.status() else {
            return sends;
        };
        let Some(n) = msg
            .call_id
            .split(|&b| b == b'-')
            .next()
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
        else {
            return sends;
        };
        let Some(slot) = self.slot(n).copied() else {
            return sends;
        };
        let tag: ArrayVec<u8, 32> = msg
            .to_addr()
            .and_then(|t| t.tag)
            .map(|t| t.iter().copied().take(32).collect())
            .unwrap_or_default();
        let calls = self.load.mode == Mode::Calls;
        let is_invite = msg.cseq.method == b"INVITE";
        let first = msg.cseq.method == self.method().as_bytes();
        if is_invite && (200..300).contains(&code) && slot.phase == Phase::Requesting {
            self.routes.learn(n, &msg);
        }
        let mut push = |worker: &Worker, kind: Request| {
            let offset = sends.iter().map(|(o, l)| o + l).max().unwrap_or(0);
            if let Some(buf) = reply.get_mut(offset..offset + OUTBOX_DATAGRAM) {
                let len = worker.write(buf, n, kind, &tag);
                sends.push((offset, len));
            }
        };
        match (first, code, slot.phase) {
            (true, 100..=199, Phase::Requesting) => {
                // Proceeding: the server has it; stop retransmitting.
                if let Some(s) = self.slot(n) {
                    s.interval = Duration::from_secs(3600);
                }
            }
            (true, 200..=699, Phase::Requesting) => {
                let _ = self
                    .latency
                    .record(now.duration_since(slot.started).as_micros().max(1) as u64);
                let ok = code < 300;
                if is_invite {
                    push(self, Request::Ack { for_2xx: ok });
                }
                if ok && calls {
                    push(self, Request::Bye);
                    if let Some(s) = self.slot(n) {
                        s.phase = Phase::Byeing;
                        s.last_sent = now;
                        s.interval = T1;
                        s.to_tag[..tag.len()].copy_from_slice(&tag);
                        s.to_tag_len = tag.len() as u8;
                    }
                } else {
                    let counter = if ok {
                        &self.progress.completed
                    } else {
                        &self.progress.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = self.slot(n) {
                        s.phase = Phase::Free;
                    }
                }
            }
            // A retransmitted 200 to the INVITE: ACK it again.
            (true, 200..=299, Phase::Byeing) if is_invite => {
                push(self, Request::Ack { for_2xx: true })
            }
            (false, 200..=699, Phase::Byeing) if msg.cseq.method == b"BYE" => {
                let counter = if code < 300 {
                    &self.progress.completed
                } else {
                    &self.progress.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if code < 300 {
                    let _ = self
                        .call
                        .record(now.duration_since(slot.started).as_micros().max(1) as u64);
                }
                if let Some(s) = self.slot(n) {
                    s.phase = Phase::Free;
                }
            }
            _ => {}
        }
        sends
    }

    fn open(&self) -> bool {
        (self.oldest..self.next).any(|n| {
            let s = &self.slots[(n % RING as u64) as usize];
            s.n == n && s.phase != Phase::Free
        })
    }

    fn done_offering(&self, elapsed: Duration) -> bool {
        self.load.duration.is_some_and(|d| elapsed >= d)
            || self.load.count.is_some_and(|c| self.next >= c)
    }
}

/// The default time between two sends of new requests at `rate` per second: about
/// `SEND_BURST` requests a send, within 100 µs..1 ms. (A burst of a whole millisecond's
/// requests at once would queue behind itself in every hop and inflate the latencies the
/// tool measures.)
pub fn send_interval(rate: f64) -> Duration {
    let ideal = SEND_BURST / rate.max(1.0);
    Duration::from_secs_f64(ideal.clamp(
        SEND_INTERVAL_MIN.as_secs_f64(),
        SEND_INTERVAL_MAX.as_secs_f64(),
    ))
}

/// Starts a worker on its own executor; it runs the load to completion (offer, then wait
/// for what is open, up to the timeout) and returns its histograms.
pub fn spawn(
    load: WorkerLoad,
    progress: Arc<Progress>,
) -> Result<glommio::ExecutorJoinHandle<WorkerResult>, BenchError> {
    let bind = BindError::at(load.local);
    let socket = udp_socket(
        load.local,
        SocketOptions {
            reuse_port: false,
            ..SocketOptions::default()
        },
    )
    .map_err(bind)?;
    let local = socket
        .local_addr()
        .map_err(bind)?
        .as_socket()
        .ok_or_else(|| bind(std::io::Error::other("the socket has no IP address")))?;
    let local = if local.ip().is_unspecified() {
        SocketAddr::new(unspecified_to_loopback(local.ip()), local.port())
    } else {
        local
    };
    let pin = load.core.is_some();
    Ok(runtime::spawn_shard(
        load.core.unwrap_or(load.index),
        pin,
        "bench",
        move || async move {
            let fd = socket.as_raw_fd();
            let worker = Rc::new(RefCell::new(Worker {
                load,
                local,
                run: std::process::id(),
                slots: vec![Slot::free(); RING],
                next: 0,
                oldest: 0,
                progress: progress.clone(),
                latency: histogram(),
                call: histogram(),
                routes: RouteSets::default(),
            }));
            let stop = Rc::new(AtomicBool::new(false));
            let receiver = {
                let (worker, stop, progress) = (worker.clone(), stop.clone(), progress.clone());
                glommio::spawn_local(async move {
                    let mut batch = Batch::with_fanout(64, 2);
                    runtime::serve(
                        fd,
                        &mut batch,
                        &stop,
                        |n| {
                            progress.received.fetch_add(n as u64, Ordering::Relaxed);
                        },
                        |batch, i| {
                            let len = batch.datagram_len(i);
                            let Some(source) = batch.source(i) else {
                                return;
                            };
                            let (slot, reply) = batch.slot_mut(i);
                            let sends = worker.borrow_mut().on_response(
                                &slot[HEADROOM..HEADROOM + len],
                                reply,
                                Instant::now(),
                            );
                            for (offset, len) in sends {
                                batch.send(i, fd, Payload::Reply { offset, len }, source);
                            }
                        },
                        |_| {},
                    )
                    .await
                })
                .detach()
            };
            let tick = worker.borrow().load.send_interval;
            let mut outbox = Outbox::new(64);
            let started = Instant::now();
            let mut last_scan = started;
            loop {
                let now = Instant::now();
                let elapsed = now.duration_since(started);
                {
                    let mut w = worker.borrow_mut();
                    if !w.done_offering(elapsed) {
                        let due = (elapsed.as_secs_f64() * w.load.rate) as u64;
                        let due = w.load.count.map_or(due, |c| due.min(c));
                        while w.next < due {
                            if outbox.is_full() {
                                w.flush(&mut outbox, fd);
                            }
                            w.start_one(now, &mut outbox);
                        }
                    }
                    if now.duration_since(last_scan) >= TIMER_SCAN {
                        w.scan_timers(now, &mut outbox, fd);
                        last_scan = now;
                    }
                    if !outbox.is_empty() {
                        w.flush(&mut outbox, fd);
                    }
                    if w.done_offering(elapsed) && !w.open() {
                        break;
                    }
                }
                glommio::timer::sleep(tick).await;
            }
            stop.store(true, Ordering::Release);
            if let Some(report) = receiver.await {
                progress.sent.fetch_add(report.sent, Ordering::Relaxed);
                progress
                    .send_failures
                    .fetch_add(report.would_block + report.failed, Ordering::Relaxed);
            }
            drop(socket);
            progress.finished.store(true, Ordering::Release);
            let w = worker.borrow();
            WorkerResult {
                latency_us: w.latency.clone(),
                call_us: w.call.clone(),
                local,
            }
        },
    )?)
}

fn unspecified_to_loopback(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    }
}

//! A SIP call generator (UAC): full INVITE/100/180/200/ACK/BYE/200 call flows at a constant
//! offered rate, each call with its own Call-ID and tags, INVITE and BYE retransmitted with
//! RFC 3261 timers (T1 doubling, capped at T2 for BYE) so loss shows up as retransmissions
//! and timeouts, not hangs. Latency histograms (hdrhistogram) for call setup (INVITE → 200)
//! and the whole call (INVITE → 200 to BYE).
//!
//! One glommio executor, one socket; received datagrams are drained with `recvmmsg` and
//! ACK/BYE answers go out with `sendmmsg`.

use crate::net::{udp_socket, Batch, Payload, SocketOptions, HEADROOM};
use crate::shard::runtime;
use crate::sip::{self, Headers};
use arrayvec::ArrayVec;
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// RFC 3261 T1.
const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2.
const T2: Duration = Duration::from_secs(4);
/// Calls tracked at once (a ring; a call still open when its slot comes round again is
/// counted as timed out).
const RING: usize = 1 << 18;
/// How often retransmissions and the offered rate are serviced.
const TICK: Duration = Duration::from_millis(1);

/// What to run.
#[derive(Clone, Debug)]
pub struct CallLoad {
    /// Where INVITEs go (the balancer, or a SIP server).
    pub target: SocketAddr,
    /// Local IP to send from.
    pub local_ip: IpAddr,
    /// Offered calls per second.
    pub rate: u32,
    /// How long calls are offered.
    pub duration: Duration,
    /// A call not finished this long after its INVITE counts as timed out (Timer B is 64·T1).
    pub timeout: Duration,
    /// Core to pin the generator to.
    pub core: Option<usize>,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct CallReport {
    /// Calls started.
    pub offered: u64,
    /// Calls that completed (200 to the BYE).
    pub completed: u64,
    /// Calls that got a final error response to INVITE or BYE.
    pub failed: u64,
    /// Calls without an answer within the timeout.
    pub timed_out: u64,
    /// INVITE and BYE retransmissions sent.
    pub retransmissions: u64,
    /// Datagrams sent and received.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// INVITE → 200, microseconds.
    pub setup_us: Histogram<u64>,
    /// INVITE → 200 to the BYE, microseconds.
    pub call_us: Histogram<u64>,
    /// From the first INVITE to the end of the drain.
    pub elapsed: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Free,
    Inviting,
    Byeing,
}

#[derive(Clone, Copy)]
struct Call {
    n: u64,
    phase: Phase,
    started: Instant,
    last_sent: Instant,
    interval: Duration,
    to_tag: [u8; 32],
    to_tag_len: u8,
}

impl Default for Call {
    fn default() -> Self {
        let now = Instant::now();
        Call {
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

struct Engine {
    fd: RawFd,
    local: SocketAddr,
    target: SocketAddr,
    run: u32,
    calls: Vec<Call>,
    next: u64,
    oldest: u64,
    report: CallReport,
    scratch: ArrayVec<u8, 1024>,
}

impl Engine {
    fn slot(&mut self, n: u64) -> Option<&mut Call> {
        let call = &mut self.calls[(n % RING as u64) as usize];
        (call.n == n && call.phase != Phase::Free).then_some(call)
    }

    /// Formats a request of call `n` into `out`.
    fn write_request(
        &self,
        out: &mut ArrayVec<u8, 1024>,
        n: u64,
        method: &str,
        cseq: u32,
        branch: char,
        to_tag: &[u8],
    ) {
        out.clear();
        let (local, target, run) = (self.local, self.target, self.run);
        let _ = write!(
            out,
            "{method} sip:service@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{run}-{n}-{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=b{n}\r\nTo: <sip:service@{target}>"
        );
        if !to_tag.is_empty() {
            let _ = out.try_extend_from_slice(b";tag=");
            let _ = out.try_extend_from_slice(to_tag);
        }
        let _ = write!(
            out,
            "\r\nCall-ID: {n}-{run}@sipshard-bench\r\nCSeq: {cseq} {method}\r\nContact: <sip:bench@{local}>\r\nContent-Length: 0\r\n\r\n"
        );
    }

    fn send_now(&mut self, n: u64, method: &str, cseq: u32, branch: char, to_tag: &[u8]) {
        let mut out = std::mem::take(&mut self.scratch);
        self.write_request(&mut out, n, method, cseq, branch, to_tag);
        if send_to(self.fd, &out, self.target) {
            self.report.sent += 1;
        }
        self.scratch = out;
    }

    fn start_call(&mut self, now: Instant) {
        let n = self.next;
        self.next += 1;
        let slot = (n % RING as u64) as usize;
        if self.calls[slot].phase != Phase::Free {
            self.report.timed_out += 1;
        }
        self.calls[slot] = Call {
            n,
            phase: Phase::Inviting,
            started: now,
            last_sent: now,
            interval: T1,
            ..Call::default()
        };
        self.report.offered += 1;
        self.send_now(n, "INVITE", 1, 'i', &[]);
    }

    /// Retransmits what is due and times out what is too old.
    fn service_timers(&mut self, now: Instant, timeout: Duration) {
        let mut n = self.oldest;
        while n < self.next {
            let Some(call) = self.slot(n).copied() else {
                if n == self.oldest {
                    self.oldest += 1;
                }
                n += 1;
                continue;
            };
            if now.duration_since(call.started) > timeout {
                self.report.timed_out += 1;
                if let Some(c) = self.slot(n) {
                    c.phase = Phase::Free;
                }
            } else if now.duration_since(call.last_sent) >= call.interval {
                let tag = call.to_tag;
                let tag = &tag[..call.to_tag_len as usize];
                match call.phase {
                    Phase::Inviting => self.send_now(n, "INVITE", 1, 'i', &[]),
                    Phase::Byeing => self.send_now(n, "BYE", 2, 'b', tag),
                    Phase::Free => {}
                }
                self.report.retransmissions += 1;
                if let Some(c) = self.slot(n) {
                    c.last_sent = now;
                    c.interval = if c.phase == Phase::Byeing {
                        (c.interval * 2).min(T2)
                    } else {
                        c.interval * 2
                    };
                }
            }
            n += 1;
        }
    }

    /// Handles a response; writes what to send back (ACK, BYE) into `reply`, returning
    /// (offset, len) of each.
    fn on_response(
        &mut self,
        datagram: &[u8],
        reply: &mut [u8],
        now: Instant,
    ) -> ArrayVec<(usize, usize), 2> {
        let mut out = ArrayVec::new();
        let mut headers = Headers::<32>::new();
        let Ok(msg) = sip::parse(datagram, &mut headers) else {
            return out;
        };
        let Some(code) = msg.status() else {
            return out;
        };
        let Some(n) = msg
            .call_id
            .split(|&b| b == b'-')
            .next()
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
        else {
            return out;
        };
        let tag: ArrayVec<u8, 32> = msg
            .to_addr()
            .and_then(|t| t.tag)
            .map(|t| t.iter().copied().take(32).collect())
            .unwrap_or_default();
        let is_invite = msg.cseq.method == b"INVITE";
        let Some(call) = self.slot(n).copied() else {
            return out;
        };
        let mut push = |engine: &Engine, method: &str, cseq: u32, branch: char| {
            let mut text = ArrayVec::<u8, 1024>::new();
            engine.write_request(&mut text, n, method, cseq, branch, &tag);
            let offset = out.iter().map(|(o, l)| o + l).max().unwrap_or(0);
            if let Some(dst) = reply.get_mut(offset..offset + text.len()) {
                dst.copy_from_slice(&text);
                out.push((offset, text.len()));
            }
        };
        match (is_invite, code, call.phase) {
            (true, 100..=199, _) => {
                if let Some(c) = self.slot(n) {
                    // Proceeding: the server has it; stop retransmitting the INVITE.
                    c.interval = Duration::from_secs(3600);
                }
            }
            (true, 200..=299, Phase::Inviting) => {
                let _ = self
                    .report
                    .setup_us
                    .record(now.duration_since(call.started).as_micros() as u64);
                push(self, "ACK", 1, 'a');
                push(self, "BYE", 2, 'b');
                if let Some(c) = self.slot(n) {
                    c.phase = Phase::Byeing;
                    c.last_sent = now;
                    c.interval = T1;
                    c.to_tag[..tag.len()].copy_from_slice(&tag);
                    c.to_tag_len = tag.len() as u8;
                }
            }
            // A retransmitted 200: ACK it again.
            (true, 200..=299, Phase::Byeing) => push(self, "ACK", 1, 'a'),
            (true, 300..=699, Phase::Inviting) => {
                // ACK for a non-2xx goes in the INVITE's transaction (same branch).
                push(self, "ACK", 1, 'i');
                self.report.failed += 1;
                if let Some(c) = self.slot(n) {
                    c.phase = Phase::Free;
                }
            }
            (false, 200..=299, Phase::Byeing) => {
                self.report.completed += 1;
                let _ = self
                    .report
                    .call_us
                    .record(now.duration_since(call.started).as_micros() as u64);
                if let Some(c) = self.slot(n) {
                    c.phase = Phase::Free;
                }
            }
            (false, 300..=699, Phase::Byeing) => {
                self.report.failed += 1;
                if let Some(c) = self.slot(n) {
                    c.phase = Phase::Free;
                }
            }
            _ => {}
        }
        out
    }

    fn open_calls(&self) -> bool {
        (self.oldest..self.next).any(|n| {
            let c = &self.calls[(n % RING as u64) as usize];
            c.n == n && c.phase != Phase::Free
        })
    }
}

/// One datagram with `sendto` (new INVITEs and retransmissions).
fn send_to(fd: RawFd, data: &[u8], dest: SocketAddr) -> bool {
    let socket = std::mem::ManuallyDrop::new(socket_from_fd(fd));
    socket.send_to(data, &dest.into()).is_ok()
}

#[allow(unsafe_code)]
fn socket_from_fd(fd: RawFd) -> socket2::Socket {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` is an open socket owned by the caller's socket2::Socket; the result is
    // wrapped in ManuallyDrop by the only caller, so it is never closed twice.
    unsafe { socket2::Socket::from_raw_fd(fd) }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits: fixed bounds, cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// Runs the load to completion (offer for `duration`, then wait for open calls up to
/// `timeout`) and returns what happened.
pub fn run_calls(load: &CallLoad) -> Result<CallReport, String> {
    let socket = udp_socket(
        SocketAddr::new(load.local_ip, 0),
        SocketOptions {
            reuse_port: false,
            ..SocketOptions::default()
        },
    )
    .map_err(|e| format!("cannot bind {}: {e}", load.local_ip))?;
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("no local address")?;
    let load = load.clone();
    let pin = load.core.is_some();
    let handle = runtime::spawn_shard(load.core.unwrap_or(0), pin, "calls", move || async move {
        let fd = socket.as_raw_fd();
        let engine = Rc::new(RefCell::new(Engine {
            fd,
            local,
            target: load.target,
            run: std::process::id(),
            calls: vec![Call::default(); RING],
            next: 0,
            oldest: 0,
            report: CallReport {
                offered: 0,
                completed: 0,
                failed: 0,
                timed_out: 0,
                retransmissions: 0,
                sent: 0,
                received: 0,
                setup_us: histogram(),
                call_us: histogram(),
                elapsed: Duration::ZERO,
            },
            scratch: ArrayVec::new(),
        }));
        let stop = Rc::new(AtomicBool::new(false));
        let receiver = {
            let (engine, stop) = (engine.clone(), stop.clone());
            glommio::spawn_local(async move {
                let mut batch = Batch::with_fanout(32, 2);
                runtime::serve(
                    fd,
                    &mut batch,
                    &stop,
                    |n| engine.borrow_mut().report.received += n as u64,
                    |batch, i| {
                        let len = batch.datagram_len(i);
                        let Some(source) = batch.source(i) else {
                            return;
                        };
                        let (slot, reply) = batch.slot_mut(i);
                        let sends = engine.borrow_mut().on_response(
                            &slot[HEADROOM..HEADROOM + len],
                            reply,
                            Instant::now(),
                        );
                        for (offset, len) in sends {
                            batch.send(i, fd, Payload::Reply { offset, len }, source);
                        }
                    },
                )
                .await
            })
            .detach()
        };
        let started = Instant::now();
        let end_offer = started + load.duration;
        let mut offered = 0u64;
        loop {
            let now = Instant::now();
            if now < end_offer {
                let due = (now.duration_since(started).as_secs_f64() * f64::from(load.rate)) as u64;
                let mut e = engine.borrow_mut();
                while offered < due {
                    e.start_call(now);
                    offered += 1;
                }
            }
            engine.borrow_mut().service_timers(now, load.timeout);
            if now >= end_offer && (!engine.borrow().open_calls() || now > end_offer + load.timeout)
            {
                break;
            }
            glommio::timer::sleep(TICK).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(flush) = receiver.await {
            engine.borrow_mut().report.sent += flush.sent;
        }
        let mut report = engine.borrow().report.clone();
        report.elapsed = started.elapsed();
        drop(socket);
        report
    })?;
    handle.join().map_err(|e| e.to_string())
}

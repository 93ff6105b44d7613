//! The prober: one thread, one UDP socket, an OPTIONS request to every probed backend each
//! interval, at most one in flight per backend. It reports raw outcomes (a reply's status
//! and round-trip time, or a timeout); the controller turns them into states.

use crate::config::ProbePolicy;
use crate::sip::{self, Headers};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest the prober sleeps before looking at its stop flag and target list again.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Prefix of every probe's Call-ID (and Via branch), so replies are recognised.
const CALL_ID_PREFIX: &str = "sipshard-probe-";

/// A backend to probe and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Where to send OPTIONS.
    pub addr: SocketAddr,
    /// Interval and timeout (interval 0: not probed).
    pub policy: ProbePolicy,
}

/// What became of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// A final response arrived.
    Reply {
        /// Its status code.
        code: u16,
        /// Time since the probe was sent.
        rtt: Duration,
    },
    /// No final response within the timeout.
    Timeout,
}

/// A probe outcome for one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// The backend.
    pub addr: SocketAddr,
    /// The outcome.
    pub outcome: ProbeOutcome,
}

/// The running prober thread.
pub struct Prober {
    targets: mpsc::Sender<Vec<ProbeTarget>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
}

impl Prober {
    /// Binds `bind` (port 0 for an ephemeral port) and starts probing `targets`, sending
    /// each outcome through `report`.
    pub fn start(
        bind: SocketAddr,
        targets: Vec<ProbeTarget>,
        report: impl Fn(ProbeReport) + Send + 'static,
    ) -> io::Result<Prober> {
        let socket = UdpSocket::bind(bind)?;
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sipshard-probe".into())
            .spawn(move || {
                let mut state = ProbeLoop::new(socket, local, targets);
                state.run(&rx, &flag, &report);
            })?;
        Ok(Prober {
            targets: tx,
            stop,
            thread: Some(thread),
            local,
        })
    }

    /// The address probes come from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Replaces the target list (after a reload); backends that stay keep their schedule.
    pub fn set_targets(&self, targets: Vec<ProbeTarget>) {
        let _ = self.targets.send(targets);
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One probed backend's schedule.
struct Scheduled {
    target: ProbeTarget,
    next_due: Instant,
    /// Sequence number and send time of the probe in flight.
    in_flight: Option<(u64, Instant)>,
}

struct ProbeLoop {
    socket: UdpSocket,
    local: SocketAddr,
    scheduled: Vec<Scheduled>,
    sequence: u64,
    message: String,
}

impl ProbeLoop {
    fn new(socket: UdpSocket, local: SocketAddr, targets: Vec<ProbeTarget>) -> ProbeLoop {
        let mut state = ProbeLoop {
            socket,
            local,
            scheduled: Vec::new(),
            sequence: 0,
            message: String::with_capacity(512),
        };
        state.set_targets(targets);
        state
    }

    fn set_targets(&mut self, targets: Vec<ProbeTarget>) {
        let now = Instant::now();
        let mut old: HashMap<SocketAddr, Scheduled> = self
            .scheduled
            .drain(..)
            .map(|s| (s.target.addr, s))
            .collect();
        self.scheduled = targets
            .into_iter()
            .filter(|t| !t.policy.interval.is_zero())
            .map(|target| match old.remove(&target.addr) {
                Some(mut kept) => {
                    kept.target = target;
                    kept
                }
                None => Scheduled {
                    target,
                    next_due: now,
                    in_flight: None,
                },
            })
            .collect();
    }

    fn run(
        &mut self,
        targets: &mpsc::Receiver<Vec<ProbeTarget>>,
        stop: &AtomicBool,
        report: &dyn Fn(ProbeReport),
    ) {
        let mut buf = vec![0u8; 65535];
        while !stop.load(Ordering::Acquire) {
            while let Ok(list) = targets.try_recv() {
                self.set_targets(list);
            }
            let now = Instant::now();
            self.expire_and_send(now, report);
            let wait = self
                .scheduled
                .iter()
                .map(|s| match s.in_flight {
                    Some((_, sent)) => {
                        (sent + s.target.policy.timeout).saturating_duration_since(now)
                    }
                    None => s.next_due.saturating_duration_since(now),
                })
                .min()
                .unwrap_or(MAX_WAIT)
                .clamp(Duration::from_millis(1), MAX_WAIT);
            let _ = self.socket.set_read_timeout(Some(wait));
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                self.on_datagram(&buf[..n], from, report);
            }
        }
    }

    fn expire_and_send(&mut self, now: Instant, report: &dyn Fn(ProbeReport)) {
        for i in 0..self.scheduled.len() {
            let s = &mut self.scheduled[i];
            if let Some((_, sent)) = s.in_flight {
                if now.duration_since(sent) >= s.target.policy.timeout {
                    s.in_flight = None;
                    report(ProbeReport {
                        addr: s.target.addr,
                        outcome: ProbeOutcome::Timeout,
                    });
                }
            }
            let s = &self.scheduled[i];
            if s.in_flight.is_none() && now >= s.next_due {
                self.sequence += 1;
                let (addr, seq) = (s.target.addr, self.sequence);
                write_options(&mut self.message, addr, self.local, seq);
                // A failed send (no route, buffer full) is left to the timeout: the backend
                // is unreachable either way.
                if let Err(e) = self.socket.send_to(self.message.as_bytes(), addr) {
                    tracing::debug!(backend = %addr, error = %e, "probe send failed");
                }
                let s = &mut self.scheduled[i];
                s.in_flight = Some((seq, now));
                s.next_due = now + s.target.policy.interval;
            }
        }
    }

    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr, report: &dyn Fn(ProbeReport)) {
        let mut headers = Headers::<64>::new();
        let Ok(msg) = sip::parse(datagram, &mut headers) else {
            return;
        };
        let Some(code) = msg.status() else {
            return;
        };
        let Some(seq) = probe_sequence(msg.call_id) else {
            return;
        };
        if code < 200 {
            return;
        }
        let Some(s) = self
            .scheduled
            .iter_mut()
            .find(|s| s.in_flight.is_some_and(|(q, _)| q == seq))
        else {
            return; // Late: already counted as a timeout.
        };
        let Some((_, sent)) = s.in_flight.take() else {
            return;
        };
        if s.target.addr != from {
            tracing::debug!(backend = %s.target.addr, from = %from, "probe reply from another address");
        }
        report(ProbeReport {
            addr: s.target.addr,
            outcome: ProbeOutcome::Reply {
                code,
                rtt: sent.elapsed(),
            },
        });
    }
}

/// The sequence number of one of our probes' Call-IDs.
fn probe_sequence(call_id: &[u8]) -> Option<u64> {
    let rest = call_id.strip_prefix(CALL_ID_PREFIX.as_bytes())?;
    let digits = rest.split(|&b| b == b'@').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The OPTIONS request of probe `seq` to `to`, from `local`.
pub fn write_options(out: &mut String, to: SocketAddr, local: SocketAddr, seq: u64) {
    out.clear();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{CALL_ID_PREFIX}{seq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:sipshard@{local}>;tag=probe{seq}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {CALL_ID_PREFIX}{seq}@{local_ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: sipshard/{version}\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        local_ip = HostText(local),
        version = env!("CARGO_PKG_VERSION"),
    );
}

/// An address's host part as it goes in a Call-ID (IPv6 in brackets).
struct HostText(SocketAddr);

impl std::fmt::Display for HostText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => write!(f, "{}", a.ip()),
            SocketAddr::V6(a) => write!(f, "[{}]", a.ip()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_and_carry_their_sequence() {
        for (to, local) in [
            ("10.0.0.2:5060", "10.0.0.1:40000"),
            ("[2001:db8::2]:5060", "[2001:db8::1]:40000"),
        ] {
            let mut text = String::new();
            write_options(&mut text, to.parse().unwrap(), local.parse().unwrap(), 42);
            let mut headers = Headers::<64>::new();
            let msg = sip::parse_strict(text.as_bytes(), &mut headers).unwrap();
            assert_eq!(msg.method(), Some(&b"OPTIONS"[..]));
            assert_eq!(probe_sequence(msg.call_id), Some(42));
        }
        assert_eq!(probe_sequence(b"abc@host"), None);
    }
}

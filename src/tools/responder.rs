//! `sipshard responder`: a fast stateless SIP backend for tests and benchmarks.
//!
//! INVITE → 100, 180, 200 (To tag, Contact); ACK absorbed; CANCEL → 200, and 487 for the
//! INVITE; BYE, OPTIONS, REGISTER, MESSAGE and any other method → 200. Multi-core like the
//! balancer: one pinned executor and one SO_REUSEPORT socket per worker.

use crate::balance::call_id_hash;
use crate::net::runtime;
use crate::net::{reuseport_group, Batch, BindError, Payload, HEADROOM};
use crate::sip::hex16;
use crate::sip::reply_destination;
use crate::sip::{self, Echo, Extras, Headers, Status};
use arrayvec::ArrayVec;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Methods the responder counts separately.
pub const METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "other",
];

/// What a responder saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponderCounters {
    /// Requests by method, indexed like [`METHODS`].
    pub requests: [u64; METHODS.len()],
    /// Responses received (a responder sends no requests: these are strays).
    pub responses: u64,
    /// Datagrams that did not parse.
    pub unparsable: u64,
    /// Responses sent.
    pub sent: u64,
    /// Responses not sent (send buffer full, refused, or no room).
    pub send_failures: u64,
}

impl ResponderCounters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ResponderCounters) {
        for (a, b) in self.requests.iter_mut().zip(other.requests) {
            *a += b;
        }
        self.responses += other.responses;
        self.unparsable += other.unparsable;
        self.sent += other.sent;
        self.send_failures += other.send_failures;
    }

    /// Requests of `method` (one of [`METHODS`]).
    pub fn count(&self, method: &str) -> u64 {
        METHODS
            .iter()
            .position(|m| *m == method)
            .map_or(0, |i| self.requests[i])
    }
}

fn method_index(method: &[u8]) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(METHODS.len() - 1)
}

/// A running responder.
pub struct Responder {
    stop: Arc<AtomicBool>,
    shards: Vec<glommio::ExecutorJoinHandle<ResponderCounters>>,
    addr: SocketAddr,
}

/// Why a responder did not start.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    /// Its sockets could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A shard's executor did not start.
    #[error(transparent)]
    Spawn(#[from] runtime::SpawnError),
}

impl Responder {
    /// Binds `listen` (port 0: ephemeral) with `workers` shards and starts answering.
    pub fn start(
        listen: SocketAddr,
        workers: usize,
        pin: bool,
    ) -> Result<Responder, ResponderError> {
        let workers = workers.max(1);
        let (sockets, addr) = reuseport_group(listen, workers).map_err(BindError::at(listen))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut shards = Vec::with_capacity(workers);
        for (k, socket) in sockets.into_iter().enumerate() {
            let stop = stop.clone();
            let handle = runtime::spawn_shard(k, pin, "responder", move || async move {
                let contact = contact_header(addr);
                let mut counters = ResponderCounters::default();
                let mut batch = Batch::with_fanout(32, 3);
                let fd = socket.as_raw_fd();
                let report = runtime::serve(
                    fd,
                    &mut batch,
                    &stop,
                    |_| {},
                    |batch, i| {
                        answer(batch, i, fd, &contact, &mut counters);
                    },
                    |_| {},
                )
                .await;
                counters.sent = report.sent;
                counters.send_failures += report.would_block + report.failed;
                drop(socket);
                counters
            })?;
            shards.push(handle);
        }
        Ok(Responder { stop, shards, addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A flag that stops the responder when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Stops and returns what it saw.
    pub fn stop(self) -> ResponderCounters {
        self.stop.store(true, Ordering::Release);
        self.wait()
    }

    /// Waits for the stop flag, then returns what it saw.
    pub fn wait(self) -> ResponderCounters {
        let mut total = ResponderCounters::default();
        for shard in self.shards {
            if let Ok(c) = shard.join() {
                total.add(&c);
            }
        }
        total
    }
}

/// `Contact: <sip:responder@ADDR>` for the 2xx to an INVITE.
fn contact_header(addr: SocketAddr) -> ArrayVec<u8, 96> {
    let mut out = ArrayVec::new();
    let _ = out.try_extend_from_slice(b"Contact: <sip:responder@");
    let _ = std::io::Write::write_fmt(&mut out, format_args!("{addr}>\r\n"));
    out
}

/// Answers datagram `i` of the batch.
fn answer(
    batch: &mut Batch,
    i: usize,
    fd: RawFd,
    contact: &[u8],
    counters: &mut ResponderCounters,
) {
    let Some(source) = batch.source(i) else {
        counters.unparsable += 1;
        return;
    };
    let len = batch.datagram_len(i);
    let (slot, reply) = batch.slot_mut(i);
    let mut sends = ArrayVec::<(usize, usize), 3>::new();
    let Some(dest) = write_answers(
        &slot[HEADROOM..HEADROOM + len],
        reply,
        source,
        contact,
        counters,
        &mut sends,
    ) else {
        return;
    };
    for (offset, len) in sends {
        batch.send(i, fd, Payload::Reply { offset, len }, dest);
    }
}

/// Writes the responses to `datagram` one after another into `reply`; records each
/// (offset, length) in `sends` and returns where they go.
fn write_answers(
    datagram: &[u8],
    reply: &mut [u8],
    source: SocketAddr,
    contact: &[u8],
    counters: &mut ResponderCounters,
    sends: &mut ArrayVec<(usize, usize), 3>,
) -> Option<SocketAddr> {
    let mut headers = Headers::<64>::new();
    let Ok(msg) = sip::parse(datagram, &mut headers) else {
        counters.unparsable += 1;
        return None;
    };
    let Some(method) = msg.method() else {
        counters.responses += 1;
        return None;
    };
    counters.requests[method_index(method)] += 1;
    // An ACK is absorbed: Echo refuses to answer it.
    let echo = Echo::from_message(&msg).ok()?;
    let tag = to_tag(msg.call_id, msg.from_addr().and_then(|f| f.tag));
    let status = |code, reason| Status {
        code,
        reason,
        retry_after: None,
    };
    let plain = Extras::default();
    // The 180 and the 200 establish the dialog: Contact, and the Record-Route copied.
    let with_contact = Extras {
        headers: contact,
        record_route: true,
        ..Extras::default()
    };
    let answers: &[(Status, Extras<'_>)] = match method {
        b"INVITE" => &[
            (status(100, "Trying"), plain),
            (status(180, "Ringing"), with_contact),
            (status(200, "OK"), with_contact),
        ],
        b"CANCEL" => &[
            (status(200, "OK"), plain),
            (
                status(487, "Request Terminated"),
                Extras {
                    cseq_method: Some(b"INVITE"),
                    ..Extras::default()
                },
            ),
        ],
        _ => &[(status(200, "OK"), plain)],
    };
    let mut offset = 0;
    for &(status, extras) in answers {
        match sip::write_response(&mut reply[offset..], &echo, status, source, &tag, extras) {
            Ok(n) => {
                sends.push((offset, n));
                offset += n;
            }
            Err(_) => counters.send_failures += 1,
        }
    }
    Some(reply_destination(&msg.top_via.via, source))
}

/// A stable To tag per dialog: hex of a hash of Call-ID and From tag.
fn to_tag(call_id: &[u8], from_tag: Option<&[u8]>) -> [u8; 16] {
    let hash = call_id_hash(call_id) ^ from_tag.map_or(0, |t| call_id_hash(t).rotate_left(1));
    hex16(hash)
}

/// `sipshard responder` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ResponderArgs {
    /// Address to answer on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5060")]
    pub listen: SocketAddr,
    /// Worker cores (default: every online core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// Runs the responder until SIGINT or SIGTERM, then prints what it saw.
pub fn run(args: &ResponderArgs) -> std::process::ExitCode {
    let workers = args.workers.unwrap_or_else(crate::config::online_cores);
    let responder = match Responder::start(args.listen, workers, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sipshard responder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, responder.stop_flag());
    }
    eprintln!(
        "sipshard responder: answering on {} with {workers} worker(s)",
        responder.addr()
    );
    let seen = responder.wait();
    let per_method: Vec<String> = METHODS
        .iter()
        .zip(seen.requests)
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{m}={n}"))
        .collect();
    eprintln!(
        "sipshard responder: stopped; requests [{}], responses sent {}, unparsable {}, send failures {}",
        per_method.join(" "),
        seen.sent,
        seen.unparsable,
        seen.send_failures
    );
    std::process::ExitCode::SUCCESS
}

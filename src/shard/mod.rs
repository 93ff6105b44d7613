//! The data plane: one shard per worker core, each owning its public socket(s)
//! (SO_REUSEPORT), its internal socket, its copy of the backend snapshot and its counters.
//! A shard receives a batch, asks the proxy layer ([`crate::proxy`]) for each datagram's
//! verdict, and carries the verdicts out in one send per destination socket.
//!
//! Each shard runs on a glommio executor pinned to its core, which gives it its thread and
//! placement; the shard's loop does not park on glommio's io_uring but in one `poll(2)` over
//! its sockets ([`crate::net::runtime::serve_sockets`]), which costs less per datagram here.
//! Any shard may send on any internal socket (the Call-ID picks it, so every request of a
//! transaction leaves with the same Via sent-by); the kernel serialises concurrent sends on
//! one socket, and no user-space state is shared.

mod publish;
pub mod residence;
mod stateful;
mod stats;
mod steer;

pub use publish::{Publisher, ShardUpdate};

use crate::balance::{Backend, Snapshot};
use crate::logging::LogLimiter;
pub use crate::net::SteeringCounts;
use crate::net::{
    enable_rx_timestamps, reuseport_group, runtime, udp_socket, Batch, BindError, CallIdSteering,
    FlushReport, Handoffs, Payload, SocketOptions, Steering, HEADROOM,
};
use crate::proxy::txn::{Relay, RelayConfig};
use crate::proxy::{
    path_lines, Advertised, Arrival, BackendTally, DropReason, Exit, Forwarder, Mode,
    RecordRouting, Side, Verdict,
};
use crate::sip::BranchKey;
use socket2::Socket;
pub use stats::{BackendCounters, BackendStats, Counters, HandoffEvent, RelayCounters, ShardStats};
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Datagrams drained per `recvmmsg`.
pub const BATCH: usize = 32;

/// Drop log lines per reason per window, per shard.
const DROP_LOG_BURST: u32 = 10;
/// The window of [`DROP_LOG_BURST`].
const DROP_LOG_WINDOW: Duration = Duration::from_secs(10);

/// How often an idle shard wakes to look for a newly published backend snapshot and the
/// stop flag (a busy one looks after every batch).
pub const UPDATE_POLL: Duration = Duration::from_millis(5);

/// What the data plane needs to start.
#[derive(Clone, Debug)]
pub struct PlaneConfig {
    /// Public addresses to bind (port 0: an ephemeral port shared by all shards).
    pub listen: Vec<SocketAddr>,
    /// IP advertised in our Via for a listen address that is unspecified (0.0.0.0 / ::).
    pub advertise: Option<IpAddr>,
    /// Internal IP and base port (shard k binds base + k; `None`: ephemeral ports).
    pub internal_ip: IpAddr,
    /// First internal port.
    pub internal_base_port: Option<u16>,
    /// Backends.
    pub backends: Vec<Backend>,
    /// Number of shards.
    pub workers: usize,
    /// Pin shard k to the k-th online core.
    pub pin: bool,
    /// Branch secret.
    pub secret: Vec<u8>,
    /// Retry-After of a 503.
    pub retry_after: u32,
    /// Maglev table size.
    pub table_size: u32,
    /// Measure each datagram's residence time ([`residence`]).
    pub residence_time: bool,
    /// How datagrams to a public address are spread over the shards.
    pub steering: Steering,
    /// How long an idle shard polls without blocking before it parks (zero: it parks at once).
    pub busy_poll: Duration,
    /// Stay in the route set of the dialogs it forwards (Record-Route with the backend
    /// pinned).
    pub record_route: bool,
    /// Give a client's REGISTER our Path entry, carrying its source address.
    pub path: bool,
    /// A proxy (`balance`) or a redirect server (`redirect`).
    pub mode: Mode,
    /// The stateful mode's settings (`--mode stateful`); `None`: stateless.
    pub relay: Option<RelayConfig>,
}

/// Why the data plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be made or bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The backend table could not be built.
    #[error("backend table: {0}")]
    Table(#[from] crate::balance::MaglevError),
    /// A listen address is unspecified and no advertised IP of its family was given.
    #[error(
        "listen address {0} is unspecified: give an address to advertise in Via (--advertise)"
    )]
    NoAdvertise(SocketAddr),
    /// An executor could not start.
    #[error("shard {shard}: {message}")]
    Executor {
        /// Which shard.
        shard: usize,
        /// glommio's error.
        message: String,
    },
    /// The random spread over the shards could not be set up.
    #[error("cannot spread {addr} over the shards (--steering flow does without): {source}")]
    Steering {
        /// The listen address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Nothing to do.
    #[error("at least one worker, listen address and backend are needed")]
    Empty,
}

/// A running data plane.
pub struct Plane {
    /// The Call-ID programs of the public groups (their counters), while they run.
    steering: SteeringPrograms,
    stop: Arc<AtomicBool>,
    shards: Vec<glommio::ExecutorJoinHandle<()>>,
    stats: Vec<Arc<ShardStats>>,
    publisher: Publisher,
    public: Vec<SocketAddr>,
    internal: Vec<SocketAddr>,
}

impl Plane {
    /// What the Call-ID steering programs did, summed over the public addresses; `None`
    /// when none runs (`--steering random` or `flow`, one shard, or it could not load).
    pub fn steering_counts(&self) -> Option<SteeringCounts> {
        self.steering.counts()
    }

    /// The Call-ID steering programs, for the control thread's metrics.
    pub fn steering_programs(&self) -> SteeringPrograms {
        self.steering.clone()
    }
    /// The bound public addresses (ephemeral ports resolved).
    pub fn public_addrs(&self) -> &[SocketAddr] {
        &self.public
    }

    /// The bound internal addresses, one per shard.
    pub fn internal_addrs(&self) -> &[SocketAddr] {
        &self.internal
    }

    /// A flag that stops the plane when set (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Publishes new backend sets to every shard (for the control thread).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Each shard's live counters (read without stopping anything).
    pub fn shard_stats(&self) -> Vec<Arc<ShardStats>> {
        self.stats.clone()
    }

    /// Stops every shard and returns the summed counters.
    pub fn stop(self) -> Counters {
        total(&self.stop_each())
    }

    /// Stops every shard and returns each shard's counters.
    pub fn stop_each(self) -> Vec<Counters> {
        self.stop.store(true, Ordering::Release);
        self.wait_each()
    }

    /// Waits until the stop flag is set (by [`Plane::stop_flag`]) and the shards exit;
    /// returns each shard's counters.
    pub fn wait_each(self) -> Vec<Counters> {
        for shard in self.shards {
            let _ = shard.join();
        }
        self.stats.iter().map(|s| s.read()).collect()
    }
}

/// The residence histograms of `shards`, summed.
pub fn residence_total(shards: &[Arc<ShardStats>]) -> residence::Residence {
    let mut total = residence::Residence::default();
    for s in shards {
        total.add(&s.residence.read());
    }
    total
}

/// The sum of per-shard counters.
pub fn total(shards: &[Counters]) -> Counters {
    let mut total = Counters::default();
    for c in shards {
        total.add(c);
    }
    total
}

fn bind(addr: SocketAddr, reuse_port: bool) -> Result<Socket, StartError> {
    udp_socket(
        addr,
        SocketOptions {
            reuse_port,
            ..SocketOptions::default()
        },
    )
    .map_err(|e| BindError::at(addr)(e).into())
}

fn local_addr(socket: &Socket, fallback: SocketAddr) -> SocketAddr {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(fallback)
}

/// Starts the data plane.
pub fn start(config: &PlaneConfig) -> Result<Plane, StartError> {
    if config.workers == 0 || config.listen.is_empty() || config.backends.is_empty() {
        return Err(StartError::Empty);
    }
    let snapshot = Snapshot::new(&config.backends, config.table_size)?;
    let (publisher, receivers) = Publisher::new(config.workers, config.table_size);
    let first = publisher.updates_for(snapshot);

    // Internal sockets: one per shard, shared (by fd) by all shards for sending.
    let mut internal_sockets = Vec::with_capacity(config.workers);
    for k in 0..config.workers {
        let port = config
            .internal_base_port
            .map_or(0, |p| p.saturating_add(k as u16));
        internal_sockets.push(bind(SocketAddr::new(config.internal_ip, port), false)?);
    }
    let internal: Vec<SocketAddr> = internal_sockets
        .iter()
        .map(|s| local_addr(s, SocketAddr::new(config.internal_ip, 0)))
        .collect();

    // Public sockets: per listen address, one per shard in one SO_REUSEPORT group. An
    // ephemeral port is fixed by the first bind and shared by the rest.
    let mut public_sockets: Vec<Vec<Socket>> = (0..config.workers).map(|_| Vec::new()).collect();
    let mut steering = Vec::new();
    let mut public = Vec::new();
    for &listen in &config.listen {
        let (group, bound) =
            reuseport_group(listen, config.workers).map_err(BindError::at(listen))?;
        if group.len() > 1 {
            if let Some(program) = steer::steer(config.steering, &group, listen)? {
                steering.push(program);
            }
        }
        for (sockets, socket) in public_sockets.iter_mut().zip(group) {
            sockets.push(socket);
        }
        let ip = if bound.ip().is_unspecified() {
            match config.advertise {
                Some(ip) if ip.is_ipv4() == bound.is_ipv4() => ip,
                _ => return Err(StartError::NoAdvertise(listen)),
            }
        } else {
            bound.ip()
        };
        public.push(SocketAddr::new(ip, bound.port()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let internal_sockets = Arc::new(internal_sockets);
    // The stateful mode's channels between shards, for client requests that reach a shard
    // other than their call's owner.
    let handoffs = (config.relay.is_some() && config.workers > 1).then(|| {
        Arc::new(Handoffs::new(
            config.workers,
            stateful::HANDOFF_LEN,
            stateful::HANDOFF_MAX,
        ))
    });
    let mut shards = Vec::with_capacity(config.workers);
    let stats: Vec<Arc<ShardStats>> = (0..config.workers).map(|_| Arc::default()).collect();
    let setups = public_sockets.into_iter().zip(first).zip(receivers);
    for (k, ((public_sockets, first), updates)) in setups.enumerate() {
        let shard = ShardSetup {
            index: k,
            public_sockets,
            internal_sockets: internal_sockets.clone(),
            first,
            updates,
            stats: stats[k].clone(),
            public: public.clone(),
            internal: internal.clone(),
            secret: config.secret.clone(),
            retry_after: config.retry_after,
            residence_time: config.residence_time,
            busy_poll: config.busy_poll,
            record_route: config.record_route,
            path: config.path,
            mode: config.mode,
            handoffs: handoffs.clone(),
            relay: config
                .relay
                .clone()
                .filter(|_| config.mode == Mode::Proxy)
                .map(|relay| RelayConfig {
                    retry_after: config.retry_after,
                    ..relay
                }),
            stop: stop.clone(),
        };
        let handle =
            runtime::spawn_shard(k, config.pin, "sipshard", move || shard.run()).map_err(|e| {
                StartError::Executor {
                    shard: k,
                    message: e.reason,
                }
            })?;
        shards.push(handle);
    }
    Ok(Plane {
        steering: SteeringPrograms(Arc::new(steering)),
        stop,
        shards,
        stats,
        publisher,
        public,
        internal,
    })
}

/// The Call-ID steering programs of a plane's public addresses, shared with the control
/// thread (which reads their counts for the metrics).
#[derive(Clone)]
pub struct SteeringPrograms(Arc<Vec<CallIdSteering>>);

impl SteeringPrograms {
    /// What the programs did, summed; `None` when there are none.
    pub fn counts(&self) -> Option<SteeringCounts> {
        if self.0.is_empty() {
            return None;
        }
        let mut total = SteeringCounts::default();
        for program in self.0.iter() {
            if let Ok(counts) = program.counts() {
                total.add(counts);
            }
        }
        Some(total)
    }
}

/// What one shard starts with (moved into its executor thread).
struct ShardSetup {
    index: usize,
    public_sockets: Vec<Socket>,
    internal_sockets: Arc<Vec<Socket>>,
    first: ShardUpdate,
    updates: mpsc::Receiver<ShardUpdate>,
    stats: Arc<ShardStats>,
    public: Vec<SocketAddr>,
    internal: Vec<SocketAddr>,
    secret: Vec<u8>,
    retry_after: u32,
    residence_time: bool,
    busy_poll: Duration,
    record_route: bool,
    path: bool,
    mode: Mode,
    relay: Option<RelayConfig>,
    handoffs: Option<Arc<Handoffs>>,
    stop: Arc<AtomicBool>,
}

/// The fds a shard's tasks send on.
struct Exits {
    /// (fd, is IPv4) of this shard's public sockets.
    public: Vec<(RawFd, bool)>,
    /// Every internal socket's fd, by index.
    internal: Vec<RawFd>,
}

impl Exits {
    /// A socket to send on when no other is named (the first public one).
    fn any(&self) -> RawFd {
        self.public.first().map_or(-1, |&(fd, _)| fd)
    }

    fn fd(&self, exit: Exit, dest: SocketAddr, arrived_on: RawFd) -> RawFd {
        match exit {
            Exit::Same => arrived_on,
            Exit::Internal(k) => self.internal.get(k).copied().unwrap_or(arrived_on),
            Exit::Public => self
                .public
                .iter()
                .find(|(_, v4)| *v4 == dest.is_ipv4())
                .map_or(arrived_on, |(fd, _)| *fd),
        }
    }
}

/// What a shard works with (one thread: `RefCell`).
struct ShardState {
    forwarder: Forwarder,
    exits: Exits,
    stats: Arc<ShardStats>,
    /// Per-backend counters, aligned with the forwarder's snapshot.
    backend_stats: RefCell<Vec<Arc<BackendStats>>>,
    /// This shard's index (a log field).
    index: usize,
    /// Log budget per drop reason.
    log: RefCell<LogLimiter<{ DropReason::COUNT }>>,
    /// The transaction layer, in stateful mode.
    stateful: Option<stateful::Stateful>,
}

impl ShardState {
    /// Swaps in a published backend set: snapshot and counters together, between two
    /// datagrams.
    fn apply(&self, update: ShardUpdate) {
        self.forwarder.replace_snapshot(update.snapshot);
        *self.backend_stats.borrow_mut() = update.backend_stats;
        self.stats.set_generation(update.generation);
    }

    /// Counts `n` drops for `reason` (none: nothing) and logs them within the budget.
    fn dropped(&self, reason: DropReason, n: u64, source: Option<SocketAddr>) {
        if n > 0 {
            self.stats.drop_n(reason, n);
            log_drop(self, reason, source);
        }
    }

    /// Counts a message to or from a backend in its per-backend counters.
    fn tally(&self, tally: BackendTally) {
        if let Some(backend) = self.backend_stats.borrow().get(usize::from(tally.index)) {
            match tally.status {
                0 => backend.request(tally.pinning, tally.role),
                status => backend.response(status),
            }
        }
    }
}

impl ShardSetup {
    async fn run(self) {
        let exits = Exits {
            public: self
                .public_sockets
                .iter()
                .map(|s| (s.as_raw_fd(), local_addr(s, self.public[0]).is_ipv4()))
                .collect(),
            internal: self
                .internal_sockets
                .iter()
                .map(|s| s.as_raw_fd())
                .collect(),
        };
        let state = ShardState {
            forwarder: Forwarder {
                key: BranchKey::new(&self.secret),
                snapshot: RefCell::new(self.first.snapshot),
                public: self.public.iter().map(|&a| Advertised::new(a)).collect(),
                internal: self.internal.iter().map(|&a| Advertised::new(a)).collect(),
                retry_after: self.retry_after,
                record_routing: self
                    .record_route
                    .then(|| RecordRouting::new(&self.public, &self.internal)),
                path_lines: self.path.then(|| path_lines(&self.internal)),
                mode: self.mode,
            },
            exits,
            stats: self.stats,
            backend_stats: RefCell::new(self.first.backend_stats),
            index: self.index,
            log: RefCell::new(LogLimiter::new(DROP_LOG_BURST, DROP_LOG_WINDOW)),
            stateful: self.relay.map(|config| {
                let key = BranchKey::new(&self.secret);
                let relay = Relay::new(config, key, crate::net::now_ns());
                let handoffs = self.handoffs.map(|h| (h, self.index));
                stateful::Stateful::new(relay, handoffs)
            }),
        };
        state.stats.set_generation(self.first.generation);
        let mut sockets: Vec<(RawFd, Side)> = self
            .public_sockets
            .iter()
            .map(|s| (s.as_raw_fd(), Side::Public))
            .collect();
        sockets.push((
            self.internal_sockets[self.index].as_raw_fd(),
            Side::Internal,
        ));
        let fds: Vec<RawFd> = sockets.iter().map(|&(fd, _)| fd).collect();
        let mut batch = Batch::new(BATCH);
        if self.residence_time {
            match fds.iter().try_for_each(|&fd| enable_rx_timestamps(fd)) {
                Ok(()) => batch = batch.with_rx_timestamps(),
                Err(e) => tracing::warn!(
                    shard = self.index,
                    "no receive timestamps ({e}): residence time not measured"
                ),
            }
        }
        let mut handler = ShardHandler {
            state: &state,
            sockets,
            updates: &self.updates,
        };
        // The shard's only work is its sockets: it parks in poll(2), which costs less per
        // wake-up than glommio's io_uring park (docs/benchmarks.md, "The I/O model").
        runtime::serve_sockets(
            &fds,
            &mut batch,
            &self.stop,
            UPDATE_POLL,
            self.busy_poll,
            &mut handler,
        );
        // The public sockets close here; the internal ones when the last shard lets go.
        drop(self.public_sockets);
    }
}

/// A shard's reactions to its sockets.
struct ShardHandler<'s> {
    state: &'s ShardState,
    /// Each socket's fd and side, by index.
    sockets: Vec<(RawFd, Side)>,
    updates: &'s mpsc::Receiver<ShardUpdate>,
}

impl runtime::SocketHandler for ShardHandler<'_> {
    fn batch_start(&mut self, _k: usize, n: usize) {
        self.state.stats.add_received(n as u64);
        if let Some(stateful) = &self.state.stateful {
            stateful.set_now(crate::net::now_ns());
        }
    }

    fn datagram(&mut self, k: usize, batch: &mut Batch, i: usize) {
        let (fd, side) = self.sockets[k];
        match &self.state.stateful {
            None => forward_slot(batch, i, fd, side, self.state),
            Some(stateful) => stateful::handle_slot(batch, i, fd, side, self.state, stateful),
        }
    }

    fn flushed(&mut self, batch: &Batch, report: &FlushReport) {
        if batch.collects_rx_times() {
            let done = crate::net::now_ns();
            for i in 0..batch.len() {
                if let Some(rx) = batch.rx_time_ns(i) {
                    self.state.stats.residence.record(rx, done);
                }
            }
        }
        self.state.stats.add_sent(report.sent);
        self.state
            .dropped(DropReason::SendBufferFull, report.would_block, None);
        self.state
            .dropped(DropReason::SendFailed, report.failed, None);
        if let Some(stateful) = &self.state.stateful {
            stateful.flush(self.state);
        }
    }

    /// A published backend set is swapped in between two batches; the relay's timers run.
    fn tick(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            self.state.apply(update);
        }
        if let Some(stateful) = &self.state.stateful {
            stateful.tick(self.state);
        }
    }
}

/// Handles datagram `i` of `batch` on the stateless path.
fn forward_slot(batch: &mut Batch, i: usize, fd: RawFd, side: Side, state: &ShardState) {
    if batch.truncated(i) {
        return state.dropped(DropReason::Truncated, 1, batch.source(i));
    }
    let Some(source) = batch.source(i) else {
        return state.dropped(DropReason::BadSource, 1, None);
    };
    let len = batch.datagram_len(i);
    let (slot, reply) = batch.slot_mut(i);
    // A slot sends at most one datagram here, so `send` always has room.
    if let Some(out) = forward_datagram(slot, reply, len, fd, side, source, state) {
        batch.send(i, out.fd, out.payload, out.dest);
    }
}

/// What one datagram sends: from which socket, which bytes (of its slot or its reply
/// buffer), to whom.
struct Out {
    fd: RawFd,
    payload: Payload,
    dest: SocketAddr,
}

/// The stateless decision for the datagram at `slot[HEADROOM..HEADROOM + len]`, which
/// arrived on `fd` (`side`) from `source`, carried out in place; counted.
#[inline]
fn forward_datagram(
    slot: &mut [u8],
    reply: &mut [u8],
    len: usize,
    fd: RawFd,
    side: Side,
    source: SocketAddr,
    state: &ShardState,
) -> Option<Out> {
    let arrival = Arrival { side, source };
    let verdict = state.forwarder.handle(arrival, slot, HEADROOM, len, reply);
    state.stats.record(&verdict);
    carry_out(verdict, fd, source, state)
}

/// What a verdict sends (a datagram that arrived on `fd` from `source`), its backend
/// counted; a drop is logged.
#[inline]
fn carry_out(verdict: Verdict, fd: RawFd, source: SocketAddr, state: &ShardState) -> Option<Out> {
    let (backend, out) = match verdict {
        Verdict::Forward {
            exit,
            dest,
            start,
            len,
            backend,
            ..
        } => {
            let fd = state.exits.fd(exit, dest, fd);
            let payload = Payload::Frame { start, len };
            (backend, Out { fd, payload, dest })
        }
        Verdict::Reply {
            dest, len, backend, ..
        } => {
            let payload = Payload::Reply { offset: 0, len };
            (backend, Out { fd, payload, dest })
        }
        Verdict::Drop(reason) => {
            log_drop(state, reason, Some(source));
            return None;
        }
    };
    if let Some(tally) = backend {
        state.tally(tally);
    }
    Some(out)
}

/// Logs a drop within the shard's per-reason budget: our own trouble (send failures, no
/// room) at warn, bad input at debug, keep-alives not at all.
#[cold]
fn log_drop(state: &ShardState, reason: DropReason, source: Option<SocketAddr>) {
    let ours = matches!(
        reason,
        DropReason::SendBufferFull
            | DropReason::SendFailed
            | DropReason::NoRoom
            | DropReason::ReplyTooLarge
    );
    let enabled = if ours {
        tracing::enabled!(tracing::Level::WARN)
    } else {
        tracing::enabled!(tracing::Level::DEBUG)
    };
    if !enabled || reason == DropReason::KeepAlive {
        return;
    }
    let Some(suppressed) = state
        .log
        .borrow_mut()
        .admit(reason as usize, std::time::Instant::now())
    else {
        return;
    };
    let (shard, reason) = (state.index, reason.label());
    let source = source.map(|s| s.to_string()).unwrap_or_default();
    if ours {
        tracing::warn!(shard, reason, source, suppressed, "datagram dropped");
    } else {
        tracing::debug!(shard, reason, source, suppressed, "datagram dropped");
    }
}

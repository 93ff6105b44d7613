//! `sipshard bench`: a SIP load generator with latency histograms. Offers calls or requests
//! at a constant rate from one or more workers (one core and socket each), prints a
//! one-line progress report every second and a final report (text or `--json`).

pub mod engine;
pub mod report;
mod route_sets;

use engine::{histogram, Progress, WorkerLoad};
pub use engine::{BenchError, Mode};
use report::{BenchReport, Percentiles};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `sipshard bench` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Where to send (the balancer, or a SIP server).
    #[arg(long, value_name = "ADDR")]
    pub target: SocketAddr,
    /// `calls` (INVITE/ACK/BYE flows) or `messages` (independent requests).
    #[arg(long, value_name = "MODE", default_value = "calls")]
    pub mode: BenchMode,
    /// Method of `messages` mode: OPTIONS or INVITE.
    #[arg(long, value_name = "METHOD", default_value = "OPTIONS")]
    pub method: String,
    /// Offered calls or requests per second (all workers together).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of offered load (default 10 unless --count is given).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Total calls or requests to offer.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Worker cores (each with its own socket).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    /// Local address to send from (port 0: ephemeral; worker k uses PORT+k).
    #[arg(long, value_name = "ADDR")]
    pub local: Option<SocketAddr>,
    /// Seconds after which an unanswered request or call counts as timed out.
    #[arg(long, value_name = "SECONDS", default_value_t = 32.0)]
    pub timeout: f64,
    /// First core to pin workers to (worker k on core FIRST+k); unpinned by default.
    #[arg(long, value_name = "CORE")]
    pub pin: Option<usize>,
    /// Print the final report as JSON (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Microseconds between two sends of new requests or calls, per worker (default: about
    /// 8 per send, between 100 and 1000 µs, so the offered rate is smooth at the scale of
    /// the latencies measured).
    #[arg(long, value_name = "US")]
    pub send_interval_us: Option<u64>,
}

/// Bench modes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// Full call flows.
    Calls,
    /// Independent requests.
    Messages,
}

/// A validated load.
#[derive(Clone, Debug)]
pub struct Load {
    /// Target.
    pub target: SocketAddr,
    /// Mode.
    pub mode: Mode,
    /// Total offered per second.
    pub rate: f64,
    /// Offer for this long.
    pub duration: Option<Duration>,
    /// Or this many.
    pub count: Option<u64>,
    /// Workers.
    pub workers: usize,
    /// Local address of worker 0.
    pub local: SocketAddr,
    /// Timeout.
    pub timeout: Duration,
    /// First core to pin to.
    pub pin: Option<usize>,
    /// Print a progress line every second.
    pub progress: bool,
    /// Time between two sends of new requests, per worker (`None`: [`engine::send_interval`]).
    pub send_interval: Option<Duration>,
}

impl Load {
    /// `rate` per second of `mode` toward `target`, with the command line's defaults: no
    /// duration or count (set one), one unpinned worker on an ephemeral port of the target's
    /// family (loopback toward loopback), a 32 s timeout, the default pacing, no progress lines.
    pub fn new(target: SocketAddr, mode: Mode, rate: f64) -> Load {
        let ip = if target.ip().is_loopback() {
            target.ip()
        } else if target.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        };
        Load {
            target,
            mode,
            rate,
            duration: None,
            count: None,
            workers: 1,
            local: SocketAddr::new(ip, 0),
            timeout: Duration::from_secs(32),
            pin: None,
            progress: false,
            send_interval: None,
        }
    }

    /// From the command line; the error says which flag is wrong.
    pub fn from_args(a: &BenchArgs) -> Result<Load, String> {
        if !(a.rate.is_finite() && a.rate > 0.0) {
            return Err(format!("--rate: {} is not a positive number", a.rate));
        }
        if a.workers == 0 {
            return Err("--workers: 0 is not allowed".into());
        }
        if !(a.timeout.is_finite() && a.timeout > 0.0) {
            return Err(format!("--timeout: {} is not a positive number", a.timeout));
        }
        let duration = match (a.duration, a.count) {
            (Some(d), _) if !(d.is_finite() && d > 0.0) => {
                return Err(format!("--duration: {d} is not a positive number"))
            }
            (Some(d), _) => Some(Duration::from_secs_f64(d)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        let mode = match a.mode {
            BenchMode::Calls => Mode::Calls,
            BenchMode::Messages => {
                let method = a.method.to_ascii_uppercase();
                if method != "OPTIONS" && method != "INVITE" {
                    return Err(format!("--method: {} is not OPTIONS or INVITE", a.method));
                }
                Mode::Messages(method)
            }
        };
        let send_interval = match a.send_interval_us {
            Some(0) => return Err("--send-interval-us: 0 is not allowed".into()),
            Some(us) if us > 1_000_000 => {
                return Err(format!("--send-interval-us: {us} is more than 1000000"))
            }
            us => us.map(Duration::from_micros),
        };
        let defaults = Load::new(a.target, mode, a.rate);
        Ok(Load {
            duration,
            count: a.count,
            workers: a.workers,
            local: a.local.unwrap_or(defaults.local),
            timeout: Duration::from_secs_f64(a.timeout),
            pin: a.pin,
            progress: !a.quiet,
            send_interval,
            ..defaults
        })
    }
}

/// Runs the load to completion and returns the merged report.
pub fn run_load(load: &Load) -> Result<BenchReport, BenchError> {
    let progress: Vec<Arc<Progress>> = (0..load.workers)
        .map(|_| Arc::new(Progress::default()))
        .collect();
    let mut handles = Vec::with_capacity(load.workers);
    for (k, progress) in progress.iter().enumerate() {
        let share = |total: u64| {
            total / load.workers as u64 + u64::from((k as u64) < total % load.workers as u64)
        };
        let local_port = if load.local.port() == 0 {
            0
        } else {
            load.local.port().saturating_add(k as u16)
        };
        handles.push(engine::spawn(
            WorkerLoad {
                index: k,
                target: load.target,
                local: SocketAddr::new(load.local.ip(), local_port),
                mode: load.mode.clone(),
                rate: load.rate / load.workers as f64,
                send_interval: load
                    .send_interval
                    .unwrap_or_else(|| engine::send_interval(load.rate / load.workers as f64)),
                duration: load.duration,
                count: load.count.map(share),
                timeout: load.timeout,
                core: load.pin.map(|first| first + k),
            },
            progress.clone(),
        )?);
    }
    let started = Instant::now();
    let sum = |pick: fn(&Progress) -> &std::sync::atomic::AtomicU64| -> u64 {
        progress
            .iter()
            .map(|p| pick(p).load(Ordering::Relaxed))
            .sum()
    };
    let mut last = (0u64, 0u64);
    let mut next_line = Duration::from_secs(1);
    while progress.iter().any(|p| !p.finished.load(Ordering::Acquire)) {
        std::thread::sleep(Duration::from_millis(50));
        if load.progress && started.elapsed() >= next_line {
            let msgs = sum(|p| &p.sent) + sum(|p| &p.received);
            let done = sum(|p| &p.completed);
            eprintln!(
                "[{:>4.0}s] offered {}  completed {} (+{}/s)  failed {}  timed out {}  retransmitted {}  msgs {}/s",
                started.elapsed().as_secs_f64(),
                sum(|p| &p.offered),
                done,
                done - last.0,
                sum(|p| &p.failed),
                sum(|p| &p.timed_out),
                sum(|p| &p.retransmissions),
                msgs - last.1
            );
            last = (done, msgs);
            next_line += Duration::from_secs(1);
        }
    }
    let mut latency = histogram();
    let mut call = histogram();
    for handle in handles {
        let result = handle
            .join()
            .map_err(|e| BenchError::Worker(e.to_string()))?;
        // Every worker's histograms have the same bounds as the merged ones.
        latency
            .add(&result.latency_us)
            .map_err(|e| BenchError::Worker(e.to_string()))?;
        call.add(&result.call_us)
            .map_err(|e| BenchError::Worker(e.to_string()))?;
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let (sent, received, completed) = (
        sum(|p| &p.sent),
        sum(|p| &p.received),
        sum(|p| &p.completed),
    );
    Ok(BenchReport {
        mode: match &load.mode {
            Mode::Calls => "calls".into(),
            Mode::Messages(m) => format!("messages ({m})"),
        },
        target: load.target.to_string(),
        workers: load.workers,
        rate: load.rate,
        elapsed_s: elapsed,
        offered: sum(|p| &p.offered),
        completed,
        failed: sum(|p| &p.failed),
        timed_out: sum(|p| &p.timed_out),
        retransmissions: sum(|p| &p.retransmissions),
        sent,
        received,
        send_failures: sum(|p| &p.send_failures),
        completed_per_s: completed as f64 / elapsed,
        msgs_per_s: (sent + received) as f64 / elapsed,
        latency_us: Percentiles::of(&latency),
        call_us: (load.mode == Mode::Calls).then(|| Percentiles::of(&call)),
    })
}

/// `sipshard bench`: exit 0 when every offered call or request completed.
pub fn run(args: &BenchArgs) -> ExitCode {
    let load = match Load::from_args(args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sipshard bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run_load(&load) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            if report.all_completed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sipshard bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn load(argv: &[&str]) -> Result<Load, String> {
        let full = ["bench", "--target", "127.0.0.1:5060"]
            .iter()
            .chain(argv)
            .copied();
        Load::from_args(&Wrapper::try_parse_from(full).unwrap().args)
    }

    #[test]
    fn pacing_defaults_to_small_sends_and_can_be_set() {
        assert_eq!(load(&[]).unwrap().send_interval, None);
        assert_eq!(engine::send_interval(40_000.0), Duration::from_micros(200));
        assert_eq!(engine::send_interval(1_000.0), Duration::from_millis(1));
        assert_eq!(engine::send_interval(10.0), Duration::from_millis(1));
        assert_eq!(engine::send_interval(1e6), Duration::from_micros(100));
        let set = load(&["--send-interval-us", "250"]).unwrap();
        assert_eq!(set.send_interval, Some(Duration::from_micros(250)));
        for (bad, says) in [("0", "0 is not allowed"), ("2000000", "more than 1000000")] {
            let e = load(&["--send-interval-us", bad]).unwrap_err();
            assert!(
                e.starts_with("--send-interval-us") && e.contains(says),
                "{e}"
            );
        }
        let e = load(&["--rate", "0"]).unwrap_err();
        assert!(e.starts_with("--rate"), "{e}");
    }
}

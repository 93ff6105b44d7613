//! A whole balancer (plane, control thread, endpoints) in the test process, in front of
//! backends played by the test: recording UDP backends that answer every request with a
//! 200 and remember which Call-IDs they saw.

use super::lab::response_to;
use sipshard::config::{BalanceArgs, BalanceConfig};
use sipshard::control::State;
use sipshard::sip::{self, Headers};
use sipshard::tools::balance::Balancer;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A TCP port free right now on 127.0.0.1 (for the HTTP endpoints).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a balancer in this process from command-line style arguments.
pub fn balancer(args: &BalanceArgs) -> Balancer {
    let config = BalanceConfig::from_args(args).expect("valid config");
    Balancer::start(args, &config).expect("balancer starts")
}

/// `sipshard balance` arguments as the command line gives them: a free loopback listen
/// port, `backends`, then `flags`.
pub fn balance_args(backends: &[SocketAddr], flags: &[&str]) -> BalanceArgs {
    let mut argv = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{}", free_udp_port()),
    ];
    for b in backends {
        argv.extend(["--backend".to_string(), b.to_string()]);
    }
    argv.extend(flags.iter().map(|f| f.to_string()));
    BalanceArgs::from_flags(argv).expect("valid flags")
}

/// Polls the control thread until `addr` is in `state` and every shard routes with the
/// backend set last published, or `limit` passes; returns the time it took.
pub fn wait_for_state(b: &Balancer, addr: SocketAddr, state: State, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = b.control().status().expect("control answers");
        let now = status
            .backends
            .iter()
            .find(|s| s.addr == addr)
            .map(|s| s.state);
        let applied = status
            .shard_generations
            .iter()
            .all(|&g| g == status.generation);
        if now == Some(state) && applied {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{addr} still {now:?} after {limit:?}, expected {state:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which backend (by index) saw each Call-ID.
pub type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// A UDP backend that answers every request with a 200 and records the Call-IDs of the
/// requests that are not probes.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RecordingBackend {
    /// Binds `addr` (port 0: any) and answers until stopped; backend `index` in `seen`.
    pub fn start(addr: SocketAddr, index: usize, seen: Seen) -> RecordingBackend {
        let socket = UdpSocket::bind(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Acquire) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let mut headers = Headers::<64>::new();
                let Ok(msg) = sip::parse(text.as_bytes(), &mut headers) else {
                    continue;
                };
                if !msg.is_request() {
                    continue;
                }
                let call_id = String::from_utf8_lossy(msg.call_id).into_owned();
                if !call_id.starts_with("sipshard-probe-") {
                    seen.lock().unwrap().insert(call_id, index);
                }
                let reply = response_to(&text, 200, "OK");
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        });
        RecordingBackend {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops answering and closes the socket.
    pub fn kill(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one OPTIONS per Call-ID through `balancer` from one client socket, a window of
/// them at a time, until each is answered (resending the unanswered ones). Panics if some
/// stay unanswered after a few rounds.
pub fn send_call_ids(balancer: SocketAddr, call_ids: &[String]) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let from = client.local_addr().unwrap();
    let mut pending: Vec<&String> = call_ids.iter().collect();
    let mut buf = vec![0u8; 65536];
    for _round in 0..10 {
        let mut answered = std::collections::HashSet::new();
        for chunk in pending.chunks(50) {
            for (i, call_id) in chunk.iter().enumerate() {
                let msg = super::lab::request(
                    "OPTIONS",
                    from,
                    &format!("z9hG4bKr{i}x{}", call_id.len()),
                    call_id,
                    "",
                );
                client.send_to(msg.as_bytes(), balancer).unwrap();
            }
            while let Ok((n, _)) = client.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Some(id) = super::lab::header(&text, "Call-ID") {
                    answered.insert(id);
                }
                if chunk.iter().all(|c| answered.contains(c.as_str())) {
                    break;
                }
            }
        }
        pending.retain(|c| !answered.contains(c.as_str()));
        if pending.is_empty() {
            return;
        }
    }
    panic!("{} requests never answered", pending.len());
}

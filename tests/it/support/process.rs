//! `sipshard balance` as a child process (for signals, exit status and logs), and what the
//! tests that drive one share.

use sipshard::tools::ctl;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One balancer under load at a time per test binary, so a small machine is not
/// oversubscribed.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the binary's balancer slot until dropped.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `127.0.0.1:port`.
pub fn loopback_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A `sipshard balance` child whose stderr is collected by a thread (so a chatty child never
/// blocks on a full pipe). Killed when dropped if still running.
pub struct BalancerProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl BalancerProcess {
    /// Starts `sipshard balance ARGS`, with `SIPSHARD_LOG` set to `log` (or unset).
    pub fn spawn(args: &[String], log: Option<&str>) -> BalancerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sipshard"));
        command.arg("balance").args(args);
        match log {
            Some(filter) => command.env("SIPSHARD_LOG", filter),
            None => command.env_remove("SIPSHARD_LOG"),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        BalancerProcess {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, which has not been waited for yet (so its pid
        // cannot have been reused); no memory effects.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Polls until `GET path` on `addr` (an HTTP endpoint of the child) answers 200, at most
    /// 20 s.
    pub fn wait_ready(&mut self, addr: SocketAddr, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("balancer exited early ({status}): {}", self.stderr());
            }
            if let Ok((200, _)) = ctl::request(addr, "GET", path) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} not answering within 20 s: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls for the exit (at most `within`); returns the status, the time it took and the
    /// whole stderr. Kills the child and fails if it does not exit in time.
    pub fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Duration, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("balancer did not exit within {within:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, took, self.stderr())
    }
}

impl Drop for BalancerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

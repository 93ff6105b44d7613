//! The HTTP endpoints (tiny_http, one thread each): metrics (`GET /metrics`) and the
//! control API (`GET /status`, `POST /reload`, `POST /backends/ADDR/enable|disable`, and
//! `GET /metrics` too). Every answer comes from the control thread.

use super::controller::{ControlHandle, Operation};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

/// How often a server thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Which endpoints a server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// `GET /metrics` only.
    Metrics,
    /// The control API and `GET /metrics`.
    Control,
}

/// A running HTTP server.
pub struct HttpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpServer {
    /// Binds `addr` and serves `endpoints` from its own thread.
    pub fn start(
        addr: SocketAddr,
        endpoints: Endpoints,
        control: ControlHandle,
    ) -> io::Result<HttpServer> {
        let server = Server::http(addr).map_err(io::Error::other)?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = match endpoints {
            Endpoints::Metrics => "sipshard-metrics",
            Endpoints::Control => "sipshard-ctl",
        };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match server.recv_timeout(POLL) {
                        Ok(Some(request)) => serve(request, endpoints, &control),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "http accept failed");
                            std::thread::sleep(POLL);
                        }
                    }
                }
            })?;
        Ok(HttpServer {
            stop,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are fixed ASCII strings of ours.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("ASCII header"))
}

fn text(code: u16, body: String) -> Response<io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn serve(request: Request, endpoints: Endpoints, control: &ControlHandle) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let response = match (endpoints, &method, path.as_str()) {
        (_, Method::Get, "/metrics") => match control.metrics() {
            Some(body) => text(200, body).with_header(header(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8",
            )),
            None => text(503, "the control thread did not answer\n".into()),
        },
        (Endpoints::Control, Method::Get, "/status") => match control.status() {
            Some(status) => match serde_json::to_string_pretty(&status) {
                Ok(json) => {
                    text(200, json + "\n").with_header(header("Content-Type", "application/json"))
                }
                Err(e) => text(500, format!("{e}\n")),
            },
            None => text(503, "the control thread did not answer\n".into()),
        },
        (Endpoints::Control, Method::Post, "/reload") => match control.reload() {
            Ok(summary) => text(200, summary + "\n"),
            Err(reason) => text(422, format!("reload refused: {reason}\n")),
        },
        (Endpoints::Control, Method::Post, p) if p.starts_with("/backends/") => {
            backend_command(p, control)
        }
        (_, _, "/metrics") | (Endpoints::Control, _, "/status" | "/reload") => {
            text(405, "method not allowed\n".into())
        }
        _ => text(404, "not found\n".into()),
    };
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, path, "http response not delivered");
    }
}

/// `/backends/ADDR/enable` or `/backends/ADDR/disable`.
fn backend_command(path: &str, control: &ControlHandle) -> Response<io::Cursor<Vec<u8>>> {
    let rest = &path["/backends/".len()..];
    let expected = "expected /backends/ADDR/enable, /disable or /drain\n";
    let Some((addr, action)) = rest.rsplit_once('/') else {
        return text(404, expected.into());
    };
    let operation = match action {
        "enable" => Operation::Enable,
        "disable" => Operation::Disable,
        "drain" => Operation::Drain,
        _ => return text(404, expected.into()),
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return text(400, format!("{addr:?} is not an IP:PORT address\n"));
    };
    match control.operate(addr, operation) {
        Ok(summary) => text(200, summary + "\n"),
        Err(reason) => text(404, format!("{reason}\n")),
    }
}

//! `sipshard ctl`: talks to a running balancer's control API (`--control ADDR`).

use crate::control::Status;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long `ctl` waits for the balancer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// `sipshard ctl` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct CtlArgs {
    /// The balancer's control address (its `--control`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5080")]
    pub control: SocketAddr,
    /// What to do.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// A `ctl` action.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum CtlAction {
    /// Print backends, states and traffic as a table.
    Status {
        /// Print the JSON document instead.
        #[arg(long)]
        json: bool,
    },
    /// Re-read the configuration file (like SIGHUP); prints what changed or why it was refused.
    Reload,
    /// Take a backend out of rotation (its calls move to the others).
    Disable {
        /// The backend, `IP:PORT`.
        backend: SocketAddr,
    },
    /// Drain a backend: no new calls, while its established dialogs keep reaching it (with
    /// `--record-route on`); `ctl status` shows when its in-dialog requests stop.
    Drain {
        /// The backend, `IP:PORT`.
        backend: SocketAddr,
    },
    /// Put a backend back after a disable or a drain (it takes the state its probes say).
    Enable {
        /// The backend, `IP:PORT`.
        backend: SocketAddr,
    },
}

/// Runs `sipshard ctl`: exit 0 on success, 1 when the balancer refused, 2 when unreachable.
pub fn run(args: &CtlArgs) -> ExitCode {
    let (method, path) = match &args.action {
        CtlAction::Status { .. } => ("GET", "/status".to_string()),
        CtlAction::Reload => ("POST", "/reload".to_string()),
        CtlAction::Disable { backend } => ("POST", format!("/backends/{backend}/disable")),
        CtlAction::Enable { backend } => ("POST", format!("/backends/{backend}/enable")),
        CtlAction::Drain { backend } => ("POST", format!("/backends/{backend}/drain")),
    };
    let (code, body) = match request(args.control, method, &path) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("sipshard ctl: {}: {e}", args.control);
            return ExitCode::from(2);
        }
    };
    if code != 200 {
        eprint!("sipshard ctl: {body}");
        return ExitCode::FAILURE;
    }
    match &args.action {
        CtlAction::Status { json: false } => match serde_json::from_str::<Status>(&body) {
            Ok(status) => print!("{}", status_table(&status)),
            Err(e) => {
                eprintln!("sipshard ctl: unexpected status document: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => print!("{body}"),
    }
    ExitCode::SUCCESS
}

/// One HTTP/1.1 request with an empty body; returns the status code and body.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}

/// The status as an aligned text table.
pub fn status_table(status: &Status) -> String {
    let mut rows = vec![[
        "BACKEND".to_string(),
        "WEIGHT".into(),
        "STATE".into(),
        "PROBE RTT".into(),
        "REQUESTS".into(),
        "CALLS/S".into(),
        "IN-DIALOG/S".into(),
        "1xx".into(),
        "2xx".into(),
        "3xx".into(),
        "4xx".into(),
        "5xx".into(),
        "6xx".into(),
    ]];
    for b in &status.backends {
        let rtt = match (b.probed, b.probe_rtt_ms) {
            (false, _) => "off".to_string(),
            (true, None) => "-".to_string(),
            (true, Some(ms)) => format!("{ms:.2} ms"),
        };
        let r = b.responses;
        rows.push([
            b.addr.to_string(),
            b.weight.to_string(),
            if b.drained {
                format!("{}, drained", b.state.label())
            } else {
                b.state.label().to_string()
            },
            rtt,
            b.requests.to_string(),
            format!("{:.1}", b.new_calls_per_s),
            format!("{:.1}", b.in_dialog_per_s),
            r[0].to_string(),
            r[1].to_string(),
            r[2].to_string(),
            r[3].to_string(),
            r[4].to_string(),
            r[5].to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let shards: Vec<String> = status
        .shard_generations
        .iter()
        .map(u64::to_string)
        .collect();
    out.push_str(&format!(
        "workers {}, reloads {} ok / {} refused, backend set {} (shards: {})\n",
        status.workers,
        status.reloads,
        status.reloads_failed,
        status.generation,
        shards.join(", ")
    ));
    if status.stateful {
        let live: Vec<String> = status.transactions.iter().map(u64::to_string).collect();
        let failures: Vec<String> = status
            .backends
            .iter()
            .filter(|b| b.failures > 0)
            .map(|b| format!("{} {}", b.addr, b.failures))
            .collect();
        out.push_str(&format!(
            "stateful: transactions {} (shards: {}), failovers away from: {}\n",
            status.transactions.iter().sum::<u64>(),
            live.join(", "),
            if failures.is_empty() {
                "none".to_string()
            } else {
                failures.join(", ")
            }
        ));
    }
    out
}

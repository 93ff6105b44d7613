//! `sipshard` command line: dispatch only.

use clap::{Parser, Subcommand};
use sipshard::config::BalanceArgs;
use sipshard::proxy::Mode;
use sipshard::tools::{self, bench::BenchArgs, ctl::CtlArgs, responder::ResponderArgs};
use std::process::ExitCode;

/// A thread-per-core SIP load balancer.
#[derive(Parser)]
#[command(name = "sipshard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer in front of a farm of SIP servers.
    // Boxed: the balancer's options are far larger than the other commands'.
    Balance(Box<BalanceArgs>),
    /// Run a redirect server in front of a farm: answer each new call with a 302 naming the
    /// backend `balance` would pick (same options as `balance`).
    Redirect(Box<BalanceArgs>),
    /// Run a fast SIP responder (a backend for tests and benchmarks).
    Responder(ResponderArgs),
    /// Drive SIP load at a target and report throughput and latency.
    Bench(BenchArgs),
    /// Run the built-in demo on an embedded default (no setup needed).
    Demo,
    /// Control a running balancer: status, reload, enable/disable a backend.
    Ctl(CtlArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Balance(args) => tools::balance::run(&args),
        Command::Redirect(args) => tools::balance::run_as(Mode::Redirect, &args),
        Command::Responder(args) => tools::responder::run(&args),
        Command::Bench(args) => tools::bench::run(&args),
        Command::Demo => tools::demo::run(),
        Command::Ctl(args) => tools::ctl::run(&args),
    }
}

//! `sipshard` command line: dispatch only.

use clap::{Parser, Subcommand};
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
    /// Run the built-in demo on an embedded default (no setup needed).
    Demo,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo => sipshard::tools::demo::run(),
    }
}

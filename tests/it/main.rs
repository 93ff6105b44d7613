//! The integration tests, one crate: each module was a test binary of its own, and they share
//! `support` (a test balancer farm, a lab of sockets, child processes, the counting allocator
//! and the fuzz checks the corpus replay runs).
//!
//! Tests that put a balancer under load take `support::process::serial()` so that two of
//! them never share this 2-core machine's CPUs.

mod support;

mod alloc;
mod alloc_forward;
mod balance_messages;
mod bench;
mod branch;
mod cancel_across_shards;
mod cli;
mod config;
mod drain;
mod edge_lab;
mod fuzz_corpus;
mod health;
mod layering;
mod live_calls;
mod logs;
mod maglev;
mod metrics;
mod parse;
mod properties;
mod redirect;
mod reload;
mod reply;
mod responder;
mod rewrite;
mod rfc4475;
mod route_set;
mod shutdown;
mod sipp_e2e;
mod stateful;
mod steering;

//! Tools shipped in the same binary as the balancer.

pub mod balance;
pub mod bench;
pub mod ctl;
pub mod demo;
pub mod responder;

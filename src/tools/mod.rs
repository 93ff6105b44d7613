//! Tools shipped in the same binary as the balancer.

pub mod balance;
pub mod calls;
pub mod demo;
pub mod responder;

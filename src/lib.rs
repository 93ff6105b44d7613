//! sipshard: a thread-per-core SIP (RFC 3261) load balancer.
//!
//! This crate holds the SIP wire layer ([`sip`]); the data plane, tools and control
//! plane build on it.

#![deny(unsafe_code)]

pub mod sip;
pub mod tools;

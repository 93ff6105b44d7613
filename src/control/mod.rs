//! The control side (threads off the packet path): health probing, the controller that
//! publishes backend sets to the shards, reload, metrics and the HTTP endpoints.

pub mod controller;
pub mod health;
pub mod http;
pub mod metrics;
pub mod probe;

pub use controller::{BackendStatus, ControlHandle, Controller, Status};
pub use http::{Endpoints, HttpServer};

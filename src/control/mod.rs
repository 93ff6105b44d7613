//! The control side (threads off the packet path): health probing, the controller that
//! publishes backend sets to the shards, reload, metrics and the HTTP endpoints.

mod controller;
mod health;
mod http;
mod metrics;
mod probe;
mod rates;
mod status;

pub use controller::{ControlError, ControlHandle, Controller, Operation};
pub use health::State;
pub use http::{Endpoints, HttpServer};
pub use status::{BackendStatus, Status};

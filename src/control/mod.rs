//! The control side (threads off the packet path): health probing, the controller that
//! publishes backend sets to the shards, reload, metrics and the HTTP endpoints.

pub mod controller;
pub mod health;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod status;

pub use controller::{ControlHandle, Controller};
pub use health::State;
pub use http::{Endpoints, HttpServer};
pub use status::{BackendStatus, Status};

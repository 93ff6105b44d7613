//! The control side (one thread, off the packet path): health probing, reload, metrics.
//! So far: the health state machine; probing I/O, snapshot publication, reload and metrics
//! are issue 5's remaining work.

pub mod health;

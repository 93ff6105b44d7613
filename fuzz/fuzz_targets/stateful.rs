//! The stateful mode (relay and forwarder together) under a script of client datagrams,
//! backend answers and clock steps. The checks live in tests/it/support/fuzz_stateful.rs,
//! shared with tests/it/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/support/fuzz_stateful.rs"]
mod fuzz_stateful;

fuzz_target!(|data: &[u8]| fuzz_stateful::check_stateful(data));

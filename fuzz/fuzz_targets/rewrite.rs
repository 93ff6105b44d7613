//! The forwarding rewrite of a request (our Via, received/rport, Max-Forwards, Route) and
//! the top-Via removal of a response, each re-parsed. The checks live in
//! tests/it/support/fuzz_checks.rs, shared with tests/it/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/support/fuzz_checks.rs"]
#[allow(dead_code)] // each target uses one of the checks
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_rewrite(data));

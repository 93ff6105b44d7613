//! The forwarding rewrite of a request (our Via, received/rport, Max-Forwards, Route) and
//! the top-Via removal of a response, each re-parsed. The checks live in
//! tests/support/fuzz_checks.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_rewrite(data));

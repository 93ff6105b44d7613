//! Strict and lenient parse of arbitrary bytes, plus the stateless 400 built from them.
//! The checks live in tests/support/fuzz_checks.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

fuzz_target!(|data: &[u8]| fuzz_checks::check_parse(data));

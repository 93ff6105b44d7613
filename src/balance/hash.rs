//! The Call-ID hash: a fixed, specified function, identical on every build and machine.
//!
//! Specification: XXH3-64 (xxHash 0.8, 64-bit variant) with seed 0 and no secret, over the
//! exact bytes of the Call-ID value. No normalisation (case, white space) is applied here:
//! the caller passes the value already trimmed of surrounding white space.

use xxhash_rust::xxh3::xxh3_64;

/// The fixed, specified Call-ID hash: XXH3-64 with seed 0 over the exact bytes of the
/// Call-ID value (the caller passes it already trimmed of surrounding white space).
/// Two sipshard instances (any build, any machine) give the same value.
#[inline]
pub fn call_id_hash(call_id: &[u8]) -> u64 {
    xxh3_64(call_id)
}

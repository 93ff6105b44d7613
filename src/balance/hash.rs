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

/// 32-bit FNV-1a.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The shard (of `shards`) that owns the call with this Call-ID value: the shard whose
/// internal socket carries the call's requests to the farm, and where the kernel's Call-ID
/// steering delivers every datagram of the call (`fnv1a32(Call-ID) % shards`, the rule the
/// steering program implements).
#[inline]
pub fn owner_shard(call_id: &[u8], shards: usize) -> usize {
    (fnv1a32(call_id) % shards.max(1) as u32) as usize
}

#[cfg(test)]
mod fnv_tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
        assert_eq!(owner_shard(b"foobar", 2), (0xbf9cf968u32 % 2) as usize);
    }
}

//! Backend selection: the fixed Call-ID hash and the Maglev table.
//!
//! A request's Call-ID is hashed with [`call_id_hash`] (a fixed, specified function, so
//! every sipshard instance agrees), and the hash picks a backend through a [`Maglev`]
//! lookup table built from the backend set (independent of the order it is listed in).

mod backends;
mod hash;
mod maglev;

pub use backends::{Backend, Snapshot};
pub use hash::{call_id_hash, fnv1a32, owner_shard};
pub use maglev::{
    is_prime, Maglev, MaglevError, Preference, DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, PREFERENCE_MAX,
};

//! The deployment secret that keys the stateless branches: never printed.

use super::error::ConfigError;
use std::fmt;
use std::io::Read;

/// Length of the random secret drawn when none is configured.
pub const RANDOM_SECRET_LEN: usize = 32;

/// The secret's bytes, and whether they were drawn at random because none was configured.
/// Its `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: Vec<u8>,
    random: bool,
}

impl Secret {
    /// A configured secret.
    pub fn configured(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret {
            bytes: bytes.into(),
            random: false,
        }
    }

    /// [`RANDOM_SECRET_LEN`] bytes from `/dev/urandom`.
    pub fn random() -> Result<Secret, ConfigError> {
        let mut bytes = vec![0u8; RANDOM_SECRET_LEN];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|source| ConfigError::Random { source })?;
        Ok(Secret {
            bytes,
            random: true,
        })
    }

    /// The bytes, for keying.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// True when drawn at random because none was configured.
    pub fn is_random(&self) -> bool {
        self.random
    }

    /// True when the two differ in what was configured (two random draws are "no secret
    /// given" both times, not a change).
    pub fn differs_as_configured(&self, other: &Secret) -> bool {
        !(self.random && other.random) && self != other
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.bytes.len())
    }
}

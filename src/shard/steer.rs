//! Attaching the program that spreads a public address's datagrams over the shards.

use super::StartError;
use crate::net::{spread_randomly, CallIdSteering, Limits, Steering};
use socket2::Socket;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Attaches what `steering` asks for to the reuseport `group` bound on `listen` (socket k
/// is shard k's): the Call-ID program, returned so its counters can be read; where it
/// cannot load (an older kernel, no CAP_BPF), the random program instead, said in the log;
/// the random program; or nothing (`flow`: the kernel's hash).
pub(super) fn steer(
    steering: Steering,
    group: &[Socket],
    listen: SocketAddr,
) -> Result<Option<CallIdSteering>, StartError> {
    let fds: Vec<RawFd> = group.iter().map(AsRawFd::as_raw_fd).collect();
    let random = || {
        spread_randomly(fds[0], fds.len()).map_err(|source| StartError::Steering {
            addr: listen,
            source,
        })
    };
    match steering {
        Steering::Flow => Ok(None),
        Steering::Random => random().map(|()| None),
        Steering::CallId => match CallIdSteering::attach(&fds, &Limits::default()) {
            Ok(program) => Ok(Some(program)),
            Err(error) => {
                tracing::warn!(%listen, %error, "cannot load the Call-ID steering program; spreading datagrams at random instead");
                random().map(|()| None)
            }
        },
    }
}

//! The balancer in a dialog's route set (RFC 3261 §16.6 step 4, §16.4; RFC 5658): the
//! Record-Route lines it inserts on a dialog-creating request, one per side, each carrying
//! the pin of the dialog's backend, and its own values at the top of a later request's Route.

use super::verdict::DialogRole;
use crate::sip::{route_values, Message, NameAddr, RoutePrefix, SipUri, PIN_PARAM, SOURCE_PARAM};
use std::net::SocketAddr;

/// Our Record-Route line pairs, formatted once: for every internal socket k and public
/// address p, the pair a request toward the farm gets (internal k on top: the farm uses it)
/// and the pair a request toward a client gets (public p on top).
#[derive(Clone, Debug)]
pub struct RecordRouting {
    toward_farm: Vec<Vec<[RoutePrefix; 2]>>,
    toward_clients: Vec<Vec<[RoutePrefix; 2]>>,
    /// How each of our entries starts (`<sip:ADDR;lr;pin=`, one per public and internal
    /// address), to recognise our values.
    entries: Vec<Box<[u8]>>,
}

impl RecordRouting {
    /// The pairs for our `public` addresses and `internal` sockets (as advertised).
    pub fn new(public: &[SocketAddr], internal: &[SocketAddr]) -> Self {
        let pairs = |farm_side_on_top: bool| {
            internal
                .iter()
                .map(|&k| {
                    public
                        .iter()
                        .map(|&p| {
                            let (k, p) =
                                (RoutePrefix::record_route(k), RoutePrefix::record_route(p));
                            if farm_side_on_top {
                                [k, p]
                            } else {
                                [p, k]
                            }
                        })
                        .collect()
                })
                .collect()
        };
        RecordRouting {
            toward_farm: pairs(true),
            toward_clients: pairs(false),
            entries: public
                .iter()
                .chain(internal)
                .map(|&a| RoutePrefix::record_route(a).value_start().into())
                .collect(),
        }
    }

    /// The pin of `value` when it is one of our entries as we wrote it,
    /// `<sip:ADDR;lr;pin=PIN>` (user agents copy Record-Route values verbatim into their
    /// Route): a comparison instead of a parse. `None`: not in that form, though it may
    /// still be ours written otherwise.
    pub fn verbatim_pin<'v>(&self, value: &'v [u8]) -> Option<&'v [u8]> {
        let rest = self
            .entries
            .iter()
            .find_map(|entry| value.strip_prefix(&entry[..]))?;
        let end = rest.iter().position(|&b| b == b'>' || b == b';')?;
        Some(&rest[..end])
    }

    /// The lines of a request from a client (arrived on public address `p`) leaving from
    /// internal socket `k` toward a backend.
    pub fn toward_farm(&self, k: usize, p: usize) -> &[RoutePrefix; 2] {
        &self.toward_farm[k][p]
    }

    /// The lines of a request from a backend (its dialog's internal socket `k`) leaving from
    /// public address `p` toward a client.
    pub fn toward_client(&self, k: usize, p: usize) -> &[RoutePrefix; 2] {
        &self.toward_clients[k][p]
    }
}

/// Our values at the top of a request's Route: how many (0, 1 or 2: a double entry), the pin
/// the first of them carries (a Record-Route entry's backend), and the source address a Path
/// entry of ours carries (the registered user agent's), if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OurRoutes<'b> {
    /// Our values at the top.
    pub count: usize,
    /// The `pin` parameter of the first of them.
    pub pin: Option<&'b [u8]>,
    /// The `src` parameter of the first of them (our Path entry).
    pub source: Option<&'b [u8]>,
}

/// Our values at the top of `msg`'s Route. `verbatim` gives the pin of a value that is
/// one of our entries as we wrote it; any other value's URI is parsed once, and `is_us`
/// tells whether it names us.
pub fn our_routes<'b>(
    msg: &Message<'b, '_>,
    verbatim: impl Fn(&'b [u8]) -> Option<&'b [u8]>,
    is_us: impl Fn(&SipUri<'_>) -> bool,
) -> OurRoutes<'b> {
    let mut ours = OurRoutes::default();
    if msg.top_route.is_none() {
        return ours;
    }
    for value in route_values(msg).take(2) {
        if let Some(pin) = verbatim(value) {
            ours.count += 1;
            ours.pin = ours.pin.or(Some(pin));
            continue;
        }
        let Some(uri) = NameAddr::parse(value)
            .ok()
            .and_then(|addr| SipUri::parse(addr.uri).ok())
        else {
            break;
        };
        if !is_us(&uri) {
            break;
        }
        ours.count += 1;
        if ours.count == 1 {
            ours.source = uri.param(SOURCE_PARAM).flatten();
        }
        ours.pin = ours.pin.or_else(|| uri.param(PIN_PARAM).flatten());
    }
    ours
}

/// Our Path lines (RFC 3327), one per internal socket k: `Path: <sip:INTERNAL_k;lr;src=`.
pub fn path_lines(internal: &[SocketAddr]) -> Vec<RoutePrefix> {
    internal.iter().map(|&k| RoutePrefix::path(k)).collect()
}

/// Where a request stands toward dialogs. [`DialogRole::Creates`]: an INVITE, SUBSCRIBE,
/// REFER or NOTIFY without a To tag, which gets our Record-Route. (A REGISTER gets Path
/// instead; ACK, CANCEL and the methods that create no dialog get nothing.)
pub fn dialog_role(msg: &Message<'_, '_>) -> DialogRole {
    match msg.to_tagged() {
        Some(true) => DialogRole::Within,
        Some(false)
            if matches!(
                msg.method(),
                Some(b"INVITE" | b"SUBSCRIBE" | b"REFER" | b"NOTIFY")
            ) =>
        {
            DialogRole::Creates
        }
        _ => DialogRole::Outside,
    }
}

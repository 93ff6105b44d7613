//! The stateless proxy (RFC 3261 §16.11): the forwarding decision for one datagram, without
//! I/O. Given the slot holding the datagram, where it came from and on which side, it
//! rewrites the datagram in place and says where it goes, or writes a stateless reply, or
//! drops it.
//!
//! | arrives on | kind | goes to | leaves from |
//! | --- | --- | --- | --- |
//! | public | request from a client | backend by Maglev over Call-ID | internal socket k (k from the Call-ID) |
//! | internal | response from a backend | next Via | public |
//! | internal | request from a backend | top Route, else Request-URI | public |
//! | public | response to a backend's request | next Via | internal socket k |

use super::redirect::Mode;
use super::route_set::{dialog_role, our_routes, OurRoutes, RecordRouting};
use super::verdict::{
    BackendTally, DialogRole, DropReason, Exit, MessageKind, Pinning, ReplyKind, Verdict,
};
use crate::balance::{call_id_hash, owner_shard, Snapshot};
use crate::sip::hex16;
use crate::sip::{
    self, parse_lenient, BranchKey, Echo, Extras, Frame, HeaderName, Headers, Message, NameAddr,
    ParseError, PinError, RequestRewrite, RoutePrefix, SipUri, Status, StrictRouteRepair,
    TopViaRemoval, Via, ViaPrefix, DEFAULT_PORT, PIN_PARAM, SOURCE_PARAM,
};
use crate::sip::{reply_destination, response_destination};
use std::cell::RefCell;
use std::net::SocketAddr;

/// Header slots per message. More headers than this is answered with 400.
pub const MAX_HEADERS: usize = 64;

/// Which socket a datagram arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The public address clients send to.
    Public,
    /// An internal socket backends answer to.
    Internal,
}

/// One of our addresses and the Via prefix that advertises it.
#[derive(Clone, Debug)]
pub struct Advertised {
    /// The address as it appears in our Via (a concrete IP, never unspecified).
    pub addr: SocketAddr,
    /// `Via: SIP/2.0/UDP addr;branch=`.
    pub prefix: ViaPrefix,
}

impl Advertised {
    /// The advertised form of `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Advertised {
            addr,
            // A literal address and "UDP" always fit.
            prefix: ViaPrefix::new("UDP", addr)
                .unwrap_or_else(|| unreachable!("UDP and an IP always fit")),
        }
    }
}

/// Everything the decisions need; one per shard.
pub struct Forwarder {
    /// Branch key of the deployment.
    pub key: BranchKey,
    /// Backends and their table: the shard's own copy, replaced whole when the control
    /// thread publishes a new one ([`Forwarder::replace_snapshot`]).
    pub snapshot: RefCell<Snapshot>,
    /// Our public addresses (one per listen address), as advertised.
    pub public: Vec<Advertised>,
    /// Internal socket k's address, for every k.
    pub internal: Vec<Advertised>,
    /// Retry-After of a 503.
    pub retry_after: u32,
    /// Our Record-Route lines, when the balancer stays in the dialogs' route sets
    /// (`--record-route on`).
    pub record_routing: Option<RecordRouting>,
    /// Our Path line per internal socket, when a client's REGISTER gets one (`--path on`).
    pub path_lines: Option<Vec<RoutePrefix>>,
    /// A proxy, or a redirect server.
    pub mode: Mode,
}

/// A datagram as it arrived: on which side, from whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The socket's side.
    pub side: Side,
    /// The sender.
    pub source: SocketAddr,
}

/// Where the message goes once rewritten.
#[derive(Clone, Copy, Debug)]
struct Route {
    /// The socket it leaves from.
    exit: Exit,
    /// The next hop.
    dest: SocketAddr,
    /// The backend it counts against, if any.
    backend: Option<BackendTally>,
}

/// Where a request goes, and the address we advertise in our Via on the way.
struct Target<'f> {
    us: &'f Advertised,
    route: Route,
}

/// Where a stateless reply is written, and the sender of the request it answers.
pub(super) struct ReplyTo<'r> {
    buf: &'r mut [u8],
    source: SocketAddr,
}

/// A pin of ours as read from a request and checked against our key: the address it names,
/// or why it is not ours.
type Checked = Result<SocketAddr, PinError>;

/// The pins of our entry in a request: the dialog's backend (Record-Route) and the
/// registered user agent's address (Path).
#[derive(Clone, Copy, Debug, Default)]
struct Pins {
    backend: Option<Checked>,
    source: Option<Checked>,
}

/// A stateless answer: its status, its counter, what it adds to the echoed headers and the
/// backend it names.
pub(super) struct Answer<'a> {
    status: Status,
    kind: ReplyKind,
    extras: Extras<'a>,
    backend: Option<BackendTally>,
}

impl<'a> Answer<'a> {
    /// `status`, counted as `kind`, with nothing added.
    pub(super) fn new(status: Status, kind: ReplyKind) -> Self {
        Answer {
            status,
            kind,
            extras: Extras::default(),
            backend: None,
        }
    }

    /// With `extras` added to the echoed headers.
    pub(super) fn with(self, extras: Extras<'a>) -> Self {
        Answer { extras, ..self }
    }

    /// Counted against `backend` too.
    pub(super) fn for_backend(self, backend: BackendTally) -> Self {
        Answer {
            backend: Some(backend),
            ..self
        }
    }
}

/// What the parse-time half decided; applied once the datagram's borrow has ended.
enum Plan<'f> {
    /// A strict router's request: repair it, then decide again with these pins.
    Repair {
        repair: StrictRouteRepair,
        pins: Pins,
    },
    Request {
        rewrite: RequestRewrite<'f>,
        route: Route,
    },
    Response {
        removal: TopViaRemoval,
        route: Route,
    },
    Done(Verdict),
}

impl Forwarder {
    /// Swaps in a new backend snapshot (between two datagrams: the shard is one thread).
    pub fn replace_snapshot(&self, snapshot: Snapshot) -> Snapshot {
        self.snapshot.replace(snapshot)
    }

    /// Handles the datagram at `slot[headroom..headroom + len]`, which arrived as
    /// `arrival`. `reply` is where a stateless reply is written.
    pub fn handle(
        &self,
        arrival: Arrival,
        slot: &mut [u8],
        headroom: usize,
        len: usize,
        reply: &mut [u8],
    ) -> Verdict {
        let mut to = ReplyTo {
            buf: reply,
            source: arrival.source,
        };
        let mut plan = self.decide(arrival.side, &slot[headroom..headroom + len], &mut to, None);
        let (mut start, mut len) = (headroom, len);
        if let Plan::Repair { repair, pins } = plan {
            // A strict router's request, repaired (§16.4), then decided as a loose one.
            let mut frame = Frame::new(slot, start, len);
            if repair.apply(&mut frame).is_err() {
                return Verdict::Drop(DropReason::NoRoom);
            }
            (start, len) = (frame.start(), frame.len());
            plan = self.decide(arrival.side, &slot[start..start + len], &mut to, Some(pins));
        }
        let mut frame = Frame::new(slot, start, len);
        let (applied, kind, route) = match plan {
            Plan::Done(verdict) => return verdict,
            // Decided again after the repair, which never plans another.
            Plan::Repair { .. } => return Verdict::Drop(DropReason::NoRoom),
            Plan::Request { rewrite, route } => {
                (rewrite.apply(&mut frame), MessageKind::Request, route)
            }
            Plan::Response { removal, route } => {
                (removal.apply(&mut frame), MessageKind::Response, route)
            }
        };
        match applied {
            Ok(()) => Verdict::Forward {
                exit: route.exit,
                dest: route.dest,
                start: frame.start(),
                len: frame.len(),
                kind,
                backend: route.backend,
            },
            Err(_) => Verdict::Drop(DropReason::NoRoom),
        }
    }

    /// The decision for the datagram. `repaired`: the pins a strict router's request
    /// carried in its Request-URI, once the request has been repaired (§16.4).
    fn decide(
        &self,
        side: Side,
        datagram: &[u8],
        to: &mut ReplyTo<'_>,
        repaired: Option<Pins>,
    ) -> Plan<'_> {
        let source = to.source;
        let mut headers = Headers::<MAX_HEADERS>::new();
        let msg = match sip::parse(datagram, &mut headers) {
            Ok(msg) => msg,
            Err(ParseError::Empty) => return Plan::Done(Verdict::Drop(DropReason::KeepAlive)),
            Err(error) => return Plan::Done(self.bad_request(datagram, error, to)),
        };
        if !msg.is_request() {
            return match side {
                Side::Internal => {
                    let tally = self
                        .snapshot
                        .borrow()
                        .index_of(source)
                        .map(|i| BackendTally {
                            index: i as u16,
                            status: msg.status().unwrap_or(0),
                            pinning: Pinning::Hashed,
                            role: DialogRole::Outside,
                        });
                    self.response(&msg, &self.internal, Exit::Public, tally)
                }
                Side::Public => {
                    let k = owner_shard(msg.call_id, self.internal.len());
                    self.response(&msg, &self.public, Exit::Internal(k), None)
                }
            };
        }
        if self.mode == Mode::Redirect && side == Side::Public {
            return Plan::Done(self.redirect(&msg, to));
        }
        if side == Side::Internal && !self.snapshot.borrow().is_backend(source) {
            return Plan::Done(Verdict::Drop(DropReason::UnknownPeer));
        }
        if self.carries_our_branch(&msg) {
            let status = Status::LOOP_DETECTED;
            return Plan::Done(self.reply(&msg, status, ReplyKind::LoopDetected, to));
        }
        let verbatim = |value| {
            let routing = self.record_routing.as_ref()?;
            routing.verbatim_pin(value)
        };
        let ours = our_routes(&msg, verbatim, |uri| self.names_us(uri));
        // A strict router's request has our entry as its Request-URI, not on top of Route.
        if repaired.is_none() && ours.count == 0 {
            if let Some(plan) = self.strict_route_repair(side, &msg) {
                return plan;
            }
        }
        let pins = repaired.unwrap_or_else(|| self.pins(side, ours.pin, ours.source));
        let role = dialog_role(&msg);
        let target = match side {
            Side::Public => self.backend_for(&msg, pins.backend, role, to),
            Side::Internal => self.next_hop_for(&msg, pins.source, to),
        };
        match target {
            Ok(target) => self.forward_request(&msg, target, ours, role, to),
            Err(refused) => Plan::Done(refused),
        }
    }

    /// A request from a client goes to the backend its pin names (an in-dialog request
    /// whose Route starts with our entry), as long as that backend is configured and up,
    /// else to a backend by Call-ID; it leaves from internal socket k (k from the Call-ID).
    /// Whatever Route entries follow ours, it goes to the farm. `Err`: a 403 for a pin we
    /// did not make, the 503 when no backend takes calls.
    fn backend_for(
        &self,
        msg: &Message<'_, '_>,
        pin: Option<Checked>,
        role: DialogRole,
        to: &mut ReplyTo<'_>,
    ) -> Result<Target<'_>, Verdict> {
        let hash = call_id_hash(msg.call_id);
        let snapshot = self.snapshot.borrow();
        let pinned = match pin {
            None => None,
            Some(Ok(backend)) => snapshot
                .index_of(backend)
                .filter(|&i| snapshot.backends()[i].up),
            Some(Err(_)) => return Err(self.forged_route(msg, to)),
        };
        let (index, pinning) = match (pinned, pin) {
            (Some(index), _) => (index, Pinning::Pinned),
            (None, pin) => {
                let Some(index) = snapshot.pick_index(hash) else {
                    let status = Status::service_unavailable(self.retry_after);
                    return Err(self.reply(msg, status, ReplyKind::ServiceUnavailable, to));
                };
                let pinning = if pin.is_some() {
                    Pinning::Moved
                } else {
                    Pinning::Hashed
                };
                (index, pinning)
            }
        };
        let backend = snapshot.backends()[index].addr;
        let tally = BackendTally {
            index: index as u16,
            status: 0,
            pinning,
            role,
        };
        let k = owner_shard(msg.call_id, self.internal.len());
        Ok(Target {
            us: &self.internal[k],
            route: Route {
                exit: Exit::Internal(k),
                dest: backend,
                backend: Some(tally),
            },
        })
    }

    /// A request from a backend (a BYE or re-INVITE toward a client, say) takes a plain
    /// proxy step by Route, else Request-URI, from the public socket of its family.
    fn next_hop_for(
        &self,
        msg: &Message<'_, '_>,
        registered: Option<Checked>,
        to: &mut ReplyTo<'_>,
    ) -> Result<Target<'_>, Verdict> {
        // Through our Path entry: to the address the user agent registered from.
        let via_path = match registered {
            None => None,
            Some(Ok(addr)) => Some(addr),
            Some(Err(_)) => return Err(self.forged_route(msg, to)),
        };
        let Some(dest) = via_path.or_else(|| self.next_hop(msg)) else {
            let status = Status {
                code: 503,
                reason: "Next Hop Needs DNS",
                retry_after: None,
            };
            return Err(self.reply(msg, status, ReplyKind::NextHopNeedsDns, to));
        };
        match self.public_for(dest) {
            Some(us) => Ok(Target {
                us,
                route: Route {
                    exit: Exit::Public,
                    dest,
                    backend: None,
                },
            }),
            None => Err(Verdict::Drop(DropReason::NoSocketForFamily)),
        }
    }

    /// A response: our Via must be on top (sent-by one of `ours`, branch made with our key);
    /// it is stripped and the response goes to the next Via.
    fn response(
        &self,
        msg: &Message<'_, '_>,
        ours: &[Advertised],
        exit: Exit,
        tally: Option<BackendTally>,
    ) -> Plan<'static> {
        let via = &msg.top_via.via;
        let sent_by_ours = via.host_ip().is_some_and(|ip| {
            ours.iter()
                .any(|a| a.addr == SocketAddr::new(ip, via.port.unwrap_or(DEFAULT_PORT)))
        });
        if !sent_by_ours || !via.branch.is_some_and(|b| self.key.verify(b)) {
            return Plan::Done(Verdict::Drop(DropReason::ForeignVia));
        }
        let Some(next) = msg.second_via else {
            return Plan::Done(Verdict::Drop(DropReason::NoNextVia));
        };
        match response_destination(&next) {
            Some(dest) => Plan::Response {
                removal: TopViaRemoval::new(msg),
                route: Route {
                    exit,
                    dest,
                    backend: tally,
                },
            },
            None => Plan::Done(Verdict::Drop(DropReason::NeedsDns)),
        }
    }

    /// Forwards a request: our Via (advertising `us`), received/rport, Max-Forwards, our
    /// Route removed. Max-Forwards at zero: 483, or a silent drop for an ACK.
    fn forward_request<'f>(
        &'f self,
        msg: &Message<'_, '_>,
        target: Target<'f>,
        ours: OurRoutes<'_>,
        role: DialogRole,
        to: &mut ReplyTo<'_>,
    ) -> Plan<'f> {
        let mut rewrite = RequestRewrite::new(msg);
        rewrite.add_via(&target.us.prefix, self.key.branch_id(msg));
        if rewrite.forward_max_forwards(msg).is_err() {
            if msg.method() == Some(b"ACK") {
                return Plan::Done(Verdict::Drop(DropReason::AckTooManyHops));
            }
            let status = Status::TOO_MANY_HOPS;
            return Plan::Done(self.reply(msg, status, ReplyKind::TooManyHops, to));
        }
        rewrite.stamp_source(msg, to.source);
        match ours.count {
            0 => {}
            1 => {
                rewrite.remove_top_route(msg);
            }
            n => rewrite.remove_top_routes(msg, n),
        }
        if let Some(routing) = &self.record_routing {
            if role == DialogRole::Creates {
                self.record_route(routing, msg, &target, to.source, &mut rewrite);
            }
        }
        if let (Some(paths), Exit::Internal(k)) = (&self.path_lines, target.route.exit) {
            if msg.method() == Some(b"REGISTER") {
                rewrite.add_path(&paths[k], self.key.pin(to.source));
            }
        }
        Plan::Request {
            rewrite,
            route: target.route,
        }
    }

    /// Our two Record-Route lines on a dialog-creating request, pinned to its backend: the
    /// one it goes to (from a client), or the one it comes from (from the farm).
    fn record_route<'f>(
        &self,
        routing: &'f RecordRouting,
        msg: &Message<'_, '_>,
        target: &Target<'f>,
        source: SocketAddr,
        rewrite: &mut RequestRewrite<'f>,
    ) {
        let public_index = |addr: SocketAddr| {
            self.public
                .iter()
                .position(|a| a.addr.is_ipv4() == addr.is_ipv4())
        };
        let (lines, backend) = match target.route.exit {
            // From a client (on the public address of its family), toward a backend.
            Exit::Internal(k) => match public_index(source) {
                Some(p) => (routing.toward_farm(k, p), target.route.dest),
                None => return,
            },
            // From a backend, toward a client.
            Exit::Public | Exit::Same => {
                let k = owner_shard(msg.call_id, self.internal.len());
                match public_index(target.route.dest) {
                    Some(p) => (routing.toward_client(k, p), source),
                    None => return,
                }
            }
        };
        rewrite.add_record_route(lines, self.key.pin(backend));
    }

    /// The pin of our entry that routes a request arriving on `side`, checked against our
    /// key (one MAC): the backend's from a client, the registered source's from the farm.
    fn pins(&self, side: Side, backend: Option<&[u8]>, source: Option<&[u8]>) -> Pins {
        let check = |text: &[u8]| self.key.unpin(text);
        match side {
            Side::Public => Pins {
                backend: backend.map(check),
                source: None,
            },
            Side::Internal => Pins {
                backend: None,
                source: source.map(check),
            },
        }
    }

    /// §16.4: a request whose Request-URI is one of our Record-Route (or Path) URIs came
    /// from a strict router; its target is the last Route value. The repair, with the pins
    /// that URI carries; `None` for every other request.
    fn strict_route_repair(&self, side: Side, msg: &Message<'_, '_>) -> Option<Plan<'static>> {
        msg.top_route?;
        let uri = SipUri::parse(msg.request_uri()?).ok()?;
        if !self.names_us(&uri) {
            return None;
        }
        let backend = uri.param(PIN_PARAM).flatten();
        let source = uri.param(SOURCE_PARAM).flatten();
        if backend.is_none() && source.is_none() {
            return None;
        }
        let repair = StrictRouteRepair::plan(msg)?;
        Some(Plan::Repair {
            repair,
            pins: self.pins(side, backend, source),
        })
    }

    /// The 403 to a request whose Route names us with a pin or source we did not make.
    fn forged_route(&self, msg: &Message<'_, '_>, to: &mut ReplyTo<'_>) -> Verdict {
        let status = Status {
            code: 403,
            reason: "Forbidden",
            retry_after: None,
        };
        self.reply(msg, status, ReplyKind::ForgedRoute, to)
    }

    /// §16.3 step 4: a request already carrying one of our branches has looped back.
    fn carries_our_branch(&self, msg: &Message<'_, '_>) -> bool {
        let ours = |via: &Via<'_>| via.branch.is_some_and(|b| self.key.verify(b));
        ours(&msg.top_via.via) || msg.second_via.is_some_and(|v| ours(&v))
    }

    /// True if the URI of `addr` names one of our addresses (a Route to us).
    fn is_us(&self, addr: &NameAddr<'_>) -> bool {
        SipUri::parse(addr.uri).is_ok_and(|uri| self.names_us(&uri))
    }

    /// True if `uri` names one of our addresses.
    fn names_us(&self, uri: &SipUri<'_>) -> bool {
        let Some(ip) = uri.host_ip() else {
            return false;
        };
        let target = SocketAddr::new(ip, uri.port.unwrap_or(DEFAULT_PORT));
        self.public
            .iter()
            .chain(&self.internal)
            .any(|a| a.addr == target)
    }

    /// The next hop of a request from a backend: the first Route that is not us, else the
    /// Request-URI. `None` when it is not an IP literal.
    fn next_hop(&self, msg: &Message<'_, '_>) -> Option<SocketAddr> {
        let route = msg
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::Route)
            .flat_map(|h| sip::CommaValues::new(h.value))
            .filter_map(|v| NameAddr::parse(v).ok())
            .find(|a| !self.is_us(a));
        let uri = match route {
            Some(a) => a.uri,
            None => msg.request_uri()?,
        };
        let uri = SipUri::parse(uri).ok()?;
        let ip = match uri.param(b"maddr") {
            Some(Some(maddr)) => sip::ip_literal(maddr, false)?,
            _ => uri.host_ip()?,
        };
        Some(SocketAddr::new(ip, uri.port.unwrap_or(DEFAULT_PORT)))
    }

    /// Our public address of `dest`'s family.
    fn public_for(&self, dest: SocketAddr) -> Option<&Advertised> {
        self.public
            .iter()
            .find(|a| a.addr.is_ipv4() == dest.is_ipv4())
    }

    /// A stateless reply to a valid request.
    fn reply(
        &self,
        msg: &Message<'_, '_>,
        status: Status,
        kind: ReplyKind,
        to: &mut ReplyTo<'_>,
    ) -> Verdict {
        self.answer(msg, Answer::new(status, kind), to)
    }

    /// Answers `msg` statelessly; an ACK, which cannot be answered, is dropped and counted
    /// by why it would have been answered.
    pub(super) fn answer(
        &self,
        msg: &Message<'_, '_>,
        answer: Answer<'_>,
        to: &mut ReplyTo<'_>,
    ) -> Verdict {
        let kind = answer.kind;
        match Echo::from_message(msg) {
            Ok(echo) => self.write(&echo, answer, to, &msg.top_via.via, msg.call_id),
            // Only an ACK cannot be answered; say why it was not forwarded.
            Err(_) => Verdict::Drop(match kind {
                ReplyKind::ServiceUnavailable => DropReason::NoBackend,
                ReplyKind::NextHopNeedsDns => DropReason::NeedsDns,
                ReplyKind::LoopDetected => DropReason::LoopedAck,
                ReplyKind::ForgedRoute => DropReason::ForgedRoute,
                ReplyKind::BadRequest | ReplyKind::TooManyHops => DropReason::BadAck,
                ReplyKind::Redirect
                | ReplyKind::Ok
                | ReplyKind::NoDialog
                | ReplyKind::MethodNotAllowed => DropReason::AbsorbedAck,
            }),
        }
    }

    /// A 400 to a request that failed validation, if it can be answered at all.
    fn bad_request(&self, datagram: &[u8], error: ParseError, to: &mut ReplyTo<'_>) -> Verdict {
        let mut headers = Headers::<MAX_HEADERS>::new();
        let partial = parse_lenient(datagram, &mut headers);
        let is_ack = matches!(
            partial.fields.start,
            Some(sip::StartLine::Request { method: b"ACK", .. })
        );
        let (Ok(echo), Some(top)) = (Echo::from_partial(&partial), partial.fields.top_via) else {
            return Verdict::Drop(if is_ack {
                DropReason::BadAck
            } else {
                DropReason::Unparsable
            });
        };
        let call_id = partial.fields.call_id.unwrap_or_default();
        let status = Status::bad_request(error.reason());
        let answer = Answer::new(status, ReplyKind::BadRequest);
        self.write(&echo, answer, to, &top.via, call_id)
    }

    /// Writes `status` echoing `echo` into the reply buffer, addressed per the top Via.
    fn write(
        &self,
        echo: &Echo<'_, '_>,
        answer: Answer<'_>,
        to: &mut ReplyTo<'_>,
        top: &Via<'_>,
        call_id: &[u8],
    ) -> Verdict {
        // A To tag stable per request, so a retransmission gets the same reply.
        let tag = hex16(call_id_hash(call_id) ^ top.branch.map_or(0, call_id_hash));
        let written =
            sip::write_response(to.buf, echo, answer.status, to.source, &tag, answer.extras);
        match written {
            Ok(len) => Verdict::Reply {
                kind: answer.kind,
                dest: reply_destination(top, to.source),
                len,
                backend: answer.backend,
            },
            Err(_) => Verdict::Drop(DropReason::ReplyTooLarge),
        }
    }
}

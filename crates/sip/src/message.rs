//! The message parser: one pass over a datagram, in the style of httparse. The caller
//! supplies the header storage; every field borrows from the datagram, so a rewrite can
//! locate each field by its offset ([`Message::offset_of`]).

use super::checks::{
    call_id_ok, date_ok, parse_content_length, parse_cseq, parse_max_forwards, retry_after_ok,
    warning_ok,
};
use super::classes::{eq_mask16, host_char_mask16, token_end};
use super::error::ParseError;
use super::find::find3;
use super::header_name::HeaderName;
use super::lines::LineEnds;
use super::name_addr::NameAddr;
use super::params::{CommaValues, Params};
use super::scan::{eq_short, offset_in, trim};
use super::start_line::StartLine;
use super::uri::check_request_uri;
use super::via::Via;
use arrayvec::ArrayVec;

/// One header line as found in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'b> {
    /// Classified name.
    pub name: HeaderName,
    /// Length of the name as written, at the start of `line` (see [`Header::raw_name`]).
    name_len: usize,
    /// Value without surrounding white space; may contain line folds.
    pub value: &'b [u8],
    /// The whole line, continuation lines and line terminator included.
    pub line: &'b [u8],
}

impl<'b> Header<'b> {
    /// The name as written. A length, not a slice, in the record: the parser stores one
    /// word less per line.
    pub fn raw_name(&self) -> &'b [u8] {
        self.line.get(..self.name_len).unwrap_or_default()
    }
}

/// Header storage for a parse: `Headers::<64>::new()` costs nothing to create (no
/// initialisation), and a parse clears it first, so one can serve message after message.
pub type Headers<'b, const N: usize> = ArrayVec<Header<'b>, N>;

/// The topmost Via value and what it takes to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopVia<'b> {
    /// The parsed value.
    pub via: Via<'b>,
    /// The bytes to delete to strip this value: its whole header line when it is the only
    /// value there, else the value up to the start of the next one.
    pub removal: &'b [u8],
}

/// The topmost Route value and what it takes to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopRoute<'b> {
    /// The parsed value.
    pub addr: NameAddr<'b>,
    /// The bytes to delete to remove this value (see [`TopVia::removal`]).
    pub removal: &'b [u8],
}

/// `CSeq: number method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'b> {
    /// Sequence number, below 2**31.
    pub number: u32,
    /// Method token.
    pub method: &'b [u8],
}

/// `Max-Forwards: n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxForwards<'b> {
    /// The value, 0..=255.
    pub value: u8,
    /// The digits as written (leading zeros kept), for an in-place rewrite.
    pub digits: &'b [u8],
}

/// Everything the parser found. After a successful [`parse`] the mandatory fields are in
/// [`Message`]; after [`parse_lenient`] any of them may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields<'b> {
    /// Start line.
    pub start: Option<StartLine<'b>>,
    /// Offset of the first header line (just after the start line).
    pub headers_start: usize,
    /// Topmost Via value.
    pub top_via: Option<TopVia<'b>>,
    /// Second Via value (where a response goes once our Via is stripped).
    pub second_via: Option<Via<'b>>,
    /// Number of Via values.
    pub via_count: u16,
    /// Call-ID value.
    pub call_id: Option<&'b [u8]>,
    /// CSeq.
    pub cseq: Option<CSeq<'b>>,
    /// From value (raw; see [`Message::from_addr`]).
    pub from: Option<&'b [u8]>,
    /// To value (raw; see [`Message::to_addr`]).
    pub to: Option<&'b [u8]>,
    /// Max-Forwards.
    pub max_forwards: Option<MaxForwards<'b>>,
    /// Topmost Route value.
    pub top_route: Option<TopRoute<'b>>,
    /// Content-Length value.
    pub content_length: Option<u32>,
    /// The body (exactly Content-Length bytes when that header is present).
    pub body: &'b [u8],
    /// Length of the message proper: bytes past it in the datagram are not part of it.
    pub len: usize,
}

/// A fully parsed, valid message.
#[derive(Clone, Copy, Debug)]
pub struct Message<'b, 'h> {
    /// The datagram the message was parsed from (possibly longer than the message).
    pub buf: &'b [u8],
    /// All header lines, in order.
    pub headers: &'h [Header<'b>],
    /// Start line.
    pub start: StartLine<'b>,
    /// Topmost Via.
    pub top_via: TopVia<'b>,
    /// Second Via value, if any.
    pub second_via: Option<Via<'b>>,
    /// Number of Via values.
    pub via_count: u16,
    /// Call-ID value.
    pub call_id: &'b [u8],
    /// CSeq.
    pub cseq: CSeq<'b>,
    /// From value, raw. Parsed on demand by [`Message::from_addr`]: a stateless proxy
    /// does not use it to forward (the full checks validate it during the parse).
    pub from: &'b [u8],
    /// To value, raw. Parsed on demand by [`Message::to_addr`].
    pub to: &'b [u8],
    /// Max-Forwards, if present.
    pub max_forwards: Option<MaxForwards<'b>>,
    /// Topmost Route, if any.
    pub top_route: Option<TopRoute<'b>>,
    /// Content-Length, if present.
    pub content_length: Option<u32>,
    /// Offset of the first header line.
    pub headers_start: usize,
    /// The body.
    pub body: &'b [u8],
    /// Length of the message (the datagram truncated to Content-Length).
    pub len: usize,
}

/// What a lenient parse found, for answering a request that failed validation.
#[derive(Clone, Copy, Debug)]
pub struct Partial<'b, 'h> {
    /// The datagram.
    pub buf: &'b [u8],
    /// Header lines found before parsing stopped.
    pub headers: &'h [Header<'b>],
    /// Fields found.
    pub fields: Fields<'b>,
    /// The first error, `None` if the message is valid.
    pub error: Option<ParseError>,
}

/// How much of a message is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// What a proxy must check (RFC 3261 §16.3 step 1): the start line and every header
    /// that forwarding uses (Via, Call-ID, CSeq, From, To, Max-Forwards, the top Route,
    /// Content-Length). Other headers are forwarded untouched, well-formed or not: "an
    /// element would not reject a request because of a malformed Date header field".
    Proxy,
    /// Everything sipshard knows the grammar of, as an endpoint would (RFC 4475): also
    /// every Via and Route value, Record-Route, Contact, Date, Retry-After, Warning, and
    /// the full SIP-URI grammar of the Request-URI.
    Full,
}

/// Parses a datagram with the checks a proxy makes ([`Checks::Proxy`]). Stops at the
/// first error.
#[inline]
pub fn parse<'b, 'h, const N: usize>(
    buf: &'b [u8],
    storage: &'h mut Headers<'b, N>,
) -> Result<Message<'b, 'h>, ParseError> {
    parse_with(buf, storage, Checks::Proxy)
}

/// Parses a datagram with every check sipshard knows ([`Checks::Full`]).
pub fn parse_strict<'b, 'h, const N: usize>(
    buf: &'b [u8],
    storage: &'h mut Headers<'b, N>,
) -> Result<Message<'b, 'h>, ParseError> {
    parse_with(buf, storage, Checks::Full)
}

/// Parses a datagram with the given checks. Stops at the first error.
#[inline]
pub fn parse_with<'b, 'h, const N: usize>(
    buf: &'b [u8],
    storage: &'h mut Headers<'b, N>,
    checks: Checks,
) -> Result<Message<'b, 'h>, ParseError> {
    let mut driver = Driver::new(buf, true, checks);
    driver.run(storage)?;
    let headers: &'h [Header<'b>] = storage;
    driver.to_message(headers)
}

/// Parses as much as possible with the proxy's checks, recording the first error but
/// carrying on past errors in header values, so that a 400 can still echo Via, From, To,
/// Call-ID and CSeq.
pub fn parse_lenient<'b, 'h, const N: usize>(
    buf: &'b [u8],
    storage: &'h mut Headers<'b, N>,
) -> Partial<'b, 'h> {
    let mut driver = Driver::new(buf, false, Checks::Proxy);
    let structural = driver.run(storage).err();
    let headers: &'h [Header<'b>] = storage;
    Partial {
        buf,
        headers,
        fields: driver.fields,
        error: driver.error.or(structural),
    }
}

impl<'b> Message<'b, '_> {
    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<&'b [u8]> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, `None` for a response.
    pub fn request_uri(&self) -> Option<&'b [u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The From value parsed; `None` if it is malformed (possible after a proxy-level parse).
    pub fn from_addr(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.from).ok()
    }

    /// Whether the To has a tag (the request is inside a dialog); `None` if the To is
    /// malformed. In the usual form (`<URI>` then parameters, no quoted display name before
    /// it) only the parameters after `>` are read; otherwise the whole name-addr is parsed.
    pub fn to_tagged(&self) -> Option<bool> {
        let to = self.to;
        // The first quote or `>`: a `>` first closes the URI (no display name in quotes).
        if let Some(close) = find3(to, 0, b'>', b'"', b'"').filter(|&i| to[i] == b'>') {
            let params = &to[close + 1..];
            if find3(params, 0, b';', b';', b';').is_none() {
                return Some(false);
            }
            let mut tagged = false;
            for param in Params::new(params) {
                match param {
                    Ok(p) if p.name.eq_ignore_ascii_case(b"tag") => tagged = true,
                    Ok(_) => {}
                    Err(_) => return self.to_addr().map(|a| a.tag.is_some()),
                }
            }
            return Some(tagged);
        }
        self.to_addr().map(|a| a.tag.is_some())
    }

    /// The To value parsed; `None` if it is malformed (possible after a proxy-level parse).
    pub fn to_addr(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.to).ok()
    }

    /// Offset of `part`, a slice borrowed from this message, from the start of the datagram.
    pub fn offset_of(&self, part: &[u8]) -> usize {
        offset_in(self.buf, part)
    }
}

fn all_name_addrs(v: &[u8]) -> bool {
    CommaValues::new(v).all(|v| NameAddr::parse(v).is_ok())
}

/// One parse in progress.
struct Driver<'b> {
    buf: &'b [u8],
    /// Stop at the first error, or record it and go on where possible.
    stop_at_first_error: bool,
    /// Check everything, not only what a proxy needs.
    full: bool,
    fields: Fields<'b>,
    error: Option<ParseError>,
}

/// The header name at `pos`: its class, its length as written and where the colon after it
/// is.
/// `None` if the line does not start with `token *(SP / HTAB) ":"`.
///
/// The usual case takes one 16-byte window: the first colon in it, the name before it
/// classified; a known name is a token by construction, so only other names are checked
/// byte by byte.
#[inline(always)]
fn header_name(buf: &[u8], pos: usize) -> Option<(HeaderName, usize, usize)> {
    if let Some(window) = buf.get(pos..).and_then(|r| r.first_chunk::<16>()) {
        let colons = eq_mask16(window, b':');
        if colons != 0 {
            let colon = colons.trailing_zeros() as usize;
            // Usually the name ends at the colon; SP or HTAB before it is rare.
            let mut len = colon;
            if colon > 0 && window[(colon - 1) & 15] <= b' ' {
                while len > 0 && matches!(window[len - 1], b' ' | b'\t') {
                    len -= 1;
                }
            }
            let name = HeaderName::classify_window(len, window);
            if len == 0 || (name == HeaderName::Other && !name_is_token(buf, pos, len, window)) {
                return None;
            }
            return Some((name, len, pos + colon));
        }
    }
    let name_end = token_end(buf, pos);
    let mut colon = name_end;
    while matches!(buf.get(colon), Some(b' ' | b'\t')) {
        colon += 1;
    }
    if name_end == pos || buf.get(colon) != Some(&b':') {
        return None;
    }
    Some((
        HeaderName::classify(&buf[pos..name_end]),
        name_end - pos,
        colon,
    ))
}

/// True if the `len`-byte name at `pos` (`len` < 16, the start of `window`) is a token.
/// The window is already loaded: its host-name class mask (as [`token_end`] starts with)
/// settles nearly every name without a run; others take [`token_end`].
#[inline(always)]
fn name_is_token(buf: &[u8], pos: usize, len: usize, window: &[u8; 16]) -> bool {
    let name_bits = (1u32 << len) - 1;
    host_char_mask16(window) & name_bits == name_bits || token_end(buf, pos) == pos + len
}

/// [`trim`] for a header value, fast when the value is written `Name: value`: one SP
/// before it, nothing after it.
#[inline(always)]
fn trim_value(v: &[u8]) -> &[u8] {
    match v {
        // A byte above SP is not white space; a control byte takes the general `trim`.
        [b' ', rest @ ..]
            if rest.first().is_some_and(|&b| b > b' ')
                && rest.last().is_some_and(|&b| b > b' ') =>
        {
            rest
        }
        _ => trim(v),
    }
}

#[inline(always)]
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl<'b> Driver<'b> {
    fn new(buf: &'b [u8], stop_at_first_error: bool, checks: Checks) -> Self {
        Driver {
            buf,
            stop_at_first_error,
            full: checks == Checks::Full,
            fields: Fields::default(),
            error: None,
        }
    }

    /// Records a recoverable error: fatal in strict mode, remembered in lenient mode.
    fn note(&mut self, e: ParseError) -> Result<(), ParseError> {
        if self.stop_at_first_error {
            return Err(e);
        }
        self.error.get_or_insert(e);
        Ok(())
    }

    fn run<const N: usize>(&mut self, storage: &mut Headers<'b, N>) -> Result<(), ParseError> {
        storage.clear();
        let buf = self.buf;
        // CRLFs before the start line are ignored (§7.5); a datagram of nothing else is a
        // keep-alive, reported as Empty.
        let mut pos = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let mut lines = LineEnds::starting_at(buf, pos);
        let nl = lines.next().ok_or(ParseError::StartLine)?;
        let start = StartLine::parse(strip_cr(&buf[pos..nl]))?;
        if let (true, StartLine::Request { uri, .. }) = (self.full, start) {
            check_request_uri(uri).map_err(|_| ParseError::RequestUri)?;
        }
        self.fields.start = Some(start);
        pos = nl + 1;
        self.fields.headers_start = pos;

        let body_start = loop {
            match buf.get(pos) {
                None => return Err(ParseError::Unterminated),
                Some(b'\n') => break pos + 1,
                Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => break pos + 2,
                _ => {}
            }
            // One logical header line: continuation lines start with SP or HTAB. The LF
            // before `pos` was the last one taken, so the next one ends this line.
            let mut nl = lines.next().ok_or(ParseError::Unterminated)?;
            while matches!(buf.get(nl + 1), Some(b' ' | b'\t')) {
                nl = lines.next().ok_or(ParseError::Unterminated)?;
            }
            // name *(SP / HTAB) ":"
            let (name, name_len, colon) = header_name(buf, pos).ok_or(ParseError::HeaderLine)?;
            if colon >= nl {
                return Err(ParseError::HeaderLine);
            }
            let content_end = if buf[nl - 1] == b'\r' { nl - 1 } else { nl };
            let value = trim_value(&buf[colon + 1..content_end]);
            let line = &buf[pos..nl + 1];
            storage
                .try_push(Header {
                    name,
                    name_len,
                    value,
                    line,
                })
                .map_err(|_| ParseError::TooManyHeaders)?;
            // The fields go on in registers: reading the record back would load the name
            // byte's whole word just after its one-byte store, a store-forwarding stall.
            // Headers a proxy does not use fall through to `Ok(())` there (or to the full
            // checks), the same as testing `name.used_by_proxy()` first, one test fewer.
            self.header(name, value, line)?;
            pos = nl + 1;
        };

        let len = match self.fields.content_length {
            Some(cl) if body_start + cl as usize > buf.len() => {
                self.note(ParseError::BodyTruncated)?;
                buf.len()
            }
            Some(cl) => body_start + cl as usize,
            None => buf.len(),
        };
        self.fields.body = &buf[body_start..len];
        self.fields.len = len;
        self.check_complete()
    }

    /// Mandatory headers (§8.1.1) and the CSeq method rule (§8.1.1.5).
    fn check_complete(&mut self) -> Result<(), ParseError> {
        let f = &self.fields;
        let cseq_mismatch = match (f.start, f.cseq) {
            (Some(StartLine::Request { method, .. }), Some(cseq)) => !eq_short(cseq.method, method),
            _ => false,
        };
        let missing = [
            (f.top_via.is_none(), HeaderName::Via),
            (f.call_id.is_none(), HeaderName::CallId),
            (f.cseq.is_none(), HeaderName::CSeq),
            (f.from.is_none(), HeaderName::From),
            (f.to.is_none(), HeaderName::To),
        ];
        if !cseq_mismatch && missing.iter().all(|&(absent, _)| !absent) {
            return Ok(());
        }
        for (absent, name) in missing {
            if absent && !self.already_invalid(name) {
                self.note(ParseError::Missing(name))?;
            }
        }
        if cseq_mismatch {
            self.note(ParseError::CSeqMethod)?;
        }
        Ok(())
    }

    fn already_invalid(&self, name: HeaderName) -> bool {
        matches!(self.error, Some(ParseError::Invalid(n)) if n == name)
    }

    #[inline(always)]
    fn header(&mut self, name: HeaderName, v: &'b [u8], line: &'b [u8]) -> Result<(), ParseError> {
        match name {
            HeaderName::Via => self.vias(v, line),
            HeaderName::Route => self.routes(v, line),
            HeaderName::CallId => {
                let parsed = call_id_ok(v).then_some(v);
                self.single(name, parsed, |f| &mut f.call_id)
            }
            HeaderName::CSeq => {
                let parsed = parse_cseq(v).map(|(number, method)| CSeq { number, method });
                self.single(name, parsed, |f| &mut f.cseq)
            }
            HeaderName::From => {
                let parsed = (!self.full || NameAddr::parse(v).is_ok()).then_some(v);
                self.single(name, parsed, |f| &mut f.from)
            }
            HeaderName::To => {
                let parsed = (!self.full || NameAddr::parse(v).is_ok()).then_some(v);
                self.single(name, parsed, |f| &mut f.to)
            }
            HeaderName::MaxForwards => {
                let parsed = parse_max_forwards(v).map(|value| MaxForwards { value, digits: v });
                self.single(name, parsed, |f| &mut f.max_forwards)
            }
            HeaderName::ContentLength => {
                let parsed = parse_content_length(v);
                self.single(name, parsed, |f| &mut f.content_length)
            }
            _ if self.full => self.full_check(name, v),
            _ => Ok(()),
        }
    }

    /// Grammar checks of headers forwarding does not use ([`Checks::Full`] only).
    #[inline(never)]
    fn full_check(&mut self, name: HeaderName, v: &[u8]) -> Result<(), ParseError> {
        let ok = match name {
            HeaderName::Contact => v == b"*" || all_name_addrs(v),
            HeaderName::RecordRoute => all_name_addrs(v),
            HeaderName::Date => date_ok(v),
            HeaderName::RetryAfter => retry_after_ok(v),
            HeaderName::Warning => warning_ok(v),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            self.note(ParseError::Invalid(name))
        }
    }

    /// Stores a single-valued header, rejecting duplicates and values that did not parse.
    #[inline(always)]
    fn single<T>(
        &mut self,
        name: HeaderName,
        parsed: Option<T>,
        slot: impl for<'f> FnOnce(&'f mut Fields<'b>) -> &'f mut Option<T>,
    ) -> Result<(), ParseError> {
        let Some(value) = parsed else {
            return self.note(ParseError::Invalid(name));
        };
        let slot = slot(&mut self.fields);
        if slot.is_some() {
            return self.note(ParseError::Duplicate(name));
        }
        *slot = Some(value);
        Ok(())
    }

    /// The bytes that remove `value` (the first of its line): up to the next value in the
    /// same line, or the whole line when it is alone.
    fn removal(&self, line: &'b [u8], value: &[u8], next: Option<&[u8]>) -> &'b [u8] {
        match next {
            Some(next) => &self.buf[offset_in(self.buf, value)..offset_in(self.buf, next)],
            None => line,
        }
    }

    #[inline(never)]
    fn vias(&mut self, value: &'b [u8], line: &'b [u8]) -> Result<(), ParseError> {
        // The usual line: one value of the plain shape, which has no comma, quote or `<`,
        // so it is the line's only value (what the general loop below would find).
        if self.fields.via_count < 2 {
            if let Some(via) = Via::parse_plain(value) {
                self.fields.via_count += 1;
                if self.fields.via_count == 1 {
                    self.fields.top_via = Some(TopVia { via, removal: line });
                } else {
                    self.fields.second_via = Some(via);
                }
                return Ok(());
            }
        }
        let mut values = CommaValues::new(value).peekable();
        while let Some(v) = values.next() {
            // A proxy reads only the two top values (ours and the next hop's); the rest
            // are counted and forwarded untouched.
            if self.fields.via_count >= 2 && !self.full {
                self.fields.via_count = self.fields.via_count.saturating_add(1);
                continue;
            }
            let Ok(via) = Via::parse(v) else {
                return self.note(ParseError::Invalid(HeaderName::Via));
            };
            self.fields.via_count = self.fields.via_count.saturating_add(1);
            match self.fields.via_count {
                1 => {
                    let removal = self.removal(line, v, values.peek().copied());
                    self.fields.top_via = Some(TopVia { via, removal });
                }
                2 => self.fields.second_via = Some(via),
                _ => {}
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn routes(&mut self, value: &'b [u8], line: &'b [u8]) -> Result<(), ParseError> {
        if self.fields.top_route.is_some() && !self.full {
            return Ok(());
        }
        let mut values = CommaValues::new(value).peekable();
        while let Some(v) = values.next() {
            if self.fields.top_route.is_some() && !self.full {
                return Ok(());
            }
            let Ok(addr) = NameAddr::parse(v) else {
                return self.note(ParseError::Invalid(HeaderName::Route));
            };
            if self.fields.top_route.is_none() {
                let removal = self.removal(line, v, values.peek().copied());
                self.fields.top_route = Some(TopRoute { addr, removal });
            }
        }
        Ok(())
    }

    /// The message, built in the caller's return slot: borrowing the driver (not moving it)
    /// spares a copy of its fields.
    #[inline(always)]
    fn to_message<'h>(&self, headers: &'h [Header<'b>]) -> Result<Message<'b, 'h>, ParseError> {
        let f = &self.fields;
        let missing = ParseError::Missing;
        Ok(Message {
            buf: self.buf,
            headers,
            start: f.start.ok_or(ParseError::StartLine)?,
            top_via: f.top_via.ok_or(missing(HeaderName::Via))?,
            second_via: f.second_via,
            via_count: f.via_count,
            call_id: f.call_id.ok_or(missing(HeaderName::CallId))?,
            cseq: f.cseq.ok_or(missing(HeaderName::CSeq))?,
            from: f.from.ok_or(missing(HeaderName::From))?,
            to: f.to.ok_or(missing(HeaderName::To))?,
            max_forwards: f.max_forwards,
            top_route: f.top_route,
            content_length: f.content_length,
            headers_start: f.headers_start,
            body: f.body,
            len: f.len,
        })
    }
}

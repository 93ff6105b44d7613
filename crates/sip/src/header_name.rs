//! Header names the balancer knows, matched case-insensitively, compact forms included
//! (RFC 3261 §7.3.3 and the IANA registry: `v i f t m l k s c e o u r`).

use std::fmt;

/// A header name, classified. Names sipshard does not treat specially are [`HeaderName::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    CallId,
    CSeq,
    From,
    To,
    MaxForwards,
    ContentLength,
    ContentType,
    ContentEncoding,
    Route,
    RecordRoute,
    Contact,
    Supported,
    Subject,
    Event,
    AllowEvents,
    ReferTo,
    Date,
    Expires,
    RetryAfter,
    Warning,
    /// Any other header.
    Other,
}

impl HeaderName {
    /// Classifies a raw header name (case-insensitive, compact forms recognised).
    pub fn classify(name: &[u8]) -> HeaderName {
        let Some(head) = name.get(..name.len().min(16)) else {
            return HeaderName::Other;
        };
        let mut window = [0u8; 16];
        window[..head.len()].copy_from_slice(head);
        Self::classify_window(name.len(), &window)
    }

    /// [`HeaderName::classify`] of the `len`-byte name at the start of `window` (bytes past
    /// the name are ignored), so the parser can pass 16 bytes of the datagram without copying.
    /// The name is folded to lower case by OR-ing 0x20 into every byte and compared a word
    /// at a time, as `eq_lowercase` does; a known name is also checked for CR, the one
    /// byte that folds onto `-`, so a name that is not a token is always
    /// [`HeaderName::Other`].
    #[inline(always)]
    pub fn classify_window(len: usize, window: &[u8; 16]) -> HeaderName {
        let (lo, hi) = window.split_at(8);
        let raw = (
            u64::from_le_bytes(lo.try_into().unwrap_or_default()),
            u64::from_le_bytes(hi.try_into().unwrap_or_default()),
        );
        use HeaderName::*;
        // Each arm folds with its own length, a constant there: no mask is computed. Names
        // with `-` are also checked where the fold could have taken a CR for it.
        match len {
            1 => match raw.0 as u8 | 0x20 {
                b'v' => Via,
                b'i' => CallId,
                b'f' => From,
                b't' => To,
                b'm' => Contact,
                b'l' => ContentLength,
                b'k' => Supported,
                b's' => Subject,
                b'c' => ContentType,
                b'e' => ContentEncoding,
                b'o' => Event,
                b'u' => AllowEvents,
                b'r' => ReferTo,
                _ => Other,
            },
            2 => pick(folded(raw, 2) == TO, To),
            3 => pick(folded(raw, 3) == VIA, Via),
            4 => match folded(raw, 4) {
                CSEQ => CSeq,
                FROM => From,
                DATE => Date,
                _ => Other,
            },
            5 => match folded(raw, 5) {
                ROUTE => Route,
                EVENT => Event,
                _ => Other,
            },
            7 => match folded(raw, 7) {
                CALL_ID => pick(hyphens_exact(raw, 7, CALL_ID), CallId),
                CONTACT => Contact,
                SUBJECT => Subject,
                EXPIRES => Expires,
                WARNING => Warning,
                _ => Other,
            },
            8 => pick(
                folded(raw, 8) == REFER_TO && hyphens_exact(raw, 8, REFER_TO),
                ReferTo,
            ),
            9 => pick(folded(raw, 9) == SUPPORTED, Supported),
            11 => pick(
                folded(raw, 11) == RETRY_AFTER && hyphens_exact(raw, 11, RETRY_AFTER),
                RetryAfter,
            ),
            12 => match folded(raw, 12) {
                MAX_FORWARDS => pick(hyphens_exact(raw, 12, MAX_FORWARDS), MaxForwards),
                RECORD_ROUTE => pick(hyphens_exact(raw, 12, RECORD_ROUTE), RecordRoute),
                CONTENT_TYPE => pick(hyphens_exact(raw, 12, CONTENT_TYPE), ContentType),
                ALLOW_EVENTS => pick(hyphens_exact(raw, 12, ALLOW_EVENTS), AllowEvents),
                _ => Other,
            },
            14 => pick(
                folded(raw, 14) == CONTENT_LENGTH && hyphens_exact(raw, 14, CONTENT_LENGTH),
                ContentLength,
            ),
            16 => pick(
                folded(raw, 16) == CONTENT_ENCODING && hyphens_exact(raw, 16, CONTENT_ENCODING),
                ContentEncoding,
            ),
            _ => Other,
        }
    }

    /// True for the headers [`crate::Checks::Proxy`] parses: Via, Route, Call-ID,
    /// CSeq, From, To, Max-Forwards, Content-Length. The others are only split into lines.
    #[inline]
    pub fn used_by_proxy(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Route | CallId | CSeq | From | To | MaxForwards | ContentLength
        )
    }

    /// The canonical (long) form of the name, as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Contact => "Contact",
            HeaderName::Supported => "Supported",
            HeaderName::Subject => "Subject",
            HeaderName::Event => "Event",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::Date => "Date",
            HeaderName::Expires => "Expires",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Warning => "Warning",
            HeaderName::Other => "header",
        }
    }
}

/// `name` equals `lower` (all lowercase) ignoring ASCII case, for token characters.
/// Folds the whole comparison without early exit so it compiles to a few wide operations.
/// OR-ing 0x20 lowercases letters and leaves digits and `-.!%*_+\`'~` unchanged; no other
/// token character maps onto a letter or onto `-`.
#[inline]
pub fn eq_lowercase(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .fold(0u8, |diff, (&a, &b)| diff | ((a | 0x20) ^ b))
            == 0
}

/// OR-ed into every byte of a name: folds upper case onto lower case (see `eq_lowercase`).
pub(super) const FOLD: u64 = 0x2020_2020_2020_2020;

// The known long forms as keys (see [`key`]).
const TO: (u64, u64) = key(b"to");
const VIA: (u64, u64) = key(b"via");
const CSEQ: (u64, u64) = key(b"cseq");
const DATE: (u64, u64) = key(b"date");
const FROM: (u64, u64) = key(b"from");
const EVENT: (u64, u64) = key(b"event");
const ROUTE: (u64, u64) = key(b"route");
const CALL_ID: (u64, u64) = key(b"call-id");
const CONTACT: (u64, u64) = key(b"contact");
const EXPIRES: (u64, u64) = key(b"expires");
const SUBJECT: (u64, u64) = key(b"subject");
const WARNING: (u64, u64) = key(b"warning");
const REFER_TO: (u64, u64) = key(b"refer-to");
const SUPPORTED: (u64, u64) = key(b"supported");
const RETRY_AFTER: (u64, u64) = key(b"retry-after");
const ALLOW_EVENTS: (u64, u64) = key(b"allow-events");
const CONTENT_TYPE: (u64, u64) = key(b"content-type");
const MAX_FORWARDS: (u64, u64) = key(b"max-forwards");
const RECORD_ROUTE: (u64, u64) = key(b"record-route");
const CONTENT_LENGTH: (u64, u64) = key(b"content-length");
const CONTENT_ENCODING: (u64, u64) = key(b"content-encoding");

/// `word & KEEP[n]` keeps the first n bytes of a little-endian word.
const KEEP: [u64; 9] = {
    let mut keep = [u64::MAX; 9];
    let mut n = 0;
    while n < 8 {
        keep[n] = (1u64 << (8 * n)) - 1;
        n += 1;
    }
    keep
};

/// `(word & keep.0, word & keep.1)` keeps the first `len` (up to 16) bytes of two words.
#[inline(always)]
fn keep(len: usize) -> (u64, u64) {
    (KEEP[len.min(8)], KEEP[len.saturating_sub(8).min(8)])
}

/// The first `len` bytes (up to 16) of the two words `raw`, folded to lower case, zero
/// past them. `len` is a constant where this inlines, so the masks are too.
#[inline(always)]
fn folded(raw: (u64, u64), len: usize) -> (u64, u64) {
    let (keep_lo, keep_hi) = keep(len);
    ((raw.0 | FOLD) & keep_lo, (raw.1 | FOLD) & keep_hi)
}

/// For a `len`-byte name in `raw` whose [`folded`] form is `key`: true unless it has a CR
/// where the key has `-` (see [`exact`]).
#[inline(always)]
fn hyphens_exact(raw: (u64, u64), len: usize, key: (u64, u64)) -> bool {
    let (keep_lo, keep_hi) = keep(len);
    exact(raw.0 & keep_lo, key.0) && exact(raw.1 & keep_hi, key.1)
}

/// `header` if `found`, else [`HeaderName::Other`].
#[inline(always)]
fn pick(found: bool, header: HeaderName) -> HeaderName {
    if found {
        header
    } else {
        HeaderName::Other
    }
}

/// For a `word` equal to the `key` word once folded: true unless a byte differs where the
/// key has no letter, that is a CR (0x0D) where the key has `-` (0x2D). Letters have bit
/// 0x40 set and `-` has not, so `!key` shifted right once marks the `-` with 0x20.
#[inline(always)]
fn exact(word: u64, key: u64) -> bool {
    (word ^ key) & (!key >> 1) & FOLD == 0
}

/// A lower-case name of up to 16 bytes as two little-endian words, zero past its end.
const fn key(name: &[u8]) -> (u64, u64) {
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < name.len() {
        words[i / 8] |= (name[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    (words[0], words[1])
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName::{self, *};

    #[test]
    fn compact_forms() {
        let table: [(&[u8], HeaderName); 13] = [
            (b"v", Via),
            (b"i", CallId),
            (b"f", From),
            (b"t", To),
            (b"m", Contact),
            (b"l", ContentLength),
            (b"k", Supported),
            (b"s", Subject),
            (b"c", ContentType),
            (b"e", ContentEncoding),
            (b"o", Event),
            (b"u", AllowEvents),
            (b"r", ReferTo),
        ];
        for (name, expected) in table {
            assert_eq!(HeaderName::classify(name), expected, "{:?}", name);
            let upper = [name[0].to_ascii_uppercase()];
            assert_eq!(HeaderName::classify(&upper), expected);
        }
        assert_eq!(HeaderName::classify(b"x"), Other);
    }

    #[test]
    fn long_forms_any_case() {
        let table: [(&[u8], HeaderName); 9] = [
            (b"VIA", Via),
            (b"call-ID", CallId),
            (b"cseq", CSeq),
            (b"MaX-fOrWaRdS", MaxForwards),
            (b"Content-Length", ContentLength),
            (b"route", Route),
            (b"Record-Route", RecordRoute),
            (b"TO", To),
            (b"Retry-After", RetryAfter),
        ];
        for (name, expected) in table {
            assert_eq!(HeaderName::classify(name), expected);
        }
        assert_eq!(HeaderName::classify(b"C%6Fntact"), Other);
        assert_eq!(HeaderName::classify(b"Vias"), Other);
        assert_eq!(HeaderName::classify(b""), Other);
    }

    const NAMES: [(&[u8], HeaderName); 21] = [
        (b"to", To),
        (b"via", Via),
        (b"cseq", CSeq),
        (b"from", From),
        (b"date", Date),
        (b"route", Route),
        (b"event", Event),
        (b"call-id", CallId),
        (b"contact", Contact),
        (b"subject", Subject),
        (b"expires", Expires),
        (b"warning", Warning),
        (b"refer-to", ReferTo),
        (b"supported", Supported),
        (b"retry-after", RetryAfter),
        (b"max-forwards", MaxForwards),
        (b"record-route", RecordRoute),
        (b"content-type", ContentType),
        (b"allow-events", AllowEvents),
        (b"content-length", ContentLength),
        (b"content-encoding", ContentEncoding),
    ];

    /// The definition: a token equal to a long form ignoring case.
    fn reference(name: &[u8]) -> HeaderName {
        if !crate::scan::is_token_str(name) {
            return Other;
        }
        NAMES
            .iter()
            .find(|(lower, _)| super::eq_lowercase(name, lower))
            .map_or(Other, |&(_, h)| h)
    }

    #[test]
    fn every_one_byte_change_of_a_long_form() {
        for (lower, _) in NAMES {
            for pos in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[pos] = b;
                    assert_eq!(HeaderName::classify(&name), reference(&name), "{name:?}");
                    // With bytes after the name in the window.
                    let mut window = [b'x'; 16];
                    window[..name.len()].copy_from_slice(&name);
                    assert_eq!(
                        HeaderName::classify_window(name.len(), &window),
                        reference(&name)
                    );
                }
            }
            for len in 2..=lower.len() + 1 {
                let name: Vec<u8> = lower.iter().chain(b"ab").take(len).copied().collect();
                assert_eq!(HeaderName::classify(&name), reference(&name), "{name:?}");
            }
        }
        assert_eq!(HeaderName::classify(&[b'a'; 40]), Other);
    }
}

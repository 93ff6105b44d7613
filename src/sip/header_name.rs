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
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'i' => HeaderName::CallId,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'o' => HeaderName::Event,
                b'u' => HeaderName::AllowEvents,
                b'r' => HeaderName::ReferTo,
                _ => HeaderName::Other,
            };
        }
        // One candidate per (length, first letter, third letter): a single comparison.
        let (Some(&first), third) = (name.first(), name.get(2).map_or(0, |b| b | 0x20)) else {
            return HeaderName::Other;
        };
        let (lower, header): (&[u8], HeaderName) = match (name.len(), first | 0x20, third) {
            (2, b't', _) => (b"to", HeaderName::To),
            (3, b'v', _) => (b"via", HeaderName::Via),
            (4, b'c', _) => (b"cseq", HeaderName::CSeq),
            (4, b'f', _) => (b"from", HeaderName::From),
            (4, b'd', _) => (b"date", HeaderName::Date),
            (5, b'r', _) => (b"route", HeaderName::Route),
            (5, b'e', _) => (b"event", HeaderName::Event),
            (7, b'c', b'l') => (b"call-id", HeaderName::CallId),
            (7, b'c', b'n') => (b"contact", HeaderName::Contact),
            (7, b's', _) => (b"subject", HeaderName::Subject),
            (7, b'e', _) => (b"expires", HeaderName::Expires),
            (7, b'w', _) => (b"warning", HeaderName::Warning),
            (8, b'r', _) => (b"refer-to", HeaderName::ReferTo),
            (9, b's', _) => (b"supported", HeaderName::Supported),
            (11, b'r', _) => (b"retry-after", HeaderName::RetryAfter),
            (12, b'm', _) => (b"max-forwards", HeaderName::MaxForwards),
            (12, b'r', _) => (b"record-route", HeaderName::RecordRoute),
            (12, b'c', _) => (b"content-type", HeaderName::ContentType),
            (12, b'a', _) => (b"allow-events", HeaderName::AllowEvents),
            (14, b'c', _) => (b"content-length", HeaderName::ContentLength),
            (16, b'c', _) => (b"content-encoding", HeaderName::ContentEncoding),
            _ => return HeaderName::Other,
        };
        if eq_lowercase(name, lower) {
            header
        } else {
            HeaderName::Other
        }
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
}

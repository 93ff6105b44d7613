//! The parser's error type: small, `Copy`, and specific enough to put in a 400's reason.

use super::HeaderName;
use std::fmt;

/// What was wrong with a message. Parsing never panics; every malformed input maps here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The datagram is empty or has no complete start line.
    Empty,
    /// The start line is neither a request line nor a status line.
    StartLine,
    /// The request method is not a token.
    Method,
    /// The Request-URI is malformed (no scheme, embedded LWS, `<>`, escaped headers).
    RequestUri,
    /// The SIP version is not `SIP/2.0`.
    Version,
    /// The status code is not three digits in 100..=699.
    StatusCode,
    /// A header line has no name, a bad name, or no colon.
    HeaderLine,
    /// The header section does not end with an empty line.
    Unterminated,
    /// More headers than the caller's storage holds.
    TooManyHeaders,
    /// The value of this header is malformed.
    Invalid(HeaderName),
    /// This mandatory header is missing.
    Missing(HeaderName),
    /// This single-valued header appears more than once.
    Duplicate(HeaderName),
    /// The CSeq method differs from the request method.
    CSeqMethod,
    /// The datagram is shorter than Content-Length says.
    BodyTruncated,
}

impl ParseError {
    /// A short human-readable reason, suitable for a 400 reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::Empty => "Empty message",
            ParseError::StartLine => "Malformed start line",
            ParseError::Method => "Malformed method",
            ParseError::RequestUri => "Malformed Request-URI",
            ParseError::Version => "Unsupported SIP version",
            ParseError::StatusCode => "Malformed status code",
            ParseError::HeaderLine => "Malformed header line",
            ParseError::Unterminated => "Header section not terminated",
            ParseError::TooManyHeaders => "Too many headers",
            ParseError::Invalid(h) => match h {
                HeaderName::Via => "Invalid Via",
                HeaderName::CallId => "Invalid Call-ID",
                HeaderName::CSeq => "Invalid CSeq",
                HeaderName::From => "Invalid From",
                HeaderName::To => "Invalid To",
                HeaderName::MaxForwards => "Invalid Max-Forwards",
                HeaderName::ContentLength => "Invalid Content-Length",
                HeaderName::Route => "Invalid Route",
                HeaderName::RecordRoute => "Invalid Record-Route",
                HeaderName::Contact => "Invalid Contact",
                HeaderName::Date => "Invalid Date",
                HeaderName::Expires => "Invalid Expires",
                HeaderName::RetryAfter => "Invalid Retry-After",
                HeaderName::Warning => "Invalid Warning",
                _ => "Invalid header",
            },
            ParseError::Missing(h) => match h {
                HeaderName::Via => "Missing Via",
                HeaderName::CallId => "Missing Call-ID",
                HeaderName::CSeq => "Missing CSeq",
                HeaderName::From => "Missing From",
                HeaderName::To => "Missing To",
                _ => "Missing header",
            },
            ParseError::Duplicate(h) => match h {
                HeaderName::CallId => "Duplicate Call-ID",
                HeaderName::CSeq => "Duplicate CSeq",
                HeaderName::From => "Duplicate From",
                HeaderName::To => "Duplicate To",
                HeaderName::MaxForwards => "Duplicate Max-Forwards",
                HeaderName::ContentLength => "Duplicate Content-Length",
                _ => "Duplicate header",
            },
            ParseError::CSeqMethod => "CSeq method does not match",
            ParseError::BodyTruncated => "Body shorter than Content-Length",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

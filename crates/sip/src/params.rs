//! Header parameter lists (`*( SEMI generic-param )`) and comma-separated header values.

use super::find::{find, find3};
use super::scan::{is_token, is_ws, quoted_string_end, skip_ws, token_end};

/// One `name[=value]` parameter, borrowed from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name (a token; compare case-insensitively).
    pub name: &'a [u8],
    /// The value after `=`, without surrounding white space; `None` for a bare name.
    /// Quoted values keep their quotes.
    pub value: Option<&'a [u8]>,
}

/// Marker error: the parameter list is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadParams;

/// Iterator over `*( SEMI generic-param )`, allowing LWS around `;` and `=`
/// (RFC 3261 §25.1 `SEMI` and `EQUAL`). Yields `Err` once on malformed input, then stops.
pub struct Params<'a> {
    s: &'a [u8],
    i: usize,
    failed: bool,
}

impl<'a> Params<'a> {
    /// Parameters in `s`, which must start (after optional white space) with `;` or be blank.
    pub fn new(s: &'a [u8]) -> Self {
        Params {
            s,
            i: 0,
            failed: false,
        }
    }

    /// Runs the whole list, calling `f` for each parameter.
    pub fn for_each_checked(
        self,
        mut f: impl FnMut(Param<'a>) -> Result<(), BadParams>,
    ) -> Result<(), BadParams> {
        for p in self {
            f(p?)?;
        }
        Ok(())
    }

    fn fail(&mut self) -> Option<Result<Param<'a>, BadParams>> {
        self.failed = true;
        Some(Err(BadParams))
    }
}

/// End of a generic-param value starting at `i`: a quoted string, or a run of token
/// characters plus the `:` `[` `]` of an IPv6 host.
fn gen_value_end(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'"') {
        return quoted_string_end(s, i);
    }
    let mut j = i;
    while j < s.len() && (is_token(s[j]) || matches!(s[j], b':' | b'[' | b']')) {
        j += 1;
    }
    (j > i).then_some(j)
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, BadParams>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let s = self.s;
        let i = skip_ws(s, self.i);
        if i >= s.len() {
            self.i = i;
            return None;
        }
        if s[i] != b';' {
            return self.fail();
        }
        let name_start = skip_ws(s, i + 1);
        let name_end = token_end(s, name_start);
        if name_end == name_start {
            return self.fail();
        }
        let name = &s[name_start..name_end];
        let after = skip_ws(s, name_end);
        if after < s.len() && s[after] == b'=' {
            let value_start = skip_ws(s, after + 1);
            let Some(value_end) = gen_value_end(s, value_start) else {
                return self.fail();
            };
            self.i = value_end;
            Some(Ok(Param {
                name,
                value: Some(&s[value_start..value_end]),
            }))
        } else {
            self.i = name_end;
            Some(Ok(Param { name, value: None }))
        }
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<...>`), yielding
/// each value without surrounding white space. An empty value is yielded as an empty slice
/// (callers decide whether that is an error).
pub struct CommaValues<'a> {
    s: &'a [u8],
    i: usize,
    done: bool,
}

impl<'a> CommaValues<'a> {
    /// Values of the header value `s`.
    pub fn new(s: &'a [u8]) -> Self {
        CommaValues {
            s,
            i: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for CommaValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = skip_ws(s, self.i);
        // Fast path: nothing left that could separate values or hide a comma.
        if find3(s, start, b',', b'"', b'<').is_none() {
            self.done = true;
            let mut e = s.len();
            while e > start && is_ws(s[e - 1]) {
                e -= 1;
            }
            return Some(&s[start..e]);
        }
        // From one special byte to the next: outside `<...>` a comma, a quote or `<`,
        // inside only its `>`.
        let mut j = start;
        let end = loop {
            let Some(k) = find3(s, j, b',', b'"', b'<') else {
                self.done = true;
                break s.len();
            };
            match s[k] {
                b'"' => j = quoted_string_end(s, k).unwrap_or(s.len()),
                b'<' => match find(s, k + 1, b'>') {
                    Some(close) => j = close + 1,
                    None => {
                        self.done = true;
                        break s.len();
                    }
                },
                _ => {
                    self.i = k + 1;
                    break k;
                }
            }
        };
        let mut e = end;
        while e > start && is_ws(s[e - 1]) {
            e -= 1;
        }
        Some(&s[start..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &[u8]) -> Result<Vec<(String, Option<String>)>, BadParams> {
        Params::new(s)
            .map(|p| {
                p.map(|p| {
                    (
                        String::from_utf8_lossy(p.name).into_owned(),
                        p.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn params_with_lws() {
        let got = collect(b" ;  branch  =\r\n z9hG4bK1 ; rport;received=[::1]; x=\"a;b\"").unwrap();
        assert_eq!(
            got,
            vec![
                ("branch".into(), Some("z9hG4bK1".into())),
                ("rport".into(), None),
                ("received".into(), Some("[::1]".into())),
                ("x".into(), Some("\"a;b\"".into())),
            ]
        );
        assert_eq!(collect(b"").unwrap(), vec![]);
    }

    #[test]
    fn params_malformed() {
        assert!(collect(b";;").is_err());
        assert!(collect(b";a=").is_err());
        assert!(collect(b"x").is_err());
        assert!(collect(b";a=\"open").is_err());
        assert!(collect(b";a b").is_err());
    }

    #[test]
    fn comma_values_respect_quotes_and_angles() {
        let v: Vec<&[u8]> = CommaValues::new(b"a , \"x,y\" <sip:p,q>;t=1,\r\n b,").collect();
        assert_eq!(
            v,
            vec![
                &b"a"[..],
                &b"\"x,y\" <sip:p,q>;t=1"[..],
                &b"b"[..],
                &b""[..]
            ]
        );
    }
}

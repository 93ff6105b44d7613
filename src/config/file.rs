//! The TOML file as a [`Layer`]: syntax from the `toml` crate's parser (its error's span
//! gives the line), keys and value types checked here against the option declarations, so
//! every message is ours and names the key.

use super::error::{invalid, wrong_type, ConfigError, Origin};
use super::layer::{Layer, Located, Raw, RawBackend};
use super::options::{self, Kind, Opt, Scope};
use std::path::Path;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

/// A TOML document as a layer; `path` names the file in messages (`None`: text given alone).
pub(crate) fn read(text: &str, path: Option<&Path>) -> Result<Layer, ConfigError> {
    let document = DeTable::parse(text).map_err(|e| syntax_error(&e, text, path))?;
    let file = File { text, path };
    let mut layer = Layer::default();
    for (key, value) in in_document_order(document.get_ref()) {
        let opt = options::by_key(key.get_ref())
            .filter(|o| o.scope != Scope::CommandLine)
            .ok_or_else(|| file.unknown_key(key, options::file_keys()))?;
        let raw = file.value(opt, value, false)?;
        layer.set(opt.key, raw);
    }
    Ok(layer)
}

/// The document, for origins and messages.
struct File<'t> {
    text: &'t str,
    path: Option<&'t Path>,
}

impl File<'_> {
    fn origin<T>(&self, item: &Spanned<T>) -> Origin {
        Origin::File {
            path: self.path.map(Path::to_path_buf),
            line: line_of(self.text, item.span().start),
        }
    }

    fn unknown_key(
        &self,
        key: &Spanned<DeString<'_>>,
        expected: impl Iterator<Item = &'static str>,
    ) -> ConfigError {
        let expected: Vec<String> = expected.map(|k| format!("`{k}`")).collect();
        ConfigError::Toml {
            path: self.path.map(Path::to_path_buf),
            line: Some(line_of(self.text, key.span().start)),
            message: format!(
                "unknown key {:?} (expected one of {})",
                key.get_ref(),
                expected.join(", ")
            ),
        }
    }

    /// The value of `opt`; `in_backend`: inside a `[[backend]]` table, whose errors name the
    /// backend key.
    fn value(
        &self,
        opt: &'static Opt,
        item: &Spanned<DeValue<'_>>,
        in_backend: bool,
    ) -> Result<Located<Raw>, ConfigError> {
        let origin = self.origin(item);
        let key = if in_backend { "backend" } else { opt.key };
        let wrong = |expected: &str, tail: &str, found: &DeValue<'_>| {
            wrong_type(&origin, key, expected, tail, found.type_str())
        };
        let value = item.get_ref();
        let raw = match (opt.kind, value) {
            (Kind::Text | Kind::Secret | Kind::Ip, DeValue::String(s)) => Raw::Text(s.to_string()),
            (Kind::Text | Kind::Secret | Kind::Ip, other) => {
                return Err(wrong("a string", "", other))
            }
            (Kind::U32 | Kind::U64, DeValue::Integer(n)) => Raw::Int(integer(n, &origin, key)?),
            (Kind::U32 | Kind::U64, other) => return Err(wrong("an integer", "", other)),
            (Kind::Switch, DeValue::String(s)) => Raw::Text(s.to_string()),
            (Kind::Switch, DeValue::Boolean(on)) => {
                Raw::Text(if *on { "on" } else { "off" }.into())
            }
            (Kind::Switch, other) => {
                return Err(wrong("true, false, \"on\" or \"off\"", "", other))
            }
            // `any`, one code, or a list of codes: kept as the text the command line would give.
            (Kind::Codes, DeValue::String(s)) => Raw::Text(s.to_string()),
            (Kind::Codes, DeValue::Integer(n)) => Raw::Text(integer(n, &origin, key)?.to_string()),
            (Kind::Codes, DeValue::Array(items)) => {
                let mut codes = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Integer(n) => codes.push(integer(n, &origin, key)?.to_string()),
                        other => {
                            return Err(wrong("a list of status codes", " in the list", other))
                        }
                    }
                }
                Raw::Text(codes.join(","))
            }
            (Kind::Codes, other) => {
                return Err(wrong("\"any\" or a list of status codes", "", other))
            }
            // One address may be given as a plain string.
            (Kind::Addresses, DeValue::String(s)) => {
                Raw::List(vec![Located::new(s.to_string(), origin.clone())])
            }
            (Kind::Addresses, DeValue::Array(items)) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => {
                            list.push(Located::new(s.to_string(), origin.clone()))
                        }
                        other => {
                            return Err(wrong("a list of address strings", " in the list", other))
                        }
                    }
                }
                Raw::List(list)
            }
            (Kind::Addresses, other) => return Err(wrong("a list of address strings", "", other)),
            (Kind::Backends, DeValue::Array(tables)) => {
                let mut backends = Vec::with_capacity(tables.len());
                for table in tables.iter() {
                    backends.push(self.backend(table)?);
                }
                Raw::Backends(backends)
            }
            (Kind::Backends, DeValue::Table(_)) => {
                return Err(ConfigError::Toml {
                    path: self.path.map(Path::to_path_buf),
                    line: Some(line_of(self.text, item.span().start)),
                    message: "[backend]: this key holds a list of tables; write [[backend]]"
                        .to_string(),
                })
            }
            (Kind::Backends, other) => return Err(wrong("[[backend]] tables", "", other)),
            // Filtered out by the caller; answered as a wrong type if one ever got here.
            (Kind::Path, other) => return Err(wrong("a command-line flag", "", other)),
        };
        Ok(Located::new(raw, origin))
    }

    /// One `[[backend]]` table.
    fn backend(&self, table: &Spanned<DeValue<'_>>) -> Result<RawBackend, ConfigError> {
        let origin = self.origin(table);
        let DeValue::Table(entries) = table.get_ref() else {
            let found = table.get_ref();
            let shown = match found {
                DeValue::String(s) => format!("string {:?}", s.as_ref()),
                other => other.type_str().to_string(),
            };
            return Err(invalid(
                &origin,
                "backend",
                None,
                format!(
                    "invalid type: {shown}, expected a table with `addr` and an optional `weight`"
                ),
            ));
        };
        let mut spec = None;
        let mut weight = None;
        let mut options = Layer::default();
        for (key, value) in in_document_order(entries) {
            let at = self.origin(value);
            match key.get_ref().as_ref() {
                "addr" => match value.get_ref() {
                    DeValue::String(s) => spec = Some(Located::new(s.to_string(), at)),
                    other => {
                        return Err(wrong_type(&at, "backend", "a string", "", other.type_str()))
                    }
                },
                "weight" => match value.get_ref() {
                    DeValue::Integer(n) => {
                        weight = Some(Located::new(integer(n, &at, "backend")?, at))
                    }
                    other => {
                        return Err(wrong_type(
                            &at,
                            "backend",
                            "an integer",
                            "",
                            other.type_str(),
                        ))
                    }
                },
                name => {
                    let opt = options::by_key(name)
                        .filter(|o| o.scope == Scope::AlsoPerBackend)
                        .ok_or_else(|| self.unknown_key(key, options::backend_keys()))?;
                    options.set(opt.key, self.value(opt, value, true)?);
                }
            }
        }
        let Some(spec) = spec else {
            return Err(invalid(
                &origin,
                "backend",
                None,
                "missing key \"addr\"".to_string(),
            ));
        };
        Ok(RawBackend {
            spec,
            weight,
            options,
        })
    }
}

/// A table's entries in the order they appear in the document (the parser keeps them sorted
/// by key), so the first problem reported is the first in the file.
fn in_document_order<'a, 'i>(
    table: &'a DeTable<'i>,
) -> Vec<(&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// A TOML integer (any radix) as an `i128`; checked against the option's range later.
fn integer(
    n: &toml::de::DeInteger<'_>,
    origin: &Origin,
    key: &'static str,
) -> Result<i128, ConfigError> {
    i128::from_str_radix(n.as_str(), n.radix()).map_err(|_| {
        invalid(
            origin,
            key,
            None,
            format!("{n} is not an integer sipshard can read"),
        )
    })
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// A syntax error from the parser: its message and the line its span starts on, prefixed with
/// the key when that line assigns one of ours (`key = ...` or a `[key]` header). Nothing else
/// of the line is quoted: it could be part of the secret.
fn syntax_error(err: &toml::de::Error, text: &str, path: Option<&Path>) -> ConfigError {
    let span = err.span();
    let line = span.as_ref().map(|s| line_of(text, s.start));
    let raw = err.message().trim();
    let message = match span.and_then(|s| key_on_line(text, s.start)) {
        Some(key) => format!("{key}: {raw}"),
        None => raw.to_string(),
    };
    ConfigError::Toml {
        path: path.map(Path::to_path_buf),
        line,
        message,
    }
}

/// The key of ours that the line holding `offset` assigns, if any: `key` for `key = ...`,
/// `[key]` or `[[key]]` for a table header.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let start = offset.min(text.len());
    let line_start = text.as_bytes()[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = text.as_bytes()[line_start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text.get(line_start..line_end)?.trim();
    let (key, header) = if line.starts_with('[') {
        (line.split(']').next()?.trim_start_matches('[').trim(), true)
    } else {
        (line.split_once('=')?.0.trim(), false)
    };
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    let known = options::file_keys()
        .chain(options::backend_keys())
        .any(|k| k == key);
    match (known, header) {
        (false, _) => None,
        (true, true) if line.starts_with("[[") => Some(format!("[[{key}]]")),
        (true, true) => Some(format!("[{key}]")),
        (true, false) => Some(key.to_string()),
    }
}

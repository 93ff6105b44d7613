//! One source of configuration (the command line, or the file) as raw values that remember
//! where they came from, and the merge of two sources.

use super::error::{invalid, ConfigError, Origin};
use std::collections::BTreeMap;

/// A value and where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Located<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Located { value, origin }
    }
}

/// A value as given, before validation.
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    /// Text (addresses, names, words, status codes).
    Text(String),
    /// An integer (any sign or size the source can give; checked later).
    Int(i128),
    /// A list of texts, each with its own origin.
    List(Vec<Located<String>>),
    /// The backends.
    Backends(Vec<RawBackend>),
}

/// One backend as given.
#[derive(Clone, Debug)]
pub(crate) struct RawBackend {
    /// `ADDR` (file) or `ADDR[;weight=W]` (command line).
    pub spec: Located<String>,
    /// The file's `weight` key.
    pub weight: Option<Located<i128>>,
    /// The per-backend options of the file's `[[backend]]` table.
    pub options: Layer,
}

/// One source of configuration: option key → value. An absent key is "not given here".
#[derive(Clone, Debug, Default)]
pub(crate) struct Layer {
    values: BTreeMap<&'static str, Located<Raw>>,
}

impl Layer {
    /// Sets `key` (a key of [`super::options::OPTIONS`]).
    pub fn set(&mut self, key: &'static str, value: Located<Raw>) {
        self.values.insert(key, value);
    }

    /// `over` wins wherever it gives a value; a list replaces a list.
    pub fn merge(mut self, over: Layer) -> Layer {
        self.values.extend(over.values);
        self
    }

    /// Only the values of `keys`.
    pub fn subset(&self, keys: impl Iterator<Item = &'static str>) -> Layer {
        let mut out = Layer::default();
        for key in keys {
            if let Some(value) = self.values.get(key) {
                out.set(key, value.clone());
            }
        }
        out
    }

    /// A text value.
    pub fn text(&self, key: &str) -> Option<Located<String>> {
        match self.values.get(key)? {
            Located {
                value: Raw::Text(text),
                origin,
            } => Some(Located::new(text.clone(), origin.clone())),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, key: &str) -> Option<Located<i128>> {
        match self.values.get(key)? {
            Located {
                value: Raw::Int(n),
                origin,
            } => Some(Located::new(*n, origin.clone())),
            _ => None,
        }
    }

    /// A list of texts.
    pub fn list(&self, key: &str) -> Option<Located<Vec<Located<String>>>> {
        match self.values.get(key)? {
            Located {
                value: Raw::List(items),
                origin,
            } => Some(Located::new(items.clone(), origin.clone())),
            _ => None,
        }
    }

    /// The backends.
    pub fn backends(&self) -> Option<Located<Vec<RawBackend>>> {
        match self.values.get("backend")? {
            Located {
                value: Raw::Backends(items),
                origin,
            } => Some(Located::new(items.clone(), origin.clone())),
            _ => None,
        }
    }
}

/// The value of an option that has a declared default, from a layer that holds the defaults
/// under what was given (so it is always there unless the declaration lacks a default).
pub(crate) fn declared<T>(
    item: Option<Located<T>>,
    key: &'static str,
) -> Result<Located<T>, ConfigError> {
    item.ok_or_else(|| {
        invalid(
            &Origin::Default,
            key,
            None,
            "no value, and no default declared for it".to_string(),
        )
    })
}

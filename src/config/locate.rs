//! Where a config value sits in its file, and the error that says so.
//!
//! Every refusal of a config names `file:line:column: field: message`, so an operator with
//! only a text editor on a Pi finds the wrong line at once. This module owns that: the map
//! from dotted field paths to spans, and turning a serde or validation failure into a
//! located [`ConfigError`].

use std::fmt;
use std::ops::Range;

/// A configuration error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `product[1].price_sat`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// A validation failure before it is located in the file.
pub(super) struct Invalid {
    pub(super) field: String,
    pub(super) message: String,
}

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Where each key of the TOML text sits, to turn a field path into line and column.
pub(super) struct Spans<'a> {
    text: &'a str,
    /// (dotted path, key span, whole entry span)
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'a> Spans<'a> {
    pub(super) fn new(text: &'a str) -> Spans<'a> {
        let mut entries = Vec::new();
        if let Ok(doc) = toml_edit::Document::parse(text) {
            walk_table(doc.as_table(), "", &mut entries);
        }
        Spans { text, entries }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    pub(super) fn locate(&self, file: &str, i: Invalid) -> ConfigError {
        // The field itself, else its nearest parent that is in the file.
        let mut path = i.field.as_str();
        let offset = loop {
            if let Some((_, key, _)) = self.entries.iter().find(|(p, _, _)| p == path) {
                break Some(key.start);
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => break None,
            }
        };
        let (line, column) = offset.map_or((1, 1), |o| self.line_col(o));
        ConfigError {
            file: file.into(),
            line,
            column,
            field: i.field,
            message: i.message,
        }
    }

    pub(super) fn locate_de(&self, file: &str, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let span = e.span().unwrap_or(0..0);
        // The innermost entry around the error is the field (or the table holding it).
        let inner = self
            .entries
            .iter()
            .filter(|(_, key, whole)| {
                (key.start <= span.start && span.start < key.end.max(key.start + 1))
                    || (whole.start <= span.start && span.end <= whole.end)
            })
            .max_by_key(|(p, _, _)| p.len());
        let mut field = inner.map_or(String::new(), |(p, _, _)| p.clone());
        // serde names the missing or unknown key in backticks.
        for pat in ["missing field `", "unknown field `", "unknown variant `"] {
            if let Some(rest) = message.split(pat).nth(1) {
                if let Some(name) = rest.split('`').next() {
                    if pat == "missing field `" {
                        field = if field.is_empty() {
                            name.to_string()
                        } else {
                            format!("{field}.{name}")
                        };
                    } else if field.is_empty() {
                        field = name.to_string();
                    }
                }
            }
        }
        if field.is_empty() {
            field = "(syntax)".into();
        }
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: file.into(),
            line,
            column,
            field,
            message,
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(
    t: &dyn toml_edit::TableLike,
    prefix: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    for (k, item) in t.iter() {
        let path = join(prefix, k);
        let key_span = t
            .get_key_value(k)
            .and_then(|(key, _)| key.span())
            .unwrap_or(0..0);
        let whole = item.span().unwrap_or_else(|| key_span.clone());
        out.push((
            path.clone(),
            key_span.clone(),
            key_span.start..whole.end.max(key_span.end),
        ));
        walk_item(item, &path, out);
    }
}

fn walk_item(
    item: &toml_edit::Item,
    path: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    match item {
        toml_edit::Item::Table(t) => walk_table(t, path, out),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let span = t.span().unwrap_or(0..0);
                out.push((p.clone(), span.clone(), span));
                walk_table(t, &p, out);
            }
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => walk_table(t, path, out),
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let span = v.span().unwrap_or(0..0);
                out.push((format!("{path}[{i}]"), span.clone(), span));
            }
        }
        toml_edit::Item::Value(_) | toml_edit::Item::None => {}
    }
}

//! [`PolicyError`]: why a policy file was rejected, with the line and the
//! field at fault.
//!
//! Syntax and shape errors come from the `toml` crate and carry a byte span;
//! the span is turned into a 1-based line, and into a field path by walking
//! the document's spanned tree ([`toml::de::DeTable`]) down to the key or
//! value under the span. Semantic errors are raised by the validation in
//! `parse.rs` from `toml::Spanned` fields, with the path spelled out there.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A policy that must not be loaded.
///
/// Displays as `policy line 14, field method.dimensions[1].weight: dimension
/// weights sum to 90, expected 100`. `line` is `None` only when the error
/// has no place in the file; `field` is empty for syntax errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// 1-based line in the policy source.
    pub line: Option<usize>,
    /// Dotted path of the offending field, with array indices
    /// (`tiers[2].min_score`); empty when the text itself is malformed.
    pub field: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("policy")?;
        match (self.line, self.field.is_empty()) {
            (Some(line), false) => write!(f, " line {line}, field {}", self.field)?,
            (Some(line), true) => write!(f, " line {line}")?,
            (None, false) => write!(f, " field {}", self.field)?,
            (None, true) => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl PolicyError {
    /// An error located at a byte span of `src`.
    pub(crate) fn at(
        src: &str,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            line: Some(line_of(src, span.start)),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Convert a `toml` error (syntax, unknown key, wrong type, missing
    /// field, unknown enum variant) into a located error.
    pub(crate) fn from_toml(src: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_owned();
        let Some(span) = err.span() else {
            return Self {
                line: None,
                field: String::new(),
                message,
            };
        };
        let mut field = match DeTable::parse(src) {
            // An empty span at the start means the document as a whole
            // (e.g. a missing top-level field): the path is empty.
            Ok(doc) if !span.is_empty() => {
                let mut path = String::new();
                if find_in_table(doc.get_ref(), &span, &mut path) {
                    path
                } else {
                    String::new()
                }
            }
            // A syntax error: the line is all there is to say.
            _ => String::new(),
        };
        if let Some(missing) = between(&message, "missing field `", "`") {
            push_key(&mut field, missing);
        } else if let Some(unknown) = between(&message, "unknown field `", "`") {
            // The span points at the key itself, so the path normally ends
            // with it already; make sure the key name is always reported.
            if !field.ends_with(unknown) {
                push_key(&mut field, unknown);
            }
        }
        Self {
            line: Some(line_of(src, span.start)),
            field,
            message,
        }
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn between<'m>(message: &'m str, open: &str, close: &str) -> Option<&'m str> {
    let start = message.find(open)? + open.len();
    let len = message[start..].find(close)?;
    Some(&message[start..start + len])
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !outer.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

/// Depth-first search for the key or value whose span holds `at`; on
/// success `path` holds its dotted path. Tables opened by a `[header]` are
/// spanned by their header only, so children are always searched first.
fn find_in_table(table: &DeTable<'_>, at: &Range<usize>, path: &mut String) -> bool {
    for (key, value) in table.iter() {
        let mark = path.len();
        push_key(path, key.get_ref());
        if contains(&key.span(), at) || find_in_value(value, at, path) {
            return true;
        }
        path.truncate(mark);
    }
    false
}

fn find_in_value(value: &Spanned<DeValue<'_>>, at: &Range<usize>, path: &mut String) -> bool {
    match value.get_ref() {
        DeValue::Table(table) if find_in_table(table, at, path) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_value(item, at, path) {
                    return true;
                }
                path.truncate(mark);
            }
        }
        _ => {}
    }
    contains(&value.span(), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_clamped() {
        let src = "a = 1\nb = 2\n";
        assert_eq!(line_of(src, 0), 1);
        assert_eq!(line_of(src, 6), 2);
        assert_eq!(line_of(src, 999), 3);
    }

    #[test]
    fn display_reads_like_a_sentence() {
        let e = PolicyError {
            line: Some(14),
            field: "method.dimensions[1].weight".into(),
            message: "dimension weights sum to 90, expected 100".into(),
        };
        assert_eq!(
            e.to_string(),
            "policy line 14, field method.dimensions[1].weight: dimension weights sum to 90, expected 100"
        );
        let syntax = PolicyError {
            line: Some(3),
            field: String::new(),
            message: "duplicate key".into(),
        };
        assert_eq!(syntax.to_string(), "policy line 3: duplicate key");
    }
}

//! `--output csv` for every command without a CSV layout of its own: the
//! command runs in JSON mode and each JSON line becomes CSV rows.
//!
//! - A line holding one object becomes one row; an envelope (at most three
//!   fields, one of them a list of objects: a page of customers with its
//!   next-page token, a list with its total or truncation flag) becomes one
//!   row per element of that list.
//! - The first row's keys, in name order, are the header, printed once.
//!   Proto JSON
//!   includes default values, so every later row of the same message has
//!   the same keys; a key a later row lacks is an empty cell.
//! - Strings and numbers are written as they are (machine values: money in
//!   minor units, times in RFC 3339); nested objects and lists as compact
//!   JSON in one cell.
//!
//! Streams (`watch`) work the same, a row per change as it arrives.

use std::sync::Mutex;

use serde_json::Value;

use crate::format::csv_line;

/// The converter's state: the header once printed.
#[derive(Debug, Default)]
pub struct CsvFromJson {
    header: Option<Vec<String>>,
}

impl CsvFromJson {
    pub fn new() -> Self {
        Self::default()
    }

    /// The CSV text for `text` (JSON lines); text that is not JSON passes
    /// through unchanged.
    pub fn convert(&mut self, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                out.push_str(line);
                out.push('\n');
                continue;
            };
            for row in rows(value) {
                let header = self.header.get_or_insert_with(|| {
                    let keys: Vec<String> = match &row {
                        Value::Object(map) => map.keys().cloned().collect(),
                        _ => vec!["value".to_owned()],
                    };
                    out.push_str(&csv_line(&keys));
                    keys
                });
                let cells: Vec<String> = match &row {
                    Value::Object(map) => header
                        .iter()
                        .map(|k| map.get(k).map_or_else(String::new, cell))
                        .collect(),
                    other => vec![cell(other)],
                };
                out.push_str(&csv_line(&cells));
            }
        }
        out
    }
}

/// The rows of one JSON value (see the module docs).
fn rows(value: Value) -> Vec<Value> {
    if let Value::Object(map) = &value
        && map.len() <= 3
    {
        let lists: Vec<&String> = map
            .iter()
            .filter(|(_, v)| matches!(v, Value::Array(items) if items.iter().all(Value::is_object)))
            .map(|(k, _)| k)
            .collect();
        if let [only] = lists.as_slice()
            && let Some(Value::Array(items)) = map.get(*only)
            && !items.is_empty()
        {
            return items.clone();
        }
    }
    vec![value]
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Set while a command's JSON output is turned into CSV (see
/// [`crate::commands::emit`]).
pub static ACTIVE: Mutex<Option<CsvFromJson>> = Mutex::new(None);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_rows_under_one_header() {
        let mut c = CsvFromJson::new();
        let first = c.convert(concat!(
            r#"{"customerId":"c-1","tier":"A","score":81.5,"priority":1,"#,
            r#""gradings":[{"grading":"rfm","class":"545"}]}"#
        ));
        assert_eq!(
            first,
            concat!(
                "customerId,gradings,priority,score,tier\n",
                r#"c-1,"[{""class"":""545"",""grading"":""rfm""}]",1,81.5,A"#,
                "\n"
            )
        );
        let second = c.convert(r#"{"customerId":"c,2","tier":"B","score":0,"priority":2}"#);
        assert_eq!(
            second, "\"c,2\",,2,0,B\n",
            "no second header; missing key empty"
        );
    }

    #[test]
    fn an_envelope_becomes_a_row_per_element() {
        let mut c = CsvFromJson::new();
        let out = c.convert(
            r#"{"total":"2","truncated":false,"customers":[{"id":"a","n":1},{"id":"b","n":2}]}"#,
        );
        assert_eq!(out, "id,n\na,1\nb,2\n");
        let mut c = CsvFromJson::new();
        assert_eq!(c.convert("not json"), "not json\n");
    }
}

//! Formatting for people: money, percentages, numbers, timestamps, gRPC
//! codes and hand-aligned tables.
//!
//! Everything here is pure and unit-tested. Money arrives in integer minor
//! units (or as the `f64` the explanation carries) and is shown in major
//! units with thousands separators and exactly two decimals
//! (`1234567` -> `12,345.67`). Ratios (0..1) are shown as percentages.

use std::fmt::Write as _;

/// Insert `,` every three digits of an unsigned decimal digit string.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Minor units -> major units with thousands separators and two decimals:
/// `1234567` -> `12,345.67`, `-5` -> `-0.05`.
pub fn money_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02}",
        group_thousands(&(abs / 100).to_string()),
        abs % 100
    )
}

/// [`money_minor`] for a value carried as `f64` (rounded to the nearest
/// minor unit); `unknown` for NaN, `-`/`inf` text for infinities.
pub fn money_f64(minor: f64) -> String {
    if minor.is_nan() {
        return "unknown".to_owned();
    }
    if minor.is_infinite() || minor.abs() >= 9.0e18 {
        return minor.to_string();
    }
    money_minor(minor.round() as i64)
}

/// A number with thousands separators and at most `decimals` decimals
/// (trailing zeros trimmed): `1234.5` -> `1,234.5`, `3.0` -> `3`.
pub fn number(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return "unknown".to_owned();
    }
    if v.is_infinite() {
        return v.to_string();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    let zero = int.bytes().all(|b| b == b'0') && frac.is_empty();
    let sign = if v < 0.0 && !zero { "-" } else { "" };
    let mut out = format!("{sign}{}", group_thousands(int));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A fixed number of decimals, no separators, `-0.00` shown as `0.00`.
pub fn fixed(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return "unknown".to_owned();
    }
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].bytes().all(|b| b == b'0' || b == b'.') {
        s[1..].to_owned()
    } else {
        s
    }
}

/// A ratio in 0..1 as a percentage with one decimal: `0.934` -> `93.4%`.
pub fn percent_of_ratio(ratio: f64) -> String {
    if ratio.is_nan() {
        return "unknown".to_owned();
    }
    format!("{}%", number(ratio * 100.0, 1))
}

/// A value that already is a percentage: `25.0` -> `25%`, `12.5` -> `12.5%`.
pub fn percent(value: f64) -> String {
    if value.is_nan() {
        return "unknown".to_owned();
    }
    format!("{}%", number(value, 1))
}

/// A signed number of points with two decimals: `+1.50`, `-0.25`, `0.00`.
pub fn signed(v: f64) -> String {
    let s = fixed(v, 2);
    if s.starts_with('-') || s == "0.00" || s == "unknown" {
        s
    } else {
        format!("+{s}")
    }
}

/// How an indicator's value is shown, by its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Minor units of the base currency.
    Money,
    /// A ratio in 0..1 (growth may exceed 1 or be negative).
    Ratio,
    /// A number of days.
    Days,
    /// Counts and anything else.
    Plain,
}

/// Classify an indicator name: names ending `_amount`, `amount_12m`,
/// `margin_12m` or `avg_order_value_12m` are money; `*_ratio`, `*_rate*`,
/// `share_of_wallet` and `growth_*` are ratios; names containing `days`
/// are durations.
pub fn value_kind(name: &str) -> ValueKind {
    const MONEY_SUFFIXES: [&str; 4] =
        ["_amount", "amount_12m", "margin_12m", "avg_order_value_12m"];
    if MONEY_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        ValueKind::Money
    } else if name.ends_with("_ratio")
        || name.contains("_rate")
        || name.starts_with("share_")
        || name.starts_with("growth")
    {
        ValueKind::Ratio
    } else if name.contains("days") {
        ValueKind::Days
    } else {
        ValueKind::Plain
    }
}

/// An indicator's raw value for people, per [`value_kind`]; money is
/// prefixed with `currency`.
pub fn indicator_value(name: &str, value: f64, currency: &str) -> String {
    if value.is_nan() {
        return "unknown".to_owned();
    }
    match value_kind(name) {
        ValueKind::Money => format!("{currency} {}", money_f64(value)),
        ValueKind::Ratio => percent_of_ratio(value),
        ValueKind::Days => format!("{} d", number(value, 1)),
        ValueKind::Plain => number(value, 2),
    }
}

/// Milliseconds since the epoch of a protobuf timestamp (sub-millisecond
/// precision dropped).
pub fn proto_millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos.div_euclid(1_000_000)))
}

/// A protobuf timestamp as `YYYY-MM-DDTHH:MM:SSZ`, `-` when unset.
pub fn proto_time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map_or_else(
        || "-".to_owned(),
        |t| tier_core::Timestamp(proto_millis(t)).to_string(),
    )
}

/// `yes` / `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub use tier_proto::code_name;

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table: a header row, a rule, then rows; columns padded to
/// their widest cell (in characters), two spaces apart, no trailing blanks.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        let align = vec![Align::Left; headers.len()];
        Self {
            headers,
            align,
            rows: Vec::new(),
        }
    }

    /// Right-align the given columns (numbers).
    pub fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Append a row; missing cells are blank, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Render with a trailing newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = widths[i].saturating_sub(width(cell));
                match self.align[i] {
                    Align::Left => {
                        text.push_str(cell);
                        text.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        text.extend(std::iter::repeat_n(' ', pad));
                        text.push_str(cell);
                    }
                }
            }
            let _ = writeln!(out, "{}", text.trim_end());
        };
        line(&self.headers);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// Key/value lines with the keys padded to one width, for one record.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let _ = writeln!(out, "{k:<w$}  {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_major_units() {
        assert_eq!(money_minor(1_234_567), "12,345.67");
        assert_eq!(money_minor(0), "0.00");
        assert_eq!(money_minor(5), "0.05");
        assert_eq!(money_minor(-5), "-0.05");
        assert_eq!(money_minor(100), "1.00");
        assert_eq!(money_minor(99_999), "999.99");
        assert_eq!(money_minor(100_000), "1,000.00");
        assert_eq!(money_minor(-123_456_789_012), "-1,234,567,890.12");
        assert_eq!(money_minor(i64::MIN), "-92,233,720,368,547,758.08");
        assert_eq!(money_f64(1_234_567.4), "12,345.67");
        assert_eq!(money_f64(1_234_567.6), "12,345.68");
        assert_eq!(money_f64(f64::NAN), "unknown");
    }

    #[test]
    fn numbers_and_percentages() {
        assert_eq!(number(1234.5, 2), "1,234.5");
        assert_eq!(number(3.0, 2), "3");
        assert_eq!(number(-0.001, 2), "0");
        assert_eq!(number(-1234567.891, 1), "-1,234,567.9");
        assert_eq!(number(f64::NAN, 2), "unknown");
        assert_eq!(percent_of_ratio(0.934), "93.4%");
        assert_eq!(percent_of_ratio(1.0), "100%");
        assert_eq!(percent_of_ratio(-0.25), "-25%");
        assert_eq!(percent(25.0), "25%");
        assert_eq!(percent(12.5), "12.5%");
        assert_eq!(fixed(-0.0001, 2), "0.00");
        assert_eq!(fixed(82.345, 1), "82.3");
        assert_eq!(signed(1.5), "+1.50");
        assert_eq!(signed(-0.25), "-0.25");
        assert_eq!(signed(-0.0001), "0.00");
    }

    #[test]
    fn indicator_kinds() {
        for money in [
            "order_amount_12m",
            "margin_12m",
            "avg_order_value_12m",
            "overdue_amount",
            "returned_amount",
        ] {
            assert_eq!(value_kind(money), ValueKind::Money, "{money}");
        }
        for ratio in [
            "margin_rate_12m",
            "on_time_payment_ratio",
            "share_of_wallet",
            "growth_3m",
        ] {
            assert_eq!(value_kind(ratio), ValueKind::Ratio, "{ratio}");
        }
        for days in [
            "avg_days_late",
            "max_days_late",
            "days_since_last_order",
            "tenure_days",
        ] {
            assert_eq!(value_kind(days), ValueKind::Days, "{days}");
        }
        assert_eq!(value_kind("order_count_12m"), ValueKind::Plain);
        assert_eq!(
            indicator_value("order_amount_12m", 1_234_567.0, "CNY"),
            "CNY 12,345.67"
        );
        assert_eq!(indicator_value("on_time_payment_ratio", 0.5, "CNY"), "50%");
        assert_eq!(indicator_value("tenure_days", 400.26, "CNY"), "400.3 d");
        assert_eq!(indicator_value("order_count_12m", 1500.0, "CNY"), "1,500");
        assert_eq!(
            indicator_value("share_of_wallet", f64::NAN, "CNY"),
            "unknown"
        );
    }

    #[test]
    fn timestamps_and_codes() {
        let ts = prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 999_999_999,
        };
        assert_eq!(proto_millis(&ts), 1_767_225_600_999);
        assert_eq!(proto_time(Some(&ts)), "2026-01-01T00:00:00Z");
        assert_eq!(proto_time(None), "-");
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(["name", "value"]).right(&[1]);
        t.row(["a", "1"]);
        t.row(["longer", "1,000"]);
        assert_eq!(
            t.render(),
            "name    value\n------  -----\na           1\nlonger  1,000\n"
        );
        let kv = key_values(&[("tier", "GOLD".into()), ("priority", "1".into())]);
        assert_eq!(kv, "tier      GOLD\npriority  1\n");
    }
}

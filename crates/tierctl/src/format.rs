//! Formatting for people: money, percentages, numbers, timestamps, gRPC
//! codes and hand-aligned tables; and CSV lines for machines.
//!
//! Everything here is pure and unit-tested. Money arrives in integer minor
//! units (or as the `f64` the explanation carries) and is shown in major
//! units with thousands separators and as many decimals as the currency
//! has minor digits ([`currency_exponent`]): `1234567` CNY ->
//! `12,345.67 CNY`, JPY -> `1,234,567 JPY`, KWD -> `1,234.567 KWD`.
//! Ratios (0..1) are shown as percentages, other indicator values with
//! their unit ([`unit_value`]).

use std::fmt::Write as _;

use tier_proto::api::{ChangeCause, Lifecycle, Override, OverrideMode, Unit};

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

/// ISO 4217 currencies whose minor unit is not a hundredth, with their
/// number of minor digits. Every other code has 2.
const CURRENCY_EXPONENTS: [(&str, usize); 26] = [
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// Minor-unit digits of an ISO 4217 currency code (case-insensitive):
/// `JPY` -> 0, `CNY` -> 2, `KWD` -> 3; 2 for codes not in the table and
/// for an empty code.
pub fn currency_exponent(code: &str) -> usize {
    let code = code.trim();
    CURRENCY_EXPONENTS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map_or(2, |&(_, e)| e)
}

/// An unsigned integer digit string of minor units in major units:
/// `exponent` decimals, integer part grouped: `("1234567", 2)` ->
/// `12,345.67`, `("5", 3)` -> `0.005`, `("42", 0)` -> `42`.
fn place_decimals(digits: &str, exponent: usize) -> String {
    let padded = if digits.len() <= exponent {
        format!("{}{digits}", "0".repeat(exponent + 1 - digits.len()))
    } else {
        digits.to_owned()
    };
    let (int, frac) = padded.split_at(padded.len() - exponent);
    let mut out = group_thousands(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// [`place_decimals`] with a `-` for a negative, non-zero amount.
fn signed_amount(negative: bool, digits: &str, exponent: usize) -> String {
    let body = place_decimals(digits, exponent);
    if negative && digits.bytes().any(|b| b != b'0') {
        format!("-{body}")
    } else {
        body
    }
}

/// Minor units -> major units with thousands separators and `exponent`
/// decimals: `(1234567, 2)` -> `12,345.67`, `(-5, 3)` -> `-0.005`.
pub fn money_minor_exp(minor: i64, exponent: usize) -> String {
    signed_amount(minor < 0, &minor.unsigned_abs().to_string(), exponent)
}

/// [`money_minor_exp`] with two decimals: `1234567` -> `12,345.67`,
/// `-5` -> `-0.05`.
pub fn money_minor(minor: i64) -> String {
    money_minor_exp(minor, 2)
}

/// [`money_minor_exp`] for a value carried as `f64`, rounded to the nearest
/// minor unit, exact at any magnitude (no integer overflow); `unknown` for
/// NaN, `inf`/`-inf` for infinities.
pub fn money_f64_exp(minor: f64, exponent: usize) -> String {
    if minor.is_nan() {
        return "unknown".to_owned();
    }
    if minor.is_infinite() {
        return minor.to_string();
    }
    let digits = format!("{:.0}", minor.abs().round());
    signed_amount(minor.is_sign_negative(), &digits, exponent)
}

/// [`money_f64_exp`] with two decimals.
pub fn money_f64(minor: f64) -> String {
    money_f64_exp(minor, 2)
}

/// Minor units of `currency` in its major units, followed by the code:
/// `(123456789.0, "CNY")` -> `1,234,567.89 CNY`, `(5000.0, "JPY")` ->
/// `5,000 JPY`. Without a code (an empty `currency`), two decimals and no
/// label; NaN is `unknown`.
pub fn money(minor: f64, currency: &str) -> String {
    let currency = currency.trim();
    let amount = money_f64_exp(minor, currency_exponent(currency));
    if currency.is_empty() || minor.is_nan() {
        amount
    } else {
        format!("{amount} {currency}")
    }
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

/// A fixed number of decimals with thousands separators, `-0.00` shown as
/// `0.00`: `(1234.5, 2)` -> `1,234.50`.
pub fn grouped_fixed(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return "unknown".to_owned();
    }
    if v.is_infinite() {
        return v.to_string();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let zero = text.bytes().all(|b| b == b'0' || b == b'.');
    let sign = if v < 0.0 && !zero { "-" } else { "" };
    let mut out = format!("{sign}{}", group_thousands(int));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A ratio as a percentage with one decimal, or two when the ratio has
/// them (ratios, and the advice targets on them, are exact to 0.01%):
/// `0.25` -> `25.0%`, `0.9525` -> `95.25%`, `-0.1` -> `-10.0%`.
pub fn ratio_percent(ratio: f64) -> String {
    if ratio.is_nan() {
        return "unknown".to_owned();
    }
    let mut text = grouped_fixed(ratio * 100.0, 2);
    if text.ends_with('0') && text.contains('.') {
        text.pop();
    }
    format!("{text}%")
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

/// How an indicator's value is shown, guessed from its stable name: the
/// fallback for servers that do not send an [`Unit`].
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

/// A count with its noun, singular for exactly one: `(1.0, 0)` ->
/// `1 day`, `(12.0, 0)` -> `12 days`, `(3.25, 1)` -> `3.3 days`.
fn counted(v: f64, decimals: usize, one: &str, many: &str) -> String {
    let n = number(v, decimals);
    let noun = if n == "1" { one } else { many };
    format!("{n} {noun}")
}

/// A value in its unit, for people: money in the major units of
/// `currency` (see [`money`]), ratios as percentages, orders per month
/// with two decimals, days, months and counts with their noun. For
/// [`Unit::Unspecified`] (an older server) the unit is guessed from the
/// indicator `name` ([`value_kind`]). NaN is `unknown`.
pub fn unit_value(name: &str, value: f64, unit: Unit, currency: &str) -> String {
    if value.is_nan() {
        return "unknown".to_owned();
    }
    match unit {
        Unit::Money => money(value, currency),
        Unit::Orders => counted(value, 2, "order", "orders"),
        Unit::OrdersPerMonth => format!("{} orders/month", grouped_fixed(value, 2)),
        Unit::Ratio => ratio_percent(value),
        Unit::Days => counted(value, 1, "day", "days"),
        Unit::Complaints => counted(value, 2, "complaint", "complaints"),
        Unit::WeightedComplaints => counted(value, 2, "weighted complaint", "weighted complaints"),
        Unit::Months => counted(value, 1, "month", "months"),
        Unit::Level => format!("level {}", number(value, 0)),
        Unit::Unspecified => match value_kind(name) {
            ValueKind::Money => money(value, currency),
            ValueKind::Ratio => ratio_percent(value),
            ValueKind::Days => counted(value, 1, "day", "days"),
            ValueKind::Plain => number(value, 2),
        },
    }
}

/// An indicator's value for people, `unknown` when it is not known (see
/// [`unit_value`]).
pub fn indicator_value(name: &str, value: Option<f64>, unit: Unit, currency: &str) -> String {
    value.map_or_else(
        || "unknown".to_owned(),
        |v| unit_value(name, v, unit, currency),
    )
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

/// RFC 3339 in UTC to the millisecond (`.250` only when not whole
/// seconds): for machine output, where a script compares a resolution
/// with a deadline and a dropped fraction could move it across.
pub fn proto_time_exact(ts: &prost_types::Timestamp) -> String {
    let ms = proto_millis(ts);
    let whole = tier_core::Timestamp(ms).to_string();
    match ms.rem_euclid(1000) {
        0 => whole,
        frac => format!("{}.{frac:03}Z", whole.trim_end_matches('Z')),
    }
}

/// Milliseconds since the epoch as a protobuf timestamp.
pub fn to_proto_time(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // In 0..1_000_000_000, so it fits.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// The calendar date (`YYYY-MM-DD`) of an instant that starts a business
/// day, `-` when unset. The business time zone is not on the wire, so the
/// instant is rounded to the nearest UTC midnight: right for every zone
/// from UTC-11 to UTC+12 (a start of day there lies within 12 hours of
/// its date's UTC midnight).
pub fn day_start_date(ts: Option<&prost_types::Timestamp>) -> String {
    const HALF_DAY_MS: i64 = 12 * 3_600_000;
    ts.map_or_else(
        || "-".to_owned(),
        |t| {
            let (y, m, d) = tier_core::Timestamp(proto_millis(t).saturating_add(HALF_DAY_MS)).ymd();
            format!("{y:04}-{m:02}-{d:02}")
        },
    )
}

/// A customer's classes in the policy's secondary gradings, one line:
/// `abc_revenue A, rfm 545, relationship key`; `-` when none.
pub fn gradings_text(gradings: &[tier_proto::api::GradingClass]) -> String {
    if gradings.is_empty() {
        return "-".to_owned();
    }
    gradings
        .iter()
        .map(|g| format!("{} {}", g.grading, g.class))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lifecycle stage in lower case (`active`), `-` when unspecified.
pub fn lifecycle_name(value: i32) -> String {
    match Lifecycle::try_from(value) {
        Ok(Lifecycle::Unspecified) => "-".to_owned(),
        Ok(Lifecycle::Prospect) => "prospect".to_owned(),
        Ok(Lifecycle::New) => "new".to_owned(),
        Ok(Lifecycle::Active) => "active".to_owned(),
        Ok(Lifecycle::Lapsed) => "lapsed".to_owned(),
        Ok(Lifecycle::Reactivated) => "reactivated".to_owned(),
        Err(_) => format!("lifecycle {value}"),
    }
}

/// An override mode in lower case (`pin`, `floor`, `ceiling`), `-` when
/// unspecified.
pub fn override_mode_name(value: i32) -> String {
    match OverrideMode::try_from(value) {
        Ok(OverrideMode::Unspecified) => "-".to_owned(),
        Ok(OverrideMode::Pin) => "pin".to_owned(),
        Ok(OverrideMode::Floor) => "floor".to_owned(),
        Ok(OverrideMode::Ceiling) => "ceiling".to_owned(),
        Err(_) => format!("mode {value}"),
    }
}

/// An override on one line: `floor A until 2027-01-31T00:00:00Z, set
/// 2026-12-01T09:00:00Z by alice: key account` (`until cleared` without
/// an expiry; unset parts left out).
pub fn override_text(o: &Override) -> String {
    let mut text = format!("{} {}", override_mode_name(o.mode), o.tier);
    match &o.expires_at {
        Some(at) => {
            let _ = write!(text, " until {}", proto_time(Some(at)));
        }
        None => text.push_str(" until cleared"),
    }
    let mut set = Vec::new();
    if let Some(at) = &o.set_at {
        set.push(proto_time(Some(at)));
    }
    if !o.author.is_empty() {
        set.push(format!("by {}", o.author));
    }
    if !set.is_empty() {
        let _ = write!(text, ", set {}", set.join(" "));
    }
    if !o.reason.is_empty() {
        let _ = write!(text, ": {}", o.reason);
    }
    text
}

/// Why a tier changed, for people: `event`, `time passed`, `policy
/// changed`, `override`; `-` when unspecified.
pub fn cause_name(value: i32) -> String {
    match ChangeCause::try_from(value) {
        Ok(ChangeCause::Unspecified) => "-".to_owned(),
        Ok(ChangeCause::Event) => "event".to_owned(),
        Ok(ChangeCause::Time) => "time passed".to_owned(),
        Ok(ChangeCause::Policy) => "policy changed".to_owned(),
        Ok(ChangeCause::Override) => "override".to_owned(),
        Ok(ChangeCause::Rank) => "ranking moved".to_owned(),
        Err(_) => format!("cause {value}"),
    }
}

/// A move between tiers: `A -> B`, `(none) -> C` for a first tier.
pub fn tier_move(from: &str, to: &str) -> String {
    let from = if from.is_empty() { "(none)" } else { from };
    format!("{from} -> {}", dash(to))
}

/// `s`, or `-` when it is empty.
pub fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// A count with thousands separators: `12345` -> `12,345`.
pub fn count(n: u64) -> String {
    group_thousands(&n.to_string())
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

/// One line of comma-separated values (RFC 4180), with a `\n`: a field
/// holding a comma, a quote or a line break is quoted, its quotes doubled.
pub fn csv_line<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
    out
}

/// Minor units of `currency` as a plain decimal of major units, for
/// machines: no separators, `-` for negatives: `(1234567, "CNY")` ->
/// `12345.67`, `(5000, "JPY")` -> `5000`.
pub fn plain_money(minor: i64, currency: &str) -> String {
    money_minor_exp(minor, currency_exponent(currency)).replace(',', "")
}

/// Minor units of `currency` in major units with separators, no code:
/// `(1234567, "CNY")` -> `12,345.67`.
pub fn money_major(minor: i64, currency: &str) -> String {
    money_minor_exp(minor, currency_exponent(currency))
}

/// Basis points (10,000 = 100%) as a percentage with two decimals, no
/// sign: `3333` -> `33.33`, `10000` -> `100.00`, `-5` -> `-0.05`.
pub fn bp_number(bp: i64) -> String {
    money_minor_exp(bp, 2).replace(',', "")
}

/// [`bp_number`] with a `%`: `3333` -> `33.33%`.
pub fn bp_percent(bp: i64) -> String {
    format!("{}%", bp_number(bp))
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
    fn currency_exponents() {
        for (code, e) in [
            ("CNY", 2),
            ("USD", 2),
            ("EUR", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("jpy", 0),
            ("KWD", 3),
            ("BHD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("CLF", 4),
            ("XYZ", 2),
            ("", 2),
        ] {
            assert_eq!(currency_exponent(code), e, "{code}");
        }
    }

    #[test]
    fn money_in_the_currency_major_units() {
        // Exponent 0: minor units are major units.
        assert_eq!(money(1_234_567.0, "JPY"), "1,234,567 JPY");
        assert_eq!(money(0.0, "KRW"), "0 KRW");
        assert_eq!(money(-999.0, "JPY"), "-999 JPY");
        assert_eq!(money_minor_exp(-1_000, 0), "-1,000");
        // Exponent 2.
        assert_eq!(money(123_456_789.0, "CNY"), "1,234,567.89 CNY");
        assert_eq!(money(150_000_000.0, "CNY"), "1,500,000.00 CNY");
        assert_eq!(money(5.0, "EUR"), "0.05 EUR");
        assert_eq!(money(-5.0, "CNY"), "-0.05 CNY");
        assert_eq!(money(-123_456.0, "USD"), "-1,234.56 USD");
        // Exponent 3.
        assert_eq!(money(1_234_567.0, "KWD"), "1,234.567 KWD");
        assert_eq!(money(5.0, "BHD"), "0.005 BHD");
        assert_eq!(money(-1_000.0, "OMR"), "-1.000 OMR");
        assert_eq!(money_minor_exp(-5, 3), "-0.005");
        // Negative zero and rounding to whole minor units.
        assert_eq!(money(-0.0, "CNY"), "0.00 CNY");
        assert_eq!(money(-0.4, "CNY"), "0.00 CNY");
        assert_eq!(money(99.5, "CNY"), "1.00 CNY");
        // Large values: past i64, exact digits, no overflow.
        assert_eq!(money_minor_exp(i64::MAX, 3), "9,223,372,036,854,775.807");
        assert_eq!(money_minor_exp(i64::MIN, 0), "-9,223,372,036,854,775,808");
        assert_eq!(money(1e20, "CNY"), "1,000,000,000,000,000,000.00 CNY");
        assert_eq!(money(-1e21, "JPY"), "-1,000,000,000,000,000,000,000 JPY");
        assert_eq!(
            money(9_007_199_254_740_992.0, "KWD"),
            "9,007,199,254,740.992 KWD"
        );
        // Not a number, no currency.
        assert_eq!(money(f64::NAN, "CNY"), "unknown");
        assert_eq!(money(f64::INFINITY, "CNY"), "inf CNY");
        assert_eq!(money(1_234.0, ""), "12.34");
        assert_eq!(money(1_234.0, " CNY "), "12.34 CNY");
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
        // Without a unit from the server, the name decides.
        let guess = |name: &str, v: f64| unit_value(name, v, Unit::Unspecified, "CNY");
        assert_eq!(guess("order_amount_12m", 1_234_567.0), "12,345.67 CNY");
        assert_eq!(guess("on_time_payment_ratio", 0.5), "50.0%");
        assert_eq!(guess("tenure_days", 400.26), "400.3 days");
        assert_eq!(guess("order_count_12m", 1500.0), "1,500");
        assert_eq!(guess("share_of_wallet", f64::NAN), "unknown");
    }

    #[test]
    fn values_in_their_units() {
        let v = |value: f64, unit: Unit| unit_value("x", value, unit, "CNY");
        assert_eq!(v(123_456_789.0, Unit::Money), "1,234,567.89 CNY");
        assert_eq!(unit_value("x", 5000.0, Unit::Money, "JPY"), "5,000 JPY");
        assert_eq!(unit_value("x", 5000.0, Unit::Money, ""), "50.00");
        assert_eq!(v(1500.0, Unit::Orders), "1,500 orders");
        assert_eq!(v(1.0, Unit::Orders), "1 order");
        assert_eq!(v(3.0, Unit::OrdersPerMonth), "3.00 orders/month");
        assert_eq!(v(1234.567, Unit::OrdersPerMonth), "1,234.57 orders/month");
        assert_eq!(v(0.25, Unit::Ratio), "25.0%");
        assert_eq!(v(0.9525, Unit::Ratio), "95.25%");
        assert_eq!(v(0.29, Unit::Ratio), "29.0%");
        assert_eq!(v(1.0, Unit::Ratio), "100.0%");
        assert_eq!(v(-0.1, Unit::Ratio), "-10.0%");
        assert_eq!(v(12.5, Unit::Ratio), "1,250.0%");
        assert_eq!(v(12.0, Unit::Days), "12 days");
        assert_eq!(v(1.0, Unit::Days), "1 day");
        assert_eq!(v(2.26, Unit::Days), "2.3 days");
        assert_eq!(v(2.0, Unit::Complaints), "2 complaints");
        assert_eq!(v(1.5, Unit::WeightedComplaints), "1.5 weighted complaints");
        assert_eq!(v(14.0, Unit::Months), "14 months");
        assert_eq!(v(f64::NAN, Unit::Money), "unknown");
        assert_eq!(indicator_value("x", None, Unit::Money, "CNY"), "unknown");
        assert_eq!(
            indicator_value("x", Some(0.0), Unit::Money, "CNY"),
            "0.00 CNY"
        );
        assert_eq!(grouped_fixed(-0.001, 2), "0.00");
        assert_eq!(grouped_fixed(-1234.5, 2), "-1,234.50");
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
    fn dates_lifecycles_and_overrides() {
        let ts = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        // 2027-01-31 00:00 in Shanghai is 2027-01-30T16:00:00Z.
        assert_eq!(
            day_start_date(Some(&ts(1_801_353_600 - 8 * 3600))),
            "2027-01-31"
        );
        assert_eq!(day_start_date(Some(&ts(1_801_353_600))), "2027-01-31");
        // ... and in New York 05:00Z.
        assert_eq!(
            day_start_date(Some(&ts(1_801_353_600 + 5 * 3600))),
            "2027-01-31"
        );
        assert_eq!(day_start_date(None), "-");
        assert_eq!(
            to_proto_time(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
        assert_eq!(
            proto_millis(&to_proto_time(1_801_353_600_123)),
            1_801_353_600_123
        );

        assert_eq!(lifecycle_name(Lifecycle::Reactivated as i32), "reactivated");
        assert_eq!(lifecycle_name(0), "-");
        assert_eq!(lifecycle_name(42), "lifecycle 42");
        assert_eq!(override_mode_name(OverrideMode::Ceiling as i32), "ceiling");

        let mut o = Override {
            tier: "A".into(),
            mode: OverrideMode::Floor.into(),
            reason: "key account".into(),
            author: "alice".into(),
            set_at: Some(ts(1_767_225_600)),
            expires_at: Some(ts(1_801_353_600)),
        };
        assert_eq!(
            override_text(&o),
            "floor A until 2027-01-31T00:00:00Z, set 2026-01-01T00:00:00Z by alice: key account"
        );
        o.expires_at = None;
        o.set_at = None;
        o.reason.clear();
        assert_eq!(override_text(&o), "floor A until cleared, set by alice");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(dash(""), "-");
        assert_eq!(cause_name(ChangeCause::Time as i32), "time passed");
        assert_eq!(cause_name(0), "-");
        assert_eq!(cause_name(9), "cause 9");
        assert_eq!(tier_move("A", "B"), "A -> B");
        assert_eq!(tier_move("", "C"), "(none) -> C");
    }

    #[test]
    fn exact_times_keep_their_milliseconds() {
        assert_eq!(
            proto_time_exact(&to_proto_time(1_767_225_600_000)),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            proto_time_exact(&to_proto_time(1_767_225_600_250)),
            "2026-01-01T00:00:00.250Z"
        );
        assert_eq!(
            proto_time_exact(&to_proto_time(-1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn csv_and_machine_figures() {
        assert_eq!(csv_line(["a", "b c", ""]), "a,b c,\n");
        assert_eq!(
            csv_line(["x,y", "say \"hi\"", "two\nlines"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
        );
        assert_eq!(plain_money(123_456_789, "CNY"), "1234567.89");
        assert_eq!(plain_money(-5, "CNY"), "-0.05");
        assert_eq!(plain_money(5_000, "JPY"), "5000");
        assert_eq!(money_major(123_456_789, "CNY"), "1,234,567.89");
        assert_eq!(bp_percent(3333), "33.33%");
        assert_eq!(bp_percent(10_000), "100.00%");
        assert_eq!(bp_percent(0), "0.00%");
        assert_eq!(bp_number(-5), "-0.05");
        assert_eq!(bp_number(123_456), "1234.56");
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

//! Explanations of a tier decision, and the number formatting they use.
//!
//! An [`Explanation`] puts each indicator's actual value next to the points
//! it earned and its share of the score, names the band the tier covers and
//! says what would reach the next tier twice: as human text (`gap`) and as
//! structured [`Advice`] (indicator, current value, target value, unit)
//! that a caller can render or act on.
//!
//! Unknown indicator values are `None` everywhere here
//! ([`ExplainedIndicator::value`], [`Advice::current`]); the text shows
//! them as `unknown`.

use serde::{Deserialize, Serialize};

use crate::indicators::{IndicatorName, Unit};

/// Why a customer holds a tier.
///
/// `score` and `indicators` describe the evaluation of the given indicators;
/// `tier`, `band`, `next_tier`, `gap` and `advice` describe the tier asked
/// about (normally the held one, which differs from the evaluated tier only
/// while hysteresis holds a customer in a better tier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub tier: String,
    /// Final score 0..=100, after the complaint penalty, rounded to two
    /// decimals (always a whole number of hundredths): the value the tier
    /// was banded on.
    pub score: f64,
    /// One entry per scored term on an event-derived indicator, in policy
    /// order. Their contributions and those of `assessments` sum to the
    /// score before the penalty and before rounding to hundredths.
    pub indicators: Vec<ExplainedIndicator>,
    /// Points subtracted for complaints (0 when the policy has none).
    pub penalty: f64,
    /// The tier's band: `">= 80"`, `">= 60 and < 80"`, `"< 40"`, or the
    /// rule text for the rules method.
    pub band: String,
    /// The next better tier, `None` at the top.
    pub next_tier: Option<String>,
    /// What is missing to reach `next_tier`, as human text.
    pub gap: String,
    /// What would reach `next_tier`, in indicator terms: setting every
    /// advised indicator to its `target` (all other indicators and the
    /// complaints unchanged) evaluates to `next_tier` or better. Empty at
    /// the top, when the score already reaches `next_tier`, and when no
    /// change of the scored indicators can reach it.
    #[serde(default)]
    pub advice: Vec<Advice>,
    /// The tier the score (weighted) or the rules alone reach, before the
    /// tier gates: the evaluated tier is this one or, when a gate vetoes
    /// it, a worse one.
    #[serde(default)]
    pub score_tier: String,
    /// Every tier gate the indicators fail, best tier first, then in
    /// policy order. A gate that fails keeps the customer out of its tier
    /// and every better one; empty when every gate holds (or the policy
    /// has none).
    #[serde(default)]
    pub failed_gates: Vec<FailedGate>,
    /// Set while the new-customer rule set grades the customer (see
    /// `new_customers.rs`): which rule and what it gives. Not while the
    /// score alone reaches as good a tier (`score_tier`): the customer
    /// holds the better of the two, so the score explains it then.
    pub new_customer: Option<String>,
    /// Every assessment indicator the policy declares, in policy order,
    /// beside the event-derived `indicators`: its value and label, its
    /// share of the score, and (filled from the customer's state by
    /// `CustomerState::explain`) who assessed it, when, and until when it
    /// counts. Empty when the policy declares none.
    #[serde(default)]
    pub assessments: Vec<ExplainedAssessment>,
}

/// One assessment indicator of an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainedAssessment {
    pub name: String,
    /// The level in force; `None` when never assessed or expired (the
    /// parts on it then earn `missing_points`).
    pub value: Option<f64>,
    /// The level's label, when the scale has labels and a value is in force.
    pub label: Option<String>,
    /// Points 0..=100 the parts on it earn (their weighted mean when
    /// several parts score it); `None` when no part scores it.
    pub points: Option<f64>,
    /// Percent of the score the parts on it carry (0 when none).
    pub weight: f64,
    /// Score points contributed.
    pub contribution: f64,
    /// What the parts on it earn while it is missing or expired.
    pub missing_points: f64,
    /// Who made the latest assessment (also when it has expired); `None`
    /// when never assessed.
    pub assessed_by: Option<String>,
    pub note: Option<String>,
    /// When the latest assessment was made (event time).
    pub assessed_at: Option<crate::time::Timestamp>,
    /// When it stops counting: the start of the business day `valid_days`
    /// after the assessment's day. A past `expires_at` with `value: None`
    /// means it expired.
    pub expires_at: Option<crate::time::Timestamp>,
}

/// A tier gate the customer fails: `indicator op threshold` does not hold
/// for `value` (see the policy module docs, "Tier gates").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedGate {
    /// The tier whose gate this is: while it fails, the customer holds
    /// neither this tier nor any better one.
    pub tier: String,
    /// An indicator's name, or an assessment's (see `Operand`).
    pub indicator: String,
    /// `>`, `>=`, `<`, `<=` or `==`.
    pub op: String,
    pub threshold: f64,
    /// The value now; `None` when unknown (a gate with `unknown = "fail"`).
    pub value: Option<f64>,
    /// The unit of `threshold` and `value` ([`Unit::Level`] for an
    /// assessment).
    pub unit: Unit,
}

/// One scored term of an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainedIndicator {
    pub name: IndicatorName,
    /// The indicator's value (minor units for money); `None` when it is
    /// unknown (the term then earns the part's `missing_points`, and a rule
    /// condition on it does not hold).
    pub value: Option<f64>,
    /// Points 0..=100 the value earns.
    pub points: f64,
    /// Percent of the score this term carries.
    pub weight: f64,
    /// `points * weight / 100`: score points contributed.
    pub contribution: f64,
}

/// One step of the way to the next tier: bring `indicator` from `current`
/// to `target`.
///
/// Targets are in the indicator's [`Unit`] and rounded in the helpful
/// direction to the unit's grain ([`Unit`] steps: whole minor units of
/// money, whole orders, days, complaints and months, hundredths of orders
/// per month, ten-thousandths of a ratio). The contract is "in indicator
/// terms, everything else held fixed": some indicators cannot move alone in
/// the real world (`avg_order_value_12m` follows amount and count).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub indicator: IndicatorName,
    /// The value now; `None` when unknown (the target then also makes it
    /// known, e.g. a first invoice paid on time).
    pub current: Option<f64>,
    /// The value to reach.
    pub target: f64,
    /// The unit of `current` and `target` (`indicator.unit()`).
    pub unit: Unit,
}

impl Advice {
    pub(crate) fn new(indicator: IndicatorName, current: Option<f64>, target: f64) -> Self {
        Self {
            indicator,
            current,
            target,
            unit: indicator.unit(),
        }
    }
}

/// Grid points per unit of an indicator's values: targets are whole
/// multiples of `1 / per_unit`.
pub(crate) const fn per_unit(unit: Unit) -> f64 {
    match unit {
        Unit::Money
        | Unit::Orders
        | Unit::Days
        | Unit::Complaints
        | Unit::WeightedComplaints
        | Unit::Months
        | Unit::Level => 1.0,
        Unit::OrdersPerMonth => 100.0,
        Unit::Ratio => 10_000.0,
    }
}

/// `v` on the unit's grid, towards `+inf` when `up`, else towards `-inf`,
/// moved `extra` further grid steps the same way.
pub(crate) fn to_grid(v: f64, unit: Unit, up: bool, extra: u32) -> f64 {
    let per = per_unit(unit);
    let scaled = v * per;
    let nearest = scaled.round();
    // Absorb representation noise: 0.95 (a ratio) is 9_500 grid steps
    // even when `0.95 * 10_000` is not exactly 9_500.
    let n = if (scaled - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) {
        nearest
    } else if up {
        scaled.ceil()
    } else {
        scaled.floor()
    };
    let extra = f64::from(extra);
    let n = if up { n + extra } else { n - extra };
    n / per
}

/// Format a value in its unit: [`fmt_num`], but ratios with up to four
/// decimals (their grid), so an advised ratio reads as it must be reached.
pub(crate) fn fmt_value(v: f64, unit: Unit) -> String {
    if unit == Unit::Ratio && v.is_finite() && v.abs() < 1000.0 {
        unsigned_zero(fixed(v, 4))
    } else {
        fmt_num(v)
    }
}

/// `v` with `decimals` decimals, trailing zeros (and a bare point) trimmed.
fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A value that rounded to minus zero reads as zero.
fn unsigned_zero(s: String) -> String {
    if s == "-0" { "0".to_owned() } else { s }
}

/// [`fmt_opt`] of a value shown beside the threshold it is held to: with
/// as many more decimals as it takes not to read as the threshold when it
/// is not (3.99598 orders a month against `>= 4` reads "3.996", not "4",
/// which would look met).
pub(crate) fn fmt_beside(v: Option<f64>, unit: Unit, threshold: f64) -> String {
    let shown = fmt_opt(v, unit);
    let Some(v) = v.filter(|v| v.is_finite() && *v != threshold) else {
        return shown;
    };
    if shown != fmt_value(threshold, unit) {
        return shown;
    }
    (3..=12)
        .map(|decimals| (fixed(v, decimals), fixed(threshold, decimals)))
        .find(|(v, t)| v != t)
        .map_or_else(|| v.to_string(), |(v, _)| v)
}

/// [`fmt_value`] of a value that may be unknown.
pub(crate) fn fmt_opt(v: Option<f64>, unit: Unit) -> String {
    v.map_or_else(|| "unknown".to_owned(), |v| fmt_value(v, unit))
}

/// Format a figure for people: thousands separators and no decimals from
/// 1,000 up, otherwise at most two decimals with trailing zeros trimmed.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "unknown".to_owned()
        } else {
            v.to_string()
        };
    }
    if v.abs() >= 1000.0 {
        let rounded = v.round();
        let digits = format!("{:.0}", rounded.abs());
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if rounded < 0.0 {
            out.push('-');
        }
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else {
        unsigned_zero(fixed(v, 2))
    }
}

/// Format a signed change in a unit: `+1,200,000`, `-3.5`.
pub(crate) fn fmt_delta(v: f64, unit: Unit) -> String {
    if v >= 0.0 {
        format!("+{}", fmt_value(v, unit))
    } else {
        fmt_value(v, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(5_400_000.0), "5,400,000");
        assert_eq!(fmt_num(-1_234.4), "-1,234");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_num(1000.0), "1,000");
        assert_eq!(fmt_num(6.5), "6.5");
        assert_eq!(fmt_num(0.954), "0.95");
        assert_eq!(fmt_num(-0.001), "0");
        assert_eq!(fmt_num(f64::NAN), "unknown");
        assert_eq!(fmt_delta(1_200_000.0, Unit::Money), "+1,200,000");
        assert_eq!(fmt_delta(-3.5, Unit::Days), "-3.5");
        assert_eq!(fmt_value(0.953_46, Unit::Ratio), "0.9535");
        assert_eq!(fmt_value(0.5, Unit::Ratio), "0.5");
        assert_eq!(fmt_opt(None, Unit::Ratio), "unknown");
        // Beside its threshold, a value that misses it never reads as it.
        let per_month = 47.0 * 30.4375 / 358.0;
        assert_eq!(fmt_opt(Some(per_month), Unit::OrdersPerMonth), "4");
        assert_eq!(
            fmt_beside(Some(per_month), Unit::OrdersPerMonth, 4.0),
            "3.996"
        );
        assert_eq!(fmt_beside(Some(4.0), Unit::OrdersPerMonth, 4.0), "4");
        assert_eq!(fmt_beside(Some(4.2), Unit::OrdersPerMonth, 4.0), "4.2");
        assert_eq!(fmt_beside(Some(7.0001), Unit::Days, 7.0), "7.0001");
        assert_eq!(fmt_beside(None, Unit::Days, 7.0), "unknown");
        // Printed at the same decimals as an off-grid threshold.
        assert_eq!(
            fmt_beside(Some(4.00036), Unit::OrdersPerMonth, 4.0004),
            "4.00036"
        );
        assert_eq!(fmt_beside(Some(0.9549), Unit::Ratio, 0.955), "0.9549");
    }

    #[test]
    fn targets_land_on_the_unit_grid() {
        assert_eq!(to_grid(5_399_999.2, Unit::Money, true, 0), 5_400_000.0);
        assert_eq!(to_grid(5_400_000.8, Unit::Money, false, 0), 5_400_000.0);
        assert_eq!(to_grid(0.951_01, Unit::Ratio, true, 0), 0.9511);
        assert_eq!(to_grid(0.951_01, Unit::Ratio, false, 1), 0.9509);
        assert_eq!(to_grid(3.509, Unit::OrdersPerMonth, false, 0), 3.5);
        assert_eq!(to_grid(17.2, Unit::Days, true, 2), 20.0);
        assert_eq!(to_grid(4.0, Unit::Orders, true, 0), 4.0);
        assert_eq!(to_grid(0.95, Unit::Ratio, true, 0), 0.95);
        assert_eq!(
            to_grid(4.000_000_000_001, Unit::OrdersPerMonth, true, 0),
            4.0
        );
    }
}

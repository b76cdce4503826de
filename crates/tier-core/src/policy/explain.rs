//! Explanations of a tier decision, and the number formatting they use.
//!
//! An [`Explanation`] puts each indicator's actual value next to the points
//! it earned and its share of the score, names the band the tier covers and
//! says, in indicator terms where possible, what would reach the next tier.

use serde::{Deserialize, Serialize};

use crate::indicators::IndicatorName;

/// Why a customer holds a tier.
///
/// `score` and `indicators` describe the evaluation of the given indicators;
/// `tier`, `band`, `next_tier` and `gap` describe the tier asked about
/// (normally the held one, which differs from the evaluated tier only while
/// hysteresis holds a customer in a better tier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub tier: String,
    /// Final score 0..=100, after the complaint penalty.
    pub score: f64,
    /// One entry per scored term, in policy order. Their contributions sum
    /// to the score before the penalty.
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
}

/// One scored term of an [`Explanation`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainedIndicator {
    pub name: IndicatorName,
    /// The indicator's value (minor units for money; `NaN` when unknown).
    pub value: f64,
    /// Points 0..=100 the value earns.
    pub points: f64,
    /// Percent of the score this term carries.
    pub weight: f64,
    /// `points * weight / 100`: score points contributed.
    pub contribution: f64,
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
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_owned()
        } else {
            s.to_owned()
        }
    }
}

/// Round `v` to the precision [`fmt_num`] shows, towards `+inf` when
/// `up`, else towards `-inf`: a suggested target then still reaches the goal
/// after rounding.
pub(crate) fn round_for_display(v: f64, up: bool) -> f64 {
    let per_unit = if v.abs() >= 1000.0 { 1.0 } else { 100.0 };
    let scaled = v * per_unit;
    // Absorb representation noise (4.000000000001 must stay 4).
    let nearest = scaled.round();
    let scaled = if (scaled - nearest).abs() < 1e-6 {
        nearest
    } else if up {
        scaled.ceil()
    } else {
        scaled.floor()
    };
    scaled / per_unit
}

/// Format a signed change: `+1,200,000`, `-3.5`.
pub(crate) fn fmt_delta(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", fmt_num(v))
    } else {
        fmt_num(v)
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
        assert_eq!(fmt_delta(1_200_000.0), "+1,200,000");
        assert_eq!(fmt_delta(-3.5), "-3.5");
    }

    #[test]
    fn display_rounding_keeps_the_goal() {
        assert_eq!(round_for_display(5_399_999.2, true), 5_400_000.0);
        assert_eq!(round_for_display(5_400_000.8, false), 5_400_000.0);
        assert_eq!(round_for_display(0.951, true), 0.96);
        assert_eq!(round_for_display(3.509, false), 3.5);
        assert_eq!(round_for_display(4.000_000_000_001, true), 4.0);
    }
}

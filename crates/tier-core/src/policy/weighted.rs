//! The `weighted_score` method (DOMAIN.md method 1: weighted score, fixed
//! thresholds).
//!
//! Each part of each dimension becomes one precomputed term: an indicator
//! getter, a curve, and a factor `dimension weight * part share / 10_000`.
//! The score is `sum(factor * points)` minus the complaint penalty, clamped
//! to 0..=100; the tier is the first (best) band whose `min_score` the score
//! reaches. Raising an indicator scored `higher_is_better` never lowers the
//! score: curves are monotone in their declared direction, an indicator may
//! not be scored in both directions, and every step is a monotone floating
//! point operation.

use super::curve::Curve;
use super::explain::{ExplainedIndicator, Explanation, fmt_delta, fmt_num, round_for_display};
use super::{Evaluation, Getter, ScoringMethod, TierSpec};
use crate::event::Severity;
use crate::indicators::{IndicatorName, Indicators};

/// Name of the penalty in [`super::Reason`]s.
pub(crate) const PENALTY_REASON: &str = "complaint_penalty";

/// One scored part.
#[derive(Clone, Debug)]
pub(crate) struct Term {
    pub(crate) indicator: IndicatorName,
    get: Getter,
    /// Share of the score: `weight * share / 10_000` (0..=1).
    factor: f64,
    higher_is_better: bool,
    curve: Curve,
    /// Points when the indicator is unknown (only `share_of_wallet` can be).
    missing_points: f64,
}

impl Term {
    pub(crate) fn new(
        indicator: IndicatorName,
        weight: f64,
        share: f64,
        higher_is_better: bool,
        curve: Curve,
        missing_points: f64,
    ) -> Self {
        Self {
            indicator,
            get: super::getter(indicator),
            factor: weight * share / 10_000.0,
            higher_is_better,
            curve,
            missing_points,
        }
    }

    /// The indicator's value and the points it earns.
    #[inline]
    fn eval(&self, ind: &Indicators) -> (Option<f64>, f64) {
        match (self.get)(ind) {
            Some(v) => (Some(v), self.curve.at(v)),
            None => (None, self.missing_points),
        }
    }
}

/// Points subtracted per complaint opened in the window, by severity.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Penalty {
    /// Indexed by [`Severity::index`].
    pub(crate) per_severity: [f64; 5],
    pub(crate) max: f64,
}

impl Penalty {
    #[inline]
    fn of(&self, ind: &Indicators) -> f64 {
        let mut total = 0.0;
        for s in Severity::ALL {
            total +=
                f64::from(ind.complaints_by_severity_12m[s.index()]) * self.per_severity[s.index()];
        }
        total.min(self.max)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WeightedScore {
    terms: Vec<Term>,
    penalty: Option<Penalty>,
    /// Lower bound of each tier's band, best first, strictly decreasing,
    /// the last one 0.
    min_scores: Vec<f64>,
}

impl WeightedScore {
    pub(crate) fn new(terms: Vec<Term>, penalty: Option<Penalty>, min_scores: Vec<f64>) -> Self {
        Self {
            terms,
            penalty,
            min_scores,
        }
    }

    /// Score before the penalty.
    #[inline]
    fn raw(&self, ind: &Indicators) -> f64 {
        let mut raw = 0.0;
        for t in &self.terms {
            raw += t.factor * t.eval(ind).1;
        }
        raw
    }

    #[inline]
    fn penalty(&self, ind: &Indicators) -> f64 {
        self.penalty.as_ref().map_or(0.0, |p| p.of(ind))
    }

    /// The best tier whose band the score reaches.
    #[inline]
    pub(crate) fn band_of(&self, score: f64) -> usize {
        let lowest = self.min_scores.len().saturating_sub(1);
        self.min_scores
            .iter()
            .position(|min| score >= *min)
            .unwrap_or(lowest)
    }

    fn band_text(&self, tier: usize) -> String {
        let min = self.min_scores.get(tier).copied().unwrap_or(0.0);
        let upper = tier
            .checked_sub(1)
            .and_then(|better| self.min_scores.get(better));
        match upper {
            None => format!(">= {}", fmt_num(min)),
            Some(up) if min <= 0.0 => format!("< {}", fmt_num(*up)),
            Some(up) => format!(">= {} and < {}", fmt_num(min), fmt_num(*up)),
        }
    }

    /// What would lift the score into the band above `tier`.
    fn gap_text(
        &self,
        ind: &Indicators,
        eval: Evaluation,
        raw: f64,
        penalty: f64,
        tier: usize,
        tiers: &[TierSpec],
    ) -> String {
        let mut text = match tier.checked_sub(1) {
            None => "already in the top tier".to_owned(),
            Some(next) => {
                let target = self.min_scores.get(next).copied().unwrap_or(0.0);
                let name = tiers.get(next).map_or("", |t| t.name.as_str());
                let need = target - eval.score;
                if need <= 0.0 {
                    format!(
                        "score {} already reaches {name} (>= {})",
                        fmt_num(eval.score),
                        fmt_num(target)
                    )
                } else {
                    // In raw points: the penalty stays, and a score clamped
                    // at 0 hides how far below zero it is.
                    let need_raw = target + penalty - raw;
                    format!(
                        "+{} points to {name}: {}",
                        fmt_num(need),
                        self.lever_text(ind, need_raw)
                    )
                }
            }
        };
        if penalty > 0.0 {
            text.push_str(&format!(" (complaints cost {} points)", fmt_num(penalty)));
        }
        let own_min = self.min_scores.get(tier).copied().unwrap_or(0.0);
        if eval.score < own_min {
            text.push_str(&format!(
                "; held by hysteresis: score {} is below this band ({})",
                fmt_num(eval.score),
                self.band_text(tier)
            ));
        }
        text
    }

    /// One indicator change that gains `need_raw` points on its own, the
    /// heaviest term first; else the terms with the most to gain.
    fn lever_text(&self, ind: &Indicators, need_raw: f64) -> String {
        let mut by_weight: Vec<&Term> = self.terms.iter().collect();
        by_weight.sort_by(|a, b| b.factor.total_cmp(&a.factor));
        let mut levers: Vec<(f64, &Term, f64)> = Vec::new();
        for t in by_weight {
            let (Some(value), points) = t.eval(ind) else {
                continue;
            };
            let (best_x, best_y) = t.curve.best_knot(t.higher_is_better);
            let gain = t.factor * (best_y - points);
            if gain <= 1e-9 {
                continue;
            }
            if gain >= need_raw {
                let goal = (points + need_raw / t.factor).min(best_y);
                if let Some(x) = t.curve.reach(goal, t.higher_is_better) {
                    let x = round_for_display(x, t.higher_is_better);
                    return format!(
                        "e.g. {} {} (to {}) would do it",
                        t.indicator,
                        fmt_delta(x - value),
                        fmt_num(x)
                    );
                }
            }
            levers.push((gain, t, best_x));
        }
        if levers.is_empty() {
            return "no indicator can gain more points".to_owned();
        }
        levers.sort_by(|a, b| b.0.total_cmp(&a.0));
        let list: Vec<String> = levers
            .iter()
            .take(3)
            .map(|(gain, t, best_x)| {
                format!(
                    "{} (up to +{} points at {})",
                    t.indicator,
                    fmt_num(*gain),
                    fmt_num(*best_x)
                )
            })
            .collect();
        format!(
            "no single indicator closes the gap; most to gain: {}",
            list.join(", ")
        )
    }
}

impl ScoringMethod for WeightedScore {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let score = (self.raw(ind) - self.penalty(ind)).clamp(0.0, 100.0);
        Evaluation {
            score,
            tier: self.band_of(score),
        }
    }

    fn hold_floor(&self, held: usize, margin: f64) -> Option<f64> {
        self.min_scores.get(held).map(|min| min - margin)
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        let eval = self.evaluate(ind);
        let penalty = self.penalty(ind);
        let indicators: Vec<ExplainedIndicator> = self
            .terms
            .iter()
            .map(|t| {
                let (value, points) = t.eval(ind);
                ExplainedIndicator {
                    name: t.indicator,
                    value: value.unwrap_or(f64::NAN),
                    points,
                    weight: t.factor * 100.0,
                    contribution: t.factor * points,
                }
            })
            .collect();
        let raw = self.raw(ind);
        Explanation {
            tier: tiers.get(tier).map(|t| t.name.clone()).unwrap_or_default(),
            score: eval.score,
            indicators,
            penalty,
            band: self.band_text(tier),
            next_tier: tier
                .checked_sub(1)
                .and_then(|next| tiers.get(next))
                .map(|t| t.name.clone()),
            gap: self.gap_text(ind, eval, raw, penalty, tier, tiers),
        }
    }

    fn contributions(&self, ind: &Indicators, out: &mut Vec<(&'static str, f64)>) {
        for t in &self.terms {
            out.push((t.indicator.as_str(), t.factor * t.eval(ind).1));
        }
        if self.penalty.is_some() {
            out.push((PENALTY_REASON, -self.penalty(ind)));
        }
    }
}

//! The `abc` method (DOMAIN.md method 2: proportional ranking): the tier is
//! the customer's share band of the whole population ranked by one figure,
//! e.g. the top 20% by 12-month revenue are A, the next 30% B, the rest C.
//!
//! ```toml
//! [method]
//! kind = "abc"
//! by = "order_amount_12m"   # an indicator or a declared assessment
//! higher_is_better = true   # the default
//! shares = [20, 30, 50]     # percent per tier, best first; one per tier
//! recut_seconds = 10        # how often cut points follow the population
//! ```
//!
//! ## Cut points
//! A customer's tier depends on everyone else's figures, so the engine, which
//! sees the whole population, keeps it ranked ([`crate::rank::Ranking`]) and
//! recomputes the cut points at most every `recut_seconds` while it changes
//! (and at once on start and on a policy change): for each tier but the
//! lowest, the value of the last (lowest-ranked) customer of its band
//! ([`Policy::rank_cuts_of`](super::Policy::rank_cuts_of), the bands from
//! [`crate::rank::Proportions`]). Between two recuts every customer is
//! graded against the same frozen cut points, so answers agree and a
//! customer whose own figure crosses a cut point moves at once (cause
//! `EVENT` or `TIME`); a recut that moves others publishes their changes
//! with cause `RANK`.
//!
//! ## Ties
//! A customer is in the best band whose cut point its value reaches: two
//! customers with the same figure always hold the same tier, whatever their
//! ids. So with many customers tied at a cut point the better band holds
//! more than its share (a secondary `abc` grading, which only reports,
//! splits ties by id instead and keeps every class within one customer of
//! its share).
//!
//! ## Unknown and unranked
//! A customer whose figure is unknown (a margin without known costs, an
//! assessment never made) is not ranked and holds the lowest tier; so does
//! everyone before the first cut (an empty population has no cut points).
//!
//! ## Score
//! The tier is the band, and the score says how high the band is: with `k`
//! tiers, band `i` (0 = best) scores `100 * (k - 1 - i) / (k - 1)`. The
//! ranked figure and the cut point to reach are in the explanation, and
//! the advice is that figure at the next band's cut point (for an
//! assessment, none: a judgement is not a lever).

use std::sync::Arc;

use super::explain::{Advice, ExplainedIndicator, Explanation, fmt_opt, fmt_value};
use super::operand::Operand;
use super::{Evaluation, ScoringMethod, TierSpec, from_centi, to_centi};
use crate::indicators::{IndicatorName, Indicators};
use crate::rank::{Direction, Proportions, Ranking};

/// How often cut points follow the population, unless the policy says.
pub(crate) const DEFAULT_ABC_RECUT_SECONDS: u32 = 10;

#[derive(Clone, Debug)]
pub(crate) struct AbcMethod {
    by: Operand,
    direction: Direction,
    /// Fractions per tier, best first.
    proportions: Proportions,
    recut_seconds: u32,
    /// `cuts[i]`: the value a customer must reach for tier `i` (or
    /// better); one per tier but the lowest. Empty before the first cut.
    cuts: Arc<[f64]>,
}

impl AbcMethod {
    pub(crate) fn new(
        by: Operand,
        direction: Direction,
        proportions: Proportions,
        recut_seconds: u32,
    ) -> Self {
        Self {
            by,
            direction,
            proportions,
            recut_seconds,
            cuts: Arc::from(Vec::new()),
        }
    }

    pub(crate) fn by(&self) -> &Operand {
        &self.by
    }

    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }

    pub(crate) fn recut_seconds(&self) -> u32 {
        self.recut_seconds
    }

    pub(crate) fn cuts(&self) -> &[f64] {
        &self.cuts
    }

    pub(crate) fn with_cuts(&self, cuts: Vec<f64>) -> Self {
        Self {
            cuts: cuts.into(),
            ..self.clone()
        }
    }

    fn tiers(&self) -> usize {
        self.proportions.classes()
    }

    /// Whether `v` reaches cut point `t`.
    fn reaches(&self, v: f64, t: f64) -> bool {
        match self.direction {
            Direction::HigherIsBetter => v >= t,
            Direction::LowerIsBetter => v <= t,
        }
    }

    /// The band of `ind`: the best whose cut point its value reaches.
    fn band(&self, ind: &Indicators) -> usize {
        self.band_of_value(self.by.value(ind))
    }

    /// The band of a ranked value (`None` or not finite: unknown, the
    /// lowest).
    pub(crate) fn band_of_value(&self, value: Option<f64>) -> usize {
        let lowest = self.tiers() - 1;
        let Some(v) = value.filter(|v| v.is_finite()) else {
            return lowest;
        };
        self.cuts
            .iter()
            .position(|t| self.reaches(v, *t))
            .unwrap_or(lowest)
    }

    /// The cut points of `ranking` (ranked by this method's figure, in its
    /// direction) for these proportions.
    pub(crate) fn cuts_of<K: Ord + std::hash::Hash + Clone>(
        &self,
        ranking: &Ranking<K>,
    ) -> Vec<f64> {
        let n = ranking.known_len();
        let boundaries = self.proportions.boundaries(n);
        let unreachable = match self.direction {
            Direction::HigherIsBetter => f64::INFINITY,
            Direction::LowerIsBetter => f64::NEG_INFINITY,
        };
        // Band `i` holds positions `[starts[i], starts[i + 1])`; reaching
        // its last customer's value is reaching the band (ties: the better
        // band). A band with nobody in it cannot be reached.
        let mut starts = vec![0];
        starts.extend(boundaries.iter().copied());
        starts
            .iter()
            .take(self.tiers() - 1)
            .zip(starts.iter().skip(1))
            .map(|(&start, &end)| {
                if start < end {
                    ranking.get(end - 1).map_or(unreachable, |(_, v)| v)
                } else {
                    unreachable
                }
            })
            .collect()
    }

    fn band_text(&self, tier: usize) -> String {
        let pct = |i: usize| self.proportions.shares().get(i).copied().unwrap_or(0.0) * 100.0;
        let which = if tier == 0 {
            format!("top {}%", super::explain::fmt_num(pct(0)))
        } else if tier + 1 == self.tiers() {
            format!("bottom {}%", super::explain::fmt_num(pct(tier)))
        } else {
            format!("next {}%", super::explain::fmt_num(pct(tier)))
        };
        let unit = self.by.unit();
        let op = match self.direction {
            Direction::HigherIsBetter => ">=",
            Direction::LowerIsBetter => "<=",
        };
        let range = match (
            tier.checked_sub(1).and_then(|b| self.cuts.get(b)),
            self.cuts.get(tier),
        ) {
            _ if self.cuts.is_empty() => "not ranked yet".to_owned(),
            (_, Some(own)) => format!("{} {op} {}", self.by, fmt_value(*own, unit)),
            (Some(better), None) => {
                let below = match self.direction {
                    Direction::HigherIsBetter => "<",
                    Direction::LowerIsBetter => ">",
                };
                format!("{} {below} {}", self.by, fmt_value(*better, unit))
            }
            (None, None) => "everyone".to_owned(),
        };
        format!("{which} by {} ({range})", self.by)
    }
}

impl ScoringMethod for AbcMethod {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let tier = self.band(ind);
        let steps = self.tiers().saturating_sub(1);
        let score = if steps == 0 {
            0.0
        } else {
            from_centi(to_centi(
                100.0 * steps.saturating_sub(tier) as f64 / steps as f64,
            ))
        };
        Evaluation {
            score,
            tier,
            ceiling: 0,
        }
    }

    fn hold_floor(&self, _held: usize, _margin_centi: i64) -> Option<i64> {
        None
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        let eval = self.evaluate(ind);
        let value = self.by.value(ind);
        let unit = self.by.unit();
        let indicators = self
            .by
            .indicator()
            .map(|name| ExplainedIndicator {
                name,
                value,
                points: eval.score,
                weight: 100.0,
                contribution: eval.score,
            })
            .into_iter()
            .collect();
        let next = tier.checked_sub(1);
        let target = next
            .and_then(|n| self.cuts.get(n))
            .copied()
            .filter(|t| t.is_finite());
        let gap = match (next, target) {
            (None, _) => "already in the top tier".to_owned(),
            (Some(_), _) if self.cuts.is_empty() => {
                "the population is not ranked yet: tiers follow at the first ranking".to_owned()
            }
            (Some(n), Some(t)) => {
                let name = tiers.get(n).map_or("", |s| s.name.as_str());
                let op = match self.direction {
                    Direction::HigherIsBetter => ">=",
                    Direction::LowerIsBetter => "<=",
                };
                format!(
                    "to reach {name}: {} {op} {} (now {}), as the population ranks today",
                    self.by,
                    fmt_value(t, unit),
                    fmt_opt(value, unit)
                )
            }
            (Some(n), None) => {
                let name = tiers.get(n).map_or("", |s| s.name.as_str());
                format!("{name}'s band is empty in today's ranking")
            }
        };
        let advice = match (self.by.indicator(), target) {
            (Some(indicator), Some(t)) if eval.tier > next.unwrap_or(0) => {
                vec![Advice::new(indicator, value, t)]
            }
            _ => Vec::new(),
        };
        Explanation {
            tier: tiers.get(tier).map(|t| t.name.clone()).unwrap_or_default(),
            score: eval.score,
            indicators,
            penalty: 0.0,
            band: self.band_text(tier),
            next_tier: next.and_then(|n| tiers.get(n)).map(|t| t.name.clone()),
            gap,
            advice,
            score_tier: String::new(),
            failed_gates: Vec::new(),
            new_customer: None,
            assessments: Vec::new(),
        }
    }

    fn contributions<'a>(&'a self, ind: &Indicators, out: &mut Vec<(&'a str, f64)>) {
        out.push((self.by.name(), self.evaluate(ind).score));
    }

    fn uses(&self, name: IndicatorName) -> bool {
        self.by.indicator() == Some(name)
    }
}

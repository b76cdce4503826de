//! The `abc` method (DOMAIN.md method 2: proportional ranking): the tier is
//! the customer's share band of the whole population ranked by one figure,
//! e.g. the top 20% by 12-month revenue are A, the next 30% B, the rest C.
//!
//! ```toml
//! [method]
//! kind = "abc"
//! by = "order_amount_12m"   # an indicator, a declared assessment, or "score"
//! higher_is_better = true   # the default
//! shares = [20, 30, 50]     # percent per tier, best first; one per tier
//! recut_seconds = 10        # how often cut points follow the population
//! ```
//!
//! ## Ranking by the weighted score (`by = "score"`)
//! DOMAIN.md's "sort customers by ... the weighted score": the method then
//! declares the score exactly as the `weighted_score` method does
//! (`[[method.dimensions]]` with weighted parts and curves, an optional
//! `[method.complaint_penalty]`, checked by the same parser with the same
//! line-and-field errors), and ranks the population by it:
//!
//! ```toml
//! [method]
//! kind = "abc"
//! by = "score"
//! shares = [20, 30, 50]
//!
//! [[method.dimensions]]
//! name = "value"
//! weight = 100
//! parts = [
//!   { indicator = "margin_12m", share = 70, higher_is_better = true, curve = [[0, 0], [30_000_000, 100]] },
//!   { indicator = "rfm_frequency", share = 30, higher_is_better = true, curve = [[1, 0], [5, 100]] },
//! ]
//! ```
//!
//! Tiers have no `min_score` (the cut points are the bands), a higher
//! score is always better (`higher_is_better = false` is refused), and
//! `by = "score"` without dimensions is refused (field
//! `method.dimensions`), as are dimensions or a penalty with any other
//! `by`. The score reported (and held, and explained with every part's
//! contribution) is the weighted score; the tier is its share band.
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
//! So does a customer with no order in the window (a prospect, a lapsed
//! customer), whatever its figure ([`abc_rank_value`]): the shares are
//! shares of the customers who buy. Ranked, the `0` of its revenue or
//! margin sat among the real figures: with a buyer below it (a negative
//! margin) a band's cut point fell at 0 and every non-buyer reached that
//! band, and the shares were counted over prospects and lapsed customers
//! too, so with 100 customers of whom 20 bought every buyer was in the top
//! 20% and the middle band empty. The same holds for `by = "score"`: a
//! weighted score exists for everyone (a part on a missing figure earns
//! its `missing_points`), so a non-buyer's score would be ranked among the
//! buyers' and move the share boundaries alike; its score is still
//! reported and explained, but not ranked. A promising prospect is lifted
//! by `[new_customers]`, not by the ranking. The explanation says why such
//! a customer holds the lowest tier, and its advice includes the order.
//!
//! ## Score
//! Ranked by an indicator or an assessment, the tier is the band, and the
//! score says how high the band is: with `k` tiers, band `i` (0 = best)
//! scores `100 * (k - 1 - i) / (k - 1)`. The ranked figure and the cut
//! point to reach are in the explanation, and the advice is that figure at
//! the next band's cut point (for an assessment, none: a judgement is not
//! a lever). Ranked by the score, the score is the weighted score, the
//! explanation lists its parts like the weighted method's, and the advice
//! is the weighted method's advice for reaching the next band's cut point
//! (a score, whole hundredths like every score).
//!
//! ## Ranking by an RFM score
//! `by` may be an `rfm_*` indicator (see [`crate::rank::RfmQuintiles`]).
//! Its value depends on the RFM cut points, so the engine cuts the RFM
//! quintiles first and then this method's cut points over the new scores,
//! in the same recut.

use std::sync::Arc;

use super::explain::{Advice, ExplainedIndicator, Explanation, fmt_num, fmt_opt};
use super::operand::Operand;
use super::weighted::WeightedScore;
use super::{Evaluation, ScoringMethod, TierSpec, from_centi, to_centi};
use crate::indicators::{IndicatorName, Indicators};
use crate::rank::{Direction, Proportions, Ranking};

/// How often cut points follow the population, unless the policy says.
pub(crate) const DEFAULT_ABC_RECUT_SECONDS: u32 = 10;

/// Whether `ind` has an order in the window: who a proportional ranking
/// ranks.
#[inline]
fn bought_in_window(ind: &Indicators) -> bool {
    ind.order_count_12m > 0.0
}

/// The value a customer holds in a proportional (ABC) ranking, from the
/// figure it is ranked by: `None` (not ranked) when the figure is unknown
/// or not finite, and when the customer has no order in the window,
/// whatever the figure (a prospect's or lapsed customer's 0 of revenue or
/// margin is no figure to rank: ranked, it was lifted into a better band
/// by a tie, and the shares were counted over customers who buy nothing;
/// see the module docs). The one rule for the `abc` method's tier and the
/// read side's `abc` gradings, so both rank the same customers.
#[inline]
pub fn abc_rank_value(figure: Option<f64>, ind: &Indicators) -> Option<f64> {
    figure.filter(|v| v.is_finite() && bought_in_window(ind))
}

/// What the population is ranked by.
#[derive(Clone, Debug)]
pub(crate) enum RankedBy {
    /// An indicator or an assessment.
    Operand(Operand),
    /// The weighted score of the method's own `dimensions` (`by = "score"`).
    Score(Box<WeightedScore>),
}

#[derive(Clone, Debug)]
pub(crate) struct AbcMethod {
    by: RankedBy,
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
        by: RankedBy,
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

    /// The indicator or assessment ranked by; `None` for the score.
    pub(crate) fn by(&self) -> Option<&Operand> {
        match &self.by {
            RankedBy::Operand(o) => Some(o),
            RankedBy::Score(_) => None,
        }
    }

    /// The weighted score ranked by, for `by = "score"`.
    pub(crate) fn weighted(&self) -> Option<&WeightedScore> {
        match &self.by {
            RankedBy::Operand(_) => None,
            RankedBy::Score(w) => Some(w),
        }
    }

    /// Whether the ranked figure reads the assessment in `slot`.
    pub(crate) fn uses_assessment(&self, slot: usize) -> bool {
        match &self.by {
            RankedBy::Operand(o) => o.assessment_slot() == Some(slot),
            RankedBy::Score(w) => w.uses_assessment(slot),
        }
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

    /// The figure `ind` is ranked by, as the customer has it (what an
    /// explanation shows); `None` when unknown.
    #[inline]
    fn figure(&self, ind: &Indicators) -> Option<f64> {
        match &self.by {
            RankedBy::Operand(o) => o.value(ind),
            RankedBy::Score(w) => Some(w.evaluate(ind).score),
        }
    }

    /// The value `ind` is ranked by; `None` when not ranked (unknown, or
    /// no order in the window: [`abc_rank_value`]).
    #[inline]
    pub(crate) fn value(&self, ind: &Indicators) -> Option<f64> {
        abc_rank_value(self.figure(ind), ind)
    }

    /// The ranked figure's name: the operand's, or `score`.
    fn by_name(&self) -> &str {
        match &self.by {
            RankedBy::Operand(o) => o.name(),
            RankedBy::Score(_) => "score",
        }
    }

    /// A ranked value as text (a score in points).
    fn fmt_by(&self, v: Option<f64>) -> String {
        match (&self.by, v) {
            (RankedBy::Operand(o), v) => fmt_opt(v, o.unit()),
            (RankedBy::Score(_), Some(v)) => fmt_num(v),
            (RankedBy::Score(_), None) => "unknown".to_owned(),
        }
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
        self.band_of_value(self.value(ind))
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
    /// direction) for these proportions (see [`Ranking::value_cuts`]), the
    /// lowest band kept for a tie at the worst value ranked
    /// ([`Ranking::value_cuts_lowest_kept`]). The ranking holds only
    /// customers who bought ([`abc_rank_value`]), but they too can tie at
    /// the bottom (one order each, ranked by `order_count_12m`; everyone
    /// at one margin): ties to the better band would make them all A.
    pub(crate) fn cuts_of<K: Ord + std::hash::Hash + Clone>(
        &self,
        ranking: &Ranking<K>,
    ) -> Vec<f64> {
        let cuts = ranking.value_cuts_lowest_kept(&self.proportions);
        if cuts.is_empty() && self.tiers() > 1 {
            // Nobody ranked: every band but the lowest is out of reach.
            let unreachable = match self.direction {
                Direction::HigherIsBetter => f64::INFINITY,
                Direction::LowerIsBetter => f64::NEG_INFINITY,
            };
            return vec![unreachable; self.tiers() - 1];
        }
        cuts
    }

    fn band_text(&self, tier: usize) -> String {
        let pct = |i: usize| self.proportions.shares().get(i).copied().unwrap_or(0.0) * 100.0;
        let which = if tier == 0 {
            format!("top {}%", fmt_num(pct(0)))
        } else if tier + 1 == self.tiers() {
            format!("bottom {}%", fmt_num(pct(tier)))
        } else {
            format!("next {}%", fmt_num(pct(tier)))
        };
        let by = self.by_name();
        let op = match self.direction {
            Direction::HigherIsBetter => ">=",
            Direction::LowerIsBetter => "<=",
        };
        let range = match (
            tier.checked_sub(1).and_then(|b| self.cuts.get(b)),
            self.cuts.get(tier),
        ) {
            _ if self.cuts.is_empty() => "not ranked yet".to_owned(),
            (_, Some(own)) => format!("{by} {op} {}", self.fmt_by(Some(*own))),
            (Some(better), None) => {
                let below = match self.direction {
                    Direction::HigherIsBetter => "<",
                    Direction::LowerIsBetter => ">",
                };
                format!("{by} {below} {}", self.fmt_by(Some(*better)))
            }
            (None, None) => "everyone".to_owned(),
        };
        format!("{which} by {by} ({range})")
    }
}

impl ScoringMethod for AbcMethod {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let (tier, score) = match &self.by {
            RankedBy::Score(w) => {
                // The weighted score is reported for everyone; only a
                // customer who bought is ranked by it.
                let score = w.evaluate(ind).score;
                (self.band_of_value(abc_rank_value(Some(score), ind)), score)
            }
            RankedBy::Operand(_) => {
                let tier = self.band(ind);
                let steps = self.tiers().saturating_sub(1);
                let score = if steps == 0 {
                    0.0
                } else {
                    from_centi(to_centi(
                        100.0 * steps.saturating_sub(tier) as f64 / steps as f64,
                    ))
                };
                (tier, score)
            }
        };
        Evaluation {
            score,
            tier,
            ceiling: 0,
        }
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        let eval = self.evaluate(ind);
        // The customer's own figure: what it is told it has, also when it
        // is not ranked.
        let value = self.figure(ind);
        let unranked = !bought_in_window(ind);
        let (indicators, penalty) = match &self.by {
            RankedBy::Score(w) => (w.explained(ind), w.penalty(ind)),
            RankedBy::Operand(o) => (
                o.indicator()
                    .map(|name| ExplainedIndicator {
                        name,
                        value,
                        points: eval.score,
                        weight: 100.0,
                        contribution: eval.score,
                    })
                    .into_iter()
                    .collect(),
                0.0,
            ),
        };
        let next = tier.checked_sub(1);
        let target = next
            .and_then(|n| self.cuts.get(n))
            .copied()
            .filter(|t| t.is_finite());
        let mut gap = match (next, target) {
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
                    self.by_name(),
                    self.fmt_by(Some(t)),
                    self.fmt_by(value)
                )
            }
            (Some(n), None) => {
                let name = tiers.get(n).map_or("", |s| s.name.as_str());
                format!("{name}'s band is empty in today's ranking")
            }
        };
        if eval.tier > tier && !self.cuts.is_empty() {
            let why = if unranked {
                "no order in the window, not ranked".to_owned()
            } else {
                format!(
                    "{} {} no longer reaches this band",
                    self.by_name(),
                    self.fmt_by(value)
                )
            };
            gap.push_str(&format!(
                "; held by hysteresis: {why} ({})",
                self.band_text(tier)
            ));
        } else if unranked && !self.cuts.is_empty() && next.is_some() {
            // Its figure may reach a band (a prospect's purchase
            // potential, a score of missing points): say why it does not
            // count.
            gap = format!(
                "no order in the window: not ranked, so the lowest tier; once it buys, {gap}"
            );
        }
        let behind = eval.tier > next.unwrap_or(0);
        let mut advice = match (&self.by, target) {
            (RankedBy::Operand(o), Some(t)) if behind => o
                .indicator()
                .map(|indicator| Advice::new(indicator, value, t))
                .into_iter()
                .collect(),
            // The weighted method's advice to the score at the cut point
            // (scores are whole hundredths, and so are the cut points).
            (RankedBy::Score(w), Some(t))
                if behind && self.direction == Direction::HigherIsBetter =>
            {
                w.advise(ind, to_centi(t))
            }
            _ => Vec::new(),
        };
        // Not ranked without an order: the figure alone reaches nothing.
        if unranked
            && !advice.is_empty()
            && !advice
                .iter()
                .any(|a| a.indicator == IndicatorName::OrderCount12m)
        {
            advice.push(Advice::new(
                IndicatorName::OrderCount12m,
                Some(ind.order_count_12m),
                1.0,
            ));
        }
        Explanation {
            tier: tiers.get(tier).map(|t| t.name.clone()).unwrap_or_default(),
            score: eval.score,
            indicators,
            penalty,
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
        match &self.by {
            RankedBy::Score(w) => w.contributions(ind, out),
            RankedBy::Operand(o) => out.push((o.name(), self.evaluate(ind).score)),
        }
    }

    fn uses(&self, name: IndicatorName) -> bool {
        match &self.by {
            RankedBy::Score(w) => w.uses(name),
            RankedBy::Operand(o) => o.indicator() == Some(name),
        }
    }
}

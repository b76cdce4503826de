//! The `weighted_score` method (DOMAIN.md method 1: weighted score, fixed
//! thresholds).
//!
//! Each part of each dimension becomes one precomputed term: an indicator
//! getter, a curve, and a factor `dimension weight * part share / 10_000`.
//! The score is `sum(factor * points)` minus the complaint penalty, in whole
//! hundredths of a point (rounded, clamped to `0..=10_000`); the tier is the
//! first (best) band whose `min_score`, also in hundredths, the score
//! reaches. Raising an indicator scored `higher_is_better` never lowers the
//! score: curves are monotone in their declared direction, an indicator may
//! not be scored in both directions, and every step (including the
//! rounding) is a monotone floating point operation.
//!
//! ## Advice
//! The terms on one indicator form a *lever*: what moving that indicator
//! alone does to the score. Advice tries the levers heaviest first for one
//! that closes the gap alone; failing that, it takes them by the points they
//! can still gain, pushing each to its best value until the last one, which
//! goes only as far as needed. A lever's target is solved on its
//! piecewise-linear points function for the least score that rounds to the
//! band's edge, put on the unit's grid (the grid value just short of it
//! first, then the helpful direction) and checked by evaluating the changed
//! indicators; when floating point falls short, the next grid value is
//! tried. The target is thus the least grid value that reaches the band. Advice is
//! therefore never wrong, and empty when no change of the scored indicators
//! reaches the next band.

use super::curve::Curve;
use super::explain::{
    Advice, ExplainedIndicator, Explanation, fmt_delta, fmt_num, fmt_opt, fmt_value, to_grid,
};
use super::{Evaluation, Getter, ScoringMethod, TierSpec, from_centi, to_centi};
use crate::event::Severity;
use crate::indicators::{IndicatorName, Indicators};

/// Name of the penalty in [`super::Reason`]s.
pub(crate) const PENALTY_REASON: &str = "complaint_penalty";

/// Points below which a lever is considered to gain nothing.
const GAIN_EPSILON: f64 = 1e-9;

/// Half a hundredth of a point: what rounds up to the next hundredth.
const HALF_CENTI: f64 = 0.005;

/// Grid steps tried beyond a solved target before giving up on it.
const EXTRA_STEPS: u32 = 3;

/// One scored part.
#[derive(Clone, Debug)]
pub(crate) struct Term {
    pub(crate) indicator: IndicatorName,
    get: Getter,
    /// Share of the score: `weight * share / 10_000` (0..=1).
    factor: f64,
    higher_is_better: bool,
    curve: Curve,
    /// Points when the indicator is unknown.
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

    /// Points for a value, or for an unknown one.
    #[inline]
    fn points_at(&self, value: Option<f64>) -> f64 {
        match value {
            Some(v) => self.curve.at(v),
            None => self.missing_points,
        }
    }

    /// The indicator's value and the points it earns.
    #[inline]
    fn eval(&self, ind: &Indicators) -> (Option<f64>, f64) {
        let value = (self.get)(ind);
        (value, self.points_at(value))
    }
}

/// One scored part on an assessment indicator (see `assessment.rs`):
/// never a lever of the advice (an assessment is a judgement to make, not
/// a figure the customer moves), otherwise scored like a [`Term`].
#[derive(Clone, Debug)]
pub(crate) struct AssessedTerm {
    /// Slot in [`Indicators::assessed`] (the assessment's policy position).
    pub(crate) slot: usize,
    pub(crate) name: String,
    /// Share of the score: `weight * share / 10_000` (0..=1).
    factor: f64,
    curve: Curve,
    /// The assessment's `missing_points`: never assessed, or expired.
    missing_points: f64,
}

impl AssessedTerm {
    pub(crate) fn new(
        slot: usize,
        name: String,
        weight: f64,
        share: f64,
        curve: Curve,
        missing_points: f64,
    ) -> Self {
        Self {
            slot,
            name,
            factor: weight * share / 10_000.0,
            curve,
            missing_points,
        }
    }

    /// The assessment's value and the points it earns.
    #[inline]
    fn eval(&self, ind: &Indicators) -> (Option<f64>, f64) {
        let value = ind.assessed.get(self.slot).copied().flatten();
        let points = match value {
            Some(v) => self.curve.at(v),
            None => self.missing_points,
        };
        (value, points)
    }
}

/// Points subtracted per complaint opened in the window, by severity.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Penalty {
    /// Indexed by [`Severity::index`].
    pub(crate) per_severity: [f64; 5],
    /// Share of its points a complaint resolved since costs (0..=1).
    pub(crate) resolved_factor: f64,
    pub(crate) max: f64,
}

impl Penalty {
    #[inline]
    fn of(&self, ind: &Indicators) -> f64 {
        let mut total = 0.0;
        for s in Severity::ALL {
            let i = s.index();
            let opened = ind.complaints_by_severity_12m[i];
            let resolved = ind.resolved_by_severity_12m[i].min(opened);
            let open = opened - resolved;
            total += (f64::from(open) + self.resolved_factor * f64::from(resolved))
                * self.per_severity[i];
        }
        total.min(self.max)
    }
}

/// Every term on one indicator: what moving that indicator alone does.
#[derive(Clone, Debug)]
struct Lever {
    indicator: IndicatorName,
    get: Getter,
    higher_is_better: bool,
    /// Indices into [`WeightedScore::terms`].
    terms: Vec<usize>,
    /// Summed factor: the lever's share of the score.
    factor: f64,
    /// The union of the terms' knot values, strictly increasing. The
    /// lever's points are linear between two of them.
    xs: Vec<f64>,
    /// The value earning the most points, nearest the worst end.
    best_x: f64,
}

impl Lever {
    /// Score points (before the penalty) the lever earns at `value`.
    fn points(&self, terms: &[Term], value: Option<f64>) -> f64 {
        self.terms
            .iter()
            .filter_map(|i| terms.get(*i))
            .map(|t| t.factor * t.points_at(value))
            .sum()
    }

    fn best_points(&self, terms: &[Term]) -> f64 {
        self.points(terms, Some(self.best_x))
    }

    /// Points the lever can still gain for `ind`.
    fn gain(&self, terms: &[Term], ind: &Indicators) -> f64 {
        self.best_points(terms) - self.points(terms, (self.get)(ind))
    }

    /// The best value on the unit's grid.
    fn best_target(&self) -> f64 {
        to_grid(self.best_x, self.indicator.unit(), self.higher_is_better, 0)
    }

    /// The value nearest the worst end that earns at least `goal` points:
    /// the smallest for a rising lever, the largest for a falling one.
    /// `None` when no value does.
    fn reach(&self, terms: &[Term], goal: f64) -> Option<f64> {
        let knots: Vec<(f64, f64)> = self
            .xs
            .iter()
            .map(|&x| (x, self.points(terms, Some(x))))
            .collect();
        let &(first_x, first_y) = knots.first()?;
        let interpolate = |(x0, y0): (f64, f64), (x1, y1): (f64, f64)| {
            let x = if y1 == y0 {
                x0
            } else {
                x0 + (goal - y0) / (y1 - y0) * (x1 - x0)
            };
            x.clamp(x0, x1)
        };
        if self.higher_is_better {
            if first_y >= goal {
                return Some(first_x);
            }
            knots
                .windows(2)
                .find(|w| w[1].1 >= goal)
                .map(|w| interpolate(w[0], w[1]))
        } else {
            if first_y < goal {
                return None;
            }
            match knots.windows(2).find(|w| w[1].1 < goal) {
                Some(w) => Some(interpolate(w[0], w[1])),
                // Even the last value earns enough.
                None => knots.last().map(|k| k.0),
            }
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WeightedScore {
    terms: Vec<Term>,
    /// The parts on assessment indicators, in policy order.
    assessed: Vec<AssessedTerm>,
    /// One per scored indicator, heaviest first (ties in policy order).
    levers: Vec<Lever>,
    penalty: Option<Penalty>,
    /// Lower bound of each tier's band in hundredths of a point, best
    /// first, strictly decreasing, the last one 0.
    min_centis: Vec<i64>,
}

impl WeightedScore {
    /// `min_centis`: each tier's `min_score` in hundredths, best first.
    pub(crate) fn new(
        terms: Vec<Term>,
        assessed: Vec<AssessedTerm>,
        penalty: Option<Penalty>,
        min_centis: Vec<i64>,
    ) -> Self {
        let mut levers: Vec<Lever> = Vec::new();
        for (i, t) in terms.iter().enumerate() {
            let knots = t.curve.knots().iter().map(|k| k.0);
            match levers.iter_mut().find(|l| l.indicator == t.indicator) {
                Some(l) => {
                    l.terms.push(i);
                    l.factor += t.factor;
                    l.xs.extend(knots);
                }
                None => levers.push(Lever {
                    indicator: t.indicator,
                    get: t.get,
                    higher_is_better: t.higher_is_better,
                    terms: vec![i],
                    factor: t.factor,
                    xs: knots.collect(),
                    best_x: 0.0,
                }),
            }
        }
        for l in &mut levers {
            l.xs.sort_by(f64::total_cmp);
            l.xs.dedup();
            let ends = if l.higher_is_better {
                l.xs.last()
            } else {
                l.xs.first()
            };
            l.best_x = ends.copied().unwrap_or(0.0);
        }
        levers.sort_by(|a, b| b.factor.total_cmp(&a.factor));
        Self {
            terms,
            assessed,
            levers,
            penalty,
            min_centis,
        }
    }

    /// Whether every part on an indicator that `rises` says moves with
    /// the day alone (`Some(true)`: grows, `Some(false)`: falls) can only
    /// lose points as it moves: scored lower-is-better when it grows,
    /// higher-is-better when it falls (curves are monotone in their
    /// declared direction).
    pub(crate) fn only_loses_as(&self, rises: impl Fn(IndicatorName) -> Option<bool>) -> bool {
        self.terms
            .iter()
            .all(|t| rises(t.indicator).is_none_or(|up| up != t.higher_is_better))
    }

    /// Whether a part scores the assessment in `slot`.
    pub(crate) fn uses_assessment(&self, slot: usize) -> bool {
        self.assessed.iter().any(|t| t.slot == slot)
    }

    /// The percent of the score the parts on the assessment in `slot`
    /// carry, and the points they contribute for `ind`.
    pub(crate) fn assessed_share(&self, slot: usize, ind: &Indicators) -> (f64, f64) {
        self.assessed
            .iter()
            .filter(|t| t.slot == slot)
            .fold((0.0, 0.0), |(w, c), t| {
                (w + t.factor * 100.0, c + t.factor * t.eval(ind).1)
            })
    }

    /// Score before the penalty, unrounded.
    #[inline]
    fn raw(&self, ind: &Indicators) -> f64 {
        let mut raw = 0.0;
        for t in &self.terms {
            raw += t.factor * t.eval(ind).1;
        }
        for t in &self.assessed {
            raw += t.factor * t.eval(ind).1;
        }
        raw
    }

    /// [`Self::raw`] from the products of a previous call kept in
    /// `products` (one per term, then per assessed term): the terms whose
    /// indicator `moved` says may have changed are computed again, the
    /// others are taken as kept, and the sum runs in the same order, so
    /// the result is exactly `raw(ind)` when the kept products are those
    /// of indicators equal to `ind` but for the moved ones. `fresh`:
    /// compute every product. `None` when the policy has more parts than
    /// `products` holds.
    pub(crate) fn raw_step(
        &self,
        ind: &Indicators,
        products: &mut [f64],
        fresh: bool,
        moved: impl Fn(IndicatorName) -> bool,
    ) -> Option<f64> {
        if self.terms.len() + self.assessed.len() > products.len() {
            return None;
        }
        let mut raw = 0.0;
        for (t, p) in self.terms.iter().zip(products.iter_mut()) {
            if fresh || moved(t.indicator) {
                *p = t.factor * t.eval(ind).1;
            }
            raw += *p;
        }
        let rest = &mut products[self.terms.len()..];
        for (t, p) in self.assessed.iter().zip(rest.iter_mut()) {
            // Assessment values move with their expiry alone: never kept.
            *p = t.factor * t.eval(ind).1;
            raw += *p;
        }
        Some(raw)
    }

    /// [`ScoringMethod::evaluate`] by [`Self::raw_step`].
    pub(crate) fn evaluate_step(
        &self,
        ind: &Indicators,
        products: &mut [f64],
        fresh: bool,
        moved: impl Fn(IndicatorName) -> bool,
    ) -> Option<Evaluation> {
        let raw = self.raw_step(ind, products, fresh, moved)?;
        let centi = to_centi(raw - self.penalty(ind));
        Some(Evaluation {
            score: from_centi(centi),
            tier: self.band_of(centi),
            ceiling: 0,
        })
    }

    #[inline]
    pub(crate) fn penalty(&self, ind: &Indicators) -> f64 {
        self.penalty.as_ref().map_or(0.0, |p| p.of(ind))
    }

    /// The final score in hundredths.
    #[inline]
    fn centi(&self, ind: &Indicators) -> i64 {
        to_centi(self.raw(ind) - self.penalty(ind))
    }

    /// The best tier whose band a score in hundredths reaches.
    #[inline]
    pub(crate) fn band_of(&self, centi: i64) -> usize {
        let lowest = self.min_centis.len().saturating_sub(1);
        self.min_centis
            .iter()
            .position(|min| centi >= *min)
            .unwrap_or(lowest)
    }

    fn band_text(&self, tier: usize) -> String {
        let min = self.min_centis.get(tier).copied().unwrap_or(0);
        let upper = tier
            .checked_sub(1)
            .and_then(|better| self.min_centis.get(better));
        match upper {
            None => format!(">= {}", fmt_num(from_centi(min))),
            Some(up) if min <= 0 => format!("< {}", fmt_num(from_centi(*up))),
            Some(up) => format!(
                ">= {} and < {}",
                fmt_num(from_centi(min)),
                fmt_num(from_centi(*up))
            ),
        }
    }

    /// Every scored part on an event-derived indicator with its value,
    /// points, weight and contribution.
    pub(crate) fn explained(&self, ind: &Indicators) -> Vec<ExplainedIndicator> {
        self.terms
            .iter()
            .map(|t| {
                let (value, points) = t.eval(ind);
                ExplainedIndicator {
                    name: t.indicator,
                    value,
                    points,
                    weight: t.factor * 100.0,
                    contribution: t.factor * points,
                }
            })
            .collect()
    }

    /// Advice that brings `ind` to `goal_centi` or more (see the module
    /// docs); empty when it is there already or nothing gets it there.
    pub(crate) fn advise(&self, ind: &Indicators, goal_centi: i64) -> Vec<Advice> {
        if self.centi(ind) >= goal_centi {
            return Vec::new();
        }
        let gains: Vec<f64> = self
            .levers
            .iter()
            .map(|l| l.gain(&self.terms, ind))
            .collect();
        // One indicator alone, the heaviest first.
        for (lever, gain) in self.levers.iter().zip(&gains) {
            if *gain <= GAIN_EPSILON {
                continue;
            }
            if let Some(target) = self.solve(lever, ind, goal_centi) {
                return vec![Advice::new(lever.indicator, (lever.get)(ind), target)];
            }
        }
        // Several together, greedy by gain (ties heaviest first).
        let mut order: Vec<usize> = (0..self.levers.len())
            .filter(|i| gains.get(*i).is_some_and(|g| *g > GAIN_EPSILON))
            .collect();
        order.sort_by(|a, b| gains[*b].total_cmp(&gains[*a]));
        let mut trial = *ind;
        let mut advice = Vec::new();
        for i in order {
            let Some(lever) = self.levers.get(i) else {
                continue;
            };
            let current = (lever.get)(ind);
            if let Some(target) = self.solve(lever, &trial, goal_centi) {
                advice.push(Advice::new(lever.indicator, current, target));
                return advice;
            }
            let best = lever.best_target();
            trial.set(lever.indicator, Some(best));
            advice.push(Advice::new(lever.indicator, current, best));
        }
        if self.centi(&trial) >= goal_centi {
            advice
        } else {
            Vec::new()
        }
    }

    /// The grid value of `lever`, nearest the worst end, that brings
    /// `trial` (the other indicators held) to `goal_centi` or more, checked
    /// by evaluation. `None` when the lever alone cannot.
    fn solve(&self, lever: &Lever, trial: &Indicators, goal_centi: i64) -> Option<f64> {
        let now = lever.points(&self.terms, (lever.get)(trial));
        // Aim at the least unrounded score that rounds to the band's edge;
        // floating point noise decides on which side of it `x` falls, so
        // the candidates below are checked by evaluation.
        let need = from_centi(goal_centi) - HALF_CENTI + self.penalty(trial) - self.raw(trial);
        let best_points = lever.best_points(&self.terms);
        let goal = now + need;
        if goal > best_points + GAIN_EPSILON {
            return None;
        }
        let x = lever.reach(&self.terms, goal.min(best_points))?;
        let unit = lever.indicator.unit();
        let up = lever.higher_is_better;
        let best = lever.best_target();
        let past_best = |v: f64| if up { v > best } else { v < best };
        // Least helpful first: one grid value short of `x` (the rounded
        // score may already reach the band there), then `x` on the grid in
        // the helpful direction and a few values beyond, then the best.
        let candidates = std::iter::once(to_grid(x, unit, !up, 0))
            .chain((0..=EXTRA_STEPS).map(|k| to_grid(x, unit, up, k)))
            .map(|v| if past_best(v) { best } else { v })
            .chain(std::iter::once(best));
        let reaches = |v: f64| {
            let mut t = *trial;
            t.set(lever.indicator, Some(v));
            self.centi(&t) >= goal_centi
        };
        candidates.into_iter().find(|v| reaches(*v))
    }

    /// What lifts the score into the band above `tier`, as text.
    fn gap_text(
        &self,
        ind: &Indicators,
        centi: i64,
        penalty: f64,
        tier: usize,
        tiers: &[TierSpec],
        advice: &[Advice],
    ) -> String {
        let mut text = match tier.checked_sub(1) {
            None => "already in the top tier".to_owned(),
            Some(next) => {
                let target = self.min_centis.get(next).copied().unwrap_or(0);
                let name = tiers.get(next).map_or("", |t| t.name.as_str());
                if centi >= target {
                    format!(
                        "score {} already reaches {name} (>= {})",
                        fmt_num(from_centi(centi)),
                        fmt_num(from_centi(target))
                    )
                } else {
                    let need = fmt_num(from_centi(target - centi));
                    let how = match advice {
                        [] => format!(
                            "the scored indicators cannot close the gap, even all together; most to gain: {}",
                            self.most_to_gain(ind)
                        ),
                        [one] => format!("e.g. {} would do it", advice_text(one)),
                        several => format!(
                            "no single indicator closes the gap; together: {}",
                            several
                                .iter()
                                .map(advice_text)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!("+{need} points to {name}: {how}")
                }
            }
        };
        if penalty > 0.0 {
            text.push_str(&format!(" (complaints cost {} points)", fmt_num(penalty)));
        }
        let own_min = self.min_centis.get(tier).copied().unwrap_or(0);
        if centi < own_min {
            text.push_str(&format!(
                "; held by hysteresis: score {} is below this band ({})",
                fmt_num(from_centi(centi)),
                self.band_text(tier)
            ));
        }
        text
    }

    /// The (at most three) levers with the most points to gain.
    fn most_to_gain(&self, ind: &Indicators) -> String {
        let mut levers: Vec<(f64, &Lever)> = self
            .levers
            .iter()
            .map(|l| (l.gain(&self.terms, ind), l))
            .filter(|(gain, _)| *gain > GAIN_EPSILON)
            .collect();
        if levers.is_empty() {
            return "nothing".to_owned();
        }
        levers.sort_by(|a, b| b.0.total_cmp(&a.0));
        levers
            .iter()
            .take(3)
            .map(|(gain, l)| {
                format!(
                    "{} (up to +{} points at {})",
                    l.indicator,
                    fmt_num(*gain),
                    fmt_value(l.best_target(), l.indicator.unit())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `margin_12m +1,200,000 (to 50,000,000)`, or for an unknown value
/// `on_time_payment_ratio (now unknown) to 1`.
fn advice_text(a: &Advice) -> String {
    match a.current {
        Some(now) => format!(
            "{} {} (to {})",
            a.indicator,
            fmt_delta(a.target - now, a.unit),
            fmt_value(a.target, a.unit)
        ),
        None => format!(
            "{} (now {}) to {}",
            a.indicator,
            fmt_opt(None, a.unit),
            fmt_value(a.target, a.unit)
        ),
    }
}

impl ScoringMethod for WeightedScore {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let centi = self.centi(ind);
        Evaluation {
            score: from_centi(centi),
            tier: self.band_of(centi),
            ceiling: 0,
        }
    }

    fn hold_floor(&self, held: usize, margin_centi: i64) -> Option<i64> {
        self.min_centis.get(held).map(|min| min - margin_centi)
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        let centi = self.centi(ind);
        let penalty = self.penalty(ind);
        let indicators = self.explained(ind);
        let advice = tier
            .checked_sub(1)
            .and_then(|next| self.min_centis.get(next))
            .map_or_else(Vec::new, |goal| self.advise(ind, *goal));
        Explanation {
            tier: tiers.get(tier).map(|t| t.name.clone()).unwrap_or_default(),
            score: from_centi(centi),
            indicators,
            penalty,
            band: self.band_text(tier),
            next_tier: tier
                .checked_sub(1)
                .and_then(|next| tiers.get(next))
                .map(|t| t.name.clone()),
            gap: self.gap_text(ind, centi, penalty, tier, tiers, &advice),
            advice,
            score_tier: String::new(),
            failed_gates: Vec::new(),
            new_customer: None,
            assessments: Vec::new(),
        }
    }

    fn uses(&self, name: IndicatorName) -> bool {
        self.terms.iter().any(|t| t.indicator == name)
    }

    fn contributions<'a>(&'a self, ind: &Indicators, out: &mut Vec<(&'a str, f64)>) {
        for t in &self.terms {
            out.push((t.indicator.as_str(), t.factor * t.eval(ind).1));
        }
        for t in &self.assessed {
            out.push((t.name.as_str(), t.factor * t.eval(ind).1));
        }
        if self.penalty.is_some() {
            out.push((PENALTY_REASON, -self.penalty(ind)));
        }
    }
}

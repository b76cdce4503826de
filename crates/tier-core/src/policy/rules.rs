//! The `rules` method (DOMAIN.md method 3: rule tiers on raw figures).
//!
//! Every tier but the last has one rule, a list of conditions that must all
//! hold (`indicator op value`). Rules are tried best tier first; the first
//! rule that holds gives the tier; the last tier is the fallback. A
//! condition on an unknown indicator (a margin without known costs, credit
//! before any invoice fell due, `share_of_wallet` without a purchase
//! potential, ...) does not hold; the gap text says `now unknown`.
//!
//! ## The score of a rules policy
//! Rules give a tier, not a score, but the service stores and reports a
//! score, so it should say something useful: how far up the ladder a
//! customer stands. With `n` tiers there are `n - 1` steps; a customer in
//! tier `i` (0 = best) who meets `m` of the `k` conditions of the next better
//! tier's rule scores
//!
//! ```text
//! score = 100 * ((n - 1 - i) + m / k) / (n - 1)
//! ```
//!
//! rounded to hundredths of a point like every score. So the top tier
//! scores 100, the fallback tier 0 plus its progress, each tier owns the
//! band `[100 * (n-1-i) / (n-1), 100 * (n-i) / (n-1))`, and a score rises
//! as a customer ticks off conditions of the tier above (never reaching the
//! next band: meeting all of them means matching that tier).
//! A single-tier policy scores 0. The explanation splits the score the same
//! way: the matched rule's conditions share the tier's base, the next
//! rule's conditions carry `100 / (n - 1) / k` each when met (their
//! contributions sum to the score before rounding).
//!
//! ## Advice
//! The advice to reach the next better tier is its rule's unmet
//! conditions, each as a target value: the threshold, moved onto the
//! unit's grid (see [`super::Advice`]) on the side the operator needs, one
//! grid step past it for a strict comparison: `> 5_000_000` (fen) asks for
//! 5_000_001, `> 0.9` (a ratio) for 0.9001, `< 7` (days) for 6; `==` asks
//! for the threshold itself. When the rule has several conditions on one
//! indicator, the target is the candidate meeting all of them nearest the
//! current value. Setting every advised indicator makes the rule hold, so
//! the customer matches that tier or a better one; a rule no value can
//! satisfy (contradictory conditions) gives no advice.

use serde::Deserialize;

use super::explain::{Advice, ExplainedIndicator, Explanation, fmt_beside, fmt_value, to_grid};
use super::operand::Operand;
use super::{Evaluation, ScoringMethod, TierSpec, from_centi, to_centi};
use crate::indicators::{IndicatorName, Indicators, Unit};

/// A comparison operator of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
}

impl Op {
    #[inline]
    pub(crate) fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
        }
    }

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
        }
    }
}

/// `indicator op value`; the indicator may be an assessment (see
/// `operand.rs`).
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    operand: Operand,
    op: Op,
    value: f64,
}

impl Condition {
    pub(crate) fn new(operand: impl Into<Operand>, op: Op, value: f64) -> Self {
        Self {
            operand: operand.into(),
            op,
            value,
        }
    }

    #[inline]
    fn holds(&self, ind: &Indicators) -> bool {
        self.operand
            .value(ind)
            .is_some_and(|v| self.op.holds(v, self.value))
    }

    fn text(&self) -> String {
        format!(
            "{} {} {}",
            self.operand,
            self.op.as_str(),
            fmt_value(self.value, self.operand.unit())
        )
    }

    /// The value on the indicator's grid nearest the threshold that makes
    /// the condition hold (see the module docs).
    fn target(&self) -> f64 {
        target(self.operand.unit(), self.op, self.value)
    }
}

/// The value on `unit`'s grid nearest `t` that satisfies `op t`: the
/// threshold itself for `>=`, `<=` and `==` (on the grid, in the helpful
/// direction), one grid step past it for `>` and `<`.
pub(crate) fn target(unit: Unit, op: Op, t: f64) -> f64 {
    let v = match op {
        Op::Ge => to_grid(t, unit, true, 0),
        Op::Le => to_grid(t, unit, false, 0),
        Op::Gt => {
            let v = to_grid(t, unit, true, 0);
            if v > t { v } else { to_grid(t, unit, true, 1) }
        }
        Op::Lt => {
            let v = to_grid(t, unit, false, 0);
            if v < t { v } else { to_grid(t, unit, false, 1) }
        }
        Op::Eq => t,
    };
    if op.holds(v, t) {
        return v;
    }
    // The grid is too fine for the threshold's magnitude.
    match op {
        Op::Gt => t.next_up(),
        Op::Lt => t.next_down(),
        Op::Ge | Op::Le | Op::Eq => t,
    }
}

/// The candidate value (each condition's target on `operand`) meeting every
/// condition of `rule` on `operand`, nearest `current`; `None` when no
/// value meets them all (contradictory conditions).
fn meeting_all(rule: &[Condition], operand: &Operand, current: Option<f64>) -> Option<f64> {
    let on_operand: Vec<&Condition> = rule.iter().filter(|o| o.operand == *operand).collect();
    let distance = |v: f64| current.map_or(0.0, |now| (v - now).abs());
    on_operand
        .iter()
        .map(|o| o.target())
        .filter(|v| on_operand.iter().all(|o| o.op.holds(*v, o.value)))
        .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))
}

#[derive(Clone, Debug)]
pub(crate) struct RuleTiers {
    /// `rules[i]` is the rule of tier `i`; the last tier has none, so
    /// `rules.len()` is both the fallback index and the number of steps.
    rules: Vec<Vec<Condition>>,
}

impl RuleTiers {
    /// `rules` holds one non-empty rule per tier but the last, best first.
    pub(crate) fn new(rules: Vec<Vec<Condition>>) -> Self {
        Self { rules }
    }

    #[inline]
    fn matched(&self, ind: &Indicators) -> usize {
        self.rules
            .iter()
            .position(|rule| rule.iter().all(|c| c.holds(ind)))
            .unwrap_or(self.rules.len())
    }

    /// Conditions of the next better tier's rule met, and their number.
    #[inline]
    fn progress(&self, ind: &Indicators, tier: usize) -> (usize, usize) {
        match tier
            .checked_sub(1)
            .and_then(|better| self.rules.get(better))
        {
            Some(rule) => (rule.iter().filter(|c| c.holds(ind)).count(), rule.len()),
            None => (0, 0),
        }
    }

    /// The ladder score, rounded to hundredths.
    #[inline]
    fn score(&self, tier: usize, (met, of): (usize, usize)) -> f64 {
        let steps = self.rules.len();
        if steps == 0 {
            return 0.0;
        }
        let fraction = if of == 0 { 0.0 } else { met as f64 / of as f64 };
        let climbed = steps.saturating_sub(tier) as f64 + fraction;
        from_centi(to_centi(100.0 * climbed / steps as f64))
    }

    /// The unmet conditions of rule `next` on event-derived indicators as
    /// targets; empty when the rule holds or cannot be met (see the module
    /// docs). Unmet conditions on assessments are judgements, not levers:
    /// the gap names them and the check that the advice reaches the rule
    /// assumes them met.
    fn advise(&self, ind: &Indicators, next: usize) -> Vec<Advice> {
        let Some(rule) = self.rules.get(next) else {
            return Vec::new();
        };
        let mut advice: Vec<Advice> = Vec::new();
        let mut after = *ind;
        let mut judged: Vec<&Operand> = Vec::new();
        for c in rule.iter().filter(|c| !c.holds(ind)) {
            let seen = match c.operand.indicator() {
                Some(indicator) => advice.iter().any(|a| a.indicator == indicator),
                None => judged.contains(&&c.operand),
            };
            if seen {
                continue;
            }
            let current = c.operand.value(ind);
            let Some(target) = meeting_all(rule, &c.operand, current) else {
                return Vec::new();
            };
            c.operand.set(&mut after, Some(target));
            match c.operand.indicator() {
                Some(indicator) => advice.push(Advice::new(indicator, current, target)),
                None => judged.push(&c.operand),
            }
        }
        // Following it (with the judgements made) must make the rule hold;
        // never give advice that does not.
        if self.matched(&after) <= next {
            advice
        } else {
            Vec::new()
        }
    }

    /// Set every assessment an unmet condition of rule `next` reads to the
    /// level nearest its current one that meets the rule's conditions on
    /// it (a what-if: "were it judged so").
    pub(crate) fn assume_judgements(&self, ind: &mut Indicators, next: usize) {
        let Some(rule) = self.rules.get(next) else {
            return;
        };
        let unmet: Vec<&Operand> = rule
            .iter()
            .filter(|c| c.operand.assessment_slot().is_some() && !c.holds(ind))
            .map(|c| &c.operand)
            .collect();
        for operand in unmet {
            if let Some(level) = meeting_all(rule, operand, operand.value(ind)) {
                operand.set(ind, Some(level));
            }
        }
    }

    /// Whether a condition reads the assessment in `slot`.
    pub(crate) fn uses_assessment(&self, slot: usize) -> bool {
        self.rules
            .iter()
            .flatten()
            .any(|c| c.operand.assessment_slot() == Some(slot))
    }

    /// The percent of the score the conditions on the assessment in `slot`
    /// carry for `ind`, and the points they contribute (see [`Self::terms`]).
    pub(crate) fn assessed_share(&self, slot: usize, ind: &Indicators) -> (f64, f64) {
        let mut share = (0.0, 0.0);
        self.each_term(ind, self.matched(ind), |c, weight, contribution| {
            if c.operand.assessment_slot() == Some(slot) {
                share.0 += weight;
                share.1 += contribution;
            }
        });
        share
    }

    fn rule_text(&self, tier: usize) -> String {
        match self.rules.get(tier) {
            Some(rule) => rule
                .iter()
                .map(Condition::text)
                .collect::<Vec<_>>()
                .join(" and "),
            None => "otherwise (no rule of a better tier holds)".to_owned(),
        }
    }

    /// Every scored term: the matched rule's conditions share the tier's
    /// base, the next better rule's conditions carry one step split evenly;
    /// `f(condition, weight, contribution)`.
    fn each_term<'a>(
        &'a self,
        ind: &Indicators,
        tier: usize,
        mut f: impl FnMut(&'a Condition, f64, f64),
    ) {
        let steps = self.rules.len();
        if steps == 0 {
            return;
        }
        let step = 100.0 / steps as f64;
        let mut push = |c: &'a Condition, weight: f64| {
            let points = if c.holds(ind) { 100.0 } else { 0.0 };
            f(c, weight, points * weight / 100.0);
        };
        if let Some(rule) = self.rules.get(tier) {
            let base = step * steps.saturating_sub(tier) as f64;
            for c in rule {
                push(c, base / rule.len() as f64);
            }
        }
        if let Some(rule) = tier
            .checked_sub(1)
            .and_then(|better| self.rules.get(better))
        {
            for c in rule {
                push(c, step / rule.len() as f64);
            }
        }
    }

    /// The scored terms on event-derived indicators (those on assessments
    /// are the explanation's `assessments`: see [`Self::assessed_share`]).
    fn terms(&self, ind: &Indicators, tier: usize) -> Vec<ExplainedIndicator> {
        let mut out = Vec::new();
        self.each_term(ind, tier, |c, weight, contribution| {
            if let Some(name) = c.operand.indicator() {
                out.push(ExplainedIndicator {
                    name,
                    value: c.operand.value(ind),
                    points: if c.holds(ind) { 100.0 } else { 0.0 },
                    weight,
                    contribution,
                });
            }
        });
        out
    }
}

impl ScoringMethod for RuleTiers {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let tier = self.matched(ind);
        Evaluation {
            score: self.score(tier, self.progress(ind, tier)),
            tier,
            ceiling: 0,
        }
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        let eval = self.evaluate(ind);
        let mut gap = match tier.checked_sub(1) {
            None => "already in the top tier".to_owned(),
            Some(next) => {
                let name = tiers.get(next).map_or("", |t| t.name.as_str());
                let missing: Vec<String> = self
                    .rules
                    .get(next)
                    .map(|rule| {
                        rule.iter()
                            .filter(|c| !c.holds(ind))
                            .map(|c| {
                                let now =
                                    fmt_beside(c.operand.value(ind), c.operand.unit(), c.value);
                                format!("{} (now {now})", c.text())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if missing.is_empty() {
                    format!("all conditions of {name} hold")
                } else {
                    format!("to reach {name}: {}", missing.join(", "))
                }
            }
        };
        if eval.tier > tier {
            gap.push_str(&format!(
                "; held by hysteresis: the rule of this tier no longer holds ({})",
                self.rule_text(tier)
            ));
        }
        Explanation {
            tier: tiers.get(tier).map(|t| t.name.clone()).unwrap_or_default(),
            score: eval.score,
            indicators: self.terms(ind, eval.tier),
            penalty: 0.0,
            band: self.rule_text(tier),
            next_tier: tier
                .checked_sub(1)
                .and_then(|next| tiers.get(next))
                .map(|t| t.name.clone()),
            gap,
            advice: tier
                .checked_sub(1)
                .map_or_else(Vec::new, |next| self.advise(ind, next)),
            score_tier: String::new(),
            failed_gates: Vec::new(),
            new_customer: None,
            assessments: Vec::new(),
        }
    }

    fn uses(&self, name: IndicatorName) -> bool {
        self.rules
            .iter()
            .flatten()
            .any(|c| c.operand.indicator() == Some(name))
    }

    fn contributions<'a>(&'a self, ind: &Indicators, out: &mut Vec<(&'a str, f64)>) {
        let tier = self.matched(ind);
        self.each_term(ind, tier, |c, _, contribution| {
            out.push((c.operand.name(), contribution));
        });
    }
}

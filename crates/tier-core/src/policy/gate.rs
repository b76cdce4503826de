//! Tier gates: veto conditions a tier requires beyond the score (or the
//! rules), e.g. the top tier requires `on_time_payment_ratio >= 0.8` and
//! no invoice more than 60 days overdue.
//!
//! A tier lists its gates in the policy (`gates = [{ indicator, op,
//! value, unknown }]` under `[[tiers]]`, both methods). The rules:
//!
//! - **A gate binds its tier and every better one.** A customer who fails
//!   a gate of tier `g` holds neither `g` nor any tier above it: the
//!   *ceiling* is the tier just below the worst tier with a failing gate
//!   ([`Gates::ceiling`]). The tier is the worse of the one the score (or
//!   the rules) reaches and the ceiling: the best tier whose band the score
//!   reaches and whose gates, and the gates of every worse tier, hold.
//!   So gates are minimum standards that rise with the tier: a customer
//!   unfit for B on credit is unfit for A too, whatever A's own gates say.
//! - **The lowest tier has no gates** (rejected at load): every customer
//!   can hold it, so a gate there could veto nothing.
//! - **Unknown passes** by default: a gate vetoes on evidence, and an
//!   unknown figure is no evidence (a customer with no invoice fallen due
//!   yet does not fail an on-time-payment gate). `unknown = "fail"` makes
//!   a gate demand the evidence instead.
//! - **Gates veto the tier, never the score**: the score shown is what
//!   the figures earn, and a vetoed tier is left at once, without
//!   hysteresis (see [`super::Policy::decide`]).
//!
//! An explanation lists every failing gate ([`FailedGate`]) and its
//! advice to reach the next tier includes a target for each gate that
//! blocks it, on the unit's grid like a rules condition's target.

use serde::Deserialize;

use super::TierSpec;
use super::explain::{Advice, FailedGate, fmt_beside, fmt_value};
use super::operand::Operand;
use super::rules::{Op, target};
use crate::indicators::{IndicatorName, Indicators};

/// What a gate does when its indicator is unknown (`unknown = ...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WhenUnknown {
    /// The gate holds: no evidence, no veto (the default).
    #[default]
    Pass,
    /// The gate fails until the indicator is known and meets it.
    Fail,
}

/// `indicator op value`, required by one tier; the indicator may be an
/// assessment (see `operand.rs`).
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    operand: Operand,
    op: Op,
    value: f64,
    when_unknown: WhenUnknown,
}

impl Gate {
    pub(crate) fn new(
        operand: impl Into<Operand>,
        op: Op,
        value: f64,
        when_unknown: WhenUnknown,
    ) -> Self {
        Self {
            operand: operand.into(),
            op,
            value,
            when_unknown,
        }
    }

    /// Whether the gate holds for a value (`None`: unknown).
    #[inline]
    fn holds_at(&self, value: Option<f64>) -> bool {
        match value {
            Some(v) => self.op.holds(v, self.value),
            None => self.when_unknown == WhenUnknown::Pass,
        }
    }

    #[inline]
    fn holds(&self, ind: &Indicators) -> bool {
        self.holds_at(self.operand.value(ind))
    }

    /// `on_time_payment_ratio >= 0.8 (now 0.25)`.
    fn text(&self, ind: &Indicators) -> String {
        let unit = self.operand.unit();
        format!(
            "{} {} {} (now {})",
            self.operand,
            self.op.as_str(),
            fmt_value(self.value, unit),
            fmt_beside(self.operand.value(ind), unit, self.value)
        )
    }
}

/// The gates of every tier of a policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gates {
    /// `by_tier[t]`: the gates of tier `t` (best first); empty for tiers
    /// without gates and always for the lowest tier.
    by_tier: Vec<Vec<Gate>>,
    /// `reads[n.index()]`: whether some gate reads indicator `n` (asked
    /// on every fresh evaluation of a run of time steps).
    reads: [bool; IndicatorName::ALL.len()],
}

impl Gates {
    /// `by_tier`: one list per tier, best first, the lowest one empty.
    pub(crate) fn new(by_tier: Vec<Vec<Gate>>) -> Self {
        let reads = IndicatorName::ALL.map(|n| {
            by_tier
                .iter()
                .flatten()
                .any(|g| g.operand.indicator() == Some(n))
        });
        Self { by_tier, reads }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_tier.iter().all(Vec::is_empty)
    }

    /// Whether some gate reads `name`.
    #[inline]
    pub(crate) fn uses(&self, name: IndicatorName) -> bool {
        self.reads[name.index()]
    }

    /// Whether every gate on an indicator that `rises` says moves with
    /// the day alone (`Some(true)`: grows, `Some(false)`: falls) can only
    /// stop holding as it moves: `<` or `<=` on one that grows, `>` or
    /// `>=` on one that falls (an unknown value stays unknown).
    pub(crate) fn only_fail_as(&self, rises: impl Fn(IndicatorName) -> Option<bool>) -> bool {
        self.by_tier
            .iter()
            .flatten()
            .all(|g| match g.operand.indicator().and_then(&rises) {
                None => true,
                Some(true) => matches!(g.op, Op::Lt | Op::Le),
                Some(false) => matches!(g.op, Op::Gt | Op::Ge),
            })
    }

    /// Whether some gate reads the assessment in `slot`.
    pub(crate) fn uses_assessment(&self, slot: usize) -> bool {
        self.by_tier
            .iter()
            .flatten()
            .any(|g| g.operand.assessment_slot() == Some(slot))
    }

    /// The best tier the gates admit: one below the worst tier with a
    /// failing gate, 0 when every gate holds. Hot path: no allocation.
    #[inline]
    pub(crate) fn ceiling(&self, ind: &Indicators) -> usize {
        for (t, gates) in self.by_tier.iter().enumerate().rev() {
            if gates.iter().any(|g| !g.holds(ind)) {
                return t + 1;
            }
        }
        0
    }

    /// The failing gates of tiers `from` and worse, with their tier index.
    fn failing(&self, ind: &Indicators, from: usize) -> impl Iterator<Item = (usize, &Gate)> {
        self.by_tier
            .iter()
            .enumerate()
            .skip(from)
            .flat_map(|(t, gates)| gates.iter().map(move |g| (t, g)))
            .filter(|(_, g)| !g.holds(ind))
    }

    /// Every failing gate, best tier first.
    pub(crate) fn failed(&self, ind: &Indicators, tiers: &[TierSpec]) -> Vec<FailedGate> {
        self.failing(ind, 0)
            .map(|(t, g)| FailedGate {
                tier: tiers.get(t).map(|s| s.name.clone()).unwrap_or_default(),
                indicator: g.operand.name().to_owned(),
                op: g.op.as_str().to_owned(),
                threshold: g.value,
                value: g.operand.value(ind),
                unit: g.operand.unit(),
            })
            .collect()
    }

    /// The failing gates of tiers `from` and worse, as text grouped by
    /// tier (`A requires x >= 1 (now 0), y <= 60 (now 75); B requires
    /// ...`) and how many there are; `None` when they all hold.
    pub(crate) fn failed_text(
        &self,
        ind: &Indicators,
        tiers: &[TierSpec],
        from: usize,
    ) -> Option<(String, usize)> {
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        let mut count = 0;
        for (t, g) in self.failing(ind, from) {
            count += 1;
            match groups.last_mut() {
                Some((tier, texts)) if *tier == t => texts.push(g.text(ind)),
                _ => groups.push((t, vec![g.text(ind)])),
            }
        }
        if groups.is_empty() {
            return None;
        }
        let text = groups
            .into_iter()
            .map(|(t, texts)| {
                let name = tiers.get(t).map_or("", |s| s.name.as_str());
                format!("{name} requires {}", texts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        Some((text, count))
    }

    /// Targets that make every gate of tiers `from` and worse on an
    /// event-derived indicator hold, one per indicator with a failing gate:
    /// the candidate (each gate's threshold on the unit's grid, one step
    /// past it for a strict comparison) meeting every such gate on that
    /// indicator, nearest the current value. Empty when they all hold;
    /// `None` when no value meets every gate on some indicator
    /// (contradictory gates). Gates on assessments are judgements, not
    /// levers: they are named by [`Self::failed_text`], and
    /// [`Self::assume_judgements`] meets them for what-if trials.
    pub(crate) fn advise(&self, ind: &Indicators, from: usize) -> Option<Vec<Advice>> {
        let mut advice: Vec<Advice> = Vec::new();
        for (_, g) in self.failing(ind, from) {
            let Some(indicator) = g.operand.indicator() else {
                continue;
            };
            if advice.iter().any(|a| a.indicator == indicator) {
                continue;
            }
            let current = g.operand.value(ind);
            let best = self.meeting_all(&g.operand, current, from)?;
            advice.push(Advice::new(indicator, current, best));
        }
        Some(advice)
    }

    /// Set every assessment with a failing gate of tiers `from` and worse
    /// to the level nearest its current one that meets all such gates (a
    /// what-if: "were it judged so"); `false` when no level does.
    pub(crate) fn assume_judgements(&self, ind: &mut Indicators, from: usize) -> bool {
        let failing: Vec<Operand> = self
            .failing(ind, from)
            .filter(|(_, g)| g.operand.assessment_slot().is_some())
            .map(|(_, g)| g.operand.clone())
            .collect();
        for operand in failing {
            let current = operand.value(ind);
            match self.meeting_all(&operand, current, from) {
                Some(level) => operand.set(ind, Some(level)),
                None => return false,
            }
        }
        true
    }

    /// The candidate value meeting every gate of tiers `from` and worse on
    /// `operand`, nearest `current`.
    fn meeting_all(&self, operand: &Operand, current: Option<f64>, from: usize) -> Option<f64> {
        let on_operand: Vec<&Gate> = self
            .by_tier
            .iter()
            .skip(from)
            .flatten()
            .filter(|o| o.operand == *operand)
            .collect();
        let distance = |v: f64| current.map_or(0.0, |now| (v - now).abs());
        on_operand
            .iter()
            .map(|o| target(o.operand.unit(), o.op, o.value))
            .filter(|v| on_operand.iter().all(|o| o.holds_at(Some(*v))))
            .min_by(|a, b| distance(*a).total_cmp(&distance(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(name: &str) -> TierSpec {
        TierSpec {
            name: name.into(),
            priority: 1,
            complaint_sla_hours: 1,
            visit_every_days: 1,
            payment_terms_days: 0,
            min_score: None,
        }
    }

    /// A: on time >= 0.8 and at most 60 days overdue; B: at most 90 days
    /// overdue; C: none.
    fn gates() -> Gates {
        Gates::new(vec![
            vec![
                Gate::new(
                    IndicatorName::OnTimePaymentRatio,
                    Op::Ge,
                    0.8,
                    WhenUnknown::Pass,
                ),
                Gate::new(
                    IndicatorName::OldestOverdueDays,
                    Op::Le,
                    60.0,
                    WhenUnknown::Pass,
                ),
            ],
            vec![Gate::new(
                IndicatorName::OldestOverdueDays,
                Op::Le,
                90.0,
                WhenUnknown::Pass,
            )],
            vec![],
        ])
    }

    fn ind(on_time: Option<f64>, oldest: f64) -> Indicators {
        Indicators {
            on_time_payment_ratio: on_time,
            oldest_overdue_days: oldest,
            ..Indicators::default()
        }
    }

    #[test]
    fn the_ceiling_is_below_the_worst_failing_gate() {
        let g = gates();
        assert_eq!(g.ceiling(&ind(Some(0.9), 0.0)), 0);
        assert_eq!(g.ceiling(&ind(Some(0.8), 60.0)), 0);
        assert_eq!(g.ceiling(&ind(Some(0.79), 0.0)), 1);
        assert_eq!(g.ceiling(&ind(Some(0.9), 61.0)), 1);
        assert_eq!(g.ceiling(&ind(Some(0.9), 91.0)), 2);
        // B's gate binds A too, whatever A's own gates say.
        assert_eq!(g.ceiling(&ind(Some(0.1), 91.0)), 2);
        // Unknown is no evidence: the gate holds.
        assert_eq!(g.ceiling(&ind(None, 0.0)), 0);
        assert!(g.uses(IndicatorName::OldestOverdueDays));
        assert!(!g.uses(IndicatorName::AvgDaysLate));
        assert!(!g.is_empty());
        assert!(Gates::default().is_empty());
    }

    #[test]
    fn a_gate_may_demand_evidence() {
        let g = Gates::new(vec![
            vec![Gate::new(
                IndicatorName::OnTimePaymentRatio,
                Op::Ge,
                0.8,
                WhenUnknown::Fail,
            )],
            vec![],
        ]);
        assert_eq!(g.ceiling(&ind(None, 0.0)), 1);
        let advice = g.advise(&ind(None, 0.0), 0).unwrap();
        assert_eq!(
            advice,
            [Advice::new(IndicatorName::OnTimePaymentRatio, None, 0.8)]
        );
    }

    #[test]
    fn failed_gates_are_named_with_their_tier_and_value() {
        let g = gates();
        let tiers = [tier("A"), tier("B"), tier("C")];
        let late = ind(Some(0.25), 95.0);
        let failed = g.failed(&late, &tiers);
        let named: Vec<(&str, &str, &str, f64, Option<f64>)> = failed
            .iter()
            .map(|f| {
                (
                    f.tier.as_str(),
                    f.indicator.as_str(),
                    f.op.as_str(),
                    f.threshold,
                    f.value,
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("A", "on_time_payment_ratio", ">=", 0.8, Some(0.25)),
                ("A", "oldest_overdue_days", "<=", 60.0, Some(95.0)),
                ("B", "oldest_overdue_days", "<=", 90.0, Some(95.0)),
            ]
        );
        let (text, n) = g.failed_text(&late, &tiers, 0).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            text,
            "A requires on_time_payment_ratio >= 0.8 (now 0.25), oldest_overdue_days <= 60 (now 95); \
             B requires oldest_overdue_days <= 90 (now 95)"
        );
        let (text, n) = g.failed_text(&late, &tiers, 1).unwrap();
        assert_eq!(
            (text.as_str(), n),
            ("B requires oldest_overdue_days <= 90 (now 95)", 1)
        );
        assert_eq!(g.failed_text(&ind(Some(1.0), 0.0), &tiers, 0), None);
    }

    #[test]
    fn advice_meets_every_gate_on_an_indicator_at_once() {
        let g = gates();
        let late = ind(Some(0.25), 95.0);
        // To reach A: on time to 0.8, and 60 days (meets A's 60 and B's 90).
        let advice = g.advise(&late, 0).unwrap();
        assert_eq!(
            advice,
            [
                Advice::new(IndicatorName::OnTimePaymentRatio, Some(0.25), 0.8),
                Advice::new(IndicatorName::OldestOverdueDays, Some(95.0), 60.0),
            ]
        );
        // To reach B: only B's own gate (and worse tiers') counts.
        let advice = g.advise(&late, 1).unwrap();
        assert_eq!(
            advice,
            [Advice::new(
                IndicatorName::OldestOverdueDays,
                Some(95.0),
                90.0
            )]
        );
        assert_eq!(g.advise(&ind(Some(1.0), 0.0), 0), Some(Vec::new()));
        // Contradictory gates: no value meets them all.
        let never = Gates::new(vec![
            vec![
                Gate::new(IndicatorName::TenureDays, Op::Gt, 10.0, WhenUnknown::Pass),
                Gate::new(IndicatorName::TenureDays, Op::Lt, 5.0, WhenUnknown::Pass),
            ],
            vec![],
        ]);
        assert_eq!(never.advise(&Indicators::default(), 0), None);
    }
}

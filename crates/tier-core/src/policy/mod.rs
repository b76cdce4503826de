//! The scoring policy: a versioned TOML file that says how indicators become
//! a score, how a score (or a set of rules) becomes a tier, what each tier is
//! entitled to, and how sticky tiers are (hysteresis).
//!
//! Owns: parsing and validating the policy (`parse.rs`, errors with line and
//! field in `error.rs`), the scoring methods (`weighted.rs`, `rules.rs`, with
//! curves in `curve.rs`), the tier decision with hysteresis, explanations
//! (`explain.rs`) and the reasons of a change. Must not do IO: callers read
//! the file and pass its text to [`Policy::from_toml_str`]; the clock is
//! always an argument.
//!
//! ## Methods
//! A scoring method implements the crate-private `ScoringMethod` trait. The
//! `[method]` table of the file is a config enum tagged by `kind`
//! (`weighted_score` or `rules`); a factory in `parse.rs` validates it and
//! builds the runtime `Method` enum, which dispatches statically (a `match`,
//! no vtable) on the hot path. Everything is precomputed at load: indicator
//! getters, the weight of each term, curve slopes.
//!
//! - **`weighted_score`** (DOMAIN.md method 1): every dimension has a weight
//!   (percent, summing to 100) and parts (indicator, share within the
//!   dimension summing to 100, a piecewise-linear curve to points 0..=100).
//!   Score = sum of `points * weight * share / 10_000`, minus an optional
//!   complaint penalty, clamped to 0..=100. Tiers are bands of the score:
//!   `[min_score, next better min_score)`, the top band includes 100.
//! - **`rules`** (DOMAIN.md method 3): every tier but the last has a rule
//!   (all conditions must hold); tiers are tried best first and the first
//!   match wins; the last tier is the fallback. Rules give a tier, not a
//!   score; the score reported is how far up the ladder a customer stands:
//!   with `n` tiers, a customer in tier `i` (0 = best) meeting `m` of the `k`
//!   conditions of the next better tier's rule scores
//!   `100 * ((n - 1 - i) + m / k) / (n - 1)` (top tier 100, each tier its own
//!   band, progress towards the next tier visible). Details in `rules.rs`.
//!
//! An indicator that is unknown (`share_of_wallet` without a purchase
//! potential) earns the part's `missing_points` (default 0) in a weighted
//! policy and fails any rule condition on it.
//!
//! ## Hysteresis
//! Upgrades apply at once. A downgrade needs at least `min_days_in_tier` days
//! in the current tier and, for the weighted method, a score below the
//! current band's `min_score - downgrade_margin`. See [`Policy::decide`].

mod curve;
mod error;
mod explain;
mod parse;
mod rules;
mod weighted;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use error::PolicyError;
pub use explain::{ExplainedIndicator, Explanation};

use crate::event::CurrencyRules;
use crate::indicators::{IndicatorName, Indicators};
use crate::projection::FoldRules;
use crate::time::{BusinessCalendar, Timestamp};
use rules::RuleTiers;
use weighted::WeightedScore;

/// The built-in default policy (DOMAIN.md example A), also shipped as
/// `deploy/policy/default.toml`.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../../deploy/policy/default.toml");

/// One tier and what it is entitled to. Tiers are listed best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierSpec {
    pub name: String,
    /// Scheduling priority: 1 is served first.
    pub priority: u32,
    /// Deadline to resolve a complaint of this tier, in hours.
    pub complaint_sla_hours: u32,
    /// Account visit cadence, in days.
    pub visit_every_days: u32,
    /// Payment terms granted, in days.
    pub payment_terms_days: u32,
    /// Lower bound of the tier's score band (weighted method only).
    pub min_score: Option<f64>,
}

/// The tier a customer holds. Persisted per customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierAssignment {
    pub tier: String,
    pub score: f64,
    /// When the customer entered this tier.
    pub since: Timestamp,
}

/// The result of scoring one set of indicators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// 0..=100.
    pub score: f64,
    /// Index into [`Policy::tiers`], 0 = best.
    pub tier: usize,
}

/// One cause of a score change: an indicator (or `complaint_penalty`) and
/// how much its share of the score moved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Indicator name, or `complaint_penalty` (its contribution is negative).
    pub name: String,
    /// Score points it contributes now.
    pub contribution: f64,
    /// Change of that contribution from the old indicators to the new.
    pub delta: f64,
}

/// How sticky tiers are.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Hysteresis {
    /// Points below the held band's `min_score` the score must fall before
    /// a downgrade (weighted method only; 0 for rules).
    pub downgrade_margin: f64,
    /// No downgrade before this many days in the held tier.
    pub min_days_in_tier: u32,
}

/// A loaded, validated policy. Immutable; cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Policy {
    version: String,
    /// The window and the business calendar the fold and the indicators use.
    fold: FoldRules,
    currency: CurrencyRules,
    hysteresis: Hysteresis,
    tiers: Vec<TierSpec>,
    method: Method,
}

/// Reads one indicator; precomputed per scored term.
pub(crate) type Getter = fn(&Indicators) -> Option<f64>;

/// The getter of an indicator.
pub(crate) fn getter(name: IndicatorName) -> Getter {
    match name {
        IndicatorName::OrderAmount12m => |i| Some(i.order_amount_12m),
        IndicatorName::OrderCount12m => |i| Some(i.order_count_12m),
        IndicatorName::AvgOrderValue12m => |i| Some(i.avg_order_value_12m),
        IndicatorName::OrdersPerMonth12m => |i| Some(i.orders_per_month_12m),
        IndicatorName::Margin12m => |i| i.margin_12m,
        IndicatorName::MarginRate12m => |i| i.margin_rate_12m,
        IndicatorName::OnTimePaymentRatio => |i| i.on_time_payment_ratio,
        IndicatorName::AvgDaysLate => |i| i.avg_days_late,
        IndicatorName::MaxDaysLate => |i| i.max_days_late,
        IndicatorName::OverdueAmount => |i| Some(i.overdue_amount),
        IndicatorName::OpenComplaints => |i| Some(i.open_complaints),
        IndicatorName::Complaints12m => |i| Some(i.complaints_12m),
        IndicatorName::ComplaintsWeighted12m => |i| Some(i.complaints_weighted_12m),
        IndicatorName::DaysSinceLastOrder => |i| i.days_since_last_order,
        IndicatorName::TenureDays => |i| Some(i.tenure_days),
        IndicatorName::ShareOfWallet => |i| i.share_of_wallet,
        IndicatorName::Growth3m => |i| i.growth_3m,
        IndicatorName::GrowthStreakMonths => |i| Some(i.growth_streak_months),
    }
}

/// What every scoring method provides.
pub(crate) trait ScoringMethod {
    /// Score and evaluated tier. Hot path: must not allocate.
    fn evaluate(&self, ind: &Indicators) -> Evaluation;

    /// The score at or above which `held` is kept although the evaluation
    /// points to a worse tier; `None` when the method has no score margin.
    fn hold_floor(&self, held: usize, margin: f64) -> Option<f64>;

    /// Explain the evaluation of `ind` and the way from `tier` (a valid
    /// index) to the next better tier.
    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation;

    /// Score points per scored term (penalty negative), for [`Policy::reasons`].
    fn contributions(&self, ind: &Indicators, out: &mut Vec<(&'static str, f64)>);
}

/// The configured method, dispatched with a `match`.
#[derive(Clone, Debug)]
pub(crate) enum Method {
    WeightedScore(WeightedScore),
    Rules(RuleTiers),
}

impl Method {
    /// The `kind` of the `[method]` table.
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Method::WeightedScore(_) => "weighted_score",
            Method::Rules(_) => "rules",
        }
    }
}

impl ScoringMethod for Method {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        match self {
            Method::WeightedScore(m) => m.evaluate(ind),
            Method::Rules(m) => m.evaluate(ind),
        }
    }

    fn hold_floor(&self, held: usize, margin: f64) -> Option<f64> {
        match self {
            Method::WeightedScore(m) => m.hold_floor(held, margin),
            Method::Rules(m) => m.hold_floor(held, margin),
        }
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        match self {
            Method::WeightedScore(m) => m.explain(ind, tier, tiers),
            Method::Rules(m) => m.explain(ind, tier, tiers),
        }
    }

    fn contributions(&self, ind: &Indicators, out: &mut Vec<(&'static str, f64)>) {
        match self {
            Method::WeightedScore(m) => m.contributions(ind, out),
            Method::Rules(m) => m.contributions(ind, out),
        }
    }
}

impl Policy {
    /// Parse and validate a policy file's text. Errors name the line and
    /// the field.
    pub fn from_toml_str(src: &str) -> Result<Policy, PolicyError> {
        parse::parse(src)
    }

    /// The built-in default policy ([`DEFAULT_POLICY_TOML`]), parsed once.
    pub fn default_policy() -> Policy {
        static DEFAULT: OnceLock<Policy> = OnceLock::new();
        DEFAULT
            .get_or_init(|| match Policy::from_toml_str(DEFAULT_POLICY_TOML) {
                Ok(policy) => policy,
                // Unreachable: a unit test parses the same text.
                Err(e) => panic!("the built-in default policy is invalid: {e}"),
            })
            .clone()
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Length of the rolling window the indicators are computed over, as
    /// the policy states it (see [`Window`] for its length in days).
    pub fn window_months(&self) -> u32 {
        self.fold.window.len_months()
    }

    /// The window and business calendar of the fold and the indicators.
    pub fn fold_rules(&self) -> &FoldRules {
        &self.fold
    }

    /// The business calendar (the policy's `time_zone`, UTC by default).
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.fold.calendar
    }

    /// Base currency and exchange rates, for converting wire money.
    pub fn currency_rules(&self) -> &CurrencyRules {
        &self.currency
    }

    pub fn hysteresis(&self) -> Hysteresis {
        self.hysteresis
    }

    /// `weighted_score` or `rules`.
    pub fn method_kind(&self) -> &'static str {
        self.method.kind()
    }

    /// Tiers, best first. Never empty.
    pub fn tiers(&self) -> &[TierSpec] {
        &self.tiers
    }

    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// The last, worst tier (the fallback of a rules policy).
    pub fn lowest_tier(&self) -> &TierSpec {
        // Validation guarantees at least one tier.
        &self.tiers[self.tiers.len() - 1]
    }

    /// Score the indicators and find the tier they earn, before hysteresis.
    /// Hot path: called for every event; does not allocate.
    #[inline]
    pub fn evaluate(&self, ind: &Indicators) -> Evaluation {
        self.method.evaluate(ind)
    }

    /// The tier index to hold, given the current assignment.
    ///
    /// Upgrades (and a first assignment) apply at once. A downgrade needs at
    /// least `min_days_in_tier` days since `current.since` and, for the
    /// weighted method, a score below the held band's `min_score` minus
    /// `downgrade_margin`; otherwise the held tier is kept. When the held
    /// tier no longer exists in this policy, the evaluated tier is taken.
    pub fn decide(
        &self,
        current: Option<&TierAssignment>,
        eval: Evaluation,
        now: Timestamp,
    ) -> usize {
        let evaluated = eval.tier.min(self.tiers.len().saturating_sub(1));
        let Some(current) = current else {
            return evaluated;
        };
        let Some(held) = self.tier_index(&current.tier) else {
            return evaluated;
        };
        if evaluated <= held {
            return evaluated;
        }
        if now.days_since(current.since) < f64::from(self.hysteresis.min_days_in_tier) {
            return held;
        }
        match self
            .method
            .hold_floor(held, self.hysteresis.downgrade_margin)
        {
            Some(floor) if eval.score >= floor => held,
            _ => evaluated,
        }
    }

    /// Explain the score of `ind` and what tier `tier` (normally the held
    /// one; clamped to the lowest tier when out of range) would need to move
    /// up.
    pub fn explain(&self, ind: &Indicators, tier: usize) -> Explanation {
        let tier = tier.min(self.tiers.len().saturating_sub(1));
        self.method.explain(ind, tier, &self.tiers)
    }

    /// The largest contribution changes between two indicator sets, by
    /// `|delta|` descending (ties by name), at most `k`, zero deltas dropped.
    /// Terms on the same indicator are merged.
    pub fn reasons(&self, old: &Indicators, new: &Indicators, k: usize) -> Vec<Reason> {
        let mut terms = Vec::new();
        self.method.contributions(old, &mut terms);
        let mut by_name: BTreeMap<&'static str, (f64, f64)> = BTreeMap::new();
        for (name, c) in terms.drain(..) {
            by_name.entry(name).or_default().0 += c;
        }
        self.method.contributions(new, &mut terms);
        for (name, c) in terms {
            by_name.entry(name).or_default().1 += c;
        }
        let mut reasons: Vec<Reason> = by_name
            .into_iter()
            .map(|(name, (old, new))| Reason {
                name: name.to_owned(),
                contribution: new,
                delta: new - old,
            })
            .filter(|r| r.delta.abs() > 1e-9)
            .collect();
        reasons.sort_by(|a, b| {
            b.delta
                .abs()
                .total_cmp(&a.delta.abs())
                .then_with(|| a.name.cmp(&b.name))
        });
        reasons.truncate(k);
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::date;

    fn with_score(p: &Policy, score: f64) -> usize {
        match &p.method {
            Method::WeightedScore(m) => m.band_of(score),
            Method::Rules(_) => unreachable!("weighted policy expected"),
        }
    }

    #[test]
    fn a_policy_can_be_shared_between_threads() {
        fn shareable<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
        shareable::<Policy>();
        shareable::<PolicyError>();
    }

    #[test]
    fn the_default_policy_parses() {
        let p = Policy::from_toml_str(DEFAULT_POLICY_TOML).unwrap();
        assert_eq!(p.method_kind(), "weighted_score");
        assert_eq!(p.window_months(), 12);
        assert_eq!(p.currency_rules().base(), "CNY");
        let names: Vec<&str> = p.tiers().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C", "D"]);
        assert_eq!(Policy::default_policy().version(), p.version());
        assert_eq!(p.lowest_tier().name, "D");
        assert_eq!(p.tier_index("B"), Some(1));
        assert_eq!(p.tier_index("Z"), None);
    }

    #[test]
    fn domain_example_a_bands() {
        // Given the default policy, when a score sits on a band edge, then
        // the band's lower bound belongs to the band.
        let p = Policy::default_policy();
        assert_eq!(with_score(&p, 100.0), 0);
        assert_eq!(with_score(&p, 80.0), 0);
        assert_eq!(with_score(&p, 79.99), 1);
        assert_eq!(with_score(&p, 60.0), 1);
        assert_eq!(with_score(&p, 59.99), 2);
        assert_eq!(with_score(&p, 40.0), 2);
        assert_eq!(with_score(&p, 39.99), 3);
        assert_eq!(with_score(&p, 0.0), 3);
    }

    #[test]
    fn decide_takes_the_evaluated_tier_when_the_held_one_is_gone() {
        let p = Policy::default_policy();
        let gone = TierAssignment {
            tier: "Platinum".into(),
            score: 99.0,
            since: date(2026, 1, 1),
        };
        let eval = Evaluation {
            score: 50.0,
            tier: 2,
        };
        assert_eq!(p.decide(Some(&gone), eval, date(2026, 1, 2)), 2);
        assert_eq!(p.decide(None, eval, date(2026, 1, 2)), 2);
    }
}

//! The scoring policy: a versioned TOML file that says how indicators become
//! a score, how a score (or a set of rules) becomes a tier, what each tier is
//! entitled to, and how sticky tiers are (hysteresis).
//!
//! Owns: parsing and validating the policy (`parse.rs`, errors with line and
//! field in `error.rs`), the scoring methods (`weighted.rs`, `rules.rs`, with
//! curves in `curve.rs`), the tier decision with hysteresis, explanations
//! (`explain.rs`) and the reasons of a change; `abc.rs` the proportional
//! ranking method, whose cut points the engine sets from the population it
//! ranks ([`Policy::with_rank_cuts`]). Must not do IO: callers read
//! the file and pass its text to [`Policy::from_toml_str`]; the clock is
//! always an argument.
//!
//! ## Methods
//! A scoring method implements the crate-private `ScoringMethod` trait. The
//! `[method]` table of the file is a config enum tagged by `kind`
//! (`weighted_score`, `rules` or `abc`); a factory in `parse.rs` validates it and
//! builds the runtime `Method` enum, which dispatches statically (a `match`,
//! no vtable) on the hot path. Everything is precomputed at load: indicator
//! getters, the weight of each term, curve slopes.
//!
//! - **`weighted_score`** (DOMAIN.md method 1): every dimension has a weight
//!   (percent, summing to 100) and parts (indicator, share within the
//!   dimension summing to 100, a piecewise-linear curve to points 0..=100).
//!   Score = sum of `points * weight * share / 10_000`, minus an optional
//!   complaint penalty, rounded to hundredths and clamped to 0..=100. Tiers
//!   are bands of the score: `[min_score, next better min_score)`, the top
//!   band includes 100.
//! - **`rules`** (DOMAIN.md method 3): every tier but the last has a rule
//!   (all conditions must hold); tiers are tried best first and the first
//!   match wins; the last tier is the fallback. Rules give a tier, not a
//!   score; the score reported is how far up the ladder a customer stands:
//!   with `n` tiers, a customer in tier `i` (0 = best) meeting `m` of the `k`
//!   conditions of the next better tier's rule scores
//!   `100 * ((n - 1 - i) + m / k) / (n - 1)`, rounded to hundredths (top
//!   tier 100, each tier its own band, progress towards the next tier
//!   visible). Details in `rules.rs`.
//! - **`abc`** (DOMAIN.md method 2): the tier is the customer's share band
//!   of the population ranked by one figure (top 20% A, ...), against cut
//!   points the engine recomputes as the population moves; equal figures
//!   hold equal tiers, and only customers with an order in the window are
//!   ranked (the rest hold the lowest tier). The figure is an indicator, an assessment, or
//!   (`by = "score"`) a weighted score the method declares with the
//!   `weighted_score` method's `[[method.dimensions]]`, which is then the
//!   score reported. Details in `abc.rs`.
//!
//! ## Exact edges: scores in hundredths
//! A score is shown with two decimals, so it is decided with two decimals:
//! both methods compute the score in whole hundredths of a point
//! ("centi-points", `(x * 100).round()`, clamped to `0..=10_000`), and
//! [`Evaluation::score`] is always exactly `centi / 100`. Band minimums
//! (`min_score`) and the hysteresis `downgrade_margin` are converted to
//! hundredths once, at load; a value with more than two decimals is
//! rejected with its line and field. Banding and the hysteresis floor
//! compare integers, so a score shown as 80.00 is in the `>= 80` band,
//! whatever floating-point noise the sum of the terms carried.
//!
//! ## Unknown indicators
//! Several indicators can be unknown ([`Indicators`] holds `None`): a
//! margin without any known cost, the credit figures before any invoice
//! fell due, recency without an order, growth without a prior quarter,
//! share of wallet without a purchase potential. A weighted part then earns
//! its `missing_points` (0..=100, default 0; the default policy gives the
//! credit parts a neutral 50, so no free perfect score before any invoice
//! fell due); a rule condition on an unknown indicator does not hold, and
//! its text says `now unknown`. Explanations carry unknown values as `None`
//! ([`ExplainedIndicator::value`], [`Advice::current`]).
//!
//! ## Assessment indicators
//! `[[assessments]]` declares qualitative indicators that account
//! managers judge (name, scale of whole levels with optional labels,
//! `valid_days`, `missing_points`); `CustomerAssessed` events set them per
//! customer. A weighted part names one like any indicator; it earns the
//! assessment's `missing_points` while the customer has none in force
//! (never assessed, or expired after `valid_days` business days). Their
//! values travel in [`Indicators::assessed`] (fixed slots, policy order),
//! so scoring stays allocation-free; they are never advised (an
//! assessment is a judgement to make, not a figure to move), and an
//! explanation lists each beside the event-derived indicators
//! ([`ExplainedAssessment`]). A tier gate, a rule condition and a matrix
//! axis may name one too ([`Operand`]): unknown while none is in force,
//! like any unknown figure; explanations name an unmet judgement in the
//! gap and the failed gates (unit `level`), never in the advice, and the
//! advice given reaches the next tier once the judgement is made. Details
//! in `assessment.rs` and `operand.rs`.
//!
//! ## RFM scores
//! `rfm_recency`, `rfm_frequency` and `rfm_monetary` are the customer's
//! quintile (1-5, 5 = the best fifth) of the population by the date of its
//! last order that still counts, by `order_count_12m` and by
//! `order_amount_12m`; `rfm_score` is their sum (3-15: a sum, not the
//! three digits, so that `rfm_score >= 12` means what it reads). They are
//! indicators like any other ([`IndicatorName`], unit `level`): a weighted
//! part, a rule condition, a gate, a matrix axis or an `abc` method's `by`
//! may read them. Their cut points are the population's, held in the policy
//! ([`Policy::rfm_cuts`]) like the `abc` method's and set the same way:
//! the engine ranks the population by the three figures
//! ([`crate::rank::RfmRanking`]) when the policy reads an RFM score, and
//! cuts at start, on a policy change and at most every `recut_seconds`
//! (the `abc` method's, else 10) while the population moves
//! ([`Policy::with_rfm_cuts`]). A customer's scores are its own figures
//! mapped through the cut points in force, so between two recuts answers
//! agree and its own order moves its scores at once; a recut rescores the
//! customers whose read scores it moves (cause `RANK`). Equal figures get
//! equal scores (ties go to the better fifth; the secondary `rfm` grading,
//! which only reports, splits ties by id instead). Recency is ranked by
//! the last order's instant, so time passing moves no recency score.
//! Unknown without an order that still counts, and before the first cut.
//! Advice may name one (e.g. `rfm_frequency` to 3): it is reached by
//! buying more than the customers now in that fifth, as the population
//! ranks today.
//!
//! ## Complaint penalty
//! `[method.complaint_penalty]` subtracts points per complaint opened in
//! the window, by severity, capped at `max`. Complaints since resolved
//! weigh `resolved_factor` (0.0..=1.0, default 1.0) times their severity's
//! points; open ones (opened minus resolved, per severity) weigh in full.
//!
//! ## Advice
//! An [`Explanation`] says what would reach the next tier, as text (`gap`)
//! and as [`Advice`]: indicators with target values, in indicator terms,
//! everything else held fixed. Following all of it (setting each advised
//! indicator to its target) evaluates to the next tier or better.
//! - weighted: the heaviest indicator that closes the gap alone; else a
//!   combination, greedy by the points each indicator can still gain, each
//!   pushed to its best value but the last, pushed only as far as needed;
//!   empty when even all of them cannot. Targets sit on the unit's grid
//!   (whole minor units of money, whole orders, days, complaints and
//!   months, 0.01 orders a month, 0.0001 of a ratio), rounded in the
//!   helpful direction, and every suggestion is checked by evaluating it
//!   (moving it a grid step further when floating point falls short).
//! - rules: the unmet conditions of the next better tier's rule, the
//!   target being the threshold, moved to the nearest grid value that
//!   satisfies a strict comparison (`> 5_000_000` fen: 5_000_001; `> 0.9`
//!   ratio: 0.9001) or, for several conditions on one indicator, the value
//!   meeting them all.
//!
//! ## Tier gates
//! A tier may list gates: conditions beyond the score (or the rules), like
//! `gates = [{ indicator = "on_time_payment_ratio", op = ">=", value = 0.8 }]`
//! (optional `unknown = "pass"` (default) or `"fail"`), for both methods.
//! A customer gets the best tier its score band (or matched rule) reaches
//! whose gates hold, together with the gates of every worse tier: a gate
//! binds its own tier and every better one, so a failing gate of tier `g`
//! caps the customer at `g + 1` ([`Evaluation::ceiling`]). A gate on an
//! unknown indicator holds unless it says `unknown = "fail"` (no evidence,
//! no veto: a customer with no invoice due yet does not fail an on-time
//! gate). The lowest tier cannot have gates (rejected at load: every
//! customer may hold it, so there is nothing to veto). Gates veto the
//! tier, not the score: [`Evaluation::score`] is what the figures earn.
//! Explanations list every failing gate ([`FailedGate`]); the advice to
//! the next tier includes the gates that block it. Details in `gate.rs`.
//!
//! ## Hysteresis
//! Upgrades apply at once. A downgrade needs at least `min_days_in_tier` days
//! in the current tier (days of the policy's time zone, see
//! [`Policy::hold_ends`]) and, for the weighted method, a score below the
//! current band's `min_score - downgrade_margin` (compared in hundredths).
//! A tier a gate vetoes is left at once: hysteresis slows score drops, it
//! does not override a veto. See [`Policy::decide`].

mod abc;
mod assessment;
mod curve;
mod error;
mod explain;
mod gate;
mod grading;
mod new_customers;
mod operand;
mod parse;
mod rules;
mod weighted;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use abc::abc_rank_value;
pub use assessment::{
    AssessmentRules, AssessmentSpec, MAX_ASSESSMENTS, MAX_NOTE_LEN, MAX_VALID_DAYS, SCALE_LIMIT,
};
pub use error::PolicyError;
pub use explain::{Advice, ExplainedAssessment, ExplainedIndicator, Explanation, FailedGate};
pub use grading::{
    DEFAULT_RECUT_SECONDS, Grading, GradingClass, GradingKind, MATRIX_CLASSES, RankBy,
};
pub use new_customers::NewCustomers;
pub use operand::Operand;
pub(crate) use parse::MAX_WINDOW_MONTHS;

use crate::event::CurrencyRules;
use crate::indicators::{IndicatorName, Indicators};
use crate::projection::FoldRules;
use crate::time::{BusinessCalendar, Timestamp};
use gate::Gates;
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
    /// Lower bound of the tier's score band (weighted method only); at
    /// most two decimals, as scores are banded in hundredths.
    pub min_score: Option<f64>,
}

/// A tier's name as a customer's state holds it (in its assignment and
/// history): inline up to 24 bytes, so holding, copying and dropping one
/// allocates nothing. Serialized as a `str`.
pub type TierName = compact_str::CompactString;

/// The tier a customer holds. Persisted per customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TierAssignment {
    pub tier: TierName,
    pub score: f64,
    /// When the customer entered this tier.
    pub since: Timestamp,
}

/// The result of scoring one set of indicators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// 0..=100, always a whole number of hundredths (`centi / 100`): the
    /// value shown is the value banded.
    pub score: f64,
    /// Index into [`Policy::tiers`], 0 = best: the worse of the tier the
    /// score (or the rules) reaches and [`Self::ceiling`].
    pub tier: usize,
    /// The best tier the tier gates admit: one below the worst tier with
    /// a failing gate; 0 when every gate holds (or there are none).
    pub ceiling: usize,
}

impl Evaluation {
    /// The score in whole hundredths of a point, `0..=10_000`.
    pub fn score_centi(&self) -> i64 {
        to_centi(self.score)
    }
}

/// Hundredths of a point in a whole score (100.00).
pub(crate) const FULL_CENTI: i64 = 10_000;

/// Room for a method's contribution terms in [`Policy::reasons`]: the
/// shipped policies name at most 14 (`example-b.toml`); a longer list
/// grows.
const REASON_TERMS: usize = 16;

/// A score in whole hundredths of a point: rounded to the nearest
/// hundredth (half away from zero), clamped to `0..=10_000`; NaN is 0.
#[inline]
pub(crate) fn to_centi(score: f64) -> i64 {
    let c = (score * 100.0).round();
    if c >= 0.0 {
        // In 0..=10_000 after the `min`: the cast is exact.
        c.min(FULL_CENTI as f64) as i64
    } else {
        0
    }
}

/// The score shown for a number of hundredths.
#[inline]
pub(crate) fn from_centi(centi: i64) -> f64 {
    centi as f64 / 100.0
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
    /// A policy change never lowers a tier: customers the new policy
    /// would move down keep their tier until events or time move them
    /// (`[hysteresis] forbid_policy_downgrades = true`; default false).
    pub forbid_policy_downgrades: bool,
}

/// Lifecycle stages beside the tier, and how far ahead time-driven drops
/// are foreseen (the policy's optional `[lifecycle]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRules {
    /// A customer is `new` (or `reactivated`) this long after its first
    /// order (or the order that ended a lapse). Default 90.
    pub new_for_days: u32,
    /// No order for this long: `lapsed`. Default 180.
    pub lapsed_after_days: u32,
    /// A time-driven downgrade foreseeable within this many days is
    /// announced as "at risk". Default 30.
    pub at_risk_horizon_days: u32,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        Self {
            new_for_days: 90,
            lapsed_after_days: 180,
            at_risk_horizon_days: 30,
        }
    }
}

/// A loaded, validated policy. Immutable; cheap to share behind an `Arc`.
#[derive(Clone, Debug)]
pub struct Policy {
    version: String,
    /// The window and the business calendar the fold and the indicators use.
    fold: FoldRules,
    currency: CurrencyRules,
    hysteresis: Hysteresis,
    lifecycle: LifecycleRules,
    tiers: Vec<TierSpec>,
    method: Method,
    /// The tiers' gates (empty when no tier has any).
    gates: Gates,
    /// Secondary gradings reported beside the tier.
    gradings: Vec<Grading>,
    /// The new-customer rule set, if any.
    new_customers: Option<NewCustomers>,
    /// `scored[n.index()]`: whether the method or a gate reads indicator `n`.
    scored: [bool; IndicatorName::ALL.len()],
    /// `scored_assessments[slot]`: whether the method reads that assessment.
    scored_assessments: [bool; MAX_ASSESSMENTS],
    /// `graded_assessments[slot]`: whether a grading reads that assessment
    /// (and no scoring does).
    graded_assessments: [bool; MAX_ASSESSMENTS],
    /// See [`Policy::day_figures_only_lower`].
    day_figures_only_lower: bool,
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
        IndicatorName::OldestOverdueDays => |i| Some(i.oldest_overdue_days),
        IndicatorName::PurchasePotential => |i| i.purchase_potential,
        IndicatorName::RfmRecency => |i| i.rfm_recency,
        IndicatorName::RfmFrequency => |i| i.rfm_frequency,
        IndicatorName::RfmMonetary => |i| i.rfm_monetary,
        IndicatorName::RfmScore => |i| i.rfm_score,
    }
}

/// What every scoring method provides.
pub(crate) trait ScoringMethod {
    /// Score and evaluated tier. Hot path: must not allocate.
    fn evaluate(&self, ind: &Indicators) -> Evaluation;

    /// The score, in hundredths, at or above which `held` is kept although
    /// the evaluation points to a worse tier (`margin_centi` below the held
    /// band); `None` when the method has no score margin (the default:
    /// only the weighted score has one).
    fn hold_floor(&self, held: usize, margin_centi: i64) -> Option<i64> {
        let _ = (held, margin_centi);
        None
    }

    /// Explain the evaluation of `ind` and the way from `tier` (a valid
    /// index) to the next better tier.
    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation;

    /// Score points per scored term (penalty negative), for [`Policy::reasons`].
    fn contributions<'a>(&'a self, ind: &Indicators, out: &mut Vec<(&'a str, f64)>);

    /// Whether the method reads `name` (a term, a condition, the penalty).
    fn uses(&self, name: IndicatorName) -> bool;
}

/// The configured method, dispatched with a `match`.
#[derive(Clone, Debug)]
pub(crate) enum Method {
    WeightedScore(WeightedScore),
    Rules(RuleTiers),
    Abc(abc::AbcMethod),
}

impl Method {
    /// The `kind` of the `[method]` table.
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Method::WeightedScore(_) => "weighted_score",
            Method::Rules(_) => "rules",
            Method::Abc(_) => "abc",
        }
    }
}

impl ScoringMethod for Method {
    #[inline]
    fn evaluate(&self, ind: &Indicators) -> Evaluation {
        match self {
            Method::WeightedScore(m) => m.evaluate(ind),
            Method::Rules(m) => m.evaluate(ind),
            Method::Abc(m) => m.evaluate(ind),
        }
    }

    fn hold_floor(&self, held: usize, margin_centi: i64) -> Option<i64> {
        match self {
            Method::WeightedScore(m) => m.hold_floor(held, margin_centi),
            Method::Rules(m) => m.hold_floor(held, margin_centi),
            Method::Abc(m) => m.hold_floor(held, margin_centi),
        }
    }

    fn explain(&self, ind: &Indicators, tier: usize, tiers: &[TierSpec]) -> Explanation {
        match self {
            Method::WeightedScore(m) => m.explain(ind, tier, tiers),
            Method::Rules(m) => m.explain(ind, tier, tiers),
            Method::Abc(m) => m.explain(ind, tier, tiers),
        }
    }

    fn contributions<'a>(&'a self, ind: &Indicators, out: &mut Vec<(&'a str, f64)>) {
        match self {
            Method::WeightedScore(m) => m.contributions(ind, out),
            Method::Rules(m) => m.contributions(ind, out),
            Method::Abc(m) => m.contributions(ind, out),
        }
    }

    fn uses(&self, name: IndicatorName) -> bool {
        match self {
            Method::WeightedScore(m) => m.uses(name),
            Method::Rules(m) => m.uses(name),
            Method::Abc(m) => m.uses(name),
        }
    }
}

/// What [`Policy::evaluate_step`] keeps between two evaluations: the
/// products of a weighted score's parts (a policy with more parts is
/// evaluated in full), and the gates' ceiling when no gate reads a moved
/// indicator.
#[derive(Debug, Clone, Copy)]
pub struct StepProducts {
    products: [f64; 32],
    ceiling: Option<usize>,
}

impl Default for StepProducts {
    fn default() -> Self {
        Self {
            products: [0.0; 32],
            ceiling: None,
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
    /// the policy states it (see [`crate::time::Window`] for its length in days).
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

    /// Whether a per-customer grading reads an indicator the scoring does
    /// not (see [`Self::uses`]): the figures a decision computes on the
    /// event path are only the scored ones, so such a grading needs the
    /// whole figures.
    pub fn gradings_read_unscored(&self) -> bool {
        self.gradings.iter().any(|g| {
            !g.is_population()
                && IndicatorName::ALL
                    .iter()
                    .any(|&n| g.uses(n) && !self.uses(n))
        })
    }

    /// Whether the scoring or a tier gate reads indicator `name`: what can
    /// move a score or a tier as time passes depends on it.
    #[inline]
    pub fn uses(&self, name: IndicatorName) -> bool {
        self.scored[name.index()]
    }

    /// Whether the figures that move with the days alone (over a run of
    /// days in which no activity leaves the window and no invoice falls
    /// due: see [`crate::projection::moves_with_days`]) can only lower the
    /// score and the tier: the method is a weighted score whose parts on
    /// them lose points as they move (a figure that falls scored
    /// `higher_is_better`, one that grows scored lower-is-better), and
    /// every gate on them can only stop holding as they move. Curves are
    /// monotone and every step of the score is a monotone floating point
    /// operation, so over such a run the evaluated tier never improves,
    /// and once a day's decision leaves the held tier, every later day's
    /// does too: what lets `CustomerState::advance_to` decide a quiet run
    /// of days at its last day (a new-customer rule reads an assessment,
    /// and runs have none in force).
    #[inline]
    pub fn day_figures_only_lower(&self) -> bool {
        self.day_figures_only_lower
    }

    /// The assessment indicators the policy declares (`[[assessments]]`).
    pub fn assessments(&self) -> &AssessmentRules {
        &self.fold.assessments
    }

    /// Whether the scoring reads the assessment in `slot` (its position
    /// in [`Self::assessments`]): its expiry can then move the tier.
    #[inline]
    pub fn uses_assessment(&self, slot: usize) -> bool {
        self.scored_assessments.get(slot).copied().unwrap_or(false)
    }

    /// Whether the expiry of the assessment in `slot` changes an answer:
    /// the scoring reads it, or a grading (a matrix axis) does. Unlike the
    /// figures only gradings read, which change every day, an assessment
    /// changes at one instant: its expiry is due, so GetTier's class
    /// stops reading a judgement no longer in force when it expires.
    #[inline]
    pub fn expiry_matters(&self, slot: usize) -> bool {
        self.uses_assessment(slot) || self.graded_assessments.get(slot).copied().unwrap_or(false)
    }

    /// For the `abc` method: the figure the population is ranked by (an
    /// indicator or an assessment; `None` for `by = "score"`, the method's
    /// weighted score) and its direction; `None` for other methods.
    pub fn rank_by(&self) -> Option<(Option<&Operand>, crate::rank::Direction)> {
        match &self.method {
            Method::Abc(m) => Some((m.by(), m.direction())),
            _ => None,
        }
    }

    /// For the `abc` method: the value `ind` is ranked by (`None`: not
    /// ranked, the figure unknown or no order in the window, see
    /// [`abc_rank_value`]). `None` for other methods.
    pub fn rank_value(&self, ind: &Indicators) -> Option<f64> {
        match &self.method {
            Method::Abc(m) => m.value(ind).filter(|v| v.is_finite()),
            _ => None,
        }
    }

    /// For the `abc` method: seconds between two cuts while the
    /// population changes.
    pub fn rank_recut_seconds(&self) -> Option<u32> {
        match &self.method {
            Method::Abc(m) => Some(m.recut_seconds()),
            _ => None,
        }
    }

    /// For the `abc` method: the cut points in force (one per tier but the
    /// lowest; empty before the first cut). Empty for other methods.
    pub fn rank_cuts(&self) -> &[f64] {
        match &self.method {
            Method::Abc(m) => m.cuts(),
            _ => &[],
        }
    }

    /// For the `abc` method: the cut points of `ranking` (the population
    /// ranked by [`Self::rank_by`]); `None` for other methods.
    pub fn rank_cuts_of<K: Ord + std::hash::Hash + Clone>(
        &self,
        ranking: &crate::rank::Ranking<K>,
    ) -> Option<Vec<f64>> {
        match &self.method {
            Method::Abc(m) => Some(m.cuts_of(ranking)),
            _ => None,
        }
    }

    /// For the `abc` method: the band (tier index before gates, hysteresis
    /// and overrides) a ranked value falls in under the cut points in
    /// force; `None` for other methods.
    pub fn rank_band(&self, value: Option<f64>) -> Option<usize> {
        match &self.method {
            Method::Abc(m) => Some(m.band_of_value(value)),
            _ => None,
        }
    }

    /// This policy with the `abc` method's cut points replaced (same
    /// version: cut points follow the population, not the policy text).
    /// Other methods: an unchanged copy.
    pub fn with_rank_cuts(&self, cuts: Vec<f64>) -> Policy {
        let mut p = self.clone();
        if let Method::Abc(m) = &self.method {
            p.method = Method::Abc(m.with_cuts(cuts));
        }
        p
    }

    /// Whether the tier (the method, a gate) or a grading reads an RFM
    /// quintile score (`rfm_*`): the engine then keeps the population
    /// ranked by recency, frequency and monetary value and sets the cut
    /// points ([`Self::with_rfm_cuts`]).
    pub fn uses_rfm(&self) -> bool {
        IndicatorName::RFM
            .iter()
            .any(|n| self.uses(*n) || self.gradings.iter().any(|g| g.uses(*n)))
    }

    /// The RFM quintile cut points in force (empty before the first cut:
    /// every `rfm_*` indicator is then unknown).
    pub fn rfm_cuts(&self) -> &crate::rank::RfmQuintiles {
        &self.fold.rfm
    }

    /// This policy with the RFM quintile cut points replaced (same
    /// version: cut points follow the population, not the policy text).
    pub fn with_rfm_cuts(&self, cuts: crate::rank::RfmQuintiles) -> Policy {
        let mut p = self.clone();
        p.fold.rfm = cuts;
        p
    }

    /// Seconds between two cuts of the population while it changes: the
    /// `abc` method's `recut_seconds`, else the default (10), which RFM
    /// cut points follow too.
    pub fn recut_seconds(&self) -> u32 {
        self.rank_recut_seconds()
            .unwrap_or(abc::DEFAULT_ABC_RECUT_SECONDS)
    }

    /// Lifecycle thresholds and the at-risk horizon.
    pub fn lifecycle(&self) -> LifecycleRules {
        self.lifecycle
    }

    /// `weighted_score` or `rules`.
    pub fn method_kind(&self) -> &'static str {
        self.method.kind()
    }

    /// Tiers, best first. Never empty.
    /// The new-customer rule set, if the policy has one.
    pub fn new_customers(&self) -> Option<&NewCustomers> {
        self.new_customers.as_ref()
    }

    /// The secondary gradings, in policy order.
    pub fn gradings(&self) -> &[Grading] {
        &self.gradings
    }

    /// The gradings that rank the whole population (`abc`, `rfm`), in
    /// policy order.
    pub fn population_gradings(&self) -> impl Iterator<Item = &Grading> {
        self.gradings.iter().filter(|g| g.is_population())
    }

    pub fn tiers(&self) -> &[TierSpec] {
        &self.tiers
    }

    /// Hot path (every decision): names of other lengths or first bytes
    /// are passed over without a string comparison.
    #[inline]
    pub fn tier_index(&self, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        self.tiers.iter().position(|t| {
            let t = t.name.as_bytes();
            t.len() == name.len() && t.first() == name.first() && t == name
        })
    }

    /// The last, worst tier (the fallback of a rules policy).
    pub fn lowest_tier(&self) -> &TierSpec {
        // Validation guarantees at least one tier.
        &self.tiers[self.tiers.len() - 1]
    }

    /// Score the indicators and find the tier they earn, before hysteresis:
    /// the tier the score (or the rules) reaches, or the tier gates'
    /// ceiling when that is worse. Hot path: called for every event; does
    /// not allocate.
    #[inline]
    pub fn evaluate(&self, ind: &Indicators) -> Evaluation {
        let mut eval = self.method.evaluate(ind);
        if let Some((tier, _)) = self.new_customers.as_ref().and_then(|n| n.tier_for(ind)) {
            // The better of what the judgement gives and the score earns.
            eval.tier = eval.tier.min(tier);
        }
        let ceiling = self.gates.ceiling(ind);
        eval.ceiling = ceiling;
        eval.tier = eval.tier.max(ceiling);
        eval
    }

    /// [`Self::evaluate`] for a run of evaluations of one customer's
    /// indicators in which only the indicators `moved` says may change
    /// from one to the next (a run of time-driven decisions: see
    /// `CustomerState::advance_to`): a weighted score keeps the products
    /// of its other parts in `kept` and sums them again in order, which
    /// gives exactly what `evaluate` gives. `fresh`: the first of a run
    /// (or after the indicators were computed in full), every part is
    /// computed. Other methods evaluate in full.
    pub fn evaluate_step(
        &self,
        ind: &Indicators,
        kept: &mut StepProducts,
        fresh: bool,
        moved: impl Fn(IndicatorName) -> bool,
    ) -> Evaluation {
        let stepped = match &self.method {
            Method::WeightedScore(m) => m.evaluate_step(ind, &mut kept.products, fresh, &moved),
            _ => None,
        };
        let Some(mut eval) = stepped else {
            return self.evaluate(ind);
        };
        if let Some((tier, _)) = self.new_customers.as_ref().and_then(|n| n.tier_for(ind)) {
            eval.tier = eval.tier.min(tier);
        }
        // The gates' ceiling is kept while no gate reads a moved indicator.
        let ceiling = match kept.ceiling {
            Some(c) if !fresh => c,
            _ => {
                let c = self.gates.ceiling(ind);
                let fixed = !IndicatorName::ALL
                    .iter()
                    .any(|n| moved(*n) && self.gates.uses(*n));
                kept.ceiling = fixed.then_some(c);
                c
            }
        };
        eval.ceiling = ceiling;
        eval.tier = eval.tier.max(ceiling);
        eval
    }

    /// When a tier held since `since` may first be left by an organic
    /// drop: `min_days_in_tier` days later in the policy's time zone, as
    /// long after that day's start as `since` was after its own (a day
    /// across a change of the clocks lasts 23 or 25 hours, and counts as
    /// one day; when `since` or the end falls on such a day, the end is
    /// an hour off the wall clock, never a day).
    pub fn hold_ends(&self, since: Timestamp) -> Timestamp {
        let cal = self.calendar();
        let day = cal.day(since);
        let into_day = since.millis() - cal.day_start(day).millis();
        let days = i32::try_from(self.hysteresis.min_days_in_tier).unwrap_or(i32::MAX);
        Timestamp::from_millis(cal.day_start(day.plus(days)).millis() + into_day)
    }

    /// Whether a tier held since `since` is still in its hold at `now`
    /// (`now < hold_ends(since)`), without the calendar when the 24-hour
    /// days between the two say it: local days differ from them by the
    /// zone's change of offset in between, never by two days.
    #[inline]
    fn holds_at(&self, since: Timestamp, now: Timestamp) -> bool {
        let (elapsed, days) = (
            now.days_since(since),
            f64::from(self.hysteresis.min_days_in_tier),
        );
        if elapsed >= days + 2.0 {
            false
        } else if elapsed < days - 2.0 {
            true
        } else {
            self.holds_exactly_at(since, now)
        }
    }

    /// [`Self::holds_at`] by the calendar: off the hot path, so that
    /// [`Self::decide_held`] stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn holds_exactly_at(&self, since: Timestamp, now: Timestamp) -> bool {
        now < self.hold_ends(since)
    }

    /// The tier index to hold, given the current assignment.
    ///
    /// Upgrades (and a first assignment) apply at once. A downgrade needs at
    /// least `min_days_in_tier` days since `current.since` and, for the
    /// weighted method, a score below the held band's `min_score` minus
    /// `downgrade_margin` (compared in whole hundredths, `eval.score`
    /// rounded to hundredths first); otherwise the held tier is kept. A
    /// held tier a gate vetoes (better than `eval.ceiling`) is left at
    /// once: hysteresis never keeps a customer in a tier it is not fit
    /// for. It is left for the evaluated tier, not for the best tier the
    /// gates allow: that tier, entered now, would start a hold of its own
    /// and keep the customer whose payment failed a gate above the tier
    /// the same customer without the failure drops to when the first hold
    /// ends. When the held tier no longer exists in this policy, the
    /// evaluated tier is taken.
    pub fn decide(
        &self,
        current: Option<&TierAssignment>,
        eval: Evaluation,
        now: Timestamp,
    ) -> usize {
        let held = current.and_then(|c| Some((self.tier_index(&c.tier)?, c.since)));
        self.decide_held(held, eval, now)
    }

    /// The score, in hundredths, at which tier `tier` (an index) begins
    /// under the method; `None` for a method whose tiers are not bands of
    /// one score (see `ScoringMethod::hold_floor`).
    pub(crate) fn band_floor_centi(&self, tier: usize) -> Option<i64> {
        self.method.hold_floor(tier, 0)
    }

    /// [`Self::decide`] with the held tier's index (`None`: no tier held,
    /// or one this policy does not know) and since when it is held: the
    /// hot path, which knows the index already.
    #[inline]
    pub(crate) fn decide_held(
        &self,
        held: Option<(usize, Timestamp)>,
        eval: Evaluation,
        now: Timestamp,
    ) -> usize {
        let evaluated = eval.tier.min(self.tiers.len().saturating_sub(1));
        let Some((held, since)) = held else {
            return evaluated;
        };
        if evaluated <= held || held < eval.ceiling {
            return evaluated;
        }
        if self.holds_at(since, now) {
            return held;
        }
        // Validated at load to hold at most two decimals: exact.
        let margin_centi = (self.hysteresis.downgrade_margin * 100.0).round() as i64;
        match self.method.hold_floor(held, margin_centi) {
            Some(floor) if eval.score_centi() >= floor => held,
            _ => evaluated,
        }
    }

    /// Explain the score of `ind` and what tier `tier` (normally the held
    /// one; clamped to the lowest tier when out of range) would need to move
    /// up, as text and as [`Advice`] (see the module docs), with every
    /// failing tier gate.
    ///
    /// When gates block the next tier, the advice first meets them (a
    /// target per gated indicator) and then closes what the score still
    /// lacks with those targets in place; the gap says both. Advice that
    /// would not reach the next tier is never given.
    pub fn explain(&self, ind: &Indicators, tier: usize) -> Explanation {
        let tier = tier.min(self.tiers.len().saturating_sub(1));
        let mut e = self.method.explain(ind, tier, &self.tiers);
        e.assessments = self.explain_assessments(ind);
        let scored = self.method.evaluate(ind).tier;
        e.score_tier = self
            .tiers
            .get(scored)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        e.new_customer = self
            .new_customers
            .as_ref()
            .and_then(|n| n.describe(ind, &self.tiers, scored));
        if self.gates.is_empty() {
            return e;
        }
        e.failed_gates = self.gates.failed(ind, &self.tiers);
        if let Some(next) = tier.checked_sub(1)
            && let Some((blocking, count)) = self.gates.failed_text(ind, &self.tiers, next)
        {
            match self.gates.advise(ind, next) {
                Some(gate_advice) => {
                    let name = self.tiers.get(next).map_or("", |t| t.name.as_str());
                    if scored <= next {
                        // The score (or the rules) reach the next tier
                        // already: only the gates stand in the way.
                        e.gap = format!("{}; {name} is vetoed: {blocking}", e.gap);
                    } else {
                        let mut trial = *ind;
                        for a in &gate_advice {
                            trial.set(a.indicator, Some(a.target));
                        }
                        let then = self.method.explain(&trial, tier, &self.tiers);
                        let met = if count == 1 {
                            "with that met"
                        } else {
                            "with those met"
                        };
                        e.gap = format!("{blocking}; {met}: {}", then.gap);
                        e.advice = then.advice;
                    }
                    e.advice = merge_advice(ind, gate_advice, std::mem::take(&mut e.advice));
                }
                None => {
                    e.gap = format!("{blocking}; no value meets all of these gates");
                    e.advice.clear();
                }
            }
        }
        if let Some((own, _)) = self.gates.failed_text(ind, &self.tiers, tier) {
            e.gap
                .push_str(&format!("; held although gates veto this tier: {own}"));
        }
        // Never advice that does not reach the next tier (a score lever
        // moved against a gate, say).
        if let Some(next) = tier.checked_sub(1)
            && !e.advice.is_empty()
        {
            let mut after = *ind;
            for a in &e.advice {
                after.set(a.indicator, Some(a.target));
            }
            // Judgements are not advised (an assessment is not a lever)
            // but the advice only needs to reach the tier with them made.
            self.gates.assume_judgements(&mut after, next);
            if let Method::Rules(m) = &self.method {
                m.assume_judgements(&mut after, next);
            }
            if self.evaluate(&after).tier > next {
                e.advice.clear();
            }
        }
        e
    }

    /// The largest contribution changes between two indicator sets, by
    /// `|delta|` descending (ties by name), at most `k`, zero deltas dropped.
    /// Terms on the same indicator are merged. Contributions are not
    /// rounded: the deltas add up to the score change within 0.01.
    pub fn reasons(&self, old: &Indicators, new: &Indicators, k: usize) -> Vec<Reason> {
        // A method names a handful of terms, so the merge is a short list
        // searched in place, not a map; names are copied for the `k` kept
        // only. Every tier change of every customer explains itself here.
        let mut terms = Vec::with_capacity(REASON_TERMS);
        let mut by_name: Vec<(&str, f64, f64)> = Vec::with_capacity(REASON_TERMS);
        fn merged<'a, 'b>(
            by_name: &'b mut Vec<(&'a str, f64, f64)>,
            name: &'a str,
        ) -> &'b mut (&'a str, f64, f64) {
            let i = match by_name.iter().position(|(n, ..)| *n == name) {
                Some(i) => i,
                None => {
                    by_name.push((name, 0.0, 0.0));
                    by_name.len() - 1
                }
            };
            &mut by_name[i]
        }
        self.method.contributions(old, &mut terms);
        for (name, c) in terms.drain(..) {
            merged(&mut by_name, name).1 += c;
        }
        self.method.contributions(new, &mut terms);
        for (name, c) in terms {
            merged(&mut by_name, name).2 += c;
        }
        let delta = |&(_, old, new): &(&str, f64, f64)| new - old;
        by_name.retain(|t| delta(t).abs() > 1e-9);
        by_name.sort_by(|a, b| {
            delta(b)
                .abs()
                .total_cmp(&delta(a).abs())
                .then_with(|| a.0.cmp(b.0))
        });
        by_name.truncate(k);
        by_name
            .iter()
            .map(|t| Reason {
                name: t.0.to_owned(),
                contribution: t.2,
                delta: delta(t),
            })
            .collect()
    }
}

impl Policy {
    /// Every declared assessment with its value, label and share of the
    /// score for `ind` (who assessed it and when is the state's to add:
    /// see `CustomerState::explain`).
    fn explain_assessments(&self, ind: &Indicators) -> Vec<ExplainedAssessment> {
        self.assessments()
            .specs()
            .iter()
            .enumerate()
            .map(|(slot, spec)| {
                let value = ind.assessed.get(slot).copied().flatten();
                let (weight, contribution) = match &self.method {
                    Method::WeightedScore(m) => m.assessed_share(slot, ind),
                    Method::Rules(m) => m.assessed_share(slot, ind),
                    Method::Abc(m) if m.weighted().is_some() => m
                        .weighted()
                        .map_or((0.0, 0.0), |w| w.assessed_share(slot, ind)),
                    Method::Abc(m) if m.uses_assessment(slot) => {
                        let score = m.evaluate(ind).score;
                        (100.0, score)
                    }
                    Method::Abc(_) => (0.0, 0.0),
                };
                ExplainedAssessment {
                    name: spec.name.clone(),
                    value,
                    // Values are whole levels (see `assessment.rs`).
                    label: value.and_then(|v| spec.label(v as i64)).map(str::to_owned),
                    points: (weight > 0.0).then(|| contribution * 100.0 / weight),
                    weight,
                    contribution,
                    missing_points: spec.missing_points,
                    assessed_by: None,
                    note: None,
                    assessed_at: None,
                    expires_at: None,
                }
            })
            .collect()
    }
}

/// [`Policy::day_figures_only_lower`] of a method and its gates.
pub(crate) fn day_figures_only_lower(method: &Method, gates: &Gates) -> bool {
    let rises = crate::projection::moves_with_days;
    match method {
        Method::WeightedScore(m) => m.only_loses_as(rises) && gates.only_fail_as(rises),
        Method::Rules(_) | Method::Abc(_) => false,
    }
}

/// `first` (the gates' targets), then `then` (the method's, computed with
/// those targets in place): one entry per indicator, the later target
/// winning, each with the indicator's value in `ind` as its current value;
/// entries that would keep the current value are dropped.
fn merge_advice(ind: &Indicators, first: Vec<Advice>, then: Vec<Advice>) -> Vec<Advice> {
    let mut advice = first;
    for a in then {
        match advice.iter_mut().find(|b| b.indicator == a.indicator) {
            Some(b) => b.target = a.target,
            None => advice.push(Advice::new(a.indicator, ind.get(a.indicator), a.target)),
        }
    }
    advice.retain(|a| a.current != Some(a.target));
    advice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::date;

    fn with_score(p: &Policy, score: f64) -> usize {
        match &p.method {
            Method::WeightedScore(m) => m.band_of(to_centi(score)),
            Method::Rules(_) | Method::Abc(_) => unreachable!("weighted policy expected"),
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
        // Banded in hundredths: what shows as 80.00 is 80.
        assert_eq!(with_score(&p, 79.996), 0);
        assert_eq!(with_score(&p, 79.994), 1);
    }

    #[test]
    fn centi_points_round_and_clamp() {
        assert_eq!(to_centi(80.0), 8000);
        assert_eq!(to_centi(79.999_999_999_99), 8000);
        assert_eq!(to_centi(0.004), 0);
        assert_eq!(to_centi(-3.0), 0);
        assert_eq!(to_centi(100.7), 10_000);
        assert_eq!(to_centi(f64::NAN), 0);
        for c in 0..=FULL_CENTI {
            assert_eq!(to_centi(from_centi(c)), c);
        }
    }

    #[test]
    fn the_hysteresis_floor_is_compared_in_hundredths() {
        // Given the default policy (A from 80, margin 2) and a customer in
        // A for long enough, a score shown as 78.00 keeps A, 77.99 does not.
        let p = Policy::default_policy();
        let held = TierAssignment {
            tier: "A".into(),
            score: 85.0,
            since: date(2025, 1, 1),
        };
        let now = date(2026, 1, 1);
        let at = |score: f64| {
            let eval = Evaluation {
                score,
                tier: 1,
                ceiling: 0,
            };
            p.decide(Some(&held), eval, now)
        };
        assert_eq!(at(78.0), 0);
        assert_eq!(at(77.999_999_999), 0);
        assert_eq!(at(77.99), 1);
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
            ceiling: 0,
        };
        assert_eq!(p.decide(Some(&gone), eval, date(2026, 1, 2)), 2);
        assert_eq!(p.decide(None, eval, date(2026, 1, 2)), 2);
    }

    /// [`Policy::reasons`] as first written (a map by name), kept as the
    /// reference the short-list merge must match to the bit.
    fn reasons_by_map(p: &Policy, old: &Indicators, new: &Indicators, k: usize) -> Vec<Reason> {
        let mut terms = Vec::new();
        p.method.contributions(old, &mut terms);
        let mut by_name: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
        for (name, c) in terms.drain(..) {
            by_name.entry(name).or_default().0 += c;
        }
        p.method.contributions(new, &mut terms);
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

    static SHIPPED: std::sync::LazyLock<Vec<Policy>> = std::sync::LazyLock::new(|| {
        [
            DEFAULT_POLICY_TOML,
            include_str!("../../../../deploy/policy/example-b.toml"),
            include_str!("../../../../deploy/policy/retail-rules.toml"),
            include_str!("../../../../deploy/policy/abc-score.toml"),
            include_str!("../../../../deploy/policy/abc-margin.toml"),
        ]
        .into_iter()
        .map(|text| Policy::from_toml_str(text).unwrap())
        .collect()
    });

    /// A figure on any of the indicators' scales: a ratio, days or
    /// points, money in minor units; sometimes unknown.
    fn figure() -> impl proptest::strategy::Strategy<Value = Option<f64>> {
        use proptest::prelude::*;
        proptest::option::weighted(
            0.85,
            prop_oneof![Just(0.0), -0.5..1.5f64, -10.0..400.0f64, 0.0..5.0e8f64],
        )
    }

    proptest::proptest! {
        #[test]
        fn reasons_are_those_of_a_merge_by_map(
            old in proptest::collection::vec(figure(), IndicatorName::ALL.len()),
            new in proptest::collection::vec(figure(), IndicatorName::ALL.len()),
            moved in proptest::collection::vec(proptest::bool::weighted(0.4), IndicatorName::ALL.len()),
            k in 0usize..20,
        ) {
            let mut before = Indicators::default();
            let mut after = Indicators::default();
            for (i, name) in IndicatorName::ALL.into_iter().enumerate() {
                before.set(name, old[i]);
                // Most figures stay: those terms have no delta.
                after.set(name, if moved[i] { new[i] } else { old[i] });
            }
            for p in SHIPPED.iter() {
                let got = p.reasons(&before, &after, k);
                let want = reasons_by_map(p, &before, &after, k);
                proptest::prop_assert_eq!(got.len(), want.len(), "{}", p.version());
                for (g, w) in got.iter().zip(&want) {
                    proptest::prop_assert_eq!(&g.name, &w.name);
                    proptest::prop_assert_eq!(g.contribution.to_bits(), w.contribution.to_bits());
                    proptest::prop_assert_eq!(g.delta.to_bits(), w.delta.to_bits());
                }
            }
        }
    }
}

//! Parse and validate a policy file; the factory of the scoring methods.
//!
//! The file is deserialized into `Raw*` structs (`deny_unknown_fields`
//! everywhere, `toml::Spanned` on every validated field), then checked and
//! turned into a [`Policy`]. Every rejection names its line and field.
//!
//! `[method]` is a config enum tagged by `kind`. Serde's own internally
//! tagged enums buffer their content and lose the spans, so the tag is read
//! by a first, lenient pass (`Probe`) and the whole file is then
//! deserialized with the body type of that variant (`RawPolicy<M>`), which
//! keeps both the spans and serde's unknown-field errors per variant.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::assessment::{
    AssessmentRules, AssessmentSpec, MAX_ASSESSMENTS, MAX_VALID_DAYS, SCALE_LIMIT,
};
use super::curve::Curve;
use super::error::{PolicyError, line_of};
use super::explain::fmt_num;
use super::gate::{Gate, Gates, WhenUnknown};
use super::grading::{DEFAULT_RECUT_SECONDS, Grading, GradingKind, RankBy};
use super::new_customers::NewCustomers;
use super::operand::Operand;
use super::rules::{Condition, Op, RuleTiers};
use super::weighted::{AssessedTerm, Penalty, Term, WeightedScore};
use super::{Hysteresis, LifecycleRules, Method, Policy, ScoringMethod as _, TierSpec, from_centi};
use crate::event::{CurrencyRules, Severity};
use crate::indicators::IndicatorName;
use crate::projection::FoldRules;
use crate::time::{BusinessCalendar, Window};

/// The longest window a policy may set.
pub(crate) const MAX_WINDOW_MONTHS: i64 = 36;
const MAX_MIN_DAYS_IN_TIER: i64 = 3650;
const MAX_VERSION_LEN: usize = 128;
/// Tolerance when checking that percentages sum to 100.
const SUM_EPSILON: f64 = 1e-6;

/// `x` in whole hundredths when it has at most two decimals (`80`,
/// `79.5`, `2.25`), else `None`. Exact: a decimal with two places parses to
/// the float nearest it, which is also what `centi / 100` gives.
fn exact_centi(x: f64) -> Option<i64> {
    if !x.is_finite() || x.abs() > 1e12 {
        return None;
    }
    let centi = (x * 100.0).round();
    // |centi| <= 1e14: the cast is exact.
    let c = centi as i64;
    (from_centi(c) == x).then_some(c)
}

#[derive(Deserialize)]
struct Probe {
    method: ProbeMethod,
}

#[derive(Deserialize)]
struct ProbeMethod {
    kind: MethodKind,
}

/// The tag of `[method]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MethodKind {
    WeightedScore,
    Rules,
    Abc,
}

/// The whole file, generic over the body of `[method]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy<M> {
    version: Spanned<String>,
    currency: Spanned<String>,
    window_months: Spanned<i64>,
    /// IANA zone of the business calendar; UTC when absent.
    #[serde(default)]
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    currency_rates: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    hysteresis: Option<RawHysteresis>,
    #[serde(default)]
    lifecycle: Option<RawLifecycle>,
    method: M,
    tiers: Spanned<Vec<RawTier>>,
    /// Secondary gradings reported beside the tier (see `grading.rs`).
    #[serde(default)]
    gradings: Vec<RawGrading>,
    /// Assessment indicators (see `assessment.rs`).
    #[serde(default)]
    assessments: Vec<RawAssessment>,
    /// The new-customer rule set (see `new_customers.rs`).
    #[serde(default)]
    new_customers: Option<Spanned<RawNewCustomers>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewCustomers {
    #[serde(default)]
    orders: Option<Spanned<i64>>,
    #[serde(default)]
    tenure_days: Option<Spanned<i64>>,
    assessment: Spanned<String>,
    tiers: Spanned<Vec<RawNewCustomerRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewCustomerRule {
    min_level: Spanned<i64>,
    tier: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssessment {
    name: Spanned<String>,
    scale: Spanned<RawScale>,
    valid_days: Spanned<i64>,
    /// Points of the weighted parts on it when missing or expired; 0 when absent.
    #[serde(default)]
    missing_points: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    min: Spanned<i64>,
    max: Spanned<i64>,
    #[serde(default)]
    labels: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrading {
    name: Spanned<String>,
    kind: Spanned<String>,
    /// An [`IndicatorName`] or the name of a declared assessment.
    #[serde(default)]
    x: Option<Spanned<String>>,
    #[serde(default)]
    x_min: Option<Spanned<f64>>,
    #[serde(default)]
    y: Option<Spanned<String>>,
    #[serde(default)]
    y_min: Option<Spanned<f64>>,
    #[serde(default)]
    by: Option<Spanned<String>>,
    #[serde(default)]
    shares: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    classes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    low_value_share: Option<Spanned<f64>>,
    #[serde(default)]
    recut_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHysteresis {
    #[serde(default)]
    downgrade_margin: Option<Spanned<f64>>,
    #[serde(default)]
    min_days_in_tier: Option<Spanned<i64>>,
    #[serde(default)]
    forbid_policy_downgrades: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    #[serde(default)]
    new_for_days: Option<Spanned<i64>>,
    #[serde(default)]
    lapsed_after_days: Option<Spanned<i64>>,
    #[serde(default)]
    at_risk_horizon_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    #[serde(default)]
    min_score: Option<Spanned<f64>>,
    priority: Spanned<i64>,
    complaint_sla_hours: Spanned<i64>,
    visit_every_days: Spanned<i64>,
    payment_terms_days: Spanned<i64>,
    /// Veto conditions beyond the score (see `gate.rs`).
    #[serde(default)]
    gates: Option<Spanned<Vec<RawGate>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    /// An [`IndicatorName`] or the name of a declared assessment.
    indicator: Spanned<String>,
    op: Spanned<Op>,
    value: Spanned<f64>,
    /// `pass` (the default) or `fail`: what the gate does when its
    /// indicator is unknown.
    #[serde(default)]
    unknown: Option<Spanned<WhenUnknown>>,
}

/// The `[method]` config enum, tagged by `kind`.
enum MethodConfig {
    WeightedScore(WeightedConfig),
    Rules(RulesConfig),
    Abc(AbcConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedConfig {
    #[serde(rename = "kind")]
    _kind: MethodKind,
    dimensions: Spanned<Vec<RawDimension>>,
    #[serde(default)]
    complaint_penalty: Option<RawPenalty>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    name: Spanned<String>,
    weight: Spanned<f64>,
    parts: Spanned<Vec<RawPart>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    /// An [`IndicatorName`] or the name of a declared assessment.
    indicator: Spanned<String>,
    share: Spanned<f64>,
    higher_is_better: Spanned<bool>,
    curve: Spanned<Vec<Spanned<Vec<f64>>>>,
    #[serde(default)]
    missing_points: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPenalty {
    #[serde(default)]
    unspecified: Option<Spanned<f64>>,
    low: Spanned<f64>,
    medium: Spanned<f64>,
    high: Spanned<f64>,
    critical: Spanned<f64>,
    max: Spanned<f64>,
    /// Share of its points a complaint resolved since costs; 1 when absent.
    #[serde(default)]
    resolved_factor: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbcConfig {
    #[serde(rename = "kind")]
    _kind: MethodKind,
    /// An [`IndicatorName`], the name of a declared assessment, or
    /// `"score"`: the weighted score of `dimensions`.
    by: Spanned<String>,
    #[serde(default)]
    higher_is_better: Option<Spanned<bool>>,
    /// Percent per tier, best first.
    shares: Spanned<Vec<f64>>,
    #[serde(default)]
    recut_seconds: Option<Spanned<i64>>,
    /// With `by = "score"`: the weighted score's dimensions, exactly as the
    /// `weighted_score` method declares them.
    #[serde(default)]
    dimensions: Option<Spanned<Vec<RawDimension>>>,
    #[serde(default)]
    complaint_penalty: Option<Spanned<RawPenalty>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesConfig {
    #[serde(rename = "kind")]
    _kind: MethodKind,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    tier: Spanned<String>,
    all: Spanned<Vec<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    /// An [`IndicatorName`] or the name of a declared assessment.
    indicator: Spanned<String>,
    op: Spanned<Op>,
    value: Spanned<f64>,
}

/// Builds located errors.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    src: &'a str,
}

impl Ctx<'_> {
    fn err(
        self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::at(self.src, span, field, message)
    }

    fn line(self, span: Range<usize>) -> usize {
        line_of(self.src, span.start)
    }
}

type Result<T> = std::result::Result<T, PolicyError>;

/// Parse and validate a policy file's text.
pub(crate) fn parse(src: &str) -> Result<Policy> {
    let de = |e: toml::de::Error| PolicyError::from_toml(src, &e);
    let probe: Probe = toml::from_str(src).map_err(de)?;
    let ctx = Ctx { src };
    match probe.method.kind {
        MethodKind::WeightedScore => {
            let raw: RawPolicy<WeightedConfig> = toml::from_str(src).map_err(de)?;
            raw.build(ctx, MethodConfig::WeightedScore)
        }
        MethodKind::Rules => {
            let raw: RawPolicy<RulesConfig> = toml::from_str(src).map_err(de)?;
            raw.build(ctx, MethodConfig::Rules)
        }
        MethodKind::Abc => {
            let raw: RawPolicy<AbcConfig> = toml::from_str(src).map_err(de)?;
            raw.build(ctx, MethodConfig::Abc)
        }
    }
}

impl<M> RawPolicy<M> {
    fn build(self, ctx: Ctx<'_>, tag: fn(M) -> MethodConfig) -> Result<Policy> {
        let version = check_version(ctx, &self.version)?;
        let base = check_currency_code(ctx, &self.currency, "currency")?;
        let window_months = check_window(ctx, &self.window_months)?;
        let calendar = match &self.time_zone {
            None => BusinessCalendar::utc(),
            Some(tz) => BusinessCalendar::from_iana(tz.get_ref().trim())
                .map_err(|e| ctx.err(tz.span(), "time_zone", e.to_string()))?,
        };
        let currency = build_currency_rules(ctx, base, &self.currency_rates)?;
        let mut tiers = build_tiers(ctx, &self.tiers)?;
        let assessments = build_assessments(ctx, &self.assessments)?;
        let gates = build_gates(ctx, &self.tiers, &assessments)?;
        let method = tag(self.method).build(ctx, &self.tiers, &mut tiers, &assessments)?;
        let hysteresis = build_hysteresis(ctx, self.hysteresis.as_ref(), &method)?;
        let gradings = build_gradings(ctx, &self.gradings, &assessments)?;
        let new_customers = match &self.new_customers {
            Some(raw) => Some(build_new_customers(
                ctx,
                raw,
                &tiers,
                &assessments,
                Window::months(window_months),
            )?),
            None => None,
        };
        Ok(Policy {
            version,
            day_figures_only_lower: super::day_figures_only_lower(&method, &gates),
            scored_assessments: std::array::from_fn(|slot| {
                new_customers.as_ref().is_some_and(|n| n.slot == slot)
                    || gates.uses_assessment(slot)
                    || match &method {
                        Method::WeightedScore(m) => m.uses_assessment(slot),
                        Method::Rules(m) => m.uses_assessment(slot),
                        Method::Abc(m) => m.uses_assessment(slot),
                    }
            }),
            graded_assessments: std::array::from_fn(|slot| {
                gradings.iter().any(|g| g.uses_assessment(slot))
            }),
            fold: FoldRules {
                window: Window::months(window_months),
                calendar,
                assessments,
                rfm: crate::rank::RfmQuintiles::default(),
            },
            currency,
            hysteresis,
            lifecycle: build_lifecycle(ctx, self.lifecycle.as_ref())?,
            // Not the gradings': they never move the tier, so what they read
            // must not make a customer due (the figures they read are
            // computed for every decision anyway).
            scored: IndicatorName::ALL.map(|n| {
                method.uses(n)
                    || gates.uses(n)
                    // The move from the new-customer rule to the method
                    // happens when tenure or orders pass their thresholds.
                    // The order count is read only while the tenure start
                    // is in the window; the day it leaves is due when the
                    // tenure is not scored (`CustomerState::next_due_reference`).
                    // An order leaving the window never makes a customer
                    // new: its tenure start has left first.
                    || new_customers.as_ref().is_some_and(|c| match n {
                        IndicatorName::TenureDays => c.tenure_days.is_some(),
                        IndicatorName::OrderCount12m => c.orders.is_some(),
                        _ => false,
                    })
            }),
            tiers,
            method,
            gates,
            gradings,
            new_customers,
        })
    }
}

fn check_version(ctx: Ctx<'_>, v: &Spanned<String>) -> Result<String> {
    let version = v.get_ref().trim();
    if version.is_empty() {
        return Err(ctx.err(v.span(), "version", "version must not be empty"));
    }
    if version.len() > MAX_VERSION_LEN {
        return Err(ctx.err(
            v.span(),
            "version",
            format!(
                "version is {} bytes, longer than {MAX_VERSION_LEN}",
                version.len()
            ),
        ));
    }
    Ok(version.to_owned())
}

fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn check_currency_code(ctx: Ctx<'_>, code: &Spanned<String>, field: &str) -> Result<String> {
    if !is_currency_code(code.get_ref()) {
        return Err(ctx.err(
            code.span(),
            field,
            format!(
                "currency must be an ISO 4217 code of 3 uppercase letters, got {:?}",
                code.get_ref()
            ),
        ));
    }
    Ok(code.get_ref().clone())
}

fn check_window(ctx: Ctx<'_>, w: &Spanned<i64>) -> Result<u32> {
    let months = *w.get_ref();
    if !(1..=MAX_WINDOW_MONTHS).contains(&months) {
        return Err(ctx.err(
            w.span(),
            "window_months",
            format!("window_months must be within 1..={MAX_WINDOW_MONTHS}, got {months}"),
        ));
    }
    u32::try_from(months)
        .map_err(|_| ctx.err(w.span(), "window_months", "window_months is out of range"))
}

/// An exact decimal string to millionths: `"7.10"` -> `7_100_000`.
/// At most 6 decimals, greater than zero.
fn parse_rate_micro(s: &str) -> Option<i64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !digits(int)
        || frac.len() > 6
        || !digits(frac)
        || (s.contains('.') && frac.is_empty())
    {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let mut micro_frac: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        micro_frac += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    let micro = whole.checked_mul(1_000_000)?.checked_add(micro_frac)?;
    (micro > 0).then_some(micro)
}

fn build_currency_rules(
    ctx: Ctx<'_>,
    base: String,
    rates: &BTreeMap<String, Spanned<String>>,
) -> Result<CurrencyRules> {
    let mut rules = CurrencyRules::new(base.clone());
    for (code, rate) in rates {
        let field = format!("currency_rates.{code}");
        if !is_currency_code(code) {
            return Err(ctx.err(
                rate.span(),
                field,
                format!("{code:?} is not an ISO 4217 code of 3 uppercase letters"),
            ));
        }
        if *code == base {
            return Err(ctx.err(
                rate.span(),
                field,
                format!("{code} is the base currency; it needs no rate"),
            ));
        }
        let Some(micro) = parse_rate_micro(rate.get_ref()) else {
            return Err(ctx.err(
                rate.span(),
                field,
                format!(
                    "rate {:?} is not an exact decimal like \"7.10\" (digits, at most 6 decimals, greater than 0)",
                    rate.get_ref()
                ),
            ));
        };
        rules = rules.with_rate_micro(code.clone(), micro);
    }
    Ok(rules)
}

fn to_u32(ctx: Ctx<'_>, v: &Spanned<i64>, field: &str, min: u32, what: &str) -> Result<u32> {
    let x = *v.get_ref();
    match u32::try_from(x) {
        Ok(ok) if ok >= min => Ok(ok),
        Ok(_) | Err(_) if x < i64::from(min) => Err(ctx.err(
            v.span(),
            field,
            format!("{what} must be at least {min}, got {x}"),
        )),
        _ => Err(ctx.err(
            v.span(),
            field,
            format!("{what} must be at most {}, got {x}", u32::MAX),
        )),
    }
}

/// The longest complaint SLA a tier may have: ten years. A deadline is an
/// instant the API sends as a protobuf timestamp; `u32::MAX` hours put it
/// in the year 490,000, past what that type may hold.
const MAX_COMPLAINT_SLA_HOURS: u32 = 87_600;

/// `value` (read from `v`), refused with its line and field above `max`.
fn at_most(
    ctx: Ctx<'_>,
    v: &Spanned<i64>,
    field: &str,
    value: u32,
    max: u32,
    what: &str,
) -> Result<u32> {
    if value > max {
        return Err(ctx.err(
            v.span(),
            field,
            format!("{what} must be at most {max}, got {value}"),
        ));
    }
    Ok(value)
}

fn build_tiers(ctx: Ctx<'_>, raw: &Spanned<Vec<RawTier>>) -> Result<Vec<TierSpec>> {
    if raw.get_ref().is_empty() {
        return Err(ctx.err(raw.span(), "tiers", "at least one tier is required"));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tiers = Vec::with_capacity(raw.get_ref().len());
    for (i, t) in raw.get_ref().iter().enumerate() {
        let name = t.name.get_ref();
        let field = |f: &str| format!("tiers[{i}].{f}");
        if name.trim().is_empty() || name.trim() != name {
            return Err(ctx.err(
                t.name.span(),
                field("name"),
                format!("tier name {name:?} must be non-empty without surrounding spaces"),
            ));
        }
        if let Some(first) = seen.insert(name, ctx.line(t.name.span())) {
            return Err(ctx.err(
                t.name.span(),
                field("name"),
                format!("duplicate tier name {name:?} (first defined at line {first})"),
            ));
        }
        tiers.push(TierSpec {
            name: name.clone(),
            priority: to_u32(ctx, &t.priority, &field("priority"), 1, "priority")?,
            complaint_sla_hours: at_most(
                ctx,
                &t.complaint_sla_hours,
                &field("complaint_sla_hours"),
                to_u32(
                    ctx,
                    &t.complaint_sla_hours,
                    &field("complaint_sla_hours"),
                    1,
                    "complaint_sla_hours",
                )?,
                MAX_COMPLAINT_SLA_HOURS,
                "complaint_sla_hours",
            )?,
            visit_every_days: to_u32(
                ctx,
                &t.visit_every_days,
                &field("visit_every_days"),
                1,
                "visit_every_days",
            )?,
            payment_terms_days: to_u32(
                ctx,
                &t.payment_terms_days,
                &field("payment_terms_days"),
                0,
                "payment_terms_days",
            )?,
            min_score: None,
        });
    }
    Ok(tiers)
}

/// The gates of every tier (`tiers[i].gates`): values finite, none on
/// the lowest tier (every customer may hold it: a gate there could veto
/// nothing, and a policy that writes one most likely meant another tier).
/// Unknown indicators and operators are rejected by deserialization, with
/// their line and field too.
fn build_gates(
    ctx: Ctx<'_>,
    raw: &Spanned<Vec<RawTier>>,
    assessments: &AssessmentRules,
) -> Result<Gates> {
    let tiers = raw.get_ref();
    let lowest = tiers.len().saturating_sub(1);
    let mut by_tier = Vec::with_capacity(tiers.len());
    for (i, t) in tiers.iter().enumerate() {
        let Some(gates) = &t.gates else {
            by_tier.push(Vec::new());
            continue;
        };
        let at = format!("tiers[{i}].gates");
        if i == lowest && !gates.get_ref().is_empty() {
            return Err(ctx.err(
                gates.span(),
                at,
                format!(
                    "tier {:?} is the lowest tier, which every customer may hold: a gate there could veto nothing; put it on the tier that requires it",
                    t.name.get_ref()
                ),
            ));
        }
        let mut built = Vec::with_capacity(gates.get_ref().len());
        for (g, gate) in gates.get_ref().iter().enumerate() {
            let value = *gate.value.get_ref();
            if !value.is_finite() {
                return Err(ctx.err(
                    gate.value.span(),
                    format!("{at}[{g}].value"),
                    format!("gate value must be finite, got {value}"),
                ));
            }
            built.push(Gate::new(
                resolve_operand(
                    ctx,
                    &gate.indicator,
                    &format!("{at}[{g}].indicator"),
                    assessments,
                )?,
                *gate.op.get_ref(),
                value,
                gate.unknown
                    .as_ref()
                    .map_or(WhenUnknown::Pass, |u| *u.get_ref()),
            ));
        }
        by_tier.push(built);
    }
    Ok(Gates::new(by_tier))
}

fn build_new_customers(
    ctx: Ctx<'_>,
    raw: &Spanned<RawNewCustomers>,
    tiers: &[TierSpec],
    assessments: &super::AssessmentRules,
    window: Window,
) -> Result<NewCustomers> {
    let r = raw.get_ref();
    let count = |v: &Option<Spanned<i64>>, field: &str| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(v) => u32::try_from(*v.get_ref())
                .ok()
                .filter(|n| (1..=3650).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    ctx.err(
                        v.span(),
                        format!("new_customers.{field}"),
                        format!("1 to 3650, got {}", v.get_ref()),
                    )
                }),
        }
    };
    let orders = count(&r.orders, "orders")?;
    let tenure_days = count(&r.tenure_days, "tenure_days")?;
    if orders.is_none() && tenure_days.is_none() {
        return Err(ctx.err(
            raw.span(),
            "new_customers",
            "say who is new: orders (fewer than N orders) and/or tenure_days (under N days)",
        ));
    }
    let name = r.assessment.get_ref().trim();
    let Some((slot, spec)) = assessments.find(name) else {
        return Err(ctx.err(
            r.assessment.span(),
            "new_customers.assessment",
            format!("{name:?} is not declared in [[assessments]]"),
        ));
    };
    if r.tiers.get_ref().is_empty() {
        return Err(ctx.err(
            r.tiers.span(),
            "new_customers.tiers",
            "at least one { min_level, tier } rule",
        ));
    }
    let mut rules = Vec::with_capacity(r.tiers.get_ref().len());
    for (i, rule) in r.tiers.get_ref().iter().enumerate() {
        let level = *rule.min_level.get_ref();
        if !spec.in_scale(level) {
            return Err(ctx.err(
                rule.min_level.span(),
                format!("new_customers.tiers[{i}].min_level"),
                format!("{level} is not a level of {name}'s scale"),
            ));
        }
        let tier = tiers
            .iter()
            .position(|t| t.name == *rule.tier.get_ref())
            .ok_or_else(|| {
                ctx.err(
                    rule.tier.span(),
                    format!("new_customers.tiers[{i}].tier"),
                    format!("{:?} is not a tier of the policy", rule.tier.get_ref()),
                )
            })?;
        rules.push((level, tier));
    }
    rules.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(NewCustomers {
        orders,
        tenure_days,
        window_days: window.len_days(),
        assessment: name.to_owned(),
        slot,
        rules,
    })
}

fn build_gradings(
    ctx: Ctx<'_>,
    raw: &[RawGrading],
    assessments: &AssessmentRules,
) -> Result<Vec<Grading>> {
    let mut out: Vec<Grading> = Vec::with_capacity(raw.len());
    for (i, g) in raw.iter().enumerate() {
        let at = |f: &str| format!("gradings[{i}].{f}");
        let name = g.name.get_ref().trim().to_owned();
        if name.is_empty() || name.len() > 64 {
            return Err(ctx.err(
                g.name.span(),
                at("name"),
                "a grading needs a name of 1 to 64 characters",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(ctx.err(
                g.name.span(),
                at("name"),
                format!("grading {name:?} is defined twice"),
            ));
        }
        // Fields that belong to another kind are refused, not ignored.
        let allowed: &[&str] = match g.kind.get_ref().as_str() {
            "matrix" => &["x", "x_min", "y", "y_min"],
            "abc" => &[
                "by",
                "shares",
                "classes",
                "low_value_share",
                "recut_seconds",
            ],
            "rfm" => &["recut_seconds"],
            _ => &[],
        };
        let present = [
            ("x", g.x.as_ref().map(Spanned::span)),
            ("x_min", g.x_min.as_ref().map(Spanned::span)),
            ("y", g.y.as_ref().map(Spanned::span)),
            ("y_min", g.y_min.as_ref().map(Spanned::span)),
            ("by", g.by.as_ref().map(Spanned::span)),
            ("shares", g.shares.as_ref().map(Spanned::span)),
            ("classes", g.classes.as_ref().map(Spanned::span)),
            (
                "low_value_share",
                g.low_value_share.as_ref().map(Spanned::span),
            ),
        ];
        for (field, span) in present {
            if let Some(span) = span
                && !allowed.contains(&field)
                && matches!(g.kind.get_ref().as_str(), "matrix" | "abc" | "rfm")
            {
                return Err(ctx.err(
                    span,
                    at(field),
                    format!("{field} does not apply to a {:?} grading", g.kind.get_ref()),
                ));
            }
        }
        let kind = match g.kind.get_ref().as_str() {
            "matrix" => {
                let threshold = |v: &Option<Spanned<f64>>, field: &str| -> Result<f64> {
                    let v = v.as_ref().ok_or_else(|| {
                        ctx.err(
                            g.kind.span(),
                            at(field),
                            format!("a matrix grading needs {field}"),
                        )
                    })?;
                    let x = *v.get_ref();
                    if !x.is_finite() {
                        return Err(ctx.err(
                            v.span(),
                            at(field),
                            format!("{field} must be finite, got {x}"),
                        ));
                    }
                    Ok(x)
                };
                let axis = |raw: &Option<Spanned<String>>, field: &str, default: IndicatorName| {
                    raw.as_ref().map_or(Ok(Operand::Indicator(default)), |r| {
                        resolve_operand(ctx, r, &at(field), assessments)
                    })
                };
                GradingKind::Matrix {
                    x: axis(&g.x, "x", IndicatorName::ShareOfWallet)?,
                    x_min: threshold(&g.x_min, "x_min")?,
                    y: axis(&g.y, "y", IndicatorName::PurchasePotential)?,
                    y_min: threshold(&g.y_min, "y_min")?,
                }
            }
            "abc" => {
                let by = match &g.by {
                    None => RankBy::Score,
                    Some(b) if b.get_ref() == "score" => RankBy::Score,
                    Some(b) => RankBy::Indicator(
                        IndicatorName::ALL
                            .into_iter()
                            .find(|n| n.as_str() == b.get_ref())
                            .ok_or_else(|| {
                                ctx.err(
                                    b.span(),
                                    at("by"),
                                    format!(
                                        "{:?} is neither \"score\" nor an indicator",
                                        b.get_ref()
                                    ),
                                )
                            })?,
                    ),
                };
                let shares = g.shares.as_ref().ok_or_else(|| {
                    ctx.err(
                        g.kind.span(),
                        at("shares"),
                        "an abc grading needs shares, e.g. [20, 30, 50]",
                    )
                })?;
                let classes = g.classes.as_ref().ok_or_else(|| {
                    ctx.err(
                        g.kind.span(),
                        at("classes"),
                        "an abc grading needs classes, e.g. [\"A\", \"B\", \"C\"]",
                    )
                })?;
                let pct = shares.get_ref();
                if pct.len() < 2 || pct.iter().any(|p| !p.is_finite() || *p <= 0.0) {
                    return Err(ctx.err(
                        shares.span(),
                        at("shares"),
                        "at least two shares, each a positive percentage",
                    ));
                }
                let sum: f64 = pct.iter().sum();
                if (sum - 100.0).abs() > SUM_EPSILON {
                    return Err(ctx.err(
                        shares.span(),
                        at("shares"),
                        format!("shares must sum to 100, got {}", fmt_num(sum)),
                    ));
                }
                if classes.get_ref().len() != pct.len() {
                    return Err(ctx.err(
                        classes.span(),
                        at("classes"),
                        format!(
                            "{} classes for {} shares",
                            classes.get_ref().len(),
                            pct.len()
                        ),
                    ));
                }
                let low_value_share = match &g.low_value_share {
                    None => None,
                    Some(v)
                        if v.get_ref().is_finite()
                            && *v.get_ref() > 0.0
                            && *v.get_ref() < 100.0 =>
                    {
                        Some(*v.get_ref() / 100.0)
                    }
                    Some(v) => {
                        return Err(ctx.err(
                            v.span(),
                            at("low_value_share"),
                            "a percentage above 0 and below 100",
                        ));
                    }
                };
                GradingKind::Abc {
                    by,
                    shares: pct.iter().map(|p| p / 100.0).collect(),
                    classes: classes.get_ref().clone(),
                    low_value_share,
                }
            }
            "rfm" => GradingKind::Rfm,
            other => {
                return Err(ctx.err(
                    g.kind.span(),
                    at("kind"),
                    format!(
                        "unknown grading kind {other:?}; expected \"matrix\", \"abc\" or \"rfm\""
                    ),
                ));
            }
        };
        let recut_seconds = match &g.recut_seconds {
            None => DEFAULT_RECUT_SECONDS,
            Some(v) => u32::try_from(*v.get_ref())
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| {
                    ctx.err(
                        v.span(),
                        at("recut_seconds"),
                        format!("1 to 86400 seconds, got {}", v.get_ref()),
                    )
                })?,
        };
        out.push(Grading {
            name,
            kind,
            recut_seconds,
        });
    }
    Ok(out)
}

fn build_lifecycle(ctx: Ctx<'_>, raw: Option<&RawLifecycle>) -> Result<LifecycleRules> {
    let mut l = LifecycleRules::default();
    let Some(raw) = raw else {
        return Ok(l);
    };
    let days = |v: &Option<Spanned<i64>>, field: &'static str, slot: &mut u32| -> Result<()> {
        let Some(v) = v else {
            return Ok(());
        };
        let d = *v.get_ref();
        if !(1..=3650).contains(&d) {
            return Err(ctx.err(
                v.span(),
                field,
                format!("{field} must be within 1..=3650 days, got {d}"),
            ));
        }
        *slot = d as u32;
        Ok(())
    };
    days(
        &raw.new_for_days,
        "lifecycle.new_for_days",
        &mut l.new_for_days,
    )?;
    days(
        &raw.lapsed_after_days,
        "lifecycle.lapsed_after_days",
        &mut l.lapsed_after_days,
    )?;
    days(
        &raw.at_risk_horizon_days,
        "lifecycle.at_risk_horizon_days",
        &mut l.at_risk_horizon_days,
    )?;
    Ok(l)
}

fn build_hysteresis(
    ctx: Ctx<'_>,
    raw: Option<&RawHysteresis>,
    method: &Method,
) -> Result<Hysteresis> {
    let mut h = Hysteresis::default();
    let Some(raw) = raw else {
        return Ok(h);
    };
    h.forbid_policy_downgrades = raw.forbid_policy_downgrades.unwrap_or(false);
    if let Some(m) = &raw.downgrade_margin {
        let margin = *m.get_ref();
        let field = "hysteresis.downgrade_margin";
        if !(0.0..=100.0).contains(&margin) {
            return Err(ctx.err(
                m.span(),
                field,
                format!(
                    "downgrade_margin must be within 0..=100 points, got {}",
                    fmt_num(margin)
                ),
            ));
        }
        if exact_centi(margin).is_none() {
            return Err(ctx.err(
                m.span(),
                field,
                format!(
                    "downgrade_margin {margin} has more than 2 decimals; scores are compared in hundredths of a point"
                ),
            ));
        }
        if margin > 0.0 && !matches!(method, Method::WeightedScore(_)) {
            return Err(ctx.err(
                m.span(),
                field,
                format!(
                    "downgrade_margin applies to the weighted_score method only, not to kind = {:?}",
                    method.kind()
                ),
            ));
        }
        h.downgrade_margin = margin;
    }
    if let Some(d) = &raw.min_days_in_tier {
        let days = *d.get_ref();
        if !(0..=MAX_MIN_DAYS_IN_TIER).contains(&days) {
            return Err(ctx.err(
                d.span(),
                "hysteresis.min_days_in_tier",
                format!("min_days_in_tier must be within 0..={MAX_MIN_DAYS_IN_TIER}, got {days}"),
            ));
        }
        h.min_days_in_tier = u32::try_from(days).unwrap_or(0);
    }
    Ok(h)
}

fn sums_to_100(sum: f64) -> bool {
    (sum - 100.0).abs() <= SUM_EPSILON
}

/// A percentage that must be finite and within `(0, 100]`.
fn check_percent(ctx: Ctx<'_>, v: &Spanned<f64>, field: &str, what: &str) -> Result<f64> {
    let x = *v.get_ref();
    if !(x > 0.0 && x <= 100.0) {
        return Err(ctx.err(
            v.span(),
            field,
            format!(
                "{what} must be above 0 and at most 100 (percent), got {}",
                fmt_num(x)
            ),
        ));
    }
    Ok(x)
}

impl MethodConfig {
    /// The factory: validate the method against the tiers and build it.
    /// Sets `min_score` on the tiers of a weighted policy.
    fn build(
        self,
        ctx: Ctx<'_>,
        raw_tiers: &Spanned<Vec<RawTier>>,
        tiers: &mut [TierSpec],
        assessments: &AssessmentRules,
    ) -> Result<Method> {
        match self {
            MethodConfig::WeightedScore(cfg) => {
                build_weighted(ctx, cfg, raw_tiers, tiers, assessments).map(Method::WeightedScore)
            }
            MethodConfig::Rules(cfg) => {
                build_rules(ctx, cfg, raw_tiers, assessments).map(Method::Rules)
            }
            MethodConfig::Abc(cfg) => build_abc(ctx, cfg, raw_tiers, assessments).map(Method::Abc),
        }
    }
}

fn build_weighted(
    ctx: Ctx<'_>,
    cfg: WeightedConfig,
    raw_tiers: &Spanned<Vec<RawTier>>,
    tiers: &mut [TierSpec],
    assessments: &AssessmentRules,
) -> Result<WeightedScore> {
    let min_centis = check_bands(ctx, raw_tiers)?;
    for (tier, min) in tiers.iter_mut().zip(&min_centis) {
        tier.min_score = Some(from_centi(*min));
    }
    build_score(
        ctx,
        &cfg.dimensions,
        cfg.complaint_penalty.as_ref(),
        assessments,
        min_centis,
    )
}

/// A weighted score from `[[method.dimensions]]` and an optional
/// `[method.complaint_penalty]`: the `weighted_score` method's, and what an
/// `abc` method with `by = "score"` ranks by. `min_centis`: the tiers'
/// bands (the weighted method's; unused by abc, which bands by share).
fn build_score(
    ctx: Ctx<'_>,
    dimensions: &Spanned<Vec<RawDimension>>,
    complaint_penalty: Option<&RawPenalty>,
    assessments: &AssessmentRules,
    min_centis: Vec<i64>,
) -> Result<WeightedScore> {
    let dims = dimensions.get_ref();
    if dims.is_empty() {
        return Err(ctx.err(
            dimensions.span(),
            "method.dimensions",
            "at least one dimension is required",
        ));
    }
    let mut terms = Vec::new();
    let mut dim_names: BTreeMap<&str, usize> = BTreeMap::new();
    // Direction of each scored indicator, and where it was first declared.
    let mut directions: BTreeMap<IndicatorName, (bool, String)> = BTreeMap::new();
    let mut assessed = Vec::new();
    let mut assessed_directions: BTreeMap<usize, (bool, String)> = BTreeMap::new();
    let mut weight_sum = 0.0;
    for (d, dim) in dims.iter().enumerate() {
        let at = format!("method.dimensions[{d}]");
        let name = dim.name.get_ref();
        if name.trim().is_empty() {
            return Err(ctx.err(
                dim.name.span(),
                format!("{at}.name"),
                "dimension name must not be empty",
            ));
        }
        if let Some(first) = dim_names.insert(name, ctx.line(dim.name.span())) {
            return Err(ctx.err(
                dim.name.span(),
                format!("{at}.name"),
                format!("duplicate dimension name {name:?} (first defined at line {first})"),
            ));
        }
        let weight = check_percent(
            ctx,
            &dim.weight,
            &format!("{at}.weight"),
            "dimension weight",
        )?;
        weight_sum += weight;

        let parts = dim.parts.get_ref();
        if parts.is_empty() {
            return Err(ctx.err(
                dim.parts.span(),
                format!("{at}.parts"),
                format!("dimension {name:?} needs at least one part"),
            ));
        }
        let mut share_sum = 0.0;
        for (p, part) in parts.iter().enumerate() {
            let at = format!("{at}.parts[{p}]");
            let share = check_percent(ctx, &part.share, &format!("{at}.share"), "part share")?;
            share_sum += share;
            let higher = *part.higher_is_better.get_ref();
            let indicator = match resolve_indicator(
                ctx,
                &part.indicator,
                &format!("{at}.indicator"),
                assessments,
            )? {
                Scored::Event(name) => name,
                Scored::Assessment(slot, spec) => {
                    if let Some((first, first_at)) = assessed_directions.get(&slot)
                        && *first != higher
                    {
                        return Err(ctx.err(
                            part.higher_is_better.span(),
                            format!("{at}.higher_is_better"),
                            format!(
                                "{} is scored with higher_is_better = {first} at {first_at}; \
                                 one indicator cannot be better both higher and lower",
                                spec.name
                            ),
                        ));
                    }
                    assessed_directions
                        .entry(slot)
                        .or_insert_with(|| (higher, at.clone()));
                    if let Some(m) = &part.missing_points {
                        return Err(ctx.err(
                            m.span(),
                            format!("{at}.missing_points"),
                            format!(
                                "{} is an assessment: its missing_points is set once, on its \
                                 [[assessments]] entry",
                                spec.name
                            ),
                        ));
                    }
                    let curve = build_curve(ctx, &part.curve, higher, &format!("{at}.curve"))?;
                    assessed.push(AssessedTerm::new(
                        slot,
                        spec.name.clone(),
                        weight,
                        share,
                        curve,
                        spec.missing_points,
                    ));
                    continue;
                }
            };
            match directions.get(&indicator) {
                Some((first, first_at)) if *first != higher => {
                    return Err(ctx.err(
                        part.higher_is_better.span(),
                        format!("{at}.higher_is_better"),
                        format!(
                            "{indicator} is scored with higher_is_better = {first} at {first_at}; \
                             one indicator cannot be better both higher and lower"
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    directions.insert(indicator, (higher, at.clone()));
                }
            }
            let curve = build_curve(ctx, &part.curve, higher, &format!("{at}.curve"))?;
            let missing_points = match &part.missing_points {
                None => 0.0,
                Some(m) => {
                    let x = *m.get_ref();
                    if !(0.0..=100.0).contains(&x) {
                        return Err(ctx.err(
                            m.span(),
                            format!("{at}.missing_points"),
                            format!("missing_points must be within 0..=100, got {}", fmt_num(x)),
                        ));
                    }
                    x
                }
            };
            terms.push(Term::new(
                indicator,
                weight,
                share,
                higher,
                curve,
                missing_points,
            ));
        }
        if !sums_to_100(share_sum) {
            let last = parts.len() - 1;
            return Err(ctx.err(
                parts[last].share.span(),
                format!("{at}.parts[{last}].share"),
                format!(
                    "part shares of dimension {name:?} sum to {}, expected 100",
                    fmt_num(share_sum)
                ),
            ));
        }
    }
    if !sums_to_100(weight_sum) {
        let last = dims.len() - 1;
        return Err(ctx.err(
            dims[last].weight.span(),
            format!("method.dimensions[{last}].weight"),
            format!(
                "dimension weights sum to {}, expected 100",
                fmt_num(weight_sum)
            ),
        ));
    }
    let penalty = complaint_penalty
        .map(|p| build_penalty(ctx, p))
        .transpose()?;
    Ok(WeightedScore::new(terms, assessed, penalty, min_centis))
}

/// What a part scores.
enum Scored<'a> {
    Event(IndicatorName),
    /// Slot and spec of a declared assessment.
    Assessment(usize, &'a AssessmentSpec),
}

/// What a gate, a condition or a matrix axis reads, resolved like a
/// part's `indicator`; `field` names it in errors.
fn resolve_operand(
    ctx: Ctx<'_>,
    raw: &Spanned<String>,
    field: &str,
    assessments: &AssessmentRules,
) -> Result<Operand> {
    Ok(match resolve_indicator(ctx, raw, field, assessments)? {
        Scored::Event(n) => Operand::Indicator(n),
        Scored::Assessment(slot, spec) => Operand::Assessment {
            slot,
            name: spec.name.as_str().into(),
        },
    })
}

/// A part's `indicator`: an event-derived indicator or a declared
/// assessment; `field` names it in errors.
fn resolve_indicator<'a>(
    ctx: Ctx<'_>,
    raw: &Spanned<String>,
    field: &str,
    assessments: &'a AssessmentRules,
) -> Result<Scored<'a>> {
    let name = raw.get_ref();
    if let Some(event) = IndicatorName::parse(name) {
        return Ok(Scored::Event(event));
    }
    if let Some((slot, spec)) = assessments.find(name) {
        return Ok(Scored::Assessment(slot, spec));
    }
    let declared: Vec<&str> = assessments
        .specs()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    Err(ctx.err(
        raw.span(),
        field,
        format!(
            "unknown variant `{name}`: neither an indicator ({}) nor a declared assessment ({})",
            IndicatorName::ALL.map(IndicatorName::as_str).join(", "),
            if declared.is_empty() {
                "none".to_owned()
            } else {
                declared.join(", ")
            }
        ),
    ))
}

fn is_snake_case(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.ends_with('_')
        && !name.contains("__")
}

/// `[[assessments]]`: at most [`MAX_ASSESSMENTS`], names snake_case,
/// unique and not an event indicator's, a scale of whole levels within
/// `0..=SCALE_LIMIT` with `min < max` and one label per level (when
/// labelled), `valid_days` within `1..=MAX_VALID_DAYS`, `missing_points`
/// within `0..=100`.
fn build_assessments(ctx: Ctx<'_>, list: &[RawAssessment]) -> Result<AssessmentRules> {
    if let Some(extra) = list.get(MAX_ASSESSMENTS) {
        return Err(ctx.err(
            extra.name.span(),
            format!("assessments[{MAX_ASSESSMENTS}]"),
            format!(
                "{} assessments declared; at most {MAX_ASSESSMENTS} are allowed",
                list.len()
            ),
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut specs = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let at = |f: &str| format!("assessments[{i}].{f}");
        let name = a.name.get_ref();
        if !is_snake_case(name) || name.len() > 64 {
            return Err(ctx.err(
                a.name.span(),
                at("name"),
                format!(
                    "assessment name {name:?} must be snake_case (lowercase letters, digits and \
                     single underscores, starting with a letter), at most 64 bytes"
                ),
            ));
        }
        if name == super::weighted::PENALTY_REASON {
            return Err(ctx.err(
                a.name.span(),
                at("name"),
                format!("{name:?} is reserved: it names the complaint penalty in reasons"),
            ));
        }
        if IndicatorName::parse(name).is_some() {
            return Err(ctx.err(
                a.name.span(),
                at("name"),
                format!(
                    "{name:?} is the name of an event-derived indicator; an assessment needs its own name"
                ),
            ));
        }
        if let Some(first) = seen.insert(name, ctx.line(a.name.span())) {
            return Err(ctx.err(
                a.name.span(),
                at("name"),
                format!("duplicate assessment name {name:?} (first defined at line {first})"),
            ));
        }
        let scale = a.scale.get_ref();
        let (min, max) = (*scale.min.get_ref(), *scale.max.get_ref());
        for (v, key) in [(&scale.min, "min"), (&scale.max, "max")] {
            let x = *v.get_ref();
            if !(0..=SCALE_LIMIT).contains(&x) {
                return Err(ctx.err(
                    v.span(),
                    at(&format!("scale.{key}")),
                    format!("scale {key} must be within 0..={SCALE_LIMIT}, got {x}"),
                ));
            }
        }
        if max <= min {
            return Err(ctx.err(
                scale.max.span(),
                at("scale.max"),
                format!("scale max {max} must be above min {min}"),
            ));
        }
        let labels = match &scale.labels {
            None => Vec::new(),
            Some(l) => {
                let levels = max - min + 1;
                if i64::try_from(l.get_ref().len()).ok() != Some(levels) {
                    return Err(ctx.err(
                        l.span(),
                        at("scale.labels"),
                        format!(
                            "{} labels for the {levels} levels {min}..={max}; give one per level, lowest first",
                            l.get_ref().len()
                        ),
                    ));
                }
                if let Some(bad) = l
                    .get_ref()
                    .iter()
                    .find(|s| s.trim().is_empty() || s.trim() != s.as_str())
                {
                    return Err(ctx.err(
                        l.span(),
                        at("scale.labels"),
                        format!("label {bad:?} must be non-empty without surrounding spaces"),
                    ));
                }
                l.get_ref().clone()
            }
        };
        let days = *a.valid_days.get_ref();
        let valid_days = match u32::try_from(days) {
            Ok(d) if (1..=MAX_VALID_DAYS).contains(&d) => d,
            _ => {
                return Err(ctx.err(
                    a.valid_days.span(),
                    at("valid_days"),
                    format!("valid_days must be within 1..={MAX_VALID_DAYS}, got {days}"),
                ));
            }
        };
        let missing_points = match &a.missing_points {
            None => 0.0,
            Some(m) => {
                let x = *m.get_ref();
                if !(0.0..=100.0).contains(&x) {
                    return Err(ctx.err(
                        m.span(),
                        at("missing_points"),
                        format!("missing_points must be within 0..=100, got {}", fmt_num(x)),
                    ));
                }
                x
            }
        };
        specs.push(AssessmentSpec {
            name: name.clone(),
            min,
            max,
            labels,
            valid_days,
            missing_points,
        });
    }
    Ok(AssessmentRules::new(specs))
}

/// `min_score` of every tier, in hundredths: present, within 0..=100, at
/// most two decimals (scores are banded in hundredths), strictly decreasing
/// (bands must not overlap), the lowest one 0 (no score without a tier).
fn check_bands(ctx: Ctx<'_>, raw_tiers: &Spanned<Vec<RawTier>>) -> Result<Vec<i64>> {
    let raw = raw_tiers.get_ref();
    let mut mins: Vec<f64> = Vec::with_capacity(raw.len());
    let mut centis: Vec<i64> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let name = t.name.get_ref();
        let field = format!("tiers[{i}].min_score");
        let Some(min) = &t.min_score else {
            return Err(ctx.err(
                t.name.span(),
                field,
                format!(
                    "tier {name:?} has no min_score; the weighted_score method needs one per tier"
                ),
            ));
        };
        let m = *min.get_ref();
        if !(0.0..=100.0).contains(&m) {
            return Err(ctx.err(
                min.span(),
                field,
                format!(
                    "min_score {} of tier {name:?} is outside 0..=100",
                    fmt_num(m)
                ),
            ));
        }
        let Some(centi) = exact_centi(m) else {
            return Err(ctx.err(
                min.span(),
                field,
                format!(
                    "min_score {m} of tier {name:?} has more than 2 decimals; \
                     scores are shown and banded in hundredths of a point"
                ),
            ));
        };
        if let (Some(prev), Some(better)) = (mins.last(), i.checked_sub(1).and_then(|b| raw.get(b)))
            && m >= *prev
        {
            return Err(ctx.err(
                min.span(),
                field,
                format!(
                    "min_score {} of tier {name:?} is not below {} of the better tier {:?}: \
                         bands would overlap (tiers are listed best first)",
                    fmt_num(m),
                    fmt_num(*prev),
                    better.name.get_ref()
                ),
            ));
        }
        mins.push(m);
        centis.push(centi);
    }
    if let (Some(last), Some(lowest)) = (raw.last(), mins.last())
        && *lowest != 0.0
    {
        let span = last
            .min_score
            .as_ref()
            .map_or(last.name.span(), Spanned::span);
        return Err(ctx.err(
            span,
            format!("tiers[{}].min_score", raw.len() - 1),
            format!(
                "the lowest tier's min_score is {}, expected 0: scores below it would have no tier",
                fmt_num(*lowest)
            ),
        ));
    }
    Ok(centis)
}

fn build_curve(
    ctx: Ctx<'_>,
    raw: &Spanned<Vec<Spanned<Vec<f64>>>>,
    higher_is_better: bool,
    field: &str,
) -> Result<Curve> {
    let points = raw.get_ref();
    if points.len() < 2 {
        return Err(ctx.err(
            raw.span(),
            field,
            format!(
                "a curve needs at least 2 points [value, points], got {}",
                points.len()
            ),
        ));
    }
    let mut knots: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for (j, p) in points.iter().enumerate() {
        let at = format!("{field}[{j}]");
        let &[x, y] = p.get_ref().as_slice() else {
            return Err(ctx.err(
                p.span(),
                at,
                format!(
                    "a curve point is [value, points], got {} numbers",
                    p.get_ref().len()
                ),
            ));
        };
        if !x.is_finite() {
            return Err(ctx.err(p.span(), at, "curve values must be finite"));
        }
        if !(0.0..=100.0).contains(&y) {
            return Err(ctx.err(
                p.span(),
                at,
                format!("curve points must be within 0..=100, got {}", fmt_num(y)),
            ));
        }
        if let Some(&(px, py)) = knots.last() {
            if x <= px {
                return Err(ctx.err(
                    p.span(),
                    at,
                    format!(
                        "curve values must strictly increase: {} follows {}",
                        fmt_num(x),
                        fmt_num(px)
                    ),
                ));
            }
            if higher_is_better && y < py {
                return Err(ctx.err(
                    p.span(),
                    at,
                    format!(
                        "curve points must not decrease as the value grows (higher_is_better = true): {} follows {}",
                        fmt_num(y),
                        fmt_num(py)
                    ),
                ));
            }
            if !higher_is_better && y > py {
                return Err(ctx.err(
                    p.span(),
                    at,
                    format!(
                        "curve points must not increase as the value grows (higher_is_better = false): {} follows {}",
                        fmt_num(y),
                        fmt_num(py)
                    ),
                ));
            }
        }
        knots.push((x, y));
    }
    Ok(Curve::new(&knots))
}

fn build_penalty(ctx: Ctx<'_>, raw: &RawPenalty) -> Result<Penalty> {
    let check = |v: &Spanned<f64>, key: &str| -> Result<f64> {
        let x = *v.get_ref();
        if !(0.0..=100.0).contains(&x) {
            return Err(ctx.err(
                v.span(),
                format!("method.complaint_penalty.{key}"),
                format!("{key} must be within 0..=100 points, got {}", fmt_num(x)),
            ));
        }
        Ok(x)
    };
    let low = check(&raw.low, "low")?;
    let unspecified = match &raw.unspecified {
        Some(u) => check(u, "unspecified")?,
        None => low,
    };
    let mut per_severity = [0.0; 5];
    per_severity[Severity::Unspecified.index()] = unspecified;
    per_severity[Severity::Low.index()] = low;
    per_severity[Severity::Medium.index()] = check(&raw.medium, "medium")?;
    per_severity[Severity::High.index()] = check(&raw.high, "high")?;
    per_severity[Severity::Critical.index()] = check(&raw.critical, "critical")?;
    let resolved_factor = match &raw.resolved_factor {
        None => 1.0,
        Some(f) => {
            let x = *f.get_ref();
            if !(0.0..=1.0).contains(&x) {
                return Err(ctx.err(
                    f.span(),
                    "method.complaint_penalty.resolved_factor",
                    format!(
                        "resolved_factor must be within 0.0..=1.0 (the share of its points a \
                         resolved complaint still costs), got {x}"
                    ),
                ));
            }
            x
        }
    };
    Ok(Penalty {
        per_severity,
        resolved_factor,
        max: check(&raw.max, "max")?,
    })
}

/// `kind = "abc"`: `by` an indicator, an assessment or `"score"` (then
/// `[[method.dimensions]]` define the weighted score, as for the
/// `weighted_score` method, and `higher_is_better` may not be false), one
/// share per tier summing to 100, tiers without `min_score`.
fn build_abc(
    ctx: Ctx<'_>,
    cfg: AbcConfig,
    raw_tiers: &Spanned<Vec<RawTier>>,
    assessments: &AssessmentRules,
) -> Result<super::abc::AbcMethod> {
    let raw = raw_tiers.get_ref();
    for (i, t) in raw.iter().enumerate() {
        if let Some(min) = &t.min_score {
            return Err(ctx.err(
                min.span(),
                format!("tiers[{i}].min_score"),
                "min_score applies to the weighted_score method only; an abc tier is its share of the ranking",
            ));
        }
    }
    let higher = cfg.higher_is_better.as_ref().is_none_or(|h| *h.get_ref());
    let by = if cfg.by.get_ref().trim() == "score" {
        let Some(dimensions) = &cfg.dimensions else {
            return Err(ctx.err(
                cfg.by.span(),
                "method.dimensions",
                "by = \"score\" ranks by a weighted score: declare its [[method.dimensions]] \
                 (name, weight, parts) as for kind = \"weighted_score\"",
            ));
        };
        if let Some(h) = cfg.higher_is_better.as_ref().filter(|_| !higher) {
            return Err(ctx.err(
                h.span(),
                "method.higher_is_better",
                "a higher score is always better: remove higher_is_better = false for by = \"score\"",
            ));
        }
        let score = build_score(
            ctx,
            dimensions,
            cfg.complaint_penalty.as_ref().map(Spanned::get_ref),
            assessments,
            vec![0; raw.len()],
        )?;
        super::abc::RankedBy::Score(Box::new(score))
    } else {
        let field = |name: &str| format!("method.{name}");
        let extra = match (&cfg.dimensions, &cfg.complaint_penalty) {
            (Some(d), _) => Some((d.span(), field("dimensions"))),
            (None, Some(p)) => Some((p.span(), field("complaint_penalty"))),
            (None, None) => None,
        };
        if let Some((span, field)) = extra {
            let what = field.trim_start_matches("method.").to_owned();
            return Err(ctx.err(
                span,
                field,
                format!(
                    "{what} applies to by = \"score\" only; this abc method ranks by {:?}",
                    cfg.by.get_ref()
                ),
            ));
        }
        super::abc::RankedBy::Operand(resolve_operand(ctx, &cfg.by, "method.by", assessments)?)
    };
    let pct = cfg.shares.get_ref();
    if pct.len() != raw.len() {
        return Err(ctx.err(
            cfg.shares.span(),
            "method.shares",
            format!(
                "{} shares for {} tiers: one share per tier, best first",
                pct.len(),
                raw.len()
            ),
        ));
    }
    if pct.iter().any(|p| !p.is_finite() || *p <= 0.0) {
        return Err(ctx.err(
            cfg.shares.span(),
            "method.shares",
            "each share must be a positive percentage",
        ));
    }
    let sum: f64 = pct.iter().sum();
    if (sum - 100.0).abs() > SUM_EPSILON {
        return Err(ctx.err(
            cfg.shares.span(),
            "method.shares",
            format!("shares must sum to 100, got {}", fmt_num(sum)),
        ));
    }
    let fractions: Vec<f64> = pct.iter().map(|p| p / 100.0).collect();
    let proportions = crate::rank::Proportions::new(&fractions)
        .map_err(|e| ctx.err(cfg.shares.span(), "method.shares", e.to_string()))?;
    let recut_seconds = match &cfg.recut_seconds {
        None => super::abc::DEFAULT_ABC_RECUT_SECONDS,
        Some(r) => match u32::try_from(*r.get_ref()) {
            Ok(v) if (1..=86_400).contains(&v) => v,
            _ => {
                return Err(ctx.err(
                    r.span(),
                    "method.recut_seconds",
                    format!("recut_seconds must be 1..=86400, got {}", r.get_ref()),
                ));
            }
        },
    };
    let direction = if higher {
        crate::rank::Direction::HigherIsBetter
    } else {
        crate::rank::Direction::LowerIsBetter
    };
    Ok(super::abc::AbcMethod::new(
        by,
        direction,
        proportions,
        recut_seconds,
    ))
}

fn build_rules(
    ctx: Ctx<'_>,
    cfg: RulesConfig,
    raw_tiers: &Spanned<Vec<RawTier>>,
    assessments: &AssessmentRules,
) -> Result<RuleTiers> {
    let raw = raw_tiers.get_ref();
    for (i, t) in raw.iter().enumerate() {
        if let Some(min) = &t.min_score {
            return Err(ctx.err(
                min.span(),
                format!("tiers[{i}].min_score"),
                "min_score applies to the weighted_score method only; remove it for kind = \"rules\"",
            ));
        }
    }
    let names: Vec<&str> = raw.iter().map(|t| t.name.get_ref().as_str()).collect();
    let fallback = names.len() - 1;
    let mut by_tier: Vec<Option<(Vec<Condition>, usize)>> = (0..fallback).map(|_| None).collect();
    for (r, rule) in cfg.rules.iter().enumerate() {
        let at = format!("method.rules[{r}]");
        let tier_name = rule.tier.get_ref();
        let Some(idx) = names.iter().position(|n| n == tier_name) else {
            return Err(ctx.err(
                rule.tier.span(),
                format!("{at}.tier"),
                format!(
                    "rule for unknown tier {tier_name:?}; the tiers are {}",
                    names.join(", ")
                ),
            ));
        };
        if idx == fallback {
            return Err(ctx.err(
                rule.tier.span(),
                format!("{at}.tier"),
                format!(
                    "tier {tier_name:?} is the fallback (the lowest tier) and must not have a rule"
                ),
            ));
        }
        let conditions = rule.all.get_ref();
        if conditions.is_empty() {
            return Err(ctx.err(
                rule.all.span(),
                format!("{at}.all"),
                "a rule needs at least one condition",
            ));
        }
        let mut built = Vec::with_capacity(conditions.len());
        for (c, cond) in conditions.iter().enumerate() {
            let value = *cond.value.get_ref();
            if !value.is_finite() {
                return Err(ctx.err(
                    cond.value.span(),
                    format!("{at}.all[{c}].value"),
                    "condition value must be finite",
                ));
            }
            built.push(Condition::new(
                resolve_operand(
                    ctx,
                    &cond.indicator,
                    &format!("{at}.all[{c}].indicator"),
                    assessments,
                )?,
                *cond.op.get_ref(),
                value,
            ));
        }
        let line = ctx.line(rule.tier.span());
        if let Some((_, first)) = &by_tier[idx] {
            return Err(ctx.err(
                rule.tier.span(),
                format!("{at}.tier"),
                format!("a second rule for tier {tier_name:?} (the first is at line {first})"),
            ));
        }
        by_tier[idx] = Some((built, line));
    }
    let mut rules = Vec::with_capacity(fallback);
    for (i, slot) in by_tier.into_iter().enumerate() {
        let Some((conditions, _)) = slot else {
            let t = &raw[i];
            return Err(ctx.err(
                t.name.span(),
                format!("tiers[{i}].name"),
                format!(
                    "tier {:?} has no rule; with kind = \"rules\" every tier but the lowest needs one",
                    t.name.get_ref()
                ),
            ));
        };
        rules.push(conditions);
    }
    Ok(RuleTiers::new(rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_decimals() {
        assert_eq!(parse_rate_micro("7.10"), Some(7_100_000));
        assert_eq!(parse_rate_micro("7"), Some(7_000_000));
        assert_eq!(parse_rate_micro("0.000001"), Some(1));
        assert_eq!(parse_rate_micro("0.0213"), Some(21_300));
        assert_eq!(parse_rate_micro("0"), None);
        assert_eq!(parse_rate_micro("7."), None);
        assert_eq!(parse_rate_micro(".5"), None);
        assert_eq!(parse_rate_micro("7,10"), None);
        assert_eq!(parse_rate_micro("-1"), None);
        assert_eq!(parse_rate_micro("1.0000001"), None);
        assert_eq!(parse_rate_micro("99999999999999999"), None);
        assert_eq!(parse_rate_micro(""), None);
    }

    #[test]
    fn two_decimals_at_most() {
        assert_eq!(exact_centi(80.0), Some(8000));
        assert_eq!(exact_centi(79.99), Some(7999));
        assert_eq!(exact_centi(0.01), Some(1));
        assert_eq!(exact_centi(2.5), Some(250));
        assert_eq!(exact_centi(0.0), Some(0));
        assert_eq!(exact_centi(80.001), None);
        assert_eq!(exact_centi(33.333), None);
        assert_eq!(exact_centi(f64::NAN), None);
        assert_eq!(exact_centi(f64::INFINITY), None);
        for c in 0..=10_000 {
            let decimal: f64 = format!("{}.{:02}", c / 100, c % 100).parse().unwrap();
            assert_eq!(exact_centi(decimal), Some(c), "{decimal}");
        }
    }
}

//! One property harness every scoring method must pass, run against every
//! shipped policy (`deploy/policy/*.toml`) and every valid fixture: for any
//! plausible indicators (some unknown), the score is a whole number of
//! hundredths within 0..=100, the tier is a configured one and agrees with
//! the score shown and the tier gates, `evaluate` agrees with `explain`,
//! following the advice reaches the next tier (gates included), band edges
//! are exact, decisions stay within the configured tiers, apply upgrades
//! at once and leave a vetoed tier at once, and raising an indicator that
//! is "better higher" (or lowering one that is "better lower") never
//! lowers the score or the tier.
//!
//! What each policy scores (directions, curve knots) and which gates each
//! tier has are read from the policy text itself (parts'
//! `higher_is_better` and `curve`, rules' and gates' operators),
//! independently of the implementation under test.

// Test helpers may panic: a failed lookup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use tier_core::indicators::Unit;
use tier_core::policy::{Evaluation, Policy, TierAssignment};
use tier_core::time::date;
use tier_core::{IndicatorName, Indicators, Severity, Timestamp};

struct Case {
    name: String,
    policy: Policy,
    /// `(indicator, higher_is_better)` for every indicator the policy uses
    /// in one direction only.
    directions: Vec<(IndicatorName, bool)>,
    /// Weighted policies: every scored indicator, its direction and the
    /// range of its curves' knot values.
    levers: Vec<Lever>,
    /// Every tier gate, as the policy text writes it.
    gates: Vec<GateSpec>,
}

/// One tier gate read from the policy text.
#[derive(Clone, Debug)]
struct GateSpec {
    /// Index of the tier that lists it.
    tier: usize,
    indicator: IndicatorName,
    op: String,
    value: f64,
    /// `unknown = "fail"`.
    fail_unknown: bool,
}

impl GateSpec {
    fn holds(&self, ind: &Indicators) -> bool {
        let Some(v) = ind.get(self.indicator) else {
            return !self.fail_unknown;
        };
        match self.op.as_str() {
            ">" => v > self.value,
            ">=" => v >= self.value,
            "<" => v < self.value,
            "<=" => v <= self.value,
            "==" => v == self.value,
            op => panic!("unknown op {op}"),
        }
    }
}

fn gates_of(doc: &toml::Table) -> Vec<GateSpec> {
    let mut out = Vec::new();
    for (tier, t) in doc["tiers"].as_array().unwrap().iter().enumerate() {
        let Some(gates) = t.get("gates").and_then(toml::Value::as_array) else {
            continue;
        };
        for g in gates {
            out.push(GateSpec {
                tier,
                indicator: indicator(&g["indicator"]),
                op: g["op"].as_str().unwrap().to_owned(),
                value: number(&g["value"]),
                fail_unknown: g.get("unknown").and_then(toml::Value::as_str) == Some("fail"),
            });
        }
    }
    out
}

/// The best tier the gates admit: below the worst tier with a failing
/// gate (a gate binds its tier and every better one).
fn ceiling_of(case: &Case, ind: &Indicators) -> usize {
    case.gates
        .iter()
        .filter(|g| !g.holds(ind))
        .map(|g| g.tier + 1)
        .max()
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug)]
struct Lever {
    indicator: IndicatorName,
    higher_is_better: bool,
    first_x: f64,
    last_x: f64,
}

impl Lever {
    /// The value earning the most points.
    fn best(self) -> f64 {
        if self.higher_is_better {
            self.last_x
        } else {
            self.first_x
        }
    }
}

fn indicator(v: &toml::Value) -> IndicatorName {
    IndicatorName::parse(v.as_str().unwrap()).unwrap()
}

/// A part's event-derived indicator; `None` for a part on an assessment.
fn scored_indicator(part: &toml::Value) -> Option<IndicatorName> {
    IndicatorName::parse(part["indicator"].as_str().unwrap())
}

fn number(v: &toml::Value) -> f64 {
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .unwrap()
}

fn directions_of(doc: &toml::Table) -> Vec<(IndicatorName, bool)> {
    let method = doc["method"].as_table().unwrap();
    let mut out = Vec::new();
    if let Some(dims) = method.get("dimensions").and_then(toml::Value::as_array) {
        for dim in dims {
            for part in dim["parts"].as_array().unwrap() {
                let higher = part["higher_is_better"].as_bool().unwrap();
                // A part on an assessment is no lever here: the generated
                // indicators leave assessments missing (constant points).
                if let Some(name) = scored_indicator(part) {
                    out.push((name, higher));
                }
            }
        }
    }
    let rules = method
        .get("rules")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["all"].as_array().unwrap());
    // A gate also makes its indicator better one way.
    let gates = doc["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.get("gates").and_then(toml::Value::as_array))
        .flatten();
    for c in rules.chain(gates) {
        match c["op"].as_str().unwrap() {
            ">" | ">=" => out.push((indicator(&c["indicator"]), true)),
            "<" | "<=" => out.push((indicator(&c["indicator"]), false)),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    // A range (both directions on one indicator) is not monotone.
    let both: Vec<IndicatorName> = out
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[0].0)
        .collect();
    out.retain(|(name, _)| !both.contains(name));
    out
}

fn levers_of(doc: &toml::Table) -> Vec<Lever> {
    let mut by_name: BTreeMap<IndicatorName, Lever> = BTreeMap::new();
    let method = doc["method"].as_table().unwrap();
    let Some(dims) = method.get("dimensions").and_then(toml::Value::as_array) else {
        return Vec::new();
    };
    for dim in dims {
        for part in dim["parts"].as_array().unwrap() {
            let Some(name) = scored_indicator(part) else {
                continue;
            };
            let xs: Vec<f64> = part["curve"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| number(&k.as_array().unwrap()[0]))
                .collect();
            let (first, last) = (xs[0], xs[xs.len() - 1]);
            let lever = by_name.entry(name).or_insert(Lever {
                indicator: name,
                higher_is_better: part["higher_is_better"].as_bool().unwrap(),
                first_x: first,
                last_x: last,
            });
            lever.first_x = lever.first_x.min(first);
            lever.last_x = lever.last_x.max(last);
        }
    }
    by_name.into_values().collect()
}

fn toml_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".toml") && keep(name))
        .map(|name| {
            let src = std::fs::read_to_string(dir.join(&name)).unwrap();
            (name, src)
        })
        .collect();
    out.sort();
    out
}

/// Every shipped policy and every valid fixture.
static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = toml_files(&root.join("../../deploy/policy"), |_| true);
    assert!(shipped.len() >= 2, "shipped policies: {shipped:?}");
    let fixtures = toml_files(&root.join("tests/fixtures"), |name| {
        name.starts_with("valid_") || name == "thresholds.toml"
    });
    shipped
        .into_iter()
        .chain(fixtures)
        .map(|(name, src)| {
            let doc: toml::Table = src.parse().unwrap();
            Case {
                policy: ranked(
                    Policy::from_toml_str(&src).unwrap_or_else(|e| panic!("{name}: {e}")),
                ),
                directions: directions_of(&doc),
                levers: levers_of(&doc),
                gates: gates_of(&doc),
                name,
            }
        })
        .collect()
});

/// An `abc` policy cut over a synthetic population (its figure spread
/// over 0..5e10, the range the strategies draw money from; for `by =
/// "score"`, scores 0..100 in tenths): its tiers depend on a population,
/// and the properties hold for any cut points. Other policies unchanged
/// (RFM scores are drawn by the strategies, whatever the cut points).
fn ranked(policy: Policy) -> Policy {
    let Some((by, direction)) = policy.rank_by() else {
        return policy;
    };
    let spread = |i: i32| match by {
        Some(_) => f64::from(i) * 5e7,
        None => f64::from(i) / 10.0,
    };
    let population =
        tier_core::rank::Ranking::from_values(direction, (0..1000).map(|i| (i, spread(i))));
    let cuts = policy.rank_cuts_of(&population).unwrap_or_default();
    policy.with_rank_cuts(cuts)
}

/// Money in whole fen: often zero, up to 500 million CNY.
fn money() -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(0.0), 6 => (0.0..5e10f64).prop_map(f64::round)]
}

fn days(max: u32) -> impl Strategy<Value = f64> {
    (0..max).prop_map(f64::from)
}

prop_compose! {
    fn indicators()(
        (amount, margin_rate, orders_per_month, active_months) in (
            money(),
            prop::option::weighted(0.85, -0.5..0.95f64),
            0.0..40.0f64,
            1.0..=12.0f64,
        ),
        credit in prop::option::weighted(0.8, (
            prop_oneof![1 => Just(1.0), 3 => 0.0..=1.0f64],
            0.0..120.0f64,
            days(200),
        )),
        (overdue, oldest_overdue, by_severity, resolved) in (
            money(),
            prop_oneof![2 => Just(0.0), 3 => days(200)],
            prop::array::uniform5(0u32..6),
            prop::array::uniform5(0u32..6),
        ),
        (days_since, tenure) in (prop::option::weighted(0.9, days(800)), days(4000)),
        (share_of_wallet, growth, streak) in (
            prop::option::of(0.0..2.0f64),
            prop::option::weighted(0.8, -1.0..=10.0f64),
            0u32..13,
        ),
        // RFM quintile scores (unknown: no order, or not cut yet).
        rfm in prop::option::weighted(0.85, (1u8..=5, 1u8..=5, 1u8..=5)),
    ) -> Indicators {
        let count = (orders_per_month * active_months).round();
        let complaints: u32 = by_severity.iter().sum();
        let weighted: u32 = Severity::ALL.iter().map(|s| by_severity[s.index()] * s.weight()).sum();
        let resolved = std::array::from_fn(|i| resolved[i].min(by_severity[i]));
        let open: u32 = (0..5).map(|i| by_severity[i] - resolved[i]).sum();
        // A margin needs orders with a known cost.
        let margin_rate = margin_rate.filter(|_| amount > 0.0);
        Indicators {
            order_amount_12m: amount,
            order_count_12m: count,
            avg_order_value_12m: if count > 0.0 { amount / count } else { 0.0 },
            orders_per_month_12m: orders_per_month,
            margin_12m: margin_rate.map(|r| (amount * r).round()),
            margin_rate_12m: margin_rate,
            on_time_payment_ratio: credit.map(|c| c.0),
            avg_days_late: credit.map(|c| c.1),
            max_days_late: credit.map(|c| c.1.ceil() + c.2),
            overdue_amount: overdue,
            // Something overdue for some days, or nothing overdue.
            oldest_overdue_days: if overdue > 0.0 { oldest_overdue } else { 0.0 },
            open_complaints: f64::from(open),
            complaints_12m: f64::from(complaints),
            complaints_weighted_12m: f64::from(weighted),
            days_since_last_order: days_since,
            tenure_days: tenure,
            share_of_wallet,
            // A potential whenever a share of wallet is known.
            purchase_potential: share_of_wallet.map(|_| 100_000_000.0),
            growth_3m: growth,
            growth_streak_months: f64::from(streak),
            complaints_by_severity_12m: by_severity,
            resolved_by_severity_12m: resolved,
            rfm_recency: rfm.map(|r| f64::from(r.0)),
            rfm_frequency: rfm.map(|r| f64::from(r.1)),
            rfm_monetary: rfm.map(|r| f64::from(r.2)),
            rfm_score: rfm.map(|r| f64::from(r.0 + r.1 + r.2)),
            ..Indicators::default()
        }
    }
}

/// The tier whose band holds `score`, from the `min_score`s the policy
/// reports (weighted policies only).
fn band_of(p: &Policy, score: f64) -> Option<usize> {
    let mins: Option<Vec<f64>> = p.tiers().iter().map(|t| t.min_score).collect();
    let mins = mins?;
    Some(
        mins.iter()
            .position(|m| score >= *m)
            .unwrap_or(mins.len() - 1),
    )
}

fn is_hundredths(score: f64) -> bool {
    (score * 100.0).round() / 100.0 == score
}

fn check_evaluation(case: &Case, ind: &Indicators) -> Result<(), TestCaseError> {
    let p = &case.policy;
    let eval = p.evaluate(ind);
    prop_assert!(
        (0.0..=100.0).contains(&eval.score),
        "{}: score {}",
        case.name,
        eval.score
    );
    prop_assert!(
        is_hundredths(eval.score),
        "{}: score {} is not a whole number of hundredths",
        case.name,
        eval.score
    );
    prop_assert_eq!(eval.score_centi() as f64 / 100.0, eval.score);
    prop_assert!(
        eval.tier < p.tiers().len(),
        "{}: tier {}",
        case.name,
        eval.tier
    );
    // The gates cap the tier; with every gate holding the tier agrees
    // with the score shown, else it is the worse of the two.
    let ceiling = ceiling_of(case, ind);
    prop_assert_eq!(eval.ceiling, ceiling, "{}", &case.name);
    prop_assert!(eval.tier >= ceiling, "{}: {eval:?}", case.name);
    if let Some(band) = band_of(p, eval.score) {
        prop_assert_eq!(
            eval.tier,
            band.max(ceiling),
            "{}: score {}",
            &case.name,
            eval.score
        );
    }
    // Evaluating is pure.
    prop_assert_eq!(p.evaluate(ind), eval);

    let e = p.explain(ind, eval.tier);
    prop_assert_eq!(e.score, eval.score, "{}", &case.name);
    prop_assert_eq!(&e.tier, &p.tiers()[eval.tier].name, "{}", &case.name);
    prop_assert_eq!(e.next_tier.is_some(), eval.tier > 0);
    // The assessments' parts count beside the event-derived ones.
    let sum: f64 = e.indicators.iter().map(|i| i.contribution).sum::<f64>()
        + e.assessments.iter().map(|a| a.contribution).sum::<f64>();
    let rebuilt = (sum - e.penalty).clamp(0.0, 100.0);
    prop_assert!(
        (rebuilt - eval.score).abs() <= 0.005 + 1e-9,
        "{}: contributions {sum} - penalty {} do not round to score {}",
        case.name,
        e.penalty,
        eval.score
    );
    // Every failing gate is named, with its tier and the value now.
    let failing: Vec<(String, IndicatorName)> = case
        .gates
        .iter()
        .filter(|g| !g.holds(ind))
        .map(|g| (p.tiers()[g.tier].name.clone(), g.indicator))
        .collect();
    let named: Vec<(String, IndicatorName)> = e
        .failed_gates
        .iter()
        .map(|f| {
            let indicator = IndicatorName::parse(&f.indicator).expect("an event indicator");
            (f.tier.clone(), indicator)
        })
        .collect();
    prop_assert_eq!(named, failing, "{}", &case.name);
    for f in &e.failed_gates {
        let indicator = IndicatorName::parse(&f.indicator).expect("an event indicator");
        prop_assert_eq!(f.value, ind.get(indicator), "{}: {:?}", &case.name, f);
    }
    let score_tier = p.tier_index(&e.score_tier);
    prop_assert!(
        score_tier.is_some_and(|t| t <= eval.tier && eval.tier == t.max(ceiling)),
        "{}: score tier {:?} for {eval:?}",
        case.name,
        e.score_tier
    );
    for i in &e.indicators {
        prop_assert_eq!(i.value, ind.get(i.name), "{}: {:?}", &case.name, i);
        prop_assert!((0.0..=100.0).contains(&i.points), "{}: {i:?}", case.name);
        prop_assert!((i.contribution - i.points * i.weight / 100.0).abs() < 1e-9);
    }
    Ok(())
}

/// On the unit's grid: whole minor units, orders, days, complaints and
/// months; hundredths of orders a month; ten-thousandths of a ratio.
fn on_grid(v: f64, unit: Unit) -> bool {
    let per = match unit {
        Unit::Ratio => 10_000.0,
        Unit::OrdersPerMonth => 100.0,
        _ => 1.0,
    };
    let scaled = v * per;
    (scaled - scaled.round()).abs() <= 1e-6 * scaled.abs().max(1.0)
}

/// Every scored indicator at its best value.
fn best_everything(case: &Case, ind: &Indicators) -> Indicators {
    let mut best = *ind;
    for l in &case.levers {
        best.set(l.indicator, Some(l.best()));
    }
    best
}

/// Following the advice for tier `asked` reaches the tier above it.
fn check_advice(case: &Case, ind: &Indicators, asked: usize) -> Result<(), TestCaseError> {
    let p = &case.policy;
    let eval = p.evaluate(ind);
    let e = p.explain(ind, asked);
    let Some(next) = asked.checked_sub(1) else {
        prop_assert!(e.advice.is_empty(), "{}: advice at the top", case.name);
        return Ok(());
    };
    if eval.tier <= next {
        prop_assert!(
            e.advice.is_empty(),
            "{}: advice although {} is reached: {:?}",
            case.name,
            next,
            e.advice
        );
        return Ok(());
    }
    let mut after = *ind;
    for (k, a) in e.advice.iter().enumerate() {
        prop_assert_eq!(a.unit, a.indicator.unit(), "{}: {:?}", &case.name, a);
        prop_assert_eq!(a.current, ind.get(a.indicator), "{}: {:?}", &case.name, a);
        prop_assert!(a.target.is_finite(), "{}: {a:?}", case.name);
        prop_assert!(
            Some(a.target) != a.current,
            "{}: advice to keep {a:?}",
            case.name
        );
        prop_assert!(
            on_grid(a.target, a.unit),
            "{}: {a:?} is not on the grid of its unit",
            case.name
        );
        prop_assert!(
            e.advice[..k].iter().all(|b| b.indicator != a.indicator),
            "{}: {} advised twice",
            case.name,
            a.indicator
        );
        after.set(a.indicator, Some(a.target));
    }
    let reached = p.evaluate(&after);
    if e.advice.is_empty() {
        // Empty only when nothing can: not even every scored indicator at
        // its best (rules: a next rule can always be met in these policies).
        prop_assert!(
            !case.levers.is_empty(),
            "{}: no advice from {} to {next}: {}",
            case.name,
            eval.tier,
            e.gap
        );
        let best = p.evaluate(&best_everything(case, ind));
        prop_assert!(
            best.tier > next,
            "{}: no advice, but every indicator at its best reaches {:?}: {}",
            case.name,
            best,
            e.gap
        );
    } else {
        prop_assert!(
            reached.tier <= next,
            "{}: following {:?} from {:?} gives {:?}, not tier {next} ({})",
            case.name,
            e.advice,
            eval,
            reached,
            e.gap
        );
    }
    Ok(())
}

/// The indicators `ind` with `lever` bisected to the value where the shown
/// score first reaches `m`: just below, and at the edge. `None` when the
/// lever alone does not cross `m`.
fn bisect_edge(
    p: &Policy,
    ind: &Indicators,
    lever: Lever,
    m: f64,
) -> Option<(Indicators, Indicators)> {
    // Bisect over `a`, the value in the lever's better direction.
    let sign = if lever.higher_is_better { 1.0 } else { -1.0 };
    let at = |a: f64| {
        let mut t = *ind;
        t.set(lever.indicator, Some(sign * a));
        t
    };
    let score = |a: f64| p.evaluate(&at(a)).score;
    let (mut lo, mut hi) = if lever.higher_is_better {
        (lever.first_x - 1.0, lever.last_x + 1.0)
    } else {
        (-(lever.last_x + 1.0), -(lever.first_x - 1.0))
    };
    if score(lo) >= m || score(hi) < m {
        return None;
    }
    for _ in 0..200 {
        let mid = lo + (hi - lo) / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        if score(mid) >= m {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some((at(lo), at(hi)))
}

/// Where each tier's score band starts for `ind`: its `min_score`, or for
/// an `abc` policy ranking by the score, the cut point the population
/// sets (0 for the lowest tier). Empty when tiers are not bands of the
/// score, as for a customer with no order in the window under such an
/// `abc` policy (not ranked: the lowest tier, whatever its score).
fn band_starts(p: &Policy, ind: &Indicators) -> Vec<f64> {
    if let Some(mins) = p.tiers().iter().map(|t| t.min_score).collect() {
        return mins;
    }
    match p.rank_by() {
        Some((None, _)) if ind.order_count_12m > 0.0 => {
            p.rank_cuts().iter().copied().chain([0.0]).collect()
        }
        _ => Vec::new(),
    }
}

/// Bisect one scored indicator to the value where the shown score first
/// reaches each band's `min_score` (or an abc-by-score cut point): there
/// the unrounded score is half a hundredth below it, so a banding on
/// unrounded floats would fail. Returns how many edges landed exactly on
/// the band's start.
fn check_band_edges(case: &Case, ind: &Indicators, pick: usize) -> Result<usize, TestCaseError> {
    let p = &case.policy;
    if case.levers.is_empty() {
        return Ok(0);
    }
    let lever = case.levers[pick % case.levers.len()];
    let mut exact = 0;
    for (i, m) in band_starts(p, ind).into_iter().enumerate() {
        if m == 0.0 {
            continue;
        }
        let Some((below, edge)) = bisect_edge(p, ind, lever, m) else {
            continue;
        };
        // A gate may veto the band the score reaches: the tier is then
        // the gates' ceiling.
        let edge_ceiling = ceiling_of(case, &edge);
        let (below, edge) = (p.evaluate(&below), p.evaluate(&edge));
        prop_assert!(
            below.score < m && below.tier > i,
            "{}: {below:?} below {m}",
            case.name
        );
        prop_assert!(
            edge.score >= m && edge.tier <= i.max(edge_ceiling),
            "{}: {edge:?} at {m}",
            case.name
        );
        if edge.score == m {
            prop_assert_eq!(
                edge.tier,
                i.max(edge_ceiling),
                "{}: score shown as {} is not in its band",
                &case.name,
                m
            );
            exact += 1;
        }
    }
    Ok(exact)
}

fn check_monotone(case: &Case, ind: &Indicators, step: f64) -> Result<(), TestCaseError> {
    let p = &case.policy;
    let before = p.evaluate(ind);
    for &(name, higher) in &case.directions {
        let Some(value) = ind.get(name) else {
            continue;
        };
        let scale = value.abs().max(1.0);
        let moved = if higher {
            value + step * scale
        } else {
            value - step * scale
        };
        let mut better = *ind;
        better.set(name, Some(moved));
        let after = p.evaluate(&better);
        prop_assert!(
            after.score >= before.score,
            "{}: {name} {value} -> {moved} lowered the score {} -> {}",
            case.name,
            before.score,
            after.score
        );
        prop_assert!(
            after.tier <= before.tier,
            "{}: {name} {value} -> {moved} lowered the tier {} -> {}",
            case.name,
            before.tier,
            after.tier
        );
    }
    // One more complaint never helps; resolving one never hurts.
    let mut worse = *ind;
    worse.complaints_by_severity_12m[Severity::High.index()] += 1;
    prop_assert!(p.evaluate(&worse).score <= before.score);
    for s in Severity::ALL {
        let i = s.index();
        if ind.resolved_by_severity_12m[i] < ind.complaints_by_severity_12m[i] {
            let mut resolved = *ind;
            resolved.resolved_by_severity_12m[i] += 1;
            let after = p.evaluate(&resolved);
            prop_assert!(
                after.score >= before.score,
                "{}: resolving {s:?}",
                case.name
            );
        }
    }
    Ok(())
}

fn check_decide(
    case: &Case,
    ind: &Indicators,
    held: usize,
    held_days: i64,
) -> Result<(), TestCaseError> {
    let p = &case.policy;
    let eval = p.evaluate(ind);
    let now = date(2026, 11, 20);
    prop_assert_eq!(p.decide(None, eval, now), eval.tier);
    let unknown = TierAssignment {
        tier: "no-such-tier".into(),
        score: 50.0,
        since: now,
    };
    prop_assert_eq!(p.decide(Some(&unknown), eval, now), eval.tier);

    let held = held % p.tiers().len();
    let current = TierAssignment {
        tier: p.tiers()[held].name.as_str().into(),
        score: 50.0,
        since: Timestamp::from_millis(now.millis() - held_days * 86_400_000),
    };
    let decided = p.decide(Some(&current), eval, now);
    prop_assert!(
        decided == held || decided == eval.tier,
        "{}: {decided}",
        case.name
    );
    if eval.tier <= held {
        // Upgrades (and staying) apply at once.
        prop_assert_eq!(decided, eval.tier);
    }
    if held < eval.ceiling {
        // A gate vetoes the held tier: left at once, whatever hysteresis
        // would say.
        prop_assert_eq!(decided, eval.tier, "{}: vetoed tier kept", &case.name);
    } else if held_days < i64::from(p.hysteresis().min_days_in_tier) {
        prop_assert!(
            decided <= held,
            "{}: downgraded before the minimum days",
            case.name
        );
    }
    // The hysteresis floor is a band edge in hundredths too: a score shown
    // as exactly `min_score - downgrade_margin` keeps the held tier.
    if let Some(min) = p.tiers()[held].min_score
        && held_days >= i64::from(p.hysteresis().min_days_in_tier)
        && held + 1 < p.tiers().len()
    {
        let floor = min - p.hysteresis().downgrade_margin;
        let floor = (floor * 100.0).round() / 100.0;
        let lower = Evaluation {
            score: floor,
            tier: held + 1,
            ceiling: 0,
        };
        if floor < min {
            prop_assert_eq!(p.decide(Some(&current), lower, now), held, "{}", &case.name);
            let below = Evaluation {
                score: floor - 0.01,
                tier: held + 1,
                ceiling: 0,
            };
            // The same score with a gate vetoing the held tier: no hold.
            let vetoed = Evaluation {
                ceiling: held + 1,
                ..lower
            };
            prop_assert_eq!(p.decide(Some(&current), vetoed, now), held + 1);
            if floor - 0.01 >= 0.0 {
                prop_assert_eq!(p.decide(Some(&current), below, now), held + 1);
            }
        }
    }

    // Persisted form round-trips.
    let json = serde_json::to_string(&current).unwrap();
    prop_assert_eq!(
        serde_json::from_str::<TierAssignment>(&json).unwrap(),
        current.clone()
    );
    let bytes = postcard::to_allocvec(&current).unwrap();
    prop_assert_eq!(
        postcard::from_bytes::<TierAssignment>(&bytes).unwrap(),
        current
    );
    Ok(())
}

fn check_reasons(
    case: &Case,
    old: &Indicators,
    new: &Indicators,
    k: usize,
) -> Result<(), TestCaseError> {
    let reasons = case.policy.reasons(old, new, k);
    prop_assert!(reasons.len() <= k);
    for r in &reasons {
        prop_assert!(
            r.delta != 0.0 && r.delta.is_finite(),
            "{}: {r:?}",
            case.name
        );
    }
    // Every change, merged by name: the first k are the ones kept, and
    // a tie in size is broken by name.
    let all = case.policy.reasons(old, new, usize::MAX);
    prop_assert_eq!(&reasons[..], &all[..k.min(all.len())], "{}", case.name);
    for pair in all.windows(2) {
        let (a, b) = (pair[0].delta.abs(), pair[1].delta.abs());
        prop_assert!(
            a > b || (a == b && pair[0].name < pair[1].name),
            "{}: {all:?}",
            case.name
        );
    }
    let mut names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    prop_assert_eq!(names.len(), all.len(), "{}: {:?}", case.name, all);
    prop_assert!(case.policy.reasons(new, new, k).is_empty());
    Ok(())
}

#[test]
fn every_shipped_policy_and_valid_fixture_is_a_case() {
    let names: Vec<&str> = CASES.iter().map(|c| c.name.as_str()).collect();
    for must in [
        "default.toml",
        "retail-rules.toml",
        "example-b.toml",
        "thresholds.toml",
        "valid_assessments.toml",
        "valid_weighted.toml",
        "valid_rules.toml",
        "valid_unknowns.toml",
        "valid_rules_gates.toml",
        "valid_abc.toml",
        "valid_abc_score.toml",
        "valid_rfm.toml",
        "abc-score.toml",
    ] {
        assert!(names.contains(&must), "{must} missing from {names:?}");
    }
}

#[test]
fn band_edges_are_exact_for_plain_customers() {
    // Deterministic companion of the band edge property: from no history
    // and from a middling customer, the weighted policies have edges whose
    // shown score is exactly the band's min_score while the unrounded sum
    // of the terms is below it; those are in the band.
    let middling = Indicators {
        order_amount_12m: 50_000_000.0,
        order_count_12m: 24.0,
        avg_order_value_12m: 50_000_000.0 / 24.0,
        orders_per_month_12m: 2.0,
        margin_12m: Some(10_000_000.0),
        margin_rate_12m: Some(0.2),
        on_time_payment_ratio: Some(0.9),
        avg_days_late: Some(3.0),
        max_days_late: Some(12.0),
        days_since_last_order: Some(20.0),
        tenure_days: 700.0,
        share_of_wallet: Some(0.3),
        growth_3m: Some(0.1),
        growth_streak_months: 1.0,
        ..Indicators::default()
    };
    let mut exact = 0;
    let mut below_unrounded = 0;
    for case in CASES.iter() {
        let p = &case.policy;
        for ind in [Indicators::default(), middling] {
            for (pick, &lever) in case.levers.iter().enumerate() {
                exact += check_band_edges(case, &ind, pick).unwrap();
                for (i, m) in band_starts(p, &ind).into_iter().enumerate() {
                    let Some((_, edge)) = bisect_edge(p, &ind, lever, m) else {
                        continue;
                    };
                    let eval = p.evaluate(&edge);
                    let e = p.explain(&edge, eval.tier);
                    let unrounded: f64 = e.indicators.iter().map(|t| t.contribution).sum::<f64>()
                        + e.assessments.iter().map(|a| a.contribution).sum::<f64>()
                        - e.penalty;
                    if eval.score == m && unrounded < m {
                        below_unrounded += 1;
                        let ceiling = ceiling_of(case, &edge);
                        assert_eq!(eval.tier, i.max(ceiling), "{}: {m}", case.name);
                    }
                }
            }
        }
    }
    assert!(exact >= 10, "only {exact} exact edges");
    assert!(
        below_unrounded >= 10,
        "only {below_unrounded} edges below unrounded"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_policy_scores_in_hundredths_within_bounds_and_explains_what_it_evaluates(
        ind in indicators(),
    ) {
        for case in CASES.iter() {
            check_evaluation(case, &ind)?;
        }
    }

    #[test]
    fn following_the_advice_reaches_the_next_tier(
        ind in indicators(),
        held_better_by in 0usize..4,
    ) {
        for case in CASES.iter() {
            let tier = case.policy.evaluate(&ind).tier;
            // The evaluated tier, and a better one hysteresis may hold.
            check_advice(case, &ind, tier)?;
            check_advice(case, &ind, tier.saturating_sub(held_better_by))?;
        }
    }

    #[test]
    fn a_score_shown_as_a_band_edge_is_in_that_band(
        ind in indicators(),
        pick in 0usize..32,
    ) {
        for case in CASES.iter() {
            check_band_edges(case, &ind, pick)?;
        }
    }

    #[test]
    fn raising_a_better_higher_indicator_never_lowers_score_or_tier(
        ind in indicators(),
        step in prop_oneof![Just(1e-9), 0.0..0.2f64, 0.0..5.0f64],
    ) {
        for case in CASES.iter() {
            check_monotone(case, &ind, step)?;
        }
    }

    #[test]
    fn decisions_stay_within_the_configured_tiers(
        ind in indicators(),
        held in 0usize..8,
        held_days in 0i64..120,
    ) {
        for case in CASES.iter() {
            check_decide(case, &ind, held, held_days)?;
        }
    }

    #[test]
    fn reasons_are_sorted_bounded_and_nonzero(
        old in indicators(),
        new in indicators(),
        k in 0usize..8,
    ) {
        for case in CASES.iter() {
            check_reasons(case, &old, &new, k)?;
        }
    }
}

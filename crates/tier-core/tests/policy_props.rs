//! One property harness every scoring method must pass, run against both
//! shipped policies and the valid fixtures: for any plausible indicators,
//! the score is finite and within 0..=100, the tier is a configured one,
//! `evaluate` agrees with `explain`, decisions stay within the configured
//! tiers and apply upgrades at once, and raising an indicator that is
//! "better higher" (or lowering one that is "better lower") never lowers
//! the score or the tier.
//!
//! The direction of each indicator is read from the policy text itself
//! (parts' `higher_is_better`, rules' operators), independently of the
//! implementation under test.

// Test helpers may panic: a failed lookup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use tier_core::policy::{Policy, TierAssignment};
use tier_core::time::date;
use tier_core::{IndicatorName, Indicators, Severity, Timestamp};

struct Case {
    name: &'static str,
    policy: Policy,
    /// `(indicator, higher_is_better)` for every indicator the policy uses.
    directions: Vec<(IndicatorName, bool)>,
}

fn directions_of(src: &str) -> Vec<(IndicatorName, bool)> {
    let doc: toml::Table = src.parse().unwrap();
    let method = doc["method"].as_table().unwrap();
    let mut out = Vec::new();
    let parse = |v: &toml::Value| IndicatorName::parse(v.as_str().unwrap()).unwrap();
    if let Some(dims) = method.get("dimensions").and_then(toml::Value::as_array) {
        for dim in dims {
            for part in dim["parts"].as_array().unwrap() {
                let higher = part["higher_is_better"].as_bool().unwrap();
                out.push((parse(&part["indicator"]), higher));
            }
        }
    }
    if let Some(rules) = method.get("rules").and_then(toml::Value::as_array) {
        for rule in rules {
            for c in rule["all"].as_array().unwrap() {
                match c["op"].as_str().unwrap() {
                    ">" | ">=" => out.push((parse(&c["indicator"]), true)),
                    "<" | "<=" => out.push((parse(&c["indicator"]), false)),
                    _ => {}
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    let fixture = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    };
    let sources: [(&'static str, String); 5] = [
        (
            "default",
            include_str!("../../../deploy/policy/default.toml").to_owned(),
        ),
        (
            "retail-rules",
            include_str!("../../../deploy/policy/retail-rules.toml").to_owned(),
        ),
        ("valid_weighted", fixture("valid_weighted.toml")),
        ("valid_rules", fixture("valid_rules.toml")),
        ("thresholds", fixture("thresholds.toml")),
    ];
    sources
        .into_iter()
        .map(|(name, src)| Case {
            name,
            policy: Policy::from_toml_str(&src).unwrap(),
            directions: directions_of(&src),
        })
        .collect()
});

fn set(ind: &mut Indicators, name: IndicatorName, v: f64) {
    let field = match name {
        IndicatorName::OrderAmount12m => &mut ind.order_amount_12m,
        IndicatorName::OrderCount12m => &mut ind.order_count_12m,
        IndicatorName::AvgOrderValue12m => &mut ind.avg_order_value_12m,
        IndicatorName::OrdersPerMonth12m => &mut ind.orders_per_month_12m,
        IndicatorName::Margin12m => &mut ind.margin_12m,
        IndicatorName::MarginRate12m => &mut ind.margin_rate_12m,
        IndicatorName::OnTimePaymentRatio => &mut ind.on_time_payment_ratio,
        IndicatorName::AvgDaysLate => &mut ind.avg_days_late,
        IndicatorName::MaxDaysLate => &mut ind.max_days_late,
        IndicatorName::OverdueAmount => &mut ind.overdue_amount,
        IndicatorName::OpenComplaints => &mut ind.open_complaints,
        IndicatorName::Complaints12m => &mut ind.complaints_12m,
        IndicatorName::ComplaintsWeighted12m => &mut ind.complaints_weighted_12m,
        IndicatorName::DaysSinceLastOrder => &mut ind.days_since_last_order,
        IndicatorName::TenureDays => &mut ind.tenure_days,
        IndicatorName::ShareOfWallet => {
            ind.share_of_wallet = Some(v);
            return;
        }
        IndicatorName::Growth3m => &mut ind.growth_3m,
    };
    *field = v;
}

/// Money in fen: often zero, up to 500 million CNY.
fn money() -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(0.0), 6 => 0.0..5e10f64]
}

prop_compose! {
    fn indicators()(
        (amount, margin_rate, orders_per_month, active_months) in
            (money(), -0.5..0.95f64, 0.0..40.0f64, 1.0..=12.0f64),
        (on_time, avg_late, extra_late, overdue) in
            (prop_oneof![1 => Just(1.0), 3 => 0.0..=1.0f64], 0.0..120.0f64, 0.0..200.0f64, money()),
        (by_severity, open, days_since, tenure) in
            (prop::array::uniform5(0u32..6), 0u32..8, 0.0..400.0f64, 0.0..4000.0f64),
        (share_of_wallet, growth) in (prop::option::of(0.0..2.0f64), -1.0..=10.0f64),
    ) -> Indicators {
        let count = (orders_per_month * active_months).round();
        let complaints: u32 = by_severity.iter().sum();
        let weighted: u32 = Severity::ALL.iter().map(|s| by_severity[s.index()] * s.weight()).sum();
        Indicators {
            order_amount_12m: amount,
            order_count_12m: count,
            avg_order_value_12m: if count > 0.0 { amount / count } else { 0.0 },
            orders_per_month_12m: orders_per_month,
            margin_12m: amount * margin_rate,
            margin_rate_12m: if amount > 0.0 { margin_rate } else { 0.0 },
            on_time_payment_ratio: on_time,
            avg_days_late: avg_late,
            max_days_late: avg_late + extra_late,
            overdue_amount: overdue,
            open_complaints: f64::from(open.min(complaints)),
            complaints_12m: f64::from(complaints),
            complaints_weighted_12m: f64::from(weighted),
            days_since_last_order: days_since,
            tenure_days: tenure,
            share_of_wallet,
            growth_3m: growth,
            complaints_by_severity_12m: by_severity,
        }
    }
}

fn check_evaluation(case: &Case, ind: &Indicators) -> Result<(), TestCaseError> {
    let p = &case.policy;
    let eval = p.evaluate(ind);
    prop_assert!(
        eval.score.is_finite(),
        "{}: score {}",
        case.name,
        eval.score
    );
    prop_assert!(
        (0.0..=100.0).contains(&eval.score),
        "{}: score {}",
        case.name,
        eval.score
    );
    prop_assert!(
        eval.tier < p.tiers().len(),
        "{}: tier {}",
        case.name,
        eval.tier
    );
    // Evaluating is pure.
    prop_assert_eq!(p.evaluate(ind), eval);

    let e = p.explain(ind, eval.tier);
    prop_assert_eq!(e.score, eval.score, "{}", case.name);
    prop_assert_eq!(&e.tier, &p.tiers()[eval.tier].name, "{}", case.name);
    prop_assert_eq!(e.next_tier.is_some(), eval.tier > 0);
    let sum: f64 = e.indicators.iter().map(|i| i.contribution).sum();
    let rebuilt = (sum - e.penalty).clamp(0.0, 100.0);
    prop_assert!(
        (rebuilt - eval.score).abs() < 1e-9,
        "{}: contributions {sum} - penalty {} != score {}",
        case.name,
        e.penalty,
        eval.score
    );
    for i in &e.indicators {
        prop_assert!((0.0..=100.0).contains(&i.points), "{}: {i:?}", case.name);
        prop_assert!((i.contribution - i.points * i.weight / 100.0).abs() < 1e-9);
    }
    Ok(())
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
        set(&mut better, name, moved);
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
    // One more complaint never helps.
    let mut worse = *ind;
    worse.complaints_by_severity_12m[Severity::High.index()] += 1;
    prop_assert!(p.evaluate(&worse).score <= before.score);
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
        tier: p.tiers()[held].name.clone(),
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
    if held_days < i64::from(p.hysteresis().min_days_in_tier) {
        prop_assert!(
            decided <= held,
            "{}: downgraded before the minimum days",
            case.name
        );
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
    for pair in reasons.windows(2) {
        prop_assert!(
            pair[0].delta.abs() >= pair[1].delta.abs(),
            "{}: {reasons:?}",
            case.name
        );
    }
    prop_assert!(case.policy.reasons(new, new, k).is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_policy_scores_within_bounds_and_explains_what_it_evaluates(ind in indicators()) {
        for case in CASES.iter() {
            check_evaluation(case, &ind)?;
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

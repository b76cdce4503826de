//! The `abc` method (proportional ranking as the primary tier): parsing
//! with line and field, cut points from a ranked population giving each
//! tier its share, equal figures holding equal tiers, the lowest tier for
//! the unranked and the unknown, and explanations naming the cut point.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::indicators::Indicators;
use tier_core::policy::Policy;
use tier_core::rank::{Direction, Ranking};

fn text(extra: &str) -> String {
    format!(
        r#"
version = "abc-1"
currency = "CNY"
window_months = 12

[method]
kind = "abc"
by = "order_amount_12m"
shares = [20, 30, 50]
{extra}

[[tiers]]
name = "A"
priority = 1
complaint_sla_hours = 72
visit_every_days = 30
payment_terms_days = 60

[[tiers]]
name = "B"
priority = 2
complaint_sla_hours = 96
visit_every_days = 90
payment_terms_days = 45

[[tiers]]
name = "C"
priority = 3
complaint_sla_hours = 120
visit_every_days = 180
payment_terms_days = 30
"#
    )
}

fn policy() -> Policy {
    Policy::from_toml_str(&text("")).unwrap()
}

fn revenue(v: f64) -> Indicators {
    Indicators {
        order_amount_12m: v,
        ..Indicators::default()
    }
}

fn ranked(p: &Policy, values: &[f64]) -> Policy {
    let ranking = Ranking::from_values(
        Direction::HigherIsBetter,
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("c{i:02}"), *v)),
    );
    p.with_rank_cuts(p.rank_cuts_of(&ranking).unwrap())
}

fn tier_of(p: &Policy, v: f64) -> String {
    p.tiers()[p.evaluate(&revenue(v)).tier].name.clone()
}

#[test]
fn each_tier_holds_its_share_of_the_ranked_population() {
    let p = policy();
    assert_eq!(p.method_kind(), "abc");
    assert_eq!(p.rank_recut_seconds(), Some(10));
    // Not ranked yet: everyone in the lowest tier.
    assert!(p.rank_cuts().is_empty());
    assert_eq!(tier_of(&p, 1e12), "C");

    let values: Vec<f64> = (1..=10).map(|i| f64::from(i) * 1000.0).collect();
    let p = ranked(&p, &values);
    assert_eq!(p.rank_cuts(), [9000.0, 6000.0]);
    let tiers: Vec<String> = values.iter().map(|v| tier_of(&p, *v)).collect();
    let count = |t: &str| tiers.iter().filter(|x| *x == t).count();
    assert_eq!((count("A"), count("B"), count("C")), (2, 3, 5));
    // Scores: the band's height on the ladder.
    assert_eq!(p.evaluate(&revenue(10_000.0)).score, 100.0);
    assert_eq!(p.evaluate(&revenue(7_000.0)).score, 50.0);
    assert_eq!(p.evaluate(&revenue(1_000.0)).score, 0.0);
    // A newcomer is graded against the frozen cut points.
    assert_eq!(tier_of(&p, 9_000.0), "A");
    assert_eq!(tier_of(&p, 8_999.0), "B");
}

#[test]
fn equal_figures_hold_equal_tiers() {
    // a=10, b=c=d=8, e=5; 20/30/50 of 5: A one, B two by position, but
    // d ties with c at B's cut point and joins B.
    let p = ranked(&policy(), &[10.0, 8.0, 8.0, 8.0, 5.0]);
    let tiers: Vec<String> = [10.0, 8.0, 8.0, 8.0, 5.0]
        .iter()
        .map(|v| tier_of(&p, *v))
        .collect();
    assert_eq!(tiers, ["A", "B", "B", "B", "C"]);
}

#[test]
fn lower_is_better_and_unknown_figures() {
    let p = Policy::from_toml_str(
        &text("higher_is_better = false").replace("order_amount_12m", "days_since_last_order"),
    )
    .unwrap();
    let ranking = Ranking::from_values(
        Direction::LowerIsBetter,
        (0..10).map(|i| (format!("c{i}"), f64::from(i * 10))),
    );
    let p = p.with_rank_cuts(p.rank_cuts_of(&ranking).unwrap());
    let days = |d: Option<f64>| Indicators {
        days_since_last_order: d,
        ..Indicators::default()
    };
    assert_eq!(p.tiers()[p.evaluate(&days(Some(5.0))).tier].name, "A");
    assert_eq!(p.tiers()[p.evaluate(&days(Some(35.0))).tier].name, "B");
    assert_eq!(p.tiers()[p.evaluate(&days(Some(45.0))).tier].name, "C");
    assert_eq!(p.tiers()[p.evaluate(&days(Some(90.0))).tier].name, "C");
    // Never ordered: not ranked, the lowest tier.
    assert_eq!(p.tiers()[p.evaluate(&days(None)).tier].name, "C");
    assert_eq!(p.rank_value(&days(None)), None);
}

#[test]
fn the_explanation_names_the_cut_point_to_reach() {
    let values: Vec<f64> = (1..=10).map(|i| f64::from(i) * 100_000.0).collect();
    let p = ranked(&policy(), &values);
    let ind = revenue(500_000.0);
    let e = p.explain(&ind, p.evaluate(&ind).tier);
    assert_eq!(e.tier, "C");
    assert!(
        e.band.starts_with("bottom 50% by order_amount_12m"),
        "{}",
        e.band
    );
    assert!(
        e.gap.contains("to reach B: order_amount_12m >= "),
        "{}",
        e.gap
    );
    assert_eq!(e.advice.len(), 1);
    assert_eq!(e.advice[0].target, 600_000.0);
    // Following the advice reaches B.
    assert_eq!(tier_of(&p, e.advice[0].target), "B");
    let top = revenue(1_000_000.0);
    let e = p.explain(&top, 0);
    assert_eq!(e.gap, "already in the top tier");
    assert!(e.band.starts_with("top 20%"), "{}", e.band);
}

#[test]
fn bad_abc_policies_are_refused_with_line_and_field() {
    let bad = |from: &str, to: &str| {
        let t = text("").replacen(from, to, 1);
        Policy::from_toml_str(&t).unwrap_err()
    };
    let e = bad("by = \"order_amount_12m\"", "by = \"score\"");
    assert_eq!(e.field, "method.by");
    assert!(
        e.line.is_some() && e.message.contains("[[gradings]]"),
        "{e}"
    );
    let e = bad("shares = [20, 30, 50]", "shares = [20, 80]");
    assert_eq!(e.field, "method.shares");
    assert!(e.message.contains("2 shares for 3 tiers"), "{e}");
    let e = bad("shares = [20, 30, 50]", "shares = [20, 30, 40]");
    assert!(e.message.contains("sum to 100"), "{e}");
    let e = bad("priority = 1", "priority = 1\nmin_score = 80");
    assert_eq!(e.field, "tiers[0].min_score");
    let e = bad("by = \"order_amount_12m\"", "by = \"revenue\"");
    assert_eq!(e.field, "method.by");
    let e = Policy::from_toml_str(&text("recut_seconds = 0")).unwrap_err();
    assert_eq!(e.field, "method.recut_seconds");
}

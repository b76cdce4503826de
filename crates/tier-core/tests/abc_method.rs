//! The `abc` method (proportional ranking as the primary tier): parsing
//! with line and field, cut points from a ranked population giving each
//! tier its share, equal figures holding equal tiers, the lowest tier for
//! the unranked and the unknown, and explanations naming the cut point;
//! `by = "score"`: the population ranked by a weighted score the method
//! declares, the score reported and explained, advice that reaches the
//! next band.

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

/// A customer who bought in the window, with revenue `v`.
fn revenue(v: f64) -> Indicators {
    Indicators {
        order_amount_12m: v,
        order_count_12m: 1.0,
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
        order_count_12m: 1.0,
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
    // Ranking by the score needs the score's dimensions.
    let e = bad("by = \"order_amount_12m\"", "by = \"score\"");
    assert_eq!(e.field, "method.dimensions");
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("[[method.dimensions]]"), "{e}");
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

/// An abc method ranking by a weighted score: one dimension, the 12-month
/// revenue, 0 to 1,000,000 fen for 0 to 100 points.
fn by_score(extra: &str) -> String {
    text(extra)
        .replacen("by = \"order_amount_12m\"", "by = \"score\"", 1)
        .replacen(
            "[[tiers]]",
            r#"[[method.dimensions]]
name = "value"
weight = 100
parts = [
  { indicator = "order_amount_12m", share = 100, higher_is_better = true, curve = [[0, 0], [1000000, 100]] },
]

[[tiers]]"#,
            1,
        )
}

/// `p` cut over the customers `ind` as the engine ranks them: by
/// [`Policy::rank_value`].
fn ranked_by_value(p: &Policy, ind: &[Indicators]) -> Policy {
    let (_, direction) = p.rank_by().unwrap();
    let ranking = Ranking::from_values(
        direction,
        ind.iter()
            .enumerate()
            .map(|(i, x)| (i, p.rank_value(x).unwrap_or(f64::NAN))),
    );
    p.with_rank_cuts(p.rank_cuts_of(&ranking).unwrap())
}

#[test]
fn by_score_ranks_the_weighted_score_and_reports_it() {
    let p = Policy::from_toml_str(&by_score("")).unwrap();
    assert_eq!(p.method_kind(), "abc");
    assert!(matches!(
        p.rank_by(),
        Some((None, Direction::HigherIsBetter))
    ));
    // Revenue 100,000 .. 1,000,000: scores 10 .. 100.
    let ind: Vec<Indicators> = (1..=10)
        .map(|i| revenue(f64::from(i) * 100_000.0))
        .collect();
    assert_eq!(p.rank_value(&ind[4]), Some(50.0));
    let p = ranked_by_value(&p, &ind);
    assert_eq!(p.rank_cuts(), [90.0, 60.0]);
    let tiers: Vec<&str> = ind
        .iter()
        .map(|x| p.tiers()[p.evaluate(x).tier].name.as_str())
        .collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "C", "B", "B", "B", "A", "A"]);
    // The score reported is the weighted score, not the band's height.
    let middling = revenue(550_000.0);
    let eval = p.evaluate(&middling);
    assert_eq!((eval.score, eval.tier), (55.0, 2));
    // The explanation shows the score's contributions, the cut point to
    // reach, and advice that reaches it.
    let e = p.explain(&middling, 2);
    assert_eq!(e.score, 55.0);
    assert_eq!(e.indicators.len(), 1);
    assert_eq!(e.indicators[0].contribution, 55.0);
    assert!(
        e.band.starts_with("bottom 50% by score (score < 60)"),
        "{}",
        e.band
    );
    assert_eq!(
        e.gap,
        "to reach B: score >= 60 (now 55), as the population ranks today"
    );
    assert_eq!(e.advice.len(), 1, "{:?}", e.advice);
    // The least revenue whose score shows as 60.00 (59.995 rounds up).
    assert_eq!(e.advice[0].target, 599_950.0);
    let after = revenue(e.advice[0].target);
    assert_eq!(p.evaluate(&after).score, 60.0);
    assert_eq!(p.tiers()[p.evaluate(&after).tier].name, "B");
    // Reasons name the score's indicators.
    let reasons = p.reasons(&revenue(500_000.0), &middling, 3);
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].name, "order_amount_12m");
    assert_eq!(reasons[0].delta, 5.0);
}

#[test]
fn by_score_gives_each_tier_its_share_within_one_customer() {
    let p = Policy::from_toml_str(&by_score("")).unwrap();
    let shares = [0.2, 0.3, 0.5];
    for n in 1..=40u32 {
        // Distinct revenues, in a scrambled order.
        let ind: Vec<Indicators> = (0..n)
            .map(|i| revenue(f64::from((i * 7919) % n + 1) * 10_000.0))
            .collect();
        let cut = ranked_by_value(&p, &ind);
        let mut counts = [0usize; 3];
        for x in &ind {
            counts[cut.evaluate(x).tier] += 1;
        }
        for (t, share) in shares.iter().enumerate() {
            let want = share * f64::from(n);
            assert!(
                (counts[t] as f64 - want).abs() <= 1.0,
                "n = {n}: {counts:?} against {shares:?}"
            );
        }
    }
}

#[test]
fn by_score_parse_errors_name_line_and_field() {
    // higher_is_better = false makes no sense for a score.
    let e = Policy::from_toml_str(&by_score("higher_is_better = false")).unwrap_err();
    assert_eq!(e.field, "method.higher_is_better");
    assert!(e.line.is_some(), "{e}");
    // The dimensions are checked as the weighted method's.
    let e = Policy::from_toml_str(&by_score("").replacen("weight = 100", "weight = 90", 1))
        .unwrap_err();
    assert_eq!(e.field, "method.dimensions[0].weight");
    assert!(e.message.contains("sum to 90"), "{e}");
    // Dimensions or a penalty with an indicator ranked: refused, not ignored.
    let with_dims = by_score("").replacen("by = \"score\"", "by = \"order_amount_12m\"", 1);
    let e = Policy::from_toml_str(&with_dims).unwrap_err();
    assert_eq!(e.field, "method.dimensions");
    assert!(
        e.line.is_some() && e.message.contains("by = \"score\" only"),
        "{e}"
    );
    let with_penalty =
        text("[method.complaint_penalty]\nlow = 1\nmedium = 2\nhigh = 4\ncritical = 8\nmax = 20");
    let e = Policy::from_toml_str(&with_penalty).unwrap_err();
    assert_eq!(e.field, "method.complaint_penalty");
}

#[test]
fn a_tier_held_by_hysteresis_says_so_in_its_explanation() {
    // Given ten customers ranked by revenue (1,000 to 10,000), when one
    // now at 5,000 (C by today's cut points) is explained in the A it
    // holds, then the gap says hysteresis holds it and where it stands.
    let values: Vec<f64> = (1..=10).map(|i| f64::from(i) * 1000.0).collect();
    let p = ranked(&policy(), &values);
    let ind = revenue(5_000.0);
    assert_eq!(p.evaluate(&ind).tier, 2);
    let e = p.explain(&ind, 0);
    assert!(e.gap.contains("held by hysteresis"), "{}", e.gap);
    assert!(e.gap.contains("5,000"), "{}", e.gap);
    // Not for a tier the figures reach.
    let e = p.explain(&revenue(10_000.0), 0);
    assert!(!e.gap.contains("hysteresis"), "{}", e.gap);
}

/// [`text`] ranking by the 12-month margin, as `abc-margin.toml` does.
fn by_margin() -> Policy {
    Policy::from_toml_str(&text("").replacen("by = \"order_amount_12m\"", "by = \"margin_12m\"", 1))
        .unwrap()
}

/// A customer who bought in the window at a margin of `v`.
fn margin(v: f64) -> Indicators {
    Indicators {
        margin_12m: Some(v),
        order_count_12m: 1.0,
        ..Indicators::default()
    }
}

/// A customer with no order in the window, as the projection gives it: a
/// margin of 0 (a prospect, a lapsed customer).
fn nothing() -> Indicators {
    Indicators {
        margin_12m: Some(0.0),
        ..Indicators::default()
    }
}

fn tiers_of<'a>(p: &'a Policy, ind: &[Indicators]) -> Vec<&'a str> {
    ind.iter()
        .map(|x| p.tiers()[p.evaluate(x).tier].name.as_str())
        .collect()
}

#[test]
fn no_revenue_is_not_lifted_into_b_by_a_tie_at_zero() {
    // Given ten customers ranked by margin as the engine ranks them, five
    // who bought (5,000, 4,000, 3,000, 2,000 and -100) and five with no
    // order in the window (a margin of 0), then the five who bought
    // nothing hold C: they are not ranked, and the shares are those of the
    // five who bought (A one, B two, C two). Ranked, their 0 was B's cut
    // point (not the worst value, which is -100) and all five held B.
    let mut ind: Vec<Indicators> = [5000.0, 4000.0, 3000.0, 2000.0, -100.0]
        .iter()
        .map(|v| margin(*v))
        .collect();
    ind.extend((0..5).map(|_| nothing()));
    let p = ranked_by_value(&by_margin(), &ind);
    assert_eq!(p.rank_cuts(), [5000.0, 3000.0]);
    assert_eq!(
        tiers_of(&p, &ind),
        ["A", "B", "B", "C", "C", "C", "C", "C", "C", "C"]
    );
    // A 0 that was bought at cost is ranked; a 0 of no order never is.
    assert_eq!(p.rank_value(&margin(0.0)), Some(0.0));
    assert_eq!(p.rank_value(&nothing()), None);
    // Whatever its figure: a lapsed customer's return in the window of an
    // older order is no margin to rank either.
    let returned = Indicators {
        margin_12m: Some(4000.0),
        ..nothing()
    };
    assert_eq!(p.rank_value(&returned), None);
    assert_eq!(tiers_of(&p, &[returned]), ["C"]);
    // The explanation says why it holds C, and the advice (an order, and
    // B's cut point) followed reaches B.
    let e = p.explain(&nothing(), 2);
    assert!(
        e.gap
            .starts_with("no order in the window: not ranked, so the lowest tier; once it buys, to reach B: margin_12m >= 3,000"),
        "{}",
        e.gap
    );
    let mut after = nothing();
    for a in &e.advice {
        after.set(a.indicator, Some(a.target));
    }
    assert_eq!(e.advice.len(), 2, "{:?}", e.advice);
    assert_eq!(tiers_of(&p, &[after]), ["B"]);

    // Two who bought among ten: the shares are of two (A's 20% rounds to
    // nobody, B one, C one), so 4,000 is C, not the A the eight
    // non-buyers made it; A's band is empty in today's ranking.
    let mut ind = vec![margin(5000.0), margin(4000.0)];
    ind.extend((0..8).map(|_| nothing()));
    let p = ranked_by_value(&by_margin(), &ind);
    assert_eq!(
        tiers_of(&p, &ind),
        ["B", "C", "C", "C", "C", "C", "C", "C", "C", "C"]
    );
    assert!(p.explain(&margin(5000.0), 1).gap.contains("empty"));

    // A tie above the worst value bought still goes to the better band.
    let mut ind: Vec<Indicators> = [
        5000.0, 4000.0, 3000.0, 3000.0, 3000.0, 3000.0, 3000.0, 1000.0,
    ]
    .iter()
    .map(|v| margin(*v))
    .collect();
    ind.extend((0..2).map(|_| nothing()));
    let p = ranked_by_value(&by_margin(), &ind);
    assert_eq!(
        tiers_of(&p, &ind),
        ["A", "A", "B", "B", "B", "B", "B", "C", "C", "C"]
    );
    // Everyone who bought at the same value: one tier for all, the lowest
    // (a tie at the worst value ranked keeps the lowest band the shares
    // give, or ten customers buying alike would all be A).
    let ind = vec![margin(3000.0); 10];
    let p = ranked_by_value(&by_margin(), &ind);
    assert_eq!(tiers_of(&p, &ind), ["C"; 10]);
    // Nobody bought: nobody ranked, everyone C.
    let ind = vec![nothing(); 10];
    let p = ranked_by_value(&by_margin(), &ind);
    assert_eq!(tiers_of(&p, &ind), ["C"; 10]);
}

#[test]
fn by_score_ranks_only_customers_who_bought() {
    // Given a score where half the points are for paying on time and a
    // customer with no invoice due earns them all (missing_points = 100),
    // five customers who bought (revenue 200,000 .. 1,000,000: scores 60
    // .. 100) and twenty prospects (score 50: a score exists for everyone),
    // then the shares are those of the five who bought (A one, B two, C
    // two), not of 25: ranked, the prospects made all five the top 20% (A)
    // and held B's band themselves. A prospect's score is still reported.
    let text = by_score("").replacen(
        r#"weight = 100
parts = [
  { indicator = "order_amount_12m", share = 100, higher_is_better = true, curve = [[0, 0], [1000000, 100]] },
]"#,
        r#"weight = 50
parts = [
  { indicator = "order_amount_12m", share = 100, higher_is_better = true, curve = [[0, 0], [1000000, 100]] },
]

[[method.dimensions]]
name = "credit"
weight = 50
parts = [
  { indicator = "on_time_payment_ratio", share = 100, higher_is_better = true, curve = [[0.5, 0], [1.0, 100]], missing_points = 100 },
]"#,
        1,
    );
    let p = Policy::from_toml_str(&text).unwrap();
    let prospect = Indicators::default();
    assert_eq!(p.evaluate(&prospect).score, 50.0);
    assert_eq!(p.rank_value(&prospect), None);
    let mut ind: Vec<Indicators> = (1..=5).map(|i| revenue(f64::from(i) * 200_000.0)).collect();
    ind.extend((0..20).map(|_| prospect));
    let p = ranked_by_value(&p, &ind);
    assert_eq!(p.rank_cuts(), [100.0, 80.0]);
    let tiers = tiers_of(&p, &ind);
    assert_eq!(tiers[..5], ["C", "C", "B", "B", "A"]);
    assert!(tiers[5..].iter().all(|t| *t == "C"));
    let eval = p.evaluate(&prospect);
    assert_eq!((eval.score, eval.tier), (50.0, 2));
    let e = p.explain(&prospect, 2);
    assert!(e.gap.starts_with("no order in the window"), "{}", e.gap);
}

#[test]
fn a_customer_ranked_by_a_figure_time_keeps_leaves_the_ranking_when_its_last_order_leaves_the_window()
 {
    // Ranked by purchase potential (a profile figure no order moves): the
    // day its only order leaves the window the customer has no order in
    // it, is no longer ranked and falls to the lowest tier with cause
    // TIME, though the figure it is ranked by never changed (that day is
    // due: the lifecycle reads the last order in the window).
    use tier_core::state::{Cause, CustomerState};
    use tier_core::time::date;
    use tier_core::{Event, EventKind, Money, ProfileUpdate};
    let p = Policy::from_toml_str(
        &text("").replace("by = \"order_amount_12m\"", "by = \"purchase_potential\""),
    )
    .unwrap();
    let values: Vec<f64> = (1..=10).map(|i| f64::from(i) * 100_000.0).collect();
    let p = ranked(&p, &values);
    let t0 = date(2026, 3, 2);
    let event = |id: &str, kind| Event {
        event_id: id.into(),
        customer_id: "c".into(),
        occurred_at: t0,
        source: String::new(),
        kind,
    };
    let mut s = CustomerState::default();
    s.process(
        "c",
        &event(
            "p1",
            EventKind::ProfileUpdated(ProfileUpdate {
                purchase_potential: Some(Money(2_000_000)),
                ..ProfileUpdate::default()
            }),
        ),
        &p,
    );
    s.process(
        "c",
        &event(
            "o1",
            EventKind::OrderPlaced {
                order_id: "o1".into(),
                amount: Money(1_000),
                cost: None,
            },
        ),
        &p,
    );
    assert_eq!(s.tier(), Some("A"));
    let (changes, done) = s.advance_to("c", &p, t0.plus_days(400), 1_000);
    assert!(done);
    assert_eq!(s.tier(), Some("C"), "{changes:?}");
    let last = changes.last().unwrap();
    assert_eq!(last.cause, Cause::Time);
    // At the start of the day the order leaves the window, not later.
    assert_eq!(last.changed_at, date(2027, 3, 2), "{last:?}");
}

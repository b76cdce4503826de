//! The scoring rules as readable examples: given a policy and a customer,
//! when scored (or re-decided later), then the tier is ...
//!
//! Figures are DOMAIN.md's own examples (example A thresholds, the retail
//! rules) and the calibration customers documented in
//! `deploy/policy/default.toml`.

// Test helpers may panic: a failed lookup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tier_core::indicators::Unit;
use tier_core::policy::{Advice, Evaluation, Policy, TierAssignment};
use tier_core::time::date;
use tier_core::{IndicatorName, Indicators, Severity, Timestamp};

const RETAIL: &str = include_str!("../../../deploy/policy/retail-rules.toml");

fn fixture(name: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    Policy::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn retail() -> Policy {
    Policy::from_toml_str(RETAIL).unwrap()
}

// --- given / when / then ----------------------------------------------------

/// A customer described in business terms; money in CNY, stored in fen.
#[derive(Clone, Copy, Debug)]
struct Customer(Indicators);

/// A customer whose invoices fell due and were all paid on time.
fn customer() -> Customer {
    Customer(Indicators {
        on_time_payment_ratio: Some(1.0),
        avg_days_late: Some(0.0),
        max_days_late: Some(0.0),
        ..Indicators::default()
    })
}

/// A customer with no history at all: every unknowable figure unknown.
fn newcomer() -> Customer {
    Customer(Indicators::default())
}

impl Customer {
    fn buying_cny_a_year(mut self, cny: f64) -> Self {
        self.0.order_amount_12m = cny * 100.0;
        self.0.days_since_last_order = Some(self.0.days_since_last_order.unwrap_or(10.0));
        self.refresh()
    }

    fn at_margin(mut self, rate: f64) -> Self {
        self.0.margin_rate_12m = Some(rate);
        self.refresh()
    }

    /// No invoice has fallen due yet: the credit figures are unknown.
    fn with_nothing_due_yet(mut self) -> Self {
        self.0.on_time_payment_ratio = None;
        self.0.avg_days_late = None;
        self.0.max_days_late = None;
        self
    }

    fn orders_a_month(mut self, n: f64) -> Self {
        self.0.orders_per_month_12m = n;
        self.0.order_count_12m = n * 12.0;
        self.refresh()
    }

    fn paying(mut self, on_time_ratio: f64, avg_days_late: f64) -> Self {
        self.0.on_time_payment_ratio = Some(on_time_ratio);
        self.0.avg_days_late = Some(avg_days_late);
        self.0.max_days_late = Some(avg_days_late * 2.0);
        self
    }

    /// `n` complaints of a severity opened in the window, still open.
    fn with_complaints(mut self, severity: Severity, n: u32) -> Self {
        self.0.complaints_by_severity_12m[severity.index()] += n;
        self.0.complaints_12m += f64::from(n);
        self.0.complaints_weighted_12m += f64::from(n * severity.weight());
        self.0.open_complaints += f64::from(n);
        self
    }

    /// `n` of the open complaints of a severity resolved since.
    fn resolving(mut self, severity: Severity, n: u32) -> Self {
        self.0.resolved_by_severity_12m[severity.index()] += n;
        self.0.open_complaints -= f64::from(n);
        self
    }

    fn with_order_count(mut self, n: f64) -> Self {
        self.0.order_count_12m = n;
        self
    }

    fn refresh(mut self) -> Self {
        let i = &mut self.0;
        let amount = i.order_amount_12m;
        i.margin_12m = i.margin_rate_12m.map(|rate| amount * rate);
        i.avg_order_value_12m = if i.order_count_12m > 0.0 {
            i.order_amount_12m / i.order_count_12m
        } else {
            0.0
        };
        self
    }
}

struct Given {
    policy: Policy,
}

fn given(policy: Policy) -> Given {
    Given { policy }
}

struct Then<'a> {
    policy: &'a Policy,
    what: String,
    eval: Evaluation,
}

impl Given {
    fn when_scored(&self, c: Customer) -> Then<'_> {
        Then {
            policy: &self.policy,
            what: format!("{c:?}"),
            eval: self.policy.evaluate(&c.0),
        }
    }

    /// The tier `decide` holds for a customer who entered `held` on
    /// `since`, re-evaluated at `now` with `score` (tier from the bands,
    /// no gate failing).
    fn holding(&self, held: &str, since: Timestamp) -> Holding<'_> {
        Holding {
            policy: &self.policy,
            current: TierAssignment {
                tier: held.into(),
                score: 90.0,
                since,
            },
        }
    }
}

impl Then<'_> {
    #[track_caller]
    fn then_tier(self, name: &str) -> Self {
        let got = &self.policy.tiers()[self.eval.tier].name;
        assert_eq!(got, name, "score {} for {}", self.eval.score, self.what);
        self
    }

    #[track_caller]
    fn with_score_within(self, lo: f64, hi: f64) -> Self {
        let s = self.eval.score;
        assert!(
            (lo..=hi).contains(&s),
            "score {s} not within {lo}..={hi} for {}",
            self.what
        );
        self
    }
}

struct Holding<'a> {
    policy: &'a Policy,
    current: TierAssignment,
}

impl Holding<'_> {
    #[track_caller]
    fn when_evaluated_at(&self, now: Timestamp, score: f64, evaluated: &str) -> String {
        let tier = self.policy.tier_index(evaluated).unwrap();
        let eval = Evaluation {
            score,
            tier,
            ceiling: 0,
        };
        let held = self.policy.decide(Some(&self.current), eval, now);
        self.policy.tiers()[held].name.clone()
    }
}

// --- DOMAIN.md example A ----------------------------------------------------

#[test]
fn example_a_band_edges_belong_to_the_band_above() {
    // Given bands >= 80 A, 60-79.99 B, 40-59.99 C, < 40 D, and a policy
    // whose score is exactly the order count:
    let g = given(fixture("thresholds.toml"));
    let scored = |score: f64| customer().with_order_count(score);
    g.when_scored(scored(100.0))
        .then_tier("A")
        .with_score_within(100.0, 100.0);
    g.when_scored(scored(80.0))
        .then_tier("A")
        .with_score_within(80.0, 80.0);
    g.when_scored(scored(79.99))
        .then_tier("B")
        .with_score_within(79.99, 79.99);
    // Scores are rounded to hundredths before banding: what shows as 80.00
    // is 80, and 79.99 shows as 79.99.
    g.when_scored(scored(79.996))
        .then_tier("A")
        .with_score_within(80.0, 80.0);
    g.when_scored(scored(79.994))
        .then_tier("B")
        .with_score_within(79.99, 79.99);
    g.when_scored(scored(60.0)).then_tier("B");
    g.when_scored(scored(59.99)).then_tier("C");
    g.when_scored(scored(40.0)).then_tier("C");
    g.when_scored(scored(39.99)).then_tier("D");
    g.when_scored(scored(0.0)).then_tier("D");
    // Capped at both ends of the curve.
    g.when_scored(scored(1e9))
        .then_tier("A")
        .with_score_within(100.0, 100.0);
}

#[test]
fn default_policy_grades_the_calibration_customers() {
    let g = given(Policy::default_policy());
    // A big profitable customer who pays on time is core (A).
    g.when_scored(
        customer()
            .buying_cny_a_year(3_000_000.0)
            .at_margin(0.25)
            .orders_a_month(5.0),
    )
    .then_tier("A")
    .with_score_within(85.0, 95.0);
    g.when_scored(
        customer()
            .buying_cny_a_year(1_500_000.0)
            .at_margin(0.25)
            .orders_a_month(4.0),
    )
    .then_tier("B");
    g.when_scored(
        customer()
            .buying_cny_a_year(800_000.0)
            .at_margin(0.20)
            .orders_a_month(3.0),
    )
    .then_tier("C");
    // A small one (20k CNY a year) is D even paying on time.
    g.when_scored(
        customer()
            .buying_cny_a_year(20_000.0)
            .at_margin(0.20)
            .orders_a_month(1.0),
    )
    .then_tier("D")
    .with_score_within(15.0, 30.0);
    // The same big customer paying every invoice late still scores A's
    // band (credit weighs 10%), but A's credit gate (on time >= 80%)
    // vetoes A: it holds B, the best tier whose gates it meets.
    let always_late = customer()
        .buying_cny_a_year(3_000_000.0)
        .at_margin(0.25)
        .orders_a_month(5.0)
        .paying(0.0, 5.0);
    let late = g.when_scored(always_late).then_tier("B");
    assert!(late.eval.score >= 80.0, "{:?}", late.eval);
    assert_eq!(late.eval.ceiling, 1);
    // No history at all: only the credit part scores, at its neutral 50
    // points (nothing fell due): 10% x 50 = 5.
    g.when_scored(newcomer())
        .then_tier("D")
        .with_score_within(5.0, 5.0);
}

#[test]
fn a_customer_with_no_invoice_due_yet_gets_neutral_credit_points_not_100() {
    // Given the default policy (credit parts: missing_points = 50), when a
    // customer has bought but no invoice has fallen due yet, then credit
    // earns 50 points of 100 (5 of the score's 10 credit points), less than
    // a customer who proved to pay on time and more than a late payer.
    let g = given(Policy::default_policy());
    let buyer = customer()
        .buying_cny_a_year(1_500_000.0)
        .at_margin(0.25)
        .orders_a_month(4.0);
    let proven = g.when_scored(buyer).eval.score;
    let unproven = g.when_scored(buyer.with_nothing_due_yet()).eval.score;
    let late = g.when_scored(buyer.paying(0.5, 30.0)).eval.score;
    assert!(
        (proven - unproven - 5.0).abs() < 0.01 + 1e-9,
        "{proven} vs {unproven}"
    );
    assert!(late < unproven, "{late} vs {unproven}");

    let p = Policy::default_policy();
    let e = p.explain(&buyer.with_nothing_due_yet().0, 1);
    let credit: Vec<_> = e
        .indicators
        .iter()
        .filter(|i| {
            matches!(
                i.name,
                IndicatorName::OnTimePaymentRatio | IndicatorName::AvgDaysLate
            )
        })
        .collect();
    assert_eq!(credit.len(), 2);
    for c in credit {
        assert_eq!((c.value, c.points), (None, 50.0), "{c:?}");
    }
}

#[test]
fn big_orders_of_low_margin_goods_are_worth_less_than_they_look() {
    let g = given(Policy::default_policy());
    let big = customer()
        .buying_cny_a_year(3_000_000.0)
        .orders_a_month(5.0);
    g.when_scored(big.at_margin(0.25)).then_tier("A");
    g.when_scored(big.at_margin(0.03)).then_tier("C");
}

#[test]
fn late_payment_and_complaints_cost_points() {
    let g = given(Policy::default_policy());
    let big = customer()
        .buying_cny_a_year(3_000_000.0)
        .at_margin(0.25)
        .orders_a_month(5.0);
    let on_time = g.when_scored(big).eval.score;
    let late = g.when_scored(big.paying(0.6, 20.0)).eval.score;
    assert!(late < on_time - 5.0, "{late} vs {on_time}");
    // Whole points off a score rounded to hundredths: exact up to the
    // rounding of the sum (one hundredth).
    let off = |score: f64, points: f64| (score - (on_time - points)).abs() <= 0.01 + 1e-9;
    // Two critical complaints: 2 x 15 = 30 points, the cap.
    let two = g
        .when_scored(big.with_complaints(Severity::Critical, 2))
        .then_tier("B")
        .eval
        .score;
    assert!(off(two, 30.0), "{two} vs {on_time}");
    // More complaints cost no more than the cap.
    let capped = g
        .when_scored(big.with_complaints(Severity::Critical, 5))
        .eval
        .score;
    assert!(off(capped, 30.0), "{capped} vs {on_time}");
    // Unspecified severity counts as low (1 point).
    let one = g
        .when_scored(big.with_complaints(Severity::Unspecified, 1))
        .eval
        .score;
    assert!(off(one, 1.0), "{one} vs {on_time}");
    // Under the default policy (resolved_factor 1) resolving does not
    // erase a complaint of the window.
    let resolved = g
        .when_scored(
            big.with_complaints(Severity::Unspecified, 1)
                .resolving(Severity::Unspecified, 1),
        )
        .eval
        .score;
    assert_eq!(resolved, one);
}

#[test]
fn a_resolved_complaint_costs_less_than_an_open_one() {
    // Given a policy with resolved_factor = 0.5 (valid_weighted: a high
    // complaint costs 8 points), when a customer resolves one of two open
    // high complaints, then the penalty drops from 16 to 12 points, and
    // resolving both leaves 8.
    let g = given(fixture("valid_weighted.toml"));
    let c = customer()
        .buying_cny_a_year(600_000.0)
        .at_margin(0.2)
        .orders_a_month(3.0)
        .with_complaints(Severity::High, 2);
    let clean = g
        .when_scored(
            customer()
                .buying_cny_a_year(600_000.0)
                .at_margin(0.2)
                .orders_a_month(3.0),
        )
        .eval
        .score;
    let open = g.when_scored(c).eval.score;
    let one_resolved = g.when_scored(c.resolving(Severity::High, 1)).eval.score;
    let both_resolved = g.when_scored(c.resolving(Severity::High, 2)).eval.score;
    assert!(open < one_resolved && one_resolved < both_resolved && both_resolved < clean);
    let p = fixture("valid_weighted.toml");
    assert_eq!(p.explain(&c.0, 0).penalty, 16.0);
    assert_eq!(
        p.explain(&c.resolving(Severity::High, 1).0, 0).penalty,
        12.0
    );
    assert_eq!(p.explain(&c.resolving(Severity::High, 2).0, 0).penalty, 8.0);
}

// --- DOMAIN.md method 3: retail rules ---------------------------------------

#[test]
fn retail_rules_example() {
    let g = given(retail());
    // core = yearly spend > 50,000 and >= 4 orders a month and paying within 7 days
    g.when_scored(
        customer()
            .buying_cny_a_year(60_000.0)
            .orders_a_month(4.0)
            .paying(0.8, 3.0),
    )
    .then_tier("core")
    .with_score_within(100.0, 100.0);
    // Exactly 50,000 is not "> 50,000".
    g.when_scored(customer().buying_cny_a_year(50_000.0).orders_a_month(4.0))
        .then_tier("important");
    // Big and frequent but paying 10 days late on average: important.
    g.when_scored(
        customer()
            .buying_cny_a_year(60_000.0)
            .orders_a_month(5.0)
            .paying(0.2, 10.0),
    )
    .then_tier("important")
    // 50 + 50 x 2/3, rounded to hundredths.
    .with_score_within(83.33, 83.33);
    // important = 10,000-50,000 a year and 2-3 orders a month
    g.when_scored(customer().buying_cny_a_year(10_000.0).orders_a_month(2.0))
        .then_tier("important");
    g.when_scored(customer().buying_cny_a_year(30_000.0).orders_a_month(3.0))
        .then_tier("important");
    // regular = under 10,000 a year, or irregular buying
    g.when_scored(customer().buying_cny_a_year(9_999.0).orders_a_month(3.0))
        .then_tier("regular")
        .with_score_within(25.0, 25.0); // one of important's two conditions met
    g.when_scored(customer().buying_cny_a_year(30_000.0).orders_a_month(1.0))
        .then_tier("regular");
    g.when_scored(customer())
        .then_tier("regular")
        .with_score_within(0.0, 0.0);
    // "Paying within 7 days" needs evidence: before any invoice fell due
    // avg_days_late is unknown and the condition does not hold.
    g.when_scored(
        customer()
            .buying_cny_a_year(60_000.0)
            .orders_a_month(4.0)
            .with_nothing_due_yet(),
    )
    .then_tier("important");
}

#[test]
fn retail_explanation_never_shows_a_missed_threshold_as_met() {
    // 47 orders over 358 days of history are 3.996 orders a month: short of
    // core's 4. Rounded to two decimals the gap read "(now 4)".
    let p = retail();
    let c = customer()
        .buying_cny_a_year(60_000.0)
        .orders_a_month(47.0 * 30.4375 / 358.0)
        .paying(1.0, 0.0);
    let e = p.explain(&c.0, p.evaluate(&c.0).tier);
    assert_eq!(e.tier, "important");
    assert!(
        e.gap.contains("orders_per_month_12m >= 4 (now 3.996)"),
        "{}",
        e.gap
    );
}

#[test]
fn retail_explanation_names_the_rule_and_what_is_missing() {
    let p = retail();
    let c = customer()
        .buying_cny_a_year(60_000.0)
        .orders_a_month(5.0)
        .paying(0.2, 10.0);
    let e = p.explain(&c.0, p.evaluate(&c.0).tier);
    assert_eq!(e.tier, "important");
    assert_eq!(
        e.band,
        "order_amount_12m >= 1,000,000 and orders_per_month_12m >= 2"
    );
    assert_eq!(e.next_tier.as_deref(), Some("core"));
    assert_eq!(e.gap, "to reach core: avg_days_late <= 7 (now 10)");
    assert_eq!(
        e.advice,
        [Advice {
            indicator: IndicatorName::AvgDaysLate,
            current: Some(10.0),
            target: 7.0,
            unit: Unit::Days,
        }]
    );
    // The contributions sum to the score before its rounding.
    let sum: f64 = e.indicators.iter().map(|i| i.contribution).sum();
    assert!(
        (sum - e.score).abs() <= 0.005 + 1e-9,
        "{sum} vs {}",
        e.score
    );

    let regular = p.explain(&customer().0, 2);
    assert_eq!(regular.band, "otherwise (no rule of a better tier holds)");
    assert_eq!(
        regular.gap,
        "to reach important: order_amount_12m >= 1,000,000 (now 0), orders_per_month_12m >= 2 (now 0)"
    );
    let targets: Vec<(IndicatorName, Option<f64>, f64)> = regular
        .advice
        .iter()
        .map(|a| (a.indicator, a.current, a.target))
        .collect();
    assert_eq!(
        targets,
        [
            (IndicatorName::OrderAmount12m, Some(0.0), 1_000_000.0),
            (IndicatorName::OrdersPerMonth12m, Some(0.0), 2.0),
        ]
    );
}

#[test]
fn rules_advice_is_the_unmet_conditions_with_strict_ones_one_step_past() {
    // Given the retail rules, when an important customer spends exactly
    // 50,000 CNY (not "> 50,000") and has no invoice due yet, then the
    // advice is 50,000.01 CNY (5,000,001 fen: one minor unit past) and an
    // average of at most 7 days late (now unknown); following it reaches
    // core.
    let p = retail();
    let c = customer()
        .buying_cny_a_year(50_000.0)
        .orders_a_month(4.0)
        .with_nothing_due_yet();
    let eval = p.evaluate(&c.0);
    assert_eq!(p.tiers()[eval.tier].name, "important");
    let e = p.explain(&c.0, eval.tier);
    assert_eq!(
        e.advice,
        [
            Advice {
                indicator: IndicatorName::OrderAmount12m,
                current: Some(5_000_000.0),
                target: 5_000_001.0,
                unit: Unit::Money,
            },
            Advice {
                indicator: IndicatorName::AvgDaysLate,
                current: None,
                target: 7.0,
                unit: Unit::Days,
            },
        ]
    );
    assert_eq!(
        e.gap,
        "to reach core: order_amount_12m > 5,000,000 (now 5,000,000), avg_days_late <= 7 (now unknown)"
    );
    let mut after = c.0;
    for a in &e.advice {
        after.set(a.indicator, Some(a.target));
    }
    assert_eq!(p.tiers()[p.evaluate(&after).tier].name, "core");

    // Strict comparisons on ratios and days, and a range on one indicator.
    let edges = fixture("valid_rules_edges.toml");
    let mut ind = Indicators {
        // silver: a growing customer with a known share of wallet
        growth_streak_months: 3.0,
        share_of_wallet: Some(0.3),
        order_amount_12m: 2_000_000.0,
        // not gold: margin exactly 0.2 (not "> 0.2"), 30 days since the
        // last order (not "< 30"), 600 orders (not "<= 500")
        margin_rate_12m: Some(0.2),
        days_since_last_order: Some(30.0),
        order_count_12m: 600.0,
        on_time_payment_ratio: Some(0.95),
        ..Indicators::default()
    };
    let e = edges.explain(&ind, edges.evaluate(&ind).tier);
    let targets: Vec<(IndicatorName, f64)> =
        e.advice.iter().map(|a| (a.indicator, a.target)).collect();
    assert_eq!(
        targets,
        [
            (IndicatorName::MarginRate12m, 0.2001),
            (IndicatorName::DaysSinceLastOrder, 29.0),
            (IndicatorName::OrderCount12m, 500.0),
        ]
    );
    for a in &e.advice {
        ind.set(a.indicator, Some(a.target));
    }
    assert_eq!(edges.tiers()[edges.evaluate(&ind).tier].name, "gold");
}

// --- Hysteresis --------------------------------------------------------------

#[test]
fn no_downgrade_inside_the_margin() {
    // Given the default policy (margin 2 points, 30 days) and a customer in A
    // for 60 days, when the score drops to 78.5 (B by the bands but within
    // 2 points of A's 80), then A is kept; at 77.9 it goes to B.
    let g = given(Policy::default_policy());
    let h = g.holding("A", date(2026, 1, 1));
    assert_eq!(h.when_evaluated_at(date(2026, 3, 2), 78.5, "B"), "A");
    assert_eq!(h.when_evaluated_at(date(2026, 3, 2), 78.0, "B"), "A");
    assert_eq!(h.when_evaluated_at(date(2026, 3, 2), 77.9, "B"), "B");
    // A fall of several bands lands where the score says.
    assert_eq!(h.when_evaluated_at(date(2026, 3, 2), 12.0, "D"), "D");
}

#[test]
fn no_downgrade_before_the_minimum_days() {
    let g = given(Policy::default_policy());
    let h = g.holding("A", date(2026, 1, 1));
    // 29 days in A: kept even far below the band.
    assert_eq!(h.when_evaluated_at(date(2026, 1, 30), 30.0, "D"), "A");
    // 30 days: the downgrade applies.
    assert_eq!(h.when_evaluated_at(date(2026, 1, 31), 30.0, "D"), "D");
}

#[test]
fn upgrades_are_immediate() {
    let g = given(Policy::default_policy());
    let h = g.holding("D", date(2026, 1, 1));
    // One hour later, the customer qualifies for A: no waiting, no margin.
    let an_hour = Timestamp::from_millis(date(2026, 1, 1).millis() + 3_600_000);
    assert_eq!(h.when_evaluated_at(an_hour, 80.0, "A"), "A");
    assert_eq!(h.when_evaluated_at(an_hour, 60.0, "B"), "B");
    assert_eq!(h.when_evaluated_at(an_hour, 10.0, "D"), "D");
}

#[test]
fn rules_policies_use_the_minimum_days_only() {
    let g = given(retail());
    let h = g.holding("core", date(2026, 1, 1));
    assert_eq!(
        h.when_evaluated_at(date(2026, 1, 20), 0.0, "regular"),
        "core"
    );
    assert_eq!(
        h.when_evaluated_at(date(2026, 2, 1), 99.0, "important"),
        "important"
    );
}

// --- Explanations ------------------------------------------------------------

#[test]
fn explanation_contributions_sum_to_the_score_before_penalty() {
    let p = Policy::default_policy();
    let c = customer()
        .buying_cny_a_year(1_500_000.0)
        .at_margin(0.25)
        .orders_a_month(4.0)
        .paying(0.9, 4.0)
        .with_complaints(Severity::High, 1);
    let eval = p.evaluate(&c.0);
    let e = p.explain(&c.0, eval.tier);
    assert_eq!(e.score, eval.score);
    assert_eq!(e.tier, p.tiers()[eval.tier].name);
    assert_eq!(e.penalty, 8.0);
    // The score is the sum rounded to hundredths.
    let sum: f64 = e.indicators.iter().map(|i| i.contribution).sum();
    assert!(
        (sum - e.penalty - e.score).abs() <= 0.005 + 1e-9,
        "{sum} - {} vs {}",
        e.penalty,
        e.score
    );
    let weights: f64 = e.indicators.iter().map(|i| i.weight).sum();
    assert!((weights - 100.0).abs() < 1e-9);
    // Each term: contribution = points * weight / 100, the value is shown.
    let margin = &e.indicators[0];
    assert_eq!(margin.name.as_str(), "margin_12m");
    assert_eq!(margin.value, Some(37_500_000.0));
    assert!((margin.weight - 48.0).abs() < 1e-9); // 60% x 80%
    assert!((margin.contribution - margin.points * margin.weight / 100.0).abs() < 1e-9);
}

#[test]
fn explanation_bands_read_like_the_domain() {
    let p = Policy::default_policy();
    let ind = customer().0;
    let bands: Vec<String> = (0..4).map(|t| p.explain(&ind, t).band).collect();
    assert_eq!(bands, [">= 80", ">= 60 and < 80", ">= 40 and < 60", "< 40"]);
    let top = p.explain(
        &customer()
            .buying_cny_a_year(5e6)
            .at_margin(0.4)
            .orders_a_month(8.0)
            .0,
        0,
    );
    assert_eq!(top.next_tier, None);
    assert_eq!(top.gap, "already in the top tier");
    assert!(top.advice.is_empty());
}

/// The `X` of "(to X)" in a gap text.
fn suggested_target(gap: &str) -> f64 {
    let start = gap.find("(to ").unwrap() + 4;
    let end = start + gap[start..].find(')').unwrap();
    gap[start..end].replace(',', "").parse().unwrap()
}

#[test]
fn the_gap_suggestion_really_reaches_the_next_tier() {
    // Given a B customer, when we follow the explanation's suggestion,
    // then the customer is A.
    let p = Policy::default_policy();
    let c = customer()
        .buying_cny_a_year(1_500_000.0)
        .at_margin(0.25)
        .orders_a_month(4.0);
    let eval = p.evaluate(&c.0);
    assert_eq!(eval.tier, 1);
    let e = p.explain(&c.0, eval.tier);
    assert_eq!(e.next_tier.as_deref(), Some("A"));
    assert!(
        e.gap
            .starts_with(&format!("+{} points to A: e.g. margin_12m +", {
                let need = 80.0 - eval.score;
                format!("{:.2}", need)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
            })),
        "{}",
        e.gap
    );
    // The same suggestion, structured: one lever, in whole fen.
    let [advice] = e.advice.as_slice() else {
        panic!("one lever expected: {:?}", e.advice);
    };
    assert_eq!(advice.indicator, IndicatorName::Margin12m);
    assert_eq!(advice.current, Some(37_500_000.0));
    assert_eq!(advice.unit, Unit::Money);
    assert_eq!(advice.target, advice.target.round());
    assert_eq!(advice.target, suggested_target(&e.gap));
    let mut better = c.0;
    better.set(advice.indicator, Some(advice.target));
    assert_eq!(
        p.evaluate(&better).tier,
        0,
        "{} -> {:?}",
        e.gap,
        p.evaluate(&better)
    );
    // One fen less would not do: the target is the least that reaches A.
    better.set(advice.indicator, Some(advice.target - 1.0));
    assert_eq!(p.evaluate(&better).tier, 1);

    // A lower-is-better lever: a policy scoring only days late. 20 days
    // late scores 33.33 (D); 18 days would score 40 (C).
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/thresholds.toml"),
    )
    .unwrap()
    .replace("\"order_count_12m\"", "\"avg_days_late\"")
    .replace("higher_is_better = true", "higher_is_better = false")
    .replace(
        "curve = [[0, 0], [100, 100]]",
        "curve = [[0, 100], [30, 0]]",
    );
    let days = Policy::from_toml_str(&src).unwrap();
    let late = Indicators {
        avg_days_late: Some(20.0),
        ..Default::default()
    };
    let eval = days.evaluate(&late);
    assert_eq!(eval.tier, 3);
    let e = days.explain(&late, eval.tier);
    assert_eq!(
        e.gap,
        "+6.67 points to C: e.g. avg_days_late -2 (to 18) would do it"
    );
    let sooner = Indicators {
        avg_days_late: Some(suggested_target(&e.gap)),
        ..late
    };
    assert_eq!(days.evaluate(&sooner).tier, 2);
    assert_eq!(
        e.advice,
        [Advice {
            indicator: IndicatorName::AvgDaysLate,
            current: Some(20.0),
            target: 18.0,
            unit: Unit::Days,
        }]
    );
}

#[test]
fn when_no_single_indicator_suffices_the_advice_combines_them() {
    // Given two levers of 50% each (order count to 100, orders a month to
    // 10), when a customer at 50 orders and 5 a month scores 50 (B), then A
    // (80) needs 30 points while each lever can add only 25: the advice
    // pushes order count to its best (100) and orders a month as far as
    // needed (6), and following it reaches A.
    let p = fixture("valid_two_levers.toml");
    let c = Indicators {
        order_count_12m: 50.0,
        orders_per_month_12m: 5.0,
        ..Indicators::default()
    };
    let eval = p.evaluate(&c);
    assert_eq!((eval.score, eval.tier), (50.0, 1));
    let e = p.explain(&c, eval.tier);
    let targets: Vec<(IndicatorName, Option<f64>, f64)> = e
        .advice
        .iter()
        .map(|a| (a.indicator, a.current, a.target))
        .collect();
    assert_eq!(
        targets,
        [
            (IndicatorName::OrderCount12m, Some(50.0), 100.0),
            (IndicatorName::OrdersPerMonth12m, Some(5.0), 6.0),
        ]
    );
    assert_eq!(
        e.gap,
        "+30 points to A: no single indicator closes the gap; together: \
         order_count_12m +50 (to 100), orders_per_month_12m +1 (to 6)"
    );
    let mut after = c;
    for a in &e.advice {
        after.set(a.indicator, Some(a.target));
    }
    assert_eq!(
        p.evaluate(&after),
        Evaluation {
            score: 80.0,
            tier: 0,
            ceiling: 0,
        }
    );

    // From C, one lever suffices: the heaviest (here the first) alone.
    let low = Indicators {
        order_count_12m: 20.0,
        orders_per_month_12m: 2.0,
        ..Indicators::default()
    };
    let e = p.explain(&low, p.evaluate(&low).tier);
    assert_eq!(
        e.advice,
        [Advice {
            indicator: IndicatorName::OrderCount12m,
            current: Some(20.0),
            target: 80.0,
            unit: Unit::Orders,
        }]
    );
}

#[test]
fn an_unknown_indicator_can_be_advised_from_unknown() {
    // Given the default policy, a newcomer (score 5, D) can reach C (40)
    // by no single indicator but with several; advice on an unknown
    // indicator has no current value and makes it known.
    let p = Policy::default_policy();
    let c = newcomer();
    let e = p.explain(&c.0, p.evaluate(&c.0).tier);
    assert_eq!(e.tier, "D");
    assert!(!e.advice.is_empty(), "{}", e.gap);
    let mut after = c.0;
    for a in &e.advice {
        assert_eq!(a.current, c.0.get(a.indicator), "{a:?}");
        assert_eq!(a.unit, a.indicator.unit());
        after.set(a.indicator, Some(a.target));
    }
    assert!(p.evaluate(&after).tier <= 2, "{:?} {}", e.advice, e.gap);
    // The margin is unknown (no order, no cost): it is advised from
    // unknown, in whole fen.
    let margin = e
        .advice
        .iter()
        .find(|a| a.indicator == IndicatorName::Margin12m)
        .unwrap();
    assert_eq!(margin.current, None);
    assert_eq!(margin.target, margin.target.round());
}

#[test]
fn an_unreachable_gap_says_so() {
    // Capped complaints cost 30 points: a small customer needs several
    // indicators to climb from D to C ...
    let p = Policy::default_policy();
    let c = customer()
        .buying_cny_a_year(20_000.0)
        .at_margin(0.20)
        .orders_a_month(1.0)
        .with_complaints(Severity::Critical, 2);
    let e = p.explain(&c.0, p.evaluate(&c.0).tier);
    assert_eq!(e.tier, "D");
    assert!(
        e.gap
            .contains("no single indicator closes the gap; together: margin_12m +"),
        "{}",
        e.gap
    );
    assert!(e.advice.len() >= 2, "{:?}", e.advice);
    // ... and even a perfect profile cannot reach A (80 + 30 > 100), say
    // when explaining B (held by hysteresis).
    let e = p.explain(&c.0, 1);
    assert_eq!(e.tier, "B");
    assert!(
        e.gap.contains(
            "the scored indicators cannot close the gap, even all together; most to gain: margin_12m"
        ),
        "{}",
        e.gap
    );
    assert!(e.gap.contains("(complaints cost 30 points)"), "{}", e.gap);
    assert!(e.advice.is_empty(), "{:?}", e.advice);
}

#[test]
fn a_held_tier_is_explained_as_held() {
    let p = Policy::default_policy();
    let c = customer()
        .buying_cny_a_year(1_500_000.0)
        .at_margin(0.25)
        .orders_a_month(4.0);
    let e = p.explain(&c.0, 0);
    assert_eq!(e.tier, "A");
    assert!(e.gap.contains("held by hysteresis"), "{}", e.gap);
    assert!(e.advice.is_empty());
}

// --- Reasons -----------------------------------------------------------------

#[test]
fn reasons_are_the_largest_changes_first() {
    let p = Policy::default_policy();
    let old = customer()
        .buying_cny_a_year(800_000.0)
        .at_margin(0.20)
        .orders_a_month(3.0);
    let new = old
        .buying_cny_a_year(1_500_000.0)
        .at_margin(0.25)
        .with_complaints(Severity::Low, 1);
    let reasons = p.reasons(&old.0, &new.0, 10);
    let names: Vec<&str> = reasons.iter().map(|r| r.name.as_str()).collect();
    // margin_12m (weight 48%) moves most, then order_amount (21%),
    // margin_rate (12%), the penalty (-1); frequency and credit did not move.
    assert_eq!(
        names,
        [
            "margin_12m",
            "order_amount_12m",
            "margin_rate_12m",
            "complaint_penalty"
        ]
    );
    for pair in reasons.windows(2) {
        assert!(pair[0].delta.abs() >= pair[1].delta.abs());
    }
    let penalty = &reasons[3];
    assert_eq!((penalty.contribution, penalty.delta), (-1.0, -1.0));
    // The deltas add up to the score change (up to its rounding to
    // hundredths).
    let total: f64 = reasons.iter().map(|r| r.delta).sum();
    let change = p.evaluate(&new.0).score - p.evaluate(&old.0).score;
    assert!((total - change).abs() <= 0.01 + 1e-9, "{total} vs {change}");
    // At most k; nothing when nothing changed.
    assert_eq!(p.reasons(&old.0, &new.0, 2).len(), 2);
    assert!(p.reasons(&new.0, &new.0, 5).is_empty());
    assert!(p.reasons(&old.0, &new.0, 0).is_empty());
}

#[test]
fn rules_reasons_follow_the_conditions() {
    let p = retail();
    let old = customer().buying_cny_a_year(30_000.0).orders_a_month(1.0);
    let new = old.orders_a_month(2.0);
    let reasons = p.reasons(&old.0, &new.0, 5);
    assert!(!reasons.is_empty());
    let total: f64 = reasons.iter().map(|r| r.delta).sum();
    let change = p.evaluate(&new.0).score - p.evaluate(&old.0).score;
    assert!((total - change).abs() <= 0.01 + 1e-9, "{reasons:?}");
}

//! DOMAIN.md example B as shipped in `deploy/policy/example-b.toml`
//! (financial 30%, cooperation 30%, demand 20%, potential 20%; figures
//! from events, judgements from `CustomerAssessed`), given/when/then: the
//! calibration customers the policy's comments promise, built from
//! events, with their tiers and scores; a new customer with no orders and
//! a high judged potential; and a judgement that expires and takes the
//! tier down on the right day, with time alone.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::policy::Policy;
use tier_core::sim::scenario::{complaint, invoice, order, payment, weekly_buyer};
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Event, EventKind, Severity, Timestamp};

const EXAMPLE_B: &str = include_str!("../../../deploy/policy/example-b.toml");

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Fen per CNY.
const CNY: i64 = 100;

fn policy() -> Policy {
    Policy::from_toml_str(EXAMPLE_B).unwrap()
}

fn at(t: Timestamp, hours: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + hours * HOUR)
}

/// "Today" of the calibration: Monday 2 November 2026, 10:00 in Shanghai.
fn today() -> Timestamp {
    at(date(2026, 11, 2), 2)
}

fn days_before_today(days: i64) -> Timestamp {
    today().plus_days(-days)
}

// --- given: a customer, built from events -----------------------------------

struct Customer {
    id: &'static str,
    events: Vec<Event>,
    assessments: usize,
}

/// A customer ordering weekly, `cny` a year, over the year up to today (53
/// orders at a 25% margin), each invoiced on 30-day terms and paid in full
/// 20 days after the order: on time.
fn weekly(id: &'static str, cny: i64) -> Customer {
    weekly_paying(id, cny, 20)
}

/// [`weekly`], paying every invoice `paid_after` days after its order.
fn weekly_paying(id: &'static str, cny: i64, paid_after: i64) -> Customer {
    let orders = weekly_buyer(id, today(), cny * CNY);
    let mut events = Vec::new();
    for (n, o) in orders.into_iter().enumerate() {
        let n = n + 1;
        let EventKind::OrderPlaced { amount, .. } = &o.kind else {
            unreachable!()
        };
        let (t, amount) = (o.occurred_at, amount.0);
        events.push(o);
        events.push(invoice(id, n, t, amount, 30));
        let paid = t.plus_days(paid_after);
        if paid <= today() {
            events.push(payment(id, n, paid, amount));
        }
    }
    Customer {
        id,
        events,
        assessments: 0,
    }
}

/// A customer ordering once a month, `cny` a year (12 orders, the last
/// today), paid on time like [`weekly`].
fn monthly(id: &'static str, cny: i64) -> Customer {
    let mut events = Vec::new();
    for n in 1..=12 {
        let t = days_before_today(30 * (12 - n as i64));
        let amount = cny * CNY / 12;
        events.push(order(id, n, t, amount));
        events.push(invoice(id, n, t, amount, 30));
        if t.plus_days(20) <= today() {
            events.push(payment(id, n, t.plus_days(20), amount));
        }
    }
    Customer {
        id,
        events,
        assessments: 0,
    }
}

/// A customer with no history at all.
fn newcomer(id: &'static str) -> Customer {
    Customer {
        id,
        events: Vec::new(),
        assessments: 0,
    }
}

impl Customer {
    /// A first order `years` before today (long out of the window): the
    /// relationship is that old.
    fn since_years(mut self, years: i64) -> Self {
        self.events.push(order(
            self.id,
            900,
            days_before_today(365 * years),
            1_000 * CNY,
        ));
        self
    }

    /// Complaint `n` opened `days` before today.
    fn complained(mut self, n: usize, days: i64, severity: Severity) -> Self {
        self.events
            .push(complaint(self.id, n, days_before_today(days), severity));
        self
    }

    /// An account manager's judgement, made `days` before today.
    fn assessed(mut self, indicator: &str, value: i64, days: i64) -> Self {
        self.assessments += 1;
        self.events.push(Event {
            event_id: format!("{}-a{}", self.id, self.assessments),
            customer_id: self.id.into(),
            occurred_at: days_before_today(days),
            source: "crm".into(),
            kind: EventKind::CustomerAssessed {
                indicator: indicator.into(),
                value,
                assessed_by: "alice".into(),
                note: format!("visit to {}", self.id),
            },
        });
        self
    }

    /// Every judgement at once, `days` before today.
    fn judged(self, potential: i64, position: i64, stability: i64, word: i64, days: i64) -> Self {
        self.assessed("judged_potential", potential, days)
            .assessed("industry_position", position, days)
            .assessed("cooperation_stability", stability, days)
            .assessed("word_of_mouth", word, days)
    }

    // --- when: its events are processed, in event time ----------------------

    fn when_processed(mut self, p: &Policy) -> Graded {
        self.events.sort_by_key(|e| e.occurred_at);
        let mut s = CustomerState::default();
        let mut changes = Vec::new();
        for e in &self.events {
            let out = s.process(self.id, e, p);
            changes.extend(out.due_first);
            changes.extend(out.change);
        }
        // Decided as of today (a newcomer's judgements are older).
        changes.extend(s.advance_to(self.id, p, today(), usize::MAX).0);
        Graded {
            id: self.id,
            state: s,
            changes,
        }
    }
}

// --- then: its tier and score -------------------------------------------------

struct Graded {
    id: &'static str,
    state: CustomerState,
    changes: Vec<TierChange>,
}

impl Graded {
    fn tier(&self) -> &str {
        &self.state.effective.as_ref().unwrap().tier
    }

    fn score(&self) -> f64 {
        self.state.assignment.as_ref().unwrap().score
    }

    /// The tier is `tier`, the one the score's band gives (no hysteresis
    /// holding it), and the score is `score` to two decimals.
    #[track_caller]
    fn then(&self, p: &Policy, tier: &str, score: f64) -> &Self {
        let e = self.state.explain(p);
        assert_eq!(
            (self.tier(), e.tier.as_str(), e.score_tier.as_str()),
            (tier, tier, tier),
            "{}: score {}",
            self.id,
            self.score()
        );
        assert!(
            (self.score() - score).abs() < 0.005 + 1e-9,
            "{}: score {} is not {score}",
            self.id,
            self.score()
        );
        assert_eq!(e.score, self.score());
        self
    }
}

// --- the policy --------------------------------------------------------------

#[test]
fn the_policy_is_example_b_with_the_default_tiers() {
    // Given the shipped file, then it loads with its own version ...
    let p = policy();
    assert_eq!(p.version(), "example-b-2027.02");
    assert_eq!(p.method_kind(), "weighted_score");
    // ... its dimensions are example B's, in its order and weights ...
    let doc: toml::Table = EXAMPLE_B.parse().unwrap();
    let dims: Vec<(&str, i64)> = doc["method"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap(),
                d["weight"].as_integer().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dims,
        [
            ("financial", 30),
            ("cooperation", 30),
            ("demand", 20),
            ("potential", 20)
        ]
    );
    // ... the judgements are declared on 1..=5 scales with labels, and
    // missing counts as level 2 (25 points) ...
    let specs = p.assessments().specs();
    let declared: Vec<(&str, i64, i64, u32, f64)> = specs
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.min,
                s.max,
                s.valid_days,
                s.missing_points,
            )
        })
        .collect();
    assert_eq!(
        declared,
        [
            ("judged_potential", 1, 5, 180, 25.0),
            ("industry_position", 1, 5, 365, 25.0),
            ("cooperation_stability", 1, 5, 180, 25.0),
            ("word_of_mouth", 1, 5, 365, 25.0),
        ]
    );
    assert!(specs.iter().all(|s| s.labels.len() == 5));
    assert_eq!(specs[0].label(5), Some("exceptional"));
    assert!((0..specs.len()).all(|slot| p.uses_assessment(slot)));
    // ... and the tiers, their entitlements and the hysteresis are the
    // default policy's.
    let d = Policy::default_policy();
    assert_eq!(p.tiers(), d.tiers());
    assert_eq!(p.hysteresis(), d.hysteresis());
    assert_eq!(p.calendar().name(), "Asia/Shanghai");
}

// --- calibration --------------------------------------------------------------

#[test]
fn a_big_old_customer_judged_well_is_core() {
    // Given 3,000,000 CNY a year ordered weekly, a first order 5 years ago,
    // every invoice paid on time and no complaint, judged two months ago
    // as high potential (4), strong in its industry (4), strategic (5), a
    // promoter (4) ...
    let p = policy();
    let g = weekly("core", 3_000_000)
        .since_years(5)
        .judged(4, 4, 5, 4, 60)
        .when_processed(&p);
    // ... then it is core (A), 89.14.
    g.then(&p, "A", 89.14);
    // Explained with its judgements beside the figures.
    let e = g.state.explain(&p);
    let stability = e
        .assessments
        .iter()
        .find(|a| a.name == "cooperation_stability")
        .unwrap();
    assert_eq!(stability.value, Some(5.0));
    assert_eq!(stability.label.as_deref(), Some("strategic"));
    assert_eq!(stability.assessed_by.as_deref(), Some("alice"));
    assert!((stability.weight - 12.0).abs() < 1e-9, "40% of 30%");
    assert!((stability.contribution - 12.0).abs() < 1e-9);
    // The last change came from a judgement or an order, never from time.
    assert!(g.changes.iter().all(|c| c.cause == Cause::Event));
}

#[test]
fn the_same_figures_without_a_judgement_are_important_only() {
    // Given the core customer's figures, never assessed: every judgement
    // earns its missing 25 points, then it is B, 73.14: 16 points less.
    let p = policy();
    weekly("unjudged", 3_000_000)
        .since_years(5)
        .when_processed(&p)
        .then(&p, "B", 73.14);
}

#[test]
fn a_mid_sized_customer_judged_average_is_important() {
    // 1,500,000 CNY a year weekly, 2 years, on time, average all round.
    let p = policy();
    weekly("important", 1_500_000)
        .since_years(2)
        .judged(3, 3, 3, 3, 60)
        .when_processed(&p)
        .then(&p, "B", 71.39);
    // Unassessed it stays B, lower.
    weekly("important", 1_500_000)
        .since_years(2)
        .when_processed(&p)
        .then(&p, "B", 64.89);
}

#[test]
fn a_late_paying_customer_with_a_complaint_is_regular() {
    // 500,000 CNY a year weekly for a year, every invoice paid 10 days
    // after its due date, one high complaint, judged fair potential (2)
    // and average otherwise.
    let p = policy();
    let g = weekly_paying("regular", 500_000, 40)
        .complained(1, 100, Severity::High)
        .judged(2, 3, 3, 3, 60)
        .when_processed(&p);
    g.then(&p, "C", 49.4);
    let ind = g.state.indicators(&p);
    assert_eq!(ind.on_time_payment_ratio, Some(0.0));
    assert_eq!(ind.complaints_weighted_12m, 4.0);
}

#[test]
fn a_small_steady_customer_is_potential_until_judged() {
    // 20,000 CNY a year in monthly orders, on time, no complaint, a year
    // of tenure: D, 39.20, just below C: paying, buying and behaving well
    // count for much in example B, size for little.
    let p = policy();
    monthly("small", 20_000)
        .when_processed(&p)
        .then(&p, "D", 39.2);
    // Judged average all round (+6.5 points) it is regular.
    monthly("small", 20_000)
        .judged(3, 3, 3, 3, 60)
        .when_processed(&p)
        .then(&p, "C", 45.7);
}

// --- a new customer -----------------------------------------------------------

#[test]
fn a_new_customer_with_a_high_potential_and_no_order() {
    let p = policy();
    // Given a customer with no event at all: credit unknown (neutral 50),
    // no complaint (full points), growth unknown (neutral 50), every
    // judgement missing (25): D, 20.75.
    let nothing = p.evaluate(&tier_core::Indicators::default());
    assert_eq!((nothing.score, nothing.tier), (20.75, 3));

    // When its account manager judges it exceptional potential (5), strong
    // in its industry (4) and a promoter (4), before any order, then its
    // score is 29.75 (D: potential weighs 20% and the figures have nothing
    // to say yet), but it is new, so the new-customer rule grades it by the
    // judged potential: B from day one, and ExplainTier says why.
    let g = newcomer("prospect")
        .assessed("judged_potential", 5, 1)
        .assessed("industry_position", 4, 1)
        .assessed("word_of_mouth", 4, 1)
        .when_processed(&p);
    assert!((g.score() - 29.75).abs() < 0.005, "{}", g.score());
    assert_eq!(g.tier(), "B");
    let first = &g.changes[0];
    assert_eq!((first.new_tier.as_str(), first.cause), ("B", Cause::Event));
    let e = g.state.explain(&p);
    assert_eq!(e.score_tier, "D", "the score alone reaches D");
    assert_eq!(
        e.new_customer.as_deref(),
        Some("new customer (fewer than 3 orders or under 90 days): judged_potential 5 gives B")
    );
    let potential = &e.assessments[0];
    assert_eq!(potential.name, "judged_potential");
    assert_eq!(
        (potential.value, potential.label.as_deref()),
        (Some(5.0), Some("exceptional"))
    );
    assert!((potential.contribution - 8.0).abs() < 1e-9);

    // A high (4) judgement gives C; an average one (3) no lift: D.
    for (level, tier) in [(4, "C"), (3, "D")] {
        let g = newcomer("judged")
            .assessed("judged_potential", level, 1)
            .when_processed(&p);
        assert_eq!(g.tier(), tier, "judged {level}");
    }
}

#[test]
fn a_new_customer_moves_to_the_normal_grading_once_it_has_the_history() {
    let p = policy();
    // Judged exceptional before its first order, then three small orders
    // in its first two months: still new (tenure under 90 days), still B.
    let id = "rookie";
    let start = days_before_today(200);
    let judged = Event {
        event_id: "rookie-a1".into(),
        customer_id: id.into(),
        occurred_at: start,
        source: "crm".into(),
        kind: EventKind::CustomerAssessed {
            indicator: "judged_potential".into(),
            value: 5,
            assessed_by: "alice".into(),
            note: "strategic prospect".into(),
        },
    };
    let mut s = CustomerState::default();
    s.process(id, &judged, &p);
    for (n, day) in [(1, 1), (2, 30), (3, 60)] {
        s.process(id, &order(id, n, start.plus_days(day), 2_000_000), &p);
    }
    assert_eq!(s.effective.as_ref().unwrap().tier, "B");

    // Day by day: nothing moves it while it is new; on the day its tenure
    // reaches 90 days (from its first order, on day 1) the method alone
    // grades it, with cause TIME.
    let mut changes = Vec::new();
    for day in 61..=91 {
        let (c, _) = s.advance_to(id, &p, start.plus_days(day), 1_000);
        changes.extend(c.into_iter().map(|c| (day, c)));
    }
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (day, c) = &changes[0];
    assert_eq!(*day, 91, "tenure 90 days from the first order on day 1");
    assert_eq!(
        (c.old_tier.as_deref(), c.new_tier.as_str(), c.cause),
        (Some("B"), "D", Cause::Time)
    );
    let e = s.explain(&p);
    assert_eq!(e.new_customer, None, "graded by the method now");
    assert_eq!(e.score_tier, "D");

    // A year on, its first judgement long expired, its manager judges it
    // exceptional again (day 300, counting 180 days). On day 366 its first
    // order leaves the window, which then holds two orders: fewer than 3,
    // but it has a year of trading history, so it is not new again. Time
    // alone does not lift it to B, and ExplainTier does not call it new.
    let rejudged = Event {
        event_id: "rookie-a2".into(),
        occurred_at: start.plus_days(300),
        ..judged
    };
    let out = s.process(id, &rejudged, &p);
    let mut later: Vec<TierChange> = out.due_first.into_iter().chain(out.change).collect();
    for day in 300..=380 {
        later.extend(s.advance_to(id, &p, start.plus_days(day), 1_000).0);
    }
    // (Its score moves it between C and D as growth and recency move.)
    assert!(later.iter().all(|c| c.new_tier != "B"), "{later:?}");
    let ind = s.indicators(&p);
    assert_eq!(
        (ind.order_count_12m, ind.assessed[0]),
        (2.0, Some(5.0)),
        "two orders in the window, judged exceptional"
    );
    assert!(ind.tenure_days > 365.0, "{}", ind.tenure_days);
    let e = s.explain(&p);
    assert_eq!(e.new_customer, None);
    assert_eq!(e.tier, e.score_tier);
}

#[test]
fn a_long_standing_customer_is_not_made_new_by_old_orders_leaving_the_window() {
    let p = policy();
    // Given a customer since 2019 (by its profile's customer_since, or by
    // a first order then, long out of the window) that ordered on 1 March
    // 2025, 1 September 2025 and 1 February 2026 (2,000 CNY each: D or C
    // by its score), and judged exceptional potential on 20 January 2026
    // (counting 180 days): 2 or 3 orders in the window, never fewer than
    // 3 ever.
    let since = at(date(2019, 3, 1), 2);
    for history in ["profile", "first order"] {
        let id = "since-2019";
        let mut events = vec![match history {
            "profile" => Event {
                event_id: "since-2019-p1".into(),
                customer_id: id.into(),
                occurred_at: at(date(2025, 2, 1), 2),
                source: "crm".into(),
                kind: EventKind::ProfileUpdated(tier_core::ProfileUpdate {
                    customer_since: Some(since),
                    ..tier_core::ProfileUpdate::default()
                }),
            },
            _ => order(id, 900, since, 1_000 * CNY),
        }];
        for (n, (y, m, d)) in [(1, (2025, 3, 1)), (2, (2025, 9, 1)), (3, (2026, 2, 1))] {
            events.push(order(id, n, at(date(y, m, d), 2), 2_000 * CNY));
        }
        events.push(Event {
            event_id: "since-2019-a1".into(),
            customer_id: id.into(),
            occurred_at: at(date(2026, 1, 20), 2),
            source: "crm".into(),
            kind: EventKind::CustomerAssessed {
                indicator: "judged_potential".into(),
                value: 5,
                assessed_by: "alice".into(),
                note: "big plans".into(),
            },
        });
        events.sort_by_key(|e| e.occurred_at);
        let mut s = CustomerState::default();
        let mut changes = Vec::new();
        for e in &events {
            let out = s.process(id, e, &p);
            changes.extend(out.due_first);
            changes.extend(out.change);
        }
        // When the sweep runs every day through March 2026 (the March 2025
        // order leaves the window on 1 March: two orders left in it) ...
        for day in 0..=40 {
            let until = at(date(2026, 2, 20), 2).plus_days(day);
            changes.extend(s.advance_to(id, &p, until, 1_000).0);
        }
        // ... then the new-customer rule never grades it: never the rule's
        // B, its score's tier all along (D, then C from 1 March, when
        // growth first compares two quarters with an order), active, and
        // ExplainTier does not call it new.
        assert!(
            changes.iter().all(|c| c.new_tier != "B"),
            "{history}: {changes:?}"
        );
        let ind = s.indicators(&p);
        assert_eq!(ind.order_count_12m, 2.0, "{history}");
        assert_eq!(ind.assessed[0], Some(5.0), "{history}");
        // Tenure counts from 2019: the first order is kept past the window.
        assert!(ind.tenure_days > 2_500.0, "{history}: {}", ind.tenure_days);
        assert!(!p.new_customers().unwrap().is_new(&ind), "{history}");
        assert_eq!(
            s.lifecycle(&p, at(date(2026, 4, 1), 2)),
            tier_core::state::Lifecycle::Active,
            "{history}"
        );
        let e = s.explain(&p);
        assert_eq!(e.new_customer, None, "{history}");
        assert_eq!(e.tier, e.score_tier, "{history}");
    }
}

#[test]
fn explain_names_the_new_customer_rule_only_when_it_lifts_the_tier() {
    let p = policy();
    // Given the core customer's figures with a tenure of 60 days: new by
    // the rule, judged high potential (4), which gives C ...
    let g = weekly("young", 3_000_000)
        .judged(4, 4, 5, 4, 1)
        .when_processed(&p);
    let mut ind = g.state.indicators(&p);
    ind.tenure_days = 60.0;
    let rules = p.new_customers().unwrap();
    assert!(rules.is_new(&ind));
    // ... when its score alone reaches a better tier, then that is the
    // tier, and ExplainTier explains it by the score, not by the rule.
    let eval = p.evaluate(&ind);
    assert!(eval.tier < 2, "the score reaches better than C: {eval:?}");
    let e = p.explain(&ind, eval.tier);
    assert_eq!(
        e.new_customer, None,
        "the rule gives C, the score {}",
        e.score_tier
    );

    // Judged exceptional (B) with a score in D, the rule grades it and
    // ExplainTier says so.
    let mut weak = tier_core::Indicators {
        tenure_days: 60.0,
        ..tier_core::Indicators::default()
    };
    weak.assessed[0] = Some(5.0);
    let eval = p.evaluate(&weak);
    let e = p.explain(&weak, eval.tier);
    assert_eq!((eval.tier, e.score_tier.as_str()), (1, "D"));
    assert_eq!(
        e.new_customer.as_deref(),
        Some("new customer (fewer than 3 orders or under 90 days): judged_potential 5 gives B")
    );
}

// --- expiry -------------------------------------------------------------------

#[test]
fn an_expiring_judgement_takes_core_down_on_the_right_day_with_time_alone() {
    // Given the core customer, judged 170 days ago (potential and
    // stability count 180 days, industry position and word-of-mouth 365) ...
    let p = policy();
    let mut g = weekly("expiring", 3_000_000)
        .since_years(5)
        .judged(4, 4, 5, 4, 170)
        .when_processed(&p);
    g.then(&p, "A", 89.14);
    // ... made on 16 May 2026 (Shanghai), they count through 11 November
    // and expire at the start of 12 November, Shanghai: 16:00 UTC the day
    // before. (Time moves its figures earlier too: the customer is due
    // for a rescore at least by then.)
    let expires = at(date(2026, 11, 11), 16);
    assert!(g.state.next_due(&p).is_some_and(|d| d <= expires));
    let explained = g.state.explain(&p);
    assert_eq!(explained.assessments[0].expires_at, Some(expires));
    assert_eq!(
        explained.assessments[1].expires_at,
        Some(at(date(2027, 5, 15), 16))
    );

    // When no event arrives and the sweeper runs, then one minute before
    // the expiry the customer is still core ...
    let s = &mut g.state;
    let (changes, done) = s.advance_to(
        "expiring",
        &p,
        Timestamp::from_millis(expires.millis() - 60_000),
        64,
    );
    assert!(done && changes.is_empty(), "{changes:?}");
    assert_eq!(s.effective.as_ref().unwrap().tier, "A");
    assert_eq!(s.indicators(&p).assessed[0], Some(4.0));

    // ... and, sweeping every day for three weeks, exactly one change:
    // at the expiry, to B, cause Time. Potential (75 -> 25 points, 8% of
    // the score) and stability (100 -> 25, 12%) lose 13 points; the
    // score is below A's hysteresis floor of 78.
    let mut changes = Vec::new();
    for d in 0..=21 {
        let until = Timestamp::from_millis(today().millis() + d * DAY);
        let (c, done) = s.advance_to("expiring", &p, until, 64);
        assert!(done);
        changes.extend(c);
    }
    assert_eq!(changes.len(), 1, "{changes:?}");
    let c = &changes[0];
    assert_eq!(
        (c.old_tier.as_deref(), c.new_tier.as_str(), c.cause),
        (Some("A"), "B", Cause::Time)
    );
    assert_eq!(c.changed_at, expires);
    assert_eq!(c.causing_event_id, None);
    // By then the oldest orders have left the window (88.83); the expiry
    // takes exactly 13 points: 75.83.
    assert!((c.old_score - 88.83).abs() < 0.005 + 1e-9, "{c:?}");
    assert!((c.new_score - 75.83).abs() < 0.005 + 1e-9, "{c:?}");
    let lost: Vec<&str> = c.reasons.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        &lost[..2],
        ["cooperation_stability", "judged_potential"],
        "{:?}",
        c.reasons
    );

    // Explained as expired: no value, the missing points, the author and
    // the expiry still shown; the 365-day judgements still count.
    let e = s.explain(&p);
    let potential = &e.assessments[0];
    assert_eq!((potential.value, potential.points), (None, Some(25.0)));
    assert_eq!(potential.assessed_by.as_deref(), Some("alice"));
    assert_eq!(potential.expires_at, Some(expires));
    assert_eq!(e.assessments[1].value, Some(4.0));
}

#[test]
fn a_bad_new_customer_rule_is_refused_with_line_and_field() {
    let base = EXAMPLE_B
        .split("[new_customers]")
        .next()
        .unwrap_or_default()
        .to_owned();
    for (section, field, says) in [
        (
            "[new_customers]\nassessment = \"judged_potential\"\ntiers = [{ min_level = 5, tier = \"B\" }]\n",
            "new_customers",
            "say who is new",
        ),
        (
            "[new_customers]\norders = 3\nassessment = \"charisma\"\ntiers = [{ min_level = 5, tier = \"B\" }]\n",
            "new_customers.assessment",
            "not declared",
        ),
        (
            "[new_customers]\norders = 3\nassessment = \"judged_potential\"\ntiers = [{ min_level = 9, tier = \"B\" }]\n",
            "new_customers.tiers[0].min_level",
            "not a level",
        ),
        (
            "[new_customers]\ntenure_days = 90\nassessment = \"judged_potential\"\ntiers = [{ min_level = 5, tier = \"Gold\" }]\n",
            "new_customers.tiers[0].tier",
            "not a tier",
        ),
    ] {
        let err = Policy::from_toml_str(&format!("{base}{section}")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(field) && msg.contains(says), "{field}: {msg}");
        assert!(msg.contains("line "), "{msg}");
    }
}

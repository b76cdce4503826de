//! Tier gates (veto conditions beyond the score), as given/when/then:
//! how they are written and rejected, the always-late payer the default
//! policy keeps out of the top tier, and an invoice ageing past a gate's
//! threshold moving the tier on exactly the right day with time alone.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tier_core::indicators::Unit;
use tier_core::policy::{Advice, DEFAULT_POLICY_TOML, Policy, PolicyError};
use tier_core::sim::scenario::{invoice, order, payment};
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Day, Event, IndicatorName, Indicators, Timestamp};

const DAY_MS: i64 = 86_400_000;

/// The default policy's text without its `gates = [...]` blocks: the
/// policy as it was before it had gates.
fn without_gates(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("gates = [") {
            skipping = !line.trim_end().ends_with(']');
            continue;
        }
        if skipping {
            skipping = line.trim() != "]";
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

fn reject(text: &str) -> PolicyError {
    match Policy::from_toml_str(text) {
        Ok(_) => panic!("loaded, but must be rejected"),
        Err(e) => e,
    }
}

/// The line of the first occurrence of `needle` in `text`, 1-based.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap();
    text[..at].matches('\n').count() + 1
}

/// The default policy with `gates` (a TOML line) on tier `tier` (one
/// without gates of its own: a key may appear once).
fn default_with_gate_on(tier: &str, gates: &str) -> String {
    let anchor = format!("name = \"{tier}\"");
    let at = DEFAULT_POLICY_TOML.find(&anchor).unwrap() + anchor.len();
    let end = at + DEFAULT_POLICY_TOML[at..].find('\n').unwrap();
    format!(
        "{}\n{gates}{}",
        &DEFAULT_POLICY_TOML[..end],
        &DEFAULT_POLICY_TOML[end..]
    )
}

// --- Syntax and validation -------------------------------------------------

#[test]
fn the_default_policy_has_credit_gates_on_its_two_best_tiers() {
    let p = Policy::default_policy();
    assert!(p.uses(IndicatorName::OldestOverdueDays));
    // Without its gates, nothing reads the age of the oldest debt.
    let plain = Policy::from_toml_str(&without_gates(DEFAULT_POLICY_TOML)).unwrap();
    assert!(!plain.uses(IndicatorName::OldestOverdueDays));
    assert_eq!(plain.tiers(), p.tiers());
}

#[test]
fn gate_errors_name_the_line_and_the_field() {
    // An indicator that does not exist.
    let text = default_with_gate_on(
        "C",
        "gates = [{ indicator = \"credit_rating\", op = \">=\", value = 3 }]",
    );
    let e = reject(&text);
    assert_eq!(e.line, Some(line_of(&text, "credit_rating")));
    assert_eq!(e.field, "tiers[2].gates[0].indicator");
    assert!(e.message.contains("unknown variant `credit_rating`"), "{e}");

    // An operator that does not exist.
    let text = default_with_gate_on(
        "C",
        "gates = [{ indicator = \"on_time_payment_ratio\", op = \"=>\", value = 0.5 }]",
    );
    let e = reject(&text);
    assert_eq!(e.line, Some(line_of(&text, "\"=>\"")));
    assert_eq!(e.field, "tiers[2].gates[0].op");
    assert!(e.message.contains("unknown variant `=>`"), "{e}");

    // A value that is not a number.
    let text = default_with_gate_on(
        "C",
        "gates = [{ indicator = \"oldest_overdue_days\", op = \"<=\", value = nan }]",
    );
    let e = reject(&text);
    assert_eq!(e.line, Some(line_of(&text, "value = nan")));
    assert_eq!(e.field, "tiers[2].gates[0].value");
    assert!(e.message.contains("gate value must be finite"), "{e}");

    // A misspelt key, and an unknown rule for unknown values.
    let text = default_with_gate_on(
        "C",
        "gates = [{ indicator = \"oldest_overdue_days\", op = \"<=\", threshold = 30 }]",
    );
    let e = reject(&text);
    assert_eq!(e.line, Some(line_of(&text, "threshold = 30")));
    assert!(e.field.starts_with("tiers[2].gates[0]"), "{e}");
    assert!(e.message.contains("threshold"), "{e}");
    let text = default_with_gate_on(
        "C",
        "gates = [{ indicator = \"oldest_overdue_days\", op = \"<=\", value = 30, unknown = \"maybe\" }]",
    );
    let e = reject(&text);
    assert_eq!(e.field, "tiers[2].gates[0].unknown");
    assert!(e.message.contains("unknown variant `maybe`"), "{e}");

    // A gate on the lowest tier could veto nothing: rejected, not ignored.
    let text = default_with_gate_on(
        "D",
        "gates = [{ indicator = \"oldest_overdue_days\", op = \"<=\", value = 120 }]",
    );
    let e = reject(&text);
    assert_eq!(e.line, Some(line_of(&text, "gates = [{ indicator")));
    assert_eq!(e.field, "tiers[3].gates");
    assert!(e.message.contains("lowest tier"), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "policy line {}, field tiers[3].gates: ",
            e.line.unwrap()
        )),
        "{e}"
    );
    // An empty list is no gate at all, anywhere.
    let text = default_with_gate_on("D", "gates = []");
    assert!(Policy::from_toml_str(&text).is_ok());
}

#[test]
fn a_rules_policy_takes_gates_too() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid_rules_gates.toml"),
    )
    .unwrap();
    let p = Policy::from_toml_str(&src).unwrap();
    let core_by_rules = Indicators {
        order_amount_12m: 6_000_000.0,
        orders_per_month_12m: 5.0,
        avg_days_late: Some(2.0),
        on_time_payment_ratio: Some(0.95),
        margin_rate_12m: Some(0.2),
        ..Indicators::default()
    };
    let tier = |ind: &Indicators| p.tiers()[p.evaluate(ind).tier].name.clone();
    assert_eq!(tier(&core_by_rules), "core");
    // Core's own gate: paying on time too rarely.
    let rarely = Indicators {
        on_time_payment_ratio: Some(0.85),
        ..core_by_rules
    };
    assert_eq!(tier(&rarely), "important");
    // Important's gate demands a known margin, and binds core as well.
    let no_cost = Indicators {
        margin_rate_12m: None,
        ..core_by_rules
    };
    assert_eq!(tier(&no_cost), "regular");
    let e = p.explain(&no_cost, p.evaluate(&no_cost).tier);
    assert_eq!(e.score_tier, "core");
    assert_eq!(e.failed_gates.len(), 1);
    assert_eq!(e.failed_gates[0].tier, "important");
    assert_eq!(e.failed_gates[0].value, None);
    // The rules reach core and important already: the gap names the gate,
    // and the advice is to make the margin known and above 5%.
    assert_eq!(
        e.gap,
        "all conditions of important hold; important is vetoed: important requires \
         margin_rate_12m > 0.05 (now unknown)"
    );
    assert_eq!(
        e.advice,
        [Advice {
            indicator: IndicatorName::MarginRate12m,
            current: None,
            target: 0.0501,
            unit: Unit::Ratio,
        }]
    );
    // Gates veto the tier, never the score: still the top of the ladder.
    assert_eq!(p.evaluate(&no_cost).score, 100.0);
}

// --- The always-late payer ---------------------------------------------------

/// Fen per order: 3,000,000 CNY a year over 245 orders.
const LATE_PAYER_ORDER: i64 = 300_000_000 / 245;

/// Two years of a big, profitable customer (3,000,000 CNY a year at 25%
/// margin, 245 orders a year) who pays every invoice in full, 5 days
/// after its 60-day due date, up to `end`.
fn always_late_payer(end: Timestamp) -> Vec<Event> {
    let start = end.plus_days(-730);
    let mut events = Vec::new();
    for n in 0..490 {
        let at = start.plus_days(n as i64 * 365 / 245);
        events.push(order("late", n, at, LATE_PAYER_ORDER));
        events.push(invoice("late", n, at, LATE_PAYER_ORDER, 60));
        let paid = at.plus_days(65);
        if paid <= end {
            events.push(payment("late", n, paid, LATE_PAYER_ORDER));
        }
    }
    events.sort_by_key(|e| e.occurred_at);
    events
}

fn graded(policy: &Policy, events: &[Event]) -> CustomerState {
    let mut s = CustomerState::default();
    for e in events {
        s.process("late", e, policy);
    }
    s
}

#[test]
fn given_an_always_late_payer_with_great_revenue_then_the_credit_gate_keeps_it_out_of_a() {
    let end = date(2026, 12, 1);
    let events = always_late_payer(end);
    let gated = Policy::default_policy();
    let plain = Policy::from_toml_str(&without_gates(DEFAULT_POLICY_TOML)).unwrap();

    // Given a customer who paid every one of its ~245 invoices of the
    // year late, with 3,000,000 CNY of revenue at 25% margin:
    let before = graded(&plain, &events);
    let figures = before.indicators(&plain);
    assert_eq!(figures.on_time_payment_ratio, Some(0.0));
    assert!(
        (240.0..=250.0).contains(&(figures.order_count_12m)),
        "{figures:?}"
    );
    // ... the score alone (credit weighs 10%) made it A, with 60-day terms.
    let tier_before = before.assignment.clone().unwrap();
    assert_eq!(tier_before.tier, "A");
    assert!(tier_before.score >= 80.0, "{tier_before:?}");

    // When graded under the default policy with its credit gates,
    let after = graded(&gated, &events);
    let held = after.assignment.clone().unwrap();
    // then it holds B, the best tier whose gates it meets, with the same
    // score (gates veto the tier, not the score) ...
    assert_eq!(held.tier, "B");
    assert_eq!(held.score, tier_before.score);
    assert_eq!(gated.tiers()[1].payment_terms_days, 45);

    // ... and the explanation names the gate that blocked A.
    let figures = after.indicators(&gated);
    let e = gated.explain(&figures, 1);
    assert_eq!(e.tier, "B");
    assert_eq!(e.score_tier, "A");
    let [gate] = e.failed_gates.as_slice() else {
        panic!("one failed gate expected: {:?}", e.failed_gates);
    };
    assert_eq!(gate.tier, "A");
    assert_eq!(gate.indicator, "on_time_payment_ratio");
    assert_eq!((gate.op.as_str(), gate.threshold), (">=", 0.8));
    assert_eq!(gate.value, Some(0.0));
    assert_eq!(gate.unit, Unit::Ratio);
    assert!(
        e.gap
            .ends_with("A is vetoed: A requires on_time_payment_ratio >= 0.8 (now 0)"),
        "{}",
        e.gap
    );
    // What it would take: paying 80% on time; following it reaches A.
    assert_eq!(
        e.advice,
        [Advice {
            indicator: IndicatorName::OnTimePaymentRatio,
            current: Some(0.0),
            target: 0.8,
            unit: Unit::Ratio,
        }]
    );
    let mut better = figures;
    better.set(IndicatorName::OnTimePaymentRatio, Some(0.8));
    assert_eq!(gated.evaluate(&better).tier, 0);
}

#[test]
fn a_customer_with_no_invoice_due_yet_is_not_vetoed() {
    // Given a big buyer whose first invoices are not due yet, the credit
    // figures are unknown: no evidence, no veto.
    let p = Policy::default_policy();
    let ind = Indicators {
        order_amount_12m: 600_000_000.0,
        order_count_12m: 100.0,
        orders_per_month_12m: 8.0,
        margin_12m: Some(150_000_000.0),
        margin_rate_12m: Some(0.25),
        ..Indicators::default()
    };
    let eval = p.evaluate(&ind);
    assert_eq!((eval.tier, eval.ceiling), (0, 0));
    assert!(p.explain(&ind, 0).failed_gates.is_empty());
}

// --- Time moves tiers through a gate -----------------------------------------

/// Fen per order of a 6,000,000 CNY a year weekly buyer.
const WEEKLY: i64 = 600_000_000 / 52;

/// A weekly buyer who pays every invoice (30-day terms) the day after it
/// is issued, for a year up to `last`, plus order 1000 at `last` whose
/// invoice is never paid. Returns the events and the unpaid invoice's
/// due instant.
fn good_payer_with_one_unpaid(last: Timestamp) -> (Vec<Event>, Timestamp) {
    let mut events = Vec::new();
    for n in 0..53 {
        let at = last.plus_days(-364 + 7 * n as i64);
        events.push(order("c", n, at, WEEKLY));
        events.push(invoice("c", n, at, WEEKLY, 30));
        events.push(payment("c", n, at.plus_days(1), WEEKLY));
    }
    let unpaid_at = Timestamp::from_millis(last.millis() + 3_600_000);
    events.push(order("c", 1000, unpaid_at, WEEKLY));
    events.push(invoice("c", 1000, unpaid_at, WEEKLY, 30));
    events.sort_by_key(|e| e.occurred_at);
    (events, unpaid_at.plus_days(30))
}

/// Sweep once a day (at noon UTC) from `from` for `days` days, as the
/// service's sweeper does; every change made.
fn sweep_daily(
    s: &mut CustomerState,
    policy: &Policy,
    from: Timestamp,
    days: i64,
) -> Vec<TierChange> {
    let mut changes = Vec::new();
    for d in 1..=days {
        let now = Timestamp::from_millis(from.millis() + d * DAY_MS + DAY_MS / 2);
        let (c, done) = s.advance_to("c", policy, now, 1_000);
        assert!(done);
        changes.extend(c);
    }
    changes
}

#[test]
fn given_an_unpaid_invoice_when_it_grows_older_than_a_gate_allows_then_the_tier_drops_that_very_day()
 {
    let p = Policy::default_policy();
    let cal = p.calendar();
    let last = date(2026, 3, 2);
    let (events, due_at) = good_payer_with_one_unpaid(last);
    let mut s = CustomerState::default();
    for e in &events {
        s.process("c", e, &p);
    }
    assert_eq!(s.assignment.as_ref().unwrap().tier, "A");
    let due: Day = cal.day(due_at);
    // Days past due on the morning of business day `due + n`.
    let morning = |n: i32| cal.day_start(due.plus(n));
    let oldest = |n: i32| {
        s.projection
            .indicators(morning(n), p.fold_rules())
            .oldest_overdue_days
    };
    assert_eq!(oldest(0), 0.0, "not overdue on its due day");
    assert_eq!(oldest(1), 1.0);
    assert_eq!(oldest(60), 60.0);
    assert_eq!(oldest(61), 61.0);

    // tierd down all along: one catch-up on restart must decide the same.
    let mut caught_up = s.clone();

    // Ahead of the drop, within the at-risk horizon, it is foreseen with
    // the day and what would keep A: the debt no older than 60 days.
    let mut early = s.clone();
    let forty = morning(40);
    early.advance_to("c", &p, forty, 1_000);
    let risk = early.foresee_drop("c", &p, forty).expect("foreseen");
    assert_eq!(
        (risk.current_tier.as_str(), risk.falls_to.as_str()),
        ("A", "B")
    );
    assert_eq!(risk.on, morning(61));
    assert_eq!(
        risk.keep,
        [Advice {
            indicator: IndicatorName::OldestOverdueDays,
            current: Some(61.0),
            target: 60.0,
            unit: Unit::Days,
        }]
    );

    // When the sweeper runs every day for 130 days and nothing is paid,
    let changes = sweep_daily(&mut s, &p, last, 130);
    // then A falls to B on the first business day the debt is more than
    // 60 days past due, and to C when it is more than 90 (B's gate), each
    // at that day's start, by time alone, and nothing else moves.
    let moves: Vec<(Option<&str>, &str, Cause, Timestamp)> = changes
        .iter()
        .map(|c| {
            (
                c.old_tier.as_deref(),
                c.new_tier.as_str(),
                c.cause,
                c.changed_at,
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (Some("A"), "B", Cause::Time, morning(61)),
            (Some("B"), "C", Cause::Time, morning(91)),
        ]
    );
    // The score stayed in A's band all along: the gates moved the tier.
    assert!(changes.iter().all(|c| c.new_score >= 80.0), "{changes:?}");

    let (again, done) = caught_up.advance_to("c", &p, morning(100), 10_000);
    assert!(done);
    assert_eq!(again, changes);

    // The explanation of C names both failing gates, A's and B's.
    let figures = s.indicators(&p);
    let e = p.explain(&figures, 2);
    let failed: Vec<(&str, &str, f64, Option<f64>)> = e
        .failed_gates
        .iter()
        .map(|f| (f.tier.as_str(), f.indicator.as_str(), f.threshold, f.value))
        .collect();
    let age = figures.oldest_overdue_days;
    assert!(age > 90.0, "{age}");
    assert_eq!(
        failed,
        [
            ("A", "oldest_overdue_days", 60.0, Some(age)),
            ("B", "oldest_overdue_days", 90.0, Some(age)),
        ]
    );
    assert!(
        e.gap.contains("B requires oldest_overdue_days <= 90"),
        "{}",
        e.gap
    );

    // Paying the debt lifts the veto at once: back to A, cause EVENT.
    let paid = s.process("c", &payment("c", 1000, morning(100), WEEKLY), &p);
    let change = paid.change.expect("the tier moves back");
    assert_eq!(
        (change.new_tier.as_str(), change.cause),
        ("A", Cause::Event)
    );
}

#[test]
fn a_vetoed_tier_is_left_at_once_whatever_hysteresis_says() {
    // Given the default policy (30 days in a tier before a downgrade) and
    // a customer who entered A yesterday with a high score, when its
    // figures fail A's gate, then it leaves A now.
    let p = Policy::default_policy();
    let since = date(2026, 5, 1);
    let held = tier_core::policy::TierAssignment {
        tier: "A".into(),
        score: 90.0,
        since,
    };
    let ind = Indicators {
        order_amount_12m: 600_000_000.0,
        orders_per_month_12m: 8.0,
        margin_12m: Some(150_000_000.0),
        margin_rate_12m: Some(0.25),
        on_time_payment_ratio: Some(0.5),
        avg_days_late: Some(3.0),
        max_days_late: Some(9.0),
        ..Indicators::default()
    };
    let eval = p.evaluate(&ind);
    assert!(eval.score >= 80.0, "{eval:?}");
    assert_eq!((eval.tier, eval.ceiling), (1, 1));
    assert_eq!(p.decide(Some(&held), eval, since.plus_days(1)), 1);
}

#[test]
fn a_veto_during_the_hold_never_leaves_the_late_payer_above_the_punctual_one() {
    // Given the default policy (30 days in a tier before a downgrade) and
    // a customer who entered A on day 0 with a score of 84 whose
    // complaints have since dropped its score into C's band (A's hold
    // keeps it in A), when on day 12 an invoice 61 days overdue fails A's
    // `oldest_overdue_days <= 60` gate, then it leaves A at once for the
    // score's tier, C. Not for B, the best tier the gates allow: entered
    // on day 12, B would hold it until day 42, above the same customer
    // paying on time, whom A's hold lets drop to C on day 30.
    let p = Policy::default_policy();
    let day0 = date(2026, 5, 1);
    let held = tier_core::policy::TierAssignment {
        tier: "A".into(),
        score: 84.0,
        since: day0,
    };
    let entered = Indicators {
        order_amount_12m: 200_000_000.0,
        orders_per_month_12m: 4.0,
        margin_12m: Some(50_000_000.0),
        margin_rate_12m: Some(0.25),
        on_time_payment_ratio: Some(1.0),
        avg_days_late: Some(0.0),
        max_days_late: Some(0.0),
        ..Indicators::default()
    };
    let eval = p.evaluate(&entered);
    assert_eq!(eval.tier, 0, "{eval:?}");
    // Day 10: a critical, a high and a medium complaint (26 points).
    let mut complained = entered;
    complained.complaints_by_severity_12m = [0, 0, 1, 1, 1];
    complained.complaints_12m = 3.0;
    complained.open_complaints = 3.0;
    let eval = p.evaluate(&complained);
    assert_eq!((eval.tier, eval.ceiling), (2, 0), "{eval:?}");
    assert_eq!(p.decide(Some(&held), eval, day0.plus_days(10)), 0);
    // Day 12: the invoice 61 days overdue.
    let overdue = Indicators {
        oldest_overdue_days: 61.0,
        overdue_amount: 1_000_000.0,
        on_time_payment_ratio: Some(0.9),
        avg_days_late: Some(10.0),
        max_days_late: Some(61.0),
        ..complained
    };
    let eval = p.evaluate(&overdue);
    assert!((40.0..60.0).contains(&eval.score), "{eval:?}");
    assert_eq!((eval.tier, eval.ceiling), (2, 1), "{eval:?}");
    assert_eq!(p.decide(Some(&held), eval, day0.plus_days(12)), 2);
    // The punctual twin: held in A until its hold ends, then C.
    let punctual = p.evaluate(&complained);
    assert_eq!(p.decide(Some(&held), punctual, day0.plus_days(29)), 0);
    assert_eq!(p.decide(Some(&held), punctual, day0.plus_days(30)), 2);
}

#[test]
fn a_figure_only_a_gate_reads_still_moves_the_tier_on_its_day() {
    // Given a policy scoring the order count only (no credit figure is
    // scored) whose A requires no debt more than 60 days past due, and a
    // customer with 90 recent orders (A) and one invoice never paid:
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/thresholds.toml"),
    )
    .unwrap()
    .replace(
        "payment_terms_days = 60\n",
        "payment_terms_days = 60\ngates = [{ indicator = \"oldest_overdue_days\", op = \"<=\", value = 60 }]\n",
    );
    let p = Policy::from_toml_str(&src).unwrap();
    assert!(p.uses(IndicatorName::OldestOverdueDays));
    assert!(!p.uses(IndicatorName::AvgDaysLate));
    let last = date(2026, 3, 2);
    let mut s = CustomerState::default();
    for n in 0..90 {
        s.process(
            "c",
            &order("c", n, last.plus_days(n as i64 - 89), 1_000),
            &p,
        );
    }
    s.process("c", &invoice("c", 0, last, 1_000, 30), &p);
    assert_eq!(s.assignment.as_ref().unwrap().tier, "A");
    // When only time passes, swept daily,
    let changes = sweep_daily(&mut s, &p, last, 100);
    // then the one move is to B at the start of (UTC) day due + 61: the
    // sweeper knew to look although no scored figure changes.
    let due = p.calendar().day(last.plus_days(30));
    let moves: Vec<(&str, Cause, Timestamp)> = changes
        .iter()
        .map(|c| (c.new_tier.as_str(), c.cause, c.changed_at))
        .collect();
    assert_eq!(
        moves,
        [("B", Cause::Time, p.calendar().day_start(due.plus(61)))]
    );
}

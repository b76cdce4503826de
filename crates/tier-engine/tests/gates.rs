//! Tier gates through the engine on a stepped clock: an unpaid invoice
//! ageing past the default policy's 60-day gate moves a customer from A
//! to B on exactly that business day, by the sweeper alone, after an
//! at-risk notice; paying it brings A back at once.
//!
//! Kept apart from `engine.rs` so the gate scenario reads on its own.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::IndicatorName;
use tier_core::policy::Policy;
use tier_core::sim::scenario::{invoice, order, payment};
use tier_core::state::Cause;
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{Engine, Unit};

/// Fen per order of a 6,000,000 CNY a year weekly buyer.
const WEEKLY: i64 = 600_000_000 / 52;

const DAY_MS: i64 = 86_400_000;

fn fold_all(engine: &mut Engine, events: &[Event]) -> Unit {
    let mut unit = Unit::new();
    for e in events {
        engine.fold(&mut unit, e);
    }
    engine.seal(&unit);
    unit
}

#[test]
fn an_invoice_more_than_60_days_overdue_moves_a_to_b_that_day_by_the_sweeper() {
    let policy = Arc::new(Policy::default_policy());
    let cal = policy.calendar();
    let last = date(2026, 3, 2);
    // A big weekly buyer paying every invoice the day after it is issued,
    // plus one last invoice (30-day terms) it never pays.
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
    let due = cal.day(unpaid_at.plus_days(30));
    let morning = |n: i32| cal.day_start(due.plus(n));

    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &events);
    assert_eq!(
        engine
            .customer("c")
            .unwrap()
            .effective
            .as_ref()
            .unwrap()
            .tier,
        "A"
    );

    // The sweeper runs at noon (UTC) every day for 100 days.
    let mut changes = Vec::new();
    let mut notices = Vec::new();
    for d in 1..=100 {
        let now = Timestamp::from_millis(last.millis() + d * DAY_MS + DAY_MS / 2);
        let mut unit = Unit::new();
        while engine.sweep(&mut unit, now, 7) > 0 {}
        engine.seal(&unit);
        changes.extend(unit.changes);
        notices.extend(unit.at_risk.into_iter().map(|r| (now, r)));
    }
    // One move, A to B, cause TIME, at the start of the first business
    // day the debt is 61 days past due.
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
    assert_eq!(moves, [(Some("A"), "B", Cause::Time, morning(61))]);
    // Announced once beforehand, with the day and what would keep A; then
    // B's own 90-day gate is foreseen too.
    let announced: Vec<(&str, &str, Timestamp)> = notices
        .iter()
        .map(|(_, r)| (r.current_tier.as_str(), r.falls_to.as_str(), r.on))
        .collect();
    assert_eq!(
        announced,
        [("A", "B", morning(61)), ("B", "C", morning(91))],
        "{notices:?}"
    );
    let (announced_at, risk) = &notices[0];
    assert!(*announced_at < morning(61));
    assert!(
        risk.keep
            .iter()
            .any(|a| a.indicator == IndicatorName::OldestOverdueDays && a.target == 60.0),
        "{:?}",
        risk.keep
    );

    // Paying the debt lifts the veto at once.
    let unit = fold_all(&mut engine, &[payment("c", 1000, morning(75), WEEKLY)]);
    let back: Vec<(&str, Cause)> = unit
        .changes
        .iter()
        .map(|c| (c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(back, [("A", Cause::Event)]);
}

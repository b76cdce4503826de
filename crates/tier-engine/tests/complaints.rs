//! Complaints by tier deadline, through the engine on a stepped clock: a
//! complaint's deadline comes from the tier held at its opening and does
//! not move when the tier changes; it becomes overdue on the right hour,
//! announced exactly once (by a sweep, or by the event that shows it
//! while tierd catches up without sweeping); the per-tier count of open
//! overdue complaints follows; a replay announces the same.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::overrides::OverrideMode;
use tier_core::policy::Policy;
use tier_core::sim::scenario::{complaint, order, resolved, weekly_buyer};
use tier_core::state::ComplaintOverdue;
use tier_core::time::date;
use tier_core::{Event, Severity, Timestamp};
use tier_engine::{Engine, SetOverride, Unit};

const HOUR: i64 = 3_600_000;

fn at_hours(t: Timestamp, hours: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + hours * HOUR)
}

fn policy() -> Arc<Policy> {
    Arc::new(Policy::default_policy())
}

fn sla(policy: &Policy, tier: &str) -> i64 {
    let i = policy.tier_index(tier).unwrap();
    i64::from(policy.tiers()[i].complaint_sla_hours)
}

fn fold(engine: &mut Engine, events: &[Event]) -> Unit {
    let mut unit = Unit::new();
    for e in events {
        engine.fold(&mut unit, e);
    }
    engine.seal(&unit);
    unit
}

/// Sweep hour by hour from `from` for `hours` hours; every notice with the
/// hour it came in.
fn sweep_hours(engine: &mut Engine, from: Timestamp, hours: i64) -> Vec<(i64, ComplaintOverdue)> {
    let mut out = Vec::new();
    for h in 0..=hours {
        let mut unit = Unit::new();
        while engine.sweep(&mut unit, at_hours(from, h), 50) > 0 {}
        engine.seal(&unit);
        out.extend(unit.overdue.into_iter().map(|o| (h, o)));
    }
    out
}

fn overdue_in(engine: &Engine, tier: &str) -> i64 {
    engine
        .overdue_by_tier()
        .into_iter()
        .find(|(t, _)| t == tier)
        .map_or(0, |(_, n)| n)
}

/// A customer buying weekly, 3,000,000 CNY a year (the default policy's A).
fn big(engine: &mut Engine, id: &str, last: Timestamp) -> String {
    fold(engine, &weekly_buyer(id, last, 300_000_000));
    engine.customer(id).unwrap().tier().unwrap().to_owned()
}

#[test]
fn the_deadline_follows_the_tier_at_opening_and_passes_on_the_hour_once() {
    let policy = policy();
    let opened = at_hours(date(2026, 3, 2), 9);
    let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 1, 1));
    let tier = big(&mut engine, "ada", date(2026, 3, 1));
    let lowest = policy.tiers().last().unwrap().name.clone();
    assert_ne!(
        tier, lowest,
        "the customer must hold a better tier than the lowest"
    );

    let unit = fold(&mut engine, &[complaint("ada", 1, opened, Severity::High)]);
    assert!(unit.overdue.is_empty());
    let hours = sla(&policy, &tier);
    assert!(
        hours < sla(&policy, &lowest),
        "a better tier answers sooner"
    );

    // A manager pins the customer to the lowest tier: the open
    // complaint's deadline stays; a new complaint gets the lowest tier's.
    let mut unit = Unit::new();
    engine
        .set_override(
            &mut unit,
            SetOverride {
                customer_id: "ada".into(),
                tier: lowest.clone(),
                mode: OverrideMode::Pin,
                reason: "dispute".into(),
                author: "cs-lead".into(),
                expires_at: None,
            },
            at_hours(opened, 1),
        )
        .unwrap();
    engine.seal(&unit);
    fold(
        &mut engine,
        &[complaint("ada", 2, at_hours(opened, 2), Severity::Low)],
    );

    let notices = sweep_hours(&mut engine, opened, hours + 2 + sla(&policy, &lowest) + 3);
    let first: Vec<_> = notices
        .iter()
        .filter(|(_, n)| n.complaint_id == "ada-complaint1")
        .collect();
    assert_eq!(first.len(), 1, "announced exactly once: {notices:?}");
    let (hour, n) = first[0];
    assert_eq!(*hour, hours, "overdue on the hour its SLA ends");
    assert_eq!(n.deadline.at, at_hours(opened, hours));
    assert_eq!(
        (n.deadline.tier.as_str(), i64::from(n.deadline.sla_hours)),
        (tier.as_str(), hours)
    );
    assert_eq!((n.severity, n.resolved_at), (Severity::High, None));

    let second: Vec<_> = notices
        .iter()
        .filter(|(_, n)| n.complaint_id == "ada-complaint2")
        .collect();
    assert_eq!(second.len(), 1, "{notices:?}");
    assert_eq!(second[0].0, 2 + sla(&policy, &lowest));
    assert_eq!(second[0].1.deadline.tier, lowest);

    assert_eq!(overdue_in(&engine, &tier), 1);
    assert_eq!(overdue_in(&engine, &lowest), 1);

    // Resolving takes it off the count and announces nothing more.
    let late = at_hours(opened, hours + 40);
    let unit = fold(&mut engine, &[resolved("ada", 1, late)]);
    assert!(unit.overdue.is_empty());
    assert!(unit.overdue_moved);
    assert_eq!(overdue_in(&engine, &tier), 0);
    assert_eq!(overdue_in(&engine, &lowest), 1);
    assert!(sweep_hours(&mut engine, late, 500).is_empty());
}

/// An engine holding `ids`, each buying as the default policy's A (by
/// 2026-03-01), with that tier and its SLA in hours.
fn holding_a(policy: &Arc<Policy>, ids: &[&str]) -> (Engine, String, i64) {
    let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 1, 1));
    let mut tier = String::new();
    for id in ids {
        tier = big(&mut engine, id, date(2026, 3, 1));
    }
    let hours = sla(policy, &tier);
    (engine, tier, hours)
}

#[test]
fn resolved_in_time_is_never_overdue_and_resolved_late_while_catching_up_is_announced_once() {
    let policy = policy();
    let opened = at_hours(date(2026, 3, 2), 9);
    let (mut engine, tier, hours) = holding_a(&policy, &["bo", "cy"]);

    // Caught up and sweeping: resolved one hour before the deadline.
    fold(&mut engine, &[complaint("bo", 1, opened, Severity::Medium)]);
    sweep_hours(&mut engine, opened, hours - 2);
    fold(
        &mut engine,
        &[resolved("bo", 1, at_hours(opened, hours - 1))],
    );
    assert!(sweep_hours(&mut engine, at_hours(opened, hours - 1), 200).is_empty());

    // Catching up (no sweeps): the complaint is resolved a day late; the
    // resolution shows it was overdue and announces it, once.
    let unit = fold(
        &mut engine,
        &[
            complaint("cy", 1, opened, Severity::Critical),
            resolved("cy", 1, at_hours(opened, hours + 24)),
        ],
    );
    assert_eq!(unit.overdue.len(), 1, "{:?}", unit.overdue);
    let n = &unit.overdue[0];
    assert_eq!(n.deadline.at, at_hours(opened, hours));
    assert_eq!(n.resolved_at, Some(at_hours(opened, hours + 24)));
    assert_eq!(overdue_in(&engine, &tier), 0, "resolved: not open");
    assert!(sweep_hours(&mut engine, at_hours(opened, hours + 24), 200).is_empty());

    // A replay of the same events into a fresh engine decides the same.
    let mut replay = Engine::new(policy, Vec::new(), date(2026, 1, 1));
    big(&mut replay, "cy", date(2026, 3, 1));
    let again = fold(
        &mut replay,
        &[
            complaint("cy", 1, opened, Severity::Critical),
            resolved("cy", 1, at_hours(opened, hours + 24)),
        ],
    );
    assert_eq!(again.overdue, unit.overdue);
}

#[test]
fn a_late_resolution_read_before_its_opening_announces_the_complaint_overdue_once() {
    // A complaint resolved a day past its deadline, its resolution read
    // before its opening, is overdue as much as when read in order; one
    // resolved in time is not, whatever was read before it.
    let policy = policy();
    let opened = at_hours(date(2026, 3, 2), 9);
    let (mut engine, tier, hours) = holding_a(&policy, &["ev", "fay"]);
    let late = at_hours(opened, hours + 24);

    let unit = fold(
        &mut engine,
        &[
            resolved("ev", 1, late),
            complaint("ev", 1, opened, Severity::Critical),
        ],
    );
    assert_eq!(unit.overdue.len(), 1, "{:?}", unit.overdue);
    let n = &unit.overdue[0];
    assert_eq!(n.deadline.at, at_hours(opened, hours));
    assert_eq!(n.resolved_at, Some(late));
    assert_eq!(overdue_in(&engine, &tier), 0, "resolved: not open");
    assert!(sweep_hours(&mut engine, late, 200).is_empty(), "once");

    // Read in order, the same notice.
    let (mut in_order, ..) = holding_a(&policy, &["ev"]);
    let again = fold(
        &mut in_order,
        &[
            complaint("ev", 1, opened, Severity::Critical),
            resolved("ev", 1, late),
        ],
    );
    assert_eq!(again.overdue, unit.overdue);

    // Resolved an hour before the deadline, read first: never overdue.
    let unit = fold(
        &mut engine,
        &[
            resolved("fay", 1, at_hours(opened, hours - 1)),
            complaint("fay", 1, opened, Severity::Critical),
        ],
    );
    assert!(unit.overdue.is_empty(), "{:?}", unit.overdue);
    assert!(sweep_hours(&mut engine, late, 200).is_empty());

    // An order read ahead of the complaints (another topic), dated past
    // the deadline, then an opening and its resolution in time: never
    // overdue either, though the customer's latest event is past the
    // deadline when the opening is read.
    let (mut ahead, ..) = holding_a(&policy, &["gus"]);
    let unit = fold(
        &mut ahead,
        &[
            order("gus", 900, at_hours(opened, hours + 48), 10_000_000),
            complaint("gus", 1, opened, Severity::Critical),
            resolved("gus", 1, at_hours(opened, 1)),
        ],
    );
    assert!(unit.overdue.is_empty(), "{:?}", unit.overdue);
    assert_eq!(overdue_in(&ahead, &tier), 0);
}

#[test]
fn overdue_counts_survive_a_restart_and_announced_ones_are_not_announced_again() {
    let policy = policy();
    let opened = at_hours(date(2026, 3, 2), 9);
    let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 1, 1));
    let tier = big(&mut engine, "di", date(2026, 3, 1));
    let hours = sla(&policy, &tier);
    fold(&mut engine, &[complaint("di", 1, opened, Severity::Low)]);
    assert_eq!(sweep_hours(&mut engine, opened, hours).len(), 1);

    let states: Vec<_> = engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect();
    let mut restarted = Engine::new(policy, states, at_hours(opened, hours + 5));
    assert_eq!(overdue_in(&restarted, &tier), 1);
    assert!(sweep_hours(&mut restarted, at_hours(opened, hours + 5), 100).is_empty());
}

#[test]
fn an_event_that_reveals_a_second_overdue_complaint_counts_only_that_one() {
    let policy = policy();
    let opened = at_hours(date(2026, 3, 2), 9);
    let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 1, 1));
    let tier = big(&mut engine, "eve", date(2026, 3, 1));
    let hours = sla(&policy, &tier);
    // The first complaint is announced by a sweep at its deadline.
    fold(&mut engine, &[complaint("eve", 1, opened, Severity::Low)]);
    assert_eq!(sweep_hours(&mut engine, opened, hours).len(), 1);
    assert_eq!(overdue_in(&engine, &tier), 1);
    // The second opens later; no sweep runs (catching up), and an order
    // dated past its deadline reveals it.
    let second = at_hours(opened, hours + 1);
    fold(&mut engine, &[complaint("eve", 2, second, Severity::Low)]);
    let unit = fold(
        &mut engine,
        &[tier_core::sim::scenario::order(
            "eve",
            900,
            at_hours(second, hours + 1),
            100_000,
        )],
    );
    assert_eq!(unit.overdue.len(), 1, "{:?}", unit.overdue);
    assert_eq!(
        overdue_in(&engine, &tier),
        2,
        "each open overdue complaint once"
    );
    // A restart derives the same count.
    let states: Vec<_> = engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect();
    let restarted = Engine::new(policy, states, at_hours(second, hours + 2));
    assert_eq!(overdue_in(&restarted, &tier), 2);
}

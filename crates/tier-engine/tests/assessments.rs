//! Qualitative assessments through the engine on a stepped clock (issue
//! 12): records decoded with the policy's decoder (a bad assessment is
//! rejected there with the field named), an assessment moves the tier and
//! is explained with its author, it expires on the right business day and
//! a day-by-day sweep moves the tier back exactly once, with cause `Time`,
//! and a replay into a fresh engine reproduces the state exactly.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::policy::Policy;
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, TierChange};
use tier_core::time::date;
use tier_core::{Event, EventKind, RejectReason, Timestamp, ValidationLimits};
use tier_engine::{Engine, SetAssessment, Unit};
use tier_wire::decode::{Decoder, encode_json, encode_protobuf, event_to_proto};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const POLICY: &str = include_str!("../../tier-core/tests/fixtures/valid_assessments.toml");

fn policy() -> Arc<Policy> {
    Arc::new(Policy::from_toml_str(POLICY).unwrap())
}

fn at(t: Timestamp, hours: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + hours * HOUR)
}

fn assessed(id: &str, t: Timestamp, indicator: &str, value: i64, by: &str) -> Event {
    Event {
        event_id: id.into(),
        customer_id: "ada".into(),
        occurred_at: t,
        source: "crm".into(),
        kind: EventKind::CustomerAssessed {
            indicator: indicator.into(),
            value,
            assessed_by: by.into(),
            note: String::new(),
        },
    }
}

/// Each event through the wire (protobuf and JSON by turns) and the
/// policy's decoder, as the pipeline would see it.
fn decoded(policy: &Policy, events: &[Event]) -> Vec<Event> {
    let decoder = Decoder::for_policy(policy, ValidationLimits::default());
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let msg = event_to_proto(e, "CNY");
            let bytes = if i % 2 == 0 {
                encode_protobuf(&msg)
            } else {
                encode_json(&msg)
            };
            decoder
                .decode(Some(b"ada"), Some(&bytes), date(2027, 1, 1))
                .unwrap()
                .event
        })
        .collect()
}

fn fold(engine: &mut Engine, events: &[Event]) -> Unit {
    let mut unit = Unit::new();
    for e in events {
        engine.fold(&mut unit, e);
    }
    engine.seal(&unit);
    unit
}

/// Sweep at every UTC midnight from `from` for `days` days; every change
/// with the day it came in.
fn sweep_days(engine: &mut Engine, from: Timestamp, days: i64) -> Vec<(i64, TierChange)> {
    let mut out = Vec::new();
    for d in 0..=days {
        let mut unit = Unit::new();
        let horizon = Timestamp::from_millis(from.millis() + d * DAY);
        while engine.sweep(&mut unit, horizon, 50) > 0 {}
        engine.seal(&unit);
        out.extend(unit.changes.into_iter().map(|c| (d, c)));
    }
    out
}

fn tier(engine: &Engine) -> String {
    engine.customer("ada").unwrap().tier().unwrap().to_owned()
}

/// 100,000 CNY of orders (B, 60 points), then a potential of 5 by alice on
/// 3 March 2026, 10:00 in Shanghai (A, 90 points).
fn events() -> Vec<Event> {
    vec![
        order("ada", 1, at(date(2026, 3, 2), 2), 10_000_000),
        assessed("a1", at(date(2026, 3, 3), 2), "potential", 5, "alice"),
    ]
}

#[test]
fn an_assessment_moves_the_tier_then_expires_on_the_right_day() {
    let policy = policy();
    let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 3, 1));
    let unit = fold(&mut engine, &decoded(&policy, &events()));
    let tiers: Vec<(&str, Cause)> = unit
        .changes
        .iter()
        .map(|c| (c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(tiers, [("B", Cause::Event), ("A", Cause::Event)]);
    assert_eq!(
        unit.changes[1].causing_event_id.as_deref(),
        Some("a1"),
        "the assessment moved it"
    );

    // Explained with its author, date and expiry.
    let e = engine.customer("ada").unwrap().explain(&policy);
    let pot = &e.assessments[0];
    assert_eq!((pot.name.as_str(), pot.value), ("potential", Some(5.0)));
    assert_eq!(pot.label.as_deref(), Some("exceptional"));
    assert_eq!(pot.assessed_by.as_deref(), Some("alice"));
    assert_eq!(pot.assessed_at, Some(at(date(2026, 3, 3), 2)));
    // 30 business days, 3 March ..= 1 April in Shanghai: it expires at the
    // start of 2 April there (16:00 UTC on 1 April).
    let expires = at(date(2026, 4, 1), 16);
    assert_eq!(pot.expires_at, Some(expires));
    // The expiry is the customer's next due instant (the engine also
    // visits customers above the lowest tier daily, for at-risk notices).
    assert_eq!(
        engine.customer("ada").unwrap().next_due(&policy),
        Some(expires)
    );

    // Day by day: one change, on the day after the last valid one.
    let changes = sweep_days(&mut engine, date(2026, 3, 4), 60);
    assert_eq!(changes.len(), 1, "exactly once: {changes:?}");
    let (day, c) = &changes[0];
    assert_eq!(*day, 29, "swept at 2 April 00:00 UTC");
    assert_eq!(
        (c.old_tier.as_deref(), c.new_tier.as_str(), c.cause),
        (Some("A"), "B", Cause::Time)
    );
    assert_eq!(c.changed_at, expires);
    assert_eq!(tier(&engine), "B");
    let e = engine.customer("ada").unwrap().explain(&policy);
    assert_eq!(e.assessments[0].value, None, "expired: missing");
    assert_eq!(e.assessments[0].assessed_by.as_deref(), Some("alice"));
}

#[test]
fn a_bad_assessment_is_dead_lettered_with_the_field_named() {
    let policy = policy();
    let decoder = Decoder::for_policy(&policy, ValidationLimits::default());
    let cases = [
        (
            assessed("x1", date(2026, 3, 3), "charisma", 3, "alice"),
            "customer_assessed.indicator",
        ),
        (
            assessed("x2", date(2026, 3, 3), "potential", 9, "alice"),
            "customer_assessed.value",
        ),
    ];
    for (e, field) in cases {
        let bytes = encode_protobuf(&event_to_proto(&e, "CNY"));
        let err = decoder
            .decode(Some(b"ada"), Some(&bytes), date(2026, 3, 4))
            .unwrap_err();
        assert_eq!((err.reason, err.field), (RejectReason::InvalidField, field));
    }
}

#[test]
fn a_replay_reproduces_the_state_exactly() {
    let policy = policy();
    let mut events = events();
    events.extend([
        // Late and older: history only.
        assessed("a0", at(date(2026, 3, 1), 1), "potential", 2, "carol"),
        // A resend.
        assessed("a1", at(date(2026, 3, 3), 2), "potential", 5, "alice"),
        assessed("i1", at(date(2026, 3, 9), 1), "industry_position", 5, "bob"),
        order("ada", 2, at(date(2026, 5, 4), 3), 2_000_000),
        assessed("a2", at(date(2026, 5, 6), 3), "potential", 3, "alice"),
    ]);
    let events = decoded(&policy, &events);

    // Live: each event on its day, with a sweep at every midnight.
    let mut live = Engine::new(policy.clone(), Vec::new(), date(2026, 3, 1));
    let mut live_changes = Vec::new();
    let mut next = 0;
    let mut day = date(2026, 3, 1);
    let end = date(2026, 9, 1);
    while day <= end {
        let mut unit = Unit::new();
        while next < events.len() && events[next].occurred_at < day {
            live.fold(&mut unit, &events[next]);
            next += 1;
        }
        while live.sweep(&mut unit, day, 50) > 0 {}
        live.seal(&unit);
        live_changes.extend(unit.changes);
        day = Timestamp::from_millis(day.millis() + DAY);
    }
    assert!(
        live_changes.iter().any(|c| c.cause == Cause::Time),
        "{live_changes:?}"
    );

    // Replays: all events, then one sweep to the same day; twice.
    let replay = || {
        let mut engine = Engine::new(policy.clone(), Vec::new(), date(2026, 3, 1));
        let mut unit = fold(&mut engine, &events);
        while engine.sweep(&mut unit, end, 50) > 0 {}
        engine.seal(&unit);
        engine
    };
    let (first, second) = (replay(), replay());
    let a = first.customer("ada").unwrap();
    let b = second.customer("ada").unwrap();
    assert_eq!(a, b);
    let l = live.customer("ada").unwrap();
    assert_eq!(l.projection, a.projection);
    assert_eq!(l.effective, a.effective);
    assert_eq!(l.assignment, a.assignment);
    assert_eq!(l.tier_history(), a.tier_history());
    assert_eq!(a.projection.assessment_history().len(), 4);
    assert_eq!(a.explain(&policy), l.explain(&policy));
}

#[test]
fn a_correction_set_at_the_same_instant_is_the_one_in_force() {
    // Commands of one batch share its `now`: a sales manager's slip (a
    // potential of 5) and its correction (2) both count, the later last.
    let policy = policy();
    let now = at(date(2026, 3, 3), 2);
    let mut engine = Engine::new(policy.clone(), Vec::new(), now);
    fold(&mut engine, &decoded(&policy, &events()[..1]));
    let mut unit = Unit::new();
    for value in [5, 2] {
        let cmd = SetAssessment {
            customer_id: "ada".into(),
            indicator: "potential".into(),
            value,
            assessed_by: "alice".into(),
            note: String::new(),
        };
        engine.set_assessment(&mut unit, cmd, now).unwrap();
    }
    engine.seal(&unit);
    let e = engine.customer("ada").unwrap().explain(&policy);
    assert_eq!(e.assessments[0].value, Some(2.0), "the correction holds");
    // 60 points of volume and a potential of 2 (a quarter of 60): B.
    assert_eq!(tier(&engine), "B");

    // After a restart whose clock reads the same instant again (stepped
    // back, or frozen for a replay), a third is a third.
    let state = engine.customer("ada").unwrap().into_owned();
    let mut restarted = Engine::new(policy.clone(), [("ada".to_owned(), state)], now);
    let mut unit = Unit::new();
    let cmd = SetAssessment {
        customer_id: "ada".into(),
        indicator: "potential".into(),
        value: 4,
        assessed_by: "alice".into(),
        note: String::new(),
    };
    restarted.set_assessment(&mut unit, cmd, now).unwrap();
    restarted.seal(&unit);
    let e = restarted.customer("ada").unwrap().explain(&policy);
    assert_eq!(e.assessments[0].value, Some(4.0));
}

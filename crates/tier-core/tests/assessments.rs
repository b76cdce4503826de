//! Qualitative assessments (issue 12), given/when/then on a stepped clock:
//! the policy declares them (and rejects bad declarations with line and
//! field), an assessment moves the tier and is explained with its author,
//! it expires on the right business day and the tier follows with cause
//! `Time`, the latest by event time is in force, duplicates change
//! nothing, a replay reproduces the state exactly, and the state survives
//! postcard.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tier_core::policy::{Policy, PolicyError};
use tier_core::projection::Applied;
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Event, EventKind, RejectReason, Timestamp, ValidationLimits};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 100,000 CNY in fen: 50 points of volume in the fixture.
const YEARLY: i64 = 10_000_000;

fn fixture() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid_assessments.toml"),
    )
    .unwrap()
}

fn policy() -> Policy {
    Policy::from_toml_str(&fixture()).unwrap()
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
            note: format!("{by} visited"),
        },
    }
}

fn process(s: &mut CustomerState, p: &Policy, e: &Event) -> Option<TierChange> {
    s.process("ada", e, p).change
}

fn tier(s: &CustomerState) -> String {
    s.tier().unwrap().to_owned()
}

/// A customer with 100,000 CNY of orders on 2 March 2026 (B: 60 points).
fn buyer(p: &Policy) -> CustomerState {
    let mut s = CustomerState::default();
    process(&mut s, p, &order("ada", 1, at(date(2026, 3, 2), 2), YEARLY));
    assert_eq!(tier(&s), "B");
    assert_eq!(s.assignment.as_ref().unwrap().score, 60.0);
    s
}

/// 10:00 in Shanghai on 3 March 2026.
fn assessed_on() -> Timestamp {
    at(date(2026, 3, 3), 2)
}

#[test]
fn the_policy_declares_assessments() {
    let p = policy();
    let specs = p.assessments().specs();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["potential", "industry_position", "cooperation_stability"]
    );
    assert_eq!(specs[0].label(5), Some("exceptional"));
    assert_eq!(specs[0].label(6), None);
    assert_eq!(specs[1].label(3), None, "no labels");
    assert_eq!((specs[1].valid_days, specs[1].missing_points), (90, 50.0));
    assert_eq!(specs[2].missing_points, 0.0, "0 by default");
    assert!(p.uses_assessment(0) && p.uses_assessment(1));
    assert!(!p.uses_assessment(2), "declared, not scored");
}

#[test]
fn an_assessment_moves_the_tier_and_is_explained_with_its_author() {
    let p = policy();
    let mut s = buyer(&p);
    let change = process(
        &mut s,
        &p,
        &assessed("a1", assessed_on(), "potential", 5, "alice"),
    )
    .expect("the assessment moves the tier");
    assert_eq!(
        (change.new_tier.as_str(), change.cause),
        ("A", Cause::Event)
    );
    assert_eq!(change.new_score, 90.0);
    assert_eq!(change.causing_event_id.as_deref(), Some("a1"));
    let reason = change
        .reasons
        .iter()
        .find(|r| r.name == "potential")
        .expect("the assessment is a reason");
    assert!((reason.delta - 30.0).abs() < 1e-9, "{reason:?}");

    let e = s.explain(&p);
    assert_eq!(e.tier, "A");
    assert_eq!(e.score, 90.0);
    assert_eq!(e.assessments.len(), 3);
    let pot = &e.assessments[0];
    assert_eq!(pot.name, "potential");
    assert_eq!(pot.value, Some(5.0));
    assert_eq!(pot.label.as_deref(), Some("exceptional"));
    assert_eq!(pot.assessed_by.as_deref(), Some("alice"));
    assert_eq!(pot.note.as_deref(), Some("alice visited"));
    assert_eq!(pot.assessed_at, Some(assessed_on()));
    // Valid for 30 business days (3 March ..= 1 April, Shanghai): it
    // expires at the start of 2 April in Shanghai, 16:00 UTC the day before.
    assert_eq!(pot.expires_at, Some(at(date(2026, 4, 1), 16)));
    assert_eq!((pot.weight, pot.points), (30.0, Some(100.0)));
    assert!((pot.contribution - 30.0).abs() < 1e-9);
    // Never assessed: missing, its missing points, no author.
    let pos = &e.assessments[1];
    assert_eq!(
        (pos.value, pos.points, pos.weight),
        (None, Some(50.0), 20.0)
    );
    assert_eq!((pos.assessed_by.as_ref(), pos.expires_at), (None, None));
    assert!((pos.contribution - 10.0).abs() < 1e-9);
    // Declared, not scored.
    let coop = &e.assessments[2];
    assert_eq!((coop.weight, coop.points, coop.value), (0.0, None, None));
    // The event-derived indicators are still there beside them.
    assert_eq!(e.indicators.len(), 1);
    assert_eq!(e.indicators[0].name.as_str(), "order_amount_12m");
}

/// Sweep at every UTC midnight from `from` for `days` days; every change.
fn sweep_days(s: &mut CustomerState, p: &Policy, from: Timestamp, days: i64) -> Vec<TierChange> {
    let mut out = Vec::new();
    for d in 0..=days {
        let (changes, done) = s.advance_to(
            "ada",
            p,
            Timestamp::from_millis(from.millis() + d * DAY),
            64,
        );
        assert!(done);
        out.extend(changes);
    }
    out
}

#[test]
fn an_assessment_expires_on_the_right_day_and_the_tier_follows_with_cause_time() {
    let p = policy();
    let mut s = buyer(&p);
    process(
        &mut s,
        &p,
        &assessed("a1", assessed_on(), "potential", 5, "alice"),
    );
    assert_eq!(tier(&s), "A");
    let expires = at(date(2026, 4, 1), 16);
    // The expiry is the customer's next due instant.
    assert_eq!(s.next_due(&p), Some(expires));

    let changes = sweep_days(&mut s, &p, date(2026, 3, 4), 45);
    assert_eq!(changes.len(), 1, "exactly one change: {changes:?}");
    let c = &changes[0];
    assert_eq!(
        (c.old_tier.as_deref(), c.new_tier.as_str()),
        (Some("A"), "B")
    );
    assert_eq!(c.cause, Cause::Time);
    assert_eq!(c.changed_at, expires);
    assert_eq!(c.new_score, 60.0);

    // Explained as expired: no value, the author and expiry still shown.
    let e = s.explain(&p);
    let pot = &e.assessments[0];
    assert_eq!((pot.value, pot.label.as_ref()), (None, None));
    assert_eq!(pot.points, Some(0.0), "missing_points");
    assert_eq!(pot.assessed_by.as_deref(), Some("alice"));
    assert_eq!(pot.expires_at, Some(expires));
}

#[test]
fn the_day_before_expiry_still_counts() {
    let p = policy();
    let mut s = buyer(&p);
    process(
        &mut s,
        &p,
        &assessed("a1", assessed_on(), "potential", 5, "alice"),
    );
    // 1 April, 23:59 in Shanghai: the last valid business day.
    let last_minute = Timestamp::from_millis(at(date(2026, 4, 1), 16).millis() - 60_000);
    let (changes, _) = s.advance_to("ada", &p, last_minute, 64);
    assert!(changes.is_empty());
    assert_eq!(tier(&s), "A");
    assert_eq!(s.indicators(&p).assessed[0], Some(5.0));
}

#[test]
fn an_unscored_assessment_never_makes_the_customer_due() {
    let p = policy();
    let mut s = buyer(&p);
    let due = s.next_due(&p);
    process(
        &mut s,
        &p,
        &assessed("c1", assessed_on(), "cooperation_stability", 80, "alice"),
    );
    assert_eq!(s.next_due(&p), due);
    assert_eq!(s.indicators(&p).assessed[2], Some(80.0));
}

#[test]
fn the_latest_by_event_time_is_in_force_and_late_ones_go_to_the_history() {
    let p = policy();
    let mut s = buyer(&p);
    process(
        &mut s,
        &p,
        &assessed("b1", assessed_on(), "potential", 3, "bob"),
    );
    // An older assessment arriving late: history only.
    let older = assessed("c1", at(date(2026, 3, 2), 3), "potential", 5, "carol");
    assert_eq!(s.process("ada", &older, &p).applied, Applied::Applied);
    let now = s.projection.assessment("potential").unwrap();
    assert_eq!((now.value, now.assessed_by.as_str()), (3, "bob"));
    let authors: Vec<&str> = s
        .projection
        .assessment_history()
        .iter()
        .map(|a| a.assessed_by.as_str())
        .collect();
    assert_eq!(authors, ["carol", "bob"], "by assessment time");
    assert_eq!(s.indicators(&p).assessed[0], Some(3.0));

    // A later one wins.
    process(
        &mut s,
        &p,
        &assessed("d1", at(assessed_on(), 5), "potential", 4, "dan"),
    );
    assert_eq!(s.projection.assessment("potential").unwrap().value, 4);
    assert_eq!(s.projection.assessment_history().len(), 3);

    // A resend (same event id) changes nothing.
    let before = s.clone();
    let resend = assessed("d1", at(assessed_on(), 5), "potential", 4, "dan");
    assert_eq!(s.process("ada", &resend, &p).applied, Applied::Duplicate);
    assert_eq!(s, before);
}

#[test]
fn a_reassessment_after_expiry_counts_again() {
    let p = policy();
    let mut s = buyer(&p);
    process(
        &mut s,
        &p,
        &assessed("a1", assessed_on(), "potential", 5, "alice"),
    );
    let changes = sweep_days(&mut s, &p, date(2026, 3, 4), 40);
    assert_eq!(tier(&s), "B", "{changes:?}");
    let change = process(
        &mut s,
        &p,
        &assessed("a2", date(2026, 4, 20), "potential", 5, "alice"),
    )
    .unwrap();
    assert_eq!(
        (change.new_tier.as_str(), change.cause),
        ("A", Cause::Event)
    );
}

#[test]
fn an_undeclared_or_off_scale_assessment_changes_nothing_in_the_fold() {
    let p = policy();
    let mut s = buyer(&p);
    let before = s.clone();
    for e in [
        assessed("x1", assessed_on(), "charisma", 5, "alice"),
        assessed("x2", assessed_on(), "potential", 6, "alice"),
        assessed("x3", assessed_on(), "potential", 0, "alice"),
    ] {
        assert_eq!(s.process("ada", &e, &p).applied, Applied::Stale);
    }
    assert_eq!(s.projection.assessment_history().len(), 0);
    assert_eq!(s.assignment, before.assignment);
}

#[test]
fn a_bad_assessment_is_rejected_with_the_field_named() {
    let p = policy();
    let unknown = assessed("x1", assessed_on(), "charisma", 5, "alice");
    let err = unknown.check_assessment(p.assessments()).unwrap_err();
    assert_eq!(
        (err.reason, err.field),
        (RejectReason::InvalidField, "customer_assessed.indicator")
    );
    assert!(err.detail.contains("charisma"), "{err}");
    assert!(
        err.detail.contains("potential"),
        "names the declared ones: {err}"
    );

    let off = assessed("x2", assessed_on(), "potential", 6, "alice");
    let err = off.check_assessment(p.assessments()).unwrap_err();
    assert_eq!(
        (err.reason, err.field),
        (RejectReason::InvalidField, "customer_assessed.value")
    );
    assert!(err.detail.contains("1..=5"), "{err}");

    let ok = assessed("x3", assessed_on(), "potential", 1, "alice");
    assert!(ok.check_assessment(p.assessments()).is_ok());

    // Without an author: invalid whatever the policy.
    let limits = ValidationLimits::default();
    let anonymous = assessed("x4", assessed_on(), "potential", 3, " ");
    let err = anonymous.validate(date(2026, 4, 1), &limits).unwrap_err();
    assert_eq!(
        (err.reason, err.field),
        (RejectReason::MissingField, "customer_assessed.assessed_by")
    );
    let mut long = assessed("x5", assessed_on(), "potential", 3, "alice");
    if let EventKind::CustomerAssessed { note, .. } = &mut long.kind {
        *note = "x".repeat(tier_core::policy::MAX_NOTE_LEN + 1);
    }
    let err = long.validate(date(2026, 4, 1), &limits).unwrap_err();
    assert_eq!(err.field, "customer_assessed.note");
}

/// Orders, assessments (one late, one resent, one expiring) over months.
fn history() -> Vec<Event> {
    vec![
        order("ada", 1, at(date(2026, 3, 2), 2), YEARLY),
        assessed("a1", assessed_on(), "potential", 5, "alice"),
        assessed("i1", at(date(2026, 3, 5), 3), "industry_position", 4, "bob"),
        assessed("a0", at(date(2026, 3, 1), 3), "potential", 2, "carol"),
        assessed("a1", assessed_on(), "potential", 5, "alice"),
        order("ada", 2, at(date(2026, 4, 10), 3), YEARLY / 2),
        assessed("a2", at(date(2026, 5, 6), 1), "potential", 4, "alice"),
        order("ada", 3, at(date(2026, 7, 20), 3), YEARLY / 4),
    ]
}

fn fold(events: &[Event], p: &Policy) -> (CustomerState, Vec<TierChange>) {
    let mut s = CustomerState::default();
    let mut changes = Vec::new();
    for e in events {
        let out = s.process("ada", e, p);
        changes.extend(out.due_first);
        changes.extend(out.change);
    }
    (s, changes)
}

#[test]
fn a_replay_reproduces_the_state_exactly() {
    let p = policy();
    let events = history();
    let (first, changes) = fold(&events, &p);
    let (second, again) = fold(&events, &p);
    assert_eq!(first, second);
    assert_eq!(changes, again);
    // Time moved the tier on the expiries, between the events.
    assert!(
        changes.iter().any(|c| c.cause == Cause::Time),
        "{changes:?}"
    );

    // Live, with a sweep every day, ends where the replay ends.
    let mut live = CustomerState::default();
    let mut live_changes = Vec::new();
    let mut next = 0;
    let mut day = date(2026, 3, 1);
    while next < events.len() {
        while next < events.len() && events[next].occurred_at <= day {
            let out = live.process("ada", &events[next], &p);
            live_changes.extend(out.due_first);
            live_changes.extend(out.change);
            next += 1;
        }
        live_changes.extend(live.advance_to("ada", &p, day, 64).0);
        day = Timestamp::from_millis(day.millis() + DAY);
    }
    let end = events.last().unwrap().occurred_at;
    let mut replayed = first.clone();
    replayed.advance_to("ada", &p, day, 64);
    live.advance_to("ada", &p, day, 64);
    assert!(day > end);
    assert_eq!(live.projection, replayed.projection);
    assert_eq!(live.effective, replayed.effective);
    assert_eq!(live.assignment, replayed.assignment);
    assert_eq!(live.tier_history(), replayed.tier_history());
}

#[test]
fn a_state_with_assessments_survives_postcard() {
    let p = policy();
    let (s, _) = fold(&history(), &p);
    assert_eq!(s.projection.assessment_history().len(), 4);
    let bytes = postcard::to_stdvec(&s).unwrap();
    let back: CustomerState = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back.projection, s.projection);
    assert_eq!(back.assignment, s.assignment);
    assert_eq!(back.effective, s.effective);
    assert_eq!(back.next_due(&p), s.next_due(&p));
    assert_eq!(back.explain(&p), s.explain(&p));
}

fn reject(edit: impl Fn(&str) -> String) -> PolicyError {
    match Policy::from_toml_str(&edit(&fixture())) {
        Ok(_) => panic!("loaded, but must be rejected"),
        Err(e) => e,
    }
}

/// The 1-based line of the first occurrence of `needle` in the fixture
/// after `edit`.
fn line_of(edit: impl Fn(&str) -> String, needle: &str) -> usize {
    let src = edit(&fixture());
    let pos = src.find(needle).unwrap();
    src[..pos].lines().count() + 1
}

#[test]
fn bad_declarations_are_rejected_with_line_and_field() {
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(Edit, &str, &str, &str)> = vec![
        (
            Box::new(|s: &str| {
                s.replacen("name = \"potential\"", "name = \"order_amount_12m\"", 1)
            }),
            "name = \"order_amount_12m\"",
            "assessments[0].name",
            "event-derived indicator",
        ),
        (
            Box::new(|s: &str| {
                s.replacen("name = \"potential\"", "name = \"complaint_penalty\"", 1)
            }),
            "name = \"complaint_penalty\"",
            "assessments[0].name",
            "is reserved",
        ),
        (
            Box::new(|s: &str| s.replacen("name = \"potential\"", "name = \"Potential\"", 1)),
            "name = \"Potential\"",
            "assessments[0].name",
            "snake_case",
        ),
        (
            Box::new(|s: &str| {
                s.replacen("name = \"industry_position\"", "name = \"potential\"", 1)
            }),
            "name = \"potential\"\nscale = { min = 1, max = 5 }",
            "assessments[1].name",
            "duplicate assessment name",
        ),
        (
            Box::new(|s: &str| {
                s.replacen(
                    "scale = { min = 1, max = 5 }",
                    "scale = { min = 5, max = 5 }",
                    1,
                )
            }),
            "scale = { min = 5, max = 5 }",
            "assessments[1].scale.max",
            "must be above min",
        ),
        (
            Box::new(|s: &str| {
                s.replacen(
                    "scale = { min = 1, max = 5 }",
                    "scale = { min = -1, max = 5 }",
                    1,
                )
            }),
            "scale = { min = -1",
            "assessments[1].scale.min",
            "within 0..=1000",
        ),
        (
            Box::new(|s: &str| s.replacen("\"high\", \"exceptional\"", "\"high\"", 1)),
            "scale = { min = 1, max = 5, labels",
            "assessments[0].scale.labels",
            "4 labels for the 5 levels",
        ),
        (
            Box::new(|s: &str| s.replacen("valid_days = 30", "valid_days = 0", 1)),
            "valid_days = 0",
            "assessments[0].valid_days",
            "within 1..=3650",
        ),
        (
            Box::new(|s: &str| s.replacen("missing_points = 50", "missing_points = 101", 1)),
            "missing_points = 101",
            "assessments[1].missing_points",
            "within 0..=100",
        ),
        (
            Box::new(|s: &str| {
                s.replacen(
                    "indicator = \"potential\"",
                    "indicator = \"potential\"\nmissing_points = 10",
                    1,
                )
            }),
            "missing_points = 10\n",
            "method.dimensions[1].parts[0].missing_points",
            "set once, on its [[assessments]] entry",
        ),
        (
            Box::new(|s: &str| {
                s.replacen(
                    "indicator = \"industry_position\"",
                    "indicator = \"industry_rank\"",
                    1,
                )
            }),
            "indicator = \"industry_rank\"",
            "method.dimensions[1].parts[1].indicator",
            "unknown variant `industry_rank`",
        ),
        (
            Box::new(|s: &str| {
                s.replacen(
                    "curve = [[1, 0], [5, 100]]",
                    "curve = [[1, 100], [5, 0]]",
                    1,
                )
            }),
            "curve = [[1, 100], [5, 0]]",
            "method.dimensions[1].parts[0].curve[1]",
            "must not decrease",
        ),
        (
            Box::new(|s: &str| s.replacen("valid_days = 90", "valid_days = 90\nvalidity = 3", 1)),
            "validity = 3",
            "assessments[1].validity",
            "unknown field `validity`",
        ),
    ];
    for (edit, needle, field, fragment) in cases {
        let err = reject(&edit);
        let shown = err.to_string();
        assert_eq!(err.field, field, "{shown}");
        assert!(shown.contains(fragment), "{shown:?} lacks {fragment:?}");
        let line = line_of(&edit, needle);
        assert_eq!(err.line, Some(line), "{shown}");
        assert!(
            shown.starts_with(&format!("policy line {line}, field {field}: ")),
            "{shown}"
        );
    }
}

#[test]
fn at_most_sixteen_assessments() {
    let mut extra = String::new();
    for i in 0..tier_core::policy::MAX_ASSESSMENTS {
        extra.push_str(&format!(
            "[[assessments]]\nname = \"extra_{i}\"\nscale = {{ min = 0, max = 1 }}\nvalid_days = 1\n\n"
        ));
    }
    let src = fixture().replacen("[method]", &format!("{extra}[method]"), 1);
    let err = Policy::from_toml_str(&src).unwrap_err();
    assert_eq!(err.field, "assessments[16]", "{err}");
    assert!(err.to_string().contains("at most 16"), "{err}");
    let line = src
        .find("name = \"extra_13\"")
        .map(|p| src[..p].lines().count() + 1);
    assert_eq!(err.line, line, "{err}");
}

#[test]
fn the_arrival_order_does_not_matter() {
    let p = policy();
    let events = [
        assessed("p1", at(date(2026, 3, 3), 1), "potential", 2, "alice"),
        assessed("p2", at(date(2026, 3, 4), 1), "potential", 4, "bob"),
        assessed("p3", at(date(2026, 3, 5), 1), "potential", 3, "carol"),
        assessed("i1", at(date(2026, 3, 4), 5), "industry_position", 5, "dan"),
    ];
    let fold_in = |order: &[usize]| {
        let mut s = buyer(&p);
        for i in order {
            s.process("ada", &events[*i], &p);
        }
        s
    };
    let base = fold_in(&[0, 1, 2, 3]);
    assert_eq!(base.projection.assessment("potential").unwrap().value, 3);
    for order in [[3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
        let s = fold_in(&order);
        let now: Vec<_> = s.projection.assessments().collect();
        assert_eq!(now, base.projection.assessments().collect::<Vec<_>>());
        assert_eq!(
            s.projection.assessment_history(),
            base.projection.assessment_history()
        );
        assert_eq!(s.indicators(&p).assessed, base.indicators(&p).assessed);
        assert_eq!(s.effective.as_ref().unwrap().tier, "A");
    }
}

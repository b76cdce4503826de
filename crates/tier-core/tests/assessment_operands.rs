//! Assessments read like event-derived indicators by every method
//! (issue 12): a rule condition, a tier gate and a matrix axis may name
//! a declared assessment. Given/when/then on a stepped clock: the
//! judgement moves the tier (cause `Event`), its expiry moves it back on
//! the right day (cause `Time`), explanations name the unmet judgement in
//! the gap and failed gates (unit `level`) without advising it as a
//! lever, and a policy naming an undeclared assessment is rejected with
//! line and field.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::indicators::Unit;
use tier_core::policy::{Operand, Policy};
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Event, EventKind, Timestamp};

const HOUR: i64 = 3_600_000;
/// 100,000 CNY in fen.
const BIG: i64 = 10_000_000;

const ASSESSMENTS: &str = r#"
version = "operands-1"
currency = "CNY"
window_months = 12
time_zone = "Asia/Shanghai"

[hysteresis]
min_days_in_tier = 0

[[assessments]]
name = "potential"
scale = { min = 1, max = 5, labels = ["poor", "fair", "good", "high", "exceptional"] }
valid_days = 30

[[assessments]]
name = "cooperation"
scale = { min = 1, max = 5 }
valid_days = 90
"#;

const TIERS: &str = r#"
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
"#;

/// Rules: A needs 100,000 CNY of orders and a potential judged 4 or
/// better; B needs the orders alone.
fn rules_policy() -> Policy {
    Policy::from_toml_str(&rules_text()).unwrap()
}

fn rules_text() -> String {
    format!(
        r#"{ASSESSMENTS}
[method]
kind = "rules"

[[method.rules]]
tier = "A"
all = [
    {{ indicator = "order_amount_12m", op = ">=", value = {BIG} }},
    {{ indicator = "potential", op = ">=", value = 4 }},
]

[[method.rules]]
tier = "B"
all = [{{ indicator = "order_amount_12m", op = ">=", value = {BIG} }}]
{TIERS}"#
    )
}

/// Weighted on orders alone (100,000 CNY = 100 points), A gated on a
/// cooperation judged 3 or better, demanded (`unknown = "fail"`); a
/// matrix of the orders against the judged potential.
fn gated_policy() -> Policy {
    Policy::from_toml_str(&gated_text()).unwrap()
}

fn gated_text() -> String {
    let tiers = TIERS.replacen(
        "payment_terms_days = 60",
        "payment_terms_days = 60\nmin_score = 80\ngates = [{ indicator = \"cooperation\", op = \">=\", value = 3, unknown = \"fail\" }]",
        1,
    );
    let tiers = tiers
        .replacen(
            "payment_terms_days = 45",
            "payment_terms_days = 45\nmin_score = 60",
            1,
        )
        .replacen(
            "payment_terms_days = 30",
            "payment_terms_days = 30\nmin_score = 0",
            1,
        );
    format!(
        r#"{ASSESSMENTS}
[method]
kind = "weighted_score"

[[method.dimensions]]
name = "volume"
weight = 100

[[method.dimensions.parts]]
indicator = "order_amount_12m"
share = 100
higher_is_better = true
curve = [[0, 0], [{BIG}, 100]]
{tiers}
[[gradings]]
name = "judged"
kind = "matrix"
x = "order_amount_12m"
x_min = {BIG}
y = "potential"
y_min = 4
"#
    )
}

fn at(t: Timestamp, hours: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + hours * HOUR)
}

fn assessed(id: &str, t: Timestamp, indicator: &str, value: i64) -> Event {
    Event {
        event_id: id.into(),
        customer_id: "ada".into(),
        occurred_at: t,
        source: "crm".into(),
        kind: EventKind::CustomerAssessed {
            indicator: indicator.into(),
            value,
            assessed_by: "alice".into(),
            note: "visited".into(),
        },
    }
}

fn process(s: &mut CustomerState, p: &Policy, e: &Event) -> Option<TierChange> {
    s.process("ada", e, p).change
}

fn tier(s: &CustomerState) -> String {
    s.tier().unwrap().to_owned()
}

/// 100,000 CNY of orders on 2 March 2026.
fn buyer(p: &Policy) -> CustomerState {
    let mut s = CustomerState::default();
    process(&mut s, p, &order("ada", 1, at(date(2026, 3, 2), 2), BIG));
    s
}

/// Sweep day by day (16:00 UTC = midnight in Shanghai) from `from` for
/// `days` days, collecting the time-driven changes.
fn sweep_days(s: &mut CustomerState, p: &Policy, from: Timestamp, days: i64) -> Vec<TierChange> {
    let mut changes = Vec::new();
    for d in 0..days {
        let until = Timestamp::from_millis(from.millis() + d * 24 * HOUR + 16 * HOUR);
        let (mut c, done) = s.advance_to("ada", p, until, 1000);
        assert!(done);
        changes.append(&mut c);
    }
    changes
}

#[test]
fn a_rule_condition_on_an_assessment_needs_the_judgement() {
    let p = rules_policy();
    let mut s = buyer(&p);
    // The orders alone reach B: A's rule waits for the judgement.
    assert_eq!(tier(&s), "B");
    let e = s.explain(&p);
    assert!(
        e.gap.contains("potential >= 4 (now unknown)"),
        "the gap names the judgement: {}",
        e.gap
    );
    // Not a lever: no advice on it, and none needed on the orders.
    assert!(e.advice.is_empty(), "{:?}", e.advice);
    let pot = e
        .assessments
        .iter()
        .find(|a| a.name == "potential")
        .unwrap();
    assert!(pot.weight > 0.0, "the condition carries part of the score");
    assert_eq!(pot.contribution, 0.0);

    // Judged 3: still B. Judged 4: A at once, cause EVENT.
    let t = at(date(2026, 3, 3), 2);
    assert_eq!(
        process(&mut s, &p, &assessed("a1", t, "potential", 3)),
        None
    );
    assert_eq!(tier(&s), "B");
    let up = process(&mut s, &p, &assessed("a2", at(t, 1), "potential", 4)).unwrap();
    assert_eq!(
        (up.old_tier.as_deref(), up.new_tier.as_str()),
        (Some("B"), "A")
    );
    assert_eq!(up.cause, Cause::Event);
    let e = s.explain(&p);
    let pot = e
        .assessments
        .iter()
        .find(|a| a.name == "potential")
        .unwrap();
    assert_eq!((pot.value, pot.label.as_deref()), (Some(4.0), Some("high")));
    assert!(pot.contribution > 0.0);

    // Valid 30 days: the assessment's expiry is due, and the rule stops
    // holding on that day with cause TIME, exactly once.
    // (3 March in Shanghai + 30 days: 2 April, 00:00 in Shanghai.)
    let expires = at(date(2026, 4, 1), 16);
    assert_eq!(s.next_due(&p), Some(expires));
    let changes = sweep_days(&mut s, &p, date(2026, 3, 4), 45);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0].new_tier.as_str(),
            changes[0].cause,
            changes[0].changed_at
        ),
        ("B", Cause::Time, expires)
    );
}

#[test]
fn a_gate_on_an_assessment_vetoes_until_judged() {
    let p = gated_policy();
    let mut s = buyer(&p);
    // Score 100, but A demands a cooperation judgement.
    assert_eq!(s.assignment.as_ref().unwrap().score, 100.0);
    assert_eq!(tier(&s), "B");
    let e = s.explain(&p);
    assert_eq!(e.failed_gates.len(), 1, "{:?}", e.failed_gates);
    let g = &e.failed_gates[0];
    assert_eq!(
        (
            g.tier.as_str(),
            g.indicator.as_str(),
            g.op.as_str(),
            g.threshold,
            g.value,
            g.unit
        ),
        ("A", "cooperation", ">=", 3.0, None, Unit::Level)
    );
    assert!(
        e.gap.contains("A requires cooperation >= 3 (now unknown)"),
        "{}",
        e.gap
    );
    assert!(
        e.advice.is_empty(),
        "a judgement is not a lever: {:?}",
        e.advice
    );

    // Judged 3: A at once. Judged 2 later: out of A at once (gates apply
    // without hysteresis), cause EVENT.
    let t = at(date(2026, 3, 3), 2);
    let up = process(&mut s, &p, &assessed("a1", t, "cooperation", 3)).unwrap();
    assert_eq!((up.new_tier.as_str(), up.cause), ("A", Cause::Event));
    assert!(s.explain(&p).failed_gates.is_empty());
    let down = process(&mut s, &p, &assessed("a2", at(t, 24), "cooperation", 2)).unwrap();
    assert_eq!((down.new_tier.as_str(), down.cause), ("B", Cause::Event));
    let e = s.explain(&p);
    assert_eq!(e.failed_gates[0].value, Some(2.0));

    // Judged 5 again, then it expires after 90 days: the gate demands
    // evidence, so the tier falls back to B on that day, cause TIME.
    let again = at(t, 48);
    process(&mut s, &p, &assessed("a3", again, "cooperation", 5));
    assert_eq!(tier(&s), "A");
    // The latest judgement rules: 5 March + 90 days, 00:00 in Shanghai.
    let due = at(date(2026, 6, 2), 16);
    let changes = sweep_days(&mut s, &p, date(2026, 3, 6), 120);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0].new_tier.as_str(),
            changes[0].cause,
            changes[0].changed_at
        ),
        ("B", Cause::Time, due)
    );
}

#[test]
fn a_matrix_axis_may_be_an_assessment() {
    let p = gated_policy();
    let grading = &p.gradings()[0];
    assert!(matches!(
        &grading.kind,
        tier_core::policy::GradingKind::Matrix { y: Operand::Assessment { name, .. }, .. }
            if &**name == "potential"
    ));
    let mut s = buyer(&p);
    // Not judged: not graded.
    assert_eq!(grading.class_of(&s.indicators(&p)), None);
    let t = at(date(2026, 3, 3), 2);
    process(&mut s, &p, &assessed("a1", t, "potential", 4));
    assert_eq!(grading.classify(&s.indicators(&p)), Some("key"));
    process(&mut s, &p, &assessed("a2", at(t, 1), "potential", 2));
    assert_eq!(grading.classify(&s.indicators(&p)), Some("regular"));
}

#[test]
fn a_matrix_axis_on_an_assessment_stops_grading_when_the_judgement_expires() {
    // Only the grading reads "potential" (the tier never does): its
    // expiry is due all the same, so the class GetTier shows from the
    // decision's figures stops reading a judgement no longer in force.
    let p = gated_policy();
    let grading = &p.gradings()[0];
    let slot = p
        .assessments()
        .specs()
        .iter()
        .position(|a| a.name == "potential")
        .unwrap();
    assert!(!p.uses_assessment(slot) && p.expiry_matters(slot));
    let mut s = buyer(&p);
    process(
        &mut s,
        &p,
        &assessed("a1", at(date(2026, 3, 3), 2), "potential", 4),
    );
    assert_eq!(grading.classify(&s.indicators(&p)), Some("key"));
    let expires = s.projection.assessment("potential").unwrap().expires_at;
    assert_eq!(s.next_due(&p), Some(expires));
    s.advance_to("ada", &p, expires, 1000);
    assert_eq!(s.decided_at, expires);
    assert_eq!(grading.classify(&s.indicators(&p)), None);
}

#[test]
fn naming_an_undeclared_assessment_is_rejected_with_line_and_field() {
    let bad = |from: &str, to: &str| {
        let text = gated_text().replacen(from, to, 1);
        assert_ne!(text, gated_text(), "{from} not found");
        Policy::from_toml_str(&text).unwrap_err()
    };
    let e = bad("{ indicator = \"cooperation\"", "{ indicator = \"loyalty\"");
    assert_eq!(e.field, "tiers[0].gates[0].indicator");
    assert!(e.line.is_some());
    assert!(e.message.contains("potential, cooperation"), "{e}");
    let e = bad("y = \"potential\"", "y = \"potental\"");
    assert_eq!(e.field, "gradings[0].y");
    assert!(e.line.is_some());
    let rules = rules_text().replacen("\"potential\", op", "\"potentials\", op", 1);
    let e = Policy::from_toml_str(&rules).unwrap_err();
    assert_eq!(e.field, "method.rules[0].all[1].indicator");
    assert!(e.line.is_some());
}

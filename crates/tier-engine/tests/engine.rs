//! The engine without a broker: events in a `Vec`, a stepped clock (plain
//! instants handed to `sweep` and the commands), states carried across a
//! "restart" by rebuilding the engine from them, as tierd does from the
//! store.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::overrides::{OverrideAction, OverrideError, OverrideMode};
use tier_core::policy::Policy;
use tier_core::sim::scenario::{order, stricter_bands, weekly_buyer as buyer};
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{CommandError, Engine, SetOverride, Unit};

/// Minor units (fen) of `major` CNY.
const fn cny(major: i64) -> i64 {
    major * 100
}

fn policy() -> Arc<Policy> {
    Arc::new(Policy::default_policy())
}

fn fold_all(engine: &mut Engine, events: &[Event]) -> Unit {
    let mut unit = Unit::new();
    for e in events {
        engine.fold(&mut unit, e);
    }
    engine.recheck_notices(&mut unit);
    engine.seal(&unit);
    unit
}

/// Sweep day by day from `from` to `to` (inclusive), as the service does
/// between batches; returns every change and at-risk notice with the day.
fn sweep_days(
    engine: &mut Engine,
    from: Timestamp,
    days: i64,
) -> (Vec<TierChange>, Vec<(i64, tier_core::state::AtRisk)>) {
    let mut changes = Vec::new();
    let mut notices = Vec::new();
    for d in 0..=days {
        let now = from.plus_days(d);
        let mut unit = Unit::new();
        while engine.sweep(&mut unit, now, 7) > 0 {}
        engine.seal(&unit);
        changes.extend(unit.changes);
        notices.extend(unit.at_risk.into_iter().map(|r| (d, r)));
    }
    (changes, notices)
}

/// li.wei's override of `c`'s tier.
fn by_li_wei(
    c: &str,
    tier: &str,
    mode: OverrideMode,
    reason: &str,
    expires_at: Option<Timestamp>,
) -> SetOverride {
    SetOverride {
        customer_id: c.into(),
        tier: tier.into(),
        mode,
        reason: reason.into(),
        author: "li.wei".into(),
        expires_at,
    }
}

fn states(engine: &Engine) -> Vec<(String, CustomerState)> {
    engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect()
}

#[test]
fn a_lapsing_customer_drops_on_the_right_day_with_cause_time_exactly_once_each() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    let start = engine.customer("c").unwrap().effective.clone().unwrap();
    assert_eq!(start.tier, "B", "a 2,000,000 CNY buyer starts in B");

    let (changes, _) = sweep_days(&mut engine, last, 400);
    assert!(
        !changes.is_empty(),
        "the stopped buyer drops with time alone"
    );
    assert!(changes.iter().all(|c| c.cause == Cause::Time));
    // Each change once, downwards, on a business-day start.
    let cal = policy.calendar();
    let mut seq = 0;
    for c in &changes {
        assert!(c.sequence > seq, "gap-free, no repeats: {changes:?}");
        seq = c.sequence;
        assert_eq!(cal.day_start(cal.day(c.changed_at)), c.changed_at);
    }
    // The same decisions as the core makes alone, at the same instants.
    let mut alone = CustomerState::default();
    for e in buyer("c", last, cny(2_000_000)) {
        alone.process("c", &e, &policy);
    }
    let (expected, done) = alone.advance_to("c", &policy, last.plus_days(400), 10_000);
    assert!(done);
    assert_eq!(changes, expected);
    // Lapsed after 180 days without an order.
    assert_eq!(
        changes.last().unwrap().lifecycle,
        tier_core::state::Lifecycle::Lapsed
    );
}

#[test]
fn a_restart_after_the_due_time_sweeps_what_fell_due_while_down() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let mut live = Engine::new(policy.clone(), [], last);
    fold_all(&mut live, &buyer("c", last, cny(2_000_000)));
    // tierd is down for 300 days; the rebuilt engine knows at once that
    // the customer is due.
    let down_until = last.plus_days(300);
    let mut restarted = Engine::new(policy.clone(), states(&live), down_until);
    assert!(restarted.due_count(down_until) >= 1);
    let mut unit = Unit::new();
    while restarted.sweep(&mut unit, down_until, 100) > 0 {}
    assert!(!unit.changes.is_empty());
    assert!(unit.changes.iter().all(|c| c.cause == Cause::Time));
    assert_eq!(unit.touched(), ["c".to_owned()]);
    // Same as sweeping every day of the outage.
    let (daily, _) = sweep_days(&mut live, last, 300);
    assert_eq!(unit.changes, daily);
}

#[test]
fn at_risk_comes_before_the_drop_once_with_advice() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    let (changes, notices) = sweep_days(&mut engine, last, 400);
    let first_drop = changes.first().expect("a drop").clone();
    let (day, notice) = notices.first().expect("a notice before the drop").clone();
    assert!(
        last.plus_days(day) < first_drop.changed_at,
        "announced ahead of time"
    );
    let horizon = i64::from(policy.lifecycle().at_risk_horizon_days);
    assert!(first_drop.changed_at <= last.plus_days(day + horizon));
    assert_eq!(notice.current_tier, "B");
    assert_eq!(notice.falls_to, first_drop.new_tier);
    assert_eq!(notice.on, first_drop.changed_at);
    assert!(!notice.keep.is_empty(), "says what would keep the tier");
    // Published once for that drop, not every day until it happens.
    let for_first = notices
        .iter()
        .filter(|(_, n)| n.on == first_drop.changed_at && n.falls_to == first_drop.new_tier)
        .count();
    assert_eq!(for_first, 1, "{notices:?}");
}

#[test]
fn each_override_mode_wins_expires_and_is_in_the_history() {
    let policy = policy();
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy.clone(), [], t0);
    // "big" is computed B, "small" computed D.
    fold_all(&mut engine, &buyer("big", t0, cny(2_000_000)));
    fold_all(&mut engine, &buyer("small", t0, cny(20_000)));
    let computed = |e: &Engine, c: &str| e.customer(c).unwrap().assignment.clone().unwrap().tier;
    let effective = |e: &Engine, c: &str| e.customer(c).unwrap().tier().unwrap().to_owned();
    assert_eq!(computed(&engine, "big"), "B");
    assert_eq!(computed(&engine, "small"), "D");

    let set =
        |c: &str, tier: &str, mode, expires_at| by_li_wei(c, tier, mode, "key account", expires_at);
    let at = t0.plus_days(1);
    let cases = [
        // (customer, tier, mode, effective)
        ("big", "D", OverrideMode::Pin, "D"),
        ("big", "C", OverrideMode::Floor, "B"),
        ("big", "C", OverrideMode::Ceiling, "C"),
        ("small", "C", OverrideMode::Floor, "C"),
        ("small", "A", OverrideMode::Ceiling, "D"),
        ("small", "A", OverrideMode::Pin, "A"),
    ];
    for (c, tier, mode, expect) in cases {
        let mut unit = Unit::new();
        let change = engine
            .set_override(&mut unit, set(c, tier, mode, None), at)
            .unwrap();
        engine.seal(&unit);
        assert_eq!(effective(&engine, c), expect, "{c} {tier} {mode:?}");
        if let Some(ch) = change {
            assert_eq!(ch.cause, Cause::Override);
            assert_eq!(ch.new_tier, expect);
            assert_eq!(ch.computed_tier, computed(&engine, c));
        }
        assert_eq!(unit.touched(), [c.to_owned()], "committed with the state");
    }
    // Expiry is swept like any due time: the pin ends on its instant.
    let mut unit = Unit::new();
    let ends = at.plus_days(10);
    engine
        .set_override(
            &mut unit,
            set("big", "A", OverrideMode::Pin, Some(ends)),
            at,
        )
        .unwrap();
    engine.seal(&unit);
    assert_eq!(effective(&engine, "big"), "A");
    let mut unit = Unit::new();
    while engine.sweep(&mut unit, ends.plus_days(-1), 100) > 0 {}
    assert_eq!(effective(&engine, "big"), "A", "not before its end");
    let mut unit = Unit::new();
    while engine.sweep(&mut unit, ends, 100) > 0 {}
    engine.seal(&unit);
    let expired: Vec<_> = unit
        .changes
        .iter()
        .filter(|c| c.customer_id == "big")
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].cause, Cause::Override);
    assert_eq!(expired[0].changed_at, ends);
    assert_eq!(expired[0].new_tier, computed(&engine, "big"));

    // Clear, then the history has every step.
    let mut unit = Unit::new();
    engine
        .set_override(
            &mut unit,
            set("small", "B", OverrideMode::Pin, None),
            at.plus_days(20),
        )
        .unwrap();
    engine
        .clear_override(
            &mut unit,
            "small",
            "review done",
            "li.wei",
            at.plus_days(21),
        )
        .unwrap();
    assert_eq!(effective(&engine, "small"), "D");
    let small = engine.customer("small").unwrap();
    let history = small.override_history();
    assert_eq!(history.len(), 5);
    assert!(matches!(history[4].action, OverrideAction::Cleared { .. }));
    let big = engine.customer("big").unwrap();
    assert!(matches!(
        big.override_history().last().unwrap().action,
        OverrideAction::Expired
    ));

    // Refusals name what is wrong and change nothing.
    let before = engine.customer("small").unwrap().into_owned();
    let mut unit = Unit::new();
    let err = engine
        .set_override(
            &mut unit,
            set("small", "Z", OverrideMode::Pin, None),
            at.plus_days(22),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Override(OverrideError::UnknownTier { .. })
    ));
    let err = engine
        .clear_override(&mut unit, "small", "again", "li.wei", at.plus_days(22))
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Override(OverrideError::NothingToClear { .. })
    ));
    let err = engine
        .set_override(
            &mut unit,
            set("", "A", OverrideMode::Pin, None),
            at.plus_days(22),
        )
        .unwrap_err();
    assert_eq!(err, CommandError::EmptyCustomerId);
    assert!(unit.changes.is_empty());
    assert_eq!(*engine.customer("small").unwrap(), before);
    assert!(engine.customer("").is_none());
}

#[test]
fn an_override_for_a_customer_not_seen_yet_pins_it_from_day_one() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    let mut unit = Unit::new();
    let change = engine
        .set_override(
            &mut unit,
            SetOverride {
                customer_id: "newco".into(),
                tier: "A".into(),
                mode: OverrideMode::Floor,
                reason: "strategic account signed".into(),
                author: "sales.director".into(),
                expires_at: Some(t0.plus_days(90)),
            },
            t0,
        )
        .unwrap()
        .expect("a first tier");
    assert_eq!(change.new_tier, "A");
    assert!(change.overridden);
    // Its first order is scored, and the floor keeps A.
    fold_all(
        &mut engine,
        &[order("newco", 1, t0.plus_days(2), cny(10_000))],
    );
    let s = engine.customer("newco").unwrap();
    assert_eq!(s.effective.as_ref().unwrap().tier, "A");
    assert_eq!(s.assignment.as_ref().unwrap().tier, "D");
}

/// A population spread over the tiers.
fn population(engine: &mut Engine, at: Timestamp, n: usize) {
    let mut events = Vec::new();
    for i in 0..n {
        let per_year = [cny(6_000_000), cny(2_000_000), cny(600_000), cny(50_000)][i % 4];
        events.extend(buyer(
            &format!("c{i:05}"),
            at,
            per_year + (i as i64) * cny(1_000),
        ));
    }
    events.sort_by_key(|e| e.occurred_at);
    fold_all(engine, &events);
}

/// The default policy with stricter bands: many customers move down.
fn stricter() -> Arc<Policy> {
    let text = stricter_bands(
        tier_core::policy::DEFAULT_POLICY_TOML,
        "strict-2027.01",
        8.0,
    );
    Arc::new(Policy::from_toml_str(&text).unwrap())
}

#[test]
fn a_dry_run_changes_nothing_and_its_matrix_is_what_applying_moves() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    population(&mut engine, t0, 400);
    let before = states(&engine);
    let new = stricter();
    let at = t0.plus_days(1);

    let dry = engine.dry_run(&new, at, 10);
    assert_eq!(states(&engine), before, "a dry run changes nothing");
    assert_eq!(engine.policy().version(), "default-2027.01");
    assert!(dry.movers > 0, "the stricter policy moves customers");
    assert_eq!(dry.sample.len(), 10);
    assert_eq!(
        dry.matrix.iter().map(|c| c.customers).sum::<u64>(),
        400,
        "every customer is in the matrix once"
    );

    engine.apply_policy(new.clone(), at);
    let mut moved: std::collections::BTreeMap<(Option<String>, String), u64> = Default::default();
    let mut total = 0;
    while engine.rescoring() {
        let mut unit = Unit::new();
        engine.rescore(&mut unit, 37);
        engine.seal(&unit);
        for c in &unit.changes {
            assert_eq!(c.cause, Cause::Policy);
            assert_eq!(c.policy_version, "strict-2027.01");
            *moved
                .entry((c.old_tier.clone(), c.new_tier.clone()))
                .or_default() += 1;
            total += 1;
        }
    }
    assert_eq!(total, dry.movers);
    let expected: std::collections::BTreeMap<_, _> = dry
        .matrix
        .iter()
        .filter(|c| c.from.as_deref() != Some(c.to.as_str()))
        .map(|c| ((c.from.clone(), c.to.clone()), c.customers))
        .collect();
    assert_eq!(moved, expected);
    let status = engine.status();
    assert_eq!(status.version, "strict-2027.01");
    assert!(!status.rescoring);
    assert_eq!(
        (status.rescored, status.total, status.changed),
        (400, 400, total)
    );
    // Every decision records the policy that made it.
    assert!(
        engine
            .customers()
            .all(|(_, s)| s.policy_version == "strict-2027.01")
    );
}

#[test]
fn a_policy_can_forbid_its_own_downgrades() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    population(&mut engine, t0, 200);
    let text = tier_core::policy::DEFAULT_POLICY_TOML.replace(
        "[hysteresis]",
        "[hysteresis]\nforbid_policy_downgrades = true",
    );
    let new =
        Arc::new(Policy::from_toml_str(&stricter_bands(&text, "strict-no-down", 8.0)).unwrap());
    assert!(new.hysteresis().forbid_policy_downgrades);
    let dry = engine.dry_run(&new, t0, 5);
    assert_eq!(dry.movers, 0, "{:?}", dry.matrix);
    engine.apply_policy(new, t0);
    let mut unit = Unit::new();
    while engine.rescore(&mut unit, 1_000) > 0 {}
    assert!(unit.changes.is_empty());
    assert_eq!(unit.rescored, 200);
}

#[test]
fn a_rescore_interrupted_by_a_crash_resumes_for_the_customers_left() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    population(&mut engine, t0, 100);
    let new = stricter();
    engine.apply_policy(new.clone(), t0);
    let mut unit = Unit::new();
    engine.rescore(&mut unit, 30);
    // Only the committed customers survive; the engine restarts under the
    // new policy and queues exactly the 70 decided under the old one.
    let restarted = Engine::new(new, states(&engine), t0);
    let status = restarted.status();
    assert!(status.rescoring);
    assert_eq!(status.total, 70);
}

#[test]
fn background_rescore_in_slices_interleaves_with_events() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    population(&mut engine, t0, 200);
    engine.apply_policy(stricter(), t0);
    let mut slices = 0;
    let mut n = 1_000;
    while engine.rescoring() {
        let mut unit = Unit::new();
        engine.rescore(&mut unit, 16);
        // An event between slices is scored under the new policy at once.
        n += 1;
        engine.fold(&mut unit, &order("c00003", n, t0.plus_days(1), 1_000));
        engine.seal(&unit);
        slices += 1;
        assert_eq!(
            engine.customer("c00003").unwrap().policy_version,
            "strict-2027.01"
        );
    }
    assert_eq!(slices, 200 / 16 + 1);
}

#[test]
fn an_override_that_expires_without_moving_the_tier_is_still_committed() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    fold_all(&mut engine, &buyer("big", t0, cny(2_000_000)));
    let mut unit = Unit::new();
    engine
        .set_override(
            &mut unit,
            by_li_wei(
                "big",
                "C",
                OverrideMode::Floor,
                "watch",
                Some(t0.plus_days(5)),
            ),
            t0.plus_days(1),
        )
        .unwrap();
    engine.seal(&unit);
    let mut unit = Unit::new();
    while engine.sweep(&mut unit, t0.plus_days(6), 100) > 0 {}
    assert!(unit.changes.is_empty(), "B stays B: {:?}", unit.changes);
    assert_eq!(unit.touched(), ["big".to_owned()], "the expiry is stored");
    let s = engine.customer("big").unwrap();
    assert!(s.manual().is_none());
    assert!(matches!(
        s.override_history().last().unwrap().action,
        OverrideAction::Expired
    ));
}

#[test]
fn only_the_change_an_event_causes_carries_its_trace() {
    use tier_wire::trace::TraceParent;
    let trace =
        TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    // No sweep for a year: the drops time decided come first, at their own
    // instants, then the big order's upgrade.
    let back = last.plus_days(400);
    let mut unit = Unit::new();
    engine.fold_traced(
        &mut unit,
        &order("c", 900, back, cny(5_000_000)),
        Some(trace),
    );
    let causes: Vec<Cause> = unit.changes.iter().map(|c| c.cause).collect();
    assert!(causes.len() >= 2, "{causes:?}");
    let (event_change, time_changes) = causes.split_last().unwrap();
    assert_eq!(*event_change, Cause::Event);
    assert!(time_changes.iter().all(|c| *c == Cause::Time), "{causes:?}");
    assert_eq!(unit.traced, [(causes.len() - 1, trace)]);

    // Untraced: nothing recorded.
    let mut plain = Unit::new();
    engine.fold_traced(&mut plain, &order("d", 1, back, cny(5_000_000)), None);
    assert!(!plain.changes.is_empty());
    assert!(plain.traced.is_empty());
}

/// A customer due to drop with time alone: its first drop and the instant.
fn due_to_drop(engine: &Engine, c: &str) -> (String, Timestamp) {
    let policy = policy();
    let mut alone = engine.customer(c).unwrap().into_owned();
    let horizon = date(2028, 1, 1);
    let (changes, _) = alone.advance_to(c, &policy, horizon, usize::MAX);
    let first = changes.first().expect("a stopped buyer drops with time");
    (first.new_tier.clone(), first.changed_at)
}

/// A command makes the time-driven decisions due by its instant only when
/// sweeps would: while catching up (or with time sweeps off) a customer is
/// not downgraded for want of events still in the backlog, and a refused
/// command changes nothing at all.
#[test]
fn a_command_makes_no_time_decision_while_catching_up_nor_when_refused() {
    use std::sync::mpsc::sync_channel;
    use tier_engine::{Batch, Command};
    let t0 = date(2026, 3, 2);
    let start = || {
        let mut engine = Engine::new(policy(), [], t0);
        fold_all(&mut engine, &buyer("c", t0, cny(2_000_000)));
        engine
    };
    let mut engine = start();
    let (dropped_to, due) = due_to_drop(&engine, "c");
    assert_eq!(engine.customer("c").unwrap().tier(), Some("B"));
    assert_ne!(dropped_to, "B");
    let now = due.plus_days(2);
    let floor = |tier: &str| by_li_wei("c", tier, OverrideMode::Floor, "watch", None);

    // Catching up (no sweep): the floor below B is set, B stays, nothing
    // is decided with time.
    let (tx, rx) = sync_channel(4);
    tx.send(Command::SetOverride {
        cmd: floor("D"),
        reply: Box::new(|_| {}),
    })
    .unwrap();
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &rx, now, false, None, 100);
    assert!(
        batch.unit.changes.iter().all(|c| c.cause != Cause::Time),
        "{:?}",
        batch.unit.changes
    );
    let s = engine.customer("c").unwrap();
    assert_eq!(s.tier(), Some("B"));
    assert_eq!(s.assignment.as_ref().unwrap().tier, "B");
    assert!(s.decided_at < due, "the decision stays the last one made");
    assert_eq!(s.manual().unwrap().set_at, now);

    // Caught up, with sweeps: the same command brings the customer to now
    // first (the drop is decided, with time, at its own instant).
    let mut engine = start();
    let (tx, rx) = sync_channel(4);
    tx.send(Command::SetOverride {
        cmd: floor("D"),
        reply: Box::new(|_| {}),
    })
    .unwrap();
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &rx, now, true, Some(now), 100);
    let time: Vec<_> = batch
        .unit
        .changes
        .iter()
        .filter(|c| c.cause == Cause::Time && c.customer_id == "c")
        .collect();
    assert_eq!(time.first().map(|c| c.changed_at), Some(due), "{time:?}");

    // Refused commands (a tier the policy lacks, nothing to clear, no
    // author) change nothing, though the drop is due.
    let mut engine = start();
    let mut unit = Unit::new();
    let err = engine.set_override(&mut unit, floor("Z"), now).unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Override(OverrideError::UnknownTier { .. })
        ),
        "{err:?}"
    );
    let err = engine
        .clear_override(&mut unit, "c", "done", "li.wei", now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Override(OverrideError::NothingToClear { .. })
        ),
        "{err:?}"
    );
    let mut unsigned = floor("C");
    unsigned.author = " ".into();
    assert!(engine.set_override(&mut unit, unsigned, now).is_err());
    assert!(unit.changes.is_empty(), "{:?}", unit.changes);
    assert!(unit.touched().is_empty());
    assert_eq!(engine.customer("c").unwrap().tier(), Some("B"));
}

/// A notice out is checked again when an event moves the customer's
/// figures, not only at the next day's check: after each order the notice
/// held is exactly the one foreseen from the new figures (an order in time
/// withdraws it the same day).
#[test]
fn an_order_in_time_withdraws_the_notice_at_once() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    let (_, notices) = sweep_days(&mut engine, last, 400);
    let (day, _) = *notices.first().expect("a notice");
    // Again, up to the day of the notice only.
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    sweep_days(&mut engine, last, day);
    assert!(engine.customer("c").unwrap().at_risk.is_some());
    let today = last.plus_days(day);
    for (n, amount) in [(900, cny(100)), (901, cny(5_000)), (902, cny(300_000))] {
        let at = Timestamp::from_millis(today.millis() + 3_600_000 * (n - 899));
        let unit = fold_all(&mut engine, &[order("c", n as usize, at, amount)]);
        assert!(unit.touched().iter().any(|id| id == "c"));
        let s = engine.customer("c").unwrap();
        let fresh = s.foresee_drop("c", &policy, at);
        assert_eq!(
            s.at_risk.as_deref(),
            fresh.as_ref(),
            "after the order of {amount}"
        );
    }
    let s = engine.customer("c").unwrap();
    assert_eq!(s.tier(), Some("B"));
    assert!(
        s.at_risk.is_none(),
        "a 300,000 CNY order keeps B: {:?}",
        s.at_risk
    );
}

/// The at-risk count (the gauge set at every seal) follows the notices of
/// customers held encoded as well as decoded: each task counts its
/// customers as it settles, cools and inserts them, so it visits none.
/// (A debug build also checks it against a count of every customer.)
#[test]
fn the_at_risk_count_follows_notices_of_customers_held_encoded() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let ids = ["c1", "c2", "c3", "c4"];
    let everyone: Vec<Event> = ids
        .iter()
        .flat_map(|c| buyer(c, last, cny(2_000_000)))
        .collect();
    // The day the notices go out.
    let mut probe = Engine::new(policy.clone(), [], last);
    fold_all(&mut probe, &everyone);
    let (_, notices) = sweep_days(&mut probe, last, 400);
    let (day, _) = *notices.first().expect("a notice");
    assert_eq!(notices.iter().filter(|(d, _)| *d == day).count(), ids.len());

    let mut engine = Engine::new(policy.clone(), [], last);
    engine.set_hot_limit(1);
    fold_all(&mut engine, &everyone);
    assert_eq!(engine.at_risk_count(), 0);
    sweep_days(&mut engine, last, day);
    // The unit that announced the drops keeps its customers decoded; the
    // next seal encodes all but one.
    engine.seal(&Unit::new());
    assert_eq!(engine.hot_customers(), 1, "the others are held encoded");
    assert_eq!(engine.at_risk_count(), ids.len());

    // An order in time withdraws c2's notice: one fewer.
    let today = last.plus_days(day);
    fold_all(
        &mut engine,
        &[order("c2", 900, today.plus_days(0), cny(300_000))],
    );
    assert!(engine.customer("c2").unwrap().at_risk.is_none());
    assert_eq!(engine.at_risk_count(), ids.len() - 1);

    // A restart holds the same customers at risk.
    let states: Vec<(String, CustomerState)> = engine
        .customers()
        .map(|(id, s)| (id.to_owned(), s.into_owned()))
        .collect();
    let mut restarted = Engine::new(policy.clone(), states, today);
    restarted.set_hot_limit(1);
    assert_eq!(restarted.at_risk_count(), ids.len() - 1);

    // The drops come: the notices they announced are spent (a customer
    // may hold a notice of its next drop by then).
    let (changes, _) = sweep_days(&mut restarted, today, 60);
    let dropped: Vec<&str> = changes.iter().map(|c| c.customer_id.as_str()).collect();
    for c in ["c1", "c3", "c4"] {
        assert!(dropped.contains(&c), "{c} dropped: {changes:?}");
    }
    restarted.seal(&Unit::new());
    let held = restarted
        .customers()
        .filter(|(_, s)| s.at_risk.is_some())
        .count();
    assert_eq!(restarted.at_risk_count(), held);
}

/// An override of a tier the new policy retires ends whichever reaches the
/// customer first, the background rescore or an event folded before it.
#[test]
fn an_override_of_a_retired_tier_ends_when_an_event_reaches_it_first() {
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    fold_all(&mut engine, &buyer("c", t0, cny(20_000)));
    let mut unit = Unit::new();
    engine
        .set_override(
            &mut unit,
            by_li_wei("c", "A", OverrideMode::Pin, "strategic account", None),
            t0.plus_days(1),
        )
        .unwrap();
    engine.seal(&unit);
    let renamed = tier_core::policy::DEFAULT_POLICY_TOML
        .replace("name = \"A\"                # core", "name = \"Gold\"")
        .replace("version = \"default-2027.01\"", "version = \"gold-1\"");
    let gold = Arc::new(Policy::from_toml_str(&renamed).unwrap());
    engine.apply_policy(gold, t0.plus_days(2));
    // An order arrives before the rescore's slice reaches the customer.
    fold_all(&mut engine, &[order("c", 900, t0.plus_days(3), cny(1_000))]);
    let s = engine.customer("c").unwrap();
    assert_eq!(s.policy_version, "gold-1");
    assert!(s.manual().is_none(), "{:?}", s.manual());
    assert!(matches!(
        &s.override_history().last().unwrap().action,
        OverrideAction::Cleared { author, .. } if author == tier_core::state::RETIRING_AUTHOR
    ));
}

#[test]
fn a_policy_change_racing_another_under_the_same_version_is_refused() {
    // Two changes checked against the policy in force before either was
    // applied (a SIGHUP and an ApplyPolicy, two calls at once) name v2
    // with different texts: the first is applied, the second refused
    // naming the version (two texts under one version would leave the
    // customers the first decided with its tiers under the second). The
    // same text twice is applied once.
    use std::sync::Mutex;
    use std::sync::mpsc::sync_channel;
    use tier_engine::command::{ActivePolicy, PolicyChangeRefused};
    use tier_engine::{Batch, Command};
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    fold_all(&mut engine, &buyer("c", t0, cny(2_000_000)));
    let base = tier_core::policy::DEFAULT_POLICY_TOML;
    let (x, y) = (
        stricter_bands(base, "v2", 1.0),
        stricter_bands(base, "v2", 2.0),
    );
    let active = |text: &str| {
        let p = Policy::from_toml_str(text).unwrap();
        Arc::new(ActivePolicy::new(p, text.to_owned(), String::new()))
    };
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = sync_channel(4);
    for text in [&x, &x, &y] {
        let answers = answers.clone();
        tx.send(Command::ApplyPolicy {
            policy: active(text),
            reply: Box::new(move |r| answers.lock().unwrap().push(r.map(|s| s.version))),
        })
        .unwrap();
    }
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &rx, t0, true, None, 100);
    // The first, and the same text again, are answered once their unit is
    // durable; the other text at once.
    assert_eq!(
        *answers.lock().unwrap(),
        [Err(PolicyChangeRefused::VersionReused {
            version: "v2".into()
        })]
    );
    assert_eq!(engine.policy().version(), "v2");
    let bands = |p: &Policy| p.tiers().iter().map(|t| t.min_score).collect::<Vec<_>>();
    assert_eq!(
        bands(engine.policy()),
        bands(&active(&x).policy),
        "the first text is in force"
    );
    assert_ne!(bands(&active(&x).policy), bands(&active(&y).policy));
}

#[test]
fn a_version_in_force_before_is_refused_with_another_text_even_racing_the_check() {
    // v1 in force, then v2 applied; a v1 edited was checked against v1's
    // record before v2 was known to the caller (built from v1 alone): the
    // engine refuses it, and the record it commits with v2 names v1's
    // text. v1's own text again is a change back, applied.
    use std::sync::Mutex;
    use std::sync::mpsc::sync_channel;
    use tier_engine::command::{ActivePolicy, PolicyChangeRefused};
    use tier_engine::{Batch, Command};
    let t0 = date(2026, 3, 2);
    let base = tier_core::policy::DEFAULT_POLICY_TOML;
    let active = |text: &str| {
        let p = Policy::from_toml_str(text).unwrap();
        ActivePolicy::new(p, text.to_owned(), String::new())
    };
    let v1 = Arc::new(active(base));
    let mut engine = Engine::new(v1.policy.clone(), [], t0);
    engine.set_policy_versions(v1.versions.clone());
    fold_all(&mut engine, &buyer("c", t0, cny(2_000_000)));
    let v1_version = v1.policy.version().to_owned();
    let edited = base.replace("min_score = 80", "min_score = 70");
    let answers = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = sync_channel(4);
    let v2 = stricter_bands(base, "v2", 1.0);
    for next in [
        active(&v2).replacing(&v1),
        active(&edited),
        active(base).replacing(&v1),
    ] {
        let answers = answers.clone();
        tx.send(Command::ApplyPolicy {
            policy: Arc::new(next),
            reply: Box::new(move |r| answers.lock().unwrap().push(r.map(|s| s.version))),
        })
        .unwrap();
    }
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &rx, t0, true, None, 100);
    assert_eq!(
        *answers.lock().unwrap(),
        [Err(PolicyChangeRefused::VersionUsed {
            version: v1_version.clone()
        })],
        "the edit is refused at once; v2 and v1's text again wait for their unit"
    );
    assert_eq!(engine.policy().version(), v1_version, "changed back");
    // The change back was built from v1 alone (it raced v2): what the
    // batch records with it knows v2's text too, so an edit of v2 after a
    // restart is refused.
    let recorded = &batch.applied_policy().unwrap().versions;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded.hash_of("v2").is_some(), "{recorded:?}");
    assert_eq!(
        engine.policy().tiers()[0].min_score,
        v1.policy.tiers()[0].min_score,
        "under v1's own text"
    );
}

#[test]
fn a_customer_known_only_by_an_override_computes_what_no_figures_give() {
    // A manager pins a customer tierd has never seen to A. No figure gave
    // A: its TierChanged's computed tier, and the view's, are what its
    // figures (none) give, where they read A.
    let t0 = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], t0);
    let mut unit = Unit::new();
    let change = engine
        .set_override(
            &mut unit,
            by_li_wei("new-acct", "A", OverrideMode::Pin, "strategic", None),
            t0,
        )
        .unwrap()
        .expect("a first tier");
    let p = policy();
    let none = p.tiers()[p.evaluate(&tier_core::Indicators::default()).tier]
        .name
        .clone();
    assert_ne!(none, "A");
    assert_eq!((change.new_tier.as_str(), change.overridden), ("A", true));
    assert_eq!(change.computed_tier, none);
    let state = engine.customer("new-acct").unwrap();
    assert_eq!(state.computed_tier(&p, &state.indicators(&p)), none);
    // Shown under the policy in force; a restart has nothing to rescore
    // (it rescored the customer with cause POLICY though no policy moved).
    assert_eq!(state.policy_version, p.version());
    let restarted = Engine::new(policy(), [("new-acct".to_owned(), state.into_owned())], t0);
    assert!(!restarted.rescoring());
}

/// A policy change that lifts a customer clear of the drop its notice
/// foresaw withdraws the notice as its rescore reaches it: it stayed
/// listed, with the old policy's tier to fall to and advice, until the
/// next day's check.
#[test]
fn a_policy_rescore_rechecks_the_at_risk_notice() {
    let policy = policy();
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    let (_, notices) = sweep_days(&mut engine, last, 400);
    let (day, _) = *notices.first().expect("a notice");
    let mut engine = Engine::new(policy.clone(), [], last);
    fold_all(&mut engine, &buyer("c", last, cny(2_000_000)));
    sweep_days(&mut engine, last, day);
    let old = engine
        .customer("c")
        .unwrap()
        .at_risk
        .clone()
        .expect("a notice");
    // Every band 15 points lower: B holds longer, or for good.
    let lenient = Arc::new(
        Policy::from_toml_str(&stricter_bands(
            tier_core::policy::DEFAULT_POLICY_TOML,
            "lenient",
            -15.0,
        ))
        .unwrap(),
    );
    let today = last.plus_days(day);
    engine.apply_policy(lenient.clone(), today);
    let mut unit = Unit::new();
    while engine.rescore(&mut unit, 10) > 0 {}
    engine.recheck_notices(&mut unit);
    engine.seal(&unit);
    let s = engine.customer("c").unwrap();
    assert_eq!(s.policy_version, "lenient");
    let fresh = s.foresee_drop("c", &lenient, today);
    assert_ne!(
        fresh.as_ref(),
        Some(&*old),
        "the new policy foresees otherwise"
    );
    assert_eq!(s.at_risk.as_deref(), fresh.as_ref());
}

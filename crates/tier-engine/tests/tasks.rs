//! The engine's per-partition tasks, without a broker: records in a `Vec`
//! tagged with their input partition, a stepped clock.
//!
//! Each input partition's customers are one task (states and due index);
//! a revoke drops the task whole, a sweep takes due customers from every
//! task, and a partitioned engine decides exactly what one holding every
//! customer unscoped decides.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use tier_core::overrides::OverrideMode;
use tier_core::policy::Policy;
use tier_core::sim::scenario::{order, weekly_buyer as buyer};
use tier_core::state::{Cause, TierChange};
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{Engine, SetOverride, Unit};
use tier_store::Scope;

const fn cny(major: i64) -> i64 {
    major * 100
}

fn policy() -> Arc<Policy> {
    Arc::new(Policy::default_policy())
}

fn p(n: i32) -> Scope {
    Scope::partition(n).unwrap()
}

/// Fold `(partition, event)` pairs in order; `None`: no partition (as
/// `Engine::fold`).
fn fold(engine: &mut Engine, records: &[(Option<i32>, Event)]) -> Unit {
    let mut unit = Unit::new();
    for (partition, e) in records {
        match partition {
            Some(n) => engine.fold_from(&mut unit, e, None, *n),
            None => engine.fold(&mut unit, e),
        };
    }
    engine.seal(&unit);
    unit
}

fn on(partition: i32, events: Vec<Event>) -> Vec<(Option<i32>, Event)> {
    events.into_iter().map(|e| (Some(partition), e)).collect()
}

/// Sweep day by day for `days` days from `from`, in slices of `budget`.
fn sweep_days(engine: &mut Engine, from: Timestamp, days: i64, budget: usize) -> Vec<TierChange> {
    let mut changes = Vec::new();
    for d in 0..=days {
        let mut unit = Unit::new();
        while engine.sweep(&mut unit, from.plus_days(d), budget) > 0 {}
        engine.seal(&unit);
        changes.extend(unit.changes);
    }
    changes
}

fn by_customer(mut changes: Vec<TierChange>) -> Vec<TierChange> {
    changes.sort_by(|a, b| (&a.customer_id, a.sequence).cmp(&(&b.customer_id, b.sequence)));
    changes
}

#[test]
fn each_input_partition_is_a_task_and_a_revoke_drops_only_its_task() {
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], last);
    let mut records = on(0, buyer("a", last, cny(2_000_000)));
    records.extend(on(1, buyer("b", last, cny(2_000_000))));
    records.extend(on(1, buyer("c", last, cny(600_000))));
    fold(&mut engine, &records);
    // A customer known only from a command is unscoped: its own task.
    let mut unit = Unit::new();
    engine
        .set_override(
            &mut unit,
            SetOverride {
                customer_id: "z".into(),
                tier: "A".into(),
                mode: OverrideMode::Pin,
                reason: "strategic account signed".into(),
                author: "sales.director".into(),
                expires_at: None,
            },
            last,
        )
        .unwrap();
    engine.seal(&unit);
    assert_eq!(
        engine.tasks().collect::<Vec<_>>(),
        [(p(0), 1), (p(1), 2), (Scope::UNSCOPED, 1)]
    );
    assert_eq!(engine.scope_of("b"), p(1));
    assert_eq!(engine.scope_of("z"), Scope::UNSCOPED);
    let kept = engine.customer("a").unwrap().into_owned();

    // Partition 1 goes to another instance: its task goes, whole.
    let mut unit = Unit::new();
    let assigned = engine.assign(&mut unit, &BTreeSet::from([0]));
    assert_eq!(assigned.evicted, 2);
    let evicted: BTreeSet<&str> = unit.evicted.iter().map(String::as_str).collect();
    assert_eq!(evicted, BTreeSet::from(["b", "c"]));
    assert_eq!(
        engine.tasks().collect::<Vec<_>>(),
        [(p(0), 1), (Scope::UNSCOPED, 1)]
    );
    assert_eq!(engine.len(), 2);
    assert!(engine.customer("b").is_none() && engine.customer("c").is_none());
    assert_eq!(
        engine.customer("a").as_deref(),
        Some(&kept),
        "a kept task is untouched"
    );
    assert_eq!(engine.scope_of("b"), Scope::UNSCOPED, "no route left to b");

    // Time moves only the customers this instance still owns.
    let changes = sweep_days(&mut engine, last, 400, 7);
    assert!(!changes.is_empty(), "a still lapses here");
    assert!(
        changes
            .iter()
            .all(|c| c.customer_id == "a" && c.cause == Cause::Time),
        "{changes:?}"
    );
}

#[test]
fn a_partitioned_engine_decides_exactly_what_one_unscoped_engine_decides() {
    // Customers on three partitions, their last orders spread over weeks so
    // that their due instants interleave across tasks.
    let start = date(2026, 3, 2);
    let customers: Vec<(String, i32, Timestamp, i64)> = (0..12)
        .map(|i| {
            (
                format!("c{i:02}"),
                i % 3,
                start.plus_days(i64::from(i) * 9),
                cny(300_000 + 250_000 * i64::from(i)),
            )
        })
        .collect();
    let mut records = Vec::new();
    for (id, partition, last, per_year) in &customers {
        records.extend(on(*partition, buyer(id, *last, *per_year)));
    }
    records.sort_by_key(|(_, e)| e.occurred_at);
    let unscoped: Vec<(Option<i32>, Event)> =
        records.iter().map(|(_, e)| (None, e.clone())).collect();
    let t0 = start.plus_days(12 * 9);

    let mut tasks = Engine::new(policy(), [], t0);
    let mut single = Engine::new(policy(), [], t0);
    let a = fold(&mut tasks, &records);
    let b = fold(&mut single, &unscoped);
    assert_eq!(a.changes, b.changes);
    assert_eq!(tasks.tasks().count(), 3);
    assert_eq!(single.tasks().collect::<Vec<_>>(), [(Scope::UNSCOPED, 12)]);
    assert_eq!(tasks.next_due(), single.next_due());
    assert_eq!(
        tasks.due_count(t0.plus_days(60)),
        single.due_count(t0.plus_days(60))
    );

    // Small slices: a sweep crosses tasks many times a day.
    let swept = sweep_days(&mut tasks, t0, 420, 2);
    let reference = sweep_days(&mut single, t0, 420, 1000);
    assert!(swept.len() > 12, "time moves every customer: {swept:?}");
    assert_eq!(by_customer(swept), by_customer(reference));
    for (id, _, _, _) in &customers {
        assert_eq!(tasks.customer(id), single.customer(id), "{id}");
    }
}

#[test]
fn a_sweep_takes_the_customer_due_first_from_whichever_task_holds_it() {
    let last = date(2026, 3, 2);
    let mut engine = Engine::new(policy(), [], last);
    // "late" stopped buying 60 days after "early"; early sits on a higher
    // partition, so partition order alone would take late first.
    let mut records = on(0, buyer("late", last.plus_days(60), cny(2_000_000)));
    records.extend(on(5, buyer("early", last, cny(2_000_000))));
    records.sort_by_key(|(_, e)| e.occurred_at);
    fold(&mut engine, &records);
    let horizon = last.plus_days(400);
    let mut unit = Unit::new();
    assert_eq!(engine.sweep(&mut unit, horizon, 1), 1);
    assert_eq!(unit.touched(), ["early".to_owned()]);
}

#[test]
fn a_customer_whose_records_move_partition_takes_its_due_entry_to_the_new_task() {
    let last = date(2026, 3, 2);
    let mut moved = Engine::new(policy(), [], last);
    let mut stayed = Engine::new(policy(), [], last);
    let mut events = buyer("m", last, cny(2_000_000));
    let late = order("m", 999, last.plus_days(1), cny(10_000));
    events.push(late.clone());
    let mut records = on(0, events.clone());
    records.last_mut().unwrap().0 = Some(1);
    let unit = fold(&mut moved, &records);
    fold(&mut stayed, &on(0, events));
    assert_eq!(unit.moved, [(p(0), "m".to_owned())]);
    assert_eq!(moved.scope_of("m"), p(1));
    assert_eq!(
        moved.tasks().collect::<Vec<_>>(),
        [(p(0), 0), (p(1), 1)],
        "the customer left partition 0's task"
    );
    assert_eq!(moved.next_due(), stayed.next_due());
    let a = sweep_days(&mut moved, last, 400, 7);
    let b = sweep_days(&mut stayed, last, 400, 7);
    assert!(!a.is_empty());
    assert_eq!(a, b, "the move changes no decision");
}

#[test]
fn a_seal_finds_every_customer_its_unit_touched_after_positions_moved() {
    // The fold notes where each customer is held for the seal; a move to
    // another partition shifts others in the old task's table (the last
    // takes the place of the one that left), so those notes go stale.
    let day = date(2026, 3, 2);
    let first = |id: &str, n: usize| order(id, n, day, cny(50_000));
    let mut records = on(0, vec![first("a", 1), first("b", 2), first("c", 3)]);
    records.push((Some(1), order("a", 4, day.plus_days(1), cny(70_000))));
    let mut moved = Engine::new(policy(), [], day);
    let unit = fold(&mut moved, &records);
    assert_eq!(unit.moved, [(p(0), "a".to_owned())]);
    // The same records with a's on partition 1 from the start: nothing moves.
    let mut straight = Engine::new(policy(), [], day);
    let mut direct = records.clone();
    direct[0].0 = Some(1);
    fold(&mut straight, &direct);

    let held: Vec<(Scope, &str)> = moved
        .unit_customers(&unit)
        .into_iter()
        .map(|(scope, id, state)| {
            assert_eq!(Some(state), moved.customer(id).as_deref(), "{id}");
            (scope, id)
        })
        .collect();
    assert_eq!(held, [(p(1), "a"), (p(0), "b"), (p(0), "c")]);
    // Each was indexed at its next due instant by the seal: as many are
    // due by every day as when nothing moved.
    let far = day.plus_days(800);
    assert_eq!(moved.due_count(far), 3);
    for d in 0..=800 {
        let by = day.plus_days(d);
        assert_eq!(moved.due_count(by), straight.due_count(by), "due by {by:?}");
    }
    assert_eq!(moved.next_due(), straight.next_due());
}

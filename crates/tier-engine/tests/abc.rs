//! The `abc` method in the engine: the population ranked as it folds, cut
//! points recomputed on the cadence (processing clock), customers the new
//! cut points move rescored with cause `Rank`, newcomers graded against
//! the frozen cut points at once, the same tiers after a restart, a dry
//! run of an abc policy graded against the population ranked its way, and
//! ranking by the weighted score (`by = "score"`) or by an RFM score (the
//! quintiles cut first, in the same recut).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::policy::Policy;
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, TierChange};
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{Batch, Engine, Unit};

const ABC: &str = r#"
version = "abc-engine-1"
currency = "CNY"
window_months = 12

[hysteresis]
min_days_in_tier = 0

[method]
kind = "abc"
by = "order_amount_12m"
shares = [20, 30, 50]
recut_seconds = 10

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

/// 100,000 CNY in fen.
const UNIT: i64 = 10_000_000;

fn policy() -> Arc<Policy> {
    Arc::new(Policy::from_toml_str(ABC).unwrap())
}

fn secs(t: Timestamp, s: i64) -> Timestamp {
    Timestamp::from_millis(t.millis() + s * 1000)
}

fn fold(engine: &mut Engine, events: &[Event]) -> Unit {
    let mut unit = Unit::new();
    for e in events {
        engine.fold(&mut unit, e);
    }
    engine.seal(&unit);
    unit
}

fn recut(engine: &mut Engine, now: Timestamp) -> Vec<TierChange> {
    let mut unit = Unit::new();
    engine.recut(&mut unit, now);
    engine.seal(&unit);
    unit.changes
}

/// Customers c0..c9 with 1..=10 units of revenue at `t0`, cut 10 s on;
/// the engine and its cut points as stored.
fn ten_cut(t0: Timestamp) -> (Engine, Vec<u8>) {
    let mut engine = Engine::new(policy(), [], t0);
    let first: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &first);
    recut(&mut engine, secs(t0, 10));
    let stored = tier_engine::cuts::encode(engine.policy());
    (engine, stored)
}

/// Every customer's state, as a restart loads them.
fn states_of(engine: &Engine) -> Vec<(String, tier_core::state::CustomerState)> {
    engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect()
}

fn tier(engine: &Engine, id: &str) -> String {
    engine.customer(id).unwrap().tier().unwrap().to_owned()
}

#[test]
fn the_population_moves_the_tiers_with_cause_rank() {
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(policy(), [], t0);
    // The first ten customers: 1..=10 units of revenue.
    let first: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &first);
    // Nobody was ranked when they came: the lowest tier, until the cut.
    assert!((0..10).all(|i| tier(&engine, &format!("c{i}")) == "C"));
    assert!(
        recut(&mut engine, secs(t0, 5)).is_empty(),
        "not before recut_seconds"
    );

    let changes = recut(&mut engine, secs(t0, 10));
    let tiers: Vec<String> = (0..10).map(|i| tier(&engine, &format!("c{i}"))).collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "C", "B", "B", "B", "A", "A"]);
    assert_eq!(changes.len(), 5, "{changes:?}");
    assert!(changes.iter().all(|c| c.cause == Cause::Rank));
    assert_eq!(
        engine.policy().rank_cuts(),
        [9.0 * UNIT as f64, 6.0 * UNIT as f64]
    );

    // A newcomer above the top cut point is A at once (cause EVENT)...
    let t1 = secs(t0, 60);
    let big = fold(&mut engine, &[order("c10", 1, t1, UNIT * 20)]);
    assert_eq!(big.changes.len(), 1);
    assert_eq!(
        (big.changes[0].new_tier.as_str(), big.changes[0].cause),
        ("A", Cause::Event)
    );
    // ...and at the next cut the top 20% of 11 (two customers) are c10
    // and c9: c8 falls to B with cause RANK, nobody else moves.
    let changes = recut(&mut engine, secs(t1, 10));
    let moved: Vec<(&str, &str, Cause)> = changes
        .iter()
        .map(|c| (c.customer_id.as_str(), c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(moved, [("c8", "B", Cause::Rank)]);
    assert_eq!(tier(&engine, "c5"), "B");
    assert_eq!(tier(&engine, "c4"), "C");

    // A restart ranks the stored states and cuts at once: the same tiers,
    // nothing moves.
    let states: Vec<(String, tier_core::state::CustomerState)> = engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect();
    let mut restarted = Engine::new(policy(), states, secs(t1, 3600));
    assert_eq!(restarted.policy().rank_cuts(), engine.policy().rank_cuts());
    assert!(recut(&mut restarted, secs(t1, 7200)).is_empty());
    for i in 0..11 {
        let id = format!("c{i}");
        assert_eq!(tier(&restarted, &id), tier(&engine, &id), "{id}");
    }
}

#[test]
fn a_recut_during_a_policy_rescore_decides_the_policy_first() {
    // A new policy renames A "Top" and is rescored in the background; before
    // the rescore reaches c8, a newcomer takes a top place and the recut
    // moves c8 down. Its policy change is decided first, as the rescore (or
    // an event) would decide it, at the apply instant with cause POLICY;
    // then the cut's, with cause RANK. It was one RANK change from A, and
    // the rescore, finding c8 on the new version, never made the POLICY one.
    let t0 = secs(date(2026, 3, 2), 7200);
    let (mut engine, _) = ten_cut(t0);
    let renamed = ABC
        .replace("abc-engine-1", "abc-engine-2")
        .replace("name = \"A\"", "name = \"Top\"");
    let t1 = secs(t0, 60);
    engine.apply_policy(Arc::new(Policy::from_toml_str(&renamed).unwrap()), t1);
    let t2 = secs(t1, 1);
    fold(&mut engine, &[order("c10", 1, t2, UNIT * 20)]);
    let now = secs(t2, 10);
    let changes = recut(&mut engine, now);
    let c8: Vec<(Option<&str>, &str, Cause, Timestamp)> = changes
        .iter()
        .filter(|c| c.customer_id == "c8")
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
        c8,
        [
            (Some("A"), "Top", Cause::Policy, t1),
            (Some("Top"), "B", Cause::Rank, now)
        ]
    );
}

#[test]
fn a_cut_in_the_unit_that_folded_customers_sees_them_before_the_seal() {
    // The ingest loop folds a batch, then recuts (between batches), then
    // seals. Customers folded by the unit must be in the cut, and be moved
    // from the cut points they were graded under.
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(policy(), [], t0);
    fold(&mut engine, &[order("c0", 1, t0, UNIT)]);
    // A cut over one customer.
    recut(&mut engine, secs(t0, 10));
    let t1 = secs(t0, 20);
    let rest: Vec<Event> = (1..10)
        .map(|i| order(&format!("c{i}"), 1, t1, UNIT * (i + 1)))
        .collect();
    let mut unit = Unit::new();
    for e in &rest {
        engine.fold(&mut unit, e);
    }
    engine.recut(&mut unit, secs(t1, 10));
    engine.seal(&unit);
    let tiers: Vec<String> = (0..10).map(|i| tier(&engine, &format!("c{i}"))).collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "C", "B", "B", "B", "A", "A"]);
    assert_eq!(
        engine.policy().rank_cuts(),
        [9.0 * UNIT as f64, 6.0 * UNIT as f64]
    );
    // Nothing is left for the next cut to move.
    assert!(recut(&mut engine, secs(t1, 3600)).is_empty());
}

#[test]
fn a_dry_run_of_an_abc_policy_ranks_the_population_its_way() {
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), [], t0);
    let events: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &events);
    let dry = engine.dry_run(&policy(), t0, 100);
    let to = |tier: &str| -> u64 {
        dry.matrix
            .iter()
            .filter(|c| c.to == tier)
            .map(|c| c.customers)
            .sum()
    };
    assert_eq!((to("A"), to("B"), to("C")), (2, 3, 5), "{:?}", dry.matrix);
}

/// [`ABC`] ranking by something else: `by` replaced by `by`, `extra`
/// inserted before the first tier.
fn abc_by(by: &str, extra: &str) -> Arc<Policy> {
    let text = ABC.replacen("by = \"order_amount_12m\"", by, 1).replacen(
        "[[tiers]]",
        &format!("{extra}\n[[tiers]]"),
        1,
    );
    Arc::new(Policy::from_toml_str(&text).unwrap())
}

#[test]
fn by_score_ranks_the_weighted_score_and_reports_it() {
    // The score: 12-month revenue, 0 to 10 units for 0 to 100 points.
    let p = abc_by(
        "by = \"score\"",
        r#"[[method.dimensions]]
name = "value"
weight = 100
parts = [
  { indicator = "order_amount_12m", share = 100, higher_is_better = true, curve = [[0, 0], [100000000, 100]] },
]
"#,
    );
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(p, [], t0);
    let first: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &first);
    let changes = recut(&mut engine, secs(t0, 10));
    assert!(changes.iter().all(|c| c.cause == Cause::Rank));
    assert_eq!(engine.policy().rank_cuts(), [90.0, 60.0]);
    let tiers: Vec<String> = (0..10).map(|i| tier(&engine, &format!("c{i}"))).collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "C", "B", "B", "B", "A", "A"]);
    // The score held is the weighted score, not the band's height.
    let held = |id: &str| {
        engine
            .customer(id)
            .unwrap()
            .effective
            .clone()
            .unwrap()
            .score
    };
    assert_eq!((held("c4"), held("c7"), held("c9")), (50.0, 80.0, 100.0));
}

#[test]
fn by_an_rfm_score_ranks_the_scores_of_the_same_cut() {
    // Ranked by the monetary quintile score: the first recut sets the
    // quintile cut points, the scores move, and the abc cut points follow
    // in the same recut.
    let p = abc_by("by = \"rfm_monetary\"", "");
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(p.clone(), [], t0);
    let first: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &first);
    let changes = recut(&mut engine, secs(t0, 10));
    // Scores 1,1,2,2,3,3,4,4,5,5: A is score 5, B reaches c4's 3.
    assert_eq!(engine.policy().rank_cuts(), [5.0, 3.0]);
    let tiers: Vec<String> = (0..10).map(|i| tier(&engine, &format!("c{i}"))).collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "B", "B", "B", "B", "A", "A"]);
    assert_eq!(changes.len(), 6);
    // A restart cuts both at once: the same cut points.
    let states: Vec<(String, tier_core::state::CustomerState)> = engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect();
    let restarted = Engine::new(p, states, secs(t0, 3600));
    assert_eq!(restarted.policy().rank_cuts(), engine.policy().rank_cuts());
    assert_eq!(restarted.policy().rfm_cuts(), engine.policy().rfm_cuts());
}

/// tierd stopped after the population moved but before the next recut:
/// the restart puts the stored cut points back in force and its first
/// recut rescores exactly the customers the fresh cut moves, as the recut
/// the stop prevented would have. Without the stored cut points the
/// start-up cut would leave them on their old tiers until touched.
#[test]
fn a_restart_between_recuts_rescores_whom_the_missed_recut_moves() {
    use tier_engine::cuts;

    let t0 = secs(date(2026, 3, 2), 7200);
    let (mut engine, stored) = ten_cut(t0);
    // A newcomer at the top; then tierd stops before the next recut.
    let t1 = secs(t0, 60);
    fold(&mut engine, &[order("c10", 1, t1, UNIT * 20)]);
    assert_eq!(tier(&engine, "c8"), "A", "the old cut still holds");
    let states = states_of(&engine);

    // Restart with the stored cut points.
    let t2 = secs(t1, 3600);
    let mut restarted = Engine::new(policy(), states.clone(), t2);
    assert!(restarted.restore_cuts(&cuts::decode(&stored).unwrap()));
    assert_eq!(
        restarted.policy().rank_cuts(),
        [9.0 * UNIT as f64, 6.0 * UNIT as f64],
        "the cut points decisions were made against"
    );
    let changes = recut(&mut restarted, t2);
    let moved: Vec<(&str, &str, Cause)> = changes
        .iter()
        .map(|c| (c.customer_id.as_str(), c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(moved, [("c8", "B", Cause::Rank)]);
    // The same as the recut the stop prevented.
    recut(&mut engine, secs(t1, 10));
    for i in 0..11 {
        let id = format!("c{i}");
        assert_eq!(tier(&restarted, &id), tier(&engine, &id), "{id}");
    }

    // Without them (a data dir from before cut points were stored, or an
    // unreadable record) the start-up cut stands and c8 keeps A.
    let mut blind = Engine::new(policy(), states, t2);
    assert!(recut(&mut blind, t2).is_empty());
    assert_eq!(tier(&blind, "c8"), "A");
    // Cut points of another policy version are not restored.
    let mut other = cuts::decode(&stored).unwrap();
    other.version = "another".into();
    assert!(!blind.restore_cuts(&other));
}

#[test]
fn no_recut_while_catching_up() {
    // A rebuild from Kafka: months of history being folded, the
    // processing clock today. A recut now would decide the customers it
    // moves today, with part of their history folded, and score the rest
    // of it as of today; it waits for the catch-up to end.
    let t0 = secs(date(2026, 3, 2), 7200);
    let today = date(2026, 11, 30);
    let mut engine = Engine::new(policy(), [], t0);
    let first: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 1, t0, UNIT * (i + 1)))
        .collect();
    fold(&mut engine, &first);
    let (_commands, inbox) = tier_engine::command::channel(1);
    let uncut = engine.policy().rank_cuts().to_vec();
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &inbox, today, false, None, 100);
    assert!(batch.unit.changes.is_empty(), "{:?}", batch.unit.changes);
    assert_eq!(engine.policy().rank_cuts(), uncut, "not cut yet");
    // The cut points in force (those of the start) still reach the read
    // side, which explains by them meanwhile; once.
    assert!(batch.has_work());
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &inbox, today, false, None, 100);
    assert!(!batch.has_work());
    assert_eq!(engine.customer("c9").unwrap().decided_at, t0);
    // Caught up: the population is cut, as of the processing clock.
    let mut batch = Batch::new();
    engine.between_batches(&mut batch, &inbox, today, true, None, 100);
    assert_eq!(batch.unit.changes.len(), 5);
    assert!(batch.unit.changes.iter().all(|c| c.cause == Cause::Rank));
    assert_eq!(tier(&engine, "c9"), "A");
}

#[test]
fn a_cut_for_the_read_side_alone_is_work_to_commit() {
    // Restarted with the cut points of the last run and a population that
    // did not move: the first recut moves nobody, but the read side must
    // still be given the cut points (a batch with nothing else was
    // dropped, and ExplainTier said "not ranked yet" until a cut moved).
    use tier_engine::cuts;

    let t0 = secs(date(2026, 3, 2), 7200);
    let (engine, stored) = ten_cut(t0);
    let states = states_of(&engine);
    let t1 = secs(t0, 3600);
    let mut restarted = Engine::new(policy(), states, t1);
    assert!(restarted.restore_cuts(&cuts::decode(&stored).unwrap()));
    let (_commands, inbox) = tier_engine::command::channel(1);
    let mut batch = Batch::new();
    restarted.between_batches(&mut batch, &inbox, t1, true, None, 100);
    assert!(batch.unit.changes.is_empty(), "nobody moves");
    assert!(batch.has_work(), "the cut points must reach the read side");
}

/// `deploy/policy/abc-margin.toml`: ranked by the 12-month margin, shares
/// 20/30/50, with the default policy's credit gates.
fn abc_margin() -> Arc<Policy> {
    Arc::new(Policy::from_toml_str(include_str!("../../../deploy/policy/abc-margin.toml")).unwrap())
}

/// An order of `customer` at `at` worth 100,000 fen, at a margin of
/// `margin` fen (negative: sold at a loss).
fn order_at_margin(customer: &str, at: Timestamp, margin: i64) -> Event {
    let amount = 10_000_000;
    Event {
        event_id: format!("{customer}-e1"),
        customer_id: customer.into(),
        occurred_at: at,
        source: "scenario".into(),
        kind: tier_core::event::EventKind::OrderPlaced {
            order_id: format!("{customer}-o1"),
            amount: tier_core::event::Money(amount),
            cost: Some(tier_core::event::Money(amount - margin)),
        },
    }
}

/// A prospect: a profile with a purchase potential, no order.
fn prospect(customer: &str, at: Timestamp) -> Event {
    Event {
        event_id: format!("{customer}-profile"),
        customer_id: customer.into(),
        occurred_at: at,
        source: "crm".into(),
        kind: tier_core::event::EventKind::ProfileUpdated(tier_core::event::ProfileUpdate {
            purchase_potential: Some(tier_core::event::Money(100_000_000)),
            ..tier_core::event::ProfileUpdate::default()
        }),
    }
}

#[test]
fn customers_who_bought_nothing_are_not_ranked_and_hold_the_lowest_tier() {
    let t0 = secs(date(2026, 3, 2), 7200);
    // Given abc-margin.toml, five customers who bought at margins of
    // 5,000, 4,000, 3,000, 2,000 and -100 fen and five prospects (a margin
    // of 0 in the window), when the population is cut, then the prospects
    // hold C and the shares are those of the five who bought. Ranked, the
    // prospects' 0 was B's cut point (the -100 below it kept it from being
    // taken for the population's "nothing") and all five held B.
    let mut engine = Engine::new(abc_margin(), [], t0);
    let margins = [5000, 4000, 3000, 2000, -100];
    let mut events: Vec<Event> = margins
        .iter()
        .enumerate()
        .map(|(i, m)| order_at_margin(&format!("b{i}"), t0, *m))
        .collect();
    events.extend((0..5).map(|i| prospect(&format!("p{i}"), t0)));
    fold(&mut engine, &events);
    recut(&mut engine, secs(t0, 10));
    assert_eq!(engine.policy().rank_cuts(), [5000.0, 3000.0]);
    let tiers: Vec<String> = (0..5).map(|i| tier(&engine, &format!("b{i}"))).collect();
    assert_eq!(tiers, ["A", "B", "B", "C", "C"]);
    for i in 0..5 {
        assert_eq!(tier(&engine, &format!("p{i}")), "C", "p{i}");
    }

    // Given 100 customers of whom 20 bought (margins 1..=20 units), then
    // the top 20% of the twenty are A, the next 30% B, the rest C: the
    // share boundaries were taken over the 80 prospects too, which made
    // every buyer A and left B empty.
    let mut engine = Engine::new(abc_margin(), [], t0);
    let mut events: Vec<Event> = (0..20)
        .map(|i| order(&format!("b{i:02}"), 1, t0, 4 * UNIT * (i + 1)))
        .collect();
    events.extend((0..80).map(|i| prospect(&format!("p{i:02}"), t0)));
    fold(&mut engine, &events);
    recut(&mut engine, secs(t0, 10));
    let count = |want: &str| {
        engine
            .customers()
            .filter(|(_, s)| s.tier() == Some(want))
            .count()
    };
    assert_eq!((count("A"), count("B"), count("C")), (4, 6, 90));
    assert_eq!(tier(&engine, "b16"), "A");
    assert_eq!(tier(&engine, "b15"), "B");
    assert_eq!(tier(&engine, "b09"), "C");
    assert!((0..80).all(|i| tier(&engine, &format!("p{i:02}")) == "C"));
}

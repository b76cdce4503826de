//! RFM quintile scores in the engine: a policy whose rules and tier gate
//! read `rfm_*` scores. The population is ranked by recency, frequency
//! and monetary value as it folds, the quintile cut points recomputed on
//! the cadence (processing clock); at a recut exactly the customers whose
//! read score moved are rescored (cause `Rank`), newcomers are scored
//! against the frozen cut points at once, a restart gives the same cut
//! points and tiers, and a figure time alone moves (an order leaving the
//! window, swept with cause `TIME`) moves the ranking for the next recut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use tier_core::policy::Policy;
use tier_core::sim::scenario::order;
use tier_core::state::{Cause, CustomerState};
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{Engine, Unit};

const RFM: &str = r#"
version = "rfm-engine-1"
currency = "CNY"
window_months = 12

[hysteresis]
min_days_in_tier = 0

[method]
kind = "rules"

[[method.rules]]
tier = "A"
all = [{ indicator = "rfm_monetary", op = ">=", value = 5 }]

[[method.rules]]
tier = "B"
all = [{ indicator = "rfm_monetary", op = ">=", value = 3 }]

[[tiers]]
name = "A"
priority = 1
complaint_sla_hours = 72
visit_every_days = 30
payment_terms_days = 60
gates = [{ indicator = "rfm_frequency", op = ">=", value = 3 }]

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
    Arc::new(Policy::from_toml_str(RFM).unwrap())
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

fn recut(engine: &mut Engine, now: Timestamp) -> Unit {
    let mut unit = Unit::new();
    engine.recut(&mut unit, now);
    engine.seal(&unit);
    unit
}

fn tier(engine: &Engine, id: &str) -> String {
    engine.customer(id).unwrap().tier().unwrap().to_owned()
}

/// `units` of revenue in two orders (one order when `single`), at `at`.
fn buys(id: &str, at: Timestamp, units: i64, single: bool) -> Vec<Event> {
    if single {
        return vec![order(id, 1, at, units * UNIT)];
    }
    vec![
        order(id, 1, secs(at, -60), units * UNIT / 2),
        order(id, 2, at, units * UNIT - units * UNIT / 2),
    ]
}

#[test]
fn a_recut_rescores_exactly_the_customers_whose_rfm_score_moved() {
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(policy(), [], t0);
    // c0..c9: 1..=10 units of revenue, two orders each but c9 (one).
    let first: Vec<Event> = (0..10)
        .flat_map(|i| buys(&format!("c{i}"), t0, i + 1, i == 9))
        .collect();
    fold(&mut engine, &first);
    // No cut points yet: every score unknown, no rule holds.
    assert!(engine.policy().rfm_cuts().is_empty());
    assert!((0..10).all(|i| tier(&engine, &format!("c{i}")) == "C"));
    assert!(
        recut(&mut engine, secs(t0, 5)).changes.is_empty(),
        "not before recut_seconds"
    );

    // The first cut. Monetary fifths of ten: c8 c9 | c6 c7 | c4 c5 | c2
    // c3 | c0 c1. Frequency: nine customers with 2 orders fill the first
    // four fifths, so 2 orders score 5 and c9's single order scores 1:
    // its frequency gate keeps it out of A.
    let unit = recut(&mut engine, secs(t0, 10));
    let u = UNIT as f64;
    assert_eq!(
        engine.policy().rfm_cuts().monetary,
        [9.0 * u, 7.0 * u, 5.0 * u, 3.0 * u]
    );
    assert_eq!(engine.policy().rfm_cuts().frequency, [2.0, 2.0, 2.0, 2.0]);
    let tiers: Vec<String> = (0..10).map(|i| tier(&engine, &format!("c{i}"))).collect();
    assert_eq!(tiers, ["C", "C", "C", "C", "B", "B", "B", "B", "A", "B"]);
    assert_eq!(unit.changes.len(), 6, "{:?}", unit.changes);
    assert!(unit.changes.iter().all(|c| c.cause == Cause::Rank));
    // Every score went from unknown to known: everyone was rescored.
    assert_eq!(unit.touched().len(), 10);
    let ind = engine.customer("c9").unwrap().indicators(engine.policy());
    assert_eq!(
        (ind.rfm_monetary, ind.rfm_frequency),
        (Some(5.0), Some(1.0))
    );

    // Two newcomers above the top cut point: A at once (cause EVENT),
    // against the frozen cut points; after its first order each is B (a
    // single order is frequency 1: the gate), after its second, A.
    let t1 = secs(t0, 60);
    let mut newcomers = buys("c10", t1, 20, false);
    newcomers.extend(buys("c11", t1, 15, false));
    let unit = fold(&mut engine, &newcomers);
    let came: Vec<(&str, &str, Cause)> = unit
        .changes
        .iter()
        .map(|c| (c.customer_id.as_str(), c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(
        came,
        [
            ("c10", "B", Cause::Event),
            ("c10", "A", Cause::Event),
            ("c11", "B", Cause::Event),
            ("c11", "A", Cause::Event)
        ]
    );

    // The next cut. Monetary fifths of twelve (2, 3, 2, 3, 2): c10 c11 |
    // c9 c8 c7 | c6 c5 | c4 c3 c2 | c1 c0. By hand, old -> new scores:
    // c9 5 -> 4, c8 5 -> 4, c6 4 -> 3, c4 3 -> 2; nobody else's
    // monetary score moves, and no frequency score does.
    let unit = recut(&mut engine, secs(t1, 10));
    assert_eq!(
        engine.policy().rfm_cuts().monetary,
        [15.0 * u, 8.0 * u, 6.0 * u, 3.0 * u]
    );
    let touched: BTreeSet<&str> = unit.touched().iter().map(|id| id.as_str()).collect();
    assert_eq!(touched, BTreeSet::from(["c4", "c6", "c8", "c9"]));
    // Of those, c8 leaves A and c4 leaves B; c9 (gated to B) and c6
    // (still monetary 3) keep their tiers.
    let moved: Vec<(&str, &str, Cause)> = unit
        .changes
        .iter()
        .map(|c| (c.customer_id.as_str(), c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(moved, [("c4", "C", Cause::Rank), ("c8", "B", Cause::Rank)]);
    assert_eq!(tier(&engine, "c9"), "B");
    assert_eq!(tier(&engine, "c6"), "B");
    // Nothing moved since: the next recut changes nothing.
    let unit = recut(&mut engine, secs(t1, 3600));
    assert!(unit.is_empty() && unit.changes.is_empty());

    // A restart ranks the stored states and cuts at once: the same cut
    // points and tiers, and nothing to rescore.
    let states: Vec<(String, CustomerState)> = engine
        .customers()
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect();
    let mut restarted = Engine::new(policy(), states, secs(t1, 7200));
    assert_eq!(restarted.policy().rfm_cuts(), engine.policy().rfm_cuts());
    let unit = recut(&mut restarted, secs(t1, 9000));
    assert!(unit.changes.is_empty(), "{:?}", unit.changes);
    for i in 0..12 {
        let id = format!("c{i}");
        assert_eq!(tier(&restarted, &id), tier(&engine, &id), "{id}");
        let (a, b) = (
            restarted
                .customer(&id)
                .unwrap()
                .indicators(restarted.policy()),
            engine.customer(&id).unwrap().indicators(engine.policy()),
        );
        assert_eq!(a, b, "{id}");
    }
}

#[test]
fn a_policy_without_rfm_scores_ranks_nothing() {
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), [], t0);
    fold(&mut engine, &buys("c0", t0, 3, false));
    let mut unit = Unit::new();
    assert!(engine.recut(&mut unit, secs(t0, 60)).is_none());
    assert!(engine.policy().rfm_cuts().is_empty());
    let ind = engine.customer("c0").unwrap().indicators(engine.policy());
    assert_eq!(ind.rfm_score, None);
}

#[test]
fn a_dry_run_of_an_rfm_policy_scores_the_population_its_way() {
    let t0 = secs(date(2026, 3, 2), 7200);
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), [], t0);
    let events: Vec<Event> = (0..10)
        .flat_map(|i| buys(&format!("c{i}"), t0, i + 1, i == 9))
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
    assert_eq!((to("A"), to("B"), to("C")), (1, 5, 4), "{:?}", dry.matrix);
}

const FREQUENT: &str = r#"
version = "rfm-engine-2"
currency = "CNY"
window_months = 12

[hysteresis]
min_days_in_tier = 0

[method]
kind = "rules"

[[method.rules]]
tier = "A"
all = [{ indicator = "rfm_frequency", op = ">=", value = 5 }]

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
"#;

#[test]
fn time_moves_a_figure_and_the_next_recut_follows() {
    const DAY: i64 = 86_400;
    let t0 = secs(date(2026, 3, 2), 7200);
    let policy = Arc::new(Policy::from_toml_str(FREQUENT).unwrap());
    let mut engine = Engine::new(policy, [], t0);
    // c0: three orders, two of them about to leave the 12-month window;
    // c1..c4: one order each.
    let mut events = vec![
        order("c0", 1, secs(t0, -355 * DAY), UNIT),
        order("c0", 2, secs(t0, -354 * DAY), UNIT),
        order("c0", 3, t0, UNIT),
    ];
    events.extend((1..5).map(|i| order(&format!("c{i}"), 1, t0, UNIT)));
    fold(&mut engine, &events);
    // Frequency fifths of five: c0 (3 orders) alone in the first; one
    // order reaches the second: c0 scores 5 (A), the others 4.
    let unit = recut(&mut engine, secs(t0, 10));
    assert_eq!(engine.policy().rfm_cuts().frequency, [3.0, 1.0, 1.0, 1.0]);
    let moved: Vec<(&str, &str)> = unit
        .changes
        .iter()
        .map(|c| (c.customer_id.as_str(), c.new_tier.as_str()))
        .collect();
    assert_eq!(moved, [("c0", "A")]);

    // Time alone: c0's two old orders leave the window, its one order
    // left scores 4 against the frozen cut points (cause TIME).
    let later = secs(t0, 30 * DAY);
    let mut unit = Unit::new();
    engine.sweep(&mut unit, later, 1000);
    engine.seal(&unit);
    let c0: Vec<(&str, Cause)> = unit
        .changes
        .iter()
        .filter(|c| c.customer_id == "c0")
        .map(|c| (c.new_tier.as_str(), c.cause))
        .collect();
    assert_eq!(c0, [("B", Cause::Time)]);
    // The swept figure moved the ranking: at the next recut everyone has
    // one order, all tie in the first fifth and score 5: everyone A.
    let unit = recut(&mut engine, secs(later, 10));
    assert_eq!(engine.policy().rfm_cuts().frequency, [1.0, 1.0, 1.0, 1.0]);
    assert_eq!(unit.touched().len(), 5);
    assert_eq!(unit.changes.len(), 5, "{:?}", unit.changes);
    assert!(
        unit.changes
            .iter()
            .all(|c| c.new_tier == "A" && c.cause == Cause::Rank)
    );
}

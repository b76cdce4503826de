//! Customers held encoded ("cold") beyond the engine's hot limits (of
//! customers, of bytes decoded): an engine that keeps almost every
//! customer encoded must decide exactly
//! what one holding every customer decoded decides, through events,
//! sweeps, overrides, a policy rescore and a restart, and must still hand
//! every touched customer to the commit.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_core::overrides::OverrideMode;
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_core::sim::Workload;
use tier_core::sim::scenario::stricter_bands;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_engine::{Batch, DEFAULT_HOT_CUSTOMERS, Engine, HotLimits, SealInfo, SetOverride, Unit};
use tier_store::Scope;

/// Customers the cold engine holds decoded under a count limit.
const LIMIT: usize = 3;

/// Heap bytes the cold engine's decoded customers may take under a byte
/// limit: a few light customers, less than one busy one.
const BYTES: usize = 8 << 10;

/// How the cold engine is held back.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Customers,
    Bytes,
}

impl Limit {
    /// The cold engine's limits: this one, the other at its default.
    fn hot_limits(self) -> HotLimits {
        match self {
            Limit::Customers => HotLimits::from(LIMIT),
            Limit::Bytes => HotLimits {
                customers: DEFAULT_HOT_CUSTOMERS,
                bytes: BYTES,
            },
        }
    }

    fn set(self, engine: &mut Engine) {
        let HotLimits { customers, bytes } = self.hot_limits();
        engine.set_hot_limit(customers);
        engine.set_hot_bytes_limit(bytes);
    }
}

/// The two engines side by side: `warm` holds everyone decoded.
struct Pair {
    warm: Engine,
    cold: Engine,
    limit: Limit,
}

impl Pair {
    fn new(now: Timestamp, limit: Limit) -> Self {
        let policy = Arc::new(Policy::default_policy());
        let warm = Engine::new(policy.clone(), Vec::new(), now);
        let mut cold = Engine::new(policy, Vec::new(), now);
        limit.set(&mut cold);
        Self { warm, cold, limit }
    }

    /// Run `step` on both, seal, and require the same unit from each. The
    /// cold engine seals for a commit: each touched customer keeps the
    /// value its commit stores, and cooling it unchanged keeps that value's
    /// body (a debug build checks it against a fresh encoding).
    fn step(&mut self, what: &str, step: impl Fn(&mut Engine, &mut Unit)) -> Unit {
        let mut a = Unit::new();
        let mut batch = Batch::new();
        step(&mut self.warm, &mut a);
        step(&mut self.cold, &mut batch.unit);
        self.warm.recheck_notices(&mut a);
        self.warm.seal(&a);
        let b = self
            .cold
            .seal_batch(batch, Vec::new(), SealInfo::default())
            .into_unit();
        assert_eq!(a.changes, b.changes, "{what}: changes");
        assert_eq!(a.at_risk, b.at_risk, "{what}: at-risk notices");
        assert_eq!(a.overdue, b.overdue, "{what}: overdue notices");
        assert_eq!(a.touched(), b.touched(), "{what}: touched");
        // Every touched customer reaches the commit, decoded.
        let committed = self.cold.unit_customers(&b);
        assert_eq!(committed.len(), b.touched().len(), "{what}: committed");
        let warm = self.warm.unit_customers(&a);
        for ((_, id, x), (_, _, y)) in committed.iter().zip(&warm) {
            assert_eq!(stored(x), stored(y), "{what}: {id} as committed");
        }
        // Beyond the limit, only this unit's customers stay decoded: each
        // seal cools the least recently used back to the limit.
        let (hot, bytes) = (self.cold.hot_customers(), self.cold.hot_bytes());
        match self.limit {
            Limit::Customers => {
                let bound = LIMIT.max(b.touched().len());
                assert!(hot <= bound, "{what}: {hot} hot, bound {bound}");
            }
            Limit::Bytes => assert!(
                bytes <= BYTES || hot <= b.touched().len(),
                "{what}: {hot} hot taking {bytes} B, {} touched",
                b.touched().len()
            ),
        }
        b
    }

    fn same_states(&self, what: &str) {
        assert_eq!(self.warm.len(), self.cold.len(), "{what}");
        for (id, state) in self.warm.customers() {
            let held = self.cold.customer(id).unwrap();
            assert_eq!(stored(&held), stored(&state), "{what}: {id}");
        }
        let far = date(2030, 1, 1);
        assert_eq!(self.warm.due_count(far), self.cold.due_count(far), "{what}");
        assert_eq!(self.warm.next_due(), self.cold.next_due(), "{what}");
        assert_eq!(
            self.warm.at_risk_count(),
            self.cold.at_risk_count(),
            "{what}"
        );
        assert_eq!(
            self.warm.overdue_by_tier(),
            self.cold.overdue_by_tier(),
            "{what}"
        );
    }
}

/// What the store keeps of a state: the state after a round trip through
/// the stored form, which leaves out the engine's caches. (The reasons'
/// baseline, also left out, is compared through the changes' reasons.)
fn stored(state: &CustomerState) -> CustomerState {
    postcard::from_bytes(&postcard::to_allocvec(state).unwrap()).unwrap()
}

fn states(engine: &Engine) -> Vec<(Scope, String, CustomerState)> {
    engine
        .customers()
        .map(|(id, s)| (engine.scope_of(id), id.to_owned(), s.into_owned()))
        .collect()
}

#[test]
fn customers_held_encoded_decide_exactly_as_customers_held_decoded() {
    held_back(Limit::Customers);
}

/// The same under a limit of bytes decoded: the busiest customers, whose
/// decoded states are the largest, are encoded as the light ones are.
#[test]
fn customers_held_encoded_by_bytes_decide_exactly_as_customers_held_decoded() {
    held_back(Limit::Bytes);
}

fn held_back(limit: Limit) {
    let end = date(2026, 6, 30);
    let events: Vec<Event> = Workload::new(60, 1_500, end).generate();
    let start = events[0].occurred_at;
    let mut pair = Pair::new(start, limit);
    let stricter = Arc::new(
        Policy::from_toml_str(&stricter_bands(DEFAULT_POLICY_TOML, "strict-2027.01", 8.0)).unwrap(),
    );
    let apply_on = end.plus_days(-60);
    let restart_on = end.plus_days(30);

    // The first part of the history in one unit, then day by day.
    let mut day = end.plus_days(-120).max(start);
    let mut i = events.iter().take_while(|e| e.occurred_at < day).count();
    let early = &events[..i];
    pair.step("history", |engine, unit| {
        for e in early {
            engine.fold_from(unit, e, None, partition(&e.customer_id));
        }
    });
    let mut applied = false;
    let mut restarted = false;
    while day <= end.plus_days(150) {
        let next = day.plus_days(1);
        let today: Vec<Event> = events[i..]
            .iter()
            .take_while(|e| e.occurred_at < next)
            .cloned()
            .collect();
        i += today.len();
        // Records on three input partitions, by customer.
        pair.step("events", |engine, unit| {
            for e in &today {
                engine.fold_from(unit, e, None, partition(&e.customer_id));
            }
        });
        pair.step(
            "sweep",
            |engine, unit| {
                while engine.sweep(unit, next, 7) > 0 {}
            },
        );
        if !applied && day >= apply_on {
            applied = true;
            let stricter = stricter.clone();
            pair.step("apply", move |engine, _| {
                engine.apply_policy(stricter.clone(), next);
            });
        }
        if applied {
            pair.step("rescore", |engine, unit| {
                engine.rescore(unit, 11);
            });
        }
        if day.millis() % 17 == 0 || today.len() > 4 {
            // A manager pins whoever ordered first today.
            if let Some(e) = today.first() {
                let id = e.customer_id.clone();
                pair.step("override", move |engine, unit| {
                    engine
                        .set_override(
                            unit,
                            SetOverride {
                                customer_id: id.clone(),
                                tier: "B".into(),
                                mode: OverrideMode::Floor,
                                reason: "key account".into(),
                                author: "li.wei".into(),
                                expires_at: Some(next.plus_days(20)),
                            },
                            next,
                        )
                        .unwrap();
                });
            }
        }
        if !restarted && day >= restart_on {
            restarted = true;
            pair.same_states("before the restart");
            let policy = pair.warm.policy().clone();
            pair.warm = Engine::with_scopes(
                policy.clone(),
                states(&pair.warm),
                next,
                DEFAULT_HOT_CUSTOMERS,
            );
            // Loaded under its limits, as tierd loads under
            // `--hot-customers` and `--hot-mib`.
            pair.cold = Engine::with_scopes(policy, states(&pair.cold), next, limit.hot_limits());
            match limit {
                Limit::Customers => {
                    assert!(pair.cold.hot_customers() <= LIMIT, "loading stays cold");
                }
                Limit::Bytes => {
                    // The busiest customers stay encoded.
                    assert!(
                        pair.cold.hot_bytes() <= BYTES,
                        "loading stays cold: {} B decoded",
                        pair.cold.hot_bytes()
                    );
                    assert!(pair.cold.hot_customers() < pair.cold.len());
                }
            }
            pair.same_states("after the restart");
        }
        day = next;
    }
    assert!(applied && restarted);
    pair.same_states("at the end");
    assert!(pair.warm.len() > 50, "{} customers", pair.warm.len());
    assert_eq!(pair.warm.hot_customers(), pair.warm.len());
    assert!(pair.cold.hot_customers() < pair.cold.len() / 4);
    if let Limit::Bytes = limit {
        assert!(
            pair.cold.hot_bytes() <= BYTES,
            "{} B",
            pair.cold.hot_bytes()
        );
        assert!(
            pair.warm.hot_bytes() > 4 * BYTES,
            "{} B",
            pair.warm.hot_bytes()
        );
    }
}

/// Records on three input partitions, by customer.
fn partition(id: &str) -> i32 {
    id.bytes().last().map_or(0, |b| i32::from(b % 3))
}

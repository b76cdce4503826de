//! The stored tier history: what a customer's tier was on a past date
//! (disputes about priority need it) must equal what the published tier
//! changes said, for events and for time-driven decisions alike.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tier_core::policy::Policy;
use tier_core::sim::Workload;
use tier_core::state::{TierAsOf, TierChange};
use tier_core::time::date;
use tier_engine::{Engine, Unit};

#[test]
fn the_tier_as_of_any_instant_is_what_the_published_changes_said() {
    let policy = Arc::new(Policy::default_policy());
    let end = date(2026, 6, 30);
    let events = Workload::new(200, 3_000, end).generate();
    let mut engine = Engine::new(policy, Vec::new(), date(2025, 1, 1));
    let mut published: BTreeMap<String, Vec<TierChange>> = BTreeMap::new();
    // Events day by day, each day swept like the service does once caught
    // up, then 400 more days of time alone (customers lapse and drop).
    let mut day = events[0].occurred_at;
    let mut i = 0;
    while day <= end.plus_days(400) {
        let next = day.plus_days(1);
        let mut unit = Unit::new();
        while i < events.len() && events[i].occurred_at < next {
            engine.fold(&mut unit, &events[i]);
            i += 1;
        }
        while engine.sweep(&mut unit, next, 1_000) > 0 {}
        engine.seal(&unit);
        for c in unit.changes {
            published.entry(c.customer_id.clone()).or_default().push(c);
        }
        day = next;
    }
    let total: usize = published.values().map(Vec::len).sum();
    assert!(total > 200, "{total} changes");

    let mut checked = 0;
    for (id, changes) in &published {
        let state = engine.customer(id).unwrap();
        let history = state.tier_history();
        assert_eq!(history.len(), changes.len(), "{id}");
        for (step, c) in history.iter().zip(changes) {
            assert_eq!(
                (
                    step.at,
                    step.from.as_deref(),
                    step.to.as_str(),
                    step.cause,
                    step.sequence
                ),
                (
                    c.changed_at,
                    c.old_tier.as_deref(),
                    c.new_tier.as_str(),
                    c.cause,
                    c.sequence
                ),
                "{id}"
            );
        }
        // Before the first change, at each change, just before the next,
        // and between: the last change at or before the instant.
        let mut probes = vec![changes[0].changed_at.plus_days(-1)];
        for w in changes.windows(2) {
            probes.push(w[0].changed_at);
            probes.push(tier_core::Timestamp::from_millis(
                w[1].changed_at.millis() - 1,
            ));
        }
        probes.push(changes[changes.len() - 1].changed_at.plus_days(30));
        for t in probes {
            let expected = changes
                .iter()
                .rev()
                .find(|c| c.changed_at <= t)
                .map(|c| c.new_tier.clone());
            assert_eq!(
                state.tier_as_of(t),
                TierAsOf::Known(expected),
                "{id} at {t}"
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}

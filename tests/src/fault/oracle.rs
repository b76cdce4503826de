//! The expected outcome of a workload: tier-core's own fold, run once, in
//! publish order, without Kafka, sled or crashes.

use std::collections::BTreeMap;

use tier_core::projection::Applied;
use tier_core::state::CustomerState;

use super::workload::{Truth, Workload};

/// One tier change as consumers see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Transition {
    pub sequence: u64,
    /// `None` for the first tier.
    pub old_tier: Option<String>,
    pub new_tier: String,
    pub causing_event_id: Option<String>,
}

impl From<tier_core::state::TierChange> for Transition {
    /// The change as the oracle decided it.
    fn from(c: tier_core::state::TierChange) -> Self {
        Self {
            sequence: c.sequence,
            old_tier: c.old_tier,
            new_tier: c.new_tier,
            causing_event_id: c.causing_event_id,
        }
    }
}

impl From<tier_proto::api::TierChanged> for Transition {
    /// The change as a `TierChanged` record published it (empty strings
    /// stand for none).
    fn from(msg: tier_proto::api::TierChanged) -> Self {
        Self {
            sequence: msg.sequence,
            old_tier: Some(msg.old_tier).filter(|s| !s.is_empty()),
            new_tier: msg.new_tier,
            causing_event_id: Some(msg.causing_event_id).filter(|s| !s.is_empty()),
        }
    }
}

/// Expected final states and tier changes.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    /// Customers with at least one applied event (the only ones tierd stores).
    pub states: BTreeMap<String, CustomerState>,
    /// Every tier change, per customer, in sequence order.
    pub transitions: BTreeMap<String, Vec<Transition>>,
    pub applied: u64,
    pub duplicates: u64,
    pub stale: u64,
    pub rejected: u64,
}

impl Oracle {
    /// Fold every valid record of `w`, in publish order, with the policy
    /// of its spec (decisions on each customer's event-time clock).
    pub fn fold(w: &Workload) -> Self {
        let policy = w.spec.policy();
        let mut o = Oracle::default();
        let mut states: BTreeMap<String, CustomerState> = BTreeMap::new();
        for r in &w.records {
            let event = match &r.truth {
                Truth::Valid(e) => e,
                Truth::Malformed(_) => {
                    o.rejected += 1;
                    continue;
                }
            };
            let state = states.entry(event.customer_id.clone()).or_default();
            let processed = state.process(&event.customer_id, event, &policy);
            match processed.applied {
                Applied::Applied => o.applied += 1,
                Applied::Duplicate => o.duplicates += 1,
                Applied::Stale => o.stale += 1,
            }
            for c in processed.due_first.into_iter().chain(processed.change) {
                o.transitions
                    .entry(event.customer_id.clone())
                    .or_default()
                    .push(Transition::from(c));
            }
        }
        o.states = states
            .into_iter()
            .filter(|(_, s)| s.assignment.is_some())
            .collect();
        o
    }

    pub fn transition_count(&self) -> usize {
        self.transitions.values().map(Vec::len).sum()
    }
}

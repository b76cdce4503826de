//! Scopes: which input partition each customer belongs to, and what the
//! engine holds when partitions are assigned and revoked.
//!
//! Input topics are co-partitioned by customer id, so all of a customer's
//! records arrive on one partition number: its *scope*. The store keeps
//! each customer under its scope (`tier_store::Scope`), so one partition's
//! customers are one key range that can be loaded or handed over whole.
//!
//! - A record sets its customer's scope ([`Engine::fold_from`]). Should a
//!   customer's records move to another partition (topics repartitioned,
//!   a customer first known from a command, a data dir upgraded from the
//!   unscoped layout), the unit deletes the key under the old scope and
//!   writes the state under the new one, in the same atomic commit.
//! - Each scope is a task of the engine (the `task` module): its
//!   customers' states and due index.
//! - A rebalance arrives as [`Engine::assign`] with the partitions this
//!   instance now owns. The tasks of partitions it no longer owns are
//!   dropped (their committed state stays in the store, under their
//!   scope); those of partitions assigned again are loaded back from the
//!   store by the adapter, once every unit before is durable
//!   ([`Engine::admit`]). Tasks of partitions that stay assigned are kept,
//!   so an eager rebalance that revokes and reassigns the same partitions
//!   costs nothing. The unscoped task (customers known only from commands)
//!   stays with every instance.

use std::collections::BTreeSet;

use tier_core::projection::Applied;
use tier_core::state::CustomerState;
use tier_core::{Event, Timestamp};
use tier_store::Scope;
use tier_wire::trace::TraceParent;

use crate::dense::NO_HINT;
use crate::{Engine, Found, Rescore, Unit, open_overdue_tiers};

/// What an assignment changed in memory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// Customers dropped from memory (their partition went elsewhere).
    pub evicted: usize,
    /// Scopes assigned again after they were dropped: the adapter loads
    /// their customers from the store with [`Engine::admit`], after every
    /// unit sealed before is durable.
    pub to_load: Vec<Scope>,
}

impl Engine {
    /// The scope `id` is stored under ([`Scope::UNSCOPED`] for a customer
    /// not in memory).
    pub fn scope_of(&self, id: &str) -> Scope {
        self.scopes.get(id).copied().unwrap_or(Scope::UNSCOPED)
    }

    /// [`Engine::fold_traced`] for a record of input partition
    /// `partition`: the customer is scoped to it (and moved there, if it was
    /// stored under another scope).
    pub fn fold_from(
        &mut self,
        unit: &mut Unit,
        event: &Event,
        trace: Option<TraceParent>,
        partition: i32,
    ) -> Applied {
        let Some(scope) = Scope::partition(partition) else {
            return self.fold_traced(unit, event, trace);
        };
        let id = &event.customer_id;
        // The common case, a customer already in this partition's task,
        // costs one lookup, in that task: the fold takes the position found.
        if let Some(at) = self.tasks.get(&scope).and_then(|t| t.position(id)) {
            // A customer in a task is in the scope map under that task's
            // scope (the old lookup order read the scope map first).
            debug_assert_eq!(self.scopes.get(id.as_str()), Some(&scope), "{id}");
            return self.fold_in(unit, event, trace, scope, Found::At(at));
        }
        // New, held under another scope, or (not expected: see above) in
        // the scope map under this one but not in its task.
        let old = match self.scopes.get(id.as_str()) {
            Some(old) if *old != scope => *old,
            Some(_) => return self.fold_in(unit, event, trace, scope, Found::Unknown),
            None => return self.fold_in(unit, event, trace, scope, Found::Nowhere),
        };
        self.move_to(id, old, scope);
        let applied = self.fold_in(unit, event, trace, scope, Found::Unknown);
        if self.scopes.contains_key(id.as_str()) {
            // Stored (or about to be) under the old scope: delete that key
            // and write the state under the new one, together.
            unit.moved.push((old, id.clone()));
            unit.touch(id);
        }
        applied
    }

    /// Move `id` from task `from` to task `to`.
    fn move_to(&mut self, id: &str, from: Scope, to: Scope) {
        let Some(state) = self.tasks.get_mut(&from).and_then(|t| t.remove(id)) else {
            return;
        };
        self.tasks
            .entry(to)
            .or_default()
            .insert(id, state, self.epoch);
        self.scopes.insert(id.into(), to);
        self.reindex(id);
    }

    /// This instance now owns the input partitions `partitions` (a
    /// rebalance). The tasks of other partitions are dropped (their
    /// customers listed in `unit.evicted` for the read side); scopes
    /// dropped before and owned again are returned for the adapter to load.
    pub fn assign(&mut self, unit: &mut Unit, partitions: &BTreeSet<i32>) -> Assigned {
        let owned: BTreeSet<Scope> = partitions
            .iter()
            .filter_map(|p| Scope::partition(*p))
            .collect();
        let dropped: Vec<Scope> = self
            .tasks
            .keys()
            .filter(|scope| **scope != Scope::UNSCOPED && !owned.contains(scope))
            .copied()
            .collect();
        let mut evicted = 0;
        for scope in dropped {
            let Some(task) = self.tasks.remove(&scope) else {
                continue;
            };
            for (id, state) in task.into_states() {
                self.forget(&id, &state);
                unit.evicted.push(id.into_string());
                evicted += 1;
            }
        }
        let to_load = match &self.owned {
            // Everything stored was loaded at start: nothing to load.
            None => Vec::new(),
            Some(before) => owned.difference(before).copied().collect(),
        };
        self.owned = Some(owned);
        Assigned { evicted, to_load }
    }

    /// Take `id`, whose task was dropped, out of the engine's
    /// population-wide figures and its scope map.
    fn forget(&mut self, id: &str, state: &CustomerState) {
        for tier in open_overdue_tiers(state) {
            *self.overdue_open.entry(tier).or_insert(0) -= 1;
        }
        if let Some(ranking) = &mut self.ranking
            && ranking.remove(id).is_some()
        {
            self.ranking_moved = true;
        }
        if let Some(rfm) = &mut self.rfm {
            rfm.remove(id);
            self.rfm_moved = true;
        }
        self.scopes.remove(id);
    }

    /// Take a customer loaded from the store under `scope` back into
    /// memory (its partition was assigned again), at processing instant
    /// `now`. A customer decided under another policy version is queued
    /// for the rescore. Returns false, changing nothing, for a customer
    /// already in memory.
    pub fn admit(
        &mut self,
        id: String,
        mut state: CustomerState,
        scope: Scope,
        now: Timestamp,
    ) -> bool {
        if self.scopes.contains_key(id.as_str()) {
            return false;
        }
        for tier in open_overdue_tiers(&state) {
            *self.overdue_open.entry(tier).or_insert(0) += 1;
        }
        // Confirmed when its scope was covered by the policy's rescore
        // (see the `confirmed` module).
        let stale = !self.confirmed.apply(scope, &mut state);
        self.tasks
            .entry(scope)
            .or_default()
            .insert(id.as_str(), state, self.epoch);
        self.scopes.insert(id.as_str().into(), scope);
        self.reindex(&id);
        if self.ranking.is_some() {
            self.rerank(&id);
        }
        if self.rfm.is_some() {
            self.rerank_rfm(&id);
        }
        if stale {
            // Found by its id (no position known).
            let queued = crate::Queued {
                scope,
                id: id.into(),
                position: NO_HINT,
            };
            match &mut self.rescore {
                Some(r) => {
                    r.queue.push(queued);
                    r.total += 1;
                    r.queued_in = self.epoch;
                }
                None => {
                    let queue = vec![queued];
                    self.rescore =
                        Some(Rescore::new(self.policy.version(), now, queue, self.epoch));
                    self.applied_at = Some(now);
                }
            }
        }
        true
    }
}

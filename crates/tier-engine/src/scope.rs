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
//! - A rebalance arrives as [`Engine::assign`] with the partitions this
//!   instance now owns. Customers of partitions it no longer owns are
//!   dropped from memory (their committed state stays in the store, under
//!   their scope); those of partitions assigned again are loaded back from
//!   the store by the adapter, once every unit before is durable
//!   ([`Engine::admit`]). Partitions that stay assigned keep their
//!   customers in memory, so an eager rebalance that revokes and reassigns
//!   the same partitions costs nothing. Unscoped customers (known only from
//!   commands) stay with every instance.

use std::collections::BTreeSet;

use tier_core::projection::Applied;
use tier_core::state::CustomerState;
use tier_core::{Event, Timestamp};
use tier_store::Scope;
use tier_wire::trace::TraceParent;

use crate::{Engine, Rescore, Unit, open_overdue_tiers};

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
    /// The scope `id` is stored under.
    pub fn scope_of(&self, id: &str) -> Scope {
        self.scopes.get(id).copied().unwrap_or(Scope::UNSCOPED)
    }

    /// Set the scopes of customers loaded from the store (after
    /// [`Engine::new`]).
    pub fn set_scopes(&mut self, scopes: impl IntoIterator<Item = (String, Scope)>) {
        for (id, scope) in scopes {
            if scope != Scope::UNSCOPED && self.states.contains_key(&id) {
                self.scopes.insert(id, scope);
            }
        }
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
        // The common case, a customer already scoped to this partition,
        // costs one lookup.
        let old = self.scope_of(id);
        if old == scope {
            return self.fold_traced(unit, event, trace);
        }
        let existed = self.states.contains_key(id);
        let applied = self.fold_traced(unit, event, trace);
        if !self.states.contains_key(id) {
            return applied;
        }
        if existed {
            // Stored (or about to be) under the old scope: delete that key
            // and write the state under the new one, together.
            unit.moved.push((old, id.clone()));
            unit.touch(id);
        }
        self.scopes.insert(id.clone(), scope);
        applied
    }

    /// This instance now owns the input partitions `partitions` (a
    /// rebalance). Customers of other partitions are dropped from memory
    /// (listed in `unit.evicted` for the read side); scopes dropped before
    /// and owned again are returned for the adapter to load.
    pub fn assign(&mut self, unit: &mut Unit, partitions: &BTreeSet<i32>) -> Assigned {
        let owned: BTreeSet<Scope> = partitions
            .iter()
            .filter_map(|p| Scope::partition(*p))
            .collect();
        let gone: Vec<String> = self
            .scopes
            .iter()
            .filter(|(_, scope)| !owned.contains(scope))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.evict(id);
        }
        let to_load = match &self.owned {
            // Everything stored was loaded at start: nothing to load.
            None => Vec::new(),
            Some(before) => owned.difference(before).copied().collect(),
        };
        self.owned = Some(owned);
        let evicted = gone.len();
        unit.evicted.extend(gone);
        Assigned { evicted, to_load }
    }

    /// Drop `id` from memory and from every index (its stored state is
    /// untouched).
    fn evict(&mut self, id: &str) {
        if let Some(state) = self.states.remove(id) {
            for tier in open_overdue_tiers(&state) {
                *self.overdue_open.entry(tier).or_insert(0) -= 1;
            }
        }
        if let Some(at) = self.due_of.remove(id) {
            self.due.remove(&(at, id.to_owned()));
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
        state: CustomerState,
        scope: Scope,
        now: Timestamp,
    ) -> bool {
        if self.states.contains_key(&id) {
            return false;
        }
        for tier in open_overdue_tiers(&state) {
            *self.overdue_open.entry(tier).or_insert(0) += 1;
        }
        let stale = state.policy_version != self.policy.version();
        self.states.insert(id.clone(), state);
        if scope != Scope::UNSCOPED {
            self.scopes.insert(id.clone(), scope);
        }
        self.reindex(&id);
        if self.ranking.is_some() {
            self.rerank(&id);
        }
        if self.rfm.is_some() {
            self.rerank_rfm(&id);
        }
        if stale {
            match &mut self.rescore {
                Some(r) => {
                    r.queue.push(id);
                    r.total += 1;
                }
                None => {
                    self.rescore = Some(Rescore {
                        at: now,
                        total: 1,
                        queue: vec![id],
                        done: 0,
                        changed: 0,
                    });
                    self.applied_at = Some(now);
                }
            }
        }
        true
    }
}

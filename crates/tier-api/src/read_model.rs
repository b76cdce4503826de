//! The read model: the latest committed view of every customer, in memory.
//!
//! The ingest pipeline publishes a [`CustomerView`] per touched customer
//! after each durable batch commit (and fills the model in bulk at
//! start-up); the API only reads. Views are immutable and shared as
//! `Arc`s, so a reader never blocks a writer for longer than a map lookup.
//!
//! A view never replaces one with a higher `sequence` (the customer's
//! gap-free tier-change counter, persisted with its state): a late publish
//! of an older commit cannot roll a tier back. Equal sequences replace, so
//! score-only updates and same-batch duplicates take the latest.
//!
//! The map is split into [`SHARDS`] shards, each behind its own
//! `RwLock`, picked by a hash of the customer id. A poisoned lock (a
//! panic while holding it) is recovered, never propagated: every write is
//! a single `insert`, so a shard cannot be left half-updated.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tier_core::overrides::{Override, OverrideEntry};
use tier_core::state::{AtRisk, Lifecycle};
use tier_core::{Indicators, Timestamp};

/// Number of shards. A power of two, so a shard is a mask away.
pub const SHARDS: usize = 64;

/// What the API knows about one customer, as of the last committed batch
/// that touched it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerView {
    /// The tier held (an override's tier when `overridden`).
    pub tier: String,
    /// The score at `scored_at`.
    pub score: f64,
    /// When the customer entered `tier`.
    pub since: Timestamp,
    /// Sequence number of the customer's last tier change.
    pub sequence: u64,
    /// The indicators the score was computed from.
    pub indicators: Indicators,
    /// The decision instant `indicators` and `score` are as of (the
    /// customer's event-time clock, see tier-core's `state` module).
    pub scored_at: Timestamp,
    /// Version of the policy that made the decision.
    pub policy_version: String,
    /// Whether `tier` was set by a manager rather than computed.
    pub overridden: bool,
    /// Lifecycle, the computed tier, overrides and at-risk notice.
    pub relation: Relation,
}

/// What a view says beyond the tier and its figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Relation {
    /// The tier the figures give (empty: same as the view's tier).
    pub computed_tier: String,
    /// The lifecycle stage at the decision instant (`None` before the
    /// first order was scored).
    pub lifecycle: Option<Lifecycle>,
    /// The override in force.
    pub manual: Option<Override>,
    /// Every override set, cleared or expired, oldest first.
    pub override_history: Arc<[OverrideEntry]>,
    /// A foreseeable time-driven downgrade, announced.
    pub at_risk: Option<AtRisk>,
}

type Shard = RwLock<HashMap<String, Arc<CustomerView>>>;

/// Sharded, concurrently readable map from customer id to its latest view.
pub struct ReadModel {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("shards", &self.shards.len())
            .field("customers", &self.len())
            .finish()
    }
}

/// Put `view` in `shard` unless the held view is newer.
fn put(shard: &mut HashMap<String, Arc<CustomerView>>, customer_id: &str, view: Arc<CustomerView>) {
    match shard.get_mut(customer_id) {
        Some(held) if held.sequence > view.sequence => {
            tracing::debug!(
                customer_id,
                held = held.sequence,
                offered = view.sequence,
                "ignoring a stale customer view"
            );
        }
        Some(held) => *held = view,
        None => {
            shard.insert(customer_id.to_owned(), view);
        }
    }
}

impl Default for ReadModel {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a: cheap, stable, good enough to spread ids over 64 shards.
fn shard_of(customer_id: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in customer_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high bits in: FNV's low bits alone mix poorly.
    ((h ^ (h >> 32)) as usize) & (SHARDS - 1)
}

impl ReadModel {
    /// An empty model.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, HashMap<String, Arc<CustomerView>>> {
        self.shards[shard]
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, HashMap<String, Arc<CustomerView>>> {
        self.shards[shard]
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every view, in no particular order (a snapshot per shard).
    pub fn all(&self) -> Vec<(String, Arc<CustomerView>)> {
        let mut out = Vec::with_capacity(self.len());
        for i in 0..SHARDS {
            out.extend(self.read(i).iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Insert or replace one customer's view (unless the held one has a
    /// higher `sequence`).
    pub fn upsert(&self, customer_id: &str, view: CustomerView) {
        let view = Arc::new(view);
        put(&mut self.write(shard_of(customer_id)), customer_id, view);
    }

    /// Insert or replace many views (same rule as [`Self::upsert`]; for
    /// one id, later items win over earlier ones of the same sequence):
    /// grouped by shard, one write lock per
    /// touched shard. For a batch commit and for the start-up fill.
    pub fn upsert_many<'a>(&self, views: impl IntoIterator<Item = (&'a str, CustomerView)>) {
        let mut grouped: Vec<Vec<(&'a str, Arc<CustomerView>)>> =
            (0..SHARDS).map(|_| Vec::new()).collect();
        for (id, view) in views {
            grouped[shard_of(id)].push((id, Arc::new(view)));
        }
        for (idx, group) in grouped.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let mut shard = self.write(idx);
            shard.reserve(group.len());
            for (id, view) in group {
                put(&mut shard, id, view);
            }
        }
    }

    /// The latest view of a customer, if any event of it was processed.
    pub fn get(&self, customer_id: &str) -> Option<Arc<CustomerView>> {
        self.read(shard_of(customer_id)).get(customer_id).cloned()
    }

    /// Number of customers with a view.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).len()).sum()
    }

    /// Whether no customer has a view yet.
    pub fn is_empty(&self) -> bool {
        (0..SHARDS).all(|i| self.read(i).is_empty())
    }

    /// Customers per held tier, for the customers-per-tier gauge. Each
    /// shard is counted under its own read lock, so the total is a
    /// near-instant rather than an atomic snapshot.
    pub fn count_by_tier(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..SHARDS {
            let shard = self.read(i);
            for view in shard.values() {
                match counts.get_mut(view.tier.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(view.tier.clone(), 1);
                    }
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(tier: &str, score: f64) -> CustomerView {
        CustomerView {
            tier: tier.to_owned(),
            score,
            since: Timestamp::from_millis(1),
            sequence: 1,
            indicators: Indicators::default(),
            scored_at: Timestamp::from_millis(2),
            policy_version: "v".into(),
            overridden: false,
            relation: Relation::default(),
        }
    }

    #[test]
    fn upsert_get_replace_and_count() {
        let rm = ReadModel::new();
        assert!(rm.is_empty());
        assert_eq!(rm.get("c-1"), None);
        rm.upsert("c-1", view("gold", 90.0));
        rm.upsert("c-2", view("silver", 60.0));
        rm.upsert("c-1", view("silver", 70.0));
        assert_eq!(rm.len(), 2);
        assert_eq!(rm.get("c-1").map(|v| v.score), Some(70.0));
        let counts = rm.count_by_tier();
        assert_eq!(counts.get("silver"), Some(&2));
        assert_eq!(counts.get("gold"), None);
    }

    #[test]
    fn an_older_sequence_never_replaces_a_newer_one() {
        let rm = ReadModel::new();
        let newer = CustomerView {
            sequence: 3,
            ..view("gold", 90.0)
        };
        let older = CustomerView {
            sequence: 2,
            ..view("silver", 60.0)
        };
        rm.upsert("c-1", newer.clone());
        rm.upsert("c-1", older.clone());
        assert_eq!(rm.get("c-1").as_deref(), Some(&newer));
        rm.upsert_many([("c-1", older)]);
        assert_eq!(rm.get("c-1").as_deref(), Some(&newer));
        let rescored = CustomerView {
            score: 95.0,
            ..newer
        };
        rm.upsert("c-1", rescored.clone());
        assert_eq!(rm.get("c-1").as_deref(), Some(&rescored));
    }

    #[test]
    fn upsert_many_spreads_over_shards_and_later_wins() {
        let rm = ReadModel::new();
        let ids: Vec<String> = (0..10_000).map(|i| format!("cust-{i}")).collect();
        rm.upsert_many(ids.iter().map(|id| (id.as_str(), view("bronze", 1.0))));
        rm.upsert_many([
            ("cust-7", view("gold", 1.0)),
            ("cust-7", view("silver", 2.0)),
        ]);
        assert_eq!(rm.len(), 10_000);
        assert_eq!(
            rm.get("cust-7").map(|v| v.tier.clone()),
            Some("silver".into())
        );
        let used = (0..SHARDS).filter(|&i| !rm.read(i).is_empty()).count();
        assert_eq!(used, SHARDS, "10k ids should touch every shard");
        let max = (0..SHARDS).map(|i| rm.read(i).len()).max().unwrap_or(0);
        assert!(max < 2 * 10_000 / SHARDS, "shards are badly skewed: {max}");
    }

    #[test]
    fn a_poisoned_shard_is_still_readable_and_writable() {
        let rm = Arc::new(ReadModel::new());
        rm.upsert("c-1", view("gold", 1.0));
        let shard = shard_of("c-1");
        let rm2 = Arc::clone(&rm);
        let _ = std::thread::spawn(move || {
            let _guard = rm2.write(shard);
            panic!("poison the shard");
        })
        .join();
        assert!(rm.shards[shard].is_poisoned());
        assert_eq!(rm.get("c-1").map(|v| v.score), Some(1.0));
        rm.upsert("c-1", view("gold", 2.0));
        assert_eq!(rm.get("c-1").map(|v| v.score), Some(2.0));
        assert_eq!(rm.count_by_tier().get("gold"), Some(&1));
    }
}

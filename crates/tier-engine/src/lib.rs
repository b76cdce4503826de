//! tierd's engine: the single writer of customer state.
//!
//! # What this crate owns
//! Everything that changes a customer, in one place and in memory, with
//! no Kafka, no gRPC, no store and no clock of its own:
//! - **records**: [`Engine::fold`] folds a decoded event into its
//!   customer (tier-core's `CustomerState::process`);
//! - **time**: a due index (every customer's next instant time alone can
//!   change it, see `CustomerState::next_due`, plus a daily at-risk check
//!   for customers above the lowest tier) and [`Engine::sweep`], which
//!   advances due customers in bounded slices, with cause `Time`, and
//!   announces foreseeable drops ([`AtRisk`]) once;
//! - **commands**: [`Engine::set_override`] / [`Engine::clear_override`];
//! - **partitions**: each input partition is a task (its customers'
//!   states and due index, the `task` module); a customer's scope is the
//!   partition its records arrive on ([`Engine::fold_from`]), and a
//!   rebalance drops or keeps tasks whole ([`Engine::assign`],
//!   [`Engine::admit`]); see the `scope` module. Tasks run in turn on the
//!   engine's one thread: the `abc` and RFM rankings a policy grades
//!   against are population-wide;
//! - **memory**: beyond [`Engine::set_hot_limit`] customers or
//!   [`Engine::set_hot_bytes_limit`] bytes decoded, the least recently
//!   used are held encoded and decoded when something changes them (the
//!   `task` module);
//! - **policy changes**: [`Engine::dry_run`] (changes nothing),
//!   [`Engine::apply_policy`] and [`Engine::rescore`] (a background
//!   rescore in slices, cause `Policy`, with [`PolicyStatus`] progress),
//!   which rewrites only the customers whose decision it moves (the
//!   `confirmed` module).
//!
//! Every change lands in a [`Unit`]: the customers it touched (each once),
//! the tier changes and at-risk notices to publish. The adapter commits a
//! unit atomically (state, offsets, outbox rows) and only then tells
//! readers, so no reader sees state a crash could take back.
//!
//! # Time
//! The engine never reads a clock. The adapter passes the instant a sweep
//! may go to (its *horizon*) and the instant of a command. Time-driven
//! decisions are made at their own due instants (business-day starts, an
//! override's exact expiry), so the result does not depend on when or how
//! often sweeps run (tier-core's `sweeps_do_not_change_decisions`).
//!
//! # Derived, not stored
//! The due index and the at-risk list are derived from the customer
//! states, which are what the store keeps: [`Engine::new`] rebuilds them
//! in one pass, so they can never disagree with the committed state, and
//! a restart sweeps at once whatever fell due while tierd was down.

pub mod batch;
pub mod command;
pub mod committer;
pub mod confirmed;
pub mod cuts;
mod dense;
pub mod metrics;
mod scope;
mod task;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, PoisonError};

use tier_core::IndicatorName;
use tier_core::overrides::{Override, OverrideError, OverrideMode};
use tier_core::policy::{Policy, Reason};
use tier_core::projection::{Applied, Fnv};
use tier_core::rank::{Ranking, RfmQuintiles, RfmRanking, RfmScore};
use tier_core::state::{AtRisk, Cause, ComplaintOverdue, CustomerState, TierChange};
use tier_core::{Event, EventKind, Timestamp};
use tier_store::Scope;
use tier_wire::trace::TraceParent;

use confirmed::Confirmed;
use dense::NO_HINT;
pub use task::CustomerId;
use task::{Confirmation, Held, IdTable, Slot, Task};

pub use batch::{Batch, CommitUnit, DeadLetter, SealInfo};
pub use command::{ActivePolicy, Command, CommandSender, PolicyHandle};
pub use committer::{
    CommitError, CommitHooks, CommitObserver, CommitReport, Committer, CommitterDeps,
    DeadLetterSink, Durable, SinkError,
};

/// Customers the engine holds decoded ("hot") by default; the least
/// recently used beyond it are held encoded. See [`Engine::set_hot_limit`].
pub const DEFAULT_HOT_CUSTOMERS: usize = 100_000;

/// Heap bytes the customers held decoded may take by default (128 MiB,
/// `CustomerState::heap_size`); the least recently used beyond it are
/// held encoded. A light customer takes one or two kilobytes decoded, the
/// busiest tens to hundreds: a count alone let the busiest 25,000 of a
/// million customers hold 413 MiB more than encoded. See
/// [`Engine::set_hot_bytes_limit`].
pub const DEFAULT_HOT_BYTES: usize = 128 << 20;

/// How many customers the engine holds decoded, and how many bytes they
/// may take ([`Engine::set_hot_limit`], [`Engine::set_hot_bytes_limit`]);
/// a count alone keeps [`DEFAULT_HOT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotLimits {
    pub customers: usize,
    pub bytes: usize,
}

impl From<usize> for HotLimits {
    fn from(customers: usize) -> Self {
        Self {
            customers,
            bytes: DEFAULT_HOT_BYTES,
        }
    }
}

/// Most time-driven decisions one sweep makes for one customer before it
/// moves on (the customer stays due and is taken up again).
pub const MAX_STEPS_PER_CUSTOMER: usize = 64;

/// What the caller of [`Engine::fold_in`] learned of where the event's
/// customer is held, so the fold does not look it up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// In the task, at this position of its table when looked at.
    At(usize),
    /// In no task: the scope map does not know it.
    Nowhere,
    /// Not looked for.
    Unknown,
}

/// Where a customer is held: its task (scope) and its position in the
/// task's table, as a hint (see [`Unit::places`]).
type Place = (Scope, usize);

/// What one batch of work changed; committed atomically by the adapter.
#[derive(Debug, Default)]
pub struct Unit {
    touched: Vec<CustomerId>,
    /// Where each customer of `touched` was held when an event's fold
    /// touched it: its task and its position in the task's table (`None`
    /// when something else touched it first). The seal looks there before
    /// it looks the customer up; a position is only ever a hint.
    places: Vec<Option<Place>>,
    /// Hashed with FNV, as the engine's customer tables: every record
    /// looks its customer up here.
    touched_set: HashSet<CustomerId, BuildHasherDefault<Fnv>>,
    /// Tier changes, in the order they were made (per customer: by
    /// sequence).
    pub changes: Vec<TierChange>,
    /// Foreseen drops announced for the first time.
    pub at_risk: Vec<AtRisk>,
    /// Complaints found past their deadline, each announced once.
    pub overdue: Vec<ComplaintOverdue>,
    /// The count of open overdue complaints per tier moved.
    pub overdue_moved: bool,
    /// Events that changed a projection.
    pub applied: u64,
    /// Applied events per type.
    pub applied_by_type: Vec<(&'static str, u64)>,
    pub duplicates: u64,
    pub stale: u64,
    /// Customers advanced by sweeps.
    pub swept: u64,
    /// Customers rescored under a new policy.
    pub rescored: u64,
    /// The trace context of the cause of some changes: `(index into
    /// changes, context)`, by index. The change's `TierChanged` carries a
    /// child of it (see `tier_wire::trace`).
    pub traced: Vec<(usize, TraceParent)>,
    /// Customers whose records moved them to another scope (input
    /// partition): their key under the old scope is deleted with the
    /// commit (see `Engine::fold_from`).
    pub moved: Vec<(Scope, String)>,
    /// Customers dropped from memory because their partition went to
    /// another instance; the read side drops them once the unit is
    /// durable (see `Engine::assign`).
    pub evicted: Vec<String>,
    /// Customers the policy rescore confirmed (their decision stands, see
    /// the `confirmed` module): not written, but the read side shows them
    /// as of the rescore, under the policy in force. States to read, for
    /// deciding only (tier-core's `deciding_only`: no applied event ids,
    /// no orders by id, only the open invoices), which is all a view
    /// reads: one the rescore met encoded is decoded so, one held decoded
    /// is copied so (`CustomerState::clone_deciding_only`). Each customer
    /// at most once: a policy's rescore queues it once, and a unit holds
    /// the rescore of one policy (tierd seals a unit per turn, its
    /// commands before its rescore slice). The seal drops the customers
    /// also touched, out of order, when any can be (see
    /// [`Unit::confirmed_may_be_touched`]).
    pub confirmed: ConfirmedCustomers,
    /// A customer may be both confirmed and touched, so the seal must
    /// look (`drop_touched`): something touched a customer while
    /// `confirmed` held some (an event, a sweep, a recut, a refreshed
    /// notice; not the rescore's own moved customers, which it never
    /// confirms), or a rescore slice took customers queued in this very
    /// unit (a policy applied, customers admitted) after the unit touched
    /// some (touched under the policy replaced, its rescore may confirm
    /// them). Otherwise none is: a customer touched under the policy in
    /// force is decided under it, and its rescore passes it by. (A unit
    /// holds the slices of one policy's rescore, see [`Unit::confirmed`].)
    confirmed_may_be_touched: bool,
    /// The record to store with the unit: the rescore finished (see
    /// [`confirmed::META_CONFIRMED`]).
    pub confirmations: Option<Confirmed>,
    /// Customers with an at-risk notice out whose figures an event moved,
    /// or that a policy rescore judged again: their notice is checked
    /// again once, at seal ([`Engine::recheck_notices`]), not after every
    /// event.
    notices_to_check: Vec<String>,
}

impl Unit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check `id`'s at-risk notice again at seal (once per unit, see
    /// [`Engine::recheck_notices`]): its figures, or the policy judging
    /// them, moved.
    fn check_notice(&mut self, id: &str) {
        self.notices_to_check.push(id.to_owned());
    }

    /// Customers this unit changed, each once, in first-touch order.
    pub fn touched(&self) -> &[CustomerId] {
        &self.touched
    }

    /// True when committing the unit would write no customer.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    fn touch(&mut self, id: &str) {
        self.touch_at(id, None);
    }

    /// [`Self::touch`] by an event's fold, which knows where `id` is held
    /// (see [`Unit::places`]).
    fn touch_at(&mut self, id: &str, place: Option<Place>) {
        self.confirmed_may_be_touched |= !self.confirmed.is_empty();
        self.touch_unconfirmed_at(id, place);
    }

    /// [`Self::touch_at`] for a customer not in `confirmed` (one the
    /// rescore moved as it took it off its queue, see
    /// [`Unit::confirmed_may_be_touched`]).
    fn touch_unconfirmed_at(&mut self, id: &str, place: Option<Place>) {
        if !self.touched_set.contains(id) {
            let id = CustomerId::from(id);
            self.touched_set.insert(id.clone());
            self.touched.push(id);
            self.places.push(place);
        }
    }

    /// Every touched customer with where an event's fold found it.
    fn touched_places(&self) -> impl Iterator<Item = (&CustomerId, Option<Place>)> {
        debug_assert_eq!(self.touched.len(), self.places.len());
        self.touched.iter().zip(self.places.iter().copied())
    }
}

/// Emptied [`Unit::confirmed`] buffers, handed back by the committer's
/// publish thread once it has shown their customers
/// ([`CommitterDeps::confirmed_buffers`]) for the engine's next rescore
/// slices ([`Engine::confirmed_buffers`]). A rescore unit's confirmed
/// customers take megabytes: allocated afresh each unit, they were fresh
/// pages, faulted in one by one as the rescore filled them, and handed
/// back to the OS by the allocator soon after the publish thread freed
/// them. At most [`ConfirmedBuffers::KEPT`] are kept, emptied (a unit's
/// worth of a rescore's confirmed customers each, a few MiB).
#[derive(Debug, Clone, Default)]
pub struct ConfirmedBuffers(Arc<Mutex<Vec<ConfirmedCustomers>>>);

/// A unit's confirmed customers ([`Unit::confirmed`]).
pub type ConfirmedCustomers = Vec<(CustomerId, CustomerState)>;

impl ConfirmedBuffers {
    /// Spare buffers kept at most (besides the one in the engine's
    /// unit): a cap, below the units that can be in flight between the
    /// engine and the publish thread (up to four).
    pub const KEPT: usize = 2;

    /// An emptied buffer, if one is kept.
    fn take(&self) -> Option<ConfirmedCustomers> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Keep `buffer`, emptied, unless [`Self::KEPT`] are kept already (its
    /// customers are dropped here, by the caller's thread).
    pub fn give(&self, mut buffer: ConfirmedCustomers) {
        buffer.clear();
        if buffer.capacity() == 0 {
            return;
        }
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < Self::KEPT {
            kept.push(buffer);
        }
    }

    /// Buffers kept now.
    pub fn kept(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Let the kept buffers go (no rescore runs: the next one allocates
    /// afresh).
    fn release(&self) {
        let kept = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        drop(kept);
    }
}

/// The deadline tiers of a customer's open complaints announced overdue.
fn open_overdue_tiers(state: &CustomerState) -> Vec<String> {
    if state.projection.open_complaint_count() == 0 {
        return Vec::new();
    }
    state
        .projection
        .complaints()
        .filter(|(_, c)| c.is_open() && c.overdue_announced)
        .filter_map(|(_, c)| c.deadline.as_ref().map(|d| d.tier.clone()))
        .collect()
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Override(#[from] OverrideError),
    #[error("customer_id must not be empty")]
    EmptyCustomerId,
    /// An assessment the policy refuses (unknown indicator, off scale).
    #[error("invalid {field}: {reason}")]
    Assessment { field: &'static str, reason: String },
}

/// What an at-risk check found, against the notice out.
#[derive(Debug, Clone, PartialEq)]
enum Notice {
    Same,
    /// The same drop (tier, falls-to tier, instant), with other advice on
    /// what would keep the tier (the figures moved, or the policy did):
    /// stored and shown, not announced again.
    Refreshed,
    /// A drop to announce.
    New(AtRisk),
    /// The notice no longer holds: withdrawn.
    Withdrawn,
}

/// An assessment an account manager makes through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAssessment {
    pub customer_id: String,
    pub indicator: String,
    pub value: i64,
    pub assessed_by: String,
    pub note: String,
}

/// An override command as the API hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOverride {
    pub customer_id: String,
    pub tier: String,
    pub mode: OverrideMode,
    pub reason: String,
    pub author: String,
    pub expires_at: Option<Timestamp>,
}

/// Customers moving from one tier to another under a dry-run policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `None`: no tier before.
    pub from: Option<String>,
    pub to: String,
    pub customers: u64,
}

/// A customer whose effective tier a dry run moves.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    pub customer_id: String,
    pub from: Option<String>,
    pub to: String,
    pub old_score: f64,
    pub new_score: f64,
    pub reasons: Vec<Reason>,
}

/// What applying a policy would do, as of an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    pub version: String,
    /// Every (from, to) pair with at least one customer, ordered by the
    /// new policy's tier order (unknown tiers last).
    pub matrix: Vec<Cell>,
    /// Customers whose effective tier moves.
    pub movers: u64,
    /// The first movers by customer id.
    pub sample: Vec<Mover>,
    pub as_of: Timestamp,
}

/// Progress of the policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub version: String,
    pub rescoring: bool,
    pub rescored: u64,
    pub total: u64,
    /// Tier changes the rescore made so far.
    pub changed: u64,
    pub applied_at: Option<Timestamp>,
}

/// How many places ahead in the rescore queue [`Engine::rescore`] reads
/// the first byte of a customer held encoded, so that its bytes are in
/// the cache by the time it is decoded. The decode of customers held
/// encoded is most of the rescore's engine thread, and its first read of
/// each customer's bytes a cache miss; a plain read is the prefetch safe
/// Rust has. Measured (`tier-bench --only rescore`, PERFORMANCE.md's
/// tenth sitting): 8 gained about as much as 4 and held in more runs; 2
/// was slower and 16 no better. Reading a group of 8 together every 8
/// customers (the twenty-sixth sitting) took the reads' samples down but
/// the decode's up by more: not adopted.
const TOUCH_AHEAD: usize = 8;

/// A customer on the rescore queue: the task it was in when the rescore
/// began and its position in that task's table then. The rescore looks
/// for it there first, so a walk of the queue reads each table's entries
/// in order instead of a hash bucket at random per customer (the lookups
/// were a tenth of the rescore's engine thread, mostly cache misses).
#[derive(Debug)]
struct Queued {
    scope: Scope,
    id: CustomerId,
    position: usize,
}

#[derive(Debug)]
struct Rescore {
    at: Timestamp,
    /// Customers still to rescore, popped from the end.
    queue: Vec<Queued>,
    total: u64,
    done: u64,
    changed: u64,
    /// What decoding a customer this rescore confirmed applies.
    confirmation: Arc<Confirmation>,
    /// The engine's epoch (its unit) when customers were last queued: a
    /// customer that unit touched before may be under the policy
    /// replaced, and confirmed by a slice of the same unit (see
    /// [`Unit::confirmed_may_be_touched`]).
    queued_in: u64,
}

impl Rescore {
    /// A rescore at `at` under `version` of the customers `queue`, queued
    /// in the engine's `epoch`.
    fn new(version: &str, at: Timestamp, queue: Vec<Queued>, epoch: u64) -> Self {
        Self {
            queued_in: epoch,
            at,
            total: queue.len() as u64,
            queue,
            done: 0,
            changed: 0,
            confirmation: Arc::new(Confirmation {
                version: version.to_owned(),
                at,
            }),
        }
    }
}

/// The single writer of customer state. See the crate docs.
#[derive(Debug)]
pub struct Engine {
    policy: Arc<Policy>,
    /// One task per scope (input partition; [`Scope::UNSCOPED`] for
    /// customers known only from commands): its customers' states and due
    /// index. See the `task` module.
    tasks: BTreeMap<Scope, Task>,
    /// Each customer in memory, routed to its task: an entry here exactly
    /// when `tasks[scope].states` holds the customer.
    scopes: IdTable<Scope>,
    rescore: Option<Rescore>,
    /// The scopes whose customers the policy in force confirmed, as
    /// stored (see the `confirmed` module).
    confirmed: Confirmed,
    /// The store does not hold `confirmed` yet: it names an instant the
    /// store does not hold, or replaces another policy's record.
    confirmations_unrecorded: bool,
    applied_at: Option<Timestamp>,
    /// The text each version put in force named (see the `ApplyPolicy`
    /// command's own check and [`Engine::set_policy_versions`]).
    versions: command::PolicyVersions,
    /// The latest horizon a sweep reached (the at-risk checks' "today").
    swept_to: Option<Timestamp>,
    /// Whether a command first makes its customer's time-driven decisions
    /// due by its instant (see [`Engine::bring_to`]): only when time sweeps
    /// do, so [`Engine::between_batches`] sets it from its `sweep`; true
    /// for a caller that drives the engine by hand.
    commands_decide_time: bool,
    /// Open complaints announced overdue, per tier of their deadline.
    overdue_open: BTreeMap<String, i64>,
    /// An `abc` policy's population, ranked by its figure (`None` for
    /// other methods); see [`Engine::recut`].
    ranking: Option<Ranking<String>>,
    /// A ranked value moved since the last cut.
    ranking_moved: bool,
    /// The population ranked by recency, frequency and monetary value when
    /// the policy reads an `rfm_*` score (`None` otherwise); cut on the
    /// same cadence as the `abc` ranking, see [`Engine::recut`].
    rfm: Option<RfmRanking<String>>,
    /// An RFM value moved since the last cut.
    rfm_moved: bool,
    /// When the cut points were last recomputed (processing clock).
    last_cut: Option<Timestamp>,
    /// Cut points the read side has not been given yet.
    cut_unpublished: bool,
    /// The scopes of the partitions assigned to this instance, once an
    /// assignment was made (`None`: every stored customer is in memory).
    owned: Option<BTreeSet<Scope>>,
    /// Seals so far: when a hot customer was last used.
    epoch: u64,
    /// Customers held decoded at most (after a seal).
    hot_limit: usize,
    /// Most heap bytes the customers held decoded may take.
    hot_bytes_limit: usize,
    /// Where the committer hands emptied [`Unit::confirmed`] buffers back.
    confirmed_buffers: ConfirmedBuffers,
}

impl Engine {
    /// An engine over `states` (as loaded from the store) under `policy`.
    /// Rebuilds the due index; customers decided under another policy
    /// version (a rescore a crash interrupted, a policy changed while tierd
    /// was down) are queued for a rescore at `now`.
    pub fn new(
        policy: Arc<Policy>,
        states: impl IntoIterator<Item = (String, CustomerState)>,
        now: Timestamp,
    ) -> Self {
        Self::with_scopes(
            policy,
            states
                .into_iter()
                .map(|(id, state)| (Scope::UNSCOPED, id, state)),
            now,
            DEFAULT_HOT_CUSTOMERS,
        )
    }

    /// [`Engine::new`] over states loaded with their scopes: each scope's
    /// customers become its task. At most `hot` customers (and bytes) stay
    /// decoded (see [`Engine::set_hot_limit`]); the rest are encoded as
    /// they are loaded, so loading never holds more.
    pub fn with_scopes(
        policy: Arc<Policy>,
        states: impl IntoIterator<Item = (Scope, String, CustomerState)>,
        now: Timestamp,
        hot: impl Into<HotLimits>,
    ) -> Self {
        let confirmed = Confirmed::none(policy.version());
        Self::with_confirmed(policy, states, now, hot, confirmed)
    }

    /// [`Engine::with_scopes`] over stored states and the stored record
    /// of what the policy in force confirmed ([`confirmed::META_CONFIRMED`]):
    /// a customer decided under another version in a scope it covers is
    /// confirmed as it loads instead of being queued for a rescore.
    pub fn with_confirmed(
        policy: Arc<Policy>,
        states: impl IntoIterator<Item = (Scope, String, CustomerState)>,
        now: Timestamp,
        hot: impl Into<HotLimits>,
        confirmed: Confirmed,
    ) -> Self {
        let hot = hot.into();
        // A record of another policy is replaced in the store too, even
        // when no customer needs a rescore: left there, it would confirm
        // the customers decided under this policy as that one's at a
        // later start with it (a change away and back across starts).
        let (confirmed, replaced) = if confirmed.version == policy.version() {
            (confirmed, false)
        } else {
            (Confirmed::none(policy.version()), true)
        };
        // When the policy in force was applied, as its record says: a
        // restart after its rescore still tells it (`GetPolicyStatus`).
        let applied_at = confirmed.at;
        let mut engine = Self {
            policy,
            tasks: BTreeMap::new(),
            scopes: IdTable::default(),
            rescore: None,
            confirmations_unrecorded: replaced,
            confirmed,
            applied_at,
            versions: command::PolicyVersions::default(),
            swept_to: None,
            commands_decide_time: true,
            overdue_open: BTreeMap::new(),
            ranking: None,
            ranking_moved: false,
            rfm: None,
            rfm_moved: false,
            last_cut: None,
            cut_unpublished: false,
            owned: None,
            epoch: 0,
            hot_limit: hot.customers,
            hot_bytes_limit: hot.bytes,
            confirmed_buffers: ConfirmedBuffers::default(),
        };
        let mut stale: HashSet<String, BuildHasherDefault<Fnv>> = HashSet::default();
        for (scope, id, mut state) in states {
            if !engine.confirmed.apply(scope, &mut state) {
                stale.insert(id.clone());
            }
            // A customer stored twice (under two scopes) keeps the last.
            if let Some(old) = engine.scopes.insert(id.as_str().into(), scope)
                && let Some(gone) = engine.tasks.get_mut(&old).and_then(|t| t.remove(&id))
            {
                for tier in open_overdue_tiers(&gone) {
                    *engine.overdue_open.entry(tier).or_insert(0) -= 1;
                }
            }
            for tier in open_overdue_tiers(&state) {
                *engine.overdue_open.entry(tier).or_insert(0) += 1;
            }
            let task = engine.tasks.entry(scope).or_default();
            task.insert(id.clone(), state, 0);
            engine.reindex(&id);
            // Held decoded only within both limits: the customer that
            // would cross one (by count, or by its own bytes, which for a
            // busy customer are many times a light one's) is held encoded.
            let over = engine.hot_customers() > engine.hot_limit
                || engine.hot_bytes() > engine.hot_bytes_limit;
            if over && let Some(task) = engine.tasks.get_mut(&scope) {
                task.cool(&id);
            }
        }
        engine.rank_all(now);
        if !stale.is_empty() {
            // A rescore a crash interrupted resumes at its own instant;
            // one starting now is to be recorded with it.
            let at = match engine.confirmed.at {
                Some(at) => at,
                None => {
                    engine.confirmations_unrecorded = true;
                    *engine.confirmed.at.insert(now)
                }
            };
            let queue = engine.rescore_queue(|id| stale.contains(id));
            engine.rescore = Some(Rescore::new(
                engine.policy.version(),
                at,
                queue,
                engine.epoch,
            ));
            engine.applied_at = Some(at);
        }
        engine
    }

    /// The engine over everything `store` holds, as tierd starts: every
    /// customer under its scope, streamed in, so loading never holds more
    /// decoded than `hot` allows (see [`Engine::with_scopes`]).
    pub fn load<S: tier_store::Store>(
        policy: Arc<Policy>,
        store: &S,
        now: Timestamp,
        hot: impl Into<HotLimits>,
    ) -> Result<Self, tier_store::StoreError> {
        let confirmed = store
            .meta(confirmed::META_CONFIRMED)?
            .and_then(|bytes| Confirmed::decode(&bytes))
            .unwrap_or_else(|| Confirmed::none(policy.version()));
        let mut scan_error = None;
        let states = store
            .scan_scoped::<CustomerState>(None)
            .map_while(|item| item.map_err(|e| scan_error = Some(e)).ok());
        let engine = Self::with_confirmed(policy, states, now, hot, confirmed);
        match scan_error {
            Some(e) => Err(e),
            None => Ok(engine),
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The versions put in force before this engine was built and the
    /// texts they named (the starting policy's
    /// [`ActivePolicy::versions`]): an `ApplyPolicy` that edits one under
    /// its version is refused even when it raced the caller's own check.
    pub fn set_policy_versions(&mut self, versions: command::PolicyVersions) {
        self.versions = versions;
    }

    /// The record of what the policy in force confirmed
    /// ([`confirmed::META_CONFIRMED`]), once, when the store has yet to
    /// hold it:
    /// a rescore started as the engine was built (a policy changed while
    /// tierd was down), which the store must record with its instant
    /// before anything is confirmed under it, or the policy in force's
    /// record replacing another policy's (which must not outlive this
    /// start). `None` when the store's record is current.
    pub fn take_unrecorded_confirmations(&mut self) -> Option<Confirmed> {
        std::mem::take(&mut self.confirmations_unrecorded).then(|| self.confirmed.clone())
    }

    /// `id`'s state: borrowed when held decoded, a decoded copy when held
    /// encoded (reading does not decode it in place).
    pub fn customer(&self, id: &str) -> Option<Cow<'_, CustomerState>> {
        let scope = self.scopes.get(id)?;
        self.tasks.get(scope)?.get(id)
    }

    /// Every customer in memory, task by task (see [`Engine::customer`]).
    pub fn customers(&self) -> impl Iterator<Item = (&str, Cow<'_, CustomerState>)> {
        self.all_states().map(|(k, v)| (k.as_str(), v))
    }

    fn all_states(&self) -> impl Iterator<Item = (&CustomerId, Cow<'_, CustomerState>)> {
        self.tasks.values().flat_map(Task::states)
    }

    /// Customers held decoded.
    pub fn hot_customers(&self) -> usize {
        self.tasks.values().map(Task::hot_len).sum()
    }

    /// What the customers held decoded take on the heap, as last measured
    /// (at the seal of the unit that last changed each).
    pub fn hot_bytes(&self) -> usize {
        self.tasks.values().map(Task::hot_bytes).sum()
    }

    /// Let the customers held decoded take at most `bytes` on the heap
    /// (besides [`Self::set_hot_limit`]): from the next seal on, the least
    /// recently used beyond it are encoded. The customers of the unit
    /// being sealed stay decoded whatever they take.
    pub fn set_hot_bytes_limit(&mut self, bytes: usize) {
        self.hot_bytes_limit = bytes;
    }

    /// Hold at most `limit` customers decoded: from the next seal on, the
    /// least recently used beyond it are encoded (about 0.7 KB each
    /// instead of about 3 KB) and decoded again when something changes
    /// them. Reads of an encoded customer decode a copy.
    pub fn set_hot_limit(&mut self, limit: usize) {
        self.hot_limit = limit;
    }

    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The scopes with a task in memory and the customers of each.
    pub fn tasks(&self) -> impl Iterator<Item = (Scope, usize)> + '_ {
        self.tasks.iter().map(|(s, t)| (*s, t.len()))
    }

    /// The touched customers of `unit` with their scopes and states, for
    /// the commit. A customer a unit touched is held decoded until the
    /// seal after the one that sealed the unit.
    pub fn unit_customers<'a>(&'a self, unit: &Unit) -> Vec<(Scope, &'a str, &'a CustomerState)> {
        self.unit_places(unit)
            .into_iter()
            .map(|(place, id, state)| (place.0, id, state))
            .collect()
    }

    /// [`Self::unit_customers`] with each one's position in its task's
    /// table.
    fn unit_places<'a>(&'a self, unit: &Unit) -> Vec<(Place, &'a str, &'a CustomerState)> {
        unit.touched_places()
            .filter_map(|(id, place)| {
                let (scope, at) = self.place_of(id, place)?;
                let (k, slot) = self.tasks.get(&scope)?.slot_at(at)?;
                debug_assert!(slot.hot().is_some(), "{id} was touched, so it is hot");
                Some(((scope, at), k.as_str(), slot.hot()?))
            })
            .collect()
    }

    /// Where `id` is held (its scope and position in that task's table):
    /// at `place` when it is still there, else looked up.
    fn place_of(&self, id: &str, place: Option<Place>) -> Option<Place> {
        if let Some((scope, at)) = place
            && self.tasks.get(&scope).is_some_and(|t| t.is_at(id, at))
        {
            return Some((scope, at));
        }
        let scope = *self.scopes.get(id)?;
        Some((scope, self.tasks.get(&scope)?.position(id)?))
    }

    /// While a policy rescore is under way, a customer not rescored yet is
    /// rescored (cause `Policy`, at the apply instant) before anything else
    /// decides for it under the new policy: the policy's moves are then
    /// exactly those a dry run at that instant predicts, whatever events
    /// and sweeps come first.
    fn ensure_current(&mut self, unit: &mut Unit, id: &str) {
        if self.rescoring() {
            self.rescore_one(unit, id);
        }
    }

    /// Rescore `id` under the policy in force at the rescore's instant,
    /// unless it was decided under that policy already. Returns whether
    /// it was rescored.
    fn rescore_one(&mut self, unit: &mut Unit, id: &str) -> bool {
        let Some(r) = &mut self.rescore else {
            return false;
        };
        let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, id) else {
            return false;
        };
        if state.policy_version == self.policy.version() {
            return false;
        }
        // As the background rescore does (an override of a tier the policy
        // retired ends here too, whichever reaches the customer first).
        let change = state.rescore_policy(id, &self.policy, r.at).change;
        if state.at_risk.is_some() {
            unit.check_notice(id);
        }
        if change.is_some() {
            r.changed += 1;
        }
        unit.changes.extend(change);
        unit.rescored += 1;
        unit.touch(id);
        true
    }

    /// Fold one decoded event.
    pub fn fold(&mut self, unit: &mut Unit, event: &Event) -> Applied {
        self.fold_traced(unit, event, None)
    }

    /// Fold one decoded event that arrived under trace context `trace`
    /// (its record's `traceparent` header): the change the event causes
    /// carries a child of it. Time-driven changes decided first, at their
    /// own instants, are not the event's and carry none.
    pub fn fold_traced(
        &mut self,
        unit: &mut Unit,
        event: &Event,
        trace: Option<TraceParent>,
    ) -> Applied {
        let scope = self.scope_of(&event.customer_id);
        self.fold_in(unit, event, trace, scope, Found::Unknown)
    }

    /// Fold `event` on task `scope`: the task its customer is in, or joins
    /// when new. `found`: what the caller learned of where it is.
    fn fold_in(
        &mut self,
        unit: &mut Unit,
        event: &Event,
        trace: Option<TraceParent>,
        scope: Scope,
        found: Found,
    ) -> Applied {
        if self.rescore.is_some() {
            self.ensure_current(unit, &event.customer_id);
        }
        let id = &event.customer_id;
        let task = self.tasks.entry(scope).or_default();
        let held = match found {
            // Checked at that position (the rescore above moves nothing,
            // but a position is only ever a hint).
            Found::At(at) => task.get_mut_near(id, at, self.epoch),
            Found::Nowhere => None,
            Found::Unknown => task.get_mut_near(id, NO_HINT, self.epoch),
        };
        let (at, state) = match held {
            Some(held) => held,
            None => {
                if found == Found::Nowhere {
                    self.scopes.insert_absent(id.as_str().into(), scope);
                } else {
                    self.scopes.insert(id.as_str().into(), scope);
                }
                task.insert_new(id.as_str(), self.epoch)
            }
        };
        // Open complaints already announced overdue (empty at once for a
        // customer without open complaints): any event may announce more.
        let overdue_before = open_overdue_tiers(state);
        let processed = state.process(id, event, &self.policy);
        let notice_out = state.at_risk.is_some();
        let notices = processed.overdue;
        if event.kind.is_complaint() || !notices.is_empty() {
            let after = open_overdue_tiers(state);
            if after != overdue_before {
                for t in overdue_before {
                    *self.overdue_open.entry(t).or_insert(0) -= 1;
                }
                for t in after {
                    *self.overdue_open.entry(t).or_insert(0) += 1;
                }
                unit.overdue_moved = true;
            }
        }
        let moved = !processed.due_first.is_empty() || !notices.is_empty();
        unit.overdue.extend(notices);
        match processed.applied {
            Applied::Applied => {
                unit.applied += 1;
                let kind = event.kind.type_name();
                match unit.applied_by_type.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => unit.applied_by_type.push((kind, 1)),
                }
            }
            Applied::Duplicate => unit.duplicates += 1,
            Applied::Stale => unit.stale += 1,
        }
        if processed.applied == Applied::Applied || moved {
            unit.touch_at(id, Some((scope, at)));
        } else if let Some(task) = self.tasks.get_mut(&scope)
            && task
                .get(id)
                .is_some_and(|s| s.assignment.is_none() && s.effective.is_none())
        {
            // A customer is stored only once an event of it was applied (or
            // a manager set its tier).
            task.remove(id);
            self.scopes.remove(id.as_str());
        }
        unit.changes.extend(processed.due_first);
        if let Some(change) = processed.change {
            if let Some(trace) = trace {
                unit.traced.push((unit.changes.len(), trace));
            }
            unit.changes.push(change);
        }
        if processed.applied == Applied::Applied && notice_out {
            unit.check_notice(id);
        }
        processed.applied
    }

    /// Finish a unit before it is committed: re-index every touched
    /// customer (its next due instant may have moved) and measure it again
    /// (its heap size may have moved).
    pub fn seal(&mut self, unit: &Unit) {
        for (id, place) in unit.touched_places() {
            let Some((scope, at)) = self.place_of(id, place) else {
                continue;
            };
            let Some(task) = self.tasks.get_mut(&scope) else {
                continue;
            };
            task.settle(id, at, |state| due_at(&self.policy, self.swept_to, state));
        }
        self.cool(unit);
        self.epoch += 1;
        if self.rfm.is_some() {
            for id in &unit.touched {
                self.rerank_rfm(id);
            }
        }
        if self.ranking.is_some() {
            for id in &unit.touched {
                self.rerank(id);
            }
        }
    }

    /// Encode the least recently used hot customers until at most the hot
    /// limit are hot, keeping those `unit` touched (its commit reads
    /// them). Each task queues its customers in order of use, so a seal
    /// cools about as many customers as its unit thawed, without a scan:
    /// the cost is spread evenly over the seals instead of a pause each
    /// time a quarter more than the limit are hot.
    ///
    /// The tasks' least recently used customers wait in a heap, oldest
    /// first: cooling one looks again only at its own task's queue, not
    /// at every task's (a lookup each; with tens of partitions assigned,
    /// that was most of a catch-up seal's cost).
    fn cool(&mut self, unit: &Unit) {
        let mut hot = self.hot_customers();
        let mut hot_bytes = self.hot_bytes();
        if hot <= self.hot_limit && hot_bytes <= self.hot_bytes_limit {
            return;
        }
        let mut oldest: BinaryHeap<Reverse<(u64, Scope)>> = self
            .tasks
            .iter_mut()
            .filter_map(|(scope, t)| Some(Reverse((t.least_recent()?, *scope))))
            .collect();
        // This unit's customers met in the queue, put back afterwards.
        let mut kept: Vec<(Scope, u64, CustomerId)> = Vec::new();
        while hot > self.hot_limit || hot_bytes > self.hot_bytes_limit {
            // The task whose least recently used customer is the oldest.
            let Some(Reverse((_, scope))) = oldest.pop() else {
                break;
            };
            let Some(task) = self.tasks.get_mut(&scope) else {
                break;
            };
            let Some((used, id)) = task.pop_least_recent() else {
                continue;
            };
            let freed = if unit.touched_set.contains(id.as_str()) {
                None
            } else {
                task.cool(&id)
            };
            if let Some(next) = task.least_recent() {
                oldest.push(Reverse((next, scope)));
            }
            let Some(freed) = freed else {
                // Read by this unit's commit (or, none today, a state that
                // cannot be encoded): stays hot.
                kept.push((scope, used, id));
                continue;
            };
            hot -= 1;
            hot_bytes -= freed;
        }
        for (scope, used, id) in kept {
            if let Some(task) = self.tasks.get_mut(&scope) {
                task.requeue(used, id);
            }
        }
    }

    /// Move `id` in the RFM rankings to its current values.
    fn rerank_rfm(&mut self, id: &str) {
        let Some(values) = self.customer(id).map(|s| s.rfm_values(&self.policy)) else {
            return;
        };
        if let Some(rfm) = &mut self.rfm {
            self.rfm_moved |= rfm.upsert(id, &values);
        }
    }

    /// Every customer ranked by recency, frequency and monetary value when
    /// `policy` reads an `rfm_*` score; `None` otherwise.
    fn rfm_population(&self, policy: &Policy) -> Option<RfmRanking<String>> {
        if !policy.uses_rfm() {
            return None;
        }
        let mut rfm = RfmRanking::new();
        for (id, s) in self.all_states() {
            rfm.upsert(id.as_str(), &s.rfm_values(policy));
        }
        Some(rfm)
    }

    /// `policy` with the cut points of the population as the engine ranks
    /// it for that policy (RFM quintiles first: an `abc` method may rank
    /// by an `rfm_*` score), and the rankings.
    fn cut_population(
        &self,
        policy: &Policy,
    ) -> (Policy, Option<RfmRanking<String>>, Option<Ranking<String>>) {
        let rfm = self.rfm_population(policy);
        let mut cut = match &rfm {
            Some(r) => policy.with_rfm_cuts(RfmQuintiles::of(r)),
            None => policy.clone(),
        };
        let ranking = self.rank_population(&cut);
        if let Some(cuts) = ranking.as_ref().and_then(|r| cut.rank_cuts_of(r)) {
            cut = cut.with_rank_cuts(cuts);
        }
        (cut, rfm, ranking)
    }

    /// The value `id` is ranked by under an `abc` policy (NaN: unknown).
    fn rank_value(&self, id: &str) -> f64 {
        self.customer(id)
            .and_then(|s| self.policy.rank_value(&s.indicators(&self.policy)))
            .unwrap_or(f64::NAN)
    }

    /// Every customer ranked by what `policy`'s `abc` method ranks by (NaN:
    /// unknown); `None` for other methods.
    fn rank_population(&self, policy: &Policy) -> Option<Ranking<String>> {
        let (_, direction) = policy.rank_by()?;
        Some(Ranking::from_values(
            direction,
            self.all_states().map(|(id, s)| {
                let v = policy.rank_value(&s.indicators(policy));
                (id.to_string(), v.unwrap_or(f64::NAN))
            }),
        ))
    }

    /// Move `id` in the ranking to its current value.
    fn rerank(&mut self, id: &str) {
        let value = self.rank_value(id);
        if let Some(ranking) = &mut self.ranking {
            let old = ranking.upsert(id, value);
            let same = old.is_some_and(|o| o == value || (o.is_nan() && value.is_nan()));
            self.ranking_moved |= !same;
        }
    }

    /// Rank every customer under the policy in force and cut at once (an
    /// `abc` policy, or one reading an `rfm_*` score, at start or when
    /// applied); a policy that ranks nothing drops the rankings.
    fn rank_all(&mut self, now: Timestamp) {
        let (cut, rfm, ranking) = self.cut_population(&self.policy);
        let ranks = rfm.is_some() || ranking.is_some();
        self.rfm = rfm;
        self.ranking = ranking;
        self.ranking_moved = false;
        self.rfm_moved = false;
        if !ranks {
            return;
        }
        self.policy = Arc::new(cut);
        self.last_cut = Some(now);
        self.cut_unpublished = true;
    }

    /// Whether a customer's RFM scores under `old` and `new` cut points
    /// differ in a score `policy` reads (its tier or a grading).
    fn rfm_moves(policy: &Policy, old: RfmScore, new: RfmScore) -> bool {
        let reads =
            |n: IndicatorName| policy.uses(n) || policy.gradings().iter().any(|g| g.uses(n));
        (reads(IndicatorName::RfmRecency) && old.recency != new.recency)
            || (reads(IndicatorName::RfmFrequency) && old.frequency != new.frequency)
            || (reads(IndicatorName::RfmMonetary) && old.monetary != new.monetary)
            || (reads(IndicatorName::RfmScore) && old.total() != new.total())
    }

    /// The cut points in force when the read side has not been given them
    /// yet (a start, a policy applied), without cutting anew: what a
    /// catch-up hands over in place of a [`Self::recut`].
    pub fn pending_cut(&mut self) -> Option<Arc<Policy>> {
        std::mem::take(&mut self.cut_unpublished).then(|| self.policy.clone())
    }

    /// Under an `abc` policy or one reading an `rfm_*` score: recompute
    /// the cut points when a ranking moved and `recut_seconds` passed since
    /// the last cut (processing clock), and rescore every customer whose
    /// band or read RFM score the new cut points move (cause `Rank`) into
    /// `unit`. RFM quintiles are cut first: an `abc` method ranking by an
    /// `rfm_*` score then ranks by the new scores. Returns the policy with
    /// the cut points in force when the read side should get it (a new
    /// cut, or the first one), else `None`.
    pub fn recut(&mut self, unit: &mut Unit, now: Timestamp) -> Option<Arc<Policy>> {
        if self.ranking.is_none() && self.rfm.is_none() {
            return None;
        }
        // The customers `unit` folded were graded under the cut points in
        // force, with what they hold now; the seal ranks them only after
        // this cut. Ranked now, the cut sees them, and judges their moves
        // from the cut points they were graded under.
        for id in &unit.touched {
            if self.rfm.is_some() {
                self.rerank_rfm(id);
            }
            if self.ranking.is_some() {
                self.rerank(id);
            }
        }
        let every = i64::from(self.policy.recut_seconds()) * 1000;
        let due = (self.ranking_moved || self.rfm_moved)
            && self
                .last_cut
                .is_none_or(|t| now.millis().saturating_sub(t.millis()) >= every);
        if !due {
            return std::mem::take(&mut self.cut_unpublished).then(|| self.policy.clone());
        }
        self.last_cut = Some(now);
        let old = self.policy.clone();
        let mut policy = (*old).clone();
        let mut moved: BTreeSet<String> = BTreeSet::new();
        if std::mem::take(&mut self.rfm_moved)
            && let Some(rfm) = &self.rfm
        {
            let cuts = RfmQuintiles::of(rfm);
            if &cuts != old.rfm_cuts() {
                let before = old.rfm_cuts();
                for (id, _) in rfm.frequency().iter() {
                    let Some(values) = rfm.values_of(id.as_str()) else {
                        continue;
                    };
                    if Self::rfm_moves(&old, before.score(&values), cuts.score(&values)) {
                        moved.insert(id.clone());
                    }
                }
                tracing::debug!(moved = moved.len(), cuts = ?cuts, "rfm cut points recomputed");
                policy = policy.with_rfm_cuts(cuts);
            }
        }
        if self.ranking.is_some() {
            // An abc method ranking by an rfm_* score: the scores moved
            // with the cut points.
            let rank_by_rfm = policy
                .rank_by()
                .and_then(|(by, _)| by.and_then(|b| b.indicator()))
                .is_some_and(IndicatorName::is_rfm);
            if rank_by_rfm && !moved.is_empty() {
                let ids: Vec<String> = moved.iter().cloned().collect();
                // A policy's rescore first, under the cut points in force
                // (see below).
                for id in &ids {
                    self.ensure_current(unit, id);
                }
                self.policy = Arc::new(policy.clone());
                for id in &ids {
                    self.rerank(id);
                }
            }
        }
        if std::mem::take(&mut self.ranking_moved)
            && let Some(ranking) = &self.ranking
            && let Some(cuts) = policy.rank_cuts_of(ranking)
            && cuts != policy.rank_cuts()
        {
            let new = policy.with_rank_cuts(cuts);
            let before = moved.len();
            moved.extend(
                ranking
                    .iter()
                    .filter(|(_, v)| policy.rank_band(Some(*v)) != new.rank_band(Some(*v)))
                    .map(|(id, _)| id.clone()),
            );
            tracing::debug!(moved = moved.len() - before, cuts = ?new.rank_cuts(), "abc cut points recomputed");
            policy = new;
        }
        if policy.rank_cuts() == old.rank_cuts() && policy.rfm_cuts() == old.rfm_cuts() {
            self.policy = old;
            return std::mem::take(&mut self.cut_unpublished).then(|| self.policy.clone());
        }
        // A customer a policy's rescore has not reached yet is rescored
        // first, under the cut points it was ranked by, as an event would
        // rescore it: the policy's change is published as one (cause
        // POLICY, at the apply instant, with its no-downgrade rule and an
        // override of a retired tier ended), not as the cut's.
        for id in &moved {
            self.ensure_current(unit, id);
        }
        self.policy = Arc::new(policy);
        for id in &moved {
            if let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, id) {
                unit.changes
                    .extend(state.reevaluate(id, &self.policy, now, Cause::Rank));
                unit.touch(id);
            }
        }
        self.cut_unpublished = false;
        Some(self.policy.clone())
    }

    /// The earliest instant anything is due, if anything is.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.tasks.values().filter_map(Task::first_due).min()
    }

    /// Customers due at or before `horizon`.
    pub fn due_count(&self, horizon: Timestamp) -> usize {
        self.tasks.values().map(|t| t.due_count(horizon)).sum()
    }

    /// Advance up to `budget` customers due at or before `horizon`, oldest
    /// due first (across tasks: the task whose first customer is due
    /// earliest, ties to the lower scope). Returns how many were advanced;
    /// a customer not done in [`MAX_STEPS_PER_CUSTOMER`] decisions stays
    /// due.
    pub fn sweep(&mut self, unit: &mut Unit, horizon: Timestamp, budget: usize) -> usize {
        self.swept_to = Some(self.swept_to.map_or(horizon, |s| s.max(horizon)));
        let mut n = 0;
        while n < budget {
            let Some(id) = self
                .tasks
                .iter_mut()
                .filter_map(|(scope, t)| Some((t.first_due()?, *scope, t)))
                .min_by_key(|(when, scope, _)| (*when, *scope))
                .and_then(|(_, _, t)| t.pop_due(horizon))
            else {
                break;
            };
            n += 1;
            self.ensure_current(unit, &id);
            let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, &id) else {
                continue;
            };
            let before = state.decided_at;
            let (changes, _) = state.advance_to(&id, &self.policy, horizon, MAX_STEPS_PER_CUSTOMER);
            // Any decision changes the state (its instant, score, an
            // override that expired without moving the tier): stored.
            let moved = !changes.is_empty() || state.decided_at != before;
            unit.changes.extend(changes);
            let overdue = state.announce_overdue(&id, horizon);
            for n in overdue.iter().filter(|n| n.resolved_at.is_none()) {
                *self
                    .overdue_open
                    .entry(n.deadline.tier.clone())
                    .or_insert(0) += 1;
                unit.overdue_moved = true;
            }
            let moved = moved || !overdue.is_empty();
            unit.overdue.extend(overdue);
            let notice = self.check_at_risk(&id, horizon);
            if moved || notice != Notice::Same {
                unit.touch(&id);
            }
            if let Notice::New(r) = notice {
                unit.at_risk.push(r);
            }
            unit.swept += 1;
            // Re-indexed now (not at seal) so this sweep does not take it
            // up again; a customer left short of the horizon is due at once.
            self.reindex(&id);
        }
        n
    }

    /// Recompute the at-risk notice of `id` as of `now` (see [`Notice`]).
    fn check_at_risk(&mut self, id: &str, now: Timestamp) -> Notice {
        let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, id) else {
            return Notice::Same;
        };
        let found = state.foresee_drop(id, &self.policy, now);
        let outcome = match (&found, state.at_risk.as_deref()) {
            (None, None) => return Notice::Same,
            (Some(f), Some(held)) if f == held => return Notice::Same,
            (Some(f), Some(held))
                if f.current_tier == held.current_tier
                    && f.falls_to == held.falls_to
                    && f.on == held.on =>
            {
                Notice::Refreshed
            }
            (Some(f), _) => Notice::New(f.clone()),
            (None, Some(_)) => Notice::Withdrawn,
        };
        state.at_risk = found.map(Box::new);
        outcome
    }

    /// Check again the notices of the customers the unit's events moved
    /// (see [`Engine::recheck_notice`]); the pipeline's seal does it, a
    /// caller driving the engine by hand calls it before
    /// [`Engine::seal`].
    pub fn recheck_notices(&mut self, unit: &mut Unit) {
        let mut ids = std::mem::take(&mut unit.notices_to_check);
        // Once each (a rescore slice may name thousands).
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.recheck_notice(unit, &id);
        }
    }

    /// An event or command moved `id`'s figures: a notice out for it is
    /// checked again at once, as of the later of the last sweep and its
    /// decision (an order in time withdraws it, a return may bring the
    /// drop closer, a pin may cancel it), not at the next day's check.
    /// Nothing before the first sweep: notices wait for time sweeps.
    fn recheck_notice(&mut self, unit: &mut Unit, id: &str) {
        let Some(today) = self.swept_to else {
            return;
        };
        let Some(decided_at) = locate(&mut self.tasks, &self.scopes, self.epoch, id)
            .filter(|s| s.at_risk.is_some())
            .map(|s| s.decided_at)
        else {
            return;
        };
        match self.check_at_risk(id, today.max(decided_at)) {
            Notice::Same => {}
            Notice::New(r) => {
                unit.touch(id);
                unit.at_risk.push(r);
            }
            Notice::Refreshed | Notice::Withdrawn => unit.touch(id),
        }
    }

    /// Put `id` in the due index at its next due instant, or the next
    /// at-risk check (the start of the day after the last sweep) for a
    /// customer above the lowest tier, whichever is first.
    fn reindex(&mut self, id: &str) {
        let Some(scope) = self.scopes.get(id).copied() else {
            return;
        };
        let Some(task) = self.tasks.get_mut(&scope) else {
            return;
        };
        let next = task
            .get(id)
            .and_then(|state| due_at(&self.policy, self.swept_to, &state));
        task.index(id, next);
    }

    /// Advance `id` to `at` and make its decisions due by then (commands
    /// act on a current customer), when time sweeps would: not while
    /// catching up on a backlog (a customer is not downgraded for want of
    /// events still in it) nor with time sweeps off (never with time
    /// alone). The command then acts on the tier last decided.
    fn bring_to(&mut self, unit: &mut Unit, id: &str, at: Timestamp) {
        if !self.commands_decide_time {
            return;
        }
        if let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, id) {
            let before = state.decided_at;
            let (changes, _) = state.advance_to(id, &self.policy, at, usize::MAX);
            if !changes.is_empty() || state.decided_at != before {
                unit.touch(id);
            }
            unit.changes.extend(changes);
        }
    }

    /// A manager's override, effective at `now` (or the customer's last
    /// decision, when later). A customer tierd has not seen yet gets a
    /// state holding just the override.
    pub fn set_override(
        &mut self,
        unit: &mut Unit,
        cmd: SetOverride,
        now: Timestamp,
    ) -> Result<Option<TierChange>, CommandError> {
        if cmd.customer_id.trim().is_empty() {
            return Err(CommandError::EmptyCustomerId);
        }
        self.ensure_current(unit, &cmd.customer_id);
        // Checked before anything moves: a refused command changes nothing
        // (the time-driven decisions it would make first among it).
        let decided_at = locate(&mut self.tasks, &self.scopes, self.epoch, &cmd.customer_id)
            .map(|s| s.decided_at);
        let o = Override {
            tier: cmd.tier,
            mode: cmd.mode,
            reason: cmd.reason,
            author: cmd.author,
            set_at: decided_at.map_or(now, |d| now.max(d)),
            expires_at: cmd.expires_at,
        };
        o.check(&self.policy)?;
        let advanced = self.commands_decide_time;
        self.bring_to(unit, &cmd.customer_id, now);
        // A customer tierd has not seen yet is unscoped until its records
        // arrive (see the `scope` module).
        let scope = self.scope_of(&cmd.customer_id);
        let task = self.tasks.entry(scope).or_default();
        let known = task.contains(&cmd.customer_id);
        let state = match task.get_mut(&cmd.customer_id, self.epoch) {
            Some(s) => s,
            None => task.insert_new(cmd.customer_id.clone(), self.epoch).1,
        };
        let at = o.set_at;
        let result = state.set_override(&cmd.customer_id, &self.policy, o);
        // The decision is as of the command only when the customer was
        // brought to it: otherwise its figures stay those of the tier last
        // decided, and the events still in the backlog are decided at
        // their own instants.
        // (A customer never decided has no figures to keep: as of the
        // command.)
        if result.is_ok() && (advanced || state.assignment.is_none()) && state.decided_at < at {
            state.decided_at = at;
        }
        if result.is_ok() {
            self.scopes.insert(cmd.customer_id.as_str().into(), scope);
        } else if !known {
            task.remove(&cmd.customer_id);
        }
        let change = result?;
        unit.touch(&cmd.customer_id);
        unit.changes.extend(change.clone());
        self.recheck_notice(unit, &cmd.customer_id);
        self.reindex(&cmd.customer_id);
        Ok(change)
    }

    /// Record an assessment made at `now`, exactly as a `CustomerAssessed`
    /// event of that instant would be (its event id names the command:
    /// `tierd-admin:{customer}:{indicator}:{millis}:{n}`, the `n`th of the
    /// indicator at that instant, so that a correction at the same instant
    /// is an event of its own). Returns the change of the effective tier it caused,
    /// if any.
    pub fn set_assessment(
        &mut self,
        unit: &mut Unit,
        cmd: SetAssessment,
        now: Timestamp,
    ) -> Result<Option<TierChange>, CommandError> {
        if cmd.customer_id.trim().is_empty() {
            return Err(CommandError::EmptyCustomerId);
        }
        self.policy
            .assessments()
            .check(&cmd.indicator, cmd.value)
            .map_err(|e| CommandError::Assessment {
                field: if e.field.ends_with("value") {
                    "value"
                } else {
                    "indicator"
                },
                reason: e.detail,
            })?;
        // The how-manyth assessment of the indicator at this instant: two
        // commands of one batch share its `now` (as may two runs, the
        // clock stepped back between them), and the second is a correction
        // of its own, not a resend of the first.
        let n = 1 + self.customer(&cmd.customer_id).map_or(0, |state| {
            state
                .projection
                .assessment_history()
                .iter()
                .filter(|a| a.assessed_at == now && a.indicator == cmd.indicator)
                .count()
        });
        let event = Event {
            event_id: format!(
                "tierd-admin:{}:{}:{}:{n}",
                cmd.customer_id,
                cmd.indicator,
                now.millis(),
            ),
            customer_id: cmd.customer_id.clone(),
            occurred_at: now,
            source: "tierd-admin".into(),
            kind: EventKind::CustomerAssessed {
                indicator: cmd.indicator,
                value: cmd.value,
                assessed_by: cmd.assessed_by,
                note: cmd.note,
            },
        };
        let before = unit.changes.len();
        self.fold(unit, &event);
        self.reindex(&cmd.customer_id);
        Ok(unit.changes[before..]
            .iter()
            .rev()
            .find(|c| c.customer_id == cmd.customer_id && c.cause == Cause::Event)
            .cloned())
    }

    /// Clear a customer's override at `now`.
    pub fn clear_override(
        &mut self,
        unit: &mut Unit,
        customer_id: &str,
        reason: &str,
        author: &str,
        now: Timestamp,
    ) -> Result<Option<TierChange>, CommandError> {
        if customer_id.trim().is_empty() {
            return Err(CommandError::EmptyCustomerId);
        }
        self.ensure_current(unit, customer_id);
        // Checked before anything moves (see `set_override`); an override
        // that expires on the way to `now` is then not there to clear.
        let nothing = || {
            CommandError::from(OverrideError::NothingToClear {
                customer_id: customer_id.to_owned(),
            })
        };
        let state = locate(&mut self.tasks, &self.scopes, self.epoch, customer_id);
        if state.is_none_or(|s| s.manual().is_none()) {
            return Err(nothing());
        }
        tier_core::overrides::check_signed(reason, author)?;
        self.bring_to(unit, customer_id, now);
        let Some(state) = locate(&mut self.tasks, &self.scopes, self.epoch, customer_id) else {
            return Err(nothing());
        };
        let at = now.max(state.decided_at);
        let change = state.clear_override(customer_id, &self.policy, reason, author, at)?;
        unit.touch(customer_id);
        unit.changes.extend(change.clone());
        self.recheck_notice(unit, customer_id);
        self.reindex(customer_id);
        Ok(change)
    }

    /// What applying `policy` at `at` would do, changing nothing: every
    /// customer is rescored on a copy exactly as [`Engine::rescore`] will.
    pub fn dry_run(&self, policy: &Policy, at: Timestamp, sample: usize) -> DryRun {
        // An abc policy, or one reading rfm_* scores, grades against the
        // population ranked its way now.
        let (cut, _, _) = self.cut_population(policy);
        let policy = &cut;
        let mut cells: BTreeMap<(Option<String>, String), u64> = BTreeMap::new();
        let mut movers = 0;
        let mut ids: Vec<&CustomerId> = self.scopes.keys().collect();
        ids.sort_unstable();
        let mut picked = Vec::new();
        for id in ids {
            let Some(state) = self.customer(id) else {
                continue;
            };
            let mut copy = CustomerState::clone(&state);
            let from = state.tier().map(str::to_owned);
            let change = copy.reevaluate(id, policy, at, Cause::Policy);
            let Some(to) = copy.tier().map(str::to_owned) else {
                continue;
            };
            *cells.entry((from.clone(), to.clone())).or_insert(0) += 1;
            if from.as_deref() != Some(to.as_str()) {
                movers += 1;
                if picked.len() < sample {
                    picked.push(Mover {
                        customer_id: id.to_string(),
                        old_score: state.effective.as_ref().map_or(0.0, |e| e.score),
                        new_score: copy.effective.as_ref().map_or(0.0, |e| e.score),
                        reasons: change.map(|c| c.reasons).unwrap_or_default(),
                        from,
                        to,
                    });
                }
            }
        }
        let rank = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| policy.tier_index(t))
                .unwrap_or(usize::MAX)
        };
        let mut matrix: Vec<Cell> = cells
            .into_iter()
            .map(|((from, to), customers)| Cell {
                from,
                to,
                customers,
            })
            .collect();
        matrix.sort_by(|a, b| {
            (rank(&a.from), &a.from, rank(&Some(a.to.clone())), &a.to).cmp(&(
                rank(&b.from),
                &b.from,
                rank(&Some(b.to.clone())),
                &b.to,
            ))
        });
        DryRun {
            version: policy.version().to_owned(),
            matrix,
            movers,
            sample: picked,
            as_of: at,
        }
    }

    /// The rescore queue of the customers `queued` picks, each with its
    /// task: task by task, each in the order its table holds them (popped
    /// from the end; a table's entries lie in one vector, see the `dense`
    /// module), not by id. The rescore then walks each table's memory in
    /// order instead of jumping across it customer by customer (on
    /// 1,000,000 customers held in hash tables, walking them in table
    /// order measured about 1.3x faster than in id order).
    fn rescore_queue(&self, queued: impl Fn(&str) -> bool) -> Vec<Queued> {
        let mut queue = Vec::new();
        for (scope, task) in &self.tasks {
            queue.extend(
                task.positions()
                    .filter(|(_, id)| queued(id))
                    .map(|(position, id)| Queued {
                        scope: *scope,
                        id: id.clone(),
                        position,
                    }),
            );
        }
        queue
    }

    /// Make `policy` the policy in force at `at`: events and sweeps use it
    /// at once, and every customer is queued for a background rescore
    /// (see [`Engine::rescore`]).
    pub fn apply_policy(&mut self, policy: Arc<Policy>, at: Timestamp) {
        let queue = self.rescore_queue(|_| true);
        // Confirmations under the policy replaced hold no more: those
        // customers are held as their bytes say, and rescored.
        for task in self.tasks.values_mut() {
            task.clear_confirmations();
        }
        self.policy = policy;
        self.confirmed = Confirmed {
            at: Some(at),
            ..Confirmed::none(self.policy.version())
        };
        // Recorded with the unit that applies the policy.
        self.confirmations_unrecorded = false;
        self.rank_all(at);
        self.applied_at = Some(at);
        self.rescore = Some(Rescore::new(self.policy.version(), at, queue, self.epoch));
    }

    /// Rescore up to `budget` customers under the policy in force (cause
    /// `Policy`); returns how many. Customers an event already moved to
    /// the new policy are skipped.
    ///
    /// A customer whose decision stands is not written: the unit lists it
    /// under [`Unit::confirmed`] for the read side, and the unit that
    /// takes the last customer stores which scopes are covered
    /// ([`Unit::confirmations`], see the `confirmed` module).
    pub fn rescore(&mut self, unit: &mut Unit, budget: usize) -> usize {
        let Some(r) = &self.rescore else {
            return 0;
        };
        if r.queue.is_empty() {
            return 0;
        }
        // Customers queued in this very unit may have been touched before
        // it, under the policy replaced: the seal must look.
        if r.queued_in == self.epoch {
            unit.confirmed_may_be_touched |= !unit.touched_set.is_empty();
        }
        // Most customers are confirmed: room for them up front, in a
        // buffer a unit before used if the committer handed one back.
        if unit.confirmed.capacity() == 0
            && let Some(buffer) = self.confirmed_buffers.take()
        {
            unit.confirmed = buffer;
        }
        unit.confirmed.reserve(budget.min(r.queue.len()));
        let mut n = 0;
        while n < budget {
            let Some(queued) = self.rescore.as_mut().and_then(|r| r.queue.pop()) else {
                break;
            };
            n += 1;
            if let Some(r) = &mut self.rescore {
                r.done += 1;
                // The customer TOUCH_AHEAD places on: its bytes are on
                // their way into the cache while this one is decided.
                if let Some(q) = r
                    .queue
                    .len()
                    .checked_sub(TOUCH_AHEAD)
                    .and_then(|i| r.queue.get(i))
                    && let Some(task) = self.tasks.get(&q.scope)
                {
                    task.touch_near(&q.id, q.position);
                }
            }
            // Skipped when an event, sweep or command rescored it already.
            self.rescore_queued(unit, queued);
        }
        if n > 0
            && let Some(r) = &self.rescore
            && r.queue.is_empty()
        {
            // Every customer in memory was visited: their scopes are
            // covered (a scope covered before keeps its instant).
            for scope in self.tasks.keys() {
                self.confirmed.scopes.entry(*scope).or_insert(r.at);
            }
            unit.confirmations = Some(self.confirmed.clone());
        }
        n
    }

    /// Rescore the customer `queued` names, taken off the rescore queue,
    /// as [`Engine::rescore_one`] does, except that a cold
    /// customer whose decision stands is not decoded in place: its bytes
    /// stay, marked confirmed.
    fn rescore_queued(&mut self, unit: &mut Unit, queued: Queued) {
        let Queued {
            scope: queued_in,
            id,
            position,
        } = queued;
        let Some(r) = &mut self.rescore else {
            return;
        };
        // Still in that task unless a rebalance moved it since (and most
        // likely where it was: an entry moves only when one is removed).
        let (scope, hint) = match self
            .tasks
            .get(&queued_in)
            .and_then(|t| t.position_near(&id, position))
        {
            Some(at) => (queued_in, at),
            None => match self.scopes.get(id.as_str()) {
                Some(scope) => (*scope, NO_HINT),
                None => return,
            },
        };
        let Some(task) = self.tasks.get_mut(&scope) else {
            return;
        };
        let policy = &self.policy;
        let version = policy.version();
        let swept_to = self.swept_to;
        // The rescored state when confirmed (for the read side); the
        // instant a customer held decoded is due next.
        let (rescored, confirmed, hot_due) = match task.rescore_view(&id, hint) {
            None | Some(Held::Confirmed) => return,
            Some(Held::Hot(state)) => {
                if state.policy_version == version {
                    return;
                }
                let rescored = state.rescore_policy(&id, policy, r.at);
                if state.at_risk.is_some() {
                    unit.check_notice(&id);
                }
                let due = due_at(policy, swept_to, state);
                // For the read side, which reads no applied id or order.
                let copy = rescored.confirmed.then(|| state.clone_deciding_only());
                (rescored, copy, Some(due))
            }
            Some(Held::Cold(visit)) => {
                // Decided from what decisions read (most customers'
                // decisions stand, and their bytes stay as they are).
                let mut state = Slot::decode_deciding_only(visit.bytes());
                if state.policy_version == version {
                    // Decided under this very version (a change back to a
                    // policy in force before): the decision its bytes hold
                    // stands, and the read side, which may show it as a
                    // policy since replaced confirmed it, is shown it.
                    unit.confirmed.push((id, state));
                    return;
                }
                let rescored = state.rescore_policy(&id, policy, r.at);
                if state.at_risk.is_some() {
                    unit.check_notice(&id);
                }
                if rescored.confirmed {
                    let due = due_at(policy, swept_to, &state);
                    visit.confirm(&r.confirmation, due);
                    (rescored, Some(state), None)
                } else {
                    // Moved: decoded in full and rescored again (the same
                    // decision: it reads nothing the first decode left
                    // out), then held decoded, as any customer a unit
                    // changes.
                    let mut state = Slot::decode(visit.bytes());
                    let rescored = state.rescore_policy(&id, policy, r.at);
                    let due = due_at(policy, swept_to, &state);
                    task.insert(id.clone(), state, self.epoch);
                    (rescored, None, Some(due))
                }
            }
        };
        if let Some(due) = hot_due {
            task.index(&id, due);
        }
        if rescored.change.is_some() {
            r.changed += 1;
        }
        unit.changes.extend(rescored.change);
        unit.rescored += 1;
        match confirmed {
            Some(state) => unit.confirmed.push((id, state)),
            // Queued once, so not confirmed in this unit (which holds the
            // slices of one policy's rescore).
            None => unit.touch_unconfirmed_at(&id, None),
        }
    }

    /// Where a committer hands this engine's emptied [`Unit::confirmed`]
    /// buffers back ([`CommitterDeps::confirmed_buffers`]).
    pub fn confirmed_buffers(&self) -> ConfirmedBuffers {
        self.confirmed_buffers.clone()
    }

    /// The policy in force and the progress of its rescore.
    pub fn status(&self) -> PolicyStatus {
        let (rescoring, rescored, total, changed) = match &self.rescore {
            Some(r) => (!r.queue.is_empty(), r.done, r.total, r.changed),
            None => (false, 0, 0, 0),
        };
        PolicyStatus {
            version: self.policy.version().to_owned(),
            rescoring,
            rescored,
            total,
            changed,
            applied_at: self.applied_at,
        }
    }

    /// Whether a rescore has customers left.
    pub fn rescoring(&self) -> bool {
        self.rescore.as_ref().is_some_and(|r| !r.queue.is_empty())
    }

    /// Open complaints past their deadline, per tier of the deadline
    /// (every tier of the policy, zeros included).
    pub fn overdue_by_tier(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = self
            .policy
            .tiers()
            .iter()
            .map(|t| (t.name.clone(), 0))
            .collect();
        for (tier, n) in &self.overdue_open {
            match out.iter_mut().find(|(t, _)| t == tier) {
                Some((_, m)) => *m += n,
                None => out.push((tier.clone(), *n)),
            }
        }
        out
    }

    /// Customers with a drop announced (exact after a seal: each task
    /// counts its customers as it settles, cools, inserts and removes
    /// them, so the gauge set at every seal visits no customer).
    pub fn at_risk_count(&self) -> usize {
        let counted = self.tasks.values().map(Task::at_risk_len).sum();
        debug_assert_eq!(
            counted,
            self.tasks
                .values()
                .flat_map(Task::iter)
                .filter(|(_, slot)| slot.at_risk())
                .count(),
            "the tasks' at-risk counts agree with their customers"
        );
        counted
    }
}

/// `id`'s state in its task (a free function, so a caller can hold it
/// while reading the engine's other fields).
fn locate<'a>(
    tasks: &'a mut BTreeMap<Scope, Task>,
    scopes: &IdTable<Scope>,
    epoch: u64,
    id: &str,
) -> Option<&'a mut CustomerState> {
    let scope = scopes.get(id)?;
    tasks.get_mut(scope)?.get_mut(id, epoch)
}

/// The next instant the sweeper must look at `state`: its next due
/// instant or complaint deadline, or the next at-risk check (the start of
/// the day after the last sweep, `swept_to`) for a customer above the
/// lowest tier, whichever is first.
fn due_at(
    policy: &Policy,
    swept_to: Option<Timestamp>,
    state: &CustomerState,
) -> Option<Timestamp> {
    let mut next = state.next_due(policy);
    if let Some(d) = state.projection.next_complaint_deadline() {
        next = Some(next.map_or(d, |n| n.min(d)));
    }
    let lowest = policy.tiers().len().saturating_sub(1);
    let above_lowest = state
        .effective
        .as_ref()
        .and_then(|e| policy.tier_index(&e.tier))
        .is_some_and(|i| i < lowest);
    if above_lowest {
        let from = swept_to.unwrap_or(state.decided_at).max(state.decided_at);
        let cal = policy.calendar();
        let check = cal.day_start(cal.day(from).plus(1));
        next = Some(next.map_or(check, |n| n.min(check)));
    }
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tier_core::sim::scenario::order;
    use tier_core::time::date;

    impl Engine {
        /// Whether `id` is held decoded.
        fn is_hot(&self, id: &str) -> bool {
            let scope = self.scopes.get(id).unwrap();
            let (_, slot) = self.tasks[scope].slot(id).unwrap();
            slot.hot().is_some()
        }
    }

    /// Customer `i` lives in partition `i % 5`.
    fn touch(engine: &mut Engine, i: usize, n: usize) -> Unit {
        let mut unit = Unit::new();
        let at = date(2026, 3, 1);
        let e = order(&format!("c{i}"), n, at, 100_000);
        engine.fold_from(&mut unit, &e, None, (i % 5) as i32);
        unit
    }

    #[test]
    fn a_seal_cools_the_least_recently_used_customers_across_every_partition() {
        const HOT: usize = 4;
        let policy = Arc::new(Policy::default_policy());
        let mut engine = Engine::with_scopes(policy, Vec::new(), date(2026, 3, 1), HOT);
        // Used in this order, one unit each: c0, c1, ..., c11, then c2
        // again and c7 again.
        let mut order_of_use: Vec<usize> = (0..12).collect();
        order_of_use.extend([2, 7]);
        for (n, &i) in order_of_use.iter().enumerate() {
            let unit = touch(&mut engine, i, n);
            engine.seal(&unit);
            // Hot: exactly the HOT customers used last (each once).
            let mut last: Vec<usize> = Vec::new();
            for &j in order_of_use[..=n].iter().rev() {
                if !last.contains(&j) {
                    last.push(j);
                }
            }
            last.truncate(HOT);
            for j in 0..12.min(n + 1) {
                assert_eq!(
                    engine.is_hot(&format!("c{j}")),
                    last.contains(&j),
                    "after use {n} (c{i}): c{j}, hot should be {last:?}"
                );
            }
            assert_eq!(engine.hot_customers(), HOT.min(n + 1));
        }
    }

    #[test]
    fn a_seal_keeps_its_own_customers_decoded_beyond_the_limit() {
        let policy = Arc::new(Policy::default_policy());
        let mut engine = Engine::with_scopes(policy, Vec::new(), date(2026, 3, 1), 2);
        let mut unit = Unit::new();
        for i in 0..6 {
            let e = order(&format!("c{i}"), i, date(2026, 3, 1), 100_000);
            engine.fold_from(&mut unit, &e, None, (i % 5) as i32);
        }
        engine.seal(&unit);
        assert_eq!(engine.hot_customers(), 6, "the unit's customers stay hot");
        let next = touch(&mut engine, 9, 9);
        engine.seal(&next);
        // Back to the limit: c9 and one of the six (used in one unit, so
        // equally recent).
        let hot = (0..6).filter(|j| engine.is_hot(&format!("c{j}"))).count();
        assert_eq!(hot, 1);
        assert!(engine.is_hot("c9"));
        assert_eq!(engine.hot_customers(), 2);
    }

    #[test]
    fn a_customer_cooled_after_its_commit_keeps_the_value_the_commit_stores() {
        let policy = Arc::new(Policy::default_policy());
        let mut engine = Engine::with_scopes(policy, Vec::new(), date(2026, 3, 1), 1);
        let key = ("orders".to_owned(), 0);
        let seal = |engine: &mut Engine, i: usize| {
            let mut batch = Batch::new();
            let e = order(&format!("c{i}"), i, date(2026, 3, 1), 100_000);
            batch.record(&key, i as i64, e.kind.type_name());
            engine.fold_from(&mut batch.unit, &e, None, 0);
            engine.seal_batch(batch, Vec::new(), SealInfo::default())
        };
        let sealed = seal(&mut engine, 0);
        fn slot(engine: &Engine) -> &task::Slot {
            let scope = engine.scopes.get("c0").unwrap();
            engine.tasks[scope].slot("c0").unwrap().1
        }
        let value = match slot(&engine) {
            task::Slot::Hot { stored, .. } => stored.clone().expect("c0 holds its value"),
            task::Slot::Cold { .. } => panic!("c0 was touched, so it is hot"),
        };
        // Held beside the state: the value of c0's commit.
        let committed = sealed.customers.as_ref().unwrap();
        assert_eq!((committed.len(), committed.bytes()), (1, value.len()));
        let body = tier_store::current_body(&value).unwrap();
        let encoded = |engine: &Engine| {
            postcard::to_allocvec(engine.customer("c0").unwrap().as_ref()).unwrap()
        };
        assert_eq!(encoded(&engine), body, "the state's stored form");

        // Cooled by c1's seal (hot limit 1): its cold bytes are the value's
        // body, and read back as the state.
        seal(&mut engine, 1);
        assert!(engine.is_hot("c1"));
        match slot(&engine) {
            task::Slot::Cold { bytes, .. } => assert_eq!(&bytes[..], body),
            task::Slot::Hot { .. } => panic!("c0 was cooled"),
        }
        assert_eq!(encoded(&engine), body);
    }
}

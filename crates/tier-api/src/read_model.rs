//! The read model: the latest committed view of every customer, in memory.
//!
//! The ingest pipeline publishes a view per touched customer after each
//! durable batch commit (and fills the model in bulk at start-up); the
//! API only reads. The views of a batch are built as the engine seals it
//! ([`ReadModel::prepare`], no lock, nothing visible) and inserted once it
//! is durable ([`ReadModel::publish_prepared`]). Views are immutable and
//! shared as `Arc`s, so a reader never blocks a writer for longer than a
//! map lookup.
//!
//! The model holds a million customers or more, so a view is held compact
//! ([`View`]: shared strings, packed indicators, no allocation for what a
//! customer does not have); [`CustomerView`] is the same view in full,
//! what tests and [`ReadModel::upsert`] hand in and
//! [`View::to_customer_view`] gives back.
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
//!
//! For the lists and reports (see [`crate::reports`]) each customer also
//! has a [`Book`] (account manager, exact 12-month revenue and margin),
//! built with the view at commit time ([`ReadModel::publish`]), and the
//! model keeps, as it goes rather than per request:
//! - an ordered index of every customer id, so a page of `ListCustomers`
//!   is a range read from the last id seen (ids are never removed);
//! - per shard, [`Totals`]: customers, revenue and margin per (held tier,
//!   account manager), updated by each replace (the old view's figures
//!   out, the new one's in), so a distribution merges 64 small maps
//!   instead of reading every customer.
//!
//! Writers take a shard's write lock for the inserts of one batch, then
//! the index's write lock only when the batch brought new customers.
//! Readers take each lock for a bounded read (a chunk of ids, one entry,
//! one shard's totals), so a report never holds the engine's commit up
//! for longer than that.
//!
//! The population gradings' rankings sit behind one lock that every
//! writer holds for its whole unit. Answers never wait for it: whoever
//! cuts (a writer once the cut points are due, or the first reader to find
//! them due while no writer holds the rankings) publishes the cut points
//! in an [`ArcSwapOption`], which a reader loads without a lock. A reader
//! takes the lock only for a policy whose gradings the rankings are not
//! yet built or carried for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};
use std::time::Instant;

use arc_swap::ArcSwapOption;

use tier_core::overrides::{Override, OverrideEntry};
use tier_core::policy::Policy;

use crate::gradings::{GradingCuts, Monotonic, Population};
use crate::name::{Name, intern};
use tier_core::indicators::KeptIndicators;
use tier_core::projection::assessments::Assessment;
use tier_core::projection::{CustomerId, CustomerMap, Deadline, Fnv};
use tier_core::state::{AtRisk, Cause, CustomerState, Lifecycle, TierStep};
use tier_core::{Indicators, Severity, Timestamp};

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
    /// The open complaints, by id.
    pub complaints: Arc<[OpenComplaint]>,
    /// Every change of the effective tier kept, oldest first.
    pub history: Arc<[TierStep]>,
    /// The last order that still counts (RFM recency).
    pub last_order_at: Option<Timestamp>,
    /// The assessments in force (or expired, until replaced), by indicator.
    pub assessments: Arc<[Assessment]>,
    /// Every assessment kept (see tier-core's assessment history).
    pub assessment_history: Arc<[Assessment]>,
}

/// An open complaint as the lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenComplaint {
    pub id: String,
    pub severity: Severity,
    pub category: String,
    pub opened_at: Timestamp,
    /// Fixed at the opening (none only for a complaint opened before
    /// deadlines existed, which a data dir of this schema cannot hold).
    pub deadline: Option<Deadline>,
    /// Announced past its deadline.
    pub overdue: bool,
}

impl CustomerView {
    /// The view of a committed customer state: the effective decision,
    /// the figures behind it (at its instant) and its relation. `None`
    /// before the customer's first decision. (The model holds it as a
    /// [`View`]; this is that view in full.)
    pub fn from_state(state: &CustomerState, policy: &Policy) -> Option<Self> {
        View::from_state(state, policy).map(|v| v.to_customer_view())
    }
}

/// What the model holds per customer: a [`CustomerView`] and its [`Book`],
/// compact. Strings that repeat across customers (tiers, the policy
/// version, account managers) are shared [`Name`]s (one pointer each),
/// the indicators are packed as a customer state keeps them (tier-core's
/// `KeptIndicators`: every figure exactly, whole ones in a byte or a
/// few), the tier history's steps name their tiers by [`Name`] too, lists
/// are boxed slices (an empty one allocates nothing) and what few
/// customers have (an override, an at-risk notice, open complaints,
/// assessments) is behind one optional box. Every accessor gives back
/// exactly what the full view holds ([`View::to_customer_view`]).
///
/// 144 bytes, so a view and its `Arc`'s counts fill one 160-byte
/// allocation (the test `a_view_fills_one_160_byte_allocation` holds it
/// there): a million customers' views are about 150 MiB.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The tier held (an override's tier when `overridden`).
    pub tier: Name,
    /// The score at `scored_at`.
    pub score: f64,
    /// When the customer entered `tier`.
    pub since: Timestamp,
    /// Sequence number of the customer's last tier change.
    pub sequence: u64,
    /// The decision instant the indicators and `score` are as of.
    pub scored_at: Timestamp,
    /// Version of the policy that made the decision.
    pub policy_version: Name,
    /// Whether `tier` was set by a manager rather than computed.
    pub overridden: bool,
    /// The lifecycle stage at the decision instant.
    pub lifecycle: Option<Lifecycle>,
    /// Who looks after the customer and what it brought in.
    pub book: Book,
    /// The last order that still counts, when `has_last_order` (an
    /// `Option<Timestamp>` would take 8 bytes more: the flag sits in the
    /// padding beside `overridden`); see [`View::last_order_at`].
    has_last_order: bool,
    last_order_at: Timestamp,
    /// As [`Relation::computed_tier`] (empty: same as `tier`).
    computed_tier: Name,
    indicators: KeptIndicators,
    history: Box<[Step]>,
    more: Option<Box<More>>,
}

/// A step of a view's tier history, its tiers named by shared [`Name`]s:
/// 48 bytes, where a [`TierStep`] holds both names inline in 80.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    at: Timestamp,
    score: f64,
    sequence: u64,
    /// `None`: the customer's first tier.
    from: Option<Name>,
    to: Name,
    cause: Cause,
    overridden: bool,
}

impl Step {
    /// The step `s`, its tier names shared: `held` (the view's tier, the
    /// name most steps give) when equal, else interned.
    fn new(s: &TierStep, held: &Name) -> Self {
        let name = |t: &str| {
            if **held == *t {
                held.clone()
            } else {
                intern(t)
            }
        };
        Step {
            at: s.at,
            score: s.score,
            sequence: s.sequence,
            from: s.from.as_deref().map(name),
            to: name(&s.to),
            cause: s.cause,
            overridden: s.overridden,
        }
    }

    fn get(&self) -> TierStep {
        TierStep {
            at: self.at,
            from: self.from.as_deref().map(Into::into),
            to: (&*self.to).into(),
            score: self.score,
            cause: self.cause,
            overridden: self.overridden,
            sequence: self.sequence,
        }
    }
}

/// The parts of a [`Relation`] few customers have; `None` in a [`View`]
/// when all are empty.
#[derive(Debug, Clone, PartialEq, Default)]
struct More {
    manual: Option<Override>,
    override_history: Box<[OverrideEntry]>,
    at_risk: Option<AtRisk>,
    complaints: Box<[OpenComplaint]>,
    assessments: Box<[Assessment]>,
    assessment_history: Box<[Assessment]>,
}

impl More {
    fn is_empty(&self) -> bool {
        self.manual.is_none()
            && self.override_history.is_empty()
            && self.at_risk.is_none()
            && self.complaints.is_empty()
            && self.assessments.is_empty()
            && self.assessment_history.is_empty()
    }

    fn boxed(self) -> Option<Box<Self>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

impl View {
    /// The view and book of a committed customer state (see
    /// [`CustomerView::from_state`] and [`Book::from_state`]), `None`
    /// before the customer's first decision.
    pub fn from_state(state: &CustomerState, policy: &Policy) -> Option<Self> {
        let e = state.effective.as_ref()?;
        let computed = state.assignment.as_ref();
        // The figures of the decision itself (at its instant), so every
        // answer describes it.
        let indicators = state.indicators(policy);
        let book = Book::from_state(state, policy, &indicators);
        let more = More {
            manual: state.manual().cloned(),
            override_history: state.override_history().into(),
            at_risk: state.at_risk.as_deref().cloned(),
            complaints: state
                .projection
                .complaints()
                .filter(|(_, c)| c.is_open())
                .filter_map(|(id, c)| {
                    Some(OpenComplaint {
                        id: id.to_owned(),
                        severity: c.severity,
                        category: c.category.clone(),
                        opened_at: c.opened_at?,
                        deadline: c.deadline.clone(),
                        overdue: c.overdue_announced,
                    })
                })
                .collect(),
            assessments: state.projection.assessments().cloned().collect(),
            assessment_history: state.projection.assessment_history().into(),
        };
        let last_order_at = state.projection.last_order_at();
        let tier = intern(&e.tier);
        Some(View {
            history: state
                .tier_history()
                .iter()
                .map(|s| Step::new(s, &tier))
                .collect(),
            tier,
            score: e.score,
            since: e.since,
            sequence: state.sequence,
            scored_at: state.decided_at,
            policy_version: intern(&state.policy_version),
            overridden: computed.is_none_or(|c| c.tier != e.tier)
                || state.manual().is_some_and(|m| m.tier == e.tier),
            lifecycle: Some(state.lifecycle(policy, state.decided_at)),
            has_last_order: last_order_at.is_some(),
            last_order_at: last_order_at.unwrap_or_default(),
            book,
            computed_tier: match computed {
                Some(c) => intern(&c.tier),
                None => intern(&state.computed_tier(policy, &indicators)),
            },
            indicators: KeptIndicators::new(&indicators),
            more: more.boxed(),
        })
    }

    /// A full view with its book, made compact.
    pub fn new(view: CustomerView, book: Book) -> Self {
        let CustomerView {
            tier,
            score,
            since,
            sequence,
            indicators,
            scored_at,
            policy_version,
            overridden,
            relation,
        } = view;
        let Relation {
            computed_tier,
            lifecycle,
            manual,
            override_history,
            at_risk,
            complaints,
            history,
            last_order_at,
            assessments,
            assessment_history,
        } = relation;
        let tier = intern(&tier);
        View {
            history: history.iter().map(|s| Step::new(s, &tier)).collect(),
            tier,
            score,
            since,
            sequence,
            scored_at,
            policy_version: intern(&policy_version),
            overridden,
            lifecycle,
            has_last_order: last_order_at.is_some(),
            last_order_at: last_order_at.unwrap_or_default(),
            book,
            computed_tier: intern(&computed_tier),
            indicators: KeptIndicators::new(&indicators),
            more: More {
                manual,
                override_history: override_history.as_ref().into(),
                at_risk,
                complaints: complaints.as_ref().into(),
                assessments: assessments.as_ref().into(),
                assessment_history: assessment_history.as_ref().into(),
            }
            .boxed(),
        }
    }

    /// The view in full (its book aside).
    pub fn to_customer_view(&self) -> CustomerView {
        CustomerView {
            tier: self.tier.to_string(),
            score: self.score,
            since: self.since,
            sequence: self.sequence,
            indicators: self.indicators(),
            scored_at: self.scored_at,
            policy_version: self.policy_version.to_string(),
            overridden: self.overridden,
            relation: Relation {
                computed_tier: self.computed_tier.to_string(),
                lifecycle: self.lifecycle,
                manual: self.manual().cloned(),
                override_history: self.override_history().into(),
                at_risk: self.at_risk().cloned(),
                complaints: self.complaints().into(),
                history: self.history().into(),
                last_order_at: self.last_order_at(),
                assessments: self.assessments().into(),
                assessment_history: self.assessment_history().into(),
            },
        }
    }

    /// The indicators the score was computed from (unpacked: a copy, no
    /// allocation).
    pub fn indicators(&self) -> Indicators {
        self.indicators.get()
    }

    /// Whether `other` has this view's figures bit for bit: the score, the
    /// last order and the indicators (compared packed, nothing unpacked),
    /// everything a population grading ranks by.
    pub(crate) fn same_figures(&self, other: &View) -> bool {
        self.score.to_bits() == other.score.to_bits()
            && self.last_order_at() == other.last_order_at()
            && self.indicators == other.indicators
    }

    /// The tier the figures give (the held tier when they give the same
    /// one or when no tier was computed).
    pub fn computed_tier(&self) -> &str {
        if self.computed_tier.is_empty() {
            &self.tier
        } else {
            &self.computed_tier
        }
    }

    /// The last order that still counts (RFM recency).
    pub fn last_order_at(&self) -> Option<Timestamp> {
        self.has_last_order.then_some(self.last_order_at)
    }

    /// Every change of the effective tier kept, oldest first (copied out
    /// of the view's compact steps).
    pub fn history(&self) -> Vec<TierStep> {
        self.history_steps().collect()
    }

    /// [`Self::history`] one step at a time, nothing allocated (tier
    /// names of up to 24 bytes are held inline).
    pub fn history_steps(&self) -> impl ExactSizeIterator<Item = TierStep> + '_ {
        self.history.iter().map(Step::get)
    }

    /// The override in force.
    pub fn manual(&self) -> Option<&Override> {
        self.more.as_ref()?.manual.as_ref()
    }

    /// Every override set, cleared or expired, oldest first.
    pub fn override_history(&self) -> &[OverrideEntry] {
        self.more.as_ref().map_or(&[], |m| &m.override_history)
    }

    /// A foreseeable time-driven downgrade, announced, of the tier held:
    /// a notice about a tier the customer has left since (an event, an
    /// override or a rescore moved it before the next daily check) is no
    /// longer true.
    pub fn at_risk(&self) -> Option<&AtRisk> {
        self.more
            .as_ref()?
            .at_risk
            .as_ref()
            .filter(|r| r.current_tier == self.tier.as_str())
    }

    /// The open complaints, by id.
    pub fn complaints(&self) -> &[OpenComplaint] {
        self.more.as_ref().map_or(&[], |m| &m.complaints)
    }

    /// The assessments in force (or expired, until replaced), by indicator.
    pub fn assessments(&self) -> &[Assessment] {
        self.more.as_ref().map_or(&[], |m| &m.assessments)
    }

    /// Every assessment kept.
    pub fn assessment_history(&self) -> &[Assessment] {
        self.more.as_ref().map_or(&[], |m| &m.assessment_history)
    }
}

/// Who looks after a customer and what it brought in over the window, as
/// of the view's decision: what the lists and reports filter and add up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Book {
    /// The account manager of the customer's profile, trimmed; empty when
    /// it has none (the reports' "unassigned" bucket).
    pub account_manager: Name,
    /// Net order amount of the window (returns and cancellations
    /// subtracted), in minor units of the base currency: exact, saturated
    /// at the bounds of `i64`.
    pub revenue_12m: i64,
    /// Gross margin of the window's orders with a known cost, in minor
    /// units; `None` when no order of the window has a known cost (also
    /// when the window has no order, where the `margin_12m` indicator is
    /// 0: such a customer is not among those with a known margin).
    pub margin_12m: Option<i64>,
}

/// An exact sum as `i64`, saturated at its bounds.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Whether some order of the window has a known cost: the margin the
/// book sums. (The `margin_12m` indicator is also known, 0, for a window
/// without orders, which no report should count as a known margin.)
fn margin_known(indicators: &Indicators) -> bool {
    indicators.margin_rate_12m.is_some()
}

/// A money figure carried as `f64` (integral minor units) as `i64`:
/// exact below 2^53 minor units, saturated at the bounds of `i64`, 0 for
/// NaN.
fn minor_of(v: f64) -> i64 {
    v.round() as i64
}

impl Book {
    /// The book of a committed customer state whose view has
    /// `indicators`: the profile's account manager and the window's exact
    /// sums at the decision instant.
    pub fn from_state(state: &CustomerState, policy: &Policy, indicators: &Indicators) -> Self {
        let rules = policy.fold_rules();
        let at = state.decided_at;
        let projection = &state.projection;
        Book {
            account_manager: match projection.profile().map(|p| p.account_manager.trim()) {
                None | Some("") => Name::empty(),
                Some(name) => intern(name),
            },
            revenue_12m: saturate(projection.order_amount(at, rules)),
            margin_12m: margin_known(indicators).then(|| saturate(projection.margin(at, rules))),
        }
    }

    /// A book from a view's indicators alone (no account manager): for
    /// views published without their state ([`ReadModel::upsert`]).
    pub fn from_indicators(indicators: &Indicators) -> Self {
        Book {
            account_manager: Name::empty(),
            revenue_12m: minor_of(indicators.order_amount_12m),
            margin_12m: indicators
                .margin_12m
                .filter(|_| margin_known(indicators))
                .map(minor_of),
        }
    }
}

/// A batch's entries, built ahead of their publish by
/// [`ReadModel::prepare`].
#[derive(Debug)]
pub struct Prepared {
    entries: Vec<(String, Entry)>,
    /// The policy the entries were built under.
    policy: Arc<Policy>,
}

impl Prepared {
    /// Number of customers with an entry (those with a decision).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no customer has an entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What the model holds per customer: its view, with its book, shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub view: Arc<View>,
}

impl Entry {
    /// A view and its book.
    pub fn new(view: CustomerView, book: Book) -> Self {
        Self {
            view: Arc::new(View::new(view, book)),
        }
    }

    /// The entry of a committed state (see [`View::from_state`]), `None`
    /// before the customer's first decision.
    pub fn from_state(state: &CustomerState, policy: &Policy) -> Option<Self> {
        Some(Self {
            view: Arc::new(View::from_state(state, policy)?),
        })
    }

    /// A view with the book its indicators give (no account manager).
    pub fn from_view(view: CustomerView) -> Self {
        let book = Book::from_indicators(&view.indicators);
        Self::new(view, book)
    }

    /// The customer's book.
    pub fn book(&self) -> &Book {
        &self.view.book
    }
}

/// Customers and money of one (held tier, account manager) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    pub customers: u64,
    /// Sum of [`Book::revenue_12m`].
    pub revenue_12m: i128,
    /// Sum of the known [`Book::margin_12m`]s.
    pub margin_12m: i128,
    /// Customers whose margin is known.
    pub margin_known: u64,
}

impl Cell {
    fn add(&mut self, book: &Book) {
        self.customers += 1;
        self.revenue_12m += i128::from(book.revenue_12m);
        if let Some(m) = book.margin_12m {
            self.margin_12m += i128::from(m);
            self.margin_known += 1;
        }
    }

    fn remove(&mut self, book: &Book) {
        self.customers = self.customers.saturating_sub(1);
        self.revenue_12m -= i128::from(book.revenue_12m);
        if let Some(m) = book.margin_12m {
            self.margin_12m -= i128::from(m);
            self.margin_known = self.margin_known.saturating_sub(1);
        }
    }

    /// Add another cell's figures to this one.
    pub fn merge(&mut self, other: &Cell) {
        self.customers += other.customers;
        self.revenue_12m += other.revenue_12m;
        self.margin_12m += other.margin_12m;
        self.margin_known += other.margin_known;
    }
}

/// Customers and money per held tier and account manager (an empty tier:
/// no decision yet; an empty manager: none). Kept up to date on every
/// replace; pairs left without customers are dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Hashed with FNV: every put looks its tier and manager up here.
    cells: FnvMap<Name, FnvMap<Name, Cell>>,
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

impl Totals {
    fn add(&mut self, tier: &str, book: &Book) {
        let managers = match self.cells.get_mut(tier) {
            Some(m) => m,
            None => self.cells.entry(intern(tier)).or_default(),
        };
        match managers.get_mut(&*book.account_manager) {
            Some(cell) => cell.add(book),
            None => managers
                .entry(book.account_manager.clone())
                .or_default()
                .add(book),
        }
    }

    fn remove(&mut self, tier: &str, book: &Book) {
        let Some(managers) = self.cells.get_mut(tier) else {
            return;
        };
        if let Some(cell) = managers.get_mut(&*book.account_manager) {
            cell.remove(book);
            if cell.customers == 0 {
                managers.remove(&*book.account_manager);
            }
        }
        if managers.is_empty() {
            self.cells.remove(tier);
        }
    }

    /// Add every pair of `other` to this.
    pub fn merge(&mut self, other: &Totals) {
        for (tier, managers) in &other.cells {
            let mine = self.cells.entry(tier.clone()).or_default();
            for (manager, cell) in managers {
                mine.entry(manager.clone()).or_default().merge(cell);
            }
        }
    }

    /// Every (tier, account manager, figures), in no particular order.
    pub fn cells(&self) -> impl Iterator<Item = (&str, &str, &Cell)> {
        self.cells.iter().flat_map(|(tier, managers)| {
            managers
                .iter()
                .map(move |(manager, cell)| (&**tier, &**manager, cell))
        })
    }

    /// Figures per held tier, all managers together.
    pub fn by_tier(&self) -> BTreeMap<String, Cell> {
        let mut out: BTreeMap<String, Cell> = BTreeMap::new();
        for (tier, _, cell) in self.cells() {
            match out.get_mut(tier) {
                Some(c) => c.merge(cell),
                None => {
                    out.insert(tier.to_owned(), *cell);
                }
            }
        }
        out
    }
}

/// One shard: its customers and their totals.
#[derive(Debug, Default)]
struct ShardData {
    /// Hashed with FNV, as the engine's customer map: each unit updates
    /// every customer it touched here.
    entries: CustomerMap<Entry>,
    totals: Totals,
}

type Shard = RwLock<ShardData>;

/// Sharded, concurrently readable map from customer id to its latest view,
/// with an ordered index of the ids and running totals.
pub struct ReadModel {
    shards: Box<[Shard]>,
    /// Every customer id, in byte order: inserted after the customer's
    /// entry, removed after it (only when the customer leaves this
    /// instance, see [`ReadModel::remove`]).
    ids: RwLock<BTreeSet<CustomerId>>,
    /// The population gradings (abc, rfm) of the policy in force.
    population: Mutex<Population>,
    /// The population's cut points as answers read them (see the module
    /// docs): set by [`ReadModel::settle`] only, under `population`'s lock.
    cuts: ArcSwapOption<PublishedCuts>,
    /// Whether the population changed since `cuts` were cut.
    cuts_stale: AtomicBool,
    /// The population's cadence clock, which answers read too.
    clock: Monotonic,
    /// Whether customers were ever folded where this model serves: a view
    /// was put, or the data dir held customers when it opened (see
    /// [`Self::has_folded`]).
    folded: AtomicBool,
}

/// The population gradings' cut points of one recut, as published.
#[derive(Debug)]
struct PublishedCuts {
    /// The policy version the population was for.
    version: String,
    cuts: Arc<GradingCuts>,
    /// From when a changed population is due a recut.
    recut_at: Option<Instant>,
}

impl PublishedCuts {
    /// Whether these cut points still answer for `policy`: its version,
    /// and not due a recut of a changed population.
    fn answer_for(&self, policy: &Policy, stale: &AtomicBool, clock: &Monotonic) -> Fresh {
        if self.version != policy.version() {
            Fresh::OtherPolicy
        } else if stale.load(Ordering::Acquire) && self.recut_at.is_none_or(|t| clock.now() >= t) {
            Fresh::Due
        } else {
            Fresh::Yes
        }
    }
}

/// What [`PublishedCuts::answer_for`] found.
enum Fresh {
    Yes,
    Due,
    OtherPolicy,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("shards", &self.shards.len())
            .field("customers", &self.len())
            .finish()
    }
}

/// Whether `policy` has population gradings (the model ranks its views).
fn grades_population(policy: &Policy) -> bool {
    policy.population_gradings().next().is_some()
}

/// What [`put`] did.
enum Put {
    /// The customer is new to the model: its id string, for the index.
    New(CustomerId),
    /// The customer's view replaced this one.
    Replaced(Arc<View>),
    /// The held view is newer: nothing changed.
    Stale,
}

/// A customer's view as the rankings follow it: `(id, replaced view, new
/// view)`.
type Moved<'a> = (&'a str, Option<Arc<View>>, Arc<View>);

/// Put `entry` in `shard` unless the held view is newer, keeping the
/// shard's totals in step.
fn put(shard: &mut ShardData, customer_id: &str, entry: Entry) -> Put {
    match shard.entries.get_mut(customer_id) {
        Some(held) if held.view.sequence > entry.view.sequence => {
            tracing::debug!(
                customer_id,
                held = held.view.sequence,
                offered = entry.view.sequence,
                "ignoring a stale customer view"
            );
            Put::Stale
        }
        Some(held) => {
            // Totals move only when the tier or the book does (a policy
            // rescore's confirmed customers keep both).
            if held.view.tier != entry.view.tier || held.view.book != entry.view.book {
                shard.totals.remove(&held.view.tier, &held.view.book);
                shard.totals.add(&entry.view.tier, &entry.view.book);
            }
            Put::Replaced(std::mem::replace(held, entry).view)
        }
        None => {
            let id = CustomerId::from(customer_id);
            shard.totals.add(&entry.view.tier, &entry.view.book);
            shard.entries.insert(id.clone(), entry);
            Put::New(id)
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
        Self::with_clock(Monotonic::default())
    }

    /// An empty model whose population gradings' cadence reads `clock`.
    fn with_clock(clock: Monotonic) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            ids: RwLock::default(),
            population: Mutex::new(Population::with_clock(clock.clone())),
            cuts: ArcSwapOption::empty(),
            cuts_stale: AtomicBool::new(false),
            clock,
            folded: AtomicBool::new(false),
        }
    }

    /// The data dir held customers when tierd opened it: figures were
    /// folded under the policy in force, before any view is put.
    pub fn mark_folded(&self) {
        self.folded.store(true, Ordering::Relaxed);
    }

    /// Whether figures were folded under the policy in force (stored or
    /// shown): what a policy change must keep its window, time zone and
    /// base currency for. Not whether views are held now: before the
    /// start-up fill, or with every partition revoked, the model is empty
    /// while the data dir holds customers.
    pub fn has_folded(&self) -> bool {
        self.folded.load(Ordering::Relaxed) || !self.is_empty()
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, ShardData> {
        self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, ShardData> {
        self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read_ids(&self) -> RwLockReadGuard<'_, BTreeSet<CustomerId>> {
        self.ids.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add ids new to the model to the index (after their entries are in
    /// their shards, so an indexed id always has an entry).
    fn index(&self, new_ids: Vec<CustomerId>) {
        if new_ids.is_empty() {
            return;
        }
        self.ids
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(new_ids);
    }

    /// Every view, in no particular order (a snapshot per shard).
    pub fn all(&self) -> Vec<(String, Arc<View>)> {
        self.all_shared()
            .into_iter()
            .map(|(id, v)| (id.to_string(), v))
            .collect()
    }

    /// [`Self::all`] with the model's own id strings.
    pub(crate) fn all_shared(&self) -> Vec<(CustomerId, Arc<View>)> {
        let mut out = Vec::with_capacity(self.len());
        for i in 0..SHARDS {
            out.extend(
                self.read(i)
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(&v.view))),
            );
        }
        out
    }

    /// Publish the committed states of a batch (customers without a
    /// decision yet are left out): what the ingest pipeline calls after
    /// each durable commit and for the start-up fill. Views and books are
    /// built here, once, under `policy` (the policy in force).
    pub fn publish(&self, customers: &[(&str, &CustomerState)], policy: &Policy) {
        // Sized up front: grown by doubling, a rescore's unit of
        // thousands of customers was reallocated into fresh pages a dozen
        // times over.
        let mut entries: Vec<(&str, Entry)> = Vec::with_capacity(customers.len());
        entries.extend(
            customers
                .iter()
                .filter_map(|(id, state)| Some((*id, Entry::from_state(state, policy)?))),
        );
        self.publish_entries(entries, policy);
    }

    /// The first half of [`Self::publish`], with no lock taken and
    /// nothing made visible: the entries of `customers` under `policy`
    /// (the policy the states were decided under). For the engine's
    /// thread as it seals a unit, so that only [`Self::publish_prepared`]
    /// runs once the unit is durable.
    pub fn prepare(customers: &[(&str, &CustomerState)], policy: &Arc<Policy>) -> Prepared {
        Prepared {
            entries: customers
                .iter()
                .filter_map(|(id, state)| {
                    Some(((*id).to_owned(), Entry::from_state(state, policy)?))
                })
                .collect(),
            policy: Arc::clone(policy),
        }
    }

    /// The second half of [`Self::publish`]: make prepared entries visible.
    pub fn publish_prepared(&self, prepared: Prepared) {
        let Prepared { entries, policy } = prepared;
        let (ids, entries): (Vec<String>, Vec<Entry>) = entries.into_iter().unzip();
        self.publish_entries(
            ids.iter().map(String::as_str).zip(entries).collect(),
            &policy,
        );
    }

    fn publish_entries(&self, entries: Vec<(&str, Entry)>, policy: &Policy) {
        let mut population = self.population();
        // A policy that changes the gradings: rebuilt at once, on this
        // thread, from every view (these included), so no request waits
        // behind the population's lock for it.
        let rebuild = grades_population(policy)
            && population.is_built()
            && !(population.is_for(policy) || population.carry_to(policy));
        // Never built: the start-up fill, after which tierd builds the
        // rankings once ([`Self::prepare_gradings`]), one sort each
        // rather than an insert per customer.
        let rank = population.is_built() && !rebuild;
        self.put_entries(entries, rank.then_some(&mut *population));
        if rebuild {
            let all = self.all_shared();
            population.rebuild(policy, all.iter().map(|(id, v)| (id, v.as_ref())));
        }
        self.settle(&mut population);
    }

    /// Whether `policy`'s population gradings are built (or it has
    /// none): an answer classes customers without building them first.
    pub fn gradings_ready(&self, policy: &Policy) -> bool {
        !grades_population(policy) || self.population().is_for(policy)
    }

    /// Build `policy`'s population gradings now if they are not (one
    /// sort per ranking over every view, then a cut): what tierd does
    /// once its start-up fill is published, before it serves, so no
    /// answer waits for the build.
    pub fn prepare_gradings(&self, policy: &Policy) {
        if grades_population(policy) {
            self.cuts_for(self.population(), policy);
        }
    }

    /// Make `population` `policy`'s if it is not (carried over when the
    /// policy keeps the gradings, else built from every view), recut it if
    /// due and publish its cut points.
    fn cuts_for(
        &self,
        mut population: MutexGuard<'_, Population>,
        policy: &Policy,
    ) -> Arc<GradingCuts> {
        if !population.is_for(policy) && !population.carry_to(policy) {
            let all = self.all_shared();
            population.rebuild(policy, all.iter().map(|(id, v)| (id, v.as_ref())));
        }
        self.settle(&mut population);
        population.cuts()
    }

    /// Recut `population` if it is due and publish what answers read: for
    /// whoever holds the population's lock, once done with it.
    fn settle(&self, population: &mut Population) {
        population.recut_if_due();
        let cuts = population.cuts();
        let unchanged = self.cuts.load().as_deref().is_some_and(|p| {
            Arc::ptr_eq(&p.cuts, &cuts) && Some(p.version.as_str()) == population.version()
        });
        if !unchanged {
            self.cuts.store(population.version().map(|version| {
                Arc::new(PublishedCuts {
                    version: version.to_owned(),
                    cuts,
                    recut_at: population.recut_at(),
                })
            }));
        }
        self.cuts_stale
            .store(population.is_dirty(), Ordering::Release);
    }

    fn population(&self) -> MutexGuard<'_, Population> {
        self.population
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cut points of `policy`'s population gradings, to class views
    /// with ([`GradingCuts::class`]): built from every view when the
    /// policy's gradings are new to the model, at most the gradings'
    /// `recut_seconds` old (and, while a writer holds the rankings, as
    /// long as it takes to publish its unit). `None` when the policy has
    /// no population grading. See [`Self::with_grading_cuts`].
    pub fn grading_cuts(&self, policy: &Policy) -> Option<Arc<GradingCuts>> {
        self.with_grading_cuts(policy, |cuts| cuts.cloned())
    }

    /// `f` of [`Self::grading_cuts`], without taking a reference of the
    /// cut points: for what runs on every request. No lock unless the
    /// policy's gradings are new to the model, or the cut points are due
    /// and no writer holds the rankings (a writer recuts as it finishes).
    pub fn with_grading_cuts<R>(
        &self,
        policy: &Policy,
        f: impl FnOnce(Option<&Arc<GradingCuts>>) -> R,
    ) -> R {
        if !grades_population(policy) {
            return f(None);
        }
        let published = self.cuts.load();
        let population = match published.as_deref() {
            Some(p) => match p.answer_for(policy, &self.cuts_stale, &self.clock) {
                Fresh::Yes => return f(Some(&p.cuts)),
                Fresh::Due => match self.population.try_lock() {
                    Ok(population) => population,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => return f(Some(&p.cuts)),
                },
                Fresh::OtherPolicy => self.population(),
            },
            None => self.population(),
        };
        drop(published);
        f(Some(&self.cuts_for(population, policy)))
    }

    /// Recompute the population gradings' cut points now (the cadence
    /// does it by itself; tests and a policy change want it at once).
    pub fn recut_gradings(&self) {
        let mut population = self.population();
        population.recut();
        self.settle(&mut population);
    }

    /// Insert or replace one customer's view (unless the held one has a
    /// higher `sequence`), with the book its indicators give (no account
    /// manager: [`Self::publish`] has the profile).
    pub fn upsert(&self, customer_id: &str, view: CustomerView) {
        self.upsert_entry(customer_id, Entry::from_view(view));
    }

    /// [`Self::upsert`] with a book.
    pub fn upsert_entry(&self, customer_id: &str, entry: Entry) {
        self.upsert_entries([(customer_id, entry)]);
    }

    /// Insert or replace many views (same rule as [`Self::upsert`]; for
    /// one id, later items win over earlier ones of the same sequence):
    /// grouped by shard, one write lock per
    /// touched shard. For a batch commit and for the start-up fill.
    pub fn upsert_many<'a>(&self, views: impl IntoIterator<Item = (&'a str, CustomerView)>) {
        self.upsert_entries(
            views
                .into_iter()
                .map(|(id, view)| (id, Entry::from_view(view))),
        );
    }

    /// [`Self::upsert_many`] with books.
    pub fn upsert_entries<'a>(&self, entries: impl IntoIterator<Item = (&'a str, Entry)>) {
        let mut population = self.population();
        let rank = population.is_built();
        self.put_entries(entries, rank.then_some(&mut *population));
        self.settle(&mut population);
    }

    /// Put `entries` in their shards (one write lock per touched shard)
    /// and, given the population, move each view that changed in its
    /// rankings. Every writer holds the population's lock (taken before
    /// any shard's), so the rankings, once built, hold exactly the views'
    /// values: they keep no values of their own and find a customer by
    /// the value its replaced view gave.
    fn put_entries<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, Entry)>,
        population: Option<&mut Population>,
    ) {
        // Grouped by shard in one vector (a stable sort keeps each id's
        // items in order), not in a vector per shard grown item by item.
        let mut counts = [0usize; SHARDS];
        let mut grouped: Vec<(usize, &str, Entry)> = entries
            .into_iter()
            .map(|(id, entry)| {
                let idx = shard_of(id);
                counts[idx] += 1;
                (idx, id, entry)
            })
            .collect();
        grouped.sort_by_key(|(idx, _, _)| *idx);
        if !grouped.is_empty() {
            self.folded.store(true, Ordering::Relaxed);
        }
        let mut new_ids = Vec::new();
        // Ranked once the shards are released: a reader waits for the
        // puts, not for the rankings.
        let mut moved: Vec<Moved<'_>> = Vec::with_capacity(if population.is_some() {
            grouped.len()
        } else {
            0
        });
        let mut items = grouped.into_iter().peekable();
        while let Some(&(idx, _, _)) = items.peek() {
            let mut shard = self.write(idx);
            shard.entries.reserve(counts[idx]);
            while let Some((_, id, entry)) = items.next_if(|(i, _, _)| *i == idx) {
                let view = population.is_some().then(|| Arc::clone(&entry.view));
                match (put(&mut shard, id, entry), view) {
                    (Put::New(shared), view) => {
                        new_ids.push(shared);
                        moved.extend(view.map(|v| (id, None, v)));
                    }
                    (Put::Replaced(old), Some(view)) => moved.push((id, Some(old), view)),
                    (Put::Replaced(_) | Put::Stale, _) => {}
                }
            }
        }
        self.index(new_ids);
        if let Some(population) = population {
            for (id, old, new) in &moved {
                population.replace(id, old.as_deref(), new);
            }
        }
    }

    /// Drop customers this instance no longer owns (their input
    /// partition went to another instance): their views, their share of
    /// the totals, their place in the id index and in population
    /// gradings. A page walk over the ids skips them from then on.
    pub fn remove(&self, customer_ids: &[String]) {
        if customer_ids.is_empty() {
            return;
        }
        // Taken first, as every writer does (see `put_entries`).
        let mut population = self.population();
        let ranked = population.is_built();
        let mut grouped: Vec<Vec<&str>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for id in customer_ids {
            grouped[shard_of(id)].push(id);
        }
        // Taken out of the rankings once the shards are released, as
        // `put_entries` moves them.
        let mut left: Vec<(&str, Arc<View>)> = Vec::new();
        for (idx, group) in grouped.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let mut shard = self.write(idx);
            for id in group {
                if let Some(held) = shard.entries.remove(id) {
                    shard.totals.remove(&held.view.tier, &held.view.book);
                    if ranked {
                        left.push((id, held.view));
                    }
                }
            }
        }
        for (id, view) in &left {
            population.remove(id, view);
        }
        {
            let mut ids = self.ids.write().unwrap_or_else(PoisonError::into_inner);
            for id in customer_ids {
                ids.remove(id.as_str());
            }
        }
        self.settle(&mut population);
    }

    /// The latest view of a customer, if any event of it was processed.
    pub fn get(&self, customer_id: &str) -> Option<Arc<View>> {
        self.read(shard_of(customer_id))
            .entries
            .get(customer_id)
            .map(|e| Arc::clone(&e.view))
    }

    /// The latest view of a customer with its book.
    pub fn entry(&self, customer_id: &str) -> Option<Entry> {
        self.read(shard_of(customer_id))
            .entries
            .get(customer_id)
            .cloned()
    }

    /// Up to `max` customer ids after `after` (from the first when
    /// `None`), in byte order: a copy, taken under the index's read lock.
    pub fn ids_after(&self, after: Option<&str>, max: usize) -> Vec<CustomerId> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.read_ids()
            .range::<str, _>((lower, Bound::Unbounded))
            .take(max)
            .cloned()
            .collect()
    }

    /// Whether any customer id sorts after `after`.
    pub fn has_ids_after(&self, after: &str) -> bool {
        self.read_ids()
            .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
            .next()
            .is_some()
    }

    /// Customers and money per held tier and account manager, all shards
    /// merged. Each shard is read under its own read lock, so the result
    /// is a near-instant rather than an atomic snapshot: each customer is
    /// counted once, in the tier of its view when its shard was read.
    pub fn totals(&self) -> Totals {
        let mut out = Totals::default();
        for i in 0..SHARDS {
            out.merge(&self.read(i).totals);
        }
        out
    }

    /// Number of customers with a view.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).entries.len()).sum()
    }

    /// Whether no customer has a view yet.
    pub fn is_empty(&self) -> bool {
        (0..SHARDS).all(|i| self.read(i).entries.is_empty())
    }

    /// Customers per held tier, for the customers-per-tier gauge (see
    /// [`Self::totals`] for how near-instant it is). Summed shard by shard
    /// without merging the cells (tierd sets the gauge after every
    /// committed unit).
    pub fn count_by_tier(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..SHARDS {
            let shard = self.read(i);
            for (tier, managers) in &shard.totals.cells {
                let n: u64 = managers.values().map(|c| c.customers).sum();
                if n == 0 {
                    continue;
                }
                match out.get_mut(&**tier) {
                    Some(total) => *total += n,
                    None => {
                        out.insert(tier.to_string(), n);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_risk_notice_of_a_tier_the_customer_left_is_not_shown() {
        // Announced "A falls to B" at the day's check; an event (or an
        // override, a rescore) moved the customer before the next check.
        let policy = Policy::default_policy();
        let mut state = CustomerState::default();
        for e in tier_core::sim::scenario::weekly_buyer(
            "c",
            tier_core::time::date(2026, 3, 1),
            300_000_000,
        ) {
            state.process("c", &e, &policy);
        }
        let held = state.tier().unwrap().to_owned();
        let notice = |tier: &str| AtRisk {
            customer_id: "c".into(),
            current_tier: tier.into(),
            falls_to: "D".into(),
            on: tier_core::time::date(2026, 3, 20),
            keep: Vec::new(),
        };
        let rm = ReadModel::new();
        state.at_risk = Some(Box::new(notice(&held)));
        rm.publish(&[("c", &state)], &policy);
        let shown = |rm: &ReadModel| rm.all_shared()[0].1.at_risk().cloned();
        assert_eq!(shown(&rm), Some(notice(&held)));
        state.at_risk = Some(Box::new(notice("a tier left since")));
        state.sequence += 1;
        rm.publish(&[("c", &state)], &policy);
        assert_eq!(shown(&rm), None);
    }

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
    fn a_customer_known_only_by_an_override_is_not_computed_at_its_pin() {
        use tier_core::overrides::{Override, OverrideMode};
        let policy = Policy::default_policy();
        let mut state = CustomerState::default();
        state
            .set_override(
                "new-acct",
                &policy,
                Override {
                    tier: "A".into(),
                    mode: OverrideMode::Pin,
                    reason: "strategic".into(),
                    author: "li.wei".into(),
                    set_at: tier_core::time::date(2026, 3, 2),
                    expires_at: None,
                },
            )
            .unwrap();
        let view = View::from_state(&state, &policy).unwrap();
        assert_eq!(&*view.tier, "A");
        let none = &policy.tiers()[policy.evaluate(&Indicators::default()).tier].name;
        assert_ne!(none, "A");
        assert_eq!(view.computed_tier(), none);
    }

    #[test]
    fn figures_folded_are_remembered_though_no_view_is_held() {
        // A policy change must keep the window, zone and currency the
        // stored figures were folded by: before the start-up fill, or with
        // every partition revoked, the model holds no view while they exist.
        let rm = ReadModel::new();
        assert!(!rm.has_folded());
        rm.mark_folded();
        assert!(
            rm.is_empty() && rm.has_folded(),
            "the data dir held customers"
        );
        let rm = ReadModel::new();
        rm.upsert("c-1", view("gold", 90.0));
        rm.remove(&["c-1".to_owned()]);
        assert!(rm.is_empty() && rm.has_folded(), "a partition revoked");
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
    fn removed_customers_leave_views_totals_and_the_index() {
        let rm = ReadModel::new();
        rm.upsert_many([
            ("a", view("gold", 90.0)),
            ("b", view("gold", 80.0)),
            ("c", view("silver", 60.0)),
        ]);
        rm.remove(&["b".to_owned(), "c".to_owned(), "unknown".to_owned()]);
        assert_eq!(rm.len(), 1);
        assert_eq!(rm.get("b"), None);
        let counts = rm.count_by_tier();
        assert_eq!(counts.get("gold"), Some(&1));
        assert_eq!(counts.get("silver"), None);
        let ids: Vec<String> = rm
            .ids_after(None, 10)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ids, ["a"]);
        assert!(!rm.has_ids_after("a"));
        // Back again (its partition was assigned here again).
        rm.upsert("c", view("silver", 60.0));
        assert_eq!(rm.count_by_tier().get("silver"), Some(&1));
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
        let held = || rm.get("c-1").map(|v| v.to_customer_view());
        assert_eq!(held(), Some(newer.clone()));
        rm.upsert_many([("c-1", older)]);
        assert_eq!(held(), Some(newer.clone()));
        let rescored = CustomerView {
            score: 95.0,
            ..newer
        };
        rm.upsert("c-1", rescored.clone());
        assert_eq!(held(), Some(rescored));
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
        let used = (0..SHARDS)
            .filter(|&i| !rm.read(i).entries.is_empty())
            .count();
        assert_eq!(used, SHARDS, "10k ids should touch every shard");
        let max = (0..SHARDS)
            .map(|i| rm.read(i).entries.len())
            .max()
            .unwrap_or(0);
        assert!(max < 2 * 10_000 / SHARDS, "shards are badly skewed: {max}");
    }

    fn book(manager: &str, revenue: i64, margin: Option<i64>) -> Book {
        Book {
            account_manager: Name::new(manager),
            revenue_12m: revenue,
            margin_12m: margin,
        }
    }

    fn cell(totals: &Totals, tier: &str, manager: &str) -> Option<Cell> {
        totals
            .cells()
            .find(|(t, m, _)| *t == tier && *m == manager)
            .map(|(_, _, c)| *c)
    }

    #[test]
    fn totals_follow_every_replace_and_ignore_stale_views() {
        let rm = ReadModel::new();
        let entry = |tier: &str, seq: u64, b: Book| {
            Entry::new(
                CustomerView {
                    sequence: seq,
                    ..view(tier, 1.0)
                },
                b,
            )
        };
        rm.upsert_entries([
            ("c-1", entry("gold", 1, book("li", 1_000, Some(300)))),
            ("c-2", entry("gold", 1, book("li", 500, None))),
            ("c-3", entry("silver", 1, book("", 200, Some(-50)))),
        ]);
        let t = rm.totals();
        assert_eq!(
            cell(&t, "gold", "li"),
            Some(Cell {
                customers: 2,
                revenue_12m: 1_500,
                margin_12m: 300,
                margin_known: 1,
            })
        );
        // c-1 moves to silver under another manager: its figures leave
        // gold/li whole.
        rm.upsert_entry("c-1", entry("silver", 2, book("wang", 1_200, Some(400))));
        // A stale view of c-2 changes nothing.
        rm.upsert_entry("c-2", entry("silver", 0, book("wang", 9, Some(9))));
        let t = rm.totals();
        assert_eq!(
            cell(&t, "gold", "li"),
            Some(Cell {
                customers: 1,
                revenue_12m: 500,
                margin_12m: 0,
                margin_known: 0,
            })
        );
        assert_eq!(
            cell(&t, "silver", "wang").map(|c| c.revenue_12m),
            Some(1_200)
        );
        assert_eq!(cell(&t, "silver", "").map(|c| c.margin_12m), Some(-50));
        let by_tier = t.by_tier();
        assert_eq!(by_tier["silver"].customers, 2);
        assert_eq!(by_tier["silver"].revenue_12m, 1_400);
        // c-2 leaves gold: the empty pair is dropped.
        rm.upsert_entry("c-2", entry("silver", 1, book("li", 500, None)));
        assert_eq!(cell(&rm.totals(), "gold", "li"), None);
        assert_eq!(
            rm.count_by_tier(),
            BTreeMap::from([("silver".to_owned(), 3)])
        );
        // c-3 keeps its tier and manager with new figures: its pair
        // follows them; the same view again moves nothing.
        let before = rm.totals();
        rm.upsert_entry("c-3", entry("silver", 2, book("", 350, Some(-20))));
        let after = rm.totals();
        let figures = |c: Cell| (c.customers, c.revenue_12m, c.margin_12m, c.margin_known);
        assert_eq!(
            cell(&after, "silver", "").map(figures),
            Some((1, 350, -20, 1))
        );
        assert_ne!(after, before);
        rm.upsert_entry("c-3", entry("silver", 3, book("", 350, Some(-20))));
        assert_eq!(rm.totals(), after);
    }

    #[test]
    fn the_id_index_is_ordered_and_complete() {
        let rm = ReadModel::new();
        rm.upsert_many([("b", view("x", 1.0)), ("a", view("x", 1.0))]);
        rm.upsert("c", view("x", 1.0));
        rm.upsert("a", view("y", 1.0));
        let ids = |after: Option<&str>, max| -> Vec<String> {
            rm.ids_after(after, max)
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        assert_eq!(ids(None, 10), ["a", "b", "c"]);
        assert_eq!(ids(Some("a"), 1), ["b"]);
        assert_eq!(ids(Some("aa"), 10), ["b", "c"]);
        assert!(ids(Some("c"), 10).is_empty());
        assert!(rm.has_ids_after("b"));
        assert!(!rm.has_ids_after("c"));
    }

    #[test]
    fn publish_builds_the_view_and_the_book_from_the_state() {
        use tier_core::time::date;
        use tier_core::{Event, EventKind, Money, ProfileUpdate};

        let policy = Policy::default_policy();
        let mut state = CustomerState::default();
        let mut n = 0;
        let mut apply = |state: &mut CustomerState, at: Timestamp, kind: EventKind| {
            n += 1;
            let e = Event {
                event_id: format!("e{n}"),
                customer_id: "c-1".into(),
                occurred_at: at,
                source: String::new(),
                kind,
            };
            state.process("c-1", &e, &policy);
        };
        let day = date(2026, 3, 2);
        apply(
            &mut state,
            day,
            EventKind::ProfileUpdated(ProfileUpdate {
                account_manager: Some(" li.wei ".into()),
                ..ProfileUpdate::default()
            }),
        );
        apply(
            &mut state,
            day,
            EventKind::OrderPlaced {
                order_id: "o1".into(),
                amount: Money(1_000_000),
                cost: Some(Money(700_000)),
            },
        );
        apply(
            &mut state,
            day,
            EventKind::OrderPlaced {
                order_id: "o2".into(),
                amount: Money(333_333),
                cost: None,
            },
        );
        let rm = ReadModel::new();
        rm.publish(&[("c-1", &state)], &policy);
        let e = rm.entry("c-1").unwrap();
        assert_eq!(
            Some(e.view.to_customer_view()),
            CustomerView::from_state(&state, &policy)
        );
        assert_eq!(*e.view.tier, state.effective.as_ref().unwrap().tier);
        assert_eq!(&*e.book().account_manager, "li.wei");
        assert_eq!(e.book().revenue_12m, 1_333_333);
        // Only the costed order has a margin.
        assert_eq!(e.book().margin_12m, Some(300_000));
        assert_eq!(e.view.indicators().order_amount_12m, 1_333_333.0);

        // A state without a decision yet is not published.
        rm.publish(&[("c-0", &CustomerState::default())], &policy);
        assert_eq!(rm.entry("c-0"), None);

        // The cancelled order takes its figures back.
        apply(
            &mut state,
            day,
            EventKind::OrderCancelled {
                order_id: "o1".into(),
            },
        );
        rm.publish(&[("c-1", &state)], &policy);
        let e = rm.entry("c-1").unwrap();
        assert_eq!((e.book().revenue_12m, e.book().margin_12m), (333_333, None));
        let t = rm.totals();
        let total: i128 = t.cells().map(|(_, _, c)| c.revenue_12m).sum();
        assert_eq!(total, 333_333);

        // Both orders taken back: no order in the window, so no known
        // margin (the `margin_12m` indicator says 0 for such a window),
        // and the customer is not among those with a known margin.
        apply(
            &mut state,
            day,
            EventKind::OrderCancelled {
                order_id: "o2".into(),
            },
        );
        rm.publish(&[("c-1", &state)], &policy);
        let e = rm.entry("c-1").unwrap();
        assert_eq!(e.view.indicators().margin_12m, Some(0.0));
        assert_eq!((e.book().revenue_12m, e.book().margin_12m), (0, None));
        let known: u64 = rm.totals().cells().map(|(_, _, c)| c.margin_known).sum();
        assert_eq!(known, 0);
        // The same from a view published without its state.
        let from_view = Book::from_indicators(&e.view.indicators());
        assert_eq!(from_view.margin_12m, None);
    }

    /// Customer `id`'s order number `n` of `amount` (tier-core's scenario
    /// order), on 2 March 2026, folded into `state` under `policy`.
    fn order(state: &mut CustomerState, id: &str, n: usize, amount: i64, policy: &Policy) {
        let at = tier_core::time::date(2026, 3, 2);
        let e = tier_core::sim::scenario::order(id, n, at, amount);
        state.process(id, &e, policy);
    }

    /// Customers `c1` to `c{n}`, each with one order: `c{i}`'s of `i`
    /// times `step`.
    fn ordered(n: i64, step: i64, policy: &Policy) -> Vec<(String, CustomerState)> {
        (1..=n)
            .map(|i| {
                let id = format!("c{i}");
                let mut state = CustomerState::default();
                order(&mut state, &id, 1, i * step, policy);
                (id, state)
            })
            .collect()
    }

    /// The rankings keep no values of their own: they find a customer by
    /// the value of the view it replaces. So they must hold exactly the
    /// views the model holds, at each view's value, whatever reaches the
    /// model: new figures, a stale view the model ignores, a customer
    /// that leaves and comes back, a view put in directly, a policy that
    /// grades nothing in between.
    #[test]
    fn the_rankings_hold_exactly_the_views_held() {
        use tier_core::policy::DEFAULT_POLICY_TOML;

        let policy = Policy::default_policy();
        let mut states = ordered(8, 700_000, &policy);
        let publish = |rm: &ReadModel, states: &[(String, CustomerState)], policy: &Policy| {
            let refs: Vec<(&str, &CustomerState)> =
                states.iter().map(|(id, s)| (id.as_str(), s)).collect();
            rm.publish(&refs, policy);
        };
        let gradings: Vec<&tier_core::policy::Grading> = policy.population_gradings().collect();
        let consistent = |rm: &ReadModel, when: &str| {
            let population = rm.population();
            for (id, view) in rm.all() {
                for g in &gradings {
                    assert!(
                        population.ranked_class(g, &id, &view).is_some(),
                        "{when}: {id} not ranked at its view's value in {}",
                        g.name
                    );
                }
            }
            let lens = population.ranked_lens();
            assert!(!lens.is_empty());
            assert!(
                lens.iter().all(|&n| n == rm.len()),
                "{when}: {lens:?} ranked, {} views",
                rm.len()
            );
        };

        let rm = ReadModel::new();
        publish(&rm, &states, &policy);
        rm.prepare_gradings(&policy);
        consistent(&rm, "built");

        // New figures move customers.
        for (i, (id, state)) in states.iter_mut().enumerate().take(4) {
            order(state, id, 2, (i as i64 + 1) * 9_000_000, &policy);
        }
        publish(&rm, &states[..4], &policy);
        consistent(&rm, "moved");

        // A stale view (an older sequence) is ignored, by the rankings too.
        let (id, state) = &states[0];
        let mut stale = state.clone();
        order(&mut stale, id, 3, 500_000_000, &policy);
        stale.sequence = 0;
        assert!(rm.get(id).unwrap().sequence > 0);
        rm.publish(&[(id.as_str(), &stale)], &policy);
        consistent(&rm, "stale view ignored");

        // A customer leaves (its partition went elsewhere) and comes back.
        rm.remove(&[states[1].0.clone(), states[2].0.clone()]);
        assert_eq!(rm.len(), states.len() - 2);
        consistent(&rm, "left");
        publish(&rm, &states[1..2], &policy);
        consistent(&rm, "came back");

        // A view put in directly is ranked as well.
        rm.upsert("c-direct", rm.get("c4").unwrap().to_customer_view());
        consistent(&rm, "put directly");

        // A policy that grades nothing, then the first one again: the
        // rankings carried over are those of the views held.
        let plain = Policy::from_toml_str(
            &DEFAULT_POLICY_TOML
                .split("# --- Secondary gradings")
                .next()
                .unwrap_or_default()
                .replacen("version = \"default-2027.01\"", "version = \"plain\"", 1),
        )
        .unwrap();
        assert!(plain.population_gradings().next().is_none());
        for (id, state) in states.iter_mut().skip(4) {
            order(state, id, 4, 40_000_000, &policy);
        }
        publish(&rm, &states[4..], &plain);
        publish(&rm, &states[..1], &policy);
        assert!(rm.population().is_for(&policy));
        consistent(&rm, "a policy without gradings in between");
    }

    /// The population gradings (ABC, RFM) are built once tierd's start-up
    /// fill is published, and by the publish that brings a policy with
    /// other gradings, on the publishing thread, from every view the
    /// model holds, one sort per ranking: no request builds them behind
    /// the population's lock while every other answer waits. A new
    /// version with the same gradings keeps the rankings.
    #[test]
    fn population_gradings_are_built_after_the_fill_and_by_a_policy_that_changes_them() {
        use tier_core::policy::DEFAULT_POLICY_TOML;

        let decided = |id: &str, amount: i64, policy: &Policy| {
            let mut state = CustomerState::default();
            order(&mut state, id, 1, amount, policy);
            (id.to_owned(), state)
        };
        let policy = Policy::default_policy();
        let population: Vec<&tier_core::policy::Grading> = policy.population_gradings().collect();
        assert!(
            population.len() >= 2,
            "the default policy grades the population"
        );
        let states: Vec<(String, CustomerState)> = (1..=6)
            .map(|i| decided(&format!("c{i}"), i * 1_000_000, &policy))
            .collect();
        let refs: Vec<(&str, &CustomerState)> =
            states.iter().map(|(id, s)| (id.as_str(), s)).collect();
        let classed = |rm: &ReadModel, id: &str| {
            let p = rm.population();
            let view = rm.get(id).unwrap();
            population
                .iter()
                .all(|g| p.ranked_class(g, id, &view).is_some())
        };

        let rm = ReadModel::new();
        // The start-up fill, in chunks, builds nothing per chunk...
        rm.publish(&refs[..3], &policy);
        rm.publish(&refs[3..], &policy);
        assert!(!rm.population().is_built());
        // ...tierd builds the rankings once it is published, in one sort
        // each, ranking exactly as one insert per customer would.
        rm.prepare_gradings(&policy);
        assert!(rm.population().is_for(&policy));
        let mut inserted = Population::default();
        inserted.rebuild(&policy, std::iter::empty());
        for (id, _) in &refs {
            inserted.replace(id, None, &rm.get(id).unwrap());
        }
        inserted.recut();
        let answer = rm.grading_cuts(&policy).unwrap();
        for (id, _) in &refs {
            let view = rm.get(id).unwrap();
            for g in &population {
                let class = inserted.ranked_class(g, id, &view);
                assert!(class.is_some(), "{id} in {}", g.name);
                assert_eq!(
                    rm.population().ranked_class(g, id, &view),
                    class,
                    "{id} in {}",
                    g.name
                );
                assert_eq!(
                    answer.class(g, id, &view, &view.indicators()),
                    class,
                    "{id} in {}",
                    g.name
                );
            }
        }
        // Views published since update the built rankings.
        let late = decided("c7", 50_000_000, &policy);
        rm.publish(&[(late.0.as_str(), &late.1)], &policy);
        assert!(classed(&rm, "c7"));

        // A new version with the same gradings: its first unit (one
        // customer) carries the rankings over, exactly as a rebuild from
        // every view would make them.
        let version = |text: &str, v: &str| {
            Policy::from_toml_str(&text.replacen(
                "version = \"default-2027.01\"",
                &format!("version = \"{v}\""),
                1,
            ))
            .unwrap()
        };
        let renamed = version(DEFAULT_POLICY_TOML, "renamed");
        assert_eq!(renamed.version(), "renamed");
        let cuts = rm.population().cuts();
        rm.publish(&refs[..1], &renamed);
        assert!(rm.population().is_for(&renamed));
        assert!(
            Arc::ptr_eq(&cuts, &rm.population().cuts()),
            "carried, not rebuilt"
        );
        // Cut both now (the carried one keeps the cadence of its recuts).
        rm.recut_gradings();
        let mut rebuilt = Population::default();
        let all = rm.all_shared();
        rebuilt.rebuild(&renamed, all.iter().map(|(id, v)| (id, v.as_ref())));
        for (id, _) in &refs {
            let view = rm.get(id).unwrap();
            for g in &population {
                let class = rm.population().ranked_class(g, id, &view);
                assert!(class.is_some(), "{id} in {}", g.name);
                assert_eq!(class, rebuilt.ranked_class(g, id, &view));
            }
        }

        // Changed gradings: rebuilt for them from every view held.
        let reshared = version(
            &DEFAULT_POLICY_TOML.replacen("shares = [20, 30, 50]", "shares = [30, 30, 40]", 1),
            "reshared",
        );
        assert_ne!(
            reshared.gradings(),
            policy.gradings(),
            "the shares of a population grading changed"
        );
        rm.publish(&refs[..1], &reshared);
        assert!(rm.population().is_for(&reshared));
        assert!(!Arc::ptr_eq(&cuts, &rm.population().cuts()), "rebuilt");
        assert!(refs.iter().all(|(id, _)| classed(&rm, id)));
    }

    /// The full view as it was built before the model held it compact
    /// (a copy of the old `CustomerView::from_state`): the reference the
    /// compact view must give back exactly.
    fn reference_view(state: &CustomerState, policy: &Policy) -> Option<CustomerView> {
        let e = state.effective.as_ref()?;
        let computed = state.assignment.as_ref();
        Some(CustomerView {
            tier: e.tier.to_string(),
            score: e.score,
            since: e.since,
            sequence: state.sequence,
            indicators: state.indicators(policy),
            scored_at: state.decided_at,
            policy_version: state.policy_version.to_string(),
            overridden: computed.is_none_or(|c| c.tier != e.tier)
                || state.manual().is_some_and(|m| m.tier == e.tier),
            relation: Relation {
                computed_tier: state.computed_tier(policy, &state.indicators(policy)),
                lifecycle: Some(state.lifecycle(policy, state.decided_at)),
                manual: state.manual().cloned(),
                override_history: state.override_history().into(),
                at_risk: state.at_risk.as_deref().cloned(),
                complaints: state
                    .projection
                    .complaints()
                    .filter(|(_, c)| c.is_open())
                    .filter_map(|(id, c)| {
                        Some(OpenComplaint {
                            id: id.to_owned(),
                            severity: c.severity,
                            category: c.category.clone(),
                            opened_at: c.opened_at?,
                            deadline: c.deadline.clone(),
                            overdue: c.overdue_announced,
                        })
                    })
                    .collect(),
                history: state.tier_history().into(),
                last_order_at: state.projection.last_order_at(),
                assessments: state.projection.assessments().cloned().collect(),
                assessment_history: state.projection.assessment_history().into(),
            },
        })
    }

    /// Equal, also where `==` would not tell (Debug prints every field,
    /// NaN and -0.0 as they are).
    fn same(a: &CustomerView, b: &CustomerView) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn compact_views_give_back_the_full_view_of_every_generated_customer() {
        use tier_core::sim::{Generator, Workload};
        use tier_core::time::date;

        let mut w = Workload::new(3_000, 6_000, date(2026, 11, 1));
        w.zipf_s = 1.1;
        let policy = Arc::new(Policy::default_policy());
        let mut engine = tier_engine::Engine::new(Arc::clone(&policy), Vec::new(), w.end);
        let mut unit = tier_engine::Unit::new();
        for event in Generator::new(&w) {
            engine.fold(&mut unit, &event);
        }
        engine.seal(&unit);
        let mut n = 0;
        for (id, state) in engine.customers() {
            let want = reference_view(&state, &policy);
            let got = View::from_state(&state, &policy);
            assert_eq!(got.is_some(), want.is_some(), "{id}");
            let (Some(got), Some(want)) = (got, want) else {
                continue;
            };
            n += 1;
            assert!(same(&got.to_customer_view(), &want), "{id}");
            // And a full view made compact comes back the same.
            let again = View::new(want.clone(), got.book.clone());
            assert_eq!(again, got, "{id}");
            assert!(same(&again.to_customer_view(), &want), "{id}");
            assert_eq!(
                got.book,
                Book::from_state(&state, &policy, &want.indicators),
                "{id}"
            );
        }
        assert!(n > 2_000, "{n} views");
    }

    #[test]
    fn packed_indicators_keep_every_figure_bit_for_bit() {
        let mut all = Indicators {
            order_amount_12m: 1.5,
            order_count_12m: -0.0,
            avg_order_value_12m: f64::NAN,
            orders_per_month_12m: f64::INFINITY,
            margin_12m: Some(0.0),
            margin_rate_12m: Some(-0.0),
            on_time_payment_ratio: Some(f64::NAN),
            avg_days_late: Some(3.0),
            max_days_late: Some(4.0),
            overdue_amount: 5.0,
            oldest_overdue_days: 6.0,
            purchase_potential: Some(7.0),
            open_complaints: 8.0,
            complaints_12m: 9.0,
            complaints_weighted_12m: 10.0,
            days_since_last_order: Some(11.0),
            tenure_days: 12.0,
            share_of_wallet: Some(13.0),
            growth_3m: Some(14.0),
            growth_streak_months: 15.0,
            complaints_by_severity_12m: [1, 0, 3, u32::MAX, 5],
            resolved_by_severity_12m: [0, 2, 0, 4, 0],
            assessed: [None; tier_core::policy::MAX_ASSESSMENTS],
            rfm_recency: Some(1.0),
            rfm_frequency: None,
            rfm_monetary: Some(3.0),
            rfm_score: Some(0.0),
        };
        all.assessed[0] = Some(2.0);
        all.assessed[tier_core::policy::MAX_ASSESSMENTS - 1] = Some(-1.0);
        let none = Indicators::default();
        let sparse = Indicators {
            tenure_days: 30.0,
            rfm_score: Some(9.0),
            ..Indicators::default()
        };
        for ind in [all, none, sparse] {
            let back = KeptIndicators::new(&ind).get();
            // Debug prints every field, NaN and -0.0 included.
            assert_eq!(format!("{back:?}"), format!("{ind:?}"));
            assert_eq!(
                back.order_count_12m.to_bits(),
                ind.order_count_12m.to_bits()
            );
            assert_eq!(
                back.margin_rate_12m.map(f64::to_bits),
                ind.margin_rate_12m.map(f64::to_bits)
            );
        }
        // Whole figures, zeros and unknowns in a byte each.
        assert!(KeptIndicators::new(&none).len() < 40);
        assert!(KeptIndicators::new(&sparse).len() < 45);
    }

    #[test]
    fn a_view_fills_one_160_byte_allocation() {
        // An `Arc<View>` is the view and two counts: at 144 bytes it
        // takes jemalloc's 160-byte class; 8 bytes more, the 192 one.
        assert!(
            std::mem::size_of::<View>() <= 144,
            "a view grew to {} bytes",
            std::mem::size_of::<View>()
        );
        assert_eq!(std::mem::size_of::<Step>(), 48, "a history step");
    }

    #[test]
    fn a_view_gives_back_its_history_and_last_order_as_held() {
        let step = |seq: u64, from: Option<&str>, to: &str| TierStep {
            at: Timestamp::from_millis(seq as i64 * 1_000),
            from: from.map(Into::into),
            to: to.into(),
            score: 0.25 * seq as f64,
            cause: if seq == 2 {
                Cause::Override
            } else {
                Cause::Event
            },
            overridden: seq == 2,
            sequence: seq,
        };
        let mut full = view("gold", 1.0);
        full.relation.history = vec![
            step(1, None, "bronze"),
            step(2, Some("bronze"), "gold"),
            step(3, Some("gold"), "a tier name longer than twenty-four bytes"),
        ]
        .into();
        for last in [
            None,
            Some(Timestamp::from_millis(0)),
            Some(Timestamp::from_millis(-5)),
        ] {
            full.relation.last_order_at = last;
            let e = Entry::new(full.clone(), book("li", 1, None));
            assert_eq!(e.view.last_order_at(), last);
            assert_eq!(e.view.history(), full.relation.history.to_vec());
            assert_eq!(e.view.history_steps().len(), 3);
            assert_eq!(
                e.view.to_customer_view(),
                full,
                "the full view, as handed in"
            );
            assert!(
                Name::ptr_eq(&e.view.history[1].to, &e.view.tier),
                "one shared name"
            );
            assert!(Name::ptr_eq(&e.view.history[0].to, &intern("bronze")));
        }
    }

    #[test]
    fn repeated_strings_are_shared() {
        let a = Entry::new(view("gold", 1.0), book("li", 1, None));
        let b = Entry::new(view("gold", 2.0), book("li", 2, None));
        assert!(Name::ptr_eq(&a.view.tier, &b.view.tier));
        assert!(Name::ptr_eq(&a.view.policy_version, &b.view.policy_version));
        // An empty computed tier is the held one.
        assert_eq!(a.view.computed_tier(), "gold");
        assert!(a.view.history().is_empty() && a.view.complaints().is_empty());
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

    /// Answers class customers against cut points they read without the
    /// population's lock, which a writer holds for its whole unit: they
    /// never wait for it. A changed population is recut once its
    /// `recut_seconds` have passed, by the first answer that finds no
    /// writer holding the rankings; until then answers use the last cut.
    #[test]
    fn answers_never_wait_for_a_writer_and_follow_the_population_once_due() {
        use tier_core::policy::DEFAULT_POLICY_TOML;

        let policy = Policy::from_toml_str(&DEFAULT_POLICY_TOML.replacen(
            "low_value_share = 10\n",
            "low_value_share = 10\nrecut_seconds = 1\n",
            1,
        ))
        .unwrap();
        let abc = policy
            .population_gradings()
            .find(|g| g.name == "abc_revenue")
            .unwrap()
            .clone();
        assert_eq!(abc.recut_seconds, 1);
        let mut states = ordered(6, 1_000_000, &policy);
        // The cadence's clock, moved by hand.
        let start = std::time::Instant::now();
        let elapsed_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let rm = ReadModel::with_clock(Monotonic::new({
            let elapsed_ms = Arc::clone(&elapsed_ms);
            move || start + std::time::Duration::from_millis(elapsed_ms.load(Ordering::Relaxed))
        }));
        let refs: Vec<(&str, &CustomerState)> =
            states.iter().map(|(id, s)| (id.as_str(), s)).collect();
        rm.publish(&refs, &policy);
        rm.prepare_gradings(&policy);
        let class_of_c1 = |cuts: &GradingCuts| {
            let view = rm.get("c1").unwrap();
            cuts.class(&abc, "c1", &view, &view.indicators())
                .map(|c| c.class)
        };
        // What an answer gets while a writer holds the rankings.
        let read_while_held = || {
            let held = rm.population();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let _ = tx.send(rm.grading_cuts(&policy));
                });
                let got = rx.recv_timeout(std::time::Duration::from_secs(10));
                drop(held);
                got.expect("an answer waited for the writer holding the rankings")
                    .expect("the policy grades the population")
            })
        };

        let first = read_while_held();
        assert!(Arc::ptr_eq(&first, &rm.population().cuts()));
        assert_eq!(class_of_c1(&first).as_deref(), Some("C (low value)"));

        // c1 becomes the biggest customer: ranked at once, cut only once
        // the second has passed.
        let (id, state) = &mut states[0];
        order(state, id, 2, 90_000_000, &policy);
        rm.publish(&[(id.as_str(), &*state)], &policy);
        let before_due = rm.grading_cuts(&policy).unwrap();
        assert!(Arc::ptr_eq(&before_due, &first), "recut before it was due");
        elapsed_ms.store(999, Ordering::Relaxed);
        let still_before = rm.grading_cuts(&policy).unwrap();
        assert!(
            Arc::ptr_eq(&still_before, &first),
            "recut a millisecond early"
        );

        elapsed_ms.store(1_000, Ordering::Relaxed);
        // Due, but a writer holds the rankings: the last cut answers...
        let held_back = read_while_held();
        assert!(Arc::ptr_eq(&held_back, &first));
        // ...and the next answer with the rankings free recuts.
        let recut = rm.grading_cuts(&policy).unwrap();
        assert!(!Arc::ptr_eq(&recut, &first), "no recut once due");
        assert_eq!(class_of_c1(&recut).as_deref(), Some("A"));
        assert!(Arc::ptr_eq(&recut, &rm.grading_cuts(&policy).unwrap()));
    }
}

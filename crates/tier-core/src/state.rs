//! A customer's whole state and the one step the service runs per event:
//! fold, rescore, decide (with hysteresis), and describe any tier change.
//!
//! [`CustomerState`] is what the store persists per customer. The functions
//! here are pure: the caller passes the policy (and, to rescore without an
//! event, the instant).
//!
//! ## What "now" is for a decision
//! A decision is made at the customer's *decision instant*: the latest of
//! the projection's watermark (the latest `occurred_at` applied) and the
//! previous decision instant. It never depends on when tierd happens to
//! process the event, so a live run and a replay of the same log on a later
//! day make the same decisions, with the same scores, `since` and
//! `changed_at`; hysteresis counts days in a tier on that same clock. A
//! rescore without an event (time passed, policy changed) decides at the
//! instant it is given, if that is later.
//!
//! ## Time moves tiers
//! [`CustomerState::next_due`] is the next instant time alone can change
//! a customer: always the start of a business day (an order leaving the
//! window, an invoice falling due, a lifecycle threshold, the day a
//! hysteresis hold runs out), an override's exact expiry, or the expiry
//! of a scored assessment (a business day's start in the calendar it was
//! folded under).
//! [`CustomerState::advance_to`] makes those decisions in order, each at
//! its own due instant, with cause `Time`. The service's sweeper calls it
//! for customers that fell due; [`CustomerState::process`] calls it first
//! for an event dated after a due instant. So the decisions do not depend
//! on when a sweep ran: a sweep up to `t` followed by events dated at or
//! after `t` gives the state the events alone give (a property test checks
//! this), which keeps replays and crash recovery exact.
//!
//! ### The time step, incrementally
//! A customer younger than the window (its `orders_per_month_12m` covers
//! a growing span), one with recency or tenure scored, or one with an
//! invoice overdue has a figure that moves every business day, so every
//! day between two of its events is a decision day. Those decisions are
//! made one by one as above (each can change the tier, and its instant,
//! cause and sequence number are published), but cheaply:
//! - [`CustomerState::next_due`] answers "the start of tomorrow" without
//!   the full search when a figure moves daily and no exact instant (an
//!   override's or an assessment's expiry) can come first: every other
//!   candidate is a later day start;
//! - the projection does not change between two events, so each step of
//!   [`CustomerState::advance_to`] after the first moves only the day's
//!   figures (orders per month, tenure, recency) from the previous step's
//!   indicators, when nothing else can have moved: no activity left the
//!   window, no open invoice is past due, the month did not turn while
//!   growth is scored, no assessment exists
//!   (`CustomerProjection::indicators_step`); otherwise it computes them
//!   in full;
//! - a weighted score evaluates again only the parts on those day
//!   figures, summing the kept products of the others in the same order,
//!   and keeps the gates' ceiling while no gate reads a day figure
//!   (`Policy::evaluate_step`: exactly what `evaluate` gives);
//! - `process` hands the first due instant it found to the advance;
//! - a run of daily decisions that all keep the held tier is decided at
//!   its last day only, where the policy proves that what time moves over
//!   the run can only lower the tier (`Policy::day_figures_only_lower`:
//!   e.g. a young customer's orders per month, scored higher-is-better,
//!   only fall as its span grows; an overdue invoice's days late, scored
//!   lower-is-better, only grow) and nothing else moves (no activity
//!   leaves the window, no invoice falls due): a decision that keeps the
//!   tier only moves the decision instant and the score, so the state is
//!   the one deciding every day gives. The run's last day keeping the
//!   tier is its end, or found by bisection (once a day leaves the held
//!   tier, every later day of the run would); the day after it is then
//!   decided as before.
//!
//! The full search stays as `next_due_reference` / `advance_to_reference`
//! / `process_reference`, and a differential property test
//! (`fast_time_steps_equal_the_reference` in `tests/projection_props.rs`)
//! checks that both paths give the same tier changes in full and the
//! same final states, under policies that allow quiet runs and one that
//! does not, with sweeps limited to a few decisions.
//!
//! ## Corrections
//! When an event or time upgrades the tier, the state remembers the
//! assignment before it. A cancellation or return of an order that
//! counted at that upgrade (one placed no later than it and still in the
//! window at the decision instant: the upgrade was decided on its
//! figures) decides again from that earlier assignment: the tier the
//! orders caused is taken back at once as far as the figures left no
//! longer hold it (hysteresis holds only organic drops), and a customer
//! who had been held in a tier by hysteresis before the upgrade is held
//! there again, with the `since` it had. When the figures left still hold the raised tier, nothing moves,
//! and a later correction is judged the same way. A drop an event or time
//! makes that leaves the tier above the one before the upgrade (an
//! invoice falling overdue, a correction the other orders still lift
//! past it) keeps it remembered: the orders still lift the customer
//! (orders placed up to that drop then count as placed before the
//! upgrade, since the held tier's `since` is the drop's).
//!
//! An upgrade by anything but a placement (an invoice's issue, a payment,
//! a credit note, a cancellation, time) after others remembered keeps the
//! assignment before them: an order that lifted the customer and a
//! payment of another invoice that lifted it further are both taken back
//! by the order's cancellation, as far as the payment alone does not hold
//! them. An order placed between two such upgrades can have made only the
//! later: its correction decides again from the worst tier held from its
//! placement on (with the `since` of its last entry, from the tier
//! history) when that tier lies between the one before the upgrades and
//! the held one, and from the held tier (nothing to undo) when nothing
//! worse was held since; an override on the way leaves the one before the
//! upgrades. An upgrade by a placement is remembered from the tier just
//! before it: after two placements in a row lifted the customer, a
//! correction of the first decides from the tier between them. A change
//! of tier a policy rescore or the population's move makes forgets what
//! was remembered (an override changes only the effective tier, and
//! forgets nothing).
//!
//! Not every correction of an order that counted made the tier. One
//! decides again from before the upgrades when it takes back the whole
//! order whose placement made them, when it lowers the tier the figures
//! give, or when it takes more off the score than the held tier was
//! entered with above its band; otherwise it is organic (hysteresis holds
//! it), so a sliver of an order returned while hysteresis holds an organic
//! drop leaves the hold standing. Known limits: each correction is judged
//! alone (two orders cancelled one after the other, each under that
//! margin, leave the tier held though together they made it); the margin
//! is known only for a weighted score, so under the `rules` and `abc`
//! methods, and when the tier history no longer keeps the entry (or an
//! override made it), every correction of an order that counted decides
//! again; and an entry score computed under an earlier policy is compared
//! with the current policy's band.

use serde::{Deserialize, Serialize};

use compact_str::CompactString;

use crate::event::{Event, EventKind, heap_bytes};
use crate::indicators::{Indicators, KeptIndicators};
use crate::overrides::{
    MAX_OVERRIDE_HISTORY, Override, OverrideAction, OverrideEntry, OverrideError,
};
use crate::policy::{Evaluation, Policy, Reason, TierAssignment, TierName};
use crate::projection::{Applied, CustomerProjection, Deadline, stable_hash};
use crate::time::Timestamp;

/// How many reasons a tier change carries.
pub const MAX_REASONS: usize = 5;

/// Why a tier changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// An input event.
    Event,
    /// Time passed: activity left the window.
    Time,
    /// The policy changed.
    Policy,
    /// A manager set or cleared an override.
    Override,
    /// The population moved: an `abc` policy's cut points were recomputed
    /// and the customer's band changed (see `policy/abc.rs`).
    Rank,
}

impl Cause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Time => "time",
            Cause::Policy => "policy",
            Cause::Override => "override",
            Cause::Rank => "rank",
        }
    }
}

/// A change of the effective tier (the computed one, or an override's),
/// ready to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierChange {
    pub customer_id: String,
    /// `None` for the customer's first tier.
    pub old_tier: Option<String>,
    pub new_tier: String,
    /// The tier the figures give, beside an override's `new_tier`.
    pub computed_tier: String,
    /// Whether `new_tier` is set by an override.
    pub overridden: bool,
    pub old_score: f64,
    pub new_score: f64,
    pub cause: Cause,
    pub causing_event_id: Option<String>,
    /// The contributions that moved most since the previous tier change.
    pub reasons: Vec<Reason>,
    pub policy_version: String,
    /// Per customer, from 1, without gaps.
    pub sequence: u64,
    pub changed_at: Timestamp,
    /// The lifecycle stage at `changed_at`.
    pub lifecycle: Lifecycle,
    /// The per-customer secondary gradings at `changed_at` (see
    /// `policy::Grading`).
    pub gradings: Vec<crate::policy::GradingClass>,
}

/// Where a customer stands in its relationship, beside the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Known (a profile, an invoice, a complaint) but no order yet.
    Prospect,
    /// The relationship began less than `new_for_days` ago: the tenure's
    /// start, the first order or the profile's `customer_since` when
    /// earlier (a customer the CRM has known for years is not new on its
    /// first order in the stream).
    New,
    Active,
    /// No order for `lapsed_after_days` or more.
    Lapsed,
    /// Ordered again after a lapse, less than `new_for_days` ago.
    Reactivated,
}

impl Lifecycle {
    pub const fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Prospect => "prospect",
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Lapsed => "lapsed",
            Lifecycle::Reactivated => "reactivated",
        }
    }
}

/// A time-driven downgrade foreseen within the policy's horizon: what a
/// sales rep needs to act before it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtRisk {
    pub customer_id: String,
    pub current_tier: String,
    /// The tier the customer will hold if nothing happens.
    pub falls_to: String,
    /// When it will (a decision instant: the start of a business day, or
    /// the end of a hysteresis hold).
    pub on: Timestamp,
    /// What would keep the current tier at that instant, in indicator
    /// terms (others unchanged).
    pub keep: Vec<crate::policy::Advice>,
}

/// A complaint that passed its resolution deadline unresolved: published
/// once (`ComplaintOverdue`), at the deadline's instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintOverdue {
    pub customer_id: String,
    pub complaint_id: String,
    pub severity: crate::event::Severity,
    pub category: String,
    pub opened_at: Timestamp,
    pub deadline: Deadline,
    /// Set when the complaint was found overdue only after it was
    /// resolved late (while tierd caught up on a backlog, or its
    /// resolution was read before its opening).
    pub resolved_at: Option<Timestamp>,
}

/// Folds `events` in order into their customers' states in `states`
/// (a customer is created by its first event), deciding each customer's
/// tier after each event; returns how many tier changes were made. The
/// loop the fold benchmarks time (`benches/fold.rs`, tier-bench's `fold`).
pub fn fold_all(
    events: &[crate::Event],
    policy: &Policy,
    states: &mut crate::projection::CustomerMap<CustomerState>,
) -> usize {
    let mut changes = 0;
    for e in events {
        let state = match states.get_mut(e.customer_id.as_str()) {
            Some(s) => s,
            None => states
                .entry(crate::projection::CustomerId::from(e.customer_id.as_str()))
                .or_default(),
        };
        if state.process(&e.customer_id, e, policy).change.is_some() {
            changes += 1;
        }
    }
    changes
}

impl CustomerState {
    /// Mark the complaints overdue by `now` and not announced yet as
    /// announced and return their notices (see [`ComplaintOverdue`]).
    pub fn announce_overdue(&mut self, customer_id: &str, now: Timestamp) -> Vec<ComplaintOverdue> {
        self.projection
            .announce_overdue(now)
            .into_iter()
            .filter_map(|(complaint_id, rec)| {
                Some(ComplaintOverdue {
                    customer_id: customer_id.to_owned(),
                    complaint_id,
                    severity: rec.severity,
                    category: rec.category,
                    opened_at: rec.opened_at?,
                    deadline: rec.deadline?,
                    resolved_at: rec.resolved_at,
                })
            })
            .collect()
    }
}

/// A customer's override in force and its override history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Overrides {
    active: Option<Override>,
    /// Oldest first, at most [`MAX_OVERRIDE_HISTORY`].
    history: Vec<OverrideEntry>,
}

/// The upgrades events and time made, while the tier held is above the
/// one before the first of them (see the module docs, "Corrections").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Raise {
    /// Hash of the id of the order whose placement made the first upgrade
    /// ([`NO_ORDER`]: another event or time made it): its cancellation
    /// always decides again from `prior`.
    order: u64,
    /// The assignment before the first upgrade (`None`: it was the first).
    prior: Option<TierAssignment>,
}

/// [`Raise::order`] of upgrades no placement made.
const NO_ORDER: u64 = 0;

/// The last change into `tier` at or after `floor` (any, for `None`)
/// that no override made, in a tier history kept oldest first.
fn last_entry<'h>(
    history: &'h [TierStep],
    tier: &str,
    floor: Option<Timestamp>,
) -> Option<&'h TierStep> {
    history
        .iter()
        .rev()
        .take_while(|s| floor.is_none_or(|f| s.at >= f))
        .find(|s| !s.overridden && s.to == tier)
}

/// The `since` a correction that decides from `prior` (the assignment
/// before the upgrades remembered) keeps for `tier`: `prior`'s when it is
/// that tier, else that of the last change into it since `prior` (an
/// upgrade remembered, or the first tier) that no override made; `None`
/// when there is none (the customer enters the tier anew).
fn since_before_raise(
    history: &[TierStep],
    prior: Option<&TierAssignment>,
    tier: &str,
) -> Option<Timestamp> {
    if let Some(p) = prior
        && p.tier == tier
    {
        return Some(p.since);
    }
    last_entry(history, tier, prior.map(|p| p.since)).map(|s| s.at)
}

/// Most tier changes a customer's history keeps.
pub const MAX_TIER_HISTORY: usize = 256;

/// One change of a customer's effective tier, as kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierStep {
    pub at: Timestamp,
    /// `None`: the customer's first tier.
    pub from: Option<TierName>,
    pub to: TierName,
    pub score: f64,
    pub cause: Cause,
    pub overridden: bool,
    pub sequence: u64,
}

/// Whether a tier history kept oldest first lost its oldest changes
/// (its first step is not the customer's first change).
pub fn history_truncated(history: &[TierStep]) -> bool {
    history.first().is_some_and(|s| s.sequence > 1)
}

/// The change in force at `at` in a tier history kept oldest first: the
/// last one at or before it; `Ok(None)` before the customer's first tier;
/// `Err(oldest kept)` when `at` lies before a truncated history (the tier
/// then is not known).
pub fn step_at(history: &[TierStep], at: Timestamp) -> Result<Option<&TierStep>, Timestamp> {
    match history.partition_point(|s| s.at <= at) {
        0 if history_truncated(history) => Err(history.first().map_or(at, |s| s.at)),
        0 => Ok(None),
        i => Ok(history.get(i - 1)),
    }
}

/// What a customer's tier was at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierAsOf {
    /// The tier held (`None`: no tier yet, the first came later).
    Known(Option<String>),
    /// Before the oldest change the history still keeps; the tier then
    /// is not known (it is the `from` of that change at the latest).
    Forgotten { oldest: Timestamp },
}

/// What the store keeps per customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Inline: the engine holds each decoded state in a box of its own,
    /// and every event reads the projection, so it is one pointer away
    /// from the engine's table, not two.
    pub projection: CustomerProjection,
    /// The tier currently held; `None` until the first event is scored.
    pub assignment: Option<TierAssignment>,
    /// When the last decision was made (see the module docs).
    pub decided_at: Timestamp,
    /// Version of the policy that made the last decision (inline up to
    /// 24 bytes, as a [`TierName`]).
    pub policy_version: CompactString,
    /// Sequence number of the last published tier change.
    pub sequence: u64,
    /// The upgrades events and time made, while they are the held tier's
    /// cause (see the module docs, "Corrections").
    raise: Option<Box<Raise>>,
    /// The order that ended the last lapse (lifecycle `reactivated`).
    reactivated_at: Option<Timestamp>,
    /// Overrides: the one in force and the history. Boxed, since few
    /// customers ever have one and every event reads this state.
    overrides: Option<Box<Overrides>>,
    /// The tier consumers act on (the override's, when one applies) and
    /// since when; `None` before the first decision.
    pub effective: Option<TierAssignment>,
    /// The time-driven downgrade last announced as foreseen (published
    /// once; cleared when it no longer lies ahead, and when the tier held
    /// changes).
    #[serde(default)]
    pub at_risk: Option<Box<AtRisk>>,
    /// Every change of the effective tier, oldest first, at most
    /// [`MAX_TIER_HISTORY`] (the oldest are dropped first): what the tier
    /// was on a past date ([`Self::tier_as_of`]).
    #[serde(default)]
    history: Vec<TierStep>,
    /// Indicators at the last tier change: the baseline of the next
    /// change's reasons ("what moved since the tier was last set").
    /// Written only on a change, so the per-event path neither copies nor
    /// carries them; held and stored packed (see [`KeptIndicators`]), so
    /// the first change after a restart explains itself as it would have
    /// without one. The last field serialized:
    /// store format 1 is format 2 without it (tier-store's `codec`).
    #[serde(default, deserialize_with = "kept_unless_deciding_only")]
    indicators_at_change: Option<KeptIndicators>,
    /// The tier the figures gave at the last decision (before hysteresis),
    /// so [`Self::next_due`] need not evaluate again right after one.
    /// Derived; not stored.
    #[serde(skip)]
    evaluated: Option<(Timestamp, usize)>,
}

/// Who the override history names for an override a policy change ended
/// (its tier retired).
pub const RETIRING_AUTHOR: &str = "tierd (policy change)";

/// The orders an order placement falls between in event time, read
/// before it is folded in (see `CustomerState::note_reactivation`).
#[derive(Debug, Clone, Copy)]
struct OrderNeighbours {
    /// The latest order placed before it.
    before: Option<Timestamp>,
    /// The earliest order that counts.
    first: Option<Timestamp>,
}

/// The outcome of [`CustomerState::rescore_policy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rescored {
    pub change: Option<TierChange>,
    /// The decision stands: only the decision instant and the policy
    /// version moved (see [`CustomerState::confirm`]).
    pub confirmed: bool,
}

/// What a policy rescore can change of a customer besides the decision
/// instant and the policy version, compared before and after
/// ([`CustomerState::rescore_policy`]). Tiers by index under the new
/// policy (names are unique; `None` for a name it does not know), so
/// nothing is copied.
#[derive(Debug, PartialEq)]
struct Decision {
    assignment: Option<(Option<usize>, u64, Timestamp)>,
    effective: Option<(Option<usize>, u64, Timestamp)>,
    sequence: u64,
    history: usize,
    raise: bool,
    manual: bool,
    overrides: usize,
}

impl Decision {
    fn of(state: &CustomerState, policy: &Policy) -> Self {
        let held = |a: &TierAssignment| (policy.tier_index(&a.tier), a.score.to_bits(), a.since);
        Self {
            assignment: state.assignment.as_ref().map(held),
            effective: state.effective.as_ref().map(held),
            sequence: state.sequence,
            history: state.history.len(),
            raise: state.raise.is_some(),
            manual: state.manual().is_some(),
            overrides: state.override_history().len(),
        }
    }
}

/// The figures at the last change: kept, or (inside
/// [`deciding_only`](crate::projection::deciding_only)) read past.
fn kept_unless_deciding_only<'de, D>(d: D) -> Result<Option<KeptIndicators>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    if crate::projection::is_deciding_only() {
        let _: Option<&'de [u8]> = Deserialize::deserialize(d)?;
        return Ok(None);
    }
    Deserialize::deserialize(d)
}

/// The outcome of [`CustomerState::process`].
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub applied: Applied,
    /// Time-driven changes due before the event's instant, made (cause
    /// `Time`, each at its own due instant) before the event was folded.
    /// Empty unless time moved the tier since the customer's last decision.
    pub due_first: Vec<TierChange>,
    pub change: Option<TierChange>,
    /// Complaints this event shows past their deadline (its late
    /// resolution, or an instant past one), announced now; a sweep that
    /// reached the deadline first announced them already.
    pub overdue: Vec<ComplaintOverdue>,
}

/// Which search finds the time-driven decisions: the fast one, or the
/// full one it is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Fast,
    Reference,
}

/// The last day of a run of time-driven decisions that keep the held
/// tier (see `CustomerState::quiet_run`).
struct QuietRun {
    /// The start of the run's last day and the evaluation of its figures.
    at: Timestamp,
    eval: Evaluation,
    /// Days of the run after the first.
    days: usize,
    /// Whether the run's last day is the day of the advance's `until`:
    /// the next due instant is then later (no exact instant, an
    /// override's or an assessment's expiry, can come first in a run).
    reaches_until: bool,
}

/// Whether `name` is one of the day's figures, the only indicators a
/// time step moves (`CustomerProjection::indicators_step`).
fn is_day_figure(name: crate::indicators::IndicatorName) -> bool {
    crate::projection::DAY_FIGURES.contains(&name)
}

/// What a rescore is about, beyond its cause.
#[derive(Debug, Clone, Copy)]
struct Trigger<'a> {
    cause: Cause,
    event_id: Option<&'a str>,
    /// The order an event placed (`Some` for a placement).
    placed: Option<u64>,
    /// A correction (cancellation or return) of an order that counted at
    /// the upgrades remembered.
    correction: Option<Correction>,
}

/// A correction of an order that counted at the upgrades remembered.
#[derive(Debug, Clone, Copy)]
struct Correction {
    /// Hash of the order's id.
    order: u64,
    /// What the figures gave just before it, at the decision instant.
    before: Evaluation,
}

impl CustomerState {
    /// The tier the customer holds (an override's, when one applies);
    /// `None` before the first decision.
    pub fn tier(&self) -> Option<&str> {
        self.effective.as_ref().map(|e| e.tier.as_str())
    }

    /// The tier the figures give: the last decision's (hysteresis
    /// included), or, for a customer no decision was made for yet (known
    /// only by a manager's override), what its `figures` give under
    /// `policy`: not the override's tier, which no figure gave.
    pub fn computed_tier(&self, policy: &Policy, figures: &Indicators) -> String {
        match &self.assignment {
            Some(a) => a.tier.to_string(),
            None => policy
                .tiers()
                .get(policy.evaluate(figures).tier)
                .map_or_else(String::new, |t| t.name.clone()),
        }
    }

    /// Fold `event` in and rescore at the decision instant. Duplicates and
    /// stale events change nothing, not even the score.
    pub fn process(&mut self, customer_id: &str, event: &Event, policy: &Policy) -> Processed {
        self.process_with(customer_id, event, policy, Path::Fast)
    }

    /// [`Self::process`] with every time-driven decision found by the
    /// straightforward search ([`Self::next_due_reference`]): the
    /// reference the fast path is tested against.
    #[doc(hidden)]
    pub fn process_reference(
        &mut self,
        customer_id: &str,
        event: &Event,
        policy: &Policy,
    ) -> Processed {
        self.process_with(customer_id, event, policy, Path::Reference)
    }

    fn process_with(
        &mut self,
        customer_id: &str,
        event: &Event,
        policy: &Policy,
        path: Path,
    ) -> Processed {
        // Whatever time alone decides before the event's instant is decided
        // first, at its own instant: the result is then the same whether a
        // sweep or this event reached the due instant first. Time-driven
        // decisions fall on business-day starts (or an override's expiry),
        // so an event on the day of the last decision skips the check.
        let mut due_first = Vec::new();
        if event.occurred_at > self.decided_at
            && (policy.calendar().day(event.occurred_at) > policy.calendar().day(self.decided_at)
                || self.manual().is_some_and(|m| m.expires_at.is_some()))
            && let Some(due) = self.due(policy, path).filter(|d| *d <= event.occurred_at)
        {
            due_first = self
                .advance_from(
                    Some(due),
                    customer_id,
                    policy,
                    event.occurred_at,
                    usize::MAX,
                    path,
                )
                .0;
        }
        // A complaint's deadline follows the tier held at its opening.
        let tier_at_opening = match &event.kind {
            EventKind::ComplaintOpened { .. } => Some(self.tier_held_at(event.occurred_at)),
            _ => None,
        };
        // Only a placement can end a lapse: read the order it follows in
        // event time (not the last one read: an order posted late may fall
        // between two others).
        let neighbours = match event.kind {
            EventKind::OrderPlaced { .. } => {
                let at = event.occurred_at;
                Some(OrderNeighbours {
                    before: self.projection.order_before(at, policy.calendar().day(at)),
                    first: self.projection.first_order_at(),
                })
            }
            _ => None,
        };
        // A cancellation or return corrects an order only while the order
        // counts: not one outside the window, nor one cancelled already.
        let counted = match &event.kind {
            EventKind::OrderCancelled { order_id } | EventKind::OrderReturned { order_id, .. } => {
                let key = stable_hash(order_id);
                self.projection.order_counts(key).then_some(key)
            }
            _ => None,
        };
        // A correction of an order that counted at the upgrades remembered:
        // what the figures give just before it, read before it is folded in
        // (what the order adds is the difference).
        let correction = counted.filter(|_| self.raise.is_some()).and_then(|order| {
            let at = self.decision_instant(Some(event.occurred_at));
            self.counted_at_raise(order, at, policy)
                .then(|| Correction {
                    order,
                    before: policy.evaluate(&self.scored_figures(policy, at)),
                })
        });
        let applied = self.projection.apply(event, policy.fold_rules());
        if applied != Applied::Applied {
            return Processed {
                applied,
                due_first,
                change: None,
                overdue: Vec::new(),
            };
        }
        let placed = match &event.kind {
            EventKind::OrderPlaced { order_id, .. } => {
                let key = stable_hash(order_id);
                if let Some(n) = neighbours {
                    self.note_reactivation(n, event.occurred_at, key, policy);
                }
                Some(key)
            }
            EventKind::OrderCancelled { .. } | EventKind::OrderReturned { .. } => {
                // Stages count whole days: only a day left without an order
                // can end or start a lapse.
                if counted.is_some_and(|key| self.projection.order_left_its_day_empty(key)) {
                    self.reconsider_reactivation(policy);
                }
                None
            }
            _ => None,
        };
        let at = self.decision_instant(None);
        let trigger = Trigger {
            cause: Cause::Event,
            event_id: Some(&event.event_id),
            placed,
            correction,
        };
        let change = self.rescore(customer_id, policy, at, trigger);
        if let (Some(held), EventKind::ComplaintOpened { complaint_id, .. }) =
            (tier_at_opening, &event.kind)
        {
            self.set_complaint_deadline(complaint_id, held, event.occurred_at, policy);
        }
        // An event dated past an open complaint's deadline shows it overdue
        // (while catching up, no sweep has); the Kafka adapter reads the
        // input topics merged by event time while catching up, so an order
        // dated past the deadline is not read before a resolution in time
        // still waiting in the complaints topic.
        let overdue = if event.kind.is_complaint()
            || self
                .projection
                .next_complaint_deadline()
                .is_some_and(|d| d <= event.occurred_at)
        {
            self.announce_overdue(customer_id, event.occurred_at)
        } else {
            Vec::new()
        };
        Processed {
            applied,
            due_first,
            change,
            overdue,
        }
    }

    /// Fix a newly opened complaint's deadline: `opened_at` plus the
    /// `complaint_sla_hours` of the tier held at the opening; a customer
    /// with no tier before its first event takes the tier that event gave
    /// it (the lowest tier if none). A tier held at the opening that the
    /// policy in force no longer has (a change renamed or retired it
    /// since) gives way to the tier the customer holds under it: its SLA
    /// is the nearest this policy has, where the lowest tier's would sink
    /// a key account's complaint to the bottom of the queue.
    fn set_complaint_deadline(
        &mut self,
        complaint_id: &str,
        held: Option<TierName>,
        opened_at: Timestamp,
        policy: &Policy,
    ) {
        let tier = held
            .and_then(|t| policy.tier_index(&t))
            .or_else(|| {
                self.effective
                    .as_ref()
                    .and_then(|e| policy.tier_index(&e.tier))
            })
            .unwrap_or(policy.tiers().len().saturating_sub(1));
        let Some(spec) = policy.tiers().get(tier) else {
            return;
        };
        let hours = i64::from(spec.complaint_sla_hours);
        let at = Timestamp::from_millis(opened_at.millis().saturating_add(hours * 3_600_000));
        self.projection.set_complaint_deadline(
            complaint_id,
            Deadline {
                at,
                tier: spec.name.clone(),
                sla_hours: spec.complaint_sla_hours,
            },
        );
    }

    /// Rescore without an event, at `at` (or the decision instant, when
    /// later): time passed or the policy changed.
    pub fn reevaluate(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        at: Timestamp,
        cause: Cause,
    ) -> Option<TierChange> {
        let at = self.decision_instant(Some(at));
        let trigger = Trigger {
            cause,
            event_id: None,
            placed: None,
            correction: None,
        };
        self.rescore(customer_id, policy, at, trigger)
    }

    /// [`Self::reevaluate`] under a new policy (cause `Policy`) at `at`,
    /// telling whether the decision merely stands: `confirmed` when
    /// nothing the store keeps changed but what [`Self::confirm`] sets
    /// (the decision instant and the policy version). A confirmed
    /// customer need not be written again: its stored state, confirmed
    /// with the same `policy.version()` and `at`, is this state.
    pub fn rescore_policy(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        at: Timestamp,
    ) -> Rescored {
        let before = Decision::of(self, policy);
        // An override naming a tier the policy no longer has cannot apply:
        // it ends here, in the override history, instead of staying shown
        // as in force (and applying again should a later policy bring the
        // tier back).
        let retired = self
            .manual()
            .filter(|m| policy.tier_index(&m.tier).is_none())
            .map(|m| m.tier.clone());
        if let Some(tier) = &retired {
            self.set_manual(None);
            self.log_override(
                at,
                OverrideAction::Cleared {
                    reason: format!("tier {tier} is not a tier of policy {}", policy.version()),
                    author: RETIRING_AUTHOR.to_owned(),
                },
            );
        }
        let change = self.reevaluate(customer_id, policy, at, Cause::Policy);
        let confirmed =
            retired.is_none() && change.is_none() && Decision::of(self, policy) == before;
        Rescored { change, confirmed }
    }

    /// Bytes this state takes on the heap when held boxed, as the engine
    /// holds it, about: its own size and what it owns (the engine bounds
    /// the customers it holds decoded by this).
    /// A light customer holds one or two kilobytes; the busiest, with
    /// every applied event, order and invoice of their window in hash
    /// tables and a bucket per active day, tens of kilobytes.
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let tier = |a: &Option<TierAssignment>| a.as_ref().map_or(0, |a| heap_bytes(&a.tier));
        size_of::<Self>()
            + self.projection.heap_size()
            + tier(&self.assignment)
            + tier(&self.effective)
            + heap_bytes(&self.policy_version)
            + self
                .raise
                .as_ref()
                .map_or(0, |r| size_of::<Raise>() + tier(&r.prior))
            + self.overrides.as_ref().map_or(0, |o| {
                size_of::<Overrides>() + o.history.capacity() * size_of::<OverrideEntry>()
            })
            + self.at_risk.as_ref().map_or(0, |a| {
                size_of::<AtRisk>()
                    + a.customer_id.capacity()
                    + a.current_tier.capacity()
                    + a.falls_to.capacity()
            })
            + self.history.capacity() * size_of::<TierStep>()
            + self
                .history
                .iter()
                .map(|s| heap_bytes(&s.to) + s.from.as_ref().map_or(0, heap_bytes))
                .sum::<usize>()
            + self
                .indicators_at_change
                .as_ref()
                .map_or(0, KeptIndicators::heap_size)
    }

    /// A copy to read, never to hold, fold events into or store: as
    /// [`deciding_only`](crate::projection::deciding_only) decodes one,
    /// without the applied event ids, the orders by id, the invoices not
    /// open, the profile's name, industry and region and the figures kept
    /// at the last change, which no decision, figure or view reads. What
    /// the engine's policy rescore hands the read side for a confirmed
    /// customer it holds decoded: the busiest customers hold hundreds of
    /// thousands of applied ids, which a full copy would clone only to
    /// drop.
    pub fn clone_deciding_only(&self) -> Self {
        let Self {
            projection,
            assignment,
            decided_at,
            policy_version,
            sequence,
            raise,
            reactivated_at,
            overrides,
            effective,
            at_risk,
            history,
            indicators_at_change: _,
            evaluated,
        } = self;
        Self {
            projection: projection.clone_deciding_only(),
            assignment: assignment.clone(),
            decided_at: *decided_at,
            policy_version: policy_version.clone(),
            sequence: *sequence,
            raise: raise.clone(),
            reactivated_at: *reactivated_at,
            overrides: overrides.clone(),
            effective: effective.clone(),
            at_risk: at_risk.clone(),
            history: history.clone(),
            indicators_at_change: None,
            evaluated: *evaluated,
        }
    }

    /// What a policy rescore at `at` that found the decision standing
    /// (see [`Self::rescore_policy`]) leaves changed: the decision is now
    /// `version`'s, made at `at` (or the decision instant, when later).
    pub fn confirm(&mut self, version: &str, at: Timestamp) {
        self.decided_at = self.decision_instant(Some(at));
        if self.policy_version != version {
            self.policy_version = CompactString::from(version);
        }
        self.evaluated = None;
    }

    /// An order placed at `at` after `lapsed_after_days` without one ends a
    /// lapse; the latest order that ended one is the reactivation. The
    /// orders are taken in event time, whatever was read first:
    /// - an order posted late can fall inside the gap that made a later
    ///   order the reactivation: that order ended no lapse after all;
    /// - an order posted late before every other one can open a gap that
    ///   makes the first order known until now a reactivation.
    ///
    /// When the reactivation is voided, the order that ended the lapse
    /// before it (it may still show, under a policy whose `new_for_days`
    /// is the longer) is found again from the window's days.
    ///
    /// An order that does not count (its cancellation was read first) ends
    /// no lapse and voids none.
    fn note_reactivation(
        &mut self,
        around: OrderNeighbours,
        at: Timestamp,
        key: u64,
        policy: &Policy,
    ) {
        let cal = policy.calendar();
        let lapsed = i64::from(policy.lifecycle().lapsed_after_days);
        let lapse_between =
            |from: Timestamp, to: Timestamp| i64::from(cal.day(to).since(cal.day(from))) >= lapsed;
        let ends_lapse = around
            .before
            .is_some_and(|b| lapse_between(b, at))
            .then_some(at);
        // The reactivation stands unless this order fell inside its gap.
        let standing = self
            .reactivated_at
            .filter(|&r| r <= at || lapse_between(at, r));
        // An order of the reactivation's day after it ends no lapse (the
        // window keeps each day's latest order, so `before` can miss it).
        let ends_lapse = ends_lapse.filter(|_| standing.is_none_or(|r| cal.day(r) != cal.day(at)));
        // With nothing known before it, this order precedes the first.
        let next_ends_lapse = around
            .first
            .filter(|&f| around.before.is_none() && f > at && lapse_between(at, f));
        let reactivated_at = standing.max(ends_lapse).max(next_ends_lapse);
        if reactivated_at == self.reactivated_at || !self.projection.order_counts(key) {
            return;
        }
        if standing.is_none() && self.reactivated_at.is_some() {
            // Voided (this order is in the window and before it, so it was
            // in the window too): the window's days know every lapse since.
            self.reconsider_reactivation(policy);
        } else {
            self.reactivated_at = reactivated_at;
        }
    }

    /// After a cancellation or a full return took an order out of the
    /// count, or a late order voided the reactivation: the reactivation is
    /// the order that ended the last lapse
    /// among the orders that still count. Cancelling the order that ended
    /// a lapse ends the reactivation (or moves it to a later order that
    /// now ends the lapse); cancelling an order inside a gap can make the
    /// order after it end a lapse. The window's days answer; a
    /// reactivation from before the window stands unless one in it
    /// follows.
    fn reconsider_reactivation(&mut self, policy: &Policy) {
        let cal = policy.calendar();
        let lapsed = i64::from(policy.lifecycle().lapsed_after_days);
        let found = self.projection.last_lapse_end(cal, lapsed);
        self.reactivated_at = match self.reactivated_at {
            Some(r) if cal.day(r) < self.projection.window_first_day() => Some(r).max(found),
            _ => found,
        };
    }

    /// The lifecycle stage at `at` (no earlier than the decision instant).
    pub fn lifecycle(&self, policy: &Policy, at: Timestamp) -> Lifecycle {
        let at = self.decision_instant(Some(at));
        let cal = policy.calendar();
        let rules = policy.lifecycle();
        let today = cal.day(at);
        let days_since = |t: Timestamp| i64::from(today.since(cal.day(t)));
        let Some(last) = self.projection.last_order_at() else {
            return Lifecycle::Prospect;
        };
        if days_since(last) >= i64::from(rules.lapsed_after_days) {
            return Lifecycle::Lapsed;
        }
        if self
            .reactivated_at
            .is_some_and(|r| days_since(r) < i64::from(rules.new_for_days))
        {
            return Lifecycle::Reactivated;
        }
        // From where tenure counts, so that a stage and a tenure shown
        // side by side never disagree.
        match self.projection.tenure_start() {
            Some(start) if days_since(start) < i64::from(rules.new_for_days) => Lifecycle::New,
            _ => Lifecycle::Active,
        }
    }

    /// The next instant after the last decision at which this customer's
    /// figures, stage or tier can change with time alone, `None` when
    /// nothing can: the start of the business day a scored figure next
    /// changes (see `CustomerProjection::next_change`) or a lifecycle
    /// threshold is crossed, the end of a hysteresis hold, an override's
    /// expiry (exact to the millisecond).
    ///
    /// The common case is answered without the full search: when a scored
    /// figure changes every day (see `CustomerProjection::changes_daily`)
    /// and no exact instant (an override's or an assessment's expiry) can
    /// come first, the next due instant is the start of tomorrow.
    pub fn next_due(&self, policy: &Policy) -> Option<Timestamp> {
        self.next_due_daily(policy)
            .or_else(|| self.next_due_reference(policy))
    }

    /// The fast path of [`Self::next_due`]: `Some(start of tomorrow)` when
    /// a scored figure changes every day and no exact instant can come
    /// first; `None` when the full search must answer. Every other
    /// candidate of the search is a day start after today, or the end of
    /// a hysteresis hold, also a day start after the decision instant: none
    /// is earlier than tomorrow's start.
    fn next_due_daily(&self, policy: &Policy) -> Option<Timestamp> {
        if self.projection.has_assessments()
            || self.manual().is_some_and(|m| m.expires_at.is_some())
        {
            return None;
        }
        let cal = policy.calendar();
        let today = cal.day(self.decision_instant(None));
        self.projection
            .changes_daily(policy.fold_rules(), today, |n| policy.uses(n))
            .then(|| cal.day_start(today.plus(1)))
    }

    fn due(&self, policy: &Policy, path: Path) -> Option<Timestamp> {
        match path {
            Path::Fast => self.next_due(policy),
            Path::Reference => self.next_due_reference(policy),
        }
    }

    /// [`Self::next_due`] by the full search over every candidate: the
    /// reference its fast path is tested against.
    #[doc(hidden)]
    pub fn next_due_reference(&self, policy: &Policy) -> Option<Timestamp> {
        let now = self.decision_instant(None);
        let cal = policy.calendar();
        let today = cal.day(now);
        let mut day = self
            .projection
            .next_change(policy.fold_rules(), now, |n| policy.uses(n));
        let mut consider = |d: crate::time::Day| {
            if d > today {
                day = Some(day.map_or(d, |n| n.min(d)));
            }
        };
        let rules = policy.lifecycle();
        let plus = |t: Timestamp, n: u32| cal.day(t).plus(i32::try_from(n).unwrap_or(i32::MAX));
        if let Some(last) = self.projection.last_order_at() {
            consider(plus(last, rules.lapsed_after_days));
        }
        // "New" ends `new_for_days` after the tenure's start (see
        // `lifecycle`); a customer without an order is a prospect.
        if self.projection.first_order_at().is_some()
            && let Some(start) = self.projection.tenure_start()
        {
            consider(plus(start, rules.new_for_days));
        }
        // A new-customer rule on the order count stops reading it the day
        // the tenure start leaves the window (see `NewCustomers::is_new`):
        // when `customer_since` precedes the first order no figure's
        // change marks that day. Without an assessment the rule grades no
        // one (and one applied later is an event, which makes this due).
        if self.projection.has_assessments()
            && let Some(day) = policy
                .new_customers()
                .zip(self.projection.tenure_start())
                .and_then(|(n, start)| n.history_before_window_from(cal.day(start)))
        {
            consider(day);
        }
        if let Some(r) = self.reactivated_at {
            consider(plus(r, rules.new_for_days));
        }
        let mut due = day.map(|d| cal.day_start(d));
        let mut exact = |t: Timestamp| {
            if t > now {
                due = Some(due.map_or(t, |d: Timestamp| d.min(t)));
            }
        };
        if let Some(end) = self.manual().and_then(|m| m.expires_at) {
            exact(end);
        }
        // An assessment expires at a business day's start in the calendar
        // it was folded under: exact, should the calendar have changed.
        if let Some(end) =
            self.projection
                .next_assessment_expiry(policy.fold_rules(), now, |slot| {
                    policy.expiry_matters(slot)
                })
        {
            exact(end);
        }
        if let Some(a) = &self.assignment {
            let held = policy.tier_index(&a.tier);
            let evaluated = match self.evaluated {
                Some((at, tier)) if at == now && self.policy_version == policy.version() => tier,
                _ => policy.evaluate(&self.scored_figures(policy, now)).tier,
            };
            if held.is_some_and(|h| evaluated > h) {
                // A hold ends at the start of the business day it runs out
                // on (or at once, when that day has started): time-driven
                // decisions fall on day starts.
                let end = policy.hold_ends(a.since);
                let day = cal.day(end);
                let start = cal.day_start(day);
                exact(if start < end {
                    cal.day_start(day.plus(1))
                } else {
                    start
                });
            }
        }
        due
    }

    /// Make every time-driven decision up to `until`, in order, each at its
    /// own due instant (so the result does not depend on how often this is
    /// called). At most `max_steps` decisions; returns the tier changes
    /// and whether `until` was reached.
    pub fn advance_to(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        until: Timestamp,
        max_steps: usize,
    ) -> (Vec<TierChange>, bool) {
        self.advance_from(None, customer_id, policy, until, max_steps, Path::Fast)
    }

    /// [`Self::advance_to`] by [`Self::next_due_reference`] (tests).
    #[doc(hidden)]
    pub fn advance_to_reference(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        until: Timestamp,
        max_steps: usize,
    ) -> (Vec<TierChange>, bool) {
        self.advance_from(None, customer_id, policy, until, max_steps, Path::Reference)
    }

    /// [`Self::advance_to`], with the first due instant when the caller
    /// has just found it.
    fn advance_from(
        &mut self,
        first: Option<Timestamp>,
        customer_id: &str,
        policy: &Policy,
        until: Timestamp,
        max_steps: usize,
        path: Path,
    ) -> (Vec<TierChange>, bool) {
        let mut changes = Vec::new();
        let mut next = match first {
            Some(due) => Some(due),
            None => self.due(policy, path),
        };
        // The figures of the previous step and their instant: the
        // projection does not change between two steps, so a step moves
        // only the day's figures from them when nothing else can have
        // moved (see `CustomerProjection::indicators_step`).
        let mut figures = Indicators::default();
        let mut figures_at: Option<Timestamp> = None;
        let mut kept = crate::policy::StepProducts::default();
        let trigger = Trigger {
            cause: Cause::Time,
            event_id: None,
            placed: None,
            correction: None,
        };
        let mut steps = 0;
        while steps < max_steps {
            let Some(due) = next.filter(|d| *d <= until) else {
                return (changes, true);
            };
            let at = self.decision_instant(Some(due));
            let stepped = path == Path::Fast
                && figures_at.is_some_and(|prev| {
                    self.projection.indicators_step(
                        &mut figures,
                        prev,
                        at,
                        policy.fold_rules(),
                        |n| policy.uses(n),
                    )
                });
            if !stepped {
                figures = self.scored_figures(policy, at);
            }
            // Only the day's figures moved: a weighted score computes only
            // their parts again.
            let mut eval = match path {
                Path::Fast => policy.evaluate_step(&figures, &mut kept, !stepped, is_day_figure),
                Path::Reference => policy.evaluate(&figures),
            };
            let mut at = at;
            let mut reached = false;
            steps += 1;
            // A quiet run of days that keep the held tier is decided at
            // its last day (see `quiet_run`).
            if path == Path::Fast
                && let Some(run) = self.quiet_run(
                    policy,
                    at,
                    &mut figures,
                    eval,
                    &mut kept,
                    until,
                    max_steps - steps,
                )
            {
                (at, eval) = (run.at, run.eval);
                steps += run.days;
                reached = run.reaches_until;
            }
            figures_at = Some(at);
            if let Some(c) = self.rescore_with(customer_id, policy, at, trigger, &figures, eval) {
                changes.push(c);
            }
            if reached {
                // Every later due instant is a day start after `until`'s day.
                return (changes, true);
            }
            next = self.due(policy, path);
        }
        (changes, next.is_none_or(|d| d > until))
    }

    /// A run of daily time-driven decisions from `at` (the decision just
    /// evaluated, `figures` and `eval` its own, not made yet) that all keep
    /// the held tier, so that deciding only its last day leaves the state
    /// each of them would (a decision that keeps the tier only sets the
    /// decision instant and the score): the last such day no later than
    /// `until`, at most `budget` days after `at`'s, and the evaluation of
    /// its figures, left in `figures`; `None` (and `figures` unchanged)
    /// when there is no such run past `at`'s day.
    ///
    /// Taken only where it is provable: the figures time moves can only
    /// lower the tier ([`Policy::day_figures_only_lower`]), no override
    /// expires and no assessment exists (no exact instant can interleave),
    /// every day of the run is due (a scored figure moves daily,
    /// `CustomerProjection::daily_through`), and only those figures move
    /// over it (`CustomerProjection::quiet_through`: no activity leaves
    /// the window, no invoice falls due). Then, with `at`
    /// keeping the held tier, the evaluated tier never improves over the
    /// run, so the first day that leaves the held tier is followed only by
    /// days that leave it too (a hold's days and the score's distance
    /// below the band only grow; the gates admit no better tier): the last
    /// day that keeps it is found by testing the run's last day, else by
    /// bisection. The differential test checks it against deciding every
    /// day (`fast_time_steps_equal_the_reference`).
    #[allow(clippy::too_many_arguments)] // one private call path, all plain values
    fn quiet_run(
        &self,
        policy: &Policy,
        at: Timestamp,
        figures: &mut Indicators,
        eval: Evaluation,
        kept: &mut crate::policy::StepProducts,
        until: Timestamp,
        budget: usize,
    ) -> Option<QuietRun> {
        if budget == 0
            || !policy.day_figures_only_lower()
            || self.projection.has_assessments()
            || self.manual().is_some_and(|m| m.expires_at.is_some())
        {
            return None;
        }
        let current = self.assignment.as_ref()?;
        let held = policy.tier_index(&current.tier)?;
        let keeps = |eval: Evaluation, now: Timestamp| {
            policy.decide_held(Some((held, current.since)), eval, now) == held
        };
        if !keeps(eval, at) {
            return None;
        }
        let (rules, cal) = (policy.fold_rules(), policy.calendar());
        let uses = |n| policy.uses(n);
        let first = cal.day(at);
        let (quiet, overdue) = self.projection.quiet_through(at, rules, uses)?;
        let last = cal
            .day(until)
            .min(first.plus(i32::try_from(budget).unwrap_or(i32::MAX)))
            .min(quiet)
            .min(self.projection.daily_through(rules, first, uses)?.plus(1));
        // Every day after `first` through `last` is due: a figure moved
        // daily on the day before each.
        if last <= first || !self.projection.changes_daily(rules, last.minus(1), uses) {
            return None;
        }
        // The figures of another day of the run, in `f` (`figures`' copy):
        // the day figures moved, or everything computed again while days
        // late grow (the next step is computed in full too then, an
        // invoice being overdue).
        let mut on =
            |day: crate::time::Day, f: &mut Indicators| -> Option<(Timestamp, Evaluation)> {
                let t = cal.day_start(day);
                if overdue {
                    *f = self.scored_figures(policy, t);
                    return Some((t, policy.evaluate(f)));
                }
                if !self.projection.indicators_step(f, at, t, rules, uses) {
                    return None;
                }
                Some((t, policy.evaluate_step(f, kept, false, is_day_figure)))
            };
        let mut f = *figures;
        let (mut lo, mut hi) = (first, last);
        let mut best = None;
        let end = on(last, &mut f)?;
        if keeps(end.1, end.0) {
            lo = last;
            best = Some(end);
        } else {
            // `lo` keeps the tier, `hi` leaves it.
            while hi.since(lo) > 1 {
                let mid = lo.plus(hi.since(lo) / 2);
                let m = on(mid, &mut f)?;
                if keeps(m.1, m.0) {
                    lo = mid;
                    best = Some(m);
                } else {
                    hi = mid;
                }
            }
            // `f` holds the last day evaluated, which may be `hi`.
            if best.is_some() && on(lo, &mut f).is_none() {
                return None;
            }
        }
        let (at, eval) = best?;
        *figures = f;
        Some(QuietRun {
            at,
            eval,
            days: usize::try_from(lo.since(first)).unwrap_or(0),
            reaches_until: lo == cal.day(until),
        })
    }

    /// Foresee a time-driven downgrade within the policy's horizon from
    /// `now`: the first one that would happen if no event arrived.
    pub fn foresee_drop(
        &self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
    ) -> Option<AtRisk> {
        let current = self.effective.as_ref()?;
        let held = policy.tier_index(&current.tier)?;
        let horizon = now.plus_days(i64::from(policy.lifecycle().at_risk_horizon_days));
        // What decisions read is all the future needs: not the applied
        // event ids (hundreds of thousands for the busiest customers).
        let mut future = self.clone_deciding_only();
        let limit = policy.lifecycle().at_risk_horizon_days as usize + 8;
        for _ in 0..limit {
            let due = future.next_due(policy).filter(|d| *d <= horizon)?;
            if let Some(change) = future.reevaluate(customer_id, policy, due, Cause::Time) {
                let to = policy.tier_index(&change.new_tier)?;
                if to > held {
                    let figures = future.indicators(policy);
                    // What reaches the tier held now, from the tier just
                    // below it (a drop may skip tiers: the way back to
                    // the one above `to` would not keep it).
                    let keep = policy.explain(&figures, held + 1).advice;
                    return Some(AtRisk {
                        customer_id: customer_id.to_owned(),
                        current_tier: current.tier.to_string(),
                        falls_to: change.new_tier,
                        on: change.changed_at,
                        keep,
                    });
                }
            }
        }
        None
    }

    /// The latest of the watermark, the last decision and `at`.
    fn decision_instant(&self, at: Option<Timestamp>) -> Timestamp {
        let mut t = self.decided_at;
        if let Some(c) = self.projection.clock() {
            t = t.max(c);
        }
        at.map_or(t, |a| t.max(a))
    }

    fn rescore(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
        trigger: Trigger<'_>,
    ) -> Option<TierChange> {
        let after = self.scored_figures(policy, now);
        let eval = policy.evaluate(&after);
        self.rescore_with(customer_id, policy, now, trigger, &after, eval)
    }

    /// [`Self::rescore`] with the scored figures at `now` and their
    /// evaluation already known.
    fn rescore_with(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
        trigger: Trigger<'_>,
        after: &Indicators,
        eval: Evaluation,
    ) -> Option<TierChange> {
        self.decided_at = now;
        self.evaluated = Some((now, eval.tier));
        if self.policy_version != policy.version() {
            self.policy_version = CompactString::from(policy.version());
        }
        // The held tier's index, looked up once (tier names are unique).
        let held_idx = self
            .assignment
            .as_ref()
            .and_then(|a| policy.tier_index(&a.tier));
        // A correction of an order that counted when the held tier was
        // raised (placed no later than the last upgrade remembered, still
        // in the window) decides again from an earlier assignment (see
        // `undone_from`): always when it takes back the whole order whose
        // placement made the upgrades, else unless the order's part plainly
        // did not make the tier (the correction lowers neither the tier
        // the figures give nor the score below what entering the held tier
        // took): a small return while hysteresis holds an organic drop
        // stays organic.
        // (The order is looked at again after the fold and at the decision
        // instant: one whose day the event, or a sweep, moved out of the
        // window counts no more.)
        let undo = match trigger.correction {
            Some(c)
                if self.counted_at_raise(c.order, now, policy)
                    // The whole order back (a cancellation, or a return of
                    // all of it): it counts no more after the fold.
                    && ((self.raise.as_ref().is_some_and(|r| r.order == c.order)
                        && !self.projection.order_counts(c.order))
                        || eval.tier > c.before.tier
                        || !self.entered_without(
                            policy,
                            held_idx,
                            c.before.score - eval.score,
                        )) =>
            {
                self.raise
                    .take()
                    .map(|raise| (self.undone_from(policy, &raise, c.order), raise))
            }
            _ => None,
        };
        let mut tier_idx = match &undo {
            Some((from, _)) => policy.decide(from.as_ref(), eval, now),
            None => policy.decide_held(
                held_idx.zip(self.assignment.as_ref().map(|a| a.since)),
                eval,
                now,
            ),
        };
        if trigger.cause == Cause::Policy
            && policy.hysteresis().forbid_policy_downgrades
            && let Some(held) = held_idx
        {
            // Lower index = better tier: keep the held one.
            tier_idx = tier_idx.min(held);
        }
        let new_tier = &policy.tiers()[tier_idx].name;
        // Whether the decision went back to the tier before the upgrades
        // a correction took back, with the since it had.
        let mut restored = false;
        match &mut self.assignment {
            Some(a) if held_idx == Some(tier_idx) => {
                a.score = eval.score;
                // The figures left still hold the raised tier: the orders
                // that raised it are still its cause.
                if let Some((_, raise)) = undo {
                    self.raise = Some(raise);
                }
            }
            current => {
                let old = current.take();
                // Back to a tier held before the upgrades taken back: keep
                // the since it had.
                let prior_since = undo.as_ref().and_then(|(from, _)| {
                    since_before_raise(&self.history, from.as_ref(), new_tier)
                });
                restored = prior_since.is_some();
                let since = prior_since.unwrap_or(now);
                let upgrade = held_idx.is_none_or(|h| tier_idx < h);
                // The upgrades remembered: the ones a correction took back
                // (what the figures left still lift), else those held.
                let kept = undo.map(|(_, raise)| raise).or_else(|| self.raise.take());
                self.raise = match trigger.cause {
                    // An upgrade an event or time made: the figures of
                    // every order counted then made it too. A placement's
                    // is decided from the tier before it; another's (a
                    // payment, an invoice, time) after upgrades remembered
                    // from the tier before them.
                    Cause::Event | Cause::Time if upgrade => Some(match (trigger.placed, kept) {
                        (Some(order), _) => Box::new(Raise { order, prior: old }),
                        (None, Some(raise)) => raise,
                        (None, None) => Box::new(Raise {
                            order: NO_ORDER,
                            prior: old,
                        }),
                    }),
                    // A drop that leaves the tier above the one before the
                    // upgrades (an invoice falling overdue, a correction
                    // the other orders still lift past it): they still lift
                    // the customer.
                    Cause::Event | Cause::Time => kept.filter(|r| {
                        r.prior.as_ref().is_some_and(|p| {
                            policy.tier_index(&p.tier).is_some_and(|i| tier_idx < i)
                        })
                    }),
                    // A change a policy or the population made: what the
                    // orders caused is no longer known.
                    _ => None,
                };
                *current = Some(TierAssignment {
                    tier: TierName::from(new_tier.as_str()),
                    score: eval.score,
                    since,
                });
            }
        }
        let mut cause = trigger.cause;
        if self
            .manual()
            .is_some_and(|m| m.expires_at.is_some_and(|e| e <= now))
        {
            self.set_manual(None);
            self.log_override(now, OverrideAction::Expired);
            cause = Cause::Override;
        }
        let change = self.effective_changed(
            customer_id,
            policy,
            Some(tier_idx),
            Some(after),
            cause,
            trigger.event_id,
            now,
        );
        if let (Some(c), Some(a)) = (&change, &mut self.effective) {
            // A return to the tier a corrected order replaced keeps its
            // since. (Any other change of the effective tier enters it now:
            // one to the computed tier at an override's expiry too, as
            // after a clear.)
            if restored
                && !c.overridden
                && let Some(assigned) = &self.assignment
                && assigned.tier == a.tier
            {
                a.since = assigned.since;
            }
        }
        change
    }

    /// The assignment a correction of `order` decides again from, taking
    /// back `raise`: the one before the upgrades remembered, unless the
    /// order was placed after the first of them. Then the order can have
    /// made only the lifts after its placement: it decides again from the
    /// worst tier the customer held from its placement on (its last
    /// entry), when that tier lies strictly between the one
    /// before the upgrades and the held one; from the held tier itself
    /// (no lift to undo) when the customer held nothing worse since. Any
    /// doubt (an override in force or set since, a tier the policy no
    /// longer knows, a placement before the history kept) decides from the
    /// one before the upgrades.
    fn undone_from(&self, policy: &Policy, raise: &Raise, order: u64) -> Option<TierAssignment> {
        let index = |tier: &TierName| policy.tier_index(tier);
        let prior = raise.prior.as_ref();
        let from_placement = || {
            let placed = self.projection.order_placed_in_window(order)?;
            let before = self.history.partition_point(|s| s.at < placed);
            let in_force = self.history.get(before.checked_sub(1)?..)?;
            // An override in force or set since (a pin to the tier held
            // leaves no step in the history): in doubt.
            let since = in_force.first()?.at;
            if self.manual().is_some() || self.override_history().iter().any(|e| e.at >= since) {
                return None;
            }
            let held = self.assignment.as_ref()?;
            let held_idx = index(&held.tier)?;
            // The worst tier held since the placement (lower index =
            // better), its last entry.
            let mut worst: Option<(usize, &TierStep)> = None;
            for step in in_force {
                if step.overridden || step.cause == Cause::Override {
                    return None;
                }
                let i = index(&step.to)?;
                if worst.is_none_or(|(w, _)| i >= w) {
                    worst = Some((i, step));
                }
            }
            let (worst_idx, step) = worst?;
            if worst_idx <= held_idx {
                return Some(held.clone());
            }
            let above_prior = match prior {
                None => true,
                Some(p) => index(&p.tier).is_some_and(|b| worst_idx < b) && step.at > p.since,
            };
            above_prior.then(|| TierAssignment {
                tier: step.to.clone(),
                score: step.score,
                since: step.at,
            })
        };
        from_placement().or_else(|| raise.prior.clone())
    }

    /// Whether the held tier (index `held`) would have been entered
    /// without `lost` points of score, what a correction took off: the
    /// score it was entered with, less them, still reaches its band. Not
    /// when that is unknown (a method whose tiers are not bands of a score,
    /// a tier an override entered, a history that no longer keeps the
    /// entry): the correction then decides from before the upgrades.
    fn entered_without(&self, policy: &Policy, held: Option<usize>, lost: f64) -> bool {
        let (Some(held), Some(assigned)) = (held, &self.assignment) else {
            return false;
        };
        let Some(floor) = policy.band_floor_centi(held) else {
            return false;
        };
        last_entry(&self.history, &assigned.tier, Some(assigned.since))
            .is_some_and(|entry| crate::policy::to_centi(entry.score - lost) >= floor)
    }

    /// Whether order `order` counted when the held tier was raised: it
    /// still counts in the window at the decision instant `now` (placed,
    /// then perhaps cancelled or returned; a sweep may have moved the
    /// window past it while the projection's, which events move, still
    /// holds it) and was placed no later than the raise, which is the held
    /// assignment's `since` (set by the upgrade, kept while the tier is).
    fn counted_at_raise(&self, order: u64, now: Timestamp, policy: &Policy) -> bool {
        let rules = policy.fold_rules();
        let (Some(placed), Some(held)) = (
            self.projection.order_placed_in_window(order),
            &self.assignment,
        ) else {
            return false;
        };
        placed <= held.since && rules.calendar.day(placed) >= rules.window_start(now)
    }

    /// The effective tier index: the override's, bounded as its mode says,
    /// else the computed one.
    /// `computed`: the computed tier's index when the caller knows it.
    fn effective_index(&self, policy: &Policy, computed: Option<usize>) -> Option<(usize, bool)> {
        let computed = computed.or_else(|| {
            self.assignment
                .as_ref()
                .and_then(|a| policy.tier_index(&a.tier))
        });
        // Overridden: the override holds the tier, either against the
        // figures or as its own bound (a pin equal to the computed tier
        // still holds it), as the read side's views say.
        match self
            .manual()
            .and_then(|m| Some((m.apply(policy, computed)?, policy.tier_index(&m.tier))))
        {
            Some((i, own)) => Some((i, computed != Some(i) || own == Some(i))),
            None => computed.map(|c| (c, false)),
        }
    }

    /// Recompute the effective tier; when it moved, count the change and
    /// describe it. The per-event path allocates nothing unless the tier
    /// moved.
    #[allow(clippy::too_many_arguments)] // one private call path, all plain values
    fn effective_changed(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        computed: Option<usize>,
        after: Option<&Indicators>,
        cause: Cause,
        event_id: Option<&str>,
        now: Timestamp,
    ) -> Option<TierChange> {
        let (idx, overridden) = self.effective_index(policy, computed)?;
        let tier = &policy.tiers().get(idx)?.name;
        let decided = now;
        // The effective tier never changes before its last change: an
        // override command is recorded at its own instant, and an event
        // dated before it (late, or still in a backlog the command did not
        // wait for) is decided at its own.
        let now = self.history.last().map_or(now, |step| now.max(step.at));
        let score = self.assignment.as_ref().map_or(0.0, |a| a.score);
        if let Some(e) = &mut self.effective
            && e.tier == *tier
        {
            e.score = score;
            return None;
        }
        let before = self.effective.replace(TierAssignment {
            tier: TierName::from(tier.as_str()),
            score,
            since: now,
        });
        // A notice of the tier left is no longer true; the next at-risk
        // check foresees from the new one.
        self.at_risk = None;
        self.sequence += 1;
        if self.history.len() >= MAX_TIER_HISTORY {
            self.history.remove(0);
        } else if self.history.len() == self.history.capacity() && self.history.len() < 8 {
            // Most customers change tier a few times: one step at a time
            // while there are few (a step is 80 bytes; the default growth
            // doubles from 4).
            self.history.reserve_exact(1);
        }
        self.history.push(TierStep {
            at: now,
            from: before.as_ref().map(|b| b.tier.clone()),
            to: TierName::from(tier.as_str()),
            score,
            cause,
            overridden,
            sequence: self.sequence,
        });
        // Reasons compare with the figures at the previous change (stored
        // with the state; empty before the first, and for a state stored
        // before format 2 until its next change).
        let figures = match after {
            Some(f) => *f,
            None => self.indicators(policy),
        };
        let baseline = self
            .indicators_at_change
            .as_ref()
            .map_or_else(Indicators::default, |k| k.get());
        let reasons = policy.reasons(&baseline, &figures, MAX_REASONS);
        self.indicators_at_change = Some(KeptIndicators::new(&figures));
        Some(TierChange {
            customer_id: customer_id.to_owned(),
            old_score: before.as_ref().map_or(0.0, |b| b.score),
            old_tier: before.map(|b| b.tier.to_string()),
            new_tier: tier.clone(),
            computed_tier: self.computed_tier(policy, &figures),
            overridden,
            new_score: score,
            cause,
            causing_event_id: event_id.map(str::to_owned),
            reasons,
            policy_version: policy.version().to_owned(),
            sequence: self.sequence,
            changed_at: now,
            lifecycle: self.lifecycle(policy, now),
            gradings: {
                // The gradings read the whole figures: on the event path
                // `after` holds only the scored ones, and a grading on
                // another (recency, say) would find it blank and give no
                // class, where GetTier gives one.
                let whole = (after.is_some() && policy.gradings_read_unscored())
                    .then(|| self.projection.indicators(decided, policy.fold_rules()));
                let graded = whole.as_ref().unwrap_or(&figures);
                policy
                    .gradings()
                    .iter()
                    .filter_map(|g| g.class_of(graded))
                    .collect()
            },
        })
    }

    /// Every change of the effective tier kept, oldest first.
    pub fn tier_history(&self) -> &[TierStep] {
        &self.history
    }

    /// The effective tier at `at`: the last change at or before it.
    pub fn tier_as_of(&self, at: Timestamp) -> TierAsOf {
        match step_at(&self.history, at) {
            Ok(step) => TierAsOf::Known(step.map(|s| s.to.to_string())),
            Err(oldest) => TierAsOf::Forgotten { oldest },
        }
    }

    /// The effective tier held at `at`: the one in force when its last
    /// change is not later, else the tier history's (an event dated
    /// before a change already recorded, such as an override); the one in
    /// force when the history no longer reaches back that far; `None`
    /// before the first tier. The history stamps a change at its decision
    /// instant, so a change by an event dated before `at` but applied
    /// after it counts as later.
    fn tier_held_at(&self, at: Timestamp) -> Option<TierName> {
        let now = || self.effective.as_ref().map(|e| e.tier.clone());
        if self.history.last().is_none_or(|s| s.at <= at) {
            return now();
        }
        match step_at(&self.history, at) {
            Ok(step) => step.map(|s| s.to.clone()),
            Err(_) => now(),
        }
    }

    /// The override in force, if any.
    pub fn manual(&self) -> Option<&Override> {
        self.overrides.as_ref().and_then(|o| o.active.as_ref())
    }

    /// Every override set, cleared or expired, oldest first.
    pub fn override_history(&self) -> &[OverrideEntry] {
        self.overrides
            .as_ref()
            .map_or(&[], |o| o.history.as_slice())
    }

    fn set_manual(&mut self, manual: Option<Override>) {
        self.overrides.get_or_insert_with(Box::default).active = manual;
    }

    fn log_override(&mut self, at: Timestamp, action: OverrideAction) {
        let history = &mut self.overrides.get_or_insert_with(Box::default).history;
        history.push(OverrideEntry { at, action });
        if history.len() > MAX_OVERRIDE_HISTORY {
            let excess = history.len() - MAX_OVERRIDE_HISTORY;
            history.drain(..excess);
        }
    }

    /// A manager sets (or replaces) the customer's override at `at`. The
    /// change of the effective tier, if any, has cause `Override`.
    pub fn set_override(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        o: Override,
    ) -> Result<Option<TierChange>, OverrideError> {
        o.check(policy)?;
        let at = o.set_at;
        let action = OverrideAction::Set(o.clone());
        Ok(self.override_command(customer_id, policy, Some(o), action, at))
    }

    /// A manager clears the customer's override at `at`.
    pub fn clear_override(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        reason: &str,
        author: &str,
        at: Timestamp,
    ) -> Result<Option<TierChange>, OverrideError> {
        if self.manual().is_none() {
            return Err(OverrideError::NothingToClear {
                customer_id: customer_id.to_owned(),
            });
        }
        crate::overrides::check_signed(reason, author)?;
        let action = OverrideAction::Cleared {
            reason: reason.to_owned(),
            author: author.to_owned(),
        };
        Ok(self.override_command(customer_id, policy, None, action, at))
    }

    /// Replace the override, log the action, and describe the change of
    /// the effective tier it causes, if any.
    fn override_command(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        manual: Option<Override>,
        action: OverrideAction,
        at: Timestamp,
    ) -> Option<TierChange> {
        self.set_manual(manual);
        self.log_override(at, action);
        // A customer known only by commands has no decision yet: what its
        // figures (none) give is its computed tier, as every answer shows
        // it, so a ceiling caps it rather than lifting it and clearing a
        // pin lets it fall; and it is shown under the policy in force
        // (with no decision to be stale, a restart has nothing to rescore).
        let computed = if self.assignment.is_none() {
            self.policy_version = policy.version().into();
            Some(policy.evaluate(&self.scored_figures(policy, at)).tier)
        } else {
            None
        };
        self.effective_changed(
            customer_id,
            policy,
            computed,
            None,
            Cause::Override,
            None,
            at,
        )
    }

    /// Only the indicators the policy reads, at `at`: scoring is the hot
    /// path, and the rest would be computed for nothing.
    fn scored_figures(&self, policy: &Policy, at: Timestamp) -> Indicators {
        self.projection
            .indicators_with(at, policy.fold_rules(), |n| policy.uses(n))
    }

    /// The explanation of the held tier (the evaluated one when none is
    /// held, or the policy no longer knows it) at the last decision, with
    /// who assessed each assessment indicator, when, and until when.
    pub fn explain(&self, policy: &Policy) -> crate::policy::Explanation {
        let figures = self.indicators(policy);
        let held = self
            .assignment
            .as_ref()
            .and_then(|a| policy.tier_index(&a.tier))
            .unwrap_or_else(|| policy.evaluate(&figures).tier);
        let mut e = policy.explain(&figures, held);
        crate::projection::assessments::annotate(&mut e.assessments, self.projection.assessments());
        e
    }

    /// What the RFM quintiles rank this customer by, as of the last
    /// decision (see `CustomerProjection::rfm_values`).
    pub fn rfm_values(&self, policy: &Policy) -> crate::rank::RfmValues {
        self.projection
            .rfm_values(self.decision_instant(None), policy.fold_rules())
    }

    /// The indicators of the last decision (at [`Self::decided_at`]): the
    /// figures behind the held tier and score, for explanations and queries.
    pub fn indicators(&self, policy: &Policy) -> Indicators {
        self.projection
            .indicators(self.decision_instant(None), policy.fold_rules())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A correction of an order placed after the first of the upgrades
    /// remembered decides again from the worst tier the customer held from
    /// the placement on, while it lies between the tier before the
    /// upgrades and the held one; from the held tier when nothing worse
    /// was held since; else, and in any doubt, from the tier before.
    #[test]
    fn a_correction_decides_from_the_worst_tier_held_since_the_orders_placement() {
        let policy = Policy::default_policy();
        let t = |day: i64| Timestamp::from_millis(1_800_000_000_000 + day * 86_400_000);
        let mut state = CustomerState::default();
        let placed = Event {
            event_id: "e1".into(),
            customer_id: "c".into(),
            occurred_at: t(2),
            source: String::new(),
            kind: EventKind::OrderPlaced {
                order_id: "o".into(),
                amount: crate::Money(1_000),
                cost: None,
            },
        };
        assert_eq!(
            state.projection.apply(&placed, policy.fold_rules()),
            Applied::Applied
        );
        let order = stable_hash("o");
        let step = |day: i64, to: &str| TierStep {
            at: t(day),
            from: None,
            to: TierName::from(to),
            score: 50.0,
            cause: Cause::Event,
            overridden: false,
            sequence: 0,
        };
        let assigned = |tier: &str, day: i64| TierAssignment {
            tier: TierName::from(tier),
            score: 50.0,
            since: t(day),
        };
        let mut raise = Raise {
            order: NO_ORDER,
            prior: Some(assigned("D", 0)),
        };
        let from = |state: &mut CustomerState, steps: Vec<TierStep>, raise: &Raise| {
            let held = steps.last().map(|s| (s.to.clone(), s.at));
            state.history = steps;
            state.assignment = held.map(|(tier, since)| TierAssignment {
                tier,
                score: 50.0,
                since,
            });
            state.undone_from(&policy, raise, order)
        };
        // D, B, the order, A: the order can have made only the lift to A.
        let lifted = vec![step(0, "D"), step(1, "B"), step(3, "A")];
        assert_eq!(
            from(&mut state, lifted.clone(), &raise),
            Some(assigned("B", 1))
        );
        // D, B, the order, C, A: only the lift from C.
        let dropped = vec![step(0, "D"), step(1, "B"), step(3, "C"), step(4, "A")];
        assert_eq!(from(&mut state, dropped, &raise), Some(assigned("C", 3)));
        // D, B, the order, C, B: B entered again from C.
        let again = vec![step(0, "D"), step(1, "B"), step(3, "C"), step(4, "B")];
        assert_eq!(from(&mut state, again, &raise), Some(assigned("C", 3)));
        // D, B, the order, C, B, C, A: C since its last entry.
        let twice = vec![
            step(0, "D"),
            step(1, "B"),
            step(3, "C"),
            step(4, "B"),
            step(5, "C"),
            step(6, "A"),
        ];
        assert_eq!(from(&mut state, twice, &raise), Some(assigned("C", 5)));
        // D, B, the order, C: no lift since the order, nothing to undo:
        // the held assignment, as it is.
        let mut fell = vec![step(0, "D"), step(1, "B"), step(3, "C")];
        fell[2].score = 41.0;
        let held = from(&mut state, fell, &raise);
        assert_eq!(held.as_ref(), state.assignment.as_ref());
        // D, C, the order, D, A: D held since, the tier before the lifts.
        let low = vec![step(0, "D"), step(1, "C"), step(3, "D"), step(4, "A")];
        assert_eq!(from(&mut state, low, &raise), raise.prior);
        // An override on the way (B set, or cleared to): in doubt.
        let mut pinned = lifted.clone();
        pinned[1].overridden = true;
        assert_eq!(from(&mut state, pinned, &raise), raise.prior);
        let mut cleared = lifted.clone();
        cleared[1].cause = Cause::Override;
        assert_eq!(from(&mut state, cleared, &raise), raise.prior);
        // The first tier remembered (no tier before): any tier below the
        // held one.
        raise.prior = None;
        assert_eq!(
            from(&mut state, lifted.clone(), &raise),
            Some(assigned("B", 1))
        );
        // A pin (to the tier held: no step) set after the placement.
        raise.prior = Some(assigned("D", 0));
        state.overrides = Some(Box::new(Overrides {
            active: None,
            history: vec![OverrideEntry {
                at: t(3),
                action: OverrideAction::Expired,
            }],
        }));
        assert_eq!(from(&mut state, lifted.clone(), &raise), raise.prior);
        state.overrides = None;
        // Placed before the history kept (its oldest changes dropped).
        let mut later = vec![step(5, "B"), step(6, "A")];
        for s in &mut later {
            s.sequence = 40;
        }
        assert_eq!(from(&mut state, later, &raise), raise.prior);
    }

    /// Every event reads the projection: the engine boxes each decoded
    /// state, and the projection sits inside that box, one pointer from
    /// the engine's table (a box of its own made it two, and cost the
    /// fold about 8%, `tier-bench --only fold`).
    #[test]
    fn a_state_holds_its_projection_inline() {
        assert!(
            std::mem::size_of::<CustomerState>() > std::mem::size_of::<CustomerProjection>(),
            "the projection is not inline: {} bytes a state, {} a projection",
            std::mem::size_of::<CustomerState>(),
            std::mem::size_of::<CustomerProjection>()
        );
    }
}

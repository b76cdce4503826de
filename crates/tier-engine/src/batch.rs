//! The batch in hand: what the adapter gathers between two commits, and
//! how it becomes an owned [`CommitUnit`] for the committer.
//!
//! The adapter records each consumed record's position
//! ([`Batch::record`]), folds valid events through [`Engine::fold`] into
//! [`Batch::unit`] and parks invalid ones ([`Batch::dead_letter`]). Between
//! polls, [`Engine::between_batches`] applies waiting commands and a slice
//! of the background work. [`Engine::seal_batch`] then turns the batch into
//! a [`CommitUnit`] that owns everything the commit and its effects need
//! (each touched customer's state encoded for the store, what the read
//! side needs of it, the offsets, the outbox rows, the replies), so the
//! engine can fold the next batch while the committer makes this one
//! durable and publishes the one before.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use tier_core::InvalidEvent;
use tier_core::Timestamp;
use tier_core::state::{CustomerState, TierChange};
use tier_store::{EncodedCustomers, StoreError};
use tier_wire::at_risk::{encode_at_risk_row, encode_overdue_row};

use crate::command::{Command, OverrideOutcome, PolicyChangeRefused, Reply};
use crate::committer::{CommitObserver, ReadUpdate};
use crate::metrics as m;
use crate::task::CustomerId;
use crate::{ActivePolicy, Engine, Place, PolicyStatus, Unit};

/// Commands applied per pause between two polls, at most.
pub const COMMANDS_PER_BATCH: usize = 64;

/// A record that failed validation, kept whole for the dead-letter sink.
#[derive(Debug)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub error: InvalidEvent,
    /// The sink acknowledged it (a retry does not send it again).
    pub delivered: bool,
}

/// A reply to send once the unit is durable.
pub(crate) enum PendingReply {
    Override(Reply<OverrideOutcome>, Option<Box<TierChange>>),
    Policy(Reply<Result<PolicyStatus, PolicyChangeRefused>>),
    /// Told once this unit and every one before it are durable.
    Barrier(std::sync::mpsc::SyncSender<()>),
}

/// What the adapter gathers between two commits.
#[derive(Default)]
pub struct Batch {
    /// Records consumed (valid or not).
    pub records: usize,
    /// What the engine changed: customers, tier changes, at-risk notices.
    pub unit: Unit,
    dead: Vec<DeadLetter>,
    /// Next offset per partition.
    offsets: BTreeMap<(String, i32), i64>,
    /// Records per (topic, event type), for the metrics at commit.
    consumed: Vec<(String, &'static str, u64)>,
    replies: Vec<PendingReply>,
    /// A policy applied in this batch, recorded with it.
    policy: Option<Arc<ActivePolicy>>,
    /// New `abc` cut points for the read side (see [`Engine::recut`]).
    rank_cut: Option<Arc<tier_core::policy::Policy>>,
}

impl Batch {
    /// The policy this batch puts in force (recorded with it), if any.
    pub fn applied_policy(&self) -> Option<&Arc<crate::command::ActivePolicy>> {
        self.policy.as_ref()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("records", &self.records)
            .field("touched", &self.unit.touched().len())
            .field("dead", &self.dead.len())
            .field("replies", &self.replies.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// One consumed record at `offset` of `partition` (a key the caller
    /// keeps per run of records, so it is cloned only when new), of event
    /// type `kind` (`"invalid"` for a dead letter).
    pub fn record(&mut self, partition: &(String, i32), offset: i64, kind: &'static str) {
        self.records += 1;
        match self.offsets.get_mut(partition) {
            Some(next) => *next = offset + 1,
            None => {
                self.offsets.insert(partition.clone(), offset + 1);
            }
        }
        let topic = partition.0.as_str();
        match self
            .consumed
            .iter_mut()
            .find(|(t, k, _)| t == topic && *k == kind)
        {
            Some((_, _, n)) => *n += 1,
            None => self.consumed.push((topic.to_owned(), kind, 1)),
        }
    }

    /// A signal for when this batch, and every one submitted before it, is
    /// durable and its effects are done (e.g. before reading the store
    /// for customers a rebalance gave back).
    pub fn barrier(&mut self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.replies.push(PendingReply::Barrier(tx));
        rx
    }

    /// Park an invalid record (already [`record`](Batch::record)ed).
    pub fn dead_letter(&mut self, dead: DeadLetter) {
        self.dead.push(dead);
    }

    /// Whether there is anything to commit.
    pub fn has_work(&self) -> bool {
        self.records > 0
            || !self.unit.is_empty()
            || !self.unit.changes.is_empty()
            || !self.replies.is_empty()
            || !self.unit.evicted.is_empty()
            || self.policy.is_some()
            || self.rank_cut.is_some()
    }
}

/// Everything one commit writes and everything that happens once it is
/// durable, owned: the engine goes on folding while the committer works.
pub struct CommitUnit {
    pub(crate) records: usize,
    /// The touched customers' states as of the seal, encoded under their
    /// scoped keys (an error is a bug: the committer stops on it).
    pub(crate) customers: Result<EncodedCustomers, StoreError>,
    /// What the read side publishes of the touched customers once the
    /// unit is durable (see [`CommitObserver::prepare`]).
    pub(crate) read: Option<ReadUpdate>,
    pub(crate) offsets: BTreeMap<(String, i32), i64>,
    /// Offsets to store that no record of this unit moved (resets).
    pub(crate) extra_offsets: Vec<(String, i32, i64)>,
    pub(crate) unit: Unit,
    /// Encoded notice rows (at-risk, then complaint-overdue), after the
    /// unit's tier changes in the outbox.
    pub(crate) notice_rows: Vec<Vec<u8>>,
    /// Open overdue complaints per tier, when the unit moved the count.
    pub(crate) overdue_by_tier: Option<Vec<(String, i64)>>,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) consumed: Vec<(String, &'static str, u64)>,
    pub(crate) replies: Vec<PendingReply>,
    pub(crate) policy: Option<Arc<ActivePolicy>>,
    /// New `abc` cut points of the policy in force, for the read side.
    pub(crate) rank_cut: Option<Arc<tier_core::policy::Policy>>,
    /// The policy status as of the seal.
    pub(crate) status: PolicyStatus,
    /// Customers with a drop announced, as of the seal.
    pub(crate) at_risk_total: usize,
    /// Customers due and not swept yet, when the engine sweeps.
    pub(crate) sweep_backlog: Option<usize>,
    /// Every time-driven decision up to this instant is in this unit or an
    /// earlier one.
    pub(crate) swept_to: Option<Timestamp>,
    /// The key after the unit's last outbox row, once committed.
    pub(crate) outbox_end: Option<u64>,
}

impl std::fmt::Debug for CommitUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitUnit")
            .field("records", &self.records)
            .field(
                "customers",
                &self.customers.as_ref().map_or(0, EncodedCustomers::len),
            )
            .field("changes", &self.unit.changes.len())
            .field("dead", &self.dead.len())
            .finish_non_exhaustive()
    }
}

impl CommitUnit {
    /// Whether the store has anything to write for this unit (otherwise
    /// only its effects run: replies, status, swept-to).
    pub(crate) fn writes(&self) -> bool {
        self.records > 0
            || !self
                .customers
                .as_ref()
                .is_ok_and(EncodedCustomers::is_empty)
            || !self.unit.moved.is_empty()
            || !self.unit.changes.is_empty()
            || !self.notice_rows.is_empty()
            || !self.extra_offsets.is_empty()
            || self.policy.is_some()
            || self.rank_cut.is_some()
            || self.unit.confirmations.is_some()
    }

    /// Records in the unit.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The engine's unit this commit carries (what it changed and
    /// touched), dropping everything else.
    pub fn into_unit(self) -> Unit {
        self.unit
    }
}

/// How [`Engine::seal_batch`] describes the time-driven work.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealInfo {
    /// Report the sweep backlog as of this instant (the adapter sweeps).
    pub backlog_at: Option<Timestamp>,
    /// Every decision due up to this instant has been made.
    pub swept_to: Option<Timestamp>,
}

impl Engine {
    /// Apply one command into `batch`. Returns its kind and whether it was
    /// accepted (a refused one is answered at once; an accepted one once
    /// the batch is durable, except a dry run, which changes nothing and is
    /// answered at once).
    pub fn command(
        &mut self,
        batch: &mut Batch,
        command: Command,
        now: Timestamp,
    ) -> (&'static str, bool) {
        match command {
            Command::Traced { trace, command } => {
                // Log lines of the command carry the caller's trace id.
                let span = tracing::info_span!("command", trace_id = %trace.trace_id());
                tier_wire::trace::adopt(&span, &trace);
                let _entered = span.enter();
                let first = batch.unit.changes.len();
                let outcome = self.command(batch, *command, now);
                let made = first..batch.unit.changes.len();
                batch.unit.traced.extend(made.map(|i| (i, trace)));
                outcome
            }
            Command::SetOverride { cmd, reply } => {
                let customer = cmd.customer_id.clone();
                match self.set_override(&mut batch.unit, cmd, now) {
                    Ok(change) => {
                        tracing::info!(customer_id = %customer, changed = change.is_some(), "override set");
                        batch
                            .replies
                            .push(PendingReply::Override(reply, change.map(Box::new)));
                        ("set_override", true)
                    }
                    Err(e) => {
                        reply(Err(e));
                        ("set_override", false)
                    }
                }
            }
            Command::ClearOverride {
                customer_id,
                reason,
                author,
                reply,
            } => match self.clear_override(&mut batch.unit, &customer_id, &reason, &author, now) {
                Ok(change) => {
                    tracing::info!(customer_id = %customer_id, changed = change.is_some(), "override cleared");
                    batch
                        .replies
                        .push(PendingReply::Override(reply, change.map(Box::new)));
                    ("clear_override", true)
                }
                Err(e) => {
                    reply(Err(e));
                    ("clear_override", false)
                }
            },
            Command::SetAssessment { cmd, reply } => {
                let customer = cmd.customer_id.clone();
                match self.set_assessment(&mut batch.unit, cmd, now) {
                    Ok(change) => {
                        tracing::info!(customer_id = %customer, changed = change.is_some(), "assessment set");
                        batch
                            .replies
                            .push(PendingReply::Override(reply, change.map(Box::new)));
                        ("set_assessment", true)
                    }
                    Err(e) => {
                        reply(Err(e));
                        ("set_assessment", false)
                    }
                }
            }
            Command::ApplyPolicy { policy, reply } => {
                // Checked against the policy in force when it was sent,
                // which another change may have replaced since (a SIGHUP
                // racing an ApplyPolicy, two calls at once): the version in
                // force again is refused, so one version never names two
                // texts (the rescore would take the customers the first
                // decided as decided by the second).
                let version = policy.policy.version();
                if version == self.policy().version() {
                    if self.versions.hash_of(version) == Some(policy.hash.as_str()) {
                        // The same change again (a retry): answered as the
                        // first is, once what is in hand is durable.
                        batch.replies.push(PendingReply::Policy(reply));
                        return ("apply_policy", true);
                    }
                    reply(Err(PolicyChangeRefused::VersionReused {
                        version: version.to_owned(),
                    }));
                    return ("apply_policy", false);
                }
                // Nor may it edit a version in force before (A v1, B v2,
                // then A' v1: the customers B's rescore has not reached
                // would count as decided by A').
                if let Err(e) = self.versions.check(version, &policy.hash) {
                    reply(Err(e));
                    return ("apply_policy", false);
                }
                self.versions.record(version, &policy.hash);
                // Recorded with every version the engine knows: the
                // caller's copy misses a change that raced its check.
                let policy = if policy.versions == self.versions {
                    policy
                } else {
                    let mut merged = (*policy).clone();
                    merged.versions = self.versions.clone();
                    Arc::new(merged)
                };
                tracing::info!(
                    version = policy.policy.version(),
                    hash = %policy.hash,
                    customers = self.len(),
                    "applying a new policy; rescoring every customer in the background"
                );
                self.apply_policy(policy.policy.clone(), now);
                // Stored with the policy: nothing confirmed under it yet,
                // and the instant its rescore decides at.
                batch.unit.confirmations = Some(self.confirmed.clone());
                batch.policy = Some(policy);
                batch.replies.push(PendingReply::Policy(reply));
                ("apply_policy", true)
            }
            Command::DryRun {
                policy,
                sample,
                reply,
            } => {
                reply(self.dry_run(&policy, now, sample));
                ("dry_run", true)
            }
        }
    }

    /// Between polls: apply waiting commands (at most
    /// [`COMMANDS_PER_BATCH`]), a slice of a policy rescore, once
    /// `caught_up` with the input a population recut ([`Engine::recut`])
    /// and, with `sweep_to`, a slice of the customers due by that instant
    /// (the adapter's horizon: the processing clock `now`, or a grace
    /// before it, so that events dated just before a due instant and
    /// arriving just after it are folded first), all into the batch in
    /// hand. Commands make time-driven decisions (up to `now`) only when
    /// the adapter sweeps.
    ///
    /// A recut decides the customers it moves at `now`, the processing
    /// clock: during a catch-up (a rebuild from Kafka, a takeover) that
    /// would pull a customer whose history is half folded to today, and
    /// score the rest of its history as of today. Newcomers are graded at
    /// once against the cut points in force meanwhile, which the read side
    /// is given ([`Engine::pending_cut`]).
    #[allow(clippy::too_many_arguments)]
    pub fn between_batches(
        &mut self,
        batch: &mut Batch,
        commands: &Receiver<Command>,
        now: Timestamp,
        caught_up: bool,
        sweep_to: Option<Timestamp>,
        slice: usize,
    ) {
        // Commands make time-driven decisions only when sweeps do.
        self.commands_decide_time = sweep_to.is_some();
        for _ in 0..COMMANDS_PER_BATCH {
            let Ok(command) = commands.try_recv() else {
                break;
            };
            let (kind, ok) = self.command(batch, command, now);
            metrics::counter!(m::COMMANDS, "kind" => kind, "outcome" => if ok { "ok" } else { "refused" })
                .increment(1);
        }
        if self.rescoring() {
            self.rescore(&mut batch.unit, slice);
        } else {
            self.confirmed_buffers.release();
        }
        let cut = if caught_up {
            self.recut(&mut batch.unit, now)
        } else {
            self.pending_cut()
        };
        if let Some(cut) = cut {
            batch.rank_cut = Some(cut);
        }
        if let Some(horizon) = sweep_to {
            let swept = self.sweep(&mut batch.unit, horizon, slice);
            tracing::trace!(swept, next_due = ?self.next_due(), horizon = %horizon, "sweep");
            if swept > 0 {
                metrics::counter!(m::SWEPT).increment(swept as u64);
            }
        }
    }

    /// Close `batch`: re-index its customers and copy out everything its
    /// commit and effects need. `extra_offsets` are stored with it (offset
    /// resets no record moved). The touched customers' states are encoded
    /// for the store here, and copied for the committer's observer (see
    /// [`Engine::seal_batch_for`], which hands the observer only what it
    /// asks for).
    pub fn seal_batch(
        &mut self,
        batch: Batch,
        extra_offsets: Vec<(String, i32, i64)>,
        info: SealInfo,
    ) -> CommitUnit {
        self.seal_unit(batch, extra_offsets, info, None)
    }

    /// [`Engine::seal_batch`] for a committer whose observer is `read`:
    /// what the read side needs of the touched customers is prepared here,
    /// on the engine's thread, by [`CommitObserver::prepare`] (e.g. their
    /// views), instead of a copy of each state.
    pub fn seal_batch_for(
        &mut self,
        batch: Batch,
        extra_offsets: Vec<(String, i32, i64)>,
        info: SealInfo,
        read: &dyn CommitObserver,
    ) -> CommitUnit {
        self.seal_unit(batch, extra_offsets, info, Some(read))
    }

    fn seal_unit(
        &mut self,
        batch: Batch,
        extra_offsets: Vec<(String, i32, i64)>,
        info: SealInfo,
        read: Option<&dyn CommitObserver>,
    ) -> CommitUnit {
        let Batch {
            records,
            mut unit,
            dead,
            offsets,
            consumed,
            replies,
            policy,
            rank_cut,
        } = batch;
        self.recheck_notices(&mut unit);
        self.seal(&unit);
        // A customer the rescore confirmed and something else in the unit
        // changed (a sweep or a recut after, an event before the policy
        // changed) reaches the read side as touched, as of the seal: its
        // confirmed state is older and must not follow.
        if unit.confirmed_may_be_touched {
            drop_touched(&mut unit.confirmed, &unit.touched_set);
        }
        debug_assert!(
            unit.confirmed
                .iter()
                .all(|(id, _)| !unit.touched_set.contains(id.as_str())),
            "a customer both confirmed and touched in one unit"
        );
        let touched = self.unit_places(&unit);
        let mut stored = Vec::with_capacity(touched.len());
        let customers = encode(&touched, &mut stored);
        let read = (!touched.is_empty()).then(|| {
            let states: Vec<(&str, &CustomerState)> =
                touched.iter().map(|&(_, id, state)| (id, state)).collect();
            match read {
                Some(observer) => observer.prepare(&states, self.policy()),
                None => ReadUpdate::copy(&states),
            }
        });
        drop(touched);
        // Each customer keeps the value just encoded from it: cooling it
        // before it changes again then encodes nothing.
        for ((scope, at), id, value) in stored {
            if let Some(task) = self.tasks.get_mut(&scope) {
                task.hold_stored(&id, at, value);
            }
        }
        let notice_rows = unit
            .at_risk
            .iter()
            .map(|r| encode_at_risk_row(r, &self.policy))
            .chain(unit.overdue.iter().map(encode_overdue_row))
            .collect();
        let overdue_by_tier = unit.overdue_moved.then(|| self.overdue_by_tier());
        // Counted per task, so set at every seal (a notice withdrawn by
        // an event, a command or a rescore moves it as well).
        let at_risk_total = self.at_risk_count();
        CommitUnit {
            records,
            customers,
            read,
            offsets,
            extra_offsets,
            unit,
            notice_rows,
            overdue_by_tier,
            dead,
            consumed,
            replies,
            policy,
            rank_cut,
            status: self.status(),
            at_risk_total,
            sweep_backlog: info.backlog_at.map(|at| self.due_count(at)),
            swept_to: info.swept_to,
            outbox_end: None,
        }
    }
}

/// Drop from `confirmed` the customers `touched` names (a sweep, a recut
/// or a refreshed notice changed them after the rescore confirmed them,
/// or an event before the unit's policy change: the read side gets their
/// state as of the seal instead). Few are: each is swapped out for the
/// last entry, so the other states, some hundred bytes each, are not
/// shifted along as `retain` shifts everything after the first it drops.
/// The order does not matter: a unit holds each customer at most once
/// (see [`Unit::confirmed`]; a debug build checks). Called only when one
/// can be in both (`Unit::confirmed_may_be_touched`; the seal checks, in
/// a debug build, that none is otherwise).
fn drop_touched<S: BuildHasher>(
    confirmed: &mut Vec<(CustomerId, CustomerState)>,
    touched: &HashSet<CustomerId, S>,
) {
    debug_assert!(
        {
            let mut ids = HashSet::with_capacity(confirmed.len());
            confirmed.iter().all(|(id, _)| ids.insert(id.as_str()))
        },
        "a unit confirms a customer at most once"
    );
    let mut i = 0;
    while let Some((id, _)) = confirmed.get(i) {
        if touched.contains(id.as_str()) {
            confirmed.swap_remove(i);
        } else {
            i += 1;
        }
    }
}

/// The states of a unit's customers, encoded for the store under their
/// scoped keys; each value is also pushed to `stored`, with its
/// customer and where it is held.
fn encode(
    touched: &[(Place, &str, &CustomerState)],
    stored: &mut Vec<(Place, CustomerId, Arc<[u8]>)>,
) -> Result<EncodedCustomers, StoreError> {
    let mut encoded = EncodedCustomers::with_capacity(touched.len());
    for &(place, id, state) in touched {
        let value = encoded.push(place.0, id, state)?;
        stored.push((place, CustomerId::from(id), value));
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_customers_leave_the_confirmed_and_the_rest_stay() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let mut confirmed: Vec<(CustomerId, CustomerState)> = ids
            .iter()
            .map(|id| (CustomerId::from(*id), CustomerState::default()))
            .collect();
        // The first, one in the middle, the last, and one never confirmed.
        let touched: HashSet<CustomerId> = ["a", "c", "f", "z"].map(CustomerId::from).into();
        drop_touched(&mut confirmed, &touched);
        let mut left: Vec<&str> = confirmed.iter().map(|(id, _)| id.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["b", "d", "e"]);

        // Every one touched: none is left.
        let all: HashSet<CustomerId> = ids.map(CustomerId::from).into();
        drop_touched(&mut confirmed, &all);
        assert!(confirmed.is_empty());
    }
}

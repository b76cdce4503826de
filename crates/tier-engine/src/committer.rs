//! The committer: two threads that make each [`CommitUnit`] durable while
//! the engine folds the next one, then let the world see it.
//!
//! Per unit, in order:
//! 1. (commit thread, `tierd-commit`) deliver its dead letters through the
//!    [`DeadLetterSink`] and wait for every acknowledgement (a partition
//!    never advances past a record it could not park);
//! 2. (commit thread) apply and sync ONE store batch: the unit's customers
//!    (encoded by the engine at seal), the next offset of every partition
//!    it moved, its outbox rows (tier changes, then at-risk notices) and
//!    the policy it applied;
//! 3. (publish thread, `tierd-publish`) only then its effects: metrics,
//!    the policy in force (with a status naming it, none rescored yet),
//!    the read model ([`CommitObserver`]), the policy's status (after the
//!    views: a rescore is reported done once every customer shows it),
//!    the adapter's hooks (outbox wake-up, Kafka bookkeeping, the
//!    swept-to mark) and the command replies.
//!
//! The commit thread hands each durable unit to the publish thread, in
//! commit order, and goes on with the next unit: the read-model update of
//! one unit overlaps the store write of the next. Each queue (engine to
//! commit thread, commit thread to publish thread) holds one unit, so the
//! engine is never more than two units ahead of the disk, the read model
//! never more than two units behind it, and a reader never sees state a
//! crash could take back (a unit reaches the publish thread only once it
//! is durable). A reader may see a unit after a later one is already
//! durable; it never sees one before it is.
//!
//! Failures of step 1 or 2 are retried with backoff (the unit is committed
//! whole or not at all); the adapter hears of them through
//! [`CommitHooks::trouble`] to judge its health. Once the adapter is
//! stopping ([`CommitHooks::cancelled`]), retries go on for
//! [`CANCEL_GRACE`]; then the unit and any behind it are left uncommitted
//! (consumed again on the next start). A state that cannot be encoded is a
//! bug, not a passing failure: the committer stops with
//! [`CommitError::Prepare`] rather than retry it forever.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tier_core::Timestamp;
use tier_core::policy::Policy;
use tier_core::state::CustomerState;
use tier_store::{CommitBatch, EncodedCustomers, PreparedBatch, Store, StoreError};
use tier_wire::tier_changed::encode_row_traced;

use crate::batch::{CommitUnit, DeadLetter, PendingReply};
use crate::metrics as m;
use crate::{ConfirmedBuffers, PolicyHandle, PolicyStatus};

/// How long a stopping committer keeps retrying the unit in hand.
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Application record holding the policy in force (its TOML text).
pub const META_POLICY: &str = "policy";
/// Application record: SHA-256 of the `--policy` file it came from.
pub const META_POLICY_SOURCE: &str = "policy.source";
/// Application record: the text of the policy the one in force replaced
/// (see `ActivePolicy::replaced`).
pub const META_POLICY_REPLACED: &str = "policy.replaced";
/// Application record: the text (SHA-256) each version put in force named
/// ([`crate::command::PolicyVersions`]).
pub const META_POLICY_VERSIONS: &str = "policy.versions";

/// The application records of `policy` put in force: what a start reads
/// back (its text, the file it came from, the versions before it, and the
/// policy it replaced, for a restart during its rescore). The one writer
/// of them, for a change through the engine and for a start with a
/// changed policy file.
pub fn policy_records(policy: &crate::ActivePolicy) -> Vec<(&'static str, Vec<u8>)> {
    let mut meta = vec![
        (META_POLICY, policy.text.as_bytes().to_vec()),
        (META_POLICY_SOURCE, policy.source_hash.as_bytes().to_vec()),
        (META_POLICY_VERSIONS, policy.versions.encode()),
    ];
    meta.extend(
        policy
            .replaced
            .as_ref()
            .map(|t| (META_POLICY_REPLACED, t.as_bytes().to_vec())),
    );
    meta
}

/// Why delivering dead letters failed (always retried).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    /// A bounded label for metrics.
    pub reason: &'static str,
}

/// Where invalid records go (the adapter's dead-letter topic).
pub trait DeadLetterSink: Send + 'static {
    /// Deliver every dead letter not yet `delivered` and wait for each
    /// outcome, marking the acknowledged ones `delivered` (a retry sends
    /// only the rest).
    fn deliver(&mut self, dead: &mut [DeadLetter]) -> Result<(), SinkError>;

    /// After a failed delivery: repair what can be repaired (replace a
    /// producer that hit a fatal error, refresh metadata).
    fn repair(&mut self) {}
}

/// What the read side publishes of a unit's customers once the unit is
/// durable, made as the unit is sealed ([`CommitObserver::prepare`]).
pub enum ReadUpdate {
    /// A copy of each state, for [`CommitObserver::committed`].
    States(Vec<(String, CustomerState)>),
    /// Whatever the observer prepared (e.g. the customers' views, built on
    /// the engine's thread), made visible by calling it.
    Prepared(Box<dyn FnOnce() + Send>),
}

impl ReadUpdate {
    /// A copy of each state (what [`CommitObserver::prepare`] does unless
    /// the observer prepares something smaller).
    pub fn copy(customers: &[(&str, &CustomerState)]) -> Self {
        Self::States(
            customers
                .iter()
                .map(|&(id, state)| (id.to_owned(), state.clone()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for ReadUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::States(states) => f.debug_tuple("States").field(&states.len()).finish(),
            Self::Prepared(_) => f.write_str("Prepared"),
        }
    }
}

/// Told about every durable unit (the API's read model listens), in
/// commit order, on the committer's publish thread.
pub trait CommitObserver: Send + Sync + 'static {
    /// `customers` were durably committed (each carries the instant of
    /// its own last decision).
    fn committed(&self, customers: &[(&str, &CustomerState)]);

    /// On the engine's thread, as a unit is sealed
    /// ([`Engine::seal_batch_for`](crate::Engine::seal_batch_for)): what
    /// to publish of `customers` (their states as of the seal, decided
    /// under `policy`, the engine's policy then) once the unit is durable.
    /// Must make nothing visible. By default a copy of each state, given
    /// to [`committed`](Self::committed); an observer that needs less
    /// (views) builds it here and returns [`ReadUpdate::Prepared`].
    fn prepare(&self, customers: &[(&str, &CustomerState)], policy: &Arc<Policy>) -> ReadUpdate {
        let _ = policy;
        ReadUpdate::copy(customers)
    }

    /// `ids` left this instance (their input partition was assigned to
    /// another one); called after every unit sealed before is durable.
    fn evicted(&self, ids: &[String]) {
        let _ = ids;
    }

    /// Every customer loaded at start was given to [`Self::committed`]
    /// (the start-up fill is over; nothing is served from it before):
    /// the moment to build what is built once over all of them.
    fn filled(&self) {}
}

/// What a durable unit tells the adapter.
#[derive(Debug)]
pub struct Durable<'a> {
    /// The next offset per partition the unit's records moved.
    pub offsets: &'a BTreeMap<(String, i32), i64>,
    /// Outbox rows the unit wrote (tier changes and at-risk notices).
    pub outbox_rows: usize,
    /// Every outbox row with a key below this one is durable and its unit
    /// is in the read model (`None`: the unit wrote nothing). The outbox
    /// publisher sends no row at or past it, so a record completed from
    /// the read model (the population gradings) sees its own unit.
    pub outbox_end: Option<u64>,
    /// Every time-driven decision up to this instant is durable.
    pub swept_to: Option<Timestamp>,
}

/// The adapter's side of the committer. Called from both of its threads
/// (one at a time): `durable` from the publish thread, the others from the
/// commit thread.
pub trait CommitHooks: Send + 'static {
    /// A unit is durable and the read model has it; called in commit
    /// order, before the unit's command replies.
    fn durable(&mut self, unit: &Durable<'_>);
    /// An attempt to finish a unit, begun at `since`, failed; it is
    /// retried.
    fn trouble(&mut self, since: Instant, reason: &'static str);
    /// A unit with records or writes was committed.
    fn progress(&mut self);
    /// The adapter is stopping: retries end after [`CANCEL_GRACE`].
    fn cancelled(&self) -> bool;
}

/// What the committer did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// Records in committed units.
    pub records: u64,
    /// Events that changed a projection.
    pub applied: u64,
    /// Records dead-lettered.
    pub rejected: u64,
    /// Units written to the store.
    pub batches: u64,
    /// Records of units left uncommitted because the adapter stopped
    /// while they could not be committed.
    pub uncommitted: u64,
}

/// Why the committer stopped.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("a unit could not be encoded for the store (a bug; nothing of it was written): {0}")]
    Prepare(#[source] StoreError),
    #[error("the committer thread stopped unexpectedly: {0}")]
    Stopped(String),
}

/// Everything the committer thread works with.
pub struct CommitterDeps<S> {
    pub store: Arc<S>,
    pub sink: Box<dyn DeadLetterSink>,
    pub observer: Arc<dyn CommitObserver>,
    pub policy: Arc<PolicyHandle>,
    pub hooks: Box<dyn CommitHooks>,
    /// Where the publish thread hands each unit's emptied
    /// [`Unit::confirmed`](crate::Unit::confirmed) buffer once its
    /// customers are shown: the engine's
    /// ([`Engine::confirmed_buffers`](crate::Engine::confirmed_buffers)),
    /// which fills it again in its next rescore slice.
    pub confirmed_buffers: ConfirmedBuffers,
}

impl<S> std::fmt::Debug for CommitterDeps<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitterDeps").finish_non_exhaustive()
    }
}

/// The handle the engine's loop submits units to.
#[derive(Debug)]
pub struct Committer {
    tx: Option<SyncSender<CommitUnit>>,
    thread: Option<JoinHandle<Result<CommitReport, CommitError>>>,
    /// Units submitted and not yet through the commit thread.
    pending: Arc<AtomicUsize>,
}

impl Committer {
    /// Start the committer's threads (commit, then publish).
    pub fn spawn<S: Store + 'static>(deps: CommitterDeps<S>) -> Result<Self, CommitError> {
        let (tx, rx) = sync_channel(1);
        let (durable_tx, durable_rx) = sync_channel(1);
        let hooks = Arc::new(Mutex::new(deps.hooks));
        let publisher = Publisher {
            observer: deps.observer,
            policy: deps.policy,
            confirmed_buffers: deps.confirmed_buffers,
            hooks: Arc::clone(&hooks),
            report: CommitReport::default(),
        };
        let publish = std::thread::Builder::new()
            .name("tierd-publish".into())
            .spawn(move || publisher.run(durable_rx))
            .map_err(|e| CommitError::Stopped(format!("could not spawn the thread: {e}")))?;
        let pending = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            store: deps.store,
            sink: deps.sink,
            hooks,
            durable: durable_tx,
            pending: Arc::clone(&pending),
            report: CommitReport::default(),
        };
        let thread = std::thread::Builder::new()
            .name("tierd-commit".into())
            .spawn(move || {
                let committed = worker.run(rx);
                // The worker is gone, and with it the publish queue's
                // sender: the publish thread drains it and stops.
                let published = publish
                    .join()
                    .map_err(|_| CommitError::Stopped("the publish thread panicked".into()))?;
                let mut report = committed?;
                report.records += published.records;
                report.applied += published.applied;
                report.rejected += published.rejected;
                Ok(report)
            })
            .map_err(|e| CommitError::Stopped(format!("could not spawn the thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            pending,
        })
    }

    /// Whether the commit thread has nothing to do: every submitted unit
    /// is through it (durable, or given up while stopping). The ingest
    /// loop seals its batch as soon as this holds (group commit): records
    /// wait for a commit only while the one before is being written, so a
    /// lone event is committed at once and a busy stream still gets large
    /// units.
    pub fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Hand over a sealed unit; blocks while one unit already waits. If the
    /// committer has stopped, returns why (and the unit is dropped: it was
    /// never written).
    pub fn submit(&mut self, unit: CommitUnit) -> Result<(), CommitError> {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let sent = match &self.tx {
            Some(tx) => tx.send(unit).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.tx = None;
        match self.join() {
            Ok(_) => Err(CommitError::Stopped(
                "it gave up on a unit while stopping".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// Commit whatever was submitted, stop the thread and report.
    pub fn finish(mut self) -> Result<CommitReport, CommitError> {
        self.tx = None;
        self.join()
    }

    fn join(&mut self) -> Result<CommitReport, CommitError> {
        let Some(thread) = self.thread.take() else {
            return Err(CommitError::Stopped("already joined".into()));
        };
        thread
            .join()
            .map_err(|_| CommitError::Stopped("the committer thread panicked".into()))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The commit thread: dead letters and the store.
struct Worker<S> {
    store: Arc<S>,
    sink: Box<dyn DeadLetterSink>,
    hooks: Arc<Mutex<Box<dyn CommitHooks>>>,
    /// Durable units, in commit order, to the publish thread.
    durable: SyncSender<CommitUnit>,
    /// The handle's count of units not yet through this thread.
    pending: Arc<AtomicUsize>,
    report: CommitReport,
}

/// How one attempt to finish a unit failed.
struct Failure {
    op: &'static str,
    reason: &'static str,
    message: String,
}

/// The hooks, whichever thread held them when it panicked.
fn hooks(hooks: &Mutex<Box<dyn CommitHooks>>) -> MutexGuard<'_, Box<dyn CommitHooks>> {
    hooks.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Store + 'static> Worker<S> {
    fn run(mut self, rx: Receiver<CommitUnit>) -> Result<CommitReport, CommitError> {
        while let Ok(mut unit) = rx.recv() {
            if unit.writes() && !self.finish(&mut unit)? {
                // Gave up while stopping: this unit and every one behind
                // it stay uncommitted (each builds on the one before).
                self.report.uncommitted += unit.records as u64;
                while let Ok(later) = rx.recv() {
                    self.report.uncommitted += later.records as u64;
                }
                break;
            }
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if self.durable.send(unit).is_err() {
                return Err(CommitError::Stopped(
                    "the publish thread stopped unexpectedly".into(),
                ));
            }
        }
        Ok(self.report)
    }

    /// Dead-letter and commit `unit`, retrying until it succeeds. Returns
    /// whether it was committed (false: given up while stopping).
    fn finish(&mut self, unit: &mut CommitUnit) -> Result<bool, CommitError> {
        // A state the engine could not encode: nothing of the unit is
        // written (the publish thread needs none of the encoded states).
        let customers = std::mem::replace(&mut unit.customers, Ok(EncodedCustomers::default()))
            .map_err(CommitError::Prepare)?;
        let mut backoff = Duration::from_millis(50);
        let mut cancelled_at: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let failure = match self.sink.deliver(&mut unit.dead) {
                Ok(()) => match self.commit(unit, &customers, started) {
                    Ok(end) => {
                        unit.outbox_end = Some(end);
                        hooks(&self.hooks).progress();
                        return Ok(true);
                    }
                    Err(CommitAttempt::Fatal(e)) => return Err(e),
                    Err(CommitAttempt::Failed(f)) => f,
                },
                Err(e) => Failure {
                    op: "dead_letter",
                    reason: e.reason,
                    message: e.message,
                },
            };
            hooks(&self.hooks).trouble(started, failure.reason);
            metrics::counter!(m::RETRIES, "op" => failure.op, "reason" => failure.reason)
                .increment(1);
            tracing::warn!(
                error = %failure.message,
                records = unit.records,
                dead_letters_pending = unit.dead.iter().filter(|d| !d.delivered).count(),
                retry_in_ms = backoff.as_millis() as u64,
                "batch not committed; its partitions do not advance; retrying"
            );
            if hooks(&self.hooks).cancelled() {
                let since = *cancelled_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= CANCEL_GRACE {
                    tracing::warn!(
                        records = unit.records,
                        error = %failure.message,
                        "stopping with the batch in hand uncommitted (no state, offset or outbox row of it was written); it will be consumed again on the next start"
                    );
                    return Ok(false);
                }
            }
            if failure.op == "dead_letter" {
                self.sink.repair();
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn commit(
        &mut self,
        unit: &CommitUnit,
        customers: &EncodedCustomers,
        started: Instant,
    ) -> Result<u64, CommitAttempt> {
        let mut offsets: Vec<(&str, i32, i64)> = unit
            .offsets
            .iter()
            .map(|((t, p), o)| (t.as_str(), *p, *o))
            .collect();
        for (t, p, o) in &unit.extra_offsets {
            if !unit.offsets.contains_key(&(t.clone(), *p)) {
                offsets.push((t.as_str(), *p, *o));
            }
        }
        let mut traced = unit.unit.traced.iter().peekable();
        let mut outbox: Vec<Vec<u8>> = unit
            .unit
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let trace = traced.next_if(|(at, _)| *at == i).map(|(_, t)| t);
                encode_row_traced(c, trace)
            })
            .collect();
        outbox.extend(unit.notice_rows.iter().cloned());
        let mut meta = unit
            .policy
            .as_deref()
            .map(policy_records)
            .unwrap_or_default();
        if let Some(cut) = &unit.rank_cut {
            // With the decisions made against them (see `cuts`).
            meta.push((crate::cuts::META_CUTS, crate::cuts::encode(cut)));
        }
        if let Some(confirmed) = &unit.unit.confirmations {
            meta.push((crate::confirmed::META_CONFIRMED, confirmed.encode()));
        }
        let batch: CommitBatch<'_, CustomerState> = CommitBatch {
            customers: Vec::new(),
            moved: unit
                .unit
                .moved
                .iter()
                .map(|(scope, id)| (*scope, id.as_str()))
                .collect(),
            offsets,
            outbox,
            meta,
        };
        // A copy per attempt (a failed attempt consumed its batch): the
        // keys and a count per state, the states themselves are shared.
        let prepared = PreparedBatch::prepare_encoded(&batch, customers.clone())
            .map_err(|e| CommitAttempt::Fatal(CommitError::Prepare(e)))?;
        let receipt = self.store.commit_prepared(prepared).map_err(|e| {
            CommitAttempt::Failed(Failure {
                op: "commit",
                reason: "store",
                message: e.to_string(),
            })
        })?;
        debug_assert_eq!(
            receipt.outbox_keys.end - receipt.outbox_keys.start,
            (unit.unit.changes.len() + unit.notice_rows.len()) as u64
        );
        let elapsed = started.elapsed();
        metrics::histogram!(m::BATCH_COMMIT_SECONDS).record(elapsed.as_secs_f64());
        if !customers.is_empty() {
            metrics::counter!(m::STATES_WRITTEN).increment(customers.len() as u64);
            metrics::counter!(m::STATE_BYTES_WRITTEN).increment(customers.bytes() as u64);
        }
        tracing::debug!(
            records = unit.records,
            customers = customers.len(),
            changes = unit.unit.changes.len(),
            swept = unit.unit.swept,
            rescored = unit.unit.rescored,
            dead = unit.dead.len(),
            commit_ms = elapsed.as_millis() as u64,
            "batch committed"
        );
        self.report.batches += 1;
        Ok(receipt.outbox_keys.end)
    }
}

/// The publish thread: a durable unit's effects, in commit order.
struct Publisher {
    observer: Arc<dyn CommitObserver>,
    policy: Arc<PolicyHandle>,
    confirmed_buffers: ConfirmedBuffers,
    hooks: Arc<Mutex<Box<dyn CommitHooks>>>,
    /// Records, applied and rejected of the units published.
    report: CommitReport,
}

impl Publisher {
    fn run(mut self, rx: Receiver<CommitUnit>) -> CommitReport {
        while let Ok(unit) = rx.recv() {
            self.effects(unit);
        }
        self.report
    }

    /// The unit is durable (or wrote nothing): let the world see it.
    fn effects(&mut self, unit: CommitUnit) {
        let CommitUnit {
            records,
            read,
            offsets,
            unit: mut work,
            notice_rows,
            dead,
            consumed,
            replies,
            policy,
            rank_cut,
            status,
            at_risk_total,
            sweep_backlog,
            swept_to,
            overdue_by_tier,
            outbox_end,
            ..
        } = unit;
        if records > 0 {
            metrics::histogram!(m::BATCH_SIZE).record(records as f64);
        }
        // Counted once per committed unit: the counters describe what
        // tierd durably processed, and the hot loop stays free of them.
        for (topic, kind, n) in &consumed {
            metrics::counter!(m::EVENTS_CONSUMED, "topic" => topic.clone(), "type" => *kind)
                .increment(*n);
        }
        for (kind, n) in &work.applied_by_type {
            metrics::counter!(m::EVENTS_APPLIED, "type" => *kind).increment(*n);
        }
        if work.duplicates > 0 {
            metrics::counter!(m::EVENTS_DUPLICATE).increment(work.duplicates);
        }
        if work.stale > 0 {
            metrics::counter!(m::EVENTS_STALE).increment(work.stale);
        }
        // The customers-per-tier gauge is the read side's (it follows
        // rebalances, which tier changes alone do not show).
        for c in &work.changes {
            metrics::counter!(m::TIER_CHANGES, "from" => c.old_tier.clone().unwrap_or_else(|| "none".into()), "to" => c.new_tier.clone(), "cause" => c.cause.as_str()).increment(1);
        }

        // Durable: now readers may see it, in this order: the metrics
        // above, the policy in force (with a status naming it), the
        // customers, the policy's status, the hooks, the replies.
        if let Some(p) = policy {
            self.policy.set(p);
            // The status names the policy in force from now on (also a
            // change back to the one in force before, whose rescore
            // starts again): its progress counts from this unit's views,
            // published below.
            set_status(
                &self.policy,
                &PolicyStatus {
                    rescoring: status.total > 0,
                    rescored: 0,
                    changed: 0,
                    ..status.clone()
                },
            );
        }
        if let Some(cut) = rank_cut {
            self.policy.set_cuts(cut);
        }
        match read {
            Some(ReadUpdate::States(states)) => {
                let views: Vec<(&str, &CustomerState)> =
                    states.iter().map(|(id, s)| (id.as_str(), s)).collect();
                self.observer.committed(&views);
            }
            Some(ReadUpdate::Prepared(publish)) => publish(),
            None => {}
        }
        if !work.confirmed.is_empty() {
            // Confirmed by the policy rescore: shown as of it, under the
            // policy in force (set above, with the unit that applied it).
            let views: Vec<(&str, &CustomerState)> = work
                .confirmed
                .iter()
                .map(|(id, s)| (id.as_str(), s))
                .collect();
            self.observer.committed(&views);
        }
        // After the views: a rescore this unit finished is reported done
        // once every customer shows it (a client waiting for "done", as
        // `tierctl policy apply --wait` does, then reads the new policy's
        // decisions), and lets the replaced policy go (see
        // `PolicyHandle::policy_of`).
        set_status(&self.policy, &status);
        self.policy.release_replaced(&status);
        if !work.evicted.is_empty() {
            self.observer.evicted(&work.evicted);
        }
        if let Some(backlog) = sweep_backlog {
            metrics::gauge!(m::SWEEP_BACKLOG).set(backlog as f64);
        }
        metrics::gauge!(m::AT_RISK).set(at_risk_total as f64);
        for (tier, n) in overdue_by_tier.iter().flatten() {
            metrics::gauge!(m::COMPLAINTS_OVERDUE, "tier" => tier.clone()).set(*n as f64);
        }
        hooks(&self.hooks).durable(&Durable {
            offsets: &offsets,
            outbox_rows: work.changes.len() + notice_rows.len(),
            outbox_end,
            swept_to,
        });
        for r in replies {
            match r {
                PendingReply::Override(reply, change) => reply(Ok(change.map(|c| *c))),
                PendingReply::Policy(reply) => reply(Ok(status.clone())),
                PendingReply::Barrier(tx) => {
                    let _ = tx.send(());
                }
            }
        }
        self.report.records += records as u64;
        self.report.applied += work.applied;
        self.report.rejected += dead.len() as u64;
        // Last: emptying it drops the unit's confirmed customers, which
        // nobody waiting for the status, the hooks or a reply needs.
        self.confirmed_buffers
            .give(std::mem::take(&mut work.confirmed));
    }
}

/// Publish `status` as the policy's progress (handle and gauge).
fn set_status(handle: &PolicyHandle, status: &PolicyStatus) {
    if handle.status() == *status {
        return;
    }
    let progress = if status.total == 0 {
        1.0
    } else {
        status.rescored as f64 / status.total as f64
    };
    metrics::gauge!(m::POLICY_RESCORE_PROGRESS).set(progress);
    handle.set_status(status.clone());
}

enum CommitAttempt {
    Failed(Failure),
    Fatal(CommitError),
}

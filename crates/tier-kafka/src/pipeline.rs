//! The ingest source: Kafka records in, engine units out.
//!
//! Runs on a dedicated OS thread with a `BaseConsumer`, so per-partition
//! order is kept by construction (records are handled in poll order).
//!
//! Per batch:
//! 1. poll records until the committer is idle (group commit: a batch
//!    is sealed as soon as the unit before it is durable, so a lone event
//!    waits for no timer and a busy stream forms large units), bounded by
//!    `batch_max_records` and `batch_max_wait`; a sweep or rescore slice
//!    waiting to be taken counts as work in hand, like a record;
//! 2. decode and validate each at once into an owned domain event (its
//!    date judged against when the record reached Kafka,
//!    [`crate::clock::judged_at`], so a replay rejects what live
//!    processing rejected); invalid ones are parked in the batch for the
//!    dead-letter sink ([`crate::dead_letter`]);
//! 3. fold valid events into the engine (all customers are kept in memory;
//!    sled is the durable copy); between polls the engine also applies
//!    waiting commands, a slice of a policy rescore and, once caught up, a
//!    slice of the due customers, each slice sized to take about
//!    `slice_target` (the `slices` module);
//! 4. seal the batch into an owned commit unit and hand it to the engine's
//!    committer (`tier_engine::committer`), whose commit thread delivers
//!    its dead letters and commits its customers, offsets and outbox rows
//!    in ONE store batch, and whose publish thread only then publishes its
//!    effects (read model, outbox wake-up, Kafka bookkeeping, replies)
//!    while the commit thread writes the next unit and this thread already
//!    folds the one after.
//!
//! On every partition assignment the consumer starts from the offsets the
//! pipeline has processed (equal to the stored ones after a restart);
//! Kafka's committed offsets are never read. The engine learns the new
//! assignment before it folds a record of it or sweeps: the batch in hand
//! is committed, customers of partitions now owned elsewhere are dropped
//! from memory, and those of partitions owned again are loaded back from
//! the store once everything before is durable (`Pipeline::reassign`,
//! tier-engine's `scope` module). A stored offset beyond the
//! partition's end (a new embedded log, a recreated topic) is reset to the
//! log start with a warning.
//!
//! # Health
//!
//! The status is `Ready` while the pipeline makes progress, and `Stalled`
//! once it has been unable to for [`PipelineConfig::stall_after`]: trouble
//! starts with a consumer error (client error events such as
//! `AllBrokersDown` or `BrokerTransportFailure`, poll errors), a failed
//! dead-letter delivery or store commit, or, when no record arrived for a
//! while, a probe that cannot reach the partition leaders or finds records
//! waiting that the consumer does not fetch. Trouble ends with the next
//! record consumed, batch committed, or probe that finds every assigned
//! partition caught up. The pipeline never skips a record: it retries
//! forever, and stalls rather than advance. Progress is judged over all
//! assigned partitions together: one stuck partition among flowing ones
//! does not stall the pipeline.
//!
//! On cancellation the batch in hand is committed if it can be within a
//! short grace period; otherwise it is left uncommitted as a whole (neither
//! state, offsets nor outbox rows are written) and consumed again on the
//! next start ([`PipelineReport::uncommitted`]). Dead letters it had
//! already delivered are then delivered again: the dead-letter topic is
//! at-least-once across restarts, exactly-once within a run.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList as Tpl};
use tier_core::ValidationLimits;
use tier_core::state::CustomerState;
pub use tier_engine::CommitObserver;
use tier_engine::command::Command;
use tier_engine::{
    Batch, CommitHooks, Committer, CommitterDeps, DeadLetter, Durable, Engine, PolicyHandle,
    PolicyStatus, SealInfo,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::align::{Aligner, Released};
use crate::client::client_config;
use crate::clock::{Clock, MonotonicNow};
use crate::dead_letter::KafkaDeadLetters;
use crate::error::StreamError;
use crate::metrics as m;
use crate::slices::Slices;
use tier_store::Store;
use tier_wire::decode::Decoder;
use tier_wire::trace::TraceParent;

/// The W3C trace context of a record (its `traceparent` header), when it
/// has a valid one; a malformed one is ignored.
fn traceparent(msg: &impl rdkafka::message::Message) -> Option<TraceParent> {
    use rdkafka::message::Headers as _;
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(TraceParent::HEADER))
        .and_then(|h| h.value)
        .and_then(TraceParent::from_bytes)
}

/// Settings of the ingest pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub brokers: String,
    pub group_id: String,
    /// Static membership: a restarted instance gets its partitions back at
    /// once instead of waiting out the session timeout.
    pub group_instance_id: Option<String>,
    pub topics: Vec<String>,
    pub dlq_topic: String,
    pub batch_max_records: usize,
    pub batch_max_wait: Duration,
    /// While catching up, the records a batch holds before it is sealed
    /// as soon as the committer is free (group commit); a smaller one is
    /// sealed when full or at `batch_max_wait`.
    pub batch_catch_up_min_records: usize,
    /// Most records held while catching up to merge the input topics by
    /// event time (see the `align` module): from half of it the partitions
    /// whose records must wait are paused; past it records go on without
    /// waiting.
    pub align_max_held: usize,
    pub session_timeout_ms: u32,
    /// Extra librdkafka settings for the consumer.
    pub kafka: Vec<(String, String)>,
    /// Extra librdkafka settings for the dead-letter producer.
    pub dlq_kafka: Vec<(String, String)>,
    pub limits: ValidationLimits,
    /// How long the pipeline may fail to make progress (consumer errors,
    /// unreachable leaders, records it cannot fetch, dead letters or
    /// commits that keep failing) before its status turns `Stalled`.
    pub stall_after: Duration,
    /// Sweep due customers once caught up (time-driven decisions).
    pub time_sweeps: bool,
    /// How far sweeps stay behind the processing clock: a decision due at
    /// `t` is made once the clock reads `t + sweep_grace`, so an event
    /// dated before `t` that arrives within the grace (an ERP publishing
    /// a little late) is folded before it, as a replay folds it, instead
    /// of after a decision it should have been part of.
    pub sweep_grace: Duration,
    /// Most customers swept, and most rescored, between two batches.
    pub slice: usize,
    /// About how long a loop turn with a sweep or rescore slice may take:
    /// slices are sized from the measured rate to fit it, between
    /// [`crate::slices::MIN_SLICE`] and `slice` (see the `slices` module).
    /// Zero: always `slice`.
    pub slice_target: Duration,
    /// Customers the engine holds decoded (`Engine::set_hot_limit`).
    pub hot_customers: usize,
    /// Heap bytes they may take (`Engine::set_hot_bytes_limit`).
    pub hot_bytes: usize,
}

impl PipelineConfig {
    pub fn new(brokers: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: "tierd".into(),
            group_instance_id: None,
            topics,
            dlq_topic: "tierd.dlq".into(),
            batch_max_records: 20_000,
            batch_max_wait: Duration::from_millis(50),
            batch_catch_up_min_records: 5_000,
            align_max_held: 100_000,
            session_timeout_ms: 10_000,
            kafka: Vec::new(),
            dlq_kafka: Vec::new(),
            limits: ValidationLimits::default(),
            stall_after: Duration::from_secs(10),
            time_sweeps: true,
            sweep_grace: Duration::ZERO,
            slice: 5_000,
            slice_target: Duration::from_millis(20),
            hot_customers: tier_engine::DEFAULT_HOT_CUSTOMERS,
            hot_bytes: tier_engine::DEFAULT_HOT_BYTES,
        }
    }

    /// How often an idle pipeline checks that it is caught up.
    fn probe_every(&self) -> Duration {
        (self.stall_after / 4).clamp(Duration::from_millis(100), Duration::from_millis(2500))
    }

    /// How long one such check may take.
    fn probe_timeout(&self) -> Duration {
        (self.stall_after / 2).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }
}

/// Where the pipeline stands; drives the health service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    /// Loading state, joining the group.
    Starting,
    /// Partitions assigned, state loaded, batches committing.
    Ready,
    /// Has not been able to make progress for `stall_after` (Kafka
    /// unreachable, records not fetched, dead-letter or store failures);
    /// retrying.
    Stalled,
    Stopped,
}

/// What the pipeline did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// Records in committed batches.
    pub records: u64,
    /// Events that changed a projection (not duplicates, not stale).
    pub applied: u64,
    /// Records dead-lettered.
    pub rejected: u64,
    /// Batches committed.
    pub batches: u64,
    /// Records of a batch that could not be committed before the pipeline
    /// was stopped; they are consumed again on the next start.
    pub uncommitted: u64,
}

/// A running pipeline.
#[derive(Debug)]
pub struct PipelineHandle {
    thread: Option<JoinHandle<Result<PipelineReport, StreamError>>>,
    status: watch::Receiver<PipelineStatus>,
}

impl PipelineHandle {
    pub fn status(&self) -> watch::Receiver<PipelineStatus> {
        self.status.clone()
    }

    /// Wait for the thread to finish (after cancellation).
    pub async fn join(mut self) -> Result<PipelineReport, StreamError> {
        let Some(t) = self.thread.take() else {
            return Err(StreamError::Stopped("joined twice".into()));
        };
        tokio::task::spawn_blocking(move || t.join())
            .await
            .map_err(|e| StreamError::Stopped(e.to_string()))?
            .map_err(|_| StreamError::Stopped("the pipeline thread panicked".into()))?
    }
}

pub use tier_engine::committer::{
    META_POLICY, META_POLICY_REPLACED, META_POLICY_SOURCE, META_POLICY_VERSIONS, policy_records,
};

/// Everything the pipeline needs from the daemon.
#[derive(Debug)]
pub struct PipelineDeps<S> {
    pub store: Arc<S>,
    /// The policy in force; the pipeline replaces it when a new one is
    /// durably recorded.
    pub policy: Arc<PolicyHandle>,
    /// Commands (overrides, policy changes), applied between batches.
    pub commands: std::sync::mpsc::Receiver<Command>,
    /// The processing instant up to which every time-driven decision is
    /// made and committed (set once caught up and nothing is due).
    pub swept_to: watch::Sender<Option<tier_core::Timestamp>>,
    pub clock: Arc<dyn Clock>,
    pub outbox_notify: Arc<Notify>,
    /// Opened as units reach the read side (see [`crate::OutboxGate`]).
    pub outbox_gate: Arc<crate::OutboxGate>,
    pub cancel: CancellationToken,
}

/// Load state, then start consuming on a thread of its own.
pub fn spawn<S: Store + 'static>(
    config: PipelineConfig,
    deps: PipelineDeps<S>,
    observer: Arc<dyn CommitObserver>,
) -> Result<PipelineHandle, StreamError> {
    let (status_tx, status_rx) = watch::channel(PipelineStatus::Starting);
    let status_tx = Arc::new(status_tx);
    let thread = std::thread::Builder::new()
        .name("tierd-ingest".into())
        .spawn(move || {
            let health = Arc::new(Mutex::new(Health::new(
                status_tx.clone(),
                config.stall_after,
            )));
            let result = Pipeline::start(config, deps, observer, health).and_then(|mut p| p.run());
            let _ = status_tx.send(PipelineStatus::Stopped);
            if let Err(e) = &result {
                tracing::error!(error = %e, "ingest pipeline stopped with an error");
            }
            result
        })
        .map_err(|e| StreamError::Stopped(format!("could not spawn the ingest thread: {e}")))?;
    Ok(PipelineHandle {
        thread: Some(thread),
        status: status_rx,
    })
}

/// Whether the pipeline makes progress; publishes its status.
struct Health {
    tx: Arc<watch::Sender<PipelineStatus>>,
    current: PipelineStatus,
    stall_after: Duration,
    /// Partitions were assigned at least once.
    started: bool,
    /// Since when no progress was made despite trouble, and the latest
    /// reason (a bounded label): consuming (the source's side).
    trouble: Option<(Instant, &'static str)>,
    /// The same for committing (the committer's side). Kept apart: the
    /// source can be caught up while the unit in hand cannot be committed,
    /// and only a commit clears a commit's trouble.
    commit_trouble: Option<(Instant, &'static str)>,
}

impl Health {
    fn new(tx: Arc<watch::Sender<PipelineStatus>>, stall_after: Duration) -> Self {
        Self {
            tx,
            current: PipelineStatus::Starting,
            stall_after,
            started: false,
            trouble: None,
            commit_trouble: None,
        }
    }

    /// An attempt to commit a unit, begun at `at`, failed.
    fn commit_failed(&mut self, at: Instant, reason: &'static str) {
        match &mut self.commit_trouble {
            Some((since, r)) => {
                *since = (*since).min(at);
                *r = reason;
            }
            None => self.commit_trouble = Some((at, reason)),
        }
    }

    /// A unit was committed.
    fn committed(&mut self) {
        self.commit_trouble = None;
    }

    /// The longest-standing trouble of either side.
    fn worst(&self) -> Option<(Instant, &'static str)> {
        match (self.trouble, self.commit_trouble) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Something failed; the clock starts at the first failure since the
    /// last progress.
    fn trouble(&mut self, reason: &'static str) {
        self.trouble_since(Instant::now(), reason);
    }

    /// Like [`Health::trouble`], for an attempt that began at `at` and
    /// failed (a delivery can take `message.timeout.ms` to fail).
    fn trouble_since(&mut self, at: Instant, reason: &'static str) {
        match &mut self.trouble {
            Some((since, r)) => {
                *since = (*since).min(at);
                *r = reason;
            }
            None => self.trouble = Some((at, reason)),
        }
    }

    /// A record consumed, a batch committed, or every partition caught up.
    fn progress(&mut self) {
        self.trouble = None;
    }

    /// Recompute the status; publish it and log one line if it changed.
    fn update(&mut self) {
        let worst = self.worst();
        let next = match worst {
            _ if !self.started => PipelineStatus::Starting,
            Some((since, _)) if since.elapsed() >= self.stall_after => PipelineStatus::Stalled,
            _ => PipelineStatus::Ready,
        };
        if next == self.current {
            return;
        }
        match (self.current, next, worst) {
            (_, PipelineStatus::Stalled, Some((since, reason))) => tracing::warn!(
                reason,
                stalled_for_ms = since.elapsed().as_millis() as u64,
                "ingest cannot make progress; status Stalled (not serving) while it keeps retrying"
            ),
            (PipelineStatus::Stalled, PipelineStatus::Ready, _) => {
                tracing::info!("ingest is making progress again; status Ready");
            }
            (from, to, _) => tracing::info!(from = ?from, to = ?to, "ingest status changed"),
        }
        self.current = next;
        let _ = self.tx.send(next);
    }
}

/// Bounded label for a Kafka error (metrics, logs).
pub(crate) fn kafka_reason(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => "transport",
        Some(
            RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::MessageTimedOut,
        ) => "timed_out",
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition,
        ) => "unknown_topic",
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::Authentication,
        ) => "not_authorized",
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotEnoughReplicas,
        ) => "leader_unavailable",
        _ => "kafka_error",
    }
}

type Positions = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// `((topic, partition), offset)`.
type PartitionOffset = ((String, i32), i64);

/// Consumer context: assigns partitions at the pipeline's own offsets.
struct IngestContext {
    positions: Positions,
    /// Offsets reset on assignment, to be written with the next commit.
    resets: Arc<Mutex<Vec<(String, i32, i64)>>>,
    assigned: Arc<Mutex<bool>>,
    /// The partition numbers of an assignment the engine has not applied
    /// yet (see `Pipeline::reassign`).
    assignment: Arc<Mutex<Option<BTreeSet<i32>>>>,
    /// The reason of a client error event not yet seen by the pipeline.
    client_error: Arc<Mutex<Option<&'static str>>>,
    /// Log start and end per partition, from the statistics.
    ends: LogEnds,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientContext for IngestContext {
    /// librdkafka statistics (every second): consumer lag per partition,
    /// and the log ends the aligner reads.
    fn stats(&self, stats: rdkafka::Statistics) {
        let mut ends = lock(&self.ends);
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.hi_offset >= 0 {
                    let end = if p.ls_offset >= 0 {
                        p.ls_offset
                    } else {
                        p.hi_offset
                    };
                    let log = LogEnd {
                        start: p.lo_offset,
                        end,
                        position: p.app_offset,
                    };
                    match ends.get_mut(topic) {
                        Some(t) => {
                            t.insert(*partition, log);
                        }
                        None => {
                            ends.insert(topic.clone(), HashMap::from([(*partition, log)]));
                        }
                    }
                }
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }

    /// Client-level errors (brokers down, transport failures, ...). Called
    /// on the ingest thread from within `poll`, which then also returns the
    /// same error; the pipeline counts and logs it once.
    fn error(&self, error: KafkaError, reason: &str) {
        let label = kafka_reason(&error);
        metrics::counter!(m::RETRIES, "op" => "consume", "reason" => label).increment(1);
        tracing::warn!(error = %error, reason, "kafka client error; librdkafka keeps retrying");
        *lock(&self.client_error) = Some(label);
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Log ends reported under the last assignment may be old.
                lock(&self.ends).clear();
                let positions = lock(&self.positions).clone();
                let assigned: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in assigned {
                    let stored = positions.get(&(topic.clone(), partition)).copied();
                    let offset = self.start_offset(consumer, &topic, partition, stored);
                    tracing::debug!(topic = %topic, partition, offset = ?offset, "partition assigned");
                    let _ = tpl.set_partition_offset(&topic, partition, offset);
                }
                tracing::info!(
                    partitions = tpl.count(),
                    "partitions assigned; resuming from tierd's stored offsets"
                );
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assigning partitions failed");
                } else {
                    *lock(&self.assigned) = true;
                    *lock(&self.assignment) =
                        Some(tpl.elements().iter().map(|e| e.partition()).collect());
                    // Tell the group where tierd stands at once, so lag
                    // monitors are right also for partitions with nothing
                    // new to consume (monitoring only; never read back).
                    let mut known = Tpl::new();
                    for e in tpl.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            let _ = known.add_partition_offset(
                                e.topic(),
                                e.partition(),
                                Offset::Offset(o),
                            );
                        }
                    }
                    if known.count() > 0
                        && let Err(e) = consumer.commit(&known, CommitMode::Async)
                    {
                        tracing::debug!(error = %e, "committing assigned offsets to Kafka (monitoring only) failed");
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                *lock(&self.assigned) = false;
                let _ = consumer.unassign();
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                *lock(&self.assigned) = false;
                let _ = consumer.unassign();
            }
        }
    }
}

impl IngestContext {
    /// Where to start a partition: the stored next offset, unless the log
    /// no longer has it.
    fn start_offset(
        &self,
        consumer: &BaseConsumer<Self>,
        topic: &str,
        partition: i32,
        stored: Option<i64>,
    ) -> Offset {
        let Some(next) = stored else {
            return Offset::Beginning;
        };
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) if next > high => {
                tracing::warn!(
                    topic,
                    partition,
                    stored = next,
                    log_end = high,
                    log_start = low,
                    "stored offset is beyond the end of the log (new embedded log or recreated topic); consuming this log from its start"
                );
                metrics::counter!(m::OFFSET_RESETS, "topic" => topic.to_owned(), "why" => "beyond_end").increment(1);
                lock(&self.resets).push((topic.to_owned(), partition, low));
                lock(&self.positions).insert((topic.to_owned(), partition), low);
                Offset::Offset(low)
            }
            Ok((low, _)) if next < low => {
                tracing::error!(
                    topic,
                    partition,
                    stored = next,
                    log_start = low,
                    "the log no longer holds the stored offset (retention); events in between are lost to tierd"
                );
                metrics::counter!(m::OFFSET_RESETS, "topic" => topic.to_owned(), "why" => "before_start").increment(1);
                lock(&self.positions).insert((topic.to_owned(), partition), low);
                Offset::Offset(low)
            }
            Ok(_) => Offset::Offset(next),
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "could not read watermarks; starting at the stored offset");
                Offset::Offset(next)
            }
        }
    }
}

/// What an idle pipeline found when it looked at its partitions.
enum Probe {
    /// Every assigned partition is consumed to its end (or nothing is
    /// assigned and the cluster answers).
    CaughtUp,
    /// Records are waiting that the consumer has not delivered.
    Lagging {
        topic: String,
        partition: i32,
        position: i64,
        end: i64,
    },
    /// The cluster did not answer.
    Failed(KafkaError),
}

struct Pipeline<S> {
    config: PipelineConfig,
    deps: PipelineDeps<S>,
    consumer: Arc<BaseConsumer<IngestContext>>,
    decoder: Decoder,
    /// The policy the decoder was built for.
    decoder_policy: Arc<tier_core::policy::Policy>,
    engine: Engine,
    committer: Option<Committer>,
    /// The consumer has been seen at the end of every assigned partition
    /// since the last full batch and the last assignment of partitions new
    /// to the engine: time-driven decisions may go up to the processing
    /// clock (while catching up they wait, so a customer is not swept for
    /// want of events still in the backlog).
    caught_up: bool,
    last_probe: Instant,
    positions: Positions,
    resets: Arc<Mutex<Vec<(String, i32, i64)>>>,
    assigned: Arc<Mutex<bool>>,
    assignment: Arc<Mutex<Option<BTreeSet<i32>>>>,
    /// The read side, for customers loaded back on an assignment.
    observer: Arc<dyn CommitObserver>,
    client_error: Arc<Mutex<Option<&'static str>>>,
    now: MonotonicNow,
    health: Arc<Mutex<Health>>,
    /// When the pipeline last consumed a record or probed its partitions.
    last_activity: Instant,
    /// The swept-to mark and policy status last handed to the committer.
    sent_swept_to: Option<tier_core::Timestamp>,
    sent_status: PolicyStatus,
    /// Sizes the sweep and rescore slices.
    slices: Slices,
    /// Polled records not yet folded, merged by event time across the
    /// input topics while catching up (see the `align` module).
    aligner: Aligner<Polled>,
    /// The log ends librdkafka last reported.
    ends: LogEnds,
}

/// A decoded record waiting in the [`Aligner`]. Events are the common
/// case and held inline (no allocation per record); dead letters, rare
/// and large, are boxed.
#[allow(clippy::large_enum_variant)]
enum Polled {
    Event {
        event: tier_core::Event,
        trace: Option<TraceParent>,
    },
    Invalid(Box<DeadLetter>),
}

/// Where each assigned partition's log stands, as librdkafka's statistics
/// last reported it (`statistics.interval.ms`, one second), by topic and
/// partition: whether a partition is consumed to its end, for the
/// aligner, without a request to the brokers. Cleared on every assignment,
/// so a partition back from another instance is not judged by its old
/// end; a partition not reported yet is not known to be at its end (the
/// aligner stops waiting for one that delivers nothing).
type LogEnds = Arc<Mutex<HashMap<String, HashMap<i32, LogEnd>>>>;

#[derive(Debug, Clone, Copy)]
struct LogEnd {
    /// The log start.
    start: i64,
    /// What a consumer can reach: the last stable offset (under
    /// `read_committed`, a transaction's markers are never delivered),
    /// else the high watermark.
    end: i64,
    /// The consumer's application position (past transaction markers).
    position: i64,
}

/// Whether `topic` `partition` is consumed to its end (`None`: its end
/// was not reported): the next offset to poll (`next`; else the offset
/// processed, else the log start), or the application position, is at the
/// end last reported.
fn at_end(
    ends: &LogEnds,
    positions: &Positions,
    topic: &str,
    partition: i32,
    next: Option<i64>,
) -> Option<bool> {
    let log = lock(ends)
        .get(topic)
        .and_then(|t| t.get(&partition))
        .copied()?;
    let next = next
        .or_else(|| lock(positions).get(&(topic.to_owned(), partition)).copied())
        .unwrap_or(log.start);
    Some(next.max(log.position) >= log.end)
}

/// The pipeline's side of the committer: health, the outbox wake-up,
/// Kafka bookkeeping and the swept-to mark, all after a unit is durable.
struct Hooks {
    health: Arc<Mutex<Health>>,
    consumer: Arc<BaseConsumer<IngestContext>>,
    outbox_notify: Arc<Notify>,
    outbox_gate: Arc<crate::OutboxGate>,
    swept_to: watch::Sender<Option<tier_core::Timestamp>>,
    cancel: CancellationToken,
}

impl CommitHooks for Hooks {
    fn durable(&mut self, unit: &Durable<'_>) {
        if let Some(end) = unit.outbox_end {
            // The read model has this unit: its rows may be completed from
            // it and published.
            self.outbox_gate.open_to(end);
        }
        if unit.outbox_rows > 0 {
            self.outbox_notify.notify_one();
        }
        if let Some(at) = unit.swept_to {
            self.swept_to.send_if_modified(|t| {
                let moved = *t != Some(at);
                *t = Some(at);
                moved
            });
        }
        kafka_bookkeeping(&self.consumer, unit.offsets);
    }

    fn trouble(&mut self, since: Instant, reason: &'static str) {
        let mut health = lock(&self.health);
        health.commit_failed(since, reason);
        health.update();
    }

    fn progress(&mut self) {
        let mut health = lock(&self.health);
        health.committed();
        health.update();
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Commit offsets to Kafka for lag monitoring only (lag itself comes from
/// librdkafka's statistics, see `IngestContext::stats`).
fn kafka_bookkeeping(
    consumer: &BaseConsumer<IngestContext>,
    offsets: &BTreeMap<(String, i32), i64>,
) {
    if offsets.is_empty() {
        return;
    }
    let mut tpl = Tpl::new();
    for ((t, p), o) in offsets {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "committing offsets to Kafka (monitoring only) failed");
    }
}

/// Customers handed to the read side per call when many are published at
/// once (at start, after a reassignment): most are held encoded, so each
/// chunk is decoded, published and dropped before the next.
const VIEW_CHUNK: usize = 10_000;

/// How long a partition that delivers nothing and is not known to be at
/// its end is waited for by the aligner.
const ALIGN_MAX_HOLD: Duration = Duration::from_secs(2);
/// How long a poll waits while the aligner holds records and none is in
/// the batch.
const ALIGN_POLL_STEP: Duration = Duration::from_millis(20);

/// How long a poll waits while records are in hand and a commit is being
/// written: the longest a finished commit goes unnoticed when no record
/// arrives.
const GROUP_COMMIT_STEP: Duration = Duration::from_millis(2);

/// The consumer's `fetch.queue.backoff.ms` (see `Pipeline::new`).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The start-up fill: every customer the engine loaded, in chunks, then
/// [`CommitObserver::filled`] once, before anything is consumed (what is
/// built once over all of them, the population gradings, is built before
/// tierd reports ready).
fn fill_read_side(observer: &dyn CommitObserver, engine: &Engine) {
    publish_views(observer, engine.customers());
    observer.filled();
}

/// Publish `customers` (committed state) to `observer` in chunks.
fn publish_views<'a>(
    observer: &dyn CommitObserver,
    customers: impl Iterator<Item = (&'a str, Cow<'a, CustomerState>)>,
) {
    let mut chunk = Vec::with_capacity(VIEW_CHUNK);
    let publish = |chunk: &mut Vec<(&str, Cow<'_, CustomerState>)>| {
        let views: Vec<(&str, &CustomerState)> =
            chunk.iter().map(|(id, s)| (*id, s.as_ref())).collect();
        observer.committed(&views);
        chunk.clear();
    };
    for item in customers {
        chunk.push(item);
        if chunk.len() == VIEW_CHUNK {
            publish(&mut chunk);
        }
    }
    if !chunk.is_empty() {
        publish(&mut chunk);
    }
}

impl<S: Store + 'static> Pipeline<S> {
    fn start(
        config: PipelineConfig,
        deps: PipelineDeps<S>,
        observer: Arc<dyn CommitObserver>,
        health: Arc<Mutex<Health>>,
    ) -> Result<Self, StreamError> {
        lock(&health).update();
        let started = Instant::now();
        let store = deps.store.clone();
        // Warm the engine from the store.
        let mut clock_now = MonotonicNow::new();
        let now = clock_now.now(deps.clock.as_ref());
        let mut engine = Engine::load(
            deps.policy.policy(),
            store.as_ref(),
            now,
            tier_engine::HotLimits {
                customers: config.hot_customers,
                bytes: config.hot_bytes,
            },
        )?;
        engine.set_policy_versions(deps.policy.active().versions.clone());
        let cuts = store.meta(tier_engine::cuts::META_CUTS)?;
        if let Some(stored) = cuts.as_deref().and_then(tier_engine::cuts::decode)
            && engine.restore_cuts(&stored)
        {
            tracing::info!(
                "population cut points of the last run restored: the first recut rescores exactly the customers a fresh cut moves"
            );
            // The read side explains and grades by them from the start.
            deps.policy.set_cuts(engine.policy().clone());
        }
        fill_read_side(observer.as_ref(), &engine);
        // The read model holds everything stored: the outbox rows stored
        // before this start may be published (an empty commit names the
        // next outbox key and writes nothing).
        // A rescore starting now (the policy changed while tierd was down)
        // records its instant, so a crash cuts it short without changing
        // what it decides; and another policy's record is replaced (see
        // `tier_engine::confirmed`).
        let mut start_batch = tier_store::CommitBatch::<CustomerState>::new();
        if let Some(record) = engine.take_unrecorded_confirmations() {
            start_batch
                .meta
                .push((tier_engine::confirmed::META_CONFIRMED, record.encode()));
        }
        let next_outbox = store
            .commit_prepared(tier_store::PreparedBatch::prepare(&start_batch)?)?
            .outbox_keys
            .start;
        deps.outbox_gate.open_to(next_outbox);
        let status = engine.status();
        if status.rescoring {
            tracing::info!(
                version = %status.version,
                customers = status.total,
                "customers decided under another policy version: rescoring them in the background"
            );
        }
        deps.policy.set_status(status.clone());
        for (tier, n) in engine.overdue_by_tier() {
            metrics::gauge!(m::COMPLAINTS_OVERDUE, "tier" => tier).set(n as f64);
        }
        let positions: Positions = Arc::new(Mutex::new(
            store
                .offsets()?
                .into_iter()
                .map(|(t, p, o)| ((t, p), o))
                .collect(),
        ));
        tracing::info!(
            customers = engine.len(),
            due_now = engine.due_count(now),
            partitions = lock(&positions).len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state loaded"
        );
        let resets = Arc::new(Mutex::new(Vec::new()));
        let assigned = Arc::new(Mutex::new(false));
        let assignment = Arc::new(Mutex::new(None));
        let client_error = Arc::new(Mutex::new(None));
        let ends = LogEnds::default();
        let ctx = IngestContext {
            positions: positions.clone(),
            resets: resets.clone(),
            assigned: assigned.clone(),
            assignment: assignment.clone(),
            client_error: client_error.clone(),
            ends: ends.clone(),
        };
        let session_timeout = config.session_timeout_ms.to_string();
        let mut consumer_defaults = vec![
            ("group.id", config.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            // An instance owns the same partition number of every input
            // topic (co-partitioned by customer id): only the range
            // assignor guarantees it (tierd refuses other settings).
            ("partition.assignment.strategy", "range"),
            ("session.timeout.ms", session_timeout.as_str()),
            ("enable.partition.eof", "false"),
            ("topic.metadata.refresh.interval.ms", "10000"),
            // The log ends the aligner reads (and the lag gauges).
            ("statistics.interval.ms", "1000"),
            // Once the prefetch queue passed librdkafka's thresholds, the
            // next fetch of a partition waits `fetch.queue.backoff.ms`
            // (1,000 ms by default) even when the queue drained long
            // before: catching up on a backlog, the engine can then run
            // dry for part of such a second. Measured alternately on the
            // bench's backlog: 107.7k-113.8k records/s in 5 runs with the
            // default, 110.4k-130.8k in 6 with 10 ms.
            ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS),
        ];
        if let Some(id) = &config.group_instance_id {
            consumer_defaults.push(("group.instance.id", id.as_str()));
        }
        let cc = client_config(&config.brokers, &consumer_defaults, &config.kafka);
        let consumer: Arc<BaseConsumer<IngestContext>> = Arc::new(
            cc.create_with_context(ctx)
                .map_err(|e| StreamError::Kafka(format!("could not create the consumer: {e}")))?,
        );
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| StreamError::Kafka(format!("could not subscribe to {topics:?}: {e}")))?;
        let dlq_config = client_config(
            &config.brokers,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "10000"),
            ],
            &config.dlq_kafka,
        );
        let sink =
            KafkaDeadLetters::new(dlq_config, config.dlq_topic.clone(), config.probe_timeout())?;
        let committer = Committer::spawn(CommitterDeps {
            store,
            sink: Box::new(sink),
            observer: observer.clone(),
            policy: deps.policy.clone(),
            hooks: Box::new(Hooks {
                health: health.clone(),
                consumer: consumer.clone(),
                outbox_notify: deps.outbox_notify.clone(),
                outbox_gate: deps.outbox_gate.clone(),
                swept_to: deps.swept_to.clone(),
                cancel: deps.cancel.clone(),
            }),
            confirmed_buffers: engine.confirmed_buffers(),
        })?;
        let decoder_policy = engine.policy().clone();
        let decoder = Decoder::for_policy(&decoder_policy, config.limits);
        let slices = Slices::new(config.slice, config.slice_target);
        let aligner = Aligner::new(&config.topics, config.align_max_held, ALIGN_MAX_HOLD);
        metrics::gauge!(m::ALIGN_PAUSED).set(0.0);
        Ok(Self {
            config,
            deps,
            consumer,
            decoder,
            decoder_policy,
            engine,
            committer: Some(committer),
            caught_up: false,
            last_probe: Instant::now(),
            positions,
            resets,
            assigned,
            assignment,
            observer,
            client_error,
            now: clock_now,
            health,
            last_activity: Instant::now(),
            sent_swept_to: None,
            sent_status: status,
            slices,
            aligner,
            ends,
        })
    }

    fn run(&mut self) -> Result<PipelineReport, StreamError> {
        let outcome = self.run_loop();
        // Whatever happened, let the committer finish what it has (or give
        // up on it within its grace period) before reporting.
        let finished = match self.committer.take() {
            Some(c) => c.finish().map_err(StreamError::from),
            None => Err(StreamError::Stopped(
                "the committer was already stopped".into(),
            )),
        };
        outcome?;
        let report = finished?;
        tracing::info!(
            records = report.records,
            batches = report.batches,
            uncommitted = report.uncommitted,
            "ingest stopped"
        );
        Ok(PipelineReport {
            records: report.records,
            applied: report.applied,
            rejected: report.rejected,
            batches: report.batches,
            uncommitted: report.uncommitted,
        })
    }

    fn run_loop(&mut self) -> Result<(), StreamError> {
        loop {
            let cancelled = self.deps.cancel.is_cancelled();
            let mut batch = Batch::new();
            // The turn as a live event waits on it, which sizes the next
            // slice: this fill (with a slice waiting, it lasts until the
            // commit before is durable, and that commit wrote the previous
            // slice's customers), then this turn's work.
            let began = Instant::now();
            let polled = if cancelled { 0 } else { self.fill(&mut batch)? };
            let full = batch.records >= self.config.batch_max_records;
            if full {
                self.caught_up = false;
            }
            {
                let mut health = lock(&self.health);
                if *lock(&self.assigned) {
                    health.started = true;
                }
                // Records polled and held by the aligner are progress too.
                if batch.records > 0 || polled > 0 {
                    health.progress();
                }
                health.update();
            }
            if batch.records > 0 || polled > 0 {
                self.last_activity = Instant::now();
            }
            let now = self.now.now(self.deps.clock.as_ref());
            if !cancelled && lock(&self.assignment).is_some() {
                // Before sweeping: never decide for a customer whose
                // partition went elsewhere.
                self.reassign(&mut batch, now)?;
            }
            let sweep_to = (self.caught_up && self.config.time_sweeps).then(|| self.horizon(now));
            if !cancelled {
                self.engine.between_batches(
                    &mut batch,
                    &self.deps.commands,
                    now,
                    self.caught_up,
                    sweep_to,
                    // Catching up, an event waits on the backlog more than
                    // on a slice: a rescore takes whole slices.
                    if self.caught_up {
                        self.slices.size()
                    } else {
                        self.config.slice
                    },
                );
                if !Arc::ptr_eq(self.engine.policy(), &self.decoder_policy) {
                    self.decoder_policy = self.engine.policy().clone();
                    self.decoder = Decoder::for_policy(&self.decoder_policy, self.config.limits);
                }
            }
            let sliced = batch.unit.swept + batch.unit.rescored;
            self.submit(batch, sweep_to)?;
            self.slices.observe(sliced, began.elapsed());
            if cancelled {
                return Ok(());
            }
            let idle = self.last_activity.elapsed() >= self.config.probe_every();
            let check =
                !self.caught_up && !full && self.last_probe.elapsed() >= self.config.probe_every();
            if (idle || check) && !self.deps.cancel.is_cancelled() {
                self.probe_and_judge();
                self.last_probe = Instant::now();
                if idle {
                    self.last_activity = Instant::now();
                }
            }
        }
    }

    /// The instant sweeps reach at processing instant `now`: the grace
    /// before it (see [`PipelineConfig::sweep_grace`]).
    fn horizon(&self, now: tier_core::Timestamp) -> tier_core::Timestamp {
        let grace = i64::try_from(self.config.sweep_grace.as_millis()).unwrap_or(i64::MAX);
        tier_core::Timestamp::from_millis(now.millis().saturating_sub(grace))
    }

    /// Seal the batch and hand it to the committer, if it has anything to
    /// write or announce (a swept-to mark, a policy status that moved:
    /// a rescore can finish without a write of its own when its last
    /// customers were rescored ahead of the queue by sweeps or events).
    /// `sweep_to`: the horizon this turn swept to, if it swept.
    fn submit(
        &mut self,
        batch: Batch,
        sweep_to: Option<tier_core::Timestamp>,
    ) -> Result<(), StreamError> {
        let resets = std::mem::take(&mut *lock(&self.resets));
        let swept_to = sweep_to.filter(|&to| self.engine.next_due().is_none_or(|d| d > to));
        let status = self.engine.status();
        let announce =
            swept_to.is_some_and(|t| self.sent_swept_to != Some(t)) || status != self.sent_status;
        if !batch.has_work() && resets.is_empty() && !announce {
            return Ok(());
        }
        let unit = self.engine.seal_batch_for(
            batch,
            resets,
            SealInfo {
                backlog_at: sweep_to,
                swept_to,
            },
            self.observer.as_ref(),
        );
        if swept_to.is_some() {
            self.sent_swept_to = swept_to;
        }
        self.sent_status = status;
        let Some(committer) = self.committer.as_mut() else {
            return Err(StreamError::Stopped("the committer has stopped".into()));
        };
        committer.submit(unit).map_err(StreamError::from)
    }

    /// Whether the engine has a slice to take at `now`: a rescore with
    /// customers left, or (caught up, sweeping) customers due.
    fn slice_pending(&self, now: tier_core::Timestamp) -> bool {
        self.engine.rescoring()
            || (self.caught_up
                && self.config.time_sweeps
                && self
                    .engine
                    .next_due()
                    .is_some_and(|d| d <= self.horizon(now)))
    }

    /// Poll records into `batch` until it is full or the wait is over;
    /// returns how many were polled (some may be held by the aligner, and
    /// records it held before may be folded).
    fn fill(&mut self, batch: &mut Batch) -> Result<usize, StreamError> {
        let mut polled_records = 0;
        // The partition of the previous record: records come in runs per
        // partition, so its key is allocated once per run, not per record.
        let mut current: (String, i32) = (String::new(), -1);
        // What the last batch had no room for, or what a partition number
        // that delivers nothing more may now release.
        if self.aligner.held() > 0 {
            self.fold_aligned(batch, &mut current, None);
        }
        let deadline = Instant::now() + self.config.batch_max_wait;
        let now = self.now.now(self.deps.clock.as_ref());
        // A sweep or rescore slice waiting counts as work in hand: sealed
        // as soon as the committer is free, not after the full wait (which
        // would leave the engine idle between slices, a 50 ms wait for a
        // 20 ms slice).
        let pending = self.slice_pending(now);
        // A handle of its own: a record borrows it while the pipeline may
        // have to apply a rebalance.
        let consumer = self.consumer.clone();
        // Catching up, records keep coming: a batch is sealed early only
        // once it holds enough of them that a customer met in many of them
        // (a busy one, whose state is large) is encoded and written once
        // for all of them, not once per small batch; or once a poll found
        // no record waiting (the backlog ends, or the broker is slower).
        let enough = if self.caught_up {
            1
        } else {
            self.config.batch_catch_up_min_records.max(1)
        };
        let mut drained = false;
        while batch.records < self.config.batch_max_records {
            // Group commit: work in hand and nothing being written: seal.
            let in_hand = batch.records >= enough || (drained && batch.records > 0) || pending;
            if in_hand && self.committer.as_ref().is_some_and(Committer::idle) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.deps.cancel.is_cancelled() {
                break;
            }
            // With records in hand, wait for more only in short steps, so
            // a commit finishing (or the backlog ending) while no record
            // arrives is noticed.
            let wait = if batch.records > 0 || pending {
                left.min(GROUP_COMMIT_STEP)
            } else if self.aligner.held() > 0 {
                // Held records may go once a log end is reported or a
                // partition falls silent, with no record arriving.
                left.min(ALIGN_POLL_STEP)
            } else {
                left
            };
            let Some(polled) = consumer.poll(wait) else {
                drained = true;
                if self.aligner.held() > 0 {
                    self.fold_aligned(batch, &mut current, None);
                }
                continue;
            };
            let msg = match polled {
                Ok(msg) => msg,
                Err(e) => {
                    // A client error event was already counted and logged by
                    // the context; other poll errors are counted here.
                    let reason = match lock(&self.client_error).take() {
                        Some(reason) => reason,
                        None => {
                            let reason = kafka_reason(&e);
                            metrics::counter!(m::RETRIES, "op" => "consume", "reason" => reason)
                                .increment(1);
                            tracing::warn!(error = %e, "poll failed; librdkafka keeps retrying");
                            reason
                        }
                    };
                    lock(&self.health).trouble(reason);
                    continue;
                }
            };
            if lock(&self.assignment).is_some() {
                // A rebalance happened within this poll: apply it before
                // folding the records of the new assignment.
                self.reassign(batch, now)?;
            }
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            let trace = traceparent(&msg);
            let judged_at = crate::clock::judged_at(msg.timestamp(), now);
            let (at, held) = match self.decoder.decode(msg.key(), msg.payload(), judged_at) {
                Ok(decoded) => (
                    Some(decoded.event.occurred_at),
                    Polled::Event {
                        event: decoded.event,
                        trace,
                    },
                ),
                Err(error) => {
                    let trace_id = trace.map(|t| t.trace_id());
                    tracing::warn!(topic, partition, offset, reason = error.reason.as_str(), field = error.field, detail = %error.detail, trace_id, "rejected record; dead-lettering it");
                    (
                        None,
                        Polled::Invalid(Box::new(DeadLetter {
                            topic: topic.to_owned(),
                            partition,
                            offset,
                            key: msg.key().map(<[u8]>::to_vec),
                            payload: msg.payload().map(<[u8]>::to_vec),
                            error,
                            delivered: false,
                        })),
                    )
                }
            };
            polled_records += 1;
            self.aligner
                .push(topic, partition, offset, at, held, Instant::now());
            self.fold_aligned(batch, &mut current, Some(partition));
        }
        if self.aligner.held() > 0 {
            self.fold_aligned(batch, &mut current, None);
        }
        // A client error event whose poll result was not seen (cannot
        // happen with the current librdkafka bindings, but cheap to check).
        if let Some(reason) = lock(&self.client_error).take() {
            lock(&self.health).trouble(reason);
        }
        Ok(polled_records)
    }

    /// Fold (or dead-letter) the records the aligner releases (of
    /// partition number `only`, after a push; else of every one), up to the
    /// batch's size. Caught up, every partition is at its end: nothing
    /// waits. Not between a revocation and the assignment after it, nor
    /// while an assignment waits to be applied: the records held may be of
    /// partitions now owned elsewhere.
    fn fold_aligned(&mut self, batch: &mut Batch, current: &mut (String, i32), only: Option<i32>) {
        if lock(&self.assignment).is_some() || !*lock(&self.assigned) {
            return;
        }
        let align = !self.caught_up;
        let limit = self.config.batch_max_records.saturating_sub(batch.records);
        let Self {
            aligner,
            positions,
            engine,
            ends,
            ..
        } = self;
        let at_end = |topic: &str, partition, next| {
            if align {
                at_end(ends, positions, topic, partition, next)
            } else {
                Some(true)
            }
        };
        let out = |r: Released<Polled>| {
            if current.1 != r.partition || *current.0 != *r.topic {
                *current = (r.topic.to_string(), r.partition);
            }
            {
                let mut positions = lock(positions);
                match positions.get_mut(&*current) {
                    Some(v) => *v = r.offset + 1,
                    None => {
                        positions.insert(current.clone(), r.offset + 1);
                    }
                }
            }
            match r.item {
                Polled::Event { event, trace } => {
                    batch.record(current, r.offset, event.kind.type_name());
                    engine.fold_from(&mut batch.unit, &event, trace, r.partition);
                }
                Polled::Invalid(dead) => {
                    batch.record(current, r.offset, "invalid");
                    batch.dead_letter(*dead);
                }
            }
        };
        let now = Instant::now();
        match only {
            Some(partition) => aligner.release_partition(partition, now, limit, at_end, out),
            None => aligner.release(now, limit, at_end, out),
        };
        self.apply_flow();
    }

    /// Pause and resume in librdkafka the partitions the aligner says
    /// (see the `align` module). librdkafka fetches a resumed partition
    /// from the record after the last one polled: nothing held is fetched
    /// again, nothing is skipped. librdkafka reports a partition it could
    /// not pause or resume (of a topic it does not know) in the list; it
    /// is logged: a pause missed leaves the aligner's cap to bound what it
    /// holds. One no longer assigned is paused or resumed all the same
    /// (librdkafka keeps the flag on the partition).
    fn apply_flow(&mut self) {
        let flows = self.aligner.take_flow();
        if flows.is_empty() {
            return;
        }
        for flow in flows {
            let mut tpl = Tpl::new();
            tpl.add_partition(&flow.topic, flow.partition);
            let (done, verb) = if flow.pause {
                (self.consumer.pause(&tpl), "pause")
            } else {
                (self.consumer.resume(&tpl), "resume")
            };
            let done = done.and_then(|()| {
                tpl.elements().first().map_or(
                    Ok(()),
                    rdkafka::topic_partition_list::TopicPartitionListElem::error,
                )
            });
            match done {
                Ok(()) => tracing::debug!(
                    topic = &*flow.topic,
                    partition = flow.partition,
                    held = self.aligner.held(),
                    "{verb}d a partition for event-time alignment"
                ),
                Err(e) => tracing::warn!(
                    topic = &*flow.topic,
                    partition = flow.partition,
                    error = %e,
                    "could not {verb} a partition for event-time alignment"
                ),
            }
        }
        metrics::gauge!(m::ALIGN_PAUSED).set(self.aligner.paused() as f64);
    }

    /// Apply a new assignment to the engine: commit the batch in hand
    /// first (so no customer about to be dropped has uncommitted work),
    /// drop the customers of partitions no longer owned, and load back,
    /// once everything before is durable, those of partitions owned again.
    fn reassign(
        &mut self,
        batch: &mut Batch,
        now: tier_core::Timestamp,
    ) -> Result<(), StreamError> {
        let Some(partitions) = lock(&self.assignment).take() else {
            return Ok(());
        };
        // Every assigned partition is consumed again from the offsets
        // processed (the rebalance callback assigns them): what the aligner
        // held comes back.
        self.aligner.clear();
        self.apply_flow();
        let in_hand = std::mem::take(batch);
        self.submit(in_hand, None)?;
        let assigned = self.engine.assign(&mut batch.unit, &partitions);
        if !assigned.to_load.is_empty() {
            // Partitions new to this instance come with a backlog (from
            // their start when it never owned them, else from its own older
            // offset): as at start, time-driven decisions wait until the
            // probe finds every assigned partition consumed to its end, so
            // no customer of theirs is swept halfway through its history
            // (which would publish tier changes its previous owner never
            // made, under sequence numbers it already used).
            self.caught_up = false;
        }
        if assigned.evicted > 0 {
            tracing::info!(
                customers = assigned.evicted,
                "customers of partitions assigned elsewhere dropped from memory (their state stays in the store)"
            );
        }
        if assigned.to_load.is_empty() {
            return Ok(());
        }
        let durable = batch.barrier();
        let unit = std::mem::take(batch);
        self.submit(unit, None)?;
        durable
            .recv()
            .map_err(|_| StreamError::Stopped("the committer stopped during a rebalance".into()))?;
        let started = Instant::now();
        let mut loaded = Vec::new();
        for scope in &assigned.to_load {
            for item in self.deps.store.scan_scoped::<CustomerState>(Some(*scope)) {
                let (_, id, state) = item?;
                if self.engine.admit(id.clone(), state, *scope, now) {
                    loaded.push(id);
                }
            }
        }
        publish_views(
            self.observer.as_ref(),
            loaded
                .iter()
                .filter_map(|id| Some((id.as_str(), self.engine.customer(id)?))),
        );
        tracing::info!(
            customers = loaded.len(),
            partitions = ?assigned.to_load.iter().filter_map(|s| s.as_partition()).collect::<Vec<_>>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "customers of partitions assigned again loaded from the store"
        );
        Ok(())
    }

    /// An idle pipeline checks that it is caught up; see [`Probe`].
    fn probe_and_judge(&mut self) {
        match self.probe() {
            Probe::CaughtUp => {
                lock(&self.health).progress();
                if !self.caught_up && *lock(&self.assigned) {
                    tracing::debug!("caught up: time-driven decisions follow the processing clock");
                    self.caught_up = true;
                }
            }
            Probe::Lagging {
                topic,
                partition,
                position,
                end,
            } => {
                metrics::counter!(m::RETRIES, "op" => "consume", "reason" => "not_fetching")
                    .increment(1);
                tracing::debug!(
                    topic,
                    partition,
                    position,
                    end,
                    "records are waiting but none were consumed"
                );
                lock(&self.health).trouble("not_fetching");
            }
            Probe::Failed(e) => {
                let reason = kafka_reason(&e);
                metrics::counter!(m::RETRIES, "op" => "probe", "reason" => reason).increment(1);
                tracing::debug!(error = %e, "probing the assigned partitions failed");
                lock(&self.health).trouble(reason);
            }
        }
        lock(&self.health).update();
    }

    fn probe(&self) -> Probe {
        let timeout = self.config.probe_timeout();
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => return Probe::Failed(e),
        };
        if assignment.count() == 0 {
            // Nothing to be behind on; is the cluster there at all?
            let topic = self.config.topics.first().map(String::as_str);
            return match self.consumer.fetch_metadata(topic, timeout) {
                Ok(_) => Probe::CaughtUp,
                Err(e) => Probe::Failed(e),
            };
        }
        let ends = match self.list_offsets(&assignment, Offset::End, timeout) {
            Ok(ends) => ends,
            Err(e) => return Probe::Failed(e),
        };
        // Where the consumer stands: librdkafka's application position
        // (which also moves past transaction markers), else ours.
        let mut at: HashMap<(String, i32), i64> = lock(&self.positions).clone();
        if let Ok(tpl) = self.consumer.position() {
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let p = at.entry((e.topic().to_owned(), e.partition())).or_insert(o);
                    *p = (*p).max(o);
                }
            }
        }
        let mut unknown = Tpl::new();
        for ((topic, partition), end) in &ends {
            if !at.contains_key(&(topic.clone(), *partition)) && *end > 0 {
                let _ = unknown.add_partition_offset(topic, *partition, Offset::Beginning);
            }
        }
        if unknown.count() > 0 {
            // Never consumed: behind only if the log holds records.
            match self.list_offsets(&unknown, Offset::Beginning, timeout) {
                Ok(starts) => at.extend(starts),
                Err(e) => return Probe::Failed(e),
            }
        }
        for ((topic, partition), end) in ends {
            let position = at.get(&(topic.clone(), partition)).copied().unwrap_or(0);
            if position < end {
                return Probe::Lagging {
                    topic,
                    partition,
                    position,
                    end,
                };
            }
        }
        Probe::CaughtUp
    }

    /// The start or end offsets of `partitions`, one request per leader.
    fn list_offsets(
        &self,
        partitions: &Tpl,
        which: Offset,
        timeout: Duration,
    ) -> Result<Vec<PartitionOffset>, KafkaError> {
        let mut query = Tpl::new();
        for e in partitions.elements() {
            query.add_partition_offset(e.topic(), e.partition(), which)?;
        }
        let answer = self.consumer.offsets_for_times(query, timeout)?;
        let mut out = Vec::with_capacity(answer.count());
        for e in answer.elements() {
            e.error()?;
            match e.offset() {
                Offset::Offset(o) => out.push(((e.topic().to_owned(), e.partition()), o)),
                other => {
                    tracing::debug!(topic = e.topic(), partition = e.partition(), offset = ?other, "no offset in the ListOffsets answer");
                    return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::InvalidArgument));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn health(stall_after: Duration) -> (Health, watch::Receiver<PipelineStatus>) {
        let (tx, rx) = watch::channel(PipelineStatus::Starting);
        (Health::new(Arc::new(tx), stall_after), rx)
    }

    /// What the read side was told, in order.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<Result<Vec<String>, &'static str>>>);

    impl CommitObserver for Recorded {
        fn committed(&self, customers: &[(&str, &CustomerState)]) {
            let ids = customers.iter().map(|(id, _)| (*id).to_owned()).collect();
            lock(&self.0).push(Ok(ids));
        }

        fn filled(&self) {
            lock(&self.0).push(Err("filled"));
        }
    }

    #[test]
    fn the_start_up_fill_publishes_every_customer_in_chunks_then_says_filled_once() {
        let policy = Arc::new(tier_core::policy::Policy::default_policy());
        let n = VIEW_CHUNK + 3;
        let states = (0..n).map(|i| (format!("c{i:06}"), CustomerState::default()));
        let engine = Engine::new(policy, states, tier_core::Timestamp::from_millis(0));
        let observer = Recorded::default();
        fill_read_side(&observer, &engine);
        let calls = std::mem::take(&mut *lock(&observer.0));
        let (last, chunks) = calls.split_last().unwrap();
        assert_eq!(*last, Err("filled"), "filled comes last");
        let sizes: Vec<usize> = chunks
            .iter()
            .map(|c| c.as_ref().map(Vec::len).unwrap())
            .collect();
        assert_eq!(sizes, [VIEW_CHUNK, 3], "chunks, then filled once");
        let mut ids: Vec<String> = chunks.iter().flat_map(|c| c.clone().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "every customer, once");
    }

    #[test]
    fn starting_until_assigned_even_in_trouble() {
        let (mut h, rx) = health(Duration::ZERO);
        h.trouble("transport");
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Starting);
        h.started = true;
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Stalled);
    }

    #[test]
    fn stalls_only_after_stall_after_and_recovers_on_progress() {
        let (mut h, rx) = health(Duration::from_millis(50));
        h.started = true;
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Ready);
        h.trouble("all_brokers_down");
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Ready, "not yet");
        std::thread::sleep(Duration::from_millis(60));
        // A later error does not restart the clock.
        h.trouble("transport");
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Stalled);
        h.progress();
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Ready);
    }

    #[test]
    fn a_failed_attempt_counts_from_its_start() {
        let (mut h, rx) = health(Duration::from_millis(50));
        h.started = true;
        let began = Instant::now();
        std::thread::sleep(Duration::from_millis(60));
        h.trouble_since(began, "timed_out");
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Stalled);
    }

    #[test]
    fn a_caught_up_source_does_not_hide_a_commit_that_keeps_failing() {
        let (mut h, rx) = health(Duration::from_millis(50));
        h.started = true;
        let began = Instant::now();
        h.commit_failed(began, "dead_letter");
        std::thread::sleep(Duration::from_millis(60));
        // The source keeps consuming and finds itself caught up.
        h.progress();
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Stalled);
        h.committed();
        h.update();
        assert_eq!(*rx.borrow(), PipelineStatus::Ready);
    }

    #[test]
    fn probe_cadence_follows_stall_after() {
        let mut c = PipelineConfig::new("b", vec![]);
        assert_eq!(c.stall_after, Duration::from_secs(10));
        assert_eq!(c.probe_every(), Duration::from_millis(2500));
        assert_eq!(c.probe_timeout(), Duration::from_secs(2));
        c.stall_after = Duration::from_millis(1500);
        assert_eq!(c.probe_every(), Duration::from_millis(375));
        assert_eq!(c.probe_timeout(), Duration::from_millis(750));
    }
}

//! The ingest pipeline: Kafka records in, one atomic commit per batch out.
//!
//! Runs on a dedicated OS thread with a `BaseConsumer`, so a batch is
//! decoded, folded and committed without crossing tasks, and per-partition
//! order is kept by construction (records are handled in poll order).
//!
//! Per batch:
//! 1. poll up to `batch_max_records` records or `batch_max_wait`;
//! 2. decode and validate each at once into an owned domain event; invalid
//!    ones are queued for the dead-letter topic;
//! 3. fold valid events into the in-memory customer states (all customers
//!    are kept in memory; sled is the durable copy) and collect tier changes;
//! 4. deliver dead letters and wait for the broker's acknowledgement; if
//!    that fails the batch is not committed and is retried (the partition
//!    does not advance past a record it could not park); a retry re-sends
//!    only the dead letters the broker has not acknowledged yet;
//! 5. commit ONE store batch: the touched customers (once each), the next
//!    offset of every partition touched, and the tier changes as outbox rows;
//! 6. publish the new views, wake the outbox publisher, commit offsets to
//!    Kafka for lag monitoring only.
//!
//! On every partition assignment the consumer starts from the offsets the
//! pipeline has processed (equal to the stored ones after a restart);
//! Kafka's committed offsets are never read. A stored offset beyond the
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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList as Tpl};
use tier_core::state::{CustomerState, TierChange};
use tier_core::{InvalidEvent, ValidationLimits};
use tier_engine::command::{Command, Reply};
use tier_engine::{ActivePolicy, Engine, PolicyHandle, PolicyStatus, Unit};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::client::client_config;
use crate::clock::{Clock, MonotonicNow};
use crate::error::StreamError;
use crate::metrics as m;
use tier_store::{CommitBatch, Store};
use tier_wire::at_risk::encode_at_risk_row;
use tier_wire::decode::Decoder;
use tier_wire::tier_changed::encode_row;

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
    pub session_timeout_ms: u32,
    /// Extra librdkafka settings for consumer and DLQ producer.
    pub kafka: Vec<(String, String)>,
    pub limits: ValidationLimits,
    /// How long the pipeline may fail to make progress (consumer errors,
    /// unreachable leaders, records it cannot fetch, dead letters or
    /// commits that keep failing) before its status turns `Stalled`.
    pub stall_after: Duration,
    /// Sweep due customers once caught up (time-driven decisions).
    pub time_sweeps: bool,
    /// Most customers swept, and most rescored, between two batches.
    pub slice: usize,
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
            session_timeout_ms: 10_000,
            kafka: Vec::new(),
            limits: ValidationLimits::default(),
            stall_after: Duration::from_secs(10),
            time_sweeps: true,
            slice: 5_000,
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

/// How long a cancelled pipeline keeps retrying the batch in hand before it
/// stops with the batch uncommitted.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

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

/// Told about every committed batch (the API's read model listens).
pub trait CommitObserver: Send + Sync + 'static {
    /// `customers` were durably committed (each carries the instant of
    /// its own last decision).
    fn committed(&self, customers: &[(&str, &CustomerState)]);
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

/// Application record holding the policy in force (its TOML text).
pub const META_POLICY: &str = "policy";
/// Application record: SHA-256 of the `--policy` file it came from.
pub const META_POLICY_SOURCE: &str = "policy.source";

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
            let health = Health::new(status_tx.clone(), config.stall_after);
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
    /// reason (a bounded label).
    trouble: Option<(Instant, &'static str)>,
}

impl Health {
    fn new(tx: Arc<watch::Sender<PipelineStatus>>, stall_after: Duration) -> Self {
        Self {
            tx,
            current: PipelineStatus::Starting,
            stall_after,
            started: false,
            trouble: None,
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
        let next = match self.trouble {
            _ if !self.started => PipelineStatus::Starting,
            Some((since, _)) if since.elapsed() >= self.stall_after => PipelineStatus::Stalled,
            _ => PipelineStatus::Ready,
        };
        if next == self.current {
            return;
        }
        match (self.current, next, self.trouble) {
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
fn kafka_reason(e: &KafkaError) -> &'static str {
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
    /// The reason of a client error event not yet seen by the pipeline.
    client_error: Arc<Mutex<Option<&'static str>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientContext for IngestContext {
    /// librdkafka statistics (every few seconds): consumer lag per partition.
    fn stats(&self, stats: rdkafka::Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
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

/// A record that failed validation, kept whole for the dead-letter topic.
struct DeadLetter {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    error: InvalidEvent,
    /// The broker acknowledged it (a retry does not send it again).
    delivered: bool,
}

/// A reply to send once the batch is durable.
enum PendingReply {
    Override(
        Reply<tier_engine::command::OverrideOutcome>,
        Option<Box<TierChange>>,
    ),
    Policy(Reply<PolicyStatus>),
}

struct Batch {
    records: usize,
    /// What the engine changed: customers, tier changes, at-risk notices.
    unit: Unit,
    dead: Vec<DeadLetter>,
    /// Next offset per partition.
    offsets: BTreeMap<(String, i32), i64>,
    /// Records per (topic, event type), for the metrics at commit.
    consumed: Vec<(String, &'static str, u64)>,
    /// Replies to commands applied in this batch.
    replies: Vec<PendingReply>,
    /// A policy applied in this batch, recorded with it.
    policy: Option<Arc<ActivePolicy>>,
}

/// Count one record of `topic` and `kind` (a handful of distinct pairs per
/// batch, so a linear scan beats hashing; no allocation after the first).
fn count_consumed(counts: &mut Vec<(String, &'static str, u64)>, topic: &str, kind: &'static str) {
    match counts.iter_mut().find(|(t, k, _)| t == topic && *k == kind) {
        Some((_, _, n)) => *n += 1,
        None => counts.push((topic.to_owned(), kind, 1)),
    }
}

/// Set `key`'s value, cloning the key only when it is new.
fn set_next<K: Ord + Clone>(map: &mut BTreeMap<K, i64>, key: &K, next: i64) {
    match map.get_mut(key) {
        Some(v) => *v = next,
        None => {
            map.insert(key.clone(), next);
        }
    }
}

impl Batch {
    fn new() -> Self {
        Self {
            records: 0,
            unit: Unit::new(),
            dead: Vec::new(),
            offsets: BTreeMap::new(),
            consumed: Vec::new(),
            replies: Vec::new(),
            policy: None,
        }
    }

    /// Whether there is anything to commit.
    fn has_work(&self) -> bool {
        self.records > 0
            || !self.unit.is_empty()
            || !self.unit.changes.is_empty()
            || !self.replies.is_empty()
            || self.policy.is_some()
    }
}

/// Why finishing a batch failed: the error, and bounded labels for the
/// retry counter.
struct Failure {
    error: StreamError,
    op: &'static str,
    reason: &'static str,
}

impl Failure {
    fn dead_letter(error: StreamError, reason: &'static str) -> Self {
        Self {
            error,
            op: "dead_letter",
            reason,
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
    observer: Arc<dyn CommitObserver>,
    consumer: BaseConsumer<IngestContext>,
    dlq: FutureProducer,
    dlq_config: ClientConfig,
    decoder: Decoder,
    engine: Engine,
    /// The consumer has been seen at the end of every assigned partition
    /// since the last full batch: time-driven decisions may go up to the
    /// processing clock (while catching up they wait, so a customer is not
    /// swept for want of events still in the backlog).
    caught_up: bool,
    last_probe: Instant,
    positions: Positions,
    resets: Arc<Mutex<Vec<(String, i32, i64)>>>,
    assigned: Arc<Mutex<bool>>,
    client_error: Arc<Mutex<Option<&'static str>>>,
    tier_counts: BTreeMap<String, i64>,
    now: MonotonicNow,
    report: PipelineReport,
    health: Health,
    /// When the pipeline last consumed a record or probed its partitions.
    last_activity: Instant,
}

impl<S: Store + 'static> Pipeline<S> {
    fn start(
        config: PipelineConfig,
        deps: PipelineDeps<S>,
        observer: Arc<dyn CommitObserver>,
        mut health: Health,
    ) -> Result<Self, StreamError> {
        health.update();
        let started = Instant::now();
        // Warm the engine from the store.
        let mut states = Vec::new();
        for item in deps.store.scan_customers::<CustomerState>() {
            states.push(item?);
        }
        let mut clock_now = MonotonicNow::new();
        let now = clock_now.now(deps.clock.as_ref());
        let engine = Engine::new(deps.policy.policy(), states, now);
        {
            let all: Vec<(&str, &CustomerState)> = engine.customers().collect();
            observer.committed(&all);
        }
        let status = engine.status();
        if status.rescoring {
            tracing::info!(
                version = %status.version,
                customers = status.total,
                "customers decided under another policy version: rescoring them in the background"
            );
        }
        deps.policy.set_status(status);
        let mut tier_counts = BTreeMap::new();
        for (_, s) in engine.customers() {
            if let Some(a) = &s.effective {
                *tier_counts.entry(a.tier.clone()).or_insert(0) += 1;
            }
        }
        let positions: Positions = Arc::new(Mutex::new(
            deps.store
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
        let client_error = Arc::new(Mutex::new(None));
        let ctx = IngestContext {
            positions: positions.clone(),
            resets: resets.clone(),
            assigned: assigned.clone(),
            client_error: client_error.clone(),
        };
        let session_timeout = config.session_timeout_ms.to_string();
        let mut consumer_defaults = vec![
            ("group.id", config.group_id.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", session_timeout.as_str()),
            ("enable.partition.eof", "false"),
            ("topic.metadata.refresh.interval.ms", "10000"),
            ("statistics.interval.ms", "5000"),
        ];
        if let Some(id) = &config.group_instance_id {
            consumer_defaults.push(("group.instance.id", id.as_str()));
        }
        let cc = client_config(&config.brokers, &consumer_defaults, &config.kafka);
        let consumer: BaseConsumer<IngestContext> = cc
            .create_with_context(ctx)
            .map_err(|e| StreamError::Kafka(format!("could not create the consumer: {e}")))?;
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
            &config.kafka,
        );
        let dlq = create_dlq_producer(&dlq_config)?;
        let decoder = Decoder::new(deps.policy.policy().currency_rules().clone(), config.limits);
        Ok(Self {
            config,
            deps,
            observer,
            consumer,
            dlq,
            dlq_config,
            decoder,
            engine,
            caught_up: false,
            last_probe: Instant::now(),
            positions,
            resets,
            assigned,
            client_error,
            tier_counts,
            now: clock_now,
            report: PipelineReport::default(),
            health,
            last_activity: Instant::now(),
        })
    }

    fn run(&mut self) -> Result<PipelineReport, StreamError> {
        loop {
            let cancelled = self.deps.cancel.is_cancelled();
            let mut batch = Batch::new();
            if !cancelled {
                self.fill(&mut batch)?;
            }
            if *lock(&self.assigned) {
                self.health.started = true;
            }
            let full = batch.records >= self.config.batch_max_records;
            if full {
                self.caught_up = false;
            }
            if batch.records > 0 {
                self.health.progress();
                self.last_activity = Instant::now();
            }
            self.health.update();
            if !cancelled {
                self.between_batches(&mut batch);
            }
            self.engine.seal(&batch.unit);
            let has_work = batch.has_work() || !lock(&self.resets).is_empty();
            if has_work && !self.finish_batch(batch)? {
                // Cancelled while the batch could not be committed.
                break;
            }
            if self.caught_up && self.config.time_sweeps {
                let now = self.now.now(self.deps.clock.as_ref());
                if self.engine.next_due().is_none_or(|d| d > now) {
                    metrics::gauge!(m::SWEEP_BACKLOG).set(0.0);
                    self.deps.swept_to.send_if_modified(|t| {
                        let moved = *t != Some(now);
                        *t = Some(now);
                        moved
                    });
                }
            }
            if !has_work && self.engine.status() != self.deps.policy.status() {
                // A rescore can finish without a commit of its own (the
                // last customers were rescored, and committed, ahead of
                // the queue by sweeps or events).
                self.deps.policy.set_status(self.engine.status());
                metrics::gauge!(m::POLICY_RESCORE_PROGRESS).set(1.0);
            }
            if cancelled {
                break;
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
        tracing::info!(
            records = self.report.records,
            batches = self.report.batches,
            uncommitted = self.report.uncommitted,
            "ingest stopped"
        );
        Ok(self.report.clone())
    }

    /// Between polls: apply waiting commands, a slice of a policy rescore
    /// and, once caught up, a slice of the due customers, all into the
    /// batch in hand (committed with it).
    fn between_batches(&mut self, batch: &mut Batch) {
        let now = self.now.now(self.deps.clock.as_ref());
        for _ in 0..64 {
            let Ok(command) = self.deps.commands.try_recv() else {
                break;
            };
            self.command(batch, command, now);
        }
        if self.engine.rescoring() {
            self.engine.rescore(&mut batch.unit, self.config.slice);
        }
        if self.caught_up && self.config.time_sweeps {
            let swept = self.engine.sweep(&mut batch.unit, now, self.config.slice);
            tracing::trace!(swept, next_due = ?self.engine.next_due(), now = %now, "sweep");
            if swept > 0 {
                metrics::counter!(m::SWEPT).increment(swept as u64);
            }
        }
    }

    fn command(&mut self, batch: &mut Batch, command: Command, now: tier_core::Timestamp) {
        let (kind, ok) = match command {
            Command::SetOverride { cmd, reply } => {
                let customer = cmd.customer_id.clone();
                match self.engine.set_override(&mut batch.unit, cmd, now) {
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
            } => match self.engine.clear_override(
                &mut batch.unit,
                &customer_id,
                &reason,
                &author,
                now,
            ) {
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
            Command::ApplyPolicy { policy, reply } => {
                tracing::info!(
                    version = policy.policy.version(),
                    hash = %policy.hash,
                    customers = self.engine.len(),
                    "applying a new policy; rescoring every customer in the background"
                );
                self.engine.apply_policy(policy.policy.clone(), now);
                self.decoder =
                    Decoder::new(policy.policy.currency_rules().clone(), self.config.limits);
                batch.policy = Some(policy);
                batch.replies.push(PendingReply::Policy(reply));
                ("apply_policy", true)
            }
            Command::DryRun {
                policy,
                sample,
                reply,
            } => {
                reply(self.engine.dry_run(&policy, now, sample));
                ("dry_run", true)
            }
        };
        metrics::counter!(m::COMMANDS, "kind" => kind, "outcome" => if ok { "ok" } else { "refused" })
            .increment(1);
    }

    /// Poll records into `batch` until it is full or the wait is over.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), StreamError> {
        let deadline = Instant::now() + self.config.batch_max_wait;
        let now = self.now.now(self.deps.clock.as_ref());
        // The partition of the previous record: records come in runs per
        // partition, so its key is allocated once per run, not per record.
        let mut current: (String, i32) = (String::new(), -1);
        while batch.records < self.config.batch_max_records {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.deps.cancel.is_cancelled() {
                break;
            }
            let Some(polled) = self.consumer.poll(left) else {
                break;
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
                    self.health.trouble(reason);
                    continue;
                }
            };
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            batch.records += 1;
            if current.1 != partition || current.0 != topic {
                current = (topic.to_owned(), partition);
            }
            set_next(&mut batch.offsets, &current, offset + 1);
            {
                let mut positions = lock(&self.positions);
                match positions.get_mut(&current) {
                    Some(v) => *v = offset + 1,
                    None => {
                        positions.insert(current.clone(), offset + 1);
                    }
                }
            }
            match self.decoder.decode(msg.key(), msg.payload(), now) {
                Ok(decoded) => {
                    let event = decoded.event;
                    count_consumed(&mut batch.consumed, topic, event.kind.type_name());
                    self.engine.fold(&mut batch.unit, &event);
                }
                Err(error) => {
                    count_consumed(&mut batch.consumed, topic, "invalid");
                    tracing::warn!(topic, partition, offset, reason = error.reason.as_str(), field = error.field, detail = %error.detail, "rejected record; dead-lettering it");
                    batch.dead.push(DeadLetter {
                        topic: topic.to_owned(),
                        partition,
                        offset,
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: msg.payload().map(<[u8]>::to_vec),
                        error,
                        delivered: false,
                    });
                }
            }
        }
        // A client error event whose poll result was not seen (cannot
        // happen with the current librdkafka bindings, but cheap to check).
        if let Some(reason) = lock(&self.client_error).take() {
            self.health.trouble(reason);
        }
        Ok(())
    }

    /// Dead-letter, commit, publish. Retries until it succeeds; the batch
    /// is committed whole or not at all, and never before its dead letters
    /// are acknowledged. Once the pipeline is cancelled, retries go on for
    /// [`CANCEL_GRACE`]; then the batch is left uncommitted (it is consumed
    /// again on the next start) and the pipeline stops cleanly.
    ///
    /// Returns whether the batch was committed.
    fn finish_batch(&mut self, mut batch: Batch) -> Result<bool, StreamError> {
        let mut backoff = Duration::from_millis(50);
        let mut cancelled_at: Option<Instant> = None;
        loop {
            let attempt_started = Instant::now();
            let attempt = match self.dead_letter(&mut batch.dead) {
                Ok(()) => self.commit(&mut batch).map_err(|error| Failure {
                    reason: retry_reason(&error),
                    error,
                    op: "commit",
                }),
                Err(f) => Err(f),
            };
            let failure = match attempt {
                Ok(()) => {
                    self.health.progress();
                    self.health.update();
                    return Ok(true);
                }
                Err(f) if f.error.is_transient() => f,
                Err(f) => return Err(f.error),
            };
            self.health.trouble_since(attempt_started, failure.reason);
            self.health.update();
            metrics::counter!(m::RETRIES, "op" => failure.op, "reason" => failure.reason)
                .increment(1);
            let undelivered = batch.dead.iter().filter(|d| !d.delivered).count();
            tracing::warn!(
                error = %failure.error,
                records = batch.records,
                dead_letters_pending = undelivered,
                retry_in_ms = backoff.as_millis() as u64,
                "batch not committed; its partitions do not advance; retrying"
            );
            if self.deps.cancel.is_cancelled() {
                let since = *cancelled_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= CANCEL_GRACE {
                    tracing::warn!(
                        records = batch.records,
                        error = %failure.error,
                        "stopping with the batch in hand uncommitted (no state, offset or outbox row of it was written); it will be consumed again on the next start"
                    );
                    self.report.uncommitted += batch.records as u64;
                    return Ok(false);
                }
            }
            if failure.op == "dead_letter" {
                self.repair_dlq_producer();
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// After a failed delivery: replace a producer that hit a fatal error,
    /// and refresh the dead-letter topic's metadata (a topic error such as
    /// an authorization failure is otherwise kept until the periodic
    /// refresh, minutes later).
    fn repair_dlq_producer(&mut self) {
        if let Some((code, reason)) = self.dlq.client().fatal_error() {
            tracing::warn!(error = %code, reason, "the dead-letter producer hit a fatal error; replacing it");
            match create_dlq_producer(&self.dlq_config) {
                Ok(p) => self.dlq = p,
                Err(e) => tracing::warn!(error = %e, "could not replace the dead-letter producer"),
            }
            return;
        }
        if let Err(e) = self
            .dlq
            .client()
            .fetch_metadata(Some(&self.config.dlq_topic), self.config.probe_timeout())
        {
            tracing::debug!(error = %e, "refreshing the dead-letter topic's metadata failed");
        }
    }

    /// Send the dead letters not yet acknowledged and wait for every
    /// acknowledgement, so that each outcome is known before a retry (no
    /// dead letter is sent twice within a run).
    fn dead_letter(&mut self, dead: &mut [DeadLetter]) -> Result<(), Failure> {
        let mut sent = Vec::new();
        let mut failure = None;
        for (i, d) in dead.iter().enumerate().filter(|(_, d)| !d.delivered) {
            let partition = d.partition.to_string();
            let offset = d.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "tierd-reason",
                    value: Some(d.error.reason.as_str()),
                })
                .insert(Header {
                    key: "tierd-field",
                    value: Some(d.error.field),
                })
                .insert(Header {
                    key: "tierd-detail",
                    value: Some(d.error.detail.as_str()),
                })
                .insert(Header {
                    key: "tierd-topic",
                    value: Some(d.topic.as_str()),
                })
                .insert(Header {
                    key: "tierd-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "tierd-offset",
                    value: Some(offset.as_str()),
                });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.config.dlq_topic).headers(headers);
            if let Some(k) = &d.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &d.payload {
                record = record.payload(p.as_slice());
            }
            match self.dlq.send_result(record) {
                Ok(fut) => sent.push((i, fut)),
                Err((e, _)) => {
                    // Stop sending, but still learn the fate of what was sent.
                    failure = Some(Failure::dead_letter(
                        StreamError::DeadLetter(format!(
                            "{}[{}]@{}: enqueue failed: {e}",
                            d.topic, d.partition, d.offset
                        )),
                        kafka_reason(&e),
                    ));
                    break;
                }
            }
        }
        for (i, fut) in sent {
            let d = &mut dead[i];
            match futures::executor::block_on(fut) {
                Ok(Ok(_)) => {
                    d.delivered = true;
                    metrics::counter!(m::EVENTS_REJECTED, "reason" => d.error.reason.as_str())
                        .increment(1);
                }
                Ok(Err((e, _))) => {
                    if failure.is_none() {
                        failure = Some(Failure::dead_letter(
                            StreamError::DeadLetter(format!(
                                "{}[{}]@{}: {e}",
                                d.topic, d.partition, d.offset
                            )),
                            kafka_reason(&e),
                        ));
                    }
                }
                Err(_) => {
                    if failure.is_none() {
                        failure = Some(Failure::dead_letter(
                            StreamError::DeadLetter("delivery cancelled".into()),
                            "cancelled",
                        ));
                    }
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// An idle pipeline checks that it is caught up; see [`Probe`].
    fn probe_and_judge(&mut self) {
        match self.probe() {
            Probe::CaughtUp => {
                self.health.progress();
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
                self.health.trouble("not_fetching");
            }
            Probe::Failed(e) => {
                let reason = kafka_reason(&e);
                metrics::counter!(m::RETRIES, "op" => "probe", "reason" => reason).increment(1);
                tracing::debug!(error = %e, "probing the assigned partitions failed");
                self.health.trouble(reason);
            }
        }
        self.health.update();
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

    fn commit(&mut self, batch: &mut Batch) -> Result<(), StreamError> {
        let started = Instant::now();
        let customers = self.engine.unit_customers(&batch.unit);
        let mut offsets: Vec<(&str, i32, i64)> = batch
            .offsets
            .iter()
            .map(|((t, p), o)| (t.as_str(), *p, *o))
            .collect();
        let resets = lock(&self.resets).clone();
        for (t, p, o) in &resets {
            if !batch.offsets.contains_key(&(t.clone(), *p)) {
                offsets.push((t.as_str(), *p, *o));
            }
        }
        let policy = self.engine.policy().clone();
        let mut outbox: Vec<Vec<u8>> = batch.unit.changes.iter().map(encode_row).collect();
        outbox.extend(
            batch
                .unit
                .at_risk
                .iter()
                .map(|r| encode_at_risk_row(r, &policy)),
        );
        let meta = match &batch.policy {
            Some(p) => vec![
                (META_POLICY, p.text.as_bytes().to_vec()),
                (META_POLICY_SOURCE, p.source_hash.as_bytes().to_vec()),
            ],
            None => Vec::new(),
        };
        let commit = CommitBatch {
            customers,
            offsets,
            outbox,
            meta,
        };
        let receipt = self.deps.store.commit(&commit)?;
        let customers = commit.customers;
        debug_assert_eq!(
            receipt.outbox_keys.end - receipt.outbox_keys.start,
            (batch.unit.changes.len() + batch.unit.at_risk.len()) as u64
        );
        lock(&self.resets).clear();
        let elapsed = started.elapsed();
        metrics::histogram!(m::BATCH_COMMIT_SECONDS).record(elapsed.as_secs_f64());
        metrics::histogram!(m::BATCH_SIZE).record(batch.records as f64);
        // Counted once per committed batch: the counters describe what
        // tierd durably processed, and the hot loop stays free of them.
        for (topic, kind, n) in &batch.consumed {
            metrics::counter!(m::EVENTS_CONSUMED, "topic" => topic.clone(), "type" => *kind)
                .increment(*n);
        }
        let unit = &batch.unit;
        for (kind, n) in &unit.applied_by_type {
            metrics::counter!(m::EVENTS_APPLIED, "type" => *kind).increment(*n);
        }
        metrics::counter!(m::EVENTS_DUPLICATE).increment(unit.duplicates);
        metrics::counter!(m::EVENTS_STALE).increment(unit.stale);

        for c in &unit.changes {
            if let Some(old) = &c.old_tier {
                *self.tier_counts.entry(old.clone()).or_insert(0) -= 1;
            }
            *self.tier_counts.entry(c.new_tier.clone()).or_insert(0) += 1;
            metrics::counter!(m::TIER_CHANGES, "from" => c.old_tier.clone().unwrap_or_else(|| "none".into()), "to" => c.new_tier.clone(), "cause" => c.cause.as_str()).increment(1);
        }
        for (tier, n) in &self.tier_counts {
            metrics::gauge!(m::CUSTOMERS_PER_TIER, "tier" => tier.clone()).set(*n as f64);
        }

        // Durable: now readers may see it, in this order: the metrics
        // above, the policy in force, the customers, the replies.
        if let Some(p) = batch.policy.take() {
            self.deps.policy.set(p);
        }
        let status = self.engine.status();
        let progress = if status.total == 0 {
            1.0
        } else {
            status.rescored as f64 / status.total as f64
        };
        metrics::gauge!(m::POLICY_RESCORE_PROGRESS).set(progress);
        self.deps.policy.set_status(status.clone());
        self.observer.committed(&customers);
        if !unit.changes.is_empty() || !unit.at_risk.is_empty() {
            self.deps.outbox_notify.notify_one();
        }
        if self.caught_up {
            metrics::gauge!(m::SWEEP_BACKLOG).set(
                self.engine
                    .due_count(self.now.now(self.deps.clock.as_ref())) as f64,
            );
        }
        if !unit.at_risk.is_empty() || unit.swept > 0 {
            metrics::gauge!(m::AT_RISK).set(self.engine.at_risk_count() as f64);
        }
        for r in batch.replies.drain(..) {
            match r {
                PendingReply::Override(reply, change) => reply(Ok(change.map(|c| *c))),
                PendingReply::Policy(reply) => reply(status.clone()),
            }
        }
        self.report.records += batch.records as u64;
        self.report.applied += unit.applied;
        self.report.rejected += batch.dead.len() as u64;
        self.report.batches += 1;
        self.kafka_bookkeeping(&batch.offsets);
        tracing::debug!(
            records = batch.records,
            customers = customers.len(),
            changes = unit.changes.len(),
            swept = unit.swept,
            rescored = unit.rescored,
            dead = batch.dead.len(),
            commit_ms = elapsed.as_millis() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// Commit offsets to Kafka for lag monitoring only (lag itself comes
    /// from librdkafka's statistics, see `IngestContext::stats`).
    fn kafka_bookkeeping(&self, offsets: &BTreeMap<(String, i32), i64>) {
        if offsets.is_empty() {
            return;
        }
        let mut tpl = Tpl::new();
        for ((t, p), o) in offsets {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "committing offsets to Kafka (monitoring only) failed");
        }
    }
}

fn create_dlq_producer(config: &ClientConfig) -> Result<FutureProducer, StreamError> {
    config
        .create()
        .map_err(|e| StreamError::Kafka(format!("could not create the dead-letter producer: {e}")))
}

fn retry_reason(e: &StreamError) -> &'static str {
    match e {
        StreamError::Store(_) => "store",
        StreamError::DeadLetter(_) => "dead_letter",
        StreamError::Kafka(_) | StreamError::Broker(_) => "kafka",
        StreamError::Stopped(_) => "stopped",
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

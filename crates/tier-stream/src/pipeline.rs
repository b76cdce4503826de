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
//!    does not advance past a record it could not park);
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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList as Tpl};
use tier_core::policy::Policy;
use tier_core::projection::Applied;
use tier_core::state::{CustomerState, TierChange};
use tier_core::{InvalidEvent, Timestamp, ValidationLimits};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, MonotonicNow};
use crate::decode::Decoder;
use crate::error::StreamError;
use crate::metrics as m;
use crate::outbox::encode_row;
use tier_store::{CommitBatch, Store};

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
        }
    }
}

/// Where the pipeline stands; drives the health service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    /// Loading state, joining the group.
    Starting,
    /// Partitions assigned, state loaded, batches committing.
    Ready,
    /// Cannot make progress (store or dead-letter failures); retrying.
    Stalled,
    Stopped,
}

/// Told about every committed batch (the API's read model listens).
pub trait CommitObserver: Send + Sync + 'static {
    /// `customers` were durably committed as of `now`.
    fn committed(&self, customers: &[(&str, &CustomerState)], now: Timestamp);
}

/// What the pipeline did, returned when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    pub records: u64,
    pub applied: u64,
    pub rejected: u64,
    pub batches: u64,
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

/// Everything the pipeline needs from the daemon.
#[derive(Debug)]
pub struct PipelineDeps<S> {
    pub store: Arc<S>,
    pub policy: Arc<Policy>,
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
    let thread = std::thread::Builder::new()
        .name("tierd-ingest".into())
        .spawn(move || {
            let result = Pipeline::start(config, deps, observer, &status_tx)
                .and_then(|mut p| p.run(&status_tx));
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

type Positions = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// Consumer context: assigns partitions at the pipeline's own offsets.
struct IngestContext {
    positions: Positions,
    /// Offsets reset on assignment, to be written with the next commit.
    resets: Arc<Mutex<Vec<(String, i32, i64)>>>,
    assigned: Arc<Mutex<bool>>,
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

    fn error(&self, error: KafkaError, reason: &str) {
        metrics::counter!(m::RETRIES, "op" => "kafka", "reason" => "client_error").increment(1);
        tracing::warn!(error = %error, reason, "kafka client error");
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
                tracing::info!(partitions = tpl.count(), "partitions assigned; resuming from tierd's stored offsets");
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assigning partitions failed");
                } else {
                    *lock(&self.assigned) = true;
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
                tracing::warn!(topic, partition, stored = next, log_end = high, log_start = low,
                    "stored offset is beyond the end of the log (new embedded log or recreated topic); consuming this log from its start");
                metrics::counter!(m::OFFSET_RESETS, "topic" => topic.to_owned(), "why" => "beyond_end").increment(1);
                lock(&self.resets).push((topic.to_owned(), partition, low));
                lock(&self.positions).insert((topic.to_owned(), partition), low);
                Offset::Offset(low)
            }
            Ok((low, _)) if next < low => {
                tracing::error!(topic, partition, stored = next, log_start = low,
                    "the log no longer holds the stored offset (retention); events in between are lost to tierd");
                metrics::counter!(m::OFFSET_RESETS, "topic" => topic.to_owned(), "why" => "before_start").increment(1);
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
}

struct Batch {
    records: usize,
    /// Customers touched, each once, in first-touch order.
    touched: Vec<String>,
    touched_set: std::collections::HashSet<String>,
    changes: Vec<TierChange>,
    dead: Vec<DeadLetter>,
    /// Next offset per partition.
    offsets: BTreeMap<(String, i32), i64>,
    applied: u64,
}

impl Batch {
    fn new() -> Self {
        Self {
            records: 0,
            touched: Vec::new(),
            touched_set: std::collections::HashSet::new(),
            changes: Vec::new(),
            dead: Vec::new(),
            offsets: BTreeMap::new(),
            applied: 0,
        }
    }
}

struct Pipeline<S> {
    config: PipelineConfig,
    deps: PipelineDeps<S>,
    observer: Arc<dyn CommitObserver>,
    consumer: BaseConsumer<IngestContext>,
    dlq: FutureProducer,
    decoder: Decoder,
    states: HashMap<String, CustomerState>,
    positions: Positions,
    resets: Arc<Mutex<Vec<(String, i32, i64)>>>,
    assigned: Arc<Mutex<bool>>,
    tier_counts: BTreeMap<String, i64>,
    now: MonotonicNow,
    report: PipelineReport,
}

impl<S: Store + 'static> Pipeline<S> {
    fn start(
        config: PipelineConfig,
        deps: PipelineDeps<S>,
        observer: Arc<dyn CommitObserver>,
        status: &watch::Sender<PipelineStatus>,
    ) -> Result<Self, StreamError> {
        let _ = status.send(PipelineStatus::Starting);
        let started = Instant::now();
        // Warm the in-memory state from the store.
        let mut states = HashMap::new();
        for item in deps.store.scan_customers::<CustomerState>() {
            let (id, state) = item?;
            states.insert(id, state);
        }
        let mut clock_now = MonotonicNow::new();
        let now = clock_now.now(deps.clock.as_ref());
        {
            let all: Vec<(&str, &CustomerState)> =
                states.iter().map(|(k, v)| (k.as_str(), v)).collect();
            observer.committed(&all, now);
        }
        let mut tier_counts = BTreeMap::new();
        for s in states.values() {
            if let Some(a) = &s.assignment {
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
            customers = states.len(),
            partitions = lock(&positions).len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state loaded"
        );
        let resets = Arc::new(Mutex::new(Vec::new()));
        let assigned = Arc::new(Mutex::new(false));
        let ctx = IngestContext {
            positions: positions.clone(),
            resets: resets.clone(),
            assigned: assigned.clone(),
        };
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set("enable.partition.eof", "false")
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set("statistics.interval.ms", "5000");
        if let Some(id) = &config.group_instance_id {
            cc.set("group.instance.id", id);
        }
        for (k, v) in &config.kafka {
            cc.set(k, v);
        }
        let consumer: BaseConsumer<IngestContext> = cc
            .create_with_context(ctx)
            .map_err(|e| StreamError::Kafka(format!("could not create the consumer: {e}")))?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| StreamError::Kafka(format!("could not subscribe to {topics:?}: {e}")))?;
        let mut pc = ClientConfig::new();
        pc.set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000");
        for (k, v) in &config.kafka {
            pc.set(k, v);
        }
        let dlq: FutureProducer = pc
            .create()
            .map_err(|e| StreamError::Kafka(format!("could not create the dead-letter producer: {e}")))?;
        let decoder = Decoder::new(deps.policy.currency_rules().clone(), config.limits);
        Ok(Self {
            config,
            deps,
            observer,
            consumer,
            dlq,
            decoder,
            states,
            positions,
            resets,
            assigned,
            tier_counts,
            now: clock_now,
            report: PipelineReport::default(),
        })
    }

    fn run(&mut self, status: &watch::Sender<PipelineStatus>) -> Result<PipelineReport, StreamError> {
        let mut current = PipelineStatus::Starting;
        let mut set_status = |s: PipelineStatus| {
            if current != s {
                current = s;
                let _ = status.send(s);
            }
        };
        loop {
            let cancelled = self.deps.cancel.is_cancelled();
            let mut batch = Batch::new();
            if !cancelled {
                self.fill(&mut batch)?;
            }
            if *lock(&self.assigned) {
                set_status(PipelineStatus::Ready);
            }
            if batch.records > 0 || !lock(&self.resets).is_empty() {
                self.finish_batch(batch, &mut set_status)?;
            }
            if cancelled {
                break;
            }
        }
        tracing::info!(records = self.report.records, batches = self.report.batches, "ingest stopped after committing its last batch");
        Ok(self.report.clone())
    }

    /// Poll records into `batch` until it is full or the wait is over.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), StreamError> {
        let deadline = Instant::now() + self.config.batch_max_wait;
        let now = self.now.now(self.deps.clock.as_ref());
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
                    metrics::counter!(m::RETRIES, "op" => "poll", "reason" => "kafka_error").increment(1);
                    tracing::warn!(error = %e, "poll failed");
                    continue;
                }
            };
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            batch.records += 1;
            batch
                .offsets
                .insert((topic.to_owned(), partition), offset + 1);
            lock(&self.positions).insert((topic.to_owned(), partition), offset + 1);
            match self.decoder.decode(msg.key(), msg.payload(), now) {
                Ok(decoded) => {
                    let event = decoded.event;
                    metrics::counter!(m::EVENTS_CONSUMED, "topic" => topic.to_owned(), "type" => event.kind.type_name()).increment(1);
                    let state = match self.states.get_mut(&event.customer_id) {
                        Some(s) => s,
                        None => self.states.entry(event.customer_id.clone()).or_default(),
                    };
                    let processed =
                        state.process(&event.customer_id, &event, &self.deps.policy, now);
                    match processed.applied {
                        Applied::Applied => {
                            batch.applied += 1;
                            metrics::counter!(m::EVENTS_APPLIED, "type" => event.kind.type_name()).increment(1);
                        }
                        Applied::Duplicate => metrics::counter!(m::EVENTS_DUPLICATE).increment(1),
                        Applied::Stale => metrics::counter!(m::EVENTS_STALE).increment(1),
                    }
                    if processed.applied == Applied::Applied
                        && !batch.touched_set.contains(&event.customer_id)
                    {
                        batch.touched_set.insert(event.customer_id.clone());
                        batch.touched.push(event.customer_id.clone());
                    }
                    if let Some(change) = processed.change {
                        batch.changes.push(change);
                    }
                }
                Err(error) => {
                    metrics::counter!(m::EVENTS_CONSUMED, "topic" => topic.to_owned(), "type" => "invalid").increment(1);
                    tracing::warn!(topic, partition, offset, reason = error.reason.as_str(), field = error.field, detail = %error.detail, "rejected record; dead-lettering it");
                    batch.dead.push(DeadLetter {
                        topic: topic.to_owned(),
                        partition,
                        offset,
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: msg.payload().map(<[u8]>::to_vec),
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    /// Dead-letter, commit, publish. Retries until it succeeds or the
    /// pipeline is cancelled (then the batch is dropped uncommitted and
    /// will be consumed again on the next start).
    fn finish_batch(
        &mut self,
        batch: Batch,
        set_status: &mut impl FnMut(PipelineStatus),
    ) -> Result<(), StreamError> {
        let mut backoff = Duration::from_millis(50);
        let mut dead_done = false;
        loop {
            let attempt = (|| {
                if !dead_done {
                    self.dead_letter(&batch.dead)?;
                    dead_done = true;
                }
                self.commit(&batch)
            })();
            match attempt {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    set_status(PipelineStatus::Stalled);
                    metrics::counter!(m::RETRIES, "op" => "commit_batch", "reason" => retry_reason(&e)).increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "batch not committed; retrying");
                    if self.deps.cancel.is_cancelled() && backoff >= Duration::from_secs(2) {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
        if *lock(&self.assigned) {
            set_status(PipelineStatus::Ready);
        }
        Ok(())
    }

    fn dead_letter(&self, dead: &[DeadLetter]) -> Result<(), StreamError> {
        if dead.is_empty() {
            return Ok(());
        }
        let mut futures = Vec::with_capacity(dead.len());
        for d in dead {
            let partition = d.partition.to_string();
            let offset = d.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "tierd-reason", value: Some(d.error.reason.as_str()) })
                .insert(Header { key: "tierd-field", value: Some(d.error.field) })
                .insert(Header { key: "tierd-detail", value: Some(d.error.detail.as_str()) })
                .insert(Header { key: "tierd-topic", value: Some(d.topic.as_str()) })
                .insert(Header { key: "tierd-partition", value: Some(partition.as_str()) })
                .insert(Header { key: "tierd-offset", value: Some(offset.as_str()) });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.config.dlq_topic).headers(headers);
            if let Some(k) = &d.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &d.payload {
                record = record.payload(p.as_slice());
            }
            let fut = self
                .dlq
                .send_result(record)
                .map_err(|(e, _)| StreamError::DeadLetter(format!("enqueue failed: {e}")))?;
            futures.push(fut);
        }
        for (fut, d) in futures.into_iter().zip(dead) {
            match futures::executor::block_on(fut) {
                Ok(Ok(_)) => {
                    metrics::counter!(m::EVENTS_REJECTED, "reason" => d.error.reason.as_str()).increment(1);
                }
                Ok(Err((e, _))) => {
                    return Err(StreamError::DeadLetter(format!(
                        "{}[{}]@{}: {e}",
                        d.topic, d.partition, d.offset
                    )));
                }
                Err(_) => return Err(StreamError::DeadLetter("delivery cancelled".into())),
            }
        }
        Ok(())
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StreamError> {
        let started = Instant::now();
        let now = self.now.now(self.deps.clock.as_ref());
        let customers: Vec<(&str, &CustomerState)> = batch
            .touched
            .iter()
            .filter_map(|id| self.states.get(id).map(|s| (id.as_str(), s)))
            .collect();
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
        let outbox: Vec<Vec<u8>> = batch.changes.iter().map(encode_row).collect();
        let commit = CommitBatch {
            customers,
            offsets,
            outbox,
        };
        let receipt = self.deps.store.commit(&commit)?;
        let customers = commit.customers;
        debug_assert_eq!(receipt.outbox_keys.end - receipt.outbox_keys.start, batch.changes.len() as u64);
        lock(&self.resets).clear();
        let elapsed = started.elapsed();
        metrics::histogram!(m::BATCH_COMMIT_SECONDS).record(elapsed.as_secs_f64());
        metrics::histogram!(m::BATCH_SIZE).record(batch.records as f64);

        self.observer.committed(&customers, now);
        if !batch.changes.is_empty() {
            self.deps.outbox_notify.notify_one();
        }
        for c in &batch.changes {
            if let Some(old) = &c.old_tier {
                *self.tier_counts.entry(old.clone()).or_insert(0) -= 1;
            }
            *self.tier_counts.entry(c.new_tier.clone()).or_insert(0) += 1;
            metrics::counter!(m::TIER_CHANGES, "from" => c.old_tier.clone().unwrap_or_else(|| "none".into()), "to" => c.new_tier.clone()).increment(1);
        }
        for (tier, n) in &self.tier_counts {
            metrics::gauge!(m::CUSTOMERS_PER_TIER, "tier" => tier.clone()).set(*n as f64);
        }
        self.report.records += batch.records as u64;
        self.report.applied += batch.applied;
        self.report.rejected += batch.dead.len() as u64;
        self.report.batches += 1;
        self.kafka_bookkeeping(&batch.offsets);
        tracing::debug!(records = batch.records, customers = customers.len(), changes = batch.changes.len(), dead = batch.dead.len(), commit_ms = elapsed.as_millis() as u64, "batch committed");
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

fn retry_reason(e: &StreamError) -> &'static str {
    match e {
        StreamError::Store(_) => "store",
        StreamError::DeadLetter(_) => "dead_letter",
        StreamError::Kafka(_) | StreamError::Broker(_) => "kafka",
        StreamError::Stopped(_) => "stopped",
    }
}

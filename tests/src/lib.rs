//! # tierd-tests: end-to-end test support
//!
//! A [`Sandbox`] gives each test its own Kafka-protocol broker (librdkafka's
//! mock cluster, in-process), its own topic names, consumer group and temp
//! data directory, and starts tierd in-process on port 0. Helpers publish
//! events in every wire format, read topics back, and wait for conditions
//! with a deadline instead of sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

pub mod fault;
pub mod testbroker;

pub use testbroker::TestBroker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tier_core::Event;
use tier_kafka::{Clock, EmbeddedBroker};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_wire::decode::{encode_confluent, encode_json, encode_protobuf, event_to_proto};
use tierd::{Config, Running};
use tonic::transport::Channel;

/// How an event is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Protobuf,
    Json,
    Confluent,
}

/// Encode a domain event (base currency CNY) for publishing.
pub fn encode(ev: &Event, wire: Wire) -> Vec<u8> {
    let msg = event_to_proto(ev, "CNY");
    match wire {
        Wire::Protobuf => encode_protobuf(&msg),
        Wire::Json => encode_json(&msg),
        Wire::Confluent => encode_confluent(&msg, 7),
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    /// An owned copy of a consumed message, headers as text.
    pub fn from_message(m: &impl Message) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|hd| {
                        (
                            hd.key.to_owned(),
                            String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A `TierChanged` record of the tier-changes topic (not one of the
    /// notices that share it: `TierAtRisk`, `ComplaintOverdue`).
    pub fn is_tier_changed(&self) -> bool {
        self.header("tierd-type").is_none_or(|t| t == "TierChanged")
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's world: a broker, topics, a data dir, and tierd.
pub struct Sandbox {
    pub broker: EmbeddedBroker,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub clock: Option<Arc<dyn Clock>>,
    producer: FutureProducer,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub const PARTITIONS: i32 = 4;

impl Sandbox {
    /// A fresh broker with this test's own topic names.
    pub fn new() -> Self {
        init_logging();
        let broker = EmbeddedBroker::start(1).expect("embedded broker");
        let dir = tempfile::tempdir().expect("temp dir");
        let p = unique("t");
        let config = Config {
            brokers: Some(broker.bootstrap_servers().to_owned()),
            data_dir: dir.path().join("data"),
            grpc_listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            ready_file: Some(dir.path().join("ready.json")),
            topics: ["orders", "payments", "complaints", "customers"]
                .iter()
                .map(|t| format!("{p}.{t}"))
                .collect(),
            dlq_topic: format!("{p}.dlq"),
            tier_changes_topic: format!("{p}.tier-changes"),
            group_id: format!("{p}.group"),
            group_instance_id: Some(format!("{p}.instance")),
            partitions: PARTITIONS,
            // The sandbox creates its topics on the broker directly.
            create_topics: false,
            batch_max_wait_ms: 20,
            // Sweeps right up to the stepped clock: the tests step it to
            // the instants they check (the grace has its own test).
            sweep_grace_ms: 0,
            stall_after_ms: 1_500,
            session_timeout_ms: 6_000,
            ..Config::default()
        };
        for t in config
            .topics
            .iter()
            .chain([&config.dlq_topic, &config.tier_changes_topic])
        {
            broker.create_topic(t, PARTITIONS).expect("create topic");
        }
        let producer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("linger.ms", "1")
            .create()
            .expect("producer");
        Self {
            broker,
            dir,
            config,
            running: None,
            clock: None,
            producer,
        }
    }

    pub fn orders_topic(&self) -> &str {
        &self.config.topics[0]
    }

    pub fn topic(&self, i: usize) -> &str {
        &self.config.topics[i]
    }

    /// Start tierd and wait until it is ready.
    pub async fn start(&mut self) -> &Running {
        assert!(self.running.is_none(), "tierd already running");
        let running = match &self.clock {
            Some(c) => tierd::start_with_clock(self.config.clone(), c.clone()).await,
            None => tierd::start(self.config.clone()).await,
        };
        let mut running = running.expect("tierd starts");
        running
            .ready(Duration::from_secs(60))
            .await
            .expect("tierd ready");
        self.running = Some(running);
        self.running.as_ref().unwrap()
    }

    /// Graceful stop; returns the run's pipeline report.
    pub async fn stop(&mut self) -> tier_kafka::PipelineReport {
        let running = self.running.take().expect("tierd running");
        running.shutdown();
        tokio::time::timeout(Duration::from_secs(60), running.wait())
            .await
            .expect("tierd stops in time")
            .expect("tierd stops cleanly")
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("tierd running")
    }

    pub async fn client(&self) -> TierServiceClient<Channel> {
        TierServiceClient::connect(format!("http://{}", self.running().grpc_addr))
            .await
            .expect("grpc connect")
    }

    /// One indicator of a customer as ExplainTier reports it; `None` while
    /// the customer is unknown.
    pub async fn indicator(&self, customer: &str, name: &str) -> Option<f64> {
        let ex = self
            .client()
            .await
            .explain_tier(tier_proto::api::ExplainTierRequest {
                customer_id: customer.into(),
            })
            .await
            .ok()?
            .into_inner();
        ex.indicators
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.value)
    }

    pub fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready.json")
    }

    /// Publish raw bytes and wait for the broker's acknowledgement.
    pub async fn publish_raw(&self, topic: &str, key: Option<&str>, payload: &[u8]) {
        let mut rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.producer
            .send(rec, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("publish");
    }

    /// Publish events keyed by customer, in order, in one wire format.
    pub async fn publish(&self, topic: &str, events: &[Event], wire: Wire) {
        let mut futs = Vec::with_capacity(events.len());
        let payloads: Vec<Vec<u8>> = events.iter().map(|e| encode(e, wire)).collect();
        for (e, p) in events.iter().zip(&payloads) {
            let rec = FutureRecord::to(topic)
                .key(e.customer_id.as_str())
                .payload(p.as_slice());
            futs.push(
                self.producer
                    .send_result(rec)
                    .map_err(|(e, _)| e)
                    .expect("enqueue"),
            );
        }
        for f in futs {
            f.await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }

    /// Read every record currently in `topic` (all partitions).
    pub fn read_topic(
        &self,
        topic: &str,
        expect_at_least: usize,
        timeout: Duration,
    ) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("group.id", unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut idle_since = Instant::now();
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    idle_since = Instant::now();
                    out.push(Record::from_message(&m));
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {
                    if out.len() >= expect_at_least && idle_since.elapsed() > Duration::from_secs(1)
                    {
                        break;
                    }
                }
            }
        }
        out
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs go to the test output; `RUST_LOG` filters (default: warnings).
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Poll `check` until it returns `Some`, or fail after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET a path from tierd's metrics endpoint.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    buf
}

// ---------------------------------------------------------------------------
// Fault-test support: frozen clocks, health, ordered publishing with
// offsets, consumption progress read from the group's committed offsets,
// and the in-process oracle.
// ---------------------------------------------------------------------------

/// The runtime of the tests that drive processes (two workers: the
/// machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A raw record to publish: topic, key, payload.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

impl RawRecord {
    /// An event keyed by its customer, encoded as binary protobuf.
    pub fn event(topic: &str, ev: &Event) -> Self {
        Self {
            topic: topic.to_owned(),
            key: Some(ev.customer_id.as_bytes().to_vec()),
            payload: encode(ev, Wire::Protobuf),
        }
    }
}

/// Publish `records` in order with `producer`; returns each record's
/// `(partition, offset)`. Waits for every acknowledgement (an idempotent
/// producer keeps per-partition order across broker outages).
pub async fn publish_records(producer: &FutureProducer, records: &[RawRecord]) -> Vec<(i32, i64)> {
    let mut futs = Vec::with_capacity(records.len());
    for r in records {
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&r.topic).payload(r.payload.as_slice());
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        futs.push(
            producer
                .send_result(rec)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    let mut out = Vec::with_capacity(futs.len());
    for f in futs {
        let delivery = f
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("delivered");
        out.push((delivery.partition, delivery.offset));
    }
    out
}

/// The default policy's fold of `events`, in order: what tierd must end up
/// with (decisions follow each customer's event time, whatever the
/// processing clock). Returns the states and how many events were applied
/// (not duplicates, not stale).
pub fn oracle(
    events: &[Event],
) -> (
    std::collections::BTreeMap<String, tier_core::state::CustomerState>,
    u64,
) {
    oracle_at(events, None)
}

/// [`oracle`], then every customer advanced to processing instant `now`
/// (what tierd's sweeper does once it has caught up).
pub fn oracle_at(
    events: &[Event],
    now: Option<tier_core::Timestamp>,
) -> (
    std::collections::BTreeMap<String, tier_core::state::CustomerState>,
    u64,
) {
    let policy = tier_core::policy::Policy::default_policy();
    let mut states = std::collections::BTreeMap::<String, tier_core::state::CustomerState>::new();
    let mut applied = 0;
    for ev in events {
        let state = states.entry(ev.customer_id.clone()).or_default();
        let p = state.process(&ev.customer_id, ev, &policy);
        if p.applied == tier_core::projection::Applied::Applied {
            applied += 1;
        }
    }
    // tierd stores a customer only once an event of it was applied.
    states.retain(|_, s| s.assignment.is_some());
    if let Some(now) = now {
        for (id, s) in &mut states {
            let _ = s.advance_to(id, &policy, now, usize::MAX);
        }
    }
    (states, applied)
}

/// Opens a (stopped) tierd's data dir with the backend that wrote it (the
/// fault harness's [`fault::check::test_store_backend`] for a dir not yet
/// created).
fn open_stored(data_dir: &std::path::Path) -> tier_store::AnyStore {
    let backend = tier_store::Backend::detect(data_dir)
        .unwrap_or_else(|| fault::check::test_store_backend().expect("TIERD_TEST_STORE_BACKEND"));
    tier_store::AnyStore::open(backend, data_dir, Default::default()).expect("open store")
}

/// Every customer state in a (stopped) tierd's data directory.
///
/// Each as tierd loads it: a customer a policy rescore confirmed without
/// rewriting it (see `tier_engine::confirmed`) with its confirmation
/// applied.
pub fn stored_states(
    data_dir: &std::path::Path,
) -> std::collections::BTreeMap<String, tier_core::state::CustomerState> {
    use tier_engine::confirmed::{Confirmed, META_CONFIRMED};
    use tier_store::Store as _;
    let store = open_stored(data_dir);
    let confirmed = store
        .meta(META_CONFIRMED)
        .expect("readable record")
        .and_then(|bytes| Confirmed::decode(&bytes));
    store
        .scan_scoped::<tier_core::state::CustomerState>(None)
        .map(|r| {
            let (scope, id, mut state) = r.expect("readable customer");
            if let Some(c) = &confirmed {
                c.apply(scope, &mut state);
            }
            (id, state)
        })
        .collect()
}

/// The next offset a (stopped) tierd stored for a partition.
pub fn stored_offset(data_dir: &std::path::Path, topic: &str, partition: i32) -> Option<i64> {
    use tier_store::Store as _;
    let store = open_stored(data_dir);
    store.offset(topic, partition).expect("readable offset")
}

impl Sandbox {
    /// A sandbox whose tierd runs on a clock frozen at `now`, without time
    /// sweeps: tiers move with events only, so the fold of the events is the
    /// oracle whatever arrives late (the time-driven behaviour has its own
    /// tests, `tiers_that_live.rs`).
    pub fn frozen_at(now: tier_core::Timestamp) -> Self {
        let mut sb = Self::new();
        sb.config.time_sweeps = false;
        sb.clock = Some(Arc::new(tier_kafka::ManualClock::new(now)));
        sb
    }

    /// An idempotent producer (order kept through retries and outages).
    pub fn ordered_producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .create()
            .expect("producer")
    }

    /// gRPC health of the whole server: `Some(true)` when SERVING,
    /// `Some(false)` for any other status, `None` when it does not answer.
    pub async fn serving(&self) -> Option<bool> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.running().grpc_addr))
                .ok()?
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await
                .ok()?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?
            .into_inner()
            .status;
        Some(status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    }

    /// Wait until the health service says `serving` (or not).
    pub async fn wait_serving(&self, serving: bool, timeout: Duration) {
        let what = if serving { "SERVING" } else { "NOT_SERVING" };
        wait_for(what, timeout, || async {
            (self.serving().await == Some(serving)).then_some(())
        })
        .await;
    }

    /// The end offset of every partition of the input topics.
    pub fn log_ends(&self) -> std::collections::BTreeMap<(String, i32), i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .create()
            .expect("consumer");
        let mut ends = std::collections::BTreeMap::new();
        for t in &self.config.topics {
            for p in 0..PARTITIONS {
                let (_, high) = consumer
                    .fetch_watermarks(t, p, Duration::from_secs(10))
                    .expect("watermarks");
                ends.insert((t.clone(), p), high);
            }
        }
        ends
    }

    /// The offsets tierd's group committed to Kafka (written right after
    /// each store commit, for monitoring).
    pub fn group_committed(&self) -> std::collections::BTreeMap<(String, i32), i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("group.id", &self.config.group_id)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in &self.config.topics {
            for p in 0..PARTITIONS {
                tpl.add_partition(t, p);
            }
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap_or_default();
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                _ => None,
            })
            .collect()
    }

    /// Wait until tierd has committed every record now in the input topics
    /// and, on a stepped clock, made every time-driven decision due by now
    /// (less the sweep grace).
    pub async fn wait_consumed(&self, timeout: Duration) {
        self.wait_committed(timeout).await;
        if let Some(clock) = self.clock.as_ref().filter(|_| self.config.time_sweeps) {
            let grace = i64::try_from(self.config.sweep_grace_ms).unwrap_or(i64::MAX);
            let horizon = tier_core::Timestamp::from_millis(clock.now().millis() - grace);
            self.running()
                .swept_to(horizon, timeout)
                .await
                .expect("the sweeper catches up");
        }
    }

    /// Wait until tierd has committed every record now in the input topics.
    pub async fn wait_committed(&self, timeout: Duration) {
        let ends = self.log_ends();
        wait_for("tierd to commit every published record", timeout, || {
            let committed = self.group_committed();
            let done = ends
                .iter()
                .all(|(tp, end)| *end == 0 || committed.get(tp).is_some_and(|c| c >= end));
            async move { done.then_some(()) }
        })
        .await;
    }
}

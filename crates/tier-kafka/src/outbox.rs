//! Tier changes out: the outbox publisher.
//!
//! The pipeline writes encoded `TierChanged` rows
//! ([`tier_wire::tier_changed::encode_row`]) into the store's outbox
//! in the same atomic batch as the state that produced them. The publisher
//! drains the outbox in order with an idempotent producer and deletes rows
//! only after the broker acknowledged them, so a crash re-sends (consumers
//! de-duplicate on `(customer_id, sequence)`) and never loses a change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use tier_proto::api;
use tier_wire::at_risk::{OutboxRecord, decode_outbox_row};
use tier_wire::tier_changed;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::client::client_config;
use crate::error::StreamError;
use crate::metrics as m;
use tier_store::Store;

/// How tier changes are encoded on the tier-changes topic. Outbox rows
/// always hold protobuf; JSON is produced at publish time
/// ([`tier_wire::tier_changed::encode_json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Protobuf,
    Json,
}

/// Settings of the publisher.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub brokers: String,
    pub topic: String,
    pub format: OutputFormat,
    /// Rows sent per round.
    pub batch: usize,
    /// Extra librdkafka settings.
    pub kafka: Vec<(String, String)>,
    /// Adds what only the read side knows to each `TierChanged` as it is
    /// published (the population gradings: ABC and RFM classes).
    pub enrich: Option<Enrich>,
}

/// A function completing a `TierChanged` at publication (see
/// [`PublisherConfig::enrich`]). The row in the outbox stays as committed;
/// a record published again after a crash is completed again, with the
/// population as it is then.
#[derive(Clone)]
pub struct Enrich(pub Arc<dyn Fn(&mut api::TierChanged) + Send + Sync>);

impl std::fmt::Debug for Enrich {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrich(..)")
    }
}

/// How far the outbox may be published: every row with a key below the
/// gate's limit is durable and its unit is in the read model, so a record
/// completed from the read model at publication ([`Enrich`]) sees the
/// state of its own unit. The pipeline opens it once the read model holds
/// what was stored at start, then after each unit the read side has.
#[derive(Debug, Default)]
pub struct OutboxGate(AtomicU64);

impl OutboxGate {
    /// Rows below `end` may be published.
    pub fn open_to(&self, end: u64) {
        self.0.fetch_max(end, Ordering::AcqRel);
    }

    /// Rows at or past this key wait.
    pub fn limit(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The rows of `rows` (oldest first) that `gate` lets through.
fn through_gate(mut rows: Vec<(u64, Vec<u8>)>, gate: Option<&OutboxGate>) -> Vec<(u64, Vec<u8>)> {
    if let Some(gate) = gate {
        let limit = gate.limit();
        rows.retain(|(key, _)| *key < limit);
    }
    rows
}

/// Drains the outbox to Kafka until `stop` is cancelled and the outbox is
/// empty (or `drain_timeout` passes after `stop`).
pub struct Publisher<S> {
    config: PublisherConfig,
    store: Arc<S>,
    /// Sends the full rounds of a backlog: waits `linger.ms` (5 ms) to
    /// fill its requests.
    producer: FutureProducer,
    /// Sends a round that holds every pending row (tierd keeping up):
    /// at once, `linger.ms` 0. Rounds are sent one after the other (each
    /// acknowledged before the next is read), so two producers keep the
    /// order one would.
    prompt: FutureProducer,
    notify: Arc<Notify>,
    /// `None`: every stored row may be published.
    gate: Option<Arc<OutboxGate>>,
    changes: broadcast::Sender<api::TierChanged>,
    /// When the whole outbox was last counted for the backlog gauge.
    counted_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often a publisher with a full round behind it counts the whole
/// outbox for the backlog gauge (counting is a scan of the outbox).
const COUNT_EVERY: Duration = Duration::from_secs(1);

impl<S> std::fmt::Debug for Publisher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Publisher<S> {
    pub fn new(
        config: PublisherConfig,
        store: Arc<S>,
        notify: Arc<Notify>,
        changes: broadcast::Sender<api::TierChanged>,
    ) -> Result<Self, StreamError> {
        // A live change waits for no other: the 5 ms linger held every
        // round's last record back, a fifth of the time from an event to
        // its `TierChanged` at 5,000 events/s (`tier-bench --only
        // freshness`: p50 about 36 ms with it, 28 without). A backlog's
        // full rounds keep it: one producer without it sent more, smaller
        // requests and cost a catch-up about 4% (`--only replay`).
        let create = |linger: &str| -> Result<FutureProducer, StreamError> {
            client_config(
                &config.brokers,
                &[
                    ("enable.idempotence", "true"),
                    ("acks", "all"),
                    ("linger.ms", linger),
                    ("message.timeout.ms", "30000"),
                ],
                &config.kafka,
            )
            .create()
            .map_err(|e| {
                StreamError::Kafka(format!("could not create the tier-changes producer: {e}"))
            })
        };
        let producer = create("5")?;
        let prompt = create("0")?;
        Ok(Self {
            config,
            store,
            producer,
            prompt,
            notify,
            gate: None,
            changes,
            counted_at: std::sync::Mutex::new(None),
        })
    }

    /// Publish only the rows `gate` lets through (see [`OutboxGate`]).
    #[must_use]
    pub fn with_gate(mut self, gate: Arc<OutboxGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Run until `stop` is cancelled, then drain what is left (bounded by
    /// `drain_timeout`).
    pub async fn run(self, stop: CancellationToken, drain_timeout: Duration) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.publish_round().await {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    if stop.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        () = self.notify.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        () = stop.cancelled() => {}
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    metrics::counter!(m::RETRIES, "op" => "publish_tier_changes").increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing tier changes failed; will retry");
                    if stop.is_cancelled() {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Drain after stop: the pipeline has committed its last batch.
        let deadline = tokio::time::Instant::now() + drain_timeout;
        while tokio::time::Instant::now() < deadline {
            match self.publish_round().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "draining the outbox failed; retrying until the drain timeout");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let _ = self.producer.flush(Duration::from_secs(5));
        let _ = self.prompt.flush(Duration::from_secs(5));
        match self.store.outbox_len() {
            Ok(0) => tracing::info!("outbox drained"),
            Ok(n) => tracing::warn!(
                backlog = n,
                "outbox not empty at shutdown; it will be published on the next start"
            ),
            Err(e) => tracing::warn!(error = %e, "could not read the outbox length at shutdown"),
        }
    }

    /// Send one round of rows; returns how many were published.
    async fn publish_round(&self) -> Result<usize, StreamError> {
        let rows = through_gate(
            self.store.outbox_pending(self.config.batch)?,
            self.gate.as_deref(),
        );
        // A round shorter than the batch saw every pending row: that is the
        // backlog. Behind a full round, count the outbox (a scan) at most
        // every COUNT_EVERY, not on every round of a catch-up.
        let every_pending = rows.len() < self.config.batch;
        if every_pending {
            metrics::gauge!(m::OUTBOX_BACKLOG).set(rows.len() as f64);
        } else {
            let mut counted = self
                .counted_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if counted.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
                metrics::gauge!(m::OUTBOX_BACKLOG).set(self.store.outbox_len()? as f64);
                *counted = Some(std::time::Instant::now());
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let producer = if every_pending {
            &self.prompt
        } else {
            &self.producer
        };
        let mut decoded = Vec::with_capacity(rows.len());
        let mut sends = Vec::with_capacity(rows.len());
        for (key, bytes) in &rows {
            let mut msg = match decode_outbox_row(bytes) {
                Ok(m) => m,
                Err(e) => {
                    // Only tierd writes these rows; an undecodable one is a
                    // defect. Keep it out of the way, loudly, but keep going.
                    tracing::error!(outbox_key = key, error = %e, "undecodable outbox row skipped");
                    continue;
                }
            };
            let enriched = match (&mut msg, &self.config.enrich) {
                (OutboxRecord::Changed(m), Some(enrich)) => {
                    (enrich.0)(m);
                    true
                }
                _ => false,
            };
            // Each record says what it is in a header; notices share the
            // topic so a consumer sees them in order with the changes of
            // the same customer.
            let kind = msg.type_name();
            let customer_id = msg.customer_id();
            let payload = match (&msg, self.config.format) {
                (OutboxRecord::Changed(m), OutputFormat::Protobuf) if enriched => {
                    Ok(m.encode_to_vec())
                }
                (OutboxRecord::Changed(_), OutputFormat::Protobuf) => Ok(bytes.clone()),
                (OutboxRecord::AtRisk(m), OutputFormat::Protobuf) => Ok(m.encode_to_vec()),
                (OutboxRecord::ComplaintOverdue(m), OutputFormat::Protobuf) => {
                    Ok(m.encode_to_vec())
                }
                (OutboxRecord::Changed(m), OutputFormat::Json) => tier_changed::encode_json(m),
                (OutboxRecord::AtRisk(m), OutputFormat::Json) => {
                    tier_changed::encode_json_as("tiering.v1.TierAtRisk", m)
                }
                (OutboxRecord::ComplaintOverdue(m), OutputFormat::Json) => {
                    tier_changed::encode_json_as("tiering.v1.ComplaintOverdue", m)
                }
            }
            .map_err(|e| StreamError::Kafka(format!("encoding a {kind} as JSON: {e}")))?;
            let mut headers = OwnedHeaders::new().insert(Header {
                key: "tierd-type",
                value: Some(kind),
            });
            if let OutboxRecord::Changed(m) = &msg
                && !m.traceparent.is_empty()
            {
                headers = headers.insert(Header {
                    key: tier_wire::trace::TraceParent::HEADER,
                    value: Some(m.traceparent.as_str()),
                });
            }
            let record = FutureRecord::to(&self.config.topic)
                .key(customer_id.as_bytes())
                .headers(headers)
                .payload(&payload);
            let fut = producer.send_result(record).map_err(|(e, _)| {
                StreamError::Kafka(format!("enqueue to {}: {e}", self.config.topic))
            })?;
            sends.push(fut);
            decoded.push((*key, msg));
        }
        let mut acked = Vec::with_capacity(decoded.len());
        let mut failure = None;
        for (fut, (key, msg)) in sends.into_iter().zip(decoded) {
            match fut.await {
                Ok(Ok(_)) => acked.push((key, msg)),
                Ok(Err((e, _))) => failure = Some(format!("broker refused a tier change: {e}")),
                Err(_) => failure = Some("delivery future cancelled".to_owned()),
            }
        }
        // Rows are deleted only after acknowledgement. A failed row stays and
        // is re-sent next round, possibly after later rows: consumers order
        // and de-duplicate by `(customer_id, sequence)`.
        let keys: Vec<u64> = acked.iter().map(|(k, _)| *k).collect();
        self.store.outbox_delete(&keys)?;
        let n = acked.len();
        metrics::counter!(m::OUTBOX_PUBLISHED).increment(n as u64);
        for (_, msg) in acked {
            if let OutboxRecord::Changed(msg) = msg {
                let _ = self.changes.send(msg);
            }
        }
        match failure {
            Some(f) => Err(StreamError::Kafka(f)),
            None => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(keys: &[u64]) -> Vec<(u64, Vec<u8>)> {
        keys.iter().map(|k| (*k, vec![])).collect()
    }

    fn keys(rows: &[(u64, Vec<u8>)]) -> Vec<u64> {
        rows.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn the_gate_holds_rows_until_their_unit_is_in_the_read_model() {
        let gate = OutboxGate::default();
        assert!(
            through_gate(rows(&[0, 1, 2]), Some(&gate)).is_empty(),
            "closed at first"
        );
        gate.open_to(2);
        assert_eq!(
            keys(&through_gate(rows(&[0, 1, 2, 3]), Some(&gate))),
            [0, 1]
        );
        gate.open_to(1);
        assert_eq!(gate.limit(), 2, "never closes again");
        gate.open_to(4);
        assert_eq!(keys(&through_gate(rows(&[2, 3, 4]), Some(&gate))), [2, 3]);
        assert_eq!(keys(&through_gate(rows(&[7, 8]), None)), [7, 8], "no gate");
    }

    /// Every record of `topic` until `n` were read (or a minute passed):
    /// `(customer, sequence)` in the order each partition holds them.
    fn read_changes(bootstrap: &str, topic: &str, group: &str, n: usize) -> Vec<(String, u64)> {
        use rdkafka::Message as _;
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut read = Vec::new();
        while read.len() < n && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let change = api::TierChanged::decode(m.payload().unwrap()).unwrap();
                assert_eq!(m.key(), Some(change.customer_id.as_bytes()));
                read.push((change.customer_id, change.sequence));
            }
        }
        read
    }

    /// The outbox row of `customer`'s change number `sequence`.
    fn change_row(customer: &str, sequence: u64) -> Vec<u8> {
        api::TierChanged {
            customer_id: customer.to_owned(),
            sequence,
            new_tier: "A".into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn changes_rows(customers: usize, sequences: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
        sequences
            .flat_map(|sequence| {
                (0..customers).map(move |c| change_row(&format!("c{c}"), sequence))
            })
            .collect()
    }

    fn commit_rows(store: &tier_store::MemStore, rows: Vec<Vec<u8>>) {
        let mut batch: tier_store::CommitBatch<'_, ()> = tier_store::CommitBatch::new();
        batch.outbox = rows;
        store.commit(&batch).unwrap();
    }

    /// A backlog of two full rounds and a partial one (sent by the
    /// lingering producer, then the prompt one), then live changes: each
    /// published once, every customer's in sequence order, and the outbox
    /// emptied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_and_then_live_changes_are_published_once_each_in_order() {
        let broker = crate::EmbeddedBroker::start(1).unwrap();
        let topic = "tier-changes-publisher";
        broker.create_topic(topic, 3).unwrap();
        let bootstrap = broker.bootstrap_servers().to_owned();
        let store = Arc::new(tier_store::MemStore::new());
        // 500 customers, five changes each: 2,500 rows.
        commit_rows(&store, changes_rows(500, 1..=5));
        let notify = Arc::new(Notify::new());
        let (changes, mut seen) = broadcast::channel(4096);
        let config = PublisherConfig {
            brokers: bootstrap.clone(),
            topic: topic.into(),
            format: OutputFormat::Protobuf,
            batch: 1000,
            kafka: Vec::new(),
            enrich: None,
        };
        let publisher =
            Publisher::new(config, Arc::clone(&store), Arc::clone(&notify), changes).unwrap();
        let stop = CancellationToken::new();
        let running = tokio::spawn(publisher.run(stop.clone(), Duration::from_secs(10)));

        let (b, t) = (bootstrap.clone(), topic.to_owned());
        let backlog = tokio::task::spawn_blocking(move || read_changes(&b, &t, "backlog", 2_500))
            .await
            .unwrap();
        assert_eq!(backlog.len(), 2_500);
        // Live: three more changes of c7, committed after the backlog.
        commit_rows(
            &store,
            (6..=8).map(|sequence| change_row("c7", sequence)).collect(),
        );
        notify.notify_one();
        let (b, t) = (bootstrap.clone(), topic.to_owned());
        let all = tokio::task::spawn_blocking(move || read_changes(&b, &t, "all", 2_503))
            .await
            .unwrap();
        stop.cancel();
        running.await.unwrap();

        assert_eq!(all.len(), 2_503, "every change, once");
        let mut by_customer: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
        for (customer, sequence) in &all {
            by_customer.entry(customer).or_default().push(*sequence);
        }
        assert_eq!(by_customer.len(), 500);
        for (customer, sequences) in &by_customer {
            let expected: Vec<u64> = if *customer == "c7" {
                (1..=8).collect()
            } else {
                (1..=5).collect()
            };
            assert_eq!(sequences, &expected, "{customer}: once each, in order");
        }
        assert_eq!(store.outbox_len().unwrap(), 0, "acknowledged rows deleted");
        let mut announced = 0;
        while seen.try_recv().is_ok() {
            announced += 1;
        }
        assert_eq!(announced, 2_503, "each change announced to the API once");
    }
}

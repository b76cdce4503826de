//! Publishing the workload: each event to its type's topic (the mapping of
//! `tierctl simulate`), keyed by customer id, in the protobuf wire format.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use tier_core::sim::Generator;
use tier_core::{Event, EventKind};
use tier_wire::decode::{encode_protobuf, event_to_proto};

/// Input topics, in tierd's default order.
pub(crate) const ORDERS: &str = "orders";
pub(crate) const PAYMENTS: &str = "payments";
pub(crate) const COMPLAINTS: &str = "complaints";
pub(crate) const CUSTOMERS: &str = "customers";
pub(crate) const INPUTS: [&str; 4] = [ORDERS, PAYMENTS, COMPLAINTS, CUSTOMERS];
/// tierd's outputs.
pub(crate) const DLQ: &str = "tierd.dlq";
pub(crate) const TIER_CHANGES: &str = "tier-changes";

/// The topic of an event, by its type (as `tierctl simulate` does).
pub(crate) fn topic_for(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::OrderPlaced { .. }
        | EventKind::OrderCancelled { .. }
        | EventKind::OrderReturned { .. } => ORDERS,
        EventKind::InvoiceIssued { .. }
        | EventKind::InvoiceCancelled { .. }
        | EventKind::InvoiceCredited { .. }
        | EventKind::PaymentReceived { .. } => PAYMENTS,
        EventKind::ComplaintOpened { .. } | EventKind::ComplaintResolved { .. } => COMPLAINTS,
        EventKind::ProfileUpdated(_) | EventKind::CustomerAssessed { .. } => CUSTOMERS,
    }
}

/// The record value of an event (base currency CNY, the default policy's).
pub(crate) fn encode(event: &Event) -> Vec<u8> {
    encode_protobuf(&event_to_proto(event, "CNY"))
}

/// Counts deliveries and failures.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// When kept (see [`stamped_producer`]): each acknowledged record's
    /// key and the instant its acknowledgement arrived.
    pub(crate) acks: Option<Mutex<Vec<Ack>>>,
}

/// An acknowledged record's key and when its acknowledgement arrived.
pub(crate) type Ack = (Vec<u8>, Instant);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Some(acks) = &self.acks
                    && let Ok(mut acks) = acks.lock()
                {
                    acks.push((m.key().unwrap_or_default().to_vec(), Instant::now()));
                }
                self.acked.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A producer that counts its deliveries.
pub(crate) fn producer(bootstrap: &str, linger_ms: u32) -> Result<BaseProducer<Deliveries>> {
    producer_with(bootstrap, linger_ms, Deliveries::default())
}

/// [`producer`] that keeps when each record was acknowledged (taken with
/// [`take_acks`]).
pub(crate) fn stamped_producer(
    bootstrap: &str,
    linger_ms: u32,
) -> Result<BaseProducer<Deliveries>> {
    let deliveries = Deliveries {
        acks: Some(Mutex::new(Vec::new())),
        ..Deliveries::default()
    };
    producer_with(bootstrap, linger_ms, deliveries)
}

/// The acknowledgements a [`stamped_producer`] kept: key, instant.
pub(crate) fn take_acks(producer: &BaseProducer<Deliveries>) -> Vec<Ack> {
    producer
        .context()
        .acks
        .as_ref()
        .and_then(|a| a.lock().ok().map(|mut v| std::mem::take(&mut *v)))
        .unwrap_or_default()
}

fn producer_with(
    bootstrap: &str,
    linger_ms: u32,
    deliveries: Deliveries,
) -> Result<BaseProducer<Deliveries>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "60000")
        .create_with_context(deliveries)
        .context("creating a producer")
}

/// Enqueue one record, waiting while the local queue is full.
pub(crate) fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e).with_context(|| format!("producing to {topic}")),
        }
    }
}

/// Wait until every record sent so far is acknowledged; fails on any
/// failed delivery.
pub(crate) fn finish(producer: &BaseProducer<Deliveries>, sent: u64) -> Result<()> {
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    let ctx = producer.context();
    let acked = ctx.acked.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 || acked != sent {
        bail!("{sent} records sent, {acked} acknowledged, {failed} failed");
    }
    Ok(())
}

/// What a backlog publication produced.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// Records per topic.
    pub(crate) per_topic: BTreeMap<String, u64>,
    pub(crate) total: u64,
    /// Bytes of record values.
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
}

/// Generate the workloads (one after the other) and publish all of them;
/// returns once every record is acknowledged.
pub(crate) fn publish_workloads(
    bootstrap: &str,
    workloads: &[tier_core::sim::Workload],
) -> Result<Backlog> {
    // Large message sets: the mock broker finds a fetch offset by a
    // linear scan over a partition's message sets, so many small sets
    // make every consumer (tierd and peers alike) slower.
    let producer = producer(bootstrap, 100)?;
    let started = Instant::now();
    let mut per_topic: BTreeMap<String, u64> =
        INPUTS.iter().map(|t| ((*t).to_owned(), 0)).collect();
    let mut total = 0u64;
    let mut bytes = 0u64;
    for event in workloads.iter().flat_map(Generator::new) {
        let topic = topic_for(&event.kind);
        let payload = encode(&event);
        send(&producer, topic, &event.customer_id, &payload)?;
        *per_topic.entry(topic.to_owned()).or_default() += 1;
        total += 1;
        bytes += payload.len() as u64;
        if total.is_multiple_of(4096) {
            producer.poll(Duration::ZERO);
        }
    }
    finish(&producer, total)?;
    Ok(Backlog {
        per_topic,
        total,
        bytes,
        elapsed: started.elapsed(),
    })
}

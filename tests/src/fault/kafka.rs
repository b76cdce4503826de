//! Kafka side of the fault harness: a paced producer that records where
//! every record landed, full topic reads, watermarks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::workload::Workload;
use crate::Record;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Landed {
    pub partition: i32,
    pub offset: i64,
}

/// Publish every record of `w` to `topics[record.topic]`, `rate` records
/// per second, in order (each slice is acknowledged before the next is
/// sent, and the producer is idempotent, so per-partition order is publish
/// order). `progress` counts acknowledged records. Returns where each
/// record landed, by record index.
pub async fn publish_paced(
    brokers: String,
    topics: Vec<String>,
    w: Arc<Workload>,
    rate: f64,
    progress: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<Landed>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .context("creating the workload producer")?;
    let started = Instant::now();
    let tick = Duration::from_millis(50);
    let mut landed = Vec::with_capacity(w.records.len());
    let mut next = 0usize;
    while next < w.records.len() {
        let due = ((started.elapsed().as_secs_f64() + tick.as_secs_f64()) * rate) as usize;
        let end = due.clamp(next + 1, w.records.len());
        let mut futures = Vec::with_capacity(end - next);
        for r in &w.records[next..end] {
            let mut rec: FutureRecord<'_, str, [u8]> = FutureRecord::to(&topics[r.topic]);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_str());
            }
            if let Some(p) = &r.payload {
                rec = rec.payload(p.as_slice());
            }
            let fut = loop {
                match producer.send_result(rec) {
                    Ok(f) => break f,
                    Err((_queue_full, back)) => {
                        // Let deliveries drain.
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            };
            futures.push(fut);
        }
        for (i, f) in futures.into_iter().enumerate() {
            let d = f
                .await
                .context("delivery cancelled")?
                .map_err(|(e, _)| e)
                .with_context(|| format!("publishing record {}", next + i))?;
            landed.push(Landed {
                partition: d.partition,
                offset: d.offset,
            });
        }
        next = end;
        progress.store(next, Ordering::SeqCst);
        let target = started + Duration::from_secs_f64(next as f64 / rate);
        if let Some(wait) = target.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait.min(tick)).await;
        }
    }
    Ok(landed)
}

fn consumer(brokers: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "tierd-fault-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating a reader")
}

/// `(low, high)` watermarks of every partition of `topic`.
pub fn watermarks(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<Vec<(i64, i64)>> {
    let c = consumer(brokers)?;
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}[{p}]"))
        })
        .collect()
}

/// Every record of `topic` up to its current high watermarks.
pub fn read_all(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<Vec<Record>> {
    let marks = watermarks(brokers, topic, partitions)?;
    let c = consumer(brokers)?;
    let mut tpl = TopicPartitionList::new();
    let mut left: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, (_, high)) in marks.iter().enumerate() {
        let p = p as i32;
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        if *high > 0 {
            left.insert(p, *high);
        }
    }
    c.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !left.is_empty() {
        if Instant::now() > deadline {
            bail!("reading {topic}: partitions {left:?} not read to their end in time");
        }
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.with_context(|| format!("reading {topic}"))?;
        if let Some(high) = left.get(&m.partition())
            && m.offset() + 1 >= *high
        {
            left.remove(&m.partition());
        }
        out.push(Record::from_message(&m));
    }
    Ok(out)
}

/// `tierd_consumer_lag` series from a `/metrics` text: `(topic, partition)
/// -> lag`.
pub fn consumer_lag(metrics_text: &str) -> BTreeMap<(String, i32), f64> {
    let mut out = BTreeMap::new();
    for line in metrics_text.lines() {
        let Some(rest) = line.strip_prefix("tierd_consumer_lag{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let mut topic = None;
        let mut partition = None;
        for kv in labels.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                let v = v.trim_matches('"');
                match k {
                    "topic" => topic = Some(v.to_owned()),
                    "partition" => partition = v.parse().ok(),
                    _ => {}
                }
            }
        }
        if let (Some(t), Some(p), Ok(v)) = (topic, partition, value.trim().parse::<f64>()) {
            out.insert((t, p), v);
        }
    }
    out
}

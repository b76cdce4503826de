//! The consume-only peer: a bare rdkafka `BaseConsumer` reading the whole
//! backlog from offset 0 and doing nothing else with the records (it
//! touches each payload's length so the read is not optimised away).
//!
//! Timed from the assignment (offsets from 0, no consumer group) to the
//! last record: the same window as the ingest figure (tierd's partitions
//! assigned to its last durable commit). From the first record to the last
//! would flatter it: librdkafka prefetches (up to 64 MB queued), so at
//! quick scale the first poll already returns with most of the backlog
//! fetched.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::broker::Broker;
use super::produce::INPUTS;

/// How long a reader may receive nothing before the records it still
/// expects count as lost.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A consumer assigned every partition of the input topics from offset 0
/// (no group rebalance: assignment is explicit), with librdkafka's default
/// fetch sizes and tierd's `fetch.wait.max.ms` in the suite (10 ms).
pub(crate) fn backlog_consumer(broker: &Broker, group: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // As for tierd: the mock broker holds an empty fetch for the whole
        // wait, where Kafka answers as soon as data arrives.
        .set("fetch.wait.max.ms", "10")
        // Once its local queue passed librdkafka's thresholds, a consumer
        // postpones the next fetch by `fetch.queue.backoff.ms` (1,000 ms by
        // default). A reader that empties the queue in a fraction of a
        // second then idles the rest of it: with the default, the bare
        // consumer read the backlog in 0.24 s or 1.2 s from its first
        // record from run to run. A short backoff measures what the broker
        // can deliver. (tierd is never starved by it: its queue holds
        // seconds of its work.)
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .context("creating the consumer")?;
    let mut tpl = TopicPartitionList::new();
    for topic in INPUTS {
        let partitions = *broker
            .topics
            .get(topic)
            .with_context(|| format!("topic {topic} missing"))?;
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .context("building the assignment")?;
        }
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    Ok(consumer)
}

/// What one read of the backlog measured.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    pub(crate) records: u64,
    /// From the moment the reader had its partitions (consumer assigned;
    /// tierd `Ready`: group joined, partitions assigned, state loaded) to
    /// the last record (or durable commit): the headline window.
    pub(crate) assigned_to_last: Duration,
    /// From the first record (or committed batch) to the last.
    pub(crate) first_to_last: Duration,
    /// Records counted at the first instant (left out of that rate).
    pub(crate) at_first: u64,
    /// From the start (client created; `tierd::start` called: store open,
    /// group join) to the last.
    pub(crate) start_to_last: Duration,
    /// tierd's runs: the note on where the headline window's CPU went
    /// (see `cpu`); `None` for the peers.
    pub(crate) cpu: Option<String>,
    /// tierd's runs: what its commits wrote (see `ingest::Writes`);
    /// `None` for the peers.
    pub(crate) writes: Option<String>,
}

/// `n` records over `d`, per second.
fn per_sec(n: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Timing {
    /// Records per second from assignment to the last: the figure.
    pub(crate) fn rate(&self) -> f64 {
        per_sec(self.records, self.assigned_to_last)
    }

    /// Records per second from the first to the last.
    pub(crate) fn rate_first_to_last(&self) -> f64 {
        per_sec(
            self.records.saturating_sub(self.at_first),
            self.first_to_last,
        )
    }

    /// Records per second from the start.
    pub(crate) fn rate_from_start(&self) -> f64 {
        per_sec(self.records, self.start_to_last)
    }
}

/// Read `expected` records; fails when fewer arrive (data loss) or more
/// (the count of the backlog is wrong).
pub(crate) fn consume_only(broker: &Broker, expected: u64) -> Result<Timing> {
    let started = Instant::now();
    let consumer = backlog_consumer(broker, "tier-bench-consume-only")?;
    let assigned = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0usize;
    let mut first = None;
    let mut last_seen = Instant::now();
    while count < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
                if first.is_none() {
                    first = Some(Instant::now());
                }
                last_seen = Instant::now();
            }
            Some(Err(e)) => return Err(e).context("consuming the backlog"),
            None if last_seen.elapsed() > IDLE_LIMIT => bail!(
                "read {count} of {expected} records, then nothing for {} s",
                IDLE_LIMIT.as_secs()
            ),
            None => {}
        }
    }
    let done = Instant::now();
    // Anything beyond the backlog would mean the count is wrong.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
        bail!(
            "read a record beyond the {expected} produced ({}/{} @ {})",
            m.topic(),
            m.partition(),
            m.offset()
        );
    }
    let first = first.unwrap_or(done);
    eprintln!("    consume-only: {count} records, {bytes} payload bytes");
    Ok(Timing {
        records: count,
        assigned_to_last: done - assigned,
        first_to_last: done - first,
        at_first: 1,
        start_to_last: done - started,
        cpu: None,
        writes: None,
    })
}

//! Freshness: how long after an event is produced its `TierChanged`
//! reaches a consumer of the tier-changes topic.
//!
//! tierd runs caught up with the backlog (its outbox drained). First, a
//! seed: one small order (1,000 CNY) for each of as many customers as the
//! run will send events, which gives each its first tier (D); tierd
//! commits them and drains its outbox before the clock starts. Then a
//! producer sends, at a steady 5,000 events/s for 10 s (quick) or 30 s,
//! one large order (10,000,000 CNY at a 25% margin) per seeded customer,
//! which lifts it across the band edges into the top tier: every timed
//! event causes exactly one `TierChanged`, matched by its
//! `causing_event_id`. Each event is stamped with the instant just before
//! it is handed to the producer (`linger.ms` 20, see below). Existing customers
//! crossing a band edge is the live case; a first version that made every
//! event a brand-new customer (2,500 new customers a second on top of the
//! 100,000 of the backlog) saw tierd fall behind after ~13 s.
//!
//! The clock starts once the seed's outbox is drained, not once tierd has
//! swept the customers the ingested backlog left due (its events end on
//! 2026-11-01, before any day the bench runs, so tens of thousands have
//! time-driven decisions waiting): the first seconds time live events
//! beside that sweep, as after any catch-up or at a business day's
//! start. The per-second line shows the sweep backlog beside the events
//! not yet committed, and the note the worst latency of each second.
//!
//! Why the timed producer lingers 20 ms ([`TIMED_LINGER_MS`]):
//! librdkafka's mock broker finds a fetch's offset by walking the
//! partition's message sets from the first (`rd_kafka_mock_msgset_find`:
//! "FIXME: Maintain an index"), where Kafka seeks an offset index. Every
//! fetch, tierd's and the watcher's, walks every set produced so far, on
//! the broker's one thread. With 5 ms linger the 5,000 events/s land as
//! about 3,000 sets of one or two records a second over the 16
//! partitions: over the 30 s the broker's CPU climbed from 20% to all of
//! a core, the broker's acknowledgement of an event alone reached a p99
//! of 2.5-4.6 s and the freshness p99 ranged from 80 ms to 7 s from run
//! to run, while tierd's own part (acknowledged to `TierChanged`
//! created) kept a p50 of 13-30 ms. At 20 ms the sets are four times
//! fewer and larger, and the broker's cost stays flat over the run. The
//! 20 ms of batching are part of every event's latency, so the figure
//! is if anything pessimistic for tierd. The stage split ([`Stages`])
//! and the broker's CPU each second are printed to show where a slow
//! run's time went.
//!
//! Why not 1 ms either: librdkafka's mock broker answers a
//! fetch with ONE message set per partition (a `FIXME` in its Fetch
//! handler), where Kafka returns up to `max.partition.fetch.bytes` of
//! them. With 1 ms linger the sets hold about one record, and a consumer
//! that falls behind once (a slow commit) can catch up by only one set per
//! partition per round trip: at full scale tierd never recovered and the
//! p99 grew past 20 s, an artefact of the mock, not of tierd.
//!
//! Latency = the instant a consumer (`BaseConsumer`, `fetch.wait.max.ms`
//! 10, assigned the tier-changes partitions at their high watermarks)
//! receives the `TierChanged` − the event's send instant, so it spans
//! producer batching, the broker, tierd's batch, durable commit, outbox
//! publish, broker and consumer fetch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tier_core::{Event, EventKind, Money, Timestamp};

use super::broker::Broker;
use super::ingest::{Metrics, Writes};
use super::produce::{self, ORDERS, TIER_CHANGES};

/// `linger.ms` of the timed events' producer (see the module docs).
const TIMED_LINGER_MS: u32 = 20;

/// What the freshness run measured.
#[derive(Debug)]
pub(crate) struct Freshness {
    pub(crate) sent: usize,
    /// Latencies of the matched events, milliseconds, sorted.
    pub(crate) latencies_ms: Vec<f64>,
    /// Achieved send rate.
    pub(crate) rate: f64,
    /// What tierd's own metrics say about the run's batches.
    pub(crate) batches: BatchStats,
    /// Where the matched events' time went (see [`Stages`]).
    pub(crate) stages: Stages,
    /// The worst latency of the events sent in each second of the run,
    /// `"a b c ..."` in milliseconds: where in the run the tail was.
    pub(crate) worst_by_second: String,
}

/// The freshness latency split at two instants: the broker's
/// acknowledgement of the event (the producer's delivery report) and the
/// `TierChanged` record's create time (set by tierd's producer when its
/// outbox publisher hands the record over, millisecond resolution).
///
/// - `to_broker`: sent to acknowledged (the load generator's producer,
///   the broker);
/// - `in_tierd`: acknowledged to the `TierChanged` created (tierd's fetch,
///   fold, durable commit and outbox publish);
/// - `back`: created to received (tierd's producer, the broker, the
///   watching consumer's fetch).
///
/// Each is a list of milliseconds, sorted.
#[derive(Debug, Default)]
pub(crate) struct Stages {
    pub(crate) to_broker: Vec<f64>,
    pub(crate) in_tierd: Vec<f64>,
    pub(crate) back: Vec<f64>,
}

impl Stages {
    /// `"to broker p50/p99 a/b ms, in tierd c/d ms, back e/f ms"`.
    pub(crate) fn describe(&self) -> String {
        let p =
            |v: &[f64], q| percentile(v, q).map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
        format!(
            "p50/p99 of each stage: to the broker's ack {}/{} ms, ack to TierChanged created (in tierd) {}/{} ms, created to received {}/{} ms",
            p(&self.to_broker, 0.5),
            p(&self.to_broker, 0.99),
            p(&self.in_tierd, 0.5),
            p(&self.in_tierd, 0.99),
            p(&self.back, 0.5),
            p(&self.back, 0.99),
        )
    }
}

/// tierd's batches during the run, from its histograms.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchStats {
    pub(crate) commits: f64,
    pub(crate) commit_seconds: f64,
    /// Commits that took longer than 100 ms (a stall of the store).
    pub(crate) slow_commits: f64,
    /// The batches and records (and what they wrote).
    pub(crate) writes: Writes,
}

impl BatchStats {
    fn read(m: &Metrics) -> Self {
        use tier_kafka::metrics::BATCH_COMMIT_SECONDS;
        Self {
            commits: m.sum(&format!("{BATCH_COMMIT_SECONDS}_count")),
            commit_seconds: m.sum(&format!("{BATCH_COMMIT_SECONDS}_sum")),
            slow_commits: m.sum(&format!("{BATCH_COMMIT_SECONDS}_count"))
                - m.bucket(BATCH_COMMIT_SECONDS, "0.1"),
            writes: m.writes(),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            commits: self.commits - before.commits,
            commit_seconds: self.commit_seconds - before.commit_seconds,
            slow_commits: self.slow_commits - before.slow_commits,
            writes: self.writes.since(before.writes),
        }
    }

    /// `"N commits (mean X ms, K over 100 ms), mean Y records a batch"`.
    pub(crate) fn describe(&self) -> String {
        let mean_ms = if self.commits > 0.0 {
            self.commit_seconds / self.commits * 1e3
        } else {
            0.0
        };
        format!(
            "tierd meanwhile: {} store commits (mean {mean_ms:.1} ms, {} over 100 ms), {:.0} records a batch",
            self.commits,
            self.slow_commits,
            self.writes.records_per_batch()
        )
    }
}

impl Freshness {
    /// Nearest-rank percentile (`q` in 0..=1) of the latencies.
    pub(crate) fn percentile(&self, q: f64) -> Option<f64> {
        percentile(&self.latencies_ms, q)
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Wall-clock now as an event time.
fn now_ts() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(ms)
}

/// The id of `customer`'s timed event (see [`event`]; a test checks
/// they agree).
fn timed_event_id(customer: &str) -> String {
    format!("{customer}-e2")
}

/// Customer `i`'s order: the seed (small) or the timed one (large).
fn event(prefix: &str, i: usize, large: bool) -> Event {
    let customer = format!("{prefix}-c{i}");
    let (n, amount) = if large {
        (2, 1_000_000_000) // 10,000,000 CNY
    } else {
        (1, 100_000) // 1,000 CNY
    };
    Event {
        event_id: format!("{customer}-e{n}"),
        occurred_at: now_ts(),
        source: "tier-bench".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("{customer}-o{n}"),
            amount: Money(amount),
            cost: Some(Money(amount * 3 / 4)),
        },
        customer_id: customer,
    }
}

/// Give `count` customers their first tier and wait until tierd
/// committed them and published their changes.
fn seed(broker: &Broker, metrics: &Metrics, prefix: &str, count: usize) -> Result<()> {
    let before = metrics.committed();
    let producer = produce::producer(broker.bootstrap(), 20)?;
    for i in 0..count {
        let e = event(prefix, i, false);
        produce::send(&producer, ORDERS, &e.customer_id, &produce::encode(&e))?;
        if i.is_multiple_of(4096) {
            producer.poll(Duration::ZERO);
        }
    }
    produce::finish(&producer, count as u64)?;
    let started = Instant::now();
    while metrics.committed().saturating_sub(before) < count as u64 {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("tierd did not commit the {count} seed events within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_outbox_drained(metrics, Duration::from_secs(180))
}

/// Wait until tierd's outbox is drained (what the backlog produced is on
/// the tier-changes topic), so the run starts caught up.
pub(crate) fn wait_outbox_drained(metrics: &Metrics, limit: Duration) -> Result<()> {
    let started = Instant::now();
    // The gauge is refreshed by each publishing round; require it at 0
    // twice, a round apart.
    let mut zero_since: Option<Instant> = None;
    while started.elapsed() < limit {
        if metrics.sum(tier_kafka::metrics::OUTBOX_BACKLOG) == 0.0 {
            let since = *zero_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(600) {
                return Ok(());
            }
        } else {
            zero_since = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "tierd's outbox was not drained within {} s",
        limit.as_secs()
    )
}

/// A `TierChanged` seen: its causing event, when it was received and its
/// record's create time (ms since the epoch, when it has one).
type Seen = (String, Instant, Option<i64>);

/// Consume the tier-changes topic from its current end, sending what
/// was seen of every `TierChanged` until `stop`.
fn watch_changes(
    consumer: &BaseConsumer,
    stop: &AtomicBool,
    out: &mpsc::Sender<Seen>,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let Some(m) = consumer.poll(Duration::from_millis(20)) else {
            continue;
        };
        let received = Instant::now();
        let m = m.context("consuming tier-changes")?;
        let is_change = m.headers().is_none_or(|h| {
            h.iter()
                .find(|hd| hd.key == "tierd-type")
                .is_none_or(|hd| hd.value == Some(b"TierChanged".as_slice()))
        });
        if !is_change {
            continue;
        }
        let Some(payload) = m.payload() else { continue };
        let msg = tier_wire::tier_changed::decode_row(payload).context("decoding a TierChanged")?;
        let created = m.timestamp().to_millis();
        if out.send((msg.causing_event_id, received, created)).is_err() {
            break;
        }
    }
    Ok(())
}

/// The tier-changes consumer, assigned at the current high watermarks.
fn changes_consumer(broker: &Broker) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "tier-bench-freshness")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating the tier-changes consumer")?;
    let mut tpl = TopicPartitionList::new();
    for (p, (_, high)) in broker.watermarks(TIER_CHANGES)?.into_iter().enumerate() {
        tpl.add_partition_offset(TIER_CHANGES, p as i32, Offset::Offset(high))
            .context("building the assignment")?;
    }
    consumer.assign(&tpl).context("assigning tier-changes")?;
    Ok(consumer)
}

/// Produce at `rate` events/s for `duration` and match the tier changes.
pub(crate) fn run(
    broker: &Broker,
    metrics: &Metrics,
    rate: usize,
    duration: Duration,
) -> Result<Freshness> {
    let before = BatchStats::read(metrics);
    let prefix = format!("fresh{}", now_ts().millis());
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    seed(broker, metrics, &prefix, total)?;
    let consumer = changes_consumer(broker)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let watcher = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("tier-changes".into())
            .spawn(move || watch_changes(&consumer, &stop, &tx))
            .context("spawning the tier-changes consumer")?
    };
    // Let the consumer connect and start fetching before the clock runs.
    std::thread::sleep(Duration::from_millis(500));

    let producer = produce::stamped_producer(broker.bootstrap(), TIMED_LINGER_MS)?;
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let started = Instant::now();
    let started_wall_ms = now_ts().millis();
    let committed_before = metrics.committed();
    // Per second of the run: how many sent events tierd had not yet
    // committed, its outbox backlog, the customers it has yet to sweep
    // (all sampled at the second's end) and the broker process's share
    // of a core.
    let mut seconds: Vec<String> = Vec::new();
    let mut broker_cpu = broker.cpu_seconds();
    let mut i = 0;
    while i < total {
        if started.elapsed().as_secs() as usize > seconds.len() {
            let behind = (i as u64).saturating_sub(metrics.committed() - committed_before);
            let outbox = metrics.sum(tier_kafka::metrics::OUTBOX_BACKLOG);
            let sweep = metrics.sum(tier_engine::metrics::SWEEP_BACKLOG);
            let cpu = broker.cpu_seconds();
            let share = match (broker_cpu, cpu) {
                (Some(before), Some(now)) => format!("{:.0}%", (now - before) * 100.0),
                _ => "-".to_owned(),
            };
            broker_cpu = cpu;
            seconds.push(format!("{behind}/{outbox:.0}/{sweep:.0}/{share}"));
        }
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(total);
        while i < due {
            let e = event(&prefix, i, true);
            let payload = produce::encode(&e);
            sent_at.insert(e.event_id.clone(), Instant::now());
            produce::send(&producer, ORDERS, &e.customer_id, &payload)?;
            i += 1;
        }
        // Serves delivery reports as they arrive (their instants are the
        // broker's acknowledgements) for 0.5 ms, the loop's pace.
        producer.poll(Duration::from_micros(500));
    }
    let send_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "    each second: events sent but not committed / outbox backlog / customers due to sweep / broker CPU: {}",
        seconds.join(" ")
    );
    produce::finish(&producer, total as u64)?;
    // The broker's acknowledgement of each timed event, by its id.
    let acked_at: HashMap<String, Instant> = produce::take_acks(&producer)
        .into_iter()
        .map(|(key, at)| (timed_event_id(&String::from_utf8_lossy(&key)), at))
        .collect();

    // Collect until every event is matched, or 5 s without a new one.
    let mut latencies = Vec::with_capacity(total);
    let mut stages = Stages::default();
    // An instant as milliseconds since `started`.
    let since_start = |at: Instant| (at - started).as_secs_f64() * 1e3;
    // The worst latency of the events sent in each second of the run.
    let mut worst_by_second = vec![0.0f64; duration.as_secs() as usize + 1];
    let mut quiet_since = Instant::now();
    while latencies.len() < total && quiet_since.elapsed() < Duration::from_secs(5) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((id, received, created)) => {
                if let Some(sent) = sent_at.remove(&id) {
                    let ms = (received - sent).as_secs_f64() * 1e3;
                    if let (Some(acked), Some(created)) = (acked_at.get(&id), created) {
                        let created = (created - started_wall_ms) as f64;
                        stages.to_broker.push((*acked - sent).as_secs_f64() * 1e3);
                        stages.in_tierd.push(created - since_start(*acked));
                        stages.back.push(since_start(received) - created);
                    }
                    let second = (sent - started).as_secs() as usize;
                    if let Some(worst) = worst_by_second.get_mut(second) {
                        *worst = f64::max(*worst, ms);
                    }
                    latencies.push(ms);
                    quiet_since = Instant::now();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let batches = BatchStats::read(metrics).since(before);
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    match watcher.join() {
        Ok(r) => r?,
        Err(_) => bail!("the tier-changes consumer panicked"),
    }
    latencies.sort_by(f64::total_cmp);
    for v in [
        &mut stages.to_broker,
        &mut stages.in_tierd,
        &mut stages.back,
    ] {
        v.sort_by(f64::total_cmp);
    }
    eprintln!("    {}", stages.describe());
    let worst: Vec<String> = worst_by_second
        .iter()
        .map(|ms| format!("{ms:.0}"))
        .collect();
    Ok(Freshness {
        sent: total,
        latencies_ms: latencies,
        rate: total as f64 / send_secs,
        batches,
        stages,
        worst_by_second: worst.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_timed_order_is_the_large_one_of_a_seeded_customer() {
        let seed = event("p", 3, false);
        let timed = event("p", 3, true);
        assert_eq!(seed.customer_id, "p-c3");
        assert_eq!(timed.customer_id, "p-c3");
        assert_ne!(seed.event_id, timed.event_id);
        assert_eq!(timed.event_id, timed_event_id(&timed.customer_id));
        let amount = |e: &Event| match &e.kind {
            EventKind::OrderPlaced { amount, .. } => amount.minor(),
            _ => 0,
        };
        assert!(amount(&seed) < amount(&timed));
        assert_eq!(produce::topic_for(&timed.kind), ORDERS);
    }
}

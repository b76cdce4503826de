//! tierd in process against the broker helper: from a fresh data dir
//! through the whole backlog, with tierd's default (durable) settings.
//!
//! **What is timed.** From the moment tierd's pipeline reports `Ready`
//! (group joined, partitions assigned, state loaded) to the moment every
//! produced record is durably committed. tierd counts `tierd_events_consumed_total` once per
//! committed unit, after the store batch holding the unit's state, offsets
//! and outbox rows is durable (`tier_engine::committer`, `effects`). The
//! suite reads that counter through the process's Prometheus handle every
//! 20 ms (status too). The note also gives the rate from the first
//! committed batch to the last (that batch's records left out) and from
//! `tierd::start` (store open, group join). All end when every produced
//! record is durably committed, not merely consumed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tier_kafka::{PipelineReport, PipelineStatus};
use tierd::{Config, Running};
use tokio::runtime::Runtime;

use super::broker::Broker;
use super::consume::{IDLE_LIMIT, Timing};
use super::produce::{DLQ, INPUTS, TIER_CHANGES};
use crate::config::BenchConfig;
use crate::cpu::{self, Threads};

/// How often the committed-records counter is read (each read renders
/// every metric, 0.1-0.8 ms: about 1-4% of a core at this rate).
const POLL_EVERY: Duration = Duration::from_millis(20);

/// tierd's settings for a run against `broker`: defaults, except the
/// addresses (port 0), the data dir, the group, that the topics exist, and
/// the run's store backend, store cache and catch-up batch size.
pub(crate) fn config(
    broker: &Broker,
    data_dir: PathBuf,
    group: &str,
    cfg: &BenchConfig,
) -> Result<Config> {
    let partitions = *broker
        .topics
        .get(INPUTS[0])
        .context("the broker has no input topics")?;
    Ok(Config {
        brokers: Some(broker.bootstrap().to_owned()),
        data_dir,
        grpc_listen: "127.0.0.1:0".parse().context("gRPC address")?,
        metrics_listen: "127.0.0.1:0".parse().context("metrics address")?,
        topics: INPUTS.iter().map(|t| (*t).to_owned()).collect(),
        dlq_topic: DLQ.to_owned(),
        tier_changes_topic: TIER_CHANGES.to_owned(),
        group_id: group.to_owned(),
        // The mock cluster has no CreateTopics; the helper made them.
        create_topics: false,
        partitions,
        // The mock broker holds a fetch that finds no data for the whole
        // fetch.wait.max.ms (librdkafka's default 500 ms), where Kafka
        // answers as soon as data arrives: a caught-up tierd would wait
        // up to 500 ms per fetch, an artefact of the mock. 10 ms emulates
        // Kafka's early answer (no effect on a backlog: data is waiting).
        kafka_consumer: vec!["fetch.wait.max.ms=10".to_owned()],
        store_backend: cfg.store_backend,
        store_cache_mib: cfg.store_cache_mib,
        batch_catch_up_min_records: cfg.batch_catch_up_min_records,
        ..Config::default()
    })
}

/// Reads tierd's metrics from the process-wide Prometheus recorder.
pub(crate) struct Metrics {
    render: Box<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Result<Self> {
        let handle = tierd::metrics_http::recorder().context("the metrics recorder")?;
        Ok(Self {
            render: Box::new(move || handle.render()),
        })
    }

    /// The sum of every series of metric `name` (all label sets).
    pub(crate) fn sum(&self, name: &str) -> f64 {
        sum_series(&(self.render)(), name)
    }

    /// The cumulative count of histogram `name`'s bucket `le` (every label
    /// set), e.g. `bucket("tierd_batch_commit_duration_seconds", "0.1")`.
    pub(crate) fn bucket(&self, name: &str, le: &str) -> f64 {
        bucket_of(&(self.render)(), name, le)
    }

    /// What tierd's commits wrote so far (see [`Writes`]).
    pub(crate) fn writes(&self) -> Writes {
        use tier_kafka::metrics::{BATCH_SIZE, STATE_BYTES_WRITTEN, STATES_WRITTEN};
        Writes {
            batches: self.sum(&format!("{BATCH_SIZE}_count")),
            records: self.sum(&format!("{BATCH_SIZE}_sum")),
            states: self.sum(STATES_WRITTEN),
            bytes: self.sum(STATE_BYTES_WRITTEN),
        }
    }

    /// Records in committed units, all tierd instances of this process.
    pub(crate) fn committed(&self) -> u64 {
        self.sum(tier_kafka::metrics::EVENTS_CONSUMED) as u64
    }
}

/// What tierd's commits wrote, from its metrics: each batch writes every
/// customer it touched, whole, so a customer met in every batch of a
/// catch-up (a busy one, whose state is large) is written once a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Writes {
    pub(crate) batches: f64,
    pub(crate) records: f64,
    /// Customer states written.
    pub(crate) states: f64,
    /// Their encoded bytes.
    pub(crate) bytes: f64,
}

impl Writes {
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            batches: self.batches - before.batches,
            records: self.records - before.records,
            states: self.states - before.states,
            bytes: self.bytes - before.bytes,
        }
    }

    /// Records per batch on average (0 without a batch).
    pub(crate) fn records_per_batch(&self) -> f64 {
        per(self.records, self.batches)
    }

    /// `"N batches of R records on average wrote S customer states (s a
    /// record), M MB (b bytes a record)"`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} batches of {:.0} records on average wrote {} customer states ({:.2} a record), {:.0} MB ({:.0} bytes a record)",
            self.batches,
            self.records_per_batch(),
            self.states,
            per(self.states, self.records),
            self.bytes / 1e6,
            per(self.bytes, self.records),
        )
    }
}

/// `x / n`, or 0 when `n` is 0.
fn per(x: f64, n: f64) -> f64 {
    if n > 0.0 { x / n } else { 0.0 }
}

/// The cumulative count of histogram `name`'s bucket `le` in a Prometheus
/// text exposition, summed over the other labels.
fn bucket_of(text: &str, name: &str, le: &str) -> f64 {
    let label = format!("le=\"{le}\"");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix("_bucket{"))
                .and_then(|rest| rest.split('}').next())
                .is_some_and(|labels| labels.split(',').any(|kv| kv == label))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum of the series of `name` in a Prometheus text exposition.
fn sum_series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A tierd running in this process.
#[derive(Debug)]
pub(crate) struct Tierd {
    running: Option<Running>,
}

impl Tierd {
    /// Stop and return what its pipeline did.
    pub(crate) fn stop(mut self, rt: &Runtime) -> Result<PipelineReport> {
        let running = self.running.take().context("tierd already stopped")?;
        running.shutdown();
        rt.block_on(
            async move { tokio::time::timeout(Duration::from_secs(90), running.wait()).await },
        )
        .context("tierd did not stop within 90 s")?
        .context("tierd stopped with an error")
    }

    pub(crate) fn status(&self) -> PipelineStatus {
        self.running
            .as_ref()
            .map_or(PipelineStatus::Stopped, Running::status)
    }
}

impl Drop for Tierd {
    fn drop(&mut self) {
        // Stopped on an error path: ask it to stop; the runtime's shutdown
        // ends its tasks.
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

/// Start tierd on `config` and time it until `expected` records are
/// committed. Returns the timing and the running tierd (caught up).
pub(crate) fn ingest(rt: &Runtime, config: Config, expected: u64) -> Result<(Timing, Tierd)> {
    let metrics = Metrics::new()?;
    let base = metrics.committed();
    let writes_before = metrics.writes();
    let started = Instant::now();
    let running = rt
        .block_on(tierd::start(config))
        .context("starting tierd")?;
    let tierd = Tierd {
        running: Some(running),
    };
    let mut first: Option<(Instant, u64)> = None;
    let mut ready: Option<Instant> = None;
    // The threads' CPU time as the headline window opens.
    let mut cpu_at_ready: Option<Threads> = None;
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    let mut reads = 0u32;
    let mut reading = Duration::ZERO;
    let done = loop {
        let now = Instant::now();
        let n = metrics.committed().saturating_sub(base);
        reads += 1;
        reading += now.elapsed();
        if ready.is_none() && tierd.status() == PipelineStatus::Ready {
            ready = Some(now);
            cpu_at_ready = Threads::now();
        }
        if n > 0 && first.is_none() {
            first = Some((now, n));
            if cpu_at_ready.is_none() {
                cpu_at_ready = Threads::now();
            }
        }
        if n >= expected {
            break now;
        }
        if n != last_count {
            last_count = n;
            last_progress = now;
        } else if now - last_progress > IDLE_LIMIT {
            bail!(
                "tierd committed {n} of {expected} records, then nothing for {} s (status {:?})",
                IDLE_LIMIT.as_secs(),
                tierd.status()
            );
        }
        if tierd.status() == PipelineStatus::Stopped {
            bail!("tierd stopped after committing {n} of {expected} records");
        }
        std::thread::sleep(POLL_EVERY);
    };
    let cpu_at_done = Threads::now();
    let writes = metrics.writes().since(writes_before);
    let committed = metrics.committed().saturating_sub(base);
    if committed != expected {
        bail!("tierd committed {committed} records, {expected} were produced");
    }
    let (first_at, at_first) = first.unwrap_or((done, 0));
    // Ready is set on assignment, before any commit can count.
    let assigned = ready.unwrap_or(first_at).min(first_at);
    eprintln!(
        "    {reads} reads of the metrics, {:.2} ms each",
        reading.as_secs_f64() * 1e3 / f64::from(reads.max(1))
    );
    Ok((
        Timing {
            records: expected,
            assigned_to_last: done - assigned,
            first_to_last: done - first_at,
            at_first,
            start_to_last: done - started,
            writes: Some(writes.describe()),
            cpu: Some(cpu::window_note(
                cpu_at_ready.as_ref(),
                cpu_at_done.as_ref(),
                done - assigned,
            )),
        },
        tierd,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_over_labels_only_for_that_name() {
        let text = "# HELP tierd_events_consumed_total Records consumed\n\
            # TYPE tierd_events_consumed_total counter\n\
            tierd_events_consumed_total{topic=\"orders\",type=\"order_placed\"} 10\n\
            tierd_events_consumed_total{topic=\"payments\",type=\"payment_received\"} 5\n\
            tierd_events_consumed_total_other 100\n\
            tierd_outbox_backlog 3\n";
        assert_eq!(sum_series(text, "tierd_events_consumed_total"), 15.0);
        assert_eq!(sum_series(text, "tierd_outbox_backlog"), 3.0);
        assert_eq!(sum_series(text, "missing"), 0.0);
    }

    #[test]
    fn writes_are_told_per_batch_and_per_record() {
        let before = Writes {
            batches: 1.0,
            records: 100.0,
            states: 10.0,
            bytes: 1_000.0,
        };
        let after = Writes {
            batches: 3.0,
            records: 40_100.0,
            states: 30_010.0,
            bytes: 24_001_000.0,
        };
        assert_eq!(
            after.since(before).describe(),
            "2 batches of 20000 records on average wrote 30000 customer states (0.75 a record), 24 MB (600 bytes a record)"
        );
        assert!(Writes::default().describe().contains("(0 bytes a record)"));
    }

    #[test]
    fn a_bucket_is_read_by_its_exact_bound() {
        let text = "tierd_batch_commit_duration_seconds_bucket{le=\"0.1\"} 7\n\
            tierd_batch_commit_duration_seconds_bucket{le=\"0.25\"} 9\n\
            tierd_batch_commit_duration_seconds_bucket{le=\"+Inf\"} 10\n\
            tierd_batch_commit_duration_seconds_count 10\n";
        let name = "tierd_batch_commit_duration_seconds";
        assert_eq!(bucket_of(text, name, "0.1"), 7.0);
        assert_eq!(bucket_of(text, name, "0.25"), 9.0);
        assert_eq!(bucket_of(text, name, "1"), 0.0);
        assert_eq!(
            sum_series(text, &format!("{name}_count")) - bucket_of(text, name, "0.1"),
            3.0
        );
    }
}

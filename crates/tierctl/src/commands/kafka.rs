//! Publishing records with a bounded window of unacknowledged deliveries.
//!
//! [`Publisher::send`] queues a record with librdkafka and returns without
//! waiting for the broker, unless `max_in_flight` deliveries are already
//! outstanding; then it waits for one to complete first. [`Publisher::finish`]
//! waits for the rest. The first failed delivery aborts the run with the
//! topic, key and Kafka error; the producer is then dropped, which purges
//! whatever was still queued (an idempotent producer cannot resend a gap
//! anyway, so the caller must rerun: events carry stable ids and tierd
//! de-duplicates).
//!
//! Producer defaults: `enable.idempotence=true` (no duplicates or
//! reordering on retries, so one customer's records stay in send order
//! within their partition), `linger.ms=5`, and the `murmur2_random`
//! partitioner, Java's default, so a customer's records land on the same
//! partition whichever client library produced them. Any of these can be
//! overridden with `-X KEY=VALUE`.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::cli::KafkaArgs;

/// How long to wait for cluster metadata before giving up on the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// A producer plus the deliveries it still waits for.
pub struct Publisher {
    producer: FutureProducer,
    brokers: String,
    in_flight: FuturesUnordered<DeliveryFuture>,
    max_in_flight: usize,
    delivered: u64,
    progress: Option<ProgressBar>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("brokers", &self.brokers)
            .field("in_flight", &self.in_flight.len())
            .field("max_in_flight", &self.max_in_flight)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// The producer configuration for `args`: tierctl's defaults, then the
/// user's `-X` overrides.
/// A progress bar over `total` events published, on stderr, unless
/// `no_progress` or stderr is not a terminal (a pipe or a log file).
pub fn events_bar(total: u64, no_progress: bool) -> Option<ProgressBar> {
    if no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    Some(pb)
}

pub fn producer_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("client.id", "tierctl")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random");
    for (k, v) in &args.config {
        config.set(k, v);
    }
    config
}

impl Publisher {
    /// Create the producer and check that the brokers answer. `progress`,
    /// when given, advances by one per acknowledged record.
    pub async fn connect(args: &KafkaArgs, progress: Option<ProgressBar>) -> Result<Self> {
        let producer: FutureProducer = producer_config(args)
            .create()
            .context("cannot create the Kafka producer")?;
        let probe = producer.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map(|m| m.brokers().len())
        })
        .await
        .context("metadata task failed")?;
        metadata.with_context(|| format!("cannot reach Kafka at {}", args.brokers))?;
        Ok(Self {
            producer,
            brokers: args.brokers.clone(),
            in_flight: FuturesUnordered::new(),
            max_in_flight: usize::try_from(args.max_in_flight)
                .unwrap_or(usize::MAX)
                .max(1),
            delivered: 0,
            progress,
        })
    }

    /// Which of `topics` the cluster does not list (they may still be
    /// auto-created by the broker on first write).
    pub async fn missing_topics(&self, topics: &[&str]) -> Result<Vec<String>> {
        let probe = self.producer.clone();
        let names = tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map(|m| {
                    m.topics()
                        .iter()
                        .map(|t| t.name().to_owned())
                        .collect::<Vec<_>>()
                })
        })
        .await
        .context("metadata task failed")?
        .with_context(|| format!("cannot list topics at {}", self.brokers))?;
        let mut missing: Vec<String> = topics
            .iter()
            .filter(|t| !names.iter().any(|n| n == *t))
            .map(|t| (*t).to_owned())
            .collect();
        missing.sort();
        missing.dedup();
        Ok(missing)
    }

    /// Queue one record; waits only while the window is full or
    /// librdkafka's queue is.
    pub async fn send(&mut self, topic: &str, key: &str, payload: &[u8]) -> Result<()> {
        while self.in_flight.len() >= self.max_in_flight {
            self.complete_one().await?;
        }
        loop {
            let record = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if !self.complete_one().await? {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((e, _)) => {
                    return Err(anyhow!(e).context(format!(
                        "publishing to topic {topic} failed (key {key}, \
                         rejected before sending, {} records acknowledged before)",
                        self.delivered
                    )));
                }
            }
        }
    }

    /// Wait for one outstanding delivery; `false` when none was outstanding.
    async fn complete_one(&mut self) -> Result<bool> {
        let Some(result) = self.in_flight.next().await else {
            return Ok(false);
        };
        match result {
            Ok(Ok(_delivery)) => {
                self.delivered += 1;
                if let Some(pb) = &self.progress {
                    pb.inc(1);
                }
                Ok(true)
            }
            Ok(Err((e, msg))) => {
                let key = msg
                    .key()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .into_owned();
                Err(anyhow!(e).context(format!(
                    "publishing to topic {} failed (key {key}, {} records acknowledged before)",
                    msg.topic(),
                    self.delivered
                )))
            }
            Err(_canceled) => bail!("the Kafka producer went away before a delivery report"),
        }
    }

    /// Records acknowledged so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Wait for every outstanding delivery; the number acknowledged.
    pub async fn finish(mut self) -> Result<u64> {
        while self.complete_one().await? {}
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .context("flush task failed")?
            .context("flushing the Kafka producer failed")?;
        Ok(self.delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_overrides() {
        let mut args = KafkaArgs::new("k:9092");
        args.config.push(("linger.ms".into(), "50".into()));
        let config = producer_config(&args);
        assert_eq!(config.get("bootstrap.servers"), Some("k:9092"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("partitioner"), Some("murmur2_random"));
    }
}

//! The dead-letter sink: invalid records, whole, on the dead-letter topic
//! with the reason in headers (`tierd-reason`, `tierd-field`,
//! `tierd-detail`) and where they came from (`tierd-topic`,
//! `tierd-partition`, `tierd-offset`).
//!
//! The engine's committer calls [`DeadLetterSink::deliver`] before it
//! commits a unit and retries until every dead letter is acknowledged, so
//! a partition never advances past a record it could not park. Within a
//! run each dead letter is sent once (acknowledged ones are marked);
//! across a restart after an uncommitted unit they are sent again
//! (at-least-once).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use tier_engine::{DeadLetter, DeadLetterSink, SinkError};

use crate::error::StreamError;
use crate::metrics as m;
use crate::pipeline::kafka_reason;

/// [`DeadLetterSink`] on a Kafka topic, through an idempotent producer.
pub struct KafkaDeadLetters {
    producer: FutureProducer,
    config: ClientConfig,
    topic: String,
    metadata_timeout: Duration,
}

impl std::fmt::Debug for KafkaDeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaDeadLetters {
    /// A sink writing to `topic` with a producer made from `config`.
    pub fn new(
        config: ClientConfig,
        topic: String,
        metadata_timeout: Duration,
    ) -> Result<Self, StreamError> {
        Ok(Self {
            producer: create_producer(&config)?,
            config,
            topic,
            metadata_timeout,
        })
    }
}

fn create_producer(config: &ClientConfig) -> Result<FutureProducer, StreamError> {
    config
        .create()
        .map_err(|e| StreamError::Kafka(format!("could not create the dead-letter producer: {e}")))
}

impl DeadLetterSink for KafkaDeadLetters {
    /// Send the dead letters not yet acknowledged and wait for every
    /// acknowledgement, so that each outcome is known before a retry (no
    /// dead letter is sent twice within a run).
    fn deliver(&mut self, dead: &mut [DeadLetter]) -> Result<(), SinkError> {
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
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(k) = &d.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = &d.payload {
                record = record.payload(p.as_slice());
            }
            match self.producer.send_result(record) {
                Ok(fut) => sent.push((i, fut)),
                Err((e, _)) => {
                    // Stop sending, but still learn the fate of what was sent.
                    failure = Some(SinkError {
                        message: format!(
                            "dead-lettering {}[{}]@{}: enqueue failed: {e}",
                            d.topic, d.partition, d.offset
                        ),
                        reason: kafka_reason(&e),
                    });
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
                    failure.get_or_insert_with(|| SinkError {
                        message: format!(
                            "dead-lettering {}[{}]@{}: {e}",
                            d.topic, d.partition, d.offset
                        ),
                        reason: kafka_reason(&e),
                    });
                }
                Err(_) => {
                    failure.get_or_insert_with(|| SinkError {
                        message: "dead-lettering: delivery cancelled".into(),
                        reason: "cancelled",
                    });
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// After a failed delivery: replace a producer that hit a fatal error,
    /// and refresh the dead-letter topic's metadata (a topic error such as
    /// an authorization failure is otherwise kept until the periodic
    /// refresh, minutes later).
    fn repair(&mut self) {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::warn!(error = %code, reason, "the dead-letter producer hit a fatal error; replacing it");
            match create_producer(&self.config) {
                Ok(p) => self.producer = p,
                Err(e) => tracing::warn!(error = %e, "could not replace the dead-letter producer"),
            }
            return;
        }
        if let Err(e) = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), self.metadata_timeout)
        {
            tracing::debug!(error = %e, "refreshing the dead-letter topic's metadata failed");
        }
    }
}

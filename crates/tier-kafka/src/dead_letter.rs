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
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
    ///
    /// A record the producer or the broker refuses as too large (over the
    /// producer's `message.max.bytes` or the dead-letter topic's
    /// `max.message.bytes`) can never be parked whole, and holding the unit
    /// for it would stop every partition for good: it is sent again at once
    /// with its key and payload cut to their first [`KEPT_BYTES`] bytes and
    /// a `tierd-truncated` header saying so. The whole record stays on its
    /// input topic, where `tierd-topic`, `tierd-partition` and
    /// `tierd-offset` point.
    fn deliver(&mut self, dead: &mut [DeadLetter]) -> Result<(), SinkError> {
        let whole: Vec<usize> = (0..dead.len()).filter(|&i| !dead[i].delivered).collect();
        let (too_large, mut failure) = self.send(dead, &whole, Shape::Whole);
        // A broker refuses a whole produce batch as too large, every dead
        // letter in it alike: each is sent again alone, whole, and cut
        // only if it is too large by itself.
        for i in too_large {
            let (alone, f) = self.send(dead, &[i], Shape::Whole);
            failure = failure.or(f);
            if alone.is_empty() {
                continue;
            }
            let (still, f) = self.send(dead, &[i], Shape::Cut);
            failure = failure.or(f);
            if !still.is_empty() {
                let d = &dead[i];
                failure.get_or_insert_with(|| SinkError {
                    message: format!(
                        "dead-lettering {}[{}]@{}: too large for the dead-letter topic even \
                         cut to {KEPT_BYTES} bytes of key and payload (its headers: check \
                         the dead-letter producer's message.max.bytes)",
                        d.topic, d.partition, d.offset
                    ),
                    reason: "message_too_large",
                });
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

/// What of a dead letter's key and payload is sent (see
/// [`KafkaDeadLetters::deliver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Whole,
    /// Key and payload cut to their first [`KEPT_BYTES`] bytes (the
    /// detail is short already: tier-wire's `MAX_DETAIL_LEN`).
    Cut,
}

/// How much of its key and payload a dead letter too large to park whole
/// keeps: enough to tell the customer and the kind of event.
const KEPT_BYTES: usize = 1024;

/// True for the errors that no retry can cure: the record is larger than
/// the producer or the broker accepts.
fn is_too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

fn cut(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(KEPT_BYTES)]
}

impl KafkaDeadLetters {
    /// Send `dead[i]` for each `i` in `which`, shaped as `shape`, and wait
    /// for each outcome. Returns the ones refused as too large (not marked
    /// delivered) and the first other failure.
    fn send(
        &self,
        dead: &mut [DeadLetter],
        which: &[usize],
        shape: Shape,
    ) -> (Vec<usize>, Option<SinkError>) {
        let mut sent = Vec::new();
        let mut too_large = Vec::new();
        let mut failure = None;
        for &i in which {
            let d = &dead[i];
            match self.producer.send_result(self.record(d, shape)) {
                Ok(fut) => sent.push((i, fut)),
                Err((e, _)) if is_too_large(&e) => too_large.push(i),
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
                    if shape == Shape::Cut {
                        tracing::warn!(
                            topic = d.topic,
                            partition = d.partition,
                            offset = d.offset,
                            kept = KEPT_BYTES,
                            "a dead letter too large for the dead-letter topic was parked cut; the whole record stays on its input topic"
                        );
                    }
                }
                Ok(Err((e, _))) if is_too_large(&e) => too_large.push(i),
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
        (too_large, failure)
    }

    /// The record for `d`: its key and payload (cut when `shape` says so)
    /// and the headers that say why and where from.
    fn record<'a>(&'a self, d: &'a DeadLetter, shape: Shape) -> FutureRecord<'a, [u8], [u8]> {
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        let mut headers = OwnedHeaders::new()
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
        if shape == Shape::Cut {
            let note = format!(
                "too large for the dead-letter topic: key of {} bytes and payload of {} \
                 bytes cut to their first {KEPT_BYTES}; the whole record is at \
                 tierd-topic/tierd-partition/tierd-offset",
                d.key.as_ref().map_or(0, Vec::len),
                d.payload.as_ref().map_or(0, Vec::len),
            );
            headers = headers.insert(Header {
                key: "tierd-truncated",
                value: Some(note.as_str()),
            });
        }
        let keep = |bytes: &'a Vec<u8>| match shape {
            Shape::Whole => bytes.as_slice(),
            Shape::Cut => cut(bytes),
        };
        let mut record = FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = &d.key {
            record = record.key(keep(k));
        }
        if let Some(p) = &d.payload {
            record = record.payload(keep(p));
        }
        record
    }
}

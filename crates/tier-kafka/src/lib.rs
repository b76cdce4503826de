//! # tier-kafka: tierd's Kafka adapter
//!
//! Owns everything that touches Kafka: the loop that polls batches,
//! decodes records at the edge, merges the input topics by event time
//! while catching up (the `align` module), hands events, commands, the processing
//! instant and sweep/rescore slices to `tier-engine` and commits each
//! resulting unit with its offsets atomically ([`pipeline`]); the
//! dead-letter path; the outbox publisher ([`outbox`]); topic creation and
//! the embedded broker of the default run ([`broker`]); and the one
//! client-config factory ([`client_config`]). The codecs (input events,
//! `TierChanged`, `TierAtRisk`, timestamps) live in `tier-wire`; what a
//! record does to a customer lives in `tier-engine`.
//!
//! Must not hold domain rules (they live in `tier-core`) nor the sled
//! layout (in `tier-store`); records are turned into owned, typed events at
//! once and never passed further as bytes.

pub(crate) mod align;
pub mod broker;
pub mod client;
pub mod clock;
pub mod dead_letter;
pub mod error;
pub use tier_engine::metrics;
pub mod outbox;
pub mod pipeline;
pub mod slices;

pub use broker::{EmbeddedBroker, ensure_topics};
pub use client::client_config;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StreamError;
pub use outbox::{Enrich, OutboxGate, OutputFormat, Publisher, PublisherConfig};
pub use pipeline::{
    CommitObserver, PipelineConfig, PipelineDeps, PipelineHandle, PipelineReport, PipelineStatus,
};

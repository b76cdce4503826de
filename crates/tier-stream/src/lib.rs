//! # tier-stream: tierd's Kafka adapter
//!
//! Owns everything that touches Kafka: the batched ingest pipeline that
//! decodes records at the edge, folds events and commits state, offsets and
//! outbox rows atomically ([`pipeline`]), the dead-letter path, the outbox
//! publisher ([`outbox`]), topic creation and the embedded broker of the
//! default run ([`broker`]). The codecs themselves (input events,
//! `TierChanged`, timestamps) live in `tier-wire`.
//!
//! Must not hold domain rules (they live in `tier-core`) nor the sled
//! layout (in `tier-store`); records are turned into owned, typed events at
//! once and never passed further as bytes.

pub mod broker;
pub mod clock;
pub mod error;
pub mod metrics;
pub mod outbox;
pub mod pipeline;

pub use broker::{EmbeddedBroker, ensure_topics};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StreamError;
pub use outbox::{OutputFormat, Publisher, PublisherConfig};
pub use pipeline::{
    CommitObserver, PipelineConfig, PipelineDeps, PipelineHandle, PipelineReport, PipelineStatus,
};

//! # tier-wire: the codecs of every topic tierd reads or writes
//!
//! Owns the bytes on the wire and their domain meaning, and nothing else:
//!
//! - [`decode`]: input records -> validated domain events (wire-format
//!   detection; binary protobuf, proto3 JSON and Confluent-framed protobuf;
//!   the named rejections and the bounded set of field paths), and the
//!   inverse encoders producers and tests use.
//! - [`tier_changed`]: domain tier changes -> `TierChanged` (outbox rows and
//!   the JSON output format).
//! - [`time`]: the one conversion between the domain's `Timestamp` and
//!   protobuf's, used by both codecs and by the gRPC API.
//! - [`trace`]: W3C `traceparent` from a cause to the `TierChanged` it
//!   causes.
//!
//! Pure functions over bytes and values: no IO, no clock, no threads. It
//! must not depend on rdkafka, tokio, sled or tonic (a test checks the
//! dependency tree), so that `tierctl`, the fuzz targets and tests can use
//! the codecs without the Kafka adapter. Domain rules stay in `tier-core`;
//! the generated message types in `tier-proto`.

pub mod at_risk;
pub mod decode;
pub mod tier_changed;
pub mod time;
pub mod trace;

pub use decode::{Decoded, Decoder, WireFormat};
pub use tier_changed::tier_changed_to_proto;

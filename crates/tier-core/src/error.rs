//! Errors of the core: why an event is rejected, why a policy is invalid.

/// Why a record was rejected. A bounded set: used as a metric label and as
/// the `tierd-reason` header of dead-lettered records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not protobuf, not JSON, or a broken Confluent frame.
    Undecodable,
    /// A required field (id, time, payload) is absent or empty.
    MissingField,
    /// The `oneof payload` is empty.
    EmptyPayload,
    /// A money amount is below zero.
    NegativeAmount,
    /// A currency the policy has no rate for.
    UnknownCurrency,
    /// `occurred_at` lies too far after the event was received.
    FutureTimestamp,
    /// The Kafka key differs from the payload's `customer_id`.
    KeyMismatch,
    /// Any other malformed value (overlong id, bad timestamp, an
    /// assessment of an undeclared indicator or outside its scale, ...).
    InvalidField,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Undecodable,
        RejectReason::MissingField,
        RejectReason::EmptyPayload,
        RejectReason::NegativeAmount,
        RejectReason::UnknownCurrency,
        RejectReason::FutureTimestamp,
        RejectReason::KeyMismatch,
        RejectReason::InvalidField,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Undecodable => "undecodable",
            RejectReason::MissingField => "missing_field",
            RejectReason::EmptyPayload => "empty_payload",
            RejectReason::NegativeAmount => "negative_amount",
            RejectReason::UnknownCurrency => "unknown_currency",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::KeyMismatch => "key_mismatch",
            RejectReason::InvalidField => "invalid_field",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that must not be applied, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct InvalidEvent {
    pub reason: RejectReason,
    /// The offending field, as a dotted path (`order_placed.amount`).
    pub field: &'static str,
    pub detail: String,
}

impl InvalidEvent {
    pub fn new(reason: RejectReason, field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            detail: detail.into(),
        }
    }
}

//! `TierChanged`, the record tierd writes to the tier-changes topic.
//!
//! A domain [`TierChange`] becomes a `tiering.v1.TierChanged` message
//! ([`tier_changed_to_proto`]). Outbox rows hold its binary protobuf
//! ([`encode_row`], read back with [`decode_row`]); the row is also the
//! payload published in the protobuf output format. The JSON output format
//! is the canonical proto3 JSON mapping of the decoded message
//! ([`encode_json`]), produced at publish time.

use prost::Message as _;
use prost_reflect::DynamicMessage;
use tier_core::policy::{GradingClass, Reason};
use tier_core::state::{Cause, Lifecycle, TierChange};
use tier_proto::api;

use crate::time;

/// Fully qualified name of the message.
pub const TIER_CHANGED_FULL_NAME: &str = "tiering.v1.TierChanged";

/// Domain tier change -> wire `TierChanged`.
pub fn tier_changed_to_proto(c: &TierChange) -> api::TierChanged {
    api::TierChanged {
        customer_id: c.customer_id.clone(),
        old_tier: c.old_tier.clone().unwrap_or_default(),
        new_tier: c.new_tier.clone(),
        old_score: c.old_score,
        new_score: c.new_score,
        cause: cause_to_proto(c.cause) as i32,
        causing_event_id: c.causing_event_id.clone().unwrap_or_default(),
        reasons: c.reasons.iter().map(reason_to_proto).collect(),
        policy_version: c.policy_version.clone(),
        sequence: c.sequence,
        changed_at: Some(time::to_proto(c.changed_at)),
        computed_tier: c.computed_tier.clone(),
        overridden: c.overridden,
        lifecycle: lifecycle_to_proto(c.lifecycle) as i32,
        gradings: c.gradings.iter().map(grading_to_proto).collect(),
        traceparent: String::new(),
    }
}

/// A grading class on the wire.
pub fn grading_to_proto(g: &GradingClass) -> api::GradingClass {
    grading_into_proto(g.clone())
}

/// [`grading_to_proto`] of a class the caller owns: its strings move.
pub fn grading_into_proto(g: GradingClass) -> api::GradingClass {
    api::GradingClass {
        grading: g.grading,
        kind: g.kind,
        class: g.class,
    }
}

/// One reason of a tier change on the wire.
pub fn reason_to_proto(r: &Reason) -> api::Reason {
    api::Reason {
        name: r.name.clone(),
        contribution: r.contribution,
        delta: r.delta,
    }
}

/// The wire form of a lifecycle stage.
pub const fn lifecycle_to_proto(l: Lifecycle) -> api::Lifecycle {
    match l {
        Lifecycle::Prospect => api::Lifecycle::Prospect,
        Lifecycle::New => api::Lifecycle::New,
        Lifecycle::Active => api::Lifecycle::Active,
        Lifecycle::Lapsed => api::Lifecycle::Lapsed,
        Lifecycle::Reactivated => api::Lifecycle::Reactivated,
    }
}

pub const fn cause_to_proto(cause: Cause) -> api::ChangeCause {
    match cause {
        Cause::Event => api::ChangeCause::Event,
        Cause::Time => api::ChangeCause::Time,
        Cause::Policy => api::ChangeCause::Policy,
        Cause::Override => api::ChangeCause::Override,
        Cause::Rank => api::ChangeCause::Rank,
    }
}

/// An outbox row: the binary protobuf of the change's `TierChanged`.
pub fn encode_row(c: &TierChange) -> Vec<u8> {
    tier_changed_to_proto(c).encode_to_vec()
}

/// An outbox row of a change caused under trace context `cause`: the row
/// carries the change's child context (see [`crate::trace`]).
pub fn encode_row_traced(c: &TierChange, cause: Option<&crate::trace::TraceParent>) -> Vec<u8> {
    let mut msg = tier_changed_to_proto(c);
    if let Some(cause) = cause {
        msg.traceparent = cause.child(&c.customer_id, c.sequence).to_string();
    }
    msg.encode_to_vec()
}

/// An outbox row (or a protobuf record of the tier-changes topic) read back.
pub fn decode_row(row: &[u8]) -> Result<api::TierChanged, prost::DecodeError> {
    api::TierChanged::decode(row)
}

/// Why [`encode_json`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeJsonError {
    #[error("descriptor for {TIER_CHANGED_FULL_NAME} missing")]
    MissingDescriptor,
    #[error("transcode failed: {0}")]
    Transcode(#[from] prost::DecodeError),
    #[error("json encoding failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// The canonical proto3 JSON mapping of a `TierChanged` (camelCase names,
/// RFC 3339 timestamps, int64 as strings, enums by name, default values
/// omitted), through prost-reflect's serde support.
pub fn encode_json(msg: &api::TierChanged) -> Result<Vec<u8>, EncodeJsonError> {
    encode_json_as(TIER_CHANGED_FULL_NAME, msg)
}

/// Any message of the API as canonical protobuf JSON, by its full name.
pub fn encode_json_as<M: prost::Message>(
    full_name: &str,
    msg: &M,
) -> Result<Vec<u8>, EncodeJsonError> {
    let desc = tier_proto::descriptor_pool()
        .get_message_by_name(full_name)
        .ok_or(EncodeJsonError::MissingDescriptor)?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic.transcode_from(msg)?;
    Ok(serde_json::to_vec(&dynamic)?)
}

#[cfg(test)]
mod tests {
    use tier_core::Timestamp;
    use tier_core::policy::Reason;

    use super::*;

    fn change() -> TierChange {
        TierChange {
            customer_id: "c-1".into(),
            old_tier: None,
            new_tier: "gold".into(),
            computed_tier: "gold".into(),
            overridden: false,
            old_score: 0.0,
            new_score: 71.5,
            cause: Cause::Event,
            causing_event_id: Some("e-9".into()),
            reasons: vec![Reason {
                name: "revenue".into(),
                contribution: 40.0,
                delta: 12.5,
            }],
            policy_version: "2026-01".into(),
            sequence: 1,
            changed_at: Timestamp::from_millis(1_700_000_000_123),
            lifecycle: Lifecycle::Active,
            gradings: Vec::new(),
        }
    }

    #[test]
    fn absent_options_are_empty_strings_and_the_instant_keeps_millis() {
        let msg = tier_changed_to_proto(&change());
        assert_eq!(msg.old_tier, "");
        assert_eq!(msg.causing_event_id, "e-9");
        assert_eq!(msg.cause, api::ChangeCause::Event as i32);
        assert_eq!(
            msg.changed_at,
            Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_000_000
            })
        );
        let mut c = change();
        c.causing_event_id = None;
        c.old_tier = Some("silver".into());
        c.cause = Cause::Override;
        let msg = tier_changed_to_proto(&c);
        assert_eq!(msg.old_tier, "silver");
        assert_eq!(msg.causing_event_id, "");
        assert_eq!(msg.cause, api::ChangeCause::Override as i32);
    }

    #[test]
    fn every_cause_has_its_wire_value() {
        for (cause, wire) in [
            (Cause::Event, api::ChangeCause::Event),
            (Cause::Time, api::ChangeCause::Time),
            (Cause::Policy, api::ChangeCause::Policy),
            (Cause::Override, api::ChangeCause::Override),
        ] {
            assert_eq!(cause_to_proto(cause), wire);
        }
    }

    #[test]
    fn rows_round_trip() {
        let c = change();
        let row = encode_row(&c);
        assert_eq!(decode_row(&row).unwrap(), tier_changed_to_proto(&c));
        assert!(decode_row(&[0xFF]).is_err());
    }

    #[test]
    fn json_is_the_proto3_mapping() {
        let json: serde_json::Value =
            serde_json::from_slice(&encode_json(&tier_changed_to_proto(&change())).unwrap())
                .unwrap();
        assert_eq!(json["customerId"], "c-1");
        assert_eq!(json["cause"], "CHANGE_CAUSE_EVENT");
        assert_eq!(json["sequence"], "1");
        assert_eq!(json["changedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["reasons"][0]["name"], "revenue");
        assert!(json.get("oldTier").is_none(), "defaults are omitted");
    }
}

//! Domain-to-wire conversions used by the handlers, and the request-field
//! parsers they share (list limits, instants). Plain functions, no IO.

use tier_core::policy::{FailedGate, TierSpec};
use tier_proto::api::Entitlements;

use crate::error::ApiError;

/// A domain instant (UTC milliseconds) as a protobuf `Timestamp`: the one
/// conversion every codec uses, from `tier-wire`.
pub use tier_wire::time::to_proto as timestamp;

/// What a tier entitles its customers to, as the API publishes it.
pub fn entitlements(spec: &TierSpec) -> Entitlements {
    Entitlements {
        priority: spec.priority,
        complaint_sla_hours: spec.complaint_sla_hours,
        visit_every_days: spec.visit_every_days,
        payment_terms_days: spec.payment_terms_days,
    }
}

/// An indicator's unit and a piece of advice on the wire: the same
/// conversions the published records use, from `tier-wire`.
pub use tier_wire::at_risk::{advice_to_proto as advice, unit_to_proto as unit};

/// A tier gate the customer fails, as ExplainTier reports it.
pub fn failed_gate(g: &FailedGate) -> tier_proto::api::FailedGate {
    tier_proto::api::FailedGate {
        tier: g.tier.clone(),
        indicator: g.indicator.as_str().to_owned(),
        op: g.op.clone(),
        threshold: g.threshold,
        value: g.value,
        unit: unit(g.unit).into(),
    }
}

/// An explained assessment on the wire.
pub fn assessed(a: &tier_core::policy::ExplainedAssessment) -> tier_proto::api::AssessedIndicator {
    tier_proto::api::AssessedIndicator {
        name: a.name.clone(),
        value: a.value,
        label: a.label.clone().unwrap_or_default(),
        points: a.points,
        weight: a.weight,
        contribution: a.contribution,
        missing_points: a.missing_points,
        assessed_by: a.assessed_by.clone().unwrap_or_default(),
        note: a.note.clone().unwrap_or_default(),
        assessed_at: a.assessed_at.map(timestamp),
        expires_at: a.expires_at.map(timestamp),
    }
}

/// Most entries one list answer holds.
pub const MAX_LIST_LIMIT: u32 = 10_000;
/// What a list request's `limit = 0` means.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// A list request's `limit` as a count (0: the default), or
/// INVALID_ARGUMENT naming it.
pub(crate) fn list_limit(requested: u32) -> Result<usize, ApiError> {
    match requested {
        0 => Ok(DEFAULT_LIST_LIMIT as usize),
        n if n > MAX_LIST_LIMIT => Err(ApiError::invalid(
            "limit",
            format!("at most {MAX_LIST_LIMIT} entries, got {n}"),
        )),
        n => Ok(n as usize),
    }
}

/// A request's instant `field`, or INVALID_ARGUMENT naming it when it is
/// out of range.
pub(crate) fn instant(
    field: &'static str,
    t: &prost_types::Timestamp,
) -> Result<tier_core::Timestamp, ApiError> {
    tier_wire::time::from_proto(field, t).map_err(|e| ApiError::invalid(field, e.detail))
}

/// A required instant `field` (INVALID_ARGUMENT naming it when absent).
pub(crate) fn required_instant(
    field: &'static str,
    t: Option<&prost_types::Timestamp>,
) -> Result<tier_core::Timestamp, ApiError> {
    instant(
        field,
        t.ok_or_else(|| ApiError::invalid(field, "required"))?,
    )
}

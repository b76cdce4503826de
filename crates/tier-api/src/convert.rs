//! Domain-to-wire conversions used by the handlers. Plain functions, no IO.

use tier_core::indicators::Unit;
use tier_core::policy::{Advice, TierSpec};
use tier_proto::api::Entitlements;

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

/// An indicator's unit on the wire.
pub fn unit(u: Unit) -> tier_proto::api::Unit {
    use tier_proto::api::Unit as W;
    match u {
        Unit::Money => W::Money,
        Unit::Orders => W::Orders,
        Unit::OrdersPerMonth => W::OrdersPerMonth,
        Unit::Ratio => W::Ratio,
        Unit::Days => W::Days,
        Unit::Complaints => W::Complaints,
        Unit::WeightedComplaints => W::WeightedComplaints,
        Unit::Months => W::Months,
    }
}

/// One step of advice on the wire.
pub fn advice(a: &Advice) -> tier_proto::api::Advice {
    tier_proto::api::Advice {
        indicator: a.indicator.as_str().to_owned(),
        current: a.current,
        target: a.target,
        unit: unit(a.unit).into(),
    }
}

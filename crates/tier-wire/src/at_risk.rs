//! The `TierAtRisk` and `ComplaintOverdue` records, and the outbox row
//! envelope that lets one outbox carry them beside `TierChanged`.
//!
//! Outbox rows were plain `TierChanged` bytes before notices existed, and
//! such rows may still wait in a data dir. A protobuf message never starts
//! with a byte below 8 (field number 0 is invalid), so a notice row is a
//! tag byte (0: at risk, 1: complaint overdue) followed by the message's
//! bytes, and every other row is a `TierChanged`, old rows included.

use prost::Message as _;
use tier_core::indicators::Unit;
use tier_core::policy::{Advice, Policy};
use tier_core::state::{AtRisk, ComplaintOverdue};
use tier_proto::api;

use crate::time;

/// The first byte of an at-risk outbox row.
const AT_RISK_TAG: u8 = 0;
/// The first byte of a complaint-overdue outbox row.
const OVERDUE_TAG: u8 = 1;

/// An outbox row, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxRecord {
    Changed(api::TierChanged),
    AtRisk(api::TierAtRisk),
    ComplaintOverdue(api::ComplaintOverdue),
}

impl OutboxRecord {
    /// The record's type, as in the `tierd-type` header.
    pub fn type_name(&self) -> &'static str {
        match self {
            OutboxRecord::Changed(_) => "TierChanged",
            OutboxRecord::AtRisk(_) => "TierAtRisk",
            OutboxRecord::ComplaintOverdue(_) => "ComplaintOverdue",
        }
    }

    /// The customer the record is about (the record key).
    pub fn customer_id(&self) -> &str {
        match self {
            OutboxRecord::Changed(m) => &m.customer_id,
            OutboxRecord::AtRisk(m) => &m.customer_id,
            OutboxRecord::ComplaintOverdue(m) => &m.customer_id,
        }
    }
}

/// The wire form of a complaint-overdue notice.
pub fn overdue_to_proto(o: &ComplaintOverdue) -> api::ComplaintOverdue {
    api::ComplaintOverdue {
        customer_id: o.customer_id.clone(),
        complaint_id: o.complaint_id.clone(),
        severity: o.severity.as_str().to_owned(),
        category: o.category.clone(),
        opened_at: Some(time::to_proto(o.opened_at)),
        deadline: Some(time::to_proto(o.deadline.at)),
        tier: o.deadline.tier.clone(),
        sla_hours: o.deadline.sla_hours,
        resolved_at: o.resolved_at.map(time::to_proto),
    }
}

/// A complaint-overdue notice as an outbox row.
pub fn encode_overdue_row(o: &ComplaintOverdue) -> Vec<u8> {
    let msg = overdue_to_proto(o);
    let mut row = Vec::with_capacity(1 + msg.encoded_len());
    row.push(OVERDUE_TAG);
    msg.encode(&mut row).unwrap_or_default();
    row
}

/// The wire form of an at-risk notice under `policy`.
pub fn at_risk_to_proto(r: &AtRisk, policy: &Policy) -> api::TierAtRisk {
    let currency = policy.currency_rules().base().to_owned();
    api::TierAtRisk {
        customer_id: r.customer_id.clone(),
        current_tier: r.current_tier.clone(),
        falls_to: r.falls_to.clone(),
        on: Some(time::to_proto(r.on)),
        on_day: policy.calendar().day(r.on).to_string(),
        keep: r.keep.iter().map(advice_to_proto).collect(),
        summary: summary(r, policy, &currency),
        policy_version: policy.version().to_owned(),
        currency,
    }
}

/// One piece of advice on the wire.
pub fn advice_to_proto(a: &Advice) -> api::Advice {
    api::Advice {
        indicator: a.indicator.as_str().to_owned(),
        current: a.current,
        target: a.target,
        unit: unit_to_proto(a.unit) as i32,
    }
}

/// The wire form of an indicator's unit.
pub const fn unit_to_proto(u: Unit) -> api::Unit {
    match u {
        Unit::Money => api::Unit::Money,
        Unit::Orders => api::Unit::Orders,
        Unit::OrdersPerMonth => api::Unit::OrdersPerMonth,
        Unit::Ratio => api::Unit::Ratio,
        Unit::Days => api::Unit::Days,
        Unit::Complaints => api::Unit::Complaints,
        Unit::WeightedComplaints => api::Unit::WeightedComplaints,
        Unit::Months => api::Unit::Months,
        Unit::Level => api::Unit::Level,
    }
}

/// "order_amount_12m of 1,234,567.00 CNY (now 1,000,000.00 CNY) by
/// 2027-01-31 to stay B".
fn summary(r: &AtRisk, policy: &Policy, currency: &str) -> String {
    let cal = policy.calendar();
    let day = cal.day(r.on);
    let parts: Vec<String> = r
        .keep
        .iter()
        .map(|a| {
            let target = value(a.target, a.unit, currency);
            match a.current {
                Some(c) => format!(
                    "{} of {target} (now {})",
                    a.indicator.as_str(),
                    value(c, a.unit, currency)
                ),
                None => format!("{} of {target}", a.indicator.as_str()),
            }
        })
        .collect();
    let what = if parts.is_empty() {
        "nothing within the policy can keep it".to_owned()
    } else {
        parts.join(", ")
    };
    format!(
        "falls from {} to {} on {day}; to stay {}: {what} by then",
        r.current_tier, r.falls_to, r.current_tier
    )
}

fn value(v: f64, unit: Unit, currency: &str) -> String {
    match unit {
        Unit::Money => format!("{} {currency}", grouped(v / 100.0)),
        Unit::Ratio => format!("{:.0}%", v * 100.0),
        Unit::Days => format!("{v:.0} days"),
        Unit::Orders => format!("{v:.0} orders"),
        Unit::OrdersPerMonth => format!("{v:.1} orders/month"),
        Unit::Complaints | Unit::WeightedComplaints => format!("{v:.1} complaints"),
        Unit::Months => format!("{v:.0} months"),
        Unit::Level => format!("level {v:.0}"),
    }
}

/// `1234567.5` as `1,234,567.50`.
fn grouped(v: f64) -> String {
    let text = format!("{:.2}", v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}{out}.{frac}")
}

/// An at-risk notice as an outbox row.
pub fn encode_at_risk_row(r: &AtRisk, policy: &Policy) -> Vec<u8> {
    let msg = at_risk_to_proto(r, policy);
    let mut row = Vec::with_capacity(1 + msg.encoded_len());
    row.push(AT_RISK_TAG);
    msg.encode(&mut row).unwrap_or_default();
    row
}

/// Decode any outbox row.
pub fn decode_outbox_row(row: &[u8]) -> Result<OutboxRecord, prost::DecodeError> {
    match row.split_first() {
        Some((&AT_RISK_TAG, rest)) => api::TierAtRisk::decode(rest).map(OutboxRecord::AtRisk),
        Some((&OVERDUE_TAG, rest)) => {
            api::ComplaintOverdue::decode(rest).map(OutboxRecord::ComplaintOverdue)
        }
        _ => api::TierChanged::decode(row).map(OutboxRecord::Changed),
    }
}

#[cfg(test)]
mod tests {
    use tier_core::IndicatorName;
    use tier_core::time::date;

    use super::*;

    #[test]
    fn rows_of_both_kinds_round_trip_and_old_rows_still_decode() {
        let policy = Policy::default_policy();
        let r = AtRisk {
            customer_id: "c-1".into(),
            current_tier: "B".into(),
            falls_to: "C".into(),
            on: date(2027, 1, 31),
            keep: vec![Advice {
                indicator: IndicatorName::OrderAmount12m,
                current: Some(100_000_000.0),
                target: 123_456_700.0,
                unit: Unit::Money,
            }],
        };
        let row = encode_at_risk_row(&r, &policy);
        let OutboxRecord::AtRisk(msg) = decode_outbox_row(&row).unwrap() else {
            panic!("an at-risk row")
        };
        assert_eq!(msg.falls_to, "C");
        assert!(
            msg.summary
                .contains("order_amount_12m of 1,234,567.00 CNY (now 1,000,000.00 CNY)"),
            "{}",
            msg.summary
        );
        assert!(msg.summary.contains("2027-01-3"), "{}", msg.summary);
        let overdue = ComplaintOverdue {
            customer_id: "c-1".into(),
            complaint_id: "k-9".into(),
            severity: tier_core::Severity::High,
            category: "delivery".into(),
            opened_at: date(2027, 1, 1),
            deadline: tier_core::projection::Deadline {
                at: date(2027, 1, 4),
                tier: "A".into(),
                sla_hours: 72,
            },
            resolved_at: None,
        };
        let row = encode_overdue_row(&overdue);
        let decoded = decode_outbox_row(&row).unwrap();
        assert_eq!(decoded.type_name(), "ComplaintOverdue");
        let OutboxRecord::ComplaintOverdue(msg) = decoded else {
            panic!("an overdue row")
        };
        assert_eq!(
            (msg.tier.as_str(), msg.sla_hours, msg.severity.as_str()),
            ("A", 72, "high")
        );
        assert_eq!(msg.deadline, Some(time::to_proto(date(2027, 1, 4))));
        let changed = api::TierChanged {
            customer_id: "c-1".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_outbox_row(&changed.encode_to_vec()).unwrap(),
            OutboxRecord::Changed(changed)
        );
    }
}

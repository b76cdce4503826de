//! The validated event model.
//!
//! Events are facts in the past tense. They reach the core only after the
//! edge (the Kafka decoder) has turned a wire record into an [`Event`] and
//! [`Event::validate`] accepted it; the fold may then assume every invariant
//! checked here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{InvalidEvent, RejectReason};
use crate::time::Timestamp;

/// An amount of money in integer minor units of the policy's base currency.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn minor(self) -> i64 {
        self.0
    }
}

/// Complaint severity, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Unspecified,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Unspecified,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Index into per-severity arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Fixed weight used by the `complaints_weighted_12m` indicator:
    /// unspecified and low 1, medium 2, high 4, critical 8.
    pub const fn weight(self) -> u32 {
        match self {
            Severity::Unspecified | Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 4,
            Severity::Critical => 8,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Unspecified => "unspecified",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Facts about a customer that do not come from transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub industry: String,
    pub region: String,
    /// Yearly purchase potential (a sales estimate), for share of wallet.
    pub purchase_potential: Option<Money>,
    pub account_manager: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    OrderPlaced {
        order_id: String,
        amount: Money,
        cost: Money,
    },
    OrderCancelled {
        order_id: String,
    },
    OrderReturned {
        order_id: String,
        amount: Money,
        cost: Money,
    },
    InvoiceIssued {
        invoice_id: String,
        order_id: String,
        amount: Money,
        due_at: Timestamp,
    },
    PaymentReceived {
        invoice_id: String,
        amount: Money,
    },
    ComplaintOpened {
        complaint_id: String,
        severity: Severity,
        category: String,
    },
    ComplaintResolved {
        complaint_id: String,
    },
    ProfileUpdated(Profile),
}

impl EventKind {
    /// Bounded label for metrics and logs.
    pub const fn type_name(&self) -> &'static str {
        match self {
            EventKind::OrderPlaced { .. } => "order_placed",
            EventKind::OrderCancelled { .. } => "order_cancelled",
            EventKind::OrderReturned { .. } => "order_returned",
            EventKind::InvoiceIssued { .. } => "invoice_issued",
            EventKind::PaymentReceived { .. } => "payment_received",
            EventKind::ComplaintOpened { .. } => "complaint_opened",
            EventKind::ComplaintResolved { .. } => "complaint_resolved",
            EventKind::ProfileUpdated(_) => "profile_updated",
        }
    }
}

/// One business event about one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per business event; resends reuse it.
    pub event_id: String,
    pub customer_id: String,
    pub occurred_at: Timestamp,
    pub source: String,
    pub kind: EventKind,
}

/// Limits applied by [`Event::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// How far in the future `occurred_at` may lie (producer clock skew).
    pub max_future_ms: i64,
    /// Longest id accepted, in bytes.
    pub max_id_len: usize,
    /// Largest single amount accepted, in minor units (keeps sums exact in `i64`).
    pub max_amount_minor: i64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_future_ms: 24 * 3_600_000,
            max_id_len: 256,
            max_amount_minor: 1_000_000_000_000_000,
        }
    }
}

impl Event {
    /// Check the invariants the fold relies on. `now` is the processing time.
    pub fn validate(&self, now: Timestamp, limits: &ValidationLimits) -> Result<(), InvalidEvent> {
        check_id("event_id", &self.event_id, limits)?;
        check_id("customer_id", &self.customer_id, limits)?;
        if self.occurred_at.millis() <= 0 {
            return Err(InvalidEvent::new(
                RejectReason::MissingField,
                "occurred_at",
                "occurred_at must be set to a time after 1970-01-01",
            ));
        }
        if self.occurred_at.millis() > now.millis().saturating_add(limits.max_future_ms) {
            return Err(InvalidEvent::new(
                RejectReason::FutureTimestamp,
                "occurred_at",
                format!(
                    "occurred_at {} is more than {} h after the processing time {}",
                    self.occurred_at,
                    limits.max_future_ms / 3_600_000,
                    now
                ),
            ));
        }
        match &self.kind {
            EventKind::OrderPlaced {
                order_id,
                amount,
                cost,
            }
            | EventKind::OrderReturned {
                order_id,
                amount,
                cost,
            } => {
                let prefix = self.kind.type_name();
                check_id(field(prefix, "order_id"), order_id, limits)?;
                check_amount(field(prefix, "amount"), *amount, limits)?;
                check_amount(field(prefix, "cost"), *cost, limits)?;
            }
            EventKind::OrderCancelled { order_id } => {
                check_id("order_cancelled.order_id", order_id, limits)?;
            }
            EventKind::InvoiceIssued {
                invoice_id,
                amount,
                due_at,
                ..
            } => {
                check_id("invoice_issued.invoice_id", invoice_id, limits)?;
                check_amount("invoice_issued.amount", *amount, limits)?;
                if due_at.millis() <= 0 {
                    return Err(InvalidEvent::new(
                        RejectReason::MissingField,
                        "invoice_issued.due_at",
                        "due_at must be set",
                    ));
                }
            }
            EventKind::PaymentReceived { invoice_id, amount } => {
                check_id("payment_received.invoice_id", invoice_id, limits)?;
                check_amount("payment_received.amount", *amount, limits)?;
            }
            EventKind::ComplaintOpened { complaint_id, .. } => {
                check_id("complaint_opened.complaint_id", complaint_id, limits)?;
            }
            EventKind::ComplaintResolved { complaint_id } => {
                check_id("complaint_resolved.complaint_id", complaint_id, limits)?;
            }
            EventKind::ProfileUpdated(p) => {
                if let Some(pp) = p.purchase_potential {
                    check_amount("profile_updated.purchase_potential", pp, limits)?;
                }
            }
        }
        Ok(())
    }
}

fn field(prefix: &'static str, name: &'static str) -> &'static str {
    match (prefix, name) {
        ("order_placed", "order_id") => "order_placed.order_id",
        ("order_placed", "amount") => "order_placed.amount",
        ("order_placed", "cost") => "order_placed.cost",
        ("order_returned", "order_id") => "order_returned.order_id",
        ("order_returned", "amount") => "order_returned.amount",
        ("order_returned", "cost") => "order_returned.cost",
        _ => name,
    }
}

fn check_id(
    field: &'static str,
    value: &str,
    limits: &ValidationLimits,
) -> Result<(), InvalidEvent> {
    if value.trim().is_empty() {
        return Err(InvalidEvent::new(
            RejectReason::MissingField,
            field,
            format!("{field} is required"),
        ));
    }
    if value.len() > limits.max_id_len {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!(
                "{field} is {} bytes, longer than {}",
                value.len(),
                limits.max_id_len
            ),
        ));
    }
    Ok(())
}

fn check_amount(
    field: &'static str,
    amount: Money,
    limits: &ValidationLimits,
) -> Result<(), InvalidEvent> {
    if amount.0 < 0 {
        return Err(InvalidEvent::new(
            RejectReason::NegativeAmount,
            field,
            format!("{field} is negative ({} minor units)", amount.0),
        ));
    }
    if amount.0 > limits.max_amount_minor {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!(
                "{field} is {} minor units, above the limit of {}",
                amount.0, limits.max_amount_minor
            ),
        ));
    }
    Ok(())
}

/// Conversion of wire money (`amount_minor` + ISO 4217 code) into the base
/// currency. Rates are exact decimals: base minor units per foreign minor unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyRules {
    base: String,
    /// Rate in millionths of a base minor unit per foreign minor unit.
    rates_micro: BTreeMap<String, i64>,
}

impl CurrencyRules {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            rates_micro: BTreeMap::new(),
        }
    }

    /// Add a rate given in millionths (7.10 -> 7_100_000).
    pub fn with_rate_micro(mut self, currency: impl Into<String>, rate_micro: i64) -> Self {
        self.rates_micro.insert(currency.into(), rate_micro);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Convert `amount_minor` in `currency` to base minor units. An empty
    /// currency code means the base currency.
    pub fn to_base(
        &self,
        field: &'static str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Money, InvalidEvent> {
        if amount_minor < 0 {
            return Err(InvalidEvent::new(
                RejectReason::NegativeAmount,
                field,
                format!("{field} is negative ({amount_minor} minor units)"),
            ));
        }
        if currency.is_empty() || currency == self.base {
            return Ok(Money(amount_minor));
        }
        let Some(rate) = self.rates_micro.get(currency) else {
            return Err(InvalidEvent::new(
                RejectReason::UnknownCurrency,
                field,
                format!(
                    "{field} is in {currency:?}, which the policy neither uses as base ({}) nor gives a rate for",
                    self.base
                ),
            ));
        };
        let converted = i128::from(amount_minor) * i128::from(*rate) / 1_000_000;
        i64::try_from(converted).map(Money).map_err(|_| {
            InvalidEvent::new(
                RejectReason::InvalidField,
                field,
                format!("{field} overflows after conversion from {currency}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::date;

    fn ev(kind: EventKind) -> Event {
        Event {
            event_id: "e1".into(),
            customer_id: "c1".into(),
            occurred_at: date(2026, 1, 1),
            source: String::new(),
            kind,
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let now = date(2026, 1, 2);
        let l = ValidationLimits::default();
        let mut e = ev(EventKind::OrderPlaced {
            order_id: "o".into(),
            amount: Money(-5),
            cost: Money(0),
        });
        let err = e.validate(now, &l).unwrap_err();
        assert_eq!(err.reason, RejectReason::NegativeAmount);
        assert_eq!(err.field, "order_placed.amount");

        e.kind = EventKind::OrderCancelled {
            order_id: " ".into(),
        };
        assert_eq!(
            e.validate(now, &l).unwrap_err().field,
            "order_cancelled.order_id"
        );

        e.kind = EventKind::ComplaintResolved {
            complaint_id: "k".into(),
        };
        e.event_id.clear();
        assert_eq!(
            e.validate(now, &l).unwrap_err().reason,
            RejectReason::MissingField
        );

        e.event_id = "e".into();
        e.occurred_at = date(2026, 1, 5);
        let err = e.validate(now, &l).unwrap_err();
        assert_eq!(err.reason, RejectReason::FutureTimestamp);
        assert!(err.to_string().contains("occurred_at"), "{err}");
    }

    #[test]
    fn currency_conversion_is_exact_and_strict() {
        let rules = CurrencyRules::new("CNY").with_rate_micro("USD", 7_100_000);
        assert_eq!(rules.to_base("a", 100, "CNY").unwrap(), Money(100));
        assert_eq!(rules.to_base("a", 100, "").unwrap(), Money(100));
        assert_eq!(rules.to_base("a", 100, "USD").unwrap(), Money(710));
        let err = rules.to_base("x.amount", 1, "EUR").unwrap_err();
        assert_eq!(err.reason, RejectReason::UnknownCurrency);
        assert_eq!(err.field, "x.amount");
    }
}

//! The validated event model.
//!
//! Events are facts in the past tense. They reach the core only after the
//! edge (the Kafka decoder) has turned a wire record into an [`Event`] and
//! [`Event::validate`] accepted it; the fold may then assume every invariant
//! checked here.

use std::collections::BTreeMap;

use compact_str::CompactString;
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

/// An ISO 4217 currency code, three ASCII letters, stored inline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    /// Parse a three-letter code (`"CNY"`); `None` for anything else.
    pub fn parse(code: &str) -> Option<Self> {
        let b = code.as_bytes();
        (b.len() == 3 && b.iter().all(u8::is_ascii_uppercase)).then(|| Self([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Money in its own currency, exactly as billed or paid (minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Amount {
    pub minor: i64,
    pub currency: Currency,
}

impl Amount {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }
}

/// The profile fields an update can set or clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    Name,
    Industry,
    Region,
    PurchasePotential,
    AccountManager,
    CustomerSince,
}

impl ProfileField {
    pub const ALL: [ProfileField; 6] = [
        ProfileField::Name,
        ProfileField::Industry,
        ProfileField::Region,
        ProfileField::PurchasePotential,
        ProfileField::AccountManager,
        ProfileField::CustomerSince,
    ];

    /// The field's name on the wire (`purchase_potential`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ProfileField::Name => "name",
            ProfileField::Industry => "industry",
            ProfileField::Region => "region",
            ProfileField::PurchasePotential => "purchase_potential",
            ProfileField::AccountManager => "account_manager",
            ProfileField::CustomerSince => "customer_since",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A short text a customer's state keeps (a profile field): inline up to
/// 24 bytes, so the common name, industry or region costs no allocation
/// when a state is decoded, cloned or dropped. Serialized as a `str`.
pub type Text = CompactString;

/// Heap bytes a [`CompactString`] holds: none while it is inline.
pub(crate) fn heap_bytes(s: &CompactString) -> usize {
    if s.is_heap_allocated() {
        s.capacity()
    } else {
        0
    }
}

/// Facts about a customer that do not come from transactions: the merged
/// result of every [`ProfileUpdate`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub name: Text,
    pub industry: Text,
    pub region: Text,
    /// Yearly purchase potential (a sales estimate), for share of wallet.
    pub purchase_potential: Option<Money>,
    pub account_manager: Text,
    /// When the relationship began, when older than the first order tierd
    /// saw (tenure counts from the earlier of the two).
    pub customer_since: Option<Timestamp>,
}

/// A partial profile change. A field that is `None` is left as it is; a
/// field named in `cleared` is reset (empty text, unknown potential or
/// start date). Setting and clearing the same field is rejected by
/// [`Event::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    pub industry: Option<String>,
    pub region: Option<String>,
    pub purchase_potential: Option<Money>,
    pub account_manager: Option<String>,
    pub customer_since: Option<Timestamp>,
    pub cleared: Vec<ProfileField>,
}

impl ProfileUpdate {
    /// Whether this update sets `field`.
    pub fn sets(&self, field: ProfileField) -> bool {
        match field {
            ProfileField::Name => self.name.is_some(),
            ProfileField::Industry => self.industry.is_some(),
            ProfileField::Region => self.region.is_some(),
            ProfileField::PurchasePotential => self.purchase_potential.is_some(),
            ProfileField::AccountManager => self.account_manager.is_some(),
            ProfileField::CustomerSince => self.customer_since.is_some(),
        }
    }

    /// Whether this update sets or clears `field`.
    pub fn touches(&self, field: ProfileField) -> bool {
        self.sets(field) || self.cleared.contains(&field)
    }

    /// Write `field` of this update into `profile` (set or clear).
    pub fn write(&self, field: ProfileField, profile: &mut Profile) {
        let clear = self.cleared.contains(&field);
        match field {
            ProfileField::Name => set_text(&mut profile.name, &self.name, clear),
            ProfileField::Industry => set_text(&mut profile.industry, &self.industry, clear),
            ProfileField::Region => set_text(&mut profile.region, &self.region, clear),
            ProfileField::AccountManager => {
                set_text(&mut profile.account_manager, &self.account_manager, clear)
            }
            ProfileField::PurchasePotential => {
                if clear {
                    profile.purchase_potential = None;
                } else if self.purchase_potential.is_some() {
                    profile.purchase_potential = self.purchase_potential;
                }
            }
            ProfileField::CustomerSince => {
                if clear {
                    profile.customer_since = None;
                } else if self.customer_since.is_some() {
                    profile.customer_since = self.customer_since;
                }
            }
        }
    }
}

fn set_text(slot: &mut Text, value: &Option<String>, clear: bool) {
    if clear {
        slot.clear();
    } else if let Some(v) = value {
        *slot = Text::from(v.as_str());
    }
}

/// What happened.
///
/// Order money (`amount`, `cost`) is in base-currency minor units: it only
/// feeds indicators. Invoices and payments keep their own currency
/// (`billed`, `paid`) so an invoice is settled exactly in the currency it
/// was issued in; `amount` beside it is the base-currency value, for money
/// indicators only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    OrderPlaced {
        order_id: String,
        amount: Money,
        /// Cost of the goods, `None` when the producer does not know it:
        /// the order then adds nothing to the margin figures (never a
        /// 100% margin).
        cost: Option<Money>,
    },
    OrderCancelled {
        order_id: String,
    },
    OrderReturned {
        order_id: String,
        amount: Money,
        /// `None`: the cost is taken pro rata from the order.
        cost: Option<Money>,
        /// The return's own id in the source system, empty when not
        /// given. When given, it is what makes a return one fact: the
        /// same `return_id` for the same order counts once, whatever its
        /// `event_id` (see [`EventKind::business_key`]).
        #[serde(default)]
        return_id: String,
    },
    InvoiceIssued {
        invoice_id: String,
        order_id: String,
        amount: Money,
        billed: Amount,
        due_at: Timestamp,
    },
    /// A credit note: the invoice is void (its unpaid part no longer owed).
    InvoiceCancelled {
        invoice_id: String,
    },
    /// A credit note for part of an invoice: `credited` (in its own
    /// currency; `amount` is its base value) is no longer owed. Payments
    /// and credits together settle the invoice; credits that cover it
    /// with nothing paid void it.
    InvoiceCredited {
        invoice_id: String,
        amount: Money,
        credited: Amount,
        /// The credit note's own id, empty when not given: the same id
        /// for the same invoice counts once (see
        /// [`EventKind::business_key`]).
        #[serde(default)]
        credit_note_id: String,
    },
    PaymentReceived {
        invoice_id: String,
        amount: Money,
        paid: Amount,
        /// The payment's own id in the source system, empty when not
        /// given. When given, the same `payment_id` for the same invoice
        /// counts once, whatever its `event_id` (see
        /// [`EventKind::business_key`]).
        #[serde(default)]
        payment_id: String,
    },
    ComplaintOpened {
        complaint_id: String,
        severity: Severity,
        category: String,
    },
    ComplaintResolved {
        complaint_id: String,
    },
    ProfileUpdated(ProfileUpdate),
    /// An account manager's judgement of a qualitative indicator the
    /// policy declares (`[[assessments]]`): `value` is a level of its
    /// scale. See `policy/assessment.rs` and `projection/assessments.rs`.
    CustomerAssessed {
        indicator: String,
        value: i64,
        assessed_by: String,
        note: String,
    },
}

impl EventKind {
    /// What makes the event one business fact when its source system names
    /// it: a payment's `payment_id` or a credit note's `credit_note_id`
    /// within its invoice, a return's `return_id` within its order, as
    /// `(scope, id)`. `None` when not
    /// given: the `event_id` alone then tells a resend from a new fact.
    /// Scoped, because one bank transfer that pays two invoices is two
    /// payments with one `payment_id`.
    pub fn business_key(&self) -> Option<(&str, &str)> {
        match self {
            EventKind::PaymentReceived {
                invoice_id,
                payment_id,
                ..
            } if !payment_id.is_empty() => Some((invoice_id, payment_id)),
            EventKind::OrderReturned {
                order_id,
                return_id,
                ..
            } if !return_id.is_empty() => Some((order_id, return_id)),
            EventKind::InvoiceCredited {
                invoice_id,
                credit_note_id,
                ..
            } if !credit_note_id.is_empty() => Some((invoice_id, credit_note_id)),
            _ => None,
        }
    }

    /// A complaint opened or resolved: what can start, end or reveal a
    /// complaint's overdue state.
    pub const fn is_complaint(&self) -> bool {
        matches!(
            self,
            EventKind::ComplaintOpened { .. } | EventKind::ComplaintResolved { .. }
        )
    }

    /// Bounded label for metrics and logs.
    pub const fn type_name(&self) -> &'static str {
        match self {
            EventKind::OrderPlaced { .. } => "order_placed",
            EventKind::OrderCancelled { .. } => "order_cancelled",
            EventKind::OrderReturned { .. } => "order_returned",
            EventKind::InvoiceIssued { .. } => "invoice_issued",
            EventKind::InvoiceCancelled { .. } => "invoice_cancelled",
            EventKind::InvoiceCredited { .. } => "invoice_credited",
            EventKind::PaymentReceived { .. } => "payment_received",
            EventKind::ComplaintOpened { .. } => "complaint_opened",
            EventKind::ComplaintResolved { .. } => "complaint_resolved",
            EventKind::ProfileUpdated(_) => "profile_updated",
            EventKind::CustomerAssessed { .. } => "customer_assessed",
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

/// The default per-event money limit: 10^15 minor units (10 trillion in a
/// currency with cents).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// Limits applied by [`Event::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationLimits {
    /// How far in the future `occurred_at` may lie (producer clock skew).
    pub max_future_ms: i64,
    /// Longest id accepted, in bytes.
    pub max_id_len: usize,
    /// Largest single amount accepted, in minor units. Sums are kept in
    /// `i128`, so no number of events at this limit can overflow them; the
    /// limit keeps each figure exact as an `f64` indicator (below 2^53).
    pub max_amount_minor: i64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_future_ms: 24 * 3_600_000,
            max_id_len: 256,
            max_amount_minor: MAX_AMOUNT_MINOR,
        }
    }
}

/// How long before its issue an invoice's due instant may lie: a due date
/// on the day of issue sent as midnight of that day in a zone up to 14 h
/// ahead of UTC, for an invoice issued late in the day.
const DUE_BEFORE_ISSUE_MS: i64 = 48 * 3_600_000;

impl Event {
    /// Check the invariants the fold relies on. `now` is the instant the
    /// event is judged at: when it was received (the Kafka adapter passes
    /// the record's timestamp, or the processing time when that is
    /// earlier, so that a replay judges a record as live processing did).
    pub fn validate(&self, now: Timestamp, limits: &ValidationLimits) -> Result<(), InvalidEvent> {
        check_id("event_id", &self.event_id, limits)?;
        check_id("customer_id", &self.customer_id, limits)?;
        check_text("source", &self.source)?;
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
                    "occurred_at {} is more than {} h after the event was received ({})",
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
                ..
            } => {
                let prefix = self.kind.type_name();
                check_id(field(prefix, "order_id"), order_id, limits)?;
                check_amount(field(prefix, "amount"), *amount, limits)?;
                if let Some(cost) = cost {
                    check_amount(field(prefix, "cost"), *cost, limits)?;
                }
                if let EventKind::OrderReturned { return_id, .. } = &self.kind {
                    check_optional_id("order_returned.return_id", return_id, limits)?;
                }
            }
            EventKind::OrderCancelled { order_id } => {
                check_id("order_cancelled.order_id", order_id, limits)?;
            }
            EventKind::InvoiceIssued {
                invoice_id,
                order_id,
                amount,
                billed,
                due_at,
            } => {
                check_id("invoice_issued.invoice_id", invoice_id, limits)?;
                // Optional (an invoice need not bill one order), but an id
                // when given.
                if !order_id.is_empty() {
                    check_id("invoice_issued.order_id", order_id, limits)?;
                }
                check_amount("invoice_issued.amount", *amount, limits)?;
                check_amount("invoice_issued.amount", Money(billed.minor), limits)?;
                if due_at.millis() <= 0 {
                    return Err(InvalidEvent::new(
                        RejectReason::MissingField,
                        "invoice_issued.due_at",
                        "due_at must be set",
                    ));
                }
                // Due on the day of issue is often sent as that day's
                // midnight, in any zone: only a due date days before the
                // issue is a mistake (a year typed wrong would count a
                // year of lateness).
                if due_at.millis()
                    < self
                        .occurred_at
                        .millis()
                        .saturating_sub(DUE_BEFORE_ISSUE_MS)
                {
                    return Err(InvalidEvent::new(
                        RejectReason::InvalidField,
                        "invoice_issued.due_at",
                        format!(
                            "due_at {due_at} is before the invoice's issue at {}",
                            self.occurred_at
                        ),
                    ));
                }
            }
            EventKind::InvoiceCancelled { invoice_id } => {
                check_id("invoice_cancelled.invoice_id", invoice_id, limits)?;
            }
            EventKind::InvoiceCredited {
                invoice_id,
                amount,
                credited,
                credit_note_id,
            } => {
                check_id("invoice_credited.invoice_id", invoice_id, limits)?;
                check_optional_id("invoice_credited.credit_note_id", credit_note_id, limits)?;
                check_amount("invoice_credited.amount", *amount, limits)?;
                check_amount("invoice_credited.amount", Money(credited.minor), limits)?;
            }
            EventKind::PaymentReceived {
                invoice_id,
                amount,
                paid,
                payment_id,
            } => {
                check_id("payment_received.invoice_id", invoice_id, limits)?;
                check_optional_id("payment_received.payment_id", payment_id, limits)?;
                check_amount("payment_received.amount", *amount, limits)?;
                check_amount("payment_received.amount", Money(paid.minor), limits)?;
            }
            EventKind::ComplaintOpened {
                complaint_id,
                category,
                ..
            } => {
                check_id("complaint_opened.complaint_id", complaint_id, limits)?;
                check_text("complaint_opened.category", category)?;
            }
            EventKind::ComplaintResolved { complaint_id } => {
                check_id("complaint_resolved.complaint_id", complaint_id, limits)?;
            }
            EventKind::ProfileUpdated(p) => {
                for (field, text) in [
                    ("profile_updated.name", &p.name),
                    ("profile_updated.industry", &p.industry),
                    ("profile_updated.region", &p.region),
                    ("profile_updated.account_manager", &p.account_manager),
                ] {
                    if let Some(text) = text {
                        check_text(field, text)?;
                    }
                }
                if let Some(pp) = p.purchase_potential {
                    check_amount("profile_updated.purchase_potential", pp, limits)?;
                }
                if let Some(since) = p.customer_since
                    && since.millis()
                        > self
                            .occurred_at
                            .millis()
                            .saturating_add(limits.max_future_ms)
                {
                    return Err(InvalidEvent::new(
                        RejectReason::InvalidField,
                        "profile_updated.customer_since",
                        format!(
                            "customer_since {since} is after the update itself ({})",
                            self.occurred_at
                        ),
                    ));
                }
                if let Some(f) = p.cleared.iter().find(|f| p.sets(**f)) {
                    return Err(InvalidEvent::new(
                        RejectReason::InvalidField,
                        "profile_updated.cleared_fields",
                        format!("{} is both set and cleared", f.as_str()),
                    ));
                }
            }
            EventKind::CustomerAssessed {
                indicator,
                assessed_by,
                note,
                ..
            } => {
                check_id("customer_assessed.indicator", indicator, limits)?;
                check_id("customer_assessed.assessed_by", assessed_by, limits)?;
                check_text("customer_assessed.note", note)?;
            }
        }
        Ok(())
    }

    /// Check an assessment against the policy's assessment indicators
    /// (declared name, value on the scale); other events pass. The error
    /// names `customer_assessed.indicator` or `customer_assessed.value`.
    pub fn check_assessment(
        &self,
        assessments: &crate::policy::AssessmentRules,
    ) -> Result<(), InvalidEvent> {
        if let EventKind::CustomerAssessed {
            indicator, value, ..
        } = &self.kind
        {
            assessments.check(indicator, *value)?;
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

/// A free text (a name, a category, a source) fits
/// [`crate::policy::MAX_NOTE_LEN`] bytes: it is kept in the customer's
/// state, which every batch that touches the customer writes again.
fn check_text(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
    check_len(field, value, crate::policy::MAX_NOTE_LEN)
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    if value.len() > max {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!("{field} is {} bytes, longer than {max}", value.len()),
        ));
    }
    Ok(())
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
    check_len(field, value, limits.max_id_len)
}

/// An id that may be left out (empty), but is an id when given: not
/// blank, not too long.
fn check_optional_id(
    field: &'static str,
    value: &str,
    limits: &ValidationLimits,
) -> Result<(), InvalidEvent> {
    if value.is_empty() {
        return Ok(());
    }
    if value.trim().is_empty() {
        return Err(InvalidEvent::new(
            RejectReason::InvalidField,
            field,
            format!("{field} is blank: leave it out or give the id"),
        ));
    }
    check_len(field, value, limits.max_id_len)
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

    /// The base currency as a code (`XXX` when the base is not a valid code,
    /// which policy validation prevents).
    pub fn base_currency(&self) -> Currency {
        Currency::parse(&self.base).unwrap_or(Currency(*b"XXX"))
    }

    /// Read wire money into an [`Amount`] in its own currency and its value
    /// in base minor units. An empty code means the base currency; a code
    /// that is not three capital letters is rejected.
    pub fn amount(
        &self,
        field: &'static str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<(Amount, Money), InvalidEvent> {
        let base = self.to_base(field, amount_minor, currency)?;
        let code = if currency.is_empty() {
            self.base_currency()
        } else {
            Currency::parse(currency).ok_or_else(|| {
                InvalidEvent::new(
                    RejectReason::InvalidField,
                    field,
                    format!("{field} has currency {currency:?}, not an ISO 4217 code"),
                )
            })?
        };
        Ok((Amount::new(amount_minor, code), base))
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
    fn an_invoices_order_id_is_optional_but_an_id_when_given() {
        let now = date(2026, 1, 2);
        let l = ValidationLimits::default();
        let invoice = |order_id: &str| {
            ev(EventKind::InvoiceIssued {
                invoice_id: "i1".into(),
                order_id: order_id.into(),
                amount: Money(100),
                billed: Amount::new(100, Currency(*b"CNY")),
                due_at: date(2026, 1, 31),
            })
        };
        assert!(invoice("").validate(now, &l).is_ok());
        assert!(invoice("SO-1").validate(now, &l).is_ok());
        for bad in ["  ".to_owned(), "o".repeat(257)] {
            let err = invoice(&bad).validate(now, &l).unwrap_err();
            assert_eq!(err.field, "invoice_issued.order_id", "{bad:?}");
        }
    }

    #[test]
    fn payment_and_return_ids_are_optional_but_ids_when_given() {
        let now = date(2026, 1, 2);
        let l = ValidationLimits::default();
        let payment = |id: &str| {
            ev(EventKind::PaymentReceived {
                invoice_id: "i1".into(),
                amount: Money(100),
                paid: Amount::new(100, Currency(*b"CNY")),
                payment_id: id.into(),
            })
        };
        let ret = |id: &str| {
            ev(EventKind::OrderReturned {
                order_id: "o1".into(),
                amount: Money(100),
                cost: None,
                return_id: id.into(),
            })
        };
        for ok in ["", "BANK-1"] {
            assert!(payment(ok).validate(now, &l).is_ok());
            assert!(ret(ok).validate(now, &l).is_ok());
        }
        for bad in [" ".to_owned(), "p".repeat(257)] {
            let err = payment(&bad).validate(now, &l).unwrap_err();
            assert_eq!(err.field, "payment_received.payment_id", "{bad:?}");
            let err = ret(&bad).validate(now, &l).unwrap_err();
            assert_eq!(err.field, "order_returned.return_id", "{bad:?}");
        }
        assert_eq!(payment("").kind.business_key(), None);
        assert_eq!(payment("B").kind.business_key(), Some(("i1", "B")));
        assert_eq!(ret("R").kind.business_key(), Some(("o1", "R")));
    }

    #[test]
    fn rejects_with_the_field_named() {
        let now = date(2026, 1, 2);
        let l = ValidationLimits::default();
        let mut e = ev(EventKind::OrderPlaced {
            order_id: "o".into(),
            amount: Money(-5),
            cost: Some(Money(0)),
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
        let (own, base) = rules.amount("a", 3_333, "USD").unwrap();
        assert_eq!(own, Amount::new(3_333, Currency::parse("USD").unwrap()));
        assert_eq!(base, Money(23_664));
        assert_eq!(rules.amount("a", 5, "").unwrap().0.currency.as_str(), "CNY");
    }

    #[test]
    fn profile_updates_set_only_what_they_name() {
        let mut p = Profile {
            name: "ACME".into(),
            purchase_potential: Some(Money(500)),
            ..Profile::default()
        };
        let u = ProfileUpdate {
            account_manager: Some("li".into()),
            cleared: vec![ProfileField::Name],
            ..ProfileUpdate::default()
        };
        for f in ProfileField::ALL {
            u.write(f, &mut p);
        }
        // A relationship cannot begin after the update that states it.
        let mut e = Event {
            event_id: "e".into(),
            customer_id: "c".into(),
            occurred_at: date(2026, 1, 1),
            source: String::new(),
            kind: EventKind::ProfileUpdated(ProfileUpdate {
                customer_since: Some(date(2026, 3, 1)),
                ..ProfileUpdate::default()
            }),
        };
        let err = e
            .validate(date(2026, 1, 2), &ValidationLimits::default())
            .unwrap_err();
        assert_eq!(err.field, "profile_updated.customer_since");
        e.kind = EventKind::ProfileUpdated(ProfileUpdate {
            customer_since: Some(date(2019, 3, 1)),
            ..ProfileUpdate::default()
        });
        assert!(
            e.validate(date(2026, 1, 2), &ValidationLimits::default())
                .is_ok()
        );
        assert_eq!(p.name, "");
        assert_eq!(p.account_manager, "li");
        assert_eq!(p.purchase_potential, Some(Money(500)));
    }
}

//! The per-customer projection and its fold.
//!
//! A [`CustomerProjection`] keeps exactly what the indicators need over the
//! rolling window ([`crate::time::Window`]: a fixed number of business days):
//!
//! - one day bucket per business day with activity, holding additive sums
//!   (orders, margin, complaints, settlements), plus running window totals
//!   of those sums, so scoring never scans the window;
//! - net order amounts per business month, for growth;
//! - the orders, invoices and complaints of the window, keyed by id, so a
//!   cancellation or return takes back exactly what its order added and a
//!   repeated business id is applied once;
//! - the ids of applied events (64-bit FNV-1a hashes), with the payment,
//!   return or credit note id their source gave, so a resent event changes
//!   nothing, nor a payment, return or credit note re-exported under
//!   another event id.
//!
//! ## The clock model
//! The projection has its own clock: the latest `occurred_at` it has
//! applied ([`CustomerProjection::clock`]), its *watermark*. The window is
//! anchored at the watermark, never at the wall clock of the machine that
//! processes the events, so folding a log live (with the processing clock
//! stepping between batches) and replaying the same log on any later day
//! end in the same projection.
//!
//! An event whose business day lies before the window at the watermark is
//! *stale*: it could never count again at any later instant, so it changes
//! nothing ([`Applied::Stale`]). Exceptions, because they are true of the
//! customer whatever their date: a payment, a credit note or a complaint
//! resolution that closes a record still open, an order's cancellation
//! that voids an invoice still open, and a profile update.
//!
//! Tenure and recency are true durations, not window figures: the first
//! order ever applied and the last order that still counts are kept when
//! their days leave the window. A backfill of several years published in
//! time order therefore keeps its full tenure; history published newest
//! first cannot (its old part is stale on arrival), which is what the
//! profile's `customer_since` is for.
//!
//! Unpaid invoices and open complaints stay until closed, whatever their
//! age: debt and grievances do not expire.
//!
//! ## Corrections
//! Every figure an order adds is a pure function of its record
//! (`OrderRec::figures`): a cancellation, a return or a placement that
//! arrives after its correction (events may arrive out of order across
//! topics) updates the record and applies the difference. A cancellation
//! or a full return therefore takes back the amount, cost, count and
//! recency the order raised; a cancelled order also voids its unpaid
//! invoices, however old the order: one whose day left the window counts
//! no more, but an invoice it left unpaid is owed until its cancellation
//! voids it (as is one issued before a cancellation that arrives ahead of
//! its placement). A return without a cost takes the cost pro rata from
//! the order.
//!
//! ## Money
//! Sums are `i128` (see [`crate::event::MAX_AMOUNT_MINOR`]). Invoices are
//! settled in their own currency: payments in the invoice's currency are
//! compared exactly; a payment in another currency is converted through the
//! base-currency values of the two, all of an invoice's payments in other
//! currencies together (instalments whose base values add up to the
//! invoice's settle it). The excess of an overpayment is not
//! carried to other invoices (credit balances are the ERP's business). A
//! void invoice (a credit note, its order's cancellation) is owed no more,
//! but payments that settle it in full settle it, whether they are folded
//! before or after the void: events on different topics arrive in any
//! order.

mod applied;
pub mod assessments;
mod idmap;
mod sums;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{
    Amount, Event, EventKind, Money, Profile, ProfileField, ProfileUpdate, Severity, heap_bytes,
};
use crate::indicators::{IndicatorName, Indicators};
use crate::policy::AssessmentRules;
use crate::time::{BusinessCalendar, Day, Month, Timestamp, Window};
use assessments::{Assessment, AssessmentBook};
use idmap::IdMap;
pub use idmap::deciding_only;
pub(crate) use idmap::is_deciding_only;
use sums::{DayBucket, OrderFigures, Sums, WindowDays};

/// The indicators [`CustomerProjection::indicators_step`] moves: the
/// only ones that differ between two time-driven decisions it steps.
pub const DAY_FIGURES: [IndicatorName; 3] = [
    IndicatorName::OrdersPerMonth12m,
    IndicatorName::TenureDays,
    IndicatorName::DaysSinceLastOrder,
];

/// How an indicator moves as business days pass with the projection
/// unchanged, over a run of days in which no activity leaves the window
/// and no open invoice falls due (see [`CustomerProjection::quiet_through`]):
/// `Some(true)` when it can only grow (tenure, recency, and the days late
/// of the invoices overdue: `avg_days_late`, `max_days_late`,
/// `oldest_overdue_days`), `Some(false)` when it can only fall
/// (`orders_per_month_12m`: the same orders over a span that grows until
/// the customer is as old as the window); `None` for the indicators that
/// stay over such a run. What lets a policy prove that such a run of
/// time-driven decisions cannot raise a tier
/// (`Policy::day_figures_only_lower`).
pub const fn moves_with_days(name: IndicatorName) -> Option<bool> {
    match name {
        IndicatorName::OrdersPerMonth12m => Some(false),
        IndicatorName::TenureDays
        | IndicatorName::DaysSinceLastOrder
        | IndicatorName::AvgDaysLate
        | IndicatorName::MaxDaysLate
        | IndicatorName::OldestOverdueDays => Some(true),
        _ => None,
    }
}

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed the projection.
    Applied,
    /// The same `event_id` (or the same fact: an order or invoice held
    /// already, a payment, return or credit note of the same id) was
    /// applied before: nothing changed.
    Duplicate,
    /// The event lies before the window at the projection's watermark.
    Stale,
}

/// The window and business calendar a projection is folded under (from
/// the policy: `window_months`, `time_zone`).
#[derive(Debug, Clone, PartialEq)]
pub struct FoldRules {
    pub window: Window,
    pub calendar: BusinessCalendar,
    /// The policy's assessment indicators: what an assessment event may
    /// set, how long it counts, and the slot its value takes in
    /// [`Indicators::assessed`].
    pub assessments: AssessmentRules,
    /// The population's RFM quintile cut points the `rfm_*` indicators
    /// map a customer's figures through (set by the engine, which ranks
    /// the population; empty, so unknown scores, until then).
    pub rfm: crate::rank::RfmQuintiles,
}

impl FoldRules {
    pub fn new(window_months: u32, calendar: BusinessCalendar) -> Self {
        Self {
            window: Window::months(window_months),
            calendar,
            assessments: AssessmentRules::default(),
            rfm: crate::rank::RfmQuintiles::default(),
        }
    }

    /// The same rules with these assessment indicators (tests, tools).
    pub fn with_assessments(mut self, assessments: AssessmentRules) -> Self {
        self.assessments = assessments;
        self
    }

    /// A window of `window_months` in UTC business days (tests, tools).
    pub fn utc(window_months: u32) -> Self {
        Self::new(window_months, BusinessCalendar::utc())
    }

    /// First business day of the window at instant `t`.
    pub fn window_start(&self, t: Timestamp) -> Day {
        self.window.start(self.calendar.day(t))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum OrderState {
    /// Only a return or cancellation has been seen so far.
    Pending,
    Placed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OrderRec {
    state: OrderState,
    /// Business day of the placement (of the first event seen, while pending).
    day: Day,
    at: Timestamp,
    amount: i64,
    cost: Option<i64>,
    /// Returned amount, all returns together (capped by `amount` when used).
    returned: i64,
    /// Cost taken back by returns that named it.
    returned_cost: i64,
    /// Returned amount of returns without a cost (pro rata).
    returned_uncosted: i64,
    /// A cancellation arrived before the placement.
    cancel_pending: bool,
}

impl OrderRec {
    fn pending(day: Day, at: Timestamp) -> Self {
        Self {
            state: OrderState::Pending,
            day,
            at,
            amount: 0,
            cost: None,
            returned: 0,
            returned_cost: 0,
            returned_uncosted: 0,
            cancel_pending: false,
        }
    }

    /// What the order adds to its day now. Nothing unless placed and not
    /// cancelled; a full return counts like a cancellation.
    fn figures(&self) -> OrderFigures {
        if self.state != OrderState::Placed {
            return OrderFigures::default();
        }
        let amount = i128::from(self.amount);
        let returned = i128::from(self.returned).min(amount);
        let net = amount - returned;
        if net <= 0 {
            return OrderFigures::default();
        }
        let Some(cost) = self.cost.map(i128::from) else {
            return OrderFigures {
                amount: net,
                orders: 1,
                ..OrderFigures::default()
            };
        };
        let uncosted = i128::from(self.returned_uncosted).min(amount);
        let pro_rata = if amount > 0 {
            cost * uncosted / amount
        } else {
            0
        };
        let taken = (i128::from(self.returned_cost) + pro_rata).min(cost);
        OrderFigures {
            amount: net,
            costed_amount: net,
            cost: cost - taken,
            orders: 1,
        }
    }

    fn counts(&self) -> bool {
        self.figures().orders > 0
    }

    /// Whether the order's unpaid invoices are void: it was cancelled
    /// (also before its placement arrived), or placed and returned in
    /// full. Nothing is owed for goods taken back. An order of no amount
    /// (free goods) is never returned in full: its invoice (freight, say)
    /// stands until a credit note voids it.
    fn voids_invoices(&self) -> bool {
        match self.state {
            OrderState::Cancelled => true,
            _ if self.cancel_pending => true,
            OrderState::Placed => self.amount > 0 && self.returned >= self.amount,
            OrderState::Pending => false,
        }
    }
}

/// What a sum credited to an invoice is: the customer paying, or a
/// credit note (part of it no longer owed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toward {
    Payment,
    Credit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum InvoiceState {
    /// Only payments (or a credit note) have been seen so far.
    Unissued,
    Open,
    Settled,
    Void,
}

/// The rare part of an invoice record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct InvoicePayments {
    /// Payments as paid and their base values: while the invoice is
    /// unissued, every payment seen; once issued, those in another
    /// currency than the invoice's, which are converted together (see
    /// [`InvoiceRec::credit`]).
    early: Vec<(Amount, i64)>,
    /// Hashes of the payment events (and credit notes) that left the
    /// invoice unsettled: an open invoice outlives the window's dedupe
    /// set, and a resent payment must not count twice.
    applied: Vec<u64>,
    /// Every payment that left the invoice unsettled (held while unissued,
    /// or credited), with its instant and base value: when the payments,
    /// taken in event time, first covered the invoice
    /// ([`InvoiceRec::covered_at`]), whatever order they arrived in.
    timed: Vec<(Timestamp, Amount, i64)>,
    /// Some of those payments were stored before their instants were
    /// (store format 3 or older): the latest payment's instant stands in.
    untimed: bool,
}

/// [`InvoicePayments`] in a binary format: a tuple of a header, the early
/// payments (as many as the header says), the applied hashes, then the
/// timed payments and the `untimed` flag. Before store format 4 the
/// header was the number of early payments alone (the length of a
/// sequence) and the tuple ended with the applied hashes; the header of
/// the current form adds [`TIMED`], which no early list reaches, so both
/// are read (the marker, as the window sums' codec tells its two forms
/// apart: the store stays ignorant of the state's layout). Human-readable
/// formats write the fields by name.
mod invoice_payments_codec {
    use serde::de::{Error as _, SeqAccess, Visitor};
    use serde::ser::{Error as _, SerializeTuple as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Amount, InvoicePayments, Timestamp};

    /// Added to the number of early payments in the current form's header
    /// (a 5-byte varint): an early list of 2^31 payments would not fit in
    /// memory, so no header of the older form reaches it.
    const TIMED: u64 = 1 << 31;

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "InvoicePayments")]
    struct Named {
        early: Vec<(Amount, i64)>,
        applied: Vec<u64>,
        /// Absent before store format 4: no instant is known then.
        #[serde(default)]
        timed: Vec<(Timestamp, Amount, i64)>,
        #[serde(default = "untimed_before_format_4")]
        untimed: bool,
    }

    fn untimed_before_format_4() -> bool {
        true
    }

    impl Serialize for InvoicePayments {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                return Named::serialize(self, s);
            }
            let header = u64::try_from(self.early.len())
                .ok()
                .and_then(|n| n.checked_add(TIMED))
                .ok_or_else(|| S::Error::custom("too many early payments"))?;
            let mut t = s.serialize_tuple(self.early.len() + 4)?;
            t.serialize_element(&header)?;
            for e in &self.early {
                t.serialize_element(e)?;
            }
            t.serialize_element(&self.applied)?;
            t.serialize_element(&self.timed)?;
            t.serialize_element(&self.untimed)?;
            t.end()
        }
    }

    impl<'de> Deserialize<'de> for InvoicePayments {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                return Named::deserialize(d);
            }
            // The tuple's length is not known before its header: read as
            // many elements as the header says (postcard reads a tuple's
            // elements one after another, with no length of its own).
            d.deserialize_tuple(usize::MAX, Form)
        }
    }

    struct Form;

    impl<'de> Visitor<'de> for Form {
        type Value = InvoicePayments;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an invoice's payments")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let missing = || A::Error::custom("an invoice's payments end early");
            let header: u64 = seq.next_element()?.ok_or_else(missing)?;
            let timed_form = header >= TIMED;
            let n = if timed_form { header - TIMED } else { header };
            let n = usize::try_from(n).map_err(|_| A::Error::custom("too many early payments"))?;
            let mut early = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                early.push(seq.next_element()?.ok_or_else(missing)?);
            }
            let applied = seq.next_element()?.ok_or_else(missing)?;
            if !timed_form {
                return Ok(InvoicePayments {
                    early,
                    applied,
                    timed: Vec::new(),
                    untimed: true,
                });
            }
            let timed = seq.next_element()?.ok_or_else(missing)?;
            let untimed = seq.next_element()?.ok_or_else(missing)?;
            Ok(InvoicePayments {
                early,
                applied,
                timed,
                untimed,
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InvoiceRec {
    state: InvoiceState,
    /// Business day of the issue (of the first event seen, while unissued).
    day: Day,
    /// Hash of the order it bills (of the empty id when none is named;
    /// a cancellation always names one).
    order: u64,
    due_day: Day,
    /// As billed, in its own currency.
    billed: Amount,
    /// Its value in base minor units.
    base: i64,
    /// Paid so far, in the invoice's currency.
    paid: i128,
    /// Early and partial payments: rare, so boxed.
    extra: Option<Box<InvoicePayments>>,
    last_paid_at: Option<Timestamp>,
    /// A credit note arrived before the issue.
    void_pending: bool,
}

impl InvoiceRec {
    fn is_open(&self) -> bool {
        self.state == InvoiceState::Open
    }

    fn unissued(day: Day) -> Self {
        Self {
            state: InvoiceState::Unissued,
            day,
            order: 0,
            due_day: Day::default(),
            billed: Amount::default(),
            base: 0,
            paid: 0,
            extra: None,
            last_paid_at: None,
            void_pending: false,
        }
    }

    /// Credit a payment to an issued invoice, in the invoice's currency.
    /// A payment in another currency is converted through the base values
    /// of the two, all such payments together: instalments whose base
    /// values add up to the invoice's settle it, where converting each
    /// alone would round every one down and leave a few minor units owed
    /// for ever.
    fn credit(&mut self, paid: Amount, base: i64) {
        let (billed, invoice_base) = (i128::from(self.billed.minor), i128::from(self.base));
        let own = if paid.currency == self.billed.currency {
            i128::from(paid.minor)
        } else if invoice_base > 0 {
            let foreign = &mut self.extra.get_or_insert_with(Box::default).early;
            let before: i128 = foreign.iter().map(|(_, b)| i128::from(*b)).sum();
            foreign.push((paid, base));
            let after = before + i128::from(base);
            converted(after, billed, invoice_base) - converted(before, billed, invoice_base)
        } else {
            billed
        };
        self.paid = self.paid.saturating_add(own);
    }

    /// When the payments, taken in event time, first covered the invoice,
    /// as [`Self::credit`] credits them: those kept in `timed`, and
    /// `current`, the one just credited (not kept when it settles the
    /// invoice). `None` when some payment's instant is not known (see
    /// `InvoicePayments::untimed`) or they never did.
    ///
    /// In the order payments arrive, a later overpayment seen before the
    /// payment that settled the invoice on time (payments before their
    /// invoice, a rebuild reading the topics at different paces) would
    /// settle it only with the later one, late.
    fn covered_at(&self, current: Option<(Timestamp, Amount, i64)>) -> Option<Timestamp> {
        let Some(kept) = self.extra.as_deref() else {
            // No payment kept: `current` is the only one, and it covers the
            // invoice (it is settled by it).
            return current.map(|(at, _, _)| at);
        };
        if kept.untimed {
            return None;
        }
        let mut payments: Vec<(Timestamp, Amount, i64)> =
            kept.timed.iter().copied().chain(current).collect();
        // Stable: payments of one instant in the order they arrived.
        payments.sort_by_key(|(at, _, _)| *at);
        let (billed, invoice_base) = (i128::from(self.billed.minor), i128::from(self.base));
        let (mut own, mut foreign) = (0i128, 0i128);
        for (at, paid, base) in payments {
            if paid.currency == self.billed.currency {
                own = own.saturating_add(i128::from(paid.minor));
            } else if invoice_base > 0 {
                foreign = foreign.saturating_add(i128::from(base));
            } else {
                return Some(at);
            }
            if own.saturating_add(converted(foreign, billed, invoice_base)) >= billed {
                return Some(at);
            }
        }
        None
    }

    /// The unpaid part, in base minor units.
    fn unpaid_base(&self) -> i128 {
        let billed = i128::from(self.billed.minor);
        let left = (billed - self.paid).max(0);
        if left == billed {
            i128::from(self.base)
        } else if left == 0 || billed <= 0 {
            0
        } else {
            i128::from(self.base) * left / billed
        }
    }
}

/// Payments in other currencies than an invoice's, `foreign_base` base
/// minor units of them together, in the invoice's minor units: through
/// the base values of the two (`billed` is worth `invoice_base`), rounded
/// down once for all of them; nothing for an invoice worth nothing.
fn converted(foreign_base: i128, billed: i128, invoice_base: i128) -> i128 {
    if invoice_base > 0 {
        foreign_base.saturating_mul(billed) / invoice_base
    } else {
        0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintRec {
    pub opened_at: Option<Timestamp>,
    pub severity: Severity,
    pub category: String,
    pub resolved_at: Option<Timestamp>,
    /// Business day of the opening (of the resolution while the opening is missing).
    pub day: Day,
    /// The resolution deadline and the tier it was set from: the
    /// customer's tier at the opening and its `complaint_sla_hours`
    /// (see `CustomerState::process`). Set once; a later tier change does
    /// not move it.
    pub deadline: Option<Deadline>,
    /// A `ComplaintOverdue` notice was published for it (once).
    pub overdue_announced: bool,
}

/// When a complaint must be resolved by, fixed at its opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub at: Timestamp,
    /// The tier whose SLA set it.
    pub tier: String,
    pub sla_hours: u32,
}

impl ComplaintRec {
    pub fn is_open(&self) -> bool {
        self.opened_at.is_some() && self.resolved_at.is_none()
    }

    /// Whether the complaint has passed its deadline unresolved by `now`
    /// (resolved after its deadline counts: it was overdue then).
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.opened_at.is_some()
            && self
                .deadline
                .as_ref()
                .is_some_and(|d| d.at <= now && self.resolved_at.is_none_or(|r| r > d.at))
    }
}

/// An exact money sum as an indicator value. Sums almost always fit an
/// `i64`, whose conversion is one instruction; `i128` to `f64` is a
/// library call.
#[inline]
fn money_f64(v: i128) -> f64 {
    match i64::try_from(v) {
        Ok(small) => small as f64,
        Err(_) => big_money_f64(v),
    }
}

/// Apart and cold, so the compiler does not compute the library call
/// alongside the one-instruction case.
#[cold]
#[inline(never)]
fn big_money_f64(v: i128) -> f64 {
    v as f64
}

/// Keys of the id maps are already [`stable_hash`]es: hashing them again
/// (std's SipHash) would only cost time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrehashedKey(u64);

impl std::hash::Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FNV-1a as a `Hasher`, for maps keyed by customer id on the hot path
/// (ids come from trusted producers, so flooding resistance is not needed).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A customer id as the service holds it in its tables: inline up to 24
/// bytes (every id the generators and most ERPs make), so a table's key
/// is in its bucket and a lookup compares it without a trip to the heap,
/// and copying one allocates nothing. It hashes exactly as the `str` it
/// holds.
pub type CustomerId = compact_str::CompactString;

/// A `HashMap` keyed by [`CustomerId`], hashed with [`Fnv`] (as its
/// `str`): the engine's tables and the fold's map of states.
pub type CustomerMap<V> = HashMap<CustomerId, V, std::hash::BuildHasherDefault<Fnv>>;

/// 64-bit FNV-1a: a stable hash for persisted id sets (std's hashers are not
/// guaranteed stable across Rust releases). Collisions among one customer's
/// ids within one window are negligible (~n^2 / 2^65).
pub fn stable_hash(s: &str) -> u64 {
    fnv_extend(0xcbf2_9ce4_8422_2325, s.as_bytes())
}

fn fnv_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The ids an applied event is remembered under: its `event_id`, and the
/// fact it reports when its source names one ([`EventKind::business_key`]).
/// Either seen again makes it a duplicate: a resend under another event
/// id with the same payment id, and one under the same event id that
/// gained (or changed) its payment id on the way, both count once (and so
/// for returns and credit notes).
#[derive(Debug, Clone, Copy)]
struct AppliedIds {
    event: u64,
    fact: Option<u64>,
}

impl AppliedIds {
    /// The fact's hash frames its kind, scope and id with bytes no UTF-8
    /// text holds (0xFC to 0xFF), so it never hashes the input of an
    /// event id, and one kind's never another's (an ERP may number an
    /// invoice as its order, and payments, returns and credit notes from
    /// 1 each).
    fn of(event: &Event) -> Self {
        let fact = event.kind.business_key().map(|(scope, id)| {
            let kind: &[u8] = match event.kind {
                EventKind::PaymentReceived { .. } => &[0xFF, 0xFF],
                EventKind::OrderReturned { .. } => &[0xFF, 0xFE],
                EventKind::InvoiceCredited { .. } => &[0xFF, 0xFD],
                // No other kind names a fact of its own.
                _ => &[0xFF, 0xFC],
            };
            let h = fnv_extend(0xcbf2_9ce4_8422_2325, kind);
            let h = fnv_extend(h, scope.as_bytes());
            let h = fnv_extend(h, &[0xFF]);
            fnv_extend(h, id.as_bytes())
        });
        Self {
            event: stable_hash(&event.event_id),
            fact,
        }
    }

    /// Whether `known` holds either id.
    fn any(&self, known: impl Fn(&u64) -> bool) -> bool {
        known(&self.event) || self.fact.as_ref().is_some_and(known)
    }

    fn each(&self) -> impl Iterator<Item = u64> {
        std::iter::once(self.event).chain(self.fact)
    }
}

/// A projection's invoices: all, or (inside [`deciding_only`]) the open
/// ones. No decision, figure or view reads the others: the overdue
/// figures read the invoices `unsettled` lists, which are the open ones
/// (an invoice enters it as it opens and leaves it as it settles or is
/// voided).
fn open_unless_deciding_only<'de, D>(d: D) -> Result<IdMap<InvoiceRec>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    idmap::some_if_deciding_only(d, InvoiceRec::is_open)
}

/// A projection's profile: whole, or (inside [`deciding_only`]) without
/// the texts no decision, figure or view reads (name, industry, region),
/// read past as bytes and left empty.
fn profile_unless_deciding_only<'de, D>(d: D) -> Result<Option<Box<ProfileState>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    if !idmap::is_deciding_only() {
        return Option::<Box<ProfileState>>::deserialize(d);
    }
    /// [`Profile`]'s fields as serialized, its texts borrowed.
    #[derive(Deserialize)]
    struct Read<'a> {
        #[serde(borrow)]
        _name: &'a [u8],
        #[serde(borrow)]
        _industry: &'a [u8],
        #[serde(borrow)]
        _region: &'a [u8],
        purchase_potential: Option<Money>,
        account_manager: crate::Text,
        customer_since: Option<Timestamp>,
        #[serde(with = "written_at")]
        written_at: [Option<Timestamp>; 6],
    }
    let read: Option<Read<'de>> = Option::deserialize(d)?;
    Ok(read.map(|r| {
        Box::new(ProfileState {
            profile: Profile {
                purchase_potential: r.purchase_potential,
                account_manager: r.account_manager,
                customer_since: r.customer_since,
                ..Profile::default()
            },
            written_at: r.written_at,
        })
    }))
}

/// The merged profile and when each field was last written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ProfileState {
    profile: Profile,
    /// Event time of the update that last wrote each field.
    #[serde(with = "written_at")]
    written_at: [Option<Timestamp>; 6],
}

/// [`ProfileState::written_at`] in a binary format: six slots, each none,
/// an instant, or "the same instant as the last slot that has one". One
/// update usually writes several fields at once: six instants took about
/// 42 bytes, the same in the new form about 12. Postcard writes the first
/// two kinds of slot as it writes an `Option` (a variant index of 0 or 1,
/// then the instant), so the older form, six options, reads as it is.
/// Human-readable formats write the six options.
mod written_at {
    use serde::de::Error as _;
    use serde::ser::SerializeTuple as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::time::Timestamp;

    #[derive(Serialize, Deserialize)]
    enum Slot {
        None,
        Some(Timestamp),
        Same,
    }

    pub(super) fn serialize<S: Serializer>(
        written: &[Option<Timestamp>; 6],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return written.serialize(s);
        }
        let mut t = s.serialize_tuple(written.len())?;
        let mut last = None;
        for at in written {
            let slot = match *at {
                None => Slot::None,
                Some(at) if last == Some(at) => Slot::Same,
                Some(at) => {
                    last = Some(at);
                    Slot::Some(at)
                }
            };
            t.serialize_element(&slot)?;
        }
        t.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[Option<Timestamp>; 6], D::Error> {
        if d.is_human_readable() {
            return <[Option<Timestamp>; 6]>::deserialize(d);
        }
        let slots = <[Slot; 6]>::deserialize(d)?;
        let mut written = [None; 6];
        let mut last = None;
        for (at, slot) in written.iter_mut().zip(slots) {
            *at = match slot {
                Slot::None => None,
                Slot::Some(t) => {
                    last = Some(t);
                    Some(t)
                }
                Slot::Same => Some(last.ok_or_else(|| {
                    D::Error::custom(
                        "a profile field written at the same instant as none before it",
                    )
                })?),
            };
        }
        Ok(written)
    }
}

/// Totals over the open invoices due before `before`: what scoring reads
/// of the overdue ones, kept as invoices open, are paid and close, so a
/// decision adds only the invoices that fell due since `before` (or takes
/// away those due from a decision's day on) instead of walking every
/// overdue invoice: a busy customer that pays late has hundreds, and
/// every event was a walk over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DueTotals {
    before: Day,
    count: i64,
    /// Sum of their due days (`Day`'s number).
    due_days: i64,
    /// Sum of their unpaid parts, in base minor units.
    unpaid: i128,
}

impl DueTotals {
    fn add(&mut self, due_day: Day, unpaid: i128) {
        self.count += 1;
        self.due_days += i64::from(due_day.0);
        self.unpaid += unpaid;
    }

    fn take(&mut self, due_day: Day, unpaid: i128) {
        self.count -= 1;
        self.due_days -= i64::from(due_day.0);
        self.unpaid -= unpaid;
    }
}

/// A projection's [`DueTotals`]: `None` until its first event after it was
/// made or decoded (decisions before then walk the overdue invoices).
/// A cache: two projections that hold the same facts are equal whatever
/// it holds.
#[derive(Debug, Clone, Copy, Default)]
struct DueCache(Option<DueTotals>);

impl PartialEq for DueCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The open invoices past due on a day: how many, their days late summed,
/// the oldest's days late, and their unpaid part (base minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Overdue {
    count: i64,
    days_late: i64,
    oldest: i64,
    unpaid: i128,
}

/// Heap bytes of an ordered map of `len` entries, about: a B-tree's nodes
/// hold their entries at about two thirds full.
fn btree<K, V>(len: usize) -> usize {
    len * (std::mem::size_of::<K>() + std::mem::size_of::<V>()) * 3 / 2
}

/// Everything tierd knows about one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerProjection {
    /// The window's day buckets and their totals.
    window: WindowDays,
    /// Days late of the late settlements in the window's days: value ->
    /// count.
    late: BTreeMap<u32, u32>,
    /// Net order amount per business month (for growth).
    months: BTreeMap<Month, i128>,
    /// Orders by id, for cancellations and returns: left empty by a
    /// decode for deciding only (see [`deciding_only`]).
    #[serde(deserialize_with = "idmap::unless_deciding_only")]
    orders: IdMap<OrderRec>,
    /// Invoices by id: only the open ones in a decode for deciding only
    /// (see [`deciding_only`]; the overdue figures read those, through
    /// `unsettled`).
    #[serde(deserialize_with = "open_unless_deciding_only")]
    invoices: IdMap<InvoiceRec>,
    /// Open invoices by due day: scoring scans only the overdue prefix.
    unsettled: BTreeSet<(Day, u64)>,
    /// Totals over the first of them, kept as they open, pay and close
    /// (see [`DueTotals`]). Not stored.
    #[serde(skip)]
    due: DueCache,
    complaints: BTreeMap<String, ComplaintRec>,
    /// Complaints opened and not resolved, whatever their age.
    open_complaints: u32,
    /// Hashes of applied event ids (and of the payment, return and credit
    /// note ids their sources gave, see `AppliedIds`) -> the day they are
    /// kept until: left empty by a decode for deciding only (see
    /// [`deciding_only`]).
    /// Packed in binary formats (see [`applied`]).
    #[serde(with = "applied")]
    seen: IdMap<Day>,
    /// The merged profile, boxed: most events never touch it.
    #[serde(deserialize_with = "profile_unless_deciding_only")]
    profile: Option<Box<ProfileState>>,
    /// The profile's figures the indicators read on every event, kept
    /// beside the box so scoring does not chase the pointer.
    customer_since: Option<Timestamp>,
    purchase_potential: Option<Money>,
    /// Earliest placement ever (tenure).
    first_order_at: Option<Timestamp>,
    /// Latest placement that still counted when its day left the window
    /// (recency past the window).
    last_order_before_window: Option<Timestamp>,
    /// Watermark: latest `occurred_at` applied.
    clock: Option<Timestamp>,
    /// First day of the window at the watermark.
    window_start: Day,
    /// The id maps are swept when the window start reaches this day (the
    /// first day of the month after the last sweep).
    next_sweep: Day,
    /// Qualitative assessments (see [`assessments`]), boxed: most
    /// customers have none.
    #[serde(default)]
    assessments: Option<Box<AssessmentBook>>,
}

impl CustomerProjection {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy without the applied event ids, the orders by id, the
    /// invoices not open and the profile's name, industry and region, as
    /// [`deciding_only`] decodes one (see
    /// `CustomerState::clone_deciding_only`): to read only.
    pub fn clone_deciding_only(&self) -> Self {
        let Self {
            window,
            late,
            months,
            orders: _,
            invoices,
            unsettled,
            due,
            complaints,
            open_complaints,
            seen: _,
            profile,
            customer_since,
            purchase_potential,
            first_order_at,
            last_order_before_window,
            clock,
            window_start,
            next_sweep,
            assessments,
        } = self;
        Self {
            window: window.clone(),
            late: late.clone(),
            months: months.clone(),
            orders: IdMap::default(),
            invoices: {
                let mut open = IdMap::default();
                for (key, rec) in invoices.iter().filter(|(_, rec)| rec.is_open()) {
                    open.insert(*key, rec.clone());
                }
                open
            },
            unsettled: unsettled.clone(),
            due: *due,
            complaints: complaints.clone(),
            open_complaints: *open_complaints,
            seen: IdMap::default(),
            profile: profile.as_ref().map(|p| {
                Box::new(ProfileState {
                    profile: Profile {
                        purchase_potential: p.profile.purchase_potential,
                        account_manager: p.profile.account_manager.clone(),
                        customer_since: p.profile.customer_since,
                        ..Profile::default()
                    },
                    written_at: p.written_at,
                })
            }),
            customer_since: *customer_since,
            purchase_potential: *purchase_potential,
            first_order_at: *first_order_at,
            last_order_before_window: *last_order_before_window,
            clock: *clock,
            window_start: *window_start,
            next_sweep: *next_sweep,
            assessments: assessments.clone(),
        }
    }

    /// Whether order `key` counts now: placed, in the window, not
    /// cancelled nor returned in full.
    pub(crate) fn order_counts(&self, key: u64) -> bool {
        self.orders
            .get(&key)
            .is_some_and(|o| o.day >= self.window_start && o.counts())
    }

    /// Whether order `key` no longer counts and no order of its day does
    /// (after a cancellation or a full return took it out).
    pub(crate) fn order_left_its_day_empty(&self, key: u64) -> bool {
        self.orders.get(&key).is_some_and(|o| {
            !o.counts()
                && self
                    .window
                    .days
                    .get(o.day)
                    .is_none_or(|b| b.last_order_at.is_none())
        })
    }

    /// The window's first day at the watermark.
    pub(crate) fn window_first_day(&self) -> Day {
        self.window_start
    }

    /// When order `key` was placed, while its day is in the window (a
    /// cancelled or returned order's too; `None` for a correction seen
    /// before its placement, or an order not known).
    pub(crate) fn order_placed_in_window(&self, key: u64) -> Option<Timestamp> {
        self.orders
            .get(&key)
            .filter(|o| o.state != OrderState::Pending && o.day >= self.window_start)
            .map(|o| o.at)
    }

    /// The watermark: the latest `occurred_at` applied (`None` before any).
    pub fn clock(&self) -> Option<Timestamp> {
        self.clock
    }

    /// Bytes this projection holds on the heap, about, beyond its own
    /// inline size (see `CustomerState::heap_size`). Counts capacities,
    /// not what is in use; the ordered maps by their length (a B-tree's
    /// nodes hold its entries at about two thirds full).
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let complaints = self
            .complaints
            .iter()
            .map(|(id, c)| id.capacity() + c.category.capacity())
            .sum::<usize>();
        self.window.days.heap_size()
            + btree::<u32, u32>(self.late.len())
            + btree::<Month, i128>(self.months.len())
            + self.orders.heap_size()
            + self.invoices.heap_size()
            + btree::<(Day, u64), ()>(self.unsettled.len())
            + btree::<String, ComplaintRec>(self.complaints.len())
            + complaints
            + self.seen.heap_size()
            + self.profile.as_ref().map_or(0, |p| {
                size_of::<ProfileState>()
                    + heap_bytes(&p.profile.name)
                    + heap_bytes(&p.profile.industry)
                    + heap_bytes(&p.profile.region)
                    + heap_bytes(&p.profile.account_manager)
            })
            + self
                .assessments
                .as_ref()
                .map_or(0, |a| size_of::<AssessmentBook>() + a.heap_size())
    }

    /// Fold one validated event in. Infallible: every invariant it needs was
    /// checked by [`Event::validate`].
    pub fn apply(&mut self, event: &Event, rules: &FoldRules) -> Applied {
        let ids = AppliedIds::of(event);
        let id = ids.event;
        if ids.any(|k| self.seen.contains_key(k)) || self.republished(&event.kind) {
            return Applied::Duplicate;
        }
        let at = event.occurred_at;
        let day = rules.calendar.day(at);
        let watermark_day = match self.clock {
            Some(c) if c >= at => rules.calendar.day(c),
            _ => {
                self.clock = Some(at);
                self.advance_window(rules.window.start(day));
                day
            }
        };
        // Up to the watermark's day, not the event's: decisions are made
        // at the watermark (or later), so totals kept up to an older day
        // (an invoice or payment delivered after later orders, from
        // another topic) would be walked forward again by every decision
        // until a later event moved them.
        self.advance_due(watermark_day);
        let in_window = day >= self.window_start;
        let fresh = if in_window {
            Applied::Applied
        } else {
            Applied::Stale
        };
        let applied = match &event.kind {
            EventKind::OrderPlaced {
                order_id,
                amount,
                cost,
            } => {
                if in_window {
                    self.order_placed(stable_hash(order_id), day, at, *amount, *cost);
                }
                fresh
            }
            EventKind::OrderCancelled { order_id } => {
                let key = stable_hash(order_id);
                match self.order_event(key, day, at, in_window, |rec| {
                    if rec.state == OrderState::Pending {
                        rec.cancel_pending = true;
                    } else {
                        rec.state = OrderState::Cancelled;
                    }
                }) {
                    // An order whose day left the window counts no more,
                    // but the invoices it left unpaid are still owed:
                    // its cancellation voids them, however old.
                    Applied::Stale => {
                        let voided = self.void_invoices_of(key);
                        let remembered = in_window && self.remember_cancellation(key, day, at);
                        if voided || remembered {
                            Applied::Applied
                        } else {
                            Applied::Stale
                        }
                    }
                    applied => applied,
                }
            }
            EventKind::OrderReturned {
                order_id,
                amount,
                cost,
                ..
            } => self.order_event(stable_hash(order_id), day, at, in_window, |rec| {
                rec.returned = rec.returned.saturating_add(amount.0);
                match cost {
                    Some(c) => rec.returned_cost = rec.returned_cost.saturating_add(c.0),
                    None => rec.returned_uncosted = rec.returned_uncosted.saturating_add(amount.0),
                }
            }),
            EventKind::InvoiceIssued {
                invoice_id,
                order_id,
                amount,
                billed,
                due_at,
            } => {
                if in_window {
                    self.invoice_issued(
                        stable_hash(invoice_id),
                        stable_hash(order_id),
                        day,
                        *billed,
                        *amount,
                        rules.calendar.day(*due_at),
                        rules,
                    );
                }
                fresh
            }
            EventKind::InvoiceCancelled { invoice_id } => {
                self.invoice_cancelled(stable_hash(invoice_id), day, in_window)
            }
            EventKind::PaymentReceived {
                invoice_id,
                amount,
                paid: sum,
                ..
            }
            | EventKind::InvoiceCredited {
                invoice_id,
                amount,
                credited: sum,
                ..
            } => {
                let toward = match event.kind {
                    EventKind::PaymentReceived { .. } => Toward::Payment,
                    _ => Toward::Credit,
                };
                self.toward_invoice(
                    invoice_id, toward, ids, day, at, *sum, *amount, in_window, rules,
                )
            }
            EventKind::ComplaintOpened {
                complaint_id,
                severity,
                category,
            } => {
                if in_window {
                    self.complaint_opened(complaint_id, day, at, *severity, category);
                }
                fresh
            }
            EventKind::ComplaintResolved { complaint_id } => {
                self.complaint_resolved(complaint_id, day, at, in_window)
            }
            EventKind::ProfileUpdated(update) => self.profile_updated(update, at),
            EventKind::CustomerAssessed {
                indicator,
                value,
                assessed_by,
                note,
            } => {
                let Some((_, spec)) = rules.assessments.find(indicator) else {
                    return Applied::Stale;
                };
                if !spec.in_scale(*value) {
                    return Applied::Stale;
                }
                let book = self.assessments.get_or_insert_with(Box::default);
                if book.has_event(id) {
                    return Applied::Duplicate;
                }
                book.apply(Assessment {
                    indicator: indicator.clone(),
                    value: *value,
                    assessed_by: assessed_by.clone(),
                    note: note.clone(),
                    assessed_at: at,
                    expires_at: assessments::expiry(&rules.calendar, at, spec.valid_days),
                    event: id,
                });
                Applied::Applied
            }
        };
        if applied != Applied::Applied {
            return applied;
        }
        // Keep the ids for a whole window, also for an old event applied
        // because it closed an open record.
        let until = day.max(self.window_start);
        for key in ids.each() {
            self.seen.insert(key, until);
        }
        Applied::Applied
    }

    /// An order placed, or an invoice issued, that this projection holds
    /// already, under another event id (an ERP publishing it twice): the
    /// first counts, the second is a duplicate, checked before it moves
    /// anything (the watermark included).
    fn republished(&self, kind: &EventKind) -> bool {
        match kind {
            EventKind::OrderPlaced { order_id, .. } => self
                .orders
                .get(&stable_hash(order_id))
                .is_some_and(|o| o.state != OrderState::Pending),
            EventKind::InvoiceIssued { invoice_id, .. } => self
                .invoices
                .get(&stable_hash(invoice_id))
                .is_some_and(|i| i.state != InvoiceState::Unissued),
            // A complaint opens once: an opening sent again (a resend, or
            // a CRM "reopening" the same id) neither reopens a resolved
            // complaint nor moves its deadline.
            EventKind::ComplaintOpened { complaint_id, .. } => self
                .complaints
                .get(complaint_id)
                .is_some_and(|c| c.opened_at.is_some()),
            _ => false,
        }
    }

    /// Move the [`DueTotals`] up to `day` (built from the open invoices
    /// when the projection has none yet): the invoices that fell due since
    /// are added once, here, rather than at every decision after.
    fn advance_due(&mut self, day: Day) {
        let mut totals = match self.due.0 {
            Some(t) if t.before >= day => return,
            Some(t) => t,
            None => DueTotals {
                before: Day(i32::MIN),
                count: 0,
                due_days: 0,
                unpaid: 0,
            },
        };
        for (due_day, unpaid) in self.due_between(totals.before, day) {
            totals.add(due_day, unpaid);
        }
        totals.before = day;
        self.due.0 = Some(totals);
    }

    /// The open invoices due on the days `from..to` (`from <= to`), with
    /// their unpaid parts.
    fn due_between(&self, from: Day, to: Day) -> impl Iterator<Item = (Day, i128)> + '_ {
        self.unsettled
            .range((from, 0)..(to, 0))
            .filter_map(|(due_day, key)| {
                // Only open invoices are listed; a decode for deciding
                // only holds no other (see `open_unless_deciding_only`),
                // so the whole state reads none either.
                let invoice = self.invoices.get(key).filter(|i| i.is_open())?;
                Some((*due_day, invoice.unpaid_base()))
            })
    }

    /// Open invoice `key` was added to or taken from `unsettled` (`open`):
    /// the [`DueTotals`] follow it.
    fn due_moved(&mut self, key: u64, open: bool) {
        let (Some(totals), Some(inv)) = (self.due.0.as_mut(), self.invoices.get(&key)) else {
            return;
        };
        if inv.due_day < totals.before {
            if open {
                totals.add(inv.due_day, inv.unpaid_base());
            } else {
                totals.take(inv.due_day, inv.unpaid_base());
            }
        }
    }

    /// A payment moved open invoice `key`'s unpaid part from `was`: the
    /// [`DueTotals`] follow it.
    fn unpaid_moved(&mut self, key: u64, was: i128) {
        let (Some(totals), Some(inv)) = (self.due.0.as_mut(), self.invoices.get(&key)) else {
            return;
        };
        if inv.due_day < totals.before {
            totals.unpaid += inv.unpaid_base() - was;
        }
    }

    /// The open invoices past due on `today`.
    fn overdue(&self, today: Day) -> Overdue {
        let Some(mut totals) = self.due.0 else {
            return self.overdue_walk(today);
        };
        if today >= totals.before {
            for (due_day, unpaid) in self.due_between(totals.before, today) {
                totals.add(due_day, unpaid);
            }
        } else {
            for (due_day, unpaid) in self.due_between(today, totals.before) {
                totals.take(due_day, unpaid);
            }
        }
        // Open invoices are ordered by due day: the first is the oldest.
        let oldest = self
            .unsettled
            .first()
            .filter(|(due_day, _)| *due_day < today)
            .map_or(0, |(due_day, _)| i64::from(today.since(*due_day)));
        Overdue {
            count: totals.count,
            days_late: totals.count * i64::from(today.0) - totals.due_days,
            oldest,
            unpaid: totals.unpaid,
        }
    }

    /// [`Self::overdue`] by walking every overdue invoice: for a
    /// projection without totals yet, and what tests hold the totals to.
    fn overdue_walk(&self, today: Day) -> Overdue {
        let mut o = Overdue::default();
        for (due_day, unpaid) in self.due_between(Day(i32::MIN), today) {
            let days = i64::from(today.since(due_day));
            o.count += 1;
            o.days_late += days;
            o.oldest = o.oldest.max(days);
            o.unpaid += unpaid;
        }
        o
    }

    /// Move the window start forward, dropping what left the window.
    fn advance_window(&mut self, start: Day) {
        if start <= self.window_start {
            return;
        }
        let month_turned = start >= self.next_sweep;
        self.window_start = start;
        while let Some(bucket) = self.window.days.pop_before(start) {
            self.window.totals.sub(&bucket.sums);
            for d in bucket.late {
                if let Some(n) = self.late.get_mut(&d) {
                    *n -= 1;
                    if *n == 0 {
                        self.late.remove(&d);
                    }
                }
            }
            if let Some(t) = bucket.last_order_at {
                self.last_order_before_window =
                    Some(self.last_order_before_window.map_or(t, |l| l.max(t)));
            }
        }
        // Growth looks back six complete months, the streak over the window.
        let keep_from = start.month().minus(7);
        while self
            .months
            .first_key_value()
            .is_some_and(|(m, _)| *m < keep_from)
        {
            self.months.pop_first();
        }
        // The id maps are swept when the window's first month changes, not
        // every day: an entry kept a few days longer is dead weight, never a
        // figure (every lookup checks the window itself), and a sweep costs
        // a pass over the maps.
        if month_turned {
            self.next_sweep = start.month().plus(1).first_day();
            self.seen.retain(|_, d| *d >= start);
            self.orders.retain(|_, o| o.day >= start);
            // Open invoices are owed until paid; a void one partly paid
            // may yet be settled by the rest (see `settle_if_paid`). One
            // voided with nothing paid (credit notes are not payments) is
            // forgotten.
            self.invoices.retain(|_, i| {
                i.day >= start
                    || i.state == InvoiceState::Open
                    || (i.state == InvoiceState::Void && i.last_paid_at.is_some())
            });
            self.complaints.retain(|_, c| c.day >= start || c.is_open());
        }
    }

    fn bucket(&mut self, day: Day) -> &mut DayBucket {
        self.window.days.entry(day)
    }

    fn drop_if_empty(&mut self, day: Day) {
        self.window.days.remove_if_empty(day);
    }

    /// Add `delta` to `day`'s bucket and the totals.
    fn add_sums(&mut self, day: Day, delta: &Sums) {
        if delta.is_zero() || day < self.window_start {
            return;
        }
        self.bucket(day).sums.add(delta);
        self.window.totals.add(delta);
    }

    /// Apply the change of one order's figures.
    fn order_changed(&mut self, key: u64, before: OrderFigures) {
        let Some(rec) = self.orders.get(&key) else {
            return;
        };
        let (day, at, after) = (rec.day, rec.at, rec.figures());
        if after == before {
            return;
        }
        let delta = after.minus(before);
        if delta.amount != 0 {
            *self.months.entry(day.month()).or_default() += delta.amount;
        }
        // Orders are only ever changed while their day is in the window.
        self.window.totals.add(&delta);
        let bucket = self.window.days.entry(day);
        bucket.sums.add(&delta);
        if after.orders > 0 {
            bucket.last_order_at = Some(bucket.last_order_at.map_or(at, |l| l.max(at)));
            self.first_order_at = Some(self.first_order_at.map_or(at, |f| f.min(at)));
            return;
        }
        if before.orders > 0 {
            self.recompute_last_order(day);
            if self.first_order_at == Some(at) {
                self.first_order_at = self
                    .orders
                    .values()
                    .filter(|o| o.counts())
                    .map(|o| o.at)
                    .min();
            }
        }
        self.drop_if_empty(day);
    }

    /// When the orders of `day` that still count were placed.
    fn counted_orders_on(&self, day: Day) -> impl Iterator<Item = Timestamp> + '_ {
        self.orders
            .values()
            .filter(move |o| o.day == day && o.counts())
            .map(|o| o.at)
    }

    fn recompute_last_order(&mut self, day: Day) {
        let last = self.counted_orders_on(day).max();
        if let Some(b) = self.window.days.get_mut(day) {
            b.last_order_at = last;
        }
    }

    fn order_placed(
        &mut self,
        key: u64,
        day: Day,
        at: Timestamp,
        amount: Money,
        cost: Option<Money>,
    ) {
        let rec = self
            .orders
            .get_or_insert_with(key, || OrderRec::pending(day, at));
        if rec.state != OrderState::Pending {
            // Placed already (`apply` calls the event a duplicate first).
            return;
        }
        let before = rec.figures();
        rec.day = day;
        rec.at = at;
        rec.amount = amount.0;
        rec.cost = cost.map(|c| c.0);
        rec.state = if rec.cancel_pending {
            OrderState::Cancelled
        } else {
            OrderState::Placed
        };
        // Cancelled or returned in full before the placement was read.
        let voids = rec.voids_invoices();
        self.order_changed(key, before);
        if voids {
            self.void_invoices_of(key);
        }
    }

    /// A cancellation or return: update the record (a placeholder when the
    /// placement has not arrived) and apply the difference.
    fn order_event(
        &mut self,
        key: u64,
        day: Day,
        at: Timestamp,
        in_window: bool,
        update: impl FnOnce(&mut OrderRec),
    ) -> Applied {
        let window_start = self.window_start;
        let rec = match self.orders.get_mut(&key) {
            // Kept until the next sweep, but no longer in the window:
            // nothing of it counts.
            Some(rec) if rec.day < window_start => return Applied::Stale,
            Some(rec) => rec,
            None if in_window => self
                .orders
                .get_or_insert_with(key, || OrderRec::pending(day, at)),
            // The order left the window long ago: nothing of it counts.
            None => return Applied::Stale,
        };
        let before = rec.figures();
        let voided_before = rec.voids_invoices();
        update(rec);
        let voids_now = !voided_before && rec.voids_invoices();
        self.order_changed(key, before);
        if voids_now {
            // Cancelled or returned in full. Also for a cancellation seen
            // before its placement: invoices of the order issued already
            // (the placement may be older than the window, its record
            // swept) are void as well.
            self.void_invoices_of(key);
        }
        Applied::Applied
    }

    /// A cancellation (dated in the window) of order `key`, whose record
    /// is kept past the window until the next sweep: remembered as a
    /// placeholder of the cancellation's day, as it is once the record is
    /// swept, so that an invoice of the order issued later is void too
    /// whether or not the sweep came first. Whether there was such a
    /// record.
    fn remember_cancellation(&mut self, key: u64, day: Day, at: Timestamp) -> bool {
        if self
            .orders
            .get(&key)
            .is_none_or(|o| o.day >= self.window_start)
        {
            return false;
        }
        let mut rec = OrderRec::pending(day, at);
        rec.cancel_pending = true;
        self.orders.insert(key, rec);
        true
    }

    /// A cancelled (or fully returned) order's unpaid invoices are void;
    /// whether there were any.
    fn void_invoices_of(&mut self, order: u64) -> bool {
        let keys: Vec<u64> = self
            .invoices
            .iter()
            .filter(|(_, i)| i.order == order && i.state == InvoiceState::Open)
            .map(|(k, _)| *k)
            .collect();
        for key in &keys {
            self.void_invoice(*key);
        }
        !keys.is_empty()
    }

    fn void_invoice(&mut self, key: u64) {
        if let Some(rec) = self.invoices.get_mut(&key)
            && rec.state == InvoiceState::Open
        {
            // Its payments stay on it: the rest may still arrive (see
            // `settle_if_paid`).
            rec.state = InvoiceState::Void;
            let due = rec.due_day;
            self.unsettled.remove(&(due, key));
            self.due_moved(key, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invoice_issued(
        &mut self,
        key: u64,
        order: u64,
        day: Day,
        billed: Amount,
        base: Money,
        due_day: Day,
        rules: &FoldRules,
    ) {
        let rec = self
            .invoices
            .get_or_insert_with(key, || InvoiceRec::unissued(day));
        if rec.state != InvoiceState::Unissued {
            // Issued already (`apply` calls the event a duplicate first).
            return;
        }
        rec.state = InvoiceState::Open;
        rec.day = day;
        rec.order = order;
        rec.due_day = due_day;
        rec.billed = billed;
        rec.base = base.0;
        let early = rec
            .extra
            .as_mut()
            .map(|x| std::mem::take(&mut x.early))
            .unwrap_or_default();
        for (paid, base) in early {
            rec.credit(paid, base);
        }
        let void = rec.void_pending
            || self
                .orders
                .get(&order)
                .is_some_and(OrderRec::voids_invoices);
        self.unsettled.insert((due_day, key));
        self.due_moved(key, true);
        // Paid in full already, it is settled, void or not.
        self.settle_if_paid(key, rules);
        if void {
            self.void_invoice(key);
        }
    }

    /// A credit note. Voiding a void invoice again is the same fact
    /// (a duplicate); a settled invoice stays settled (it was paid).
    fn invoice_cancelled(&mut self, key: u64, day: Day, in_window: bool) -> Applied {
        match self.invoices.get_mut(&key) {
            Some(rec) if rec.state == InvoiceState::Void || rec.void_pending => {
                return Applied::Duplicate;
            }
            Some(rec) if rec.state == InvoiceState::Unissued => rec.void_pending = true,
            Some(_) => self.void_invoice(key),
            None if in_window => {
                let mut rec = InvoiceRec::unissued(day);
                rec.void_pending = true;
                self.invoices.insert(key, rec);
            }
            None => return Applied::Stale,
        }
        Applied::Applied
    }

    /// A payment or a credit note of invoice `invoice_id`, unless one of
    /// the same id is on it already (an open invoice outlives the window's
    /// dedupe set).
    #[allow(clippy::too_many_arguments)]
    fn toward_invoice(
        &mut self,
        invoice_id: &str,
        toward: Toward,
        ids: AppliedIds,
        day: Day,
        at: Timestamp,
        sum: Amount,
        base: Money,
        in_window: bool,
        rules: &FoldRules,
    ) -> Applied {
        let key = stable_hash(invoice_id);
        if self.invoices.get(&key).is_some_and(|i| {
            i.extra
                .as_ref()
                .is_some_and(|x| ids.any(|k| x.applied.contains(k)))
        }) {
            return Applied::Duplicate;
        }
        self.payment_received(key, toward, ids, day, at, sum, base, in_window, rules)
    }

    /// A payment, or a credit note (`toward`), of `paid` (worth `base`):
    /// both count toward covering the invoice; only a payment is the
    /// customer paying (see `settle_if_paid_by`).
    #[allow(clippy::too_many_arguments)]
    fn payment_received(
        &mut self,
        key: u64,
        toward: Toward,
        ids: AppliedIds,
        day: Day,
        at: Timestamp,
        paid: Amount,
        base: Money,
        in_window: bool,
        rules: &FoldRules,
    ) -> Applied {
        let rec = match self.invoices.get_mut(&key) {
            Some(rec) => rec,
            None if in_window => self
                .invoices
                .get_or_insert_with(key, || InvoiceRec::unissued(day)),
            None => return Applied::Stale,
        };
        let mut unpaid_was = None;
        match rec.state {
            // An overpayment or a resend: changes nothing (the same fact
            // as far as the figures go).
            // A credit note on a paid invoice (goods returned after paying,
            // refunded elsewhere): nothing left to take off. In the window
            // it is applied (remembered, so a re-export is a duplicate);
            // before it, stale.
            InvoiceState::Settled if toward == Toward::Credit => {
                return if in_window {
                    Applied::Applied
                } else {
                    Applied::Stale
                };
            }
            InvoiceState::Settled => return Applied::Duplicate,
            // Owed no more, but a payment that completes it settles it
            // (see `settle_if_paid`).
            InvoiceState::Void => rec.credit(paid, base.0),
            InvoiceState::Unissued => rec
                .extra
                .get_or_insert_with(Box::default)
                .early
                .push((paid, base.0)),
            InvoiceState::Open => {
                unpaid_was = Some(rec.unpaid_base());
                rec.credit(paid, base.0);
            }
        }
        if toward == Toward::Payment {
            rec.last_paid_at = Some(rec.last_paid_at.map_or(at, |t| t.max(at)));
        }
        if let Some(was) = unpaid_was {
            self.unpaid_moved(key, was);
        }
        let payment = (at, paid, base.0);
        self.settle_if_paid_by(key, Some(payment), rules);
        // A payment that leaves the invoice open is remembered on it: an
        // open invoice outlives the window's dedupe set, and a resend must
        // not count twice; and its instant, for when the payments cover
        // the invoice. (One that settles it needs no memory: a resend finds
        // it settled.)
        if let Some(rec) = self.invoices.get_mut(&key)
            && rec.state != InvoiceState::Settled
        {
            let kept = rec.extra.get_or_insert_with(Box::default);
            kept.applied.extend(ids.each());
            kept.timed.push(payment);
        }
        Applied::Applied
    }

    /// Settle an open or void invoice once it is paid in full: its
    /// payments and credit notes (`InvoiceCredited`) together cover it,
    /// and something was paid (covered by credit notes alone, it is void).
    /// Its payment record (on time, days late) counts on the business day
    /// of the payment or credit note that completed it: lateness counts
    /// when the debt is cleared, however old the invoice.
    ///
    /// A void invoice (a credit note, its order's cancellation) paid in
    /// full is settled too, as one paid before it was voided stays
    /// settled: what it ends as depends on its payments, not on whether
    /// they arrive before or after the void, which events on different
    /// topics do in any order.
    fn settle_if_paid(&mut self, key: u64, rules: &FoldRules) {
        self.settle_if_paid_by(key, None, rules);
    }

    /// [`Self::settle_if_paid`] right after `payment` was credited (not
    /// kept on the record yet). The payment record counts on the day the
    /// payments, in event time, first covered the invoice (see
    /// [`InvoiceRec::covered_at`]), not on the day of the latest payment.
    fn settle_if_paid_by(
        &mut self,
        key: u64,
        payment: Option<(Timestamp, Amount, i64)>,
        rules: &FoldRules,
    ) {
        let Some(rec) = self.invoices.get_mut(&key) else {
            return;
        };
        let was_open = match rec.state {
            InvoiceState::Open => true,
            InvoiceState::Void => false,
            InvoiceState::Unissued | InvoiceState::Settled => return,
        };
        if rec.paid < i128::from(rec.billed.minor) {
            return;
        }
        if rec.last_paid_at.is_none() && rec.billed.minor > 0 {
            // Covered by credit notes alone: nothing was paid and nothing
            // is owed. Void, as a credit note of the whole makes it; a
            // payment that arrives later settles it (it is covered).
            if was_open {
                self.void_invoice(key);
            }
            return;
        }
        rec.state = InvoiceState::Settled;
        // Nothing paid (an invoice billed zero, credited before its
        // issue): no payment behaviour.
        let paid_at = match rec.last_paid_at {
            Some(last) => rec.covered_at(payment).or(Some(last)),
            None => None,
        };
        // A resend finds it settled: its payments need no memory.
        rec.extra = None;
        let due_day = rec.due_day;
        if was_open {
            self.unsettled.remove(&(due_day, key));
            self.due_moved(key, false);
        }
        let Some(paid_at) = paid_at else {
            // Billed zero: nothing was ever owed, no payment behaviour.
            return;
        };
        let paid_day = rules.calendar.day(paid_at);
        if paid_day < self.window_start {
            return;
        }
        let days_late = u32::try_from(paid_day.since(due_day).max(0)).unwrap_or(u32::MAX);
        let delta = Sums {
            settled: 1,
            settled_on_time: i32::from(days_late == 0),
            days_late: i64::from(days_late),
            ..Sums::default()
        };
        self.add_sums(paid_day, &delta);
        if days_late > 0 {
            self.bucket(paid_day).late.push(days_late);
            *self.late.entry(days_late).or_default() += 1;
        }
    }

    fn complaint_opened(
        &mut self,
        id: &str,
        day: Day,
        at: Timestamp,
        severity: Severity,
        category: &str,
    ) {
        let rec = self
            .complaints
            .entry(id.to_owned())
            .or_insert_with(|| ComplaintRec {
                opened_at: None,
                severity,
                category: String::new(),
                resolved_at: None,
                day,
                deadline: None,
                overdue_announced: false,
            });
        if rec.opened_at.is_some() {
            return;
        }
        rec.opened_at = Some(at);
        rec.severity = severity;
        rec.category = category.to_owned();
        rec.day = day;
        let resolved = rec.resolved_at.is_some();
        if !resolved {
            self.open_complaints += 1;
        }
        let mut delta = Sums::default();
        delta.complaints[severity.index()] = 1;
        delta.resolved[severity.index()] = i32::from(resolved);
        self.add_sums(day, &delta);
    }

    /// Resolving a resolved complaint again is the same fact (a duplicate).
    fn complaint_resolved(
        &mut self,
        id: &str,
        day: Day,
        at: Timestamp,
        in_window: bool,
    ) -> Applied {
        let rec = match self.complaints.get_mut(id) {
            Some(rec) => rec,
            None if in_window => {
                self.complaints
                    .entry(id.to_owned())
                    .or_insert_with(|| ComplaintRec {
                        opened_at: None,
                        severity: Severity::Unspecified,
                        category: String::new(),
                        resolved_at: None,
                        day,
                        deadline: None,
                        overdue_announced: false,
                    })
            }
            None => return Applied::Stale,
        };
        if rec.resolved_at.is_some() {
            return Applied::Duplicate;
        }
        rec.resolved_at = Some(at);
        if rec.opened_at.is_some() {
            let (open_day, severity) = (rec.day, rec.severity);
            self.open_complaints = self.open_complaints.saturating_sub(1);
            let mut delta = Sums::default();
            delta.resolved[severity.index()] = 1;
            self.add_sums(open_day, &delta);
        }
        Applied::Applied
    }

    /// Each field the update sets or clears is written unless a later
    /// update (by event time) wrote it already; ties go to arrival order.
    /// Profile updates are never stale (the profile is not a window
    /// figure), so one that changes nothing, like a resend of an old one,
    /// is a duplicate.
    fn profile_updated(&mut self, update: &ProfileUpdate, at: Timestamp) -> Applied {
        let first = self.profile.is_none();
        let state = self.profile.get_or_insert_with(Box::default);
        let before = (**state).clone();
        for field in ProfileField::ALL {
            if !update.touches(field) {
                continue;
            }
            let slot = &mut state.written_at[field.index()];
            if slot.is_none_or(|t| at >= t) {
                *slot = Some(at);
                update.write(field, &mut state.profile);
            }
        }
        self.customer_since = state.profile.customer_since;
        self.purchase_potential = state.profile.purchase_potential;
        if !first && **state == before {
            Applied::Duplicate
        } else {
            Applied::Applied
        }
    }

    /// The customer's profile, when one was published.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_deref().map(|p| &p.profile)
    }

    /// Complaints kept by the projection (open ones, and the window's resolved ones).
    /// Complaints opened and not resolved.
    pub fn open_complaint_count(&self) -> u32 {
        self.open_complaints
    }

    /// Set a complaint's deadline unless it has one (see [`Deadline`]).
    /// Returns whether it was set.
    pub fn set_complaint_deadline(&mut self, id: &str, deadline: Deadline) -> bool {
        match self.complaints.get_mut(id) {
            Some(rec) if rec.opened_at.is_some() && rec.deadline.is_none() => {
                rec.deadline = Some(deadline);
                true
            }
            _ => false,
        }
    }

    /// Mark as announced, and return (id and record, in id order), the
    /// complaints not announced yet that are overdue: open ones past their
    /// deadline at `now`, resolved ones resolved past it, whatever `now`.
    /// So a complaint resolved late is overdue once its opening and
    /// resolution are both known, whichever was read first.
    pub fn announce_overdue(&mut self, now: Timestamp) -> Vec<(String, ComplaintRec)> {
        let mut out = Vec::new();
        for (id, rec) in &mut self.complaints {
            let by = rec.resolved_at.map_or(now, |r| r.max(now));
            if !rec.overdue_announced && rec.is_overdue(by) {
                rec.overdue_announced = true;
                out.push((id.clone(), rec.clone()));
            }
        }
        out
    }

    /// The earliest deadline of a complaint not resolved and not announced
    /// overdue yet: the instant time alone makes the next one overdue.
    pub fn next_complaint_deadline(&self) -> Option<Timestamp> {
        if self.open_complaints == 0 {
            return None;
        }
        self.complaints
            .values()
            .filter(|c| c.is_open() && !c.overdue_announced)
            .filter_map(|c| c.deadline.as_ref().map(|d| d.at))
            .min()
    }

    pub fn complaints(&self) -> impl Iterator<Item = (&str, &ComplaintRec)> {
        self.complaints.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The latest `occurred_at` applied.
    pub fn last_event_at(&self) -> Option<Timestamp> {
        self.clock
    }

    /// The window's sums at `at` (at or after the watermark): the totals
    /// minus the days that left the window since the watermark.
    fn sums_at(&self, start: Day) -> Sums {
        let mut sums = self.window.totals;
        if start > self.window_start {
            for b in self.window.days.before(start) {
                sums.sub(&b.sums);
            }
        }
        sums
    }

    /// Net order amount in the window at `at`, exact, in minor units.
    pub fn order_amount(&self, at: Timestamp, rules: &FoldRules) -> i128 {
        self.sums_at(rules.window_start(self.eval_instant(at)))
            .amount
    }

    /// Net margin of the orders with a known cost in the window at `at`,
    /// exact, in minor units.
    pub fn margin(&self, at: Timestamp, rules: &FoldRules) -> i128 {
        let s = self.sums_at(rules.window_start(self.eval_instant(at)));
        s.costed_amount - s.cost
    }

    /// Indicators are evaluated no earlier than the watermark.
    fn eval_instant(&self, at: Timestamp) -> Timestamp {
        self.clock.map_or(at, |c| at.max(c))
    }

    /// The earliest order ever applied (tenure).
    pub fn first_order_at(&self) -> Option<Timestamp> {
        self.first_order_at
    }

    /// When the relationship began: the first order ever or the profile's
    /// `customer_since`, whichever is earlier (`None` with neither). What
    /// `tenure_days` counts from, and so what the lifecycle's "new" and
    /// the new-customer rule read: a customer the CRM has known since
    /// 2019 is not new on its first order in the stream.
    pub fn tenure_start(&self) -> Option<Timestamp> {
        match (self.first_order_at, self.customer_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The first business day after `at` on which a figure that `uses`
    /// says is scored can change with time alone, `None` when none can:
    /// the day the oldest activity leaves the window, the day after an
    /// open invoice falls due, every day while one is overdue (days late
    /// and `oldest_overdue_days` grow) or while day counts are scored (recency, tenure, the span of
    /// a customer younger than the window), the first day of next month
    /// when growth is scored.
    pub fn next_change(
        &self,
        rules: &FoldRules,
        at: Timestamp,
        uses: impl Fn(IndicatorName) -> bool,
    ) -> Option<Day> {
        let at = self.eval_instant(at);
        let cal = &rules.calendar;
        let today = cal.day(at);
        let tomorrow = today.plus(1);
        let len = i32::try_from(rules.window.len_days()).unwrap_or(i32::MAX);
        let mut next: Option<Day> = None;
        let mut consider = |d: Day| {
            if d > today {
                next = Some(next.map_or(d, |n: Day| n.min(d)));
            }
        };
        // Days before the window at `at` have left already (the deque
        // drops them only when an event moves the watermark).
        if let Some(oldest) = self.window.days.oldest_day_from(rules.window.start(today)) {
            consider(oldest.plus(len));
        }
        if let Some((due_day, _)) = self.unsettled.range((today, 0)..).next() {
            consider(due_day.plus(1));
        }
        if self.changes_daily(rules, today, &uses) {
            consider(tomorrow);
        }
        if !self.months.is_empty()
            && (uses(IndicatorName::Growth3m) || uses(IndicatorName::GrowthStreakMonths))
        {
            consider(today.month().plus(1).first_day());
        }
        next
    }

    /// Whether a scored figure changes on every business day after
    /// `today` (`today` no earlier than the watermark's day), so that the
    /// next change is tomorrow whatever else is pending: days late and
    /// `oldest_overdue_days` while an invoice is overdue, recency once
    /// there is an order, tenure once there is an order or a profile's
    /// `customer_since`, `orders_per_month_12m` while the
    /// customer is younger than the window. The cheap test behind
    /// [`Self::next_change`]'s daily case, which `CustomerState::next_due`
    /// also takes as its fast path.
    pub fn changes_daily(
        &self,
        rules: &FoldRules,
        today: Day,
        uses: impl Fn(IndicatorName) -> bool,
    ) -> bool {
        // Tenure counts from the first order or the profile's
        // `customer_since`, recency from the last order.
        let has_orders = self.first_order_at.is_some();
        if (has_orders && uses(IndicatorName::DaysSinceLastOrder))
            || ((has_orders || self.customer_since.is_some()) && uses(IndicatorName::TenureDays))
        {
            return true;
        }
        let len = i32::try_from(rules.window.len_days()).unwrap_or(i32::MAX);
        let young = self
            .first_order_at
            .is_some_and(|f| today.since(rules.calendar.day(f)) + 1 < len);
        if young && uses(IndicatorName::OrdersPerMonth12m) {
            return true;
        }
        let late_scored = uses(IndicatorName::AvgDaysLate)
            || uses(IndicatorName::MaxDaysLate)
            || uses(IndicatorName::OnTimePaymentRatio)
            || uses(IndicatorName::OldestOverdueDays);
        late_scored && self.unsettled.range(..(today, 0)).next().is_some()
    }

    /// Whether any assessment was ever applied (their expiries are exact
    /// instants, outside [`Self::changes_daily`]'s day starts).
    pub fn has_assessments(&self) -> bool {
        self.assessments.is_some()
    }

    /// The latest assessment per indicator (in force or expired), by
    /// indicator name.
    pub fn assessments(&self) -> impl Iterator<Item = &Assessment> {
        self.assessments.iter().flat_map(|b| b.current())
    }

    /// The latest assessment of `indicator` (in force or expired).
    pub fn assessment(&self, indicator: &str) -> Option<&Assessment> {
        self.assessments.as_ref().and_then(|b| b.get(indicator))
    }

    /// Every assessment applied, by `assessed_at` (ties in arrival
    /// order), at most [`assessments::MAX_ASSESSMENT_HISTORY`].
    pub fn assessment_history(&self) -> &[Assessment] {
        self.assessments.as_ref().map_or(&[], |b| b.history())
    }

    /// The earliest instant after `at` (taken as the watermark when
    /// earlier) at which an assessment in force that `uses` says is scored
    /// (by its slot in `rules.assessments`) expires; `None` when none will.
    pub fn next_assessment_expiry(
        &self,
        rules: &FoldRules,
        at: Timestamp,
        uses: impl Fn(usize) -> bool,
    ) -> Option<Timestamp> {
        let book = self.assessments.as_ref()?;
        let at = self.eval_instant(at);
        rules
            .assessments
            .specs()
            .iter()
            .enumerate()
            .filter(|(slot, _)| uses(*slot))
            .filter_map(|(_, spec)| book.get(&spec.name))
            .map(|a| a.expires_at)
            .filter(|t| *t > at)
            .min()
    }

    /// The latest order that still counts, in or before the window.
    pub fn last_order_at(&self) -> Option<Timestamp> {
        self.last_order()
    }

    /// The latest order that still counts placed before `at` (on `day`,
    /// its business day), in or before the window: what an order placed
    /// at `at` follows, whatever was read first. Day-exact: when an order
    /// later on `day` is known, an earlier one that day may be missed (the
    /// window keeps each day's latest), and the latest order of an earlier
    /// day is returned.
    pub fn order_before(&self, at: Timestamp, day: Day) -> Option<Timestamp> {
        let in_window = self
            .window
            .days
            .newest_first_with_day()
            .skip_while(|(d, _)| *d > day)
            .find_map(|(d, b)| b.last_order_at.filter(|t| d < day || *t < at));
        in_window.or(self.last_order_before_window.filter(|t| *t < at))
    }

    /// The first order that still counts of the latest day in the window
    /// with an order `lapsed_days` or more after the order before it (in
    /// or before the window): the order that ended the last lapse the
    /// window shows, from what counts now. A walk over the window's days
    /// (and the orders of that day): for after a correction or a voided
    /// reactivation, not for every event. Reads the orders by id, so only
    /// on a whole state, never on one decoded for deciding only.
    pub(crate) fn last_lapse_end(
        &self,
        calendar: &BusinessCalendar,
        lapsed_days: i64,
    ) -> Option<Timestamp> {
        let mut previous = self.last_order_before_window.map(|t| calendar.day(t));
        let mut ended = None;
        for (day, bucket) in self.window.days.oldest_first_with_day() {
            if bucket.last_order_at.is_none() {
                continue;
            }
            if previous.is_some_and(|p| i64::from(day.since(p)) >= lapsed_days) {
                ended = Some(day);
            }
            previous = Some(day);
        }
        self.counted_orders_on(ended?).min()
    }

    /// The latest order that still counts at `at`, in or before the window.
    fn last_order(&self) -> Option<Timestamp> {
        let in_window = self
            .window
            .days
            .newest_first()
            .find_map(|b| b.last_order_at);
        in_window.or(self.last_order_before_window)
    }

    /// What the RFM quintiles rank this customer by at instant `at`: its
    /// last order that still counts and the window's order count and
    /// amount (all unknown for a customer without an order).
    pub fn rfm_values(&self, at: Timestamp, rules: &FoldRules) -> crate::rank::RfmValues {
        let ind = self.indicators_with(at, rules, |_| false);
        crate::rank::RfmValues::of(self.last_order(), ind.order_count_12m, ind.order_amount_12m)
    }

    /// Compute every indicator at instant `at` (taken as the watermark when
    /// earlier).
    pub fn indicators(&self, at: Timestamp, rules: &FoldRules) -> Indicators {
        self.indicators_with(at, rules, |_| true)
    }

    /// The indicators `needed` says are read, at instant `at` (others are
    /// left at their defaults): what scoring needs, without the work of
    /// the rest. Explanations and queries use [`Self::indicators`].
    pub fn indicators_with(
        &self,
        at: Timestamp,
        rules: &FoldRules,
        needed: impl Fn(IndicatorName) -> bool,
    ) -> Indicators {
        let at = self.eval_instant(at);
        let cal = &rules.calendar;
        let today = cal.day(at);
        let start = rules.window.start(today);
        let sums = self.sums_at(start);

        // Payment behaviour: settlements in the window, plus open invoices
        // past their due day, counted with the days so far.
        let mut due = sums.settled;
        let on_time = sums.settled_on_time;
        let mut late_sum = sums.days_late;
        let want_max = needed(IndicatorName::MaxDaysLate);
        let mut late_max: i64 = if !want_max {
            0
        } else if start > self.window_start {
            self.window
                .days
                .from(start)
                .flat_map(|b| b.late.iter())
                .copied()
                .max()
                .map_or(0, i64::from)
        } else {
            self.late.keys().next_back().copied().map_or(0, i64::from)
        };
        // Open invoices past due count with the days so far.
        let past_due = self.overdue(today);
        due = due.saturating_add(i32::try_from(past_due.count).unwrap_or(i32::MAX));
        late_sum += past_due.days_late;
        late_max = late_max.max(past_due.oldest);
        let oldest_overdue = past_due.oldest;
        let overdue = past_due.unpaid;
        let credit_known = due > 0;

        let amount = money_f64(sums.amount);
        let orders = sums.orders.max(0);
        let mut by_severity = [0u32; 5];
        let mut resolved = [0u32; 5];
        for i in 0..5 {
            by_severity[i] = u32::try_from(sums.complaints[i].max(0)).unwrap_or(u32::MAX);
            resolved[i] = u32::try_from(sums.resolved[i].max(0)).unwrap_or(u32::MAX);
        }
        let count: u32 = by_severity.iter().sum();
        let weighted: u32 = Severity::ALL
            .iter()
            .map(|s| by_severity[s.index()] * s.weight())
            .sum();
        let want_growth =
            needed(IndicatorName::Growth3m) || needed(IndicatorName::GrowthStreakMonths);
        let (growth, streak) = if want_growth {
            self.growth(today, rules)
        } else {
            (None, 0)
        };
        let annual = 12.0 / f64::from(rules.window.len_months());
        let rfm = if IndicatorName::RFM.iter().any(|n| needed(*n)) {
            rules.rfm.score(&crate::rank::RfmValues::of(
                self.last_order(),
                orders as f64,
                amount,
            ))
        } else {
            crate::rank::RfmScore::default()
        };
        let mut assessed = crate::indicators::Assessed::default();
        if let Some(book) = &self.assessments {
            for (slot, spec) in assessed.iter_mut().zip(rules.assessments.specs()) {
                *slot = book.value_at(spec, at);
            }
        }
        let mut ind = Indicators {
            order_amount_12m: amount,
            order_count_12m: orders as f64,
            avg_order_value_12m: if orders > 0 {
                amount / orders as f64
            } else {
                0.0
            },
            orders_per_month_12m: 0.0,
            margin_12m: (orders == 0 || sums.costed_amount > 0)
                .then(|| money_f64(sums.costed_amount - sums.cost)),
            margin_rate_12m: (sums.costed_amount > 0)
                .then(|| money_f64(sums.costed_amount - sums.cost) / money_f64(sums.costed_amount)),
            on_time_payment_ratio: credit_known.then(|| on_time as f64 / due as f64),
            avg_days_late: credit_known.then(|| late_sum as f64 / due as f64),
            max_days_late: credit_known.then_some(late_max as f64),
            overdue_amount: money_f64(overdue),
            oldest_overdue_days: oldest_overdue as f64,
            open_complaints: f64::from(self.open_complaints),
            complaints_12m: f64::from(count),
            complaints_weighted_12m: f64::from(weighted),
            days_since_last_order: None,
            tenure_days: 0.0,
            share_of_wallet: self
                .purchase_potential
                .filter(|p| p.0 > 0)
                .map(|p| amount * annual / p.0 as f64),
            purchase_potential: self.purchase_potential.map(|p| p.0 as f64),
            growth_3m: growth,
            growth_streak_months: f64::from(streak),
            complaints_by_severity_12m: by_severity,
            resolved_by_severity_12m: resolved,
            assessed,
            rfm_recency: rfm.recency.map(f64::from),
            rfm_frequency: rfm.frequency.map(f64::from),
            rfm_monetary: rfm.monetary.map(f64::from),
            rfm_score: rfm.total().map(f64::from),
        };
        self.day_figures(today, rules, &needed, &mut ind);
        ind
    }

    /// The figures that move with the day alone while the window's
    /// activity stays: `orders_per_month_12m` (the span a young customer's
    /// window covers), `tenure_days` and `days_since_last_order` (when
    /// `needed`), as of business day `today`; one formula for
    /// [`Self::indicators_with`] and [`Self::indicators_step`].
    fn day_figures(
        &self,
        today: Day,
        rules: &FoldRules,
        needed: impl Fn(IndicatorName) -> bool,
        ind: &mut Indicators,
    ) {
        let cal = &rules.calendar;
        let first_day = self.tenure_start().map(|f| cal.day(f));
        let covered_days = first_day.map_or(0, |f| {
            (today.since(f) + 1).clamp(1, rules.window.len_days() as i32)
        });
        let covered_months = (f64::from(covered_days) / 30.4375).max(1.0);
        ind.orders_per_month_12m = ind.order_count_12m / covered_months;
        ind.days_since_last_order = if needed(IndicatorName::DaysSinceLastOrder) {
            self.last_order()
                .map(|t| f64::from(today.since(cal.day(t)).max(0)))
        } else {
            None
        };
        ind.tenure_days = first_day.map_or(0.0, |f| f64::from(today.since(f).max(0)));
    }

    /// Move `ind`, the indicators [`Self::indicators_with`] gave at
    /// `prev_at` (no later than `at`, with the same `needed`, and the
    /// projection unchanged since), to `at`: `true` when only the day's
    /// figures ([`Self::day_figures`]) can differ between the two
    /// instants, and they were moved; `false` (and `ind` untouched) when
    /// the full computation is needed. That is when activity left the window between them, an
    /// open invoice is past its due day (days late grow), growth is
    /// needed and the month turned, or assessments (which expire) exist.
    /// The result is then exactly what `indicators_with` gives at `at`:
    /// every other figure is a function of the window's activity alone.
    /// A run of time-driven decisions between two events takes this step.
    pub fn indicators_step(
        &self,
        ind: &mut Indicators,
        prev_at: Timestamp,
        at: Timestamp,
        rules: &FoldRules,
        needed: impl Fn(IndicatorName) -> bool,
    ) -> bool {
        if self.assessments.is_some() {
            return false;
        }
        let (prev_at, at) = (self.eval_instant(prev_at), self.eval_instant(at));
        if at < prev_at {
            return false;
        }
        let cal = &rules.calendar;
        let (was, today) = (cal.day(prev_at), cal.day(at));
        // Open invoices by due day: the first is the oldest.
        if self.unsettled.first().is_some_and(|(due, _)| *due < today) {
            return false;
        }
        if (needed(IndicatorName::Growth3m) || needed(IndicatorName::GrowthStreakMonths))
            && was.month() != today.month()
        {
            return false;
        }
        // The same buckets are in the window at both instants.
        let (from, to) = (rules.window.start(was), rules.window.start(today));
        if self
            .window
            .days
            .oldest_day_from(from)
            .is_some_and(|d| d < to)
        {
            return false;
        }
        self.day_figures(today, rules, &needed, ind);
        true
    }

    /// The last business day `d` such that from `prev_at`'s day through
    /// `d` only the figures [`moves_with_days`] names can change with
    /// time alone: no open invoice falls due before `d` (the invoices
    /// overdue stay the same), the month does not turn when growth is
    /// `needed`, the oldest activity of the window stays in it; with
    /// whether an invoice is overdue already (days late then grow, and the
    /// figures are computed in full; otherwise [`Self::indicators_step`]
    /// moves them on every day of the run). `None` when assessments exist
    /// (they expire at exact instants). The conditions only ever fail as
    /// days pass, so they hold on every day from `prev_at`'s to `d`.
    pub fn quiet_through(
        &self,
        prev_at: Timestamp,
        rules: &FoldRules,
        needed: impl Fn(IndicatorName) -> bool,
    ) -> Option<(Day, bool)> {
        if self.assessments.is_some() {
            return None;
        }
        let was = rules.calendar.day(self.eval_instant(prev_at));
        let mut last = Day(i32::MAX);
        // Overdue from the day after its due day.
        if let Some((due, _)) = self.unsettled.range((was, 0)..).next() {
            last = last.min(*due);
        }
        if needed(IndicatorName::Growth3m) || needed(IndicatorName::GrowthStreakMonths) {
            last = last.min(was.month().plus(1).first_day().minus(1));
        }
        let len = i32::try_from(rules.window.len_days()).unwrap_or(i32::MAX);
        // It leaves when the window's start passes it: `start(d) = d - (len - 1)`.
        if let Some(oldest) = self.window.days.oldest_day_from(rules.window.start(was)) {
            last = last.min(oldest.plus(len - 1));
        }
        let overdue = self.unsettled.first().is_some_and(|(due, _)| *due < was);
        Some((last, overdue))
    }

    /// The last business day from `today` on through which
    /// [`Self::changes_daily`] holds, as long as no open invoice falls
    /// due: while one is overdue and days late are scored (every day),
    /// recency scored once there is an order, tenure once there is an
    /// order or a `customer_since` (every day),
    /// `orders_per_month_12m` scored while the customer is younger than
    /// the window; `None` when none holds on `today`. Each holds from a
    /// day on or until a day, never again after it stops.
    pub fn daily_through(
        &self,
        rules: &FoldRules,
        today: Day,
        uses: impl Fn(IndicatorName) -> bool,
    ) -> Option<Day> {
        let late_scored = uses(IndicatorName::AvgDaysLate)
            || uses(IndicatorName::MaxDaysLate)
            || uses(IndicatorName::OnTimePaymentRatio)
            || uses(IndicatorName::OldestOverdueDays);
        if late_scored && self.unsettled.first().is_some_and(|(due, _)| *due < today) {
            return Some(Day(i32::MAX));
        }
        // Tenure counts from the first order or `customer_since`.
        if self.customer_since.is_some() && uses(IndicatorName::TenureDays) {
            return Some(Day(i32::MAX));
        }
        let first = self.first_order_at?;
        if uses(IndicatorName::DaysSinceLastOrder) || uses(IndicatorName::TenureDays) {
            return Some(Day(i32::MAX));
        }
        if !uses(IndicatorName::OrdersPerMonth12m) {
            return None;
        }
        let len = i32::try_from(rules.window.len_days()).unwrap_or(i32::MAX);
        // Young while `d.since(first) + 1 < len`: through `first + len - 2`.
        let last = rules.calendar.day(first).plus(len.saturating_sub(2));
        (last >= today).then_some(last)
    }

    /// `growth_3m` and `growth_streak_months` as of business day `today`.
    ///
    /// Months and quarters differ in length (a quarter is 89 to 92 days):
    /// both compare spend per day, so a customer who spends the same every
    /// day neither grows nor shrinks when a short month enters or leaves
    /// the quarter.
    fn growth(&self, today: Day, rules: &FoldRules) -> (Option<f64>, u32) {
        let cal = &rules.calendar;
        let this_month = today.month();
        // Complete months before this one, newest first, read in one pass
        // (months without orders are 0).
        let mut months = self.months.range(..this_month).rev().peekable();
        // The complete month `k` months before this one.
        let month_back = |k: usize| this_month.minus(i32::try_from(k).unwrap_or(i32::MAX - 1) + 1);
        let mut amount_back = |k: usize| -> i128 {
            let m = month_back(k);
            while months.next_if(|(mm, _)| **mm > m).is_some() {}
            match months.peek() {
                Some((mm, a)) if **mm == m => **a,
                _ => 0,
            }
        };
        let days_back = |k: usize| -> i128 { i128::from(month_back(k).len_days()) };
        let mut back = [0i128; 6];
        for (k, slot) in back.iter_mut().enumerate() {
            *slot = amount_back(k);
        }
        let (recent, prior): (i128, i128) = (back[0..3].iter().sum(), back[3..6].iter().sum());
        let (recent_days, prior_days): (i128, i128) =
            ((0..3).map(days_back).sum(), (3..6).map(days_back).sum());
        // (recent / recent_days) / (prior / prior_days) - 1, exactly.
        let growth = (prior > 0).then(|| {
            let per_day_gain = recent * prior_days - prior * recent_days;
            (money_f64(per_day_gain) / money_f64(prior * recent_days)).clamp(-1.0, 10.0)
        });
        // Growing months count only within the customer's history.
        let history = self
            .first_order_at
            .map_or(0, |f| (this_month.0 - cal.day(f).month().0).max(0) as usize);
        let max_streak = (rules.window.len_months() as usize).min(history.saturating_sub(1));
        let mut streak = 0u32;
        let (mut later, mut later_days) = (back[0], days_back(0));
        while (streak as usize) < max_streak {
            let k = streak as usize + 1;
            let earlier = back.get(k).copied().unwrap_or_else(|| amount_back(k));
            let earlier_days = days_back(k);
            // Spend per day grew: later / later_days > earlier / earlier_days.
            if later * earlier_days <= earlier * later_days {
                break;
            }
            (later, later_days) = (earlier, earlier_days);
            streak += 1;
        }
        (growth, streak)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::event::Currency;

    const DAY_MS: i64 = 86_400_000;

    /// An invoice's life in a few kinds of step, on days from a start.
    #[derive(Debug, Clone)]
    enum Step {
        Issue {
            invoice: u8,
            day: i64,
            terms: i64,
            amount: i64,
        },
        Pay {
            invoice: u8,
            day: i64,
            amount: i64,
        },
        Cancel {
            invoice: u8,
            day: i64,
        },
        CancelOrder {
            invoice: u8,
            day: i64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let invoice = 0u8..12;
        let day = 0i64..200;
        prop_oneof![
            4 => (invoice.clone(), day.clone(), -5i64..60, 0i64..5_000)
                .prop_map(|(invoice, day, terms, amount)| Step::Issue { invoice, day, terms, amount }),
            4 => (invoice.clone(), day.clone(), 1i64..3_000)
                .prop_map(|(invoice, day, amount)| Step::Pay { invoice, day, amount }),
            1 => (invoice.clone(), day.clone()).prop_map(|(invoice, day)| Step::Cancel { invoice, day }),
            1 => (invoice, day).prop_map(|(invoice, day)| Step::CancelOrder { invoice, day }),
        ]
    }

    fn event(n: usize, step: &Step) -> Event {
        let start = crate::time::date(2026, 1, 5).millis();
        let cny = Currency::parse("CNY").unwrap();
        let at = |day: i64| Timestamp::from_millis(start + day * DAY_MS + 3_600_000);
        let (day, kind) = match step {
            Step::Issue {
                invoice,
                day,
                terms,
                amount,
            } => (
                *day,
                EventKind::InvoiceIssued {
                    invoice_id: format!("i{invoice}"),
                    order_id: format!("o{invoice}"),
                    amount: Money(*amount),
                    billed: Amount::new(*amount, cny),
                    due_at: at(day + terms),
                },
            ),
            Step::Pay {
                invoice,
                day,
                amount,
            } => (
                *day,
                EventKind::PaymentReceived {
                    invoice_id: format!("i{invoice}"),
                    amount: Money(*amount),
                    paid: Amount::new(*amount, cny),
                    payment_id: String::new(),
                },
            ),
            Step::Cancel { invoice, day } => (
                *day,
                EventKind::InvoiceCancelled {
                    invoice_id: format!("i{invoice}"),
                },
            ),
            Step::CancelOrder { invoice, day } => (
                *day,
                EventKind::OrderCancelled {
                    order_id: format!("o{invoice}"),
                },
            ),
        };
        Event {
            event_id: format!("e{n}"),
            customer_id: "c".into(),
            occurred_at: at(day),
            source: "test".into(),
            kind,
        }
    }

    /// An invoice delivered after later orders (another topic, read
    /// behind) as the first event after a decode (a customer held
    /// encoded, thawed): the kept totals are built up to the watermark's
    /// day, where the next decisions are made, not up to the late
    /// event's, which every decision would walk forward from again.
    #[test]
    fn overdue_totals_are_kept_up_to_the_watermark_not_the_late_event() {
        use crate::sim::scenario::{invoice, order};
        let rules = FoldRules::utc(12);
        let start = crate::time::date(2026, 1, 5);
        let day_at = |d: i64| Timestamp::from_millis(start.millis() + d * DAY_MS);
        let mut p = CustomerProjection::new();
        p.apply(&invoice("c", 7, day_at(0), 100_000, 30), &rules);
        p.apply(&order("c", 2, day_at(100), 100_000), &rules);
        let mut p: CustomerProjection =
            postcard::from_bytes(&postcard::to_allocvec(&p).unwrap()).unwrap();
        assert!(p.due.0.is_none());
        // Issued on day 10, due on day 40: overdue by the watermark.
        p.apply(&invoice("c", 1, day_at(10), 100_000, 30), &rules);
        let watermark = rules.calendar.day(day_at(100));
        let kept = p.due.0.unwrap();
        assert_eq!(kept.before, watermark);
        assert_eq!(kept.count, 2);
        assert_eq!(p.overdue(watermark), p.overdue_walk(watermark));
        assert_eq!(p.overdue(watermark).count, 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The overdue figures kept as invoices open, are paid and close
        /// are the ones a walk over every overdue invoice gives, on any
        /// day before, at or after the latest event, and a projection
        /// without them (as decoded) gives the same, also decoded for
        /// deciding only, which keeps exactly the open invoices (those
        /// `unsettled` lists).
        #[test]
        fn kept_overdue_totals_equal_a_walk_over_the_invoices(
            steps in prop::collection::vec(step(), 1..60),
            probes in prop::collection::vec(-30i32..260, 1..6),
        ) {
            let rules = FoldRules::utc(12);
            let mut p = CustomerProjection::new();
            let first = rules.calendar.day(event(0, &steps[0]).occurred_at);
            for (n, s) in steps.iter().enumerate() {
                p.apply(&event(n, s), &rules);
                prop_assert!(p.due.0.is_some());
                let bytes = postcard::to_allocvec(&p).unwrap();
                let decoded: CustomerProjection = postcard::from_bytes(&bytes).unwrap();
                prop_assert!(decoded.due.0.is_none());
                let part: CustomerProjection =
                    deciding_only(|| postcard::from_bytes(&bytes).unwrap());
                let open: BTreeSet<u64> = p
                    .invoices
                    .iter()
                    .filter(|(_, i)| i.is_open())
                    .map(|(k, _)| *k)
                    .collect();
                let listed: BTreeSet<u64> = p.unsettled.iter().map(|(_, k)| *k).collect();
                prop_assert_eq!(&open, &listed);
                let kept: BTreeSet<u64> = part.invoices.iter().map(|(k, _)| *k).collect();
                prop_assert_eq!(&kept, &open);
                prop_assert!(part.invoices.iter().all(|(k, i)| p.invoices.get(k) == Some(i)));
                prop_assert_eq!(&part, &p.clone_deciding_only());
                for probe in &probes {
                    let today = first.plus(*probe);
                    let walked = p.overdue_walk(today);
                    prop_assert_eq!(p.overdue(today), walked, "day {}", probe);
                    prop_assert_eq!(decoded.overdue(today), walked);
                    prop_assert_eq!(part.overdue(today), walked);
                }
            }
        }
    }

    /// The profile read for deciding only reads past exactly the fields
    /// `Profile` serializes (a field added to `Profile` and not to the
    /// mirror would shift every field after it): what it keeps is as
    /// written, and what follows the profile decodes as it was stored.
    #[test]
    fn a_profile_decoded_for_deciding_only_keeps_what_is_read_and_stays_in_step() {
        let at = |ms: i64| Some(Timestamp::from_millis(1_700_000_000_000 + ms));
        let mut p = CustomerProjection::new();
        p.profile = Some(Box::new(ProfileState {
            profile: Profile {
                name: "Huadong Precision Castings".into(),
                industry: "machinery".into(),
                region: "east".into(),
                purchase_potential: Some(Money(123_456_789)),
                account_manager: "li.wei".into(),
                customer_since: at(1),
            },
            written_at: [at(2), at(3), None, at(5), at(6), at(7)],
        }));
        p.customer_since = at(1);
        p.purchase_potential = Some(Money(123_456_789));
        p.first_order_at = at(8);
        p.next_sweep = Day(20_400);
        let bytes = postcard::to_stdvec(&p).unwrap();

        let read: CustomerProjection = deciding_only(|| postcard::from_bytes(&bytes).unwrap());

        assert_eq!(read, p.clone_deciding_only());
        let kept = read.profile.as_deref().unwrap();
        assert_eq!(kept.profile.account_manager, "li.wei");
        assert_eq!(kept.profile.purchase_potential, Some(Money(123_456_789)));
        assert_eq!(kept.profile.customer_since, at(1));
        assert_eq!(kept.written_at, [at(2), at(3), None, at(5), at(6), at(7)]);
        assert!(kept.profile.name.is_empty() && kept.profile.industry.is_empty());
        assert!(kept.profile.region.is_empty());
        assert_eq!((read.first_order_at, read.next_sweep), (at(8), Day(20_400)));
        // Outside the scope the same bytes decode whole.
        assert_eq!(
            postcard::from_bytes::<CustomerProjection>(&bytes).unwrap(),
            p
        );
        // Fields written at one instant (one update) are written once.
        let one = at(2);
        let profile = |written_at| ProfileState {
            profile: Profile::default(),
            written_at,
        };
        let same = profile([one, one, None, one, one, one]);
        let apart = profile([at(2), at(3), None, at(5), at(6), at(7)]);
        let (same_bytes, apart_bytes) = (
            postcard::to_stdvec(&same).unwrap(),
            postcard::to_stdvec(&apart).unwrap(),
        );
        assert!(same_bytes.len() + 4 * 6 <= apart_bytes.len());
        assert_eq!(
            postcard::from_bytes::<ProfileState>(&same_bytes).unwrap(),
            same
        );
        // The older form, six options, reads as it is.
        #[derive(Serialize)]
        struct Older<'a> {
            profile: &'a Profile,
            written_at: [Option<Timestamp>; 6],
        }
        let older = postcard::to_stdvec(&Older {
            profile: &same.profile,
            written_at: same.written_at,
        })
        .unwrap();
        assert!(older.len() > same_bytes.len());
        assert_eq!(postcard::from_bytes::<ProfileState>(&older).unwrap(), same);
    }
}

//! The per-customer projection and its fold.
//!
//! A [`CustomerProjection`] keeps exactly what the indicators need over a
//! rolling window of calendar months:
//!
//! - one [`Bucket`] per month with order, margin, complaint and settled
//!   invoice aggregates (a window of `W` months covers the current month and
//!   the `W - 1` before it, so scoring scans at most ~`W` small buckets);
//! - the orders, invoices and complaints of the window, keyed by id, so a
//!   cancellation or return can take back exactly what its order added and
//!   so a repeated business id is applied once;
//! - the ids of applied events in the window (as 64-bit FNV-1a hashes), so a
//!   resent event changes nothing.
//!
//! Everything older than the window is pruned as `now` moves, so memory per
//! customer is bounded by the activity of one window. Unpaid invoices and
//! open complaints are the exception: debt and open grievances stay until
//! settled, whatever their age.
//!
//! Events may arrive out of order across topics (a payment before its
//! invoice, a cancellation before its order): the fold keeps a placeholder
//! record for the missing half and completes it when it arrives, so the
//! result does not depend on that order.
//!
//! `now` must not go backwards between calls on one projection; the service
//! guarantees this by using a monotonic processing clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, Money, Profile, Severity};
use crate::indicators::Indicators;
use crate::time::{Month, Timestamp};

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed the projection.
    Applied,
    /// The same `event_id` was applied before: nothing changed.
    Duplicate,
    /// The event lies before the window: nothing changed.
    Stale,
}

/// Month aggregates. Amounts in base-currency minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Net order amount (placed - returned; cancelled orders removed).
    pub amount: i64,
    /// Net cost of goods, same rules.
    pub cost: i64,
    /// Orders placed this month and not cancelled.
    pub orders: u32,
    /// Latest `occurred_at` of a live order this month.
    pub last_order_at: Option<Timestamp>,
    /// Complaints opened this month, by severity index.
    pub complaints: [u32; 5],
    /// Invoices issued this month and settled (paid in full).
    pub settled: u32,
    /// Of those, settled by their due date.
    pub settled_on_time: u32,
    /// Sum and max of whole days late over settled invoices.
    pub days_late_sum: u64,
    pub days_late_max: u32,
}

impl Bucket {
    fn is_empty(&self) -> bool {
        *self == Bucket::default()
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
    /// Month of the placement (or of the first event seen, while pending).
    month: Month,
    at: Timestamp,
    amount: i64,
    cost: i64,
    returned_amount: i64,
    returned_cost: i64,
    /// Set when a cancellation arrived before the placement.
    cancel_pending: bool,
}

impl OrderRec {
    /// A placeholder for an order whose placement has not arrived yet.
    fn pending(month: Month, at: Timestamp) -> Self {
        Self {
            state: OrderState::Pending,
            month,
            at,
            amount: 0,
            cost: 0,
            returned_amount: 0,
            returned_cost: 0,
            cancel_pending: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InvoiceRec {
    /// False while only payments have been seen.
    issued: bool,
    month: Month,
    due_at: Timestamp,
    amount: i64,
    paid: i64,
    /// Time of the latest payment, which settles the invoice when it completes it.
    last_paid_at: Option<Timestamp>,
    settled: bool,
}

impl InvoiceRec {
    /// A placeholder for an invoice whose issue has not arrived yet.
    fn unissued(month: Month) -> Self {
        Self {
            issued: false,
            month,
            due_at: Timestamp::default(),
            amount: 0,
            paid: 0,
            last_paid_at: None,
            settled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintRec {
    pub opened_at: Option<Timestamp>,
    pub severity: Severity,
    pub category: String,
    pub resolved_at: Option<Timestamp>,
    /// Month of the opening (or of the resolution while the opening is missing).
    pub month: Month,
}

impl ComplaintRec {
    pub fn is_open(&self) -> bool {
        self.opened_at.is_some() && self.resolved_at.is_none()
    }
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

type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PrehashedKey>>;

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

/// A `HashMap` keyed by customer id, hashed with [`Fnv`].
pub type CustomerMap<V> = HashMap<String, V, std::hash::BuildHasherDefault<Fnv>>;

/// Everything tierd knows about one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerProjection {
    buckets: BTreeMap<Month, Bucket>,
    orders: IdMap<OrderRec>,
    invoices: IdMap<InvoiceRec>,
    /// Issued invoices not yet paid in full, by due date: scoring scans
    /// only the overdue prefix.
    unsettled: BTreeSet<(Timestamp, u64)>,
    complaints: BTreeMap<String, ComplaintRec>,
    /// Complaints opened and not resolved.
    open_complaints: u32,
    /// Hashes of applied event ids -> month of the event, for dedupe.
    seen: IdMap<Month>,
    profile: Option<Profile>,
    profile_at: Option<Timestamp>,
    first_seen: Option<Timestamp>,
    last_event_at: Option<Timestamp>,
    /// Start of the window at the last prune.
    window_start: Month,
}

/// 64-bit FNV-1a: a stable hash for persisted id sets (std's hashers are not
/// guaranteed stable across Rust releases). Collisions among one customer's
/// ids within one window are negligible (~n^2 / 2^65).
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// First month of a `window_months` window at `now`.
pub fn window_start(now: Timestamp, window_months: u32) -> Month {
    let w = i32::try_from(window_months.max(1)).unwrap_or(i32::MAX);
    now.month().minus(w - 1)
}

impl CustomerProjection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fold one validated event in. Infallible: every invariant it needs was
    /// checked by [`Event::validate`].
    pub fn apply(&mut self, event: &Event, now: Timestamp, window_months: u32) -> Applied {
        self.advance(now, window_months);
        let month = event.occurred_at.month();
        if month < self.window_start {
            return Applied::Stale;
        }
        let id = stable_hash(&event.event_id);
        if self.seen.contains_key(&id) {
            return Applied::Duplicate;
        }
        self.seen.insert(id, month);
        let at = event.occurred_at;
        self.first_seen = Some(self.first_seen.map_or(at, |f| f.min(at)));
        self.last_event_at = Some(self.last_event_at.map_or(at, |l| l.max(at)));

        match &event.kind {
            EventKind::OrderPlaced {
                order_id,
                amount,
                cost,
            } => self.order_placed(stable_hash(order_id), at, *amount, *cost),
            EventKind::OrderCancelled { order_id } => {
                self.order_cancelled(stable_hash(order_id), month, at)
            }
            EventKind::OrderReturned {
                order_id,
                amount,
                cost,
            } => self.order_returned(stable_hash(order_id), month, at, *amount, *cost),
            EventKind::InvoiceIssued {
                invoice_id,
                amount,
                due_at,
                ..
            } => self.invoice_issued(stable_hash(invoice_id), month, *amount, *due_at),
            EventKind::PaymentReceived { invoice_id, amount } => {
                self.payment_received(stable_hash(invoice_id), month, at, *amount)
            }
            EventKind::ComplaintOpened {
                complaint_id,
                severity,
                category,
            } => self.complaint_opened(complaint_id, month, at, *severity, category),
            EventKind::ComplaintResolved { complaint_id } => {
                self.complaint_resolved(complaint_id, month, at)
            }
            EventKind::ProfileUpdated(p) => {
                // Last writer wins by event time; ties by arrival.
                if self.profile_at.is_none_or(|t| at >= t) {
                    self.profile = Some(p.clone());
                    self.profile_at = Some(at);
                }
            }
        }
        Applied::Applied
    }

    /// Move the window to `now`, dropping what fell out of it. Called by
    /// `apply`; call it directly when time passes without events.
    pub fn advance(&mut self, now: Timestamp, window_months: u32) {
        let start = window_start(now, window_months);
        if start <= self.window_start {
            return;
        }
        self.window_start = start;
        self.buckets = self.buckets.split_off(&start);
        self.seen.retain(|_, m| *m >= start);
        self.orders.retain(|_, o| o.month >= start);
        // Unpaid issued invoices stay until settled: they are still owed.
        self.invoices
            .retain(|_, i| i.month >= start || (i.issued && !i.settled));
        self.complaints
            .retain(|_, c| c.month >= start || c.is_open());
    }

    fn bucket(&mut self, month: Month) -> &mut Bucket {
        self.buckets.entry(month).or_default()
    }

    fn drop_if_empty(&mut self, month: Month) {
        if self.buckets.get(&month).is_some_and(Bucket::is_empty) {
            self.buckets.remove(&month);
        }
    }

    fn order_placed(&mut self, key: u64, at: Timestamp, amount: Money, cost: Money) {
        let month = at.month();
        let rec = self
            .orders
            .entry(key)
            .or_insert(OrderRec::pending(month, at));
        if rec.state != OrderState::Pending {
            // The same order placed again under another event id: first wins.
            return;
        }
        rec.month = month;
        rec.at = at;
        rec.amount = amount.0;
        rec.cost = cost.0;
        // Returns seen before the placement apply now, capped by the order.
        rec.returned_amount = rec.returned_amount.min(rec.amount);
        rec.returned_cost = rec.returned_cost.min(rec.cost);
        if rec.cancel_pending {
            rec.state = OrderState::Cancelled;
            return;
        }
        rec.state = OrderState::Placed;
        let (net_amount, net_cost) = (
            rec.amount - rec.returned_amount,
            rec.cost - rec.returned_cost,
        );
        let b = self.bucket(month);
        b.amount = b.amount.saturating_add(net_amount);
        b.cost = b.cost.saturating_add(net_cost);
        b.orders += 1;
        b.last_order_at = Some(b.last_order_at.map_or(at, |l| l.max(at)));
    }

    fn order_cancelled(&mut self, key: u64, month: Month, at: Timestamp) {
        let Some(rec) = self.orders.get_mut(&key) else {
            self.orders.insert(
                key,
                OrderRec {
                    cancel_pending: true,
                    ..OrderRec::pending(month, at)
                },
            );
            return;
        };
        match rec.state {
            OrderState::Cancelled => {}
            OrderState::Pending => rec.cancel_pending = true,
            OrderState::Placed => {
                rec.state = OrderState::Cancelled;
                let order_month = rec.month;
                let (net_amount, net_cost) = (
                    rec.amount - rec.returned_amount,
                    rec.cost - rec.returned_cost,
                );
                let b = self.bucket(order_month);
                b.amount = b.amount.saturating_sub(net_amount);
                b.cost = b.cost.saturating_sub(net_cost);
                b.orders = b.orders.saturating_sub(1);
                self.recompute_last_order(order_month);
                self.drop_if_empty(order_month);
            }
        }
    }

    fn recompute_last_order(&mut self, month: Month) {
        let last = self
            .orders
            .values()
            .filter(|o| o.state == OrderState::Placed && o.month == month)
            .map(|o| o.at)
            .max();
        if let Some(b) = self.buckets.get_mut(&month) {
            b.last_order_at = last;
        }
    }

    fn order_returned(
        &mut self,
        key: u64,
        month: Month,
        at: Timestamp,
        amount: Money,
        cost: Money,
    ) {
        let rec = self
            .orders
            .entry(key)
            .or_insert(OrderRec::pending(month, at));
        match rec.state {
            OrderState::Cancelled => {}
            OrderState::Pending => {
                rec.returned_amount = rec.returned_amount.saturating_add(amount.0);
                rec.returned_cost = rec.returned_cost.saturating_add(cost.0);
            }
            OrderState::Placed => {
                // A return takes back at most what the order still counts.
                let take_amount = amount.0.min(rec.amount - rec.returned_amount);
                let take_cost = cost.0.min(rec.cost - rec.returned_cost);
                rec.returned_amount += take_amount;
                rec.returned_cost += take_cost;
                let order_month = rec.month;
                let b = self.bucket(order_month);
                b.amount -= take_amount;
                b.cost -= take_cost;
            }
        }
    }

    fn invoice_issued(&mut self, key: u64, month: Month, amount: Money, due_at: Timestamp) {
        let rec = self
            .invoices
            .entry(key)
            .or_insert_with(|| InvoiceRec::unissued(month));
        if rec.issued {
            return;
        }
        rec.issued = true;
        rec.month = month;
        rec.due_at = due_at;
        rec.amount = amount.0;
        if !self.settle_if_paid(key) {
            self.unsettled.insert((due_at, key));
        }
    }

    fn payment_received(&mut self, key: u64, month: Month, at: Timestamp, amount: Money) {
        let rec = self
            .invoices
            .entry(key)
            .or_insert_with(|| InvoiceRec::unissued(month));
        if rec.settled {
            return;
        }
        rec.paid = rec.paid.saturating_add(amount.0);
        rec.last_paid_at = Some(rec.last_paid_at.map_or(at, |t| t.max(at)));
        let due_at = rec.due_at;
        if self.settle_if_paid(key) {
            self.unsettled.remove(&(due_at, key));
        }
    }

    /// Settle an issued invoice once it is paid in full, moving its payment
    /// record into the month bucket of its issue. True when it settled now.
    fn settle_if_paid(&mut self, key: u64) -> bool {
        let Some(rec) = self.invoices.get_mut(&key) else {
            return false;
        };
        if !rec.issued || rec.settled || rec.paid < rec.amount {
            return false;
        }
        rec.settled = true;
        let settled_at = rec.last_paid_at.unwrap_or(rec.due_at);
        let days_late = u32::try_from(settled_at.day().saturating_sub(rec.due_at.day()).max(0))
            .unwrap_or(u32::MAX);
        let month = rec.month;
        let b = self.bucket(month);
        b.settled += 1;
        if days_late == 0 {
            b.settled_on_time += 1;
        }
        b.days_late_sum += u64::from(days_late);
        b.days_late_max = b.days_late_max.max(days_late);
        true
    }

    fn complaint_opened(
        &mut self,
        id: &str,
        month: Month,
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
                month,
            });
        if rec.opened_at.is_some() {
            return;
        }
        rec.opened_at = Some(at);
        rec.severity = severity;
        rec.category = category.to_owned();
        rec.month = month;
        if rec.resolved_at.is_none() {
            self.open_complaints += 1;
        }
        self.bucket(month).complaints[severity.index()] += 1;
    }

    fn complaint_resolved(&mut self, id: &str, month: Month, at: Timestamp) {
        let rec = self
            .complaints
            .entry(id.to_owned())
            .or_insert_with(|| ComplaintRec {
                opened_at: None,
                severity: Severity::Unspecified,
                category: String::new(),
                resolved_at: None,
                month,
            });
        if rec.resolved_at.is_none() {
            rec.resolved_at = Some(at);
            if rec.opened_at.is_some() {
                self.open_complaints = self.open_complaints.saturating_sub(1);
            }
        }
    }

    /// The customer's profile, when one was published.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Complaints kept by the projection (open ones, and resolved ones in the window).
    pub fn complaints(&self) -> impl Iterator<Item = (&str, &ComplaintRec)> {
        self.complaints.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn last_event_at(&self) -> Option<Timestamp> {
        self.last_event_at
    }

    /// Net order amount in the window, exact, in minor units.
    pub fn order_amount(&self, now: Timestamp, window_months: u32) -> i64 {
        let start = window_start(now, window_months);
        self.buckets.range(start..).map(|(_, b)| b.amount).sum()
    }

    /// Net margin in the window, exact, in minor units.
    pub fn margin(&self, now: Timestamp, window_months: u32) -> i64 {
        let start = window_start(now, window_months);
        self.buckets
            .range(start..)
            .map(|(_, b)| b.amount - b.cost)
            .sum()
    }

    /// Compute every indicator at `now` over a `window_months` window.
    pub fn indicators(&self, now: Timestamp, window_months: u32) -> Indicators {
        let start = window_start(now, window_months);
        let this_month = now.month();
        let mut amount = 0i64;
        let mut cost = 0i64;
        let mut orders = 0u64;
        let mut last_order: Option<Timestamp> = None;
        let mut complaints = [0u32; 5];
        let mut due = 0u64;
        let mut on_time = 0u64;
        let mut late_sum = 0f64;
        let mut late_max = 0f64;
        let mut recent3 = 0i64;
        let mut prior3 = 0i64;
        for (m, b) in self.buckets.range(start..) {
            amount += b.amount;
            cost += b.cost;
            orders += u64::from(b.orders);
            if let Some(t) = b.last_order_at {
                last_order = Some(last_order.map_or(t, |l| l.max(t)));
            }
            for (acc, c) in complaints.iter_mut().zip(b.complaints) {
                *acc += c;
            }
            due += u64::from(b.settled);
            on_time += u64::from(b.settled_on_time);
            late_sum += b.days_late_sum as f64;
            late_max = late_max.max(f64::from(b.days_late_max));
            let age = this_month.0 - m.0;
            if (1..=3).contains(&age) {
                recent3 += b.amount;
            } else if (4..=6).contains(&age) {
                prior3 += b.amount;
            }
        }
        // Open invoices: past due ones count as late by the days so far.
        let mut overdue = 0i64;
        let overdue_keys = self.unsettled.range(..(now, 0)).map(|(_, k)| k);
        for inv in overdue_keys.filter_map(|k| self.invoices.get(k)) {
            let days = now.days_since(inv.due_at).floor();
            due += 1;
            late_sum += days;
            late_max = late_max.max(days);
            overdue += inv.amount - inv.paid;
        }
        let open_complaints = self.open_complaints;

        let amount_f = amount as f64;
        let active_from = self
            .first_seen
            .map_or(start, |f| f.month().max(start))
            .min(this_month);
        let active_months = f64::from((this_month.0 - active_from.0 + 1).max(1));
        let window_days = now.days_since(start.start()).max(0.0);
        let count_12m: u32 = complaints.iter().sum();
        let weighted: u32 = Severity::ALL
            .iter()
            .map(|s| complaints[s.index()] * s.weight())
            .sum();
        let growth = if prior3 > 0 {
            ((recent3 - prior3) as f64 / prior3 as f64).clamp(-1.0, 10.0)
        } else if recent3 > 0 {
            1.0
        } else {
            0.0
        };
        Indicators {
            order_amount_12m: amount_f,
            order_count_12m: orders as f64,
            avg_order_value_12m: if orders > 0 {
                amount_f / orders as f64
            } else {
                0.0
            },
            orders_per_month_12m: orders as f64 / active_months,
            margin_12m: (amount - cost) as f64,
            margin_rate_12m: if amount > 0 {
                (amount - cost) as f64 / amount_f
            } else {
                0.0
            },
            on_time_payment_ratio: if due > 0 {
                on_time as f64 / due as f64
            } else {
                1.0
            },
            avg_days_late: if due > 0 { late_sum / due as f64 } else { 0.0 },
            max_days_late: late_max,
            overdue_amount: overdue as f64,
            open_complaints: f64::from(open_complaints),
            complaints_12m: f64::from(count_12m),
            complaints_weighted_12m: f64::from(weighted),
            days_since_last_order: last_order.map_or(window_days, |t| now.days_since(t).max(0.0)),
            tenure_days: self.first_seen.map_or(0.0, |f| now.days_since(f).max(0.0)),
            share_of_wallet: self
                .profile
                .as_ref()
                .and_then(|p| p.purchase_potential)
                .filter(|p| p.0 > 0)
                .map(|p| amount_f / p.0 as f64),
            growth_3m: growth,
            complaints_by_severity_12m: complaints,
        }
    }
}

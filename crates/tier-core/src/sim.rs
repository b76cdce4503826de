//! A deterministic generator of realistic event streams, for the demo, the
//! benchmarks, `tierctl simulate` and the fault tests.
//!
//! The model: a few large profitable key accounts, a middle of regular
//! customers and a long tail of small ones; customer activity is Zipf-skewed;
//! orders follow a seasonal rate; each order is invoiced and paid (some
//! customers pay late, a few never); some orders are returned or cancelled;
//! some customers complain. Same seed, same stream.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::event::{Amount, Currency, Event, EventKind, Money, ProfileUpdate, Severity};
use crate::time::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// SplitMix64: small, fast, good enough for workloads (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Kinds of customer in the generated population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Key,
    Regular,
    Small,
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    segment: Segment,
    late_payer: bool,
    complainer: bool,
}

/// Shape of a generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub customers: usize,
    /// Number of orders to generate (other events follow from them).
    pub orders: usize,
    pub seed: u64,
    /// The stream covers `[end - days, end]`.
    pub end: Timestamp,
    pub days: u32,
    /// Zipf exponent of customer activity (0 = uniform).
    pub zipf_s: f64,
    /// Prefix of customer ids (`{prefix}{n:06}`).
    pub id_prefix: String,
    /// Currency of invoices and payments (the policy's base currency).
    pub currency: Currency,
}

impl Workload {
    pub fn new(customers: usize, orders: usize, end: Timestamp) -> Self {
        Self {
            customers: customers.max(1),
            orders,
            seed: 42,
            end,
            days: 365,
            zipf_s: 1.0,
            id_prefix: "cust-".into(),
            currency: Currency(*b"CNY"),
        }
    }

    /// Generate the whole stream, sorted by `occurred_at`.
    pub fn generate(&self) -> Vec<Event> {
        Generator::new(self).collect()
    }
}

/// An event waiting for its time, ordered by `(at, seq)`.
#[derive(Debug)]
struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Iterator over a workload's events in time order.
#[derive(Debug)]
pub struct Generator {
    rng: SplitMix64,
    customers: Vec<Customer>,
    /// Cumulative Zipf weights over customers.
    cdf: Vec<f64>,
    start: i64,
    span_ms: i64,
    orders_left: usize,
    orders_total: usize,
    next_order_at: i64,
    /// Follow-up events scheduled for later, by time then sequence.
    pending: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    end: i64,
    currency: Currency,
}

impl Generator {
    pub fn new(w: &Workload) -> Self {
        let mut rng = SplitMix64::new(w.seed);
        let mut customers = Vec::with_capacity(w.customers);
        let mut cdf = Vec::with_capacity(w.customers);
        let mut acc = 0.0;
        for n in 0..w.customers {
            // Rank 0 is the most active customer; key accounts sit near the top.
            let segment = if n < w.customers.div_ceil(30) {
                Segment::Key
            } else if rng.chance(0.3) {
                Segment::Regular
            } else {
                Segment::Small
            };
            customers.push(Customer {
                id: format!("{}{n:06}", w.id_prefix),
                segment,
                late_payer: rng.chance(0.12),
                complainer: rng.chance(0.06),
            });
            acc += 1.0 / ((n + 1) as f64).powf(w.zipf_s);
            cdf.push(acc);
        }
        let span_ms = i64::from(w.days.max(1)) * DAY_MS;
        let start = w.end.millis() - span_ms;
        let mut g = Self {
            currency: w.currency,
            rng,
            customers,
            cdf,
            start,
            span_ms,
            orders_left: w.orders,
            orders_total: w.orders.max(1),
            next_order_at: start,
            pending: BinaryHeap::new(),
            seq: 0,
            end: w.end.millis(),
        };
        // Every customer introduces itself with a profile at the start.
        for idx in 0..g.customers.len() {
            let c = &g.customers[idx];
            let potential = match c.segment {
                Segment::Key => Some(Money(g.rng.range(500_000_000, 2_000_000_000))),
                Segment::Regular => Some(Money(g.rng.range(20_000_000, 200_000_000))),
                Segment::Small => None,
            };
            let ev = Event {
                event_id: format!("{}-profile", c.id),
                customer_id: c.id.clone(),
                occurred_at: Timestamp(start + (idx as i64 % 1000)),
                source: "crm".into(),
                kind: EventKind::ProfileUpdated(ProfileUpdate {
                    name: Some(format!("Customer {idx}")),
                    industry: Some(
                        ["machinery", "retail", "electronics", "chemicals"][idx % 4].into(),
                    ),
                    region: Some(["east", "north", "south", "west"][idx % 4].into()),
                    purchase_potential: potential,
                    account_manager: Some(format!("rep-{}", idx % 17)),
                    ..ProfileUpdate::default()
                }),
            };
            g.schedule(ev);
        }
        g
    }

    fn schedule(&mut self, ev: Event) {
        if ev.occurred_at.millis() > self.end {
            return;
        }
        self.seq += 1;
        self.pending.push(Reverse(Scheduled {
            at: ev.occurred_at.millis(),
            seq: self.seq,
            event: ev,
        }));
    }

    fn pick_customer(&mut self) -> usize {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let x = self.rng.unit() * total;
        self.cdf
            .partition_point(|c| *c < x)
            .min(self.customers.len() - 1)
    }

    /// Seasonal spacing: busier in spring and autumn.
    fn gap_ms(&mut self) -> i64 {
        let mean = self.span_ms as f64 / self.orders_total as f64;
        let phase = (self.next_order_at - self.start) as f64 / (365.0 * DAY_MS as f64);
        let season = 1.0 + 0.35 * (phase * std::f64::consts::TAU * 2.0).sin();
        let u = self.rng.unit().max(1e-12);
        (-(u.ln()) * mean / season).max(0.0) as i64
    }

    fn make_order(&mut self, at: i64) {
        let idx = self.pick_customer();
        let c = self.customers[idx].clone();
        let n = self.seq;
        let (lo, hi, margin_lo, margin_hi) = match c.segment {
            Segment::Key => (5_000_000, 50_000_000, 25, 40),
            Segment::Regular => (500_000, 5_000_000, 12, 25),
            Segment::Small => (20_000, 500_000, 5, 18),
        };
        let amount = self.rng.range(lo, hi);
        let margin = self.rng.range(margin_lo, margin_hi);
        let cost = amount * (100 - margin) / 100;
        let order_id = format!("ord-{n}");
        let ev = |suffix: &str, t: i64, kind: EventKind| Event {
            event_id: format!("evt-{n}-{suffix}"),
            customer_id: c.id.clone(),
            occurred_at: Timestamp(t),
            source: "erp".into(),
            kind,
        };
        self.schedule(ev(
            "o",
            at,
            EventKind::OrderPlaced {
                order_id: order_id.clone(),
                amount: Money(amount),
                cost: Some(Money(cost)),
            },
        ));
        if self.rng.chance(0.01) {
            let t = at + self.rng.range(DAY_MS / 24, 3 * DAY_MS);
            self.schedule(ev("c", t, EventKind::OrderCancelled { order_id }));
            return;
        }
        let mut billed = amount;
        if self.rng.chance(0.03) {
            let pct = self.rng.range(10, 101);
            let t = at + self.rng.range(3 * DAY_MS, 30 * DAY_MS);
            billed -= amount * pct / 100;
            self.schedule(ev(
                "r",
                t,
                EventKind::OrderReturned {
                    order_id: order_id.clone(),
                    amount: Money(amount * pct / 100),
                    cost: Some(Money(cost * pct / 100)),
                    return_id: String::new(),
                },
            ));
        }
        let invoice_id = format!("inv-{n}");
        let issued = at + DAY_MS;
        let due = issued + 30 * DAY_MS;
        self.schedule(ev(
            "i",
            issued,
            EventKind::InvoiceIssued {
                invoice_id: invoice_id.clone(),
                order_id,
                amount: Money(billed),
                billed: Amount::new(billed, self.currency),
                due_at: Timestamp(due),
            },
        ));
        if billed > 0 && !(c.late_payer && self.rng.chance(0.05)) {
            let paid = if c.late_payer {
                due + self.rng.range(5 * DAY_MS, 60 * DAY_MS)
            } else {
                issued + self.rng.range(5 * DAY_MS, 29 * DAY_MS)
            };
            self.schedule(ev(
                "p",
                paid,
                EventKind::PaymentReceived {
                    invoice_id,
                    amount: Money(billed),
                    paid: Amount::new(billed, self.currency),
                    payment_id: String::new(),
                },
            ));
        }
        if c.complainer && self.rng.chance(0.2) {
            let complaint_id = format!("cmp-{n}");
            let t = at + self.rng.range(2 * DAY_MS, 20 * DAY_MS);
            let severity = Severity::ALL[self.rng.range(1, 5) as usize];
            self.schedule(ev(
                "k",
                t,
                EventKind::ComplaintOpened {
                    complaint_id: complaint_id.clone(),
                    severity,
                    category: "quality".into(),
                },
            ));
            if self.rng.chance(0.8) {
                let r = t + self.rng.range(DAY_MS, 10 * DAY_MS);
                self.schedule(ev("kr", r, EventKind::ComplaintResolved { complaint_id }));
            }
        }
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            let next_pending = self.pending.peek().map(|Reverse(s)| s.at);
            let order_due = (self.orders_left > 0).then_some(self.next_order_at);
            match (next_pending, order_due) {
                (Some(p), Some(o)) if o < p => {}
                (None, Some(_)) => {}
                (Some(_), _) => {
                    return self.pending.pop().map(|Reverse(s)| s.event);
                }
                (None, None) => return None,
            }
            let at = self.next_order_at.min(self.end);
            self.orders_left -= 1;
            self.make_order(at);
            let gap = self.gap_ms();
            self.next_order_at = (self.next_order_at + gap).min(self.end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidationLimits;
    use crate::time::date;

    #[test]
    fn same_seed_same_stream_in_time_order_and_valid() {
        let w = Workload::new(200, 2_000, date(2026, 11, 1));
        let a = w.generate();
        let b = w.generate();
        assert_eq!(a, b);
        assert!(a.len() > 4_000, "{} events", a.len());
        assert!(a.windows(2).all(|p| p[0].occurred_at <= p[1].occurred_at));
        let mut ids = std::collections::HashSet::new();
        for e in &a {
            assert!(
                ids.insert(e.event_id.clone()),
                "duplicate id {}",
                e.event_id
            );
            e.validate(w.end, &ValidationLimits::default()).unwrap();
        }
        let kinds: std::collections::HashSet<_> = a.iter().map(|e| e.kind.type_name()).collect();
        assert_eq!(kinds.len(), 8, "{kinds:?}");
    }
}

/// Scenario building blocks for tests and demos: one customer's steady
/// buying, its invoices and payments, and a variant of a policy with
/// stricter bands.
pub mod scenario {
    use crate::event::{Amount, Currency, Event, EventKind, Money, Severity};
    use crate::time::Timestamp;

    /// Order `n` of `customer` at `at`, worth `amount` minor units at a 25%
    /// margin (cost 75%).
    pub fn order(customer: &str, n: usize, at: Timestamp, amount: i64) -> Event {
        Event {
            event_id: format!("{customer}-e{n}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "scenario".into(),
            kind: EventKind::OrderPlaced {
                order_id: format!("{customer}-o{n}"),
                amount: Money(amount),
                cost: Some(Money(amount * 3 / 4)),
            },
        }
    }

    /// The invoice of order `n` of `customer` (see [`order`]): `amount`
    /// minor units of CNY, issued at `at`, due `terms_days` later.
    pub fn invoice(customer: &str, n: usize, at: Timestamp, amount: i64, terms_days: i64) -> Event {
        Event {
            event_id: format!("{customer}-i{n}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "scenario".into(),
            kind: EventKind::InvoiceIssued {
                invoice_id: format!("{customer}-inv{n}"),
                order_id: format!("{customer}-o{n}"),
                amount: Money(amount),
                billed: Amount::new(amount, Currency(*b"CNY")),
                due_at: at.plus_days(terms_days),
            },
        }
    }

    /// Payment in full, at `at`, of the invoice of order `n` (see
    /// [`invoice`]).
    pub fn payment(customer: &str, n: usize, at: Timestamp, amount: i64) -> Event {
        Event {
            event_id: format!("{customer}-p{n}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "scenario".into(),
            kind: EventKind::PaymentReceived {
                invoice_id: format!("{customer}-inv{n}"),
                amount: Money(amount),
                paid: Amount::new(amount, Currency(*b"CNY")),
                payment_id: String::new(),
            },
        }
    }

    /// Complaint `n` of `customer`, opened at `at`.
    pub fn complaint(customer: &str, n: usize, at: Timestamp, severity: Severity) -> Event {
        Event {
            event_id: format!("{customer}-k{n}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "scenario".into(),
            kind: EventKind::ComplaintOpened {
                complaint_id: format!("{customer}-complaint{n}"),
                severity,
                category: "quality".into(),
            },
        }
    }

    /// Resolution, at `at`, of complaint `n` of `customer` (see
    /// [`complaint`]).
    pub fn resolved(customer: &str, n: usize, at: Timestamp) -> Event {
        Event {
            event_id: format!("{customer}-kr{n}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "scenario".into(),
            kind: EventKind::ComplaintResolved {
                complaint_id: format!("{customer}-complaint{n}"),
            },
        }
    }

    /// Weekly orders worth `per_year` minor units a year, over the year up
    /// to `last` (53 orders, the last one at `last`).
    pub fn weekly_buyer(customer: &str, last: Timestamp, per_year: i64) -> Vec<Event> {
        let mut out = Vec::new();
        let mut t = last.plus_days(-364);
        let mut n = 0;
        while t <= last {
            n += 1;
            out.push(order(customer, n, t, per_year / 52));
            t = t.plus_days(7);
        }
        out
    }

    /// `policy_toml` with `version` and every positive `min_score` raised
    /// by `by` points (at most 100): the same policy, stricter bands.
    /// Lines are matched as the shipped policies write them
    /// (`version = "..."`, `min_score = N  # ...`).
    pub fn stricter_bands(policy_toml: &str, version: &str, by: f64) -> String {
        policy_toml
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("version = ") {
                    return format!("version = \"{version}\"");
                }
                let Some(rest) = t.strip_prefix("min_score = ") else {
                    return l.to_owned();
                };
                match rest.split_whitespace().next().map(str::parse::<f64>) {
                    Some(Ok(v)) if v > 0.0 => format!("min_score = {:.1}", (v + by).min(100.0)),
                    _ => l.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::policy::{DEFAULT_POLICY_TOML, Policy};

        #[test]
        fn stricter_bands_parse_and_raise_every_band() {
            let base = Policy::default_policy();
            let p =
                Policy::from_toml_str(&stricter_bands(DEFAULT_POLICY_TOML, "s-1", 5.0)).unwrap();
            assert_eq!(p.version(), "s-1");
            for (a, b) in base.tiers().iter().zip(p.tiers()) {
                match (a.min_score, b.min_score) {
                    (Some(x), Some(y)) if x > 0.0 => assert_eq!(y, x + 5.0, "{}", a.name),
                    (x, y) => assert_eq!(x, y, "{}", a.name),
                }
            }
        }

        #[test]
        fn a_weekly_buyer_buys_53_times_a_year() {
            let last = crate::time::date(2026, 3, 2);
            let events = weekly_buyer("c", last, 5_200);
            assert_eq!(events.len(), 53);
            assert_eq!(events.last().unwrap().occurred_at, last);
        }
    }
}

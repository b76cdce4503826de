//! "Semantics a manager can trust" (DOMAIN.md), one given/when/then
//! example per rule, written as the rule reads.
//!
//! Each test drives one customer through [`Customer`], a small scenario
//! helper over the real per-customer step (`CustomerState::process`), and
//! reads the figures a manager would see.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::policy::Policy;
use tier_core::projection::FoldRules;
use tier_core::state::{Cause, CustomerState};
use tier_core::time::date;
use tier_core::{
    Amount, BusinessCalendar, Currency, Event, EventKind, Indicators, Money, ProfileField,
    ProfileUpdate, Severity, Timestamp,
};

const HOUR: i64 = 3_600_000;

/// A policy like the default one, with the window, zone and hysteresis a
/// test needs.
fn policy(window_months: u32, time_zone: &str, min_days_in_tier: u32) -> Policy {
    let text: String = tier_core::policy::DEFAULT_POLICY_TOML
        .lines()
        .filter(|l| !l.starts_with("time_zone"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text
        .replace(
            "window_months = 12",
            &format!("window_months = {window_months}\ntime_zone = \"{time_zone}\""),
        )
        .replace(
            "min_days_in_tier = 30",
            &format!("min_days_in_tier = {min_days_in_tier}"),
        );
    Policy::from_toml_str(&text).expect("test policy is valid")
}

fn cny(minor: i64) -> Amount {
    Amount::new(minor, Currency(*b"CNY"))
}

fn usd(minor: i64) -> Amount {
    Amount::new(minor, Currency(*b"USD"))
}

/// One customer, its events and the policy that grades it.
struct Customer {
    policy: Policy,
    state: CustomerState,
    next_id: usize,
}

impl Customer {
    fn given(policy: Policy) -> Self {
        Self {
            policy,
            state: CustomerState::default(),
            next_id: 0,
        }
    }

    fn event(&mut self, at: Timestamp, kind: EventKind) -> &mut Self {
        self.outcome_of(at, kind);
        self
    }

    fn orders(&mut self, at: Timestamp, id: &str, amount: i64, cost: Option<i64>) -> &mut Self {
        self.event(
            at,
            EventKind::OrderPlaced {
                order_id: id.into(),
                amount: Money(amount),
                cost: cost.map(Money),
            },
        )
    }

    /// Order "y" of `amount` (cost half) at `at`, and invoice "i0" of 3
    /// CNY (of no order) overdue since 2026-10-31: the customer is D.
    fn orders_with_an_invoice_overdue(&mut self, at: Timestamp, amount: i64) -> &mut Self {
        self.orders(at, "y", amount, Some(amount / 2));
        self.is_invoiced(
            date(2026, 10, 1),
            "i0",
            "",
            cny(300),
            300,
            date(2026, 10, 31),
        );
        assert_eq!(self.tier(), "D");
        self
    }

    /// A critical complaint `id` (category "quality"), opened at `at`.
    fn complains_critically(&mut self, at: Timestamp, id: &str) -> &mut Self {
        self.event(
            at,
            EventKind::ComplaintOpened {
                complaint_id: id.into(),
                severity: Severity::Critical,
                category: "quality".into(),
            },
        )
    }

    fn cancels(&mut self, at: Timestamp, id: &str) -> &mut Self {
        self.event(
            at,
            EventKind::OrderCancelled {
                order_id: id.into(),
            },
        )
    }

    fn returns(&mut self, at: Timestamp, id: &str, amount: i64, cost: Option<i64>) -> &mut Self {
        self.returns_as(at, id, "", amount, cost)
    }

    /// A return the source system names `return_id` (empty: none).
    fn returns_as(
        &mut self,
        at: Timestamp,
        id: &str,
        return_id: &str,
        amount: i64,
        cost: Option<i64>,
    ) -> &mut Self {
        self.event(
            at,
            EventKind::OrderReturned {
                order_id: id.into(),
                amount: Money(amount),
                cost: cost.map(Money),
                return_id: return_id.into(),
            },
        )
    }

    fn is_invoiced(
        &mut self,
        at: Timestamp,
        id: &str,
        order: &str,
        billed: Amount,
        base: i64,
        due: Timestamp,
    ) -> &mut Self {
        self.event(
            at,
            EventKind::InvoiceIssued {
                invoice_id: id.into(),
                order_id: order.into(),
                amount: Money(base),
                billed,
                due_at: due,
            },
        )
    }

    /// An order of `amount` CNY (cost 60%) invoiced in full the same
    /// instant, due at `due`.
    fn orders_billed(
        &mut self,
        at: Timestamp,
        order: &str,
        invoice: &str,
        amount: i64,
        due: Timestamp,
    ) -> &mut Self {
        self.orders(at, order, amount, Some(amount * 3 / 5));
        self.is_invoiced(at, invoice, order, cny(amount), amount, due)
    }

    fn pays(&mut self, at: Timestamp, invoice: &str, paid: Amount, base: i64) -> &mut Self {
        self.pays_as(at, invoice, "", paid, base)
    }

    /// A payment the source system names `payment_id` (empty: none).
    fn pays_as(
        &mut self,
        at: Timestamp,
        invoice: &str,
        payment_id: &str,
        paid: Amount,
        base: i64,
    ) -> &mut Self {
        self.event(
            at,
            EventKind::PaymentReceived {
                invoice_id: invoice.into(),
                amount: Money(base),
                paid,
                payment_id: payment_id.into(),
            },
        )
    }

    /// A credit note for `credited` of invoice `invoice` (worth `base`).
    fn credits(&mut self, at: Timestamp, invoice: &str, credited: Amount, base: i64) -> &mut Self {
        self.event(
            at,
            EventKind::InvoiceCredited {
                invoice_id: invoice.into(),
                amount: Money(base),
                credited,
                credit_note_id: String::new(),
            },
        )
    }

    /// What processing the next event did (its id is new).
    fn outcome_of(&mut self, at: Timestamp, kind: EventKind) -> tier_core::projection::Applied {
        self.next_id += 1;
        let id = format!("e{}", self.next_id);
        self.outcome_as(&id, at, kind)
    }

    /// What processing an event of id `event_id` did.
    fn outcome_as(
        &mut self,
        event_id: &str,
        at: Timestamp,
        kind: EventKind,
    ) -> tier_core::projection::Applied {
        let e = Event {
            event_id: event_id.into(),
            customer_id: "c".into(),
            occurred_at: at,
            source: String::new(),
            kind,
        };
        self.state.process("c", &e, &self.policy).applied
    }

    fn profile(&mut self, at: Timestamp, update: ProfileUpdate) -> &mut Self {
        self.event(at, EventKind::ProfileUpdated(update))
    }

    /// The figures behind the held tier.
    fn figures(&self) -> Indicators {
        self.state.indicators(&self.policy)
    }

    /// The figures as of a later instant.
    fn figures_at(&self, t: Timestamp) -> Indicators {
        self.state
            .projection
            .indicators(t, self.policy.fold_rules())
    }

    fn tier(&self) -> &str {
        self.state
            .assignment
            .as_ref()
            .map_or("-", |a| a.tier.as_str())
    }
}

/// A customer the default policy grades B: 1,500,000 CNY a year at 25%
/// margin over 48 orders, paid on time.
fn steady_b_customer(p: Policy, until: Timestamp) -> Customer {
    let mut c = Customer::given(p);
    let mut t = until.plus_days(-364);
    let mut n = 0;
    while t <= until {
        n += 1;
        let id = format!("o{n}");
        c.orders(t, &id, 3_125_000, Some(2_343_750));
        c.is_invoiced(
            t,
            &format!("i{n}"),
            &id,
            cny(3_125_000),
            3_125_000,
            t.plus_days(30),
        );
        c.pays(t.plus_days(1), &format!("i{n}"), cny(3_125_000), 3_125_000);
        t = t.plus_days(7);
        if n % 13 == 0 {
            t = t.plus_days(7); // 48 orders a year, not 52
        }
    }
    c
}

// --- 1. History is judged in event time -------------------------------

#[test]
fn given_a_history_published_a_year_late_when_replayed_then_it_counts_as_of_when_it_happened() {
    let p = policy(12, "UTC", 30);
    let mut live = steady_b_customer(p.clone(), date(2025, 6, 30));
    // The same history, processed much later (the core never reads a
    // clock: the decision instant is the customer's own watermark).
    let replay = steady_b_customer(p, date(2025, 6, 30));
    assert_eq!(live.state.assignment, replay.state.assignment);
    assert_eq!(live.state.decided_at, replay.state.decided_at);
    assert_eq!(live.figures(), replay.figures());
    assert_eq!(live.tier(), "B");
    // Its `since` is an event time, in 2024/2025, not a processing time.
    let since = live.state.assignment.as_ref().unwrap().since;
    assert!(since < date(2025, 7, 1), "{since}");
    // An old-but-valid late posting inside the window still counts.
    let before = live.figures().order_amount_12m;
    live.orders(date(2025, 1, 15), "late-posting", 1_000_000, Some(800_000));
    assert_eq!(live.figures().order_amount_12m, before + 1_000_000.0);
}

#[test]
fn given_a_backfill_of_several_years_in_time_order_then_tenure_counts_from_the_first_order() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    for year in 2020..=2026 {
        c.orders(date(year, 3, 1), &format!("o{year}"), 100_000, Some(80_000));
    }
    let f = c.figures();
    assert_eq!(
        f.tenure_days,
        (date(2026, 3, 1).day() - date(2020, 3, 1).day()) as f64
    );
    assert_eq!(f.order_count_12m, 1.0);
}

#[test]
fn given_a_complaint_that_arrives_after_a_later_override_then_its_deadline_is_the_tier_held_at_its_opening()
 {
    use tier_core::overrides::{Override, OverrideMode};
    let p = policy(12, "UTC", 30);
    let mut c = steady_b_customer(p.clone(), date(2026, 6, 30));
    assert_eq!(c.tier(), "B");
    let opened = Timestamp::from_millis(date(2026, 7, 1).millis() + 9 * HOUR);
    // A manager pins the lowest tier at 10:00 (a credit hold); the
    // complaint opened at 09:00 reaches tierd after it.
    c.state
        .set_override(
            "c",
            &p,
            Override {
                tier: "D".into(),
                mode: OverrideMode::Pin,
                reason: "credit hold".into(),
                author: "finance".into(),
                set_at: Timestamp::from_millis(opened.millis() + HOUR),
                expires_at: None,
            },
        )
        .unwrap();
    c.event(
        opened,
        EventKind::ComplaintOpened {
            complaint_id: "k1".into(),
            severity: Severity::High,
            category: "delivery".into(),
        },
    );
    let (_, k) = c
        .state
        .projection
        .complaints()
        .find(|(id, _)| *id == "k1")
        .unwrap();
    let deadline = k.deadline.as_ref().unwrap();
    let b = &p.tiers()[p.tier_index("B").unwrap()];
    assert_eq!(deadline.tier, "B");
    assert_eq!(deadline.sla_hours, b.complaint_sla_hours);
    assert_eq!(
        deadline.at.millis(),
        opened.millis() + i64::from(b.complaint_sla_hours) * HOUR
    );
}

#[test]
fn given_a_complaint_opened_in_a_tier_a_policy_change_renamed_then_its_deadline_is_the_renamed_tiers()
 {
    // B is renamed "Key" by a policy change at 10:00; the complaint opened
    // at 09:00, while the customer held B, reaches tierd after it. B's SLA
    // is not in the policy in force: the tier the customer holds under it
    // gives the deadline, not the lowest tier (which sank it to the bottom
    // of the complaint queue).
    let p = policy(12, "UTC", 30);
    let mut c = steady_b_customer(p.clone(), date(2026, 6, 30));
    assert_eq!(c.tier(), "B");
    let text = tier_core::policy::DEFAULT_POLICY_TOML
        .replace("version = \"default-2027.01\"", "version = \"renamed\"")
        .replace("name = \"B\" ", "name = \"Key\" ")
        .replace(
            "classes = [\"A\", \"B\", \"C\"]",
            "classes = [\"A\", \"Key\", \"C\"]",
        );
    let renamed = Policy::from_toml_str(&text).unwrap();
    let opened = Timestamp::from_millis(date(2026, 7, 1).millis() + 9 * HOUR);
    let rescored = c.state.rescore_policy(
        "c",
        &renamed,
        Timestamp::from_millis(opened.millis() + HOUR),
    );
    assert_eq!(rescored.change.map(|c| c.new_tier), Some("Key".to_owned()));
    c.policy = renamed.clone();
    c.event(
        opened,
        EventKind::ComplaintOpened {
            complaint_id: "k1".into(),
            severity: Severity::High,
            category: "delivery".into(),
        },
    );
    let (_, k) = c
        .state
        .projection
        .complaints()
        .find(|(id, _)| *id == "k1")
        .unwrap();
    let deadline = k.deadline.as_ref().unwrap();
    let key = &renamed.tiers()[renamed.tier_index("Key").unwrap()];
    assert_eq!(deadline.tier, "Key");
    assert_eq!(deadline.sla_hours, key.complaint_sla_hours);
    let lowest = renamed.tiers().last().unwrap();
    assert!(key.complaint_sla_hours < lowest.complaint_sla_hours);
}

// --- 2. Windows have a stable length ----------------------------------

#[test]
fn given_a_steady_weekly_buyer_then_figures_and_tier_hold_on_every_day_of_two_years() {
    let p = policy(12, "Asia/Shanghai", 30);
    let mut c = Customer::given(p.clone());
    let first = date(2024, 1, 1).plus_days(0);
    let mut next_order = first;
    let mut n = 0;
    let mut tiers = std::collections::BTreeSet::new();
    for day in 0..(3 * 365) {
        let today = first.plus_days(day).plus_days(0);
        while next_order <= today {
            n += 1;
            c.orders(next_order, &format!("o{n}"), 4_000_000, Some(3_000_000));
            next_order = next_order.plus_days(7);
        }
        if day < 365 {
            continue;
        }
        // Every day of years two and three, as of noon.
        let noon = Timestamp::from_millis(today.millis() + 12 * HOUR);
        c.state.reevaluate("c", &p, noon, Cause::Time);
        let f = c.figures();
        assert!(
            (52.0..=53.0).contains(&f.order_count_12m),
            "day {day}: {} orders",
            f.order_count_12m
        );
        assert!(
            (f.orders_per_month_12m - 52.5 / 12.0).abs() <= 1.0 / 12.0 + 1e-9,
            "day {day}: {}",
            f.orders_per_month_12m
        );
        tiers.insert(c.tier().to_owned());
    }
    assert_eq!(tiers.len(), 1, "{tiers:?}");
}

#[test]
fn given_a_new_customer_then_orders_per_month_divide_by_the_span_covered_and_only_orders_count() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    // A profile and a complaint months earlier do not start the span.
    c.profile(date(2026, 1, 1), ProfileUpdate::default());
    c.event(
        date(2026, 2, 1),
        EventKind::ComplaintOpened {
            complaint_id: "k".into(),
            severity: Severity::Low,
            category: String::new(),
        },
    );
    for (i, d) in [1, 8, 15, 22].into_iter().enumerate() {
        c.orders(date(2026, 6, d), &format!("o{i}"), 1000, Some(500));
    }
    let f = c.figures_at(date(2026, 6, 30));
    // Four orders in the first month of the relationship: 4 a month, not 4/12.
    assert_eq!(f.orders_per_month_12m, 4.0);
}

// --- 3. Recency and tenure are true durations -------------------------

#[test]
fn given_a_customer_who_stops_buying_then_days_since_last_order_keep_growing_past_the_window() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2025, 1, 10), "o1", 1000, Some(500));
    let f = c.figures_at(date(2026, 6, 1));
    assert_eq!(f.order_count_12m, 0.0);
    assert_eq!(
        f.days_since_last_order,
        Some((date(2026, 6, 1).day() - date(2025, 1, 10).day()) as f64)
    );
    // Tenure runs from the first order, not from a profile event.
    c.profile(date(2025, 12, 1), ProfileUpdate::default());
    assert_eq!(
        c.figures_at(date(2026, 6, 1)).tenure_days,
        (date(2026, 6, 1).day() - date(2025, 1, 10).day()) as f64
    );
    // ... unless the profile says the relationship is older.
    c.profile(
        date(2025, 12, 2),
        ProfileUpdate {
            customer_since: Some(date(2019, 1, 1)),
            ..ProfileUpdate::default()
        },
    );
    assert_eq!(
        c.figures_at(date(2026, 6, 1)).tenure_days,
        (date(2026, 6, 1).day() - date(2019, 1, 1).day()) as f64
    );
}

// --- 4. Corrections undo what they corrected --------------------------

#[test]
fn given_a_huge_order_that_made_a_b_customer_a_when_it_is_cancelled_then_the_tier_is_b_again() {
    // Hysteresis would hold A for 30 days against an organic drop.
    let mut c = steady_b_customer(policy(12, "UTC", 30), date(2026, 6, 30));
    assert_eq!(c.tier(), "B");
    let since_b = c.state.assignment.as_ref().unwrap().since;
    let before = c.figures();
    c.orders(date(2026, 7, 1), "huge", 300_000_000, Some(200_000_000));
    assert_eq!(c.tier(), "A");
    c.cancels(date(2026, 7, 2), "huge");
    assert_eq!(c.tier(), "B");
    // Back to B with the since it had: the days in B keep counting.
    assert_eq!(c.state.assignment.as_ref().unwrap().since, since_b);
    let after = c.figures();
    assert_eq!(after.order_amount_12m, before.order_amount_12m);
    assert_eq!(after.order_count_12m, before.order_count_12m);
    assert_eq!(after.margin_12m, before.margin_12m);
}

#[test]
fn given_a_full_return_then_count_and_recency_are_taken_back_too() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 1000, Some(600));
    c.orders(date(2026, 5, 1), "o2", 5000, Some(3000));
    c.returns(date(2026, 5, 10), "o2", 5000, None);
    let f = c.figures_at(date(2026, 6, 1));
    assert_eq!(f.order_count_12m, 1.0);
    assert_eq!(f.order_amount_12m, 1000.0);
    assert_eq!(f.margin_12m, Some(400.0));
    assert_eq!(
        f.days_since_last_order,
        Some((date(2026, 6, 1).day() - date(2026, 3, 1).day()) as f64)
    );
}

#[test]
fn given_a_return_without_a_cost_then_the_cost_comes_pro_rata_from_the_order() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 10_000, Some(6_000));
    c.returns(date(2026, 3, 5), "o1", 2_500, None);
    let f = c.figures();
    assert_eq!(f.order_amount_12m, 7_500.0);
    // Cost 6,000 - 6,000 * 2,500 / 10,000 = 4,500.
    assert_eq!(f.margin_12m, Some(3_000.0));
}

#[test]
fn given_a_cancelled_order_then_its_unpaid_invoice_is_void_and_a_credit_note_voids_an_invoice() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 10_000, Some(6_000));
    c.is_invoiced(
        date(2026, 3, 2),
        "i1",
        "o1",
        cny(10_000),
        10_000,
        date(2026, 4, 1),
    );
    c.orders(date(2026, 3, 3), "o2", 20_000, Some(6_000));
    c.is_invoiced(
        date(2026, 3, 4),
        "i2",
        "o2",
        cny(20_000),
        20_000,
        date(2026, 4, 1),
    );
    let f = c.figures_at(date(2026, 5, 1));
    assert_eq!(f.overdue_amount, 30_000.0);
    c.cancels(date(2026, 5, 2), "o1");
    c.event(
        date(2026, 5, 3),
        EventKind::InvoiceCancelled {
            invoice_id: "i2".into(),
        },
    );
    let f = c.figures_at(date(2026, 5, 10));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, None, "nothing is owed any more");
}

#[test]
fn given_an_order_returned_in_full_then_its_unpaid_invoice_is_void_whichever_arrives_first() {
    // Returned, then invoiced (the invoices topic behind): nothing owed.
    for invoice_first in [true, false] {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.orders(date(2026, 3, 1), "o1", 10_000, Some(6_000));
        let invoice = |c: &mut Customer| {
            c.is_invoiced(
                date(2026, 3, 2),
                "i1",
                "o1",
                cny(10_000),
                10_000,
                date(2026, 4, 1),
            );
        };
        if invoice_first {
            invoice(&mut c);
        }
        // Two returns make it whole.
        c.returns(date(2026, 3, 10), "o1", 4_000, None);
        c.returns(date(2026, 3, 12), "o1", 6_000, None);
        if !invoice_first {
            invoice(&mut c);
        }
        let f = c.figures_at(date(2026, 5, 1));
        assert_eq!(f.overdue_amount, 0.0, "invoice first: {invoice_first}");
        assert_eq!(f.on_time_payment_ratio, None, "nothing is owed");
        assert_eq!(f.order_count_12m, 0.0);
    }
    // An order of no amount (free goods) is never returned in full: its
    // invoice (freight) stands.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "free", 0, None);
    c.is_invoiced(
        date(2026, 3, 1),
        "freight",
        "free",
        cny(5_000),
        5_000,
        date(2026, 4, 1),
    );
    c.returns(date(2026, 3, 10), "free", 1, None);
    assert_eq!(c.figures_at(date(2026, 5, 1)).overdue_amount, 5_000.0);
    // A partial return leaves the invoice owed in full until it is paid
    // or voided (there is no partial credit note).
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 4, 1));
    c.returns(date(2026, 3, 10), "o1", 4_000, None);
    assert_eq!(c.figures_at(date(2026, 5, 1)).overdue_amount, 10_000.0);
}

#[test]
fn given_a_partial_return_credited_when_the_rest_is_paid_on_time_then_the_invoice_is_settled_on_time_whichever_arrives_first()
 {
    // 10,000 billed, due 31 March; 4,000 of the goods come back and the
    // ERP credits them; the customer pays the 6,000 left on 20 March.
    let steps: [&dyn Fn(&mut Customer); 3] = [
        &|c| {
            c.is_invoiced(
                date(2026, 3, 1),
                "i1",
                "o1",
                cny(10_000),
                10_000,
                date(2026, 3, 31),
            );
        },
        &|c| {
            c.credits(date(2026, 3, 12), "i1", cny(4_000), 4_000);
        },
        &|c| {
            c.pays(date(2026, 3, 20), "i1", cny(6_000), 6_000);
        },
    ];
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.orders(date(2026, 3, 1), "o1", 10_000, Some(6_000));
        c.returns(date(2026, 3, 10), "o1", 4_000, None);
        for k in order {
            steps[k](&mut c);
        }
        let f = c.figures_at(date(2026, 4, 10));
        assert_eq!(f.overdue_amount, 0.0, "read in the order {order:?}");
        assert_eq!(f.on_time_payment_ratio, Some(1.0), "{order:?}");
        assert_eq!(f.order_amount_12m, 6_000.0);
    }
    // Without the credit note the 4,000 stays owed: a return is not a
    // credit note (unless the whole order comes back).
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    c.returns(date(2026, 3, 10), "o1", 4_000, None);
    c.pays(date(2026, 3, 20), "i1", cny(6_000), 6_000);
    assert_eq!(c.figures_at(date(2026, 4, 10)).overdue_amount, 4_000.0);
}

#[test]
fn given_a_credit_note_re_exported_under_another_event_id_then_its_id_counts_it_once() {
    use tier_core::projection::Applied;
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    let credit = EventKind::InvoiceCredited {
        invoice_id: "i1".into(),
        amount: Money(4_000),
        credited: cny(4_000),
        credit_note_id: "CN-1".into(),
    };
    assert_eq!(
        c.outcome_of(date(2026, 3, 5), credit.clone()),
        Applied::Applied
    );
    assert_eq!(
        c.outcome_of(date(2026, 3, 5), credit.clone()),
        Applied::Duplicate
    );
    assert_eq!(c.figures_at(date(2026, 4, 10)).overdue_amount, 6_000.0);
    // Paid the rest: settled; a credit note after that changes nothing
    // but is remembered (applied, not a resend).
    c.pays(date(2026, 3, 20), "i1", cny(6_000), 6_000);
    let late = EventKind::InvoiceCredited {
        invoice_id: "i1".into(),
        amount: Money(4_000),
        credited: cny(4_000),
        credit_note_id: "CN-2".into(),
    };
    assert_eq!(
        c.outcome_of(date(2026, 4, 2), late.clone()),
        Applied::Applied
    );
    assert_eq!(c.outcome_of(date(2026, 4, 2), late), Applied::Duplicate);
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
}

#[test]
fn given_credit_notes_that_cover_an_invoice_with_nothing_paid_then_it_is_void_not_paid() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    c.credits(date(2026, 3, 5), "i1", cny(3_000), 3_000);
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 7_000.0, "what is still owed is overdue");
    c.credits(date(2026, 4, 12), "i1", cny(7_000), 7_000);
    let f = c.figures_at(date(2026, 4, 20));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(
        f.on_time_payment_ratio, None,
        "nothing was paid: no payment record, on time or late"
    );
    // A payment that arrives after all is one: covered since 12 April,
    // 12 days after it was due.
    c.pays(date(2026, 4, 25), "i1", cny(100), 100);
    let f = c.figures_at(date(2026, 4, 30));
    assert_eq!(f.on_time_payment_ratio, Some(0.0));
    assert_eq!(f.avg_days_late, Some(12.0));
}

#[test]
fn given_an_invoice_of_nothing_credited_before_its_issue_then_it_leaves_no_payment_record() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 10_000, None);
    c.credits(date(2026, 3, 2), "i0", cny(500), 500);
    c.is_invoiced(date(2026, 3, 3), "i0", "o1", cny(0), 0, date(2026, 3, 4));
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, None, "nothing was owed or paid");
}

#[test]
fn given_a_credit_note_that_completes_a_short_payment_after_the_due_date_then_the_invoice_clears_late()
 {
    // Paid 6,000 of 10,000 on time, the 4,000 disputed and credited five
    // days after the due date: the invoice clears when the two cover it.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    c.pays(date(2026, 3, 20), "i1", cny(6_000), 6_000);
    assert_eq!(c.figures_at(date(2026, 4, 3)).overdue_amount, 4_000.0);
    c.credits(date(2026, 4, 5), "i1", cny(4_000), 4_000);
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, Some(0.0));
    assert_eq!(f.avg_days_late, Some(5.0));
}

#[test]
fn given_an_order_lift_cut_by_its_own_overdue_invoice_when_the_order_is_cancelled_then_the_lift_is_taken_back()
 {
    // A D customer (a one-fen invoice a day overdue). An order posted late,
    // dated 48 days before, lifts it to A; its invoice, due that day and
    // unpaid, is 48 days overdue at once and cuts the lift to B. The
    // order's cancellation takes back all of it at once: D, as without
    // the order, not B held by hysteresis as an organic drop.
    let mut c = Customer::given(Policy::default_policy());
    let today = date(2026, 11, 19);
    c.is_invoiced(today, "tiny", "", cny(1), 1, today);
    assert_eq!(c.tier(), "D");
    let placed = today.plus_days(-48);
    c.orders(placed, "x", 95_663_155, Some(0));
    assert_eq!(c.tier(), "A");
    c.is_invoiced(placed, "x-inv", "x", cny(95_663_155), 95_663_155, placed);
    assert_eq!(c.tier(), "B", "cut by its own overdue invoice");
    c.cancels(placed, "x");
    assert_eq!(c.tier(), "D", "the order's part taken back at once");
}

#[test]
fn given_an_order_whose_own_invoice_raised_the_tier_further_when_the_order_is_cancelled_then_both_lifts_are_taken_back()
 {
    // A D customer: a two-fen invoice long overdue, half paid. A huge
    // order posted late lifts it to C; the order's own invoice, read next,
    // lifts it to B (its days late, fewer than the old invoice's, improve
    // the average). Cancelling the order voids that invoice too: D, as
    // without the order, not B held by hysteresis as an organic drop.
    let mut c = Customer::given(Policy::default_policy());
    c.is_invoiced(date(2026, 2, 17), "i0", "", cny(2), 2, date(2026, 2, 22));
    c.pays(date(2026, 5, 8), "i0", cny(1), 1);
    assert_eq!(c.tier(), "D");
    let placed = date(2026, 3, 26);
    c.orders(placed, "x", 1_439_496_501, Some(1_396_311_605));
    assert_eq!(c.tier(), "C");
    c.is_invoiced(
        placed,
        "x-inv",
        "x",
        cny(1_439_496_501),
        1_439_496_501,
        date(2026, 4, 25),
    );
    assert_eq!(c.tier(), "B", "the order's invoice lifted it further");
    c.cancels(placed, "x");
    assert_eq!(c.tier(), "D");
    // The invoice paid in full: its issue, read before or after the
    // payment, lifts the customer to B; the cancellation leaves the
    // payment record standing (a paid invoice stays settled), but the
    // lift was the order's: D, whichever was read first.
    // Due after the watermark, the invoice lifts nothing when issued
    // open: its payment does, read before or after it.
    for (invoice_first, due) in [
        (false, date(2026, 4, 25)),
        (true, date(2026, 4, 25)),
        (false, date(2026, 6, 30)),
        (true, date(2026, 6, 30)),
    ] {
        let mut c = Customer::given(Policy::default_policy());
        c.is_invoiced(date(2026, 2, 17), "i0", "", cny(2), 2, date(2026, 2, 22));
        c.pays(date(2026, 5, 8), "i0", cny(1), 1);
        c.orders(placed, "x", 1_439_496_501, Some(1_396_311_605));
        let invoice = |c: &mut Customer| {
            c.is_invoiced(placed, "x-inv", "x", cny(1_439_496_501), 1_439_496_501, due);
        };
        if invoice_first {
            invoice(&mut c);
            if due > date(2026, 5, 8) {
                assert_eq!(c.tier(), "C", "issued open and not due: no lift");
            }
        }
        c.pays(placed, "x-inv", cny(1_439_496_501), 1_439_496_501);
        if !invoice_first {
            invoice(&mut c);
        }
        assert_eq!(c.tier(), "B", "invoice first: {invoice_first}, {due}");
        c.cancels(placed, "x");
        assert_eq!(c.tier(), "D", "invoice first: {invoice_first}, {due}");
    }
}

/// A D customer under the default policy: an order of `amount` (cost
/// half) on 2026-11-10, its first event, and an invoice of 3 CNY overdue
/// since 2026-10-31 ("i0", of no order).
fn ordered_with_an_invoice_overdue(amount: i64) -> Customer {
    let mut c = Customer::given(Policy::default_policy());
    c.orders_with_an_invoice_overdue(date(2026, 11, 10), amount);
    c
}

#[test]
fn given_an_order_that_lifted_the_tier_and_a_payment_that_lifted_it_further_when_the_order_is_cancelled_then_the_tier_is_what_the_payment_alone_gives()
 {
    // A D customer (an order, an invoice of 3 CNY overdue). A large order
    // lifts it to C; the ERP then posts a payment of the old invoice (made
    // on time), which lifts it to B with the large order counted. The
    // large order is cancelled: the tier is what the payment alone gives
    // (D for the smaller customer, C for the larger), taken back at once,
    // not B held by hysteresis as if the customer's buying had faded.
    for (regular, without_the_order) in [(5_000_000, "D"), (10_000_000, "C")] {
        let given = || ordered_with_an_invoice_overdue(regular);
        let mut without = given();
        without.pays(date(2026, 10, 30), "i0", cny(300), 300);
        assert_eq!(without.tier(), without_the_order);

        let mut c = given();
        c.orders(date(2026, 11, 5), "x", 40_000_000, Some(20_000_000));
        assert_eq!(c.tier(), "C", "the large order lifted it");
        c.pays(date(2026, 10, 30), "i0", cny(300), 300);
        assert_eq!(c.tier(), "B", "the payment lifted it further");
        c.cancels(date(2026, 11, 6), "x");
        assert_eq!(c.tier(), without_the_order, "{regular}");
        assert_eq!(
            c.state.decided_at, without.state.decided_at,
            "decided at the same instant"
        );
    }
}

#[test]
fn given_a_payment_lifted_tier_held_by_hysteresis_when_a_sliver_of_an_order_is_returned_then_the_hold_stands_and_the_orders_cancellation_takes_it_back()
 {
    // A customer's first order makes it D (an invoice of 3 CNY overdue);
    // paying the invoice lifts it to C. A critical complaint then puts
    // the figures in D's band, which hysteresis holds for 30 days in C.
    let mut c = ordered_with_an_invoice_overdue(10_000_000);
    let first = c.state.tier_history()[0].at;
    c.pays(date(2026, 10, 30), "i0", cny(300), 300);
    assert_eq!(c.tier(), "C", "the payment lifted it");
    let entered_c = c.state.assignment.as_ref().unwrap().since;
    c.complains_critically(date(2026, 11, 11), "k");
    assert_eq!(c.tier(), "C", "held by hysteresis");
    let evaluated = |c: &Customer| {
        c.policy.tiers()[c.policy.evaluate(&c.figures()).tier]
            .name
            .clone()
    };
    assert_eq!(evaluated(&c), "D", "the figures are in D's band");
    // A cent of the order comes back: it did not make the tier (C was
    // entered with far more than a cent to spare), so the organic drop is
    // still held, with the since it had.
    c.returns(date(2026, 11, 12), "y", 1, Some(0));
    assert_eq!(evaluated(&c), "D");
    assert_eq!(c.tier(), "C", "a sliver returned ends no hold");
    assert_eq!(c.state.assignment.as_ref().unwrap().since, entered_c);
    // The order cancelled: without it the customer never left D. Back at
    // once, in D since the first decision.
    c.cancels(date(2026, 11, 13), "y");
    assert_eq!(c.tier(), "D");
    assert_eq!(c.state.assignment.as_ref().unwrap().since, first);
}

#[test]
fn given_two_lifts_in_a_row_and_an_order_placed_between_them_when_it_is_cancelled_during_a_hold_then_only_the_later_lift_is_taken_back()
 {
    // A critical complaint of a year ago weighs on a customer; paying an
    // overdue invoice lifts it from D to C on 15 November; an order of
    // 50,000 CNY follows on the 17th; the complaint leaves the window and
    // the customer rises to B. Two new critical complaints put the
    // figures in D's band: hysteresis holds B.
    let mut c = Customer::given(Policy::default_policy());
    c.complains_critically(date(2025, 11, 20), "k1");
    c.orders_with_an_invoice_overdue(date(2026, 11, 15), 40_000_000);
    c.pays(date(2026, 10, 30), "i0", cny(300), 300);
    assert_eq!(c.tier(), "C", "the payment lifted it");
    let entered_c = c.state.assignment.as_ref().unwrap().since;
    c.orders(date(2026, 11, 17), "o5", 5_000_000, Some(2_500_000));
    assert_eq!(c.tier(), "C");
    c.state
        .advance_to("c", &c.policy, date(2026, 11, 22), usize::MAX);
    assert_eq!(c.tier(), "B", "the complaint's leaving lifted it further");
    c.complains_critically(date(2026, 11, 22), "k2");
    c.complains_critically(date(2026, 11, 22), "k3");
    assert_eq!(c.tier(), "B", "held by hysteresis");
    // The order is cancelled: it can have made only the lift to B, so
    // the customer is back in C, where hysteresis holds it (entered 8 days
    // before), as without the order; not in D, where the payment's lift,
    // made before the order existed, would be taken back too.
    c.cancels(date(2026, 11, 23), "o5");
    assert_eq!(c.tier(), "C");
    assert_eq!(c.state.assignment.as_ref().unwrap().since, entered_c);
}

#[test]
fn given_an_order_that_made_the_tier_and_has_left_the_window_when_it_is_cancelled_then_the_drop_is_organic()
 {
    // An order of 400,000 CNY made a customer C on 20 November 2025; a
    // regular order followed in October. A year on, the large order has
    // left the window: the figures are just below C's band, within the
    // downgrade margin, which holds C. The ERP cancels the old order: it
    // counts in no figure any more, so its cancellation changes nothing.
    let cancelled_after = |advance_first: bool, dated: Timestamp| {
        let mut c = Customer::given(Policy::default_policy());
        c.orders(date(2025, 11, 20), "o1", 40_000_000, Some(20_000_000));
        c.orders(date(2026, 10, 1), "r", 18_000_000, Some(9_000_000));
        assert_eq!(c.tier(), "C");
        let entered = c.state.assignment.as_ref().unwrap().since;
        if advance_first {
            c.state
                .advance_to("c", &c.policy, date(2026, 11, 25), usize::MAX);
            assert_eq!(c.tier(), "C", "held by the margin");
        }
        c.cancels(dated, "o1");
        assert_eq!(c.state.assignment.as_ref().unwrap().since, entered);
        c.tier().to_owned()
    };
    assert_eq!(cancelled_after(true, date(2026, 11, 25)), "C");
    assert_eq!(
        cancelled_after(false, date(2026, 11, 25)),
        "C",
        "the cancellation moves the window"
    );
    // Posted a week late, after time moved the window past the order
    // (the events read so far have not).
    assert_eq!(
        cancelled_after(true, date(2026, 11, 18)),
        "C",
        "posted late"
    );
}

#[test]
fn given_an_order_that_lifted_the_tier_and_time_that_lifted_it_further_when_the_order_is_cancelled_then_the_tier_is_what_time_alone_gives()
 {
    // A critical complaint of a year ago weighs on a D customer. A large
    // order lifts it to C; the complaint leaves the window and the
    // customer rises to B, with the large order counted. The order is
    // cancelled: the tier is what the complaint's leaving alone gives (D
    // for the smaller customer, C for the larger), at once.
    for (regular, without_the_order) in [(10_000_000, "D"), (20_000_000, "C")] {
        let given = || {
            let mut c = Customer::given(Policy::default_policy());
            c.complains_critically(date(2025, 11, 25), "k");
            c.orders(date(2026, 11, 10), "y", regular, Some(regular / 2));
            assert_eq!(c.tier(), "D");
            c
        };
        let later = date(2026, 12, 1);
        let mut without = given();
        without
            .state
            .advance_to("c", &without.policy, later, usize::MAX);
        assert_eq!(without.tier(), without_the_order);

        let mut c = given();
        c.orders(date(2026, 11, 5), "x", 40_000_000, Some(20_000_000));
        assert_eq!(c.tier(), "C", "the large order lifted it");
        c.state.advance_to("c", &c.policy, later, usize::MAX);
        assert_eq!(c.tier(), "B", "the complaint's leaving lifted it further");
        c.cancels(later, "x");
        assert_eq!(c.tier(), without_the_order, "{regular}");
    }
}

#[test]
fn given_an_order_older_than_the_window_partly_paid_when_cancelled_then_its_invoice_is_void() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2025, 1, 10), "o1", "i1", 50_000, date(2025, 2, 9));
    c.pays(date(2025, 2, 1), "i1", cny(20_000), 20_000);
    // A year on, the order has left the window (and its record the
    // projection); the rest of its invoice is still owed.
    c.orders(date(2026, 3, 1), "o2", 1_000, Some(500));
    assert_eq!(c.figures().order_count_12m, 1.0);
    assert_eq!(c.figures().overdue_amount, 30_000.0);
    let owed_since = c.figures().oldest_overdue_days;
    assert!(owed_since > 365.0, "{owed_since}");
    // The ERP cancels the old order, dated when it happened: nothing of
    // it is owed any more.
    let mut back_dated = Customer::given(c.policy.clone());
    back_dated.state = c.state.clone();
    back_dated.next_id = c.next_id;
    back_dated.cancels(date(2025, 1, 20), "o1");
    // ... or dated today.
    c.cancels(date(2026, 3, 2), "o1");
    for c in [&c, &back_dated] {
        let f = c.figures();
        assert_eq!(f.overdue_amount, 0.0);
        assert_eq!(f.oldest_overdue_days, 0.0);
        assert_eq!(f.order_count_12m, 1.0, "o2 still counts");
    }
    // Sent again, a back-dated cancellation changes nothing.
    let before = back_dated.state.clone();
    back_dated.cancels(date(2025, 1, 21), "o1");
    assert_eq!(back_dated.state, before);
}

#[test]
fn given_an_old_order_cancelled_then_its_invoice_is_void_whichever_arrives_first() {
    // The order's record is kept past the window until the month's sweep:
    // the cancellation of an order that left the window is remembered
    // either way, so an invoice of it issued later is void too.
    let overdue = |cancel_first: bool| {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.orders(date(2025, 3, 5), "o", 50_000, Some(30_000));
        // The month's sweep runs here; "o" stays in the window.
        c.orders(date(2026, 3, 1), "o2", 1_000, Some(500));
        let invoice = |c: &mut Customer| {
            c.is_invoiced(
                date(2026, 3, 10),
                "i",
                "o",
                cny(50_000),
                50_000,
                date(2026, 4, 9),
            );
        };
        if cancel_first {
            c.cancels(date(2026, 3, 12), "o");
            invoice(&mut c);
        } else {
            invoice(&mut c);
            c.cancels(date(2026, 3, 12), "o");
        }
        c.figures_at(date(2026, 5, 1)).overdue_amount
    };
    assert_eq!(overdue(false), 0.0);
    assert_eq!(overdue(true), 0.0);
}

#[test]
fn given_an_invoice_paid_when_its_order_is_cancelled_then_it_is_settled_whichever_arrives_first() {
    // Orders and payments come from different topics: the cancellation
    // (orders) may be folded before the payment it follows (payments).
    let figures = |cancel_first: bool| {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.orders_billed(date(2026, 3, 1), "o", "i", 50_000, date(2026, 4, 1));
        if cancel_first {
            c.cancels(date(2026, 4, 6), "o");
            c.pays(date(2026, 4, 5), "i", cny(50_000), 50_000);
        } else {
            c.pays(date(2026, 4, 5), "i", cny(50_000), 50_000);
            c.cancels(date(2026, 4, 6), "o");
        }
        c.figures_at(date(2026, 5, 1))
    };
    for cancel_first in [false, true] {
        let f = figures(cancel_first);
        assert_eq!(f.on_time_payment_ratio, Some(0.0), "paid, 4 days late");
        assert_eq!(f.avg_days_late, Some(4.0));
        assert_eq!(f.overdue_amount, 0.0);
    }
    assert_eq!(figures(false), figures(true));
}

#[test]
fn given_a_partly_paid_void_invoice_older_than_the_window_when_the_rest_is_paid_then_it_is_settled_either_way()
 {
    // Voided a year ago with half paid; the rest arrives now. Folded in
    // time order the void invoice must outlive the month's sweep to be
    // completed; folded with the cancellation last (stale by then) it was
    // settled while open. Either way: settled, 389 days late.
    let figures = |cancel_last: bool| {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.orders_billed(date(2025, 1, 10), "o", "i", 50_000, date(2025, 2, 9));
        c.pays(date(2025, 2, 1), "i", cny(25_000), 25_000);
        if !cancel_last {
            c.cancels(date(2025, 3, 1), "o");
        }
        // The month's sweep runs here: January 2025 has left the window.
        c.orders(date(2026, 3, 1), "o2", 1_000, Some(500));
        c.pays(date(2026, 3, 5), "i", cny(25_000), 25_000);
        if cancel_last {
            c.cancels(date(2025, 3, 1), "o");
        }
        // The payment figures (a cancellation older than the window
        // cannot take back the tenure its order began: a known limit).
        let f = c.figures_at(date(2026, 3, 10));
        (
            f.on_time_payment_ratio,
            f.avg_days_late,
            f.max_days_late,
            f.overdue_amount,
        )
    };
    assert_eq!(figures(false), (Some(0.0), Some(389.0), Some(389.0), 0.0));
    assert_eq!(figures(true), figures(false));
}

#[test]
fn given_a_partly_paid_invoice_voided_by_its_order_when_the_rest_is_paid_then_it_is_settled() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o", "i", 50_000, date(2026, 4, 1));
    c.pays(date(2026, 3, 20), "i", cny(20_000), 20_000);
    c.cancels(date(2026, 3, 25), "o");
    // Void: owed no more, and no payment record yet.
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, None);
    // The customer pays the rest after all: the invoice is paid in full,
    // as it would be had the payment been folded before the cancellation.
    c.pays(date(2026, 4, 1), "i", cny(30_000), 30_000);
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
    assert_eq!(f.overdue_amount, 0.0);
}

#[test]
fn given_a_cancellation_seen_before_an_old_placement_then_the_invoice_already_issued_is_void() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o2", 1_000, Some(500));
    // An invoice of an order placed in the window's first days, then
    // the order's cancellation, both before its placement arrives.
    c.is_invoiced(
        date(2025, 6, 1),
        "i1",
        "o1",
        cny(40_000),
        40_000,
        date(2025, 7, 1),
    );
    assert_eq!(c.figures().overdue_amount, 40_000.0);
    c.cancels(date(2026, 3, 2), "o1");
    assert_eq!(c.figures().overdue_amount, 0.0);
}

#[test]
fn given_two_orders_that_raised_the_tier_when_the_first_is_cancelled_then_its_part_is_taken_back() {
    // Hysteresis would hold B for 30 days against an organic drop, and
    // the score left (58.4) is above B's hold floor: without the rule B
    // would stay for good on a cancelled order's figures.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "x", 100_000_000, Some(75_000_000));
    assert_eq!(c.tier(), "C");
    let since_c = c.state.assignment.as_ref().unwrap().since;
    c.orders(date(2026, 3, 2), "y", 100_000_000, Some(75_000_000));
    assert_eq!(
        c.tier(),
        "B",
        "y raised the tier on x's figures and its own"
    );
    c.cancels(date(2026, 3, 3), "x");
    assert_eq!(c.tier(), "C");
    assert_eq!(c.state.assignment.as_ref().unwrap().since, since_c);
    // An order placed after the raise did not cause it: its correction
    // is an organic drop, which hysteresis slows.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "x", 100_000_000, Some(75_000_000));
    c.orders(date(2026, 3, 2), "y", 100_000_000, Some(75_000_000));
    c.orders(date(2026, 3, 3), "z", 1_000_000, Some(750_000));
    assert_eq!(c.tier(), "B");
    c.cancels(date(2026, 3, 4), "z");
    assert_eq!(c.tier(), "B");
}

#[test]
fn given_an_order_cancelled_before_a_raise_when_its_cancellation_is_sent_again_then_hysteresis_still_holds()
 {
    // x is placed and cancelled, then y raises the tier; complaints pull
    // the score down, which hysteresis holds. A resent cancellation of x
    // (a new event id) corrects nothing: x did not count at the raise.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "x", 100_000_000, Some(75_000_000));
    c.cancels(date(2026, 3, 2), "x");
    c.orders(date(2026, 3, 3), "y", 100_000_000, Some(75_000_000));
    c.orders(date(2026, 3, 3), "y2", 100_000_000, Some(75_000_000));
    assert_eq!(c.tier(), "B");
    for id in ["k1", "k2"] {
        c.event(
            date(2026, 3, 4),
            EventKind::ComplaintOpened {
                complaint_id: id.into(),
                severity: Severity::Critical,
                category: "quality".into(),
            },
        );
    }
    assert_eq!(c.tier(), "B", "held by hysteresis");
    c.cancels(date(2026, 3, 5), "x");
    assert_eq!(c.tier(), "B", "still held");
}

#[test]
fn given_a_partial_return_that_keeps_the_raised_tier_when_the_rest_is_returned_then_it_is_taken_back()
 {
    let mut c = steady_b_customer(policy(12, "UTC", 30), date(2026, 6, 30));
    assert_eq!(c.tier(), "B");
    let since_b = c.state.assignment.as_ref().unwrap().since;
    c.orders(date(2026, 7, 1), "huge", 300_000_000, Some(200_000_000));
    assert_eq!(c.tier(), "A");
    // A tenth back: the figures left still hold A.
    c.returns(date(2026, 7, 2), "huge", 30_000_000, Some(20_000_000));
    assert_eq!(c.tier(), "A");
    // The rest back: the tier the order caused goes with it, at once.
    c.returns(date(2026, 7, 3), "huge", 270_000_000, Some(180_000_000));
    assert_eq!(c.tier(), "B");
    assert_eq!(c.state.assignment.as_ref().unwrap().since, since_b);
}

// --- 5. Money is exact -------------------------------------------------

#[test]
fn given_a_usd_invoice_paid_in_three_instalments_then_it_settles_exactly() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    // 100.00 USD at 7.10 = 710.00 CNY; instalments of 33.33, 33.33, 33.34
    // convert to 236.64 + 236.64 + 236.71 CNY, which is not 710.00.
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "",
        usd(10_000),
        71_000,
        date(2026, 4, 1),
    );
    c.pays(date(2026, 3, 10), "i1", usd(3_333), 23_664);
    c.pays(date(2026, 3, 20), "i1", usd(3_333), 23_664);
    // 33.34 USD still open: 710.00 CNY * 3,334 / 10,000, in whole fen.
    assert_eq!(c.figures_at(date(2026, 4, 5)).overdue_amount, 23_671.0);
    c.pays(date(2026, 3, 30), "i1", usd(3_334), 23_671);
    let f = c.figures_at(date(2026, 4, 5));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
}

#[test]
fn given_an_order_or_invoice_published_again_under_another_event_id_then_the_first_counts_and_the_second_is_a_duplicate()
 {
    use tier_core::projection::Applied;
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "SO-1", 10_000, Some(8_000));
    let again = Event {
        event_id: "republished".into(),
        customer_id: "c".into(),
        occurred_at: date(2026, 3, 2),
        source: String::new(),
        kind: EventKind::OrderPlaced {
            order_id: "SO-1".into(),
            amount: Money(500_000_000),
            cost: None,
        },
    };
    let p = c.state.process("c", &again, &c.policy.clone());
    assert_eq!(
        p.applied,
        Applied::Duplicate,
        "counted as a duplicate, not applied"
    );
    assert_eq!(c.figures().order_amount_12m, 10_000.0);
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "SO-1",
        cny(10_000),
        10_000,
        date(2026, 3, 31),
    );
    let again = Event {
        event_id: "republished-invoice".into(),
        kind: EventKind::InvoiceIssued {
            invoice_id: "i1".into(),
            order_id: "SO-1".into(),
            amount: Money(99_000),
            billed: cny(99_000),
            due_at: date(2026, 3, 10),
        },
        ..again
    };
    let p = c.state.process("c", &again, &c.policy.clone());
    assert_eq!(p.applied, Applied::Duplicate);
    assert_eq!(c.figures_at(date(2026, 4, 5)).overdue_amount, 10_000.0);
}

#[test]
fn given_a_payment_sent_again_under_another_event_id_then_its_payment_id_counts_it_once() {
    use tier_core::projection::Applied;
    // Half of an invoice paid; the ERP re-exports the payment under a new
    // event id. Counted twice, the invoice would read as settled on time
    // while half of it is still owed.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    c.pays_as(date(2026, 3, 20), "i1", "PAY-7", cny(5_000), 5_000);
    let resent = EventKind::PaymentReceived {
        invoice_id: "i1".into(),
        amount: Money(5_000),
        paid: cny(5_000),
        payment_id: "PAY-7".into(),
    };
    assert_eq!(
        c.outcome_of(date(2026, 3, 20), resent.clone()),
        Applied::Duplicate
    );
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.overdue_amount, 5_000.0, "half is still owed");
    assert_eq!(f.on_time_payment_ratio, Some(0.0), "and overdue");
    // Resent weeks later, after other events moved the watermark: still once.
    c.orders(date(2026, 4, 20), "o9", 100, None);
    assert_eq!(
        c.outcome_of(date(2026, 4, 21), resent.clone()),
        Applied::Duplicate
    );
    assert_eq!(c.figures_at(date(2026, 4, 25)).overdue_amount, 5_000.0);
    // One transfer paying two invoices is one payment id on each: both count.
    c.orders_billed(date(2026, 3, 2), "o2", "i2", 3_000, date(2026, 3, 31));
    c.pays_as(date(2026, 3, 21), "i2", "PAY-7", cny(3_000), 3_000);
    let f = c.figures_at(date(2026, 4, 25));
    assert_eq!(f.overdue_amount, 5_000.0, "i2 is paid, i1 owes half");
    assert_eq!(f.on_time_payment_ratio, Some(0.5));
    // The rest of i1, under its own payment id, settles it.
    c.pays_as(date(2026, 4, 26), "i1", "PAY-8", cny(5_000), 5_000);
    assert_eq!(c.figures_at(date(2026, 4, 27)).overdue_amount, 0.0);
    // Without a payment id only the event id tells a resend from a second
    // payment: the same sum twice under two event ids is paid twice.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    c.pays(date(2026, 3, 20), "i1", cny(5_000), 5_000);
    c.pays(date(2026, 3, 20), "i1", cny(5_000), 5_000);
    assert_eq!(c.figures_at(date(2026, 4, 10)).overdue_amount, 0.0);
}

#[test]
fn given_a_payment_resent_under_its_event_id_with_a_payment_id_added_or_changed_then_it_counts_once()
 {
    use tier_core::projection::Applied;
    let payment = |payment_id: &str| EventKind::PaymentReceived {
        invoice_id: "i1".into(),
        amount: Money(5_000),
        paid: cny(5_000),
        payment_id: payment_id.into(),
    };
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "o1", "i1", 10_000, date(2026, 3, 31));
    let at = date(2026, 3, 20);
    // Sent before the producer named its payments, then re-published
    // after (an outbox replayed by the upgraded producer), then with a
    // corrected id: one payment.
    assert_eq!(c.outcome_as("E1", at, payment("")), Applied::Applied);
    assert_eq!(c.outcome_as("E1", at, payment("X")), Applied::Duplicate);
    assert_eq!(c.outcome_as("E1", at, payment("Y")), Applied::Duplicate);
    assert_eq!(c.figures_at(date(2026, 4, 10)).overdue_amount, 5_000.0);
    // Named from its first send, a re-export under a new event id is one
    // payment too.
    assert_eq!(c.outcome_as("E2", at, payment("Z")), Applied::Applied);
    assert_eq!(c.outcome_as("E3", at, payment("Z")), Applied::Duplicate);
    assert_eq!(c.figures_at(date(2026, 4, 10)).overdue_amount, 0.0);
}

#[test]
fn given_a_payment_and_a_return_whose_ids_and_scopes_are_spelled_alike_then_both_count() {
    // An ERP that numbers an invoice as its order, and payments and returns
    // from 1 each: payment "1" of invoice "SO-1" and return "1" of order
    // "SO-1" are two facts.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2026, 3, 1), "SO-1", "SO-1", 10_000, date(2026, 3, 31));
    c.pays_as(date(2026, 3, 5), "SO-1", "1", cny(10_000), 10_000);
    c.returns_as(date(2026, 3, 10), "SO-1", "1", 4_000, None);
    let f = c.figures_at(date(2026, 4, 10));
    assert_eq!(f.order_amount_12m, 6_000.0, "the return counts");
    assert_eq!(f.on_time_payment_ratio, Some(1.0), "and the payment");
}

#[test]
fn given_an_invoice_open_past_the_window_when_its_part_payment_is_re_exported_then_it_counts_once()
{
    use tier_core::projection::Applied;
    // Half paid in January 2025 and still open in March 2026, past the
    // window's memory of event ids: the invoice remembers the payment.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders_billed(date(2025, 1, 2), "o1", "i1", 10_000, date(2025, 2, 1));
    c.pays_as(date(2025, 1, 20), "i1", "PAY-1", cny(5_000), 5_000);
    c.orders(date(2026, 3, 1), "o2", 100, None);
    let resent = EventKind::PaymentReceived {
        invoice_id: "i1".into(),
        amount: Money(5_000),
        paid: cny(5_000),
        payment_id: "PAY-1".into(),
    };
    assert_eq!(c.outcome_of(date(2025, 1, 20), resent), Applied::Duplicate);
    assert_eq!(c.figures_at(date(2026, 3, 2)).overdue_amount, 5_000.0);
}

#[test]
fn given_a_return_sent_again_under_another_event_id_then_its_return_id_counts_it_once() {
    use tier_core::projection::Applied;
    // 40% of an order sent back; the return re-exported under a new event
    // id. Counted twice, 80% would be taken back.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 10_000, Some(6_000));
    c.returns_as(date(2026, 3, 10), "o1", "RMA-1", 4_000, None);
    let resent = EventKind::OrderReturned {
        order_id: "o1".into(),
        amount: Money(4_000),
        cost: None,
        return_id: "RMA-1".into(),
    };
    assert_eq!(c.outcome_of(date(2026, 3, 10), resent), Applied::Duplicate);
    let f = c.figures_at(date(2026, 4, 1));
    assert_eq!(f.order_amount_12m, 6_000.0);
    assert_eq!(f.margin_12m, Some(2_400.0), "cost taken back pro rata once");
    // The same returns note naming another order is that order's return.
    c.orders(date(2026, 3, 2), "o2", 5_000, None);
    c.returns_as(date(2026, 3, 10), "o2", "RMA-1", 5_000, None);
    assert_eq!(c.figures_at(date(2026, 4, 1)).order_count_12m, 1.0);
    // A second return of o1 under its own id takes the rest back.
    c.returns_as(date(2026, 3, 12), "o1", "RMA-2", 6_000, None);
    let f = c.figures_at(date(2026, 4, 1));
    assert_eq!(f.order_amount_12m, 0.0);
    assert_eq!(f.order_count_12m, 0.0);
}

#[test]
fn given_an_on_time_payment_and_a_later_overpayment_then_the_order_they_arrive_in_does_not_make_it_late()
 {
    // Paid in full on 20 March, due 31 March; 10 more paid on 15 April.
    // Invoices and payments come on different topics (a rebuild reads them
    // at different paces): whatever order the three arrive in, the invoice
    // was covered on 20 March, on time. It read 15 days late when the
    // overpayment came before the payment that settled it.
    let (issue, on_time, extra) = (0, 1, 2);
    let orders = [
        [issue, on_time, extra],
        [issue, extra, on_time],
        [on_time, issue, extra],
        [on_time, extra, issue],
        [extra, issue, on_time],
        [extra, on_time, issue],
    ];
    for order in orders {
        let mut c = Customer::given(policy(12, "Asia/Shanghai", 30));
        for step in order {
            match step {
                0 => c.is_invoiced(
                    date(2026, 3, 1),
                    "i1",
                    "",
                    cny(100_000),
                    100_000,
                    date(2026, 3, 31),
                ),
                1 => c.pays(date(2026, 3, 20), "i1", cny(100_000), 100_000),
                _ => c.pays(date(2026, 4, 15), "i1", cny(1_000), 1_000),
            };
        }
        let f = c.figures_at(date(2026, 5, 1));
        assert_eq!(f.on_time_payment_ratio, Some(1.0), "{order:?}");
        assert_eq!(f.avg_days_late, Some(0.0), "{order:?}");
        assert_eq!(f.overdue_amount, 0.0, "{order:?}");
    }
}

#[test]
fn given_instalments_that_arrive_out_of_order_then_the_invoice_is_late_from_the_one_that_completed_it()
 {
    // 100.00 USD (710.00 CNY), due 31 March: 236.67 CNY on 10 March, on
    // 20 April and, last, 236.66 on 15 May. Whichever arrives last, the
    // debt was paid on 15 May, 45 days late (in instalments converted
    // together, as they settle).
    let payments = [
        (date(2026, 3, 10), 23_667),
        (date(2026, 4, 20), 23_667),
        (date(2026, 5, 15), 23_666),
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let mut c = Customer::given(policy(12, "UTC", 30));
        c.is_invoiced(
            date(2026, 3, 1),
            "i1",
            "",
            usd(10_000),
            71_000,
            date(2026, 3, 31),
        );
        for i in order {
            let (at, minor) = payments[i];
            c.pays(at, "i1", cny(minor), minor);
        }
        let f = c.figures_at(date(2026, 6, 1));
        assert_eq!(f.on_time_payment_ratio, Some(0.0), "{order:?}");
        assert_eq!(f.avg_days_late, Some(45.0), "{order:?}");
    }
}

#[test]
fn given_a_usd_invoice_paid_in_full_in_cny_instalments_then_it_settles() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    // 100.00 USD, 710.00 CNY in base; paid in CNY: 236.67 + 236.67 +
    // 236.66 = 710.00. Each converted alone rounds down to 33.33 USD
    // (99.99 in all) and would leave a cent owed for ever.
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "",
        usd(10_000),
        71_000,
        date(2026, 4, 1),
    );
    c.pays(date(2026, 3, 10), "i1", cny(23_667), 23_667);
    c.pays(date(2026, 3, 20), "i1", cny(23_667), 23_667);
    assert!(c.figures_at(date(2026, 4, 2)).overdue_amount > 23_000.0);
    c.pays(date(2026, 3, 30), "i1", cny(23_666), 23_666);
    let f = c.figures_at(date(2026, 7, 1));
    assert_eq!(f.overdue_amount, 0.0);
    assert_eq!(f.oldest_overdue_days, 0.0);
    assert_eq!(f.on_time_payment_ratio, Some(1.0));
    // A payment short by one fen in base leaves the invoice open.
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "",
        usd(10_000),
        71_000,
        date(2026, 4, 1),
    );
    c.pays(date(2026, 3, 10), "i1", cny(35_500), 35_500);
    c.pays(date(2026, 3, 20), "i1", cny(35_499), 35_499);
    let f = c.figures_at(date(2026, 7, 1));
    assert!(f.overdue_amount > 0.0, "{}", f.overdue_amount);
}

#[test]
fn given_an_overpayment_then_the_invoice_settles_and_the_excess_counts_nowhere() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "",
        cny(1_000),
        1_000,
        date(2026, 4, 1),
    );
    c.is_invoiced(
        date(2026, 3, 1),
        "i2",
        "",
        cny(1_000),
        1_000,
        date(2026, 4, 1),
    );
    c.pays(date(2026, 3, 10), "i1", cny(1_500), 1_500);
    let f = c.figures_at(date(2026, 4, 10));
    // i1 is settled on time; the 500 extra does not pay i2.
    assert_eq!(f.overdue_amount, 1_000.0);
    assert_eq!(f.on_time_payment_ratio, Some(0.5));
}

#[test]
fn given_an_order_without_a_cost_then_its_margin_is_unknown_never_100_percent() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 10_000, None);
    let f = c.figures();
    assert_eq!(f.margin_12m, None);
    assert_eq!(f.margin_rate_12m, None);
    c.orders(date(2026, 3, 2), "o2", 10_000, Some(7_500));
    let f = c.figures();
    // Only the order with a known cost tells the margin.
    assert_eq!(f.margin_12m, Some(2_500.0));
    assert_eq!(f.margin_rate_12m, Some(0.25));
    assert_eq!(f.order_amount_12m, 20_000.0);
}

#[test]
fn given_ten_thousand_orders_at_the_event_limit_then_sums_are_exact() {
    let limit = tier_core::event::MAX_AMOUNT_MINOR;
    let rules = FoldRules::utc(12);
    let mut p = tier_core::projection::CustomerProjection::new();
    for i in 0..10_000 {
        let e = Event {
            event_id: format!("e{i}"),
            customer_id: "c".into(),
            occurred_at: Timestamp::from_millis(date(2026, 1, 1).millis() + i * 1000),
            source: String::new(),
            kind: EventKind::OrderPlaced {
                order_id: format!("o{i}"),
                amount: Money(limit),
                cost: Some(Money(limit - 1)),
            },
        };
        p.apply(&e, &rules);
    }
    let t = date(2026, 2, 1);
    // 10^19 does not fit an i64; the sums are exact.
    assert_eq!(p.order_amount(t, &rules), 10_000 * i128::from(limit));
    assert_eq!(p.margin(t, &rules), 10_000);
}

// --- 6. Days are business days ------------------------------------------

#[test]
fn given_a_shanghai_business_when_paid_during_the_local_due_date_then_it_is_on_time() {
    let sh = BusinessCalendar::from_iana("Asia/Shanghai").unwrap();
    let due = sh.day_start(sh.day(date(2026, 3, 10).plus_days(0))); // 00:00 CST on 10 March
    // 09:00 CST on 10 March is still 9 March in UTC.
    let paid = Timestamp::from_millis(due.millis() + 9 * HOUR);
    for (zone, on_time) in [("Asia/Shanghai", Some(1.0)), ("UTC", Some(0.0))] {
        let mut c = Customer::given(policy(12, zone, 30));
        c.is_invoiced(date(2026, 2, 1), "i1", "", cny(100), 100, due);
        c.pays(paid, "i1", cny(100), 100);
        assert_eq!(c.figures().on_time_payment_ratio, on_time, "{zone}");
    }
}

#[test]
fn given_an_order_late_on_the_last_utc_day_of_a_month_then_shanghai_counts_it_in_the_next_month() {
    let mut c = Customer::given(policy(12, "Asia/Shanghai", 30));
    // Three months of 100 then three of 200, each order placed at 20:00 UTC
    // on the last day of the month before (04:00 the next day in Shanghai).
    let months = [
        (2026, 1),
        (2026, 2),
        (2026, 3),
        (2026, 4),
        (2026, 5),
        (2026, 6),
    ];
    for (i, (y, m)) in months.into_iter().enumerate() {
        let at = Timestamp::from_millis(date(y, m, 1).millis() - 4 * HOUR);
        let amount = if i < 3 { 100 } else { 200 };
        c.orders(at, &format!("o{i}"), amount, Some(50));
    }
    let f = c.figures_at(date(2026, 7, 15));
    // Twice the spend, per day: April to June has 91 days, January to
    // March 90.
    assert_eq!(
        f.growth_3m,
        Some((600.0 * 90.0 - 300.0 * 91.0) / (300.0 * 91.0))
    );
}

#[test]
fn given_thirty_days_in_a_tier_across_the_spring_change_of_the_clocks_then_it_may_drop_on_the_thirtieth()
 {
    use tier_core::policy::{Evaluation, TierAssignment};
    // Berlin's clocks go forward on 29 March 2026: the thirty days from
    // 10 March to 9 April last 719 hours, not 720.
    for zone in ["UTC", "Europe/Berlin"] {
        let p = policy(12, zone, 30);
        let cal = p.calendar();
        let d0 = cal.day(date(2026, 3, 10).plus_days(1));
        let held = TierAssignment {
            tier: "A".into(),
            score: 85.0,
            since: cal.day_start(d0),
        };
        let low = Evaluation {
            score: 50.0,
            tier: 2,
            ceiling: 0,
        };
        let at = |day: i32| cal.day_start(d0.plus(day));
        assert_eq!(
            p.decide(Some(&held), low, at(29)),
            0,
            "{zone}: held on day 29"
        );
        assert_eq!(
            p.decide(Some(&held), low, at(30)),
            2,
            "{zone}: left on day 30"
        );
        // A tier entered in the afternoon is held until the same local
        // time thirty days on.
        let afternoon = TierAssignment {
            since: Timestamp::from_millis(at(0).millis() + 15 * HOUR),
            ..held.clone()
        };
        let t = Timestamp::from_millis(at(30).millis() + 15 * HOUR);
        assert_eq!(p.hold_ends(afternoon.since), t, "{zone}");
        assert_eq!(
            p.decide(
                Some(&afternoon),
                low,
                Timestamp::from_millis(t.millis() - 1)
            ),
            0
        );
        assert_eq!(p.decide(Some(&afternoon), low, t), 2, "{zone}");
    }
    // The time step finds the same day: a Berlin customer held in a tier
    // by hysteresis drops at the start of its thirtieth day in it.
    let mut c = Customer::given(policy(12, "Europe/Berlin", 30));
    let berlin = c.policy.calendar().clone();
    let start = berlin.day_start(berlin.day(date(2026, 3, 10).plus_days(1)));
    c.orders(start, "x", 100_000_000, Some(75_000_000));
    c.orders(start, "y", 100_000_000, Some(75_000_000));
    assert_eq!(c.tier(), "B");
    let since = c.state.assignment.as_ref().unwrap().since;
    // Two critical complaints the next day: a drop of the score (30
    // points of penalty), which hysteresis holds.
    for id in ["k1", "k2"] {
        c.event(
            since.plus_days(1),
            EventKind::ComplaintOpened {
                complaint_id: id.into(),
                severity: Severity::Critical,
                category: "quality".into(),
            },
        );
    }
    assert_eq!(c.tier(), "B", "held by hysteresis");
    let day = |n: i32| berlin.day_start(berlin.day(since).plus(n));
    let p = c.policy.clone();
    c.state.advance_to(
        "c",
        &p,
        Timestamp::from_millis(day(30).millis() - 1),
        usize::MAX,
    );
    assert_eq!(c.tier(), "B", "held through day 29");
    let (changes, _) = c.state.advance_to("c", &p, day(30), usize::MAX);
    assert_ne!(c.tier(), "B", "left at the start of day 30");
    assert_eq!(changes.last().map(|ch| ch.changed_at), Some(day(30)));
}

// --- 7. Lateness sticks ------------------------------------------------

#[test]
fn given_an_old_debt_paid_400_days_late_then_it_counts_as_late_not_as_perfect_credit() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.is_invoiced(
        date(2025, 1, 1),
        "old",
        "",
        cny(50_000),
        50_000,
        date(2025, 1, 31),
    );
    c.orders(date(2026, 2, 1), "o1", 1_000, Some(500));
    let paid = date(2025, 1, 31).plus_days(400);
    c.pays(paid, "old", cny(50_000), 50_000);
    let f = c.figures();
    assert_eq!(f.on_time_payment_ratio, Some(0.0));
    assert_eq!(f.avg_days_late, Some(400.0));
    assert_eq!(f.overdue_amount, 0.0);
}

#[test]
fn given_an_open_complaint_older_than_the_window_when_resolved_then_it_closes() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.event(
        date(2025, 1, 1),
        EventKind::ComplaintOpened {
            complaint_id: "k1".into(),
            severity: Severity::High,
            category: String::new(),
        },
    );
    c.orders(date(2026, 3, 1), "o1", 1_000, Some(500));
    assert_eq!(c.figures().open_complaints, 1.0);
    c.event(
        date(2026, 3, 2),
        EventKind::ComplaintResolved {
            complaint_id: "k1".into(),
        },
    );
    assert_eq!(c.figures().open_complaints, 0.0);
}

#[test]
fn given_a_complaint_opened_again_under_another_event_id_then_it_is_a_duplicate_and_stays_resolved()
{
    use tier_core::projection::Applied;
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 1_000, Some(500));
    let opening = |at: Timestamp| Event {
        event_id: format!("open-k1-{}", at.millis()),
        customer_id: "c".into(),
        occurred_at: at,
        source: String::new(),
        kind: EventKind::ComplaintOpened {
            complaint_id: "k1".into(),
            severity: Severity::Critical,
            category: "quality".into(),
        },
    };
    let p = c.policy.clone();
    let first = c.state.process("c", &opening(date(2026, 3, 2)), &p);
    assert_eq!(first.applied, Applied::Applied);
    c.event(
        date(2026, 3, 3),
        EventKind::ComplaintResolved {
            complaint_id: "k1".into(),
        },
    );
    assert_eq!(c.figures().open_complaints, 0.0);
    // Sent again a week later: counted as a duplicate, not silently
    // applied; the complaint stays resolved (a reopening is a new id).
    let again = c.state.process("c", &opening(date(2026, 3, 10)), &p);
    assert_eq!(again.applied, Applied::Duplicate);
    assert_eq!(c.figures().open_complaints, 0.0);
}

// --- 9. Profiles and potential -------------------------------------------

#[test]
fn given_a_purchase_potential_when_an_account_manager_is_edited_then_the_potential_stays() {
    let mut c = Customer::given(policy(6, "UTC", 30));
    c.profile(
        date(2026, 1, 1),
        ProfileUpdate {
            name: Some("ACME".into()),
            purchase_potential: Some(Money(4_000_000)),
            ..ProfileUpdate::default()
        },
    );
    c.profile(
        date(2026, 2, 1),
        ProfileUpdate {
            account_manager: Some("li.wei".into()),
            ..ProfileUpdate::default()
        },
    );
    c.orders(date(2026, 3, 1), "o1", 1_000_000, Some(500_000));
    let profile = c.state.projection.profile().unwrap().clone();
    assert_eq!(profile.purchase_potential, Some(Money(4_000_000)));
    assert_eq!(profile.name, "ACME");
    // Six months of 1,000,000 is 2,000,000 a year: half the potential.
    assert_eq!(c.figures().share_of_wallet, Some(0.5));
    c.profile(
        date(2026, 3, 2),
        ProfileUpdate {
            cleared: vec![ProfileField::PurchasePotential],
            ..ProfileUpdate::default()
        },
    );
    assert_eq!(c.figures().share_of_wallet, None);
    assert_eq!(
        c.state.projection.profile().unwrap().account_manager,
        "li.wei"
    );
}

// --- 10. Growth and evidence ----------------------------------------------

#[test]
fn given_no_prior_quarter_then_growth_is_unknown_and_three_growing_months_make_a_streak() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    for (m, amount) in [(4, 100), (5, 200), (6, 300)] {
        c.orders(date(2026, m, 10), &format!("o{m}"), amount, Some(50));
    }
    let f = c.figures_at(date(2026, 7, 2));
    assert_eq!(f.growth_3m, None, "no prior quarter to grow from");
    assert_eq!(f.growth_streak_months, 2.0);
    c.orders(date(2026, 7, 10), "o7", 400, Some(50));
    let f = c.figures_at(date(2026, 8, 2));
    assert_eq!(f.growth_streak_months, 3.0);
    // Per day: 900 over May to July (92 days) against 100 over February
    // to April (89).
    assert_eq!(
        f.growth_3m,
        Some((900.0 * 89.0 - 100.0 * 92.0) / (100.0 * 92.0))
    );
}

#[test]
fn given_a_customer_who_spends_the_same_every_day_then_growth_is_nil_in_every_month() {
    // Quarters are 89 to 92 days long: compared as sums, a steady buyer
    // "shrank" 3.3% in May and "grew" 2.2% in June, and each month after a
    // short one counted as growing.
    let mut c = Customer::given(policy(12, "UTC", 30));
    let firsts: Vec<Timestamp> = (7..=12).map(|m| date(2026, m, 1)).collect();
    let mut t = date(2026, 1, 1);
    let mut checked = 0;
    while t < date(2027, 1, 1) {
        // On the first of each month from July, before that day's order.
        if firsts.contains(&t) {
            let f = c.figures_at(t);
            assert_eq!(f.growth_3m, Some(0.0), "on {t}");
            assert_eq!(f.growth_streak_months, 0.0, "on {t}");
            checked += 1;
        }
        c.orders(t, &format!("o{}", t.millis()), 10_000, Some(5_000));
        t = t.plus_days(1);
    }
    assert_eq!(checked, 6);
}

#[test]
fn given_no_invoice_has_fallen_due_then_credit_is_unknown_not_perfect() {
    let mut c = Customer::given(policy(12, "UTC", 30));
    c.orders(date(2026, 3, 1), "o1", 1_000, Some(500));
    c.is_invoiced(
        date(2026, 3, 1),
        "i1",
        "o1",
        cny(1_000),
        1_000,
        date(2026, 4, 1),
    );
    let f = c.figures();
    assert_eq!(f.on_time_payment_ratio, None);
    assert_eq!(f.avg_days_late, None);
    assert_eq!(f.max_days_late, None);
}

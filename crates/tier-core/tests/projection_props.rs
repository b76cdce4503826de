//! Property tests of the fold: the rules of DOMAIN.md that must hold for
//! any stream of valid events.
//!
//! The reference is `naive_indicators`, an independent, deliberately simple
//! recomputation of the order, margin, complaint and invoice indicators from
//! the full event list. The fold must agree with it after every event.

use proptest::prelude::*;
use tier_core::projection::{Applied, CustomerProjection, window_start};
use tier_core::time::date;
use tier_core::{Event, EventKind, Indicators, Money, Severity, Timestamp};

const W: u32 = 12;
const DAY: i64 = 86_400_000;

fn now() -> Timestamp {
    date(2026, 11, 20)
}

fn ev(id: usize, at: Timestamp, kind: EventKind) -> Event {
    Event {
        event_id: format!("e{id}"),
        customer_id: "c".into(),
        occurred_at: at,
        source: String::new(),
        kind,
    }
}

/// One generated business action; expanded into events with unique ids.
#[derive(Debug, Clone)]
enum Action {
    Order {
        day: i64,
        amount: i64,
        cost_pct: i64,
        returns: Vec<(i64, i64)>,
        cancel: bool,
    },
    Invoice {
        day: i64,
        amount: i64,
        due_in: i64,
        pays: Vec<(i64, i64)>,
    },
    Complaint {
        day: i64,
        severity: usize,
        resolve_after: Option<i64>,
    },
}

fn action() -> impl Strategy<Value = Action> {
    // Days relative to `now`: -500 (well before the window) .. 0.
    let day = -500i64..=0;
    prop_oneof![
        (
            day.clone(),
            1i64..5_000_000,
            0i64..=100,
            prop::collection::vec((1i64..60, 0i64..=100), 0..3),
            any::<bool>()
        )
            .prop_map(|(day, amount, cost_pct, returns, cancel)| Action::Order {
                day,
                amount,
                cost_pct,
                returns,
                cancel
            }),
        (
            day.clone(),
            1i64..1_000_000,
            0i64..60,
            prop::collection::vec((0i64..90, 1i64..=100), 0..3)
        )
            .prop_map(|(day, amount, due_in, pays)| Action::Invoice {
                day,
                amount,
                due_in,
                pays
            }),
        (day, 0usize..5, prop::option::of(0i64..60)).prop_map(|(day, severity, resolve_after)| {
            Action::Complaint {
                day,
                severity,
                resolve_after,
            }
        }),
    ]
}

fn at(day: i64) -> Timestamp {
    Timestamp::from_millis(now().millis() + day * DAY - 3_600_000)
}

/// Expand actions into events (follow-up events clamped to `now`).
fn expand(actions: &[Action]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Order {
                day,
                amount,
                cost_pct,
                returns,
                cancel,
            } => {
                let order_id = format!("o{i}");
                let cost = amount * cost_pct / 100;
                out.push(ev(
                    next(),
                    at(*day),
                    EventKind::OrderPlaced {
                        order_id: order_id.clone(),
                        amount: Money(*amount),
                        cost: Money(cost),
                    },
                ));
                for (k, (pct, after)) in returns.iter().enumerate() {
                    out.push(ev(
                        next(),
                        at((day + after + k as i64).min(0)),
                        EventKind::OrderReturned {
                            order_id: order_id.clone(),
                            amount: Money(amount * pct / 100),
                            cost: Money(cost * pct / 100),
                        },
                    ));
                }
                if *cancel {
                    out.push(ev(
                        next(),
                        at((day + 3).min(0)),
                        EventKind::OrderCancelled { order_id },
                    ));
                }
            }
            Action::Invoice {
                day,
                amount,
                due_in,
                pays,
            } => {
                let invoice_id = format!("i{i}");
                out.push(ev(
                    next(),
                    at(*day),
                    EventKind::InvoiceIssued {
                        invoice_id: invoice_id.clone(),
                        order_id: String::new(),
                        amount: Money(*amount),
                        due_at: at(day + due_in),
                    },
                ));
                // Payments never exceed the invoice in total.
                let mut left = *amount;
                for (after, pct) in pays {
                    let pay = (amount * pct / 100).min(left);
                    if pay == 0 {
                        continue;
                    }
                    left -= pay;
                    out.push(ev(
                        next(),
                        at((day + after).min(0)),
                        EventKind::PaymentReceived {
                            invoice_id: invoice_id.clone(),
                            amount: Money(pay),
                        },
                    ));
                }
            }
            Action::Complaint {
                day,
                severity,
                resolve_after,
            } => {
                let complaint_id = format!("k{i}");
                out.push(ev(
                    next(),
                    at(*day),
                    EventKind::ComplaintOpened {
                        complaint_id: complaint_id.clone(),
                        severity: Severity::ALL[*severity],
                        category: "quality".into(),
                    },
                ));
                if let Some(after) = resolve_after {
                    out.push(ev(
                        next(),
                        at((day + after).min(0)),
                        EventKind::ComplaintResolved { complaint_id },
                    ));
                }
            }
        }
    }
    out
}

fn fold(events: &[Event], now: Timestamp) -> CustomerProjection {
    let mut p = CustomerProjection::new();
    for e in events {
        p.apply(e, now, W);
    }
    p
}

/// Independent recomputation of the money, order, complaint and invoice
/// indicators from the whole list (events applied in list order).
fn naive_indicators(events: &[Event], now: Timestamp) -> (i64, i64, u64, u32, u32, f64, f64) {
    use std::collections::{HashMap, HashSet};
    let start = window_start(now, W).start();
    let live: Vec<&Event> = {
        let mut seen = HashSet::new();
        events
            .iter()
            .filter(|e| e.occurred_at >= start && seen.insert(e.event_id.clone()))
            .collect()
    };
    let mut amount = 0i64;
    let mut cost = 0i64;
    let mut orders = 0u64;
    for e in &live {
        if let EventKind::OrderPlaced {
            order_id,
            amount: a,
            cost: c,
        } = &e.kind
        {
            let cancelled = live.iter().any(
                |x| matches!(&x.kind, EventKind::OrderCancelled { order_id: o } if o == order_id),
            );
            if cancelled {
                continue;
            }
            let (mut ra, mut rc) = (0, 0);
            for x in &live {
                if let EventKind::OrderReturned {
                    order_id: o,
                    amount,
                    cost,
                } = &x.kind
                    && o == order_id
                {
                    ra += amount.0;
                    rc += cost.0;
                }
            }
            amount += a.0 - ra.min(a.0);
            cost += c.0 - rc.min(c.0);
            orders += 1;
        }
    }
    let mut complaints = 0u32;
    let mut open = 0u32;
    for e in &live {
        if let EventKind::ComplaintOpened { complaint_id, .. } = &e.kind {
            complaints += 1;
            let resolved = live.iter().any(|x| {
                matches!(&x.kind, EventKind::ComplaintResolved { complaint_id: k } if k == complaint_id)
            });
            if !resolved {
                open += 1;
            }
        }
    }
    // Invoices: settled ones by their last payment, overdue ones as of now.
    let mut due = 0u64;
    let mut on_time = 0u64;
    let mut overdue = 0i64;
    let mut payments: HashMap<&str, (i64, Timestamp)> = HashMap::new();
    for e in &live {
        if let EventKind::PaymentReceived { invoice_id, amount } = &e.kind {
            let p = payments.entry(invoice_id).or_insert((0, e.occurred_at));
            p.0 += amount.0;
            p.1 = p.1.max(e.occurred_at);
        }
    }
    for e in &live {
        if let EventKind::InvoiceIssued {
            invoice_id,
            amount,
            due_at,
            ..
        } = &e.kind
        {
            let (paid, last) = payments
                .get(invoice_id.as_str())
                .copied()
                .unwrap_or((0, Timestamp::default()));
            if paid >= amount.0 {
                due += 1;
                if last.day() <= due_at.day() {
                    on_time += 1;
                }
            } else if *due_at < now {
                due += 1;
                overdue += amount.0 - paid;
            }
        }
    }
    let ratio = if due > 0 {
        on_time as f64 / due as f64
    } else {
        1.0
    };
    (
        amount,
        amount - cost,
        orders,
        complaints,
        open,
        ratio,
        overdue as f64,
    )
}

fn observed(i: &Indicators) -> (i64, i64, u64, u32, u32, f64, f64) {
    (
        i.order_amount_12m as i64,
        i.margin_12m as i64,
        i.order_count_12m as u64,
        i.complaints_12m as u32,
        i.open_complaints as u32,
        i.on_time_payment_ratio,
        i.overdue_amount,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Folding one by one agrees with recomputing from the full list, after every event.
    #[test]
    fn incremental_equals_recompute(actions in prop::collection::vec(action(), 0..25)) {
        let events = expand(&actions);
        let mut p = CustomerProjection::new();
        for k in 0..events.len() {
            p.apply(&events[k], now(), W);
            let expected = naive_indicators(&events[..=k], now());
            prop_assert_eq!(observed(&p.indicators(now(), W)), expected);
        }
        // And a fresh fold of the whole list is the same projection.
        prop_assert_eq!(&fold(&events, now()), &p);
    }

    /// Applying any event a second time changes nothing.
    #[test]
    fn duplicates_change_nothing(actions in prop::collection::vec(action(), 1..25), pick in any::<prop::sample::Index>()) {
        let events = expand(&actions);
        let once = fold(&events, now());
        let mut twice = once.clone();
        let dup = &events[pick.index(events.len())];
        let outcome = twice.apply(dup, now(), W);
        prop_assert!(matches!(outcome, Applied::Duplicate | Applied::Stale));
        prop_assert_eq!(once, twice);
    }

    /// Delivery order does not matter (placeholders complete out-of-order pairs).
    #[test]
    fn delivery_order_does_not_change_indicators(actions in prop::collection::vec(action(), 1..20), seed in any::<u64>()) {
        let events = expand(&actions);
        let mut shuffled = events.clone();
        // Fisher-Yates with a tiny LCG: deterministic per seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = fold(&events, now()).indicators(now(), W);
        let b = fold(&shuffled, now()).indicators(now(), W);
        prop_assert_eq!(a, b);
    }

    /// Cancelling an order restores every indicator to its value without it.
    #[test]
    fn cancel_restores_everything(actions in prop::collection::vec(action(), 1..20), day in -300i64..=-5, amount in 1i64..10_000_000, cost_pct in 0i64..=100) {
        // An in-window anchor event, so the customer's tenure starts before the order.
        let anchor = ev(90_000, window_start(now(), W).start(), EventKind::ComplaintResolved { complaint_id: "anchor".into() });
        let base: Vec<Event> = std::iter::once(anchor).chain(expand(&actions)).collect();
        let place_at = at(day);
        let mut with = base.clone();
        with.push(ev(90_001, place_at, EventKind::OrderPlaced { order_id: "x".into(), amount: Money(amount), cost: Money(amount * cost_pct / 100) }));
        with.push(ev(90_002, place_at, EventKind::OrderCancelled { order_id: "x".into() }));
        prop_assert_eq!(fold(&base, now()).indicators(now(), W), fold(&with, now()).indicators(now(), W));
    }

    /// A return subtracts exactly its amount and cost.
    #[test]
    fn return_subtracts_exactly(actions in prop::collection::vec(action(), 0..20), day in -300i64..=-5, amount in 1i64..10_000_000, ret_pct in 0i64..=100) {
        let mut events = expand(&actions);
        let cost = amount / 2;
        events.push(ev(90_001, at(day), EventKind::OrderPlaced { order_id: "x".into(), amount: Money(amount), cost: Money(cost) }));
        let before = fold(&events, now()).indicators(now(), W);
        let (ra, rc) = (amount * ret_pct / 100, cost * ret_pct / 100);
        events.push(ev(90_002, at(day + 2), EventKind::OrderReturned { order_id: "x".into(), amount: Money(ra), cost: Money(rc) }));
        let after = fold(&events, now()).indicators(now(), W);
        prop_assert_eq!(after.order_amount_12m as i64, before.order_amount_12m as i64 - ra);
        prop_assert_eq!(after.margin_12m as i64, before.margin_12m as i64 - (ra - rc));
        prop_assert_eq!(after.order_count_12m, before.order_count_12m);
    }

    /// Events older than the window change nothing visible.
    #[test]
    fn stale_events_change_nothing(actions in prop::collection::vec(action(), 0..20), old in prop::collection::vec(action(), 1..10)) {
        let events = expand(&actions);
        let mut base = fold(&events, now());
        base.advance(now(), W);
        let mut p = base.clone();
        let start = window_start(now(), W).start();
        for (k, mut e) in expand(&old).into_iter().enumerate() {
            e.event_id = format!("old{k}");
            e.occurred_at = Timestamp::from_millis(start.millis() - 1 - k as i64 * DAY);
            prop_assert_eq!(p.apply(&e, now(), W), Applied::Stale);
        }
        prop_assert_eq!(base, p);
    }

    /// A projection survives serialisation (it lives in sled).
    #[test]
    fn serde_round_trip(actions in prop::collection::vec(action(), 0..25)) {
        let p = fold(&expand(&actions), now());
        let bytes = postcard::to_stdvec(&p).unwrap();
        prop_assert_eq!(&postcard::from_bytes::<CustomerProjection>(&bytes).unwrap(), &p);
        let json = serde_json::to_string(&p).unwrap();
        prop_assert_eq!(&serde_json::from_str::<CustomerProjection>(&json).unwrap(), &p);
    }

    /// As time passes, data leaves the window and memory stays bounded:
    /// a year after the last event the projection keeps no orders.
    #[test]
    fn time_moves_data_out_of_the_window(actions in prop::collection::vec(action(), 1..25)) {
        let mut p = fold(&expand(&actions), now());
        let later = now().plus_days(400);
        p.advance(later, W);
        let ind = p.indicators(later, W);
        prop_assert_eq!(ind.order_amount_12m, 0.0);
        prop_assert_eq!(ind.order_count_12m, 0.0);
        prop_assert_eq!(ind.complaints_12m, 0.0);
        let bytes = postcard::to_stdvec(&p).unwrap();
        let empty = postcard::to_stdvec(&CustomerProjection::new()).unwrap();
        // Only open complaints, unpaid invoices and the profile may remain.
        let open = ind.open_complaints as usize;
        prop_assert!(bytes.len() <= empty.len() + 64 + open * 64 + 4096, "{} bytes", bytes.len());
    }
}

#[test]
fn given_a_big_order_when_cancelled_then_nothing_remains() {
    let mut p = CustomerProjection::new();
    let t = date(2026, 6, 1);
    p.apply(
        &ev(
            1,
            t,
            EventKind::OrderPlaced {
                order_id: "o1".into(),
                amount: Money(1_000_000),
                cost: Money(600_000),
            },
        ),
        now(),
        W,
    );
    let i = p.indicators(now(), W);
    assert_eq!(i.order_amount_12m, 1_000_000.0);
    assert_eq!(i.margin_12m, 400_000.0);
    assert_eq!(i.margin_rate_12m, 0.4);
    assert_eq!(i.order_count_12m, 1.0);
    assert!((i.days_since_last_order - 172.0).abs() < 1e-9);
    p.apply(
        &ev(
            2,
            t.plus_days(1),
            EventKind::OrderCancelled {
                order_id: "o1".into(),
            },
        ),
        now(),
        W,
    );
    let i = p.indicators(now(), W);
    assert_eq!(i.order_amount_12m, 0.0);
    assert_eq!(i.order_count_12m, 0.0);
}

#[test]
fn late_payment_counts_days_late_and_overdue() {
    let mut p = CustomerProjection::new();
    let issued = date(2026, 9, 1);
    let due = date(2026, 10, 1);
    p.apply(
        &ev(
            1,
            issued,
            EventKind::InvoiceIssued {
                invoice_id: "i1".into(),
                order_id: "o1".into(),
                amount: Money(500),
                due_at: due,
            },
        ),
        now(),
        W,
    );
    let i = p.indicators(now(), W);
    assert_eq!(i.overdue_amount, 500.0);
    assert_eq!(i.on_time_payment_ratio, 0.0);
    assert_eq!(i.max_days_late, 50.0);
    p.apply(
        &ev(
            2,
            due.plus_days(10),
            EventKind::PaymentReceived {
                invoice_id: "i1".into(),
                amount: Money(500),
            },
        ),
        now(),
        W,
    );
    let i = p.indicators(now(), W);
    assert_eq!(i.overdue_amount, 0.0);
    assert_eq!(i.on_time_payment_ratio, 0.0);
    assert_eq!(i.avg_days_late, 10.0);
    assert_eq!(i.max_days_late, 10.0);
}

#[test]
fn growth_compares_last_three_complete_months_with_the_three_before() {
    let mut p = CustomerProjection::new();
    let mut id = 0;
    for (month, amount) in [(5, 100), (6, 100), (7, 100), (8, 150), (9, 150), (10, 150)] {
        id += 1;
        p.apply(
            &ev(
                id,
                date(2026, month, 10),
                EventKind::OrderPlaced {
                    order_id: format!("o{id}"),
                    amount: Money(amount),
                    cost: Money(0),
                },
            ),
            now(),
            W,
        );
    }
    assert!((p.indicators(now(), W).growth_3m - 0.5).abs() < 1e-12);
}

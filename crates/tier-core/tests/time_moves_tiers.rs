//! "Time moves tiers" in the core: lifecycle stages, due instants, the
//! time-driven decisions `advance_to` makes, and the foresight behind
//! "at risk" warnings. Given/when/then, on the default policy.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::policy::Policy;
use tier_core::state::{Cause, CustomerState, Lifecycle, TierChange};
use tier_core::time::date;
use tier_core::{Event, EventKind, Money, ProfileUpdate, Timestamp};

fn order(n: usize, at: Timestamp, amount: i64) -> Event {
    Event {
        event_id: format!("e{n}"),
        customer_id: "c".into(),
        occurred_at: at,
        source: String::new(),
        kind: EventKind::OrderPlaced {
            order_id: format!("o{n}"),
            amount: Money(amount),
            cost: Some(Money(amount * 3 / 4)),
        },
    }
}

fn profile(at: Timestamp, update: ProfileUpdate) -> Event {
    Event {
        event_id: format!("p{}", at.millis()),
        customer_id: "c".into(),
        occurred_at: at,
        source: String::new(),
        kind: EventKind::ProfileUpdated(update),
    }
}

/// A customer who bought 2,000,000 CNY a year in weekly orders until
/// `last`, then stopped.
fn buyer_until(policy: &Policy, last: Timestamp) -> CustomerState {
    let mut s = CustomerState::default();
    let mut t = last.plus_days(-364);
    let mut n = 0;
    while t <= last {
        n += 1;
        s.process("c", &order(n, t, 3_846_200), policy);
        t = t.plus_days(7);
    }
    s
}

fn tier_index(policy: &Policy, s: &CustomerState) -> usize {
    policy
        .tier_index(&s.assignment.as_ref().unwrap().tier)
        .unwrap()
}

#[test]
fn given_a_customer_who_stops_buying_when_time_passes_then_the_tier_drops_by_itself() {
    let policy = Policy::default_policy();
    let last = date(2026, 3, 2);
    let mut stepped = buyer_until(&policy, last);
    let start_tier = tier_index(&policy, &stepped);
    let mut jumped = stepped.clone();

    // A sweep every day for 400 days.
    let mut changes: Vec<TierChange> = Vec::new();
    for d in 1..=400 {
        let (c, done) = stepped.advance_to("c", &policy, last.plus_days(d), 10);
        assert!(done);
        changes.extend(c);
    }
    assert!(!changes.is_empty(), "time alone moved the tier");
    assert!(changes.iter().all(|c| c.cause == Cause::Time));
    // Downwards only, each step once: no flapping.
    let mut idx = start_tier;
    for c in &changes {
        let to = policy.tier_index(&c.new_tier).unwrap();
        assert!(to > idx, "{c:?}");
        idx = to;
        // Decided at a due instant: a business-day start in Shanghai.
        let cal = policy.calendar();
        assert_eq!(cal.day_start(cal.day(c.changed_at)), c.changed_at);
    }

    // tierd down for the whole time: one catch-up on restart makes the
    // same decisions at the same instants.
    let (caught_up, done) = jumped.advance_to("c", &policy, last.plus_days(400), 1_000);
    assert!(done);
    assert_eq!(caught_up, changes);
    assert_eq!(jumped.assignment, stepped.assignment);
    assert_eq!(jumped.decided_at, stepped.decided_at);
}

#[test]
fn lifecycle_stages_follow_orders_and_time() {
    let policy = Policy::default_policy(); // new 90 days, lapsed after 180
    let mut s = CustomerState::default();
    let t0 = date(2026, 1, 5);
    s.process(
        "c",
        &profile(
            t0,
            ProfileUpdate {
                name: Some("ACME".into()),
                ..ProfileUpdate::default()
            },
        ),
        &policy,
    );
    assert_eq!(s.lifecycle(&policy, t0), Lifecycle::Prospect);
    s.process("c", &order(1, t0.plus_days(1), 1_000), &policy);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(1)), Lifecycle::New);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(90)), Lifecycle::New);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(91)), Lifecycle::Active);
    // Exactly 180 business days after the last order: lapsed.
    assert_eq!(s.lifecycle(&policy, t0.plus_days(180)), Lifecycle::Active);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(181)), Lifecycle::Lapsed);
    // An order after the lapse reactivates, for 90 days.
    s.process("c", &order(2, t0.plus_days(200), 1_000), &policy);
    assert_eq!(
        s.lifecycle(&policy, t0.plus_days(200)),
        Lifecycle::Reactivated
    );
    assert_eq!(s.lifecycle(&policy, t0.plus_days(291)), Lifecycle::Active);
}

#[test]
fn given_a_drop_ahead_then_it_is_foreseen_with_its_day_and_what_would_keep_the_tier() {
    let policy = Policy::default_policy();
    let last = date(2026, 3, 2);
    let s = buyer_until(&policy, last);
    // Where the drop really happens.
    let mut future = s.clone();
    let (changes, _) = future.advance_to("c", &policy, last.plus_days(400), 1_000);
    let drop = changes.first().expect("a time-driven drop").clone();
    let horizon = i64::from(policy.lifecycle().at_risk_horizon_days);

    // Too far ahead: nothing to announce yet.
    let early = drop.changed_at.plus_days(-(horizon + 2));
    let mut before = s.clone();
    before.advance_to("c", &policy, early, 1_000);
    assert_eq!(before.foresee_drop("c", &policy, early), None);

    // Within the horizon: the right day, the right tier, and advice.
    let near = drop.changed_at.plus_days(-(horizon / 2));
    let mut before = s.clone();
    before.advance_to("c", &policy, near, 1_000);
    let risk = before
        .foresee_drop("c", &policy, near)
        .expect("foreseen within the horizon");
    assert_eq!(risk.on, drop.changed_at);
    assert_eq!(risk.falls_to, drop.new_tier);
    assert_eq!(Some(risk.current_tier.clone()), drop.old_tier);
    assert!(!risk.keep.is_empty(), "says what would keep the tier");
    // Foreseeing changes nothing.
    let mut again = s.clone();
    again.advance_to("c", &policy, near, 1_000);
    assert_eq!(again.assignment, before.assignment);
}

#[test]
fn the_lifecycle_table_is_validated_with_line_and_field() {
    let text = tier_core::policy::DEFAULT_POLICY_TOML.replace(
        "[hysteresis]",
        "[lifecycle]\nnew_for_days = 60\nlapsed_after_days = 0\n\n[hysteresis]",
    );
    let err = Policy::from_toml_str(&text).unwrap_err().to_string();
    assert!(err.contains("lifecycle.lapsed_after_days"), "{err}");
    assert!(err.contains("line"), "{err}");
    let ok = tier_core::policy::DEFAULT_POLICY_TOML.replace(
        "[hysteresis]",
        "[lifecycle]\nnew_for_days = 60\nlapsed_after_days = 120\nat_risk_horizon_days = 14\n\n[hysteresis]",
    );
    let p = Policy::from_toml_str(&ok).unwrap();
    assert_eq!(p.lifecycle().lapsed_after_days, 120);
    assert_eq!(p.lifecycle().at_risk_horizon_days, 14);
}

/// The due instant is never late: on every day before it, the score and
/// the tier the policy gives (the tier gates included: an invoice ageing
/// past a gate's threshold moves the tier with time alone) are those of
/// the last decision. Checked over a generated population (late payers
/// and debts never paid among them), day by day for 120 days.
#[test]
fn nothing_scored_changes_before_the_due_instant() {
    use std::collections::BTreeMap;
    let policy = Policy::default_policy();
    let end = date(2026, 6, 1);
    let mut w = tier_core::sim::Workload::new(300, 3_000, end);
    w.seed = 3;
    let mut states: BTreeMap<String, CustomerState> = BTreeMap::new();
    for e in w.generate() {
        states
            .entry(e.customer_id.clone())
            .or_default()
            .process(&e.customer_id, &e, &policy);
    }
    let mut checked = 0;
    for (id, s) in &mut states {
        for _ in 0..40 {
            let Some(due) = s.next_due(&policy) else {
                break;
            };
            if due > end.plus_days(120) {
                break;
            }
            let decided = policy.evaluate(&s.indicators(&policy));
            let mut t = s.decided_at.plus_days(1);
            while t < due {
                let figures = s.projection.indicators(t, policy.fold_rules());
                assert_eq!(policy.evaluate(&figures), decided, "{id} at {t}, due {due}");
                checked += 1;
                t = t.plus_days(1);
            }
            s.reevaluate(id, &policy, due, Cause::Time);
        }
    }
    assert!(checked > 1_000, "{checked} days checked");
    // The population exercises the gates: some customers fail one.
    let vetoed = states
        .values()
        .filter(|s| policy.evaluate(&s.indicators(&policy)).ceiling > 0)
        .count();
    assert!(vetoed > 0, "no customer fails a gate");
}

#[test]
fn given_a_drop_of_two_tiers_ahead_then_the_advice_keeps_the_tier_held_not_the_one_between() {
    // Given an A customer whose big project order carries it, when that
    // order is about to leave the window (A straight to C), then the
    // at-risk notice's advice, followed, keeps A: not merely B.
    let policy = Policy::default_policy();
    let t0 = date(2025, 3, 3);
    let mut s = CustomerState::default();
    s.process("c", &order(0, t0, 300_000_000), &policy);
    for n in 1..=52 {
        s.process(
            "c",
            &order(n, t0.plus_days(7 * n as i64), 1_000_000),
            &policy,
        );
    }
    let mut future = s.clone();
    let (changes, _) = future.advance_to("c", &policy, t0.plus_days(420), 10_000);
    let drop = changes.first().expect("a time-driven drop").clone();
    assert_eq!(
        (drop.old_tier.as_deref(), drop.new_tier.as_str()),
        (Some("A"), "C")
    );
    let near = drop.changed_at.plus_days(-5);
    let mut before = s.clone();
    before.advance_to("c", &policy, near, 10_000);
    let risk = before.foresee_drop("c", &policy, near).expect("foreseen");
    assert_eq!(
        (risk.current_tier.as_str(), risk.falls_to.as_str()),
        ("A", "C")
    );
    assert!(!risk.keep.is_empty(), "says what would keep A");
    // Followed: the figures at the drop's instant, with each advised
    // indicator at its target, grade A.
    let mut at_drop = s.clone();
    at_drop.advance_to("c", &policy, drop.changed_at, 10_000);
    let mut figures = at_drop.indicators(&policy);
    for a in &risk.keep {
        figures.set(a.indicator, Some(a.target));
    }
    assert_eq!(policy.tiers()[policy.evaluate(&figures).tier].name, "A");
}

/// `tests/fixtures/thresholds.toml`, scoring `indicator` alone (0 to 100
/// maps to 0 to 100 points; A from 80, B 60, C 40, D below).
fn scoring_only(indicator: &str) -> Policy {
    let text = include_str!("fixtures/thresholds.toml")
        .replace("\"order_count_12m\"", &format!("\"{indicator}\""));
    Policy::from_toml_str(&text).unwrap()
}

#[test]
fn given_one_order_then_the_customer_is_due_the_day_it_stops_being_new() {
    // Nothing scored moves daily (the order count), so the due instant is
    // the first threshold ahead: the end of "new", 90 days on.
    let policy = scoring_only("order_count_12m");
    let t0 = date(2026, 1, 5);
    let mut s = CustomerState::default();
    s.process("c", &order(1, t0, 1_000), &policy);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(89)), Lifecycle::New);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(90)), Lifecycle::Active);
    assert_eq!(s.next_due(&policy), Some(t0.plus_days(90)));
}

#[test]
fn given_a_customer_since_before_the_first_order_then_it_is_new_only_while_its_tenure_is_short() {
    let policy = scoring_only("order_count_12m");
    let t0 = date(2026, 1, 5);
    let known_since = |since: Timestamp| {
        let mut s = CustomerState::default();
        s.process(
            "c",
            &profile(
                t0.plus_days(-1),
                ProfileUpdate {
                    customer_since: Some(since),
                    ..ProfileUpdate::default()
                },
            ),
            &policy,
        );
        assert_eq!(s.lifecycle(&policy, t0.plus_days(-1)), Lifecycle::Prospect);
        s.process("c", &order(1, t0, 1_000), &policy);
        s
    };
    // Known to the CRM 30 days before its first order: new for the 60
    // days its tenure (counted from customer_since) stays under 90, and
    // due the day that ends.
    let s = known_since(t0.plus_days(-30));
    assert_eq!(s.lifecycle(&policy, t0), Lifecycle::New);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(59)), Lifecycle::New);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(60)), Lifecycle::Active);
    assert_eq!(s.next_due(&policy), Some(t0.plus_days(60)));
    // README's m-5001: a customer since 2019 whose first order in the
    // stream is today has years of tenure, and is active, not new: the
    // next stage it can reach with time alone is lapsed, 180 days on.
    let s = known_since(date(2019, 3, 1));
    assert_eq!(s.lifecycle(&policy, t0), Lifecycle::Active);
    assert_eq!(s.lifecycle(&policy, t0.plus_days(179)), Lifecycle::Active);
    assert_eq!(s.next_due(&policy), Some(t0.plus_days(180)));
}

#[test]
fn given_a_new_customer_rule_on_orders_then_it_ends_the_day_the_tenure_start_leaves_the_window() {
    // The order count alone scored, a new-customer rule on it (fewer than
    // 3 orders, tenure not read): a customer the CRM has known since 100
    // days before its one order, judged 5, is B by the rule while its
    // whole history is in the window.
    let text = format!(
        "{}\n[[assessments]]\nname = \"judged_potential\"\n\
         scale = {{ min = 1, max = 5 }}\nvalid_days = 3650\n\n\
         [new_customers]\norders = 3\nassessment = \"judged_potential\"\n\
         tiers = [{{ min_level = 5, tier = \"B\" }}]\n",
        include_str!("fixtures/thresholds.toml")
    );
    let policy = Policy::from_toml_str(&text).unwrap();
    assert!(!policy.uses(tier_core::IndicatorName::TenureDays));
    let t0 = date(2026, 1, 5);
    let mut s = CustomerState::default();
    s.process(
        "c",
        &profile(
            t0.plus_days(-1),
            ProfileUpdate {
                customer_since: Some(t0.plus_days(-100)),
                ..ProfileUpdate::default()
            },
        ),
        &policy,
    );
    s.process("c", &order(1, t0, 1_000), &policy);
    let judged = Event {
        event_id: "a1".into(),
        customer_id: "c".into(),
        occurred_at: t0,
        source: String::new(),
        kind: EventKind::CustomerAssessed {
            indicator: "judged_potential".into(),
            value: 5,
            assessed_by: "alice".into(),
            note: String::new(),
        },
    };
    s.process("c", &judged, &policy);
    assert_eq!(s.assignment.as_ref().unwrap().tier, "B");
    // When time passes, then on the day customer_since leaves the window
    // (365 days on, the order still in it: no figure changes that day)
    // the customer has history before the window, is no longer new, and
    // its score grades it: D, cause TIME, on both paths.
    let mut reference = s.clone();
    let until = t0.plus_days(300);
    let (changes, _) = s.advance_to("c", &policy, until, 1_000);
    let (by_reference, _) = reference.advance_to_reference("c", &policy, until, 1_000);
    let moved: Vec<(&str, Timestamp, Cause)> = changes
        .iter()
        .map(|c| (c.new_tier.as_str(), c.changed_at, c.cause))
        .collect();
    assert_eq!(moved, [("D", t0.plus_days(265), Cause::Time)]);
    assert_eq!(changes, by_reference);
}

#[test]
fn given_a_prospect_with_a_customer_since_then_tenure_moves_the_tier_day_by_day() {
    // A prospect the CRM says has been a customer for 50 days (C, 50
    // points on tenure): no order yet, but tenure counts from
    // `customer_since` and grows every day, 60 days making B.
    let policy = scoring_only("tenure_days");
    let t0 = date(2026, 1, 5);
    let mut s = CustomerState::default();
    s.process(
        "c",
        &profile(
            t0,
            ProfileUpdate {
                customer_since: Some(t0.plus_days(-50)),
                ..ProfileUpdate::default()
            },
        ),
        &policy,
    );
    assert_eq!(s.assignment.as_ref().unwrap().tier, "C");
    assert_eq!(s.next_due(&policy), Some(t0.plus_days(1)));
    let (changes, _) = s.advance_to("c", &policy, t0.plus_days(30), 1_000);
    let moved: Vec<(&str, Timestamp)> = changes
        .iter()
        .map(|c| (c.new_tier.as_str(), c.changed_at))
        .collect();
    assert_eq!(moved, [("B", t0.plus_days(10)), ("A", t0.plus_days(30))]);
}

#[test]
fn a_notice_of_a_drop_is_withdrawn_when_the_tier_it_was_about_changes() {
    // "C falls to D on 1 April" was announced; ten more orders lift the
    // customer to B: the notice is about a tier left, and goes.
    let policy = scoring_only("order_count_12m");
    let t0 = date(2026, 1, 5);
    let mut s = CustomerState::default();
    for n in 0..50 {
        s.process("c", &order(n, t0, 1_000), &policy);
    }
    assert_eq!(s.assignment.as_ref().unwrap().tier, "C");
    s.at_risk = Some(Box::new(tier_core::state::AtRisk {
        customer_id: "c".into(),
        current_tier: "C".into(),
        falls_to: "D".into(),
        on: date(2026, 4, 1),
        keep: Vec::new(),
    }));
    s.process("c", &order(50, t0.plus_days(1), 1_000), &policy);
    assert!(s.at_risk.is_some(), "still C: the notice stands");
    for n in 51..60 {
        s.process("c", &order(n, t0.plus_days(1), 1_000), &policy);
    }
    assert_eq!(s.assignment.as_ref().unwrap().tier, "B");
    assert_eq!(s.at_risk, None);
}

/// The lifecycle stage on each of `days` (offsets from `t0`).
fn stages(
    s: &CustomerState,
    policy: &Policy,
    t0: Timestamp,
    days: std::ops::Range<i64>,
) -> Vec<Lifecycle> {
    days.map(|d| s.lifecycle(policy, t0.plus_days(d))).collect()
}

/// Orders on `days` (offsets from `t0`) read in that order: the state,
/// checked to give the stage read in time order would on each of `check`
/// and the same next due instant.
fn read_late(
    policy: &Policy,
    t0: Timestamp,
    days: &[i64],
    check: std::ops::Range<i64>,
) -> CustomerState {
    let late = orders_read_in(policy, t0, days);
    let mut sorted = days.to_vec();
    sorted.sort_unstable();
    let in_order = orders_read_in(policy, t0, &sorted);
    assert_eq!(
        stages(&late, policy, t0, check.clone()),
        stages(&in_order, policy, t0, check),
        "read as {days:?}"
    );
    assert_eq!(late.next_due(policy), in_order.next_due(policy));
    late
}

fn orders_read_in(policy: &Policy, t0: Timestamp, days: &[i64]) -> CustomerState {
    let mut s = CustomerState::default();
    for (n, d) in days.iter().enumerate() {
        s.process("c", &order(n, t0.plus_days(*d), 1_000), policy);
    }
    s
}

#[test]
fn given_an_order_posted_late_into_the_gap_then_the_later_order_ended_no_lapse() {
    let policy = Policy::default_policy(); // new 90 days, lapsed after 180
    let t0 = date(2026, 1, 10);
    // 01-10, then 09-01: 234 days without an order, so 09-01 reactivates.
    let read_in_time = orders_read_in(&policy, t0, &[0, 234]);
    assert_eq!(
        read_in_time.lifecycle(&policy, t0.plus_days(235)),
        Lifecycle::Reactivated
    );
    // An order of 05-01 (day 111) posted after both: the gaps are 111 and
    // 123 days, neither a lapse. The customer never lapsed: active.
    // Nothing is due for the reactivation's end any more either.
    let late = read_late(&policy, t0, &[0, 234, 111], 234..500);
    assert_eq!(
        late.lifecycle(&policy, t0.plus_days(235)),
        Lifecycle::Active
    );
}

#[test]
fn given_an_order_posted_late_that_ended_the_lapse_then_the_reactivation_runs_from_it() {
    let policy = Policy::default_policy();
    let t0 = date(2026, 1, 10);
    // 01-10, then 09-20 (day 253); an order of 08-30 (day 232) posted
    // last ended the lapse, and 09-20 followed it three weeks later.
    let late = read_late(&policy, t0, &[0, 253, 232], 253..600);
    // Reactivated for 90 days from 08-30, not from 09-20.
    assert_eq!(
        late.lifecycle(&policy, t0.plus_days(232 + 89)),
        Lifecycle::Reactivated
    );
    assert_eq!(
        late.lifecycle(&policy, t0.plus_days(232 + 90)),
        Lifecycle::Active
    );
    // A late order more than 180 days before the reactivation leaves it.
    let before_lapse = orders_read_in(&policy, t0, &[0, 232, 253, 20]);
    assert_eq!(
        before_lapse.lifecycle(&policy, t0.plus_days(300)),
        Lifecycle::Reactivated
    );
}

/// The stage a reader of the whole order history gives on `today`:
/// lapsed `lapsed` days after the last order, reactivated for `new` days
/// from the last order that followed a lapse, new for `new` days from the
/// first, else active.
fn stage_from_history(days: &[i64], today: i64, new: i64, lapsed: i64) -> Lifecycle {
    let mut sorted: Vec<i64> = days.to_vec();
    sorted.sort_unstable();
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Lifecycle::Prospect;
    };
    if today - last >= lapsed {
        return Lifecycle::Lapsed;
    }
    let reactivation = sorted
        .windows(2)
        .filter(|w| w[1] - w[0] >= lapsed)
        .map(|w| w[1])
        .next_back();
    if reactivation.is_some_and(|r| today - r < new) {
        Lifecycle::Reactivated
    } else if today - first < new {
        Lifecycle::New
    } else {
        Lifecycle::Active
    }
}

/// Order `n` taken out of the count: cancelled, or returned in full.
fn taken_back(n: usize, at: Timestamp, returned: bool) -> Event {
    let order_id = format!("o{n}");
    Event {
        event_id: format!("x{n}"),
        customer_id: "c".into(),
        occurred_at: at,
        source: String::new(),
        kind: if returned {
            EventKind::OrderReturned {
                order_id,
                amount: Money(1_000),
                cost: Some(Money(750)),
                return_id: String::new(),
            }
        } else {
            EventKind::OrderCancelled { order_id }
        },
    }
}

/// An order `n` with `hour` hours after `day`'s first moment (up to 15:
/// the same business day in Asia/Shanghai, 8 hours ahead of UTC).
fn order_at(n: usize, t0: Timestamp, day: i64, hour: i64) -> Event {
    order(
        n,
        Timestamp::from_millis(t0.plus_days(day).millis() + hour * 3_600_000),
        1_000,
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Orders at any hour, some cancelled or returned in full later, read
    /// in any order (all within the window) give the stage the history of
    /// the orders that stand gives, every day: whatever topic or producer
    /// was late. Under the default lifecycle (new 90 days, lapsed after
    /// 180) and one where "reactivated" outlasts a lapse (new 120, lapsed
    /// after 30), where a voided reactivation uncovers an earlier one.
    #[test]
    fn the_lifecycle_follows_the_orders_in_event_time_whatever_the_reading_order(
        orders in proptest::collection::vec(
            (0i64..330, 0i64..16, proptest::option::weighted(0.25, (0i64..30, proptest::prelude::any::<bool>()))),
            1..9,
        ),
        short_lapse in proptest::prelude::any::<bool>(),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let (policy, new, lapsed) = if short_lapse {
            let text = tier_core::policy::DEFAULT_POLICY_TOML.replace(
                "[hysteresis]",
                "[lifecycle]\nnew_for_days = 120\nlapsed_after_days = 30\n\n[hysteresis]",
            );
            (Policy::from_toml_str(&text).unwrap(), 120, 30)
        } else {
            (Policy::default_policy(), 90, 180)
        };
        let t0 = date(2026, 1, 10);
        let mut events = Vec::new();
        for (n, (day, hour, taken)) in orders.iter().enumerate() {
            events.push(order_at(n, t0, *day, *hour));
            if let Some((after, returned)) = taken {
                events.push(taken_back(n, t0.plus_days(day + after), *returned));
            }
        }
        let mut x = seed | 1;
        for i in (1..events.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            events.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut s = CustomerState::default();
        for e in &events {
            s.process("c", e, &policy);
        }
        let standing: Vec<i64> = orders.iter().filter(|(.., t)| t.is_none()).map(|(d, ..)| *d).collect();
        let last = orders.iter().map(|(d, _, t)| d + t.map_or(0, |(a, _)| a)).max().unwrap();
        for today in last..last + 300 {
            proptest::prop_assert_eq!(
                s.lifecycle(&policy, t0.plus_days(today)),
                stage_from_history(&standing, today, new, lapsed),
                "day {} of {:?} read as {:?}", today, orders,
                events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn given_a_reactivation_voided_by_a_late_order_then_the_one_before_it_shows_again() {
    // "Reactivated" for 90 days outlasts a lapse of 60.
    let text = tier_core::policy::DEFAULT_POLICY_TOML.replace(
        "[hysteresis]",
        "[lifecycle]\nnew_for_days = 90\nlapsed_after_days = 60\n\n[hysteresis]",
    );
    let policy = Policy::from_toml_str(&text).unwrap();
    let t0 = date(2026, 1, 10);
    // Orders on days 0, 70 (ends a lapse) and 140 (ends another); one of
    // day 100, posted last, splits the second gap: day 70's reactivation
    // is the last, and runs to day 160.
    let late = read_late(&policy, t0, &[0, 70, 140, 100], 140..400);
    assert_eq!(
        late.lifecycle(&policy, t0.plus_days(159)),
        Lifecycle::Reactivated
    );
    assert_eq!(
        late.lifecycle(&policy, t0.plus_days(160)),
        Lifecycle::Active
    );
}

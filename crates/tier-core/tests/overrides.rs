//! Overrides in the core: a manager pins, floors or caps a customer's
//! tier; the computed tier stays visible beside it; expiry is a due
//! instant like any other; every action is in the history.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tier_core::overrides::{Override, OverrideAction, OverrideError, OverrideMode};
use tier_core::policy::Policy;
use tier_core::state::{Cause, CustomerState, TierAsOf};
use tier_core::time::date;
use tier_core::{Event, EventKind, Money, Timestamp};

/// A customer the default policy grades C or D: one modest order.
fn small_customer(policy: &Policy) -> CustomerState {
    let mut s = CustomerState::default();
    let e = Event {
        event_id: "e1".into(),
        customer_id: "c".into(),
        occurred_at: date(2026, 3, 2),
        source: String::new(),
        kind: EventKind::OrderPlaced {
            order_id: "o1".into(),
            amount: Money(5_000_000),
            cost: Some(Money(4_000_000)),
        },
    };
    s.process("c", &e, policy);
    s
}

fn manual(tier: &str, mode: OverrideMode, at: Timestamp, expires: Option<Timestamp>) -> Override {
    Override {
        tier: tier.into(),
        mode,
        reason: "strategic account".into(),
        author: "li.wei".into(),
        set_at: at,
        expires_at: expires,
    }
}

fn effective(s: &CustomerState) -> &str {
    s.effective.as_ref().map_or("-", |e| e.tier.as_str())
}

fn computed(s: &CustomerState) -> &str {
    s.assignment.as_ref().map_or("-", |a| a.tier.as_str())
}

#[test]
fn a_pin_wins_and_the_computed_tier_stays_visible() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    let low = computed(&s).to_owned();
    assert_eq!(effective(&s), low);
    let at = date(2026, 3, 3);
    let change = s
        .set_override("c", &policy, manual("A", OverrideMode::Pin, at, None))
        .unwrap()
        .expect("the effective tier moved");
    assert_eq!(change.cause, Cause::Override);
    assert_eq!(change.new_tier, "A");
    assert_eq!(change.computed_tier, low);
    assert!(change.overridden);
    assert_eq!(effective(&s), "A");
    assert_eq!(computed(&s), low, "the figures still say what they say");
    // A pin also holds a customer down.
    let change = s
        .set_override("c", &policy, manual("D", OverrideMode::Pin, at, None))
        .unwrap();
    assert_eq!(effective(&s), "D");
    assert!(change.is_some());
}

#[test]
fn a_floor_lifts_and_a_ceiling_caps_but_neither_blocks_the_other_way() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    let low = computed(&s).to_owned();
    let at = date(2026, 3, 3);
    s.set_override("c", &policy, manual("B", OverrideMode::Floor, at, None))
        .unwrap();
    assert_eq!(effective(&s), "B", "at least B");
    // A floor below the computed tier changes nothing.
    s.set_override("c", &policy, manual("D", OverrideMode::Floor, at, None))
        .unwrap();
    assert_eq!(effective(&s), low);
    // A ceiling above the computed tier changes nothing; below it caps.
    s.set_override("c", &policy, manual("A", OverrideMode::Ceiling, at, None))
        .unwrap();
    assert_eq!(effective(&s), low);
    s.set_override("c", &policy, manual("D", OverrideMode::Ceiling, at, None))
        .unwrap();
    assert_eq!(effective(&s), "D");
}

#[test]
fn an_override_expires_at_its_instant_and_everything_is_in_the_history() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    let low = computed(&s).to_owned();
    let at = Timestamp::from_millis(date(2026, 3, 3).millis() + 3_600_000 * 5);
    let ends = Timestamp::from_millis(date(2026, 3, 10).millis() + 3_600_000 * 7);
    s.set_override("c", &policy, manual("A", OverrideMode::Pin, at, Some(ends)))
        .unwrap();
    // Expiry is a due instant, exact to the millisecond.
    let mut due_times = Vec::new();
    let mut t = s.clone();
    for _ in 0..20 {
        let due = t.next_due(&policy).unwrap();
        due_times.push(due);
        if due == ends {
            break;
        }
        t.reevaluate("c", &policy, due, Cause::Time);
    }
    assert_eq!(due_times.last(), Some(&ends));
    let (changes, done) = s.advance_to("c", &policy, date(2026, 3, 20), 100);
    assert!(done);
    let expired: Vec<_> = changes
        .iter()
        .filter(|c| c.cause == Cause::Override)
        .collect();
    assert_eq!(expired.len(), 1, "{changes:?}");
    assert_eq!(expired[0].changed_at, ends);
    assert_eq!(expired[0].new_tier, low);
    assert!(!expired[0].overridden);
    assert!(s.manual().is_none());

    // Set, then a manual clear of a second one: three entries in order.
    s.set_override(
        "c",
        &policy,
        manual("B", OverrideMode::Floor, date(2026, 3, 21), None),
    )
    .unwrap();
    let change = s
        .clear_override("c", &policy, "reviewed", "wang.fang", date(2026, 3, 22))
        .unwrap()
        .unwrap();
    assert_eq!(change.new_tier, low);
    let actions: Vec<&OverrideAction> = s.override_history().iter().map(|e| &e.action).collect();
    assert!(matches!(actions[0], OverrideAction::Set(o) if o.tier == "A"));
    assert!(matches!(actions[1], OverrideAction::Expired));
    assert!(matches!(actions[2], OverrideAction::Set(o) if o.tier == "B"));
    assert!(matches!(actions[3], OverrideAction::Cleared { author, .. } if author == "wang.fang"));
}

#[test]
fn bad_overrides_are_refused_with_the_reason() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    let at = date(2026, 3, 3);
    let err = s
        .set_override(
            "c",
            &policy,
            manual("Platinum", OverrideMode::Pin, at, None),
        )
        .unwrap_err();
    assert!(matches!(err, OverrideError::UnknownTier { .. }), "{err}");
    let err = s
        .set_override(
            "c",
            &policy,
            manual("A", OverrideMode::Pin, at, Some(date(2026, 3, 1))),
        )
        .unwrap_err();
    assert!(
        matches!(err, OverrideError::ExpiresInThePast { .. }),
        "{err}"
    );
    let mut o = manual("A", OverrideMode::Pin, at, None);
    o.reason = " ".into();
    assert_eq!(
        s.set_override("c", &policy, o).unwrap_err(),
        OverrideError::Missing { field: "reason" }
    );
    assert!(matches!(
        s.clear_override("c", &policy, "r", "a", at).unwrap_err(),
        OverrideError::NothingToClear { .. }
    ));
    assert!(
        s.override_history().is_empty(),
        "refused commands leave no trace"
    );
}

#[test]
fn events_under_a_pin_move_the_computed_tier_only() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    s.set_override(
        "c",
        &policy,
        manual("D", OverrideMode::Pin, date(2026, 3, 3), None),
    )
    .unwrap();
    let big = Event {
        event_id: "e2".into(),
        customer_id: "c".into(),
        occurred_at: date(2026, 3, 4),
        source: String::new(),
        kind: EventKind::OrderPlaced {
            order_id: "o2".into(),
            amount: Money(900_000_000),
            cost: Some(Money(600_000_000)),
        },
    };
    let processed = s.process("c", &big, &policy);
    assert_eq!(processed.change, None, "the effective tier did not move");
    assert_eq!(computed(&s), "A");
    assert_eq!(effective(&s), "D");
}

#[test]
fn after_an_expiry_the_tier_is_held_since_the_expiry_as_after_a_clear() {
    // Given a customer the figures grade low since 2 March, pinned to A
    // on the 3rd until the 10th, when the pin expires, then the computed
    // tier is held since the expiry (as the tier history and the
    // TierChanged say), as it is after a manual clear at that instant.
    let policy = Policy::default_policy();
    let (set, ends) = (date(2026, 3, 3), date(2026, 3, 10));
    let mut expired = small_customer(&policy);
    let low = computed(&expired).to_owned();
    let low_since = expired.assignment.as_ref().unwrap().since;
    assert!(low_since < set);
    expired
        .set_override(
            "c",
            &policy,
            manual("A", OverrideMode::Pin, set, Some(ends)),
        )
        .unwrap();
    let (changes, _) = expired.advance_to("c", &policy, ends, 100);
    let back = changes
        .iter()
        .find(|c| c.cause == Cause::Override)
        .expect("the expiry changes the tier");
    assert_eq!(
        (back.new_tier.as_str(), back.changed_at),
        (low.as_str(), ends)
    );
    let held = expired.effective.as_ref().unwrap();
    assert_eq!((held.tier.as_str(), held.since), (low.as_str(), ends));
    assert_eq!(
        expired.tier_as_of(date(2026, 3, 5)),
        TierAsOf::Known(Some("A".into()))
    );
    // The computed tier itself did not change: it keeps its own since.
    assert_eq!(expired.assignment.as_ref().unwrap().since, low_since);

    let mut cleared = small_customer(&policy);
    cleared
        .set_override("c", &policy, manual("A", OverrideMode::Pin, set, None))
        .unwrap();
    cleared.advance_to("c", &policy, ends, 100);
    cleared
        .clear_override("c", &policy, "review", "li.wei", ends)
        .unwrap();
    assert_eq!(cleared.effective, expired.effective);
}

/// A policy change that retires the override's tier ends the override,
/// in its history, at the rescore: it is not left shown as in force while
/// the computed tier applies (nor applied again should a later policy
/// bring the tier back).
#[test]
fn an_override_of_a_tier_a_new_policy_retires_ends_in_the_history() {
    let policy = Policy::default_policy();
    let mut s = small_customer(&policy);
    let low = computed(&s).to_owned();
    let at = date(2026, 3, 3);
    s.set_override("c", &policy, manual("A", OverrideMode::Pin, at, None))
        .unwrap();
    assert_eq!(effective(&s), "A");
    let renamed = tier_core::policy::DEFAULT_POLICY_TOML
        .replace("name = \"A\"                # core", "name = \"Gold\"")
        .replace("version = \"default-2027.01\"", "version = \"gold-1\"");
    let gold = Policy::from_toml_str(&renamed).unwrap();
    assert!(gold.tier_index("A").is_none() && gold.tier_index("Gold").is_some());

    let later = date(2026, 4, 1);
    let rescored = s.rescore_policy("c", &gold, later);
    assert!(!rescored.confirmed, "the state changed: stored");
    let change = rescored.change.expect("the effective tier moved");
    assert_eq!(change.cause, Cause::Policy);
    assert_eq!(
        (change.new_tier.as_str(), change.overridden),
        (low.as_str(), false)
    );
    assert!(s.manual().is_none(), "no override left in force");
    let last = s.override_history().last().unwrap();
    assert_eq!(last.at, later);
    match &last.action {
        OverrideAction::Cleared { reason, author } => {
            assert_eq!(reason, "tier A is not a tier of policy gold-1");
            assert_eq!(author, tier_core::state::RETIRING_AUTHOR);
        }
        other => panic!("{other:?}"),
    }
    // The old policy back: the pin does not come back by itself.
    s.rescore_policy("c", &policy, date(2026, 5, 1));
    assert_eq!(effective(&s), low);
}

/// `overridden` says the override holds the tier, against the figures or
/// as its own bound: a ceiling the computed tier rises to still holds it.
/// The TierChanged and the tier history say so, as GetTier's view does.
#[test]
fn a_tier_at_the_overrides_own_bound_is_overridden_everywhere() {
    use tier_core::sim::scenario::weekly_buyer;
    let policy = Policy::default_policy();
    let events = weekly_buyer("c", date(2026, 3, 2), 2_000_000 * 100);
    let mut s = CustomerState::default();
    s.process("c", &events[0], &policy);
    let start = events[0].occurred_at;
    s.set_override(
        "c",
        &policy,
        manual("B", OverrideMode::Ceiling, start, None),
    )
    .unwrap();
    let mut at_bound = Vec::new();
    for e in &events[1..] {
        if let Some(change) = s.process("c", e, &policy).change
            && change.new_tier == "B"
            && change.computed_tier == "B"
        {
            at_bound.push(change);
        }
    }
    assert_eq!(computed(&s), "B", "the buyer's figures give B");
    assert_eq!(at_bound.len(), 1, "the rise to the ceiling: {at_bound:?}");
    assert!(at_bound[0].overridden);
    let step = s.tier_history().last().unwrap();
    assert_eq!((step.to.as_str(), step.overridden), ("B", true));
}

#[test]
fn a_customer_known_only_by_commands_falls_when_its_pin_is_cleared_and_is_capped_by_a_ceiling() {
    // A manager pins a new account to A before its first event, then the
    // deal falls through and the pin is cleared: it falls to what its
    // figures (none) give, with a change, instead of keeping A unpinned.
    let policy = Policy::default_policy();
    let none = policy.tiers()[policy.evaluate(&Default::default()).tier]
        .name
        .clone();
    assert_ne!(none, "A");
    let at = date(2026, 3, 3);
    let mut s = CustomerState::default();
    s.set_override("new", &policy, manual("A", OverrideMode::Pin, at, None))
        .unwrap()
        .expect("a first tier");
    assert_eq!(effective(&s), "A");
    assert_eq!(
        s.policy_version,
        policy.version(),
        "shown under the policy in force"
    );
    let change = s
        .clear_override("new", &policy, "deal lost", "li.wei", at.plus_days(1))
        .unwrap()
        .expect("the pin's tier is left");
    assert_eq!(
        (change.new_tier.as_str(), change.overridden),
        (none.as_str(), false)
    );
    assert_eq!(change.cause, Cause::Override);
    assert_eq!(effective(&s), none);
    // A ceiling above what the figures give caps: it lifts no one.
    let mut s = CustomerState::default();
    s.set_override("cap", &policy, manual("B", OverrideMode::Ceiling, at, None))
        .unwrap();
    assert_eq!(effective(&s), none);
}

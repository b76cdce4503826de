//! "Tiers that live", end to end: tierd in-process on a stepped clock
//! (time sweeps, at-risk notices, a restart after the due time), the
//! override and policy RPCs over gRPC, and SIGHUP on the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tier_core::policy::Policy;
use tier_core::sim::scenario::{order, stricter_bands, weekly_buyer as buyer};
use tier_core::state::{Cause, CustomerState};
use tier_core::time::date;
use tier_core::{Event, Timestamp};
use tier_kafka::ManualClock;
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::{
    self, ApplyPolicyRequest, BatchGetTiersRequest, ChangeCause, ClearOverrideRequest,
    DryRunPolicyRequest, GetOverrideHistoryRequest, GetPolicyRequest, GetPolicyStatusRequest,
    GetTierRequest, ListAtRiskCustomersRequest, OverrideMode, SetOverrideRequest, TierAtRisk,
    TierChanged,
};
use tierd_tests::{Record, Sandbox, Wire, wait_for};
use tonic::Code;

const T: Duration = Duration::from_secs(60);

/// 2,000,000 CNY a year, in fen: tier B under the default policy.
const B_BUYER: i64 = 200_000_000;

fn stepped(at: Timestamp) -> (Sandbox, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at));
    let mut sb = Sandbox::new();
    sb.clock = Some(clock.clone());
    (sb, clock)
}

/// Every record on the tier-changes topic: the changes and the at-risk
/// notices, told apart by the `tierd-type` header.
fn published(sb: &Sandbox, at_least: usize) -> (Vec<TierChanged>, Vec<TierAtRisk>) {
    let records: Vec<Record> = sb.read_topic(
        &sb.config.tier_changes_topic,
        at_least,
        Duration::from_secs(30),
    );
    let mut changes = Vec::new();
    let mut notices = Vec::new();
    for r in records {
        let payload = r.payload.clone().unwrap_or_default();
        match r.header("tierd-type") {
            Some("TierAtRisk") => notices.push(TierAtRisk::decode(payload.as_slice()).unwrap()),
            Some("ComplaintOverdue") => {}
            _ => changes.push(TierChanged::decode(payload.as_slice()).unwrap()),
        }
    }
    changes.sort_by_key(|c| (c.customer_id.clone(), c.sequence));
    (changes, notices)
}

async fn tier(sb: &Sandbox, customer: &str) -> api::CustomerTier {
    sb.client()
        .await
        .get_tier(GetTierRequest {
            customer_id: customer.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Wait until GetTier says `tier` for `customer`.
async fn wait_tier(sb: &Sandbox, customer: &str, want: &str) -> api::CustomerTier {
    wait_for(&format!("{customer} in {want}"), T, || async {
        let t = tier(sb, customer).await;
        (t.tier == want).then_some(t)
    })
    .await
}

/// Wait until `ListAtRiskCustomers` lists at least `n` customers.
async fn wait_at_risk(sb: &Sandbox, n: usize) -> Vec<TierAtRisk> {
    wait_for(&format!("{n} customers at risk"), T, || async {
        let l = sb
            .client()
            .await
            .list_at_risk_customers(ListAtRiskCustomersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .customers;
        (l.len() >= n).then_some(l)
    })
    .await
}

async fn admin(sb: &Sandbox) -> AdminServiceClient<tonic::transport::Channel> {
    AdminServiceClient::connect(format!("http://{}", sb.running().grpc_addr))
        .await
        .unwrap()
}

/// What the core alone decides for `events` advanced to `until`.
fn core_alone(customer: &str, events: &[Event], until: Timestamp) -> CustomerState {
    let policy = Policy::default_policy();
    let mut s = CustomerState::default();
    for e in events {
        s.process(customer, e, &policy);
    }
    let (_, done) = s.advance_to(customer, &policy, until, 100_000);
    assert!(done);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsing_customer_drops_on_its_day_announced_ahead_and_a_restart_sweeps_it() {
    let last = date(2026, 3, 2);
    let (mut sb, clock) = stepped(last.plus_days(1));
    let events = buyer("lapsing", last, B_BUYER);
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    let start = wait_tier(&sb, "lapsing", "B").await;
    assert_eq!(start.lifecycle, api::Lifecycle::Active as i32);

    // When will time alone move it? The core says (B -> C about 200 days
    // after the last order, as orders leave the 12-month window).
    let mut probe = core_alone("lapsing", &events, last);
    let mut drop_day = 0;
    for d in 1..400 {
        let (c, _) = probe.advance_to("lapsing", &Policy::default_policy(), last.plus_days(d), 100);
        if !c.is_empty() {
            drop_day = d;
            break;
        }
    }
    assert!(drop_day > 30, "not before the window lets go");

    // Three weeks before: announced, listed, still B.
    clock.set(last.plus_days(drop_day - 21));
    let listed = wait_at_risk(&sb, 1).await;
    assert_eq!(listed[0].customer_id, "lapsing");
    assert_eq!(listed[0].current_tier, "B");
    assert_eq!(tier(&sb, "lapsing").await.tier, "B");
    // The day before: still B. On the day: the drop.
    clock.set(last.plus_days(drop_day - 1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(tier(&sb, "lapsing").await.tier, "B");
    clock.set(last.plus_days(drop_day));
    let dropped = wait_tier(&sb, "lapsing", &listed[0].falls_to).await;
    assert_eq!(
        dropped.lifecycle,
        api::Lifecycle::Lapsed as i32,
        "no order for 180 days"
    );

    // tierd is down for 250 days; on restart it sweeps what fell due.
    sb.stop().await;
    clock.set(last.plus_days(450));
    sb.start().await;
    let expected = core_alone("lapsing", &events, last.plus_days(450));
    let want = expected.effective.as_ref().unwrap().tier.clone();
    let after = wait_tier(&sb, "lapsing", &want).await;
    assert_eq!(after.lifecycle, api::Lifecycle::Lapsed as i32);
    assert_eq!(after.score, expected.effective.as_ref().unwrap().score);

    let (changes, notices) = published(&sb, expected.sequence as usize);
    let mine: Vec<&TierChanged> = changes
        .iter()
        .filter(|c| c.customer_id == "lapsing")
        .collect();
    // Exactly once each: gap-free sequences, no repeats.
    let seqs: Vec<u64> = mine.iter().map(|c| c.sequence).collect();
    assert_eq!(
        seqs,
        (1..=expected.sequence).collect::<Vec<_>>(),
        "{mine:?}"
    );
    let time: Vec<&&TierChanged> = mine
        .iter()
        .filter(|c| c.cause == ChangeCause::Time as i32)
        .collect();
    // The core alone makes the same time-driven decisions, and every
    // change after the last order is one of them.
    let mut alone = core_alone("lapsing", &events, last);
    let (drops, _) = alone.advance_to(
        "lapsing",
        &Policy::default_policy(),
        last.plus_days(450),
        10_000,
    );
    let published_drops: Vec<(String, u64)> = time
        .iter()
        .map(|c| (c.new_tier.clone(), c.sequence))
        .collect();
    let core_drops: Vec<(String, u64)> = drops
        .iter()
        .map(|c| (c.new_tier.clone(), c.sequence))
        .collect();
    assert_eq!(published_drops, core_drops);
    assert!(mine.iter().all(|c| c.cause == ChangeCause::Time as i32
        || c.changed_at.as_ref().map_or(0, |t| t.seconds) <= last.millis() / 1000));
    assert_eq!(
        time.last().unwrap().lifecycle,
        api::Lifecycle::Lapsed as i32
    );
    // The at-risk notice came first, for the first drop, with advice.
    let first = time[0];
    let notice = notices
        .iter()
        .find(|n| n.customer_id == "lapsing" && n.falls_to == first.new_tier)
        .expect("a TierAtRisk before the first drop");
    assert_eq!(notice.current_tier, "B");
    assert_eq!(notice.on, first.changed_at);
    assert!(!notice.keep.is_empty());
    assert!(notice.summary.contains("to stay B"), "{}", notice.summary);
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.customer_id == "lapsing" && n.on == first.changed_at)
            .count(),
        1,
        "announced once"
    );
    sb.stop().await;
}

/// The order a customer placed at 23:59:50 on the evening its tier was
/// due to drop (at the next day's start, as orders leave the window)
/// reaches tierd at 00:00:10, as an ERP that publishes a little late
/// sends it. With the sweep grace (60 s here, tierd's default) the
/// midnight decision waits until 00:01, the order is folded first, and
/// the customer keeps its tier: what a replay of the log decides, with
/// no drop and rise back published. Swept right up to the clock (no
/// grace), tierd would have dropped it at 00:00:00 on the figures
/// without the order and raised it again on the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_just_before_a_due_drop_that_arrives_just_after_it_is_folded_first() {
    let policy = Policy::default_policy();
    let last = date(2026, 3, 2);
    let events = buyer("edge", last, B_BUYER);
    // The drop time alone makes, and its instant (a business day's start).
    let mut probe = core_alone("edge", &events, last);
    let drop = (1..400)
        .find_map(|d| {
            let (c, _) = probe.advance_to("edge", &policy, last.plus_days(d), 100);
            c.into_iter().next()
        })
        .expect("the buyer lapses");
    assert_eq!(
        (drop.old_tier.as_deref(), drop.cause),
        (Some("B"), Cause::Time)
    );
    let due = drop.changed_at;
    let at = |ms: i64| Timestamp::from_millis(due.millis() + ms);
    let late = order("edge", 1_000, at(-10_000), B_BUYER / 4);
    let mut all = events.clone();
    all.push(late.clone());
    // The replay: the order, then the midnight decision; it keeps B.
    let replay = core_alone("edge", &all, at(60_000));
    assert_eq!(replay.effective.as_ref().unwrap().tier, "B");
    // Swept before the order came (what no grace does), it drops and
    // comes back: more changes than the replay.
    let mut swept_first = core_alone("edge", &events, due);
    assert_eq!(swept_first.effective.as_ref().unwrap().tier, drop.new_tier);
    swept_first.process("edge", &late, &policy);
    assert!(swept_first.sequence > replay.sequence);

    let (mut sb, clock) = stepped(last.plus_days(1));
    sb.config.sweep_grace_ms = 60_000;
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    wait_tier(&sb, "edge", "B").await;

    // 00:00:10: the drop is due, the sweep waits for the grace; then the
    // order comes.
    clock.set(at(10_000));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(tier(&sb, "edge").await.tier, "B");
    sb.publish(
        sb.orders_topic(),
        std::slice::from_ref(&late),
        Wire::Protobuf,
    )
    .await;
    sb.wait_consumed(T).await;
    // 00:02: swept to 00:01, past the due instant.
    clock.set(at(120_000));
    sb.wait_consumed(T).await;

    let got = tier(&sb, "edge").await;
    let want = replay.effective.as_ref().unwrap();
    assert_eq!(got.tier, want.tier.as_str());
    assert_eq!(got.score, want.score);
    assert_eq!(
        got.since.map(|t| t.seconds),
        Some(want.since.millis() / 1000)
    );
    let (changes, _) = published(&sb, replay.sequence as usize);
    let mine: Vec<(u64, String, i32)> = changes
        .iter()
        .filter(|c| c.customer_id == "edge")
        .map(|c| (c.sequence, c.new_tier.clone(), c.cause))
        .collect();
    assert_eq!(mine.len() as u64, replay.sequence, "{mine:?}");
    assert!(
        mine.iter()
            .all(|(_, _, cause)| *cause != ChangeCause::Time as i32),
        "no drop at midnight: {mine:?}"
    );
    sb.stop().await;
}

/// A sweep takes slice after slice without waiting for the batch timer:
/// a slice waiting to be taken is work in hand, sealed as soon as the
/// committer is free. tierd starts 250 days after 600 customers' last
/// orders: once caught up it sweeps every one of them (each dropped about
/// 204 days after its last order, see the first test) in slices of at
/// most 100, with a 20 s batch wait. With the timer between slices that
/// takes over two minutes, so the wait below fails (checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_takes_slice_after_slice_without_waiting_for_the_batch_timer() {
    let last = date(2026, 3, 2);
    let until = last.plus_days(250);
    let (mut sb, _clock) = stepped(until);
    sb.config.batch_max_wait_ms = 20_000;
    sb.config.engine_slice = 100;
    let ids: Vec<String> = (0..600).map(|i| format!("sweep-{i}")).collect();
    let mut events: Vec<Event> = ids.iter().flat_map(|id| buyer(id, last, B_BUYER)).collect();
    events.sort_by_key(|e| e.occurred_at);
    let mine: Vec<Event> = events
        .iter()
        .filter(|e| e.customer_id == ids[0])
        .cloned()
        .collect();
    let want = core_alone(&ids[0], &mine, until)
        .effective
        .map(|e| e.tier)
        .unwrap();
    assert_eq!(
        core_alone(&ids[0], &mine, last).effective.unwrap().tier,
        "B"
    );
    assert_ne!(want, "B");
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    wait_for("all 600 swept into their new tier", T, || async {
        let tiers = sb
            .client()
            .await
            .batch_get_tiers(BatchGetTiersRequest {
                customer_ids: ids.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .tiers;
        (tiers.len() == ids.len() && tiers.iter().all(|t| t.tier == want)).then_some(())
    })
    .await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_risk_customers_are_listed_soonest_first() {
    let last = date(2026, 3, 2);
    let (mut sb, clock) = stepped(last.plus_days(1));
    // Their last orders 20 days apart; "small" is in the lowest tier,
    // which nothing can fall from.
    let mut events = buyer("soon", last.plus_days(-20), B_BUYER);
    events.extend(buyer("later", last, B_BUYER));
    events.extend(buyer("small", last, B_BUYER / 100));
    events.sort_by_key(|e| e.occurred_at);
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    // 180 days on, "soon" and "later" are both within 30 days of a drop
    // (about 204 days after their last orders).
    clock.set(last.plus_days(180));
    let listed = wait_at_risk(&sb, 2).await;
    let ids: Vec<&str> = listed.iter().map(|r| r.customer_id.as_str()).collect();
    assert_eq!(ids, ["soon", "later"], "{listed:?}");
    let secs = |r: &TierAtRisk| r.on.as_ref().map_or(0, |t| t.seconds);
    assert!(secs(&listed[0]) <= secs(&listed[1]));
    let only_c = sb
        .client()
        .await
        .list_at_risk_customers(ListAtRiskCustomersRequest {
            tier: "Z".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(only_c.code(), Code::InvalidArgument);
    assert!(only_c.message().contains("tier"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_win_expire_and_are_in_the_history() {
    let t0 = date(2026, 3, 2);
    let (mut sb, clock) = stepped(t0.plus_days(1));
    sb.publish(
        sb.orders_topic(),
        &buyer("acct", t0, B_BUYER),
        Wire::Protobuf,
    )
    .await;
    sb.start().await;
    sb.wait_consumed(T).await;
    wait_tier(&sb, "acct", "B").await;
    let mut admin = admin(&sb).await;
    let ts = |t: Timestamp| tier_wire::time::to_proto(t);

    // Pin for ten days: answered after the commit, so GetTier agrees at once.
    let resp = admin
        .set_override(SetOverrideRequest {
            customer_id: "acct".into(),
            tier: "A".into(),
            mode: OverrideMode::Pin as i32,
            reason: "strategic account".into(),
            author: "li.wei".into(),
            expires_at: Some(ts(t0.plus_days(11))),
        })
        .await
        .unwrap()
        .into_inner();
    let t = resp.tier.unwrap();
    assert_eq!((t.tier.as_str(), t.computed_tier.as_str()), ("A", "B"));
    assert!(t.overridden);
    let change = resp.change.unwrap();
    assert_eq!(change.cause, ChangeCause::Override as i32);
    assert!(change.overridden);
    let now = tier(&sb, "acct").await;
    assert_eq!(now.tier, "A");
    assert_eq!(now.r#override.unwrap().author, "li.wei");

    // A ceiling below the computed tier wins; a floor below it does not.
    for (mode, tier_name, effective) in [
        (OverrideMode::Ceiling, "C", "C"),
        (OverrideMode::Floor, "C", "B"),
    ] {
        let r = admin
            .set_override(SetOverrideRequest {
                customer_id: "acct".into(),
                tier: tier_name.into(),
                mode: mode as i32,
                reason: "review".into(),
                author: "li.wei".into(),
                expires_at: Some(ts(t0.plus_days(11))),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.tier.unwrap().tier, effective, "{mode:?}");
    }
    // The floor expires on its day: swept like any due time.
    clock.set(t0.plus_days(12));
    wait_for("the override to expire", T, || async {
        let t = tier(&sb, "acct").await;
        t.r#override.is_none().then_some(())
    })
    .await;
    let history = sb
        .client()
        .await
        .get_override_history(GetOverrideHistoryRequest {
            customer_id: "acct".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["set", "set", "set", "expired"]);

    // Clear: a pin, then cleared with a reason.
    admin
        .set_override(SetOverrideRequest {
            customer_id: "acct".into(),
            tier: "D".into(),
            mode: OverrideMode::Pin as i32,
            reason: "credit hold".into(),
            author: "finance".into(),
            expires_at: None,
        })
        .await
        .unwrap();
    let cleared = admin
        .clear_override(ClearOverrideRequest {
            customer_id: "acct".into(),
            reason: "paid up".into(),
            author: "finance".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.tier.unwrap().tier, "B");

    // Refusals name the field and change nothing.
    let bad = |mode: i32, tier: &str, reason: &str| SetOverrideRequest {
        customer_id: "acct".into(),
        tier: tier.into(),
        mode,
        reason: reason.into(),
        author: "x".into(),
        expires_at: None,
    };
    for (req, field) in [
        (bad(0, "A", "r"), "mode"),
        (bad(OverrideMode::Pin as i32, "Z", "r"), "tier"),
        (bad(OverrideMode::Pin as i32, "A", " "), "reason"),
        // Kept in the override history, written with the customer's state.
        (
            bad(OverrideMode::Pin as i32, "A", &"r".repeat(2_001)),
            "reason",
        ),
    ] {
        let e = admin.set_override(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    let e = admin
        .clear_override(ClearOverrideRequest {
            customer_id: "acct".into(),
            reason: "again".into(),
            author: "finance".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(tier(&sb, "acct").await.tier, "B");
    sb.stop().await;
}

/// The default policy with every band raised by `by` points.
fn stricter(version: &str, by: f64) -> String {
    stricter_bands(tier_core::policy::DEFAULT_POLICY_TOML, version, by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_predicts_exactly_what_applying_moves_while_get_tier_keeps_answering() {
    const N: usize = 100_000;
    // Orders 60 days back: past the 30-day hold, so downgrades are free.
    let at = date(2026, 3, 2);
    let (mut sb, _clock) = stepped(at.plus_days(60));
    // One order each, amounts spread so customers sit across the bands.
    let events: Vec<Event> = (0..N)
        .map(|i| {
            let amount = 5_000_000 + (i as i64 % 1000) * 600_000;
            order(&format!("c{i:06}"), 1, at, amount)
        })
        .collect();
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(Duration::from_secs(180)).await;
    let mut client = sb.client().await;
    let mut admin = admin(&sb).await;
    let before = client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.version, "default-2027.01");
    assert_eq!(before.hash.len(), 64);

    let text = stricter("strict-2027.01", 6.0);
    let dry = client
        .dry_run_policy(DryRunPolicyRequest {
            policy_text: text.clone(),
            sample: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(dry.movers > 0);
    assert_eq!(dry.sample.len(), 5);
    assert_eq!(
        dry.matrix.iter().map(|c| c.customers).sum::<u64>(),
        N as u64
    );
    let unchanged = client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        unchanged.version, "default-2027.01",
        "a dry run changes nothing"
    );

    // A bad policy is refused with line and field.
    let e = admin
        .apply_policy(ApplyPolicyRequest {
            policy_text: text.replace("min_score = ", "min_score = -"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("line"), "{}", e.message());

    let applied = admin
        .apply_policy(ApplyPolicyRequest {
            policy_text: text.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.version, "strict-2027.01");
    // GetTier answers throughout the background rescore.
    let mut answered_while_rescoring = 0;
    loop {
        let status = client
            .get_policy_status(GetPolicyStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        let t = tier(&sb, "c000007").await;
        assert!(!t.tier.is_empty());
        if !status.rescoring {
            assert_eq!(status.rescored, N as u64);
            break;
        }
        answered_while_rescoring += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(applied.rescoring || answered_while_rescoring > 0);

    // Exactly the matrix's customers moved, with cause POLICY (counted by
    // tierd's own metric; only this test changes a policy).
    let metrics = tierd_tests::http_get(sb.running().metrics_addr, "/metrics").await;
    let label = |line: &str, key: &str| -> String {
        let from = line.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
        line[from..].split('"').next().unwrap().to_owned()
    };
    let mut moved = std::collections::BTreeMap::<(String, String), u64>::new();
    for line in metrics.lines() {
        if line.starts_with("tierd_tier_changes_total{") && line.contains("cause=\"policy\"") {
            let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            moved.insert((label(line, "from"), label(line, "to")), n);
        }
    }
    let expected: std::collections::BTreeMap<(String, String), u64> = dry
        .matrix
        .iter()
        .filter(|c| c.from_tier != c.to_tier)
        .map(|c| ((c.from_tier.clone(), c.to_tier.clone()), c.customers))
        .collect();
    assert_eq!(moved, expected);
    let info = client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.text, text);
    // Every customer answers under the new policy, the moved and the
    // confirmed (not rewritten) alike.
    let sample: Vec<String> = (0..N).step_by(997).map(|i| format!("c{i:06}")).collect();
    let mut shown = Vec::new();
    for id in &sample {
        let t = tier(&sb, id).await;
        assert_eq!(t.policy_version, "strict-2027.01", "{id}");
        shown.push(t);
    }

    // The applied policy survives a restart (the policy file is unchanged),
    // with nothing left to rescore and every answer as before: the
    // customers the rescore confirmed load confirmed from the store.
    sb.stop().await;
    sb.start().await;
    let mut client = sb.client().await;
    let info = client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.version, "strict-2027.01");
    let status = client
        .get_policy_status(GetPolicyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        !status.rescoring && status.total == 0,
        "nothing to rescore again: {status:?}"
    );
    for (id, before) in sample.iter().zip(&shown) {
        assert_eq!(&tier(&sb, id).await, before, "{id} after the restart");
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_policy_file() {
    use tierd_tests::fault::process::TierdSetup;
    let work = tempfile::tempdir().unwrap();
    let prefix = tierd_tests::fault::unique("sighup");
    let topics: Vec<String> = ["orders", "payments"]
        .iter()
        .map(|t| format!("{prefix}.{t}"))
        .collect();
    let dlq = format!("{prefix}.dlq");
    let changes = format!("{prefix}.tier-changes");
    let mut all: Vec<(&str, i32)> = topics.iter().map(|t| (t.as_str(), 2)).collect();
    all.push((&dlq, 2));
    all.push((&changes, 2));
    let broker =
        tierd_tests::TestBroker::spawn(Path::new(env!("CARGO_BIN_EXE_tierd-testbroker")), 1, &all)
            .unwrap();
    let policy_file = work.path().join("policy.toml");
    std::fs::write(&policy_file, tier_core::policy::DEFAULT_POLICY_TOML).unwrap();
    let setup = TierdSetup {
        exe: tierd_tests::fault::process::tierd_binary(),
        brokers: broker.bootstrap_servers().to_owned(),
        data_dir: work.path().join("data"),
        work_dir: work.path().to_owned(),
        topics,
        dlq_topic: dlq,
        tier_changes_topic: changes,
        group_id: format!("{prefix}.g"),
        group_instance_id: format!("{prefix}.i"),
        session_timeout_ms: 6_000,
        frozen_now_ms: date(2026, 3, 2).millis(),
        extra_args: vec![
            "--policy".into(),
            policy_file.to_string_lossy().into_owned(),
        ],
    };
    let mut child = setup.spawn(1).unwrap();
    let ready = child.wait_ready(T).await.unwrap();
    let mut client = tier_proto::api::tier_service_client::TierServiceClient::connect(format!(
        "http://{}",
        ready.grpc
    ))
    .await
    .unwrap();
    let version = |c: &mut tier_proto::api::tier_service_client::TierServiceClient<
        tonic::transport::Channel,
    >| {
        let mut c = c.clone();
        async move {
            c.get_policy(GetPolicyRequest {})
                .await
                .unwrap()
                .into_inner()
                .version
        }
    };
    assert_eq!(version(&mut client).await, "default-2027.01");
    // A broken file is refused; the policy in force stays.
    std::fs::write(&policy_file, "version = ").unwrap();
    let pid = child.pid().to_string();
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(version(&mut client).await, "default-2027.01");
    assert!(child.exited().is_none(), "a bad file does not stop tierd");
    std::fs::write(&policy_file, stricter("hup-2027.02", 2.0)).unwrap();
    hup();
    wait_for("the reloaded policy", T, || {
        let mut c = client.clone();
        async move {
            let v = c
                .get_policy(GetPolicyRequest {})
                .await
                .ok()?
                .into_inner()
                .version;
            (v == "hup-2027.02").then_some(())
        }
    })
    .await;
    let log = std::fs::read_to_string(setup.log_path()).unwrap();
    assert!(
        log.contains("policy NOT reloaded"),
        "the bad file is logged"
    );

    // A policy applied over gRPC after the reload survives a restart with
    // the file unchanged: it is recorded against the file the reload read,
    // not the one read at start (which restored the reloaded file's policy).
    let mut admin = AdminServiceClient::connect(format!("http://{}", ready.grpc))
        .await
        .unwrap();
    admin
        .apply_policy(ApplyPolicyRequest {
            policy_text: stricter("grpc-2027.03", 3.0),
        })
        .await
        .unwrap();
    wait_for("the applied policy", T, || {
        let mut c = client.clone();
        async move {
            let v = c
                .get_policy(GetPolicyRequest {})
                .await
                .ok()?
                .into_inner()
                .version;
            (v == "grpc-2027.03").then_some(())
        }
    })
    .await;
    child.sigterm(T).await.unwrap();
    let mut child = setup.spawn(2).unwrap();
    let ready = child.wait_ready(T).await.unwrap();
    let mut client = tier_proto::api::tier_service_client::TierServiceClient::connect(format!(
        "http://{}",
        ready.grpc
    ))
    .await
    .unwrap();
    assert_eq!(version(&mut client).await, "grpc-2027.03");
    child.sigkill().unwrap();
}

/// The hour a complaint's deadline passes: listed overdue, announced once
/// on the tier-changes topic, counted for the tier at its opening; the
/// reports see the account manager from the profile; the tier on a past
/// date comes from the stored history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_goes_overdue_on_its_hour_once_and_the_reports_see_it() {
    use tier_core::event::{EventKind, ProfileUpdate};
    use tier_core::sim::scenario::complaint;
    use tier_proto::api::{
        GetAccountManagerBalanceRequest, GetTierAsOfRequest, ListComplaintQueueRequest,
        ListOverdueComplaintsRequest,
    };

    const HOUR: i64 = 3_600_000;
    let at_hour = |t: Timestamp, h: i64| Timestamp::from_millis(t.millis() + h * HOUR);
    let last = date(2026, 3, 2);
    let opened = at_hour(last, 9);
    let (mut sb, clock) = stepped(at_hour(opened, 1));
    let mut events = buyer("kim", last, B_BUYER);
    events.push(Event {
        event_id: "kim-profile".into(),
        customer_id: "kim".into(),
        occurred_at: last,
        source: "crm".into(),
        kind: EventKind::ProfileUpdated(ProfileUpdate {
            account_manager: Some("mei".into()),
            ..ProfileUpdate::default()
        }),
    });
    events.push(complaint("kim", 1, opened, tier_core::Severity::High));
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    wait_tier(&sb, "kim", "B").await;
    let policy = Policy::default_policy();
    let b = policy.tier_index("B").unwrap();
    let sla = i64::from(policy.tiers()[b].complaint_sla_hours);
    async fn overdue(sb: &Sandbox) -> api::ListOverdueComplaintsResponse {
        sb.client()
            .await
            .list_overdue_complaints(ListOverdueComplaintsRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    // An hour before the deadline: queued, not overdue.
    clock.set(at_hour(opened, sla - 1));
    sb.running()
        .swept_to(at_hour(opened, sla - 1), T)
        .await
        .unwrap();
    assert_eq!(overdue(&sb).await.total, 0);
    let queue = sb
        .client()
        .await
        .list_complaint_queue(ListComplaintQueueRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.total, 1);
    assert_eq!(
        queue.complaints[0].deadline,
        Some(tier_wire::time::to_proto(at_hour(opened, sla)))
    );
    assert_eq!(queue.complaints[0].deadline_tier, "B");

    // On the hour: overdue, announced once.
    clock.set(at_hour(opened, sla));
    sb.running()
        .swept_to(at_hour(opened, sla), T)
        .await
        .unwrap();
    let listed = overdue(&sb).await;
    assert_eq!(listed.total, 1);
    assert!(listed.complaints[0].overdue);
    clock.set(at_hour(opened, sla + 30));
    sb.running()
        .swept_to(at_hour(opened, sla + 30), T)
        .await
        .unwrap();
    let records = sb.read_topic(&sb.config.tier_changes_topic, 2, Duration::from_secs(30));
    let announced: Vec<api::ComplaintOverdue> = records
        .iter()
        .filter(|r| r.header("tierd-type") == Some("ComplaintOverdue"))
        .map(|r| api::ComplaintOverdue::decode(r.payload.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        (
            announced[0].complaint_id.as_str(),
            announced[0].tier.as_str()
        ),
        ("kim-complaint1", "B")
    );
    let metrics = tierd_tests::http_get(sb.running().metrics_addr, "/metrics").await;
    assert!(
        metrics.contains("tierd_complaints_overdue{tier=\"B\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("complaints_overdue"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The default policy's secondary gradings are reported beside the
    // tier: the population ones and not the matrix (the profile has no
    // purchase potential). A population of one sits where the rounding
    // rule puts position 0 of 1: the 20% cut rounds to 0 customers, the
    // 50% cut to 1 (half up), so B; each RFM quintile likewise gives 3.
    // The cut points are recomputed on the grading's cadence (10 s): one
    // cut before kim's orders were in (records fall into batches as the
    // commits allow) holds until the next.
    let names = wait_for("kim's population gradings", T, || async {
        let graded = tier(&sb, "kim").await.gradings;
        let names: Vec<(String, String)> = graded
            .iter()
            .map(|g| (g.grading.clone(), g.class.clone()))
            .collect();
        let want = [("abc_revenue", "B"), ("rfm", "333")];
        let same = names.len() == want.len()
            && names
                .iter()
                .zip(want)
                .all(|((g, c), (wg, wc))| g == wg && c == wc);
        same.then_some(names)
    })
    .await;
    assert_eq!(names.len(), 2);

    // The reports see the profile's account manager.
    let balance = sb
        .client()
        .await
        .get_account_manager_balance(GetAccountManagerBalanceRequest {})
        .await
        .unwrap()
        .into_inner();
    let mei: Vec<_> = balance
        .managers
        .iter()
        .filter(|m| m.account_manager == "mei")
        .collect();
    assert_eq!(mei.len(), 1, "{balance:?}");

    // The tier on a past date: none before the first order, B since.
    let as_of = |at: Timestamp| GetTierAsOfRequest {
        customer_id: "kim".into(),
        at: Some(tier_wire::time::to_proto(at)),
    };
    let mut client = sb.client().await;
    let then = client
        .get_tier_as_of(as_of(last.plus_days(-400)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((then.known, then.tier.as_str()), (true, ""));
    let now = client
        .get_tier_as_of(as_of(opened))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((now.known, now.tier.as_str()), (true, "B"));
    sb.stop().await;
}

/// What account managers know that events don't, end to end under a
/// policy with assessments: a `CustomerAssessed` event and the admin RPC
/// both set one (and move the tier), an off-scale one is dead-lettered
/// with the field named and refused by the RPC with the field named, the
/// history keeps both, and the assessments about to expire are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assessments_by_event_and_by_rpc_move_the_tier_and_are_listed_before_they_expire() {
    use tier_core::event::EventKind;
    use tier_proto::api::{
        ExplainTierRequest, GetAssessmentHistoryRequest, ListAssessmentsDueRequest,
        SetAssessmentRequest,
    };

    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/tier-core/tests/fixtures/valid_assessments.toml");
    let policy = Policy::from_toml_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    let day = date(2026, 3, 2);
    let (mut sb, _clock) = stepped(day);
    sb.config.policy = Some(policy_path);
    let assessed = |n: usize, indicator: &str, value: i64| Event {
        event_id: format!("ann-assess-{n}"),
        customer_id: "ann".into(),
        occurred_at: day.plus_days(-1),
        source: "crm".into(),
        kind: EventKind::CustomerAssessed {
            indicator: indicator.into(),
            value,
            assessed_by: "li.wei".into(),
            note: "met the board".into(),
        },
    };
    let mut events = buyer("ann", day.plus_days(-2), 20_000_000);
    events.push(assessed(1, "potential", 5));
    events.push(assessed(2, "potential", 9)); // off the 1-5 scale
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;

    // The bad one is parked with the field named; the good one counts.
    let dead = sb.read_topic(&sb.config.dlq_topic, 1, T);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("tierd-field"),
        Some("customer_assessed.value")
    );
    let mut client = sb.client().await;
    let explained = client
        .explain_tier(ExplainTierRequest {
            customer_id: "ann".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let potential = explained
        .assessments
        .iter()
        .find(|a| a.name == "potential")
        .expect("the declared assessment is explained");
    assert_eq!(
        (
            potential.value,
            potential.label.as_str(),
            potential.assessed_by.as_str()
        ),
        (Some(5.0), "exceptional", "li.wei")
    );
    let before = tier(&sb, "ann").await;

    // The RPC: refused off scale with the field named, then accepted; the
    // answer comes after the commit and the score moves.
    let mut admin = admin(&sb).await;
    let err = admin
        .set_assessment(SetAssessmentRequest {
            customer_id: "ann".into(),
            indicator: "potential".into(),
            value: 0,
            assessed_by: "li.wei".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("value"), "{}", err.message());
    let err = admin
        .set_assessment(SetAssessmentRequest {
            customer_id: "ann".into(),
            indicator: "charisma".into(),
            value: 3,
            assessed_by: "li.wei".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("indicator"), "{}", err.message());
    let answer = admin
        .set_assessment(SetAssessmentRequest {
            customer_id: "ann".into(),
            indicator: "potential".into(),
            value: 1,
            assessed_by: "zhang.min".into(),
            note: "lost the tender".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let after = answer.tier.unwrap();
    assert!(
        after.score < before.score,
        "{} then {}",
        before.score,
        after.score
    );

    // The history keeps both; the due list has the one in force.
    let history = client
        .get_assessment_history(GetAssessmentHistoryRequest {
            customer_id: "ann".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let authors: Vec<&str> = history
        .entries
        .iter()
        .map(|e| e.assessed_by.as_str())
        .collect();
    assert_eq!(authors, ["li.wei", "zhang.min"]);
    let spec = policy.assessments().find("potential").unwrap().1;
    let due = client
        .list_assessments_due(ListAssessmentsDueRequest {
            before: Some(tier_wire::time::to_proto(
                day.plus_days(i64::from(spec.valid_days) + 2),
            )),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(due.total, 1, "{due:?}");
    assert_eq!(
        due.due[0].assessment.as_ref().unwrap().assessed_by,
        "zhang.min"
    );
    let none = client
        .list_assessments_due(ListAssessmentsDueRequest {
            before: Some(tier_wire::time::to_proto(day)),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.total, 0);
    sb.stop().await;
}

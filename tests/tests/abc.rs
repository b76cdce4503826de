//! An `abc` policy end to end: tierd ranks the population it folds, cuts
//! on its cadence, publishes the customers the cut moves with cause RANK on
//! the tier-changes topic, and GetTier and ExplainTier answer with the cut
//! points in force.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use prost::Message as _;
use tier_core::{Event, EventKind, Money, Timestamp};
use tier_proto::api::{self, ChangeCause, ExplainTierRequest, GetTierRequest};
use tierd_tests::{Sandbox, Wire, wait_for};

const T: Duration = Duration::from_secs(60);

const POLICY: &str = r#"
version = "abc-e2e-1"
currency = "CNY"
window_months = 12

[hysteresis]
min_days_in_tier = 0

[method]
kind = "abc"
by = "order_amount_12m"
shares = [20, 30, 50]
recut_seconds = 1

[[tiers]]
name = "A"
priority = 1
complaint_sla_hours = 72
visit_every_days = 30
payment_terms_days = 60

[[tiers]]
name = "B"
priority = 2
complaint_sla_hours = 96
visit_every_days = 90
payment_terms_days = 45

[[tiers]]
name = "C"
priority = 3
complaint_sla_hours = 120
visit_every_days = 180
payment_terms_days = 30
"#;

fn order(customer: &str, amount: i64) -> Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Event {
        event_id: format!("evt-{customer}"),
        customer_id: customer.into(),
        occurred_at: Timestamp::from_millis(now - 3_600_000),
        source: "test".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("ord-{customer}"),
            amount: Money(amount),
            cost: None,
        },
    }
}

/// c4 (the fifth of ten) is C, explained by the cut points in force.
async fn c4_is_explained_by_the_cut(
    client: &mut api::tier_service_client::TierServiceClient<tonic::transport::Channel>,
    when: &str,
) {
    let e = client
        .explain_tier(ExplainTierRequest {
            customer_id: "c4".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.tier, "C", "{when}");
    assert!(
        e.band.starts_with("bottom 50% by order_amount_12m"),
        "{when}: {}",
        e.band
    );
    assert!(e.gap.contains("to reach B"), "{when}: {}", e.gap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_population_sets_the_tiers() {
    let mut sb = Sandbox::new();
    let policy = sb.dir.path().join("abc.toml");
    std::fs::write(&policy, POLICY).unwrap();
    sb.config.policy = Some(policy);
    sb.start().await;

    let events: Vec<Event> = (0..10)
        .map(|i| order(&format!("c{i}"), 10_000_000 * (i + 1)))
        .collect();
    sb.publish(sb.orders_topic(), &events, Wire::Protobuf).await;

    let mut client = sb.client().await;
    let expected = ["C", "C", "C", "C", "C", "B", "B", "B", "A", "A"];
    let tiers = wait_for("the cut to grade everyone", T, || {
        let mut client = client.clone();
        async move {
            let mut tiers = Vec::new();
            for i in 0..10 {
                let t = client
                    .get_tier(GetTierRequest {
                        customer_id: format!("c{i}"),
                    })
                    .await
                    .ok()?
                    .into_inner();
                tiers.push(t.tier);
            }
            (tiers == expected).then_some(tiers)
        }
    })
    .await;
    assert_eq!(tiers, expected);

    c4_is_explained_by_the_cut(&mut client, "after the cut").await;

    // Every customer's last published change is to the tier the full
    // population's cut gives, and the cut moved customers with cause RANK.
    // Which moves were RANK depends on how the records fell into batches:
    // a customer folded after a cut over part of the population is graded
    // by it at once (cause EVENT), one folded before is moved by the next
    // cut (RANK); the final cut needs every customer folded first, so
    // some customer was graded under another and moved by it.
    let records = sb.read_topic(&sb.config.tier_changes_topic, 10, T);
    let changes: Vec<api::TierChanged> = records
        .iter()
        .filter(|r| r.is_tier_changed())
        .map(|r| api::TierChanged::decode(r.payload.as_deref().unwrap()).unwrap())
        .collect();
    for (i, want) in expected.iter().enumerate() {
        let id = format!("c{i}");
        let last = changes
            .iter()
            .filter(|m| m.customer_id == id)
            .max_by_key(|m| m.sequence)
            .unwrap_or_else(|| panic!("no change published for {id}"));
        assert_eq!(&last.new_tier, want, "{id}'s last published change");
    }
    assert!(
        changes.iter().any(|m| m.cause == ChangeCause::Rank as i32),
        "no change with cause RANK: {changes:?}"
    );
    sb.stop().await;

    // The cut points in force are in the data dir, for the next start.
    use tier_store::Store as _;
    let store =
        tier_store::SledStore::open(&sb.config.data_dir, tier_store::StoreOptions::default())
            .unwrap();
    let stored = store.meta(tier_engine::cuts::META_CUTS).unwrap().unwrap();
    let cuts = tier_engine::cuts::decode(&stored).unwrap();
    assert_eq!(cuts.rank, [90_000_000.0, 60_000_000.0]);
    drop(store);

    // Restarted on a quiet stream, tierd explains by the cut points it
    // restored, from the first answer on and after recuts that move
    // nobody (it explained "not ranked yet" until a cut point moved).
    sb.start().await;
    let mut client = sb.client().await;
    for _ in 0..2 {
        c4_is_explained_by_the_cut(&mut client, "after a restart").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    sb.stop().await;
}

//! tierd end to end, in-process, against a Kafka-protocol broker: events in
//! every wire format, every RPC, tier changes out, dead letters, restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt as _;
use prost::Message as _;
use tier_core::{Event, EventKind, Money, Timestamp};
use tier_proto::api::{
    self, BatchGetTiersRequest, ExplainTierRequest, GetTierRequest, RankByPriorityRequest,
    WatchTierChangesRequest, WorkItem,
};
use tierd_tests::{Sandbox, Wire, http_get, wait_for};

const T: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `n` large, profitable orders: enough for the default policy's tier A.
fn big_orders(customer: &str, n: usize, prefix: &str) -> Vec<Event> {
    let at = Timestamp::from_millis(now_ms() - 3_600_000);
    (0..n)
        .map(|i| Event {
            event_id: format!("{prefix}-{customer}-{i}"),
            customer_id: customer.into(),
            occurred_at: at,
            source: "test".into(),
            kind: EventKind::OrderPlaced {
                order_id: format!("{prefix}-o-{i}"),
                amount: Money(100_000_000),
                cost: Some(Money(60_000_000)),
            },
        })
        .collect()
}

fn small_order(customer: &str, id: &str) -> Event {
    Event {
        event_id: format!("evt-{id}"),
        customer_id: customer.into(),
        occurred_at: Timestamp::from_millis(now_ms() - 3_600_000),
        source: "test".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("ord-{id}"),
            amount: Money(10_000),
            cost: Some(Money(9_000)),
        },
    }
}

async fn tier_of(sb: &Sandbox, customer: &str) -> Option<api::CustomerTier> {
    let mut c = sb.client().await;
    c.get_tier(GetTierRequest {
        customer_id: customer.into(),
    })
    .await
    .ok()
    .map(tonic::Response::into_inner)
}

async fn indicator(sb: &Sandbox, customer: &str, name: &str) -> Option<f64> {
    sb.indicator(customer, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_in_every_rpc_out() {
    let mut sb = Sandbox::new();
    sb.start().await;
    let mut client = sb.client().await;
    let mut watch = client
        .watch_tier_changes(WatchTierChangesRequest {})
        .await
        .unwrap()
        .into_inner();

    // Protobuf, JSON and Confluent-framed events, on different topics.
    sb.publish(sb.topic(0), &big_orders("big", 8, "p"), Wire::Protobuf)
        .await;
    sb.publish(sb.topic(0), &[small_order("small", "s1")], Wire::Json)
        .await;
    sb.publish(sb.topic(3), &[small_order("conf", "c1")], Wire::Confluent)
        .await;

    let big = wait_for("big customer in tier A", T, || async {
        tier_of(&sb, "big").await.filter(|t| t.tier == "A")
    })
    .await;
    assert!(big.known);
    assert_eq!(big.priority, 1);
    assert!(big.score >= 80.0, "{}", big.score);
    assert_eq!(big.policy_version, "default-2027.01");
    assert_eq!(big.entitlements.as_ref().unwrap().complaint_sla_hours, 72);
    let small = wait_for("small customer", T, || tier_of(&sb, "small")).await;
    assert_eq!(small.tier, "D");
    wait_for("confluent-framed customer", T, || tier_of(&sb, "conf")).await;

    // NOT_FOUND and INVALID_ARGUMENT naming the field.
    let err = client
        .get_tier(GetTierRequest {
            customer_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client
        .get_tier(GetTierRequest {
            customer_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("customer_id"), "{}", err.message());

    // Batch: request order, unknown customers in the lowest tier.
    let batch = client
        .batch_get_tiers(BatchGetTiersRequest {
            customer_ids: vec!["small".into(), "nobody".into(), "big".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .tiers;
    let got: Vec<(&str, &str, bool)> = batch
        .iter()
        .map(|t| (t.customer_id.as_str(), t.tier.as_str(), t.known))
        .collect();
    assert_eq!(
        got,
        [
            ("small", "D", true),
            ("nobody", "D", false),
            ("big", "A", true)
        ]
    );

    // Rank: by priority, stable within a priority.
    let items = [
        ("w1", "small"),
        ("w2", "big"),
        ("w3", "nobody"),
        ("w4", "big"),
    ]
    .iter()
    .map(|(id, c)| WorkItem {
        id: (*id).into(),
        customer_id: (*c).into(),
    })
    .collect();
    let ranked = client
        .rank_by_priority(RankByPriorityRequest { items })
        .await
        .unwrap()
        .into_inner()
        .items;
    let order: Vec<&str> = ranked.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(order, ["w2", "w4", "w1", "w3"]);

    // Explain: indicator values and contributions that add up.
    let ex = client
        .explain_tier(ExplainTierRequest {
            customer_id: "big".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ex.tier, "A");
    let margin = ex
        .indicators
        .iter()
        .find(|i| i.name == "margin_12m")
        .unwrap();
    assert_eq!(margin.value, 320_000_000.0);
    let total: f64 = ex.indicators.iter().map(|i| i.contribution).sum();
    assert!((total - ex.score).abs() < 1e-6, "{total} vs {}", ex.score);

    // Watch saw big's change to A.
    let change = tokio::time::timeout(T, async {
        loop {
            let c = watch.next().await.unwrap().unwrap();
            if c.customer_id == "big" && c.new_tier == "A" {
                return c;
            }
        }
    })
    .await
    .expect("watch delivers big's change");
    assert_eq!(change.cause, api::ChangeCause::Event as i32);
    assert!(!change.reasons.is_empty());

    // The tier-changes topic: protobuf, keyed by customer, gap-free sequences.
    let records = sb.read_topic(&sb.config.tier_changes_topic, 3, T);
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_tier_changed()) {
        let msg = api::TierChanged::decode(r.payload.as_deref().unwrap()).unwrap();
        assert_eq!(r.key.as_deref(), Some(msg.customer_id.as_bytes()));
        seqs.entry(msg.customer_id.clone())
            .or_default()
            .push(msg.sequence);
    }
    for (customer, s) in &seqs {
        let expected: Vec<u64> = (1..=s.len() as u64).collect();
        assert_eq!(s, &expected, "sequences of {customer}");
    }
    assert!(seqs.contains_key("big") && seqs.contains_key("small") && seqs.contains_key("conf"));

    // Health and metrics.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", sb.running().grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let metrics = http_get(sb.running().metrics_addr, "/metrics").await;
    for name in [
        "tierd_events_consumed_total",
        "tierd_batch_commit_duration_seconds_bucket",
        "tierd_tier_changes_total",
        "tierd_customers",
        "tierd_grpc_requests_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    // What the commits wrote: every customer above at least once, each
    // state its format byte and a body.
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("/metrics lacks {name}"))
            .trim()
            .parse()
            .unwrap()
    };
    let states = counter("tierd_states_written_total");
    let bytes = counter("tierd_state_bytes_written_total");
    assert!(states >= seqs.len() as f64, "{states} states written");
    assert!(bytes >= 2.0 * states, "{bytes} bytes for {states} states");

    // The ready file names the actual addresses.
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.ready_file()).unwrap()).unwrap();
    assert_eq!(ready["grpc"], sb.running().grpc_addr.to_string());
    assert_eq!(ready["metrics"], sb.running().metrics_addr.to_string());
    assert_eq!(ready["kafka_bootstrap"], sb.broker.bootstrap_servers());

    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_dead_lettered_and_later_ones_still_apply() {
    let mut sb = Sandbox::new();
    sb.start().await;
    let topic = sb.topic(0).to_owned();
    let mut bad_amount = small_order("dlq-cust", "neg");
    bad_amount.kind = EventKind::OrderPlaced {
        order_id: "neg".into(),
        amount: Money(-5),
        cost: Some(Money(0)),
    };
    // All on one key, so one partition, in this order.
    sb.publish(&topic, &[small_order("dlq-cust", "g1")], Wire::Protobuf)
        .await;
    sb.publish_raw(&topic, Some("dlq-cust"), b"\xff\xfe not an event")
        .await;
    sb.publish(&topic, &[bad_amount], Wire::Protobuf).await;
    sb.publish(&topic, &[small_order("dlq-cust", "g2")], Wire::Json)
        .await;

    wait_for("both good orders applied", T, || async {
        indicator(&sb, "dlq-cust", "order_count_12m")
            .await
            .filter(|n| *n == 2.0)
    })
    .await;

    let dead = sb.read_topic(&sb.config.dlq_topic, 2, T);
    assert_eq!(dead.len(), 2, "{dead:?}");
    let mut reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.header("tierd-reason").unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["negative_amount", "undecodable"]);
    for r in &dead {
        assert_eq!(r.header("tierd-topic"), Some(topic.as_str()));
        assert!(r.header("tierd-partition").unwrap().parse::<i32>().is_ok());
        let offset: i64 = r.header("tierd-offset").unwrap().parse().unwrap();
        assert!(offset == 1 || offset == 2, "offset {offset}");
        assert_eq!(r.key.as_deref(), Some(&b"dlq-cust"[..]));
    }
    let neg = dead
        .iter()
        .find(|r| r.header("tierd-reason") == Some("negative_amount"))
        .unwrap();
    assert_eq!(neg.header("tierd-field"), Some("order_placed.amount"));
    // The record is dead-lettered unchanged.
    let undecodable = dead
        .iter()
        .find(|r| r.header("tierd-reason") == Some("undecodable"))
        .unwrap();
    assert_eq!(
        undecodable.payload.as_deref(),
        Some(&b"\xff\xfe not an event"[..])
    );
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_tiers_and_resumes_from_stored_offsets() {
    let mut sb = Sandbox::new();
    sb.start().await;
    let mut events = big_orders("r-big", 8, "r");
    events.push(small_order("r-small", "1"));
    sb.publish(sb.topic(0), &events, Wire::Protobuf).await;
    let before = wait_for("both customers", T, || async {
        let a = tier_of(&sb, "r-big").await.filter(|t| t.tier == "A")?;
        let b = tier_of(&sb, "r-small").await?;
        Some((a, b))
    })
    .await;
    // One stop order: the batch in hand is committed before the publisher
    // drains, the API outlives the engine, the store is flushed last.
    assert_eq!(
        sb.running().stop_order(),
        [
            "ingest",
            "outbox publisher",
            "gRPC API",
            "metrics endpoint",
            "health",
            "store",
            "embedded broker"
        ]
    );
    let first = sb.stop().await;
    assert_eq!(first.records, 9);

    // Second run: same data dir, same broker.
    sb.start().await;
    let after_big = tier_of(&sb, "r-big").await.expect("big still known");
    let after_small = tier_of(&sb, "r-small").await.expect("small still known");
    assert_eq!(
        (after_big.tier.as_str(), after_big.score),
        (before.0.tier.as_str(), before.0.score)
    );
    assert_eq!(
        (after_small.tier.as_str(), after_small.since),
        (before.1.tier.as_str(), before.1.since)
    );
    // One new event: the only record this run may consume.
    sb.publish(sb.topic(0), &[small_order("r-small", "2")], Wire::Protobuf)
        .await;
    wait_for("the new order", T, || async {
        indicator(&sb, "r-small", "order_count_12m")
            .await
            .filter(|n| *n == 2.0)
    })
    .await;
    let second = sb.stop().await;
    assert_eq!(
        second.records, 1,
        "nothing before the stored offsets was consumed again"
    );

    // No tier change was published twice.
    let records = sb.read_topic(&sb.config.tier_changes_topic, 2, T);
    let mut seen = HashSet::new();
    for r in records.iter().filter(|r| r.is_tier_changed()) {
        let msg = api::TierChanged::decode(r.payload.as_deref().unwrap()).unwrap();
        assert!(
            seen.insert((msg.customer_id.clone(), msg.sequence)),
            "duplicate {msg:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_empty_log_is_consumed_from_its_start() {
    let mut sb = Sandbox::new();
    sb.start().await;
    sb.publish(sb.topic(0), &big_orders("n-big", 8, "n1"), Wire::Protobuf)
        .await;
    wait_for("A", T, || async {
        tier_of(&sb, "n-big").await.filter(|t| t.tier == "A")
    })
    .await;
    sb.stop().await;

    // A restarted embedded broker: same topic names, empty logs.
    let fresh = tier_kafka::EmbeddedBroker::start(1).unwrap();
    for t in sb
        .config
        .topics
        .iter()
        .chain([&sb.config.dlq_topic, &sb.config.tier_changes_topic])
    {
        fresh.create_topic(t, tierd_tests::PARTITIONS).unwrap();
    }
    sb.config.brokers = Some(fresh.bootstrap_servers().to_owned());
    sb.start().await;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", fresh.bootstrap_servers())
        .create()
        .unwrap();
    let ev = small_order("n-big", "after-reset");
    let payload = tierd_tests::encode(&ev, Wire::Protobuf);
    producer
        .send(
            rdkafka::producer::FutureRecord::to(sb.topic(0))
                .key("n-big")
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    wait_for("the event of the new log applied", T, || async {
        indicator(&sb, "n-big", "order_count_12m")
            .await
            .filter(|n| *n == 9.0)
    })
    .await;
    assert_eq!(
        tier_of(&sb, "n-big").await.unwrap().tier,
        "A",
        "state survived the new log"
    );
    sb.stop().await;
}

/// Group commit: a batch is sealed as soon as the unit before it is
/// durable, not when `batch_max_wait` runs out. With a 20 s wait, an event
/// sent right after the previous commit is answered long before the timer
/// would have sealed its batch (it waited about 19 s before group commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_committed_without_waiting_for_its_batch_to_fill() {
    let mut sb = Sandbox::new();
    sb.config.batch_max_wait_ms = 20_000;
    sb.start().await;
    sb.publish(
        sb.topic(0),
        &[small_order("gc-first", "gc-1")],
        Wire::Protobuf,
    )
    .await;
    wait_for("the first event", T, || async {
        tier_of(&sb, "gc-first").await
    })
    .await;
    // The loop now polls for the next batch, with up to 20 s to fill it.
    sb.publish(
        sb.topic(0),
        &[small_order("gc-second", "gc-2")],
        Wire::Protobuf,
    )
    .await;
    wait_for(
        "the second event, well before the batch wait",
        Duration::from_secs(10),
        || async { tier_of(&sb, "gc-second").await },
    )
    .await;
    sb.stop().await;
}

/// Catching up, a batch is sealed early only once it holds
/// `batch_catch_up_min_records` (or no record was waiting): a busy
/// customer's state is then encoded and written once per that many
/// records, not at every moment the committer is free. A backlog of 3,000
/// records of 30 customers, waiting at start, with a minimum of 1,000.
/// (Caught up, the group commit seals at once: see the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_committed_in_batches_of_the_catch_up_minimum() {
    let mut sb = Sandbox::new();
    sb.config.batch_catch_up_min_records = 1_000;
    let events: Vec<Event> = (0..3_000)
        .map(|i| small_order(&format!("cu-{}", i % 30), &format!("cu-{i}")))
        .collect();
    sb.publish(sb.topic(0), &events, Wire::Protobuf).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    let report = sb.stop().await;
    assert_eq!(report.records, 3_000);
    // 4 here (3 of 1,000, the tail); sealed whenever the committer was
    // free, as before, the same backlog took 24-53. The margin is for a
    // loaded machine, where a poll may find the queue empty mid-backlog.
    assert!(report.batches <= 10, "{report:?}");
}

/// The end of a backlog smaller than `batch_catch_up_min_records` is not
/// held for the batch timer: once a poll finds no record waiting, the
/// group commit seals what is in hand. With a 20 s batch wait, 300
/// waiting records are committed long before it (without the rule, the
/// batch waited out the 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_smaller_than_the_catch_up_minimum_is_not_held_for_the_timer() {
    let mut sb = Sandbox::new();
    sb.config.batch_max_wait_ms = 20_000;
    sb.config.batch_catch_up_min_records = 5_000;
    let events: Vec<Event> = (0..300)
        .map(|i| small_order(&format!("tail-{}", i % 10), &format!("tail-{i}")))
        .collect();
    sb.publish(sb.topic(0), &events, Wire::Protobuf).await;
    // Timed from before the start: tierd reports ready after its first
    // turn, which is this batch.
    let started = std::time::Instant::now();
    sb.start().await;
    sb.wait_consumed(T).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the backlog waited for the batch timer: committed after {took:?}"
    );
    let report = sb.stop().await;
    assert_eq!(report.records, 300);
}

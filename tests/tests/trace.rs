//! W3C trace context end to end: an input record with a `traceparent`
//! header causes a `TierChanged` record carrying a child context (same
//! trace id, its own parent id) as a header and in the message; a record
//! without one, or with a malformed one, causes an untraced change and is
//! not dead-lettered for it; an admin request with `traceparent` metadata
//! stamps the change it makes, in the reply and on the topic. Published
//! records also carry the customer's population gradings (ABC, RFM),
//! completed at publication from the read side's rankings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tier_core::{Event, EventKind, Money, Timestamp};
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::{self, OverrideMode, SetOverrideRequest};
use tier_wire::trace::TraceParent;
use tierd_tests::{Sandbox, Wire, encode, wait_for};

const T: Duration = Duration::from_secs(60);
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const ADMIN_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn big_order(customer: &str, id: &str) -> Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Event {
        event_id: format!("evt-{id}"),
        customer_id: customer.into(),
        occurred_at: Timestamp::from_millis(now - 3_600_000),
        source: "test".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("ord-{id}"),
            amount: Money(500_000_000),
            cost: Some(Money(300_000_000)),
        },
    }
}

async fn publish(sb: &Sandbox, event: &Event, traceparent: Option<&str>) {
    let producer = sb.ordered_producer();
    let payload = encode(event, Wire::Protobuf);
    let mut record = FutureRecord::to(sb.orders_topic())
        .key(event.customer_id.as_str())
        .payload(payload.as_slice());
    if let Some(tp) = traceparent {
        record = record.headers(OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(tp),
        }));
    }
    producer.send(record, T).await.map_err(|(e, _)| e).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_record_or_request_stamps_the_change_it_causes() {
    let mut sb = Sandbox::new();
    sb.start().await;
    let cause = TraceParent::parse(TRACE).unwrap();

    publish(&sb, &big_order("traced", "1"), Some(TRACE)).await;
    publish(&sb, &big_order("plain", "2"), None).await;
    publish(&sb, &big_order("garbled", "3"), Some("00-not-a-trace-01")).await;

    let records = sb.read_topic(&sb.config.tier_changes_topic, 3, T);
    let changes: Vec<(api::TierChanged, Option<String>)> = records
        .iter()
        .filter(|r| r.is_tier_changed())
        .map(|r| {
            let msg = api::TierChanged::decode(r.payload.as_deref().unwrap()).unwrap();
            (msg, r.header("traceparent").map(str::to_owned))
        })
        .collect();
    let of = |customer: &str| {
        changes
            .iter()
            .find(|(m, _)| m.customer_id == customer)
            .unwrap_or_else(|| panic!("no change of {customer}: {changes:?}"))
    };

    let (traced, header) = of("traced");
    let child = TraceParent::parse(&traced.traceparent).expect("a valid child context");
    assert_eq!(child.trace_id(), cause.trace_id(), "same trace");
    assert_ne!(child, cause, "a parent id of its own");
    assert_eq!(child, cause.child("traced", traced.sequence));
    assert_eq!(header.as_deref(), Some(traced.traceparent.as_str()));

    // Population gradings are completed at publication, next to the
    // per-customer ones.
    for (msg, _) in &changes {
        let names: Vec<&str> = msg.gradings.iter().map(|g| g.grading.as_str()).collect();
        assert!(
            names.contains(&"abc_revenue") && names.contains(&"rfm"),
            "{}: {names:?}",
            msg.customer_id
        );
    }

    for untraced in ["plain", "garbled"] {
        let (msg, header) = of(untraced);
        assert_eq!(msg.traceparent, "", "{untraced}");
        assert_eq!(header, &None, "{untraced}");
    }
    // A malformed context costs nothing: no dead letter.
    assert!(
        sb.read_topic(&sb.config.dlq_topic, 0, Duration::from_secs(2))
            .is_empty()
    );

    // An admin request's context stamps the override's change.
    let mut admin = AdminServiceClient::connect(format!("http://{}", sb.running().grpc_addr))
        .await
        .unwrap();
    let mut request = tonic::Request::new(SetOverrideRequest {
        customer_id: "plain".into(),
        tier: "D".into(),
        mode: OverrideMode::Pin as i32,
        reason: "credit hold".into(),
        author: "ops".into(),
        expires_at: None,
    });
    request
        .metadata_mut()
        .insert("traceparent", ADMIN_TRACE.parse().unwrap());
    let reply = admin.set_override(request).await.unwrap().into_inner();
    let change = reply.change.expect("the pin moved the tier");
    let admin_cause = TraceParent::parse(ADMIN_TRACE).unwrap();
    assert_eq!(
        change.traceparent,
        admin_cause.child("plain", change.sequence).to_string()
    );
    let published = wait_for("the override's TierChanged", T, || async {
        sb.read_topic(&sb.config.tier_changes_topic, 4, Duration::from_secs(5))
            .into_iter()
            .filter(|r| r.is_tier_changed())
            .find_map(|r| {
                let msg = api::TierChanged::decode(r.payload.as_deref()?).ok()?;
                (msg.customer_id == "plain" && msg.sequence == change.sequence)
                    .then(|| r.header("traceparent").map(str::to_owned))
            })
    })
    .await;
    assert_eq!(published.as_deref(), Some(change.traceparent.as_str()));
    sb.stop().await;
}

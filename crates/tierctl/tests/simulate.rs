//! `simulate` against librdkafka's in-process mock cluster: every generated
//! event arrives exactly once on its type's topic, keyed by its customer,
//! decodable in the chosen format and in per-customer order.

// Helpers outside `#[test]` fns are test code too (clippy.toml only
// exempts the test fns themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tier_core::time::date;
use tier_core::{CurrencyRules, Timestamp, ValidationLimits};
use tier_wire::decode::{Decoder, WireFormat};
use tierctl::cli::{EndTime, EventFormat, SimulateArgs};
use tierctl::commands::simulate;

const TOPICS: [&str; 4] = ["orders", "payments", "complaints", "customers"];
const PARTITIONS: i32 = 4;

/// One consumed record.
#[derive(Debug)]
struct Record {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

fn mock_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    for t in TOPICS {
        cluster.create_topic(t, PARTITIONS, 1).unwrap();
    }
    cluster
}

fn small_workload(brokers: &str, format: EventFormat) -> SimulateArgs {
    let mut args = SimulateArgs::new(brokers);
    args.customers = 40;
    args.orders = 300;
    args.seed = 7;
    args.format = format;
    args.end = EndTime::At(date(2026, 11, 1));
    args.no_progress = true;
    args.kafka.max_in_flight = 64;
    args
}

/// Read every partition of [`TOPICS`] from the beginning until `expected`
/// records arrived, then a little longer to catch extras.
fn consume_all(brokers: &str, expected: u64) -> Vec<Record> {
    let group = format!("tierctl-test-{}", rand::random::<u64>());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for t in TOPICS {
        for p in 0..PARTITIONS {
            assignment
                .add_partition_offset(t, p, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_until = None;
    while Instant::now() < deadline {
        if records.len() as u64 >= expected {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(500));
            if Instant::now() >= until {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
            Some(Ok(m)) => records.push(Record {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
            }),
        }
    }
    records
}

/// Publish a small workload in `format` and check what arrived.
async fn check_format(format: EventFormat) -> (simulate::Summary, Vec<Record>) {
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let args = small_workload(&brokers, format);
    let summary = simulate::run(&args).await.unwrap();

    let expected = tier_core::sim::Generator::new(&simulate::workload(&args).unwrap()).count();
    assert_eq!(summary.events, expected as u64);
    assert_eq!(summary.per_topic.values().sum::<u64>(), summary.events);
    assert_eq!(summary.per_kind.values().sum::<u64>(), summary.events);
    assert_eq!(summary.per_topic.len(), 4, "{:?}", summary.per_topic);
    assert!(summary.notable.iter().any(|n| n.role == "top key account"));

    let events = summary.events;
    let consumer_brokers = brokers.clone();
    let records = tokio::task::spawn_blocking(move || consume_all(&consumer_brokers, events))
        .await
        .unwrap();
    drop(cluster);

    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        *per_topic.entry(r.topic.clone()).or_default() += 1;
    }
    assert_eq!(per_topic, summary.per_topic, "records per topic");

    let decoder = Decoder::new(CurrencyRules::new("CNY"), ValidationLimits::default());
    let wire = match format {
        EventFormat::Protobuf => WireFormat::Protobuf,
        EventFormat::Json => WireFormat::Json,
        EventFormat::Confluent => WireFormat::ConfluentProtobuf,
    };
    let mut per_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut partition_of: HashMap<(String, String), i32> = HashMap::new();
    let mut last_time: HashMap<(String, String), Timestamp> = HashMap::new();
    for r in &records {
        let key = r.key.as_deref().expect("every record is keyed");
        let decoded = decoder
            .decode(Some(key), Some(&r.payload), date(2026, 11, 1))
            .unwrap_or_else(|e| panic!("{} record does not decode: {e}", r.topic));
        assert_eq!(decoded.format, wire);
        assert_eq!(
            key,
            decoded.event.customer_id.as_bytes(),
            "key = customer_id"
        );
        assert_eq!(
            simulate::topic_for(&decoded.event.kind, &args.topics),
            r.topic,
            "routed by type"
        );
        *per_kind.entry(decoded.event.kind.type_name()).or_default() += 1;
        // One customer's records of one topic: one partition, in time order.
        let slot = (r.topic.clone(), decoded.event.customer_id.clone());
        let p = *partition_of.entry(slot.clone()).or_insert(r.partition);
        assert_eq!(p, r.partition, "{slot:?} spread over partitions");
        if let Some(prev) = last_time.insert(slot.clone(), decoded.event.occurred_at) {
            assert!(prev <= decoded.event.occurred_at, "{slot:?} out of order");
        }
    }
    assert_eq!(per_kind, summary.per_kind, "events per type");
    (summary, records)
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_records_arrive_keyed_and_routed() {
    let (summary, _) = check_format(EventFormat::Protobuf).await;
    assert_eq!(summary.format, EventFormat::Protobuf);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_records_are_proto3_json() {
    let (_, records) = check_format(EventFormat::Json).await;
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        assert_eq!(v["customerId"], key.as_str(), "camelCase proto3 JSON");
        assert!(v["eventId"].is_string());
        assert!(
            v["occurredAt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "RFC 3339 timestamp: {v}"
        );
        if let Some(amount) = v.pointer("/orderPlaced/amount/amountMinor") {
            assert!(amount.is_string(), "int64 as a JSON string: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_records_are_framed() {
    let (_, records) = check_format(EventFormat::Confluent).await;
    for r in &records {
        assert_eq!(
            &r.payload[..5],
            &[0, 0, 0, 0, 1],
            "magic byte and schema id 1"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deliveries_fail_the_run() {
    let cluster = mock_cluster();
    cluster
        .topic_error(
            "payments",
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let mut args = small_workload(&cluster.bootstrap_servers(), EventFormat::Protobuf);
    args.kafka
        .config
        .push(("message.timeout.ms".into(), "5000".into()));
    let err = simulate::run(&args).await.unwrap_err();
    let text = format!("{err:#}");
    // Rejected when queued (the producer already saw the topic's error in
    // metadata) or when delivered: either way the run fails, naming both.
    assert!(
        text.contains("publishing to topic payments failed"),
        "{text}"
    );
    assert!(text.contains("Topic authorization failed"), "{text}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_publishes_json_lines_by_type() {
    let cluster = mock_cluster();
    let brokers = cluster.bootstrap_servers();
    let path = std::env::temp_dir().join(format!(
        "tierctl-produce-{}-{}.jsonl",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::write(
        &path,
        concat!(
            "# two events\n",
            r#"{"eventId":"e1","customerId":"c1","occurredAt":"2026-01-01T00:00:00Z","orderPlaced":{"orderId":"o1","amount":{"amountMinor":"100","currency":"CNY"}}}"#,
            "\n\n",
            r#"{"event_id":"e2","customer_id":"c2","occurred_at":"2026-01-02T00:00:00Z","profile_updated":{"name":"Two"}}"#,
            "\n",
        ),
    )
    .unwrap();
    let args = tierctl::cli::ProduceArgs {
        kafka: tierctl::cli::KafkaArgs::new(&brokers),
        topic: None,
        format: EventFormat::Confluent,
        json_file: path.clone(),
        schema_id: 3,
        topics: tierctl::cli::TopicArgs::default(),
        no_progress: true,
    };
    let summary = tierctl::commands::produce::run(&args).await;
    std::fs::remove_file(&path).unwrap();
    let summary = summary.unwrap();
    assert_eq!(summary.events, 2);
    let consumer_brokers = brokers.clone();
    let records = tokio::task::spawn_blocking(move || consume_all(&consumer_brokers, 2))
        .await
        .unwrap();
    drop(cluster);
    let mut seen: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| (r.topic.clone(), r.key.clone().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("customers".to_owned(), b"c2".to_vec()),
            ("orders".to_owned(), b"c1".to_vec())
        ]
    );
    let decoder = Decoder::new(CurrencyRules::new("CNY"), ValidationLimits::default());
    for r in &records {
        assert_eq!(&r.payload[..5], &[0, 0, 0, 0, 3]);
        decoder
            .decode(r.key.as_deref(), Some(&r.payload), date(2026, 11, 1))
            .unwrap();
    }
}

//! Nothing lost, nothing counted twice: tierd in-process against an
//! embedded broker that goes down, refuses fetches, refuses the dead-letter
//! topic, and is flooded with malformed and re-sent records. The end state
//! is compared with the same stream folded in-process (tierd runs on a
//! frozen clock, so the fold is deterministic).
//!
//! The pipeline's `stall_after` is tierd's default (10 s): the waits for
//! NOT_SERVING allow for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tier_core::projection::Applied;
use tier_core::sim::Workload;
use tier_core::state::CustomerState;
use tier_core::{Event, EventKind, Money, Timestamp};
use tier_wire::decode::{encode_json, encode_protobuf, event_to_proto};
use tierd_tests::{RawRecord, Sandbox, oracle_at, publish_records, stored_offset, stored_states};

const T: Duration = Duration::from_secs(60);
/// Long enough for `stall_after` (10 s by default) plus a probe.
const STALL: Duration = Duration::from_secs(40);

/// 2026-03-01T00:00:00Z: tierd's frozen processing time.
const NOW: Timestamp = Timestamp::from_millis(1_772_323_200_000);

fn workload(customers: usize, orders: usize, seed: u64) -> Vec<Event> {
    let mut w = Workload::new(
        customers,
        orders,
        Timestamp::from_millis(NOW.millis() - 3_600_000),
    );
    w.seed = seed;
    w.generate()
}

/// Each customer's events on one topic (chosen by customer), keyed by
/// customer, so per-customer order is the publish order.
fn records_for(sb: &Sandbox, events: &[Event]) -> Vec<RawRecord> {
    events
        .iter()
        .map(|e| {
            let n: usize = e.customer_id.bytes().map(usize::from).sum();
            RawRecord::event(sb.topic(n % 4), e)
        })
        .collect()
}

fn assert_state_matches_oracle(sb: &Sandbox, events: &[Event]) -> u64 {
    let (expected, applied) = oracle_at(events, None);
    let stored = stored_states(&sb.config.data_dir);
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the stored customers differ from the oracle's"
    );
    // What is stored: the projection, the tier held and the sequence
    // (the reasons' baseline indicators are kept in memory only).
    for (id, want) in &expected {
        let got = &stored[id];
        assert_eq!(got.projection, want.projection, "projection of {id}");
        assert_eq!(got.assignment, want.assignment, "tier of {id}");
        assert_eq!(got.sequence, want.sequence, "sequence of {id}");
    }
    applied
}

async fn order_count(sb: &Sandbox, customer: &str) -> Option<f64> {
    sb.indicator(customer, "order_count_12m").await
}

fn order(customer: &str, id: &str, amount: i64) -> Event {
    Event {
        event_id: format!("evt-{id}"),
        customer_id: customer.into(),
        occurred_at: Timestamp::from_millis(NOW.millis() - 3_600_000),
        source: "faults".into(),
        kind: EventKind::OrderPlaced {
            order_id: format!("ord-{id}"),
            amount: Money(amount),
            cost: Some(Money(0)),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outages_stall_health_and_lose_nothing() {
    let mut sb = Sandbox::frozen_at(NOW);
    sb.start().await;
    let events = workload(200, 1_500, 7);
    assert!(events.len() >= 4_000, "{} events", events.len());
    let records = records_for(&sb, &events);
    let third = records.len() / 3;
    let producer = sb.ordered_producer();

    // A first part flows normally.
    publish_records(&producer, &records[..third]).await;
    sb.wait_consumed(T).await;
    assert_eq!(sb.serving().await, Some(true));

    // The broker goes away while the second part is being published.
    sb.broker.broker_down(1).unwrap();
    let background = {
        let producer = producer.clone();
        let part = records[third..2 * third].to_vec();
        tokio::spawn(async move { publish_records(&producer, &part).await })
    };
    sb.wait_serving(false, STALL).await;
    sb.broker.broker_up(1).unwrap();
    tokio::time::timeout(T, background)
        .await
        .expect("the second part is published after the outage")
        .unwrap();
    sb.wait_serving(true, T).await;
    sb.wait_consumed(T).await;

    // Every fetch now breaks the connection; the third part waits.
    let disconnects = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT; 100_000];
    sb.broker
        .request_errors(RDKafkaApiKey::Fetch, &disconnects)
        .unwrap();
    publish_records(&producer, &records[2 * third..]).await;
    sb.wait_serving(false, STALL).await;
    sb.broker
        .clear_request_errors(RDKafkaApiKey::Fetch)
        .unwrap();
    sb.wait_serving(true, T).await;
    sb.wait_consumed(T).await;

    let metrics = tierd_tests::http_get(sb.running().metrics_addr, "/metrics").await;
    assert!(
        metrics.contains("tierd_retries_total{op=\"consume\"")
            || metrics.contains("tierd_retries_total{op=\"probe\""),
        "no consume/probe retries on /metrics"
    );

    let report = sb.stop().await;
    assert_eq!(
        report.records,
        events.len() as u64,
        "every record committed exactly once"
    );
    assert_eq!((report.rejected, report.uncommitted), (0, 0));
    let applied = assert_state_matches_oracle(&sb, &events);
    assert_eq!(report.applied, applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dead_letter_topic_holds_the_partition() {
    let mut sb = Sandbox::frozen_at(NOW);
    sb.start().await;
    let topic = sb.topic(0).to_owned();
    let dlq = sb.config.dlq_topic.clone();
    let producer = sb.ordered_producer();
    let c = "dlq-cust";
    let put = |ev: &Event| RawRecord::event(&topic, ev);

    publish_records(&producer, &[put(&order(c, "g0", 1_000))]).await;
    sb.wait_consumed(T).await;
    assert_eq!(order_count(&sb, c).await, Some(1.0));

    // The dead-letter topic is refused; a bad record, then good ones, on
    // the customer's partition.
    sb.broker
        .topic_error(
            &dlq,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    let bad = put(&order(c, "bad", -5));
    let at = publish_records(
        &producer,
        &[
            bad,
            put(&order(c, "g1", 1_000)),
            put(&order(c, "g2", 1_000)),
        ],
    )
    .await;
    let (partition, bad_offset) = at[0];
    assert!(at.iter().all(|(p, _)| *p == partition));

    sb.wait_serving(false, STALL).await;
    assert_eq!(
        order_count(&sb, c).await,
        Some(1.0),
        "nothing after the record that could not be dead-lettered is applied"
    );
    let committed = sb.group_committed();
    assert!(
        committed
            .get(&(topic.clone(), partition))
            .is_none_or(|o| *o <= bad_offset),
        "{committed:?}"
    );

    // Stopping while the dead-letter topic fails leaves that batch
    // uncommitted as a whole: the stored offset is the bad record's.
    let report = sb.stop().await;
    assert_eq!(report.records, 1, "{report:?}");
    assert!(report.uncommitted >= 1, "{report:?}");
    assert_eq!(
        stored_offset(&sb.config.data_dir, &topic, partition),
        Some(bad_offset)
    );

    // The topic is back: the next run parks the record once and applies
    // the good ones.
    sb.broker
        .topic_error(&dlq, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    sb.start().await;
    sb.wait_consumed(T).await;
    assert_eq!(order_count(&sb, c).await, Some(3.0));
    let dead = sb.read_topic(&dlq, 1, T);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].header("tierd-reason"), Some("negative_amount"));
    assert_eq!(dead[0].header("tierd-topic"), Some(topic.as_str()));
    assert_eq!(
        dead[0].header("tierd-partition"),
        Some(partition.to_string().as_str())
    );
    assert_eq!(
        dead[0].header("tierd-offset"),
        Some(bad_offset.to_string().as_str())
    );
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (3, 1), "{report:?}");

    // The topic is refused again, to a fresh run: it stalls on the next
    // bad record and recovers in place once the topic is back.
    sb.broker
        .topic_error(
            &dlq,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    sb.start().await;
    let bad2 = put(&order(c, "bad2", -7));
    let at2 = publish_records(&producer, &[bad2, put(&order(c, "g3", 1_000))]).await;
    sb.wait_serving(false, STALL).await;
    assert_eq!(order_count(&sb, c).await, Some(3.0));
    sb.broker
        .topic_error(&dlq, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    sb.wait_serving(true, T).await;
    sb.wait_consumed(T).await;
    assert_eq!(order_count(&sb, c).await, Some(4.0));
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (2, 1), "{report:?}");

    // Produce requests fail (the dead-letter producer's among them) while
    // tierd runs: it stalls, and recovers once they succeed again. (The
    // records are published first: the errors hit every producer.)
    let bad3 = put(&order(c, "bad3", -9));
    let at3 = publish_records(&producer, &[bad3, put(&order(c, "g4", 1_000))]).await;
    let retriable = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000];
    sb.broker
        .request_errors(RDKafkaApiKey::Produce, &retriable)
        .unwrap();
    sb.start().await;
    sb.wait_serving(false, STALL).await;
    assert_eq!(order_count(&sb, c).await, Some(4.0));
    sb.broker
        .clear_request_errors(RDKafkaApiKey::Produce)
        .unwrap();
    sb.wait_serving(true, T).await;
    sb.wait_consumed(T).await;
    assert_eq!(order_count(&sb, c).await, Some(5.0));
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (2, 1), "{report:?}");

    // Each bad record reached the dead-letter topic exactly once.
    let dead = sb.read_topic(&dlq, 3, T);
    let mut offsets: Vec<i64> = dead
        .iter()
        .map(|r| r.header("tierd-offset").unwrap().parse().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [bad_offset, at2[0].1, at3[0].1]);
}

/// A dead letter larger than the dead-letter producer accepts can never be
/// parked whole: before, the unit was retried for ever and every partition
/// stopped. It is parked cut, saying so, and ingest goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_its_topic_is_parked_cut() {
    let mut sb = Sandbox::frozen_at(NOW);
    // tierd's producers take records up to 100 kB (a TierChanged is far
    // smaller); the bad record is twice that.
    sb.config.kafka_producer = vec!["message.max.bytes=100000".to_owned()];
    sb.start().await;
    let topic = sb.topic(0).to_owned();
    let producer = sb.ordered_producer();
    let c = "big-cust";
    let mut garbage = vec![0xff, 0xfe];
    garbage.extend(std::iter::repeat_n(b'x', 200_000));
    let bad = RawRecord {
        topic: topic.clone(),
        key: Some(c.as_bytes().to_vec()),
        payload: garbage,
    };
    // A small bad record in the same unit is parked whole.
    let small = RawRecord {
        topic: topic.clone(),
        key: Some(c.as_bytes().to_vec()),
        payload: vec![0xff, 0xfe, b's'],
    };
    let at = publish_records(
        &producer,
        &[
            RawRecord::event(&topic, &order(c, "g1", 1_000)),
            bad,
            small,
            RawRecord::event(&topic, &order(c, "g2", 1_000)),
        ],
    )
    .await;
    sb.wait_consumed(T).await;
    assert_eq!(
        order_count(&sb, c).await,
        Some(2.0),
        "the orders around the oversized record are applied"
    );
    let mut dead = sb.read_topic(&sb.config.dlq_topic, 2, T);
    assert_eq!(dead.len(), 2, "{dead:?}");
    dead.sort_by_key(|r| r.header("tierd-offset").unwrap().parse::<i64>().unwrap());
    let whole = &dead[1];
    assert_eq!(whole.header("tierd-truncated"), None);
    assert_eq!(whole.payload.as_deref(), Some(&[0xff, 0xfe, b's'][..]));
    let d = &dead[0];
    assert_eq!(d.header("tierd-reason"), Some("undecodable"));
    assert_eq!(d.header("tierd-offset"), Some(at[1].1.to_string().as_str()));
    let note = d.header("tierd-truncated").expect("tierd-truncated");
    assert!(note.contains("payload of 200002 bytes"), "{note}");
    assert_eq!(d.key.as_deref(), Some(c.as_bytes()));
    let payload = d.payload.as_deref().expect("a payload");
    assert_eq!(payload.len(), 1024);
    assert_eq!(&payload[..3], &[0xff, 0xfe, b'x']);
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (4, 2), "{report:?}");
}

/// Malformed record number `i`: its key, payload and expected reason.
fn malformed(i: usize) -> (Option<Vec<u8>>, Vec<u8>, &'static str) {
    let customer = format!("bad-{i}");
    let key = Some(customer.clone().into_bytes());
    let good = order(&customer, &format!("m{i}"), 1_000);
    let proto = |ev: &Event| event_to_proto(ev, "CNY");
    match i % 12 {
        0 => {
            let mut garbage = vec![0xff, 0xfe];
            garbage.extend_from_slice(format!(" garbage {i}").as_bytes());
            (key, garbage, "undecodable")
        }
        1 => (
            key,
            format!(r#"{{"eventId":"e{i}","amont":5}}"#).into_bytes(),
            "undecodable",
        ),
        2 => (key, vec![0, 0, 0], "undecodable"),
        3 => {
            let mut ev = good;
            ev.event_id = String::new();
            (key, encode_protobuf(&proto(&ev)), "missing_field")
        }
        4 => {
            let mut msg = proto(&good);
            msg.occurred_at = None;
            (key, encode_protobuf(&msg), "missing_field")
        }
        5 => {
            let ev = order(&customer, &format!("m{i}"), -1);
            (key, encode_protobuf(&proto(&ev)), "negative_amount")
        }
        6 => (
            key,
            encode_protobuf(&event_to_proto(&good, "ZZZ")),
            "unknown_currency",
        ),
        7 => {
            let mut ev = good;
            ev.occurred_at = Timestamp::from_millis(NOW.millis() + 3 * 86_400_000);
            (key, encode_json(&proto(&ev)), "future_timestamp")
        }
        8 => (
            Some(b"someone-else".to_vec()),
            encode_protobuf(&proto(&good)),
            "key_mismatch",
        ),
        9 => {
            let mut msg = proto(&good);
            msg.payload = None;
            (key, encode_protobuf(&msg), "empty_payload")
        }
        10 => {
            let mut ev = good;
            ev.event_id = "x".repeat(300);
            (key, encode_protobuf(&proto(&ev)), "invalid_field")
        }
        _ => {
            let mut ev = good;
            ev.customer_id = String::new();
            (None, encode_protobuf(&proto(&ev)), "missing_field")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_floods_and_resent_duplicates_change_nothing() {
    let mut sb = Sandbox::frozen_at(NOW);
    sb.start().await;
    let producer = sb.ordered_producer();
    let events = workload(100, 300, 11);
    let good = records_for(&sb, &events);
    assert!(good.len() >= 500, "{} events", good.len());

    let mut bad = Vec::new();
    let mut expected_reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..1_000 {
        let (key, payload, reason) = malformed(i);
        *expected_reasons.entry(reason).or_default() += 1;
        bad.push(RawRecord {
            topic: sb.topic(i % 4).to_owned(),
            key,
            payload,
        });
    }
    // Exact re-sends of events already published, after them.
    let dups: Vec<RawRecord> = (0..2_000).map(|i| good[i % good.len()].clone()).collect();
    let resent: Vec<Event> = (0..2_000)
        .map(|i| events[i % events.len()].clone())
        .collect();

    publish_records(&producer, &good).await;
    let bad_at = publish_records(&producer, &bad).await;
    publish_records(&producer, &dups).await;
    sb.wait_consumed(T).await;

    let dead = sb.read_topic(&sb.config.dlq_topic, 1_000, T);
    assert_eq!(
        dead.len(),
        1_000,
        "exactly one dead letter per malformed record"
    );
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut coords = BTreeSet::new();
    for r in &dead {
        let reason = r.header("tierd-reason").expect("tierd-reason");
        *reasons.entry(reason).or_default() += 1;
        let coord = (
            r.header("tierd-topic").expect("tierd-topic").to_owned(),
            r.header("tierd-partition")
                .expect("tierd-partition")
                .parse::<i32>()
                .unwrap(),
            r.header("tierd-offset")
                .expect("tierd-offset")
                .parse::<i64>()
                .unwrap(),
        );
        assert!(coords.insert(coord), "dead-lettered twice: {r:?}");
    }
    let published: BTreeSet<(String, i32, i64)> = bad
        .iter()
        .zip(&bad_at)
        .map(|(r, (p, o))| (r.topic.clone(), *p, *o))
        .collect();
    assert_eq!(coords, published);
    assert_eq!(reasons, expected_reasons);

    // Metrics are process-global (tests run in parallel): at least ours.
    let metrics = tierd_tests::http_get(sb.running().metrics_addr, "/metrics").await;
    let duplicates: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tierd_events_duplicate_total "))
        .expect("tierd_events_duplicate_total on /metrics")
        .trim()
        .parse()
        .unwrap();
    // Re-sends of events that were stale to begin with count as stale.
    let expected_duplicates = {
        let policy = tier_core::policy::Policy::default_policy();
        let mut states: BTreeMap<String, CustomerState> = BTreeMap::new();
        for ev in &events {
            let s = states.entry(ev.customer_id.clone()).or_default();
            s.process(&ev.customer_id, ev, &policy);
        }
        resent
            .iter()
            .filter(|ev| {
                let s = states.entry(ev.customer_id.clone()).or_default();
                s.process(&ev.customer_id, ev, &policy).applied == Applied::Duplicate
            })
            .count()
    };
    assert!(expected_duplicates > 1_000, "{expected_duplicates}");
    assert!(
        duplicates >= expected_duplicates as f64,
        "{duplicates} < {expected_duplicates}"
    );

    let report = sb.stop().await;
    let (_, applied) = oracle_at(&events, None);
    assert_eq!(
        report.records,
        (good.len() + 1_000 + 2_000) as u64,
        "{report:?}"
    );
    assert_eq!(report.rejected, 1_000, "{report:?}");
    assert_eq!(
        report.applied, applied,
        "re-sent events were not applied again"
    );
    assert_eq!(
        report.records - report.applied - report.rejected,
        (good.len() as u64 - applied) + 2_000,
        "every re-send was recognised as a duplicate"
    );
    assert_state_matches_oracle(&sb, &events);
}

/// An event dated 26 hours after its record reached Kafka is dead-lettered
/// also when tierd reads it 20 hours later (a replay, a restart after an
/// outage): it is judged against the record's time, not the processing
/// time, so the same records are rejected whenever the log is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_dated_too_far_past_its_record_is_dead_lettered_however_late_it_is_read() {
    use rdkafka::producer::FutureRecord;

    let mut sb = Sandbox::frozen_at(NOW);
    sb.start().await;
    let producer = sb.ordered_producer();
    // The records reached Kafka 20 hours before tierd reads them.
    let written = NOW.millis() - 20 * 3_600_000;
    let dated = |id: &str, hours_after_written: i64| {
        let mut e = order("read-late", id, 1_000);
        e.occurred_at = Timestamp::from_millis(written + hours_after_written * 3_600_000);
        e
    };
    // 26 h after its record, 6 h after the processing time: rejected.
    let too_far = dated("far", 26);
    // 23 h after its record: accepted.
    let in_bound = dated("near", 23);
    for e in [&too_far, &in_bound] {
        let payload = encode_protobuf(&event_to_proto(e, "CNY"));
        let record = FutureRecord::to(sb.topic(0))
            .key(e.customer_id.as_bytes())
            .payload(payload.as_slice())
            .timestamp(written);
        producer
            .send(record, T)
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    sb.wait_consumed(T).await;

    let dead = sb.read_topic(&sb.config.dlq_topic, 1, T);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].header("tierd-reason"), Some("future_timestamp"));
    assert_eq!(dead[0].header("tierd-field"), Some("occurred_at"));
    assert_eq!(order_count(&sb, "read-late").await, Some(1.0));
    let report = sb.stop().await;
    assert_eq!((report.records, report.rejected), (2, 1), "{report:?}");
}

/// A rebuild from offset 0 loses no history to the order the topics are
/// read in: each customer's profile update, dated yesterday, sits in a
/// small topic that is read first (each topic is fetched at its own pace;
/// here the first one, which librdkafka fetches first), ahead of two years
/// of weekly orders in another. Folded first, it would move the
/// customer's watermark to yesterday and make the orders of more than a
/// year before stale on arrival: the tenure would start a year late. Read
/// merged by event time, every customer ends as the core's fold of its
/// events in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_counts_old_history_though_a_small_topic_holds_later_events() {
    let mut sb = Sandbox::frozen_at(NOW);
    rebuild_with_a_newer_topic(&mut sb, 1).await;
}

/// The same rebuild with fifty profile updates a customer in the last
/// fifty days, 3,000 records newer than most orders, and an aligner that
/// holds at most 400: from 200 held, the newer topic's partitions are
/// paused until the orders catch up. Released without waiting once 400
/// are held, as before the pause, the updates would make the older orders
/// stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_whose_newer_topic_outgrows_the_aligner_pauses_it_and_loses_no_history() {
    let mut sb = Sandbox::frozen_at(NOW);
    sb.config.align_max_held = 400;
    rebuild_with_a_newer_topic(&mut sb, 50).await;
}

/// Sixty customers with two years of weekly orders in one topic and
/// `newer` profile updates each, one a day up to yesterday, in the topic
/// librdkafka fetches first, all published before tierd starts; every
/// customer must end as the core's fold of its events in time order, no
/// event stale, its tenure from two years back.
async fn rebuild_with_a_newer_topic(sb: &mut Sandbox, newer: i64) {
    // Small fetches: the orders come in many rounds, the profile updates
    // in the first ones.
    sb.config
        .kafka_consumer
        .push("max.partition.fetch.bytes=16384".into());
    let mut orders = Vec::new();
    let mut profiles = Vec::new();
    for c in 0..60 {
        let customer = format!("hist-{c}");
        for w in 0..104 {
            let mut e = order(&customer, &format!("{c}-{w}"), 100_000 + w);
            e.occurred_at = Timestamp::from_millis(NOW.millis() - (730 - 7 * w) * 86_400_000);
            orders.push(e);
        }
        for d in 1..=newer {
            profiles.push(Event {
                event_id: format!("profile-{customer}-{d}"),
                customer_id: customer.clone(),
                occurred_at: Timestamp::from_millis(NOW.millis() - (newer + 1 - d) * 86_400_000),
                source: "faults".into(),
                kind: EventKind::ProfileUpdated(tier_core::ProfileUpdate {
                    name: Some(format!("Customer {c}, {d}")),
                    ..tier_core::ProfileUpdate::default()
                }),
            });
        }
    }
    // The whole backlog is in Kafka before tierd starts.
    let producer = sb.ordered_producer();
    let profile_records: Vec<RawRecord> = profiles
        .iter()
        .map(|e| RawRecord::event(sb.topic(0), e))
        .collect();
    let order_records: Vec<RawRecord> = orders
        .iter()
        .map(|e| RawRecord::event(sb.topic(3), e))
        .collect();
    publish_records(&producer, &profile_records).await;
    publish_records(&producer, &order_records).await;
    sb.start().await;
    sb.wait_consumed(T).await;
    let report = sb.stop().await;
    assert_eq!(report.rejected, 0, "{report:?}");

    let mut in_time_order: Vec<Event> = orders.iter().chain(&profiles).cloned().collect();
    in_time_order.sort_by_key(|e| e.occurred_at);
    let applied = assert_state_matches_oracle(sb, &in_time_order);
    assert_eq!(applied, in_time_order.len() as u64, "no event was stale");
    // The tenure starts two years ago, not one.
    let stored = stored_states(&sb.config.data_dir);
    let first = stored["hist-0"].projection.first_order_at();
    assert_eq!(first, Some(orders[0].occurred_at));
}

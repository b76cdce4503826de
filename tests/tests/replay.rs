//! "History is judged in event time", end to end: the real `tierd` binary,
//! a broker in a process of its own (`tierd-testbroker`), a realistic
//! generated year of business published in two halves.
//!
//! - **Live**: tierd frozen at the end of the first half consumes it and
//!   stops; the second half is published; tierd (same data dir) frozen at
//!   the end of the second half consumes it.
//! - **Replay**: a fresh tierd (new data dir, new group) frozen 400 days
//!   later consumes the whole log from offset 0.
//!
//! Time sweeps are off in all three runs: this test is about event time,
//! and a run frozen 400 days later would otherwise (rightly) have moved
//! tiers with time.
//!
//! Every customer must get the same answer from both: GetTier (tier, score,
//! since, evaluated_at, policy version) and ExplainTier (every indicator),
//! and the same as the core's fold of the same events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tier_core::Timestamp;
use tier_core::sim::Workload;
use tier_core::time::date;
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{ExplainTierRequest, GetTierRequest, TierChanged};
use tierd_tests::fault::check::Names;
use tierd_tests::fault::kafka::{read_all, watermarks};
use tierd_tests::fault::process::{ReadyInfo, TierdSetup, tierd_binary};
use tierd_tests::fault::{group_committed, unique};
use tierd_tests::{RawRecord, TestBroker, oracle, publish_records, runtime};

const PARTITIONS: i32 = 4;
const DAY_MS: i64 = 86_400_000;

/// What a customer's answers say, in comparable form.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    tier: String,
    score: f64,
    since: Option<prost_types::Timestamp>,
    evaluated_at: Option<prost_types::Timestamp>,
    policy_version: String,
    explained_score: f64,
    indicators: Vec<(String, bool, u64)>,
}

/// Wait until the group committed every input partition up to its end.
async fn wait_consumed(brokers: &str, group: &str, names: &Names) {
    let mut high = BTreeMap::new();
    for t in &names.inputs {
        for (p, (_, h)) in watermarks(brokers, t, PARTITIONS)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            high.insert((t.clone(), p as i32), h);
        }
    }
    let started = Instant::now();
    loop {
        let committed = group_committed(brokers, group, names).unwrap();
        let behind = committed
            .iter()
            .filter(|(tp, off)| high.get(tp).copied().unwrap_or(0) > off.unwrap_or(0))
            .count();
        if behind == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{behind} partitions behind after 240 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Run tierd frozen at `now` until it consumed the whole log, then read
/// every customer's answers and stop it with SIGTERM.
async fn run_and_read(
    setup: &TierdSetup,
    run: usize,
    names: &Names,
    ids: &[String],
) -> BTreeMap<String, Answer> {
    let mut child = setup.spawn(run).unwrap();
    let ready: ReadyInfo = child.wait_ready(Duration::from_secs(120)).await.unwrap();
    wait_consumed(&setup.brokers, &setup.group_id, names).await;
    let mut client = TierServiceClient::connect(format!("http://{}", ready.grpc))
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for id in ids {
        let Ok(t) = client
            .get_tier(GetTierRequest {
                customer_id: id.clone(),
            })
            .await
        else {
            continue; // not (yet) known: compared as absent
        };
        let t = t.into_inner();
        let e = client
            .explain_tier(ExplainTierRequest {
                customer_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        out.insert(
            id.clone(),
            Answer {
                tier: t.tier,
                score: t.score,
                since: t.since,
                evaluated_at: t.evaluated_at,
                policy_version: t.policy_version,
                explained_score: e.score,
                indicators: e
                    .indicators
                    .iter()
                    .map(|i| (i.name.clone(), i.known, i.value.to_bits()))
                    .collect(),
            },
        );
    }
    child.sigterm(Duration::from_secs(60)).await.unwrap();
    out
}

#[test]
fn a_live_run_in_two_steps_equals_a_replay_on_a_later_day() {
    runtime().block_on(async {
        let prefix = unique("replay");
        let names = Names::new(&prefix, 2, PARTITIONS);
        let broker = TestBroker::spawn(
            Path::new(env!("CARGO_BIN_EXE_tierd-testbroker")),
            1,
            &names.topics(),
        )
        .expect("testbroker starts");

        // Fourteen months of business for 400 customers.
        let end = Timestamp::from_millis(date(2026, 11, 20).millis() + 12 * 3_600_000);
        let mut w = Workload::new(400, 4_000, end);
        w.days = 425;
        w.seed = 7;
        let events = w.generate();
        let half = Timestamp::from_millis(end.millis() - 120 * DAY_MS);
        let (first, second): (Vec<_>, Vec<_>) =
            events.iter().cloned().partition(|e| e.occurred_at <= half);
        assert!(
            first.len() > 1_000 && second.len() > 500,
            "{} + {}",
            first.len(),
            second.len()
        );
        let records = |evs: &[tier_core::Event]| -> Vec<RawRecord> {
            evs.iter()
                .map(|e| {
                    let n: usize = e.customer_id.bytes().map(usize::from).sum();
                    RawRecord::event(&names.inputs[n % names.inputs.len()], e)
                })
                .collect()
        };
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();

        let tmp = tempfile::Builder::new()
            .prefix("tierd-replay-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let live = TierdSetup {
            exe: tierd_binary(),
            brokers: broker.bootstrap_servers().to_owned(),
            data_dir: tmp.path().join("live"),
            work_dir: tmp.path().to_owned(),
            topics: names.inputs.clone(),
            dlq_topic: names.dlq.clone(),
            tier_changes_topic: names.tier_changes.clone(),
            group_id: format!("{prefix}.live"),
            group_instance_id: format!("{prefix}.live-1"),
            session_timeout_ms: 6_000,
            frozen_now_ms: half.millis() + 3_600_000,
            // Event time only: the replay below runs 400 days later, when
            // time alone would have moved many tiers (time-driven changes
            // have their own tests in tiers_that_live.rs).
            extra_args: vec!["--time-sweeps".into(), "false".into()],
        };
        let ids: Vec<String> = {
            let mut ids: Vec<String> = events.iter().map(|e| e.customer_id.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        };

        // Live, step one: the first part, the clock frozen at its end.
        publish_records(&producer, &records(&first)).await;
        let step_one = run_and_read(&live, 1, &names, &ids).await;
        assert!(!step_one.is_empty());

        // Live, step two: the rest, the clock frozen at the end.
        publish_records(&producer, &records(&second)).await;
        let step_two = TierdSetup {
            frozen_now_ms: end.millis() + 3_600_000,
            ..live.clone()
        };
        let lived = run_and_read(&step_two, 2, &names, &ids).await;

        // Replay: a fresh data dir and group, 400 days later.
        let replay = TierdSetup {
            data_dir: tmp.path().join("replay"),
            group_id: format!("{prefix}.replay"),
            group_instance_id: format!("{prefix}.replay-1"),
            frozen_now_ms: end.millis() + 400 * DAY_MS,
            ..live.clone()
        };
        let replayed = run_and_read(&replay, 3, &names, &ids).await;

        assert_eq!(lived.len(), replayed.len(), "the same customers are known");
        let mut differ = Vec::new();
        for (id, a) in &lived {
            if replayed.get(id) != Some(a) {
                differ.push(format!("{id}: live {a:?}\n  replay {:?}", replayed.get(id)));
            }
        }
        assert!(
            differ.is_empty(),
            "{} of {} customers differ, first: {}",
            differ.len(),
            lived.len(),
            differ.first().unwrap()
        );

        // The last TierChanged of every customer (de-duplicated on the
        // sequence: both live runs and the replay published) describes the
        // same decision: tier, since, policy version.
        let mut last: BTreeMap<String, TierChanged> = BTreeMap::new();
        for r in read_all(broker.bootstrap_servers(), &names.tier_changes, PARTITIONS).unwrap() {
            if !r.is_tier_changed() {
                continue;
            }
            let msg = TierChanged::decode(r.payload.as_deref().unwrap_or_default()).unwrap();
            let held = last
                .entry(msg.customer_id.clone())
                .or_insert_with(|| msg.clone());
            if msg.sequence > held.sequence {
                *held = msg;
            }
        }
        assert_eq!(last.len(), lived.len());
        for (id, a) in &lived {
            let c = &last[id];
            assert_eq!(c.new_tier, a.tier, "{id}");
            assert_eq!(c.changed_at, a.since, "{id}");
            assert_eq!(c.policy_version, a.policy_version, "{id}");
        }

        // And both are the core's fold of the same events, the answers
        // agreeing among themselves.
        let (states, _) = oracle(&events);
        assert_eq!(states.len(), lived.len());
        for (id, s) in &states {
            let a = &lived[id];
            let held = s.assignment.as_ref().unwrap();
            assert_eq!(a.tier, held.tier, "{id}");
            assert_eq!(a.score, held.score, "{id}");
            assert_eq!(
                a.explained_score, a.score,
                "{id}: ExplainTier agrees with GetTier"
            );
            assert_eq!(a.policy_version, s.policy_version, "{id}");
            let at = a.evaluated_at.unwrap();
            assert_eq!(
                at.seconds * 1000 + i64::from(at.nanos / 1_000_000),
                s.decided_at.millis(),
                "{id}"
            );
        }
    });
}

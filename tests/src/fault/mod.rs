//! The fault harness: a seeded workload with known truth ([`workload`]),
//! its expected outcome ([`oracle`]), a paced producer and topic readers
//! ([`kafka`]), the real `tierd` binary as a child process ([`process`]),
//! and the verdict over tierd's data dir and output topics ([`check`]).
//! `tests/tests/crash.rs` drives them against a `tierd-testbroker`.

pub mod check;
pub mod kafka;
pub mod oracle;
pub mod process;
pub mod workload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tier_proto::api::BatchGetTiersRequest;
use tier_proto::api::tier_service_client::TierServiceClient;

use self::check::Names;
use self::oracle::Oracle;
use self::process::ReadyInfo;

/// The policy of the crash harness's tierd (`--policy`) and of its oracle:
/// the default policy with one assessment indicator, `potential` (scale
/// 1-5, valid 30 days), scored in the credit dimension, so assessments go
/// through the same kills, restarts and replays as orders and payments.
pub fn harness_policy_toml() -> String {
    let default = tier_core::policy::DEFAULT_POLICY_TOML;
    let replace = |text: String, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the default policy changed: {from:?} not found"
        );
        text.replacen(from, to, 1)
    };
    let text = replace(
        default.to_owned(),
        "version = \"default-2027.01\"",
        "version = \"crash-harness-2027.01\"",
    );
    let text = replace(
        text,
        "indicator = \"avg_days_late\"\nshare = 40",
        "indicator = \"avg_days_late\"\nshare = 20",
    );
    let text = replace(
        text,
        "[method.complaint_penalty]",
        "[[method.dimensions.parts]]\nindicator = \"potential\"\nshare = 20\nhigher_is_better = true\ncurve = [[1, 0], [5, 100]]\n\n[method.complaint_penalty]",
    );
    format!(
        "{text}\n[[assessments]]\nname = \"potential\"\nscale = {{ min = 1, max = 5 }}\nvalid_days = 30\nmissing_points = 50\n"
    )
}

/// [`harness_policy_toml`], parsed.
pub fn harness_policy() -> &'static tier_core::policy::Policy {
    static POLICY: std::sync::LazyLock<tier_core::policy::Policy> =
        std::sync::LazyLock::new(|| {
            match tier_core::policy::Policy::from_toml_str(&harness_policy_toml()) {
                Ok(p) => p,
                Err(e) => panic!("the crash harness policy does not parse: {e}"),
            }
        });
    &POLICY
}

/// A number from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `(topic, partition)`.
pub type Tp = (String, i32);

/// Offsets the consumer group has committed to Kafka, per input partition
/// (`None`: nothing committed). tierd commits to Kafka only after the same
/// offsets are committed to sled.
pub fn group_committed(
    brokers: &str,
    group: &str,
    names: &Names,
) -> anyhow::Result<Vec<(Tp, Option<i64>)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in &names.inputs {
        for p in 0..names.partitions {
            tpl.add_partition(t, p);
        }
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| {
            let off = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            ((e.topic().to_owned(), e.partition()), off)
        })
        .collect())
}

/// The highest offsets any of `groups` committed to Kafka, per input
/// partition. tierd commits to Kafka only after committing the same offsets
/// to sled, so these are offsets sled had durably reached.
pub fn max_committed(
    brokers: &str,
    groups: &[String],
    names: &Names,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut best: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for g in groups {
        for (tp, off) in group_committed(brokers, g, names)? {
            if let Some(off) = off {
                let e = best.entry(tp).or_insert(off);
                *e = (*e).max(off);
            }
        }
    }
    Ok(best)
}

/// What [`wait_caught_up`] last saw.
#[derive(Debug, Default)]
pub struct CatchUp {
    pub tiers_wrong: usize,
    pub partitions_behind: usize,
    pub elapsed: Duration,
}

/// Poll until the offsets committed to Kafka (by `group`, or earlier in
/// `baseline`, see [`max_committed`]) reach the log end (`high`) of every
/// input partition and every oracle customer has its expected tier over
/// gRPC (`BatchGetTiers`). Returns what it saw last; `Ok` with non-zero
/// counts on timeout.
#[allow(clippy::too_many_arguments)]
pub async fn wait_caught_up(
    ready: ReadyInfo,
    brokers: &str,
    group: &str,
    baseline: &BTreeMap<(String, i32), i64>,
    names: &Names,
    high: &BTreeMap<(String, i32), i64>,
    oracle: &Oracle,
    timeout: Duration,
) -> anyhow::Result<CatchUp> {
    let started = Instant::now();
    let mut client = TierServiceClient::connect(format!("http://{}", ready.grpc))
        .await
        .context("connecting to tierd's gRPC")?;
    let ids: Vec<String> = oracle.states.keys().cloned().collect();
    let mut last = CatchUp::default();
    loop {
        let committed = group_committed(brokers, group, names)?;
        last.partitions_behind = committed
            .iter()
            .filter(|(tp, off)| {
                let reached = off.unwrap_or(0).max(baseline.get(tp).copied().unwrap_or(0));
                high.get(tp).copied().unwrap_or(0) > reached
            })
            .count();
        last.tiers_wrong = 0;
        for chunk in ids.chunks(5_000) {
            let resp = client
                .batch_get_tiers(BatchGetTiersRequest {
                    customer_ids: chunk.to_vec(),
                })
                .await
                .context("BatchGetTiers")?
                .into_inner();
            for t in resp.tiers {
                let want = oracle
                    .states
                    .get(&t.customer_id)
                    .and_then(|s| s.assignment.as_ref())
                    .map(|a| a.tier.as_str());
                if !t.known || Some(t.tier.as_str()) != want {
                    last.tiers_wrong += 1;
                }
            }
        }
        last.elapsed = started.elapsed();
        if last.partitions_behind == 0 && last.tiers_wrong == 0 {
            return Ok(last);
        }
        if started.elapsed() > timeout {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

//! The verdict: tierd's data dir (of the backend under test, see
//! [`test_store_backend`]) and the output topics against the oracle. Every disagreement is collected (not just the first) so a
//! failure report says which customers, partitions and offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::Context as _;
use prost::Message as _;
use tier_core::IndicatorName;
use tier_core::policy::Policy;
use tier_core::state::CustomerState;
use tier_proto::api;
use tier_store::{AnyStore, Backend, Store as _, StoreOptions};

use super::kafka::{Landed, read_all, watermarks};
use super::oracle::{Oracle, Transition};
use super::workload::{Truth, Workload};

/// Environment variable naming the store backend the fault harness runs
/// tierd with and checks the data dir as (`sled`, `fjall`, `redb`; default
/// sled). fjall and redb need the tests crate's `store-fjall` /
/// `store-redb` features.
pub const STORE_BACKEND_ENV: &str = "TIERD_TEST_STORE_BACKEND";

/// The store backend under test, from [`STORE_BACKEND_ENV`]; an error
/// names the backends this build has when it is unknown or not compiled in.
pub fn test_store_backend() -> anyhow::Result<Backend> {
    match std::env::var(STORE_BACKEND_ENV) {
        Ok(name) if !name.trim().is_empty() => name
            .parse()
            .with_context(|| format!("{STORE_BACKEND_ENV}={name}")),
        _ => Ok(Backend::Sled),
    }
}

/// Topic names of one test.
#[derive(Debug, Clone)]
pub struct Names {
    pub inputs: Vec<String>,
    pub dlq: String,
    pub tier_changes: String,
    pub partitions: i32,
}

impl Names {
    /// The topics of one test under `prefix`: `inputs` input topics, the
    /// dead-letter and tier-change topics, each of `partitions` partitions.
    pub fn new(prefix: &str, inputs: usize, partitions: i32) -> Self {
        Self {
            inputs: (0..inputs).map(|i| format!("{prefix}.in{i}")).collect(),
            dlq: format!("{prefix}.dlq"),
            tier_changes: format!("{prefix}.tier-changes"),
            partitions,
        }
    }

    /// `(name, partitions)` of every topic, for the test broker.
    pub fn topics(&self) -> Vec<(&str, i32)> {
        self.all()
            .into_iter()
            .map(|t| (t, self.partitions))
            .collect()
    }

    pub fn all(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .map(String::as_str)
            .chain([self.dlq.as_str(), self.tier_changes.as_str()])
            .collect()
    }
}

/// What was found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failures: Vec<String>,
    pub customers_expected: usize,
    pub customers_stored: usize,
    pub state_mismatches: usize,
    pub offsets_checked: usize,
    pub offset_mismatches: usize,
    pub change_records: usize,
    pub change_duplicates: usize,
    pub change_mismatches: usize,
    pub dlq_records: usize,
    pub dlq_duplicates: usize,
    pub dlq_mismatches: usize,
    pub outbox_left: usize,
}

const MAX_REPORTED: usize = 15;

/// Count a problem; describe only the first [`MAX_REPORTED`] of a kind.
fn note(out: &mut Vec<String>, counter: &mut usize, msg: impl FnOnce() -> String) {
    *counter += 1;
    if *counter <= MAX_REPORTED {
        out.push(msg());
    } else if *counter == MAX_REPORTED + 1 {
        out.push("(more of the same kind left out)".into());
    }
}

/// Where a customer's records went, for failure reports.
fn whereabouts(w: &Workload, names: &Names, landed: &[Landed], customer: &str) -> String {
    let mut parts: BTreeSet<(usize, i32)> = BTreeSet::new();
    let mut offsets = Vec::new();
    for (r, l) in w.records.iter().zip(landed) {
        if let Truth::Valid(e) = &r.truth
            && e.customer_id == customer
        {
            parts.insert((r.topic, l.partition));
            offsets.push(l.offset);
        }
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|(t, p)| format!("{}[{p}]", names.inputs[*t]))
        .collect();
    let shown: Vec<String> = offsets.iter().take(40).map(i64::to_string).collect();
    format!(
        "{} at offsets {}{}",
        parts.join(","),
        shown.join(","),
        if offsets.len() > 40 { ",..." } else { "" }
    )
}

fn indicator_diff(policy: &Policy, got: &CustomerState, want: &CustomerState) -> String {
    let g = got.indicators(policy);
    let x = want.indicators(policy);
    let mut diffs = Vec::new();
    for name in IndicatorName::ALL {
        let (a, b) = (g.get(name), x.get(name));
        if a != b {
            diffs.push(format!("{name}: stored {a:?}, expected {b:?}"));
        }
    }
    if diffs.is_empty() {
        "indicators equal; the projections differ in records kept".into()
    } else {
        diffs.join("; ")
    }
}

/// Compare the stopped tierd's data dir and the topics with the oracle.
pub fn check(
    brokers: &str,
    names: &Names,
    data_dir: &Path,
    w: &Workload,
    oracle: &Oracle,
    landed: &[Landed],
) -> anyhow::Result<Outcome> {
    let mut o = Outcome::default();
    let mut failures = Vec::new();
    let policy = w.spec.policy();

    anyhow::ensure!(
        landed.len() == w.records.len(),
        "harness defect: {} records published, {} delivery reports",
        w.records.len(),
        landed.len()
    );
    // The harness itself: every customer's valid records share one partition.
    let mut home: HashMap<&str, (usize, i32)> = HashMap::new();
    for (r, l) in w.records.iter().zip(landed) {
        if let Truth::Valid(e) = &r.truth {
            let h = home
                .entry(e.customer_id.as_str())
                .or_insert((r.topic, l.partition));
            anyhow::ensure!(
                *h == (r.topic, l.partition),
                "harness defect: customer {} has records in two partitions",
                e.customer_id
            );
        }
    }

    // State, offsets and outbox, straight from the store; written by the
    // backend under test (a tierd that ignored its flag would not pass).
    let backend = test_store_backend()?;
    anyhow::ensure!(
        Backend::detect(data_dir) == Some(backend),
        "data dir {} holds {:?} files, but tierd ran with store backend {backend}",
        data_dir.display(),
        Backend::detect(data_dir)
    );
    let store = AnyStore::open(backend, data_dir, StoreOptions::default())
        .with_context(|| format!("opening {}", data_dir.display()))?;
    let mut stored: BTreeMap<String, CustomerState> = BTreeMap::new();
    for item in store.scan_customers::<CustomerState>() {
        let (id, s) = item.context("scanning customers")?;
        stored.insert(id, s);
    }
    let offsets = store.offsets().context("reading offsets")?;
    o.outbox_left = store.outbox_len().context("outbox length")?;
    drop(store);
    o.customers_expected = oracle.states.len();
    o.customers_stored = stored.len();
    let mut n = 0;
    for (id, want) in &oracle.states {
        let Some(got) = stored.get(id) else {
            note(&mut failures, &mut n, || {
                format!(
                    "customer {id} is missing from the store (expected tier {:?}, sequence {}); its records: {}",
                    want.assignment.as_ref().map(|a| &a.tier),
                    want.sequence,
                    whereabouts(w, names, landed, id)
                )
            });
            continue;
        };
        let tier = |s: &CustomerState| s.assignment.as_ref().map(|a| a.tier.to_string());
        if got.projection != want.projection
            || tier(got) != tier(want)
            || got.sequence != want.sequence
        {
            note(&mut failures, &mut n, || {
                format!(
                    "customer {id}: stored tier {:?} seq {} vs expected {:?} seq {}; {}; records: {}",
                    tier(got),
                    got.sequence,
                    tier(want),
                    want.sequence,
                    indicator_diff(&policy, got, want),
                    whereabouts(w, names, landed, id)
                )
            });
        }
    }
    for id in stored.keys().filter(|id| !oracle.states.contains_key(*id)) {
        note(&mut failures, &mut n, || {
            format!("customer {id} is stored but the oracle never applied an event of it")
        });
    }
    o.state_mismatches = n;
    if o.outbox_left > 0 {
        failures.push(format!(
            "{} outbox rows were still in the store after a graceful stop",
            o.outbox_left
        ));
    }

    // Offsets == log end of every input partition; every log starts at 0.
    let mut expected_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut n = 0;
    for topic in names.all() {
        let marks = watermarks(brokers, topic, names.partitions)?;
        for (p, (low, high)) in marks.iter().enumerate() {
            if *low != 0 {
                note(&mut failures, &mut n, || {
                    format!(
                        "{topic}[{p}] starts at offset {low}, not 0: the broker trimmed the log"
                    )
                });
            }
            if names.inputs.iter().any(|t| t == topic) && *high > 0 {
                expected_offsets.insert((topic.to_owned(), p as i32), *high);
            }
        }
    }
    let stored_offsets: BTreeMap<(String, i32), i64> = offsets
        .into_iter()
        .map(|(t, p, off)| ((t, p), off))
        .collect();
    o.offsets_checked = expected_offsets.len();
    for (tp, high) in &expected_offsets {
        match stored_offsets.get(tp) {
            Some(s) if s == high => {}
            got => note(&mut failures, &mut n, || {
                format!(
                    "{}[{}]: stored next offset {got:?}, log end {high}",
                    tp.0, tp.1
                )
            }),
        }
    }
    for (tp, off) in &stored_offsets {
        if !expected_offsets.contains_key(tp) {
            note(&mut failures, &mut n, || {
                format!(
                    "{}[{}]: stored offset {off} for a partition that is empty or not an input",
                    tp.0, tp.1
                )
            });
        }
    }
    o.offset_mismatches = n;

    // Tier changes: de-duplicated on (customer, sequence), equal to the oracle.
    let records = read_all(brokers, &names.tier_changes, names.partitions)?;
    o.change_records = records.len();
    let mut seen: BTreeMap<(String, u64), Transition> = BTreeMap::new();
    let mut n = 0;
    for r in records.iter().filter(|r| r.is_tier_changed()) {
        let msg = match api::TierChanged::decode(r.payload.as_deref().unwrap_or_default()) {
            Ok(m) => m,
            Err(e) => {
                note(&mut failures, &mut n, || {
                    format!(
                        "tier-changes[{}]@{}: not a TierChanged: {e}",
                        r.partition, r.offset
                    )
                });
                continue;
            }
        };
        if r.key.as_deref() != Some(msg.customer_id.as_bytes()) {
            note(&mut failures, &mut n, || {
                format!(
                    "tier-changes[{}]@{}: key {:?} differs from customer {}",
                    r.partition,
                    r.offset,
                    r.key.as_deref().map(String::from_utf8_lossy),
                    msg.customer_id
                )
            });
        }
        let customer = msg.customer_id.clone();
        let t = Transition::from(msg);
        match seen.get(&(customer.clone(), t.sequence)) {
            Some(prev) => {
                o.change_duplicates += 1;
                if *prev != t {
                    note(&mut failures, &mut n, || {
                        format!(
                            "customer {customer} sequence {} published twice with different content: {prev:?} vs {t:?} (tier-changes[{}]@{})",
                            t.sequence, r.partition, r.offset
                        )
                    });
                }
            }
            None => {
                seen.insert((customer, t.sequence), t);
            }
        }
    }
    let mut got: BTreeMap<String, Vec<Transition>> = BTreeMap::new();
    for ((c, _), t) in seen {
        got.entry(c).or_default().push(t);
    }
    for (c, want) in &oracle.transitions {
        let have = got.remove(c).unwrap_or_default();
        if have != *want {
            let first = have
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(have.len().min(want.len()));
            note(&mut failures, &mut n, || {
                format!(
                    "customer {c}: {} tier changes published, {} expected; first difference at #{first}: published {:?}, expected {:?}",
                    have.len(),
                    want.len(),
                    have.get(first),
                    want.get(first)
                )
            });
        }
    }
    for (c, have) in got {
        note(&mut failures, &mut n, || {
            format!(
                "customer {c}: {} tier changes published, none expected",
                have.len()
            )
        });
    }
    o.change_mismatches = n;

    // Dead letters: de-duplicated on their source, exactly the malformed records.
    let mut expected_dead: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for (i, (r, l)) in w.records.iter().zip(landed).enumerate() {
        if let Truth::Malformed(_) = r.truth {
            expected_dead.insert((names.inputs[r.topic].clone(), l.partition, l.offset), i);
        }
    }
    let records = read_all(brokers, &names.dlq, names.partitions)?;
    o.dlq_records = records.len();
    let mut n = 0;
    let mut found: BTreeSet<(String, i32, i64)> = BTreeSet::new();
    for r in &records {
        let src = (|| {
            Some((
                r.header("tierd-topic")?.to_owned(),
                r.header("tierd-partition")?.parse::<i32>().ok()?,
                r.header("tierd-offset")?.parse::<i64>().ok()?,
            ))
        })();
        let Some(src) = src else {
            note(&mut failures, &mut n, || {
                format!(
                    "dlq[{}]@{}: source headers missing or bad: {:?}",
                    r.partition, r.offset, r.headers
                )
            });
            continue;
        };
        if !found.insert(src.clone()) {
            o.dlq_duplicates += 1;
            continue;
        }
        let Some(&i) = expected_dead.get(&src) else {
            note(&mut failures, &mut n, || {
                format!(
                    "dlq[{}]@{}: dead letter for {}[{}]@{} ({:?}), which is not a malformed record",
                    r.partition,
                    r.offset,
                    src.0,
                    src.1,
                    src.2,
                    r.header("tierd-reason")
                )
            });
            continue;
        };
        let rec = &w.records[i];
        let Truth::Malformed(reason) = rec.truth else {
            continue;
        };
        if r.header("tierd-reason") != Some(reason.as_str()) {
            note(&mut failures, &mut n, || {
                format!(
                    "{}[{}]@{}: dead-lettered as {:?} ({:?}), expected {}",
                    src.0,
                    src.1,
                    src.2,
                    r.header("tierd-reason"),
                    r.header("tierd-detail"),
                    reason.as_str()
                )
            });
        }
        let key = rec.key.as_deref().map(str::as_bytes);
        let payload = rec.payload.as_deref().filter(|p| !p.is_empty());
        if r.key.as_deref() != key || r.payload.as_deref().filter(|p| !p.is_empty()) != payload {
            note(&mut failures, &mut n, || {
                format!(
                    "{}[{}]@{}: the dead letter does not carry the original key and payload",
                    src.0, src.1, src.2
                )
            });
        }
    }
    for (src, i) in &expected_dead {
        if !found.contains(src) {
            note(&mut failures, &mut n, || {
                format!(
                    "malformed record {i} at {}[{}]@{} ({:?}) never reached the DLQ",
                    src.0, src.1, src.2, w.records[*i].truth
                )
            });
        }
    }
    o.dlq_mismatches = n;
    o.failures = failures;
    Ok(o)
}

//! "Nothing lost, nothing counted twice" for what time, managers and policy
//! changes do: the real `tierd` binary is SIGKILLed while it sweeps due
//! customers and while it rescores them under a new policy, on a clock
//! stepped from run to run (`--frozen-now-ms`), with overrides set in
//! between. Its data dir and its tier-change topic are then compared with
//! an oracle: tier-engine driven once, without faults, through the same
//! steps.
//!
//! The whole backlog is published before tierd first starts, so every
//! sweep comes after every event (tierd sweeps only once caught up) and the
//! oracle's order of work is tierd's.
//!
//! Knobs: `TIERD_FAULT_SEED`, `TIERD_FAULT_KILLS` (per phase, default 3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use prost::Message as _;
use tier_core::Timestamp;
use tier_core::overrides::OverrideMode;
use tier_core::policy::Policy;
use tier_core::sim::SplitMix64;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_engine::{Engine, SetOverride, Unit};
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{self, ApplyPolicyRequest, GetPolicyStatusRequest, SetOverrideRequest};
use tierd_tests::fault::check::Names;
use tierd_tests::fault::kafka::{publish_paced, read_all};
use tierd_tests::fault::process::{ReadyInfo, TierdChild, TierdSetup, tierd_binary};
use tierd_tests::fault::workload::{Truth, Workload, WorkloadSpec};
use tierd_tests::fault::{env_or, unique};
use tierd_tests::{TestBroker, http_get, runtime};

const PARTITIONS: i32 = 4;
const INPUTS: usize = 4;
const SLICE: &str = "100";

/// A tier change as compared: `(sequence, old, new, cause, changed_at ms)`.
type Change = (u64, String, String, i32, i64);

/// The oracle: the engine, driven once through the test's steps.
struct Oracle {
    engine: Engine,
    changes: BTreeMap<String, Vec<Change>>,
    notices: BTreeSet<(String, String, i64)>,
    /// Complaints announced overdue: `(customer, complaint, deadline ms)`.
    overdue: BTreeSet<(String, String, i64)>,
}

impl Oracle {
    fn take(&mut self, unit: Unit) {
        for c in unit.changes {
            self.changes
                .entry(c.customer_id.clone())
                .or_default()
                .push((
                    c.sequence,
                    c.old_tier.unwrap_or_default(),
                    c.new_tier,
                    tier_wire::tier_changed::cause_to_proto(c.cause) as i32,
                    c.changed_at.millis(),
                ));
        }
        for r in unit.at_risk {
            self.notices
                .insert((r.customer_id, r.falls_to, r.on.millis()));
        }
        for o in unit.overdue {
            self.overdue
                .insert((o.customer_id, o.complaint_id, o.deadline.at.millis()));
        }
    }

    fn sweep(&mut self, now: Timestamp) {
        loop {
            let mut unit = Unit::new();
            let n = self.engine.sweep(&mut unit, now, 100);
            self.engine.seal(&unit);
            self.take(unit);
            if n == 0 {
                break;
            }
        }
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Wait until tierd has consumed everything and swept up to its clock.
async fn wait_swept(ready: ReadyInfo, timeout: Duration) {
    let started = std::time::Instant::now();
    loop {
        let text = http_get(ready.metrics, "/metrics").await;
        if metric(&text, "tierd_sweep_backlog") == Some(0.0) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the sweep did not finish in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a run is watched for before it is killed.
#[derive(Debug, Clone, Copy)]
enum Watch {
    Sweeping,
    /// A rescore of slices of 100 taken back to back is over within a
    /// few hundred milliseconds: watched closely, killed soon after.
    Rescoring,
}

impl Watch {
    fn seen(self, d: Doing) -> bool {
        match self {
            Watch::Sweeping => d.sweeping,
            Watch::Rescoring => d.rescoring,
        }
    }

    fn poll(self) -> Duration {
        match self {
            Watch::Sweeping => Duration::from_millis(20),
            Watch::Rescoring => Duration::from_millis(2),
        }
    }

    /// The random delay between seeing it and the kill is below this.
    fn delay_ms(self) -> u64 {
        match self {
            Watch::Sweeping => 300,
            Watch::Rescoring => 20,
        }
    }
}

/// Wait until the run is seen doing `what`, at most `max_ms`.
async fn wait_doing(ready: ReadyInfo, what: Watch, max_ms: u64) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(max_ms)
        && !what.seen(Doing::of(&http_get(ready.metrics, "/metrics").await))
    {
        tokio::time::sleep(what.poll()).await;
    }
}

/// What a run was doing just before it was killed.
#[derive(Debug, Clone, Copy, Default)]
struct Doing {
    /// Swept customers, with more still due.
    sweeping: bool,
    /// Rescored some customers, with more to go.
    rescoring: bool,
}

impl Doing {
    fn of(metrics: &str) -> Self {
        let swept = metric(metrics, "tierd_swept_customers_total").unwrap_or(0.0);
        let backlog = metric(metrics, "tierd_sweep_backlog").unwrap_or(0.0);
        let progress = metric(metrics, "tierd_policy_rescore_progress").unwrap_or(1.0);
        Self {
            sweeping: swept > 0.0 && backlog > 0.0,
            rescoring: progress > 0.0 && progress < 1.0,
        }
    }
}

struct World {
    prefix: String,
    _broker: TestBroker,
    names: Names,
    setup: TierdSetup,
    _tmp: tempfile::TempDir,
    run: usize,
    rng: SplitMix64,
}

impl World {
    fn at(&self, now: Timestamp) -> TierdSetup {
        // A group of its own per run: the mock cluster has no static
        // membership, and a killed member would block a shared group.
        let mut s = self.setup.with_membership(
            &format!("{}.g{}", self.prefix, self.run),
            &format!("{}.i{}", self.prefix, self.run),
        );
        s.frozen_now_ms = now.millis();
        s
    }

    async fn start(&mut self, now: Timestamp) -> (TierdChild, ReadyInfo) {
        self.run += 1;
        let mut child = self.at(now).spawn(self.run).unwrap();
        let ready = child.wait_ready(Duration::from_secs(120)).await.unwrap();
        (child, ready)
    }

    /// Start and SIGKILL `kills` times at `now`, each run once it is seen
    /// doing `what` (see [`World::kill_when`]). Returns what each run was
    /// doing when it was killed.
    async fn kill_runs(
        &mut self,
        now: Timestamp,
        kills: usize,
        what: Watch,
        max_ms: u64,
    ) -> Vec<Doing> {
        let mut doing = Vec::new();
        for _ in 0..kills {
            let (child, ready) = self.start(now).await;
            doing.push(self.kill_when(child, ready, what, max_ms).await);
        }
        doing
    }

    /// SIGKILL a run once it is seen doing `what` (or after `max_ms`),
    /// after a random delay (see [`Watch::delay_ms`]). Returns what it was
    /// doing when it was killed.
    async fn kill_when(
        &mut self,
        child: TierdChild,
        ready: ReadyInfo,
        what: Watch,
        max_ms: u64,
    ) -> Doing {
        wait_doing(ready, what, max_ms).await;
        tokio::time::sleep(Duration::from_millis(self.rng.next_u64() % what.delay_ms())).await;
        let doing = Doing::of(&http_get(ready.metrics, "/metrics").await);
        child.sigkill().unwrap();
        doing
    }
}

fn stricter() -> String {
    tier_core::sim::scenario::stricter_bands(
        tier_core::policy::DEFAULT_POLICY_TOML,
        "strict-crash",
        5.0,
    )
}

#[test]
fn kills_during_sweeps_and_rescores_lose_nothing_and_repeat_nothing() {
    runtime().block_on(async {
        let seed: u64 = env_or("TIERD_FAULT_SEED", 7);
        let kills: usize = env_or("TIERD_FAULT_KILLS", 3);
        let prefix = unique("crash-time");
        let names = Names::new(&prefix, INPUTS, PARTITIONS);
        let broker = TestBroker::spawn(
            Path::new(env!("CARGO_BIN_EXE_tierd-testbroker")),
            1,
            &names.topics(),
        )
        .unwrap();
        let t1 = Timestamp(date(2026, 11, 20).millis() + 12 * 3_600_000);
        let t2 = t1.plus_days(40);
        let workload = Workload::build(WorkloadSpec {
            seed,
            events: 20_000,
            customers: 1_500,
            now: t1,
            topics: INPUTS,
            assessments: false,
        });
        let workload = Arc::new(workload);
        publish_paced(
            broker.bootstrap_servers().to_owned(),
            names.inputs.clone(),
            workload.clone(),
            1e9,
            Arc::new(AtomicUsize::new(0)),
        )
        .await
        .unwrap();

        let tmp = tempfile::Builder::new()
            .prefix("tierd-crash-time-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let setup = TierdSetup {
            exe: tierd_binary(),
            brokers: broker.bootstrap_servers().to_owned(),
            data_dir: tmp.path().join("data"),
            work_dir: tmp.path().to_owned(),
            topics: names.inputs.clone(),
            dlq_topic: names.dlq.clone(),
            tier_changes_topic: names.tier_changes.clone(),
            group_id: String::new(),
            group_instance_id: String::new(),
            session_timeout_ms: 5_000,
            frozen_now_ms: t1.millis(),
            extra_args: vec![
                "--engine-slice".into(),
                SLICE.into(),
                // Most customers held encoded: kills land while customers
                // are decoded, changed and encoded again.
                "--hot-customers".into(),
                "200".into(),
                // Probe every 500 ms: caught up (and sweeping) sooner.
                "--stall-after-ms".into(),
                "2000".into(),
            ],
        };
        let mut w = World {
            prefix,
            _broker: broker,
            names,
            setup,
            _tmp: tmp,
            run: 0,
            rng: SplitMix64::new(seed),
        };

        // The oracle: every event, a sweep to t1, the overrides at t1, a
        // sweep to t2, the new policy applied at t2 and its rescore.
        let policy = Arc::new(Policy::default_policy());
        let mut o = Oracle {
            engine: Engine::new(policy, [], t1),
            changes: BTreeMap::new(),
            notices: BTreeSet::new(),
            overdue: BTreeSet::new(),
        };
        let mut unit = Unit::new();
        for r in &workload.records {
            if let Truth::Valid(e) = &r.truth {
                o.engine.fold(&mut unit, e);
            }
        }
        o.engine.seal(&unit);
        o.take(unit);
        o.sweep(t1);
        // Overrides on customers in each tier above the lowest.
        let mut targets: Vec<(String, String)> = o
            .engine
            .customers()
            .filter_map(|(id, s)| Some((id.to_owned(), s.tier()?.to_owned())))
            .collect();
        targets.sort();
        let commands: Vec<SetOverride> = targets
            .iter()
            .step_by(97)
            .take(12)
            .enumerate()
            .map(|(i, (id, _))| SetOverride {
                customer_id: id.clone(),
                tier: ["A", "C", "B"][i % 3].into(),
                mode: [
                    OverrideMode::Pin,
                    OverrideMode::Floor,
                    OverrideMode::Ceiling,
                ][i % 3],
                reason: format!("crash test {i}"),
                author: "harness".into(),
                // Half expire between t1 and t2: swept under kills.
                expires_at: (i % 2 == 0).then(|| t1.plus_days(10 + i as i64)),
            })
            .collect();
        for c in &commands {
            let mut unit = Unit::new();
            o.engine.set_override(&mut unit, c.clone(), t1).unwrap();
            o.engine.seal(&unit);
            o.take(unit);
        }
        o.sweep(t2);
        let new_policy = Arc::new(Policy::from_toml_str(&stricter()).unwrap());
        o.engine.apply_policy(new_policy, t2);
        while o.engine.rescoring() {
            let mut unit = Unit::new();
            o.engine.rescore(&mut unit, 100);
            o.engine.sweep(&mut unit, t2, 100);
            o.engine.seal(&unit);
            o.take(unit);
        }
        o.sweep(t2);

        // Phase 1 (t1): killed while consuming and sweeping, then a run
        // that finishes the sweep and takes the overrides.
        let mut doing = w.kill_runs(t1, kills, Watch::Sweeping, 20_000).await;
        let (child, ready) = w.start(t1).await;
        wait_swept(ready, Duration::from_secs(180)).await;
        let mut admin = AdminServiceClient::connect(format!("http://{}", ready.grpc))
            .await
            .unwrap();
        for c in &commands {
            admin
                .set_override(SetOverrideRequest {
                    customer_id: c.customer_id.clone(),
                    tier: c.tier.clone(),
                    mode: match c.mode {
                        OverrideMode::Pin => api::OverrideMode::Pin,
                        OverrideMode::Floor => api::OverrideMode::Floor,
                        OverrideMode::Ceiling => api::OverrideMode::Ceiling,
                    } as i32,
                    reason: c.reason.clone(),
                    author: c.author.clone(),
                    expires_at: c.expires_at.map(tier_wire::time::to_proto),
                })
                .await
                .unwrap();
        }
        // Acknowledged overrides are durable: a SIGKILL now loses none.
        child.sigkill().unwrap();

        // Phase 2 (t2): killed while sweeping 40 days (overrides expire).
        doing.extend(w.kill_runs(t2, kills, Watch::Sweeping, 20_000).await);

        // Phase 3 (t2): the new policy, then killed while rescoring.
        let (child, ready) = w.start(t2).await;
        wait_swept(ready, Duration::from_secs(180)).await;
        let mut admin = AdminServiceClient::connect(format!("http://{}", ready.grpc))
            .await
            .unwrap();
        let status = admin
            .apply_policy(ApplyPolicyRequest {
                policy_text: stricter(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(status.rescoring, "a rescore in slices of {SLICE}");
        doing.push(w.kill_when(child, ready, Watch::Rescoring, 3_000).await);
        doing.extend(
            w.kill_runs(t2, kills.saturating_sub(1), Watch::Rescoring, 3_000)
                .await,
        );

        // The last run finishes the rescore and the sweep, then stops.
        let (child, ready) = w.start(t2).await;
        let mut reads = TierServiceClient::connect(format!("http://{}", ready.grpc))
            .await
            .unwrap();
        loop {
            let s = reads
                .get_policy_status(GetPolicyStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            if s.version == "strict-crash" && !s.rescoring {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_swept(ready, Duration::from_secs(180)).await;
        // Let the outbox drain before the stop (a stop also drains it).
        let exit = child.sigterm(Duration::from_secs(60)).await.unwrap();
        assert!(exit.success(), "{exit}");

        // The kills did land where they should.
        println!("killed while: {doing:?}");
        assert!(
            doing.iter().any(|d| d.sweeping),
            "no kill during a sweep: {doing:?}"
        );
        assert!(
            doing.iter().any(|d| d.rescoring),
            "no kill during a rescore: {doing:?}"
        );

        // Stored state equals the oracle's, customer by customer.
        let stored = tierd_tests::stored_states(&w.setup.data_dir);
        let expected: BTreeMap<&str, std::borrow::Cow<'_, CustomerState>> =
            o.engine.customers().collect();
        assert_eq!(stored.len(), expected.len(), "customers stored");
        let mut differ = Vec::new();
        for (id, want) in &expected {
            let got = &stored[*id];
            let same = got.projection == want.projection
                && got.assignment == want.assignment
                && got.effective == want.effective
                && got.sequence == want.sequence
                && got.decided_at == want.decided_at
                && got.policy_version == want.policy_version
                && got.manual() == want.manual()
                && got.override_history() == want.override_history()
                && got.at_risk == want.at_risk;
            if !same {
                differ.push(*id);
            }
        }
        assert!(
            differ.is_empty(),
            "{} customers differ, e.g. {:?}",
            differ.len(),
            &differ[..differ.len().min(5)]
        );

        // Every tier change published, each once per (customer, sequence),
        // and exactly the oracle's; every at-risk notice too.
        let records =
            read_all(w.setup.brokers.as_str(), &w.names.tier_changes, PARTITIONS).unwrap();
        let mut published: BTreeMap<String, BTreeMap<u64, Change>> = BTreeMap::new();
        let mut notices = BTreeSet::new();
        let mut overdue = BTreeSet::new();
        let millis = |t: Option<prost_types::Timestamp>| {
            t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        };
        for r in records {
            let payload = r.payload.clone().unwrap_or_default();
            if r.header("tierd-type") == Some("ComplaintOverdue") {
                let n = api::ComplaintOverdue::decode(payload.as_slice()).unwrap();
                overdue.insert((n.customer_id, n.complaint_id, millis(n.deadline)));
                continue;
            }
            if r.header("tierd-type") == Some("TierAtRisk") {
                let n = api::TierAtRisk::decode(payload.as_slice()).unwrap();
                let on =
                    n.on.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
                notices.insert((n.customer_id, n.falls_to, on));
                continue;
            }
            let c = api::TierChanged::decode(payload.as_slice()).unwrap();
            let at = c
                .changed_at
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            let change = (c.sequence, c.old_tier, c.new_tier, c.cause, at);
            let seen = published.entry(c.customer_id.clone()).or_default();
            if let Some(earlier) = seen.get(&c.sequence) {
                assert_eq!(
                    earlier, &change,
                    "a re-sent change differs for {}",
                    c.customer_id
                );
            }
            seen.insert(c.sequence, change);
        }
        let published: BTreeMap<String, Vec<Change>> = published
            .into_iter()
            .map(|(k, v)| (k, v.into_values().collect()))
            .collect();
        let causes: BTreeSet<i32> = o.changes.values().flatten().map(|c| c.3).collect();
        assert!(
            causes.len() >= 4,
            "the oracle has changes of every cause: {causes:?}"
        );
        assert_eq!(published.len(), o.changes.len(), "customers with changes");
        for (id, want) in &o.changes {
            assert_eq!(published.get(id), Some(want), "changes of {id}");
        }
        assert!(!o.notices.is_empty());
        assert_eq!(notices, o.notices, "at-risk notices");
        assert!(
            !o.overdue.is_empty(),
            "the workload has complaints left open"
        );
        assert_eq!(overdue, o.overdue, "complaint-overdue notices");
    });
}

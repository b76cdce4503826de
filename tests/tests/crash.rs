//! "Nothing lost, nothing counted twice": the real `tierd` binary is
//! SIGKILLed (or SIGTERMed) over and over while a seeded workload with known
//! truth streams in through a broker that lives in a process of its own
//! (`tierd-testbroker`); then tierd's sled data dir and its output topics
//! are compared with an oracle that folded the same workload once, without
//! faults.
//!
//! Knobs (environment): `TIERD_FAULT_SCALE` multiplies events and
//! customers; `TIERD_FAULT_KILLS` (default 50); `TIERD_FAULT_SEED`;
//! `TIERD_FAULT_PRODUCE_SECS` (how long the workload streams in);
//! `TIERD_FAULT_SESSION_MS` (consumer session timeout); `TIERD_FAULT_LOG`
//! (tierd's `RUST_LOG`); `TIERD_FAULT_KAFKA` (more librdkafka settings for
//! tierd, `k=v;k=v`, e.g. `debug=cgrp`). tierd's logs (JSON lines) and data
//! dir are kept under `target/tmp/` when a test fails, or when
//! `TIERD_FAULT_KEEP` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tier_core::Timestamp;
use tier_core::sim::SplitMix64;
use tier_core::time::date;
use tierd_tests::fault::check::{Names, Outcome, check};
use tierd_tests::fault::kafka::{Landed, publish_paced, watermarks};
use tierd_tests::fault::oracle::Oracle;
use tierd_tests::fault::process::{TierdSetup, tierd_binary};
use tierd_tests::fault::workload::{Workload, WorkloadSpec};
use tierd_tests::fault::{CatchUp, env_or, max_committed, unique, wait_caught_up};
use tierd_tests::{TestBroker, runtime};

const PARTITIONS: i32 = 16;
const INPUTS: usize = 4;

/// One test at a time: both start brokers and tierd processes, and the
/// machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// A broker process, topics, a workload and its oracle, a tierd setup.
struct World {
    prefix: String,
    broker: TestBroker,
    names: Names,
    tmp: tempfile::TempDir,
    setup: TierdSetup,
    workload: Arc<Workload>,
    oracle: Oracle,
}

impl World {
    fn new(tag: &str, seed: u64, events: usize, customers: usize) -> Self {
        let prefix = unique(&format!("fault-{tag}"));
        let names = Names::new(&prefix, INPUTS, PARTITIONS);
        let broker = TestBroker::spawn(
            Path::new(env!("CARGO_BIN_EXE_tierd-testbroker")),
            1,
            &names.topics(),
        )
        .expect("testbroker starts");

        // Noon of a fixed day: tierd runs frozen at this instant.
        let now = Timestamp(date(2026, 11, 20).millis() + 12 * 3_600_000);
        let workload = Workload::build(WorkloadSpec {
            seed,
            events,
            customers,
            now,
            topics: INPUTS,
            // CustomerAssessed events too, for the harness policy.
            assessments: true,
        });
        let problems = workload.self_check();
        assert!(
            problems.is_empty(),
            "workload truth disagrees with tierd's decoder ({} records), first: {:#?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        );
        let oracle = Oracle::fold(&workload);

        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("tierd-fault-{tag}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // Kept for inspection unless the test passes.
        tmp.disable_cleanup(true);
        // Above the mock cluster's 3 s initial rebalance delay: a member
        // joining an empty group must not time out before the first election.
        let session_ms: u32 = env_or("TIERD_FAULT_SESSION_MS", 5_000);
        let policy_file = tmp.path().join("policy.toml");
        std::fs::write(&policy_file, tierd_tests::fault::harness_policy_toml()).unwrap();
        let setup = TierdSetup {
            exe: tierd_binary(),
            brokers: broker.bootstrap_servers().to_owned(),
            data_dir: tmp.path().join("data"),
            work_dir: tmp.path().to_owned(),
            topics: names.inputs.clone(),
            dlq_topic: names.dlq.clone(),
            tier_changes_topic: names.tier_changes.clone(),
            group_id: format!("{prefix}.group"),
            group_instance_id: format!("{prefix}.instance"),
            session_timeout_ms: session_ms,
            frozen_now_ms: now.millis(),
            // The oracle is the fold of the events; time-driven decisions
            // are not yet part of it (see tiers_that_live.rs for those).
            extra_args: vec![
                "--policy".into(),
                policy_file.to_string_lossy().into_owned(),
                "--time-sweeps".into(),
                "false".into(),
                // Most customers held encoded: kills land while customers
                // are decoded, changed and encoded again.
                "--hot-customers".into(),
                "1000".into(),
                "--kafka-consumer".into(),
                format!("heartbeat.interval.ms={}", (session_ms / 5).max(50)),
            ]
            .into_iter()
            .chain(
                std::env::var("TIERD_FAULT_KAFKA")
                    .ok()
                    .into_iter()
                    .flat_map(|kv| ["--kafka".to_owned(), kv]),
            )
            .collect(),
        };
        World {
            prefix,
            broker,
            names,
            tmp,
            setup,
            workload: Arc::new(workload),
            oracle,
        }
    }

    fn print_workload(&self) {
        let s = &self.workload.stats;
        println!(
            "workload: {} records for {} customers over {} topics x {PARTITIONS} partitions: \
             {} fresh, {} delayed, {} duplicates, {} late (stale), {} out of order; \
             {} malformed {:?}",
            self.workload.records.len(),
            self.workload.customers.len(),
            INPUTS,
            s.fresh,
            s.delayed,
            s.duplicates,
            s.late,
            s.out_of_order,
            s.malformed_total(),
            s.malformed
        );
        println!(
            "oracle: {} customers stored, {} applied, {} duplicates ignored, {} stale ignored, \
             {} rejected, {} tier changes",
            self.oracle.states.len(),
            self.oracle.applied,
            self.oracle.duplicates,
            self.oracle.stale,
            self.oracle.rejected,
            self.oracle.transition_count()
        );
    }

    fn start_producer(
        &self,
        produce_secs: f64,
    ) -> (
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<anyhow::Result<Vec<Landed>>>,
    ) {
        let progress = Arc::new(AtomicUsize::new(0));
        let rate = self.workload.records.len() as f64 / produce_secs.max(1.0);
        let task = tokio::spawn(publish_paced(
            self.broker.bootstrap_servers().to_owned(),
            self.names.inputs.clone(),
            self.workload.clone(),
            rate,
            progress.clone(),
        ));
        (progress, task)
    }

    /// tierd's setup for `run` in consumer group number `group`.
    ///
    /// librdkafka's mock cluster has no static membership: a restarted
    /// tierd is a new member, and a killed one stays in the group until its
    /// session times out, blocking the rebalance (about 5 to 13 s per
    /// restart). So most runs join a group of their own (an empty group
    /// elects after the mock's fixed 3 s initial delay); tierd never reads
    /// Kafka's group offsets, so this changes nothing for it. Instance ids
    /// decrease from run to run: when a run does share a group with a killed
    /// one, the mock (which elects the lowest instance id) makes the live
    /// member the leader, which assigns itself half the partitions at once
    /// and all of them after the dead member expired: a revoke and
    /// re-assignment under load.
    fn membership(&self, run: usize, group: usize) -> TierdSetup {
        self.setup.with_membership(
            &format!("{}.group{group}", self.prefix),
            &format!("{}.instance{:06}", self.prefix, 999_999 - run),
        )
    }

    fn group_name(&self, group: usize) -> String {
        format!("{}.group{group}", self.prefix)
    }

    fn log(&self) -> PathBuf {
        self.setup.log_path()
    }

    /// Data dirs tierd moved aside as corrupt.
    fn quarantined(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("data.quarantined-"))
            })
            .collect();
        v.sort();
        v
    }

    fn high_watermarks(&self) -> BTreeMap<(String, i32), i64> {
        let mut high = BTreeMap::new();
        for t in &self.names.inputs {
            for (p, (_, h)) in watermarks(self.broker.bootstrap_servers(), t, PARTITIONS)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                high.insert((t.clone(), p as i32), h);
            }
        }
        high
    }

    /// The final run: start, wait until everything is consumed, SIGTERM
    /// (must exit 0), then check the data dir and the topics.
    async fn finish(
        &self,
        run: usize,
        groups_before: usize,
        landed: &[Landed],
    ) -> (CatchUp, Outcome) {
        let earlier: Vec<String> = (0..groups_before).map(|g| self.group_name(g)).collect();
        let baseline =
            max_committed(self.broker.bootstrap_servers(), &earlier, &self.names).unwrap();
        let setup = self.membership(run, groups_before);
        let mut child = setup.spawn(run).unwrap();
        let ready = match child.wait_ready(Duration::from_secs(120)).await {
            Ok(r) => r,
            Err(e) => panic!("{e:#}\n{}", log_tail(&self.log(), 40)),
        };
        let high = self.high_watermarks();
        let caught = wait_caught_up(
            ready,
            self.broker.bootstrap_servers(),
            &setup.group_id,
            &baseline,
            &self.names,
            &high,
            &self.oracle,
            Duration::from_secs(240),
        )
        .await
        .unwrap();
        let status = child.sigterm(Duration::from_secs(60)).await.unwrap();
        assert!(
            status.success(),
            "the final tierd run ended with {status} after SIGTERM\n{}",
            log_tail(&self.log(), 40)
        );
        let outcome = check(
            self.broker.bootstrap_servers(),
            &self.names,
            &self.setup.data_dir,
            &self.workload,
            &self.oracle,
            landed,
        )
        .unwrap();
        (caught, outcome)
    }

    fn print_outcome(&self, caught: &CatchUp, o: &Outcome) {
        println!(
            "final run: caught up in {:.1} s ({} partitions behind, {} tiers wrong at the end)",
            caught.elapsed.as_secs_f64(),
            caught.partitions_behind,
            caught.tiers_wrong
        );
        println!(
            "checked: {} customers expected, {} stored, {} state mismatches; \
             {} partitions' offsets, {} mismatches; \
             {} tier-change records ({} re-sent duplicates), {} mismatches; \
             {} DLQ records ({} re-sent duplicates), {} mismatches; {} outbox rows left",
            o.customers_expected,
            o.customers_stored,
            o.state_mismatches,
            o.offsets_checked,
            o.offset_mismatches,
            o.change_records,
            o.change_duplicates,
            o.change_mismatches,
            o.dlq_records,
            o.dlq_duplicates,
            o.dlq_mismatches,
            o.outbox_left
        );
    }

    fn pass(mut self) {
        if std::env::var_os("TIERD_FAULT_KEEP").is_some() {
            println!("kept {}", self.tmp.path().display());
        } else {
            self.tmp.disable_cleanup(false);
        }
    }
}

/// The last `n` lines of the tierd log.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- last {n} lines of {} ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

/// Sum of `records` over the log's "tierd stopped" lines (graceful stops).
fn records_reported(path: &Path) -> (usize, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut stops = 0;
    let mut records = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["fields"]["message"] == "tierd stopped" {
            stops += 1;
            records += v["fields"]["records"].as_u64().unwrap_or(0);
        }
    }
    (stops, records)
}

/// Fail the test with the full report unless the run checked out clean.
fn assert_clean(w: &World, caught: &CatchUp, o: &Outcome, problems: &[String]) {
    assert!(
        o.failures.is_empty()
            && problems.is_empty()
            && caught.partitions_behind == 0
            && caught.tiers_wrong == 0,
        "{}",
        failure_report(w, caught, o, problems)
    );
}

fn failure_report(w: &World, caught: &CatchUp, o: &Outcome, extra: &[String]) -> String {
    let mut all: Vec<String> = extra.to_vec();
    if caught.partitions_behind > 0 || caught.tiers_wrong > 0 {
        all.push(format!(
            "tierd did not catch up within {:.0} s: {} partitions behind, {} tiers wrong",
            caught.elapsed.as_secs_f64(),
            caught.partitions_behind,
            caught.tiers_wrong
        ));
    }
    all.extend(o.failures.iter().cloned());
    format!(
        "{} problems:\n  {}\nlogs and data dir kept in {}",
        all.len(),
        all.join("\n  "),
        w.tmp.path().display()
    )
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let started = Instant::now();
        let scale: f64 = env_or("TIERD_FAULT_SCALE", 1.0);
        let kills: usize = env_or("TIERD_FAULT_KILLS", 50);
        let seed: u64 = env_or("TIERD_FAULT_SEED", 20_261_123);
        let produce_secs: f64 = env_or("TIERD_FAULT_PRODUCE_SECS", 120.0 * scale.max(1.0));
        let events = (100_000.0 * scale) as usize;
        let customers = ((5_000.0 * scale) as usize).max(10);
        println!("seed {seed}, scale {scale}, {kills} kills");

        let w = World::new("kill", seed, events, customers);
        w.print_workload();
        let total = w.workload.records.len();
        let (progress, producer) = w.start_producer(produce_secs);

        let mut rng = SplitMix64::new(seed ^ 0x6b11_6b11);
        let mut problems = Vec::new();
        let mut early = 0;
        let mut late = 0;
        let mut ever_ready = false;
        let mut to_ready: Vec<Duration> = Vec::new();
        let mut quarantines = 0;
        let mut group = 0;
        let mut shared_groups = 0;
        let mut previous_joined = false;
        for run in 0..kills {
            // A group of its own, or now and then the group of the run just
            // killed (see `World::membership`).
            if run > 0 && !(previous_joined && rng.chance(0.15)) {
                group += 1;
            } else if run > 0 {
                shared_groups += 1;
            }
            let mut child = w.membership(run, group).spawn(run).unwrap();
            let how;
            previous_joined = false;
            if rng.chance(0.3) {
                // During start-up: config, sled open and recovery, state
                // load, group join.
                let after = Duration::from_millis(rng.range(0, 300) as u64);
                tokio::time::sleep(after).await;
                how = format!("{} ms after spawn", after.as_millis());
                early += 1;
            } else {
                match child.wait_ready(Duration::from_secs(90)).await {
                    Ok(_) => {}
                    Err(e) => panic!("{e:#}\n{}", log_tail(&w.log(), 40)),
                }
                ever_ready = true;
                previous_joined = true;
                to_ready.push(child.started.elapsed());
                // Spread the kills over the stream, then let it ingest.
                let target = total * (run + 1) / (kills + 1);
                while progress.load(Ordering::SeqCst) < target && !producer.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let after = Duration::from_millis(rng.range(0, 2_500) as u64);
                tokio::time::sleep(after).await;
                how = format!("{} ms after ready", after.as_millis());
                late += 1;
            }
            if let Some(status) = child.exited() {
                panic!(
                    "tierd run {run} exited on its own with {status}\n{}",
                    log_tail(&w.log(), 40)
                );
            }
            child.sigkill().unwrap();
            let q = w.quarantined();
            if q.len() > quarantines {
                quarantines = q.len();
                let msg = format!(
                    "run {run} (killed {how}) found the data dir corrupt and quarantined it ({}); \
                     a run had been ready before: {ever_ready}",
                    q.last().unwrap().display()
                );
                println!("{msg}");
                if ever_ready {
                    problems.push(msg);
                }
            }
        }
        let landed = producer.await.unwrap().unwrap();
        let produced_in = started.elapsed();
        let (caught, outcome) = w.finish(kills, group + 1, &landed).await;
        let q = w.quarantined();
        if q.len() > quarantines {
            problems.push(format!("the final run quarantined the data dir ({})", q.last().unwrap().display()));
        }

        to_ready.sort();
        let median = to_ready.get(to_ready.len() / 2).copied().unwrap_or_default();
        let max = to_ready.last().copied().unwrap_or_default();
        println!(
            "kills survived: {kills} SIGKILLs ({early} during start-up, {late} while ingesting; \
             {shared_groups} restarts into the group of a killed member); \
             spawn-to-ready median {:.2} s, max {:.2} s; {} quarantines; all published after {:.1} s",
            median.as_secs_f64(),
            max.as_secs_f64(),
            q.len(),
            produced_in.as_secs_f64()
        );
        w.print_outcome(&caught, &outcome);
        let mismatches = outcome.failures.len() + problems.len();
        println!(
            "events {total}, customers {}, mismatches {mismatches}, DLQ records {} ({} distinct), \
             duplicates ignored {}, elapsed {:.1} s",
            w.workload.customers.len(),
            outcome.dlq_records,
            outcome.dlq_records - outcome.dlq_duplicates,
            w.oracle.duplicates,
            started.elapsed().as_secs_f64()
        );
        assert_clean(&w, &caught, &outcome, &problems);
        w.pass();
    });
}

#[test]
fn sigterm_under_load_loses_nothing_and_reapplies_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let started = Instant::now();
        let scale: f64 = env_or("TIERD_FAULT_SCALE", 1.0);
        let seed: u64 = env_or("TIERD_FAULT_SEED", 20_261_123) ^ 0x7e;
        let stops = 5;
        let events = (20_000.0 * scale) as usize;
        let customers = ((1_000.0 * scale) as usize).max(10);
        let produce_secs = 30.0 * scale.max(1.0);

        let w = World::new("term", seed, events, customers);
        w.print_workload();
        let total = w.workload.records.len();
        let (progress, producer) = w.start_producer(produce_secs);
        let mut rng = SplitMix64::new(seed ^ 0x51_6e);
        let mut problems = Vec::new();
        for run in 0..stops {
            let mut child = w.membership(run, run).spawn(run).unwrap();
            if let Err(e) = child.wait_ready(Duration::from_secs(90)).await {
                panic!("{e:#}\n{}", log_tail(&w.log(), 40));
            }
            let target = total * (run + 1) / (stops + 1);
            while progress.load(Ordering::SeqCst) < target && !producer.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.range(200, 2_000) as u64)).await;
            let at = progress.load(Ordering::SeqCst);
            let status = child.sigterm(Duration::from_secs(60)).await.unwrap();
            println!("run {run}: SIGTERM with {at}/{total} records published: {status}");
            if !status.success() {
                problems.push(format!("run {run} exited with {status} after SIGTERM"));
            }
        }
        let landed = producer.await.unwrap().unwrap();
        let (caught, outcome) = w.finish(stops, stops, &landed).await;

        // Nothing re-applied: every record consumed exactly once over all
        // runs, every dead letter and tier change published exactly once.
        let (stopped, records) = records_reported(&w.log());
        if stopped != stops + 1 || records != total as u64 {
            problems.push(format!(
                "{stopped} runs reported a graceful stop, consuming {records} records in all; \
                 expected {} runs and exactly the {total} published",
                stops + 1
            ));
        }
        if outcome.dlq_duplicates > 0 {
            problems.push(format!(
                "{} dead letters were published more than once",
                outcome.dlq_duplicates
            ));
        }
        if outcome.change_duplicates > 0 {
            problems.push(format!(
                "{} tier changes were published more than once",
                outcome.change_duplicates
            ));
        }
        if !w.quarantined().is_empty() {
            problems.push("a graceful restart quarantined the data dir".into());
        }
        w.print_outcome(&caught, &outcome);
        println!(
            "graceful stops: {} SIGTERMs + final, all exit 0: {}; records consumed over all runs {records} \
             of {total}; events {total}, customers {}, mismatches {}, DLQ records {}, \
             duplicates ignored {}, elapsed {:.1} s",
            stops,
            problems.iter().all(|p| !p.contains("after SIGTERM")),
            w.workload.customers.len(),
            outcome.failures.len() + problems.len(),
            outcome.dlq_records,
            w.oracle.duplicates,
            started.elapsed().as_secs_f64()
        );
        assert_clean(&w, &caught, &outcome, &problems);
        w.pass();
    });
}

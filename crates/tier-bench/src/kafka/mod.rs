//! Scenarios against a broker in another process: consume-only, ingest,
//! the PostgreSQL peer, freshness, replay.
//!
//! The broker is librdkafka's mock cluster hosted by this same binary in a
//! child process (`tier-bench __broker`, [`broker`]). The workload of the
//! run is published once to `orders`, `payments`, `complaints` and
//! `customers` (16 partitions each, keyed by customer id, protobuf) and
//! checked to be complete (low watermarks 0, high watermarks = produced);
//! then, on that same backlog:
//!
//! - `consume`: a bare rdkafka consumer reads all of it ([`consume`]);
//! - `postgres`: the same consumer upserting per-batch aggregates into
//!   PostgreSQL, one statement per batch ([`postgres`]);
//! - `ingest`: tierd in process from a fresh data dir ([`ingest`]);
//! - `freshness`: that tierd, caught up, under a steady stream of
//!   tier-moving events ([`freshness`]).
//!
//! `replay` publishes a larger backlog (three independent copies of the
//! workload, own customer ids and seeds: 1.37 million records at full
//! scale) to a fresh broker with 48 partitions a topic, checks nothing was
//! dropped (low watermarks 0, high watermarks = produced), and times tierd
//! catching up from offset 0: the ingest measurement at a bigger scale.
//!
//! Every rate is taken from the moment the reader has its partitions
//! (bare consumers: `assign`; tierd: pipeline `Ready`) to its last record
//! or durable commit; the rates from the first record (or committed batch)
//! and from the very start are given in each figure's note.

mod broker;
mod consume;
mod freshness;
mod ingest;
mod postgres;
mod produce;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::config::BenchConfig;
use crate::report::{Figure, Goal, Report, human};
use crate::workload::workload;
use broker::Broker;
use consume::Timing;
use produce::{DLQ, INPUTS, TIER_CHANGES};

/// Partitions a topic of the shared backlog.
const PARTITIONS: i32 = 16;
/// Partitions a topic of the replay backlog: enough that the mock
/// cluster's ~5 MiB a partition holds a million records.
const REPLAY_PARTITIONS: i32 = 48;
/// Copies of the workload in the replay backlog (3 x 456,017 records at
/// full scale).
const REPLAY_COPIES: usize = 3;
/// Steady rate of the freshness producer, events/s.
const FRESHNESS_RATE: usize = 5_000;

/// When this process was spawned by the suite as a helper (the broker),
/// run that and return its exit code.
pub(crate) fn child_main() -> Option<ExitCode> {
    broker::child_main()
}

pub(crate) fn run(cfg: &BenchConfig, report: &mut Report) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    // Other work on the machine skews every figure: keep the evidence.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        report.context("kafka_loadavg_at_start", json!(load.trim()));
    }
    let mut shared = None;
    if ["consume", "ingest", "postgres", "freshness"]
        .iter()
        .any(|s| cfg.wants(s))
    {
        shared = Some(backlog_scenarios(cfg, report, &rt)?);
    }
    if cfg.wants("replay") {
        eprintln!("  replay: publishing a larger backlog to a fresh broker");
        if let Err(e) = replay(cfg, report, &rt, shared) {
            report.fail("replay", format!("{e:#}"));
            report.add(Figure::missing(
                "replay_events_per_sec",
                "replay from offset 0 (tierd)",
                " ev/s",
                format!("failed: {e:#}"),
            ));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(10));
    Ok(())
}

/// `(name, partitions)` of every topic tierd uses.
fn topics(partitions: i32) -> Vec<(&'static str, i32)> {
    INPUTS
        .iter()
        .chain(&[DLQ, TIER_CHANGES])
        .map(|t| (*t, partitions))
        .collect()
}

/// A rate figure's note: what it counts and the rate in other windows.
fn rate_note(t: &Timing, what: &str) -> String {
    let rate = format!(
        "{} records; {what}; timed from partitions assigned to the last ({:.2} s); {} ev/s from the first record or batch to the last ({:.2} s), {} ev/s from the start ({:.2} s)",
        human(t.records as f64),
        t.assigned_to_last.as_secs_f64(),
        human(t.rate_first_to_last()),
        t.first_to_last.as_secs_f64(),
        human(t.rate_from_start()),
        t.start_to_last.as_secs_f64(),
    );
    [&t.writes, &t.cpu]
        .into_iter()
        .flatten()
        .fold(rate, |note, more| format!("{note}; {more}"))
}

/// Publish the run's workload and run the scenarios that share it;
/// returns the backlog's size.
fn backlog_scenarios(
    cfg: &BenchConfig,
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
) -> Result<u64> {
    let broker = Broker::spawn(&topics(PARTITIONS))?;
    eprintln!(
        "  kafka: broker at {}; publishing {} customers / {} orders",
        broker.bootstrap(),
        cfg.customers,
        cfg.orders
    );
    let backlog = produce::publish_workloads(
        broker.bootstrap(),
        &[workload(cfg, cfg.customers, cfg.orders)],
    )?;
    let expected = broker
        .check_backlog(&backlog.per_topic)
        .context("checking the published backlog")?;
    eprintln!(
        "  kafka: {} records ({} MB of values) published in {:.1} s",
        backlog.total,
        backlog.bytes / 1_000_000,
        backlog.elapsed.as_secs_f64()
    );
    report.context("kafka_backlog_records", json!(expected));
    report.context("kafka_backlog_per_topic", json!(backlog.per_topic));
    report.context("kafka_partitions", json!(PARTITIONS));

    let consume_key = "consume_only_events_per_sec";
    let postgres_key = "postgres_batched_events_per_sec";
    let ingest_key = "ingest_events_per_sec";

    if cfg.wants("consume") {
        eprintln!("  consume: bare rdkafka consumer");
        match consume::consume_only(&broker, expected) {
            Ok(t) => report.add(
                Figure::new(
                    consume_key,
                    "consume only (bare rdkafka BaseConsumer)",
                    t.rate(),
                    " ev/s",
                )
                .note(rate_note(&t, "read and dropped, exact count checked")),
            ),
            Err(e) => {
                report.fail("consume", format!("{e:#}"));
                report.add(Figure::missing(
                    consume_key,
                    "consume only (bare rdkafka BaseConsumer)",
                    " ev/s",
                    format!("failed: {e:#}"),
                ));
            }
        }
    }

    if cfg.wants("postgres") {
        let label = "PostgreSQL peer: batched upsert + offsets per batch";
        match postgres::find_bin() {
            None => report.add(Figure::missing(
                postgres_key,
                label,
                " ev/s",
                "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH; apt-get install postgresql)",
            )),
            Some(bin) => {
                eprintln!("  postgres: throwaway cluster from {}", bin.display());
                let result = postgres::Cluster::start(bin).and_then(|mut cluster| {
                    let t = postgres::run(&broker, &cluster, expected)?;
                    cluster.stop()?;
                    Ok((t, cluster.version.clone()))
                });
                match result {
                    Ok((t, version)) => report.add(
                        Figure::new(postgres_key, label, t.rate(), " ev/s").note(rate_note(
                            &t,
                            &format!(
                                "{version}, synchronous_commit=on, one INSERT..SELECT FROM unnest ON CONFLICT statement per batch (20,000 records or 50 ms) storing offsets too"
                            ),
                        )),
                    ),
                    Err(e) => {
                        report.fail("postgres", format!("{e:#}"));
                        report.add(Figure::missing(
                            postgres_key,
                            label,
                            " ev/s",
                            format!("failed: {e:#}"),
                        ));
                    }
                }
            }
        }
    }

    if cfg.wants("ingest") || cfg.wants("freshness") {
        let data_dir = cfg.scratch("ingest")?;
        eprintln!("  ingest: tierd in process, fresh data dir");
        let config = ingest::config(&broker, data_dir.join("data"), "tier-bench-ingest", cfg)?;
        match ingest::ingest(rt, config, expected) {
            Ok((t, tierd)) => {
                if cfg.wants("ingest") {
                    let peers = peer_text(
                        report,
                        &[
                            (consume_key, "bare consumer"),
                            (postgres_key, "PostgreSQL batched"),
                        ],
                    );
                    let mut fig = Figure::new(ingest_key, "ingest (tierd, durable commits)", t.rate(), " ev/s")
                        .goal(Goal::AtLeast(200_000.0))
                        .note(rate_note(&t, "timed to the last durable commit (tierd_events_consumed_total, counted per committed unit)"));
                    if let Some(p) = peers {
                        fig = fig.peer(p);
                    }
                    report.add(fig);
                }
                let mut fresh_sent = 0;
                if cfg.wants("freshness") {
                    fresh_sent = freshness_scenario(cfg, report, &broker);
                }
                match tierd.stop(rt) {
                    Ok(r) => {
                        eprintln!(
                            "    tierd stopped: {} records, {} applied, {} rejected, {} batches",
                            r.records, r.applied, r.rejected, r.batches
                        );
                        if r.records < expected + fresh_sent {
                            report.fail(
                                "ingest",
                                format!(
                                    "tierd committed {} records, {} were produced",
                                    r.records,
                                    expected + fresh_sent
                                ),
                            );
                        }
                    }
                    Err(e) => report.fail("ingest", format!("stopping tierd: {e:#}")),
                }
            }
            Err(e) => {
                report.fail("ingest", format!("{e:#}"));
                report.add(Figure::missing(
                    ingest_key,
                    "ingest (tierd, durable commits)",
                    " ev/s",
                    format!("failed: {e:#}"),
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    if cfg.wants("ingest") {
        report.ratio(
            "ingest_vs_consume_only",
            "ingest / consume only",
            ingest_key,
            consume_key,
            Some(Goal::AtLeast(0.4)),
        );
        report.ratio(
            "ingest_vs_postgres",
            "ingest / PostgreSQL peer",
            ingest_key,
            postgres_key,
            Some(Goal::AtLeast(3.0)),
        );
    }
    Ok(expected)
}

/// `"bare consumer: 196,000 ev/s; ..."` of the figures already measured.
fn peer_text(report: &Report, peers: &[(&str, &str)]) -> Option<String> {
    let parts: Vec<String> = peers
        .iter()
        .filter_map(|(key, name)| {
            report
                .value(key)
                .map(|v| format!("{name}: {} ev/s", human(v)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Run the freshness scenario on the running tierd; returns the events
/// it produced.
fn freshness_scenario(cfg: &BenchConfig, report: &mut Report, broker: &Broker) -> u64 {
    let secs = if cfg.quick { 10 } else { 30 };
    let p50_label = "freshness p50 (event produced -> TierChanged consumed)";
    let p99_label = "freshness p99 (event produced -> TierChanged consumed)";
    let result = ingest::Metrics::new().and_then(|m| {
        freshness::wait_outbox_drained(&m, Duration::from_secs(120))?;
        eprintln!("  freshness: {FRESHNESS_RATE} events/s for {secs} s");
        freshness::run(broker, &m, FRESHNESS_RATE, Duration::from_secs(secs))
    });
    match result {
        Ok(f) => {
            let matched = f.latencies_ms.len();
            let note = format!(
                "{matched} of {} events matched to the TierChanged they caused (by causing_event_id), sent at {} ev/s for {secs} s: each a large order lifting a customer seeded with a small order (first tier) into the top tier; {}; {}; worst latency of the events sent in each second (ms): {}",
                f.sent,
                human(f.rate),
                f.batches.describe(),
                f.stages.describe(),
                f.worst_by_second,
            );
            eprintln!("    {note}");
            if matched == 0 {
                report.fail("freshness", "no event was matched to a TierChanged");
            }
            for (key, label, q, goal) in [
                ("freshness_p50_ms", p50_label, 0.5, None),
                (
                    "freshness_p99_ms",
                    p99_label,
                    0.99,
                    Some(Goal::AtMost(100.0)),
                ),
            ] {
                let fig = match f.percentile(q) {
                    Some(v) => {
                        let fig = Figure::new(key, label, v, " ms").note(note.clone());
                        match goal {
                            Some(g) => fig.goal(g),
                            None => fig,
                        }
                    }
                    None => Figure::missing(key, label, " ms", note.clone()),
                };
                report.add(fig);
            }
            if matched < f.sent {
                eprintln!(
                    "    freshness: {} events caused no TierChanged seen within 5 s",
                    f.sent - matched
                );
            }
            f.sent as u64
        }
        Err(e) => {
            report.fail("freshness", format!("{e:#}"));
            for (key, label) in [
                ("freshness_p50_ms", p50_label),
                ("freshness_p99_ms", p99_label),
            ] {
                report.add(Figure::missing(key, label, " ms", format!("failed: {e:#}")));
            }
            0
        }
    }
}

/// Replay: a larger backlog on a fresh broker, tierd from offset 0.
fn replay(
    cfg: &BenchConfig,
    report: &mut Report,
    rt: &tokio::runtime::Runtime,
    shared: Option<u64>,
) -> Result<()> {
    // Independent copies of the workload (own customer ids and seeds): a
    // bigger customer base with the same skew. Scaling one workload up
    // instead would put the hottest customer's records (a Zipf share of
    // all of them, one key, so one partition) past the mock cluster's
    // 5 MiB a partition, however many partitions there are.
    let workloads: Vec<_> = (0..REPLAY_COPIES)
        .map(|k| {
            let mut w = workload(cfg, cfg.customers, cfg.orders);
            w.id_prefix = format!("r{k}-cust-");
            w.seed = cfg.seed.wrapping_add(k as u64);
            w
        })
        .collect();
    let customers = cfg.customers * REPLAY_COPIES;
    let orders = cfg.orders * REPLAY_COPIES;
    let broker = Broker::spawn(&topics(REPLAY_PARTITIONS))?;
    let backlog = produce::publish_workloads(broker.bootstrap(), &workloads)?;
    // Before tierd starts: every partition from offset 0, nothing dropped.
    let expected = broker
        .check_backlog(&backlog.per_topic)
        .context("checking the replay backlog before tierd starts")?;
    eprintln!(
        "  replay: {} records ({} customers, {} orders) published in {:.1} s; tierd from offset 0",
        expected,
        customers,
        orders,
        backlog.elapsed.as_secs_f64()
    );
    report.context("replay_backlog_records", json!(expected));
    report.context("replay_partitions", json!(REPLAY_PARTITIONS));
    let data_dir = cfg.scratch("replay")?;
    let config = ingest::config(&broker, data_dir.join("data"), "tier-bench-replay", cfg)?;
    let result = ingest::ingest(rt, config, expected);
    let outcome = result.and_then(|(t, tierd)| {
        let r = tierd.stop(rt)?;
        if r.records < expected {
            anyhow::bail!(
                "tierd committed {} records, {expected} were produced",
                r.records
            );
        }
        Ok(t)
    });
    let _ = std::fs::remove_dir_all(&data_dir);
    let t = outcome?;
    let peer = report
        .value("ingest_events_per_sec")
        .zip(shared)
        .map(|(v, n)| format!("ingest of {} records: {} ev/s", human(n as f64), human(v)));
    let mut fig = Figure::new(
        "replay_events_per_sec",
        "replay from offset 0 (tierd)",
        t.rate(),
        " ev/s",
    )
    .goal(Goal::AtLeast(200_000.0))
    .note(rate_note(
        &t,
        &format!(
            "{} partitions a topic, low watermarks 0 and high watermarks = produced checked before tierd started",
            REPLAY_PARTITIONS
        ),
    ));
    if let Some(p) = peer {
        fig = fig.peer(p);
    }
    report.add(fig);
    Ok(())
}

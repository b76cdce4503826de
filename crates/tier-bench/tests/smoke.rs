//! The suite cannot rot: the `tier-bench` binary runs every scenario at a
//! toy scale (a few hundred customers, debug build) and its JSON line has
//! every key the issue names (and the suite's own), each a number or null
//! with a note saying why. Figures at this scale mean nothing and are not
//! checked: speed goals live in the suite's table, never in a timed test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const KEYS: [&str; 21] = [
    "fold_events_per_sec",
    "consume_only_events_per_sec",
    "ingest_events_per_sec",
    "ingest_vs_consume_only",
    "postgres_batched_events_per_sec",
    "ingest_vs_postgres",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "get_tier_rps",
    "get_tier_p99_ms",
    "get_tier_p99_while_publishing_ms",
    "bare_tonic_rps",
    "get_tier_vs_bare_tonic",
    "batch_get_1000_p99_ms",
    "rescore_1m_seconds",
    "duckdb_recompute_seconds",
    "replay_events_per_sec",
    "disk_bytes_per_customer",
    "rss_mib",
    "goals",
    "notes",
];

/// Run `tier-bench --quick --json` at a toy scale with `extra` flags in
/// a fresh work dir; its stdout and the JSON object of its last line.
fn toy_run(extra: &[&str]) -> (String, serde_json::Value) {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tier-bench"))
        .args(["--quick", "--json"])
        .args(extra)
        .args([
            "--customers",
            "300",
            "--orders",
            "500",
            "--state-customers",
            "500",
            "--work-dir",
        ])
        .arg(work.path())
        .output()
        .expect("tier-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tier-bench {extra:?} failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("a JSON line");
    let json = serde_json::from_str(last).expect("the last line is JSON");
    (stdout, json)
}

#[test]
fn every_scenario_runs_and_the_json_line_has_every_key() {
    let (stdout, json) = toy_run(&[]);
    for key in KEYS {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let notes = &json["notes"];
    for key in &KEYS[..18] {
        let value = &json[*key];
        assert!(
            value.is_number() || (value.is_null() && notes[*key].is_string()),
            "{key} is neither a figure nor null with a note: {value}"
        );
    }
    assert_eq!(json["failures"], serde_json::json!([]), "{json}");
    // The table a person reads is there too.
    assert!(stdout.contains("fold_events_per_sec"), "{stdout}");
    // How fast the machine was, so runs of different days can be read
    // side by side: in the JSON's context and above the table.
    for key in ["random_read_ns", "compute_ns"] {
        let v = json["context"]["machine"][key].as_f64();
        assert!(
            v.is_some_and(|v| v > 0.0 && v.is_finite()),
            "context.machine.{key} is not a positive figure: {json}"
        );
    }
    assert!(
        stdout.contains("machine (this run): a dependent random read from 64 MiB"),
        "{stdout}"
    );
}

/// The state and rescore scenarios run on the backend asked for, the
/// restarted process included (it opens the data dir as that backend,
/// and a data dir keeps the backend that created it: one opened as
/// another is refused), so the README's per-backend figures are what
/// they say. Each also rescores twice more (`--rescore-repeats`), every
/// repeat durable before the next, and the rescore's note gives both.
#[test]
fn the_store_scenarios_run_on_each_backend() {
    for backend in ["fjall", "redb"] {
        let (_, json) = toy_run(&[
            "--only",
            "state,rescore",
            "--store-backend",
            backend,
            "--rescore-repeats",
            "2",
        ]);
        for key in ["disk_bytes_per_customer", "rss_mib", "rescore_1m_seconds"] {
            assert!(
                json[key].is_number(),
                "{backend}: {key} is not a figure: {json}"
            );
        }
        let rss = json["notes"]["rss_mib"].as_str().unwrap_or_default();
        assert!(
            rss.contains(&format!("opened the {backend} store")),
            "{backend}: the restarted process did not open a {backend} store: {rss}"
        );
        let rescore = json["notes"]["rescore_1m_seconds"]
            .as_str()
            .unwrap_or_default();
        assert!(
            rescore.contains("2 rescores more") && rescore.contains("median"),
            "{backend}: the repeats are not in the rescore's note: {rescore}"
        );
        assert_eq!(json["context"]["store_backend"], backend, "{json}");
        assert_eq!(json["failures"], serde_json::json!([]), "{json}");
    }
}

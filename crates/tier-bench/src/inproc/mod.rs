//! Scenarios without a broker: fold, rescore, state size, gRPC queries,
//! the DuckDB batch peer.
//!
//! | scenario  | figures                                                   |
//! |-----------|-----------------------------------------------------------|
//! | `fold`    | `fold_events_per_sec`                                     |
//! | `state`   | `disk_bytes_per_customer`, `rss_mib`                      |
//! | `rescore` | `rescore_1m_seconds`, `duckdb_recompute_seconds`          |
//! | `grpc`    | `get_tier_rps`, `get_tier_p99_ms`, `bare_tonic_rps`,      |
//! |           | `get_tier_vs_bare_tonic`, `batch_get_1000_p99_ms`,        |
//! |           | `get_tier_p99_while_publishing_ms`                        |
//!
//! `state` and `rescore` share one population of `state_customers`
//! customers, folded once through the engine ([`population`]); the store
//! `state` fills is the one `rescore` commits into, as in tierd.

mod duckdb;
mod fold;
mod grpc;
mod latency;
mod population;
mod rescore;
mod state;

use anyhow::{Context as _, Result};

use crate::config::BenchConfig;
use crate::report::Report;

pub(crate) use state::child_main;

pub(crate) fn run(cfg: &BenchConfig, report: &mut Report) -> Result<()> {
    // Other work on the machine skews every figure: record how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        report.context("inproc_loadavg_at_start", serde_json::json!(load.trim()));
    }
    // Queries before the 1,000,000-customer population: after it, the
    // process's allocator state made GetTier read a third slower.
    if cfg.wants("grpc") {
        eprintln!("grpc: GetTier / BatchGetTiers against the real TierService");
        grpc::run(cfg, report)?;
    }
    if cfg.wants("fold") {
        eprintln!("fold: fold + rescore, one thread, in memory");
        fold::run(cfg, report)?;
    }
    let want_state = cfg.wants("state");
    let want_rescore = cfg.wants("rescore");
    if want_state || want_rescore {
        eprintln!(
            "population: folding {} customers through the engine",
            cfg.state_customers
        );
        let csv = if want_rescore {
            duckdb::prepare(cfg)?
        } else {
            None
        };
        let mut pop = population::build(cfg, csv.as_ref().map(|c| c.events.as_path()))?;
        let store = if want_state {
            eprintln!(
                "state: committing every customer to a fresh {} store",
                cfg.store_backend
            );
            Some(state::run(cfg, &pop, report)?)
        } else {
            None
        };
        if want_rescore {
            eprintln!("rescore: applying a policy with stricter bands to every customer");
            let tiers = rescore::run(cfg, &mut pop, store, report)?;
            duckdb::run(cfg, csv.as_ref(), &tiers, report)?;
        } else {
            drop(store);
        }
        drop(pop);
        // Free the disk at once: the data dirs are not needed any more.
        for dir in ["state", "rescore", "duckdb"] {
            let path = cfg.work_dir.path().join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

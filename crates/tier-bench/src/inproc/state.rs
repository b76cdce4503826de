//! `state`: what `state_customers` customers cost on disk and in memory.
//!
//! Every customer of the folded population is committed to a fresh
//! [`SledStore`] (tierd's options: `EveryCommit`, 256 MiB cache) in
//! batches of [`BATCH_RECORDS`] customers, each prepared (encoded, no IO)
//! then committed as the committer does, and the store is synced. The
//! data dir's allocated size over the customers is `disk_bytes_per_customer`;
//! this process's resident set with the engine and the store open is
//! `rss_mib`.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use tier_core::state::CustomerState;
use tier_store::{CommitBatch, PreparedBatch, Scope, SledStore, Store as _, StoreOptions};

use super::population::{BATCH_RECORDS, Population};
use crate::config::BenchConfig;
use crate::report::{Figure, Goal, Report};

/// Commit the population to a fresh store, report its size and this
/// process's memory; returns the open store (the rescore commits into it).
pub(crate) fn run(
    cfg: &BenchConfig,
    pop: &Population,
    report: &mut Report,
) -> Result<Arc<SledStore>> {
    let before = Memory::read()?;
    let dir = cfg.scratch("state")?.join("data");
    let store = SledStore::open(&dir, StoreOptions::default())
        .with_context(|| format!("opening a sled store in {}", dir.display()))?;
    let started = Instant::now();
    // Most customers are held encoded: each batch decodes its customers,
    // commits them and drops the copies.
    let mut value_bytes = 0usize;
    let mut n = 0;
    let mut chunk: Vec<(Scope, &str, Cow<'_, CustomerState>)> = Vec::with_capacity(BATCH_RECORDS);
    let mut customers = pop.engine.customers().peekable();
    while customers.peek().is_some() {
        chunk.extend(
            customers
                .by_ref()
                .take(BATCH_RECORDS)
                .map(|(id, state)| (pop.engine.scope_of(id), id, state)),
        );
        n += chunk.len();
        let batch = CommitBatch {
            customers: chunk
                .iter()
                .map(|(s, id, st)| (*s, *id, st.as_ref()))
                .collect(),
            ..CommitBatch::new()
        };
        let prepared = PreparedBatch::prepare(&batch).context("encoding customer states")?;
        value_bytes += prepared.customer_bytes();
        store
            .commit_prepared(prepared)
            .context("committing customer states")?;
        chunk.clear();
    }
    store.sync().context("syncing the store")?;
    let commit_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  {n} customers committed in {commit_secs:.1}s ({:.0} customers/s)",
        n as f64 / commit_secs
    );

    let (allocated, apparent) = dir_size(&dir)?;
    let per = allocated as f64 / n.max(1) as f64;
    let mem = Memory::read()?;
    report.add(
        Figure::new(
            "disk_bytes_per_customer",
            format!("sled data dir per customer ({n} customers)"),
            per,
            " B",
        )
        .goal(Goal::AtMost(600.0))
        .note(format!(
            "{:.0} MiB allocated ({:.0} MiB apparent) after committing every customer once \
             in batches of {BATCH_RECORDS} and a sync; encoded states average {:.0} B \
             (format byte + postcard), ids {} B; committed at {:.0} customers/s",
            allocated as f64 / MIB,
            apparent as f64 / MIB,
            value_bytes as f64 / n.max(1) as f64,
            pop.engine
                .customers()
                .next()
                .map_or(0, |(id, _)| id.len() + 2),
            n as f64 / commit_secs,
        )),
    );
    report.add(
        Figure::new(
            "rss_mib",
            format!("resident memory, {n} customers + store open"),
            mem.rss_kib as f64 / 1024.0,
            " MiB",
        )
        .goal(Goal::AtMost(1500.0))
        .note(format!(
            "VmRSS of the bench process with the engine ({n} states, due index) and the \
             sled store (256 MiB cache) open; it also holds allocator free lists left by \
             the generator; {:.0} MiB before the store was opened and filled; peak (VmHWM) \
             {:.0} MiB",
            before.rss_kib as f64 / 1024.0,
            mem.hwm_kib as f64 / 1024.0
        )),
    );
    report.context("state_events", serde_json::json!(pop.events));
    Ok(Arc::new(store))
}

const MIB: f64 = 1024.0 * 1024.0;

/// Allocated (blocks) and apparent bytes of every file under `dir`.
fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                allocated += meta.blocks() * 512;
                apparent += meta.len();
            }
        }
    }
    Ok((allocated, apparent))
}

/// This process's memory from `/proc/self/status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

impl Memory {
    pub(crate) fn read() -> Result<Self> {
        let status =
            std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in /proc/self/status"))
        };
        Ok(Self {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }
}

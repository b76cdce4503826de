//! `state`: what `state_customers` customers cost on disk and in memory.
//!
//! Every customer of the folded population is committed to a fresh store
//! of the run's backend (`--store-backend`, tierd's default sled; tierd's
//! options: `EveryCommit`, its cache) in
//! batches of [`BATCH_RECORDS`] customers, each prepared (encoded, no IO)
//! then committed as the committer does, and the store is synced. The
//! data dir's allocated size over the customers, at rest (read once the
//! store is closed and the restarts below have opened and closed it: right
//! after the sync, fjall may still be compacting, with old and new tables
//! both on disk), is `disk_bytes_per_customer`; the size right after the
//! sync is in the note.
//!
//! `rss_mib` is what tierd holds for those customers after a restart: the
//! store is closed, and a fresh process (this binary, [`RESTART_ARG`])
//! opens it and loads the engine from it exactly as tierd starts
//! (`Engine::load`, `--hot-customers` decoded), then reports its resident
//! set. The bench process's own
//! resident set after building the population in memory (it also holds
//! the generator's leftovers) is in the note.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use tier_core::state::CustomerState;
use tier_store::{AnyStore, Backend, CommitBatch, PreparedBatch, Scope, Store as _};

use super::population::{BATCH_RECORDS, Population};
use crate::config::BenchConfig;
use crate::report::{Figure, Goal, Report};

/// Commit the population to a fresh store, report its size and this
/// process's memory; returns the open store (the rescore commits into it).
pub(crate) fn run(
    cfg: &BenchConfig,
    pop: &Population,
    report: &mut Report,
) -> Result<Arc<AnyStore>> {
    let before = Memory::read()?;
    let backend = cfg.store_backend;
    let dir = cfg.scratch("state")?.join("data");
    let store = AnyStore::open(backend, &dir, cfg.store_options())
        .with_context(|| format!("opening a {backend} store in {}", dir.display()))?;
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

    // Right after the sync an LSM backend may be compacting, holding the
    // old tables beside the new ones: the figure is read again once the
    // store is closed and has been opened and closed by the restarts.
    let (busy_allocated, _) = dir_size(&dir)?;
    let mem = Memory::read()?;
    // The store is closed for the restarted process and opened again for
    // the rescore.
    drop(store);
    let restart = restart_in_child(backend, &dir, cfg.hot_customers, cfg.store_cache_mib);
    // The same restart holding every customer decoded: the baseline.
    let all_hot = restart_in_child(backend, &dir, usize::MAX, cfg.store_cache_mib).map_or_else(
        |e| format!("holding every customer decoded, the restarted process failed: {e:#}"),
        |r| {
            format!(
                "holding every customer decoded instead: {:.0} MiB ({:.0} MiB before the \
                 read model)",
                r.rss_kib as f64 / 1024.0,
                r.engine_rss_kib as f64 / 1024.0
            )
        },
    );
    let (allocated, apparent) = dir_size(&dir)?;
    let per = allocated as f64 / n.max(1) as f64;
    let store = AnyStore::open(backend, &dir, cfg.store_options())
        .with_context(|| format!("opening the {backend} store in {} again", dir.display()))?;
    report.add(
        Figure::new(
            "disk_bytes_per_customer",
            format!("{backend} data dir per customer ({n} customers)"),
            per,
            " B",
        )
        .goal(Goal::AtMost(600.0))
        .note(format!(
            "{:.0} MiB allocated ({:.0} MiB apparent) at rest: every customer committed once \
             in batches of {BATCH_RECORDS}, a sync, the store closed, opened and closed again \
             by the two restarts; right after the sync {:.0} MiB ({:.0} B per customer, an LSM \
             backend may be compacting then); encoded states average {:.0} B \
             (format byte + postcard, before the store compresses them), ids {} B; committed \
             at {:.0} customers/s",
            allocated as f64 / MIB,
            apparent as f64 / MIB,
            busy_allocated as f64 / MIB,
            busy_allocated as f64 / n.max(1) as f64,
            value_bytes as f64 / n.max(1) as f64,
            pop.engine
                .customers()
                .next()
                .map_or(0, |(id, _)| id.len() + 2),
            n as f64 / commit_secs,
        )),
    );
    let in_process = format!(
        "in the bench process after building the population and filling the store: \
         VmRSS {:.0} MiB ({:.0} MiB before the store was opened and filled; it also holds \
         allocator free lists left by the generator), peak {:.0} MiB",
        mem.rss_kib as f64 / 1024.0,
        before.rss_kib as f64 / 1024.0,
        mem.hwm_kib as f64 / 1024.0
    );
    match restart {
        Ok(r) => report.add(
            Figure::new(
                "rss_mib",
                format!("resident memory after a restart, {n} customers"),
                r.rss_kib as f64 / 1024.0,
                " MiB",
            )
            .goal(Goal::AtMost(1500.0))
            .note(format!(
                "VmRSS of a fresh process that opened the {backend} store ({} MiB cache), \
                 loaded the engine from it and filled the API's read model from the engine, \
                 as tierd starts ({} customers, {} held decoded ({:.0} MiB by their heap size, \
                 tierd's --hot-mib {}), the rest encoded; due \
                 index; {} views and the population gradings' rankings), in {:.1}s; peak \
                 {:.0} MiB; the engine alone (before the read model): {:.0} MiB; {all_hot}; \
                 {in_process}",
                cfg.store_cache_mib,
                r.customers,
                r.hot,
                r.hot_bytes as f64 / MIB,
                tier_engine::DEFAULT_HOT_BYTES >> 20,
                r.views,
                r.secs,
                r.hwm_kib as f64 / 1024.0,
                r.engine_rss_kib as f64 / 1024.0,
            )),
        ),
        Err(e) => report.add(Figure::missing(
            "rss_mib",
            "resident memory after a restart",
            " MiB",
            format!("the restarted process failed: {e:#}; {in_process}"),
        )),
    }
    report.context("state_events", serde_json::json!(pop.events));
    Ok(Arc::new(store))
}

const MIB: f64 = 1024.0 * 1024.0;

/// The first argument of this binary run as the restarted process.
pub(crate) const RESTART_ARG: &str = "__restart_rss";

/// What the restarted process measured.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Restarted {
    customers: usize,
    hot: usize,
    /// What they take on the heap (`Engine::hot_bytes`).
    #[serde(default)]
    hot_bytes: usize,
    secs: f64,
    /// VmRSS once the engine was loaded, before the read model was filled.
    engine_rss_kib: u64,
    /// Customers in the read model.
    views: usize,
    rss_kib: u64,
    hwm_kib: u64,
}

/// Run this binary as the restarted process over the `backend` store in
/// `dir`.
fn restart_in_child(backend: Backend, dir: &Path, hot: usize, cache_mib: u64) -> Result<Restarted> {
    let exe = std::env::current_exe().context("locating the tier-bench binary")?;
    let out = std::process::Command::new(exe)
        .arg(RESTART_ARG)
        .arg(backend.name())
        .arg(dir)
        .arg(hot.to_string())
        .arg(cache_mib.to_string())
        .output()
        .context("running the restarted process")?;
    if !out.status.success() {
        anyhow::bail!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reading its figures from {line:?}"))
}

/// The restarted process: `RESTART_ARG BACKEND DIR HOT CACHE_MIB`, prints
/// one JSON line.
pub(crate) fn child_main() -> Option<std::process::ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(RESTART_ARG) {
        return None;
    }
    const USAGE: &str = "usage: __restart_rss BACKEND DIR HOT CACHE_MIB";
    let mut run = || -> Result<Restarted> {
        let backend: Backend = args
            .next()
            .context(USAGE)?
            .parse()
            .context("BACKEND must be sled, fjall or redb")?;
        let dir = args.next().context(USAGE)?;
        let hot: usize = args
            .next()
            .context(USAGE)?
            .parse()
            .context("HOT must be a number")?;
        let cache_mib: u64 = args
            .next()
            .context(USAGE)?
            .parse()
            .context("CACHE_MIB must be a number")?;
        let started = Instant::now();
        let store = AnyStore::open(
            backend,
            Path::new(&dir),
            crate::config::store_options(cache_mib),
        )
        .with_context(|| format!("opening the {backend} store in {dir}"))?;
        // Holding every customer decoded lifts the byte limit too.
        let limits = if hot == usize::MAX {
            tier_engine::HotLimits {
                customers: hot,
                bytes: usize::MAX,
            }
        } else {
            tier_engine::HotLimits::from(hot)
        };
        let engine = tier_engine::Engine::load(
            Arc::new(tier_core::policy::Policy::default_policy()),
            &store,
            tier_core::Timestamp::from_millis(0),
            limits,
        )
        .context("loading the engine from the store")?;
        let engine_rss_kib = Memory::read()?.rss_kib;
        // tierd then fills its read model (the API's views) from the
        // engine, a chunk of customers at a time.
        let read = tier_api::ReadModel::new();
        let policy = engine.policy().clone();
        let mut all = engine.customers().peekable();
        while all.peek().is_some() {
            let chunk: Vec<_> = all.by_ref().take(10_000).collect();
            let views: Vec<(&str, &tier_core::state::CustomerState)> =
                chunk.iter().map(|(id, s)| (*id, s.as_ref())).collect();
            read.publish(&views, &policy);
        }
        // And builds the population gradings over all of them.
        read.prepare_gradings(&policy);
        let secs = started.elapsed().as_secs_f64();
        let mem = Memory::read()?;
        Ok(Restarted {
            customers: engine.len(),
            hot: engine.hot_customers(),
            hot_bytes: engine.hot_bytes(),
            secs,
            engine_rss_kib,
            views: read.len(),
            rss_kib: mem.rss_kib,
            hwm_kib: mem.hwm_kib,
        })
    };
    Some(match run() {
        Ok(r) => match serde_json::to_string(&r) {
            Ok(line) => {
                println!("{line}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tier-bench {RESTART_ARG}: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("tier-bench {RESTART_ARG}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// Allocated (blocks) and apparent bytes of every file under `dir`. A
/// file or directory the store removes while it is walked (the first
/// reading is taken with the store open, and every backend deletes the
/// files its compactions or its IO threads replace) is not counted.
fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    use std::io::ErrorKind::NotFound;
    use std::os::unix::fs::MetadataExt as _;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Err(e) if e.kind() == NotFound && d != dir => continue,
            other => other.with_context(|| format!("reading {}", d.display()))?,
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", d.display()))?;
            let meta = match entry.metadata() {
                Err(e) if e.kind() == NotFound => continue,
                other => other.with_context(|| format!("reading {}", entry.path().display()))?,
            };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_directory_s_size_counts_every_file_below_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 1000]).unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 20]).unwrap();
        std::fs::write(dir.path().join("sub/deeper/c"), [0u8; 3]).unwrap();
        let (_, apparent) = dir_size(dir.path()).unwrap();
        assert_eq!(apparent, 1023);
        // The directory itself gone is an error, not a size of zero.
        let gone = dir.path().join("gone");
        assert!(dir_size(&gone).is_err());
    }
}

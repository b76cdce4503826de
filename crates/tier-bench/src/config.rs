//! Command line and the scale of each scenario.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Parser;

/// The scenarios `--only` picks from (the broker scenarios run first,
/// then the in-process ones, whatever the order here).
pub(crate) const SCENARIOS: [&str; 9] = [
    "fold",
    "grpc",
    "state",
    "rescore",
    "consume",
    "ingest",
    "postgres",
    "freshness",
    "replay",
];

/// tierd's benchmark suite.
#[derive(Debug, Parser)]
#[command(name = "tier-bench", version)]
pub(crate) struct Args {
    /// Smaller workloads: the whole suite in under 5 minutes on 2 cores.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Print one JSON object with every figure as the last line of stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Run only these scenarios (comma separated), e.g. `fold,grpc`.
    #[arg(long, value_delimiter = ',')]
    pub(crate) only: Vec<String>,
    /// Customers of the event workload (default 100,000; quick 20,000).
    #[arg(long)]
    pub(crate) customers: Option<usize>,
    /// Orders of the event workload (default 120,000; quick 30,000).
    #[arg(long)]
    pub(crate) orders: Option<usize>,
    /// Customers for the state-size and rescore figures (default
    /// 1,000,000; quick 100,000).
    #[arg(long)]
    pub(crate) state_customers: Option<usize>,
    /// Zipf exponent of customer activity.
    #[arg(long, default_value_t = 1.1)]
    pub(crate) zipf_s: f64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Customers the engine of the state and rescore scenarios holds
    /// decoded (tierd's `--hot-customers`; default tierd's default).
    #[arg(long, default_value_t = tier_engine::DEFAULT_HOT_CUSTOMERS)]
    pub(crate) hot_customers: usize,
    /// Where scenarios put data directories (a fresh temp dir inside it).
    #[arg(long)]
    pub(crate) work_dir: Option<PathBuf>,
    /// The store backend of every scenario that stores (tierd's in
    /// ingest, freshness and replay; state and rescore): `sled` (tierd's
    /// default), `fjall` or `redb`.
    #[arg(long, default_value = "sled")]
    pub(crate) store_backend: tier_store::Backend,
    /// MiB of the store's cache in every scenario (tierd's
    /// `--store-cache-mib`; default tierd's default).
    #[arg(long)]
    pub(crate) store_cache_mib: Option<u64>,
    /// tierd's `--batch-catch-up-min-records` in the Kafka scenarios
    /// (default tierd's default).
    #[arg(long)]
    pub(crate) batch_catch_up_min_records: Option<usize>,
    /// Policy rescores after the measured one, each timed alike (printed,
    /// with their median, in `rescore_1m_seconds`' note): a steadier
    /// reading of one process; compare builds across processes.
    #[arg(long, default_value_t = 0)]
    pub(crate) rescore_repeats: usize,
}

/// The resolved scale of a run, shared by every scenario.
#[derive(Debug)]
pub(crate) struct BenchConfig {
    pub(crate) quick: bool,
    pub(crate) json: bool,
    pub(crate) only: Vec<String>,
    pub(crate) customers: usize,
    pub(crate) orders: usize,
    pub(crate) state_customers: usize,
    pub(crate) zipf_s: f64,
    pub(crate) seed: u64,
    pub(crate) hot_customers: usize,
    pub(crate) store_backend: tier_store::Backend,
    /// MiB of the store's cache (tierd's `--store-cache-mib`).
    pub(crate) store_cache_mib: u64,
    /// Records a catch-up batch holds before it is sealed (tierd's
    /// `--batch-catch-up-min-records`).
    pub(crate) batch_catch_up_min_records: usize,
    /// Rescores after the measured one (`--rescore-repeats`).
    pub(crate) rescore_repeats: usize,
    /// Removed when the run ends.
    pub(crate) work_dir: tempfile::TempDir,
}

impl BenchConfig {
    pub(crate) fn from_args(args: &Args) -> Result<Self> {
        let quick = args.quick;
        let only: Vec<String> = args
            .only
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        // A misspelt name would otherwise select nothing and the run
        // would print an empty table.
        if let Some(unknown) = only.iter().find(|o| !SCENARIOS.contains(&o.as_str())) {
            bail!(
                "--only: unknown scenario `{unknown}` (the scenarios: {})",
                SCENARIOS.join(", ")
            );
        }
        let work_dir = match &args.work_dir {
            Some(root) => tempfile::Builder::new()
                .prefix("tier-bench-")
                .tempdir_in(root)
                .with_context(|| format!("creating a work dir in {}", root.display()))?,
            None => tempfile::Builder::new()
                .prefix("tier-bench-")
                .tempdir()
                .context("creating a work dir")?,
        };
        Ok(Self {
            quick,
            json: args.json,
            only,
            customers: args
                .customers
                .unwrap_or(if quick { 20_000 } else { 100_000 }),
            orders: args.orders.unwrap_or(if quick { 30_000 } else { 120_000 }),
            state_customers: args.state_customers.unwrap_or(if quick {
                100_000
            } else {
                1_000_000
            }),
            zipf_s: args.zipf_s,
            seed: args.seed,
            hot_customers: args.hot_customers,
            store_backend: args.store_backend,
            store_cache_mib: args
                .store_cache_mib
                .unwrap_or_else(|| tierd::Config::default().store_cache_mib),
            batch_catch_up_min_records: args
                .batch_catch_up_min_records
                .unwrap_or_else(|| tierd::Config::default().batch_catch_up_min_records),
            rescore_repeats: args.rescore_repeats,
            work_dir,
        })
    }

    /// The options the scenarios open their stores with: tierd's, with
    /// this run's cache.
    pub(crate) fn store_options(&self) -> tier_store::StoreOptions {
        store_options(self.store_cache_mib)
    }

    /// Whether scenario `name` is selected (all are, without `--only`).
    pub(crate) fn wants(&self, name: &str) -> bool {
        debug_assert!(SCENARIOS.contains(&name), "`{name}` is not in SCENARIOS");
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// A fresh directory for one scenario, inside the run's work dir.
    pub(crate) fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work_dir.path().join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "tier-bench{}: {} customers, {} orders (zipf s = {}), state figures at {} customers ({} held decoded), tierd on {} ({} MiB cache, catch-up batches of {} records), {} cores",
            if self.quick { " --quick" } else { "" },
            self.customers,
            self.orders,
            self.zipf_s,
            self.state_customers,
            self.hot_customers.min(self.state_customers),
            self.store_backend,
            self.store_cache_mib,
            self.batch_catch_up_min_records,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )
    }
}

/// tierd's store options (its defaults) with a cache of `cache_mib` MiB.
pub(crate) fn store_options(cache_mib: u64) -> tier_store::StoreOptions {
    tierd::Config {
        store_cache_mib: cache_mib,
        ..tierd::Config::default()
    }
    .store_options()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;

    fn config(args: &[&str]) -> BenchConfig {
        let args = Args::try_parse_from(std::iter::once("tier-bench").chain(args.iter().copied()))
            .unwrap();
        BenchConfig::from_args(&args).unwrap()
    }

    #[test]
    fn only_picks_known_scenarios_and_names_an_unknown_one() {
        let cfg = config(&["--only", "state, Rescore"]);
        assert!(cfg.wants("state") && cfg.wants("rescore"));
        assert!(!cfg.wants("fold"));
        assert!(config(&[]).wants("replay"));

        let args = Args::try_parse_from(["tier-bench", "--only", "state,rescor"]).unwrap();
        let err = BenchConfig::from_args(&args).unwrap_err().to_string();
        assert!(err.contains("--only") && err.contains("`rescor`"), "{err}");
        assert!(
            err.contains("rescore"),
            "the error lists the scenarios: {err}"
        );
    }

    /// Every `tier-bench` command README and the performance log show
    /// (inline code spans, which may wrap, and lines of fenced blocks)
    /// parses and names known scenarios. An upper-case placeholder
    /// (`N`) stands for a number; the suite's own helper processes
    /// (`__broker`) are left out.
    #[test]
    fn every_tier_bench_command_in_the_docs_parses() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut checked = 0;
        let mut failures = Vec::new();
        for doc in ["README.md", "crates/tier-bench/PERFORMANCE.md"] {
            let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
            let mut prose = String::new();
            let mut commands = Vec::new();
            let mut fenced = false;
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    fenced = !fenced;
                } else if fenced {
                    commands.push(line.to_owned());
                } else {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
            commands.extend(prose.split('`').skip(1).step_by(2).map(str::to_owned));
            for command in commands {
                let words: Vec<&str> = command.split_whitespace().collect();
                let Some(at) = words.iter().position(|w| *w == "tier-bench") else {
                    continue;
                };
                let mut rest = &words[at + 1..];
                if rest.first() == Some(&"--") {
                    rest = &rest[1..];
                }
                // The helper processes the suite spawns for itself
                // (`__broker`) are named, not run by hand.
                if rest.first().is_some_and(|w| w.starts_with("__")) {
                    continue;
                }
                let args = std::iter::once("tier-bench").chain(rest.iter().map(|w| {
                    if w.chars().all(|c| c.is_ascii_uppercase()) {
                        "1"
                    } else {
                        w
                    }
                }));
                checked += 1;
                let parsed = Args::try_parse_from(args)
                    .map_err(|e| e.to_string())
                    .and_then(|a| BenchConfig::from_args(&a).map_err(|e| e.to_string()));
                if let Err(e) = parsed {
                    failures.push(format!("{doc}: `{command}`: {e}"));
                }
            }
        }
        assert!(checked >= 5, "found only {checked} tier-bench commands");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn tierd_settings_default_to_tierds_and_follow_their_flags() {
        let defaults = tierd::Config::default();
        let cfg = config(&[]);
        assert_eq!(
            cfg.batch_catch_up_min_records,
            defaults.batch_catch_up_min_records
        );
        assert_eq!(cfg.store_cache_mib, defaults.store_cache_mib);

        let cfg = config(&[
            "--batch-catch-up-min-records",
            "20000",
            "--store-cache-mib",
            "256",
        ]);
        assert_eq!(cfg.batch_catch_up_min_records, 20_000);
        assert_eq!(cfg.store_cache_mib, 256);
        assert!(cfg.describe().contains("catch-up batches of 20000 records"));
    }
}

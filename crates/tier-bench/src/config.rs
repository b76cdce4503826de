//! Command line and the scale of each scenario.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;

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
    /// Removed when the run ends.
    pub(crate) work_dir: tempfile::TempDir,
}

impl BenchConfig {
    pub(crate) fn from_args(args: &Args) -> Result<Self> {
        let quick = args.quick;
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
            only: args
                .only
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
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

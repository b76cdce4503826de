//! Commit throughput of the store: 200 batches of 5,000 distinct customers
//! (drawn from 100,000) with ~200-byte states, 8 offsets and 50 outbox rows
//! per batch; the previous batch's outbox rows are deleted after each commit,
//! as the publisher would. Runs sled with `EveryCommit` and `IntervalMs(500)`,
//! and the in-memory store for reference, and prints customers/s.
//!
//! ```text
//! cargo run --release -p tier-store --example commit_rate [BATCHES] [CUSTOMERS_PER_BATCH]
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use serde::Serialize;
use tier_store::{CommitBatch, FlushPolicy, MemStore, Scope, SledStore, Store, StoreOptions};

const POPULATION: u64 = 100_000;
const OUTBOX_ROWS: usize = 50;
const PARTITIONS: i32 = 8;

/// Roughly what a customer projection might weigh.
#[derive(Serialize)]
struct BenchState {
    revenue_minor: i64,
    orders: u32,
    open_complaints: u16,
    tier: u8,
    last_event_ms: u64,
    windows: Vec<u8>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let per_batch: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    if per_batch > POPULATION {
        return Err(format!("at most {POPULATION} customers per batch").into());
    }

    let ids: Vec<String> = (0..POPULATION).map(|i| format!("cust-{i:06}")).collect();
    let states: Vec<BenchState> = (0..POPULATION)
        .map(|i| BenchState {
            revenue_minor: 1_000_000 + i as i64 * 37,
            orders: (i % 500) as u32,
            open_complaints: (i % 3) as u16,
            tier: (i % 4) as u8,
            last_event_ms: 1_750_000_000_000 + i,
            windows: vec![(i % 251) as u8; 176],
        })
        .collect();
    let value_bytes = postcard::to_stdvec(&states[0])?.len() + 1;
    println!(
        "{batches} batches x {per_batch} customers of {POPULATION}, {value_bytes}-byte values, \
         {PARTITIONS} offsets and {OUTBOX_ROWS} outbox rows per batch"
    );

    let workload = Workload {
        ids: &ids,
        states: &states,
        batches,
        per_batch,
    };
    for flush in [FlushPolicy::EveryCommit, FlushPolicy::IntervalMs(500)] {
        let tmp = tempfile::tempdir()?;
        let store = SledStore::open(
            &tmp.path().join("data"),
            StoreOptions {
                flush,
                ..StoreOptions::default()
            },
        )?;
        workload.run(&format!("sled {flush:?}"), &store)?;
    }
    workload.run("mem (reference)", &MemStore::new())?;
    Ok(())
}

struct Workload<'a> {
    ids: &'a [String],
    states: &'a [BenchState],
    batches: u64,
    per_batch: u64,
}

impl Workload<'_> {
    fn run(&self, label: &str, store: &impl Store) -> Result<(), Box<dyn Error>> {
        let mut latencies = Vec::with_capacity(self.batches as usize);
        let mut previous_rows: Vec<u64> = Vec::new();
        let started = Instant::now();
        for b in 0..self.batches {
            // 7919 is coprime to the population, so a batch never repeats a customer.
            let customers = (0..self.per_batch)
                .map(|i| {
                    let c = ((b * self.per_batch + i) * 7_919 % POPULATION) as usize;
                    (
                        Scope::partition((c % PARTITIONS as usize) as i32)
                            .unwrap_or(Scope::UNSCOPED),
                        self.ids[c].as_str(),
                        &self.states[c],
                    )
                })
                .collect();
            let offsets = (0..PARTITIONS)
                .map(|p| ("orders", p, (b as i64 + 1) * 1_000))
                .collect();
            let outbox = (0..OUTBOX_ROWS)
                .map(|r| vec![(r % 256) as u8; 150])
                .collect();
            let batch = CommitBatch {
                customers,
                moved: Vec::new(),
                offsets,
                outbox,
                meta: Vec::new(),
            };

            let t = Instant::now();
            let receipt = store.commit(&batch)?;
            store.outbox_delete(&previous_rows)?;
            latencies.push(t.elapsed());
            previous_rows = receipt.outbox_keys.collect();
        }
        store.flush()?;
        let elapsed = started.elapsed();
        latencies.sort();
        let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        let committed = self.batches * self.per_batch;
        println!(
            "{label:>24}: {:>9.0} customers/s  ({committed} in {:.2?}; per batch p50 {:.1?}, p99 {:.1?}, max {:.1?})",
            committed as f64 / elapsed.as_secs_f64(),
            elapsed,
            pct(0.5),
            pct(0.99),
            latencies.last().copied().unwrap_or(Duration::ZERO),
        );
        Ok(())
    }
}

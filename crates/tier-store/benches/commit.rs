//! Criterion benches of the store's write paths, per backend compiled in
//! (`cargo bench -p tier-store --all-features --bench commit`):
//!
//! - `commit_500`: the committer's path, one batch of 500 customer states
//!   (~300-600 bytes encoded), 16 partition offsets and 4 outbox rows,
//!   prepared, applied and synced (an fsync per batch), on a store that
//!   already holds 20,000 customers.
//! - `bulk_load_50k`: 50,000 new customers into a fresh store in batches of
//!   10,000 with `apply`, one `sync` at the end (a rebuild from Kafka).
//!
//! `examples/store_figures.rs` measures the same paths at 1,000,000
//! customers, plus disk use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "a bench: any failure should abort it"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde::Serialize;
use tier_store::{
    AnyStore, Backend, CommitBatch, FlushPolicy, PreparedBatch, Scope, Store, StoreOptions,
};

const PRELOADED: u64 = 20_000;
const BULK: u64 = 50_000;
const LOAD_BATCH: u64 = 10_000;

#[derive(Serialize)]
struct BenchState {
    revenue_minor: i64,
    orders: u32,
    open_complaints: u16,
    tier: u8,
    sequence: u64,
    last_event_ms: u64,
    account_manager: String,
    windows: Vec<u32>,
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// ~300-600 encoded bytes.
fn state(rng: &mut Rng, i: u64) -> BenchState {
    let target = 300 + rng.below(301) as usize;
    BenchState {
        revenue_minor: rng.below(50_000_000) as i64,
        orders: rng.below(2_000) as u32,
        open_complaints: rng.below(4) as u16,
        tier: rng.below(4) as u8,
        sequence: rng.below(10_000),
        last_event_ms: 1_750_000_000_000 + rng.below(10_000_000_000),
        account_manager: format!("am-{:03}", i % 400),
        windows: (0..(target - 36) / 2)
            .map(|_| 128 + rng.below(16_000) as u32)
            .collect(),
    }
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("cust-{i:07}")).collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        flush: FlushPolicy::EveryCommit,
        ..StoreOptions::default()
    }
}

fn load(store: &AnyStore, ids: &[String], states: &[BenchState]) {
    for (ids, states) in ids
        .chunks(LOAD_BATCH as usize)
        .zip(states.chunks(LOAD_BATCH as usize))
    {
        let batch = CommitBatch {
            customers: ids
                .iter()
                .zip(states)
                .enumerate()
                .map(|(i, (id, s))| (scope_of(i), id.as_str(), s))
                .collect(),
            ..CommitBatch::new()
        };
        store
            .apply(PreparedBatch::prepare(&batch).unwrap())
            .unwrap();
    }
    store.sync().unwrap();
}

fn commit_500(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_500");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    let mut rng = Rng(7);
    let all_ids = ids(0..PRELOADED);
    let all_states: Vec<BenchState> = (0..PRELOADED).map(|i| state(&mut rng, i)).collect();
    // A pool of batches to cycle through: updates of preloaded customers.
    let batches: Vec<Vec<(usize, BenchState)>> = (0..16)
        .map(|_| {
            (0..500)
                .map(|_| {
                    let i = rng.below(PRELOADED);
                    (i as usize, state(&mut rng, i))
                })
                .collect()
        })
        .collect();
    for backend in Backend::compiled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AnyStore::open(backend, &tmp.path().join("data"), opts()).unwrap();
        load(&store, &all_ids, &all_states);
        let mut n = 0usize;
        let mut previous: Vec<u64> = Vec::new();
        group.bench_function(backend.name(), |b| {
            b.iter(|| {
                let updates = &batches[n % batches.len()];
                n += 1;
                let batch = CommitBatch {
                    customers: updates
                        .iter()
                        .map(|(i, s)| (scope_of(*i), all_ids[*i].as_str(), s))
                        .collect(),
                    moved: Vec::new(),
                    offsets: (0..16).map(|p| ("orders", p, n as i64)).collect(),
                    outbox: vec![vec![7u8; 120]; 4],
                    meta: Vec::new(),
                };
                let receipt = store
                    .apply(PreparedBatch::prepare(&batch).unwrap())
                    .unwrap();
                store.sync().unwrap();
                store.outbox_delete(&previous).unwrap();
                previous = black_box(receipt.outbox_keys.collect());
            });
        });
    }
    group.finish();
}

fn bulk_load_50k(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk_load_50k");
    group
        .throughput(Throughput::Elements(BULK))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let mut rng = Rng(11);
    let all_ids = ids(0..BULK);
    let all_states: Vec<BenchState> = (0..BULK).map(|i| state(&mut rng, i)).collect();
    for backend in Backend::compiled_in() {
        group.bench_function(backend.name(), |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |tmp| {
                    let store = AnyStore::open(backend, &tmp.path().join("data"), opts()).unwrap();
                    load(&store, &all_ids, &all_states);
                    drop(store);
                    tmp
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, commit_500, bulk_load_50k);
criterion_main!(benches);

/// The input partition of customer `i` (16, like the offsets).
fn scope_of(i: usize) -> Scope {
    Scope::partition((i % 16) as i32).unwrap_or(Scope::UNSCOPED)
}

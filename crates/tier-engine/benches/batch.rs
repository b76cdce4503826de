//! The engine's batch path, no IO: fold a batch of records into a warm
//! [`Engine`] and seal it, as the ingest loop does between two polls;
//! then what the committer does before it writes: encode the touched
//! states and the outbox rows into a [`PreparedBatch`] (and apply it to a
//! [`MemStore`]). Criterion reports records/s (`thrpt`).
//!
//! Workload: `tier_core::sim`, 20,000 customers, 30,000 orders (Zipf
//! s = 1.1); the first half of the stream warms the engine, the batch is
//! the next [`BATCH`] records (tierd's default `batch_max_records`). Each
//! iteration starts from a fresh copy of the warm engine (untimed).
//!
//! `cargo bench -p tier-engine --bench batch`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tier_core::Event;
use tier_core::policy::Policy;
use tier_core::sim::Workload;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_engine::{Batch, Engine, SealInfo, Unit};
use tier_store::{CommitBatch, MemStore, PreparedBatch, Store as _};
use tier_wire::tier_changed::encode_row;

/// Records per batch.
const BATCH: usize = 20_000;

fn warm_engine(
    policy: &Arc<Policy>,
    states: &[(String, CustomerState)],
    now: tier_core::Timestamp,
) -> Engine {
    Engine::new(policy.clone(), states.iter().cloned(), now)
}

fn bench(c: &mut Criterion) {
    let policy = Arc::new(Policy::default_policy());
    let end = date(2026, 11, 1);
    let mut w = Workload::new(20_000, 30_000, end);
    w.zipf_s = 1.1;
    let events = w.generate();
    let (warm, rest) = events.split_at(events.len() / 2);
    let batch: Vec<Event> = rest.iter().take(BATCH).cloned().collect();
    let warm_at = warm.last().map_or(end, |e| e.occurred_at);
    let states: Vec<(String, CustomerState)> = {
        let mut engine = Engine::new(policy.clone(), Vec::new(), warm_at);
        let mut unit = Unit::new();
        for e in warm {
            engine.fold(&mut unit, e);
        }
        engine.seal(&unit);
        engine
            .customers()
            .map(|(id, s)| (id.to_owned(), s.into_owned()))
            .collect()
    };
    let partition = ("erp.events".to_owned(), 0);

    let mut group = c.benchmark_group("engine_batch");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(10);
    // The engine thread's part: record, fold, seal into a CommitUnit
    // (which copies every touched state and encodes the notice rows).
    group.bench_function("fold_seal_20k", |b| {
        b.iter_batched(
            || warm_engine(&policy, &states, warm_at),
            |mut engine| {
                let mut batch_in_hand = Batch::new();
                for (offset, e) in batch.iter().enumerate() {
                    batch_in_hand.record(&partition, offset as i64, e.kind.type_name());
                    engine.fold(&mut batch_in_hand.unit, e);
                }
                let unit = engine.seal_batch(batch_in_hand, Vec::new(), SealInfo::default());
                black_box(unit.records());
                engine
            },
            BatchSize::PerIteration,
        );
    });
    // Fold and seal, then the committer's preparation (states encoded,
    // outbox rows encoded) and an in-memory apply.
    let store = MemStore::new();
    group.bench_function("fold_seal_prepare_memstore_20k", |b| {
        b.iter_batched(
            || warm_engine(&policy, &states, warm_at),
            |mut engine| {
                let mut unit = Unit::new();
                for e in &batch {
                    engine.fold(&mut unit, e);
                }
                engine.seal(&unit);
                let commit = CommitBatch {
                    customers: engine.unit_customers(&unit),
                    moved: Vec::new(),
                    offsets: vec![(partition.0.as_str(), partition.1, batch.len() as i64)],
                    outbox: unit.changes.iter().map(encode_row).collect(),
                    meta: Vec::new(),
                };
                let prepared = PreparedBatch::prepare(&commit).unwrap();
                store.commit_prepared(prepared).unwrap();
                engine
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

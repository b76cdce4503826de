//! Fold + rescore throughput of the core on a realistic, Zipf-skewed stream
//! of 100,000 customers, in memory, on one core. Criterion reports the
//! throughput in events/s (`thrpt`). Goal (ROADMAP): >= 1,000,000 events/s.
//!
//! `cargo bench -p tier-core --bench fold`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::sim::Workload;
use tier_core::state::fold_all;
use tier_core::time::date;

fn bench(c: &mut Criterion) {
    let policy = Policy::default_policy();
    let end = date(2026, 11, 1);
    let mut w = Workload::new(100_000, 120_000, end);
    w.zipf_s = 0.9;
    let events = w.generate();
    // Warm state: the first year builds the projections; measure the
    // steady state of folding a further stream into existing customers.
    let (warm, hot) = events.split_at(events.len() / 2);
    let mut warm_states = CustomerMap::default();
    fold_all(warm, &policy, &mut warm_states);

    let mut group = c.benchmark_group("fold_rescore");
    group.throughput(Throughput::Elements(hot.len() as u64));
    group.sample_size(10);
    group.bench_function("realistic_zipf_100k_customers", |b| {
        b.iter_batched(
            || warm_states.clone(),
            |mut states| {
                fold_all(hot, &policy, &mut states);
                states
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

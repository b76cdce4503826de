//! Costs of the ranking machinery (`tier_core::rank`) at 1,000,000
//! customers: (a) one rank update per event, (b) a full cut-point
//! recomputation, (c) the diff after a small population change, and the
//! one-sort bulk build used at start-up or when the ranked measure changes.
//!
//! Values: 15% of customers at 0 (a large tie), the rest log-normal
//! revenue rounded to whole units (more ties), ids `C0000000`...
//!
//! `cargo bench -p tier-core --bench rank`

use std::borrow::Borrow;
use std::hash::Hash;
use std::hint::black_box;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::LogNormal;
use tier_core::projection::CustomerId;
use tier_core::rank::{Direction, Proportions, Ranking};

const CUSTOMERS: usize = 1_000_000;

fn id(i: usize) -> String {
    format!("C{i:07}")
}

fn draw(rng: &mut StdRng, revenue: &LogNormal<f64>) -> f64 {
    if rng.random_bool(0.15) {
        0.0
    } else {
        rng.sample(revenue).round()
    }
}

/// Each iteration updates the next customer of `updates` (in turn).
fn upsert_in_turn<K>(b: &mut Bencher<'_>, ranking: &mut Ranking<K>, updates: &[(String, f64)])
where
    K: Ord + Hash + Clone + Borrow<str> + From<String>,
{
    let mut next = 0;
    b.iter(|| {
        let (who, value) = &updates[next % updates.len()];
        next += 1;
        black_box(ranking.upsert(who.as_str(), *value))
    });
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(9);
    let revenue = LogNormal::new(10.0, 1.5).unwrap_or_else(|e| panic!("{e}"));
    let population: Vec<(String, f64)> = (0..CUSTOMERS)
        .map(|i| (id(i), draw(&mut rng, &revenue)))
        .collect();
    let abc = Proportions::new(&[0.2, 0.3, 0.5])
        .and_then(|p| p.with_low_share(0.1))
        .unwrap_or_else(|e| panic!("{e}"));
    let quintiles = Proportions::quintiles();

    let mut group = c.benchmark_group("rank_1m");
    group.sample_size(10);

    group.bench_function("bulk_build_from_values", |b| {
        b.iter(|| Ranking::from_values(Direction::HigherIsBetter, population.iter().cloned()));
    });

    let mut ranking = Ranking::from_values(Direction::HigherIsBetter, population.iter().cloned());

    // (a) One event: a known customer's value changes.
    let updates: Vec<(String, f64)> = (0..1 << 16)
        .map(|_| (id(rng.random_range(0..CUSTOMERS)), draw(&mut rng, &revenue)))
        .collect();
    group.bench_function("upsert_existing_customer", |b| {
        upsert_in_turn(b, &mut ranking, &updates);
    });
    // The same updates on ids held inline (tier-core's `CustomerId`, what
    // the read model's rankings hold): comparing two ids reads the
    // entries themselves instead of two strings elsewhere on the heap.
    let mut inline: Ranking<CustomerId> = Ranking::from_values(
        Direction::HigherIsBetter,
        population
            .iter()
            .map(|(id, v)| (CustomerId::from(id.as_str()), *v)),
    );
    group.bench_function("upsert_existing_customer_inline_ids", |b| {
        upsert_in_turn(b, &mut inline, &updates);
    });
    drop(inline);

    // A new customer arrives and another leaves.
    let mut fresh = CUSTOMERS;
    group.bench_function("insert_new_and_remove_customer", |b| {
        b.iter(|| {
            let who = id(fresh);
            fresh += 1;
            ranking.upsert(who.as_str(), draw(&mut rng, &revenue));
            black_box(ranking.remove(who.as_str()))
        });
    });

    // (b) Full cut-point recomputation.
    group.bench_function("cuts_abc_20_30_50_low_10", |b| {
        b.iter(|| black_box(ranking.cuts(&abc)));
    });
    group.bench_function("cuts_quintiles", |b| {
        b.iter(|| black_box(ranking.cuts(&quintiles)));
    });

    // (c) Diff after a small population change: 50 customers leave, 50
    // arrive, 100 change value; then recut.
    // A fresh ranking and generator, so the change is the same on every run.
    let mut ranking = Ranking::from_values(Direction::HigherIsBetter, population.iter().cloned());
    let mut rng = StdRng::seed_from_u64(10);
    let old = ranking.cuts(&abc);
    for newcomer in CUSTOMERS..CUSTOMERS + 50 {
        ranking.remove(id(rng.random_range(0..CUSTOMERS)).as_str());
        ranking.upsert(id(newcomer).as_str(), draw(&mut rng, &revenue));
    }
    for _ in 0..100 {
        let who = id(rng.random_range(0..CUSTOMERS));
        ranking.upsert(who.as_str(), draw(&mut rng, &revenue));
    }
    let new = ranking.cuts(&abc);
    println!(
        "diff after a small change: cut positions {:?} -> {:?}, low {} -> {}, {} customers change placement",
        old.boundary_positions(),
        new.boundary_positions(),
        old.flagged_low_count(),
        new.flagged_low_count(),
        ranking.diff(&old, &new).len()
    );
    group.bench_function("diff_after_small_change", |b| {
        b.iter(|| black_box(ranking.diff(&old, &new)));
    });
    // For scale: a diff when the policy changes the shares (20/30/50 ->
    // 25/25/50, a 50,000-customer walk).
    let other = Proportions::new(&[0.25, 0.25, 0.5])
        .and_then(|p| p.with_low_share(0.1))
        .unwrap_or_else(|e| panic!("{e}"));
    let moved = ranking.cuts(&other);
    group.bench_function("diff_after_policy_change_50k_moves", |b| {
        b.iter(|| black_box(ranking.diff(&new, &moved)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

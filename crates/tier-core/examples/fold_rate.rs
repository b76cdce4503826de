//! The loop of `benches/fold.rs` without criterion, for quick A/B runs on
//! a shared machine: warms 100,000 customers with the first half of the
//! stream, then folds the second half `reps` times (each on a fresh copy
//! of the warm states) and prints the best and median rates.
//!
//! `cargo run --release -p tier-core --example fold_rate -- [reps] [customers]`

use std::time::Instant;

use tier_core::Event;
use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::sim::Workload;
use tier_core::state::{CustomerState, fold_all};
use tier_core::time::date;

/// The timed pass, apart so that `valgrind --tool=callgrind
/// --toggle-collect=*hot_pass*` counts its instructions alone.
#[inline(never)]
fn hot_pass(events: &[Event], policy: &Policy, states: &mut CustomerMap<CustomerState>) -> usize {
    fold_all(events, policy, states)
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let reps = args.next().flatten().unwrap_or(7).max(1);
    let customers = args.next().flatten().unwrap_or(100_000);
    let policy = Policy::default_policy();
    let mut w = Workload::new(customers, customers + customers / 5, date(2026, 11, 1));
    w.zipf_s = 0.9;
    let events = w.generate();
    let (warm, hot) = events.split_at(events.len() / 2);
    let mut warm_states = CustomerMap::default();
    fold_all(warm, &policy, &mut warm_states);
    let mut rates = Vec::new();
    for _ in 0..reps {
        let mut states = warm_states.clone();
        let t = Instant::now();
        std::hint::black_box(hot_pass(hot, &policy, &mut states));
        rates.push(hot.len() as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{} events: best {:.0} ev/s, median {:.0} ev/s",
        hot.len(),
        rates[rates.len() - 1],
        rates[rates.len() / 2]
    );
}

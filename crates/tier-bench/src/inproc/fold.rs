//! `fold`: fold + rescore of the touched customer, one thread, in memory.
//!
//! The loop of `crates/tier-core/benches/fold.rs` (`CustomerState::process`
//! per event, which folds the event and rescores its customer) on the
//! run's event workload: the first half of the stream warms the states,
//! the second half is timed, on a fresh copy of the warm states per
//! repetition. The figure is the median repetition.

use std::time::Instant;

use anyhow::Result;
use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::state::fold_all;

use crate::config::BenchConfig;
use crate::report::{Figure, Goal, Report};
use crate::workload::events;

/// Timed repetitions (the median is reported).
const REPS: usize = 5;

pub(crate) fn run(cfg: &BenchConfig, report: &mut Report) -> Result<()> {
    let policy = Policy::default_policy();
    let events = events(cfg);
    let (warm, hot) = events.split_at(events.len() / 2);
    let mut warm_states = CustomerMap::default();
    fold_all(warm, &policy, &mut warm_states);
    let mut rates = Vec::with_capacity(REPS);
    let mut changes = 0;
    for _ in 0..REPS {
        let mut states = warm_states.clone();
        let started = Instant::now();
        changes = fold_all(hot, &policy, &mut states);
        let secs = started.elapsed().as_secs_f64();
        rates.push(hot.len() as f64 / secs);
        drop(states);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    report.add(
        Figure::new(
            "fold_events_per_sec",
            "fold + rescore, 1 thread, in memory",
            median,
            " ev/s",
        )
        .goal(Goal::AtLeast(1_000_000.0))
        .note(format!(
            "{} timed events (second half of {} events, {} customers, zipf s = {}), \
             {} tier changes; median of {REPS} runs, range {:.0}-{:.0} ev/s; \
             same loop as `cargo bench -p tier-core --bench fold`",
            hot.len(),
            events.len(),
            cfg.customers,
            cfg.zipf_s,
            changes,
            rates[0],
            rates[rates.len() - 1],
        )),
    );
    Ok(())
}

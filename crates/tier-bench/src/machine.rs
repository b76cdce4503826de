//! How fast the machine is on the day of the run, so that runs on
//! different days can be read side by side.
//!
//! The development VM's speed moves from one day to the next, and not
//! uniformly: on a slow day memory-bound work (tierd's fold, the
//! rescore's decoding) loses more than compute-bound work. Each run
//! measures both before its scenarios, in about a second:
//!
//! - `random_read_ns`: one dependent random read from a 64 MiB table (a
//!   pointer chase over a single cycle, so no read can start before the
//!   one it depends on ends): past every cache of the machines tierd is
//!   measured on, so this is the memory's latency with the TLB misses
//!   of 4 KiB pages, what tierd's fold and rescore wait on;
//! - `compute_ns`: one step of a dependent chain of 64-bit
//!   xor-shift-multiply steps (the mixing step of splitmix64's
//!   finalizer, which a compiler cannot fold several of into one as it
//!   can the steps of a linear congruential generator): the core's own
//!   speed.
//!
//! Neither is a goal or a peer; they go into the JSON's `context` and a
//! line above the table.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};
use tier_core::sim::SplitMix64;

/// Entries of the chased table: 8 Mi `usize`s, 64 MiB.
const TABLE_ENTRIES: usize = 8 << 20;
/// Reads timed in the chase.
const READS: usize = 2_000_000;
/// Steps timed in the mixing chain.
const STEPS: u64 = 100_000_000;

/// The machine's speed as measured at the start of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Machine {
    /// Nanoseconds per dependent random read from 64 MiB.
    pub(crate) random_read_ns: f64,
    /// Nanoseconds per step of a dependent xor-shift-multiply chain.
    pub(crate) compute_ns: f64,
}

impl Machine {
    /// Measure (about a second).
    pub(crate) fn measure() -> Self {
        let table = single_cycle(TABLE_ENTRIES, 0x9e37_79b9_7f4a_7c15);
        // A part of the cycle first (the shuffle faulted every page in
        // and left its last writes in the caches), so the timed reads
        // start as a chase goes on: past the caches and the TLB.
        let warm = chase(&table, 0, READS / 4);
        let started = Instant::now();
        let end = chase(&table, warm, READS);
        let random_read_ns = started.elapsed().as_nanos() as f64 / READS as f64;
        black_box(end);
        let started = Instant::now();
        let x = mix_chain(black_box(1), STEPS);
        let compute_ns = started.elapsed().as_nanos() as f64 / STEPS as f64;
        black_box(x);
        Self {
            random_read_ns,
            compute_ns,
        }
    }

    /// For the JSON's `context`.
    pub(crate) fn json(&self) -> Value {
        json!({
            "random_read_ns": round2(self.random_read_ns),
            "compute_ns": round2(self.compute_ns),
        })
    }

    /// For the line above the table.
    pub(crate) fn describe(&self) -> String {
        format!(
            "machine (this run): a dependent random read from 64 MiB {:.1} ns, \
             a step of a dependent xor-shift-multiply chain {:.2} ns",
            self.random_read_ns, self.compute_ns
        )
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A table whose entries form one cycle through every index (Sattolo's
/// shuffle), so a chase from any entry visits all of them before it
/// comes back, in an order no prefetcher can guess.
fn single_cycle(n: usize, seed: u64) -> Vec<usize> {
    let mut table: Vec<usize> = (0..n).collect();
    // The workload generator's random numbers: plenty for an order of
    // reads.
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % i as u64) as usize;
        table.swap(i, j);
    }
    table
}

/// Follow `table` from `from` for `reads` reads; where it ends.
fn chase(table: &[usize], from: usize, reads: usize) -> usize {
    let mut at = from;
    for _ in 0..reads {
        at = table[at];
    }
    at
}

/// `steps` xor-shift-multiply steps from `x`, each on the one before.
fn mix_chain(mut x: u64, steps: u64) -> u64 {
    for _ in 0..steps {
        x = mix(x);
    }
    x
}

/// One mixing step of splitmix64's finalizer.
fn mix(x: u64) -> u64 {
    (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chased_table_is_one_cycle_through_every_entry() {
        for n in [2, 3, 10, 1_000] {
            let table = single_cycle(n, 42);
            let mut seen = vec![false; n];
            let mut at = 0;
            for _ in 0..n {
                assert!(!seen[at], "n = {n}: entry {at} visited twice");
                seen[at] = true;
                at = table[at];
            }
            assert_eq!(at, 0, "n = {n}: the chase did not come back to its start");
            assert!(
                seen.iter().all(|s| *s),
                "n = {n}: an entry was never visited"
            );
        }
    }

    #[test]
    fn the_mixing_chain_applies_each_step_to_the_one_before() {
        assert_eq!(mix_chain(7, 0), 7);
        assert_eq!(mix_chain(1, 1), 0xbf58_476d_1ce4_e5b9);
        assert_eq!(mix_chain(1, 3), mix(mix(mix(1))));
    }
}

//! How many customers the pipeline sweeps, and rescores under a new
//! policy, between two batches.
//!
//! Events wait while the engine's thread works through a slice: an event
//! arriving as a slice starts is folded only after it. A fixed count
//! cannot suit both kinds of work: 5,000 customers rescored take about
//! 30 ms, 5,000 swept past a business-day start (thawed, advanced,
//! encoded again) about 120 ms, which is what a live event then waits on
//! top of its own batch, slice after slice, for as long as the sweep
//! lasts (at the day start of a million customers, tens of seconds).
//!
//! [`Slices`] sizes each slice from the time the previous turns took: it
//! keeps a smoothed rate (customers per second of a loop turn with a
//! slice in it, event work included, so a busy turn shrinks the next
//! slice) and takes `rate x target` customers, at least [`MIN_SLICE`] so
//! that the work always advances, at most the configured count. The
//! pipeline reads the clock; the engine only ever sees a count. While
//! the pipeline catches up with a backlog, an event waits on the backlog
//! more than on a slice, and a rescore takes whole slices (sweeps wait
//! until caught up anyway).
//!
//! A turn counts from the start of its fill: with a slice waiting, the
//! fill lasts until the commit before it is durable, and that commit
//! wrote the previous slice's customers. A swept customer is written
//! again (a busy one is megabytes), so a sweep's commits, not its slices,
//! were most of what a live event waited on: counting only the engine's
//! part, the sweep a caught-up tierd starts with (the tens of thousands
//! of customers a backlog just ingested left due, in the bench's
//! freshness run) held live events for up to 300 ms, for two seconds.

use std::time::Duration;

/// The smallest slice: a sweep or a rescore always advances by at least
/// this many customers per loop turn, however busy the turn.
pub const MIN_SLICE: usize = 100;

/// Weight of the newest turn in the smoothed rate.
const NEWEST_WEIGHT: f64 = 0.3;

/// Sizes sweep and rescore slices to take about `target` each.
#[derive(Debug, Clone)]
pub struct Slices {
    max: usize,
    target: Duration,
    /// Customers per second of a turn with a slice in it, smoothed; `None`
    /// until a turn did slice work.
    rate: Option<f64>,
}

impl Slices {
    /// At most `max` customers a slice (at least 1), each slice taking
    /// about `target`; a zero target means always `max` (fixed slices).
    pub fn new(max: usize, target: Duration) -> Self {
        Self {
            max: max.max(1),
            target,
            rate: None,
        }
    }

    /// The customers the next slice may take.
    pub fn size(&self) -> usize {
        if self.target.is_zero() {
            return self.max;
        }
        let floor = MIN_SLICE.min(self.max);
        match self.rate {
            // Nothing measured yet: start small and let the rate grow it.
            None => floor,
            Some(rate) => {
                let n = rate * self.target.as_secs_f64();
                if n >= self.max as f64 {
                    self.max
                } else {
                    (n as usize).max(floor)
                }
            }
        }
    }

    /// A loop turn swept or rescored `done` customers and took `took`
    /// (from its fill's start, which waits for the commit before, to its
    /// unit's hand-over: the time an event waiting for the next batch
    /// waited on it). Turns without slice work teach nothing.
    pub fn observe(&mut self, done: u64, took: Duration) {
        if done == 0 {
            return;
        }
        // A turn faster than a microsecond is a measuring artefact.
        let secs = took.as_secs_f64().max(1e-6);
        let rate = done as f64 / secs;
        self.rate = Some(match self.rate {
            None => rate,
            Some(old) => old + NEWEST_WEIGHT * (rate - old),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_slice_starts_small_and_grows_to_what_fits_the_target() {
        let mut s = Slices::new(5_000, 20 * MS);
        assert_eq!(s.size(), MIN_SLICE);
        // 100 customers in 1 ms: 100,000 a second, 2,000 in 20 ms.
        s.observe(100, MS);
        assert_eq!(s.size(), 2_000);
        for _ in 0..50 {
            let n = s.size();
            s.observe(n as u64, Duration::from_secs_f64(n as f64 / 100_000.0));
        }
        assert_eq!(s.size(), 2_000);
    }

    #[test]
    fn slow_work_takes_small_slices_fast_work_the_configured_count() {
        // A sweep at 40,000 customers a second: 800 in 20 ms.
        let mut slow = Slices::new(5_000, 20 * MS);
        slow.observe(5_000, 125 * MS);
        assert_eq!(slow.size(), 800);
        // A rescore at 1,000,000 a second: capped at the count.
        let mut fast = Slices::new(5_000, 20 * MS);
        fast.observe(5_000, 5 * MS);
        assert_eq!(fast.size(), 5_000);
    }

    #[test]
    fn a_busy_turn_shrinks_the_next_slice_and_it_recovers() {
        let mut s = Slices::new(5_000, 20 * MS);
        s.observe(2_000, 20 * MS); // 100,000/s
        assert_eq!(s.size(), 2_000);
        // A turn that also folded a large batch: 200 ms for 2,000.
        s.observe(2_000, 200 * MS);
        let shrunk = s.size();
        assert!(shrunk < 2_000, "{shrunk}");
        for _ in 0..30 {
            s.observe(1_000, 10 * MS);
        }
        // The smoothed rate nears 100,000/s again.
        let recovered = s.size();
        assert!((1_990..=2_000).contains(&recovered), "{recovered}");
    }

    /// A sweep whose commits are slow (swept customers written again)
    /// takes slices that fit the target with their commit: a turn of
    /// 10 ms of sweeping after a 90 ms wait for the commit of the slice
    /// before is a 100 ms turn, and the next slice is a fifth of it.
    #[test]
    fn the_commit_a_slice_waits_for_counts_against_the_slice() {
        let mut s = Slices::new(5_000, 20 * MS);
        s.observe(1_000, 10 * MS); // the engine alone: 100,000/s
        assert_eq!(s.size(), 2_000);
        let mut waited = Slices::new(5_000, 20 * MS);
        waited.observe(1_000, 10 * MS + 90 * MS); // 10,000/s
        assert_eq!(waited.size(), 200);
    }

    #[test]
    fn however_slow_a_slice_still_advances() {
        let mut s = Slices::new(5_000, 20 * MS);
        s.observe(10, Duration::from_secs(10));
        assert_eq!(s.size(), MIN_SLICE);
        // A configured count below the floor wins.
        let mut tiny = Slices::new(10, 20 * MS);
        tiny.observe(10, Duration::from_secs(10));
        assert_eq!(tiny.size(), 10);
    }

    #[test]
    fn turns_without_slice_work_change_nothing_and_zero_target_is_fixed() {
        let mut s = Slices::new(5_000, 20 * MS);
        s.observe(0, Duration::from_secs(1));
        assert_eq!(s.size(), MIN_SLICE);
        let mut fixed = Slices::new(5_000, Duration::ZERO);
        assert_eq!(fixed.size(), 5_000);
        fixed.observe(10, Duration::from_secs(10));
        assert_eq!(fixed.size(), 5_000);
        assert_eq!(Slices::new(0, Duration::ZERO).size(), 1);
    }
}

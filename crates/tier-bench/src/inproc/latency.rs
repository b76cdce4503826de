//! Latency samples and their percentiles (nearest rank, no interpolation:
//! a reported p99 is a latency some request actually had).

use std::time::Duration;

/// Every latency of a run, merged from the workers.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    samples: Vec<Duration>,
    sorted: bool,
}

impl Latencies {
    pub(crate) fn extend(&mut self, more: Vec<Duration>) {
        self.samples.extend(more);
        self.sorted = false;
    }

    /// Take in every sample of `other` (another run's).
    pub(crate) fn absorb(&mut self, other: Latencies) {
        self.extend(other.samples);
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// The `p`-th percentile (0 < p <= 100) in milliseconds; `None` with
    /// no samples.
    pub(crate) fn percentile_ms(&mut self, p: f64) -> Option<f64> {
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        percentile(&self.samples, p).map(|d| d.as_secs_f64() * 1e3)
    }
}

/// Nearest-rank percentile of sorted `samples`: the smallest sample with
/// at least `p`% of the samples at or below it.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_of_a_hundred_samples() {
        let s = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 99.9), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(percentile(&[], 99.0), None);
        let one = ms(&[7]);
        assert_eq!(percentile(&one, 1.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        // p99 of 10 samples is the largest: no interpolation below it.
        let ten = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 50]);
        assert_eq!(percentile(&ten, 99.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&ten, 90.0), Some(Duration::from_millis(9)));
    }

    #[test]
    fn merged_unsorted_samples_are_sorted_before_ranking() {
        let mut l = Latencies::default();
        l.extend(ms(&[30, 10]));
        l.extend(ms(&[20]));
        assert_eq!(l.len(), 3);
        assert_eq!(l.percentile_ms(50.0), Some(20.0));
        l.extend(ms(&[1]));
        assert_eq!(l.percentile_ms(25.0), Some(1.0));
        let mut other = Latencies::default();
        other.extend(ms(&[40]));
        l.absorb(other);
        assert_eq!(l.len(), 5);
        assert_eq!(l.percentile_ms(100.0), Some(40.0));
    }
}

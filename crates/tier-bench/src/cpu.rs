//! Where a timed window's cores went: the CPU time of each of this
//! process's threads (tierd runs in it), from Linux's per-thread
//! `/proc/self/task/*/schedstat` (nanoseconds on a CPU), grouped by
//! thread name with its number dropped (`sled-io-3` is `sled-io`).
//!
//! A thread that ends inside the window is missed; one that starts in it
//! counts from its start. Where `/proc` has no `schedstat`, there is no
//! breakdown and the note says so.

use std::collections::HashMap;
use std::time::Duration;

/// Threads shown by name in the note; the rest are summed as `other`.
const SHOWN: usize = 8;

/// CPU time so far of every thread alive at one instant: id -> (name, ns).
#[derive(Debug)]
pub(crate) struct Threads(HashMap<u32, (String, u64)>);

impl Threads {
    /// The threads now; `None` without a readable `/proc/self/task`.
    pub(crate) fn now() -> Option<Self> {
        let mut out = HashMap::new();
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the reads.
            let (Ok(comm), Ok(stat)) = (
                std::fs::read_to_string(task.path().join("comm")),
                std::fs::read_to_string(task.path().join("schedstat")),
            ) else {
                continue;
            };
            let Some(ns) = stat.split_whitespace().next().and_then(|s| s.parse().ok()) else {
                continue;
            };
            out.insert(tid, (comm.trim().to_owned(), ns));
        }
        (!out.is_empty()).then_some(Self(out))
    }

    /// CPU seconds per thread group from `earlier` to `self`, busiest
    /// first.
    pub(crate) fn since(&self, earlier: &Threads) -> Vec<(String, f64)> {
        let mut groups: HashMap<String, u64> = HashMap::new();
        for (tid, (name, ns)) in &self.0 {
            let before = earlier.0.get(tid).map_or(0, |(_, ns)| *ns);
            *groups.entry(group_of(name).to_owned()).or_default() += ns.saturating_sub(before);
        }
        let mut out: Vec<(String, f64)> = groups
            .into_iter()
            .filter(|(_, ns)| *ns > 0)
            .map(|(name, ns)| (name, ns as f64 / 1e9))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// A thread's group: its name without a trailing number and separator.
fn group_of(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches(['-', '_', ':'])
}

/// The note of a window of `wall` from `before` to `after` on this
/// machine's cores (no breakdown when either could not be read).
pub(crate) fn window_note(
    before: Option<&Threads>,
    after: Option<&Threads>,
    wall: Duration,
) -> String {
    let groups = match (before, after) {
        (Some(before), Some(after)) => after.since(before),
        _ => Vec::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    note(&groups, wall, cores)
}

/// The note of a window of `wall` on `cores` cores: the busiest groups,
/// then the total against what the cores could give.
pub(crate) fn note(groups: &[(String, f64)], wall: Duration, cores: usize) -> String {
    if groups.is_empty() {
        return "CPU per thread: not available (no /proc/self/task/*/schedstat)".to_owned();
    }
    let total: f64 = groups.iter().map(|(_, s)| s).sum();
    let mut parts: Vec<String> = groups
        .iter()
        .take(SHOWN)
        .map(|(name, s)| format!("{name} {s:.2}"))
        .collect();
    let rest: f64 = groups.iter().skip(SHOWN).map(|(_, s)| s).sum();
    if rest > 0.0 {
        parts.push(format!("other {rest:.2}"));
    }
    let available = wall.as_secs_f64() * cores as f64;
    format!(
        "CPU seconds of this process's threads while timed: {} = {total:.2} s of the {available:.2} s {cores} cores give ({:.0}%)",
        parts.join(", "),
        if available > 0.0 {
            100.0 * total / available
        } else {
            0.0
        }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn threads_group_by_name_without_their_number() {
        assert_eq!(group_of("sled-io-3"), "sled-io");
        assert_eq!(group_of("rdk:broker1"), "rdk:broker");
        assert_eq!(group_of("rdk:broker-1"), "rdk:broker");
        assert_eq!(group_of("tierd-ingest"), "tierd-ingest");
        assert_eq!(group_of("tokio-rt-worker"), "tokio-rt-worker");
    }

    #[test]
    fn the_window_counts_what_each_group_used_in_it() {
        let threads = |v: &[(u32, &str, u64)]| {
            Threads(
                v.iter()
                    .map(|&(t, n, ns)| (t, (n.to_owned(), ns)))
                    .collect(),
            )
        };
        let before = threads(&[(1, "tierd-ingest", 1_000_000_000), (2, "sled-io-0", 0)]);
        // Thread 3 started in the window; thread 2 ended in it (missed).
        let after = threads(&[
            (1, "tierd-ingest", 3_500_000_000),
            (3, "sled-io-1", 500_000_000),
            (4, "idle", 0),
        ]);
        let groups = after.since(&before);
        assert_eq!(
            groups,
            [
                ("tierd-ingest".to_owned(), 2.5),
                ("sled-io".to_owned(), 0.5)
            ]
        );
        let text = note(&groups, Duration::from_secs(2), 2);
        assert!(
            text.ends_with(
                "tierd-ingest 2.50, sled-io 0.50 = 3.00 s of the 4.00 s 2 cores give (75%)"
            ),
            "{text}"
        );
    }

    #[test]
    fn this_process_has_threads_with_cpu_time() {
        // Linux with schedstat (the machines the suite runs on).
        if let Some(now) = Threads::now() {
            let spin = std::time::Instant::now();
            while spin.elapsed() < Duration::from_millis(20) {
                std::hint::black_box(0u64);
            }
            let later = Threads::now().unwrap();
            assert!(later.since(&now).iter().map(|(_, s)| s).sum::<f64>() > 0.0);
            let text = window_note(Some(&now), Some(&later), Duration::from_millis(20));
            assert!(
                text.starts_with("CPU seconds of this process's threads while timed: "),
                "{text}"
            );
        }
        // Without either end there is no breakdown, and the note says so.
        let text = window_note(None, Threads::now().as_ref(), Duration::from_millis(20));
        assert!(text.contains("not available"), "{text}");
    }
}

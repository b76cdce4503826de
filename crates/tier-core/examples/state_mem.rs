//! Memory per in-memory customer state: folds the bench suite's `state`
//! workload (1.2 orders per customer over a year, Zipf-skewed) and reports
//! the process RSS grown per state (glibc malloc; the states, their map
//! slots and ids) and the encoded size (postcard).
//!
//! `cargo run --release -p tier-core --example state_mem -- 100000`

use tier_core::policy::Policy;
use tier_core::projection::CustomerMap;
use tier_core::sim::Workload;
use tier_core::state::CustomerState;
use tier_core::time::date;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let policy = Policy::default_policy();
    let mut w = Workload::new(n, n + n / 5, date(2026, 11, 1));
    w.zipf_s = 0.9;
    let mut states: CustomerMap<CustomerState> = CustomerMap::default();
    let rss0 = rss_kib();
    let mut events = 0usize;
    for e in tier_core::sim::Generator::new(&w) {
        events += 1;
        let s = match states.get_mut(e.customer_id.as_str()) {
            Some(s) => s,
            None => states.entry(e.customer_id.as_str().into()).or_default(),
        };
        s.process(&e.customer_id, &e, &policy);
    }
    let rss = rss_kib().saturating_sub(rss0);
    let encoded: usize = states
        .values()
        .map(|s| postcard::to_allocvec(s).map_or(0, |v| v.len()))
        .sum();
    let k = states.len().max(1);
    println!(
        "{} customers, {events} events: RSS +{:.0} B/state (incl. map slot+key), \
         size_of CustomerState {} B, encoded {:.0} B/state, RSS +{:.0} MiB",
        states.len(),
        rss as f64 * 1024.0 / k as f64,
        std::mem::size_of::<CustomerState>(),
        encoded as f64 / k as f64,
        rss as f64 / 1024.0
    );
}

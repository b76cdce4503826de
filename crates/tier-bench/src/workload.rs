//! The generated workload every scenario shares: `tierctl simulate`'s
//! generator ([`tier_core::sim`]) with the suite's scale and skew.

use tier_core::Event;
use tier_core::sim::Workload;
use tier_core::time::date;

use crate::config::BenchConfig;

/// The workload of a run: `customers` customers, `orders` orders over a
/// year ending 2026-11-01, Zipf-skewed activity.
pub(crate) fn workload(cfg: &BenchConfig, customers: usize, orders: usize) -> Workload {
    let mut w = Workload::new(customers, orders, date(2026, 11, 1));
    w.zipf_s = cfg.zipf_s;
    w.seed = cfg.seed;
    w
}

/// The event workload of a run (`--customers`, `--orders`), in time order.
#[cfg_attr(not(feature = "inproc"), allow(dead_code))]
pub(crate) fn events(cfg: &BenchConfig) -> Vec<Event> {
    workload(cfg, cfg.customers, cfg.orders).generate()
}

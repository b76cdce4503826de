#![allow(clippy::unwrap_used)]
use rdkafka::mocking::MockCluster;
use tierctl::cli::{EndTime, SimulateArgs, Output};
use tierctl::commands::simulate;
#[tokio::test(flavor = "multi_thread")]
async fn perf() {
    let cluster = MockCluster::new(1).unwrap();
    for t in ["orders", "payments", "complaints", "customers"] { cluster.create_topic(t, 4, 1).unwrap(); }
    let mut args = SimulateArgs::new(cluster.bootstrap_servers());
    args.end = EndTime::At(tier_core::time::date(2026, 11, 1));
    let s = simulate::run(&args).await.unwrap();
    simulate::print_summary(&s, Output::Table).unwrap();
    simulate::print_summary(&s, Output::Json).unwrap();
}

//! Fold a generated year of business for a few thousand customers through
//! the core, then print the tier distribution, the Pareto check and one
//! explanation. No Kafka, no store: just the domain.
//!
//! `cargo run --release -p tier-core --example demo [customers] [orders]`

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use tier_core::policy::Policy;
use tier_core::sim::Workload;
use tier_core::state::CustomerState;
use tier_core::time::date;

fn main() {
    let mut args = std::env::args().skip(1);
    let customers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3_000);
    let orders: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40_000);
    let end = date(2026, 11, 1);
    let policy = Policy::default_policy();
    let events = Workload::new(customers, orders, end).generate();

    let started = Instant::now();
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    let mut changes = 0usize;
    for e in &events {
        // Decisions follow each customer's own event time.
        let state = states.entry(e.customer_id.clone()).or_default();
        if state.process(&e.customer_id, e, &policy).change.is_some() {
            changes += 1;
        }
    }
    // Let the clock reach the end of the stream for everyone.
    for (id, s) in &mut states {
        if s.reevaluate(id, &policy, end, tier_core::state::Cause::Time)
            .is_some()
        {
            changes += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "folded {} events for {} customers in {:.1} ms ({:.0} events/s), {} tier changes, policy {}",
        events.len(),
        states.len(),
        elapsed.as_secs_f64() * 1e3,
        events.len() as f64 / elapsed.as_secs_f64(),
        changes,
        policy.version()
    );

    // Distribution with revenue and margin share (the Pareto check).
    let mut by_tier: BTreeMap<usize, (usize, i128, i128)> = BTreeMap::new();
    let (mut revenue, mut margin) = (0i128, 0i128);
    for s in states.values() {
        let Some(a) = &s.assignment else { continue };
        let idx = policy
            .tier_index(&a.tier)
            .unwrap_or(policy.tiers().len() - 1);
        let r = s.projection.order_amount(end, policy.fold_rules());
        let m = s.projection.margin(end, policy.fold_rules());
        let e = by_tier.entry(idx).or_default();
        e.0 += 1;
        e.1 += r;
        e.2 += m;
        revenue += r;
        margin += m;
    }
    println!("\ntier  customers  share   revenue share  margin share");
    for (idx, (n, r, m)) in &by_tier {
        println!(
            "{:<5} {:>9}  {:>5.1}%  {:>12.1}%  {:>11.1}%",
            policy.tiers()[*idx].name,
            n,
            100.0 * *n as f64 / states.len() as f64,
            100.0 * *r as f64 / revenue.max(1) as f64,
            100.0 * *m as f64 / margin.max(1) as f64,
        );
    }

    // Explain the biggest customer.
    let Some((id, state)) = states
        .iter()
        .max_by_key(|(_, s)| s.projection.order_amount(end, policy.fold_rules()))
    else {
        return;
    };
    let ind = state.indicators(&policy);
    let tier = state
        .assignment
        .as_ref()
        .and_then(|a| policy.tier_index(&a.tier))
        .unwrap_or(0);
    let ex = policy.explain(&ind, tier);
    println!(
        "\nwhy is {id} tier {} (score {:.1}, band {})?",
        ex.tier, ex.score, ex.band
    );
    println!(
        "{:<24} {:>16} {:>8} {:>8} {:>13}",
        "indicator", "value", "points", "weight", "contribution"
    );
    for i in &ex.indicators {
        println!(
            "{:<24} {:>16} {:>8.1} {:>7.1}% {:>13.2}",
            i.name.as_str(),
            i.value
                .map_or_else(|| "unknown".to_owned(), |v| format!("{v:.2}")),
            i.points,
            i.weight,
            i.contribution
        );
    }
    if ex.penalty > 0.0 {
        println!("complaint penalty: -{:.1}", ex.penalty);
    }
    match &ex.next_tier {
        Some(next) => println!("to reach {next}: {}", ex.gap),
        None => println!("top tier: {}", ex.gap),
    }
}

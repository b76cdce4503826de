//! What the read model holds per customer: the growth of this process's
//! resident set (VmRSS; the workspace forbids the `unsafe` a counting
//! allocator needs) while the views of a generated population are built,
//! stage by stage.
//!
//! The breakdown (`cargo test -p tier-api --release --test
//! read_model_memory -- --ignored --nocapture`) prints per-customer
//! figures; the always-run test keeps the total under a bound, so a
//! change that brings back a per-customer allocation is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_api::{Entry, ReadModel};
use tier_core::policy::Policy;
use tier_core::sim::{Generator, Workload};
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_engine::{Engine, Unit};

/// This process's resident set, in KiB (0 where /proc is not there).
fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn show(what: &str, kib: i64, n: usize) {
    println!(
        "{what:<44} {:>8.1} B / customer ({} MiB)",
        kib as f64 * 1024.0 / n as f64,
        kib / 1024
    );
}

/// A population of `customers` folded through the engine as tier-bench's
/// `state` scenario folds it (1.2 orders per customer, Zipf 1.1, seed 42).
fn population(customers: usize) -> Engine {
    let mut w = Workload::new(customers, customers + customers / 5, date(2026, 11, 1));
    w.zipf_s = 1.1;
    w.seed = 42;
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), Vec::new(), w.end);
    let mut unit = Unit::new();
    let mut n = 0;
    for event in Generator::new(&w) {
        engine.fold(&mut unit, &event);
        n += 1;
        if n % 20_000 == 0 {
            engine.seal(&unit);
            unit = Unit::new();
        }
    }
    engine.seal(&unit);
    engine
}

/// Fill a read model as tierd does at start (chunks of 10,000 customers
/// from the engine); the resident set it added, in KiB.
fn fill(engine: &Engine, policy: &Policy) -> (ReadModel, i64) {
    let before = rss_kib();
    let read = ReadModel::new();
    let mut all = engine.customers().peekable();
    while all.peek().is_some() {
        let chunk: Vec<_> = all.by_ref().take(10_000).collect();
        let views: Vec<(&str, &CustomerState)> =
            chunk.iter().map(|(id, s)| (*id, s.as_ref())).collect();
        read.publish(&views, policy);
    }
    read.prepare_gradings(policy);
    (read, rss_kib() - before)
}

/// The default policy without its population gradings.
fn no_population() -> Policy {
    let toml = tier_core::policy::DEFAULT_POLICY_TOML
        .split("# --- Secondary gradings")
        .next()
        .unwrap_or_default();
    Policy::from_toml_str(toml).unwrap()
}

/// `CUSTOMERS` (default 200,000) customers, `STAGE`: `entries` (views and
/// books in a `Vec`), `plain` (a read model under a policy without
/// population gradings), or the default policy's read model. One stage per
/// run, so no stage reuses memory another freed.
#[test]
#[ignore = "a breakdown to read, not a check: run with --ignored --nocapture"]
fn breakdown() {
    let n: usize = std::env::var("CUSTOMERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let engine = population(n);
    let n = engine.len();
    println!(
        "{n} customers; size_of: Entry {}, CustomerView {}, Relation {}, Indicators {}, Book {}",
        size_of::<Entry>(),
        size_of::<tier_api::CustomerView>(),
        size_of::<tier_api::read_model::Relation>(),
        size_of::<tier_core::Indicators>(),
        size_of::<tier_api::Book>(),
    );
    match std::env::var("STAGE").as_deref() {
        Ok("entries") => {
            let policy = engine.policy().clone();
            let before = rss_kib();
            let entries: Vec<Entry> = engine
                .customers()
                .filter_map(|(_, s)| Entry::from_state(&s, &policy))
                .collect();
            show("entries (view + book), in a Vec", rss_kib() - before, n);
            assert_eq!(entries.len(), n);
        }
        Ok("stats") => {
            let policy = engine.policy().clone();
            let mut c = [0usize; 10];
            let mut ind = [0usize; 2];
            for (_, s) in engine.customers() {
                let Some(v) = tier_api::CustomerView::from_state(&s, &policy) else {
                    continue;
                };
                let r = &v.relation;
                c[0] += 1;
                c[1] += r.history.len();
                c[2] += usize::from(!r.complaints.is_empty());
                c[3] += usize::from(r.manual.is_some());
                c[4] += usize::from(!r.override_history.is_empty());
                c[5] += usize::from(r.at_risk.is_some());
                c[6] += usize::from(!r.assessments.is_empty());
                c[7] += usize::from(!r.assessment_history.is_empty());
                c[8] += usize::from(!r.computed_tier.is_empty() && r.computed_tier != v.tier);
                c[9] += usize::from(r.computed_tier.is_empty());
                let d = format!("{:?}", v.indicators);
                ind[0] += d.matches("Some(").count();
                ind[1] += d.matches(": 0.0").count();
            }
            println!(
                "views, history steps, complaints, manual, override history, at risk, assessments, assessment history, computed differs, computed empty: {c:?}; Some total {}, zero f64 total {}",
                ind[0], ind[1]
            );
        }
        Ok("plain") => {
            let (read, kib) = fill(&engine, &no_population());
            show("read model, no population gradings", kib, n);
            assert_eq!(read.len(), n);
        }
        _ => {
            let (read, kib) = fill(&engine, &engine.policy().clone());
            show("read model, default policy (abc, rfm)", kib, n);
            assert_eq!(read.len(), n);
        }
    }
}

/// The read model's resident set per customer stays small.
#[test]
fn the_read_model_holds_little_per_customer() {
    let engine = population(20_000);
    let (read, kib) = fill(&engine, &engine.policy().clone());
    assert_eq!(read.len(), engine.len());
    let per_customer = kib as f64 * 1024.0 / engine.len() as f64;
    println!("{per_customer:.0} B per customer");
    assert!(per_customer < 4_000.0, "{per_customer:.0} B per customer");
}

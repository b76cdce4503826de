//! The population of the `state` and `rescore` scenarios: a workload of
//! `state_customers` customers (1.2 orders per customer) folded through
//! tierd's [`Engine`] in ingest-sized units, each sealed as the pipeline
//! seals a batch (so the due index is built as in tierd), then swept to
//! the workload's end: a caught-up tierd makes the time-driven decisions
//! as the clock passes them, so this is the state it holds at the end.
//!
//! Events are streamed from the generator, never held all at once; when
//! asked, each one is also written as a CSV row for the DuckDB peer.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use tier_core::policy::Policy;
use tier_core::sim::Generator;
use tier_core::{Event, EventKind, Timestamp};
use tier_engine::{Engine, Unit};

use crate::config::BenchConfig;
use crate::workload::workload;

/// Records per unit, as tierd's default `batch_max_records`.
pub(crate) const BATCH_RECORDS: usize = 20_000;

/// The folded population.
#[derive(Debug)]
pub(crate) struct Population {
    pub(crate) engine: Engine,
    /// The instant the workload ends (the policy change happens then).
    pub(crate) end: Timestamp,
    pub(crate) events: u64,
}

/// Orders of the population's workload: 1.2 per customer.
pub(crate) fn orders_for(customers: usize) -> usize {
    customers + customers / 5
}

/// Generate and fold the population; with `csv`, write every event there.
pub(crate) fn build(cfg: &BenchConfig, csv: Option<&Path>) -> Result<Population> {
    let w = workload(cfg, cfg.state_customers, orders_for(cfg.state_customers));
    let end = w.end;
    let mut out = match csv {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    if let Some(out) = out.as_mut() {
        writeln!(out, "{CSV_HEADER}").context("writing the events CSV")?;
    }
    let started = Instant::now();
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), Vec::new(), end);
    engine.set_hot_limit(cfg.hot_customers);
    let mut unit = Unit::new();
    let mut in_unit = 0;
    let mut events = 0u64;
    for event in Generator::new(&w) {
        engine.fold(&mut unit, &event);
        if let Some(out) = out.as_mut() {
            write_csv_row(out, &event).context("writing the events CSV")?;
        }
        events += 1;
        in_unit += 1;
        if in_unit == BATCH_RECORDS {
            engine.seal(&unit);
            unit = Unit::new();
            in_unit = 0;
        }
        if events.is_multiple_of(1_000_000) {
            eprintln!("  {events} events folded");
        }
    }
    engine.seal(&unit);
    let folded = started.elapsed();
    // Caught up, tierd sweeps what time decided (activity leaving the
    // window, lifecycle thresholds) up to the clock: do the same to `end`.
    // Per unit, the most tierd's pipeline sweeps a turn (its default
    // `engine_slice`).
    let slice = tierd::Config::default().engine_slice;
    let mut swept = 0;
    loop {
        let mut unit = Unit::new();
        let n = engine.sweep(&mut unit, end, slice);
        engine.seal(&unit);
        swept += n;
        if n == 0 {
            break;
        }
    }
    if let Some(mut out) = out {
        out.flush().context("writing the events CSV")?;
    }
    eprintln!(
        "  {} customers, {events} events folded in {:.1}s{}, {swept} customers swept to the end in {:.1}s",
        engine.len(),
        folded.as_secs_f64(),
        if csv.is_some() {
            " (and written as CSV)"
        } else {
            ""
        },
        (started.elapsed() - folded).as_secs_f64(),
    );
    Ok(Population {
        engine,
        end,
        events,
    })
}

/// Columns of the events CSV the DuckDB query reads.
pub(crate) const CSV_HEADER: &str =
    "customer_id,kind,at_ms,ref_id,order_id,amount,cost,due_ms,severity";

/// One event as a CSV row (ids are generated, never contain commas).
fn write_csv_row(out: &mut impl std::io::Write, e: &Event) -> std::io::Result<()> {
    let c = &e.customer_id;
    let at = e.occurred_at.millis();
    let kind = e.kind.type_name();
    match &e.kind {
        EventKind::OrderPlaced {
            order_id,
            amount,
            cost,
        }
        | EventKind::OrderReturned {
            order_id,
            amount,
            cost,
            ..
        } => {
            let cost = cost.map(|m| m.0.to_string()).unwrap_or_default();
            writeln!(
                out,
                "{c},{kind},{at},{order_id},{order_id},{},{cost},,",
                amount.0
            )
        }
        EventKind::OrderCancelled { order_id } => {
            writeln!(out, "{c},{kind},{at},{order_id},{order_id},,,,")
        }
        EventKind::InvoiceIssued {
            invoice_id,
            order_id,
            amount,
            due_at,
            ..
        } => writeln!(
            out,
            "{c},{kind},{at},{invoice_id},{order_id},{},,{},",
            amount.0,
            due_at.millis()
        ),
        EventKind::InvoiceCancelled { invoice_id } => {
            writeln!(out, "{c},{kind},{at},{invoice_id},,,,,")
        }
        EventKind::PaymentReceived {
            invoice_id, amount, ..
        }
        | EventKind::InvoiceCredited {
            invoice_id, amount, ..
        } => writeln!(out, "{c},{kind},{at},{invoice_id},,{},,,", amount.0),
        EventKind::ComplaintOpened {
            complaint_id,
            severity,
            ..
        } => writeln!(
            out,
            "{c},{kind},{at},{complaint_id},,,,,{}",
            severity_name(*severity)
        ),
        EventKind::ComplaintResolved { complaint_id } => {
            writeln!(out, "{c},{kind},{at},{complaint_id},,,,,")
        }
        EventKind::ProfileUpdated(_) | EventKind::CustomerAssessed { .. } => {
            writeln!(out, "{c},{kind},{at},,,,,,")
        }
    }
}

fn severity_name(s: tier_core::Severity) -> &'static str {
    match s {
        tier_core::Severity::Unspecified | tier_core::Severity::Low => "low",
        tier_core::Severity::Medium => "medium",
        tier_core::Severity::High => "high",
        tier_core::Severity::Critical => "critical",
    }
}

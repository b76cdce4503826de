//! `tier-bench`: tierd's benchmark suite.
//!
//! Runs scenarios on a generated ERP-like workload (Zipf-skewed customer
//! activity, the event mix of `tierctl simulate`) and prints each figure
//! beside the peer a user would pick instead and the goal from the
//! roadmap. With `--json` the last line of stdout is one JSON object with
//! every figure (null where a scenario could not run, with the reason in
//! `notes`).
//!
//! Figures are measurements, never assertions: a missed goal is printed
//! as such and the process still exits 0. A scenario that fails outright
//! (cannot start, loses data) makes the run exit non-zero.
//!
//! ```text
//! cargo run --release -p tier-bench -- --quick          # < 5 minutes
//! cargo run --release -p tier-bench -- --json           # the README table
//! ```

mod config;
#[cfg(any(feature = "inproc", feature = "kafka"))]
mod cpu;
#[cfg(feature = "inproc")]
mod inproc;
#[cfg(feature = "kafka")]
mod kafka;
mod machine;
mod report;
mod workload;

/// tierd's allocator (see `tierd`'s `main.rs`), so the figures are tierd's.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser as _;

use crate::config::{Args, BenchConfig};
use crate::report::Report;

fn main() -> ExitCode {
    // A helper process the suite spawns for itself (the broker in a
    // process of its own) never returns here.
    #[cfg(feature = "kafka")]
    if let Some(code) = kafka::child_main() {
        return code;
    }
    #[cfg(feature = "inproc")]
    if let Some(code) = inproc::child_main() {
        return code;
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(failed) if failed => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tier-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run the selected scenarios; `Ok(true)` when one of them failed.
fn run(args: Args) -> Result<bool> {
    let cfg = BenchConfig::from_args(&args)?;
    let mut report = Report::new(&cfg);
    eprintln!("{}", cfg.describe());
    // Before any scenario: how fast the machine is today (see `machine`).
    let machine = machine::Machine::measure();
    eprintln!("{}", machine.describe());
    report.machine(machine);

    // The broker scenarios first: run after the in-process ones, tierd
    // shared the process with the gigabytes of allocator state the
    // 1,000,000-customer population leaves (metrics reads took 15 ms
    // instead of 0.8) and its ingest read a quarter low.
    #[cfg(feature = "kafka")]
    report.section("against a broker", |r| kafka::run(&cfg, r));
    #[cfg(feature = "inproc")]
    report.section("in process", |r| inproc::run(&cfg, r));

    report.finish();
    print!("{}", report.table());
    if cfg.json {
        println!("{}", report.json());
    }
    Ok(report.failed())
}

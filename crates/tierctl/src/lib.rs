//! # tierctl: the command-line client for tierd
//!
//! For people at a terminal and for scripts:
//!
//! - `get`, `batch-get`, `explain`, `rank`, `watch` talk to tierd's gRPC
//!   `TierService` (`--addr`, env `TIERCTL_ADDR`) and print aligned text or,
//!   with `--output json`, proto3 JSON (one object per line for lists and
//!   streams).
//! - `customers`, `distribution` and `managers` print the lists and
//!   reports managers read (every page of `ListCustomers`, the Pareto
//!   check, the top tier's spread over account managers), also as
//!   `--output csv`.
//! - `complaints queue|overdue` list open complaints in the order customer
//!   service works them, with their tier deadlines (also as CSV);
//!   `history` shows a customer's tier changes or, with `--at`, its tier
//!   at a past instant; `movers` lists who moved up or down in a period.
//! - `override set|clear|history`, `policy show|dry-run|apply|status` and
//!   `at-risk` manage overrides and the scoring policy; the writes go to
//!   `AdminService`. `--token` (env `TIERD_TOKEN`) is sent as
//!   `authorization: Bearer TOKEN` on every call and never printed.
//! - `simulate` generates a deterministic, realistic workload with
//!   [`tier_core::sim`] and publishes it to Kafka, one topic per event type,
//!   keyed by customer id; `produce` publishes hand-written proto3 JSON
//!   events.
//!
//! Errors print as `error: <what>` on stderr with exit code 1; a gRPC
//! status prints as its code and message (`error: NOT_FOUND: ...`).
//!
//! The library exists so tests drive the commands without spawning a
//! process: [`commands::simulate::run`] returns a
//! [`commands::simulate::Summary`] of what was published.

pub mod cli;
pub mod commands;
pub mod csv_out;
pub mod format;

use std::process::ExitCode;

use cli::Cli;

/// Run a parsed command line on a fresh Tokio runtime, print any error to
/// stderr and return the process exit code (0 on success, 1 on error).
pub fn main_with(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", commands::render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// Output piped into `head` and the like: stop quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

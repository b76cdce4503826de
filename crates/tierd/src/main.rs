//! `tierd`: parse flags, set up logging (and span export,
//! [`tierd::telemetry`]), run until SIGINT/SIGTERM; SIGHUP re-reads
//! `--policy`. `tierd check-config [FLAGS]` validates instead
//! (see [`tierd::check`]).

use anyhow::Context as _;
use clap::Parser as _;
use tierd::config::Cli;

/// jemalloc: the engine decodes, rescores and encodes customers in many
/// small short-lived allocations, which glibc's malloc served at about
/// half the speed for the same resident memory (README, "Performance").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "check-config") {
        args.remove(1);
        let report = tierd::check::check(&Cli::parse_from(args));
        print!("{}", report.render());
        std::process::exit(if report.is_ok() { 0 } else { 1 });
    }
    let cli = Cli::parse_from(args);
    let config = cli.resolve().context("reading configuration")?;
    let telemetry = tierd::telemetry::init(&config)?;
    let result = run(config).await;
    // Last, so the spans of the stop itself are sent too.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .context("the telemetry shutdown panicked")?;
    result
}

/// Start tierd and run it until a signal (or its own stop).
async fn run(config: tierd::Config) -> anyhow::Result<()> {
    let running = tierd::start(config).await?;
    tracing::info!(grpc = %running.grpc_addr, metrics = %running.metrics_addr, kafka_bootstrap = %running.kafka_bootstrap, "tierd started; waiting for partitions");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT received");
                break;
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM received");
                break;
            }
            _ = sighup.recv() => match running.reload_policy().await {
                Ok(Some(version)) => tracing::info!(version, "SIGHUP: new policy applied; rescoring in the background"),
                Ok(None) => tracing::info!("SIGHUP: the policy file is unchanged"),
                Err(e) => tracing::error!(error = format!("{e:#}"), "SIGHUP: policy NOT reloaded; the policy in force stays"),
            },
            () = running.stopped() => break,
        }
    }
    running.shutdown();
    running.wait().await.map(|_| ())
}

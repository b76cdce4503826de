//! The README's walk-through, done as a new user would: start the `tierd`
//! binary on its embedded default, publish a simulated year with the
//! `tierctl` binary, then `tierctl explain` a customer; finally SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Tierd;

fn tierctl() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_tierd")).with_file_name("tierctl");
    if !path.exists() {
        // `cargo test -p tierd` alone does not build tierctl.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "tierctl", "--bin", "tierctl"])
            .status()
            .unwrap();
        assert!(status.success(), "building tierctl failed");
    }
    path
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn run_simulate_explain_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (mut tierd, info) = Tierd::start(dir.path(), &[], "warn", Stdio::null());
    let brokers = info["kafka_bootstrap"].as_str().unwrap().to_owned();
    let addr = format!("http://{}", info["grpc"].as_str().unwrap());
    assert!(
        dir.path().join("tierd-data").exists(),
        "default data dir in the working dir"
    );

    let (ok, out) = run(Command::new(tierctl()).args([
        "simulate",
        "--brokers",
        &brokers,
        "--customers",
        "300",
        "--orders",
        "3000",
        "--no-progress",
    ]));
    assert!(ok, "simulate failed:\n{out}");

    // The biggest key account ends up explained, with indicator names.
    let deadline = Instant::now() + Duration::from_secs(120);
    let explained = loop {
        let (ok, out) =
            run(Command::new(tierctl()).args(["--addr", &addr, "explain", "cust-000000"]));
        if ok && out.contains("margin_12m") {
            break out;
        }
        assert!(Instant::now() < deadline, "explain never succeeded:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(explained.contains("order_amount_12m"), "{explained}");
    let (ok, out) = run(Command::new(tierctl()).args(["--addr", &addr, "get", "cust-000000"]));
    assert!(ok && out.contains("tier"), "{out}");

    // SIGTERM: finish the batch, flush, exit 0.
    let exit = tierd.stop();
    assert!(exit.success(), "tierd exit status {exit}");
}

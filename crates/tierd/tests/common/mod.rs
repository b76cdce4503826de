//! What the tests that run the `tierd` binary share: starting it on its
//! embedded default with loopback ports of the system's choosing until
//! its ready file says where it listens, stopping it with SIGTERM, and
//! killing it when a test fails first.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `tierd`, killed when dropped (a test that fails leaves no
/// process behind).
#[derive(Debug)]
pub(crate) struct Tierd(Child);

impl Tierd {
    /// Start `tierd` in `dir` with `extra` flags, `RUST_LOG=rust_log` and
    /// its log lines (stdout) into `log`; returns once it is ready, with
    /// its ready file's JSON (`grpc`, `metrics`, `kafka_bootstrap`).
    pub(crate) fn start(
        dir: &Path,
        extra: &[&str],
        rust_log: &str,
        log: Stdio,
    ) -> (Tierd, serde_json::Value) {
        let ready = dir.join("ready.json");
        let child = Command::new(env!("CARGO_BIN_EXE_tierd"))
            .current_dir(dir)
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .arg("--ready-file")
            .arg(&ready)
            .env("RUST_LOG", rust_log)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut tierd = Tierd(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "tierd never wrote its ready file"
            );
            assert!(tierd.running(), "tierd exited early");
            std::thread::sleep(Duration::from_millis(100));
        }
        let info = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        (tierd, info)
    }

    /// Whether the process has not exited.
    pub(crate) fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then its exit status (within a minute).
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(exit) = self.0.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "tierd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tierd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! The real `tierd` binary as a child process: spawn, wait for its ready
//! file, SIGKILL or SIGTERM it.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The `tierd` binary of this build: `target/<profile>/tierd`, next to the
/// `deps/` directory the running test binary lives in.
pub fn tierd_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .filter(|d| d.ends_with("deps"))
        .and_then(Path::parent)
        .or_else(|| exe.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join(format!("tierd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the tierd binary is not built: expected {} (next to the test binary {}). \
         Run `cargo build -p tierd` (same profile as the tests) first; \
         `cargo test --workspace` builds it too.",
        bin.display(),
        exe.display()
    );
    warn_if_stale(&bin);
    bin
}

/// `cargo test -p tierd-tests` rebuilds tierd's library, not its binary:
/// say so loudly when a workspace source is newer than the binary.
fn warn_if_stale(bin: &Path) {
    fn newest(dir: &Path, newest_seen: &mut Option<(std::time::SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                newest(&p, newest_seen);
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "toml" || x == "proto")
                && let Ok(m) = e.metadata().and_then(|m| m.modified())
                && newest_seen.as_ref().is_none_or(|(t, _)| m > *t)
            {
                *newest_seen = Some((m, p));
            }
        }
    }
    let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() else {
        return;
    };
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let mut seen = None;
    newest(&root.join("crates"), &mut seen);
    newest(&root.join("proto"), &mut seen);
    if let Some((t, p)) = seen
        && t > built
    {
        let msg = format!(
            "WARNING: {} is older than {} (changed after the binary was built): this test \
             runs the OLD tierd. Run `cargo build -p tierd` (or `cargo test --workspace`).",
            bin.display(),
            p.display()
        );
        println!("{msg}");
        eprintln!("{msg}");
    }
}

/// How every tierd run of one test is started.
#[derive(Debug, Clone)]
pub struct TierdSetup {
    pub exe: PathBuf,
    pub brokers: String,
    pub data_dir: PathBuf,
    /// Ready files and the log live here.
    pub work_dir: PathBuf,
    pub topics: Vec<String>,
    pub dlq_topic: String,
    pub tier_changes_topic: String,
    pub group_id: String,
    pub group_instance_id: String,
    pub session_timeout_ms: u32,
    pub frozen_now_ms: i64,
    /// More flags, appended as given.
    pub extra_args: Vec<String>,
}

/// The addresses from a ready file.
#[derive(Debug, Clone, Copy)]
pub struct ReadyInfo {
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
}

impl TierdSetup {
    /// The same setup in another consumer group / with another instance id.
    pub fn with_membership(&self, group_id: &str, group_instance_id: &str) -> TierdSetup {
        TierdSetup {
            group_id: group_id.to_owned(),
            group_instance_id: group_instance_id.to_owned(),
            ..self.clone()
        }
    }

    /// All runs log here (JSON lines), each run after a `=== run N ===` line.
    pub fn log_path(&self) -> PathBuf {
        self.work_dir.join("tierd.log")
    }

    pub fn args(&self, ready_file: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "--brokers",
            &self.brokers,
            "--data-dir",
            &self.data_dir.to_string_lossy(),
            "--grpc-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--ready-file",
            &ready_file.to_string_lossy(),
            "--group-id",
            &self.group_id,
            "--group-instance-id",
            &self.group_instance_id,
            "--session-timeout-ms",
            &self.session_timeout_ms.to_string(),
            "--frozen-now-ms",
            &self.frozen_now_ms.to_string(),
            "--topics",
            &self.topics.join(","),
            "--dlq-topic",
            &self.dlq_topic,
            "--tier-changes-topic",
            &self.tier_changes_topic,
            "--create-topics",
            "false",
            "--log-format",
            "json",
            // The harness checks sweeps right up to the frozen instant.
            "--sweep-grace-ms",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // The backend under test (TIERD_TEST_STORE_BACKEND, default sled);
        // passed as given, so that tierd itself refuses a bad name at start.
        if let Ok(backend) = std::env::var(super::check::STORE_BACKEND_ENV)
            && !backend.trim().is_empty()
        {
            a.extend(["--store-backend".to_owned(), backend]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// Start run number `run`.
    pub fn spawn(&self, run: usize) -> anyhow::Result<TierdChild> {
        let ready_file = self.work_dir.join(format!("ready-{run}.json"));
        let _ = std::fs::remove_file(&ready_file);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the tierd log")?;
        writeln!(log, "=== run {run} (group {}) ===", self.group_id)?;
        let mut cmd = Command::new(&self.exe);
        // Only our flags: no TIERD_* settings from the environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TIERD_") {
                cmd.env_remove(k);
            }
        }
        let filter = std::env::var("TIERD_FAULT_LOG")
            .unwrap_or_else(|_| "info,rdkafka=warn,librdkafka=warn".into());
        cmd.args(self.args(&ready_file))
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        Ok(TierdChild {
            child: Some(child),
            ready_file,
            run,
            started: Instant::now(),
        })
    }
}

/// One running tierd process; killed when dropped.
#[derive(Debug)]
pub struct TierdChild {
    child: Option<Child>,
    ready_file: PathBuf,
    pub run: usize,
    pub started: Instant,
}

impl TierdChild {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The ready file's addresses once written; an error if tierd exited.
    pub fn try_ready(&mut self) -> anyhow::Result<Option<ReadyInfo>> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "tierd run {} exited on its own with {status} before it was ready",
                self.run
            );
        }
        let Ok(bytes) = std::fs::read(&self.ready_file) else {
            return Ok(None);
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).context("parsing the ready file")?;
        let addr = |k: &str| -> anyhow::Result<SocketAddr> {
            v[k].as_str()
                .with_context(|| format!("ready file lacks {k}"))?
                .parse()
                .with_context(|| format!("ready file {k}"))
        };
        Ok(Some(ReadyInfo {
            grpc: addr("grpc")?,
            metrics: addr("metrics")?,
        }))
    }

    /// Wait for the ready file.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<ReadyInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(info) = self.try_ready()? {
                return Ok(info);
            }
            if Instant::now() > deadline {
                bail!("tierd run {} was not ready after {timeout:?}", self.run);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Exited on its own?
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL and reap. Returns how it ended (already exited: that status).
    pub fn sigkill(mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("no child")?;
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        child.kill().context("SIGKILL")?;
        Ok(child.wait()?)
    }

    /// SIGTERM, then wait up to `timeout` for the exit (SIGKILL after).
    pub async fn sigterm(mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("no child")?;
        if let Some(status) = child.try_wait()? {
            bail!("tierd run {} had already exited with {status}", self.run);
        }
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?
            .success();
        if !ok {
            bail!("kill -TERM {} failed", child.id());
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "tierd run {} did not exit within {timeout:?} of SIGTERM",
                    self.run
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TierdChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

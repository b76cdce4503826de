//! Client of the `tierd-testbroker` helper binary: a Kafka-protocol broker
//! (librdkafka's mock cluster) in a process of its own, so tierd can be
//! killed without losing the log.
//!
//! Integration tests find the binary with
//! `env!("CARGO_BIN_EXE_tierd-testbroker")` and pass it to
//! [`TestBroker::spawn`]. Dropping the [`TestBroker`] kills the process.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context as _, bail};

/// A running `tierd-testbroker` process.
#[derive(Debug)]
pub struct TestBroker {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    bootstrap: String,
}

impl TestBroker {
    /// Start `exe` with `brokers` brokers and these `(name, partitions)`
    /// topics; returns once it printed its bootstrap address.
    pub fn spawn(exe: &Path, brokers: i32, topics: &[(&str, i32)]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.arg("--brokers").arg(brokers.to_string());
        for (name, partitions) in topics {
            cmd.arg("--topic").arg(format!("{name}:{partitions}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdin = child.stdin.take().context("testbroker stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("testbroker stdout")?);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("reading the testbroker's bootstrap line")?;
        let Some(bootstrap) = line.trim().strip_prefix("BOOTSTRAP ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("testbroker did not print its bootstrap address (got {line:?})");
        };
        Ok(Self {
            bootstrap: bootstrap.to_owned(),
            child,
            io: Mutex::new((stdin, stdout)),
        })
    }

    /// `host:port[,host:port]` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The broker process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send one command line and wait for its `OK` / `ERR reason`.
    pub fn command(&self, line: &str) -> anyhow::Result<()> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{line}").context("writing to the testbroker")?;
        stdin.flush().context("writing to the testbroker")?;
        let mut reply = String::new();
        stdout
            .read_line(&mut reply)
            .context("reading the testbroker's reply")?;
        match reply.trim() {
            "OK" => Ok(()),
            "" => bail!("testbroker exited while running {line:?}"),
            r => bail!(
                "testbroker refused {line:?}: {}",
                r.strip_prefix("ERR ").unwrap_or(r)
            ),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        self.command(&format!("topic {name} {partitions}"))
    }

    pub fn broker_down(&self, broker_id: i32) -> anyhow::Result<()> {
        self.command(&format!("down {broker_id}"))
    }

    pub fn broker_up(&self, broker_id: i32) -> anyhow::Result<()> {
        self.command(&format!("up {broker_id}"))
    }

    /// Make the next requests of `api_key` fail with `errors`, in order
    /// (librdkafka error codes; -195 disconnects the client).
    pub fn request_errors(&self, api_key: i16, errors: &[i32]) -> anyhow::Result<()> {
        let codes: Vec<String> = errors.iter().map(i32::to_string).collect();
        self.command(&format!("errors {api_key} {}", codes.join(" ")))
    }

    pub fn clear_request_errors(&self, api_key: i16) -> anyhow::Result<()> {
        self.command(&format!("clear {api_key}"))
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The broker in a process of its own: librdkafka's mock cluster hosted by
//! `tier-bench __broker --topic NAME:PARTITIONS...` (this same binary).
//!
//! The helper prints `BOOTSTRAP host:port` once its topics exist and runs
//! until its stdin closes (the suite ends, or dies). Keeping the broker out
//! of the measured process keeps its CPU time out of the figures' process
//! and matches how tierd meets a real cluster: over TCP.
//!
//! The mock cluster keeps only about 5 MiB (or 100,000 message sets) per
//! partition and silently deletes older data, and it has no CreateTopics:
//! topics are created here at start, with enough partitions for the
//! backlog, and [`Broker::check_backlog`] proves nothing was dropped.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::mocking::MockCluster;

/// The first argument that makes this binary the broker helper.
pub(crate) const BROKER_ARG: &str = "__broker";

/// Run the helper when this process was started as one.
pub(crate) fn child_main() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(BROKER_ARG) {
        return None;
    }
    Some(match serve(args.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tier-bench {BROKER_ARG}: {e:#}");
            ExitCode::FAILURE
        }
    })
}

/// `--topic NAME:PARTITIONS` arguments into `(name, partitions)`.
fn parse_topics(args: &[String]) -> Result<Vec<(String, i32)>> {
    let mut topics = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg != "--topic" {
            bail!("unexpected argument {arg:?} (usage: {BROKER_ARG} [--topic NAME:PARTITIONS]...)");
        }
        let spec = it.next().context("--topic needs NAME:PARTITIONS")?;
        let (name, partitions) = spec
            .rsplit_once(':')
            .with_context(|| format!("--topic {spec:?}: expected NAME:PARTITIONS"))?;
        let partitions: i32 = partitions
            .parse()
            .with_context(|| format!("--topic {spec:?}: partitions must be a number"))?;
        if name.is_empty() || partitions < 1 {
            bail!("--topic {spec:?}: empty name or no partitions");
        }
        topics.push((name.to_owned(), partitions));
    }
    Ok(topics)
}

/// The helper: start the cluster, create the topics, print the bootstrap
/// address, wait for stdin to close.
fn serve(args: Vec<String>) -> Result<()> {
    let topics = parse_topics(&args)?;
    let cluster = MockCluster::new(1).context("starting the mock cluster")?;
    for (name, partitions) in &topics {
        cluster
            .create_topic(name, *partitions, 1)
            .with_context(|| format!("creating topic {name}"))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "BOOTSTRAP {}", cluster.bootstrap_servers()).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    // Held open by the suite; EOF (or an error) means it is done.
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim() == "quit" => break,
            Ok(_) => {}
        }
    }
    drop(cluster);
    Ok(())
}

/// A running broker helper; dropping it ends the process.
#[derive(Debug)]
pub(crate) struct Broker {
    child: Child,
    stdin: Option<ChildStdin>,
    bootstrap: String,
    /// Partitions per topic, as created.
    pub(crate) topics: BTreeMap<String, i32>,
}

impl Broker {
    /// CPU seconds the broker process has used so far (user + system),
    /// read from `/proc` on Linux; `None` elsewhere or when unreadable.
    /// Its one mock-broker thread does all the work, so a second of
    /// CPU a second means the broker is the limit of whatever runs.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command (which may hold spaces), from field 3:
        // utime and stime are fields 14 and 15, in clock ticks (USER_HZ,
        // 100 on Linux's mainstream architectures).
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some((ticks(11)? + ticks(12)?) / 100.0)
    }

    /// Start the helper with these `(name, partitions)` topics.
    pub(crate) fn spawn(topics: &[(&str, i32)]) -> Result<Self> {
        let exe = std::env::current_exe().context("finding the tier-bench binary")?;
        let mut cmd = Command::new(&exe);
        cmd.arg(BROKER_ARG);
        for (name, partitions) in topics {
            cmd.arg("--topic").arg(format!("{name}:{partitions}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {BROKER_ARG}", exe.display()))?;
        let stdin = child.stdin.take();
        let line = match child.stdout.take() {
            Some(stdout) => {
                let mut line = String::new();
                BufReader::new(stdout)
                    .read_line(&mut line)
                    .context("reading the broker's bootstrap line")?;
                line
            }
            None => String::new(),
        };
        let Some(bootstrap) = line.trim().strip_prefix("BOOTSTRAP ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the broker helper did not print its bootstrap address (got {line:?})");
        };
        Ok(Self {
            bootstrap: bootstrap.to_owned(),
            child,
            stdin,
            topics: topics.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect(),
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub(crate) fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Low and high watermarks of every partition of `topic`.
    pub(crate) fn watermarks(&self, topic: &str) -> Result<Vec<(i64, i64)>> {
        let partitions = *self
            .topics
            .get(topic)
            .with_context(|| format!("topic {topic} was not created"))?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .context("creating a watermark client")?;
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .with_context(|| format!("watermarks of {topic}/{p}"))
            })
            .collect()
    }

    /// Check that the log holds exactly what was produced: every
    /// partition's low watermark is 0 and the high watermarks of each topic
    /// add up to its produced count (the mock cluster silently deletes old
    /// data past its per-partition limit). Returns the total.
    pub(crate) fn check_backlog(&self, produced: &BTreeMap<String, u64>) -> Result<u64> {
        let mut total = 0;
        for (topic, &count) in produced {
            let marks = self.watermarks(topic)?;
            if let Some((p, (low, _))) = marks.iter().enumerate().find(|(_, (low, _))| *low != 0) {
                bail!(
                    "the broker dropped records: {topic}/{p} starts at offset {low}, not 0 (too little room per partition: use more partitions)"
                );
            }
            let high: i64 = marks.iter().map(|(_, h)| *h).sum();
            if u64::try_from(high).ok() != Some(count) {
                bail!("{topic} holds {high} records, {count} were produced");
            }
            total += count;
        }
        Ok(total)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Closing stdin asks the helper to exit; kill it if it lingers.
        drop(self.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arguments_parse() {
        let args: Vec<String> = ["--topic", "orders:16", "--topic", "a:b:2"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            parse_topics(&args).unwrap(),
            vec![("orders".to_owned(), 16), ("a:b".to_owned(), 2)]
        );
        for bad in [
            &["--topic"][..],
            &["--topic", "x:0"],
            &["x"],
            &["--topic", "x"],
        ] {
            let bad: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
            assert!(parse_topics(&bad).is_err(), "{bad:?}");
        }
    }
}

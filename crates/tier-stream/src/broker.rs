//! Broker plumbing: the embedded broker of the default run, and topic
//! creation against real clusters.
//!
//! The embedded broker is librdkafka's mock cluster, hosted on a thread of
//! its own (its handle is not `Send`). It speaks the Kafka protocol on a
//! loopback port, but its log lives in memory: a restart starts a new,
//! empty log, and it keeps only about 5 MiB per partition.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;

use crate::error::StreamError;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        done: mpsc::Sender<Result<(), StreamError>>,
    },
    Stop,
}

/// An in-process Kafka-protocol broker (librdkafka's mock cluster).
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::CreateTopic { name, .. } => write!(f, "CreateTopic({name})"),
            Command::Stop => f.write_str("Stop"),
        }
    }
}

impl EmbeddedBroker {
    /// Start a mock cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self, StreamError> {
        let (boot_tx, boot_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = boot_tx.send(Err(StreamError::Broker(format!(
                            "could not start the embedded broker: {e}"
                        ))));
                        return;
                    }
                };
                let _ = boot_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok(cmd) = cmd_rx.recv() {
                    match cmd {
                        Command::CreateTopic {
                            name,
                            partitions,
                            done,
                        } => {
                            let r = cluster.create_topic(&name, partitions, 1).map_err(|e| {
                                StreamError::Broker(format!(
                                    "embedded broker could not create topic {name}: {e}"
                                ))
                            });
                            let _ = done.send(r);
                        }
                        Command::Stop => break,
                    }
                }
                drop(cluster);
            })
            .map_err(|e| StreamError::Broker(format!("could not spawn the broker thread: {e}")))?;
        let bootstrap = boot_rx
            .recv()
            .map_err(|_| StreamError::Broker("the embedded broker thread died".into()))??;
        Ok(Self {
            bootstrap,
            commands: cmd_tx,
            thread: Some(thread),
        })
    }

    /// `host:port[,host:port]` to give clients as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Create a topic (the mock cluster has no CreateTopics API).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), StreamError> {
        let (done, rx) = mpsc::channel();
        self.commands
            .send(Command::CreateTopic {
                name: name.to_owned(),
                partitions,
                done,
            })
            .map_err(|_| StreamError::Broker("the embedded broker has stopped".into()))?;
        rx.recv()
            .map_err(|_| StreamError::Broker("the embedded broker has stopped".into()))?
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Create `topics` with `partitions` partitions where missing. Brokers
/// without CreateTopics (or that refuse it) are logged and tolerated: the
/// topics may still appear on first produce.
pub async fn ensure_topics(
    client_config: &ClientConfig,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> Result<(), StreamError> {
    let admin: AdminClient<DefaultClientContext> = client_config
        .create()
        .map_err(|e| StreamError::Kafka(format!("could not create an admin client: {e}")))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    match admin.create_topics(new.iter(), &opts).await {
        Ok(results) => {
            for r in results {
                match r {
                    Ok(name) => tracing::info!(topic = %name, partitions, "created topic"),
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = %name, "topic exists");
                    }
                    Err((name, code)) => {
                        tracing::warn!(topic = %name, error = %code, "could not create topic; continuing (it may be created on first use)");
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "broker refused CreateTopics; continuing (topics may be created on first use)");
        }
    }
    Ok(())
}

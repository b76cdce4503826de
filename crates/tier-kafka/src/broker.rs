//! Broker plumbing: the embedded broker of the default run, and topic
//! creation against real clusters.
//!
//! The embedded broker is librdkafka's mock cluster, hosted on a thread of
//! its own (its handle is not `Send`). It speaks the Kafka protocol on a
//! loopback port, but its log lives in memory: a restart starts a new,
//! empty log, and it keeps only about 5 MiB per partition.
//!
//! For tests it also injects faults: brokers going down and up, errors
//! returned to chosen protocol requests, and topic-level metadata errors
//! (see [`EmbeddedBroker::broker_down`] and the methods after it).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::StreamError;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        done: mpsc::Sender<Result<(), StreamError>>,
    },
    Fault {
        fault: Fault,
        done: mpsc::Sender<Result<(), StreamError>>,
    },
    Stop,
}

/// A fault to inject into (or remove from) the mock cluster.
#[derive(Debug)]
enum Fault {
    BrokerDown(i32),
    BrokerUp(i32),
    RequestErrors(RDKafkaApiKey, Vec<RDKafkaRespErr>),
    ClearRequestErrors(RDKafkaApiKey),
    TopicError(String, RDKafkaRespErr),
}

impl Fault {
    fn apply(
        self,
        cluster: &MockCluster<'static, DefaultProducerContext>,
    ) -> Result<(), StreamError> {
        let failed = |what: String| {
            move |e: rdkafka::error::KafkaError| {
                StreamError::Broker(format!("embedded broker could not {what}: {e}"))
            }
        };
        match self {
            Fault::BrokerDown(id) => cluster
                .broker_down(id)
                .map_err(failed(format!("take broker {id} down"))),
            Fault::BrokerUp(id) => cluster
                .broker_up(id)
                .map_err(failed(format!("bring broker {id} up"))),
            Fault::RequestErrors(api, errors) => {
                cluster.request_errors(api, &errors);
                Ok(())
            }
            Fault::ClearRequestErrors(api) => {
                cluster.clear_request_errors(api);
                Ok(())
            }
            Fault::TopicError(topic, err) => cluster
                .topic_error(&topic, err)
                .map_err(failed(format!("set an error on topic {topic}"))),
        }
    }
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
            Command::Fault { fault, .. } => write!(f, "Fault({fault:?})"),
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
                        Command::Fault { fault, done } => {
                            let _ = done.send(fault.apply(&cluster));
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
        self.call(|done| Command::CreateTopic {
            name: name.to_owned(),
            partitions,
            done,
        })
    }

    /// Disconnect broker `id` (1-based; -1: all) and refuse new
    /// connections until [`EmbeddedBroker::broker_up`]. Partition
    /// leadership does not move.
    pub fn broker_down(&self, id: i32) -> Result<(), StreamError> {
        self.fault(Fault::BrokerDown(id))
    }

    /// Let broker `id` (-1: all) accept connections again.
    pub fn broker_up(&self, id: i32) -> Result<(), StreamError> {
        self.fault(Fault::BrokerUp(id))
    }

    /// Push `errors` onto the error stack of protocol requests `api`
    /// (e.g. `RDKafkaApiKey::Fetch`, `RDKafkaApiKey::Produce`): each
    /// following request of that kind, from any client, fails with the next
    /// error until the stack is empty. `RD_KAFKA_RESP_ERR__TRANSPORT`
    /// disconnects the client instead.
    pub fn request_errors(
        &self,
        api: RDKafkaApiKey,
        errors: &[RDKafkaRespErr],
    ) -> Result<(), StreamError> {
        self.fault(Fault::RequestErrors(api, errors.to_vec()))
    }

    /// Drop the errors still stacked for requests `api`.
    pub fn clear_request_errors(&self, api: RDKafkaApiKey) -> Result<(), StreamError> {
        self.fault(Fault::ClearRequestErrors(api))
    }

    /// Return `err` for `topic` in metadata responses (what clients see of
    /// an unauthorized or broken topic); `RD_KAFKA_RESP_ERR_NO_ERROR`
    /// clears it. Clients that already hold the topic's metadata notice at
    /// their next metadata refresh.
    pub fn topic_error(&self, topic: &str, err: RDKafkaRespErr) -> Result<(), StreamError> {
        self.fault(Fault::TopicError(topic.to_owned(), err))
    }

    fn fault(&self, fault: Fault) -> Result<(), StreamError> {
        self.call(|done| Command::Fault { fault, done })
    }

    /// Send a command to the broker thread and wait for its answer.
    fn call(
        &self,
        command: impl FnOnce(mpsc::Sender<Result<(), StreamError>>) -> Command,
    ) -> Result<(), StreamError> {
        let (done, rx) = mpsc::channel();
        self.commands
            .send(command(done))
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

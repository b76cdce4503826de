//! Daemon settings: defaults < TOML config file < environment < flags.
//!
//! Every flag has a `TIERD_*` environment variable (clap reads both) and a
//! key of the same name in the config file (`--config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (a container, a service
    /// manager), human otherwise.
    #[default]
    Auto,
    Human,
    Json,
}

impl LogFormat {
    /// `Auto` settled for this process: JSON unless stderr is a terminal.
    pub fn resolved(self) -> LogFormat {
        use std::io::IsTerminal as _;
        match self {
            LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Human,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

/// How tier changes are encoded on the tier-changes topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormatArg {
    #[default]
    Protobuf,
    Json,
}

/// `tierd --help`'s examples.
const EXAMPLES: &str = "\
Examples:
  tierd                                      try it: an embedded broker, state in ./tierd-data
  tierd --brokers kafka:9092 --policy /etc/tierd/policy.toml --data-dir /var/lib/tierd/data
  tierd --config /etc/tierd/tierd.toml       every flag is also a key of the file
  TIERD_BROKERS=kafka:9092 tierd             ... and an environment variable
  tierd --brokers kafka:9092 --kafka 'security.protocol=SASL_SSL;sasl.mechanisms=PLAIN;sasl.username=tierd;sasl.password=...'
  tierd --grpc-tls-cert server.pem --grpc-tls-key server.key --grpc-tls-client-ca clients-ca.pem --auth-tokens-file tokens.toml
  tierd check-config --config /etc/tierd/tierd.toml    validate and print the effective settings

Signals: SIGTERM/SIGINT stop gracefully; SIGHUP re-reads --policy.";

/// The longest `sweep_grace_ms`: a day (`check-config` refuses more, a
/// start sweeps a day behind).
pub const MAX_SWEEP_GRACE_MS: u64 = 86_400_000;

/// The effective settings of one tierd process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers; absent: start an embedded broker.
    pub brokers: Option<String>,
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// Policy file; absent: the built-in default policy.
    pub policy: Option<PathBuf>,
    /// Written with the actual addresses once tierd is ready.
    pub ready_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Input topics; any event type is accepted on any of them.
    pub topics: Vec<String>,
    pub dlq_topic: String,
    pub tier_changes_topic: String,
    pub tier_changes_format: OutputFormatArg,
    pub group_id: String,
    /// Static group membership id (fast restarts of a single instance).
    pub group_instance_id: Option<String>,
    /// Create missing topics at start.
    pub create_topics: bool,
    pub partitions: i32,
    pub replication: i32,
    pub batch_max_records: usize,
    pub batch_max_wait_ms: u64,
    /// While catching up, the records a batch holds before the group
    /// commit may seal it: a busy customer's state is then encoded and
    /// written once per this many records, not once per small batch.
    pub batch_catch_up_min_records: usize,
    /// Most records held while catching up to merge the input topics by
    /// event time: from half of it the topic partitions whose records must
    /// wait are paused; past it, records go on in event-time order without
    /// waiting.
    pub align_max_held: usize,
    /// 0: flush the store after every batch; N: flush every N ms.
    pub flush_every_ms: u64,
    /// The store backend of the data dir: `sled` (the default), or `fjall`
    /// / `redb` in builds with the `store-fjall` / `store-redb` features.
    pub store_backend: tier_store::Backend,
    /// MiB of the store backend's cache (sled's page cache, fjall's block
    /// cache, redb's page cache).
    pub store_cache_mib: u64,
    pub session_timeout_ms: u32,
    /// Extra librdkafka settings (`key=value`) for every client, e.g.
    /// SASL and TLS options.
    pub kafka: Vec<String>,
    /// Extra librdkafka settings for the input consumer only (after
    /// `kafka`), e.g. `fetch.wait.max.ms` or `max.partition.fetch.bytes`.
    pub kafka_consumer: Vec<String>,
    /// Extra librdkafka settings for the producers only (tier changes and
    /// dead letters, after `kafka`), e.g. `compression.type`.
    pub kafka_producer: Vec<String>,
    /// Freeze processing time at this instant (ms since the epoch): for
    /// replays "as of" a date and for deterministic tests.
    pub frozen_now_ms: Option<i64>,
    /// How long ingest may fail to make progress before health turns
    /// NOT_SERVING.
    pub stall_after_ms: u64,
    /// gRPC bearer tokens (TOML, `[[token]]` entries); absent: admin RPCs
    /// only from loopback peers, read RPCs open.
    pub auth_tokens_file: Option<PathBuf>,
    /// Make time-driven decisions (activity leaving the window, invoices
    /// falling due, lifecycle thresholds, hold and override expiry) as the
    /// processing clock passes them. Off: tiers move only with events,
    /// overrides and policy changes (what-if replays, audits).
    pub time_sweeps: bool,
    /// How far, in milliseconds, sweeps stay behind the processing clock:
    /// a decision due at midnight is made once the clock reads midnight
    /// plus this, so an event dated just before it that reaches tierd
    /// within it (the ERP's publishing delay) is folded first, as a replay
    /// of the log would fold it. 0: sweep right up to the clock.
    pub sweep_grace_ms: u64,
    /// Most customers one loop between batches sweeps, and most it
    /// rescores under a new policy: smaller keeps ingest latency lower
    /// during a rescore, larger finishes sooner.
    pub engine_slice: usize,
    /// About how long, in milliseconds, one loop turn with a sweep or
    /// rescore slice may take: each slice is sized from the measured rate
    /// to fit it (at most `engine_slice` customers), so events arriving
    /// during a large sweep wait about this long for it. 0: every slice
    /// takes `engine_slice`.
    pub engine_slice_ms: u64,
    /// Customers the engine holds decoded; the least recently used beyond
    /// it are held encoded (about 0.7 KB each instead of about 3 KB).
    pub hot_customers: usize,
    /// MiB the customers held decoded may take on the heap; the least
    /// recently used beyond it are held encoded.
    pub hot_mib: u64,
    /// gRPC TLS: the server certificate chain and key (PEM); both or
    /// neither.
    pub grpc_tls_cert: Option<PathBuf>,
    pub grpc_tls_key: Option<PathBuf>,
    /// Mutual TLS: the CA client certificates must chain to (PEM).
    pub grpc_tls_client_ca: Option<PathBuf>,
    /// Largest gRPC request message accepted, in bytes.
    pub grpc_max_request_bytes: usize,
    /// gRPC requests served at once per connection; more are refused with
    /// RESOURCE_EXHAUSTED.
    pub grpc_concurrency_per_connection: usize,
    /// Longest a gRPC request may take (a shorter client deadline wins).
    pub grpc_request_timeout_ms: u64,
    /// OpenTelemetry collector (OTLP/HTTP, protobuf) to export spans to,
    /// e.g. `http://localhost:4318`; spans go to `<url>/v1/traces`. Needs
    /// a build with the `otlp` feature; absent: no export.
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// The gRPC TLS files, when TLS is configured; an error when only one
    /// of certificate and key is given, or a client CA without them.
    pub fn grpc_tls(&self) -> anyhow::Result<Option<tier_api::TlsFiles>> {
        match (&self.grpc_tls_cert, &self.grpc_tls_key) {
            (Some(cert), Some(key)) => Ok(Some(tier_api::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.grpc_tls_client_ca.clone(),
            })),
            (None, None) if self.grpc_tls_client_ca.is_some() => anyhow::bail!(
                "grpc_tls_client_ca needs grpc_tls_cert and grpc_tls_key (mutual TLS is TLS first)"
            ),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("grpc_tls_cert needs grpc_tls_key"),
            (None, Some(_)) => anyhow::bail!("grpc_tls_key needs grpc_tls_cert"),
        }
    }

    /// The API server's limits.
    pub fn grpc_limits(&self) -> tier_api::Limits {
        tier_api::Limits {
            max_request_bytes: self.grpc_max_request_bytes,
            concurrent_requests_per_connection: self.grpc_concurrency_per_connection,
            request_timeout: std::time::Duration::from_millis(self.grpc_request_timeout_ms),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: None,
            data_dir: PathBuf::from("tierd-data"),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            policy: None,
            ready_file: None,
            log_format: LogFormat::Auto,
            topics: ["orders", "payments", "complaints", "customers"]
                .map(String::from)
                .to_vec(),
            dlq_topic: "tierd.dlq".into(),
            tier_changes_topic: "tier-changes".into(),
            tier_changes_format: OutputFormatArg::Protobuf,
            group_id: "tierd".into(),
            group_instance_id: None,
            create_topics: true,
            partitions: 8,
            replication: 1,
            batch_max_records: 20_000,
            batch_max_wait_ms: 50,
            batch_catch_up_min_records: 5_000,
            align_max_held: 100_000,
            flush_every_ms: 0,
            store_backend: tier_store::Backend::Sled,
            store_cache_mib: tier_store::StoreOptions::default().cache_capacity_bytes >> 20,
            session_timeout_ms: 10_000,
            kafka: Vec::new(),
            kafka_consumer: Vec::new(),
            kafka_producer: Vec::new(),
            frozen_now_ms: None,
            stall_after_ms: 10_000,
            auth_tokens_file: None,
            time_sweeps: true,
            sweep_grace_ms: 60_000,
            engine_slice: 5_000,
            engine_slice_ms: 20,
            hot_customers: tier_engine::DEFAULT_HOT_CUSTOMERS,
            hot_mib: (tier_engine::DEFAULT_HOT_BYTES >> 20) as u64,
            grpc_tls_cert: None,
            grpc_tls_key: None,
            grpc_tls_client_ca: None,
            grpc_max_request_bytes: tier_api::Limits::default().max_request_bytes,
            grpc_concurrency_per_connection: tier_api::Limits::default()
                .concurrent_requests_per_connection,
            grpc_request_timeout_ms: 30_000,
            otlp_endpoint: None,
        }
    }
}

/// Command-line flags. Unset flags fall through to the file and defaults.
#[derive(Debug, Parser, Serialize, Default)]
#[command(
    name = "tierd",
    version,
    about = "Grades customers into tiers from their live business events.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// TOML config file with any of the keys below.
    #[arg(long, env = "TIERD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers. Absent: start an embedded (non-durable) broker.
    #[arg(long, env = "TIERD_BROKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    #[arg(long, env = "TIERD_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "TIERD_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<SocketAddr>,
    /// Prometheus /metrics listen address (port 0 picks a free port).
    #[arg(long, env = "TIERD_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Scoring policy file (TOML). Absent: the built-in default.
    #[arg(long, env = "TIERD_POLICY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    /// Write {"grpc","metrics","kafka_bootstrap"} JSON here when ready.
    #[arg(long, env = "TIERD_READY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_file: Option<PathBuf>,
    #[arg(long, env = "TIERD_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Input topics, comma separated.
    #[arg(long, env = "TIERD_TOPICS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[arg(long, env = "TIERD_DLQ_TOPIC")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_topic: Option<String>,
    #[arg(long, env = "TIERD_TIER_CHANGES_TOPIC")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_changes_topic: Option<String>,
    #[arg(long, env = "TIERD_TIER_CHANGES_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_changes_format: Option<OutputFormatArg>,
    #[arg(long, env = "TIERD_GROUP_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[arg(long, env = "TIERD_GROUP_INSTANCE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
    /// Create missing topics at start (true/false).
    #[arg(long, env = "TIERD_CREATE_TOPICS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_topics: Option<bool>,
    #[arg(long, env = "TIERD_PARTITIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    #[arg(long, env = "TIERD_BATCH_MAX_RECORDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_max_records: Option<usize>,
    #[arg(long, env = "TIERD_BATCH_MAX_WAIT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_max_wait_ms: Option<u64>,
    /// While catching up, records a batch holds before the group commit may
    /// seal it (smaller ones wait for more, up to the batch bounds).
    #[arg(long, env = "TIERD_BATCH_CATCH_UP_MIN_RECORDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_catch_up_min_records: Option<usize>,
    /// Most records held while catching up to merge the input topics by
    /// event time (from half of it, the partitions that must wait are
    /// paused).
    #[arg(long, env = "TIERD_ALIGN_MAX_HELD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align_max_held: Option<usize>,
    /// 0: flush the store after every batch; N: every N ms.
    #[arg(long, env = "TIERD_FLUSH_EVERY_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_every_ms: Option<u64>,
    /// Store backend: sled (default); fjall or redb if this build has the
    /// store-fjall / store-redb feature. A data dir keeps the backend that
    /// created it: opening it as another is refused.
    #[arg(long, env = "TIERD_STORE_BACKEND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_backend: Option<tier_store::Backend>,
    /// MiB of the store backend's cache (default 64). The engine holds
    /// every customer in memory, so the store is read at start-up and
    /// when a partition is assigned; its cache serves the commits.
    #[arg(long, env = "TIERD_STORE_CACHE_MIB", value_name = "MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_cache_mib: Option<u64>,
    /// Extra librdkafka setting key=value for every client (repeatable).
    #[arg(long = "kafka", env = "TIERD_KAFKA", value_delimiter = ';')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Vec<String>>,
    /// Extra librdkafka setting key=value for the consumer only
    /// (repeatable; after --kafka).
    #[arg(
        long = "kafka-consumer",
        env = "TIERD_KAFKA_CONSUMER",
        value_delimiter = ';'
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_consumer: Option<Vec<String>>,
    /// Extra librdkafka setting key=value for the producers only
    /// (repeatable; after --kafka).
    #[arg(
        long = "kafka-producer",
        env = "TIERD_KAFKA_PRODUCER",
        value_delimiter = ';'
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_producer: Option<Vec<String>>,
    /// Freeze processing time at this instant, in ms since the epoch
    /// (replays "as of" a date; deterministic tests).
    #[arg(long, env = "TIERD_FROZEN_NOW_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_now_ms: Option<i64>,
    /// How long ingest may fail to make progress before health turns
    /// NOT_SERVING, in ms.
    #[arg(long, env = "TIERD_STALL_AFTER_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_after_ms: Option<u64>,
    /// Session timeout of the consumer group, in ms.
    #[arg(long, env = "TIERD_SESSION_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u32>,
    /// gRPC bearer tokens file (TOML `[[token]]` entries with scope
    /// "admin" or "read", token, optional name). Absent: admin RPCs are
    /// accepted only from loopback peers, read RPCs from anyone.
    #[arg(long, env = "TIERD_AUTH_TOKENS_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_tokens_file: Option<PathBuf>,
    /// Make time-driven decisions as the processing clock passes them
    /// (default true). false: tiers move only with events, overrides and
    /// policy changes (what-if replays, audits).
    #[arg(long, env = "TIERD_TIME_SWEEPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_sweeps: Option<bool>,
    /// How far sweeps stay behind the processing clock, in milliseconds:
    /// an event dated before a due instant and arriving within this after
    /// it is folded before that decision, as a replay would (default
    /// 60000; 0: sweep right up to the clock).
    #[arg(long, env = "TIERD_SWEEP_GRACE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep_grace_ms: Option<u64>,
    /// Most customers swept, and most rescored under a new policy, between
    /// two batches (default 5000).
    #[arg(long, env = "TIERD_ENGINE_SLICE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_slice: Option<usize>,
    /// About how long one loop turn with a sweep or rescore slice may
    /// take, in milliseconds: slices are sized from the measured rate to
    /// fit it, at most --engine-slice customers (default 20; 0: always
    /// --engine-slice).
    #[arg(long, env = "TIERD_ENGINE_SLICE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_slice_ms: Option<u64>,
    /// Customers held decoded in memory; the least recently used beyond it
    /// are held encoded, about 0.7 KB each instead of about 3 KB (default
    /// 100000).
    #[arg(long, env = "TIERD_HOT_CUSTOMERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_customers: Option<usize>,
    /// MiB the customers held decoded may take on the heap (a busy
    /// customer takes tens to hundreds of KB decoded, a light one one or
    /// two); the least recently used beyond it are held encoded (default
    /// 128).
    #[arg(long, env = "TIERD_HOT_MIB", value_name = "MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_mib: Option<u64>,
    /// gRPC over TLS: the server certificate chain (PEM), with
    /// --grpc-tls-key.
    #[arg(long, env = "TIERD_GRPC_TLS_CERT", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, env = "TIERD_GRPC_TLS_KEY", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by this CA
    /// (PEM). Bearer tokens are still checked on top.
    #[arg(long, env = "TIERD_GRPC_TLS_CLIENT_CA", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_tls_client_ca: Option<PathBuf>,
    /// Largest gRPC request accepted, in bytes (default 4 MiB).
    #[arg(long, env = "TIERD_GRPC_MAX_REQUEST_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_max_request_bytes: Option<usize>,
    /// gRPC requests served at once per connection; more are shed with
    /// RESOURCE_EXHAUSTED (default 256).
    #[arg(long, env = "TIERD_GRPC_CONCURRENCY_PER_CONNECTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_concurrency_per_connection: Option<usize>,
    /// Longest a gRPC request may take, in ms; a shorter client deadline
    /// wins (default 30000).
    #[arg(long, env = "TIERD_GRPC_REQUEST_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_request_timeout_ms: Option<u64>,
    /// Export spans to this OpenTelemetry collector over OTLP/HTTP
    /// (protobuf), e.g. http://localhost:4318 (spans go to
    /// <URL>/v1/traces). Only in builds with the `otlp` feature; others
    /// refuse to start with it.
    #[arg(long, env = "TIERD_OTLP_ENDPOINT", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

impl Cli {
    /// Merge defaults, the config file and these flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &self.config {
            fig = fig.merge(Toml::file_exact(path));
        }
        Ok(fig.merge(Serialized::defaults(self)).extract()?)
    }
}

impl Config {
    /// The options tierd opens its store with: the flush policy of
    /// `flush_every_ms` and a cache of `store_cache_mib`.
    pub fn store_options(&self) -> tier_store::StoreOptions {
        tier_store::StoreOptions {
            flush: if self.flush_every_ms == 0 {
                tier_store::FlushPolicy::EveryCommit
            } else {
                tier_store::FlushPolicy::IntervalMs(self.flush_every_ms)
            },
            cache_capacity_bytes: self.store_cache_mib.saturating_mul(1 << 20),
            ..tier_store::StoreOptions::default()
        }
    }

    /// Parsed `--kafka`, `--kafka-consumer` and `--kafka-producer`
    /// settings.
    ///
    /// `partition.assignment.strategy` may only be `range` (tierd's
    /// default): an instance owns a partition *number* of every input
    /// topic (they are co-partitioned by customer id), which only the
    /// range assignor guarantees, and tierd's rebalance handling is the
    /// eager protocol's (a cooperative assignor would stop consumption).
    pub fn kafka_settings(&self) -> anyhow::Result<KafkaSettings> {
        Ok(KafkaSettings {
            all: parse_kafka("--kafka", &self.kafka)?,
            consumer: parse_kafka("--kafka-consumer", &self.kafka_consumer)?,
            producer: parse_kafka("--kafka-producer", &self.kafka_producer)?,
        })
    }
}

/// The operator's librdkafka settings, by the clients they are for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaSettings {
    /// For every client (`--kafka`).
    pub all: Vec<(String, String)>,
    /// For the consumer only (`--kafka-consumer`).
    pub consumer: Vec<(String, String)>,
    /// For the producers only (`--kafka-producer`).
    pub producer: Vec<(String, String)>,
}

impl KafkaSettings {
    /// The consumer's settings: every client's, then its own (which win).
    pub fn for_consumer(&self) -> Vec<(String, String)> {
        [self.all.as_slice(), &self.consumer].concat()
    }

    /// A producer's settings: every client's, then the producers' own.
    pub fn for_producer(&self) -> Vec<(String, String)> {
        [self.all.as_slice(), &self.producer].concat()
    }
}

/// `key=value` settings given with `flag`.
fn parse_kafka(flag: &str, settings: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    settings
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("{flag} {kv:?}: expected key=value"))?;
            if k == "partition.assignment.strategy" && v != "range" {
                anyhow::bail!(
                    "{flag} {kv:?}: tierd needs the range assignor (an instance owns the same \
                     partition number of every co-partitioned input topic, and rebalances are \
                     handled eagerly); remove the setting or set it to range"
                );
            }
            Ok((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierd.toml");
        std::fs::write(&file, "partitions = 3\ngroup_id = \"from-file\"\n").unwrap();
        let cli = Cli::try_parse_from([
            "tierd",
            "--config",
            file.to_str().unwrap(),
            "--group-id",
            "from-flag",
        ])
        .unwrap();
        let c = cli.resolve().unwrap();
        assert_eq!(c.partitions, 3);
        assert_eq!(c.group_id, "from-flag");
        assert_eq!(c.dlq_topic, "tierd.dlq");
    }

    #[test]
    fn only_the_range_assignor_is_accepted() {
        let setting = |v: &str| vec![format!("partition.assignment.strategy={v}")];
        let everywhere = |v: &str| Config {
            kafka: setting(v),
            ..Config::default()
        };
        let consumer = |v: &str| Config {
            kafka_consumer: setting(v),
            ..Config::default()
        };
        let range = vec![(
            "partition.assignment.strategy".to_owned(),
            "range".to_owned(),
        )];
        assert_eq!(
            everywhere("range").kafka_settings().unwrap().for_consumer(),
            range
        );
        assert_eq!(
            consumer("range").kafka_settings().unwrap().for_consumer(),
            range
        );
        for other in ["roundrobin", "cooperative-sticky", "range,roundrobin"] {
            let err = everywhere(other).kafka_settings().unwrap_err().to_string();
            assert!(err.contains("range assignor"), "{other}: {err}");
            assert!(err.starts_with("--kafka \""), "{other}: {err}");
            let err = consumer(other).kafka_settings().unwrap_err().to_string();
            assert!(err.contains("range assignor"), "{other}: {err}");
            assert!(err.starts_with("--kafka-consumer \""), "{other}: {err}");
        }
    }

    #[test]
    fn consumer_and_producer_settings_go_to_their_clients_only() {
        let cli = Cli::try_parse_from([
            "tierd",
            "--kafka",
            "security.protocol=SASL_SSL;linger.ms=1",
            "--kafka-consumer",
            "fetch.wait.max.ms=10",
            "--kafka-producer",
            "compression.type=zstd;linger.ms=20",
        ])
        .unwrap();
        let settings = cli.resolve().unwrap().kafka_settings().unwrap();
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            settings.for_consumer(),
            [
                kv("security.protocol", "SASL_SSL"),
                kv("linger.ms", "1"),
                kv("fetch.wait.max.ms", "10"),
            ]
        );
        // Set later, a producer's own setting wins over every client's.
        assert_eq!(
            settings.for_producer(),
            [
                kv("security.protocol", "SASL_SSL"),
                kv("linger.ms", "1"),
                kv("compression.type", "zstd"),
                kv("linger.ms", "20"),
            ]
        );
        let err = Config {
            kafka_producer: vec!["oops".to_owned()],
            ..Config::default()
        }
        .kafka_settings()
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("--kafka-producer \"oops\": expected key=value"),
            "{err}"
        );
    }

    #[test]
    fn auth_tokens_file_from_flag_or_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierd.toml");
        std::fs::write(&file, "auth_tokens_file = \"/etc/tierd/tokens.toml\"\n").unwrap();
        let c = Cli::try_parse_from(["tierd", "--config", file.to_str().unwrap()])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            c.auth_tokens_file,
            Some(PathBuf::from("/etc/tierd/tokens.toml"))
        );
        let c = Cli::try_parse_from([
            "tierd",
            "--config",
            file.to_str().unwrap(),
            "--auth-tokens-file",
            "/run/tokens.toml",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(c.auth_tokens_file, Some(PathBuf::from("/run/tokens.toml")));
        let c = Cli::try_parse_from(["tierd"]).unwrap().resolve().unwrap();
        assert_eq!(c.auth_tokens_file, None);
    }

    #[test]
    fn the_store_opens_with_the_configured_cache_and_flush() {
        use tier_store::{FlushPolicy, StoreOptions};
        let c = Cli::try_parse_from(["tierd"]).unwrap().resolve().unwrap();
        assert_eq!(c.store_options(), StoreOptions::default());
        assert_eq!(c.store_options().cache_capacity_bytes, 64 << 20);
        let c = Cli::try_parse_from([
            "tierd",
            "--store-cache-mib",
            "32",
            "--flush-every-ms",
            "200",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        let o = c.store_options();
        assert_eq!(o.cache_capacity_bytes, 32 << 20);
        assert_eq!(o.flush, FlushPolicy::IntervalMs(200));
    }

    #[test]
    fn store_backend_from_flag_or_file_and_unknown_ones_refused() {
        use tier_store::Backend;
        let c = Cli::try_parse_from(["tierd"]).unwrap().resolve().unwrap();
        assert_eq!(c.store_backend, Backend::Sled);
        let c = Cli::try_parse_from(["tierd", "--store-backend", "sled"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.store_backend, Backend::Sled);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierd.toml");
        for backend in Backend::ALL {
            std::fs::write(&file, format!("store_backend = \"{backend}\"\n")).unwrap();
            let from_file = Cli::try_parse_from(["tierd", "--config", file.to_str().unwrap()])
                .unwrap()
                .resolve();
            let from_flag = Cli::try_parse_from(["tierd", "--store-backend", backend.name()]);
            if backend.is_compiled_in() {
                assert_eq!(from_file.unwrap().store_backend, backend);
                assert_eq!(from_flag.unwrap().resolve().unwrap().store_backend, backend);
            } else {
                let want = format!("store backend {backend} is not compiled into this build");
                let err = format!("{:#}", from_file.unwrap_err());
                assert!(err.contains(&want), "{err}");
                let err = from_flag.unwrap_err().to_string();
                assert!(err.contains(&want), "{err}");
            }
        }

        let err = Cli::try_parse_from(["tierd", "--store-backend", "rocksdb"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "unknown store backend \"rocksdb\": this build supports {}",
                Backend::compiled_in_list()
            )),
            "{err}"
        );
        std::fs::write(&file, "store_backend = \"lmdb\"\n").unwrap();
        let err = Cli::try_parse_from(["tierd", "--config", file.to_str().unwrap()])
            .unwrap()
            .resolve()
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("unknown store backend \"lmdb\""), "{err}");
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tierd.toml");
        std::fs::write(&file, "partitons = 3\n").unwrap();
        let cli = Cli::try_parse_from(["tierd", "--config", file.to_str().unwrap()]).unwrap();
        let err = cli.resolve().unwrap_err().to_string();
        assert!(err.contains("partitons"), "{err}");
    }
}

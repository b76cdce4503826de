//! # tierd: the daemon
//!
//! Owns configuration, wiring and lifecycle: it opens the store, loads the
//! policy, starts (or connects to) the broker, runs the ingest pipeline,
//! the outbox publisher, the gRPC API and the `/metrics` endpoint, and shuts
//! them down in one order ([`supervisor`]). No domain logic and no protocol code live here.
//!
//! The library form exists so end-to-end tests start tierd in-process with
//! [`start`]; `main.rs` only parses flags, sets up logging
//! ([`telemetry::init`]) and waits for a signal.

pub mod check;
pub mod config;
pub mod metrics_http;
pub mod supervisor;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tier_api::{AdminServiceImpl, ReadModel, TierServiceImpl};
use tier_core::Timestamp;
use tier_core::policy::Policy;
use tier_core::state::CustomerState;
use tier_engine::committer::ReadUpdate;
use tier_engine::{ActivePolicy, Command, PolicyHandle};
use tier_kafka::pipeline::{self, CommitObserver, PipelineReport, PipelineStatus};
use tier_kafka::{Clock, EmbeddedBroker, OutputFormat, PipelineConfig, PublisherConfig};
use tier_store::{AnyStore, Store as _};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::supervisor::Supervisor;

pub use config::{Cli, Config};

/// Load the policy named by the config, or the built-in default.
pub fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    let (policy, _) = load_policy_text(path)?;
    Ok(policy)
}

/// The policy named by the config (or the built-in default) and its text.
pub fn load_policy_text(path: Option<&Path>) -> anyhow::Result<(Policy, String)> {
    match path {
        None => Ok((
            Policy::default_policy(),
            tier_core::policy::DEFAULT_POLICY_TOML.to_owned(),
        )),
        Some(p) => {
            let src = std::fs::read_to_string(p)
                .with_context(|| format!("reading policy file {}", p.display()))?;
            let policy = Policy::from_toml_str(&src)
                .with_context(|| format!("policy file {}", p.display()))?;
            Ok((policy, src))
        }
    }
}

/// A policy file (`None`: the built-in default) refused as a change of the
/// policy in force, naming the file and the policy's field at fault.
fn refused(path: Option<&Path>, e: &tier_engine::command::PolicyChangeRefused) -> anyhow::Error {
    let file = match path {
        Some(p) => format!("policy file {}", p.display()),
        None => "the built-in default policy".to_owned(),
    };
    anyhow::anyhow!("{file}: field `{}`: {e}", e.field())
}

/// The policy tierd starts with.
///
/// The data dir remembers the policy in force and the SHA-256 of the
/// `--policy` file (or built-in default) it was recorded against. If that
/// file is unchanged, the remembered policy stays in force, so one applied
/// with `ApplyPolicy` survives restarts. If the file changed (or nothing
/// is remembered), the file's policy is put in force, exactly as a SIGHUP
/// would; customers decided under another version are then rescored in
/// the background. As a SIGHUP would, a file that changes the rules but
/// keeps the version in force is refused (the rescore goes by version, so
/// the customers decided already would keep the old rules' tiers while
/// ExplainTier explained them by the new), and so is one with another
/// window or time zone than the stored figures were folded by.
pub fn starting_policy(
    store: &AnyStore,
    path: Option<&Path>,
) -> anyhow::Result<(ActivePolicy, bool)> {
    let (file_policy, file_text) = load_policy_text(path)?;
    let file_hash = tier_engine::command::sha256_hex(&file_text);
    let file = ActivePolicy::new(file_policy, file_text, file_hash);
    let stored_text = store.meta(pipeline::META_POLICY)?;
    let stored_source = store.meta(pipeline::META_POLICY_SOURCE)?;
    if let (Some(text), Some(source)) = (stored_text, stored_source) {
        let text = String::from_utf8(text).context("the stored policy is not UTF-8")?;
        match Policy::from_toml_str(&text) {
            Ok(p) => {
                let mut stored = ActivePolicy::new(p, text, file.source_hash.clone());
                stored.versions = recorded_versions(store, &stored)?;
                if source == file.source_hash.as_bytes() {
                    return Ok((stored, false));
                }
                let folded = store.customer_count()? > 0;
                stored
                    .is_changed_by(&file.policy, &file.text, folded)
                    .map_err(|e| refused(path, &e))?;
                return Ok((file.replacing(&stored), true));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the policy recorded in the data dir no longer parses; using the policy file")
            }
        }
    }
    Ok((file, true))
}

/// The versions put in force in this data dir and the texts they named
/// (`stored` is the policy in force recorded): as recorded, or, in a data
/// dir older than that record, the recorded policy's and the one it
/// replaced.
fn recorded_versions(
    store: &AnyStore,
    stored: &ActivePolicy,
) -> anyhow::Result<tier_engine::command::PolicyVersions> {
    if let Some(versions) = store
        .meta(pipeline::META_POLICY_VERSIONS)?
        .as_deref()
        .and_then(tier_engine::command::PolicyVersions::decode)
    {
        let mut versions = versions;
        versions.record(stored.policy.version(), &stored.hash);
        return Ok(versions);
    }
    let mut versions = stored.versions.clone();
    let replaced = store
        .meta(pipeline::META_POLICY_REPLACED)?
        .and_then(|t| String::from_utf8(t).ok());
    if let Some(text) = replaced
        && let Ok(p) = Policy::from_toml_str(&text)
        && p.version() != stored.policy.version()
    {
        versions.record(p.version(), &tier_engine::command::sha256_hex(&text));
    }
    Ok(versions)
}

/// The policy the decisions not rescored yet were made by, when it is
/// not the one in force (ExplainTier explains each decision by the policy
/// that made it, also right after a restart): the policy the data dir
/// recorded, when the policy file replaces it at this start; else the one
/// the last recorded change replaced (its rescore may have been cut short
/// by a crash; once the rescore is done, the handle lets it go). Read
/// before the start records the file's policy.
pub fn replaced_policy(
    store: &AnyStore,
    active: &ActivePolicy,
    from_file: bool,
) -> Option<(Policy, String)> {
    let key = if from_file {
        pipeline::META_POLICY
    } else {
        pipeline::META_POLICY_REPLACED
    };
    let text = String::from_utf8(store.meta(key).ok()??).ok()?;
    let policy = Policy::from_toml_str(&text).ok()?;
    (policy.version() != active.policy.version()).then_some((policy, text))
}

/// Completes each published `TierChanged` with the customer's classes in
/// the policy's population gradings (ABC, RFM): where its committed
/// figures fall among the cut points only the read side knows
/// (per-customer gradings are in the record already). The
/// read model holds the change's state by then: the outbox publishes a row
/// only once the read side has its unit (`tier_kafka::OutboxGate`).
fn population_gradings(read: Arc<ReadModel>, policy: Arc<PolicyHandle>) -> tier_kafka::Enrich {
    tier_kafka::Enrich(Arc::new(move |msg: &mut tier_proto::api::TierChanged| {
        let policy = policy.policy();
        let Some(cuts) = read.grading_cuts(&policy) else {
            return;
        };
        let Some(view) = read.get(&msg.customer_id) else {
            return;
        };
        let indicators = view.indicators();
        for g in policy.population_gradings() {
            if let Some(class) = cuts.class(g, &msg.customer_id, &view, &indicators) {
                msg.gradings
                    .push(tier_wire::tier_changed::grading_into_proto(class));
            }
        }
    }))
}

/// Publishes committed customer states into the API's read model, and
/// the customers-per-tier gauge from it.
struct ReadModelObserver {
    read: Arc<ReadModel>,
    policy: Arc<PolicyHandle>,
    gauge: Arc<TierGauge>,
}

impl ReadModelObserver {
    fn new(read: Arc<ReadModel>, policy: Arc<PolicyHandle>) -> Self {
        Self {
            read,
            policy,
            gauge: Arc::new(TierGauge::default()),
        }
    }

    fn set_tier_gauge(&self) {
        self.gauge.set(&self.read, &self.policy);
    }
}

/// `tierd_customers{tier}`: the customers this instance holds, per held
/// tier, counted from the read model after every published unit and
/// eviction, so it follows rebalances (customers evicted when their
/// partition goes elsewhere, loaded back when it returns), which tier
/// changes alone do not show.
#[derive(Default)]
struct TierGauge {
    /// Every tier the gauge was set for (set to 0 once it has no customer).
    gauged: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl TierGauge {
    fn set(&self, read: &ReadModel, policy: &PolicyHandle) {
        let mut gauged = self
            .gauged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = read.count_by_tier();
        gauged.extend(policy.policy().tiers().iter().map(|t| t.name.clone()));
        gauged.extend(counts.keys().filter(|t| !t.is_empty()).cloned());
        for tier in gauged.iter() {
            let n = counts.get(tier).copied().unwrap_or(0);
            metrics::gauge!(tier_kafka::metrics::CUSTOMERS_PER_TIER, "tier" => tier.clone())
                .set(n as f64);
        }
    }
}

impl CommitObserver for ReadModelObserver {
    fn committed(&self, customers: &[(&str, &CustomerState)]) {
        // Views of the decisions themselves (figures at their instants),
        // with each customer's account manager and exact 12-month money.
        self.read.publish(customers, &self.policy.policy());
        self.set_tier_gauge();
    }

    fn prepare(
        &self,
        customers: &[(&str, &CustomerState)],
        policy: &Arc<tier_core::policy::Policy>,
    ) -> ReadUpdate {
        // The same views, built on the engine's thread as the unit is
        // sealed (the engine's policy then is the one in force once the
        // unit is durable); the publish thread only inserts them.
        let prepared = ReadModel::prepare(customers, policy);
        let (read, handle, gauge) = (
            Arc::clone(&self.read),
            Arc::clone(&self.policy),
            Arc::clone(&self.gauge),
        );
        ReadUpdate::Prepared(Box::new(move || {
            read.publish_prepared(prepared);
            gauge.set(&read, &handle);
        }))
    }

    fn filled(&self) {
        // The population gradings over the whole fill, before tierd
        // reports ready: no answer or TierChanged waits for their build.
        self.read.prepare_gradings(&self.policy.policy());
    }

    fn evicted(&self, ids: &[String]) {
        self.read.remove(ids);
        self.set_tier_gauge();
    }
}

/// A running tierd.
#[derive(Debug)]
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub kafka_bootstrap: String,
    shutdown: CancellationToken,
    status: tokio::sync::watch::Receiver<PipelineStatus>,
    main: JoinHandle<anyhow::Result<PipelineReport>>,
    policy_path: Option<std::path::PathBuf>,
    policy: Arc<PolicyHandle>,
    /// Whether customers are folded (a changed window or zone is refused).
    read: Arc<ReadModel>,
    commands: tier_engine::CommandSender,
    swept_to: tokio::sync::watch::Receiver<Option<Timestamp>>,
    stop_order: Vec<&'static str>,
}

impl Running {
    /// Wait until every time-driven decision due by processing instant
    /// `at` is made and committed (the sweeper caught up with `at`).
    pub async fn swept_to(&self, at: Timestamp, timeout: Duration) -> anyhow::Result<()> {
        let mut rx = self.swept_to.clone();
        tokio::time::timeout(timeout, rx.wait_for(|t| t.is_some_and(|t| t >= at)))
            .await
            .context("the sweeper did not catch up in time")?
            .context("tierd stopped")?;
        Ok(())
    }

    /// Re-read `--policy` (what SIGHUP does): validate it, and if its text
    /// differs from the policy in force, apply it like `ApplyPolicy` (a
    /// background rescore). Returns the new version, or `None` when the
    /// file holds the policy already in force. A file that fails to parse
    /// changes nothing; the error names line and field.
    pub async fn reload_policy(&self) -> anyhow::Result<Option<String>> {
        let path = self.policy_path.clone();
        let (policy, text) = tokio::task::spawn_blocking(move || load_policy_text(path.as_deref()))
            .await
            .context("policy reload task panicked")??;
        let source_hash = tier_engine::command::sha256_hex(&text);
        let folded = self.read.has_folded();
        let changed = self
            .policy
            .active()
            .is_changed_by(&policy, &text, folded)
            .map_err(|e| refused(self.policy_path.as_deref(), &e))?;
        if !changed {
            return Ok(None);
        }
        let version = policy.version().to_owned();
        let active =
            Arc::new(ActivePolicy::new(policy, text, source_hash).replacing(&self.policy.active()));
        tier_api::service::ask(&self.commands, |reply| Command::ApplyPolicy {
            policy: active,
            reply,
        })
        .await
        .context("applying the policy")?
        .map_err(|e| refused(self.policy_path.as_deref(), &e))?;
        Ok(Some(version))
    }

    /// Ask tierd to stop: finish and commit the batch in hand, flush the
    /// outbox, stop serving.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Wait until partitions are assigned and state is loaded.
    pub async fn ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let status = &mut self.status;
        tokio::time::timeout(timeout, status.wait_for(|s| *s == PipelineStatus::Ready))
            .await
            .context("tierd did not become ready in time")?
            .context("tierd stopped before it was ready")?;
        Ok(())
    }

    /// The parts of this tierd in the order a shutdown stops them.
    pub fn stop_order(&self) -> &[&'static str] {
        &self.stop_order
    }

    pub fn status(&self) -> PipelineStatus {
        *self.status.borrow()
    }

    /// Resolves when the ingest pipeline has stopped (for any reason).
    pub async fn stopped(&self) {
        let mut status = self.status.clone();
        let _ = status.wait_for(|s| *s == PipelineStatus::Stopped).await;
    }

    /// Wait for tierd to stop (after [`Running::shutdown`] or a fatal error);
    /// returns what the ingest pipeline did in this run.
    pub async fn wait(self) -> anyhow::Result<PipelineReport> {
        self.main.await.context("tierd main task panicked")?
    }
}

/// Start tierd with `config`, using `clock` for processing time.
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    // Settings that can be wrong are read before anything starts.
    let tls = match config.grpc_tls()? {
        Some(files) => Some(tier_api::ApiTls::from_files(&files)?),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let metrics_handle = metrics_http::recorder()?;

    // Broker: external, or embedded for the default run.
    let mut embedded = None;
    let brokers = match &config.brokers {
        Some(b) => b.clone(),
        None => {
            let broker = EmbeddedBroker::start(1)?;
            let b = broker.bootstrap_servers().to_owned();
            tracing::warn!(bootstrap = %b, "no --brokers given: started an EMBEDDED Kafka-protocol broker in memory. Its log is NOT durable: it is empty after every restart (tierd keeps its own state). Point --brokers at a real cluster for production.");
            embedded = Some(broker);
            b
        }
    };
    let kafka_bootstrap = brokers.clone();
    let kafka = config.kafka_settings()?;
    let mut all_topics = config.topics.clone();
    all_topics.push(config.dlq_topic.clone());
    all_topics.push(config.tier_changes_topic.clone());
    if let Some(broker) = &embedded {
        for t in &all_topics {
            broker.create_topic(t, config.partitions)?;
        }
    } else if config.create_topics {
        let cc = tier_kafka::client_config(&brokers, &[], &kafka.all);
        tier_kafka::ensure_topics(&cc, &all_topics, config.partitions, config.replication).await?;
    }

    let store_opts = config.store_options();
    let data_dir = config.data_dir.clone();
    let backend = config.store_backend;
    let store = tokio::task::spawn_blocking(move || open_store(&data_dir, backend, store_opts))
        .await
        .context("store open task panicked")?
        .with_context(|| format!("opening the data dir {}", config.data_dir.display()))?;
    let store = Arc::new(store);

    let (active, from_file) = starting_policy(&store, config.policy.as_deref())?;
    let replaced = replaced_policy(&store, &active, from_file);
    tracing::info!(
        version = active.policy.version(),
        hash = %active.hash,
        tiers = active.policy.tiers().len(),
        source = if from_file { "policy file" } else { "data dir (applied earlier; the policy file is unchanged)" },
        "policy loaded"
    );
    let active = Arc::new(active);
    if from_file {
        // Record it, so an unchanged file keeps whatever is applied later
        // (and the policy it replaces, for a restart during its rescore).
        let s = store.clone();
        let meta = pipeline::policy_records(&active);
        tokio::task::spawn_blocking(move || {
            s.commit(&tier_store::CommitBatch::<'_, CustomerState> {
                meta,
                ..tier_store::CommitBatch::new()
            })
        })
        .await
        .context("store task panicked")?
        .context("recording the policy in force")?;
    }
    let policy_handle = Arc::new(PolicyHandle::new(active.clone()));
    if let Some((replaced, _)) = replaced {
        // Until the rescore is done (released with its last unit).
        policy_handle.keep_replaced(Arc::new(replaced));
    }
    let (commands, inbox) = tier_engine::command::channel(1024);
    let (swept_tx, swept_rx) = tokio::sync::watch::channel(None);

    let read = Arc::new(ReadModel::new());
    // Customers in the data dir: their figures were folded under the
    // policy in force, which a change must keep folding as (window, zone,
    // base currency), also while the start-up fill has not shown them.
    if store.scan_scoped::<CustomerState>(None).next().is_some() {
        read.mark_folded();
    }
    let (changes_tx, _) = broadcast::channel(4096);
    let notify = Arc::new(Notify::new());
    // The outbox publishes a row only once its unit is in the read model
    // (it completes records from it).
    let outbox_gate = Arc::new(tier_kafka::OutboxGate::default());

    // Listeners first, so their addresses are known and port 0 works.
    let grpc_listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding /metrics on {}", config.metrics_listen))?;
    let metrics_addr = metrics_listener.local_addr()?;

    let (health, health_service) = tier_api::health_pair();
    let api_stop = CancellationToken::new();
    let service = TierServiceImpl::with_engine(
        read.clone(),
        policy_handle.clone(),
        commands.clone(),
        changes_tx.clone(),
    )
    .with_shutdown(api_stop.clone());
    let admin = AdminServiceImpl::new(service.clone(), commands.clone());
    let auth = match &config.auth_tokens_file {
        Some(path) => tier_api::Auth::from_file(path)?,
        None => tier_api::Auth::none(),
    };
    let mut api = tier_api::ApiServer::new(service, health_service)
        .with_admin(admin)
        .with_auth(auth)
        .with_limits(config.grpc_limits());
    if let Some(tls) = tls {
        api = api.with_tls(tls);
    }
    let api_task = tokio::spawn(api.serve(grpc_listener, api_stop.clone()));
    let metrics_stop = CancellationToken::new();
    let metrics_task = tokio::spawn(metrics_http::serve(
        metrics_listener,
        metrics_handle,
        metrics_stop.clone(),
    ));

    let mut pc = PipelineConfig::new(brokers.clone(), config.topics.clone());
    pc.group_id = config.group_id.clone();
    pc.group_instance_id = config.group_instance_id.clone();
    pc.dlq_topic = config.dlq_topic.clone();
    pc.batch_max_records = config.batch_max_records.max(1);
    pc.batch_max_wait = Duration::from_millis(config.batch_max_wait_ms.max(1));
    pc.batch_catch_up_min_records = config.batch_catch_up_min_records;
    pc.align_max_held = config.align_max_held.max(1);
    pc.session_timeout_ms = config.session_timeout_ms;
    pc.stall_after = Duration::from_millis(config.stall_after_ms.max(100));
    pc.kafka = kafka.for_consumer();
    pc.dlq_kafka = kafka.for_producer();
    pc.time_sweeps = config.time_sweeps;
    // At most a day (`check-config` refuses more; a start takes a day).
    if config.sweep_grace_ms > config::MAX_SWEEP_GRACE_MS {
        tracing::warn!(
            sweep_grace_ms = config.sweep_grace_ms,
            "sweep_grace_ms is more than a day; sweeping a day behind the clock"
        );
    }
    pc.sweep_grace = Duration::from_millis(config.sweep_grace_ms.min(config::MAX_SWEEP_GRACE_MS));
    pc.slice = config.engine_slice.max(1);
    pc.slice_target = Duration::from_millis(config.engine_slice_ms);
    pc.hot_customers = config.hot_customers;
    pc.hot_bytes = usize::try_from(config.hot_mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20);
    if !config.time_sweeps {
        tracing::warn!(
            "--time-sweeps false: tiers move only with events, overrides and policy changes, never with time alone"
        );
    }
    let ingest_stop = CancellationToken::new();
    let observer = Arc::new(ReadModelObserver::new(read.clone(), policy_handle.clone()));
    let pipeline = pipeline::spawn(
        pc,
        pipeline::PipelineDeps {
            store: store.clone(),
            policy: policy_handle.clone(),
            commands: inbox,
            swept_to: swept_tx,
            clock,
            outbox_notify: notify.clone(),
            outbox_gate: outbox_gate.clone(),
            cancel: ingest_stop.clone(),
        },
        observer,
    )?;
    let status = pipeline.status();

    let publisher = tier_kafka::Publisher::new(
        PublisherConfig {
            brokers: brokers.clone(),
            topic: config.tier_changes_topic.clone(),
            format: match config.tier_changes_format {
                config::OutputFormatArg::Protobuf => OutputFormat::Protobuf,
                config::OutputFormatArg::Json => OutputFormat::Json,
            },
            batch: 1000,
            kafka: kafka.for_producer(),
            enrich: Some(population_gradings(read.clone(), policy_handle.clone())),
        },
        store.clone(),
        notify,
        changes_tx,
    )?
    .with_gate(outbox_gate);
    let publisher_stop = CancellationToken::new();
    let publisher_task =
        tokio::spawn(publisher.run(publisher_stop.clone(), Duration::from_secs(10)));

    // Health follows the pipeline; the ready file is written once.
    let health_task = {
        let mut status = status.clone();
        let ready_file = config.ready_file.clone();
        let info = serde_json::json!({
            "grpc": grpc_addr.to_string(),
            "metrics": metrics_addr.to_string(),
            "kafka_bootstrap": brokers,
        });
        tokio::spawn(async move {
            let mut wrote = false;
            loop {
                let s = *status.borrow_and_update();
                health.set_serving(s == PipelineStatus::Ready);
                if s == PipelineStatus::Ready && !wrote {
                    wrote = true;
                    tracing::info!(grpc = %info["grpc"], metrics = %info["metrics"], kafka_bootstrap = %info["kafka_bootstrap"], "tierd is ready");
                    if let Some(path) = &ready_file
                        && let Err(e) = write_ready_file(path, &info)
                    {
                        tracing::error!(path = %path.display(), error = %e, "could not write the ready file");
                    }
                }
                if s == PipelineStatus::Stopped || status.changed().await.is_err() {
                    health.set_serving(false);
                    break;
                }
            }
        })
    };

    // The one stop order (see `supervisor`): ingest commits the batch in
    // hand, the publisher drains what it committed, the API answers until
    // the engine is gone, the store is flushed when nothing writes to it.
    let mut pipeline_status = pipeline.status();
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    let mut parts = Supervisor::new();
    parts.then("ingest", move || async move {
        ingest_stop.cancel();
        let report = pipeline.join().await;
        let _ = report_tx.send(report);
        Ok(())
    });
    parts.task("outbox publisher", publisher_stop, publisher_task);
    parts.task("gRPC API", api_stop, api_task);
    parts.task("metrics endpoint", metrics_stop, metrics_task);
    parts.task("health", CancellationToken::new(), health_task);
    let flushed = store.clone();
    parts.then("store", move || async move {
        tokio::task::spawn_blocking(move || flushed.flush())
            .await
            .context("store flush task panicked")?
            .context("final store flush")
    });
    parts.then("embedded broker", move || async move {
        drop(embedded);
        Ok(())
    });

    let stop_order = parts.order();
    let stop = shutdown.clone();
    let main = tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => tracing::info!("shutting down: finishing the batch in hand"),
            _ = pipeline_status.wait_for(|s| *s == PipelineStatus::Stopped) => {
                tracing::error!("the ingest pipeline stopped on its own");
            }
        }
        parts.stop().await;
        let report = report_rx
            .await
            .context("the ingest part ended without a report")??;
        tracing::info!(
            records = report.records,
            applied = report.applied,
            rejected = report.rejected,
            "tierd stopped"
        );
        if stop.is_cancelled() {
            Ok(report)
        } else {
            anyhow::bail!("the ingest pipeline stopped unexpectedly")
        }
    });

    Ok(Running {
        grpc_addr,
        metrics_addr,
        kafka_bootstrap,
        shutdown,
        status,
        main,
        policy_path: config.policy.clone(),
        policy: policy_handle,
        read,
        commands,
        swept_to: swept_rx,
        stop_order,
    })
}

/// Metric: data dirs moved aside because they could not be opened or failed
/// the integrity check.
pub const STORE_QUARANTINED: &str = "tierd_store_quarantined_total";

/// Open the store of `backend`, checking its integrity (every key and value
/// decodes). A data dir that cannot be opened or fails the check is
/// quarantined (renamed, never deleted) and replaced by a fresh one: with no
/// stored offsets, the pipeline then rebuilds all state by consuming the
/// input topics from their earliest available offsets. A dir written by
/// another backend, or a backend not compiled in, is an error (nothing is
/// moved).
pub fn open_store(
    dir: &Path,
    backend: tier_store::Backend,
    opts: tier_store::StoreOptions,
) -> anyhow::Result<AnyStore> {
    let started = std::time::Instant::now();
    let (store, moved) = AnyStore::open_or_quarantine(backend, dir, opts.clone())?;
    let (store, moved) = match (moved, store.verify::<CustomerState>()) {
        (moved, Ok(report)) => {
            tracing::info!(
                backend = %backend,
                customers = report.customers,
                offsets = report.offsets,
                outbox = report.outbox_rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "store integrity check passed"
            );
            (store, moved)
        }
        (None, Err(e)) if e.is_corruption() => {
            tracing::error!(error = %e, "store integrity check failed");
            drop(store);
            let moved = tier_store::quarantine(dir)?;
            (AnyStore::open(backend, dir, opts)?, Some(moved))
        }
        (_, Err(e)) => return Err(e.into()),
    };
    if let Some(moved) = moved {
        metrics::counter!(STORE_QUARANTINED).increment(1);
        tracing::error!(
            data_dir = %dir.display(),
            quarantined_to = %moved.display(),
            "the data dir could not be opened or failed its integrity check: it was moved aside (not deleted) and state will be rebuilt by replaying the input topics from their earliest offsets"
        );
    }
    Ok(store)
}

/// Start tierd on the wall clock (or the frozen instant of the config).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let clock: Arc<dyn Clock> = match config.frozen_now_ms {
        Some(ms) => Arc::new(tier_kafka::ManualClock::new(Timestamp::from_millis(ms))),
        None => Arc::new(tier_kafka::SystemClock),
    };
    start_with_clock(config, clock).await
}

fn write_ready_file(path: &Path, info: &serde_json::Value) -> anyhow::Result<()> {
    // Write then rename, so a watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use tier_core::{Event, EventKind, Money};

    use super::*;

    /// A customer after `orders` orders of `amount` (minor units).
    fn customer(id: &str, orders: usize, amount: i64, policy: &Policy) -> CustomerState {
        let at = tier_core::time::date(2026, 11, 1);
        let mut state = CustomerState::default();
        for i in 0..orders {
            let event = Event {
                event_id: format!("{id}-{i}"),
                customer_id: id.into(),
                occurred_at: Timestamp(at.millis() + i as i64 * 60_000),
                source: "test".into(),
                kind: EventKind::OrderPlaced {
                    order_id: format!("{id}-o-{i}"),
                    amount: Money(amount),
                    cost: Some(Money(amount / 2)),
                },
            };
            let _ = state.process(id, &event, policy);
        }
        state
    }

    /// Customers `c01`..: the i-th with `orders` orders of i million.
    fn customers(n: i64, orders: usize, policy: &Policy) -> Vec<(String, CustomerState)> {
        (1..=n)
            .map(|i| {
                let id = format!("c{i:02}");
                let state = customer(&id, orders, i * 1_000_000, policy);
                (id, state)
            })
            .collect()
    }

    /// ExplainTier explains a decision by the policy that made it, also
    /// right after a restart that changes the policy (the file edited
    /// while tierd was down) or resumes a rescore a crash cut short: the
    /// replaced policy is found in the data dir and kept for the
    /// decisions not rescored yet.
    #[test]
    fn a_restart_keeps_the_replaced_policy_for_decisions_not_rescored_yet() {
        use tier_core::sim::scenario::stricter_bands;
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(
            &dir.path().join("data"),
            tier_store::Backend::Sled,
            tier_store::StoreOptions::default(),
        )
        .unwrap();
        let file = dir.path().join("policy.toml");
        let default = tier_core::policy::DEFAULT_POLICY_TOML;
        std::fs::write(&file, default).unwrap();
        let record = |meta: Vec<(&'static str, &str)>| {
            store
                .commit(&tier_store::CommitBatch::<'_, CustomerState> {
                    meta: meta
                        .into_iter()
                        .map(|(k, v)| (k, v.as_bytes().to_vec()))
                        .collect(),
                    ..tier_store::CommitBatch::new()
                })
                .unwrap();
        };
        let (first, _) = starting_policy(&store, Some(&file)).unwrap();
        assert!(
            replaced_policy(&store, &first, true).is_none(),
            "nothing recorded"
        );
        record(vec![
            (pipeline::META_POLICY, first.text.as_str()),
            (pipeline::META_POLICY_SOURCE, first.source_hash.as_str()),
        ]);
        // The file edited while tierd was down: the recorded policy is the
        // one replaced.
        let stricter = stricter_bands(default, "stricter", 5.0);
        std::fs::write(&file, &stricter).unwrap();
        let (next, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(from_file);
        let (replaced, text) = replaced_policy(&store, &next, true).unwrap();
        assert_eq!(replaced.version(), first.policy.version());
        assert_eq!(text, first.text);
        let next = Arc::new(next);
        let handle = PolicyHandle::new(next.clone());
        handle.keep_replaced(Arc::new(replaced));
        assert_eq!(
            handle.policy_of(first.policy.version()).version(),
            first.policy.version()
        );
        assert_eq!(handle.policy_of("stricter").version(), "stricter");
        // Recorded as a change (by a start or an ApplyPolicy), then a
        // crash: the next start finds the replaced one in its own record.
        let applied = ActivePolicy::new(
            (*next.policy).clone(),
            next.text.clone(),
            next.source_hash.clone(),
        )
        .replacing(&first);
        record(vec![
            (pipeline::META_POLICY, applied.text.as_str()),
            (pipeline::META_POLICY_SOURCE, applied.source_hash.as_str()),
            (
                pipeline::META_POLICY_REPLACED,
                applied.replaced.as_deref().unwrap(),
            ),
        ]);
        let (again, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(!from_file);
        let (replaced, _) = replaced_policy(&store, &again, false).unwrap();
        assert_eq!(replaced.version(), first.policy.version());
    }

    /// A restart with a policy file edited without a new version is
    /// refused, naming the file and the field, as SIGHUP refuses it; a
    /// new version, or the text in force, starts; an unchanged file keeps
    /// the policy in force.
    #[test]
    fn a_start_with_changed_rules_under_the_version_in_force_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(
            &dir.path().join("data"),
            tier_store::Backend::Sled,
            tier_store::StoreOptions::default(),
        )
        .unwrap();
        let file = dir.path().join("policy.toml");
        let default = tier_core::policy::DEFAULT_POLICY_TOML;
        std::fs::write(&file, default).unwrap();
        let record = |a: &ActivePolicy| {
            store
                .commit(&tier_store::CommitBatch::<'_, CustomerState> {
                    meta: vec![
                        (pipeline::META_POLICY, a.text.as_bytes().to_vec()),
                        (
                            pipeline::META_POLICY_SOURCE,
                            a.source_hash.as_bytes().to_vec(),
                        ),
                    ],
                    ..tier_store::CommitBatch::new()
                })
                .unwrap();
        };
        let (first, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(from_file);
        record(&first);
        let (again, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(!from_file, "unchanged: the policy in force stays");
        assert_eq!(again.text, first.text);

        let edited = default.replace("min_days_in_tier = 30", "min_days_in_tier = 7");
        assert_ne!(edited, default);
        std::fs::write(&file, &edited).unwrap();
        let err = format!("{:#}", starting_policy(&store, Some(&file)).unwrap_err());
        assert!(err.contains("policy.toml: field `version`"), "{err}");
        assert!(
            err.contains("give the changed policy a new version"),
            "{err}"
        );

        let renamed = edited.replacen(
            &format!("version = \"{}\"", first.policy.version()),
            "version = \"default-2\"",
            1,
        );
        // Another window or zone: with no customer folded yet, nothing to
        // fold again; once one is, the stored figures cannot follow.
        let longer = renamed.replace("window_months = 12", "window_months = 24");
        std::fs::write(&file, &longer).unwrap();
        assert!(starting_policy(&store, Some(&file)).is_ok());
        let c = customer("c01", 1, 1_000_000, &first.policy);
        store
            .commit(&tier_store::CommitBatch {
                customers: vec![(tier_store::Scope::UNSCOPED, "c01", &c)],
                ..tier_store::CommitBatch::new()
            })
            .unwrap();
        for (from, to, field) in [
            ("window_months = 12", "window_months = 24", "window_months"),
            (
                "time_zone = \"Asia/Shanghai\"",
                "time_zone = \"Europe/Berlin\"",
                "time_zone",
            ),
        ] {
            assert!(renamed.contains(from), "{from}");
            std::fs::write(&file, renamed.replace(from, to)).unwrap();
            let err = format!("{:#}", starting_policy(&store, Some(&file)).unwrap_err());
            assert!(
                err.contains(&format!("policy.toml: field `{field}`")),
                "{err}"
            );
            assert!(err.contains("rebuild the data dir from Kafka"), "{err}");
        }
        std::fs::write(&file, &renamed).unwrap();
        let (next, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(from_file);
        assert_eq!(next.policy.version(), "default-2");
    }

    /// A version in force before names its text for the data dir's life:
    /// a start with a file that edits it under that version is refused,
    /// also in a data dir recorded before the versions were (read from
    /// the policy the one in force replaced).
    #[test]
    fn a_start_with_a_version_in_force_before_edited_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(
            &dir.path().join("data"),
            tier_store::Backend::Sled,
            tier_store::StoreOptions::default(),
        )
        .unwrap();
        let file = dir.path().join("policy.toml");
        let a = tier_core::policy::DEFAULT_POLICY_TOML;
        std::fs::write(&file, a).unwrap();
        let record = |meta: Vec<(&'static str, Vec<u8>)>| {
            store
                .commit(&tier_store::CommitBatch::<'_, CustomerState> {
                    meta,
                    ..tier_store::CommitBatch::new()
                })
                .unwrap();
        };
        let (first, _) = starting_policy(&store, Some(&file)).unwrap();
        record(pipeline::policy_records(&first));
        // B v2 applied over gRPC (recorded against the unchanged file).
        let b = tier_core::sim::scenario::stricter_bands(a, "v2", 5.0);
        let applied = ActivePolicy::new(
            Policy::from_toml_str(&b).unwrap(),
            b.clone(),
            first.source_hash.clone(),
        )
        .replacing(&first);
        record(pipeline::policy_records(&applied));
        let edited = a.replace("min_days_in_tier = 30", "min_days_in_tier = 7");
        assert_ne!(edited, a);
        std::fs::write(&file, &edited).unwrap();
        let err = format!("{:#}", starting_policy(&store, Some(&file)).unwrap_err());
        assert!(err.contains("policy.toml: field `version`"), "{err}");
        assert!(err.contains("was in force before"), "{err}");
        // A data dir without the record of versions reads v1's from the
        // policy v2 replaced.
        record(vec![(pipeline::META_POLICY_VERSIONS, Vec::new())]);
        let err = format!("{:#}", starting_policy(&store, Some(&file)).unwrap_err());
        assert!(err.contains("was in force before"), "{err}");
        // The file as it was recorded: B, applied since, stays in force,
        // knowing both versions.
        std::fs::write(&file, a).unwrap();
        let (kept, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(!from_file);
        assert_eq!(kept.text, b);
        assert_eq!(kept.versions.hash_of("v2"), Some(applied.hash.as_str()));
        assert_eq!(
            kept.versions.hash_of(first.policy.version()),
            Some(first.hash.as_str())
        );
        // A v3 file then is a change from B, its record knowing all three.
        let c = tier_core::sim::scenario::stricter_bands(a, "v3", 1.0);
        std::fs::write(&file, &c).unwrap();
        let (next, from_file) = starting_policy(&store, Some(&file)).unwrap();
        assert!(from_file);
        assert_eq!(next.versions.len(), 3);
        assert_eq!(next.replaced.as_deref(), Some(b.as_str()));
    }

    /// The built-in default is recorded in every data dir that runs on
    /// it: a release that changes its text must give it a new version, or
    /// every such tierd would refuse to start (as it must for an edited
    /// file). Changing `deploy/policy/default.toml`? Bump its `version`,
    /// then this hash.
    #[test]
    fn the_built_in_default_changes_only_with_its_version() {
        let text = tier_core::policy::DEFAULT_POLICY_TOML;
        assert_eq!(
            (
                Policy::default_policy().version(),
                tier_engine::command::sha256_hex(text).as_str()
            ),
            (
                "default-2027.01",
                "5c6971df68a49f58288702317af8348659314ce634cc88ba2fa655e959501a82"
            ),
        );
    }

    /// A handle on `policy` (no text, no hash: the tests read neither).
    fn policy_handle(policy: &Policy) -> Arc<PolicyHandle> {
        Arc::new(PolicyHandle::new(Arc::new(ActivePolicy::new(
            policy.clone(),
            String::new(),
            String::new(),
        ))))
    }

    fn tier(state: &CustomerState) -> String {
        state.tier().expect("decided").to_owned()
    }

    /// A published `TierChanged` carries the customer's classes in the
    /// population gradings: where its committed figures fall among the
    /// population's cut points (ten customers, the largest in ABC's top
    /// 20%, the smallest flagged low; RFM as three scores: all ordered at
    /// the same instants, as often, so recency and frequency tie and the
    /// tie goes by id, c01 first), and nothing for a customer the read
    /// side does not hold.
    #[test]
    fn tier_changes_carry_the_population_classes_of_the_committed_figures() {
        let policy = Policy::default_policy();
        let states = customers(10, 3, &policy);
        let read = Arc::new(ReadModel::new());
        let refs: Vec<(&str, &CustomerState)> =
            states.iter().map(|(id, s)| (id.as_str(), s)).collect();
        read.publish(&refs, &policy);
        let enrich = population_gradings(Arc::clone(&read), policy_handle(&policy));
        let classes = |id: &str| {
            let mut msg = tier_proto::api::TierChanged {
                customer_id: id.into(),
                ..Default::default()
            };
            (enrich.0)(&mut msg);
            msg.gradings
                .into_iter()
                .map(|g| (g.grading, g.class))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            classes("c10"),
            [
                ("abc_revenue".into(), "A".into()),
                ("rfm".into(), "115".into())
            ]
        );
        assert_eq!(
            classes("c01"),
            [
                ("abc_revenue".into(), "C (low value)".into()),
                ("rfm".into(), "551".into())
            ]
        );
        assert_eq!(classes("c05")[0], ("abc_revenue".into(), "C".into()));
        assert!(classes("nobody").is_empty());
    }

    /// The start-up fill publishes every loaded customer in chunks and
    /// builds no population grading per chunk; once it is over
    /// (`filled`, before tierd reports ready) the ABC and RFM rankings
    /// are built over all of them, so no answer or TierChanged builds
    /// them behind the population's lock.
    #[test]
    fn the_start_up_fill_builds_the_population_gradings_once_it_is_over() {
        let policy = Policy::default_policy();
        let states = customers(6, 2, &policy);
        let refs: Vec<(&str, &CustomerState)> =
            states.iter().map(|(id, s)| (id.as_str(), s)).collect();
        let read = Arc::new(ReadModel::new());
        let observer = ReadModelObserver::new(Arc::clone(&read), policy_handle(&policy));
        observer.committed(&refs[..3]);
        observer.committed(&refs[3..]);
        assert!(!read.gradings_ready(&policy));
        observer.filled();
        assert!(read.gradings_ready(&policy));
        assert_eq!(read.len(), 6);
    }

    /// `tierd_customers{tier=..}` by tier, from a Prometheus text.
    fn gauges(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("tierd_customers{tier=\"")?;
                let (tier, value) = rest.split_once("\"} ")?;
                Some((tier.to_owned(), value.trim().parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn the_customers_per_tier_gauge_follows_evictions_and_loads() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let policy = Policy::default_policy();
        let tiers: Vec<String> = policy.tiers().iter().map(|t| t.name.clone()).collect();
        let big = customer("big", 12, 100_000_000, &policy);
        let small = customer("small", 1, 10_000, &policy);
        assert_ne!(tier(&big), tier(&small), "the test needs two tiers");
        let observer = ReadModelObserver::new(Arc::new(ReadModel::new()), policy_handle(&policy));
        let expect = |held: &[&CustomerState]| -> BTreeMap<String, f64> {
            let mut want: BTreeMap<String, f64> = tiers.iter().map(|t| (t.clone(), 0.0)).collect();
            for s in held {
                *want.get_mut(&tier(s)).expect("a policy tier") += 1.0;
            }
            want
        };
        metrics::with_local_recorder(&recorder, || {
            // Loaded at start, or committed.
            observer.committed(&[("big", &big), ("small", &small)]);
            assert_eq!(gauges(&handle.render()), expect(&[&big, &small]));
            // "small"'s partition went to another instance: its tier is
            // left with no customer here, and says 0.
            observer.evicted(&["small".to_owned()]);
            assert_eq!(gauges(&handle.render()), expect(&[&big]));
            // The partition came back: loaded from the store again.
            observer.committed(&[("small", &small)]);
            assert_eq!(gauges(&handle.render()), expect(&[&big, &small]));
            // A customer committed again is counted once.
            observer.committed(&[("big", &big)]);
            assert_eq!(gauges(&handle.render()), expect(&[&big, &small]));
        });
    }
}

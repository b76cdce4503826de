//! `rescore`: a changed policy applied to every customer, as tierd does it.
//!
//! The population's engine gets an `ApplyPolicy` command (the default
//! policy with every band 5 points stricter, see
//! `tier_core::sim::scenario::stricter_bands`) and is then driven the way
//! the ingest loop drives it with no records coming in: per turn,
//! `between_batches` (commands, then a rescore slice sized as tierd's
//! pipeline sizes it: `tier_kafka::slices::Slices` with tierd's default
//! `engine_slice` and `engine_slice_ms`), `seal_batch_for`, and the
//! sealed unit goes to the real
//! [`Committer`] with the run's store (`--store-backend`, tierd's default
//! sled; `EveryCommit`) and a read-model
//! observer, exactly as tierd wires them. The clock stops when the
//! committer's published [`PolicyStatus`](tier_engine::PolicyStatus) says
//! the rescore is done (every rescored customer durable and in the read
//! model), which is when `GetPolicyStatus` would say so.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tier_api::ReadModel;
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_core::sim::scenario::stricter_bands;
use tier_core::state::CustomerState;
use tier_engine::command::sha256_hex;
use tier_engine::committer::ReadUpdate;
use tier_engine::{
    ActivePolicy, Batch, Command, CommitHooks, CommitObserver, Committer, CommitterDeps,
    DeadLetter, DeadLetterSink, Durable, PolicyHandle, SealInfo, SinkError,
};
use tier_kafka::slices::Slices;
use tier_store::AnyStore;

use super::population::Population;
use crate::config::BenchConfig;
use crate::cpu::{self, Threads};
use crate::report::{Figure, Goal, Report};

/// Every customer's effective tier after the rescore.
pub(crate) type Tiers = HashMap<String, String>;

/// The changed policy: the default one, every band 5 points stricter.
pub(crate) fn changed_policy_text() -> String {
    stricter_bands(DEFAULT_POLICY_TOML, "bench-stricter-bands", 5.0)
}

struct NoDeadLetters;

impl DeadLetterSink for NoDeadLetters {
    fn deliver(&mut self, _dead: &mut [DeadLetter]) -> Result<(), SinkError> {
        Ok(())
    }
}

struct Hooks;

impl CommitHooks for Hooks {
    fn durable(&mut self, _unit: &Durable<'_>) {}
    fn trouble(&mut self, _since: Instant, reason: &'static str) {
        eprintln!("  rescore: a commit failed ({reason}); the committer retries");
    }
    fn progress(&mut self) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// tierd's observer: committed states into the API's read model.
struct ReadModelObserver {
    read: Arc<ReadModel>,
    policy: Arc<PolicyHandle>,
    /// Time spent publishing, in nanoseconds.
    nanos: Arc<AtomicU64>,
}

impl CommitObserver for ReadModelObserver {
    fn committed(&self, customers: &[(&str, &CustomerState)]) {
        let started = Instant::now();
        self.read.publish(customers, &self.policy.policy());
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// As tierd: views built as the unit is sealed (counted in the
    /// engine's time), inserted once it is durable (counted here).
    fn prepare(&self, customers: &[(&str, &CustomerState)], policy: &Arc<Policy>) -> ReadUpdate {
        let prepared = ReadModel::prepare(customers, policy);
        let read = Arc::clone(&self.read);
        let nanos = Arc::clone(&self.nanos);
        ReadUpdate::Prepared(Box::new(move || {
            let started = Instant::now();
            read.publish_prepared(prepared);
            nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }))
    }
}

pub(crate) fn run(
    cfg: &BenchConfig,
    pop: &mut Population,
    store: Option<Arc<AnyStore>>,
    report: &mut Report,
) -> Result<Tiers> {
    let (store, store_note) = match store {
        Some(s) => (s, "into the store the state scenario filled"),
        None => {
            let dir = cfg.scratch("rescore")?.join("data");
            let backend = cfg.store_backend;
            let s = AnyStore::open(backend, &dir, cfg.store_options())
                .with_context(|| format!("opening a {backend} store in {}", dir.display()))?;
            (
                Arc::new(s),
                "into a fresh store (run `state` too to rescore into a full one)",
            )
        }
    };
    let old = Arc::new(ActivePolicy::new(
        Policy::default_policy(),
        DEFAULT_POLICY_TOML.to_owned(),
        sha256_hex(DEFAULT_POLICY_TOML),
    ));
    let text = changed_policy_text();
    let new_policy = Policy::from_toml_str(&text).context("the changed policy")?;
    let new = Arc::new(ActivePolicy::new(
        new_policy,
        text.clone(),
        sha256_hex(&text),
    ));
    let handle = Arc::new(PolicyHandle::new(old));

    // The read model holds every customer, as tierd fills it at start.
    let read = Arc::new(ReadModel::new());
    let fill = Instant::now();
    {
        let mut all = pop.engine.customers().peekable();
        while all.peek().is_some() {
            let chunk: Vec<(&str, Cow<'_, CustomerState>)> = all.by_ref().take(20_000).collect();
            let views: Vec<(&str, &CustomerState)> =
                chunk.iter().map(|(id, s)| (*id, s.as_ref())).collect();
            read.publish(&views, &handle.policy());
        }
        read.prepare_gradings(&handle.policy());
    }
    eprintln!(
        "  read model filled with {} customers in {:.1}s",
        read.len(),
        fill.elapsed().as_secs_f64()
    );

    let observer = Arc::new(ReadModelObserver {
        read: read.clone(),
        policy: handle.clone(),
        nanos: Arc::new(AtomicU64::new(0)),
    });
    let mut committer = Committer::spawn(CommitterDeps {
        store,
        sink: Box::new(NoDeadLetters),
        observer: observer.clone(),
        policy: handle.clone(),
        hooks: Box::new(Hooks),
    })
    .context("starting the committer")?;
    let (commands, inbox) = tier_engine::command::channel(16);

    let total = pop.engine.len() as u64;
    let threads_before = Threads::now();
    let started = Instant::now();
    commands
        .send(Command::ApplyPolicy {
            policy: new,
            reply: Box::new(|_| {}),
        })
        .context("sending ApplyPolicy")?;
    let mut engine_time = Duration::ZERO;
    let mut submit_time = Duration::ZERO;
    let mut units = 0u64;
    // Customers the rescore rewrote, and those it confirmed (not written).
    let (mut written, mut confirmed) = (0u64, 0u64);
    let defaults = tierd::Config::default();
    let mut slices = Slices::new(
        defaults.engine_slice,
        Duration::from_millis(defaults.engine_slice_ms),
    );
    let (mut smallest, mut largest) = (usize::MAX, 0);
    loop {
        let turn = Instant::now();
        let mut batch = Batch::new();
        let slice = slices.size();
        (smallest, largest) = (smallest.min(slice), largest.max(slice));
        pop.engine
            .between_batches(&mut batch, &inbox, pop.end, true, None, slice);
        let rescored = batch.unit.rescored;
        written += batch.unit.touched().len() as u64;
        confirmed += batch.unit.confirmed.len() as u64;
        let unit =
            pop.engine
                .seal_batch_for(batch, Vec::new(), SealInfo::default(), observer.as_ref());
        engine_time += turn.elapsed();
        let submit = Instant::now();
        committer
            .submit(unit)
            .context("the committer stopped during the rescore")?;
        submit_time += submit.elapsed();
        slices.observe(rescored, turn.elapsed());
        units += 1;
        if !pop.engine.rescoring() {
            break;
        }
    }
    let engine_done = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = handle.status();
        if s.version == "bench-stricter-bands" && !s.rescoring && s.rescored == s.total {
            break;
        }
        if Instant::now() > deadline {
            bail!("the rescore was not durable after 10 minutes: {s:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    // Where the cores went: the engine's thread (this one), the
    // committer's two, and the store's own (sled's IO pool frees the
    // nodes the commits replace and page out).
    let cpu_note = cpu::window_note(threads_before.as_ref(), Threads::now().as_ref(), elapsed);
    let commit_report = committer.finish().context("stopping the committer")?;
    let status = handle.status();
    let publish_secs = observer.nanos.load(Ordering::Relaxed) as f64 / 1e9;
    eprintln!(
        "  rescored {} customers ({} changed tier, {written} rewritten, {confirmed} confirmed) in {secs:.2}s: engine {:.2}s, waiting on the committer {:.2}s, read model {publish_secs:.2}s, {units} units",
        status.rescored,
        status.changed,
        engine_time.as_secs_f64(),
        submit_time.as_secs_f64(),
    );
    if status.rescored != total {
        report.fail(
            "rescore",
            format!("{} of {total} customers rescored", status.rescored),
        );
    }
    let label = if total >= 1_000_000 {
        format!(
            "policy rescore of {}M customers, durable",
            total as f64 / 1e6
        )
    } else {
        format!("policy rescore of {total} customers, durable")
    };
    report.add(
        Figure::new("rescore_1m_seconds", label, secs, " s")
            .goal(Goal::AtMost(2.0))
            .note(format!(
                "ApplyPolicy (default policy, bands +5) through between_batches/seal_batch in \
                 slices of {smallest}-{largest} customers (sized as tierd's pipeline does, \
                 {} ms a turn), committed by tierd's Committer {store_note} (EveryCommit) with \
                 a read-model observer, until PolicyStatus is done; {} of {total} customers \
                 changed tier, {written} were rewritten and {confirmed} confirmed without a \
                 write; engine (rescore + seal) {:.2}s, blocked on the committer {:.2}s, \
                 read-model publish (on the committer's publish thread) {publish_secs:.2}s; \
                 last unit submitted at {:.2}s; \
                 {} store batches; {cpu_note}",
                defaults.engine_slice_ms,
                status.changed,
                engine_time.as_secs_f64(),
                submit_time.as_secs_f64(),
                engine_done.as_secs_f64(),
                commit_report.batches,
            )),
    );
    Ok(pop
        .engine
        .customers()
        .filter_map(|(id, s)| Some((id.to_owned(), s.tier()?.to_owned())))
        .collect())
}

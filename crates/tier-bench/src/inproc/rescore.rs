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
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use tier_api::ReadModel;
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_core::sim::scenario::stricter_bands;
use tier_core::state::CustomerState;
use tier_engine::command::{CommandSender, sha256_hex};
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

/// How many points stricter the changed policy's bands are.
const STRICTER_BY: f64 = 5.0;

/// The changed policy's version.
const CHANGED_VERSION: &str = "bench-stricter-bands";

/// The changed policy: the default one, every band 5 points stricter.
pub(crate) fn changed_policy_text() -> String {
    stricter_bands(DEFAULT_POLICY_TOML, CHANGED_VERSION, STRICTER_BY)
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
    let hash = sha256_hex(&text);
    let new = Arc::new(ActivePolicy::new(new_policy, text, hash));
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
        confirmed_buffers: pop.engine.confirmed_buffers(),
    })
    .context("starting the committer")?;
    let (commands, inbox) = tier_engine::command::channel(16);
    let mut rig = Rig {
        committer: &mut committer,
        commands: &commands,
        inbox: &inbox,
        handle: handle.as_ref(),
        observer: observer.as_ref(),
    };

    let total = pop.engine.len() as u64;
    let threads_before = Threads::now();
    let first = rig.rescore(pop, new)?;
    // Where the cores went: the engine's thread (this one), the
    // committer's two, and the store's own (sled's IO pool frees the
    // nodes the commits replace and page out).
    let cpu_note = cpu::window_note(
        threads_before.as_ref(),
        Threads::now().as_ref(),
        first.elapsed,
    );
    eprintln!("  {}", first.line());
    if first.rescored != total {
        report.fail(
            "rescore",
            format!("{} of {total} customers rescored", first.rescored),
        );
    }
    // The tiers DuckDB is compared with: the changed policy's, so taken
    // before any repeat applies another.
    let read_under = handle.status().version;
    ensure!(
        read_under == CHANGED_VERSION,
        "the tiers for DuckDB are read under {read_under:?}"
    );
    let tiers: Tiers = pop
        .engine
        .customers()
        .filter_map(|(id, s)| Some((id.to_owned(), s.tier()?.to_owned())))
        .collect();
    // A repeat that fails is a failure of the run, not of the figure
    // measured before it.
    let mut repeat_secs = Vec::new();
    for policy in repeat_policies(cfg.rescore_repeats)? {
        match rig.rescore(pop, policy) {
            Ok(pass) => {
                eprintln!("  again: {}", pass.line());
                repeat_secs.push(pass.elapsed.as_secs_f64());
            }
            Err(e) => {
                report.fail(
                    "rescore",
                    format!("repeat {}: {e:#}", repeat_secs.len() + 1),
                );
                break;
            }
        }
    }
    let commit_report = committer.finish().context("stopping the committer")?;
    let label = if total >= 1_000_000 {
        format!(
            "policy rescore of {}M customers, durable",
            total as f64 / 1e6
        )
    } else {
        format!("policy rescore of {total} customers, durable")
    };
    let repeats_note = match median(&repeat_secs) {
        Some(m) => format!(
            "; {} more (the default bands and the stricter ones in turn, each under a \
             version of its own, at the same instant: the first moves customers back, the \
             later ones confirm every customer, see `--rescore-repeats`): {} s, median \
             {m:.3} s",
            match repeat_secs.len() {
                1 => "1 rescore".to_owned(),
                n => format!("{n} rescores"),
            },
            repeat_secs
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        None => String::new(),
    };
    report.add(
        Figure::new(
            "rescore_1m_seconds",
            label,
            first.elapsed.as_secs_f64(),
            " s",
        )
        .goal(Goal::AtMost(2.0))
        .note(format!(
            "ApplyPolicy (default policy, bands +{STRICTER_BY}) through between_batches/seal_batch in \
             slices of {}-{} customers (sized as tierd's pipeline does, \
             {} ms a turn), committed by tierd's Committer {store_note} (EveryCommit) with \
             a read-model observer, until PolicyStatus is done; {} of {total} customers \
             changed tier, {} were rewritten and {} confirmed without a \
             write; engine (rescore + seal) {:.2}s, blocked on the committer {:.2}s, \
             read-model publish (on the committer's publish thread) {:.2}s; \
             last unit submitted at {:.2}s; \
             {} store batches (the repeats' included); {cpu_note}{repeats_note}",
            first.smallest,
            first.largest,
            tierd::Config::default().engine_slice_ms,
            first.changed,
            first.written,
            first.confirmed,
            first.engine.as_secs_f64(),
            first.submit.as_secs_f64(),
            first.publish.as_secs_f64(),
            first.engine_done.as_secs_f64(),
            commit_report.batches,
        )),
    );
    Ok(tiers)
}

/// The policies `--rescore-repeats` applies after the measured one: the
/// default bands and the stricter ones in turn, each under a version of
/// its own, so every customer is rescored again (none holds a decision
/// under that version). All at the same instant, so fewer customers move
/// than in the measured rescore: the first repeat raises some back (a
/// rise applies at once), and the later ones move none (the default
/// policy's `min_days_in_tier` holds a tier just set). What the repeats
/// time is mostly the visit of every customer, confirmed, as 99.5% of
/// the measured rescore's customers are in the bench's population.
fn repeat_policies(n: usize) -> Result<Vec<Arc<ActivePolicy>>> {
    (1..=n)
        .map(|i| {
            // Bands 0 points stricter: the default's, under a new version.
            let shift = if i % 2 == 1 { 0.0 } else { STRICTER_BY };
            let text = stricter_bands(
                DEFAULT_POLICY_TOML,
                &format!("bench-rescore-again-{i}"),
                shift,
            );
            let policy =
                Policy::from_toml_str(&text).with_context(|| format!("repeat policy {i}"))?;
            let hash = sha256_hex(&text);
            Ok(Arc::new(ActivePolicy::new(policy, text, hash)))
        })
        .collect()
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => v.get(mid).copied(),
        _ => Some((v.get(mid - 1)? + v.get(mid)?) / 2.0),
    }
}

/// What drives a rescore as tierd's pipeline does: the engine's command
/// channel, the committer and the read model it publishes to.
struct Rig<'a> {
    committer: &'a mut Committer,
    commands: &'a CommandSender,
    inbox: &'a Receiver<Command>,
    handle: &'a PolicyHandle,
    observer: &'a ReadModelObserver,
}

/// One timed rescore.
struct Pass {
    /// Until the committer's status says it is done.
    elapsed: Duration,
    /// Until the last unit was submitted.
    engine_done: Duration,
    /// The engine's turns (rescore and seal).
    engine: Duration,
    /// Blocked handing units to the committer.
    submit: Duration,
    /// The read model's publish, on the committer's publish thread.
    publish: Duration,
    units: u64,
    rescored: u64,
    changed: u64,
    /// Customers rewritten.
    written: u64,
    /// Customers confirmed without a write.
    confirmed: u64,
    /// The smallest and largest slice.
    smallest: usize,
    largest: usize,
}

impl Pass {
    fn line(&self) -> String {
        format!(
            "rescored {} customers ({} changed tier, {} rewritten, {} confirmed) in {:.2}s: engine {:.2}s, waiting on the committer {:.2}s, read model {:.2}s, {} units",
            self.rescored,
            self.changed,
            self.written,
            self.confirmed,
            self.elapsed.as_secs_f64(),
            self.engine.as_secs_f64(),
            self.submit.as_secs_f64(),
            self.publish.as_secs_f64(),
            self.units,
        )
    }
}

impl Rig<'_> {
    /// Apply `policy` and drive its rescore until the committer says it
    /// is durable and in the read model.
    fn rescore(&mut self, pop: &mut Population, policy: Arc<ActivePolicy>) -> Result<Pass> {
        let version = policy.policy.version().to_owned();
        let published_before = self.observer.nanos.load(Ordering::Relaxed);
        let started = Instant::now();
        let (answer, answered) = std::sync::mpsc::channel();
        self.commands
            .send(Command::ApplyPolicy {
                policy,
                reply: Box::new(move |outcome| {
                    let _ = answer.send(outcome.map(|_| ()));
                }),
            })
            .context("sending ApplyPolicy")?;
        let mut engine = Duration::ZERO;
        let mut submit = Duration::ZERO;
        let mut units = 0u64;
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
                .between_batches(&mut batch, self.inbox, pop.end, true, None, slice);
            // A refusal is answered at once; the wait below would not end.
            if let Ok(Err(refused)) = answered.try_recv() {
                bail!("ApplyPolicy {version} was refused: {refused}");
            }
            let rescored = batch.unit.rescored;
            written += batch.unit.touched().len() as u64;
            confirmed += batch.unit.confirmed.len() as u64;
            let unit =
                pop.engine
                    .seal_batch_for(batch, Vec::new(), SealInfo::default(), self.observer);
            engine += turn.elapsed();
            let submitted = Instant::now();
            self.committer
                .submit(unit)
                .context("the committer stopped during the rescore")?;
            submit += submitted.elapsed();
            slices.observe(rescored, turn.elapsed());
            units += 1;
            if !pop.engine.rescoring() {
                break;
            }
        }
        let engine_done = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(600);
        let status = loop {
            let s = self.handle.status();
            if s.version == version && !s.rescoring && s.rescored == s.total {
                break s;
            }
            if Instant::now() > deadline {
                bail!("the rescore was not durable after 10 minutes: {s:?}");
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let elapsed = started.elapsed();
        let published = self.observer.nanos.load(Ordering::Relaxed) - published_before;
        Ok(Pass {
            elapsed,
            engine_done,
            engine,
            submit,
            publish: Duration::from_nanos(published),
            units,
            rescored: status.rescored,
            changed: status.changed,
            written,
            confirmed,
            smallest,
            largest,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bands(p: &Policy) -> Vec<Option<f64>> {
        p.tiers().iter().map(|t| t.min_score).collect()
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[2.5]), Some(2.5));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn repeats_alternate_the_default_and_the_stricter_bands_each_under_a_new_version() {
        let default = Policy::default_policy();
        let stricter = Policy::from_toml_str(&changed_policy_text()).unwrap();
        assert_ne!(bands(&default), bands(&stricter));
        let repeats = repeat_policies(4).unwrap();
        assert_eq!(repeats.len(), 4);
        let mut versions = vec![default.version(), stricter.version()];
        for (i, active) in repeats.iter().enumerate() {
            let expected = if i % 2 == 0 { &default } else { &stricter };
            assert_eq!(bands(&active.policy), bands(expected), "repeat {}", i + 1);
            versions.push(active.policy.version());
        }
        // Every customer holds a decision under another version, so each
        // repeat rescores them all.
        let distinct: std::collections::HashSet<_> = versions.iter().collect();
        assert_eq!(distinct.len(), versions.len(), "{versions:?}");
        assert!(repeat_policies(0).unwrap().is_empty());
    }
}

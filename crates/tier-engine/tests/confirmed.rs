//! A policy rescore writes only the customers whose decision it moves.
//! Everyone else is confirmed in memory and by one stored record, and
//! must then be indistinguishable from a rewrite: in memory, for the read
//! side, after a restart from the store, after a crash in the middle of
//! the rescore, and when a partition comes back to the instance.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use std::sync::Mutex;
use std::time::Instant;
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_core::sim::Workload;
use tier_core::sim::scenario::stricter_bands;
use tier_core::state::{Cause, CustomerState, TierChange};
use tier_core::time::date;
use tier_core::{Event, Timestamp};

use tier_engine::confirmed::Confirmed;
use tier_engine::{
    ActivePolicy, Batch, CommitHooks, CommitObserver, Committer, CommitterDeps, DeadLetter,
    DeadLetterSink, Durable, Engine, PolicyHandle, SealInfo, SinkError, Unit,
};
use tier_store::{MemStore, Scope};

/// Customers held decoded: almost everyone is cold, as at scale.
const HOT: usize = 8;

/// What the store keeps of a state (no caches; the reasons' baseline is
/// kept, so a state loaded from the store explains its next change as
/// the state in memory would).
fn stored(state: &CustomerState) -> CustomerState {
    postcard::from_bytes(&postcard::to_allocvec(state).unwrap()).unwrap()
}

/// `state` as a decode for deciding only gives it back.
fn deciding_only(state: &CustomerState) -> CustomerState {
    let bytes = postcard::to_allocvec(state).unwrap();
    tier_core::projection::deciding_only(|| postcard::from_bytes(&bytes).unwrap())
}

fn partition(id: &str) -> i32 {
    id.bytes().last().map_or(0, |b| i32::from(b % 3))
}

/// The store as the committer leaves it: each unit's customers, and the
/// confirmation record of the last unit that carried one.
#[derive(Clone, Default)]
struct Store {
    states: BTreeMap<String, (Scope, CustomerState)>,
    confirmed: Option<Confirmed>,
    /// Customer writes, all units together.
    writes: usize,
}

impl Store {
    /// Seal `unit` and commit it.
    fn commit(&mut self, engine: &mut Engine, unit: &Unit) {
        engine.seal(unit);
        for (scope, id, state) in engine.unit_customers(unit) {
            self.states.insert(id.to_owned(), (scope, stored(state)));
            self.writes += 1;
        }
        if let Some(c) = &unit.confirmations {
            self.confirmed = Some(c.clone());
        }
    }

    /// tierd starting on this store.
    fn restart(&self, policy: &Arc<Policy>, now: Timestamp) -> Engine {
        let states = self
            .states
            .iter()
            .map(|(id, (scope, s))| (*scope, id.clone(), s.clone()));
        let confirmed = self
            .confirmed
            .clone()
            .unwrap_or_else(|| Confirmed::none(policy.version()));
        Engine::with_confirmed(policy.clone(), states, now, HOT, confirmed)
    }
}

struct World {
    engine: Engine,
    store: Store,
    /// The store just before the stricter policy was applied.
    before_apply: Store,
    stricter: Arc<Policy>,
    /// The instant the stricter policy is applied.
    at: Timestamp,
    /// Every customer as a full rewrite leaves it: each state before the
    /// apply, re-evaluated under the stricter policy at `at`.
    expected: BTreeMap<String, CustomerState>,
    /// The changes that rewrite makes.
    expected_changes: Vec<TierChange>,
}

/// 150 customers' history folded and committed, then a stricter policy
/// applied (and committed) at the end of it.
fn world() -> World {
    let end = date(2026, 6, 30);
    let events: Vec<Event> = Workload::new(150, 2_500, end).generate();
    let mut engine = Engine::new(Arc::new(Policy::default_policy()), Vec::new(), end);
    engine.set_hot_limit(HOT);
    let mut store = Store::default();
    for chunk in events.chunks(200) {
        let mut unit = Unit::new();
        for e in chunk {
            engine.fold_from(&mut unit, e, None, partition(&e.customer_id));
        }
        store.commit(&mut engine, &unit);
    }
    let at = end.plus_days(1);
    let mut unit = Unit::new();
    while engine.sweep(&mut unit, at, 50) > 0 {}
    store.commit(&mut engine, &unit);

    let stricter = Arc::new(
        Policy::from_toml_str(&stricter_bands(DEFAULT_POLICY_TOML, "strict-2027.01", 8.0)).unwrap(),
    );
    let mut expected = BTreeMap::new();
    let mut expected_changes = Vec::new();
    for (id, state) in engine.customers() {
        let mut s = state.into_owned();
        expected_changes.extend(s.reevaluate(id, &stricter, at, Cause::Policy));
        expected.insert(id.to_owned(), stored(&s));
    }
    let before_apply = store.clone();
    engine.apply_policy(stricter.clone(), at);
    let mut unit = Unit::new();
    // As the command path does: the record is reset with the policy.
    unit.confirmations = Some(Confirmed {
        at: Some(at),
        ..Confirmed::none(stricter.version())
    });
    store.commit(&mut engine, &unit);
    World {
        engine,
        store,
        before_apply,
        stricter,
        at,
        expected,
        expected_changes,
    }
}

/// Rescore in slices of `slice`, committing each, at most `slices`
/// slices; returns every change and every customer shown confirmed.
fn rescore(
    engine: &mut Engine,
    store: &mut Store,
    slice: usize,
    slices: usize,
) -> (Vec<TierChange>, Vec<(String, CustomerState)>) {
    let mut changes = Vec::new();
    let mut shown = Vec::new();
    for _ in 0..slices {
        if !engine.rescoring() {
            break;
        }
        let mut unit = Unit::new();
        engine.rescore(&mut unit, slice);
        store.commit(engine, &unit);
        changes.extend(unit.changes.iter().cloned());
        shown.extend(
            unit.confirmed
                .iter()
                .map(|(id, state)| (id.to_string(), state.clone())),
        );
    }
    (changes, shown)
}

fn same_as_rewrite(engine: &Engine, expected: &BTreeMap<String, CustomerState>, what: &str) {
    assert_eq!(engine.len(), expected.len(), "{what}");
    for (id, want) in expected {
        let held = engine.customer(id).unwrap();
        assert_eq!(&stored(&held), want, "{what}: {id}");
    }
}

fn sorted(mut changes: Vec<TierChange>) -> Vec<TierChange> {
    changes.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    changes
}

#[test]
fn a_rescore_writes_only_whom_it_moves_and_everyone_reads_as_a_rewrite() {
    let World {
        mut engine,
        mut store,
        stricter,
        at,
        expected,
        expected_changes,
        ..
    } = world();
    let writes_before = store.writes;
    let stored_before = store.states.clone();
    let (changes, shown) = rescore(&mut engine, &mut store, 13, usize::MAX);
    assert_eq!(sorted(changes), sorted(expected_changes.clone()));
    assert!(!expected_changes.is_empty(), "the stricter bands move some");

    // Written: exactly the customers whose stored state moved.
    let rewrites = store.writes - writes_before;
    let moved = expected
        .iter()
        .filter(|(id, want)| {
            let mut before = stored_before[*id].1.clone();
            before.confirm(stricter.version(), at);
            stored(&before) != **want
        })
        .count();
    assert_eq!(rewrites, moved, "one write per customer whose state moved");
    assert!(
        moved < expected.len() / 2,
        "{moved} of {} rewritten",
        expected.len()
    );
    // Shown to the read side: every other customer, as the rewrite (one
    // held encoded as decoded for deciding only: without the applied
    // event ids, the orders by id and the invoices not open, which no
    // view reads).
    assert_eq!(shown.len() + moved, expected.len());
    let mut read_past = 0;
    for (id, state) in &shown {
        let shown = stored(state);
        if shown != expected[id] {
            assert_eq!(shown, deciding_only(&expected[id]), "shown {id}");
            read_past += 1;
        }
    }
    assert!(
        read_past > 0,
        "customers held encoded are decoded for deciding only"
    );

    same_as_rewrite(&engine, &expected, "in memory");
    let status = engine.status();
    assert_eq!((status.rescored, status.total), (150, 150));
    assert!(!status.rescoring);

    // The record covers every scope at the apply instant.
    let record = store.confirmed.clone().unwrap();
    assert_eq!(record.version, "strict-2027.01");
    let scopes: BTreeSet<Scope> = store.states.values().map(|(s, _)| *s).collect();
    assert_eq!(
        record.scopes.keys().copied().collect::<BTreeSet<_>>(),
        scopes
    );
    assert!(record.scopes.values().all(|t| *t == at));

    // A restart on the store holds the same, with nothing left to rescore.
    let later = at.plus_days(3);
    let restarted = store.restart(&stricter, later);
    assert!(!restarted.rescoring(), "{:?}", restarted.status());
    same_as_rewrite(&restarted, &expected, "after a restart");
    // And still tells when the policy in force was applied.
    assert_eq!(restarted.status().applied_at, Some(at));

    // Without the record, the customers not rewritten would be rescored
    // again: it is what saves that.
    let mut no_record = store.clone();
    no_record.confirmed = None;
    let again = no_record.restart(&stricter, later);
    assert_eq!(again.status().total as usize, expected.len() - moved);
}

#[test]
fn a_rescore_cut_short_by_a_crash_resumes_at_its_own_instant() {
    let World {
        mut engine,
        mut store,
        stricter,
        expected,
        expected_changes,
        at,
        ..
    } = world();
    let (before_crash, _) = rescore(&mut engine, &mut store, 13, 4);
    assert!(engine.rescoring(), "cut short");
    assert!(
        store.confirmed.as_ref().unwrap().scopes.is_empty(),
        "no scope covered before the rescore is through"
    );
    // tierd comes back two days later: every customer not rewritten is
    // rescored again, at the policy's instant, not the restart's.
    let mut restarted = store.restart(&stricter, at.plus_days(2));
    let status = restarted.status();
    assert!(status.rescoring);
    assert_eq!(status.applied_at, Some(at));
    let (after, _) = rescore(&mut restarted, &mut store, 13, usize::MAX);
    // Every change of the rewrite, once, reasons included: the states
    // loaded from the store compare their reasons with the figures they
    // had at their last change, as the states in memory would have.
    assert!(
        !after.is_empty(),
        "movers loaded from the store after the restart"
    );
    let mut all = before_crash;
    all.extend(after);
    assert_eq!(sorted(all), sorted(expected_changes));
    same_as_rewrite(&restarted, &expected, "resumed");
    let again = store.restart(&stricter, at.plus_days(3));
    assert!(!again.rescoring());
    same_as_rewrite(&again, &expected, "restarted after the resumed rescore");
}

/// Partition 1 goes to another instance, then comes back: its customers
/// are loaded from the store at `now`, as the adapter does.
fn partition_1_leaves_and_comes_back(engine: &mut Engine, store: &mut Store, now: Timestamp) {
    let mut unit = Unit::new();
    let gone = engine.assign(&mut unit, &BTreeSet::from([0, 2]));
    assert!(gone.evicted > 0);
    store.commit(engine, &unit);
    let mut unit = Unit::new();
    let back = engine.assign(&mut unit, &BTreeSet::from([0, 1, 2]));
    store.commit(engine, &unit);
    let scope = Scope::partition(1).unwrap();
    assert_eq!(back.to_load, vec![scope]);
    for (id, (s, state)) in &store.states {
        if *s == scope {
            assert!(engine.admit(id.clone(), state.clone(), scope, now));
        }
    }
}

#[test]
fn a_partition_that_comes_back_is_confirmed_as_it_loads() {
    let World {
        mut engine,
        mut store,
        expected,
        at,
        ..
    } = world();
    rescore(&mut engine, &mut store, 50, usize::MAX);
    // Partition 1 goes to another instance, then comes back.
    partition_1_leaves_and_comes_back(&mut engine, &mut store, at.plus_days(1));
    assert!(!engine.rescoring(), "{:?}", engine.status());
    same_as_rewrite(&engine, &expected, "after the partition came back");
}

#[test]
fn a_partition_that_leaves_and_comes_back_during_the_rescore_is_rescored_once_in_its_task() {
    let World {
        mut engine,
        mut store,
        expected,
        expected_changes,
        at,
        ..
    } = world();
    let (mut changes, _) = rescore(&mut engine, &mut store, 13, 3);
    assert!(engine.rescoring(), "under way");
    // Partition 1 goes to another instance with part of its customers
    // still queued, then comes back before the rescore is through: its
    // customers are queued again with their task as they load.
    let total_before = engine.status().total;
    partition_1_leaves_and_comes_back(&mut engine, &mut store, at.plus_days(1));
    assert!(
        engine.status().total > total_before,
        "the loaded customers not rewritten yet are queued again"
    );
    let (after, _) = rescore(&mut engine, &mut store, 13, usize::MAX);
    changes.extend(after);
    // Each change is made once, at the policy's instant, and explained
    // as the rewrite explains it.
    assert_eq!(sorted(changes), sorted(expected_changes));
    assert!(!engine.rescoring(), "{:?}", engine.status());
    same_as_rewrite(
        &engine,
        &expected,
        "after the partition came back mid-rescore",
    );
    for (id, (s, _)) in &store.states {
        assert_eq!(
            engine.scope_of(id),
            *s,
            "{id} held in the task it is stored under"
        );
    }
}

/// A policy's record does not outlive a start under another policy: v2
/// applied and confirming everyone (moving nobody), then a start with v1
/// (nothing to rescore: every customer's bytes say v1) replaces the
/// record, so a later start with v2 rescores every customer instead of
/// taking the decisions made under v1 meanwhile as v2's.
#[test]
fn a_start_under_another_policy_replaces_the_record_of_the_one_before() {
    let World {
        before_apply,
        stricter,
        at,
        expected,
        ..
    } = world();
    let default = Arc::new(Policy::default_policy());
    // As if the stricter policy had confirmed everyone and moved nobody.
    let mut store = before_apply;
    let stricter_record = Confirmed {
        version: stricter.version().to_owned(),
        at: Some(at),
        scopes: store.states.values().map(|(s, _)| (*s, at)).collect(),
    };
    store.confirmed = Some(stricter_record.clone());
    let later = at.plus_days(5);
    let mut back = store.restart(&default, later);
    assert!(!back.rescoring(), "{:?}", back.status());
    let record = back
        .take_unrecorded_confirmations()
        .expect("the start records the policy in force's record");
    assert_eq!(record, Confirmed::none(default.version()));
    // The pipeline commits it before anything else.
    store.confirmed = Some(record);
    let again = store.restart(&stricter, later.plus_days(5));
    assert!(again.rescoring());
    assert_eq!(again.status().total as usize, expected.len());
    // Without the replacement, the old record would confirm them all.
    let mut kept = store.clone();
    kept.confirmed = Some(stricter_record);
    assert!(!kept.restart(&stricter, later).rescoring());
}

#[test]
fn a_policy_changed_while_tierd_was_down_keeps_the_instant_of_the_first_start() {
    let World {
        before_apply: mut store,
        stricter,
        expected,
        expected_changes,
        at,
        ..
    } = world();
    // tierd starts with the stricter policy file at `at`: everyone is
    // rescored, and the start records the instant (the pipeline commits
    // this record before anything else).
    let mut engine = store.restart(&stricter, at);
    let record = engine.take_unrecorded_confirmations().unwrap();
    assert_eq!(
        (record.version.as_str(), record.at),
        ("strict-2027.01", Some(at))
    );
    assert!(record.scopes.is_empty());
    assert!(engine.take_unrecorded_confirmations().is_none(), "once");
    store.confirmed = Some(record);
    let (before_crash, _) = rescore(&mut engine, &mut store, 13, 4);
    assert!(engine.rescoring());
    // A crash, and a start two days later: the rescore resumes at `at`.
    let mut restarted = store.restart(&stricter, at.plus_days(2));
    assert!(restarted.take_unrecorded_confirmations().is_none());
    assert_eq!(restarted.status().applied_at, Some(at));
    let (after, _) = rescore(&mut restarted, &mut store, 13, usize::MAX);
    let mut all = before_crash;
    all.extend(after);
    // Loaded from the store, the reasons compare with empty figures (the
    // store does not keep their baseline); the decisions are the same.
    let without_reasons = |changes: Vec<TierChange>| -> Vec<TierChange> {
        sorted(changes)
            .into_iter()
            .map(|c| TierChange {
                reasons: Vec::new(),
                ..c
            })
            .collect()
    };
    assert_eq!(without_reasons(all), without_reasons(expected_changes));
    same_as_rewrite(&restarted, &expected, "resumed");
}

struct NoDeadLetters;

impl DeadLetterSink for NoDeadLetters {
    fn deliver(&mut self, _dead: &mut [DeadLetter]) -> Result<(), SinkError> {
        Ok(())
    }
}

struct NoHooks;

impl CommitHooks for NoHooks {
    fn durable(&mut self, _unit: &Durable<'_>) {}
    fn trouble(&mut self, _since: Instant, reason: &'static str) {
        panic!("a commit failed: {reason}");
    }
    fn progress(&mut self) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// The read side: the last state it was told of each customer.
#[derive(Default)]
struct Shown(Mutex<BTreeMap<String, CustomerState>>);

impl CommitObserver for Shown {
    fn committed(&self, customers: &[(&str, &CustomerState)]) {
        let mut shown = self.0.lock().unwrap();
        for (id, state) in customers {
            shown.insert((*id).to_owned(), stored(state));
        }
    }
}

#[test]
fn a_customer_confirmed_then_swept_in_one_unit_is_shown_as_swept() {
    let World {
        mut engine,
        stricter,
        at,
        ..
    } = world();
    let shown = Arc::new(Shown::default());
    let handle = Arc::new(PolicyHandle::new(Arc::new(ActivePolicy::new(
        (*stricter).clone(),
        String::new(),
        String::new(),
    ))));
    let mut committer = Committer::spawn(CommitterDeps {
        store: Arc::new(MemStore::new()),
        sink: Box::new(NoDeadLetters),
        observer: shown.clone(),
        policy: handle,
        hooks: Box::new(NoHooks),
        confirmed_buffers: engine.confirmed_buffers(),
    })
    .unwrap();
    let (_commands, inbox) = tier_engine::command::channel(1);
    // One turn of the loop 200 days on: the rescore (at the policy's
    // instant) confirms most customers, then the sweep moves many of them
    // on to today.
    let mut batch = Batch::new();
    engine.between_batches(
        &mut batch,
        &inbox,
        at.plus_days(200),
        true,
        Some(at.plus_days(200)),
        1_000,
    );
    let both: Vec<String> = batch
        .unit
        .confirmed
        .iter()
        .map(|(id, _)| id.to_string())
        .filter(|id| batch.unit.touched().iter().any(|t| t == id))
        .collect();
    assert!(!both.is_empty(), "some customers confirmed, then swept");
    let unit = engine.seal_batch_for(batch, Vec::new(), SealInfo::default(), shown.as_ref());
    committer.submit(unit).unwrap();
    committer.finish().unwrap();
    let shown = shown.0.lock().unwrap();
    assert_eq!(shown.len(), engine.len(), "everyone shown");
    for (id, state) in engine.customers() {
        assert_eq!(shown[id], stored(&state), "{id} as shown");
    }
}

#[test]
fn a_change_back_to_the_policy_before_shows_every_customer_under_it() {
    // Default (v1), then the stricter policy (v2), then the default again.
    // Customers held encoded whose decision stood under v2 were confirmed,
    // their bytes left holding v1's decision; under v1 again that decision
    // stands. The read side must be shown each of them under v1, from its
    // bytes: it was left with the view the first rescore showed (v2, as
    // of its instant) while v1 was in force, until a restart read the
    // bytes.
    let World {
        mut engine,
        mut store,
        at,
        ..
    } = world();
    let (_, first) = rescore(&mut engine, &mut store, 40, 100);
    assert!(!engine.rescoring());
    assert!(first.len() > 100, "most decisions stand");
    let back = Arc::new(Policy::default_policy());
    let later = at.plus_days(1);
    engine.apply_policy(back.clone(), later);
    let mut unit = Unit::new();
    unit.confirmations = Some(Confirmed {
        at: Some(later),
        ..Confirmed::none(back.version())
    });
    store.commit(&mut engine, &unit);
    let mut shown: BTreeMap<String, CustomerState> = BTreeMap::new();
    while engine.rescoring() {
        let mut unit = Unit::new();
        engine.rescore(&mut unit, 40);
        store.commit(&mut engine, &unit);
        for (id, state) in &unit.confirmed {
            shown.insert(id.to_string(), state.clone());
        }
        for (_, id, state) in engine.unit_customers(&unit) {
            shown.insert(id.to_owned(), state.clone());
        }
    }
    for (id, _) in &first {
        let s = shown
            .get(id)
            .unwrap_or_else(|| panic!("{id} not shown again"));
        assert_eq!(s.policy_version, back.version(), "{id}");
    }
    // As a restart reads them (the version; the instant of a customer
    // held decoded, confirmed again under v1, is the rescore's in memory
    // and its bytes' after a restart: see the closing note).
    let restarted = store.restart(&back, later);
    for (id, s) in &shown {
        let held = restarted.customer(id).unwrap();
        assert_eq!(held.policy_version, s.policy_version, "{id}");
        assert_eq!(held.tier(), s.tier(), "{id}");
    }
}

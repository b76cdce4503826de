//! The committer without a broker: records in a `Vec`, the in-memory
//! store, a dead-letter sink that can be made to fail, and hooks that
//! record what they were told. What must hold: a unit's effects (read
//! model, hooks, replies) happen only once it is in the store, in commit
//! order; a unit whose dead letters cannot be parked is not written at
//! all; a committer stopped while it cannot commit leaves the unit (and
//! every one behind it) out of the store entirely.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tier_core::overrides::OverrideMode;
use tier_core::policy::Policy;
use tier_core::sim::scenario::order;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_core::{InvalidEvent, RejectReason, Timestamp};
use tier_engine::command::Command;
use tier_engine::committer::ReadUpdate;
use tier_engine::{
    ActivePolicy, Batch, CommitHooks, CommitObserver, CommitUnit, Committer, CommitterDeps,
    ConfirmedBuffers, DeadLetter, DeadLetterSink, Durable, Engine, PolicyHandle, PolicyStatus,
    SealInfo, SetOverride, SinkError,
};
use tier_store::{MemStore, Scope, Store};

/// Fails the first `fail` deliveries, then acknowledges.
struct FlakySink {
    fail: Arc<AtomicUsize>,
    delivered: Arc<Mutex<Vec<i64>>>,
}

impl DeadLetterSink for FlakySink {
    fn deliver(&mut self, dead: &mut [DeadLetter]) -> Result<(), SinkError> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError {
                message: "the dead-letter topic refuses writes".into(),
                reason: "not_authorized",
            });
        }
        for d in dead.iter_mut().filter(|d| !d.delivered) {
            d.delivered = true;
            self.delivered.lock().unwrap().push(d.offset);
        }
        Ok(())
    }
}

/// Checks, each time it is told, that what it is told is in the store.
struct Reader {
    store: Arc<MemStore>,
    seen: Arc<Mutex<Vec<String>>>,
    evicted: Mutex<Vec<String>>,
    /// Customers prepared at a seal (`seal_batch_for`).
    prepared: Mutex<Vec<String>>,
    /// Customers told as copies of their states (`seal_batch`).
    copies: AtomicUsize,
    /// The version of the policy in force and the policy status readers
    /// saw as each view was published.
    statuses: Arc<Mutex<Vec<(String, PolicyStatus)>>>,
    /// The status a reader sees (set once the rig has it).
    handle: OnceLock<Arc<PolicyHandle>>,
}

impl Reader {
    fn note_status(
        handle: Option<&Arc<PolicyHandle>>,
        statuses: &Mutex<Vec<(String, PolicyStatus)>>,
    ) {
        if let Some(h) = handle {
            let in_force = h.active().policy.version().to_owned();
            statuses.lock().unwrap().push((in_force, h.status()));
        }
    }
}

impl CommitObserver for Reader {
    fn committed(&self, customers: &[(&str, &CustomerState)]) {
        self.copies.fetch_add(customers.len(), Ordering::SeqCst);
        for (id, state) in customers {
            let stored: CustomerState = self
                .store
                .get_customer(id)
                .unwrap()
                .expect("a reader saw a customer before it was stored");
            // The store may hold a later unit's state already (the read
            // model is updated while the next unit commits), never an
            // earlier one. A customer a policy rescore confirmed is not
            // written: the store holds the same decision on the same
            // events, made no later under the policy replaced.
            let confirmed = stored.sequence == state.sequence
                && stored.effective == state.effective
                && stored.assignment == state.assignment
                && stored.projection.last_event_at() == state.projection.last_event_at()
                && stored.decided_at <= state.decided_at
                && stored.policy_version != state.policy_version;
            assert!(
                durable_part(&stored) == durable_part(state)
                    || age(&stored) > age(state)
                    || confirmed,
                "a reader saw state the store does not have: stored {:?}, seen {:?}",
                durable_part(&stored),
                durable_part(state)
            );
            self.seen.lock().unwrap().push((*id).to_owned());
            Reader::note_status(self.handle.get(), &self.statuses);
        }
    }

    fn prepare(&self, customers: &[(&str, &CustomerState)], _policy: &Arc<Policy>) -> ReadUpdate {
        // What a view keeps of each state, as of the seal.
        let sealed: Vec<_> = customers
            .iter()
            .map(|(id, s)| ((*id).to_owned(), durable_part(s), age(s)))
            .collect();
        self.prepared
            .lock()
            .unwrap()
            .extend(sealed.iter().map(|(id, _, _)| id.clone()));
        let store = self.store.clone();
        let seen = self.seen.clone();
        let handle = self.handle.get().cloned();
        let statuses = self.statuses.clone();
        ReadUpdate::Prepared(Box::new(move || {
            for (id, part, sealed_age) in sealed {
                let stored: CustomerState = store
                    .get_customer(&id)
                    .unwrap()
                    .expect("a prepared view was published before its state was stored");
                assert!(
                    durable_part(&stored) == part || age(&stored) > sealed_age,
                    "a prepared view was published before its state was stored"
                );
                seen.lock().unwrap().push(id);
                Reader::note_status(handle.as_ref(), &statuses);
            }
        }))
    }

    fn evicted(&self, ids: &[String]) {
        for id in ids {
            assert!(
                self.store
                    .get_customer::<CustomerState>(id)
                    .unwrap()
                    .is_some(),
                "a customer left memory before its state was stored"
            );
        }
        self.evicted.lock().unwrap().extend(ids.iter().cloned());
    }
}

/// What a state's identity as stored is (derived caches are not stored).
fn durable_part(s: &CustomerState) -> impl PartialEq + std::fmt::Debug + Send + use<> {
    (
        s.sequence,
        s.decided_at,
        s.effective.clone(),
        s.projection.last_event_at(),
    )
}

/// How far a customer's state has come: a later state compares greater
/// (these tests' customers only ever place orders, so their order amount
/// grows with each event, also within one day).
fn age(s: &CustomerState) -> impl PartialOrd + Send + use<> {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    let rules = POLICY.get_or_init(Policy::default_policy).fold_rules();
    (
        s.sequence,
        s.decided_at,
        s.projection.last_event_at(),
        s.projection.order_amount(s.decided_at, rules),
    )
}

/// What one `durable` call said: offsets, outbox rows, swept-to mark.
type DurableCall = (BTreeMap<(String, i32), i64>, usize, Option<Timestamp>);

#[derive(Default)]
struct Told {
    durable: Vec<DurableCall>,
    troubles: Vec<&'static str>,
    progress: usize,
}

struct Hooks {
    store: Arc<MemStore>,
    told: Arc<Mutex<Told>>,
    cancelled: Arc<AtomicBool>,
}

impl CommitHooks for Hooks {
    fn durable(&mut self, unit: &Durable<'_>) {
        for ((topic, partition), next) in unit.offsets {
            // As for the reader: a later unit may be stored already.
            assert!(
                self.store.offset(topic, *partition).unwrap() >= Some(*next),
                "hooks heard of offsets before they were stored"
            );
        }
        self.told.lock().unwrap().durable.push((
            unit.offsets.clone(),
            unit.outbox_rows,
            unit.swept_to,
        ));
    }
    fn trouble(&mut self, _since: Instant, reason: &'static str) {
        self.told.lock().unwrap().troubles.push(reason);
    }
    fn progress(&mut self) {
        self.told.lock().unwrap().progress += 1;
    }
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

struct Rig {
    store: Arc<MemStore>,
    reader: Arc<Reader>,
    told: Arc<Mutex<Told>>,
    fail: Arc<AtomicUsize>,
    delivered: Arc<Mutex<Vec<i64>>>,
    cancelled: Arc<AtomicBool>,
    handle: Arc<PolicyHandle>,
    committer: Committer,
    engine: Engine,
}

fn rig(fail: usize) -> Rig {
    let store = Arc::new(MemStore::new());
    let reader = Arc::new(Reader {
        store: store.clone(),
        seen: Arc::new(Mutex::new(Vec::new())),
        evicted: Mutex::new(Vec::new()),
        prepared: Mutex::new(Vec::new()),
        copies: AtomicUsize::new(0),
        statuses: Arc::new(Mutex::new(Vec::new())),
        handle: OnceLock::new(),
    });
    let told = Arc::new(Mutex::new(Told::default()));
    let fail = Arc::new(AtomicUsize::new(fail));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let cancelled = Arc::new(AtomicBool::new(false));
    let active = Arc::new(ActivePolicy::new(
        Policy::default_policy(),
        "# the default policy\n".to_owned(),
        String::new(),
    ));
    let policy = active.policy.clone();
    let handle = Arc::new(PolicyHandle::new(active));
    let _ = reader.handle.set(handle.clone());
    let engine = Engine::new(policy, Vec::new(), date(2026, 1, 1));
    let committer = Committer::spawn(CommitterDeps {
        store: store.clone(),
        sink: Box::new(FlakySink {
            fail: fail.clone(),
            delivered: delivered.clone(),
        }),
        observer: reader.clone(),
        policy: handle.clone(),
        hooks: Box::new(Hooks {
            store: store.clone(),
            told: told.clone(),
            cancelled: cancelled.clone(),
        }),
        confirmed_buffers: engine.confirmed_buffers(),
    })
    .unwrap();
    Rig {
        store,
        reader,
        told,
        fail,
        delivered,
        cancelled,
        handle,
        committer,
        engine,
    }
}

const TOPIC: &str = "orders";

/// A batch of `orders` (customer, amount) at offsets from `first`, plus one
/// invalid record after them when `bad` is set.
fn batch(engine: &mut Engine, first: i64, orders: &[(&str, i64)], bad: bool) -> Batch {
    let at = date(2026, 1, 5);
    let key = (TOPIC.to_owned(), 0);
    let mut b = Batch::new();
    for (i, (customer, amount)) in orders.iter().enumerate() {
        let offset = first + i as i64;
        let event = order(customer, offset as usize, at, *amount);
        b.record(&key, offset, event.kind.type_name());
        engine.fold(&mut b.unit, &event);
    }
    if bad {
        let offset = first + orders.len() as i64;
        b.record(&key, offset, "invalid");
        b.dead_letter(DeadLetter {
            topic: TOPIC.into(),
            partition: 0,
            offset,
            key: None,
            payload: Some(b"{}".to_vec()),
            error: InvalidEvent::new(RejectReason::MissingField, "event_id", "no event_id"),
            delivered: false,
        });
    }
    b
}

fn seal(engine: &mut Engine, b: Batch) -> CommitUnit {
    engine.seal_batch(b, Vec::new(), SealInfo::default())
}

#[test]
fn effects_follow_the_store_in_commit_order() {
    let mut r = rig(0);
    let first = batch(
        &mut r.engine,
        0,
        &[("alice", 500_000), ("bob", 1_000)],
        false,
    );
    let u1 = seal(&mut r.engine, first);
    // The engine folds the next batch while the first one commits: the
    // second unit changes alice again.
    let second = batch(
        &mut r.engine,
        2,
        &[("alice", 700_000), ("carol", 9_000)],
        true,
    );
    let u2 = seal(&mut r.engine, second);
    r.committer.submit(u1).unwrap();
    r.committer.submit(u2).unwrap();
    let report = r.committer.finish().unwrap();

    assert_eq!(
        (
            report.records,
            report.rejected,
            report.batches,
            report.uncommitted
        ),
        (5, 1, 2, 0)
    );
    assert_eq!(
        *r.reader.seen.lock().unwrap(),
        ["alice", "bob", "alice", "carol"]
    );
    assert_eq!(r.reader.copies.load(Ordering::SeqCst), 4);
    assert!(r.reader.prepared.lock().unwrap().is_empty());
    let told = r.told.lock().unwrap();
    let offsets: Vec<i64> = told
        .durable
        .iter()
        .map(|(o, _, _)| o[&(TOPIC.to_owned(), 0)])
        .collect();
    assert_eq!(offsets, [2, 5], "hooks in commit order");
    assert_eq!(*r.delivered.lock().unwrap(), [4]);
    let alice: CustomerState = r.store.get_customer("alice").unwrap().unwrap();
    let held = r.engine.customer("alice").unwrap();
    assert_eq!(durable_part(&alice), durable_part(&held));
    assert!(
        r.store.outbox_len().unwrap() >= 3,
        "each new customer's first tier is published"
    );
}

#[test]
fn an_observer_publishes_what_it_prepared_at_the_seal_once_it_is_durable() {
    let mut r = rig(0);
    let first = batch(
        &mut r.engine,
        0,
        &[("hana", 90_000), ("ivan", 5_000)],
        false,
    );
    let u1 = r
        .engine
        .seal_batch_for(first, Vec::new(), SealInfo::default(), r.reader.as_ref());
    assert_eq!(*r.reader.prepared.lock().unwrap(), ["hana", "ivan"]);
    // hana changes again before the first unit is durable: the first
    // unit publishes her state as of its own seal.
    let second = batch(&mut r.engine, 2, &[("hana", 400_000)], false);
    let u2 = r
        .engine
        .seal_batch_for(second, Vec::new(), SealInfo::default(), r.reader.as_ref());
    assert!(
        r.reader.seen.lock().unwrap().is_empty(),
        "nothing is published at the seal"
    );
    r.committer.submit(u1).unwrap();
    r.committer.submit(u2).unwrap();
    let report = r.committer.finish().unwrap();
    assert_eq!((report.records, report.batches), (3, 2));
    assert_eq!(*r.reader.seen.lock().unwrap(), ["hana", "ivan", "hana"]);
    assert_eq!(
        r.reader.copies.load(Ordering::SeqCst),
        0,
        "no state was copied for the observer"
    );
    let hana: CustomerState = r.store.get_customer("hana").unwrap().unwrap();
    let held = r.engine.customer("hana").unwrap();
    assert_eq!(durable_part(&hana), durable_part(&held));
}

#[test]
fn a_unit_whose_dead_letters_cannot_be_parked_is_not_written_until_they_are() {
    let mut r = rig(3);
    let b = batch(&mut r.engine, 0, &[("dave", 50_000)], true);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    let report = r.committer.finish().unwrap();
    assert_eq!((report.batches, report.uncommitted), (1, 0));
    let told = r.told.lock().unwrap();
    assert_eq!(told.troubles, ["not_authorized"; 3]);
    assert_eq!(told.progress, 1);
    assert_eq!(
        *r.delivered.lock().unwrap(),
        [1],
        "parked once, after the failures"
    );
    assert_eq!(r.store.offset(TOPIC, 0).unwrap(), Some(2));
}

#[test]
fn the_committer_is_idle_only_once_every_submitted_unit_is_durable() {
    // The ingest loop seals its batch as soon as the committer is idle
    // (group commit): idle must never be reported while a unit is not
    // yet through the store.
    let mut r = rig(usize::MAX);
    assert!(r.committer.idle(), "nothing submitted");
    let b = batch(&mut r.engine, 0, &[("gina", 50_000)], true);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    // Its dead letter cannot be parked: the unit stays in hand.
    while r.told.lock().unwrap().troubles.len() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!r.committer.idle(), "a unit is being retried");
    assert_eq!(r.store.offset(TOPIC, 0).unwrap(), None);
    r.fail.store(0, Ordering::SeqCst);
    while !r.committer.idle() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        r.store.offset(TOPIC, 0).unwrap(),
        Some(2),
        "idle again only once the unit is durable"
    );
    r.committer.finish().unwrap();
}

#[test]
fn stopping_while_the_sink_fails_leaves_the_unit_and_those_behind_it_unwritten() {
    let mut r = rig(usize::MAX);
    let b1 = batch(&mut r.engine, 0, &[("erin", 50_000)], true);
    let u1 = seal(&mut r.engine, b1);
    let b2 = batch(&mut r.engine, 2, &[("frank", 50_000)], false);
    let u2 = seal(&mut r.engine, b2);
    r.committer.submit(u1).unwrap();
    r.cancelled.store(true, Ordering::SeqCst);
    r.committer.submit(u2).unwrap();
    let report = r.committer.finish().unwrap();
    assert_eq!(
        (report.records, report.batches, report.uncommitted),
        (0, 0, 3)
    );
    assert_eq!(r.store.customer_count().unwrap(), 0);
    assert_eq!(r.store.offset(TOPIC, 0).unwrap(), None);
    assert_eq!(r.store.outbox_len().unwrap(), 0);
    assert!(r.reader.seen.lock().unwrap().is_empty());
    assert!(r.told.lock().unwrap().durable.is_empty());
    assert!(r.fail.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_command_is_answered_only_after_its_unit_is_stored() {
    let mut r = rig(0);
    let (tx, rx) = sync_channel(4);
    let store = r.store.clone();
    let (answer_tx, answer_rx) = sync_channel(1);
    tx.send(Command::SetOverride {
        cmd: SetOverride {
            customer_id: "gina".into(),
            tier: "A".into(),
            mode: OverrideMode::Pin,
            reason: "key account".into(),
            author: "sales-lead".into(),
            expires_at: None,
        },
        reply: Box::new(move |outcome| {
            let stored: Option<CustomerState> = store.get_customer("gina").unwrap();
            answer_tx.send((outcome.is_ok(), stored.is_some())).unwrap();
        }),
    })
    .unwrap();
    let mut b = Batch::new();
    let now = date(2026, 1, 6);
    r.engine.between_batches(&mut b, &rx, now, true, None, 100);
    assert!(b.has_work());
    assert!(answer_rx.try_recv().is_err(), "answered before the commit");
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    r.committer.finish().unwrap();
    assert_eq!(answer_rx.recv().unwrap(), (true, true));
    assert_eq!(r.handle.status().version, r.engine.status().version);
}

/// Send the engine `ApplyPolicy` of the default policy with every band 5
/// points stricter (version `stricter`), replacing the one in force.
fn apply_stricter(r: &Rig, tx: &SyncSender<Command>) {
    let text = tier_core::sim::scenario::stricter_bands(
        tier_core::policy::DEFAULT_POLICY_TOML,
        "stricter",
        5.0,
    );
    let new = ActivePolicy::new(Policy::from_toml_str(&text).unwrap(), text, String::new())
        .replacing(&r.handle.active());
    tx.send(Command::ApplyPolicy {
        policy: Arc::new(new),
        reply: Box::new(|_| {}),
    })
    .unwrap();
}

/// A policy change is recorded with the text of the policy it replaced,
/// so a restart during its rescore explains the decisions not rescored yet
/// by the policy that made them.
#[test]
fn a_policy_change_records_the_policy_it_replaced() {
    let mut r = rig(0);
    let (tx, rx) = sync_channel(4);
    let old = r.handle.active();
    apply_stricter(&r, &tx);
    let mut b = Batch::new();
    r.engine
        .between_batches(&mut b, &rx, date(2026, 1, 6), true, None, 100);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    r.committer.finish().unwrap();
    let replaced = r
        .store
        .meta(tier_engine::committer::META_POLICY_REPLACED)
        .unwrap();
    assert_eq!(replaced.as_deref(), Some(old.text.as_bytes()));
}

/// `GetPolicyStatus` says a rescore is done only once every customer's
/// view shows it: the unit that finishes the rescore publishes its views
/// (moved and confirmed customers alike) before the status, so a client
/// that waits for "done" (`tierctl policy apply --wait`) and then reads
/// a customer sees the new policy's decision.
#[test]
fn a_rescore_is_reported_done_only_once_its_last_views_are_published() {
    let customers: Vec<(&str, i32, i64)> = ["ann", "ben", "cai", "dee", "eve", "fay", "gus"]
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, 0, 20_000 * (i as i64 + 1) * (i as i64 + 1)))
        .collect();
    let mut r = rig_with(&customers);
    let (tx, rx) = sync_channel(4);
    apply_stricter(&r, &tx);
    // Two customers a unit: the rescore takes several.
    let mut units = 0;
    loop {
        let mut b = Batch::new();
        r.engine
            .between_batches(&mut b, &rx, date(2026, 1, 6), true, None, 2);
        let u = seal(&mut r.engine, b);
        r.committer.submit(u).unwrap();
        units += 1;
        if !r.engine.rescoring() {
            break;
        }
    }
    r.committer.finish().unwrap();
    assert!(units >= 4, "{units} units");
    let done = |s: &PolicyStatus| s.version == "stricter" && !s.rescoring && s.rescored == s.total;
    let statuses = r.reader.statuses.lock().unwrap().clone();
    assert!(
        statuses
            .iter()
            .any(|(_, s)| s.version == "stricter" && s.rescoring && s.rescored > 0),
        "views published during the rescore: {statuses:?}"
    );
    assert!(
        !statuses.iter().any(|(_, s)| done(s)),
        "a reader saw the rescore done before its last views: {statuses:?}"
    );
    // Nor, once the new policy is in force, the status of the one it
    // replaced (`GetPolicy` and `GetPolicyStatus` name the same version).
    for (in_force, s) in &statuses {
        assert_eq!(in_force, &s.version, "{statuses:?}");
    }
    let status = r.handle.status();
    assert!(done(&status), "{status:?}");
    assert_eq!(status.total, customers.len() as u64);
    // The publish thread handed the units' emptied confirmed buffers back
    // to the engine (the last at least: nothing took it since).
    let kept = r.engine.confirmed_buffers().kept();
    assert!((1..=ConfirmedBuffers::KEPT).contains(&kept), "{kept} kept");
}

/// A rig whose engine folded and committed one order of each
/// `(customer, partition, amount)` (see [`scoped_batch`]).
fn rig_with(orders: &[(&str, i32, i64)]) -> Rig {
    let mut r = rig(0);
    let b = scoped_batch(&mut r.engine, 0, orders);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    r
}

/// Ann and ben, each with one small order: in the lowest tier under the
/// default policy and the stricter one alike.
const ANN_AND_BEN: &[(&str, i32, i64)] = &[("ann", 0, 20_000), ("ben", 0, 80_000)];

/// A customer an event touched earlier in a unit, under the policy a
/// command of the same unit then replaced, is shown as of the seal, not
/// also as the rescore confirmed it (the older state would be shown over
/// the newer; the seal looks for it, and a debug build checks that no
/// customer is left in both).
#[test]
fn a_customer_touched_before_a_policy_change_in_its_unit_is_not_also_confirmed() {
    let mut r = rig_with(ANN_AND_BEN);
    let (tx, rx) = sync_channel(4);
    // One unit: an order of ann's (under the default policy), then the
    // stricter policy and a slice of its rescore, which reaches ann too.
    let mut b = scoped_batch(&mut r.engine, 2, &[("ann", 0, 1_000)]);
    apply_stricter(&r, &tx);
    r.engine
        .between_batches(&mut b, &rx, date(2026, 1, 6), true, None, 10);
    assert_eq!(b.unit.rescored, 2, "both rescored in this unit");
    assert_eq!(b.unit.confirmed.len(), 2, "ann's decision stands too");
    let unit = seal(&mut r.engine, b).into_unit();
    assert!(unit.touched().iter().any(|id| id == "ann"));
    let confirmed: Vec<&str> = unit.confirmed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(confirmed, ["ben"], "ann is shown from the seal only");
}

/// A rescore slice fills a confirmed buffer the committer handed back
/// rather than a fresh one; no more than [`ConfirmedBuffers::KEPT`] are
/// kept, and none without room.
#[test]
fn a_rescore_slice_fills_a_buffer_handed_back() {
    let mut r = rig_with(ANN_AND_BEN);
    let buffers = r.engine.confirmed_buffers();
    buffers.give(Vec::new());
    assert_eq!(buffers.kept(), 0, "a buffer without room is not kept");
    for _ in 0..=ConfirmedBuffers::KEPT {
        buffers.give(Vec::with_capacity(64));
    }
    assert_eq!(buffers.kept(), ConfirmedBuffers::KEPT);
    let (tx, rx) = sync_channel(4);
    apply_stricter(&r, &tx);
    let mut b = Batch::new();
    r.engine
        .between_batches(&mut b, &rx, date(2026, 1, 6), true, None, 2);
    assert_eq!(b.unit.confirmed.len(), 2, "both decisions stand");
    assert!(b.unit.confirmed.capacity() >= 64);
    assert_eq!(buffers.kept(), ConfirmedBuffers::KEPT - 1, "one taken");
    r.committer.submit(seal(&mut r.engine, b)).unwrap();
    r.committer.finish().unwrap();
    assert_eq!(buffers.kept(), ConfirmedBuffers::KEPT, "handed back");
}

/// A batch of orders `(customer, partition, amount)` from offset `first`
/// on, each folded as a record of its partition.
fn scoped_batch(engine: &mut Engine, first: i64, orders: &[(&str, i32, i64)]) -> Batch {
    let at = date(2026, 1, 5);
    let mut b = Batch::new();
    for (i, (customer, partition, amount)) in orders.iter().enumerate() {
        let offset = first + i as i64;
        let event = order(customer, offset as usize, at, *amount);
        b.record(
            &(TOPIC.to_owned(), *partition),
            offset,
            event.kind.type_name(),
        );
        engine.fold_from(&mut b.unit, &event, None, *partition);
    }
    b
}

fn stored_scopes(store: &MemStore) -> Vec<(Scope, String)> {
    store
        .scan_scoped::<CustomerState>(None)
        .map(|item| {
            let (scope, id, _) = item.unwrap();
            (scope, id)
        })
        .collect()
}

fn p(n: i32) -> Scope {
    Scope::partition(n).unwrap()
}

/// A customer is stored under the partition its records arrive on; one
/// known first from a command is unscoped; when its records move to
/// another partition the old key goes in the same commit, so the store
/// never holds a customer twice.
#[test]
fn customers_are_stored_under_their_input_partition_and_move_with_it() {
    let mut r = rig(0);
    let b = scoped_batch(&mut r.engine, 0, &[("ann", 0, 500_000), ("ben", 1, 1_000)]);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    // An override for a customer tierd has not seen: no partition yet.
    let mut b = Batch::new();
    r.engine
        .set_override(
            &mut b.unit,
            SetOverride {
                customer_id: "cat".into(),
                tier: "A".into(),
                mode: OverrideMode::Pin,
                reason: "key account".into(),
                author: "lead".into(),
                expires_at: None,
            },
            date(2026, 1, 6),
        )
        .unwrap();
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    // ben's records now arrive on partition 2 (topics repartitioned); cat's
    // first record on partition 1; a duplicate of ann's order moves nothing.
    let b = scoped_batch(&mut r.engine, 2, &[("ben", 2, 2_000), ("cat", 1, 3_000)]);
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    let Rig {
        committer,
        store,
        engine,
        ..
    } = r;
    committer.finish().unwrap();
    assert_eq!(
        stored_scopes(&store),
        [
            (p(0), "ann".to_owned()),
            (p(1), "cat".to_owned()),
            (p(2), "ben".to_owned()),
        ]
    );
    assert_eq!(engine.scope_of("cat"), p(1));
    let ben: CustomerState = store.get_customer("ben").unwrap().unwrap();
    assert_eq!(ben.sequence, engine.customer("ben").unwrap().sequence);
}

/// A rebalance: customers of partitions assigned elsewhere leave memory
/// (and the read side, after the commit) but stay in the store; nothing
/// sweeps them here; when their partition comes back they are loaded
/// from the store as they were.
#[test]
fn an_assignment_drops_and_a_reassignment_reloads_a_partitions_customers() {
    let mut r = rig(0);
    let b = scoped_batch(
        &mut r.engine,
        0,
        &[("ann", 0, 500_000), ("ben", 1, 900_000), ("bo", 1, 1_000)],
    );
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    let before: Vec<CustomerState> = ["ben", "bo"]
        .iter()
        .map(|id| r.engine.customer(id).unwrap().into_owned())
        .collect();

    // The first assignment: partition 0 only.
    let mut b = Batch::new();
    let assigned = r.engine.assign(&mut b.unit, &[0].into());
    assert_eq!(assigned.evicted, 2);
    assert!(
        assigned.to_load.is_empty(),
        "everything was loaded at start"
    );
    assert!(r.engine.customer("ben").is_none() && r.engine.customer("ann").is_some());
    let due_before = r.engine.due_count(date(2030, 1, 1));
    assert_eq!(due_before, 1, "only ann is left to sweep");
    let durable = b.barrier();
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    durable.recv().unwrap();
    let mut evicted = r.reader.evicted.lock().unwrap().clone();
    evicted.sort();
    assert_eq!(evicted, ["ben", "bo"]);
    assert_eq!(stored_scopes(&r.store).len(), 3, "the store keeps them");

    // Partition 1 comes back.
    let mut b = Batch::new();
    let assigned = r.engine.assign(&mut b.unit, &[0, 1].into());
    assert_eq!(assigned.to_load, [p(1)]);
    assert_eq!(assigned.evicted, 0);
    for item in r.store.scan_scoped::<CustomerState>(Some(p(1))) {
        let (scope, id, state) = item.unwrap();
        assert!(r.engine.admit(id, state, scope, date(2026, 1, 6)));
    }
    for (id, was) in ["ben", "bo"].iter().zip(&before) {
        let now = r.engine.customer(id).unwrap();
        assert_eq!(durable_part(&now), durable_part(was), "{id} as it was");
        assert_eq!(r.engine.scope_of(id), p(1));
    }
    assert_eq!(r.engine.due_count(date(2030, 1, 1)), 3, "swept here again");
    // A customer already in memory is not admitted twice.
    let ann = r.engine.customer("ann").unwrap().into_owned();
    assert!(!r.engine.admit("ann".into(), ann, p(0), date(2026, 1, 6)));
}

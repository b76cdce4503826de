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
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tier_core::overrides::OverrideMode;
use tier_core::policy::Policy;
use tier_core::sim::scenario::order;
use tier_core::state::CustomerState;
use tier_core::time::date;
use tier_core::{InvalidEvent, RejectReason, Timestamp};
use tier_engine::command::Command;
use tier_engine::{
    ActivePolicy, Batch, CommitHooks, CommitObserver, CommitUnit, Committer, CommitterDeps,
    DeadLetter, DeadLetterSink, Durable, Engine, PolicyHandle, SealInfo, SetOverride, SinkError,
};
use tier_store::{MemStore, Store};

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
    seen: Mutex<Vec<String>>,
}

impl CommitObserver for Reader {
    fn committed(&self, customers: &[(&str, &CustomerState)]) {
        for (id, state) in customers {
            let stored: CustomerState = self
                .store
                .get_customer(id)
                .unwrap()
                .expect("a reader saw a customer before it was stored");
            assert_eq!(
                durable_part(&stored),
                durable_part(state),
                "a reader saw state the store does not have"
            );
            self.seen.lock().unwrap().push((*id).to_owned());
        }
    }
}

/// What a state's identity as stored is (derived caches are not stored).
fn durable_part(s: &CustomerState) -> impl PartialEq + std::fmt::Debug {
    (
        s.sequence,
        s.decided_at,
        s.effective.clone(),
        s.projection.last_event_at(),
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
            assert_eq!(
                self.store.offset(topic, *partition).unwrap(),
                Some(*next),
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
        seen: Mutex::new(Vec::new()),
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
        tier_counts: BTreeMap::new(),
    })
    .unwrap();
    let engine = Engine::new(policy, Vec::new(), date(2026, 1, 1));
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
    let told = r.told.lock().unwrap();
    let offsets: Vec<i64> = told
        .durable
        .iter()
        .map(|(o, _, _)| o[&(TOPIC.to_owned(), 0)])
        .collect();
    assert_eq!(offsets, [2, 5], "hooks in commit order");
    assert_eq!(*r.delivered.lock().unwrap(), [4]);
    let alice: CustomerState = r.store.get_customer("alice").unwrap().unwrap();
    assert_eq!(
        durable_part(&alice),
        durable_part(r.engine.customer("alice").unwrap())
    );
    assert!(
        r.store.outbox_len().unwrap() >= 3,
        "each new customer's first tier is published"
    );
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
    r.engine.between_batches(&mut b, &rx, now, false, 100);
    assert!(b.has_work());
    assert!(answer_rx.try_recv().is_err(), "answered before the commit");
    let u = seal(&mut r.engine, b);
    r.committer.submit(u).unwrap();
    r.committer.finish().unwrap();
    assert_eq!(answer_rx.recv().unwrap(), (true, true));
    assert_eq!(r.handle.status().version, r.engine.status().version);
}

//! Store scenarios, each written once and run against every backend
//! compiled in (`--features fjall,redb` or `--all-features` for all).

use crate::common::p0;
use tier_store::{CommitBatch, PreparedBatch, Store, StoreError};

use crate::common::{Account, Backend, MaybePoisoned, account, fine, poisoned, snapshot};

macro_rules! for_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod mem {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::mem());
            })*
        }
        mod sled_every_commit {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::sled(tier_store::FlushPolicy::EveryCommit));
            })*
        }
        mod sled_interval {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::sled(tier_store::FlushPolicy::IntervalMs(200)));
            })*
        }
        /// sled again, but through `AnyStore` as tierd opens it.
        mod any_sled {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::disk(
                    tier_store::Backend::Sled,
                    tier_store::FlushPolicy::EveryCommit,
                ));
            })*
        }
        #[cfg(feature = "fjall")]
        mod fjall_every_commit {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::disk(
                    tier_store::Backend::Fjall,
                    tier_store::FlushPolicy::EveryCommit,
                ));
            })*
        }
        #[cfg(feature = "fjall")]
        mod fjall_interval {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::disk(
                    tier_store::Backend::Fjall,
                    tier_store::FlushPolicy::IntervalMs(200),
                ));
            })*
        }
        #[cfg(feature = "redb")]
        mod redb_every_commit {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::disk(
                    tier_store::Backend::Redb,
                    tier_store::FlushPolicy::EveryCommit,
                ));
            })*
        }
        #[cfg(feature = "redb")]
        mod redb_interval {
            $(#[test]
            fn $scenario() {
                super::$scenario(&mut crate::common::disk(
                    tier_store::Backend::Redb,
                    tier_store::FlushPolicy::IntervalMs(200),
                ));
            })*
        }
    };
}

for_every_backend!(
    app_records_are_committed_atomically,
    commit_then_read_back,
    failed_commit_changes_nothing,
    offsets_round_trip,
    outbox_order_and_keys_monotonic_across_reopen,
    outbox_delete_is_idempotent,
    reopen_keeps_state,
    empty_commit_changes_nothing,
    later_duplicate_in_a_batch_wins,
    scan_visits_every_customer_in_id_order,
    reading_with_the_wrong_type_is_corruption,
    prepare_elsewhere_then_apply_and_sync,
);

fn commit_then_read_back(b: &mut impl Backend) {
    let store = b.store();
    let (a, z) = (account(10, "gold"), account(-3, "bronze"));
    let receipt = store
        .commit(&CommitBatch {
            customers: p0(vec![("zeta", &z), ("alpha", &a)]),
            moved: Vec::new(),
            offsets: vec![("orders", 1, 42), ("orders", 0, 7)],
            outbox: vec![b"first".to_vec(), b"second".to_vec()],
            meta: Vec::new(),
        })
        .unwrap();
    assert_eq!(receipt.outbox_keys, 0..2);

    assert_eq!(
        store.get_customer::<Account>("alpha").unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.get_customer::<Account>("zeta").unwrap(),
        Some(z.clone())
    );
    assert_eq!(store.get_customer::<Account>("nobody").unwrap(), None);
    assert_eq!(store.customer_count().unwrap(), 2);
    assert_eq!(
        store.offsets().unwrap(),
        vec![("orders".to_owned(), 0, 7), ("orders".to_owned(), 1, 42)]
    );
    assert_eq!(store.offset("orders", 1).unwrap(), Some(42));
    assert_eq!(
        store.outbox_pending(10).unwrap(),
        vec![(0, b"first".to_vec()), (1, b"second".to_vec())]
    );

    // An upsert replaces the state; offsets move on; outbox keys continue.
    let a2 = account(99, "platinum");
    let receipt = store
        .commit(&CommitBatch {
            customers: p0(vec![("alpha", &a2)]),
            moved: Vec::new(),
            offsets: vec![("orders", 1, 43)],
            outbox: vec![b"third".to_vec()],
            meta: Vec::new(),
        })
        .unwrap();
    assert_eq!(receipt.outbox_keys, 2..3);
    assert_eq!(store.get_customer::<Account>("alpha").unwrap(), Some(a2));
    assert_eq!(store.customer_count().unwrap(), 2);
    assert_eq!(store.offset("orders", 1).unwrap(), Some(43));
    assert_eq!(store.outbox_len().unwrap(), 3);
    let report = store.verify::<Account>().unwrap();
    assert_eq!(
        (report.customers, report.offsets, report.outbox_rows),
        (2, 2, 3)
    );
}

fn failed_commit_changes_nothing(b: &mut impl Backend) {
    let store = b.store();
    let before_state = fine(account(1, "silver"));
    store
        .commit(&CommitBatch {
            customers: p0(vec![("kept", &before_state)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 100)],
            outbox: vec![b"row".to_vec()],
            meta: Vec::new(),
        })
        .unwrap();
    let before = snapshot(store);

    // A state that fails to serialize in the middle of the batch.
    let (good, bad, good2) = (
        fine(account(2, "gold")),
        poisoned(),
        fine(account(3, "gold")),
    );
    let err = store
        .commit(&CommitBatch {
            customers: p0(vec![("kept", &good), ("broken", &bad), ("new", &good2)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 200), ("payments", 3, 5)],
            outbox: vec![b"never".to_vec(), b"published".to_vec()],
            meta: Vec::new(),
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Encode { id, .. } if id == "broken"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "could not encode the state of customer broken: Serde Serialization Error"
    );
    assert_eq!(snapshot(store), before);

    // An offset the layout cannot hold, after valid customers and offsets.
    let err = store
        .commit(&CommitBatch {
            customers: p0(vec![("new", &good2)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 300), ("bad\0topic", 0, 1)],
            outbox: vec![b"never".to_vec()],
            meta: Vec::new(),
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTopic { .. }), "{err:?}");
    let err = store
        .commit(&CommitBatch::<MaybePoisoned> {
            offsets: vec![("orders", -1, 1)],
            ..CommitBatch::new()
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NegativePartition { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(store), before);

    // Failed commits consume no outbox keys.
    let receipt = store
        .commit(&CommitBatch::<Account> {
            outbox: vec![b"next".to_vec()],
            ..CommitBatch::new()
        })
        .unwrap();
    assert_eq!(receipt.outbox_keys, 1..2);
}

fn offsets_round_trip(b: &mut impl Backend) {
    let store = b.store();
    assert_eq!(store.offsets().unwrap(), vec![]);
    assert_eq!(store.offset("orders", 0).unwrap(), None);

    store.set_offset("payments", 10, 5).unwrap();
    store.set_offset("payments", 2, 9).unwrap();
    store.set_offset("orders", 0, i64::MAX).unwrap();
    store.set_offset("orders.dlq", 0, 0).unwrap();
    store
        .commit(&CommitBatch::<Account> {
            offsets: vec![("complaints", 1, 11), ("payments", 2, 10)],
            ..CommitBatch::new()
        })
        .unwrap();
    assert_eq!(
        store.offsets().unwrap(),
        vec![
            ("complaints".to_owned(), 1, 11),
            ("orders".to_owned(), 0, i64::MAX),
            ("orders.dlq".to_owned(), 0, 0),
            ("payments".to_owned(), 2, 10),
            ("payments".to_owned(), 10, 5),
        ]
    );
    // A reset may move an offset backwards.
    store.set_offset("orders", 0, 3).unwrap();
    assert_eq!(store.offset("orders", 0).unwrap(), Some(3));
    assert_eq!(store.offset("orders", 1).unwrap(), None);

    assert!(matches!(
        store.set_offset("", 0, 1),
        Err(StoreError::InvalidTopic { .. })
    ));
    assert!(matches!(
        store.set_offset("t", 0, -5),
        Err(StoreError::NegativeOffset { .. })
    ));
    assert!(matches!(
        store.offset("t", -1),
        Err(StoreError::NegativePartition { .. })
    ));
    b.reopen();
    assert_eq!(b.store().offset("orders", 0).unwrap(), Some(3));
    assert_eq!(b.store().offsets().unwrap().len(), 5);
}

fn commit_rows(store: &impl Store, rows: &[&str]) -> std::ops::Range<u64> {
    let batch = CommitBatch::<Account> {
        outbox: rows.iter().map(|r| r.as_bytes().to_vec()).collect(),
        ..CommitBatch::new()
    };
    store.commit(&batch).unwrap().outbox_keys
}

fn outbox_order_and_keys_monotonic_across_reopen(b: &mut impl Backend) {
    assert_eq!(commit_rows(b.store(), &["a", "b", "c"]), 0..3);
    assert_eq!(commit_rows(b.store(), &["d"]), 3..4);
    assert_eq!(
        b.store().outbox_pending(2).unwrap(),
        vec![(0, b"a".to_vec()), (1, b"b".to_vec())]
    );
    assert_eq!(b.store().outbox_pending(0).unwrap(), vec![]);
    b.store().outbox_delete(&[0, 2]).unwrap();

    b.reopen();
    let keys: Vec<u64> = b
        .store()
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![1, 3]);
    assert_eq!(commit_rows(b.store(), &["e", "f"]), 4..6);
    assert_eq!(
        b.store().outbox_pending(10).unwrap(),
        vec![
            (1, b"b".to_vec()),
            (3, b"d".to_vec()),
            (4, b"e".to_vec()),
            (5, b"f".to_vec())
        ]
    );

    // Even with the outbox drained, keys are never reused after a restart.
    b.store().outbox_delete(&[1, 3, 4, 5]).unwrap();
    assert_eq!(b.store().outbox_len().unwrap(), 0);
    b.reopen();
    assert_eq!(commit_rows(b.store(), &["g"]), 6..7);
    // 256 rows: big-endian keys keep numeric order past one byte.
    let many: Vec<String> = (0..300).map(|i| format!("row {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(commit_rows(b.store(), &many), 7..307);
    let pending = b.store().outbox_pending(usize::MAX).unwrap();
    assert!(pending.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(pending.last().unwrap(), &(306, b"row 299".to_vec()));
}

fn outbox_delete_is_idempotent(b: &mut impl Backend) {
    let store = b.store();
    commit_rows(store, &["a", "b", "c"]);
    store.outbox_delete(&[1]).unwrap();
    let after_first = snapshot(store);
    store.outbox_delete(&[1]).unwrap();
    store.outbox_delete(&[1, 1, 77, u64::MAX]).unwrap();
    store.outbox_delete(&[]).unwrap();
    assert_eq!(snapshot(store), after_first);
    assert_eq!(store.outbox_len().unwrap(), 2);
}

fn reopen_keeps_state(b: &mut impl Backend) {
    let states: Vec<(String, Account)> = (0..50)
        .map(|i| {
            (
                format!("cust-{i:03}"),
                account(i, if i % 2 == 0 { "a" } else { "b" }),
            )
        })
        .collect();
    b.store()
        .commit(&CommitBatch {
            customers: p0(states.iter().map(|(id, s)| (id.as_str(), s))),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 50), ("orders", 1, 51)],
            outbox: vec![vec![1, 2, 3]],
            meta: Vec::new(),
        })
        .unwrap();
    let before = snapshot(b.store());
    b.reopen();
    assert_eq!(snapshot(b.store()), before);
    assert_eq!(before.customers, states);
    let report = b.store().verify::<Account>().unwrap();
    assert_eq!(
        (report.customers, report.offsets, report.outbox_rows),
        (50, 2, 1)
    );
}

fn empty_commit_changes_nothing(b: &mut impl Backend) {
    commit_rows(b.store(), &["a"]);
    let before = snapshot(b.store());
    let receipt = b.store().commit(&CommitBatch::<Account>::new()).unwrap();
    assert_eq!(receipt.outbox_keys, 1..1);
    assert_eq!(snapshot(b.store()), before);
}

fn later_duplicate_in_a_batch_wins(b: &mut impl Backend) {
    let (first, second) = (account(1, "first"), account(2, "second"));
    b.store()
        .commit(&CommitBatch {
            customers: p0(vec![("dup", &first), ("dup", &second)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 1), ("orders", 0, 2)],
            outbox: vec![],
            meta: Vec::new(),
        })
        .unwrap();
    assert_eq!(
        b.store().get_customer::<Account>("dup").unwrap(),
        Some(second)
    );
    assert_eq!(b.store().offset("orders", 0).unwrap(), Some(2));
    assert_eq!(b.store().customer_count().unwrap(), 1);
}

fn scan_visits_every_customer_in_id_order(b: &mut impl Backend) {
    // More than one MemStore scan chunk, ids whose byte order differs from
    // their numeric order, and non-ASCII ids.
    let mut states: Vec<(String, Account)> = (0..2_500)
        .map(|i| (format!("c{i}"), account(i, "t")))
        .collect();
    states.push(("kunde-ä".to_owned(), account(-1, "ü")));
    for chunk in states.chunks(700) {
        b.store()
            .commit(&CommitBatch {
                customers: p0(chunk.iter().map(|(id, s)| (id.as_str(), s))),
                moved: Vec::new(),
                ..CommitBatch::new()
            })
            .unwrap();
    }
    states.sort_by(|x, y| x.0.cmp(&y.0));
    let scanned: Vec<(String, Account)> = b
        .store()
        .scan_customers()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(scanned, states);
    assert_eq!(b.store().customer_count().unwrap(), 2_501);
}

fn reading_with_the_wrong_type_is_corruption(b: &mut impl Backend) {
    let store = b.store();
    store
        .commit(&CommitBatch {
            customers: p0(vec![("short", &7u8)]),
            moved: Vec::new(),
            ..CommitBatch::new()
        })
        .unwrap();
    let err = store.get_customer::<Account>("short").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { id, .. } if id == "short"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("stored value for customer short is corrupt: "),
        "{err}"
    );
    assert!(err.is_corruption());
    assert!(matches!(
        store.verify::<Account>(),
        Err(StoreError::Corrupt { .. })
    ));
    let first = store.scan_customers::<Account>().next().unwrap();
    assert!(first.is_err());
    assert_eq!(store.get_customer::<u8>("short").unwrap(), Some(7));
}

/// Application records change with the commit that carries them.
fn app_records_are_committed_atomically(b: &mut impl Backend) {
    let store = b.store();
    assert_eq!(store.meta("policy").unwrap(), None);
    store
        .commit(&CommitBatch::<'_, u32> {
            customers: Vec::new(),
            moved: Vec::new(),
            offsets: vec![("t", 0, 5)],
            outbox: Vec::new(),
            meta: vec![("policy", b"v2".to_vec())],
        })
        .unwrap();
    assert_eq!(store.meta("policy").unwrap(), Some(b"v2".to_vec()));
    // A bad name fails the whole batch: the offset is not written either.
    let err = store
        .commit(&CommitBatch::<'_, u32> {
            customers: Vec::new(),
            moved: Vec::new(),
            offsets: vec![("t", 0, 9)],
            outbox: Vec::new(),
            meta: vec![("no/slash", Vec::new())],
        })
        .unwrap_err();
    assert!(err.to_string().contains("no/slash"), "{err}");
    assert_eq!(store.offset("t", 0).unwrap(), Some(5));
}

/// The committer's split: encode on one thread (no IO: the store does not
/// change), apply and sync on another, in order; an encoding failure is
/// found by `prepare`, before anything is written.
fn prepare_elsewhere_then_apply_and_sync(b: &mut impl Backend) {
    let states: Vec<(String, Account)> = (0..3)
        .map(|i| (format!("c{i}"), account(i, "gold")))
        .collect();
    let before = snapshot(b.store());
    let prepared = std::thread::scope(|s| {
        s.spawn(|| {
            let batch = CommitBatch {
                customers: p0(states.iter().map(|(id, a)| (id.as_str(), a))),
                moved: Vec::new(),
                offsets: vec![("orders", 0, 3)],
                outbox: vec![b"one".to_vec(), b"two".to_vec()],
                meta: vec![("policy", b"v1".to_vec())],
            };
            PreparedBatch::prepare(&batch).unwrap()
        })
        .join()
        .unwrap()
    });
    assert_eq!((prepared.customers(), prepared.is_empty()), (3, false));
    assert_eq!(snapshot(b.store()), before, "prepare wrote something");

    let bad = poisoned();
    let err = PreparedBatch::prepare(&CommitBatch {
        customers: p0(vec![("broken", &bad)]),
        moved: Vec::new(),
        ..CommitBatch::new()
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::Encode { .. }), "{err:?}");

    let receipt = b.store().apply(prepared).unwrap();
    assert_eq!(receipt.outbox_keys, 0..2);
    b.store().sync().unwrap();
    let later = PreparedBatch::prepare(&CommitBatch::<Account> {
        outbox: vec![b"three".to_vec()],
        ..CommitBatch::new()
    })
    .unwrap();
    assert_eq!(b.store().commit_prepared(later).unwrap().outbox_keys, 2..3);
    b.reopen();
    let after = snapshot(b.store());
    assert_eq!(after.customers, states);
    assert_eq!(b.store().offset("orders", 0).unwrap(), Some(3));
    assert_eq!(b.store().meta("policy").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(b.store().outbox_len().unwrap(), 3);
}

//! What a store on disk can get wrong, for every backend compiled in and
//! through `AnyStore` as tierd opens it: a dir of another backend, foreign
//! or damaged data, schema versions, locks, quarantine, creation, and the
//! background sync of `FlushPolicy::IntervalMs`. (`sled_only` has the
//! cases that need sled's own file format.)

use crate::common::p0;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tier_store::{AnyStore, Backend, CommitBatch, FlushPolicy, Store, StoreError, StoreOptions};

use crate::common::{Account, account, copy_dir, raw_sled};

fn opts() -> StoreOptions {
    StoreOptions {
        flush: FlushPolicy::EveryCommit,
        cache_capacity_bytes: 16 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

/// A closed `backend` store in `<tmp>/data` holding two customers, an
/// offset and an outbox row.
fn populated(backend: Backend) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = AnyStore::open(backend, &dir, opts()).unwrap();
    let (a, b) = (account(1, "gold"), account(2, "silver"));
    store
        .commit(&CommitBatch {
            customers: p0(vec![("a", &a), ("b", &b)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 10)],
            outbox: vec![b"row".to_vec()],
            meta: Vec::new(),
        })
        .unwrap();
    drop(store);
    (tmp, dir)
}

fn assert_populated(store: &AnyStore) {
    assert_eq!(
        store.get_customer::<Account>("a").unwrap(),
        Some(account(1, "gold"))
    );
    assert_eq!(store.offset("orders", 0).unwrap(), Some(10));
    assert_eq!(
        store.outbox_pending(10).unwrap(),
        vec![(0, b"row".to_vec())]
    );
}

/// Writes raw key/values into the store's keyspace, bypassing the store.
fn poke(backend: Backend, dir: &Path, entries: &[(&[u8], &[u8])]) {
    match backend {
        Backend::Sled => {
            let db = raw_sled(dir);
            let tree = db.open_tree("tierd-state").unwrap();
            for (k, v) in entries {
                tree.insert(*k, *v).unwrap();
            }
            db.flush().unwrap();
        }
        #[cfg(feature = "fjall")]
        Backend::Fjall => {
            let db = fjall::Database::builder(dir).open().unwrap();
            let ks = db
                .keyspace("tierd-state", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            for (k, v) in entries {
                ks.insert(*k, *v).unwrap();
            }
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        #[cfg(feature = "redb")]
        Backend::Redb => {
            let db = redb::Database::open(dir.join("state.redb")).unwrap();
            let table: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("tierd-state");
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(table).unwrap();
                for (k, v) in entries {
                    t.insert(*k, *v).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        #[allow(unreachable_patterns, reason = "reachable when a feature is off")]
        other => panic!("{other} is not compiled in"),
    }
}

/// Runs `test` once per compiled-in backend, naming the backend on failure.
fn for_each_backend(test: impl Fn(Backend)) {
    for backend in Backend::compiled_in() {
        eprintln!("--- backend {backend}");
        test(backend);
    }
}

#[test]
fn a_dir_of_another_backend_is_refused_and_never_quarantined() {
    for_each_backend(|written| {
        let (_tmp, dir) = populated(written);
        assert_eq!(Backend::detect(&dir), Some(written));
        for configured in Backend::compiled_in() {
            if configured == written {
                continue;
            }
            let err = AnyStore::open(configured, &dir, opts()).unwrap_err();
            assert!(
                matches!(
                    &err,
                    StoreError::WrongBackend { found, configured: c, .. }
                        if *found == written && *c == configured
                ),
                "{err:?}"
            );
            assert!(!err.is_corruption());
            assert!(
                err.to_string().contains(&format!(
                    "holds a {written} store, but the configured store backend is {configured}"
                )),
                "{err}"
            );
            let err = AnyStore::open_or_quarantine(configured, &dir, opts()).unwrap_err();
            assert!(matches!(err, StoreError::WrongBackend { .. }), "{err:?}");
        }
        // Untouched: the right backend still opens it with its data.
        assert_populated(&AnyStore::open(written, &dir, opts()).unwrap());
    });
}

#[test]
fn foreign_files_are_quarantined_and_a_fresh_store_opened() {
    for_each_backend(|backend| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a store").unwrap();
        let err = AnyStore::open(backend, &dir, opts()).unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        let (store, moved) = AnyStore::open_or_quarantine(backend, &dir, opts()).unwrap();
        let moved = moved.expect("moved aside");
        assert!(moved.join("notes.txt").exists(), "kept, not deleted");
        assert_eq!(store.customer_count().unwrap(), 0);
        assert_eq!(store.verify::<Account>().unwrap(), Default::default());
    });
}

#[test]
fn a_damaged_store_file_is_quarantined() {
    for_each_backend(|backend| {
        let (tmp, dir) = populated(backend);
        // The file each backend cannot do without.
        let victim = match backend {
            Backend::Sled => dir.join("conf"),
            Backend::Fjall => dir.join("version"),
            Backend::Redb => dir.join("state.redb"),
        };
        let len = std::fs::metadata(&victim).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len.max(4096)).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(&victim, garbage).unwrap();
        let err = AnyStore::open(backend, &dir, opts()).unwrap_err();
        assert!(err.is_corruption(), "{backend}: {err:?}");
        let (store, moved) = AnyStore::open_or_quarantine(backend, &dir, opts()).unwrap();
        assert!(moved.unwrap().starts_with(tmp.path()));
        assert_eq!(store.customer_count().unwrap(), 0);
    });
}

/// Damage in the middle of the biggest file, past its headers, is found by
/// the checksums (fjall's blocks, redb's pages) and quarantined. (sled's
/// preallocated log is mostly empty in the middle; `sled_only` damages it
/// in its own ways.)
#[test]
fn scribbled_pages_are_found_at_open_or_by_verify() {
    for_each_backend(|backend| {
        if backend == Backend::Sled {
            return;
        }
        let (_tmp, dir) = populated(backend);
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    files.push((e.metadata().unwrap().len(), e.path()));
                }
            }
        }
        files.sort();
        let (len, biggest) = files.last().unwrap().clone();
        let mut bytes = std::fs::read(&biggest).unwrap();
        let mid = (len / 2) as usize;
        for b in &mut bytes[mid..(mid + 64).min(len as usize)] {
            *b ^= 0x5a;
        }
        std::fs::write(&biggest, bytes).unwrap();
        let err = match AnyStore::open(backend, &dir, opts()) {
            Err(e) => e,
            Ok(s) => s.verify::<Account>().unwrap_err(),
        };
        assert!(err.is_corruption(), "{backend}: {err:?}");
        let (store, moved) = AnyStore::open_or_quarantine(backend, &dir, opts()).unwrap();
        assert!(moved.unwrap().exists());
        assert_eq!(store.customer_count().unwrap(), 0);
    });
}

#[test]
fn a_newer_schema_is_refused_and_an_older_one_set_aside() {
    for_each_backend(|backend| {
        let (_tmp, dir) = populated(backend);
        let newer = tier_store::SCHEMA_VERSION + 1;
        poke(backend, &dir, &[(b"m/schema", &newer.to_be_bytes())]);
        let err = AnyStore::open(backend, &dir, opts()).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaMismatch { found, .. } if found == newer),
            "{err:?}"
        );
        assert!(!err.is_corruption(), "a rollback must not throw state away");
        assert!(AnyStore::open_or_quarantine(backend, &dir, opts()).is_err());
        assert!(dir.exists());

        poke(backend, &dir, &[(b"m/schema", &1u32.to_be_bytes())]);
        let err = AnyStore::open(backend, &dir, opts()).unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        let (store, moved) = AnyStore::open_or_quarantine(backend, &dir, opts()).unwrap();
        assert!(moved.expect("set aside").exists());
        assert_eq!(store.customer_count().unwrap(), 0);
    });
}

#[test]
fn data_without_a_schema_marker_is_refused() {
    for_each_backend(|backend| {
        let (_tmp, dir) = populated(backend);
        // Remove the marker by writing a store that never had one: the
        // populated dir's own engine, with the key deleted.
        match backend {
            Backend::Sled => {
                let db = raw_sled(&dir);
                db.open_tree("tierd-state")
                    .unwrap()
                    .remove(b"m/schema")
                    .unwrap();
                db.flush().unwrap();
            }
            #[cfg(feature = "fjall")]
            Backend::Fjall => {
                let db = fjall::Database::builder(&dir).open().unwrap();
                db.keyspace("tierd-state", fjall::KeyspaceCreateOptions::default)
                    .unwrap()
                    .remove(b"m/schema".as_slice())
                    .unwrap();
                db.persist(fjall::PersistMode::SyncAll).unwrap();
            }
            #[cfg(feature = "redb")]
            Backend::Redb => {
                let db = redb::Database::open(dir.join("state.redb")).unwrap();
                let table: redb::TableDefinition<'_, &[u8], &[u8]> =
                    redb::TableDefinition::new("tierd-state");
                let tx = db.begin_write().unwrap();
                tx.open_table(table)
                    .unwrap()
                    .remove(b"m/schema".as_slice())
                    .unwrap();
                tx.commit().unwrap();
            }
            #[allow(unreachable_patterns, reason = "reachable when a feature is off")]
            other => panic!("{other} is not compiled in"),
        }
        let err = AnyStore::open(backend, &dir, opts()).unwrap_err();
        assert!(matches!(err, StoreError::SchemaMissing { .. }), "{err:?}");
        assert!(err.is_corruption());
    });
}

#[test]
fn a_store_in_use_is_not_quarantined() {
    for_each_backend(|backend| {
        let (_tmp, dir) = populated(backend);
        let first = AnyStore::open(backend, &dir, opts()).unwrap();
        let impatient = StoreOptions {
            lock_timeout: Duration::from_millis(50),
            ..opts()
        };
        let started = Instant::now();
        let err = AnyStore::open_or_quarantine(backend, &dir, impatient).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(!err.is_corruption(), "{backend}: {err:?}");
        assert!(dir.exists());
        assert_populated(&first);
        drop(first);
        // Released on drop: an immediate reopen works.
        assert_populated(&AnyStore::open(backend, &dir, opts()).unwrap());
    });
}

#[test]
fn damaged_values_are_found_by_verify_not_by_open() {
    for_each_backend(|backend| {
        let (_tmp, dir) = populated(backend);
        poke(
            backend,
            &dir,
            &[
                (b"c/\0\0\0\0a", &[1, 0xff, 0xff]),
                (b"zz", b"no known prefix"),
            ],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        let err = store.verify::<Account>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("stored value for customer a is corrupt: "),
            "{err}"
        );
        assert!(err.is_corruption());
        drop(store);
        // A valid state again (format 1, score 1, tier "g", no orders).
        poke(
            backend,
            &dir,
            &[(b"c/\0\0\0\0a", &[1, 0x02, 0x01, b'g', 0x00])],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        let err = store.verify::<Account>().unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::MalformedEntry {
                    section: "unknown",
                    ..
                }
            ),
            "{err:?}"
        );
    });
}

#[test]
fn outbox_keys_continue_after_the_newest_row_even_if_the_counter_lags() {
    for_each_backend(|backend| {
        let (_tmp, dir) = populated(backend);
        poke(backend, &dir, &[(b"x/\0\0\0\0\0\0\x01\0", b"row 256")]);
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        let batch = CommitBatch::<Account> {
            outbox: vec![b"next".to_vec()],
            ..CommitBatch::new()
        };
        assert_eq!(store.commit(&batch).unwrap().outbox_keys, 257..258);
        assert_eq!(store.verify::<Account>().unwrap().outbox_rows, 3);
    });
}

#[test]
fn a_crash_during_creation_leaves_nothing_that_looks_corrupt() {
    for_each_backend(|backend| {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let leftover = parent.path().join("data.creating");
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("half"), b"half written").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        assert!(!leftover.exists(), "the leftover was cleaned up");
        assert_eq!(Backend::detect(&dir), Some(backend));
        drop(store);
        assert_eq!(
            AnyStore::open(backend, &dir, opts())
                .unwrap()
                .verify::<Account>()
                .unwrap(),
            Default::default()
        );
    });
}

/// What a crash would find: a copy of the data dir taken while the store
/// is open (the copy is opened; the original store keeps running).
fn crash_image(dir: &Path, into: &Path) -> AnyStore {
    copy_dir(dir, into);
    // The copy is not locked, whatever the original holds.
    AnyStore::open(Backend::detect(into).unwrap(), into, opts()).unwrap()
}

#[test]
fn sync_and_the_interval_flush_make_applied_batches_durable() {
    for_each_backend(|backend| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let lazy = StoreOptions {
            flush: FlushPolicy::IntervalMs(100),
            ..opts()
        };
        let store = AnyStore::open(backend, &dir, lazy).unwrap();
        let x = account(5, "x");
        let applied = |id: &str| {
            store
                .apply(
                    tier_store::PreparedBatch::prepare(&CommitBatch {
                        customers: p0(vec![(id, &x)]),
                        moved: Vec::new(),
                        offsets: vec![("t", 0, 1)],
                        ..CommitBatch::new()
                    })
                    .unwrap(),
                )
                .unwrap();
        };
        applied("synced");
        store.sync().unwrap();
        let image = crash_image(&dir, &tmp.path().join("after-sync"));
        assert_eq!(
            image.get_customer::<Account>("synced").unwrap(),
            Some(x.clone())
        );
        drop(image);

        applied("by-interval");
        std::thread::sleep(Duration::from_millis(600));
        let image = crash_image(&dir, &tmp.path().join("after-interval"));
        assert_eq!(
            image.get_customer::<Account>("by-interval").unwrap(),
            Some(x.clone()),
            "{backend}: the background sync did not run"
        );
        assert_eq!(image.offset("t", 0).unwrap(), Some(1));
    });
}

/// A closed, empty `backend` store in `<tmp>/data`, for a test to poke
/// an older layout into.
fn created(backend: Backend) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(AnyStore::open(backend, &dir, opts()).unwrap());
    (tmp, dir)
}

#[test]
fn rows_of_a_schema_4_dir_come_first_and_packed_rows_follow_in_order() {
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        // A schema 4 dir: one outbox row per key.
        poke(
            backend,
            &dir,
            &[
                (b"m/schema", &4u32.to_be_bytes()),
                (b"x/\0\0\0\0\0\0\0\0", b"old 0"),
                (b"x/\0\0\0\0\0\0\0\x01", b"old 1"),
                (b"m/outbox_next", &2u64.to_be_bytes()),
            ],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current.
        assert_eq!(store.verify::<Account>().unwrap().outbox_rows, 2);
        let rows: Vec<Vec<u8>> = (0..600u32)
            .map(|i| format!("new {i}").into_bytes())
            .collect();
        let batch = CommitBatch::<Account> {
            outbox: rows.clone(),
            ..CommitBatch::new()
        };
        assert_eq!(store.commit(&batch).unwrap().outbox_keys, 2..602);
        let mut expected: Vec<(u64, Vec<u8>)> =
            vec![(0, b"old 0".to_vec()), (1, b"old 1".to_vec())];
        expected.extend((2..).zip(rows));
        assert_eq!(store.outbox_pending(usize::MAX).unwrap(), expected);
        assert_eq!(store.outbox_pending(3).unwrap(), expected[..3].to_vec());
        assert_eq!(store.outbox_len().unwrap(), 602);
        assert_eq!(store.verify::<Account>().unwrap().outbox_rows, 602);

        // Deleting rows of both kinds, at a pack's start and inside packs.
        store.outbox_delete(&[0, 5, 300, 600, 9_999]).unwrap();
        expected.retain(|(seq, _)| ![0, 5, 300, 600].contains(seq));
        assert_eq!(store.outbox_len().unwrap(), 598);
        assert_eq!(store.outbox_pending(usize::MAX).unwrap(), expected);
        drop(store);

        // The sequence also continues from the packs alone.
        poke(backend, &dir, &[(b"m/outbox_next", &0u64.to_be_bytes())]);
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        assert_eq!(store.outbox_pending(usize::MAX).unwrap(), expected);
        let one = CommitBatch::<Account> {
            outbox: vec![b"after".to_vec()],
            ..CommitBatch::new()
        };
        assert_eq!(store.commit(&one).unwrap().outbox_keys, 602..603);
        let all: Vec<u64> = store
            .outbox_pending(usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(all.len(), 599);
        store.outbox_delete(&all).unwrap();
        assert_eq!(store.outbox_len().unwrap(), 0);
        assert_eq!(store.outbox_pending(10).unwrap(), vec![]);
        assert_eq!(store.verify::<Account>().unwrap().outbox_rows, 0);
    });
}

/// [`Account`] as a later build stores it: one more field, an option,
/// last (as format 2 added a customer state's reasons' baseline).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct AccountV2 {
    score: i64,
    tier: String,
    orders: Vec<u32>,
    note: Option<u32>,
}

#[test]
fn a_schema_5_dir_is_marked_6_and_its_format_1_values_read_without_the_last_field() {
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        // A schema 5 dir holding one customer in format 1.
        let mut v1 = vec![1u8];
        v1.extend(postcard::to_allocvec(&account(7, "gold")).unwrap());
        poke(
            backend,
            &dir,
            &[(b"m/schema", &5u32.to_be_bytes()), (b"c/\0\0\0\0a", &v1)],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current.
        assert_eq!(store.verify::<AccountV2>().unwrap().customers, 1);
        let read = |store: &AnyStore| store.get_customer::<AccountV2>("a").unwrap().unwrap();
        let old = account(7, "gold");
        assert_eq!(
            read(&store),
            AccountV2 {
                score: old.score,
                tier: old.tier.clone(),
                orders: old.orders.clone(),
                note: None,
            }
        );
        // Written again, it keeps its last field.
        let noted = AccountV2 {
            note: Some(3),
            ..read(&store)
        };
        let batch = CommitBatch {
            customers: p0([("a", &noted)]),
            ..CommitBatch::new()
        };
        store.commit(&batch).unwrap();
        drop(store);
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        assert_eq!(read(&store), noted);
    });
}

#[test]
fn a_schema_7_dir_is_marked_8_and_its_format_3_values_read_as_they_are() {
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        // A schema 7 dir holding one customer in format 3 (format 4 only
        // changed the layout of tier-core's state, which reads both).
        let mut v3 = vec![3u8];
        v3.extend(postcard::to_allocvec(&account(7, "gold")).unwrap());
        poke(
            backend,
            &dir,
            &[(b"m/schema", &7u32.to_be_bytes()), (b"c/\0\0\0\0a", &v3)],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current,
        // so a build that reads no format past 3 refuses it.
        assert_eq!(store.verify::<Account>().unwrap().customers, 1);
        assert_eq!(
            store.get_customer::<Account>("a").unwrap().unwrap(),
            account(7, "gold")
        );
    });
}

#[test]
fn a_schema_9_dir_is_marked_10_and_its_format_5_values_read_as_they_are() {
    // A value a format-5 build compressed (tier-store's codec tests hold
    // the same bytes): twelve orders, with the built-in dictionary.
    const WRITTEN: [u8; 120] = [
        5, 40, 181, 47, 253, 32, 176, 117, 3, 0, 3, 6, 21, 32, 24, 139, 188, 130, 254, 27, 23, 77,
        102, 108, 208, 93, 131, 237, 234, 27, 244, 237, 17, 194, 69, 38, 24, 244, 239, 176, 128,
        106, 89, 130, 238, 28, 222, 35, 157, 160, 239, 13, 16, 53, 103, 163, 160, 191, 198, 95,
        101, 65, 131, 238, 30, 118, 51, 94, 65, 223, 29, 190, 100, 195, 6, 253, 57, 44, 128, 244,
        13, 186, 111, 108, 223, 26, 62, 200, 0, 5, 39, 144, 193, 11, 64, 32, 17, 11, 252, 18, 8,
        43, 238, 123, 168, 206, 112, 75, 29, 45, 82, 70, 115, 153, 90, 111, 211, 36, 11, 22,
    ];
    type Orders = Vec<(String, u32, Option<i64>)>;
    let orders: Orders = (0..12u32)
        .map(|i| {
            (
                format!("order-{}", i % 5),
                i % 3,
                Some(i64::from(i) * 86_400_000),
            )
        })
        .collect();
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        poke(
            backend,
            &dir,
            &[
                (b"m/schema", &9u32.to_be_bytes()),
                (b"c/\0\0\0\0a", &WRITTEN),
            ],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current
        // (10), so a build that reads no format past 5 refuses it instead
        // of failing on every customer written since.
        assert_eq!(store.verify::<Orders>().unwrap().customers, 1);
        assert_eq!(
            store.get_customer::<Orders>("a").unwrap(),
            Some(orders.clone())
        );
    });
}

#[test]
fn a_schema_8_dir_is_marked_current_and_its_format_4_values_read_as_they_are() {
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        // A schema 8 dir holding one customer in format 4, uncompressed,
        // as every build before format 5 wrote it.
        let mut v4 = vec![4u8];
        let orders: Vec<(String, u64)> = (0..50).map(|i| (format!("order-{i}"), i % 4)).collect();
        v4.extend(postcard::to_allocvec(&orders).unwrap());
        poke(
            backend,
            &dir,
            &[(b"m/schema", &8u32.to_be_bytes()), (b"c/\0\0\0\0a", &v4)],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current,
        // so a build that reads no format past 4 refuses it instead of
        // failing on every customer written compressed since.
        assert_eq!(store.verify::<Vec<(String, u64)>>().unwrap().customers, 1);
        assert_eq!(
            store.get_customer::<Vec<(String, u64)>>("a").unwrap(),
            Some(orders)
        );
    });
}

#[test]
fn a_schema_6_dir_is_marked_current_and_its_format_2_values_read_as_they_are() {
    for_each_backend(|backend| {
        let (_tmp, dir) = created(backend);
        // A schema 6 dir holding one customer in format 2 (format 3 only
        // changed the layout of tier-core's state, which reads both).
        let mut v2 = vec![2u8];
        v2.extend(postcard::to_allocvec(&account(7, "gold")).unwrap());
        poke(
            backend,
            &dir,
            &[(b"m/schema", &6u32.to_be_bytes()), (b"c/\0\0\0\0a", &v2)],
        );
        let store = AnyStore::open(backend, &dir, opts()).unwrap();
        // `verify` checks the schema marker: the dir is marked current,
        // so a build that reads no format past 2 refuses it.
        assert_eq!(store.verify::<Account>().unwrap().customers, 1);
        assert_eq!(
            store.get_customer::<Account>("a").unwrap().unwrap(),
            account(7, "gold")
        );
    });
}

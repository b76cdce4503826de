//! What only a store on disk can get wrong: damage, foreign data, schema
//! versions, locks, quarantine.

use crate::common::p0;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tier_store::{
    CommitBatch, FlushPolicy, SLED_SEGMENT_BYTES, Scope, SledStore, Store, StoreError, StoreOptions,
};

use crate::common::{Account, Backend, account, copy_dir, raw_sled, raw_sled_with, snapshot};

fn opts() -> StoreOptions {
    StoreOptions {
        flush: FlushPolicy::EveryCommit,
        cache_capacity_bytes: 16 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

/// A closed store in `<tmp>/data` holding two customers, an offset and a row.
fn populated() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = SledStore::open(&dir, opts()).unwrap();
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

fn garbage(len: usize) -> Vec<u8> {
    (0..len.max(4096)).map(|i| (i * 7919 % 251) as u8).collect()
}

fn open_err(dir: &Path) -> StoreError {
    SledStore::open(dir, opts()).unwrap_err()
}

/// sled's default segment size: what every dir a tierd before
/// [`SLED_SEGMENT_BYTES`] created was written with.
const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 * 1024;

/// Writes raw key/values into the store's tree, bypassing the store.
fn poke(dir: &Path, entries: &[(&[u8], &[u8])]) {
    let db = raw_sled(dir);
    let tree = db.open_tree("tierd-state").unwrap();
    for (k, v) in entries {
        tree.insert(*k, *v).unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn garbage_in_a_copied_data_dir_is_quarantined_and_a_fresh_store_opened() {
    let (tmp, dir) = populated();
    let copy = tmp.path().join("copy");
    copy_dir(&dir, &copy);
    let db_file = copy.join("db");
    let len = std::fs::metadata(&db_file).unwrap().len() as usize;
    std::fs::write(&db_file, garbage(len)).unwrap();

    let err = open_err(&copy);
    assert!(err.is_corruption(), "{err:?}");

    let (store, moved) = SledStore::open_or_quarantine(&copy, opts()).unwrap();
    let moved = moved.expect("the broken dir is moved aside");
    assert!(
        moved
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("copy.quarantined-")
    );
    assert_eq!(moved.parent(), Some(tmp.path()));
    assert!(
        moved.join("db").exists(),
        "quarantined data is kept, not deleted"
    );
    assert_eq!(store.customer_count().unwrap(), 0);
    assert_eq!(store.offsets().unwrap(), vec![]);
    let c = account(3, "new");
    assert_eq!(
        store
            .commit(&CommitBatch {
                customers: p0(vec![("c", &c)]),
                moved: Vec::new(),
                ..CommitBatch::new()
            })
            .unwrap()
            .outbox_keys,
        0..0
    );
    assert_eq!(store.get_customer::<Account>("c").unwrap(), Some(c));
    drop(store);

    // The original was untouched.
    let original = SledStore::open(&dir, opts()).unwrap();
    assert_eq!(
        original.get_customer::<Account>("a").unwrap(),
        Some(account(1, "gold"))
    );
    assert_eq!(original.offset("orders", 0).unwrap(), Some(10));
    assert_eq!(
        original.outbox_pending(10).unwrap(),
        vec![(0, b"row".to_vec())]
    );
}

#[test]
fn garbage_in_sled_conf_is_quarantined() {
    let (tmp, dir) = populated();
    std::fs::write(dir.join("conf"), garbage(64)).unwrap();
    assert!(matches!(
        open_err(&dir),
        StoreError::Open {
            source: sled::Error::Unsupported(_),
            ..
        }
    ));
    let (_store, moved) = SledStore::open_or_quarantine(&dir, opts()).unwrap();
    assert!(moved.unwrap().starts_with(tmp.path()));
}

#[test]
fn a_healthy_store_is_not_moved() {
    let (_tmp, dir) = populated();
    let (store, moved) = SledStore::open_or_quarantine(&dir, opts()).unwrap();
    assert_eq!(moved, None);
    assert_eq!(store.customer_count().unwrap(), 2);
}

#[test]
fn foreign_sled_data_without_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let db = raw_sled_with(&dir, SLED_DEFAULT_SEGMENT_BYTES);
    db.insert("someone else's", "data").unwrap();
    db.flush().unwrap();
    drop(db);
    let err = open_err(&dir);
    assert!(matches!(err, StoreError::SchemaMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("has data but no schema version"),
        "{err}"
    );
    assert!(err.is_corruption());
}

#[test]
fn a_newer_schema_is_refused_and_not_quarantined() {
    let (_tmp, dir) = populated();
    let newer = tier_store::SCHEMA_VERSION + 1;
    poke(&dir, &[(b"m/schema", &newer.to_be_bytes())]);
    let err = open_err(&dir);
    assert!(
        matches!(
            err,
            StoreError::SchemaMismatch { found, supported, .. }
                if found == newer && supported == tier_store::SCHEMA_VERSION
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().ends_with(&format!(
            "has schema version {newer}, but this build supports only version {}",
            tier_store::SCHEMA_VERSION
        )),
        "{err}"
    );
    assert!(!err.is_corruption(), "a rollback must not throw state away");
    assert!(SledStore::open_or_quarantine(&dir, opts()).is_err());
    assert!(dir.exists());
}

/// A data dir written by an older tierd (schema 1: month-bucket windows,
/// processing-time decisions) cannot be read as today's state: it is set
/// aside, never deleted, and the state is rebuilt from Kafka.
#[test]
fn an_older_schema_is_set_aside_and_rebuilt() {
    let (_tmp, dir) = populated();
    poke(&dir, &[(b"m/schema", &1u32.to_be_bytes())]);
    let err = open_err(&dir);
    assert!(
        matches!(err, StoreError::SchemaMismatch { found: 1, .. }),
        "{err:?}"
    );
    assert!(err.is_corruption(), "an older layout is rebuilt from Kafka");
    let (store, moved) = SledStore::open_or_quarantine(&dir, opts()).unwrap();
    let moved = moved.expect("the old dir was set aside");
    assert!(moved.exists(), "set aside, never deleted");
    drop(store);
    assert!(SledStore::open(&dir, opts()).is_ok());
}

#[test]
fn a_store_in_use_is_not_quarantined() {
    let (_tmp, dir) = populated();
    let first = SledStore::open(&dir, opts()).unwrap();
    let impatient = StoreOptions {
        lock_timeout: Duration::from_millis(50),
        ..opts()
    };
    let started = Instant::now();
    let err = SledStore::open_or_quarantine(&dir, impatient).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(
        matches!(
            err,
            StoreError::Open {
                source: sled::Error::Io(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_corruption(), "{err:?}");
    assert!(dir.exists());
    assert_eq!(first.customer_count().unwrap(), 2);
}

#[test]
fn states_are_stored_compressed_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = SledStore::open(&dir, opts()).unwrap();
    let orders: Vec<(String, u64)> = (0..50).map(|i| (format!("order-{i}"), i % 4)).collect();
    store
        .commit(&CommitBatch {
            customers: p0([("a", &orders)]),
            ..CommitBatch::new()
        })
        .unwrap();
    drop(store);
    let db = raw_sled(&dir);
    let tree = db.open_tree("tierd-state").unwrap();
    let (_, raw) = tree.scan_prefix(b"c/").next().unwrap().unwrap();
    assert_eq!(raw[0], 7, "format 7: compressed");
    let plain = postcard::to_allocvec(&orders).unwrap();
    assert!(
        raw.len() < plain.len() / 2,
        "{} of {}",
        raw.len(),
        plain.len()
    );
    drop((tree, db));
    let store = SledStore::open(&dir, opts()).unwrap();
    assert_eq!(
        store.get_customer::<Vec<(String, u64)>>("a").unwrap(),
        Some(orders)
    );
}

#[test]
fn damaged_values_are_found_by_verify_not_by_open() {
    let (_tmp, dir) = populated();
    poke(
        &dir,
        &[
            (b"c/\0\0\0\0a", &[1, 0xff, 0xff]),
            (b"c/\0\0\0\0b", &[9, 1, 2, 3]),
        ],
    );
    let store = SledStore::open(&dir, opts()).unwrap();
    let err = store.verify::<Account>().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("stored value for customer a is corrupt: "),
        "{err}"
    );
    let err = store.get_customer::<Account>("b").unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownFormatVersion { version: 9, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "stored value for customer b has format version 9, but this build reads versions 1 to 7"
    );
}

#[test]
fn verify_checks_keys_and_non_customer_values() {
    let zero = 0i64.to_be_bytes();
    let cases: [(&[u8], &[u8]); 6] = [
        (b"o/orders\0\0\0\0\x01", b"short"),
        (b"o/orders", &zero),
        (b"o/\0\0\0\0\x01", &zero),
        (b"x/\0\0\0\0\0\0\0\0\0", b"row"),
        (b"zz", b"no known prefix"),
        (b"m/outbox_next", b"??"),
    ];
    for bad in cases {
        let (_tmp, dir) = populated();
        poke(&dir, &[bad]);
        // A broken counter is found at open already, everything else by verify.
        let err = match SledStore::open(&dir, opts()) {
            Ok(store) => store.verify::<Account>().unwrap_err(),
            Err(err) => err,
        };
        assert!(
            matches!(err, StoreError::MalformedEntry { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.is_corruption());
    }
}

#[test]
fn fresh_store_is_marked_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SledStore::open(&tmp.path().join("new"), opts()).unwrap();
    assert_eq!(store.verify::<Account>().unwrap(), Default::default());
    drop(store);
    // An empty existing directory counts as new, too.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    drop(SledStore::open(&empty, opts()).unwrap());
    assert!(SledStore::open(&empty, opts()).is_ok());
}

#[test]
fn interval_flush_state_survives_a_clean_close() {
    let mut b = crate::common::sled(FlushPolicy::IntervalMs(60_000));
    let x = account(5, "x");
    b.store()
        .commit(&CommitBatch {
            customers: p0(vec![("x", &x)]),
            moved: Vec::new(),
            offsets: vec![("t", 0, 1)],
            ..CommitBatch::new()
        })
        .unwrap();
    let before = snapshot(b.store());
    b.store().flush().unwrap();
    b.close();
    b.reopen();
    assert_eq!(snapshot(b.store()), before);
    let _ = b.data_dir();
}

#[test]
fn outbox_keys_continue_after_the_newest_row_even_if_the_counter_lags() {
    let (_tmp, dir) = populated();
    poke(&dir, &[(b"x/\0\0\0\0\0\0\x01\0", b"row 256")]);
    let store = SledStore::open(&dir, opts()).unwrap();
    let batch = CommitBatch::<Account> {
        outbox: vec![b"next".to_vec()],
        ..CommitBatch::new()
    };
    assert_eq!(store.commit(&batch).unwrap().outbox_keys, 257..258);
    assert_eq!(store.verify::<Account>().unwrap().outbox_rows, 3);
}

/// sled's configuration file in `dir`, as text (without its CRC).
fn sled_conf(dir: &Path) -> String {
    let conf = std::fs::read(dir.join("conf")).unwrap();
    String::from_utf8_lossy(&conf[..conf.len() - 4]).into_owned()
}

/// A new store is written in segments of [`SLED_SEGMENT_BYTES`] (a fourth
/// of sled's default, for a third less disk), and stays so across opens.
#[test]
fn a_new_store_uses_small_segments() {
    let (_tmp, dir) = populated();
    let size = format!("segment_size: {SLED_SEGMENT_BYTES}\n");
    assert!(sled_conf(&dir).contains(&size), "{}", sled_conf(&dir));
    let store = SledStore::open(&dir, opts()).unwrap();
    assert_eq!(store.customer_count().unwrap(), 2);
    drop(store);
    assert!(sled_conf(&dir).contains(&size), "{}", sled_conf(&dir));
}

/// A dir an earlier tierd wrote with sled's default segments (sled refuses
/// to open it with others) is opened with its own: its customers, offsets
/// and outbox are read, it takes new commits, and it keeps its segments.
#[test]
fn a_dir_written_in_sleds_default_segments_keeps_them() {
    let (tmp, dir) = populated();
    let older = written_by_an_earlier_build(&tmp, &dir);
    let default = format!("segment_size: {SLED_DEFAULT_SEGMENT_BYTES}\n");
    assert!(
        sled_conf(&older).contains(&default),
        "{}",
        sled_conf(&older)
    );

    let (store, moved) = SledStore::open_or_quarantine(&older, opts()).unwrap();
    assert_eq!(moved, None, "opened, not set aside");
    assert_eq!(store.customer_count().unwrap(), 2);
    assert_eq!(store.offset("orders", 0).unwrap(), Some(10));
    assert_eq!(store.outbox_len().unwrap(), 1);
    let c = account(3, "bronze");
    store
        .commit(&CommitBatch {
            customers: p0(vec![("c", &c)]),
            moved: Vec::new(),
            offsets: vec![("orders", 0, 11)],
            outbox: Vec::new(),
            meta: Vec::new(),
        })
        .unwrap();
    drop(store);
    let store = SledStore::open(&older, opts()).unwrap();
    assert_eq!(store.customer_count().unwrap(), 3);
    assert_eq!(store.offset("orders", 0).unwrap(), Some(11));
    assert_eq!(store.verify::<Account>().unwrap().customers, 3);
    drop(store);
    assert!(
        sled_conf(&older).contains(&default),
        "{}",
        sled_conf(&older)
    );
}

/// A customer whose state is a leaf of its own larger than a quarter of a
/// segment is written by sled to a blob file (which sled does not sync;
/// the store syncs the filesystem after sled's flush when blobs exist):
/// its commit, a reopen and a check all read it back.
#[test]
fn a_state_sled_writes_as_a_blob_file_is_committed_and_read_back() {
    let (_tmp, dir) = populated();
    // Orders that do not compress: xorshift.
    let mut x = 0x9e37_79b9_u32;
    let orders: Vec<u32> = (0..SLED_SEGMENT_BYTES / 2)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .collect();
    let big = Account {
        score: 9,
        tier: "platinum".to_owned(),
        orders,
    };
    let store = SledStore::open(&dir, opts()).unwrap();
    store
        .commit(&CommitBatch {
            customers: p0(vec![("big", &big)]),
            ..CommitBatch::new()
        })
        .unwrap();
    store.flush().unwrap();
    assert!(
        std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .next()
            .is_some(),
        "the big state's leaf is a blob file"
    );
    drop(store);
    let store = SledStore::open(&dir, opts()).unwrap();
    assert_eq!(store.get_customer::<Account>("big").unwrap(), Some(big));
    assert_eq!(store.verify::<Account>().unwrap().customers, 3);
}

/// A copy of the closed store `dir` in sled's default segments, as an
/// earlier tierd wrote its dirs.
fn written_by_an_earlier_build(tmp: &tempfile::TempDir, dir: &Path) -> PathBuf {
    let older = tmp.path().join("older");
    let from = raw_sled(dir);
    let from = from.open_tree("tierd-state").unwrap();
    let to = raw_sled_with(&older, SLED_DEFAULT_SEGMENT_BYTES);
    let to_tree = to.open_tree("tierd-state").unwrap();
    for item in from.iter() {
        let (k, v) = item.unwrap();
        to_tree.insert(k, v).unwrap();
    }
    to.flush().unwrap();
    older
}

/// sled never syncs its configuration file, so an earlier build's dir can
/// come back from a power loss without it (or with it empty): the dir is
/// opened in sled's default segments, what every earlier build wrote, and
/// keeps its customers.
#[test]
fn an_earlier_builds_dir_without_its_sled_conf_opens_in_sleds_default_segments() {
    for damage in ["removed", "emptied"] {
        let (tmp, dir) = populated();
        let older = written_by_an_earlier_build(&tmp, &dir);
        match damage {
            "removed" => std::fs::remove_file(older.join("conf")).unwrap(),
            _ => std::fs::write(older.join("conf"), b"").unwrap(),
        }
        let (store, moved) = SledStore::open_or_quarantine(&older, opts()).unwrap();
        assert_eq!(moved, None, "{damage}: opened, not set aside");
        assert_eq!(store.customer_count().unwrap(), 2, "{damage}");
        assert_eq!(store.verify::<Account>().unwrap().customers, 2, "{damage}");
        assert_eq!(store.offset("orders", 0).unwrap(), Some(10), "{damage}");
        drop(store);
        let default = format!("segment_size: {SLED_DEFAULT_SEGMENT_BYTES}\n");
        assert!(
            sled_conf(&older).contains(&default),
            "{}",
            sled_conf(&older)
        );
    }
}

/// Rewrites a closed store into the version-3 layout (customer keys
/// without a scope), as a tierd before partition scoping left it, and adds
/// `(topic, partition)` offsets.
fn make_v3(dir: &Path, offsets: &[(&str, i32)]) {
    let db = raw_sled(dir);
    let tree = db.open_tree("tierd-state").unwrap();
    let customers: Vec<_> = tree.scan_prefix(b"c/").map(Result::unwrap).collect();
    assert!(!customers.is_empty());
    for (key, value) in customers {
        tree.remove(&key).unwrap();
        let mut old = b"c/".to_vec();
        old.extend_from_slice(&key[6..]);
        tree.insert(old, value).unwrap();
    }
    for (topic, partition) in offsets {
        let mut key = b"o/".to_vec();
        key.extend_from_slice(topic.as_bytes());
        key.push(0);
        key.extend_from_slice(&partition.to_be_bytes());
        tree.insert(key, &5i64.to_be_bytes()[..]).unwrap();
    }
    tree.insert(b"m/schema", &3u32.to_be_bytes()[..]).unwrap();
    db.flush().unwrap();
}

fn scopes(store: &SledStore) -> Vec<(Scope, String, i64)> {
    store
        .scan_scoped::<Account>(None)
        .map(|item| {
            let (scope, id, a) = item.unwrap();
            (scope, id, a.score)
        })
        .collect()
}

/// A version-3 dir whose offsets name one partition (every input topic has
/// one) is upgraded in place: every customer is scoped to that partition,
/// nothing is lost, and it is not set aside.
#[test]
fn a_schema_3_dir_of_one_partition_is_upgraded_in_place() {
    let (_tmp, dir) = populated();
    make_v3(&dir, &[("payments", 0)]);
    let (store, moved) = SledStore::open_or_quarantine(&dir, opts()).unwrap();
    assert!(moved.is_none(), "upgraded, not set aside");
    let p0 = Scope::partition(0).unwrap();
    assert_eq!(
        scopes(&store),
        [(p0, "a".to_owned(), 1), (p0, "b".to_owned(), 2)]
    );
    assert_eq!(store.verify::<Account>().unwrap().customers, 2);
    assert_eq!(store.offset("orders", 0).unwrap(), Some(10));
    assert_eq!(store.outbox_len().unwrap(), 1);
    drop(store);
    let store = SledStore::open(&dir, opts()).expect("now a version-4 dir");
    assert_eq!(scopes(&store).len(), 2);
    assert_eq!(
        store.scan_scoped::<Account>(Some(p0)).count(),
        2,
        "one partition's customers are one key range"
    );
}

/// With offsets on several partitions the old layout does not say where a
/// customer's records come from: customers are kept unscoped, and a
/// commit that moves one to its partition deletes the unscoped key.
#[test]
fn a_schema_3_dir_of_several_partitions_keeps_customers_unscoped_until_moved() {
    let (_tmp, dir) = populated();
    make_v3(&dir, &[("orders", 1), ("payments", 2)]);
    let store = SledStore::open(&dir, opts()).unwrap();
    let un = Scope::UNSCOPED;
    assert_eq!(
        scopes(&store),
        [(un, "a".to_owned(), 1), (un, "b".to_owned(), 2)]
    );
    let p1 = Scope::partition(1).unwrap();
    let a2 = account(7, "gold");
    store
        .commit(&CommitBatch {
            customers: vec![(p1, "a", &a2)],
            moved: vec![(un, "a")],
            ..CommitBatch::new()
        })
        .unwrap();
    assert_eq!(
        scopes(&store),
        [(p1, "a".to_owned(), 7), (un, "b".to_owned(), 2)]
    );
    let a: Account = store.get_customer("a").unwrap().unwrap();
    assert_eq!(a.score, 7);
    assert_eq!(store.verify::<Account>().unwrap().customers, 2);
}

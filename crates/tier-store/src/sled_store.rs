//! The sled backend.

use std::fmt;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::layout::{self, CUSTOMER, OFFSET, OUTBOX, Scope};
use crate::outbox;
use crate::sled_blobs::BlobSyncer;
use crate::{
    CommitReceipt, FlushPolicy, PreparedBatch, Store, StoreError, StoreOptions, VerifyReport, codec,
};

/// Name of the one sled tree holding all of tier-store's keys.
const STATE_TREE: &str = "tierd-state";

/// sled's log segment size for a new data dir, in bytes (sled's default is
/// 512 KiB). Measured at 1,000,000 customers (`tier-bench --only state`,
/// see the bench's performance log): 376 bytes a customer on disk against
/// 609 in 512 KiB segments, with a faster bulk commit (67,648 against
/// 42,675 customers/s); 64 KiB saves nothing more. The cost: sled writes
/// a page over a quarter of a segment (a leaf holding a busy customer's
/// state) to a blob file of its own, so more leaves are files, and a
/// replay from offset 0 was about 6% slower.
///
/// sled refuses to open a dir with another segment size than it was
/// created with, so a dir keeps the size it was created with (an older
/// dir, sled's 512 KiB).
pub const SLED_SEGMENT_BYTES: usize = 128 * 1024;

/// sled's default segment size: what every dir an earlier tierd created
/// was written with.
const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 * 1024;

/// sled's configuration file in a data dir: `key: value` lines (one is
/// `segment_size: N`), then a CRC of four bytes.
const SLED_CONF: &str = "conf";

/// [`Store`] on sled: one tree, prefixed keys, one `apply_batch` per commit
/// (see the crate docs for why).
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    dir: PathBuf,
    flush: FlushPolicy,
    /// Next outbox sequence; the lock also serializes commits so that keys
    /// are handed out in commit order.
    next_outbox: Mutex<u64>,
    /// Serializes outbox deletes: each rewrites the packs it reads.
    deleting: Mutex<()>,
    /// Syncs the blob files sled writes and does not sync. Declared last,
    /// so it is dropped after sled's handles (whose drop flushes the log)
    /// and syncs once more.
    blobs: BlobSyncer,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("dir", &self.dir)
            .field("flush", &self.flush)
            .finish_non_exhaustive()
    }
}

fn sled_err(during: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { during, source }
}

impl SledStore {
    /// Opens the store in `dir`, creating it if `dir` is missing or empty.
    ///
    /// Checks the schema marker (cheap); use [`Store::verify`] for a full
    /// check. A directory that holds files but no readable tier-store data is
    /// refused ([`StoreError::Unrecoverable`], [`StoreError::SchemaMissing`])
    /// instead of being silently treated as a new, empty store.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let fresh = dir_is_empty(dir)?;
        if fresh {
            // Build the new store aside and move it into place only once its
            // schema marker is durable: a crash during creation must not
            // leave a half-written dir that later looks corrupt.
            create_aside(dir, &opts)?;
        }
        let flush_every_ms = match opts.flush {
            FlushPolicy::EveryCommit => None,
            FlushPolicy::IntervalMs(ms) => Some(ms.max(1)),
        };
        let open_err = |source| StoreError::Open {
            dir: dir.to_owned(),
            source,
        };
        let config = sled::Config::new()
            .path(dir)
            .segment_size(segment_size_of(dir))
            .cache_capacity(opts.cache_capacity_bytes)
            .flush_every_ms(flush_every_ms);
        let db = open_when_unlocked(dir, &config, opts.lock_timeout).map_err(open_err)?;
        if !db.was_recovered() {
            return Err(StoreError::Unrecoverable {
                dir: dir.to_owned(),
            });
        }
        let tree = db.open_tree(STATE_TREE).map_err(open_err)?;
        match tree.get(layout::META_SCHEMA).map_err(open_err)? {
            None if fresh => init_meta(&db, &tree)?,
            None => {
                return Err(StoreError::SchemaMissing {
                    dir: dir.to_owned(),
                });
            }
            Some(raw) => {
                let found = layout::parse_u32("meta", layout::META_SCHEMA, &raw)?;
                if found == 3 {
                    upgrade_v3(&tree, dir)?;
                } else if layout::SCHEMA_READ_AS_IS.contains(&found) {
                    let during = "marking a schema 4 to 9 data dir as schema 10";
                    tree.insert(
                        layout::META_SCHEMA,
                        &layout::SCHEMA_VERSION.to_be_bytes()[..],
                    )
                    .map_err(sled_err(during))?;
                    tree.flush().map_err(sled_err(during))?;
                } else if found != layout::SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch {
                        dir: dir.to_owned(),
                        found,
                        supported: layout::SCHEMA_VERSION,
                    });
                }
            }
        }
        let next_outbox = recover_outbox_next(&tree)?;
        tracing::info!(dir = %dir.display(), fresh, outbox_next = next_outbox, "opened tier store");
        Ok(Self {
            db,
            tree,
            dir: dir.to_owned(),
            flush: opts.flush,
            next_outbox: Mutex::new(next_outbox),
            deleting: Mutex::new(()),
            blobs: BlobSyncer::start(dir, flush_every_ms.map(Duration::from_millis)).map_err(
                |source| StoreError::DataDir {
                    dir: dir.to_owned(),
                    source,
                },
            )?,
        })
    }

    /// Opens the store; if the data dir is corrupt (see
    /// [`StoreError::is_corruption`]), moves it aside with [`quarantine`](crate::quarantine) and
    /// opens a fresh store in its place, returning where the old data went.
    ///
    /// Errors that are not corruption (permissions, a lock held by another
    /// process, a schema newer than this build) are returned unchanged and
    /// nothing is moved.
    pub fn open_or_quarantine(
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<(Self, Option<PathBuf>), StoreError> {
        crate::quarantine::open_or_quarantine(dir, opts, Self::open)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn flush_if_every_commit(&self, during: &'static str) -> Result<(), StoreError> {
        if self.flush == FlushPolicy::EveryCommit {
            self.flush_durably(during)?;
        }
        Ok(())
    }

    /// sled's flush (its log made durable), then the blob files sled does
    /// not sync itself (see the `sled_blobs` module; reported here when an
    /// earlier sync of them failed).
    fn flush_durably(&self, during: &'static str) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err(during))?;
        self.blobs.flushed().map_err(blob_err)
    }
}

/// A failed sync of sled's blob files (see the `sled_blobs` module), as
/// the failed sled I/O it is.
fn blob_err(source: std::io::Error) -> StoreError {
    StoreError::Sled {
        during: "syncing sled's blob files",
        source: sled::Error::Io(source),
    }
}

/// Opens sled, waiting while its `db` file is locked: sled releases the lock
/// only once its I/O threads let go of the file, a moment after the previous
/// `Db` in this process was dropped. Probes the lock with std's `try_lock`
/// (flock, as sled's own lock) rather than matching sled's error text.
fn open_when_unlocked(
    dir: &Path,
    config: &sled::Config,
    timeout: Duration,
) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if !db_file_is_locked(dir) || Instant::now() >= deadline {
            match config.open() {
                // Lost a race for the lock: wait again.
                Err(sled::Error::Io(_)) if Instant::now() < deadline && db_file_is_locked(dir) => {}
                result => return result,
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// True if someone holds the lock sled takes on `<dir>/db`.
fn db_file_is_locked(dir: &Path) -> bool {
    match File::open(dir.join("db")) {
        Ok(file) => matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// The segment size `dir`'s sled files were written with, as its
/// configuration file names it (sled opens a dir only with that size).
/// sled's own 512 KiB when the file is missing, as short as sled takes
/// for absent (8 bytes or fewer), or names no size: every dir this build
/// creates has a durable file (see [`create_aside`]), so one without is
/// from an earlier build, which used sled's default. sled then writes the
/// file again, or reports a damaged one itself.
fn segment_size_of(dir: &Path) -> usize {
    let Ok(conf) = std::fs::read(dir.join(SLED_CONF)) else {
        return SLED_DEFAULT_SEGMENT_BYTES;
    };
    if conf.len() <= 8 {
        return SLED_DEFAULT_SEGMENT_BYTES;
    }
    // The text ends where the CRC's four bytes begin; sled writes each key
    // once.
    String::from_utf8_lossy(&conf[..conf.len() - 4])
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: ")?.parse().ok())
        .unwrap_or(SLED_DEFAULT_SEGMENT_BYTES)
}

/// True if `dir` does not exist or has no entries.
fn dir_is_empty(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(StoreError::DataDir {
            dir: dir.to_owned(),
            source,
        }),
    }
}

/// Create an initialised store in `<dir>.creating`, flush it, then rename it
/// to `dir` (which is missing or empty). A leftover `.creating` dir is from a
/// crash during creation: nothing was ever committed there, so it is removed.
fn create_aside(dir: &Path, opts: &StoreOptions) -> Result<(), StoreError> {
    let data_dir_err = |source| StoreError::DataDir {
        dir: dir.to_owned(),
        source,
    };
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    let tmp = dir.with_file_name(name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(data_dir_err)?;
    }
    {
        let open_err = |source| StoreError::Open {
            dir: tmp.clone(),
            source,
        };
        let db = sled::Config::new()
            .path(&tmp)
            .segment_size(SLED_SEGMENT_BYTES)
            .cache_capacity(opts.cache_capacity_bytes)
            .open()
            .map_err(open_err)?;
        let tree = db.open_tree(STATE_TREE).map_err(open_err)?;
        init_meta(&db, &tree)?;
        db.flush().map_err(open_err)?;
    }
    // sled writes its configuration file without syncing it; the dir's
    // segment size is read from it at every open (see `segment_size_of`),
    // so it is made durable, with its directory entry, before the dir
    // takes its place.
    for durable in [tmp.join(SLED_CONF), tmp.clone()] {
        File::open(&durable)
            .and_then(|f| f.sync_all())
            .map_err(data_dir_err)?;
    }
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(data_dir_err)?;
    }
    std::fs::rename(&tmp, dir).map_err(data_dir_err)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(data_dir_err)?;
    }
    Ok(())
}

fn init_meta(db: &sled::Db, tree: &sled::Tree) -> Result<(), StoreError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let created_by = concat!("tier-store ", env!("CARGO_PKG_VERSION"));
    let mut meta = sled::Batch::default();
    meta.insert(
        layout::META_SCHEMA,
        &layout::SCHEMA_VERSION.to_be_bytes()[..],
    );
    meta.insert(layout::META_OUTBOX_NEXT, &0u64.to_be_bytes()[..]);
    meta.insert(layout::META_CREATED_AT, &now_ms.to_be_bytes()[..]);
    meta.insert(layout::META_CREATED_BY, created_by.as_bytes());
    tree.apply_batch(meta)
        .map_err(sled_err("initializing a new store"))?;
    db.flush().map_err(sled_err("initializing a new store"))?;
    Ok(())
}

/// Rewrites a version-3 keyspace to the current version in one atomic batch (see
/// `layout::upgrade_v3`), flushed before the store is used.
fn upgrade_v3(tree: &sled::Tree, dir: &Path) -> Result<(), StoreError> {
    let during = "upgrading the data dir from schema 3";
    let customers = tree
        .scan_prefix(CUSTOMER)
        .map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(sled_err(during))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let offsets = tree
        .scan_prefix(OFFSET)
        .map(|item| {
            let (key, _) = item.map_err(sled_err(during))?;
            layout::parse_offset_key(&key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let upgrade = layout::upgrade_v3(customers, &offsets)?;
    let mut batch = sled::Batch::default();
    for key in &upgrade.deletes {
        batch.remove(key.as_slice());
    }
    for (key, value) in &upgrade.puts {
        batch.insert(key.as_slice(), value.as_slice());
    }
    batch.insert(
        layout::META_SCHEMA,
        &layout::SCHEMA_VERSION.to_be_bytes()[..],
    );
    tree.apply_batch(batch).map_err(sled_err(during))?;
    tree.flush().map_err(sled_err(during))?;
    layout::log_v3_upgrade(dir, upgrade.summary());
    Ok(())
}

/// The counter persisted with every commit, or one past the newest outbox
/// row if that is larger (it cannot be, short of damage; cheap to be sure).
fn recover_outbox_next(tree: &sled::Tree) -> Result<u64, StoreError> {
    let during = "recovering the outbox sequence";
    let persisted = match tree
        .get(layout::META_OUTBOX_NEXT)
        .map_err(sled_err(during))?
    {
        Some(raw) => layout::parse_u64("meta", layout::META_OUTBOX_NEXT, &raw)?,
        None => 0,
    };
    let after_single = match tree.scan_prefix(OUTBOX).next_back() {
        Some(item) => {
            let (key, _) = item.map_err(sled_err(during))?;
            layout::parse_outbox_key(&key)?
                .checked_add(1)
                .ok_or(StoreError::OutboxExhausted)?
        }
        None => 0,
    };
    let after_packs = match tree.scan_prefix(outbox::PACKED).next_back() {
        Some(item) => {
            let (key, value) = item.map_err(sled_err(during))?;
            outbox::after_last(&key, &value)?
        }
        None => 0,
    };
    Ok(persisted.max(after_single).max(after_packs))
}

impl Store for SledStore {
    fn commit_prepared(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        let receipt = self.apply(batch)?;
        self.flush_if_every_commit("flushing a committed batch")?;
        Ok(receipt)
    }

    fn apply(&self, mut batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        // Once a sync of the blob files has failed, nothing more is written
        // (as once sled's own log sync has failed).
        self.blobs.check().map_err(blob_err)?;
        // Everything was encoded and validated by `prepare`; only the
        // outbox counter can still fail, before sled is touched. The
        // states are compressed before the counter's lock is taken.
        let rows = u64::try_from(batch.outbox.len()).map_err(|_| StoreError::OutboxExhausted)?;
        let empty = batch.is_empty();
        let customers = batch.take_stored_customers();
        let mut next = self
            .next_outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = *next;
        let end = first.checked_add(rows).ok_or(StoreError::OutboxExhausted)?;
        if empty {
            return Ok(CommitReceipt {
                outbox_keys: first..end,
            });
        }
        let mut writes = sled::Batch::default();
        for key in batch.moved {
            writes.remove(key);
        }
        for (key, value) in customers {
            writes.insert(key, value);
        }
        for (topic, partition, offset) in &batch.offsets {
            writes.insert(
                layout::offset_key(topic, *partition),
                &offset.to_be_bytes()[..],
            );
        }
        for (key, value) in batch.meta {
            writes.insert(key, value);
        }
        for (key, pack) in outbox::pack(first, &batch.outbox) {
            writes.insert(&key[..], pack);
        }
        if rows > 0 {
            writes.insert(layout::META_OUTBOX_NEXT, &end.to_be_bytes()[..]);
        }
        self.tree
            .apply_batch(writes)
            .map_err(sled_err("committing a batch"))?;
        *next = end;
        Ok(CommitReceipt {
            outbox_keys: first..end,
        })
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(layout::app_key(name)?)
            .map_err(sled_err("reading an application record"))?
            .map(|v| v.to_vec()))
    }

    fn get_customer<S: DeserializeOwned>(&self, id: &str) -> Result<Option<S>, StoreError> {
        for item in self.tree.scan_prefix(CUSTOMER) {
            let (key, raw) = item.map_err(sled_err("reading a customer"))?;
            if layout::customer_key_id(&key) == Some(id.as_bytes()) {
                return codec::decode(id, &raw).map(Some);
            }
        }
        Ok(None)
    }

    fn scan_scoped<S: DeserializeOwned>(
        &self,
        scope: Option<Scope>,
    ) -> impl Iterator<Item = Result<(Scope, String, S), StoreError>> {
        let prefix = match scope {
            Some(scope) => layout::scope_prefix(scope),
            None => CUSTOMER.to_vec(),
        };
        self.tree.scan_prefix(prefix).map(|item| {
            let (key, raw) = item.map_err(sled_err("scanning customers"))?;
            let (scope, id) = layout::parse_customer_key(&key)?;
            let state = codec::decode(&id, &raw)?;
            Ok((scope, id, state))
        })
    }

    fn customer_count(&self) -> Result<usize, StoreError> {
        count_prefix(&self.tree, CUSTOMER, "counting customers")
    }

    fn offsets(&self) -> Result<Vec<(String, i32, i64)>, StoreError> {
        self.tree
            .scan_prefix(OFFSET)
            .map(|item| {
                let (key, raw) = item.map_err(sled_err("reading offsets"))?;
                let (topic, partition) = layout::parse_offset_key(&key)?;
                Ok((topic, partition, layout::parse_offset_value(&key, &raw)?))
            })
            .collect()
    }

    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        layout::validate_position(topic, partition)?;
        let key = layout::offset_key(topic, partition);
        self.tree
            .get(&key)
            .map_err(sled_err("reading an offset"))?
            .map(|raw| layout::parse_offset_value(&key, &raw))
            .transpose()
    }

    fn set_offset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        layout::validate_offset(topic, partition, next_offset)?;
        self.tree
            .insert(
                layout::offset_key(topic, partition),
                &next_offset.to_be_bytes()[..],
            )
            .map_err(sled_err("writing an offset"))?;
        self.flush_if_every_commit("flushing an offset")
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let scan = |prefix| scan(&self.tree, prefix, "reading the outbox");
        outbox::pending(scan(OUTBOX), scan(outbox::PACKED), limit)
    }

    fn outbox_delete(&self, keys: &[u64]) -> Result<(), StoreError> {
        let Some(sorted) = outbox::sorted(keys) else {
            return Ok(());
        };
        let during = "deleting outbox rows";
        let _deleting = self.deleting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut writes = sled::Batch::default();
        if self.tree.scan_prefix(OUTBOX).next().is_some() {
            for &seq in &sorted {
                writes.remove(&layout::outbox_key(seq)[..]);
            }
        }
        for (key, left) in outbox::edits(scan(&self.tree, outbox::PACKED, during), &sorted)? {
            match left {
                Some(value) => writes.insert(key, value),
                None => writes.remove(key),
            }
        }
        self.tree.apply_batch(writes).map_err(sled_err(during))
    }

    fn outbox_len(&self) -> Result<usize, StoreError> {
        let during = "counting outbox rows";
        Ok(count_prefix(&self.tree, OUTBOX, during)?
            + outbox::rows_in(scan(&self.tree, outbox::PACKED, during))?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err("flushing"))?;
        self.blobs.sync_now().map_err(blob_err)
    }

    fn verify<S: DeserializeOwned>(&self) -> Result<VerifyReport, StoreError> {
        let entries = self
            .tree
            .iter()
            .map(|item| item.map_err(sled_err("verifying the store")));
        layout::verify_entries::<S, _, _>(entries, || {
            *self
                .next_outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }
}

/// The entries under `prefix`, errors mapped.
fn scan<'a>(
    tree: &'a sled::Tree,
    prefix: &'static [u8],
    during: &'static str,
) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + 'a {
    tree.scan_prefix(prefix)
        .map(move |item| item.map_err(sled_err(during)))
}

fn count_prefix(
    tree: &sled::Tree,
    prefix: &[u8],
    during: &'static str,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for item in tree.scan_prefix(prefix).keys() {
        item.map_err(sled_err(during))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod creation_tests {
    use super::*;

    #[test]
    fn a_crash_during_creation_leaves_nothing_that_looks_corrupt() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        // What a kill during an earlier creation leaves: a half-built
        // `.creating` dir and possibly an empty target.
        let leftover = parent.path().join("data.creating");
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("db"), b"half written").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let store = SledStore::open(&dir, StoreOptions::default()).unwrap();
        assert!(!leftover.exists(), "the leftover was cleaned up");
        assert_eq!(store.customer_count().unwrap(), 0);
        drop(store);
        // And the new store reopens as a recovered, initialised one.
        SledStore::open(&dir, StoreOptions::default()).unwrap();
    }
}

//! The store logic shared by the fjall and redb backends, written once over
//! a minimal ordered key-value [`Engine`]: the same single keyspace with the
//! prefixed keys of [`layout`] (the table in the crate docs), the same
//! outbox counter, schema marker, creation aside, verify and flush policy as
//! [`SledStore`](crate::SledStore).
//!
//! An engine supplies only point reads, ordered prefix scans, an atomic
//! batch write (durable or not) and a sync. Everything tier-store promises
//! on top of that (all-or-nothing commits, outbox keys in commit order and
//! never reused, refusing foreign data) lives here.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::layout::{self, CUSTOMER, OFFSET, OUTBOX, Scope};
use crate::outbox;
use crate::{
    Backend, CommitReceipt, FlushPolicy, PreparedBatch, StoreError, StoreOptions, VerifyReport,
    codec,
};

/// One write of an atomic batch.
#[derive(Debug)]
pub(crate) enum Write {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Key-value pairs of a scan, in key order.
pub(crate) type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

/// What a backend must provide: one ordered byte-keyed keyspace.
pub(crate) trait Engine: Send + Sync + Sized + 'static {
    /// The backend, for messages and [`Backend::detect`].
    const BACKEND: Backend;

    /// Opens the engine in `dir`; `create` is true only for a new store
    /// being built aside. Waits up to `opts.lock_timeout` for a lock that
    /// a store dropped a moment ago in this process may still hold.
    fn open(dir: &Path, create: bool, opts: &StoreOptions) -> Result<Self, StoreError>;

    /// The value stored under `key`.
    fn get(&self, key: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every entry whose key starts with `prefix` (all for `b""`), in key order.
    fn scan(&self, prefix: &[u8], during: &'static str) -> Entries<'_>;

    /// The greatest key starting with `prefix`.
    fn last_key(&self, prefix: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies every write atomically, also across a crash. With `durable`
    /// the writes (and all before them) are on disk when this returns;
    /// without, they are visible but durable only after [`Engine::sync`].
    fn write(
        &self,
        writes: Vec<Write>,
        durable: bool,
        during: &'static str,
    ) -> Result<(), StoreError>;

    /// Makes every write so far durable.
    fn sync(&self, during: &'static str) -> Result<(), StoreError>;
}

/// A store over an [`Engine`]; `FjallStore` and `RedbStore` wrap one.
pub(crate) struct KvCore<E: Engine> {
    engine: Arc<E>,
    dir: PathBuf,
    flush: FlushPolicy,
    /// Serializes outbox deletes: each rewrites the packs it reads.
    deleting: Mutex<()>,
    /// Next outbox sequence; the lock also serializes applies so that keys
    /// are handed out in apply order.
    next_outbox: Mutex<u64>,
    /// The background sync of [`FlushPolicy::IntervalMs`].
    syncer: Option<Syncer>,
}

impl<E: Engine> KvCore<E> {
    /// Opens the store in `dir`, creating it (aside, then renamed into
    /// place, like sled's) if `dir` is missing or empty. A non-empty dir must
    /// hold this engine's files and tier-store's schema marker.
    pub(crate) fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let fresh = dir_is_empty(dir)?;
        if fresh {
            create_aside(dir, |tmp| {
                let engine = E::open(tmp, true, &opts)?;
                init_meta(&engine)?;
                engine.sync("initializing a new store")
            })?;
        } else {
            match Backend::detect(dir) {
                Some(found) if found == E::BACKEND => {}
                Some(found) => {
                    return Err(StoreError::WrongBackend {
                        dir: dir.to_owned(),
                        found,
                        configured: E::BACKEND,
                    });
                }
                None => {
                    return Err(StoreError::NotAStore {
                        dir: dir.to_owned(),
                        backend: E::BACKEND,
                    });
                }
            }
        }
        let engine = Arc::new(E::open(dir, false, &opts)?);
        match engine.get(layout::META_SCHEMA, "reading the schema version")? {
            None => {
                return Err(StoreError::SchemaMissing {
                    dir: dir.to_owned(),
                });
            }
            Some(raw) => {
                let found = layout::parse_u32("meta", layout::META_SCHEMA, &raw)?;
                if found == 3 {
                    upgrade_v3(&*engine, dir)?;
                } else if layout::SCHEMA_READ_AS_IS.contains(&found) {
                    engine.write(
                        vec![Write::Put(
                            layout::META_SCHEMA.to_vec(),
                            layout::SCHEMA_VERSION.to_be_bytes().to_vec(),
                        )],
                        true,
                        "marking a schema 4 to 9 data dir as schema 10",
                    )?;
                } else if found != layout::SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch {
                        dir: dir.to_owned(),
                        found,
                        supported: layout::SCHEMA_VERSION,
                    });
                }
            }
        }
        let next_outbox = recover_outbox_next(&*engine)?;
        let syncer = match opts.flush {
            FlushPolicy::EveryCommit => None,
            FlushPolicy::IntervalMs(ms) => Some(Syncer::start(
                engine.clone(),
                Duration::from_millis(ms.max(1)),
            )),
        };
        tracing::info!(
            dir = %dir.display(),
            backend = %E::BACKEND,
            fresh,
            outbox_next = next_outbox,
            "opened tier store"
        );
        Ok(Self {
            engine,
            dir: dir.to_owned(),
            flush: opts.flush,
            next_outbox: Mutex::new(next_outbox),
            deleting: Mutex::new(()),
            syncer,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn every_commit(&self) -> bool {
        self.flush == FlushPolicy::EveryCommit
    }

    fn write_batch(
        &self,
        mut batch: PreparedBatch,
        durable: bool,
    ) -> Result<CommitReceipt, StoreError> {
        // Everything was encoded and validated by `prepare`; only the
        // outbox counter can still fail, before the engine is touched.
        // The states are compressed before the counter's lock is taken.
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
            if durable {
                self.engine.sync("flushing a committed batch")?;
            }
            return Ok(CommitReceipt {
                outbox_keys: first..end,
            });
        }
        let mut writes = Vec::with_capacity(
            batch.moved.len()
                + customers.len()
                + batch.offsets.len()
                + batch.meta.len()
                + batch.outbox.len().div_ceil(outbox::PACK_MAX)
                + 1,
        );
        writes.extend(batch.moved.into_iter().map(Write::Delete));
        writes.extend(
            customers
                .into_iter()
                .map(|(key, value)| Write::Put(key, value)),
        );
        for (topic, partition, offset) in &batch.offsets {
            writes.push(Write::Put(
                layout::offset_key(topic, *partition),
                offset.to_be_bytes().to_vec(),
            ));
        }
        for (key, value) in batch.meta {
            writes.push(Write::Put(key, value));
        }
        for (key, pack) in outbox::pack(first, &batch.outbox) {
            writes.push(Write::Put(key.to_vec(), pack));
        }
        if rows > 0 {
            writes.push(Write::Put(
                layout::META_OUTBOX_NEXT.to_vec(),
                end.to_be_bytes().to_vec(),
            ));
        }
        self.engine.write(writes, durable, "committing a batch")?;
        *next = end;
        Ok(CommitReceipt {
            outbox_keys: first..end,
        })
    }

    pub(crate) fn commit_prepared(
        &self,
        batch: PreparedBatch,
    ) -> Result<CommitReceipt, StoreError> {
        // One durable write rather than apply + sync: the same guarantee,
        // one fsync (redb: one commit) fewer.
        self.write_batch(batch, self.every_commit())
    }

    pub(crate) fn apply(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        self.write_batch(batch, false)
    }

    pub(crate) fn get_customer<S: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Option<S>, StoreError> {
        for item in self.engine.scan(CUSTOMER, "reading a customer") {
            let (key, raw) = item?;
            if layout::customer_key_id(&key) == Some(id.as_bytes()) {
                return codec::decode(id, &raw).map(Some);
            }
        }
        Ok(None)
    }

    /// Customers under `prefix` (all of them, or one scope's).
    pub(crate) fn scan_scoped<S: DeserializeOwned>(
        &self,
        scope: Option<Scope>,
    ) -> impl Iterator<Item = Result<(Scope, String, S), StoreError>> + '_ {
        let prefix = match scope {
            Some(scope) => layout::scope_prefix(scope),
            None => CUSTOMER.to_vec(),
        };
        self.engine.scan(&prefix, "scanning customers").map(|item| {
            let (key, raw) = item?;
            let (scope, id) = layout::parse_customer_key(&key)?;
            let state = codec::decode(&id, &raw)?;
            Ok((scope, id, state))
        })
    }

    fn count(&self, prefix: &[u8], during: &'static str) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.engine.scan(prefix, during) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    pub(crate) fn customer_count(&self) -> Result<usize, StoreError> {
        self.count(CUSTOMER, "counting customers")
    }

    pub(crate) fn offsets(&self) -> Result<Vec<(String, i32, i64)>, StoreError> {
        self.engine
            .scan(OFFSET, "reading offsets")
            .map(|item| {
                let (key, raw) = item?;
                let (topic, partition) = layout::parse_offset_key(&key)?;
                Ok((topic, partition, layout::parse_offset_value(&key, &raw)?))
            })
            .collect()
    }

    pub(crate) fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        layout::validate_position(topic, partition)?;
        let key = layout::offset_key(topic, partition);
        self.engine
            .get(&key, "reading an offset")?
            .map(|raw| layout::parse_offset_value(&key, &raw))
            .transpose()
    }

    pub(crate) fn set_offset(
        &self,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), StoreError> {
        layout::validate_offset(topic, partition, next_offset)?;
        self.engine.write(
            vec![Write::Put(
                layout::offset_key(topic, partition),
                next_offset.to_be_bytes().to_vec(),
            )],
            self.every_commit(),
            "writing an offset",
        )
    }

    pub(crate) fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let during = "reading the outbox";
        outbox::pending(
            self.engine.scan(OUTBOX, during),
            self.engine.scan(outbox::PACKED, during),
            limit,
        )
    }

    pub(crate) fn outbox_delete(&self, keys: &[u64]) -> Result<(), StoreError> {
        let Some(sorted) = outbox::sorted(keys) else {
            return Ok(());
        };
        let during = "deleting outbox rows";
        let _deleting = self.deleting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut writes = Vec::new();
        if self.engine.last_key(OUTBOX, during)?.is_some() {
            writes.extend(
                sorted
                    .iter()
                    .map(|&seq| Write::Delete(layout::outbox_key(seq).to_vec())),
            );
        }
        for (key, left) in outbox::edits(self.engine.scan(outbox::PACKED, during), &sorted)? {
            writes.push(match left {
                Some(value) => Write::Put(key, value),
                None => Write::Delete(key),
            });
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.engine.write(writes, false, during)
    }

    pub(crate) fn outbox_len(&self) -> Result<usize, StoreError> {
        let during = "counting outbox rows";
        Ok(
            self.count(OUTBOX, during)?
                + outbox::rows_in(self.engine.scan(outbox::PACKED, during))?,
        )
    }

    pub(crate) fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine
            .get(&layout::app_key(name)?, "reading an application record")
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.engine.sync("flushing")
    }

    pub(crate) fn verify<S: DeserializeOwned>(&self) -> Result<VerifyReport, StoreError> {
        layout::verify_entries::<S, _, _>(self.engine.scan(b"", "verifying the store"), || {
            *self
                .next_outbox
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }
}

impl<E: Engine> Drop for KvCore<E> {
    fn drop(&mut self) {
        // Stop the background sync first, then make the tail durable, as
        // sled does when its last handle is dropped.
        self.syncer = None;
        if let Err(error) = self.engine.sync("closing the store") {
            tracing::error!(%error, dir = %self.dir.display(), "final sync on close failed");
        }
    }
}

/// Syncs an engine every interval until dropped (sled's `flush_every_ms`).
struct Syncer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start<E: Engine>(engine: Arc<E>, every: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("tier-store-{}-sync", E::BACKEND))
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(error) = engine.sync("syncing in the background") {
                                tracing::error!(%error, "background store sync failed");
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            });
        match thread {
            Ok(thread) => Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            Err(error) => {
                // Without the thread, data becomes durable at the next
                // explicit sync or at close: a wider window, not a wrong state.
                tracing::error!(%error, "could not start the background store sync");
                Self {
                    stop: None,
                    thread: None,
                }
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the background store sync panicked");
        }
    }
}

/// True if `dir` does not exist or has no entries.
pub(crate) fn dir_is_empty(dir: &Path) -> Result<bool, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(StoreError::DataDir {
            dir: dir.to_owned(),
            source,
        }),
    }
}

/// Builds a new store with `build` in `<dir>.creating`, then renames it to
/// `dir` (missing or empty) and syncs the parent: a crash during creation
/// never leaves a half-built dir that later looks corrupt. A leftover
/// `.creating` dir is from such a crash (nothing was committed there) and is
/// removed first.
fn create_aside(
    dir: &Path,
    build: impl FnOnce(&Path) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
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
    std::fs::create_dir_all(&tmp).map_err(data_dir_err)?;
    build(&tmp)?;
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

fn init_meta(engine: &impl Engine) -> Result<(), StoreError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let created_by = concat!("tier-store ", env!("CARGO_PKG_VERSION"));
    engine.write(
        vec![
            Write::Put(
                layout::META_SCHEMA.to_vec(),
                layout::SCHEMA_VERSION.to_be_bytes().to_vec(),
            ),
            Write::Put(
                layout::META_OUTBOX_NEXT.to_vec(),
                0u64.to_be_bytes().to_vec(),
            ),
            Write::Put(
                layout::META_CREATED_AT.to_vec(),
                now_ms.to_be_bytes().to_vec(),
            ),
            Write::Put(
                layout::META_CREATED_BY.to_vec(),
                created_by.as_bytes().to_vec(),
            ),
        ],
        true,
        "initializing a new store",
    )
}

/// Rewrites a version-3 keyspace to version 4 in one atomic, durable write
/// (see `layout::upgrade_v3`).
fn upgrade_v3(engine: &impl Engine, dir: &Path) -> Result<(), StoreError> {
    let during = "upgrading the data dir from schema 3";
    let customers = engine
        .scan(CUSTOMER, during)
        .collect::<Result<Vec<_>, _>>()?;
    let offsets = engine
        .scan(OFFSET, during)
        .map(|item| layout::parse_offset_key(&item?.0))
        .collect::<Result<Vec<_>, _>>()?;
    let upgrade = layout::upgrade_v3(customers, &offsets)?;
    let summary = upgrade.summary();
    let mut writes: Vec<Write> = Vec::with_capacity(upgrade.deletes.len() + upgrade.puts.len() + 1);
    writes.extend(upgrade.deletes.into_iter().map(Write::Delete));
    writes.extend(upgrade.puts.into_iter().map(|(k, v)| Write::Put(k, v)));
    writes.push(Write::Put(
        layout::META_SCHEMA.to_vec(),
        layout::SCHEMA_VERSION.to_be_bytes().to_vec(),
    ));
    engine.write(writes, true, during)?;
    layout::log_v3_upgrade(dir, summary);
    Ok(())
}

/// The counter persisted with every commit, or one past the newest outbox
/// row if that is larger (it cannot be, short of damage; cheap to be sure).
fn recover_outbox_next(engine: &impl Engine) -> Result<u64, StoreError> {
    let during = "recovering the outbox sequence";
    let persisted = match engine.get(layout::META_OUTBOX_NEXT, during)? {
        Some(raw) => layout::parse_u64("meta", layout::META_OUTBOX_NEXT, &raw)?,
        None => 0,
    };
    let after_single = match engine.last_key(OUTBOX, during)? {
        Some(key) => layout::parse_outbox_key(&key)?
            .checked_add(1)
            .ok_or(StoreError::OutboxExhausted)?,
        None => 0,
    };
    let after_packs = match engine.last_key(outbox::PACKED, during)? {
        Some(key) => match engine.get(&key, during)? {
            Some(pack) => outbox::after_last(&key, &pack)?,
            None => 0,
        },
        None => 0,
    };
    Ok(persisted.max(after_single).max(after_packs))
}

/// Implements [`Store`](crate::Store) for a struct with a `core: KvCore<_>`
/// field by delegating every method.
macro_rules! delegate_store_to_core {
    ($ty:ty) => {
        impl $crate::Store for $ty {
            fn commit_prepared(
                &self,
                batch: $crate::PreparedBatch,
            ) -> Result<$crate::CommitReceipt, $crate::StoreError> {
                self.core.commit_prepared(batch)
            }
            fn apply(
                &self,
                batch: $crate::PreparedBatch,
            ) -> Result<$crate::CommitReceipt, $crate::StoreError> {
                self.core.apply(batch)
            }
            fn get_customer<S: serde::de::DeserializeOwned>(
                &self,
                id: &str,
            ) -> Result<Option<S>, $crate::StoreError> {
                self.core.get_customer(id)
            }
            fn scan_scoped<S: serde::de::DeserializeOwned>(
                &self,
                scope: Option<$crate::Scope>,
            ) -> impl Iterator<Item = Result<($crate::Scope, String, S), $crate::StoreError>> {
                self.core.scan_scoped(scope)
            }
            fn customer_count(&self) -> Result<usize, $crate::StoreError> {
                self.core.customer_count()
            }
            fn offsets(&self) -> Result<Vec<(String, i32, i64)>, $crate::StoreError> {
                self.core.offsets()
            }
            fn offset(
                &self,
                topic: &str,
                partition: i32,
            ) -> Result<Option<i64>, $crate::StoreError> {
                self.core.offset(topic, partition)
            }
            fn set_offset(
                &self,
                topic: &str,
                partition: i32,
                next_offset: i64,
            ) -> Result<(), $crate::StoreError> {
                self.core.set_offset(topic, partition, next_offset)
            }
            fn outbox_pending(
                &self,
                limit: usize,
            ) -> Result<Vec<(u64, Vec<u8>)>, $crate::StoreError> {
                self.core.outbox_pending(limit)
            }
            fn outbox_delete(&self, keys: &[u64]) -> Result<(), $crate::StoreError> {
                self.core.outbox_delete(keys)
            }
            fn outbox_len(&self) -> Result<usize, $crate::StoreError> {
                self.core.outbox_len()
            }
            fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                self.core.meta(name)
            }
            fn flush(&self) -> Result<(), $crate::StoreError> {
                self.core.flush()
            }
            fn verify<S: serde::de::DeserializeOwned>(
                &self,
            ) -> Result<$crate::VerifyReport, $crate::StoreError> {
                self.core.verify::<S>()
            }
        }
    };
}
#[allow(unused_imports, reason = "used only when a kv backend is compiled in")]
pub(crate) use delegate_store_to_core;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommitBatch, Store};

    /// Rewrites a closed store's keyspace into the version-3 layout
    /// (customer keys without a scope), with one more offset.
    fn make_v3<E: Engine>(dir: &Path, extra_offset: (&str, i32)) {
        let engine = E::open(dir, false, &StoreOptions::default()).unwrap();
        let customers: Vec<_> = engine
            .scan(CUSTOMER, "test")
            .collect::<Result<_, _>>()
            .unwrap();
        let mut writes = Vec::new();
        for (key, value) in customers {
            let mut old = CUSTOMER.to_vec();
            old.extend_from_slice(&key[6..]);
            writes.push(Write::Delete(key));
            writes.push(Write::Put(old, value));
        }
        writes.push(Write::Put(
            layout::offset_key(extra_offset.0, extra_offset.1),
            5i64.to_be_bytes().to_vec(),
        ));
        writes.push(Write::Put(
            layout::META_SCHEMA.to_vec(),
            3u32.to_be_bytes().to_vec(),
        ));
        engine.write(writes, true, "test").unwrap();
    }

    fn upgrade_in_place<E: Engine, St: Store>(open: impl Fn(&Path) -> St) {
        for (extra, expect) in [
            (("payments", 0), Scope::partition(0).unwrap()),
            (("payments", 3), Scope::UNSCOPED),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("data");
            let store = open(&dir);
            let p0 = Scope::partition(0).unwrap();
            let (a, b) = (7u32, 9u32);
            store
                .commit(&CommitBatch {
                    customers: vec![(p0, "a", &a), (p0, "b", &b)],
                    offsets: vec![("orders", 0, 10)],
                    ..CommitBatch::new()
                })
                .unwrap();
            drop(store);
            make_v3::<E>(&dir, extra);
            let store = open(&dir);
            let found: Vec<(Scope, String, u32)> =
                store.scan_scoped(None).collect::<Result<_, _>>().unwrap();
            assert_eq!(
                found,
                [(expect, "a".to_owned(), 7), (expect, "b".to_owned(), 9)],
                "offsets on partitions 0 and {}",
                extra.1
            );
            assert_eq!(store.verify::<u32>().unwrap().customers, 2);
            assert_eq!(store.get_customer::<u32>("b").unwrap(), Some(9));
        }
    }

    /// A customer's value goes to the engine compressed (format 7) and
    /// reads back, also after a reopen.
    fn states_are_stored_compressed<E: Engine, St: Store>(open: impl Fn(&Path) -> St) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let store = open(&dir);
        let p0 = Scope::partition(0).unwrap();
        let orders: Vec<(String, u64)> = (0..50).map(|i| (format!("order-{i}"), i % 4)).collect();
        store
            .commit(&CommitBatch {
                customers: vec![(p0, "a", &orders)],
                ..CommitBatch::new()
            })
            .unwrap();
        drop(store);
        let engine = E::open(&dir, false, &StoreOptions::default()).unwrap();
        let stored: Vec<_> = engine
            .scan(CUSTOMER, "test")
            .collect::<Result<_, _>>()
            .unwrap();
        let encoded = codec::encode("a", &orders).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].1[0], codec::FORMAT_V7_ZSTD);
        assert!(stored[0].1.len() < encoded.len() / 2);
        drop(engine);
        let store = open(&dir);
        assert_eq!(
            store.get_customer::<Vec<(String, u64)>>("a").unwrap(),
            Some(orders)
        );
    }

    #[cfg(feature = "fjall")]
    #[test]
    fn fjall_stores_states_compressed() {
        states_are_stored_compressed::<crate::fjall_store::FjallEngine, _>(|dir| {
            crate::FjallStore::open(dir, StoreOptions::default()).unwrap()
        });
    }

    #[cfg(feature = "redb")]
    #[test]
    fn redb_stores_states_compressed() {
        states_are_stored_compressed::<crate::redb_store::RedbEngine, _>(|dir| {
            crate::RedbStore::open(dir, StoreOptions::default()).unwrap()
        });
    }

    #[cfg(feature = "fjall")]
    #[test]
    fn fjall_upgrades_a_schema_3_dir_in_place() {
        upgrade_in_place::<crate::fjall_store::FjallEngine, _>(|dir| {
            crate::FjallStore::open(dir, StoreOptions::default()).unwrap()
        });
    }

    #[cfg(feature = "redb")]
    #[test]
    fn redb_upgrades_a_schema_3_dir_in_place() {
        upgrade_in_place::<crate::redb_store::RedbEngine, _>(|dir| {
            crate::RedbStore::open(dir, StoreOptions::default()).unwrap()
        });
    }
}

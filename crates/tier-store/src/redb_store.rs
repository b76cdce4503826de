//! The redb backend (cargo feature `redb`): the store in one redb table, a
//! copy-on-write B-tree in the single file `state.redb` of the data dir.
//!
//! A commit is one redb write transaction, atomic also across a crash.
//! `apply` commits with `Durability::None` (visible at once; kept by a
//! crash only once a later durable commit covers it, so a crash keeps a
//! prefix of the applied batches); `sync` commits an empty transaction with
//! `Durability::Immediate`, which makes every earlier commit durable, and a
//! commit under [`FlushPolicy::EveryCommit`](crate::FlushPolicy) is
//! `Immediate` itself. redb has no background fsync, so
//! [`FlushPolicy::IntervalMs`](crate::FlushPolicy) runs a sync thread (see
//! `kv`).
//!
//! The file is opened with redb's integrity check on: a damaged file fails
//! to open with `Corrupted` (and is quarantined) instead of risking a panic
//! on a later read. It reads the whole file at start, as tierd's own
//! verify does anyway.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::backend::REDB_FILE;
use crate::kv::{Engine, Entries, KvCore, Write, delegate_store_to_core};
use crate::{Backend, StoreError, StoreOptions};

/// The one redb table holding all of tier-store's keys.
const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("tierd-state");

fn redb_err<E: Into<redb::Error>>(during: &'static str) -> impl FnOnce(E) -> StoreError {
    move |source| StoreError::Redb {
        during,
        source: source.into(),
    }
}

/// The key just past every key starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if let Some(next) = last.checked_add(1) {
            end.push(next);
            return Some(end);
        }
    }
    None
}

/// Whether a redb error means the data on disk cannot be trusted.
pub(crate) fn is_corruption(error: &redb::Error) -> bool {
    if let redb::Error::Io(io) = error {
        // "Not a redb database: magic number mismatch" and the like.
        return io.kind() == std::io::ErrorKind::InvalidData;
    }
    matches!(
        error,
        redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::TableDoesNotExist(_)
            | redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)
    )
}

/// The redb database.
pub(crate) struct RedbEngine {
    db: Database,
}

impl Engine for RedbEngine {
    const BACKEND: Backend = Backend::Redb;

    fn open(dir: &Path, create: bool, opts: &StoreOptions) -> Result<Self, StoreError> {
        let during = "opening the data dir";
        let path = dir.join(REDB_FILE);
        let cache = usize::try_from(opts.cache_capacity_bytes).unwrap_or(usize::MAX);
        let deadline = Instant::now() + opts.lock_timeout;
        let mut pause = Duration::from_millis(2);
        let db = loop {
            let mut builder = Database::builder();
            builder
                .set_cache_size(cache)
                .set_check_integrity_on_open(!create);
            let result = if create {
                builder.create(&path)
            } else {
                builder.open(&path)
            };
            match result {
                // A store dropped a moment ago may still hold the lock.
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                result => break result.map_err(redb_err(during))?,
            }
        };
        if create {
            let tx = db.begin_write().map_err(redb_err(during))?;
            tx.open_table(TABLE).map_err(redb_err(during))?;
            tx.commit().map_err(redb_err(during))?;
        }
        Ok(Self { db })
    }

    fn get(&self, key: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(redb_err(during))?;
        let table = tx.open_table(TABLE).map_err(redb_err(during))?;
        Ok(table
            .get(key)
            .map_err(redb_err(during))?
            .map(|v| v.value().to_vec()))
    }

    fn scan(&self, prefix: &[u8], during: &'static str) -> Entries<'_> {
        let range = (|| {
            let tx = self.db.begin_read().map_err(redb_err(during))?;
            let table = tx.open_table(TABLE).map_err(redb_err(during))?;
            // The range keeps its read transaction alive.
            match prefix_end(prefix) {
                Some(end) => table.range::<&[u8]>(prefix..end.as_slice()),
                None => table.range::<&[u8]>(prefix..),
            }
            .map_err(redb_err(during))
        })();
        match range {
            Ok(range) => Box::new(range.map(move |item| {
                let (key, value) = item.map_err(redb_err(during))?;
                Ok((key.value().to_vec(), value.value().to_vec()))
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn last_key(&self, prefix: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(redb_err(during))?;
        let table = tx.open_table(TABLE).map_err(redb_err(during))?;
        let mut range = match prefix_end(prefix) {
            Some(end) => table.range::<&[u8]>(prefix..end.as_slice()),
            None => table.range::<&[u8]>(prefix..),
        }
        .map_err(redb_err(during))?;
        range
            .next_back()
            .map(|item| {
                item.map(|(k, _)| k.value().to_vec())
                    .map_err(redb_err(during))
            })
            .transpose()
    }

    fn write(
        &self,
        writes: Vec<Write>,
        durable: bool,
        during: &'static str,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(redb_err(during))?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(redb_err(during))?;
        {
            let mut table = tx.open_table(TABLE).map_err(redb_err(during))?;
            for write in &writes {
                match write {
                    Write::Put(key, value) => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(redb_err(during))?;
                    }
                    Write::Delete(key) => {
                        table.remove(key.as_slice()).map_err(redb_err(during))?;
                    }
                }
            }
        }
        // On any error above, dropping `tx` aborts it: nothing was written.
        tx.commit().map_err(redb_err(during))
    }

    fn sync(&self, during: &'static str) -> Result<(), StoreError> {
        // An empty durable commit persists every non-durable one before it.
        let mut tx = self.db.begin_write().map_err(redb_err(during))?;
        tx.set_durability(Durability::Immediate)
            .map_err(redb_err(during))?;
        tx.commit().map_err(redb_err(during))
    }
}

/// [`Store`](crate::Store) on redb (cargo feature `redb`): the same layout,
/// atomicity and flush policy as [`SledStore`](crate::SledStore), in one
/// redb table (see the module docs of `redb_store`).
pub struct RedbStore {
    core: KvCore<RedbEngine>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("dir", &self.core.dir())
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store in `dir`, creating it if `dir` is missing or empty;
    /// the same checks and errors as [`SledStore::open`](crate::SledStore::open),
    /// plus [`StoreError::WrongBackend`] for a dir of another backend.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        Ok(Self {
            core: KvCore::open(dir, opts)?,
        })
    }

    /// Opens the store; a corrupt data dir is moved aside with
    /// [`quarantine`](crate::quarantine) and a fresh store opened in its place, as
    /// [`SledStore::open_or_quarantine`](crate::SledStore::open_or_quarantine).
    pub fn open_or_quarantine(
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<(Self, Option<PathBuf>), StoreError> {
        crate::quarantine::open_or_quarantine(dir, opts, Self::open)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.core.dir()
    }
}

delegate_store_to_core!(RedbStore);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{self, OUTBOX};

    #[test]
    fn prefix_end_bounds_exactly_the_prefixed_keys() {
        assert_eq!(prefix_end(b"x/"), Some(b"x0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
        let end = prefix_end(OUTBOX).unwrap();
        assert!(layout::outbox_key(u64::MAX).as_slice() < end.as_slice());
        assert!(layout::outbox_key(0).as_slice() >= OUTBOX);
    }
}

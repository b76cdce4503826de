//! The fjall backend (cargo feature `fjall`): the store in one fjall
//! keyspace, an LSM tree with a write-ahead journal.
//!
//! A commit is one fjall `WriteBatch`, which fjall writes to its journal as
//! one checksummed unit and recovers whole or not at all. `apply` writes
//! the batch to the journal's OS buffers (it survives a killed process; a
//! power loss keeps a prefix of the batches); `sync` is
//! `Database::persist(PersistMode::SyncAll)`. fjall has no background
//! fsync of its own, so [`FlushPolicy::IntervalMs`](crate::FlushPolicy)
//! runs a sync thread (see `kv`).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::kv::{Engine, Entries, KvCore, Write, delegate_store_to_core};
use crate::{Backend, StoreError, StoreOptions};

/// Name of the one fjall keyspace holding all of tier-store's keys.
const KEYSPACE: &str = "tierd-state";

fn fjall_err(during: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |source| StoreError::Fjall { during, source }
}

/// Whether a fjall error means the data on disk cannot be trusted.
pub(crate) fn is_corruption(error: &fjall::Error) -> bool {
    use fjall::LsmError;
    match error {
        fjall::Error::Storage(inner) => matches!(
            inner,
            LsmError::Decompress(_)
                | LsmError::InvalidVersion(_)
                | LsmError::Unrecoverable
                | LsmError::ChecksumMismatch { .. }
                | LsmError::InvalidTag(_)
                | LsmError::InvalidTrailer
                | LsmError::InvalidHeader(_)
                | LsmError::Utf8(_)
        ),
        fjall::Error::JournalRecovery(_)
        | fjall::Error::InvalidVersion(_)
        | fjall::Error::Decompress(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidTag(_)
        | fjall::Error::Unrecoverable => true,
        // I/O, a lock held elsewhere, a poisoned (failed-fsync) database:
        // retry or restart, never throw the data away.
        _ => false,
    }
}

/// The fjall database and its one keyspace.
pub(crate) struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
}

impl Engine for FjallEngine {
    const BACKEND: Backend = Backend::Fjall;

    fn open(dir: &Path, _create: bool, opts: &StoreOptions) -> Result<Self, StoreError> {
        let during = "opening the data dir";
        let deadline = Instant::now() + opts.lock_timeout;
        let mut pause = Duration::from_millis(2);
        let db = loop {
            match Database::builder(dir)
                .cache_size(opts.cache_capacity_bytes)
                .open()
            {
                // A store dropped a moment ago may still hold the lock.
                Err(fjall::Error::Locked) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                result => break result.map_err(fjall_err(during))?,
            }
        };
        let keyspace = db
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(fjall_err(during))?;
        Ok(Self { db, keyspace })
    }

    fn get(&self, key: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .keyspace
            .get(key)
            .map_err(fjall_err(during))?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8], during: &'static str) -> Entries<'_> {
        Box::new(self.keyspace.prefix(prefix).map(move |guard| {
            let (key, value) = guard.into_inner().map_err(fjall_err(during))?;
            Ok((key.to_vec(), value.to_vec()))
        }))
    }

    fn last_key(&self, prefix: &[u8], during: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        self.keyspace
            .prefix(prefix)
            .next_back()
            .map(|guard| guard.key().map(|k| k.to_vec()).map_err(fjall_err(during)))
            .transpose()
    }

    fn write(
        &self,
        writes: Vec<Write>,
        durable: bool,
        during: &'static str,
    ) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(Some(if durable {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        }));
        for write in writes {
            match write {
                Write::Put(key, value) => batch.insert(&self.keyspace, key, value),
                Write::Delete(key) => batch.remove(&self.keyspace, key),
            }
        }
        batch.commit().map_err(fjall_err(during))
    }

    fn sync(&self, during: &'static str) -> Result<(), StoreError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(fjall_err(during))
    }
}

/// [`Store`](crate::Store) on fjall (cargo feature `fjall`): the same
/// layout, atomicity and flush policy as [`SledStore`](crate::SledStore),
/// in one fjall keyspace (see the module docs of `fjall_store`).
pub struct FjallStore {
    core: KvCore<FjallEngine>,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("dir", &self.core.dir())
            .finish_non_exhaustive()
    }
}

impl FjallStore {
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
    ) -> Result<(Self, Option<std::path::PathBuf>), StoreError> {
        crate::quarantine::open_or_quarantine(dir, opts, Self::open)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.core.dir()
    }
}

delegate_store_to_core!(FjallStore);

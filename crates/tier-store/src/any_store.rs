//! [`AnyStore`]: one concrete type for "the store of the configured
//! backend". [`Store`] has generic methods and so is not object-safe; this
//! enum dispatches each call to the backend it holds instead.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[cfg(feature = "fjall")]
use crate::FjallStore;
#[cfg(feature = "redb")]
use crate::RedbStore;
use crate::{
    Backend, CommitReceipt, PreparedBatch, Scope, SledStore, Store, StoreError, StoreOptions,
    VerifyReport,
};

/// The store of whichever [`Backend`] was chosen at start; implements
/// [`Store`] by dispatch. Variants exist only for backends compiled in.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// sled (always compiled in).
    Sled(SledStore),
    /// fjall (feature `fjall`).
    #[cfg(feature = "fjall")]
    Fjall(FjallStore),
    /// redb (feature `redb`).
    #[cfg(feature = "redb")]
    Redb(RedbStore),
}

/// Calls `$call` on the store inside `$self`, whichever backend it is.
macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sled($s) => $call,
            #[cfg(feature = "fjall")]
            AnyStore::Fjall($s) => $call,
            #[cfg(feature = "redb")]
            AnyStore::Redb($s) => $call,
        }
    };
}

impl AnyStore {
    /// Opens (or creates) a `backend` store in `dir`.
    ///
    /// Refuses a backend not compiled in ([`StoreError::BackendNotCompiled`])
    /// and a dir holding another backend's store
    /// ([`StoreError::WrongBackend`], not corruption: the data stays where
    /// it is). Otherwise the same as the backend's own `open`.
    pub fn open(backend: Backend, dir: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        check_dir(backend, dir)?;
        match backend {
            Backend::Sled => SledStore::open(dir, opts).map(Self::Sled),
            #[cfg(feature = "fjall")]
            Backend::Fjall => FjallStore::open(dir, opts).map(Self::Fjall),
            #[cfg(feature = "redb")]
            Backend::Redb => RedbStore::open(dir, opts).map(Self::Redb),
            #[allow(unreachable_patterns, reason = "reachable when a feature is off")]
            other => Err(not_compiled(other)),
        }
    }

    /// Opens the store; a corrupt data dir is quarantined and a fresh store
    /// opened in its place (the backend's `open_or_quarantine`). A dir of
    /// another backend is refused, never quarantined.
    pub fn open_or_quarantine(
        backend: Backend,
        dir: &Path,
        opts: StoreOptions,
    ) -> Result<(Self, Option<PathBuf>), StoreError> {
        check_dir(backend, dir)?;
        match backend {
            Backend::Sled => {
                SledStore::open_or_quarantine(dir, opts).map(|(s, m)| (Self::Sled(s), m))
            }
            #[cfg(feature = "fjall")]
            Backend::Fjall => {
                FjallStore::open_or_quarantine(dir, opts).map(|(s, m)| (Self::Fjall(s), m))
            }
            #[cfg(feature = "redb")]
            Backend::Redb => {
                RedbStore::open_or_quarantine(dir, opts).map(|(s, m)| (Self::Redb(s), m))
            }
            #[allow(unreachable_patterns, reason = "reachable when a feature is off")]
            other => Err(not_compiled(other)),
        }
    }

    /// The backend of this store.
    pub fn backend(&self) -> Backend {
        match self {
            AnyStore::Sled(_) => Backend::Sled,
            #[cfg(feature = "fjall")]
            AnyStore::Fjall(_) => Backend::Fjall,
            #[cfg(feature = "redb")]
            AnyStore::Redb(_) => Backend::Redb,
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        dispatch!(self, s => s.dir())
    }
}

fn not_compiled(backend: Backend) -> StoreError {
    match backend.ensure_compiled_in() {
        Err(e) => e,
        // Unreachable: `open` matched every compiled-in backend.
        Ok(b) => StoreError::UnknownBackend {
            name: b.to_string(),
            compiled: Backend::compiled_in_list(),
        },
    }
}

/// The backend must be compiled in, and `dir` must not hold another one's.
fn check_dir(backend: Backend, dir: &Path) -> Result<(), StoreError> {
    backend.ensure_compiled_in()?;
    match Backend::detect(dir) {
        Some(found) if found != backend => Err(StoreError::WrongBackend {
            dir: dir.to_owned(),
            found,
            configured: backend,
        }),
        _ => Ok(()),
    }
}

impl Store for AnyStore {
    fn commit_prepared(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        dispatch!(self, s => s.commit_prepared(batch))
    }

    fn apply(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        dispatch!(self, s => s.apply(batch))
    }

    fn sync(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.sync())
    }

    fn get_customer<S: DeserializeOwned>(&self, id: &str) -> Result<Option<S>, StoreError> {
        dispatch!(self, s => s.get_customer(id))
    }

    fn scan_scoped<S: DeserializeOwned>(
        &self,
        scope: Option<Scope>,
    ) -> impl Iterator<Item = Result<(Scope, String, S), StoreError>> {
        // The backends' iterators are distinct opaque types: hold the one
        // in use, the others stay `None`.
        #[cfg(not(all(feature = "fjall", feature = "redb")))]
        type Items<S> = std::iter::Empty<Result<(Scope, String, S), StoreError>>;
        #[allow(unreachable_patterns, reason = "reachable when a feature is on")]
        let sled = match self {
            AnyStore::Sled(s) => Some(s.scan_scoped::<S>(scope)),
            _ => None,
        };
        #[cfg(feature = "fjall")]
        let fjall = match self {
            AnyStore::Fjall(s) => Some(s.scan_scoped::<S>(scope)),
            _ => None,
        };
        #[cfg(not(feature = "fjall"))]
        let fjall: Option<Items<S>> = None;
        #[cfg(feature = "redb")]
        let redb = match self {
            AnyStore::Redb(s) => Some(s.scan_scoped::<S>(scope)),
            _ => None,
        };
        #[cfg(not(feature = "redb"))]
        let redb: Option<Items<S>> = None;
        sled.into_iter()
            .flatten()
            .chain(fjall.into_iter().flatten())
            .chain(redb.into_iter().flatten())
    }

    fn customer_count(&self) -> Result<usize, StoreError> {
        dispatch!(self, s => s.customer_count())
    }

    fn offsets(&self) -> Result<Vec<(String, i32, i64)>, StoreError> {
        dispatch!(self, s => s.offsets())
    }

    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.offset(topic, partition))
    }

    fn set_offset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_offset(topic, partition, next_offset))
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.outbox_pending(limit))
    }

    fn outbox_delete(&self, keys: &[u64]) -> Result<(), StoreError> {
        dispatch!(self, s => s.outbox_delete(keys))
    }

    fn outbox_len(&self) -> Result<usize, StoreError> {
        dispatch!(self, s => s.outbox_len())
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.meta(name))
    }

    fn flush(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.flush())
    }

    fn verify<S: DeserializeOwned>(&self) -> Result<VerifyReport, StoreError> {
        dispatch!(self, s => s.verify::<S>())
    }
}

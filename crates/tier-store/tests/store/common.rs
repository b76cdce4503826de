//! Test state types and the backend harness.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::ser::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use tempfile::TempDir;
use tier_store::{
    AnyStore, FlushPolicy, MemStore, SLED_SEGMENT_BYTES, Scope, SledStore, Store, StoreOptions,
};

/// Stand-in for the customer projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) score: i64,
    pub(crate) tier: String,
    pub(crate) orders: Vec<u32>,
}

/// Customers of input partition 0, for a `CommitBatch`.
pub(crate) fn p0<'a, S>(
    customers: impl IntoIterator<Item = (&'a str, &'a S)>,
) -> Vec<(Scope, &'a str, &'a S)> {
    let p0 = Scope::partition(0).expect("partition 0");
    customers
        .into_iter()
        .map(|(id, state)| (p0, id, state))
        .collect()
}

pub(crate) fn account(score: i64, tier: &str) -> Account {
    Account {
        score,
        tier: tier.to_owned(),
        orders: vec![1, 2, 3],
    }
}

/// Serializes exactly like its `Account`, or fails when poisoned: the way to
/// make a commit fail half-way through encoding.
#[derive(Debug, Clone)]
pub(crate) struct MaybePoisoned {
    pub(crate) account: Account,
    pub(crate) poisoned: bool,
}

impl Serialize for MaybePoisoned {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.poisoned {
            return Err(S::Error::custom("poisoned on purpose"));
        }
        self.account.serialize(serializer)
    }
}

pub(crate) fn fine(account: Account) -> MaybePoisoned {
    MaybePoisoned {
        account,
        poisoned: false,
    }
}

pub(crate) fn poisoned() -> MaybePoisoned {
    MaybePoisoned {
        account: account(0, "none"),
        poisoned: true,
    }
}

/// Everything a caller can observe through the trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) customers: Vec<(String, Account)>,
    pub(crate) customer_count: usize,
    pub(crate) offsets: Vec<(String, i32, i64)>,
    pub(crate) outbox: Vec<(u64, Vec<u8>)>,
    pub(crate) outbox_len: usize,
}

pub(crate) fn snapshot(store: &impl Store) -> Snapshot {
    Snapshot {
        customers: store
            .scan_customers::<Account>()
            .collect::<Result<_, _>>()
            .unwrap(),
        customer_count: store.customer_count().unwrap(),
        offsets: store.offsets().unwrap(),
        outbox: store.outbox_pending(usize::MAX).unwrap(),
        outbox_len: store.outbox_len().unwrap(),
    }
}

/// A store plus the ability to "restart the process".
pub(crate) trait Backend {
    type S: Store;
    fn store(&self) -> &Self::S;
    /// Drops and reopens a durable store; a no-op for the in-memory one,
    /// whose state lives exactly as long as the process.
    fn reopen(&mut self);
}

pub(crate) struct Mem(MemStore);

pub(crate) fn mem() -> Mem {
    Mem(MemStore::new())
}

impl Backend for Mem {
    type S = MemStore;
    fn store(&self) -> &MemStore {
        &self.0
    }
    fn reopen(&mut self) {}
}

pub(crate) struct Sled {
    // Field order: the store must be dropped before the directory.
    store: Option<SledStore>,
    opts: StoreOptions,
    dir: TempDir,
}

pub(crate) fn sled(flush: FlushPolicy) -> Sled {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        flush,
        cache_capacity_bytes: 16 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let store = SledStore::open(&dir.path().join("data"), opts.clone()).unwrap();
    Sled {
        store: Some(store),
        opts,
        dir,
    }
}

impl Sled {
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn close(&mut self) {
        self.store = None;
    }
}

impl Backend for Sled {
    type S = SledStore;
    fn store(&self) -> &SledStore {
        self.store.as_ref().unwrap()
    }
    fn reopen(&mut self) {
        self.store = None;
        self.store = Some(SledStore::open(&self.data_dir(), self.opts.clone()).unwrap());
    }
}

/// A store of any backend on disk, opened through [`AnyStore`] (which is
/// what tierd uses), in a temporary directory.
pub(crate) struct Disk {
    // Field order: the store must be dropped before the directory.
    store: Option<AnyStore>,
    backend: tier_store::Backend,
    opts: StoreOptions,
    dir: TempDir,
}

pub(crate) fn disk(backend: tier_store::Backend, flush: FlushPolicy) -> Disk {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        flush,
        cache_capacity_bytes: 16 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let store = AnyStore::open(backend, &dir.path().join("data"), opts.clone()).unwrap();
    assert_eq!(store.backend(), backend);
    Disk {
        store: Some(store),
        backend,
        opts,
        dir,
    }
}

impl Disk {
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

impl Backend for Disk {
    type S = AnyStore;
    fn store(&self) -> &AnyStore {
        self.store.as_ref().unwrap()
    }
    fn reopen(&mut self) {
        self.store = None;
        self.store =
            Some(AnyStore::open(self.backend, &self.data_dir(), self.opts.clone()).unwrap());
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Opens sled directly on a dir the store created, waiting for a store
/// dropped a moment ago to release its lock (the store's own `open` does
/// the same).
pub(crate) fn raw_sled(dir: &Path) -> sled::Db {
    raw_sled_with(dir, SLED_SEGMENT_BYTES)
}

/// [`raw_sled`] with segments of `segment_size` bytes (sled refuses to open
/// a dir with another size than it was created with).
pub(crate) fn raw_sled_with(dir: &Path, segment_size: usize) -> sled::Db {
    let config = sled::Config::new().path(dir).segment_size(segment_size);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if Instant::now() < deadline => {
                eprintln!("retrying: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result.unwrap(),
        }
    }
}

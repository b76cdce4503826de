//! How a store is opened: durability and cache size, for every backend.

use std::time::Duration;

/// When committed data reaches the disk.
///
/// Either way a crash leaves a state that some prefix of the commits
/// produced: state, offsets and outbox stay consistent with each other, and
/// the consumer resumes from the offsets that survived. `IntervalMs` only
/// widens the window of work that is redone after a crash (outbox rows
/// recomputed by the replay are published again with the same per-customer
/// sequence, which consumers de-duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// `commit` and `set_offset` return only after an fsync.
    EveryCommit,
    /// A background sync every this many milliseconds (0 is treated as 1):
    /// sled's own flusher; for fjall and redb a tier-store thread.
    IntervalMs(u64),
}

/// Options for opening a store ([`SledStore::open`](crate::SledStore::open),
/// [`AnyStore::open`](crate::AnyStore::open), ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Durability of commits.
    pub flush: FlushPolicy,
    /// Size of the backend's cache in bytes (sled's page cache, fjall's
    /// block cache, redb's page cache).
    pub cache_capacity_bytes: u64,
    /// How long `open` waits for the data dir's lock. sled releases it a
    /// moment after the previous store in this process was dropped (fjall
    /// and redb on drop); another process holding it makes `open` fail
    /// after this long.
    pub lock_timeout: Duration,
}

impl Default for StoreOptions {
    /// `EveryCommit`, a 64 MiB cache, a 2 s lock timeout.
    ///
    /// tierd's engine holds every customer in memory and reads the store
    /// only when it loads a partition, so the cache mostly serves the
    /// commits: the pages of the keys a unit writes. At 1,000,000
    /// customers on sled a 256 MiB cache held about 220 MiB more than
    /// this one after a restart; the catch-up could not be told apart,
    /// while a commit of customers spread over the whole store (a policy
    /// rescore's, a first bulk load) pages in more with the smaller one
    /// (README, "Performance").
    fn default() -> Self {
        Self {
            flush: FlushPolicy::EveryCommit,
            cache_capacity_bytes: 64 * 1024 * 1024,
            lock_timeout: Duration::from_secs(2),
        }
    }
}

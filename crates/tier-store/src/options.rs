//! How a [`SledStore`](crate::SledStore) is opened.

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
    /// sled's background flusher syncs every this many milliseconds (0 is
    /// treated as 1).
    IntervalMs(u64),
}

/// Options for [`SledStore::open`](crate::SledStore::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Durability of commits.
    pub flush: FlushPolicy,
    /// Size of sled's page cache in bytes.
    pub cache_capacity_bytes: u64,
    /// How long `open` waits for the data dir's lock. sled releases it a
    /// moment after the previous store in this process was dropped; another
    /// process holding it makes `open` fail after this long.
    pub lock_timeout: Duration,
}

impl Default for StoreOptions {
    /// `EveryCommit`, a 256 MiB cache, a 2 s lock timeout.
    fn default() -> Self {
        Self {
            flush: FlushPolicy::EveryCommit,
            cache_capacity_bytes: 256 * 1024 * 1024,
            lock_timeout: Duration::from_secs(2),
        }
    }
}

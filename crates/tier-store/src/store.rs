//! The narrow interface the rest of tierd sees.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CommitBatch, CommitReceipt, PreparedBatch, Scope, StoreError, VerifyReport};

/// Durable (or, for tests, in-memory) customer state, consumed offsets and
/// outbox, changed together by one atomic [`commit`](Store::commit).
///
/// Every method is blocking; async callers use `spawn_blocking`. The store is
/// generic over the customer-state type `S`; reading with a different type
/// than was written yields [`StoreError::Corrupt`].
pub trait Store: Send + Sync {
    /// Writes a batch atomically: customers, offsets and outbox rows all
    /// become visible together, or (on any error, including a state that
    /// fails to serialize) nothing changes. Commits are serialized; outbox
    /// keys increase in commit order.
    ///
    /// One exception to "error means unchanged": with
    /// [`FlushPolicy::EveryCommit`](crate::FlushPolicy::EveryCommit), if the
    /// batch was applied but the following fsync failed, the error is
    /// [`StoreError::Sled`] "while flushing a committed batch" and the batch is
    /// visible but maybe not durable. Treat that as fatal (stop, restart).
    /// fjall and redb write and sync such a batch in one step: a failed
    /// fsync there leaves the batch not visible now but maybe on disk (fjall
    /// then refuses all writes until reopened), so it is just as fatal.
    ///
    /// The same as [`PreparedBatch::prepare`], then [`commit_prepared`](Store::commit_prepared).
    fn commit<S: Serialize>(
        &self,
        batch: &CommitBatch<'_, S>,
    ) -> Result<CommitReceipt, StoreError> {
        self.commit_prepared(PreparedBatch::prepare(batch)?)
    }

    /// [`apply`](Store::apply), then [`sync`](Store::sync) if the store's
    /// [`FlushPolicy`](crate::FlushPolicy) says every commit is synced.
    /// Same guarantees and the same one exception as [`commit`](Store::commit).
    fn commit_prepared(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError>;

    /// Writes a prepared batch atomically: it becomes visible whole or not
    /// at all, and a crash keeps a prefix of the applied batches, but it is
    /// durable only after the next [`sync`](Store::sync) (or the
    /// background flush of [`FlushPolicy::IntervalMs`](crate::FlushPolicy)). Applies are serialized; outbox keys increase in
    /// apply order.
    fn apply(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError>;

    /// Makes every applied batch durable (an fsync). The same as
    /// [`flush`](Store::flush); named for the prepare / apply / sync split.
    fn sync(&self) -> Result<(), StoreError> {
        self.flush()
    }

    /// One customer's state, if stored, under whichever scope. A scan of
    /// every customer: for tools and tests, not for hot paths (tierd keeps
    /// its customers in memory).
    fn get_customer<S: DeserializeOwned>(&self, id: &str) -> Result<Option<S>, StoreError>;

    /// Customers with their scope, ordered by scope, then id byte order:
    /// every customer, or with `Some(scope)` only that input partition's
    /// (one key range). For warming the in-memory state at start and on a
    /// partition assignment. Not a snapshot: commits made while iterating
    /// may or may not be seen.
    fn scan_scoped<S: DeserializeOwned>(
        &self,
        scope: Option<Scope>,
    ) -> impl Iterator<Item = Result<(Scope, String, S), StoreError>>;

    /// Every customer's state, without its scope (see [`Store::scan_scoped`]).
    fn scan_customers<S: DeserializeOwned>(
        &self,
    ) -> impl Iterator<Item = Result<(String, S), StoreError>> {
        self.scan_scoped(None)
            .map(|item| item.map(|(_, id, state)| (id, state)))
    }

    /// Number of stored customers (a scan; not for hot paths).
    fn customer_count(&self) -> Result<usize, StoreError>;

    /// All stored `(topic, partition, next offset to consume)`, ordered by
    /// topic, then partition.
    fn offsets(&self) -> Result<Vec<(String, i32, i64)>, StoreError>;

    /// The next offset to consume for one partition, if stored.
    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError>;

    /// Overwrites one partition's next offset outside a commit, e.g. when the
    /// stored one lies beyond the partition's end and the caller resets it.
    fn set_offset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), StoreError>;

    /// Up to `limit` outbox rows, oldest first.
    fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Deletes outbox rows after the broker acknowledged them. Unknown or
    /// already deleted keys are ignored. Not flushed by itself: a delete lost
    /// in a crash only means the row is published again.
    fn outbox_delete(&self, keys: &[u64]) -> Result<(), StoreError>;

    /// Number of outbox rows not yet deleted (a scan; the outbox is small).
    fn outbox_len(&self) -> Result<usize, StoreError>;

    /// An application record written by a commit (`CommitBatch::meta`).
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Decodes every customer as `S` and checks every key and value against
    /// the layout. Reads the whole store; stops at the first problem.
    fn verify<S: DeserializeOwned>(&self) -> Result<VerifyReport, StoreError>;
}

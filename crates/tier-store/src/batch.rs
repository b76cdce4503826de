//! What one commit writes, and what it hands back.

use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::layout::Scope;
use crate::{StoreError, codec, layout};

/// Everything one processed batch of events changes, committed atomically by
/// [`Store::commit`](crate::Store::commit): all of it becomes visible (and,
/// with [`FlushPolicy::EveryCommit`](crate::FlushPolicy::EveryCommit),
/// durable) or none of it does.
#[derive(Debug)]
pub struct CommitBatch<'a, S> {
    /// Customer states to upsert under their scope (input partition),
    /// already coalesced per customer by the caller. Should an id appear
    /// twice in one scope anyway, the later entry wins.
    pub customers: Vec<(Scope, &'a str, &'a S)>,
    /// Customers whose scope changed: the key under the old scope is
    /// deleted. Deletes are applied before the upserts, so a customer
    /// moved away and back within one batch keeps its upsert.
    pub moved: Vec<(Scope, &'a str)>,
    /// `(topic, partition, next offset to consume)`; later entries win.
    pub offsets: Vec<(&'a str, i32, i64)>,
    /// New outbox rows, in the order they must be published.
    pub outbox: Vec<Vec<u8>>,
    /// Application records to set, `(name, value)`: small named values
    /// that must change atomically with the state (e.g. the policy in
    /// force). Names are ASCII letters, digits, `_`, `-` and `.`.
    pub meta: Vec<(&'a str, Vec<u8>)>,
}

impl<S> CommitBatch<'_, S> {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            customers: Vec::new(),
            moved: Vec::new(),
            offsets: Vec::new(),
            outbox: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// True when committing the batch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
            && self.moved.is_empty()
            && self.offsets.is_empty()
            && self.outbox.is_empty()
            && self.meta.is_empty()
    }
}

impl<S> Default for CommitBatch<'_, S> {
    fn default() -> Self {
        Self::new()
    }
}

/// Customer states encoded ahead of their commit, under their keys (no
/// IO): for a caller that hands the states' bytes to another thread
/// instead of a copy of the states. Committed by
/// [`PreparedBatch::prepare_encoded`].
#[derive(Debug, Clone, Default)]
pub struct EncodedCustomers {
    /// `(customer key, format byte + postcard state)`, in push order. The
    /// values are shared: cloning the batch for another commit attempt
    /// copies no state, and the engine keeps a hot customer's last value.
    entries: Vec<(Vec<u8>, Arc<[u8]>)>,
}

impl EncodedCustomers {
    /// Room for `n` customers.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Encode `state` for `id` under `scope`, as
    /// [`PreparedBatch::prepare`] would, and return the encoded value (to
    /// hold beside the state: [`current_body`](crate::current_body) is its
    /// postcard body). Should an id be pushed twice in one scope, the
    /// later entry wins at the commit.
    pub fn push<S: Serialize>(
        &mut self,
        scope: Scope,
        id: &str,
        state: &S,
    ) -> Result<Arc<[u8]>, StoreError> {
        let value = codec::encode(id, state)?;
        self.entries
            .push((layout::customer_key(scope, id), Arc::clone(&value)));
        Ok(value)
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no customer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes of the states.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.len()).sum()
    }
}

/// A [`CommitBatch`] encoded and validated, owning everything it writes:
/// made by [`PreparedBatch::prepare`] with no IO (so it may run on another
/// thread than the one that writes), written by
/// [`Store::apply`](crate::Store::apply), made durable by
/// [`Store::sync`](crate::Store::sync).
#[derive(Debug, Default)]
pub struct PreparedBatch {
    /// `(customer key, format byte + postcard state)`.
    pub(crate) customers: Vec<(Vec<u8>, Arc<[u8]>)>,
    /// Customer keys to delete (before the upserts).
    pub(crate) moved: Vec<Vec<u8>>,
    pub(crate) offsets: Vec<(String, i32, i64)>,
    pub(crate) outbox: Vec<Vec<u8>>,
    /// `(application key, value)`.
    pub(crate) meta: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PreparedBatch {
    /// Encodes every state and validates every offset and record name. Any
    /// failure (a state that does not serialize, a bad topic name) is
    /// returned here, before anything is written.
    pub fn prepare<S: Serialize>(batch: &CommitBatch<'_, S>) -> Result<Self, StoreError> {
        Self::prepare_encoded(batch, EncodedCustomers::default())
    }

    /// [`prepare`](Self::prepare) with states encoded ahead: `customers`
    /// are written after `batch.customers` (the later entry wins), with
    /// the same atomicity. Validates offsets and record names.
    pub fn prepare_encoded<S: Serialize>(
        batch: &CommitBatch<'_, S>,
        customers: EncodedCustomers,
    ) -> Result<Self, StoreError> {
        let mut encoded = Vec::with_capacity(batch.customers.len() + customers.len());
        for &(scope, id, state) in &batch.customers {
            encoded.push((layout::customer_key(scope, id), codec::encode(id, state)?));
        }
        encoded.extend(customers.entries);
        let customers = encoded;
        let moved = batch
            .moved
            .iter()
            .map(|&(scope, id)| layout::customer_key(scope, id))
            .collect();
        let offsets = batch
            .offsets
            .iter()
            .map(|&(topic, partition, offset)| {
                layout::validate_offset(topic, partition, offset)?;
                Ok((topic.to_owned(), partition, offset))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let meta = batch
            .meta
            .iter()
            .map(|(name, value)| Ok((layout::app_key(name)?, value.clone())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        u64::try_from(batch.outbox.len()).map_err(|_| StoreError::OutboxExhausted)?;
        Ok(Self {
            customers,
            moved,
            offsets,
            outbox: batch.outbox.clone(),
            meta,
        })
    }

    /// True when applying the batch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
            && self.moved.is_empty()
            && self.offsets.is_empty()
            && self.outbox.is_empty()
            && self.meta.is_empty()
    }

    /// Number of customer states in the batch.
    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Encoded bytes of the customer states (for metrics).
    pub fn customer_bytes(&self) -> usize {
        self.customers.iter().map(|(_, v)| v.len()).sum()
    }

    /// The customers' keys and the values every backend writes for them
    /// (compressed where that is shorter, see `codec::stored`), taken out
    /// of the batch: a backend calls it before it takes its commit lock.
    pub(crate) fn take_stored_customers(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut self.customers)
            .into_iter()
            .map(|(key, value)| (key, codec::stored(&value)))
            .collect()
    }
}

/// What a successful commit assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReceipt {
    /// Keys of the batch's outbox rows, in batch order. Keys are contiguous
    /// because commits are serialized; the range is empty (`n..n`) when the
    /// batch had no outbox rows. Keys are never reused, also across reopen.
    pub outbox_keys: Range<u64>,
}

/// What [`Store::verify`](crate::Store::verify) checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Customer states decoded.
    pub customers: usize,
    /// Offset entries checked.
    pub offsets: usize,
    /// Outbox rows checked.
    pub outbox_rows: usize,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{MemStore, Store};

    #[test]
    fn states_encoded_ahead_are_written_as_prepare_writes_them() {
        let scope = Scope::partition(3).unwrap();
        let mut batch: CommitBatch<'_, (u32, String)> = CommitBatch::new();
        let early = (1, "early".to_owned());
        batch.customers.push((scope, "c1", &early));
        batch.offsets.push(("orders", 3, 10));
        let direct = PreparedBatch::prepare(&batch).unwrap();

        let mut encoded = EncodedCustomers::with_capacity(1);
        encoded.push(scope, "c1", &early).unwrap();
        assert_eq!((encoded.len(), encoded.is_empty()), (1, false));
        assert_eq!(encoded.bytes(), direct.customer_bytes());
        let mut ahead: CommitBatch<'_, (u32, String)> = CommitBatch::new();
        ahead.offsets.push(("orders", 3, 10));
        let prepared = PreparedBatch::prepare_encoded(&ahead, encoded).unwrap();
        assert_eq!(prepared.customers, direct.customers);
        assert_eq!(prepared.offsets, direct.offsets);

        // Encoded ahead comes after the batch's own states: it wins.
        let late = (2, "late".to_owned());
        let mut encoded = EncodedCustomers::default();
        encoded.push(scope, "c1", &late).unwrap();
        let store = MemStore::new();
        store
            .commit_prepared(PreparedBatch::prepare_encoded(&batch, encoded).unwrap())
            .unwrap();
        assert_eq!(
            store.get_customer::<(u32, String)>("c1").unwrap(),
            Some(late)
        );
        assert_eq!(store.offset("orders", 3).unwrap(), Some(10));

        // Offsets are still validated.
        let mut bad: CommitBatch<'_, (u32, String)> = CommitBatch::new();
        bad.offsets.push(("orders", -1, 10));
        assert!(PreparedBatch::prepare_encoded(&bad, EncodedCustomers::default()).is_err());
    }
}

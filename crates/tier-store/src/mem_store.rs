//! The in-memory backend, for tests and for tools that need no durability.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;

use crate::{CommitReceipt, PreparedBatch, Scope, Store, StoreError, VerifyReport, codec, layout};

/// [`Store`] in memory: `BTreeMap`s behind one mutex, with the same
/// semantics as [`SledStore`](crate::SledStore): values go through the same
/// format-versioned encoding, the same validation, and a commit is all or
/// nothing. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<MemState>,
}

#[derive(Debug, Default)]
struct MemState {
    /// Keyed like the disk backends: `c/` + scope + id.
    customers: BTreeMap<Vec<u8>, Vec<u8>>,
    offsets: BTreeMap<(String, i32), i64>,
    outbox: BTreeMap<u64, Vec<u8>>,
    next_outbox: u64,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Customers copied out per lock acquisition while scanning.
const SCAN_CHUNK: usize = 1024;

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // Every mutation validates first and then only inserts, so a panic
        // elsewhere cannot leave the maps half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemStore {
    fn commit_prepared(&self, batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        self.apply(batch)
    }

    fn apply(&self, mut batch: PreparedBatch) -> Result<CommitReceipt, StoreError> {
        let rows = u64::try_from(batch.outbox.len()).map_err(|_| StoreError::OutboxExhausted)?;
        let customers = batch.take_stored_customers();
        let mut state = self.lock();
        let first = state.next_outbox;
        let end = first.checked_add(rows).ok_or(StoreError::OutboxExhausted)?;
        state.meta.extend(batch.meta);
        for key in batch.moved {
            state.customers.remove(&key);
        }
        state.customers.extend(customers);
        for (topic, partition, offset) in batch.offsets {
            state.offsets.insert((topic, partition), offset);
        }
        for (seq, row) in (first..end).zip(batch.outbox) {
            state.outbox.insert(seq, row);
        }
        state.next_outbox = end;
        Ok(CommitReceipt {
            outbox_keys: first..end,
        })
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = layout::app_key(name)?;
        Ok(self.lock().meta.get(&key).cloned())
    }

    fn get_customer<S: DeserializeOwned>(&self, id: &str) -> Result<Option<S>, StoreError> {
        let raw = self
            .lock()
            .customers
            .iter()
            .find(|(key, _)| layout::customer_key_id(key) == Some(id.as_bytes()))
            .map(|(_, raw)| raw.clone());
        raw.map(|raw| codec::decode(id, &raw)).transpose()
    }

    fn scan_scoped<S: DeserializeOwned>(
        &self,
        scope: Option<Scope>,
    ) -> impl Iterator<Item = Result<(Scope, String, S), StoreError>> {
        let prefix = match scope {
            Some(scope) => layout::scope_prefix(scope),
            None => layout::CUSTOMER.to_vec(),
        };
        MemScan {
            store: self,
            after: None,
            prefix,
            buffer: VecDeque::new(),
            done: false,
            state: PhantomData,
        }
    }

    fn customer_count(&self) -> Result<usize, StoreError> {
        Ok(self.lock().customers.len())
    }

    fn offsets(&self) -> Result<Vec<(String, i32, i64)>, StoreError> {
        Ok(self
            .lock()
            .offsets
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect())
    }

    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        layout::validate_position(topic, partition)?;
        Ok(self
            .lock()
            .offsets
            .get(&(topic.to_owned(), partition))
            .copied())
    }

    fn set_offset(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), StoreError> {
        layout::validate_offset(topic, partition, next_offset)?;
        self.lock()
            .offsets
            .insert((topic.to_owned(), partition), next_offset);
        Ok(())
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .outbox
            .iter()
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn outbox_delete(&self, keys: &[u64]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for key in keys {
            state.outbox.remove(key);
        }
        Ok(())
    }

    fn outbox_len(&self) -> Result<usize, StoreError> {
        Ok(self.lock().outbox.len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn verify<S: DeserializeOwned>(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for item in self.scan_customers::<S>() {
            item?;
            report.customers += 1;
        }
        let state = self.lock();
        for ((topic, partition), offset) in &state.offsets {
            layout::validate_offset(topic, *partition, *offset)?;
        }
        report.offsets = state.offsets.len();
        if let Some((&last, _)) = state.outbox.last_key_value()
            && last >= state.next_outbox
        {
            return Err(layout::malformed(
                "outbox",
                &layout::outbox_key(last),
                "key not below the outbox sequence",
            ));
        }
        report.outbox_rows = state.outbox.len();
        Ok(report)
    }
}

/// Scans in chunks so that the lock is never held while decoding or while
/// the caller works on an item.
struct MemScan<'a, S> {
    store: &'a MemStore,
    after: Option<Vec<u8>>,
    prefix: Vec<u8>,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
    state: PhantomData<fn() -> S>,
}

impl<S: DeserializeOwned> Iterator for MemScan<'_, S> {
    type Item = Result<(Scope, String, S), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let state = self.store.lock();
            let lower = match &self.after {
                Some(after) => Bound::Excluded(after.as_slice()),
                None => Bound::Included(self.prefix.as_slice()),
            };
            let prefix = &self.prefix;
            self.buffer.extend(
                state
                    .customers
                    .range::<[u8], _>((lower, Bound::Unbounded))
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .take(SCAN_CHUNK)
                    .map(|(key, raw)| (key.clone(), raw.clone())),
            );
            drop(state);
            self.done = self.buffer.len() < SCAN_CHUNK;
            self.after = self.buffer.back().map(|(id, _)| id.clone());
        }
        let (key, raw) = self.buffer.pop_front()?;
        Some(
            layout::parse_customer_key(&key)
                .and_then(|(scope, id)| codec::decode(&id, &raw).map(|state| (scope, id, state))),
        )
    }
}

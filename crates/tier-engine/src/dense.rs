//! [`DenseMap`]: the engine's tables of customers, keyed by
//! [`CustomerId`], with the entries in one dense vector and a hash index
//! of positions beside it.
//!
//! A hash table holding its entries in its buckets is a power of two of
//! buckets at most 7/8 full: at a million customers, 2,097,152 buckets,
//! each as large as an entry (the id inline and the slot), half of them
//! empty. Here a bucket holds a position (8 bytes) and the entries lie
//! in a vector that grows by doubling, so the empty room is a vector's
//! spare capacity, not half the table. A lookup hashes the id as
//! tier-core's `CustomerMap` does (FNV of the id's bytes), finds the
//! position and compares the id in the entry.
//!
//! The order of the entries is the order they were inserted in, except
//! that a removal moves the last entry into the removed one's place.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;
use tier_core::projection::{CustomerId, Fnv};

/// A hint for [`DenseMap::position_near`] that is no position: the id is
/// looked up.
pub(crate) const NO_HINT: usize = usize::MAX;

fn hash(id: &str) -> u64 {
    BuildHasherDefault::<Fnv>::default().hash_one(id)
}

/// A map from customer id to `V`: dense entries, a hash index of positions.
pub(crate) struct DenseMap<V> {
    entries: Vec<(CustomerId, V)>,
    index: HashTable<usize>,
}

impl<V> Default for DenseMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: HashTable::new(),
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for DenseMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> DenseMap<V> {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The position of `id`'s entry.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash(id), |&i| entries[i].0.as_str() == id)
            .copied()
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// The position of `id`'s entry, looked for at `hint` first (where
    /// the caller saw it last, see [`Self::positions`]): no hash lookup
    /// while it is still there. A walk in the entries' order then reads
    /// them one after another, not a bucket of the index at random each.
    pub(crate) fn position_near(&self, id: &str, hint: usize) -> Option<usize> {
        match self.entries.get(hint) {
            Some((k, _)) if k.as_str() == id => Some(hint),
            _ => self.position(id),
        }
    }

    /// The entry at `hint` when it is `id`'s.
    pub(crate) fn at(&self, id: &str, hint: usize) -> Option<&V> {
        match self.entries.get(hint) {
            Some((k, v)) if k.as_str() == id => Some(v),
            _ => None,
        }
    }

    /// [`Self::get_mut`] by way of [`Self::position_near`], with the
    /// position.
    pub(crate) fn get_mut_near(&mut self, id: &str, hint: usize) -> Option<(usize, &mut V)> {
        let i = self.position_near(id, hint)?;
        Some((i, &mut self.entries[i].1))
    }

    /// Every entry with its position (for [`Self::position_near`]).
    pub(crate) fn positions(&self) -> impl Iterator<Item = (usize, &CustomerId, &V)> {
        self.entries.iter().enumerate().map(|(i, (k, v))| (i, k, v))
    }

    pub(crate) fn get(&self, id: &str) -> Option<&V> {
        self.position(id).map(|i| &self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        let i = self.position(id)?;
        Some(&mut self.entries[i].1)
    }

    /// Hold `value` for `id`; returns the value it replaces.
    pub(crate) fn insert(&mut self, id: CustomerId, value: V) -> Option<V> {
        match self.position(&id) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.push(id, value);
                None
            }
        }
    }

    /// Hold `value` for `id`, known to be absent (the caller just looked),
    /// and return it in place: no lookup before the insert.
    pub(crate) fn insert_absent(&mut self, id: CustomerId, value: V) -> (usize, &mut V) {
        debug_assert!(self.position(&id).is_none(), "{id} is in the map already");
        let i = self.push(id, value);
        (i, &mut self.entries[i].1)
    }

    /// The entry at position `i`.
    pub(crate) fn entry_at(&self, i: usize) -> Option<(&CustomerId, &V)> {
        self.entries.get(i).map(|(k, v)| (k, v))
    }

    /// Append an entry for `id`, known to be absent; its position.
    fn push(&mut self, id: CustomerId, value: V) -> usize {
        let i = self.entries.len();
        let entries = &self.entries;
        self.index
            .insert_unique(hash(&id), i, |&j| hash(&entries[j].0));
        self.entries.push((id, value));
        i
    }

    /// Take `id` out; the last entry moves into its place.
    pub(crate) fn remove(&mut self, id: &str) -> Option<V> {
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(hash(id), |&i| entries[i].0.as_str() == id)
            .ok()?;
        let (i, _) = found.remove();
        let last = self.entries.len() - 1;
        if i != last {
            let entries = &self.entries;
            let moved = entries[last].0.as_str();
            if let Some(slot) = self.index.find_mut(hash(moved), |&j| j == last) {
                *slot = i;
            }
        }
        Some(self.entries.swap_remove(i).1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CustomerId, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &CustomerId> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Every entry, in the map's order, consuming it.
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (CustomerId, V)> {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        /// `insert_absent` when the id is absent, else `insert`.
        InsertAbsent(u8, u32),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::InsertAbsent(k, v)),
            any::<u8>().prop_map(Op::Remove),
        ]
    }

    /// Ids short (inline) and long (on the heap), as customer ids are.
    fn id(k: u8) -> String {
        if k.is_multiple_of(3) {
            format!("customer-with-a-long-identifier-{k:03}")
        } else {
            format!("c{k}")
        }
    }

    proptest! {
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut dense = DenseMap::default();
            let mut model = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(dense.insert(id(k).into(), v), model.insert(id(k), v));
                    }
                    Op::InsertAbsent(k, v) if !model.contains_key(&id(k)) => {
                        let (at, held) = dense.insert_absent(id(k).into(), v);
                        *held = held.wrapping_add(1);
                        prop_assert_eq!(dense.position(&id(k)), Some(at));
                        model.insert(id(k), v.wrapping_add(1));
                    }
                    Op::InsertAbsent(k, v) => {
                        prop_assert_eq!(dense.insert(id(k).into(), v), model.insert(id(k), v));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(dense.remove(&id(k)), model.remove(&id(k)));
                    }
                }
                prop_assert_eq!(dense.len(), model.len());
            }
            for (k, v) in &model {
                prop_assert_eq!(dense.get(k), Some(v));
                prop_assert!(dense.contains_key(k));
                let at = dense.position(k);
                prop_assert_eq!(at.and_then(|i| dense.entry_at(i)).map(|(id, _)| id.as_str()), Some(k.as_str()));
                prop_assert_eq!(dense.position_near(k, NO_HINT), at);
            }
            let listed: HashMap<String, u32> =
                dense.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            prop_assert_eq!(&listed, &model);
            prop_assert_eq!(dense.keys().count(), model.len());
            // A hint never changes the answer: right, it is the answer;
            // stale or out of range, the id is looked up.
            for (i, k, v) in dense.positions() {
                prop_assert_eq!(dense.position_near(k, i), Some(i));
                prop_assert_eq!(model.get(k.as_str()), Some(v));
            }
            for k in 0..=u8::MAX {
                for hint in [usize::from(k), usize::from(k) % (dense.len() + 1), usize::MAX] {
                    prop_assert_eq!(dense.position_near(&id(k), hint), dense.position(&id(k)));
                }
                // `at` answers at the hint only: the entry when it is
                // the id's, nothing otherwise.
                for hint in [usize::from(k), usize::MAX] {
                    let here = dense.position(&id(k)) == Some(hint);
                    prop_assert_eq!(dense.at(&id(k), hint), dense.get(&id(k)).filter(|_| here));
                }
                if !model.contains_key(&id(k)) {
                    prop_assert!(dense.get(&id(k)).is_none());
                    prop_assert!(dense.get_mut(&id(k)).is_none());
                }
            }
        }
    }

    #[test]
    fn removing_moves_the_last_entry_into_the_gap_and_finds_it_there() {
        let mut dense = DenseMap::default();
        for k in 0..100u8 {
            dense.insert(id(k).into(), u32::from(k));
        }
        assert_eq!(dense.remove(&id(3)), Some(3));
        // The last one (99) now sits where 3 was, and is still found.
        assert_eq!(
            dense.keys().nth(3).map(|k| k.as_str()),
            Some(id(99).as_str())
        );
        assert_eq!(dense.get(&id(99)), Some(&99));
        assert_eq!(dense.remove(&id(99)), Some(99));
        assert_eq!(dense.remove(&id(99)), None);
        assert_eq!(dense.len(), 98);
        for v in dense.values_mut() {
            *v += 1000;
        }
        assert_eq!(dense.get(&id(50)), Some(&1050));
        let all: Vec<_> = dense.into_entries().map(|(_, v)| v).collect();
        assert_eq!(all.len(), 98);
    }
}

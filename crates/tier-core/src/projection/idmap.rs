//! The projection's maps keyed by stable hashes (orders, invoices, applied
//! event ids): a short vector while small, a hash table past
//! [`SMALL_MAP`] entries.
//!
//! Most customers have a few orders, invoices and events in a window; a
//! hash table holds at least 4 buckets (plus control bytes) however few
//! entries it has, and its growth doubles. The short vector grows 1, 2, 4,
//! 8 and is searched by comparing keys (already hashes), which beats
//! hashing at these sizes. Serialized as a map, exactly like the
//! `HashMap` it replaces, so stored states read the same (the applied
//! event ids are packed instead since store format 6: see `applied`).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PrehashedKey;

/// Entries up to which an [`IdMap`] is a vector.
pub(crate) const SMALL_MAP: usize = 8;

type Table<V> = HashMap<u64, V, BuildHasherDefault<PrehashedKey>>;

#[derive(Debug, Clone)]
pub(crate) enum IdMap<V> {
    Small(Vec<(u64, V)>),
    Large(Table<V>),
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap::Small(Vec::new())
    }
}

impl<V> IdMap<V> {
    /// An empty map with room for `n` entries (at most 65,536 reserved:
    /// a length read from input claims no more).
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n > SMALL_MAP {
            IdMap::Large(Table::with_capacity_and_hasher(
                n.min(1 << 16),
                BuildHasherDefault::default(),
            ))
        } else {
            IdMap::Small(Vec::with_capacity(n))
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            IdMap::Small(v) => v.len(),
            IdMap::Large(m) => m.len(),
        }
    }

    pub(crate) fn get(&self, key: &u64) -> Option<&V> {
        match self {
            IdMap::Small(v) => v.iter().find(|(k, _)| k == key).map(|(_, x)| x),
            IdMap::Large(m) => m.get(key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &u64) -> Option<&mut V> {
        match self {
            IdMap::Small(v) => v.iter_mut().find(|(k, _)| k == key).map(|(_, x)| x),
            IdMap::Large(m) => m.get_mut(key),
        }
    }

    /// Heap bytes held, about: a vector's capacity, or a hash table's
    /// buckets (a power of two at most 7/8 full) and control bytes.
    pub(crate) fn heap_size(&self) -> usize {
        let entry = std::mem::size_of::<(u64, V)>();
        match self {
            IdMap::Small(v) => v.capacity() * entry,
            IdMap::Large(m) => {
                // hashbrown: a power of two of buckets, at most 7/8 full
                // past 8 (one short of full below), a control byte each
                // and a group's worth more.
                let capacity = m.capacity();
                let buckets = if capacity < 8 {
                    (capacity + 1).next_power_of_two()
                } else {
                    (capacity * 8 / 7).next_power_of_two()
                };
                buckets * (entry + 1) + 16
            }
        }
    }

    pub(crate) fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key`, inserted from `make` when missing.
    pub(crate) fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        if let IdMap::Small(v) = self
            && v.len() >= SMALL_MAP
            && !v.iter().any(|(k, _)| *k == key)
        {
            let table: Table<V> = std::mem::take(v).into_iter().collect();
            *self = IdMap::Large(table);
        }
        match self {
            IdMap::Small(v) => {
                let i = match v.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        if v.len() == v.capacity() {
                            v.reserve_exact(v.len().max(1));
                        }
                        v.push((key, make()));
                        v.len() - 1
                    }
                };
                &mut v[i].1
            }
            IdMap::Large(m) => m.entry(key).or_insert_with(make),
        }
    }

    /// Insert or replace; returns the value replaced.
    pub(crate) fn insert(&mut self, key: u64, value: V) -> Option<V> {
        // A table takes it in one probe (a lookup and an insert before:
        // the decode of every customer a policy rescore meets encoded
        // inserts each entry of its maps).
        if let IdMap::Large(table) = self {
            return table.insert(key, value);
        }
        match self.get_mut(&key) {
            Some(old) => Some(std::mem::replace(old, value)),
            None => {
                let mut value = Some(value);
                self.get_or_insert_with(key, || value.take().unwrap_or_else(|| unreachable!()));
                None
            }
        }
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        match self {
            IdMap::Small(v) => v.retain_mut(|(k, x)| keep(k, x)),
            IdMap::Large(m) => m.retain(|k, x| keep(k, x)),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        let (small, large) = match self {
            IdMap::Small(v) => (Some(v.iter().map(|(k, x)| (k, x))), None),
            IdMap::Large(m) => (None, Some(m.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Equal when they hold the same entries, whatever their order or form
/// (as `HashMap`s compare).
impl<V: PartialEq> PartialEq for IdMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<V: Eq> Eq for IdMap<V> {}

impl<V: Serialize> Serialize for IdMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The visitor of a serialized [`IdMap`]: its entries into a map, all of
/// them or (see [`deciding_only`]) those `keep` keeps.
struct Entries<V> {
    keep: Option<fn(&V) -> bool>,
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
    type Value = IdMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of hashed ids")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<IdMap<V>, A::Error> {
        // Not sized by the hint when entries are dropped: most are, and
        // a map left empty allocates nothing.
        let mut map = match (self.keep, access.size_hint()) {
            (None, Some(n)) => IdMap::with_capacity(n),
            _ => IdMap::default(),
        };
        // Each entry is decoded, kept or not (a format that is not
        // self-describing, postcard, can only skip a value by reading
        // it). A repeated key: the later value wins, as in a `HashMap`,
        // among the entries kept (a map serializes each key once, so
        // none is repeated in what this build reads).
        while let Some((k, v)) = access.next_entry::<u64, V>()? {
            if self.keep.is_none_or(|keep| keep(&v)) {
                map.insert(k, v);
            }
        }
        Ok(map)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for IdMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Entries { keep: None })
    }
}

thread_local! {
    /// Set while [`deciding_only`] runs on this thread.
    static DECIDING_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Run `decode` with every customer state it deserializes (postcard, or
/// any serde format) decoded for deciding only: what no decision, figure
/// or view reads is read past and left empty. That is the maps an event
/// needs (the applied event ids, kept to drop redeliveries, and the
/// orders by id, kept for cancellations and returns), the invoices not
/// open (not yet issued, settled or void: kept for early and late
/// payments and credit notes; the overdue figures read only the open
/// ones), the profile's name, industry and region (the read side reads
/// its account manager), and the figures kept at the last change (read
/// to explain the next one).
///
/// What the engine's policy rescore does with a customer held encoded:
/// deciding under the new policy and, when the decision stands, the
/// customer's view read from the state, while the bytes stay as they are.
/// The maps left out were most of the decode's allocations and hash
/// table inserts, and the decode most of the rescore. A state decoded so
/// is for reading: folding events into it would apply a redelivery twice,
/// miss a cancellation's order, open a republished invoice again and
/// lose a payment to an invoice it does not hold; storing it would lose
/// what was read past; and a change decided on it would explain itself
/// against no previous figures. A customer whose decision moves is
/// decoded again in full.
pub fn deciding_only<R>(decode: impl FnOnce() -> R) -> R {
    /// Restores the flag however `decode` ends (a panic included).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECIDING_ONLY.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DECIDING_ONLY.with(|d| d.replace(true)));
    decode()
}

/// Whether [`deciding_only`] runs on this thread.
pub(crate) fn is_deciding_only() -> bool {
    DECIDING_ONLY.with(Cell::get)
}

/// A projection map's deserializer: the map, or (inside
/// [`deciding_only`]) its entries read past and an empty map.
pub(crate) fn unless_deciding_only<'de, D, V>(d: D) -> Result<IdMap<V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    some_if_deciding_only(d, |_| false)
}

/// A projection map's deserializer: the map, or (inside
/// [`deciding_only`]) only the entries `keep` keeps, the others read
/// past.
pub(crate) fn some_if_deciding_only<'de, D, V>(
    d: D,
    keep: fn(&V) -> bool,
) -> Result<IdMap<V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    d.deserialize_map(Entries {
        keep: is_deciding_only().then_some(keep),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciding_only_reads_past_a_map_and_ends_with_its_scope() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            #[serde(deserialize_with = "unless_deciding_only")]
            map: IdMap<u32>,
            after: u32,
        }
        for n in [3u64, 40] {
            let mut map = IdMap::default();
            for k in 0..n {
                map.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k as u32);
            }
            let bytes = postcard::to_allocvec(&Holder {
                map: map.clone(),
                after: 99,
            })
            .unwrap();
            let part: Holder = deciding_only(|| postcard::from_bytes(&bytes).unwrap());
            assert_eq!(
                part,
                Holder {
                    map: IdMap::default(),
                    after: 99
                },
                "{n}: the map read past, what follows it read"
            );
            assert_eq!(postcard::from_bytes::<Holder>(&bytes).unwrap().map, map);
            // A decode that panics inside the scope still ends it.
            let failed = std::panic::catch_unwind(|| deciding_only(|| panic!("a decode failed")));
            assert!(failed.is_err());
            assert_eq!(postcard::from_bytes::<Holder>(&bytes).unwrap().map, map);
        }
    }

    #[test]
    fn small_and_large_maps_hold_and_compare_the_same() {
        let mut small: IdMap<u32> = IdMap::default();
        let mut table: Table<u32> = Table::default();
        for i in 0..40u64 {
            let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            *small.get_or_insert_with(k, || 0) += 1;
            small.insert(k ^ 1, i as u32);
            *table.entry(k).or_insert(0) += 1;
            table.insert(k ^ 1, i as u32);
            assert_eq!(small.len(), table.len());
            for (tk, tv) in &table {
                assert_eq!(small.get(tk), Some(tv));
            }
        }
        small.retain(|k, _| k % 3 == 0);
        table.retain(|k, _| k % 3 == 0);
        assert_eq!(small.len(), table.len());
        let bytes = postcard::to_allocvec(&table).unwrap();
        let decoded: IdMap<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, small);
        let again: Table<u32> =
            postcard::from_bytes(&postcard::to_allocvec(&small).unwrap()).unwrap();
        assert_eq!(again, table);
        let mut a: IdMap<u32> = IdMap::default();
        let mut b: IdMap<u32> = IdMap::default();
        a.insert(1, 1);
        a.insert(2, 2);
        b.insert(2, 2);
        b.insert(1, 1);
        assert_eq!(a, b);
    }

    #[test]
    fn a_decoded_map_keeps_the_later_of_repeated_keys_and_refuses_a_damaged_length() {
        for n in [3u64, 40] {
            // Serialized as a sequence of pairs: the bytes of a map.
            let mut pairs: Vec<(u64, u32)> = (0..n).map(|k| (k, 1)).collect();
            pairs.push((1, 2));
            let map: IdMap<u32> =
                postcard::from_bytes(&postcard::to_allocvec(&pairs).unwrap()).unwrap();
            assert_eq!(map.len(), n as usize, "{n}");
            assert_eq!(map.get(&1), Some(&2), "{n}: the later value wins");
            assert_eq!(matches!(map, IdMap::Large(_)), n as usize > SMALL_MAP);
        }
        // A length far past the one entry that follows: refused, having
        // reserved room for a bounded number of entries only.
        let damaged = postcard::to_allocvec(&(1u64 << 40, 7u64, 1u32)).unwrap();
        assert!(postcard::from_bytes::<IdMap<u32>>(&damaged).is_err());
    }
}

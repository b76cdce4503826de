//! # Ranking machinery: proportional classes (ABC) and RFM quintiles
//!
//! Pure building blocks for the grading methods that rank the population
//! (issue 9): a customer's class depends on where it stands among all
//! customers, not on its own figures alone.
//!
//! - [`Ranking`]: every customer's value (a weighted score or any
//!   indicator), kept sorted as values change, one customer at a time;
//!   [`Ranked`]: the same without an index from id to value.
//! - [`Proportions`]: validated class shares (e.g. top 20% A, next 30% B,
//!   rest C) and an optional "bottom x% flagged low value" share.
//! - [`Cuts`]: the cut points of one [`Proportions`] over the population of
//!   a [`Ranking`] at one moment. It classifies any `(value, id)` on its own,
//!   without the ranking, so an engine recomputes cuts on a cadence and
//!   classifies every event against the last cuts.
//! - [`Ranking::diff`]: the customers whose class (or low-value flag)
//!   differs between two [`Cuts`], found by walking only the parts of the
//!   ranking between the old and the new cut points.
//! - [`RfmRanking`] / [`RfmCuts`]: recency, frequency and monetary quintile
//!   scores (1-5, 5 = best fifth) from three rankings.
//! - [`Ranking::value_cuts`] / [`RfmQuintiles`]: the same cut points as
//!   plain values, ties to the better class, for a policy that grades a
//!   customer by its own figure (the primary `abc` method, the `rfm_*`
//!   indicators): equal figures always get equal classes there.
//!
//! ## Order and ties
//! The ranking is a *total* order, so the same population always gives the
//! same classes, whatever the order of the updates that built it:
//! 1. known values before unknown ones (`NaN` is *unknown*);
//! 2. better value first: higher first for [`Direction::HigherIsBetter`],
//!    lower first for [`Direction::LowerIsBetter`]; `-0.0` equals `0.0`,
//!    infinities are ordinary (extreme) values;
//! 3. equal values: customer id ascending (`K: Ord`, byte order for
//!    `String`).
//!
//! So customers tied at a cut point are split by id: with values
//! `a=10, b=8, c=8, d=8, e=5` and shares `[0.2, 0.3, 0.5]` the cut points
//! are after position 1 and 3 (see the rounding rule), so `a` is class 0,
//! `b` and `c` (value 8) class 1, and `d` (also 8) class 2 with `e`. This
//! is what keeps every class within one customer of its share even when
//! all values are equal; a report that shows the value next to the class
//! makes the tie visible.
//!
//! ## Unknown values
//! A customer whose value is unknown (`NaN`, e.g. a margin with no known
//! cost of goods) is kept in the ranking (after every known value, by id)
//! but is **not part of the population**: shares are taken over the
//! customers with a known value, and an unknown value has no class, no
//! flag and no score (`None`). Counting it would both call it low value
//! without evidence and push known customers into better classes. What
//! an unknown gets is the caller's (the policy's) decision.
//!
//! ## Cuts are frozen thresholds
//! A [`Cuts`] stores, for each class after the first, the `(value, id)`
//! of its first customer at the time of the cut, and classifies by
//! comparing with those. Between two recomputations a customer whose
//! value changed is classified against the same thresholds (above the
//! B cut point is A, whatever the fresh ranks are), so class sizes are
//! exact at each recut and drift with the population between recuts;
//! a newcomer equal to a cut value lands by its id among the tied. An
//! engine that answers every query from the same [`Cuts`] gives answers
//! that agree; on a recut it publishes [`Ranking::diff`] of the old and
//! new cuts. Recomputing is cheap (O(k log n)), so the cadence is a
//! policy choice, not a cost one.
//!
//! ## Rounding
//! With `n` known customers and shares `s_0..s_{k-1}`, class `i` holds the
//! ranking positions `[b_i, b_{i+1})` where `b_0 = 0`, `b_k = n` and, for
//! `0 < i < k`, `b_i = floor(c_i * n + 1/2)` (round half up) with
//! `c_i = s_0 + .. + s_{i-1}`. The cumulative share is first rounded to
//! 9 decimal places and the product is computed in exact integer
//! arithmetic, so decimal shares such as 0.2 cut exactly where the
//! decimal arithmetic says (`0.5 * 5 = 2.5` rounds to 3). Each `b_i` is
//! within 1/2 of `c_i * n`, so each class size is within one customer of
//! `s_i * n`, for any `n` (0 included, and `n` smaller than the number of
//! classes: some classes are then empty). The bottom flag holds the last
//! `round_half_up(x * n)` known customers. Because the bounds use the
//! cumulative shares, the sizes also add up to exactly `n`.
//!
//! ## Structure and complexity
//! [`Ranking`] is a *sorted-chunks* list (an order-statistics structure):
//! - the entries `(order key, id)`, sorted by the total order above and
//!   split into chunks of about `L/2..2L` entries (`L` = [`DEFAULT_LOAD`]
//!   = 128), split in two when longer, merged with a neighbour when
//!   shorter;
//! - a copy of every chunk's last entry, in one contiguous `Vec`: the
//!   first level of every search, which finds the chunk (within a run of
//!   tied values too, by id) without reading any chunk, and kept as
//!   entries move, so a split or merge never reads every chunk either;
//! - a Fenwick tree over the chunk lengths: rank of a chunk, and the chunk
//!   holding rank `p`, in O(log m);
//! - in [`Ranking`], a hash map id -> value, to find a customer's entry
//!   from its id. [`Ranked`] is the same list without it, for a caller
//!   that holds every value already (the read model's views): the caller
//!   names a customer's current value to move or remove it. At a million
//!   customers the map is about 69 MB a ranking (a hash table sized to a
//!   power of two), twice the sorted entries.
//!
//! The order key is a `u64` that sorts like the order above (IEEE-754
//! total order of the value, mirrored for "higher is better", unknown =
//! `u64::MAX`), so almost every comparison is one integer compare; ids are
//! compared only within a run of equal values.
//!
//! | operation | cost (n customers, k classes, m = n / L chunks) |
//! |---|---|
//! | [`Ranking::upsert`], [`Ranking::remove`] | O(log n) compares + a move of at most `2L` entries within one chunk; when a chunk splits or merges, an O(m) move of the copies of the last entries and a rebuild of the Fenwick tree from the chunks' lengths, i.e. amortised O(m / L) per update |
//! | [`Ranking::position`], [`Ranking::get`] | O(log n) |
//! | [`Ranking::cuts`] | O(k log n): one select per cut point, no walk of the population |
//! | [`Cuts::placement`] | O(log k), no access to the ranking |
//! | [`Ranking::diff`] | O(k log n + c) for c changes: every customer walked (between an old cut point and its new counterpart) has changed class or flag; O(n) only when the number of classes or the direction differs |
//! | [`Ranking::from_values`], [`RfmRanking::from_values`] | O(n log n), one sort (a ranking) |
//!
//! Nothing sorts the population per update. At 1,000,000 customers the
//! bench (`cargo bench -p tier-core --bench rank`) measures an update at
//! well under a microsecond and a full cut-point recomputation at well
//! under a microsecond too (it is k selects).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash};

use serde::{Deserialize, Serialize};

use crate::projection::Fnv;
use crate::time::Timestamp;

/// Target chunk length `L` of a [`Ranking`]; chunks hold about `L/2..2L` entries.
pub const DEFAULT_LOAD: usize = 128;

/// Most classes a [`Proportions`] may define (so a score fits a `u8`).
pub const MAX_CLASSES: usize = 255;

/// Shares are taken to this many parts per unit (9 decimal places).
const PPB: u64 = 1_000_000_000;

/// How far the shares may sum away from 1 (rounding of decimal shares).
const SUM_TOLERANCE: f64 = 1e-6;

/// The order key of every unknown (`NaN`) value: after all known ones.
const UNKNOWN_KEY: u64 = u64::MAX;

const SIGN: u64 = 1 << 63;

/// Which values rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher values are better (score, revenue, order count, ...).
    HigherIsBetter,
    /// Lower values are better (days since last order, days late, ...).
    LowerIsBetter,
}

/// The `u64` that sorts like the documented order of `value` (better
/// first, unknown last).
fn order_key(direction: Direction, value: f64) -> u64 {
    if value.is_nan() {
        return UNKNOWN_KEY;
    }
    // -0.0 and 0.0 are the same value: one key.
    let value = if value == 0.0 { 0.0 } else { value };
    let bits = value.to_bits();
    let ascending = if bits & SIGN != 0 { !bits } else { bits | SIGN };
    match direction {
        Direction::LowerIsBetter => ascending,
        Direction::HigherIsBetter => !ascending,
    }
}

/// The value of an order key (inverse of [`order_key`]).
fn key_value(direction: Direction, key: u64) -> f64 {
    if key == UNKNOWN_KEY {
        return f64::NAN;
    }
    let ascending = match direction {
        Direction::LowerIsBetter => key,
        Direction::HigherIsBetter => !key,
    };
    let bits = if ascending & SIGN != 0 {
        ascending & !SIGN
    } else {
        !ascending
    };
    f64::from_bits(bits)
}

/// One ranked customer: order key, then id (the tie rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry<K> {
    key: u64,
    id: K,
}

impl<K: Ord> Entry<K> {
    fn cmp_to<Q: Ord + ?Sized>(&self, key: u64, id: &Q) -> Ordering
    where
        K: Borrow<Q>,
    {
        self.key.cmp(&key).then_with(|| self.id.borrow().cmp(id))
    }

    fn is_known(&self) -> bool {
        self.key != UNKNOWN_KEY
    }
}

/// Customers ranked by a value, kept sorted under updates, with no index
/// from id to value: the caller names a customer's current value to move,
/// find or remove it. For a caller that holds every value already (the
/// read model's views), so the ranking does not hold them a second time;
/// [`Ranking`] adds the index.
///
/// Position 0 is the best customer. See the [module docs](self) for the
/// order, the tie rule and the costs.
#[derive(Clone)]
pub struct Ranked<K> {
    direction: Direction,
    load: usize,
    /// Sorted, none empty, concatenated in rank order.
    chunks: Vec<Vec<Entry<K>>>,
    /// Fenwick tree over `chunks[i].len()`.
    fenwick: Vec<usize>,
    /// A copy of every chunk's last entry, `chunks[i].last()`: the first
    /// level of every search, contiguous, so that finding a chunk (within
    /// a run of tied values too) reads no chunk.
    lasts: Vec<Entry<K>>,
    len: usize,
    unknown: usize,
}

impl<K> fmt::Debug for Ranked<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranked")
            .field("direction", &self.direction)
            .field("len", &self.len)
            .field("unknown", &self.unknown)
            .field("chunks", &self.chunks.len())
            .field("load", &self.load)
            .finish()
    }
}

/// Customers ranked by a value, kept sorted under updates: a [`Ranked`]
/// with an index from id to value, so a customer is moved by its id alone.
///
/// Position 0 is the best customer. See the [module docs](self) for the
/// order, the tie rule and the costs.
#[derive(Clone)]
pub struct Ranking<K> {
    ranked: Ranked<K>,
    /// Hashed with [`Fnv`], as the engine's customer map: every unit
    /// looks each touched customer up here, once per ranking.
    values: Values<K>,
}

/// Each ranked customer's value.
type Values<K> = HashMap<K, f64, BuildHasherDefault<Fnv>>;

impl<K> fmt::Debug for Ranking<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranking")
            .field("ranked", &self.ranked)
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Hash + Clone> Ranking<K> {
    /// An empty ranking with the default chunk size.
    pub fn new(direction: Direction) -> Self {
        Self::with_load(direction, DEFAULT_LOAD)
    }

    /// An empty ranking whose chunks hold about `load` entries (at least 1;
    /// small loads exercise the chunk splits and merges in tests).
    pub fn with_load(direction: Direction, load: usize) -> Self {
        Self {
            ranked: Ranked::with_load(direction, load),
            values: Values::default(),
        }
    }

    /// Builds a ranking in one sort (O(n log n)): the start-up or
    /// policy-change path. A repeated id keeps its last value.
    pub fn from_values(direction: Direction, values: impl IntoIterator<Item = (K, f64)>) -> Self {
        let mut map: Values<K> = Values::default();
        for (id, value) in values {
            map.insert(id, value);
        }
        Self {
            ranked: Ranked::from_values(direction, map.iter().map(|(id, &v)| (id.clone(), v))),
            values: map,
        }
    }

    /// The ranking without its index.
    pub fn ranked(&self) -> &Ranked<K> {
        &self.ranked
    }

    pub fn direction(&self) -> Direction {
        self.ranked.direction
    }

    /// Customers ranked, unknown values included.
    pub fn len(&self) -> usize {
        self.ranked.len
    }

    pub fn is_empty(&self) -> bool {
        self.ranked.len == 0
    }

    /// Customers with a known value: the population classes are cut from.
    /// They hold positions `0..known_len()`.
    pub fn known_len(&self) -> usize {
        self.ranked.known_len()
    }

    /// Customers whose value is unknown (`NaN`), ranked last.
    pub fn unknown_len(&self) -> usize {
        self.ranked.unknown
    }

    /// The value ranked for `id` (`NaN` when unknown), `None` if absent.
    pub fn value<Q: Hash + Eq + ?Sized>(&self, id: &Q) -> Option<f64>
    where
        K: Borrow<Q>,
    {
        self.values.get(id).copied()
    }

    pub fn contains<Q: Hash + Eq + ?Sized>(&self, id: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.values.contains_key(id)
    }

    /// Sets `id`'s value (`NaN`: unknown), inserting it if new. Returns
    /// the previous value. O(log n) plus a move within one chunk; the id is
    /// cloned only for a new customer (`Ranking<String>` takes a `&str`).
    pub fn upsert<Q>(&mut self, id: &Q, value: f64) -> Option<f64>
    where
        K: Borrow<Q> + From<Q::Owned>,
        Q: Hash + Ord + ToOwned + ?Sized,
    {
        let Some(slot) = self.values.get_mut(id) else {
            let owned = K::from(id.to_owned());
            self.values.insert(owned.clone(), value);
            self.ranked.insert(owned, value);
            return None;
        };
        let old = std::mem::replace(slot, value);
        self.ranked.update(id, old, value);
        Some(old)
    }

    /// Removes `id`; returns its value if it was ranked.
    pub fn remove<Q: Hash + Ord + ?Sized>(&mut self, id: &Q) -> Option<f64>
    where
        K: Borrow<Q>,
    {
        let value = self.values.remove(id)?;
        self.ranked.remove(id, value);
        Some(value)
    }

    /// 0-based rank of `id` (0 = best), `None` if absent. O(log n).
    pub fn position<Q: Hash + Ord + ?Sized>(&self, id: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
    {
        self.ranked.position(id, *self.values.get(id)?)
    }

    /// The customer at rank `position` and its value. O(log n).
    pub fn get(&self, position: usize) -> Option<(&K, f64)> {
        self.ranked.get(position)
    }

    /// Every customer in rank order (best first, unknown values last).
    pub fn iter(&self) -> impl Iterator<Item = (&K, f64)> + '_ {
        self.ranked.iter()
    }

    /// The customers from rank `position` on, in rank order: with
    /// [`Cuts::class_range`] this lists the members of one class.
    pub fn iter_from(&self, position: usize) -> impl Iterator<Item = (&K, f64)> + '_ {
        self.ranked.iter_from(position)
    }

    /// [`Ranked::cuts`].
    pub fn cuts(&self, proportions: &Proportions) -> Cuts<K> {
        self.ranked.cuts(proportions)
    }

    /// [`Ranked::value_cuts`].
    pub fn value_cuts(&self, proportions: &Proportions) -> Vec<f64> {
        self.ranked.value_cuts(proportions)
    }

    /// [`Self::value_cuts`] with the lowest class kept for the
    /// population's worst value. Ties at a cut point go to the better
    /// class, so when the last customer of a better class shares the
    /// population's worst value (RFM's nothing: no revenue, no order in
    /// the window; for the `abc` method, which ranks only customers who
    /// bought, many who bought alike), every customer at that value would
    /// reach it and the lowest class, which the shares give customers,
    /// would be empty: a customer who bought nothing (or the least) would
    /// be graded as one who bought more. Such a
    /// class's cut point is instead the value of its last customer better
    /// than the worst, or out of reach when it has none (the class is
    /// empty in today's ranking); equal figures still get equal classes.
    pub fn value_cuts_lowest_kept(&self, proportions: &Proportions) -> Vec<f64> {
        let mut cuts = self.value_cuts(proportions);
        let n = self.known_len();
        let value = |i: usize| self.get(i).map(|(_, v)| v);
        let Some(worst) = n.checked_sub(1).and_then(value) else {
            return cuts;
        };
        let ends = proportions.boundaries(n);
        // Whether the shares give the lowest class anyone.
        if ends.last().is_none_or(|&start| start >= n) || !cuts.contains(&worst) {
            return cuts;
        }
        // Ranked best first: the worst value is the last block.
        let mut lo = 0;
        let mut hi = n - 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if value(mid) == Some(worst) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let first_worst = lo;
        let unreachable = match self.direction() {
            Direction::HigherIsBetter => f64::INFINITY,
            Direction::LowerIsBetter => f64::NEG_INFINITY,
        };
        let starts = std::iter::once(0).chain(ends.iter().copied());
        for (t, start) in cuts.iter_mut().zip(starts) {
            if *t == worst {
                *t = if first_worst > start {
                    value(first_worst - 1).unwrap_or(unreachable)
                } else {
                    unreachable
                };
            }
        }
        cuts
    }

    /// [`Ranked::diff`].
    pub fn diff(&self, old: &Cuts<K>, new: &Cuts<K>) -> Vec<ClassChange<K>> {
        self.ranked.diff(old, new)
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        self.ranked.check_invariants();
        assert_eq!(self.ranked.len, self.values.len());
        for e in self.ranked.chunks.iter().flatten() {
            let v = self.values[&e.id];
            assert_eq!(order_key(self.ranked.direction, v), e.key);
        }
    }
}

impl<K: Ord + Clone> Ranked<K> {
    /// An empty ranking with the default chunk size.
    pub fn new(direction: Direction) -> Self {
        Self::with_load(direction, DEFAULT_LOAD)
    }

    /// An empty ranking whose chunks hold about `load` entries (at least 1).
    pub fn with_load(direction: Direction, load: usize) -> Self {
        Self {
            direction,
            load: load.max(1),
            chunks: Vec::new(),
            fenwick: Vec::new(),
            lasts: Vec::new(),
            len: 0,
            unknown: 0,
        }
    }

    /// Builds a ranking in one sort (O(n log n)): the start-up or
    /// policy-change path. The ids must be distinct (a repeated id would
    /// be ranked twice).
    pub fn from_values(direction: Direction, values: impl IntoIterator<Item = (K, f64)>) -> Self {
        let mut ranking = Self::new(direction);
        let mut entries: Vec<Entry<K>> = values
            .into_iter()
            .map(|(id, value)| Entry {
                key: order_key(direction, value),
                id,
            })
            .collect();
        entries.sort_unstable();
        ranking.len = entries.len();
        ranking.unknown = entries.iter().filter(|e| !e.is_known()).count();
        let load = ranking.load;
        let mut chunks = Vec::with_capacity(entries.len() / load + 1);
        let mut rest = entries.into_iter();
        loop {
            let chunk: Vec<Entry<K>> = rest.by_ref().take(load).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        ranking.lasts = chunks.iter().filter_map(|c| c.last().cloned()).collect();
        ranking.chunks = chunks;
        ranking.rebuild_fenwick();
        ranking
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Customers ranked, unknown values included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Customers with a known value: the population classes are cut from.
    /// They hold positions `0..known_len()`.
    pub fn known_len(&self) -> usize {
        self.len - self.unknown
    }

    /// Customers whose value is unknown (`NaN`), ranked last.
    pub fn unknown_len(&self) -> usize {
        self.unknown
    }

    /// Ranks `id` at `value` (`NaN`: unknown). The caller knows it is not
    /// ranked yet.
    pub fn insert(&mut self, id: K, value: f64) {
        let key = order_key(self.direction, value);
        if key == UNKNOWN_KEY {
            self.unknown += 1;
        }
        self.len += 1;
        self.insert_entry(Entry { key, id });
    }

    /// Moves `id`, ranked at `old`, to `new`; returns whether its place
    /// changed (equal values, `NaN`s included, leave it). An `id` not
    /// ranked at `old` is a caller's bug: it is ranked at `new` all the
    /// same (and a debug build panics).
    pub fn update<Q>(&mut self, id: &Q, old: f64, new: f64) -> bool
    where
        K: Borrow<Q> + From<Q::Owned>,
        Q: Ord + ToOwned + ?Sized,
    {
        let old_key = order_key(self.direction, old);
        let key = order_key(self.direction, new);
        if old_key == key {
            return false;
        }
        // Move the entry (and its owned id) to its new place.
        let id = match self.take_entry(old_key, id) {
            Some(entry) => {
                if old_key == UNKNOWN_KEY {
                    self.unknown -= 1;
                }
                entry.id
            }
            None => {
                debug_assert!(false, "moved a customer not ranked at its old value");
                self.len += 1;
                K::from(id.to_owned())
            }
        };
        if key == UNKNOWN_KEY {
            self.unknown += 1;
        }
        self.insert_entry(Entry { key, id });
        true
    }

    /// Removes `id`, ranked at `value`; returns whether it was.
    pub fn remove<Q: Ord + ?Sized>(&mut self, id: &Q, value: f64) -> bool
    where
        K: Borrow<Q>,
    {
        let key = order_key(self.direction, value);
        if self.take_entry(key, id).is_none() {
            return false;
        }
        self.len -= 1;
        if key == UNKNOWN_KEY {
            self.unknown -= 1;
        }
        true
    }

    /// 0-based rank of `id` ranked at `value` (0 = best), `None` if it is
    /// not. O(log n).
    pub fn position<Q: Ord + ?Sized>(&self, id: &Q, value: f64) -> Option<usize>
    where
        K: Borrow<Q>,
    {
        let key = order_key(self.direction, value);
        let ci = self.chunk_of(key, id);
        let chunk = self.chunks.get(ci)?;
        let at = chunk.binary_search_by(|e| e.cmp_to(key, id)).ok()?;
        Some(self.prefix(ci) + at)
    }

    /// The customer at rank `position` and its value. O(log n).
    pub fn get(&self, position: usize) -> Option<(&K, f64)> {
        let (ci, at) = self.select(position)?;
        let e = self.chunks.get(ci)?.get(at)?;
        Some((&e.id, key_value(self.direction, e.key)))
    }

    /// Every customer in rank order (best first, unknown values last).
    pub fn iter(&self) -> impl Iterator<Item = (&K, f64)> + '_ {
        self.iter_entries_from(0)
            .map(|e| (&e.id, key_value(self.direction, e.key)))
    }

    /// The customers from rank `position` on, in rank order: with
    /// [`Cuts::class_range`] this lists the members of one class.
    pub fn iter_from(&self, position: usize) -> impl Iterator<Item = (&K, f64)> + '_ {
        self.iter_entries_from(position)
            .map(|e| (&e.id, key_value(self.direction, e.key)))
    }

    /// The cut points of `proportions` over the current known population.
    /// O(k log n): one select per cut point.
    pub fn cuts(&self, proportions: &Proportions) -> Cuts<K> {
        let n = self.known_len();
        let positions = proportions.boundaries(n);
        let bounds = positions.iter().map(|&p| self.bound_at(p, n)).collect();
        let flagged = proportions.flagged_low_count(n);
        let low_bound = if flagged == 0 {
            None
        } else {
            self.bound_at(n - flagged, n)
        };
        Cuts {
            direction: self.direction,
            classes: proportions.classes(),
            population: n,
            positions,
            bounds,
            flagged,
            low_bound,
        }
    }

    /// Value cut points of `proportions` over the current known
    /// population, ties to the better class: `cuts[i]` is the value of the
    /// last (worst) customer of class `i`, one per class but the last, so a
    /// value reaching `cuts[i]` (`>=` higher-is-better, `<=` lower) is in
    /// class `i` or better. A class with nobody in it cannot be reached
    /// (an infinite cut point). Unlike [`Cuts`], equal values always get
    /// the same class: what a policy needs to grade a customer by its own
    /// figure alone ([`value_class`]). Empty for an empty population.
    pub fn value_cuts(&self, proportions: &Proportions) -> Vec<f64> {
        let n = self.known_len();
        if n == 0 {
            return Vec::new();
        }
        let unreachable = match self.direction {
            Direction::HigherIsBetter => f64::INFINITY,
            Direction::LowerIsBetter => f64::NEG_INFINITY,
        };
        let mut starts = vec![0];
        starts.extend(proportions.boundaries(n));
        starts
            .iter()
            .take(proportions.classes().saturating_sub(1))
            .zip(starts.iter().skip(1))
            .map(|(&start, &end)| {
                if start < end {
                    self.get(end - 1).map_or(unreachable, |(_, v)| v)
                } else {
                    unreachable
                }
            })
            .collect()
    }

    /// Customers of this ranking whose placement (class or low flag)
    /// differs between `old` and `new` cuts, in rank order, each with its
    /// current value. Both cuts classify the *current* value, so this is
    /// the set of changes caused by the cut points moving; changes caused
    /// by a customer's own value are the caller's per-event business.
    ///
    /// Walks only the ranking between each old cut point and its new
    /// counterpart (O(k log n + changes)); when the number of classes or
    /// the direction differs it compares every known customer (O(n)).
    pub fn diff(&self, old: &Cuts<K>, new: &Cuts<K>) -> Vec<ClassChange<K>> {
        let mut changes = Vec::new();
        let mut visit = |e: &Entry<K>| {
            let before = old.placement_of(self.direction, e.key, &e.id);
            let after = new.placement_of(self.direction, e.key, &e.id);
            if let (Some(before), Some(after)) = (before, after)
                && before != after
            {
                changes.push(ClassChange {
                    id: e.id.clone(),
                    value: key_value(self.direction, e.key),
                    old: before,
                    new: after,
                });
            }
        };
        let comparable = old.classes == new.classes
            && old.direction == self.direction
            && new.direction == self.direction;
        if !comparable {
            self.iter_entries_from(0)
                .take_while(|e| e.is_known())
                .for_each(visit);
            return changes;
        }
        // Placements differ exactly between corresponding bounds: with
        // both bound lists sorted, "#bounds <= x" is equal for old and new
        // iff every pair lies on the same side of x.
        let mut spans: Vec<(&Entry<K>, Option<&Entry<K>>)> = old
            .bounds
            .iter()
            .zip(&new.bounds)
            .chain(std::iter::once((&old.low_bound, &new.low_bound)))
            .filter_map(|(a, b)| span(a.as_ref(), b.as_ref()))
            .collect();
        spans.sort_by(|a, b| a.0.cmp(b.0));
        let mut merged: Vec<(&Entry<K>, Option<&Entry<K>>)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if last.1.is_none_or(|end| lo <= end) => {
                    last.1 = max_bound(last.1, hi);
                }
                _ => merged.push((lo, hi)),
            }
        }
        for (lo, hi) in merged {
            self.iter_entries_from_entry(lo)
                .take_while(|e| e.is_known() && hi.is_none_or(|end| *e < end))
                .for_each(&mut visit);
        }
        changes
    }

    // ----- internals -----

    /// The bound at position `p` of a population of `n` known customers:
    /// the entry there, or `None` (past every known customer) when `p == n`.
    fn bound_at(&self, p: usize, n: usize) -> Option<Entry<K>> {
        if p >= n {
            return None;
        }
        let (ci, at) = self.select(p)?;
        self.chunks.get(ci)?.get(at).cloned()
    }

    /// Index of the first chunk whose last entry is >= `(key, id)`
    /// (`chunks.len()` when none is).
    fn chunk_of<Q: Ord + ?Sized>(&self, key: u64, id: &Q) -> usize
    where
        K: Borrow<Q>,
    {
        self.lasts
            .partition_point(|last| last.cmp_to(key, id) == Ordering::Less)
    }

    /// Copies chunk `ci`'s last entry into [`Self::lasts`] after it changed.
    fn refresh_last(&mut self, ci: usize) {
        if let (Some(slot), Some(last)) = (
            self.lasts.get_mut(ci),
            self.chunks.get(ci).and_then(|c| c.last()),
        ) {
            slot.clone_from(last);
        }
    }

    /// Splits chunk `ci` in two halves when it outgrew `2 * load`; returns
    /// whether it did. The index is left to the caller.
    fn split_if_long(&mut self, ci: usize) -> bool {
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return false;
        };
        if chunk.len() <= 2 * self.load {
            return false;
        }
        let tail = chunk.split_off(chunk.len() / 2);
        // The tail keeps the chunk's last entry; the head has a new one.
        let head_last = chunk.last().cloned();
        self.chunks.insert(ci + 1, tail);
        if let Some(head_last) = head_last {
            self.lasts.insert(ci, head_last);
        }
        true
    }

    fn insert_entry(&mut self, entry: Entry<K>) {
        if self.chunks.is_empty() {
            self.lasts.push(entry.clone());
            self.chunks.push(vec![entry]);
            self.rebuild_fenwick();
            return;
        }
        let last = self.chunks.len() - 1;
        let ci = self.chunk_of(entry.key, &entry.id).min(last);
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return;
        };
        let at = chunk.partition_point(|e| *e < entry);
        let new_last = at == chunk.len();
        chunk.insert(at, entry);
        if new_last {
            self.refresh_last(ci);
        }
        if self.split_if_long(ci) {
            self.rebuild_fenwick();
        } else {
            self.fenwick_add(ci, true);
        }
    }

    /// Removes and returns the entry `(key, id)`.
    fn take_entry<Q: Ord + ?Sized>(&mut self, key: u64, id: &Q) -> Option<Entry<K>>
    where
        K: Borrow<Q>,
    {
        let ci = self.chunk_of(key, id);
        let chunk = self.chunks.get_mut(ci)?;
        let at = chunk.binary_search_by(|e| e.cmp_to(key, id)).ok()?;
        let entry = chunk.remove(at);
        let was_last = at == chunk.len();
        if chunk.is_empty() {
            self.chunks.remove(ci);
            self.lasts.remove(ci);
            self.rebuild_fenwick();
        } else if chunk.len() < self.load / 2 && self.chunks.len() > 1 {
            // Merge with a neighbour, then split again if too long.
            let left = if ci + 1 < self.chunks.len() {
                ci
            } else {
                ci - 1
            };
            let right = self.chunks.remove(left + 1);
            self.lasts.remove(left + 1);
            if let Some(chunk) = self.chunks.get_mut(left) {
                chunk.extend(right);
            }
            // The merged chunk ends where the right one does now.
            self.refresh_last(left);
            self.split_if_long(left);
            self.rebuild_fenwick();
        } else {
            if was_last {
                self.refresh_last(ci);
            }
            self.fenwick_add(ci, false);
        }
        Some(entry)
    }

    /// Rebuilds the Fenwick tree after the chunk list changed shape (a
    /// split, a merge, a chunk removed). O(m), reading only the chunks'
    /// lengths.
    fn rebuild_fenwick(&mut self) {
        let m = self.chunks.len();
        self.fenwick.clear();
        self.fenwick.extend(self.chunks.iter().map(Vec::len));
        for i in 0..m {
            let j = i | (i + 1);
            if j < m {
                self.fenwick[j] += self.fenwick[i];
            }
        }
    }

    fn fenwick_add(&mut self, mut i: usize, grow: bool) {
        while let Some(slot) = self.fenwick.get_mut(i) {
            if grow {
                *slot += 1;
            } else {
                *slot -= 1;
            }
            i |= i + 1;
        }
    }

    /// Entries in chunks `0..end`.
    fn prefix(&self, mut end: usize) -> usize {
        let mut sum = 0;
        while end > 0 {
            sum += self.fenwick[end - 1];
            end &= end - 1;
        }
        sum
    }

    /// `(chunk, offset)` of rank `position`.
    fn select(&self, mut position: usize) -> Option<(usize, usize)> {
        let m = self.fenwick.len();
        if m == 0 {
            return None;
        }
        let mut skipped = 0;
        let mut step = 1usize << (usize::BITS - 1 - m.leading_zeros());
        while step > 0 {
            let next = skipped + step;
            if next <= m && self.fenwick[next - 1] <= position {
                skipped = next;
                position -= self.fenwick[next - 1];
            }
            step >>= 1;
        }
        (skipped < m).then_some((skipped, position))
    }

    fn iter_entries_from(&self, position: usize) -> impl Iterator<Item = &Entry<K>> + '_ {
        let (ci, at) = self.select(position).unwrap_or((self.chunks.len(), 0));
        self.iter_entries_at(ci, at)
    }

    /// Entries `>= lo` in rank order.
    fn iter_entries_from_entry(&self, lo: &Entry<K>) -> impl Iterator<Item = &Entry<K>> + '_ {
        let ci = self.chunk_of(lo.key, &lo.id);
        let at = self
            .chunks
            .get(ci)
            .map_or(0, |c| c.partition_point(|e| e < lo));
        self.iter_entries_at(ci, at)
    }

    fn iter_entries_at(&self, ci: usize, at: usize) -> impl Iterator<Item = &Entry<K>> + '_ {
        let first = self
            .chunks
            .get(ci)
            .and_then(|c| c.get(at..))
            .unwrap_or_default();
        let rest = self.chunks.get(ci + 1..).unwrap_or_default();
        first.iter().chain(rest.iter().flatten())
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let all: Vec<&Entry<K>> = self.chunks.iter().flatten().collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "not strictly sorted");
        assert!(self.chunks.iter().all(|c| !c.is_empty()), "empty chunk");
        assert!(self.chunks.iter().all(|c| c.len() <= 2 * self.load));
        assert_eq!(all.len(), self.len);
        assert_eq!(all.iter().filter(|e| !e.is_known()).count(), self.unknown);
        assert_eq!(self.lasts.len(), self.chunks.len(), "a last per chunk");
        assert!(
            self.chunks
                .iter()
                .zip(&self.lasts)
                .all(|(c, l)| c.last() == Some(l)),
            "a stale copy of a chunk's last entry"
        );
        for (i, _) in self.chunks.iter().enumerate() {
            let naive: usize = self.chunks[..i].iter().map(Vec::len).sum();
            assert_eq!(self.prefix(i), naive);
        }
    }
}

/// `[min, max)` of two corresponding bounds (`None` = past the end), or
/// `None` when they are equal (nobody changes side).
fn span<'a, K: Ord>(
    a: Option<&'a Entry<K>>,
    b: Option<&'a Entry<K>>,
) -> Option<(&'a Entry<K>, Option<&'a Entry<K>>)> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some((x, None)),
        (Some(x), Some(y)) => match x.cmp(y) {
            Ordering::Equal => None,
            Ordering::Less => Some((x, Some(y))),
            Ordering::Greater => Some((y, Some(x))),
        },
    }
}

fn max_bound<'a, K: Ord>(a: Option<&'a Entry<K>>, b: Option<&'a Entry<K>>) -> Option<&'a Entry<K>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x >= y { x } else { y }),
        _ => None,
    }
}

/// Why class shares were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProportionsError {
    #[error("at least one class share is needed")]
    NoClasses,
    #[error("{0} classes, at most {MAX_CLASSES} are allowed")]
    TooManyClasses(usize),
    #[error("class share #{index} is {share}, must be a finite number in [0, 1]")]
    InvalidShare { index: usize, share: f64 },
    #[error("class shares sum to {0}, must sum to 1")]
    SumNotOne(f64),
    #[error("low-value share is {0}, must be a finite number in [0, 1]")]
    InvalidLowShare(f64),
}

/// Validated class shares, best class first, plus an optional bottom
/// share flagged low value. See the module docs for the rounding rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Proportions {
    shares: Vec<f64>,
    /// Cumulative share before class `i` (for `i = 1..k`), in parts per
    /// billion.
    cumulative_ppb: Vec<u64>,
    low_share: Option<f64>,
    low_ppb: u64,
}

fn to_ppb(share: f64) -> u64 {
    // share is finite and within [0, 1 + tolerance]: the product fits.
    let ppb = (share * PPB as f64).round();
    if ppb <= 0.0 {
        0
    } else if ppb >= PPB as f64 {
        PPB
    } else {
        ppb as u64
    }
}

fn valid_share(share: f64) -> bool {
    share.is_finite() && (0.0..=1.0).contains(&share)
}

/// `floor(ppb * n / 10^9 + 1/2)`, exact.
fn round_half_up(ppb: u64, n: usize) -> usize {
    let n128 = n as u128;
    let scaled = (u128::from(ppb) * n128 + u128::from(PPB / 2)) / u128::from(PPB);
    usize::try_from(scaled).map_or(n, |b| b.min(n))
}

impl Proportions {
    /// Class shares, best class first, e.g. `[0.2, 0.3, 0.5]`. Each in
    /// `[0, 1]`, summing to 1 (within 1e-6); 1 to [`MAX_CLASSES`] classes.
    pub fn new(shares: &[f64]) -> Result<Self, ProportionsError> {
        if shares.is_empty() {
            return Err(ProportionsError::NoClasses);
        }
        if shares.len() > MAX_CLASSES {
            return Err(ProportionsError::TooManyClasses(shares.len()));
        }
        if let Some((index, &share)) = shares.iter().enumerate().find(|(_, s)| !valid_share(**s)) {
            return Err(ProportionsError::InvalidShare { index, share });
        }
        let sum: f64 = shares.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(ProportionsError::SumNotOne(sum));
        }
        let mut cumulative = 0.0;
        let mut cumulative_ppb = Vec::with_capacity(shares.len() - 1);
        for share in &shares[..shares.len() - 1] {
            cumulative += share;
            cumulative_ppb.push(to_ppb(cumulative));
        }
        Ok(Self {
            shares: shares.to_vec(),
            cumulative_ppb,
            low_share: None,
            low_ppb: 0,
        })
    }

    /// Also flags the bottom `share` of the population as low value
    /// (independent of the classes), e.g. 0.1.
    pub fn with_low_share(mut self, share: f64) -> Result<Self, ProportionsError> {
        if !valid_share(share) {
            return Err(ProportionsError::InvalidLowShare(share));
        }
        self.low_share = Some(share);
        self.low_ppb = to_ppb(share);
        Ok(self)
    }

    /// Five equal classes: class 0 is the best fifth (quintile score 5).
    pub fn quintiles() -> Self {
        Self {
            shares: vec![0.2; 5],
            cumulative_ppb: vec![PPB / 5, 2 * PPB / 5, 3 * PPB / 5, 4 * PPB / 5],
            low_share: None,
            low_ppb: 0,
        }
    }

    pub fn classes(&self) -> usize {
        self.shares.len()
    }

    pub fn shares(&self) -> &[f64] {
        &self.shares
    }

    pub fn low_share(&self) -> Option<f64> {
        self.low_share
    }

    /// The inner boundaries `b_1..b_{k-1}` for a population of `n`: class
    /// `i` holds positions `[b_i, b_{i+1})` with `b_0 = 0`, `b_k = n`.
    pub fn boundaries(&self, n: usize) -> Vec<usize> {
        self.cumulative_ppb
            .iter()
            .map(|&c| round_half_up(c, n))
            .collect()
    }

    /// Class sizes for a population of `n` (they sum to `n`).
    pub fn class_sizes(&self, n: usize) -> Vec<usize> {
        sizes(&self.boundaries(n), n)
    }

    /// How many of `n` customers the bottom flag holds.
    pub fn flagged_low_count(&self, n: usize) -> usize {
        round_half_up(self.low_ppb, n)
    }
}

fn sizes(boundaries: &[usize], n: usize) -> Vec<usize> {
    let mut previous = 0;
    boundaries
        .iter()
        .copied()
        .chain(std::iter::once(n))
        .map(|b| {
            let size = b - previous;
            previous = b;
            size
        })
        .collect()
}

/// Where a customer falls under some [`Cuts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// 0 = best class.
    pub class: usize,
    /// In the bottom share flagged low value.
    pub flagged_low: bool,
}

/// A customer whose placement differs between two [`Cuts`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassChange<K> {
    pub id: K,
    /// Its current value (what both cuts classified).
    pub value: f64,
    pub old: Placement,
    pub new: Placement,
}

/// The cut points of a [`Proportions`] over one population, frozen: it
/// classifies any `(value, id)` in O(log k) without the ranking.
///
/// A cut point is the `(value, id)` of the first customer of the next
/// class, so a customer of the ranking the cuts were taken from gets
/// exactly its class by position, and any other `(value, id)` (a new
/// customer, a changed value) falls where the tie rule puts it among them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuts<K> {
    direction: Direction,
    classes: usize,
    population: usize,
    /// `b_1..b_{k-1}`.
    positions: Vec<usize>,
    /// The entry at each of `positions`; `None` when past the end.
    bounds: Vec<Option<Entry<K>>>,
    flagged: usize,
    /// First flagged entry; `None` when nobody is flagged.
    low_bound: Option<Entry<K>>,
}

impl<K: Ord> Cuts<K> {
    /// Placement of an order key taken in `direction` (translated through
    /// its value when these cuts rank the other way).
    fn placement_of<Q: Ord + ?Sized>(
        &self,
        direction: Direction,
        key: u64,
        id: &Q,
    ) -> Option<Placement>
    where
        K: Borrow<Q>,
    {
        if key == UNKNOWN_KEY {
            return None;
        }
        let key = if direction == self.direction {
            key
        } else {
            order_key(self.direction, key_value(direction, key))
        };
        let at_or_before = |b: &Option<Entry<K>>| {
            b.as_ref()
                .is_some_and(|b| b.cmp_to(key, id) != Ordering::Greater)
        };
        Some(Placement {
            class: self.bounds.partition_point(at_or_before),
            flagged_low: at_or_before(&self.low_bound),
        })
    }

    /// Class and low flag of a customer with this value; `None` when the
    /// value is unknown (`NaN`). O(log k).
    pub fn placement<Q: Ord + ?Sized>(&self, value: f64, id: &Q) -> Option<Placement>
    where
        K: Borrow<Q>,
    {
        let key = order_key(self.direction, value);
        self.placement_of(self.direction, key, id)
    }

    /// Class (0 = best) of a customer with this value; `None` if unknown.
    pub fn class<Q: Ord + ?Sized>(&self, value: f64, id: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
    {
        self.placement(value, id).map(|p| p.class)
    }

    /// Whether a customer with this value is flagged low; `None` if unknown.
    pub fn flagged_low<Q: Ord + ?Sized>(&self, value: f64, id: &Q) -> Option<bool>
    where
        K: Borrow<Q>,
    {
        self.placement(value, id).map(|p| p.flagged_low)
    }

    /// Score `k - class` (k = best class ... 1 = worst); for quintile cuts
    /// this is the RFM score 1-5. `None` when the value is unknown.
    pub fn score<Q: Ord + ?Sized>(&self, value: f64, id: &Q) -> Option<u8>
    where
        K: Borrow<Q>,
    {
        let class = self.class(value, id)?;
        u8::try_from(self.classes - class).ok()
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Known customers the cuts were taken over.
    pub fn population(&self) -> usize {
        self.population
    }

    /// The inner boundary positions `b_1..b_{k-1}`.
    pub fn boundary_positions(&self) -> &[usize] {
        &self.positions
    }

    /// Ranking positions of class `class` (empty past the last class).
    pub fn class_range(&self, class: usize) -> std::ops::Range<usize> {
        if class >= self.classes {
            return self.population..self.population;
        }
        let start = if class == 0 {
            0
        } else {
            self.positions[class - 1]
        };
        let end = self
            .positions
            .get(class)
            .copied()
            .unwrap_or(self.population);
        start..end
    }

    /// Customers per class at the time of the cut (they sum to
    /// [`Cuts::population`]).
    pub fn class_sizes(&self) -> Vec<usize> {
        sizes(&self.positions, self.population)
    }

    /// Customers flagged low at the time of the cut.
    pub fn flagged_low_count(&self) -> usize {
        self.flagged
    }

    /// The value and id of the first (best) customer of class `class`, for
    /// `class` in `1..k`: the cut point a report shows ("B from 1,234").
    /// `None` when that class and all after it are empty.
    pub fn cut_point(&self, class: usize) -> Option<(f64, &K)> {
        let b = self.bounds.get(class.checked_sub(1)?)?.as_ref()?;
        Some((key_value(self.direction, b.key), &b.id))
    }

    /// The value and id of the best flagged customer (the low-value cut).
    pub fn low_cut_point(&self) -> Option<(f64, &K)> {
        let b = self.low_bound.as_ref()?;
        Some((key_value(self.direction, b.key), &b.id))
    }
}

/// The class of `value` under value cut points ([`Ranking::value_cuts`]):
/// the best class whose cut point it reaches, else the last (`classes -
/// 1`). `None` when the value is unknown (`None`, NaN) or there are no
/// cut points yet.
pub fn value_class(direction: Direction, cuts: &[f64], value: Option<f64>) -> Option<usize> {
    let v = value.filter(|v| !v.is_nan())?;
    if cuts.is_empty() {
        return None;
    }
    let reaches = |t: &f64| match direction {
        Direction::HigherIsBetter => v >= *t,
        Direction::LowerIsBetter => v <= *t,
    };
    Some(cuts.iter().position(reaches).unwrap_or(cuts.len()))
}

/// RFM quintile cut points as values, for grading a customer by its own
/// figures (the `rfm_*` indicators): one
/// [`Ranking::value_cuts`] of the quintiles per ranking of an
/// [`RfmRanking`], ties to the better quintile (but frequency and revenue
/// 0, no order in the window, to the worst, see
/// [`Ranking::value_cuts_lowest_kept`]), so two customers with the same figure always get the same
/// score (unlike [`RfmCuts`], which splits ties by id to keep every
/// quintile within one customer of its size, for a report). Scores are
/// 1-5, 5 = the best fifth; a dimension with no cut points (no ranked
/// customer) scores unknown. Recency cut points are last-order instants
/// (millis), so time passing moves no recency score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RfmQuintiles {
    pub recency: Vec<f64>,
    pub frequency: Vec<f64>,
    pub monetary: Vec<f64>,
}

impl RfmQuintiles {
    /// The quintile cut points of `ranking`'s current population.
    pub fn of<K: Ord + Hash + Clone>(ranking: &RfmRanking<K>) -> Self {
        // Customers with no order in the window (frequency and revenue 0)
        // score the worst fifth, not the fifth of the last customer who
        // bought: the worst fifth is kept for 0. Only for 0: among
        // customers who all bought, the usual ties to the better fifth
        // stand (one customer lapsing must not move every one-order
        // customer two fifths down).
        let q = Proportions::quintiles();
        let nothing_worst = |r: &Ranking<K>| {
            let n = r.known_len();
            if n > 0 && r.get(n - 1).is_some_and(|(_, v)| v == 0.0) {
                r.value_cuts_lowest_kept(&q)
            } else {
                r.value_cuts(&q)
            }
        };
        Self {
            recency: ranking.recency.value_cuts(&q),
            frequency: nothing_worst(&ranking.frequency),
            monetary: nothing_worst(&ranking.monetary),
        }
    }

    /// No cut points at all (nobody ranked yet).
    pub fn is_empty(&self) -> bool {
        self.recency.is_empty() && self.frequency.is_empty() && self.monetary.is_empty()
    }

    /// The quintile scores of a customer with these values.
    pub fn score(&self, values: &RfmValues) -> RfmScore {
        let score = |cuts: &[f64], v: f64| {
            let class = value_class(Direction::HigherIsBetter, cuts, Some(v))?;
            u8::try_from(5usize.saturating_sub(class)).ok()
        };
        RfmScore {
            recency: score(&self.recency, recency_value(values)),
            frequency: score(&self.frequency, values.frequency),
            monetary: score(&self.monetary, values.monetary),
        }
    }
}

/// What RFM scores a customer on.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RfmValues {
    /// The last order that still counts; `None`: no order (no R score).
    ///
    /// Recency ranks by this instant, later = better. At any common "now"
    /// that is exactly "fewer days since the last order is better", but
    /// the instant does not change as days pass, so time passing needs no
    /// re-ranking (everyone's days-since grow alike; the quintiles of R
    /// only move when orders arrive or are taken back).
    pub last_order_at: Option<Timestamp>,
    /// Orders in the window (`order_count_12m`); `NaN`: unknown.
    pub frequency: f64,
    /// Revenue in the window (`order_amount_12m`); `NaN`: unknown.
    pub monetary: f64,
}

impl RfmValues {
    /// A customer's RFM values from its last order that still counts and
    /// the window's order count and amount: unknown throughout without
    /// such an order (nothing to score its buying on, and a prospect
    /// ranked at the bottom of frequency and revenue would push the
    /// customers who buy into better fifths). The one rule for the
    /// `rfm_*` indicators and the read side's `rfm` grading.
    pub fn of(last_order_at: Option<Timestamp>, orders: f64, amount: f64) -> Self {
        let known = |v: f64| if last_order_at.is_some() { v } else { f64::NAN };
        Self {
            last_order_at,
            frequency: known(orders),
            monetary: known(amount),
        }
    }

    /// What the recency, frequency and monetary rankings rank, in that
    /// order (`NaN`: unknown; recency as the last order's millis).
    pub fn ranked(&self) -> [f64; 3] {
        [recency_value(self), self.frequency, self.monetary]
    }
}

/// Quintile scores 1-5 (5 = best fifth); `None` where the value is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RfmScore {
    pub recency: Option<u8>,
    pub frequency: Option<u8>,
    pub monetary: Option<u8>,
}

impl RfmScore {
    /// `recency + frequency + monetary` (3-15); `None` when any is unknown.
    pub fn total(&self) -> Option<u8> {
        Some(self.recency? + self.frequency? + self.monetary?)
    }
}

fn recency_value(values: &RfmValues) -> f64 {
    // Millis as f64: exact for any instant within 285,000 years of 1970.
    values.last_order_at.map_or(f64::NAN, |t| t.millis() as f64)
}

/// Three rankings (recency, frequency, monetary) for RFM quintile scores.
#[derive(Debug, Clone)]
pub struct RfmRanking<K> {
    recency: Ranking<K>,
    frequency: Ranking<K>,
    monetary: Ranking<K>,
}

/// Quintile cuts of the three RFM rankings.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmCuts<K> {
    pub recency: Cuts<K>,
    pub frequency: Cuts<K>,
    pub monetary: Cuts<K>,
}

/// A customer whose RFM score differs between two [`RfmCuts`].
#[derive(Debug, Clone, PartialEq)]
pub struct RfmChange<K> {
    pub id: K,
    pub old: RfmScore,
    pub new: RfmScore,
}

impl<K: Ord + Hash + Clone> Default for RfmRanking<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Hash + Clone> RfmRanking<K> {
    pub fn new() -> Self {
        Self {
            recency: Ranking::new(Direction::HigherIsBetter),
            frequency: Ranking::new(Direction::HigherIsBetter),
            monetary: Ranking::new(Direction::HigherIsBetter),
        }
    }

    /// Builds the three rankings in one sort each ([`Ranking::from_values`]):
    /// the start-up or policy-change path. A repeated id keeps its last
    /// values.
    pub fn from_values(values: impl IntoIterator<Item = (K, RfmValues)>) -> Self {
        let values: Vec<(K, RfmValues)> = values.into_iter().collect();
        let ranked = |value: fn(&RfmValues) -> f64| {
            Ranking::from_values(
                Direction::HigherIsBetter,
                values.iter().map(|(id, v)| (id.clone(), value(v))),
            )
        };
        Self {
            recency: ranked(recency_value),
            frequency: ranked(|v| v.frequency),
            monetary: ranked(|v| v.monetary),
        }
    }

    /// Sets a customer's RFM values (inserting it if new). Returns whether
    /// any ranked value changed (a new customer counts as a change).
    pub fn upsert<Q>(&mut self, id: &Q, values: &RfmValues) -> bool
    where
        K: Borrow<Q> + From<Q::Owned>,
        Q: Hash + Ord + ToOwned + ?Sized,
    {
        let same = |old: Option<f64>, new: f64| {
            old.is_some_and(|o| o == new || (o.is_nan() && new.is_nan()))
        };
        let r = recency_value(values);
        let r = same(self.recency.upsert(id, r), r);
        let f = same(
            self.frequency.upsert(id, values.frequency),
            values.frequency,
        );
        let m = same(self.monetary.upsert(id, values.monetary), values.monetary);
        !(r && f && m)
    }

    /// The values a ranked customer is ranked by; `None` if not ranked.
    pub fn values_of<Q: Hash + Eq + ?Sized>(&self, id: &Q) -> Option<RfmValues>
    where
        K: Borrow<Q>,
    {
        let recency = self.recency.value(id)?;
        Some(RfmValues {
            // Whole millis, ranked exactly (see `recency_value`).
            last_order_at: (!recency.is_nan()).then(|| Timestamp::from_millis(recency as i64)),
            frequency: self.frequency.value(id)?,
            monetary: self.monetary.value(id)?,
        })
    }

    pub fn remove<Q: Hash + Ord + ?Sized>(&mut self, id: &Q)
    where
        K: Borrow<Q>,
    {
        self.recency.remove(id);
        self.frequency.remove(id);
        self.monetary.remove(id);
    }

    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Recency ranking; values are last-order instants in millis.
    pub fn recency(&self) -> &Ranking<K> {
        &self.recency
    }

    pub fn frequency(&self) -> &Ranking<K> {
        &self.frequency
    }

    pub fn monetary(&self) -> &Ranking<K> {
        &self.monetary
    }

    /// Quintile cuts of the current population. O(log n).
    pub fn cuts(&self) -> RfmCuts<K> {
        RfmCuts::of([
            self.recency.ranked(),
            self.frequency.ranked(),
            self.monetary.ranked(),
        ])
    }

    /// Scores of a ranked customer under `cuts`; `None` if not ranked.
    pub fn score_of<Q: Hash + Ord + ?Sized>(&self, cuts: &RfmCuts<K>, id: &Q) -> Option<RfmScore>
    where
        K: Borrow<Q>,
    {
        Some(RfmScore {
            recency: cuts.recency.score(self.recency.value(id)?, id),
            frequency: cuts.frequency.score(self.frequency.value(id)?, id),
            monetary: cuts.monetary.score(self.monetary.value(id)?, id),
        })
    }

    /// Customers whose score differs between `old` and `new` cuts, by id
    /// ascending. Walks only the ranges between moved cut points.
    pub fn diff(&self, old: &RfmCuts<K>, new: &RfmCuts<K>) -> Vec<RfmChange<K>> {
        let mut ids: BTreeSet<K> = BTreeSet::new();
        for (ranking, o, n) in [
            (&self.recency, &old.recency, &new.recency),
            (&self.frequency, &old.frequency, &new.frequency),
            (&self.monetary, &old.monetary, &new.monetary),
        ] {
            ids.extend(ranking.diff(o, n).into_iter().map(|c| c.id));
        }
        ids.into_iter()
            .filter_map(|id| {
                let before = self.score_of(old, &id)?;
                let after = self.score_of(new, &id)?;
                (before != after).then_some(RfmChange {
                    id,
                    old: before,
                    new: after,
                })
            })
            .collect()
    }
}

impl<K: Ord + Clone> RfmCuts<K> {
    /// Quintile cuts of the recency, frequency and monetary rankings (in
    /// that order, each ranking what [`RfmValues::ranked`] gives). O(log n).
    pub fn of([recency, frequency, monetary]: [&Ranked<K>; 3]) -> Self {
        let q = Proportions::quintiles();
        RfmCuts {
            recency: recency.cuts(&q),
            frequency: frequency.cuts(&q),
            monetary: monetary.cuts(&q),
        }
    }
}

impl<K: Ord> RfmCuts<K> {
    /// The quintile scores of a customer with these values.
    pub fn score<Q: Ord + ?Sized>(&self, values: &RfmValues, id: &Q) -> RfmScore
    where
        K: Borrow<Q>,
    {
        RfmScore {
            recency: self.recency.score(recency_value(values), id),
            frequency: self.frequency.score(values.frequency, id),
            monetary: self.monetary.score(values.monetary, id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_key_sorts_like_the_documented_order() {
        let values = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        for w in values.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(
                order_key(Direction::LowerIsBetter, a) < order_key(Direction::LowerIsBetter, b)
            );
            assert!(
                order_key(Direction::HigherIsBetter, a) > order_key(Direction::HigherIsBetter, b)
            );
        }
        for d in [Direction::HigherIsBetter, Direction::LowerIsBetter] {
            assert_eq!(order_key(d, -0.0), order_key(d, 0.0));
            assert_eq!(order_key(d, f64::NAN), UNKNOWN_KEY);
            for v in values {
                assert!(order_key(d, v) < UNKNOWN_KEY);
                assert_eq!(key_value(d, order_key(d, v)).to_bits(), v.to_bits());
            }
            assert!(key_value(d, UNKNOWN_KEY).is_nan());
        }
    }

    #[test]
    fn ranking_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Ranking<String>>();
        assert_send_sync::<Cuts<String>>();
        assert_send_sync::<RfmRanking<String>>();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u16, f64),
        Remove(u16),
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => (0u8..6).prop_map(f64::from),
            1 => Just(f64::NAN),
            1 => Just(-0.0),
            1 => Just(f64::INFINITY),
            1 => any::<f64>(),
        ]
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                3 => (0u16..60, value()).prop_map(|(i, v)| Op::Upsert(i, v)),
                1 => (0u16..60).prop_map(Op::Remove),
            ],
            0..300,
        )
    }

    proptest! {
        /// Chunk splits, merges and the Fenwick tree stay consistent.
        #[test]
        fn invariants_hold_under_any_updates(ops in ops(), load in 1usize..6, higher in any::<bool>()) {
            let direction = if higher { Direction::HigherIsBetter } else { Direction::LowerIsBetter };
            let mut r: Ranking<u16> = Ranking::with_load(direction, load);
            for op in ops {
                match op {
                    Op::Upsert(id, v) => { r.upsert(&id, v); }
                    Op::Remove(id) => { r.remove(&id); }
                }
                r.check_invariants();
            }
            for p in 0..r.len() {
                let (id, _) = r.get(p).unwrap();
                prop_assert_eq!(r.position(id), Some(p));
            }
            prop_assert!(r.get(r.len()).is_none());
        }

        /// A `Ranked` moved by values its caller holds ranks exactly as a
        /// `Ranking` with its own index: same order, same cut points.
        #[test]
        fn ranked_with_values_held_by_the_caller_equals_ranking(
            ops in ops(),
            load in 1usize..6,
            higher in any::<bool>(),
        ) {
            let direction = if higher { Direction::HigherIsBetter } else { Direction::LowerIsBetter };
            let mut indexed: Ranking<u16> = Ranking::with_load(direction, load);
            let mut ranked: Ranked<u16> = Ranked::with_load(direction, load);
            let mut held: HashMap<u16, f64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert(id, v) => {
                        let before = indexed.upsert(&id, v);
                        prop_assert_eq!(before.is_some(), held.contains_key(&id));
                        match held.insert(id, v) {
                            Some(old) => {
                                let moved = ranked.update(&id, old, v);
                                let same = order_key(direction, old) == order_key(direction, v);
                                prop_assert_eq!(moved, !same);
                            }
                            None => ranked.insert(id, v),
                        }
                        prop_assert_eq!(ranked.position(&id, v), indexed.position(&id));
                    }
                    Op::Remove(id) => {
                        let old = indexed.remove(&id);
                        let value = held.remove(&id);
                        prop_assert_eq!(old.is_some(), value.is_some());
                        if let Some(v) = value {
                            prop_assert!(ranked.remove(&id, v));
                            prop_assert!(!ranked.remove(&id, v), "removed twice");
                        }
                    }
                }
                ranked.check_invariants();
                prop_assert_eq!(ranked.len(), indexed.len());
                prop_assert_eq!(ranked.unknown_len(), indexed.unknown_len());
            }
            let order = |it: &mut dyn Iterator<Item = (&u16, f64)>| -> Vec<(u16, u64)> {
                it.map(|(id, v)| (*id, order_key(direction, v))).collect()
            };
            prop_assert_eq!(order(&mut ranked.iter()), order(&mut indexed.iter()));
            let shares = Proportions::new(&[0.2, 0.3, 0.5]).unwrap().with_low_share(0.1).unwrap();
            prop_assert_eq!(ranked.cuts(&shares), indexed.cuts(&shares));
            for (id, v) in &held {
                prop_assert_eq!(ranked.position(id, *v), indexed.position(id));
            }
        }
    }
}

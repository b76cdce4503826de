//! Tasks: one input partition's customers and their due index.
//!
//! The engine keeps one [`Task`] per scope (input partition, plus one for
//! the unscoped customers known only from commands). A task owns the
//! states of its customers and the instants they fall due, so a partition
//! is a unit the engine can hand over whole: a revoke drops its task, an
//! assignment loads one, and a sweep takes due customers task by task.
//! Customer ids are routed to their task by the engine's scope map. Ids
//! are held inline ([`CustomerId`]): a lookup compares the key in its
//! bucket, where a `String` key sent every lookup to the heap (a profile
//! of the policy rescore over 1,000,000 customers put 17% of the engine's
//! samples on comparing keys, each after a cache miss).
//!
//! A customer is held *hot* (decoded) or *cold* (encoded, postcard: about
//! 430 bytes against about 3 KB decoded). A customer is decoded when
//! anything changes it and stays hot while it is used; the engine cools
//! the least recently used hot customers back when more than its hot
//! limit are hot (see `Engine::set_hot_limit`). Reading a cold customer
//! decodes a copy and leaves it cold. A hot customer keeps the value its
//! last commit stored (shared with that commit) until something changes
//! it, so cooling a customer that was committed and not changed since
//! copies that value's body instead of encoding the state a second time.
//!
//! What a task does not hold is population-wide: the policy in force, the
//! `abc` and RFM rankings (a customer's band depends on every customer
//! this instance grades), the rescore queue and the at-risk and overdue
//! totals stay with the [`Engine`](crate::Engine).
//!
//! A policy rescore that finds a cold customer's decision standing
//! leaves its bytes as they are and marks them *confirmed*: decoding
//! them then applies the confirmation (`CustomerState::confirm` with the
//! task's [`Confirmation`]), so every reader sees what a rewrite would
//! have held, and the rescore neither encodes nor stores the customer.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use tier_core::Timestamp;
use tier_core::state::CustomerState;

use crate::dense::NO_HINT;

/// One customer, decoded or encoded.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Decoded; `used` is the engine's epoch (seal count) of its last use,
    /// `size` its heap size when last measured (`CustomerState::heap_size`,
    /// plus `stored`'s length; counted in the task's `hot_bytes`).
    ///
    /// `stored`: the value the store was last handed for this state (see
    /// [`Task::hold_stored`]), while the state is exactly what it encodes:
    /// every path that lends the state out mutably drops it first
    /// ([`Slot::lend`]), so cooling the customer keeps its body instead of
    /// encoding the state again.
    Hot {
        state: Box<CustomerState>,
        used: u64,
        size: usize,
        stored: Option<Arc<[u8]>>,
    },
    /// Encoded (postcard): the stored form of the state.
    /// `at_risk` mirrors `state.at_risk.is_some()`, so counting the
    /// customers with a drop announced decodes nothing. `confirmed`: the
    /// policy rescore under way (or done) found the decision standing;
    /// decoding applies the task's [`Confirmation`].
    Cold {
        bytes: Box<[u8]>,
        at_risk: bool,
        confirmed: bool,
    },
}

/// A customer id as the engine holds it (tier-core's): copying one (the
/// use queue, the due index, the rescore queue) allocates nothing.
pub use tier_core::projection::CustomerId;

/// A map keyed by customer [`CustomerId`] (see the `dense` module).
pub(crate) type IdTable<V> = crate::dense::DenseMap<V>;

/// The confirmation of the policy in force: its version and the rescore's
/// instant (see `CustomerState::confirm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Confirmation {
    pub(crate) version: String,
    pub(crate) at: Timestamp,
}

impl Confirmation {
    fn apply(&self, state: &mut CustomerState) {
        state.confirm(&self.version, self.at);
    }
}

impl Slot {
    /// `state` encoded, or `None` (a state that cannot be encoded, none
    /// today, stays hot).
    fn encode(state: &CustomerState) -> Option<Box<[u8]>> {
        // Through a scratch slice into one exact allocation: a growing
        // vector reallocated and copied several times per state, on the
        // engine's thread at every seal that cools customers.
        tier_store::postcard_after(&[], state).ok()
    }

    /// A hot state to change: the stored value it held no longer encodes
    /// it and is dropped (its length leaves `size` and `hot_bytes`).
    fn lend<'a>(
        state: &'a mut CustomerState,
        size: &mut usize,
        stored: &mut Option<Arc<[u8]>>,
        hot_bytes: &mut usize,
    ) -> &'a mut CustomerState {
        if let Some(value) = stored.take() {
            *size -= value.len();
            *hot_bytes -= value.len();
        }
        state
    }

    /// The bytes' state, not confirmed.
    pub(crate) fn decode(bytes: &[u8]) -> CustomerState {
        // The bytes are this engine's own encoding of a state it held a
        // moment before, never input: a failure is a bug in the codec.
        #[allow(clippy::expect_used)]
        postcard::from_bytes(bytes).expect("a customer state this engine encoded decodes")
    }

    /// The bytes' state decoded for deciding only (tier-core's
    /// `deciding_only`: without the applied event ids, the orders by id
    /// and the invoices not open): what the policy rescore decides and
    /// shows a customer from. To read, never to hold, fold events into or
    /// store.
    pub(crate) fn decode_deciding_only(bytes: &[u8]) -> CustomerState {
        tier_core::projection::deciding_only(|| Self::decode(bytes))
    }

    /// A cold slot's state, with its confirmation when it has one.
    fn decode_confirmed(
        bytes: &[u8],
        confirmed: bool,
        confirmation: Option<&Confirmation>,
    ) -> CustomerState {
        let mut state = Self::decode(bytes);
        if confirmed && let Some(c) = confirmation {
            c.apply(&mut state);
        }
        state
    }

    /// The state, borrowed when hot, decoded when cold.
    fn read(&self, confirmation: Option<&Confirmation>) -> Cow<'_, CustomerState> {
        match self {
            Slot::Hot { state, .. } => Cow::Borrowed(state),
            Slot::Cold {
                bytes, confirmed, ..
            } => Cow::Owned(Self::decode_confirmed(bytes, *confirmed, confirmation)),
        }
    }

    /// The state when hot.
    pub(crate) fn hot(&self) -> Option<&CustomerState> {
        match self {
            Slot::Hot { state, .. } => Some(state),
            Slot::Cold { .. } => None,
        }
    }

    pub(crate) fn at_risk(&self) -> bool {
        match self {
            Slot::Hot { state, .. } => state.at_risk.is_some(),
            Slot::Cold { at_risk, .. } => *at_risk,
        }
    }

    fn into_state(self, confirmation: Option<&Confirmation>) -> CustomerState {
        match self {
            Slot::Hot { state, .. } => *state,
            Slot::Cold {
                bytes, confirmed, ..
            } => Self::decode_confirmed(&bytes, confirmed, confirmation),
        }
    }
}

/// A customer as the policy rescore meets it (see [`Task::rescore_view`]),
/// found with one lookup.
#[derive(Debug)]
pub(crate) enum Held<'a> {
    Hot(&'a mut CustomerState),
    /// Encoded and not confirmed yet.
    Cold(ColdVisit<'a>),
    /// Encoded and confirmed under the policy in force already.
    Confirmed,
}

/// A cold customer the policy rescore visits: its bytes, and what of its
/// entry it marks confirmed and indexes again, without looking it up a
/// second time.
#[derive(Debug)]
pub(crate) struct ColdVisit<'a> {
    id: &'a str,
    bytes: &'a [u8],
    confirmed: &'a mut bool,
    /// The instant the entry is indexed at, and the task's due index.
    due_at: &'a mut Option<Timestamp>,
    due: &'a mut BTreeSet<(Timestamp, CustomerId)>,
    /// The task's confirmation.
    confirmation: &'a mut Option<Arc<Confirmation>>,
}

impl ColdVisit<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// The decision stands: mark the bytes confirmed under `confirmation`
    /// (the policy in force; decoding them applies it) and index the
    /// customer at `due`.
    pub(crate) fn confirm(self, confirmation: &Arc<Confirmation>, due: Option<Timestamp>) {
        *self.confirmed = true;
        if self.confirmation.as_ref() != Some(confirmation) {
            debug_assert!(
                self.confirmation.is_none(),
                "confirmations of another policy are cleared first"
            );
            *self.confirmation = Some(Arc::clone(confirmation));
        }
        set_due(self.due, self.due_at, self.id, due);
    }
}

/// Index customer `id`, indexed at `indexed`, at `at` in `due`, replacing
/// its entry.
fn set_due(
    due: &mut BTreeSet<(Timestamp, CustomerId)>,
    indexed: &mut Option<Timestamp>,
    id: &str,
    at: Option<Timestamp>,
) {
    if *indexed == at {
        return;
    }
    if let Some(old) = indexed.take() {
        due.remove(&(old, CustomerId::from(id)));
    }
    if let Some(t) = at {
        due.insert((t, CustomerId::from(id)));
        *indexed = Some(t);
    }
}

/// `slot`'s state to change: decoded (counted in `hot` and `hot_bytes`)
/// if cold, marked used in `epoch`. A first use in `epoch` queues `id` in
/// `recent`.
fn thaw<'a>(
    slot: &'a mut Slot,
    (hot, hot_bytes): (&mut usize, &mut usize),
    recent: &mut VecDeque<(u64, CustomerId)>,
    id: &str,
    epoch: u64,
    confirmation: Option<&Confirmation>,
) -> &'a mut CustomerState {
    if let Slot::Cold {
        bytes, confirmed, ..
    } = slot
    {
        let state = Box::new(Slot::decode_confirmed(bytes, *confirmed, confirmation));
        let size = state.heap_size();
        // `u64::MAX`: not used in any epoch yet, queued just below.
        *slot = Slot::Hot {
            state,
            used: u64::MAX,
            size,
            stored: None,
        };
        *hot += 1;
        *hot_bytes += size;
    }
    match slot {
        Slot::Hot {
            state,
            used,
            size,
            stored,
        } => {
            if *used != epoch {
                *used = epoch;
                recent.push_back((epoch, CustomerId::from(id)));
            }
            Slot::lend(state, size, stored, hot_bytes)
        }
        // Replaced by a hot slot just above.
        Slot::Cold { .. } => unreachable!("a thawed slot is hot"),
    }
}

/// Whether the use-queue entry `(epoch, id)` is live: `id` is hot and
/// was last used in `epoch`.
fn live(states: &IdTable<Entry>, epoch: u64, id: &str) -> bool {
    states
        .get(id)
        .is_some_and(|e| matches!(e.slot, Slot::Hot { used, .. } if used == epoch))
}

/// One customer of a task: its state and the instant it is indexed at
/// (kept here rather than in a second map, one id copy less).
#[derive(Debug)]
struct Entry {
    slot: Slot,
    due: Option<Timestamp>,
    /// Counted in the task's `at_risk`: whether the slot's state had a
    /// drop announced when the task last looked (at a settle, an insert,
    /// a cooling).
    at_risk: bool,
}

/// Count `entry` (counted as `counted`) in `total` as `now` says.
fn recount(total: &mut usize, counted: &mut bool, now: bool) {
    match (*counted, now) {
        (false, true) => *total += 1,
        (true, false) => *total -= 1,
        _ => {}
    }
    *counted = now;
}

/// One scope's customers and when each falls due.
#[derive(Debug, Default)]
pub(crate) struct Task {
    states: IdTable<Entry>,
    /// Customers held decoded.
    hot: usize,
    /// Their heap size, as last measured (the sum of their `size`).
    hot_bytes: usize,
    /// Customers with a drop announced, as last looked at (the entries
    /// whose `at_risk` is set): the engine's at-risk gauge sums these
    /// instead of visiting every customer at every seal.
    at_risk: usize,
    /// `(when, customer)`: the next instant the sweeper must look at a
    /// customer. Exactly one entry per customer with anything due (the
    /// one its `Entry::due` names).
    due: BTreeSet<(Timestamp, CustomerId)>,
    /// `(epoch, customer)` in the order customers were used: the least
    /// recently used hot customer is found at the front without a scan
    /// (an entry is live while its customer is hot and last used in that
    /// epoch; stale ones are dropped as they are met, and in a compaction
    /// once the queue outgrows twice the hot count).
    recent: VecDeque<(u64, CustomerId)>,
    /// What decoding a confirmed cold customer applies (set with the
    /// first confirmation, cleared with every confirmation when another
    /// policy comes into force).
    confirmation: Option<Arc<Confirmation>>,
}

impl Task {
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    pub(crate) fn hot_len(&self) -> usize {
        self.hot
    }

    /// What the customers held decoded hold on the heap, as last measured.
    pub(crate) fn hot_bytes(&self) -> usize {
        self.hot_bytes
    }

    /// Customers with a drop announced, as of the last settle of each
    /// customer changed (exact after a seal).
    pub(crate) fn at_risk_len(&self) -> usize {
        self.at_risk
    }

    /// After a unit changed `id`: index it at the instant `next_due`
    /// gives for its state, and measure its heap size again if it is held
    /// decoded. Looks at position `hint` first (where the caller found it;
    /// [`NO_HINT`] when it did not look), else one lookup.
    pub(crate) fn settle(
        &mut self,
        id: &str,
        hint: usize,
        next_due: impl FnOnce(&CustomerState) -> Option<Timestamp>,
    ) {
        let Some((_, entry)) = self.states.get_mut_near(id, hint) else {
            return;
        };
        let at = next_due(&entry.slot.read(self.confirmation.as_deref()));
        set_due(&mut self.due, &mut entry.due, id, at);
        recount(&mut self.at_risk, &mut entry.at_risk, entry.slot.at_risk());
        if let Slot::Hot {
            state,
            size,
            stored,
            ..
        } = &mut entry.slot
        {
            let measured = state.heap_size() + stored.as_ref().map_or(0, |v| v.len());
            let old = std::mem::replace(size, measured);
            self.hot_bytes = self.hot_bytes - old + *size;
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.states.contains_key(id)
    }

    /// Where `id` sits in the task's table, looked for at `hint` first
    /// (see [`Self::positions`]).
    pub(crate) fn position_near(&self, id: &str, hint: usize) -> Option<usize> {
        self.states.position_near(id, hint)
    }

    /// Read the first byte of `id`'s bytes when it is held encoded (at
    /// `hint` only), so that they are in the cache when it is decoded.
    pub(crate) fn touch_near(&self, id: &str, hint: usize) {
        if let Some(Entry {
            slot: Slot::Cold { bytes, .. },
            ..
        }) = self.states.at(id, hint)
        {
            // `black_box`: a read the compiler must not drop as unused.
            std::hint::black_box(bytes.first().copied());
        }
    }

    /// Every customer with its position in the task's table (a hint for
    /// [`Self::position_near`] and [`Self::rescore_view`]).
    pub(crate) fn positions(&self) -> impl Iterator<Item = (usize, &CustomerId)> {
        self.states.positions().map(|(i, id, _)| (i, id))
    }

    /// `id`'s state (decoded when cold, leaving it cold).
    pub(crate) fn get(&self, id: &str) -> Option<Cow<'_, CustomerState>> {
        let confirmation = self.confirmation.as_deref();
        self.states.get(id).map(|e| e.slot.read(confirmation))
    }

    /// Every customer's state (decoded when cold, leaving it cold).
    pub(crate) fn states(&self) -> impl Iterator<Item = (&CustomerId, Cow<'_, CustomerState>)> {
        let confirmation = self.confirmation.as_deref();
        self.states
            .iter()
            .map(move |(id, e)| (id, e.slot.read(confirmation)))
    }

    /// `id` as the policy rescore meets it, leaving it as it is held;
    /// looked for at position `hint` first (see [`Self::positions`]).
    pub(crate) fn rescore_view<'a>(&'a mut self, id: &'a str, hint: usize) -> Option<Held<'a>> {
        let (
            _,
            Entry {
                slot, due: due_at, ..
            },
        ) = self.states.get_mut_near(id, hint)?;
        Some(match slot {
            Slot::Hot {
                state,
                size,
                stored,
                ..
            } => Held::Hot(Slot::lend(state, size, stored, &mut self.hot_bytes)),
            Slot::Cold {
                confirmed: true, ..
            } => Held::Confirmed,
            Slot::Cold {
                bytes, confirmed, ..
            } => Held::Cold(ColdVisit {
                id,
                bytes,
                confirmed,
                due_at,
                due: &mut self.due,
                confirmation: &mut self.confirmation,
            }),
        })
    }

    /// Drop every confirmation (another policy comes into force): each
    /// confirmed customer is held as its bytes say again.
    pub(crate) fn clear_confirmations(&mut self) {
        if self.confirmation.take().is_none() {
            return;
        }
        for e in self.states.values_mut() {
            if let Slot::Cold { confirmed, .. } = &mut e.slot {
                *confirmed = false;
            }
        }
    }

    /// `id`'s key and slot.
    #[cfg(test)]
    pub(crate) fn slot(&self, id: &str) -> Option<(&CustomerId, &Slot)> {
        self.slot_at(self.states.position(id)?)
    }

    /// The customer at position `at` of the task's table, with its slot.
    pub(crate) fn slot_at(&self, at: usize) -> Option<(&CustomerId, &Slot)> {
        self.states.entry_at(at).map(|(k, e)| (k, &e.slot))
    }

    /// Whether `id` is at position `at` of the task's table.
    pub(crate) fn is_at(&self, id: &str, at: usize) -> bool {
        self.states.at(id, at).is_some()
    }

    /// Where `id` sits in the task's table (for [`Self::get_mut_near`]).
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.states.position(id)
    }

    /// `id`'s state to change: decoded if cold, marked used in `epoch`.
    pub(crate) fn get_mut(&mut self, id: &str, epoch: u64) -> Option<&mut CustomerState> {
        self.get_mut_near(id, NO_HINT, epoch)
            .map(|(_, state)| state)
    }

    /// [`Self::get_mut`], looking at position `hint` first (where the
    /// caller just found `id`), with the position it is at.
    pub(crate) fn get_mut_near(
        &mut self,
        id: &str,
        hint: usize,
        epoch: u64,
    ) -> Option<(usize, &mut CustomerState)> {
        self.compact_recent();
        let (at, entry) = self.states.get_mut_near(id, hint)?;
        Some((
            at,
            thaw(
                &mut entry.slot,
                (&mut self.hot, &mut self.hot_bytes),
                &mut self.recent,
                id,
                epoch,
                self.confirmation.as_deref(),
            ),
        ))
    }

    /// A new customer `id` (not in the task), with a default state, and
    /// the position it is at.
    pub(crate) fn insert_new(
        &mut self,
        id: impl Into<CustomerId>,
        epoch: u64,
    ) -> (usize, &mut CustomerState) {
        let id = id.into();
        self.compact_recent();
        let state = Box::<CustomerState>::default();
        let size = state.heap_size();
        self.hot += 1;
        self.hot_bytes += size;
        self.recent.push_back((epoch, id.clone()));
        let slot = Slot::Hot {
            state,
            used: epoch,
            size,
            stored: None,
        };
        // A default state has no drop announced.
        let (at, entry) = self.states.insert_absent(
            id,
            Entry {
                slot,
                due: None,
                at_risk: false,
            },
        );
        match &mut entry.slot {
            Slot::Hot { state, .. } => (at, state),
            Slot::Cold { .. } => unreachable!("inserted hot just above"),
        }
    }

    /// Hold `state` for `id` (hot), replacing what was held (its due
    /// entry stays until the next [`Task::index`]).
    pub(crate) fn insert(&mut self, id: impl Into<CustomerId>, state: CustomerState, epoch: u64) {
        let id = id.into();
        self.compact_recent();
        let size = state.heap_size();
        let at_risk = state.at_risk.is_some();
        let slot = Slot::Hot {
            state: Box::new(state),
            used: epoch,
            size,
            stored: None,
        };
        self.recent.push_back((epoch, id.clone()));
        self.hot_bytes += size;
        match self.states.get_mut(&id) {
            Some(entry) => {
                match entry.slot {
                    Slot::Hot { size: old, .. } => self.hot_bytes -= old,
                    Slot::Cold { .. } => self.hot += 1,
                }
                entry.slot = slot;
                recount(&mut self.at_risk, &mut entry.at_risk, at_risk);
            }
            None => {
                self.hot += 1;
                self.at_risk += usize::from(at_risk);
                self.states.insert(
                    id,
                    Entry {
                        slot,
                        due: None,
                        at_risk,
                    },
                );
            }
        }
    }

    /// Drop the stale entries of the use queue once it holds more than
    /// twice as many as there are hot customers (so it stays bounded
    /// when nothing is cooled, at a cost spread over the uses between).
    fn compact_recent(&mut self) {
        if self.recent.len() <= 2 * self.hot + 1024 {
            return;
        }
        let states = &self.states;
        self.recent.retain(|(epoch, id)| live(states, *epoch, id));
    }

    /// The epoch of the least recently used hot customer's last use
    /// (stale queue entries in front of it are dropped).
    pub(crate) fn least_recent(&mut self) -> Option<u64> {
        while let Some((used, id)) = self.recent.front() {
            if live(&self.states, *used, id) {
                return Some(*used);
            }
            self.recent.pop_front();
        }
        None
    }

    /// Take the least recently used hot customer off the use queue (it
    /// stays hot: cool it, or [`Task::requeue`] it).
    pub(crate) fn pop_least_recent(&mut self) -> Option<(u64, CustomerId)> {
        self.least_recent()?;
        self.recent.pop_front()
    }

    /// Put `(used, id)`, taken by [`Task::pop_least_recent`] and kept hot,
    /// back on the use queue.
    pub(crate) fn requeue(&mut self, used: u64, id: CustomerId) {
        self.recent.push_back((used, id));
    }

    /// Encode `id` if it is hot; when it was cooled, the heap bytes it
    /// was counted for.
    pub(crate) fn cool(&mut self, id: &str) -> Option<usize> {
        let entry = self.states.get_mut(id)?;
        let Slot::Hot {
            state,
            size,
            stored,
            ..
        } = &mut entry.slot
        else {
            return None;
        };
        let bytes = match stored.as_deref().and_then(tier_store::current_body) {
            // The value the store was last handed encodes this very state
            // (see `Slot::Hot`): its body is the cold form, copied.
            Some(body) => {
                debug_assert_eq!(
                    Some(body),
                    Slot::encode(state).as_deref(),
                    "the stored value {id} holds encodes its state"
                );
                Box::from(body)
            }
            None => Slot::encode(state)?,
        };
        let at_risk = state.at_risk.is_some();
        let freed = *size;
        self.hot_bytes -= freed;
        entry.slot = Slot::Cold {
            bytes,
            at_risk,
            confirmed: false,
        };
        recount(&mut self.at_risk, &mut entry.at_risk, at_risk);
        self.hot -= 1;
        Some(freed)
    }

    /// Hold `value`, the store's value just encoded from hot customer
    /// `id`'s state, beside it (counted in `hot_bytes`): cooling `id`
    /// before anything changes it keeps the value's body. A cold or
    /// unknown `id` is left alone. Looks at position `hint` first (see
    /// [`Self::settle`]).
    pub(crate) fn hold_stored(&mut self, id: &str, hint: usize, value: Arc<[u8]>) {
        let Some((
            _,
            Entry {
                slot: Slot::Hot { size, stored, .. },
                ..
            },
        )) = self.states.get_mut_near(id, hint)
        else {
            return;
        };
        let old = stored.replace(value).map_or(0, |v| v.len());
        let new = stored.as_ref().map_or(0, |v| v.len());
        *size = *size - old + new;
        self.hot_bytes = self.hot_bytes - old + new;
    }

    /// Every customer with its slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CustomerId, &Slot)> {
        self.states.iter().map(|(id, e)| (id, &e.slot))
    }

    /// Every customer, decoded, consuming the task.
    pub(crate) fn into_states(self) -> impl Iterator<Item = (CustomerId, CustomerState)> {
        let confirmation = self.confirmation;
        self.states
            .into_entries()
            .map(move |(id, e)| (id, e.slot.into_state(confirmation.as_deref())))
    }

    /// The earliest instant anything of this task is due.
    pub(crate) fn first_due(&self) -> Option<Timestamp> {
        self.due.first().map(|(t, _)| *t)
    }

    /// Customers due at or before `horizon`.
    pub(crate) fn due_count(&self, horizon: Timestamp) -> usize {
        self.due
            .range(
                ..(
                    Timestamp::from_millis(horizon.millis().saturating_add(1)),
                    CustomerId::default(),
                ),
            )
            .count()
    }

    /// Take the first customer due at or before `horizon` off the index.
    pub(crate) fn pop_due(&mut self, horizon: Timestamp) -> Option<CustomerId> {
        if self.first_due()? > horizon {
            return None;
        }
        let (_, id) = self.due.pop_first()?;
        if let Some(entry) = self.states.get_mut(&id) {
            entry.due = None;
        }
        Some(id)
    }

    /// Index `id` (a customer of this task) at `at` (`None`: nothing
    /// due), replacing its entry.
    pub(crate) fn index(&mut self, id: &str, at: Option<Timestamp>) {
        if let Some(entry) = self.states.get_mut(id) {
            set_due(&mut self.due, &mut entry.due, id, at);
        }
    }

    /// Take `id` out of the task (state and due entry).
    pub(crate) fn remove(&mut self, id: &str) -> Option<CustomerState> {
        let entry = self.states.remove(id)?;
        if let Some(t) = entry.due {
            self.due.remove(&(t, CustomerId::from(id)));
        }
        if entry.at_risk {
            self.at_risk -= 1;
        }
        if let Slot::Hot { size, .. } = entry.slot {
            self.hot -= 1;
            self.hot_bytes -= size;
        }
        Some(entry.slot.into_state(self.confirmation.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn an_id_hashes_as_its_string_inline_or_not() {
        use std::hash::BuildHasher;
        use tier_core::projection::Fnv;
        let fnv = std::hash::BuildHasherDefault::<Fnv>::default();
        let long = "customer-with-an-id-longer-than-twenty-four-bytes";
        for id in ["c1", "cust-0000001", long] {
            assert_eq!(
                fnv.hash_one(CustomerId::from(id)),
                fnv.hash_one(id.to_owned()),
                "{id}"
            );
        }
        assert!(!CustomerId::from("cust-0000001").is_heap_allocated());
        assert!(CustomerId::from(long).is_heap_allocated());
    }

    #[test]
    fn the_due_index_pops_in_order_up_to_the_horizon_and_keeps_one_entry_per_customer() {
        let mut task = Task::default();
        for id in ["a", "b", "c"] {
            task.insert(id, CustomerState::default(), 0);
        }
        task.index("b", Some(at(20)));
        task.index("a", Some(at(30)));
        task.index("a", Some(at(10)));
        task.index("c", Some(at(40)));
        assert_eq!(task.first_due(), Some(at(10)));
        assert_eq!(task.due_count(at(20)), 2);
        assert_eq!(task.pop_due(at(25)).as_deref(), Some("a"));
        assert_eq!(task.pop_due(at(25)).as_deref(), Some("b"));
        assert_eq!(task.pop_due(at(25)), None);
        task.index("c", None);
        assert_eq!(task.first_due(), None);
    }

    /// A state with a drop announced, or without.
    fn with_notice(at_risk: bool) -> CustomerState {
        let mut state = CustomerState::default();
        state.at_risk = at_risk.then(|| {
            Box::new(tier_core::state::AtRisk {
                customer_id: "c".into(),
                current_tier: "B".into(),
                falls_to: "C".into(),
                on: at(50),
                keep: Vec::new(),
            })
        });
        state
    }

    /// One step of a unit on a task: what the engine does to a customer.
    #[derive(Debug, Clone)]
    enum Step {
        /// Hold a new or replacing state (a load, a rescore's re-decode).
        Insert(u8, bool),
        /// A new customer's default state.
        InsertNew(u8),
        /// Change the notice, then settle (a unit's change and its seal)
        /// with a hint, right, stale or out of range: it is checked, never
        /// trusted.
        Change(u8, bool, u8),
        Cool(u8),
        Remove(u8),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, any::<bool>()).prop_map(|(c, r)| Step::Insert(c, r)),
            (0..6u8).prop_map(Step::InsertNew),
            (0..6u8, any::<bool>(), 0..8u8).prop_map(|(c, r, h)| Step::Change(c, r, h)),
            (0..6u8).prop_map(Step::Cool),
            (0..6u8).prop_map(Step::Remove),
        ]
    }

    proptest::proptest! {
        /// The task's at-risk count is the number of its customers with a
        /// drop announced after every step, whichever way each is held.
        #[test]
        fn the_at_risk_count_is_the_customers_with_a_notice(
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let mut task = Task::default();
            for (epoch, s) in steps.into_iter().enumerate() {
                let epoch = epoch as u64;
                match s {
                    Step::Insert(c, r) => task.insert(c.to_string(), with_notice(r), epoch),
                    Step::InsertNew(c) => {
                        if !task.contains(&c.to_string()) {
                            task.insert_new(c.to_string(), epoch);
                        }
                    }
                    Step::Change(c, r, hint) => {
                        if let Some(state) = task.get_mut(&c.to_string(), epoch) {
                            state.at_risk = with_notice(r).at_risk;
                            task.settle(&c.to_string(), hint.into(), |_| None);
                        }
                    }
                    Step::Cool(c) => {
                        task.cool(&c.to_string());
                    }
                    Step::Remove(c) => {
                        task.remove(&c.to_string());
                    }
                }
                let scanned = task.iter().filter(|(_, slot)| slot.at_risk()).count();
                proptest::prop_assert_eq!(task.at_risk_len(), scanned);
            }
        }
    }

    #[test]
    fn settling_a_changed_customer_indexes_it_and_measures_it_again() {
        let mut task = Task::default();
        task.insert("a", CustomerState::default(), 1);
        let measured = task.hot_bytes();
        assert_eq!(measured, CustomerState::default().heap_size());
        // A unit changes it: it grows on the heap.
        task.get_mut("a", 2)
            .unwrap()
            .policy_version
            .push_str(&"v".repeat(4096));
        assert_eq!(task.hot_bytes(), measured, "not measured until settled");
        task.settle("a", NO_HINT, |_| Some(at(7)));
        let grown = task.slot("a").unwrap().1.hot().unwrap().heap_size();
        assert!(grown >= measured + 4096);
        assert_eq!(task.hot_bytes(), grown, "measured again");
        assert_eq!(task.first_due(), Some(at(7)), "indexed at its next due");
        // Settling a cold customer indexes it and counts nothing.
        let freed = task.cool("a").expect("a was hot");
        assert_eq!(freed, grown);
        assert_eq!(task.hot_bytes(), 0);
        task.settle("a", NO_HINT, |s| {
            assert!(s.policy_version.len() >= 4096, "read decoded");
            Some(at(9))
        });
        assert_eq!(task.hot_bytes(), 0);
        assert_eq!(task.first_due(), Some(at(9)));
        task.settle("nobody", NO_HINT, |_| unreachable!("no state to read"));
    }

    #[test]
    fn a_cooled_customer_reads_and_thaws_to_the_same_state_and_the_hot_count_follows() {
        let mut task = Task::default();
        let mut state = CustomerState::default();
        state.policy_version = "v7".into();
        task.insert("a", state.clone(), 1);
        task.insert("b", CustomerState::default(), 1);
        assert_eq!(task.hot_len(), 2);
        let before = task.hot_bytes();
        let freed = task.cool("a").expect("a was hot");
        assert_eq!(
            task.hot_bytes(),
            before - freed,
            "its bytes leave the count"
        );
        assert!(task.cool("a").is_none(), "already cold");
        assert_eq!(task.hot_len(), 1);
        assert!(task.slot("a").unwrap().1.hot().is_none());
        assert_eq!(task.get("a").unwrap().as_ref(), &state, "a read decodes");
        assert_eq!(task.hot_len(), 1, "a read leaves it cold");
        task.get_mut("a", 5).unwrap().policy_version.push('!');
        assert_eq!(task.hot_len(), 2, "a change thaws it");
        assert_eq!(task.least_recent(), Some(1), "b was used first");
        assert_eq!(task.pop_least_recent(), Some((1, "b".into())));
        assert_eq!(task.pop_least_recent(), Some((5, "a".into())));
        assert_eq!(
            task.pop_least_recent(),
            None,
            "each hot customer queued once"
        );
        task.requeue(5, "a".into());
        assert_eq!(task.least_recent(), Some(5));
        assert!(task.cool("a").is_some());
        assert_eq!(task.remove("a").unwrap().policy_version, "v7!");
        assert_eq!((task.len(), task.hot_len()), (1, 1));
        assert_eq!(task.remove("b"), Some(CustomerState::default()));
        assert_eq!((task.len(), task.hot_len()), (0, 0));

        // An id too long to be held inline behaves the same.
        let long = "customer-with-an-id-longer-than-twenty-four-bytes";
        task.insert(long, state.clone(), 6);
        task.index(long, Some(at(3)));
        assert!(task.cool(long).is_some());
        assert_eq!(task.get(long).unwrap().as_ref(), &state);
        assert_eq!(task.pop_due(at(3)).as_deref(), Some(long));
        assert_eq!(task.remove(long), Some(state));
    }

    /// The value a commit stored for `state` as `id`.
    fn stored_value(id: &str, state: &CustomerState) -> Arc<[u8]> {
        let scope = tier_store::Scope::partition(0).unwrap();
        tier_store::EncodedCustomers::default()
            .push(scope, id, state)
            .unwrap()
    }

    /// `id`'s cold bytes.
    fn cold_bytes<'a>(task: &'a Task, id: &str) -> &'a [u8] {
        match task.slot(id).unwrap().1 {
            Slot::Cold { bytes, .. } => bytes,
            Slot::Hot { .. } => panic!("{id} is hot"),
        }
    }

    #[test]
    fn a_customer_cooled_unchanged_keeps_its_stored_value_and_a_change_drops_it() {
        let mut task = Task::default();
        let mut state = CustomerState::default();
        state.policy_version = "v7".into();
        task.insert("a", state.clone(), 1);
        let bare = task.hot_bytes();
        let value = stored_value("a", &state);
        task.hold_stored("a", NO_HINT, Arc::clone(&value));
        assert_eq!(task.hot_bytes(), bare + value.len(), "the value is counted");
        task.settle("a", NO_HINT, |_| None);
        assert_eq!(task.hot_bytes(), bare + value.len(), "measured again");

        // Cooled unchanged: the cold form is the value's body.
        assert_eq!(task.cool("a"), Some(bare + value.len()));
        assert_eq!(task.hot_bytes(), 0);
        assert_eq!(
            Some(cold_bytes(&task, "a")),
            tier_store::current_body(&value)
        );
        assert_eq!(task.get("a").unwrap().as_ref(), &state);
        task.hold_stored("a", NO_HINT, Arc::clone(&value));
        assert_eq!(task.hot_bytes(), 0, "a cold customer holds no value");

        // Lent out to change (thawed): the value goes, and cooling encodes
        // the changed state. (Were the value kept, the cold form would be
        // the old state's: a debug build's check panics, a release build
        // reads "v7".)
        task.get_mut("a", 2).unwrap();
        task.hold_stored("a", NO_HINT, Arc::clone(&value));
        task.get_mut("a", 3).unwrap().policy_version.push('!');
        let thawed = task.slot("a").unwrap().1.hot().unwrap().heap_size();
        assert_eq!(task.hot_bytes(), thawed, "the value left the count");
        task.cool("a").unwrap();
        assert_eq!(task.get("a").unwrap().policy_version, "v7!");

        // Lent out to the policy rescore: the same.
        let state = task.remove("a").unwrap();
        task.insert("a", state.clone(), 4);
        task.hold_stored("a", NO_HINT, stored_value("a", &state));
        let position = task
            .positions()
            .find(|(_, id)| id.as_str() == "a")
            .unwrap()
            .0;
        match task.rescore_view("a", position) {
            Some(Held::Hot(state)) => state.policy_version.push('?'),
            other => panic!("a is hot: {other:?}"),
        }
        assert_eq!(task.hot_bytes(), state.heap_size());
        task.cool("a").unwrap();
        assert_eq!(task.get("a").unwrap().policy_version, "v7!?");
    }
}

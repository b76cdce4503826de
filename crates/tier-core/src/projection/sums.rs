//! Day buckets and the running window totals kept beside them, and their
//! stored form (see [`WindowDays`]'s encoding in the `codec` module).

use serde::{Deserialize, Serialize};

use crate::time::{Day, Timestamp};

/// Additive figures of one business day (or of the whole window). Money in
/// base minor units, in `i128`: no number of events within the per-event
/// limit can overflow a sum. Binary formats write only its nonzero figures
/// (see the `codec` module); human-readable ones every field by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    /// Net amount of the orders placed that day that still count.
    pub(crate) amount: i128,
    /// Of `amount`, the part of orders whose cost of goods is known.
    pub(crate) costed_amount: i128,
    /// Net cost of goods of those orders.
    pub(crate) cost: i128,
    /// Orders placed that day that still count (not cancelled, not fully returned).
    pub(crate) orders: i32,
    /// Complaints opened that day, by severity index.
    pub(crate) complaints: [i32; 5],
    /// Of those, resolved since.
    pub(crate) resolved: [i32; 5],
    /// Invoices settled (paid in full) that day.
    pub(crate) settled: i32,
    /// Of those, settled by their due date.
    pub(crate) settled_on_time: i32,
    /// Sum of business days late over those settlements.
    pub(crate) days_late: i64,
}

impl Sums {
    pub(crate) fn add(&mut self, o: &Sums) {
        self.apply(o, 1);
    }

    pub(crate) fn sub(&mut self, o: &Sums) {
        self.apply(o, -1);
    }

    /// Counts per customer and window stay far below `i32::MAX`; they
    /// saturate rather than wrap if a producer ever proves otherwise.
    fn apply(&mut self, o: &Sums, sign: i32) {
        let s128 = i128::from(sign);
        self.amount += s128 * o.amount;
        self.costed_amount += s128 * o.costed_amount;
        self.cost += s128 * o.cost;
        self.orders = self.orders.saturating_add(sign * o.orders);
        for i in 0..5 {
            self.complaints[i] = self.complaints[i].saturating_add(sign * o.complaints[i]);
            self.resolved[i] = self.resolved[i].saturating_add(sign * o.resolved[i]);
        }
        self.settled = self.settled.saturating_add(sign * o.settled);
        self.settled_on_time = self
            .settled_on_time
            .saturating_add(sign * o.settled_on_time);
        self.days_late = self.days_late.saturating_add(i64::from(sign) * o.days_late);
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == Sums::default()
    }
}

/// The window's activity: the day buckets and their running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WindowDays {
    /// Days with activity, all within the window at the watermark.
    pub(crate) days: DayBuckets,
    /// The sums of every bucket in `days`.
    pub(crate) totals: Sums,
}

/// One business day of activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayBucket {
    pub(crate) sums: Sums,
    /// Latest placement time of an order of this day that still counts.
    pub(crate) last_order_at: Option<Timestamp>,
    /// Days late of the late settlements of this day (for the maximum).
    pub(crate) late: Vec<u32>,
}

impl DayBucket {
    pub(crate) fn is_empty(&self) -> bool {
        self.sums.is_zero() && self.last_order_at.is_none() && self.late.is_empty()
    }
}

/// What one order adds to its day while it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OrderFigures {
    pub(crate) amount: i128,
    pub(crate) costed_amount: i128,
    pub(crate) cost: i128,
    pub(crate) orders: i32,
}

impl OrderFigures {
    pub(crate) fn as_sums(self) -> Sums {
        Sums {
            amount: self.amount,
            costed_amount: self.costed_amount,
            cost: self.cost,
            orders: self.orders,
            ..Sums::default()
        }
    }

    pub(crate) fn minus(self, o: OrderFigures) -> Sums {
        let mut s = self.as_sums();
        s.sub(&o.as_sums());
        s
    }
}

/// The day buckets of the window, oldest first. Days arrive mostly in
/// order (appended at the back) and leave from the front, so a sorted
/// `VecDeque` beats a `BTreeMap` here: no node shuffling when the oldest
/// day leaves.
/// Up to this many day buckets, [`DayBuckets`] grows by one at a time.
const SMALL_BUCKETS: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayBuckets(std::collections::VecDeque<(Day, DayBucket)>);

impl DayBuckets {
    /// Heap bytes held, about: the buckets' capacity and each one's list
    /// of days late.
    pub(crate) fn heap_size(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(Day, DayBucket)>()
            + self
                .0
                .iter()
                .map(|(_, b)| b.late.capacity() * std::mem::size_of::<u32>())
                .sum::<usize>()
    }

    fn position(&self, day: Day) -> Result<usize, usize> {
        // Fast path: the newest day.
        match self.0.back() {
            Some((last, _)) if *last == day => Ok(self.0.len() - 1),
            Some((last, _)) if *last < day => Err(self.0.len()),
            _ => self.0.binary_search_by(|(d, _)| d.cmp(&day)),
        }
    }

    /// The bucket of `day`, created empty when missing.
    pub(crate) fn entry(&mut self, day: Day) -> &mut DayBucket {
        let i = match self.position(day) {
            Ok(i) => i,
            Err(i) => {
                // Most customers have a few active days in a window:
                // grow one bucket at a time while there are few (a
                // bucket is 160 bytes; the default growth doubles from
                // 4), by doubling past that.
                if self.0.len() == self.0.capacity() && self.0.len() < SMALL_BUCKETS {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, (day, DayBucket::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub(crate) fn get(&self, day: Day) -> Option<&DayBucket> {
        let i = self.position(day).ok()?;
        Some(&self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, day: Day) -> Option<&mut DayBucket> {
        let i = self.position(day).ok()?;
        Some(&mut self.0[i].1)
    }

    pub(crate) fn remove_if_empty(&mut self, day: Day) {
        if let Ok(i) = self.position(day)
            && self.0[i].1.is_empty()
        {
            self.0.remove(i);
        }
    }

    /// Remove and return the oldest bucket when its day is before `start`.
    pub(crate) fn pop_before(&mut self, start: Day) -> Option<DayBucket> {
        if self.0.front().is_some_and(|(d, _)| *d < start) {
            self.0.pop_front().map(|(_, b)| b)
        } else {
            None
        }
    }

    /// Buckets of days before `end`, oldest first.
    pub(crate) fn before(&self, end: Day) -> impl Iterator<Item = &DayBucket> {
        self.0
            .iter()
            .take_while(move |(d, _)| *d < end)
            .map(|(_, b)| b)
    }

    /// Buckets of days from `start` on, oldest first.
    pub(crate) fn from(&self, start: Day) -> impl Iterator<Item = &DayBucket> {
        self.0
            .iter()
            .skip_while(move |(d, _)| *d < start)
            .map(|(_, b)| b)
    }

    /// The oldest day with activity from `start` on.
    pub(crate) fn oldest_day_from(&self, start: Day) -> Option<Day> {
        self.0.iter().map(|(d, _)| *d).find(|d| *d >= start)
    }

    /// Buckets, newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &DayBucket> {
        self.newest_first_with_day().map(|(_, b)| b)
    }

    /// Buckets with their days, oldest first.
    pub(crate) fn oldest_first_with_day(&self) -> impl Iterator<Item = (Day, &DayBucket)> {
        self.0.iter().map(|(d, b)| (*d, b))
    }

    /// Buckets with their days, newest first.
    pub(crate) fn newest_first_with_day(&self) -> impl Iterator<Item = (Day, &DayBucket)> {
        self.0.iter().rev().map(|(d, b)| (*d, b))
    }
}

/// The stored form of [`WindowDays`] and [`Sums`].
///
/// In binary formats (postcard: the store and the engine's cold
/// customers) the window is a tuple: a header, the buckets as `(day,
/// bucket)` pairs, then the totals. Since store format 3 the header is
/// [`COMPACT`] plus the number of buckets and every [`Sums`] is compact:
/// a mask of its nonzero fields (bit `i` for the `i`th field of `Plain`,
/// the declared order), then those fields in that order, each as its
/// type. Most of a day's 17 figures are zero: an order's day has four, so
/// a day's sums take about 10 bytes instead of 22 (the benchmark's
/// workload), and a decode reads a mask and four numbers instead of
/// seventeen.
///
/// Before format 3 the header was the number of buckets alone (the
/// length of a sequence) and every sums field by field; no window holds
/// [`COMPACT`] buckets, so the header tells the two forms apart and both
/// are read (the marker, not the store's format byte: the store stays
/// ignorant of the state's layout). Since format 6 the header is
/// [`PACKED_IDS`] plus the number of buckets: the window is as in format
/// 3, and the projection's applied event ids, read after it, are packed
/// (see `applied`); the window's decode announces which form they take.
/// Human-readable formats write the fields by name.
mod codec {
    use std::collections::VecDeque;
    use std::fmt;

    use serde::de::{Error as _, Expected, SeqAccess, Visitor};
    use serde::ser::{Error as _, SerializeTuple as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{DayBucket, DayBuckets, Sums, WindowDays};
    use crate::time::{Day, Timestamp};

    /// Added to the number of buckets in the header of the compact form.
    /// A window spans at most the policy's longest (36 months, at most
    /// 1,116 days), so no window in the field-by-field form has as many
    /// buckets; in a varint, headers of up to 12,287 buckets still take
    /// two bytes.
    const COMPACT: u32 = 1 << 12;

    /// Added to the number of buckets in the header since store format 6
    /// (the window compact, the applied ids packed); still two bytes in a
    /// varint.
    const PACKED_IDS: u32 = 2 * COMPACT;

    const _: () = assert!(crate::policy::MAX_WINDOW_MONTHS * 31 < COMPACT as i64);
    const _: () = assert!(PACKED_IDS + COMPACT <= 1 << 14);

    /// Fields of [`Sums`], and bits of its mask.
    const FIELDS: usize = 17;

    /// [`Sums`] field by field, in the declared order: the human-readable
    /// form, and the binary form before store format 3.
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Sums")]
    struct Plain {
        amount: i128,
        costed_amount: i128,
        cost: i128,
        orders: i32,
        complaints: [i32; 5],
        resolved: [i32; 5],
        settled: i32,
        settled_on_time: i32,
        days_late: i64,
    }

    /// [`WindowDays`] by name (human-readable formats).
    #[derive(Serialize, Deserialize)]
    #[serde(remote = "WindowDays")]
    struct Named {
        days: DayBuckets,
        totals: Sums,
    }

    /// A day bucket as written before store format 3.
    #[derive(Deserialize)]
    struct LegacyBucket {
        #[serde(with = "Plain")]
        sums: Sums,
        last_order_at: Option<Timestamp>,
        late: Vec<u32>,
    }

    impl From<LegacyBucket> for DayBucket {
        fn from(b: LegacyBucket) -> Self {
            DayBucket {
                sums: b.sums,
                last_order_at: b.last_order_at,
                late: b.late,
            }
        }
    }

    /// A [`Sums`] as written before store format 3.
    struct Legacy(Sums);

    impl<'de> Deserialize<'de> for Legacy {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Plain::deserialize(d).map(Legacy)
        }
    }

    /// The `i`th element of a tuple that must have it.
    fn required<'de, A, T>(seq: &mut A, i: usize, tuple: &dyn Expected) -> Result<T, A::Error>
    where
        A: SeqAccess<'de>,
        T: Deserialize<'de>,
    {
        seq.next_element()?
            .ok_or_else(|| A::Error::invalid_length(i, tuple))
    }

    /// Bit of `days_late` in the mask: after the three amounts and the
    /// thirteen counts.
    const DAYS_LATE: usize = FIELDS - 1;

    impl Sums {
        /// The three money fields, in the declared order (mask bits 0-2).
        fn wide(&self) -> [i128; 3] {
            [self.amount, self.costed_amount, self.cost]
        }

        /// The thirteen counts, in the declared order (mask bits 3-15).
        fn counts(&self) -> [i32; 13] {
            let [c0, c1, c2, c3, c4] = self.complaints;
            let [r0, r1, r2, r3, r4] = self.resolved;
            [
                self.orders,
                c0,
                c1,
                c2,
                c3,
                c4,
                r0,
                r1,
                r2,
                r3,
                r4,
                self.settled,
                self.settled_on_time,
            ]
        }

        /// The count of mask bit `3 + i` (see [`Self::counts`]).
        fn count_mut(&mut self, i: usize) -> &mut i32 {
            match i {
                0 => &mut self.orders,
                1..=5 => &mut self.complaints[i - 1],
                6..=10 => &mut self.resolved[i - 6],
                11 => &mut self.settled,
                _ => &mut self.settled_on_time,
            }
        }
    }

    impl Serialize for Sums {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                return Plain::serialize(self, s);
            }
            let (wide, counts) = (self.wide(), self.counts());
            let mut mask = u32::from(self.days_late != 0) << DAYS_LATE;
            for (i, v) in wide.iter().enumerate() {
                mask |= u32::from(*v != 0) << i;
            }
            for (i, v) in counts.iter().enumerate() {
                mask |= u32::from(*v != 0) << (3 + i);
            }
            let mut t = s.serialize_tuple(1 + mask.count_ones() as usize)?;
            t.serialize_element(&mask)?;
            for v in wide.iter().filter(|v| **v != 0) {
                t.serialize_element(v)?;
            }
            for v in counts.iter().filter(|v| **v != 0) {
                t.serialize_element(v)?;
            }
            if self.days_late != 0 {
                t.serialize_element(&self.days_late)?;
            }
            t.end()
        }
    }

    impl<'de> Deserialize<'de> for Sums {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                return Plain::deserialize(d);
            }
            d.deserialize_tuple(1 + FIELDS, CompactSums)
        }
    }

    /// Reads a compact [`Sums`].
    struct CompactSums;

    impl<'de> Visitor<'de> for CompactSums {
        type Value = Sums;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mask of the nonzero sums, then those sums")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sums, A::Error> {
            let mask: u32 = required(&mut seq, 0, &self)?;
            if mask >> FIELDS != 0 {
                return Err(A::Error::custom(format_args!(
                    "sums mask {mask:#x} has bits beyond the {FIELDS} fields"
                )));
            }
            let mut out = Sums::default();
            let mut bits = mask;
            let mut read = 1;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                match i {
                    0 => out.amount = required(&mut seq, read, &self)?,
                    1 => out.costed_amount = required(&mut seq, read, &self)?,
                    2 => out.cost = required(&mut seq, read, &self)?,
                    DAYS_LATE => out.days_late = required(&mut seq, read, &self)?,
                    _ => *out.count_mut(i - 3) = required(&mut seq, read, &self)?,
                }
                read += 1;
            }
            Ok(out)
        }
    }

    impl Serialize for WindowDays {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                return Named::serialize(self, s);
            }
            let buckets = &self.days.0;
            let header = u32::try_from(buckets.len())
                .ok()
                .filter(|n| *n < COMPACT)
                .ok_or_else(|| {
                    S::Error::custom(format_args!(
                        "{} day buckets: no window holds {COMPACT}",
                        buckets.len()
                    ))
                })?;
            let mut t = s.serialize_tuple(buckets.len() + 2)?;
            t.serialize_element(&(PACKED_IDS + header))?;
            for day in buckets {
                t.serialize_element(day)?;
            }
            t.serialize_element(&self.totals)?;
            t.end()
        }
    }

    impl<'de> Deserialize<'de> for WindowDays {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                return Named::deserialize(d);
            }
            // The header says how many elements follow; postcard's tuples
            // carry no length of their own.
            d.deserialize_tuple(usize::MAX, Window)
        }
    }

    /// Reads a [`WindowDays`] in either binary form.
    struct Window;

    impl<'de> Visitor<'de> for Window {
        type Value = WindowDays;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the number of day buckets, the buckets, then their totals")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WindowDays, A::Error> {
            let header: u32 = required(&mut seq, 0, &self)?;
            let (len, compact, packed_ids) = match header / COMPACT {
                0 => (header, false, false),
                1 => (header - COMPACT, true, false),
                2 => (header - PACKED_IDS, true, true),
                _ => {
                    return Err(A::Error::custom(format_args!(
                        "window header {header}: no form of the window has it"
                    )));
                }
            };
            super::super::applied::announce(packed_ids);
            let len = len as usize;
            let mut days = VecDeque::with_capacity(len);
            for i in 1..=len {
                days.push_back(if compact {
                    required::<_, (Day, DayBucket)>(&mut seq, i, &self)?
                } else {
                    let (day, b) = required::<_, (Day, LegacyBucket)>(&mut seq, i, &self)?;
                    (day, b.into())
                });
            }
            let totals = if compact {
                required(&mut seq, len + 1, &self)?
            } else {
                required::<_, Legacy>(&mut seq, len + 1, &self)?.0
            };
            Ok(WindowDays {
                days: DayBuckets(days),
                totals,
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use proptest::prelude::*;

        use super::*;

        fn sums() -> impl Strategy<Value = Sums> {
            // Each field zero half the time, so masks of every shape occur.
            fn or_zero<T: Default + std::fmt::Debug + Clone>(
                s: impl Strategy<Value = T>,
            ) -> impl Strategy<Value = T> {
                prop_oneof![Just(T::default()), s]
            }
            (
                [
                    or_zero(any::<i128>()),
                    or_zero(any::<i128>()),
                    or_zero(any::<i128>()),
                ],
                [(); 13].map(|()| or_zero(any::<i32>())),
                or_zero(any::<i64>()),
            )
                .prop_map(|(wide, counts, days_late)| {
                    let mut s = Sums {
                        amount: wide[0],
                        costed_amount: wide[1],
                        cost: wide[2],
                        days_late,
                        ..Sums::default()
                    };
                    for (i, v) in counts.into_iter().enumerate() {
                        *s.count_mut(i) = v;
                    }
                    s
                })
        }

        proptest! {
            /// Both forms read back every field, in binary and by name;
            /// the binary one writes the mask and the nonzero fields only.
            #[test]
            fn sums_round_trip(s in sums(), t in sums()) {
                let bytes = postcard::to_allocvec(&s).unwrap();
                prop_assert_eq!(postcard::from_bytes::<Sums>(&bytes).unwrap(), s);
                let json = serde_json::to_string(&s).unwrap();
                prop_assert_eq!(serde_json::from_str::<Sums>(&json).unwrap(), s);
                if s.is_zero() {
                    prop_assert_eq!(bytes, vec![0]);
                }

                let window = WindowDays {
                    days: DayBuckets([(Day(3), DayBucket { sums: s, ..DayBucket::default() }),
                        (Day(9), DayBucket { sums: t, last_order_at: None, late: vec![4] })]
                        .into_iter().collect()),
                    totals: t,
                };
                let bytes = postcard::to_allocvec(&window).unwrap();
                prop_assert_eq!(postcard::from_bytes::<WindowDays>(&bytes).unwrap(), window.clone());
                let json = serde_json::to_string(&window).unwrap();
                prop_assert_eq!(serde_json::from_str::<WindowDays>(&json).unwrap(), window);
            }
        }

        #[test]
        fn every_field_has_its_own_mask_bit() {
            let mut s = Sums::default();
            let mut seen = Vec::new();
            for i in 0..13 {
                *s.count_mut(i) = i32::try_from(i).unwrap() + 1;
                seen.push(s.counts()[i]);
            }
            assert_eq!(
                seen,
                (1..=13).collect::<Vec<i32>>(),
                "count_mut and counts agree"
            );
            assert_eq!(s.orders, 1);
            assert_eq!(s.complaints, [2, 3, 4, 5, 6]);
            assert_eq!(s.resolved, [7, 8, 9, 10, 11]);
            assert_eq!((s.settled, s.settled_on_time), (12, 13));
            let one = |s: Sums| postcard::to_allocvec(&s).unwrap()[0];
            let bit = |f: fn(&mut Sums)| {
                let mut s = Sums::default();
                f(&mut s);
                s
            };
            assert_eq!(one(bit(|s| s.amount = 1)), 1);
            assert_eq!(one(bit(|s| s.cost = 1)), 4);
            assert_eq!(one(bit(|s| s.orders = 1)), 8);
            let late = postcard::to_allocvec(&bit(|s| s.days_late = 1)).unwrap();
            assert_eq!(late, [0x80, 0x80, 0x04, 2], "bit 16, then 1 zigzagged");
        }
    }
}

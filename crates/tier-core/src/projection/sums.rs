//! Day buckets and the running window totals kept beside them.

use serde::{Deserialize, Serialize};

use crate::time::{Day, Timestamp};

/// Additive figures of one business day (or of the whole window). Money in
/// base minor units, in `i128`: no number of events within the per-event
/// limit can overflow a sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        self.0.iter().rev().map(|(_, b)| b)
    }
}

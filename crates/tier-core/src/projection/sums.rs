//! Day buckets and the running window totals kept beside them.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

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
    pub(crate) orders: i64,
    /// Complaints opened that day, by severity index.
    pub(crate) complaints: [i64; 5],
    /// Of those, resolved since.
    pub(crate) resolved: [i64; 5],
    /// Invoices settled (paid in full) that day.
    pub(crate) settled: i64,
    /// Of those, settled by their due date.
    pub(crate) settled_on_time: i64,
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

    fn apply(&mut self, o: &Sums, sign: i64) {
        let s128 = i128::from(sign);
        self.amount += s128 * o.amount;
        self.costed_amount += s128 * o.costed_amount;
        self.cost += s128 * o.cost;
        self.orders += sign * o.orders;
        for i in 0..5 {
            self.complaints[i] += sign * o.complaints[i];
            self.resolved[i] += sign * o.resolved[i];
        }
        self.settled += sign * o.settled;
        self.settled_on_time += sign * o.settled_on_time;
        self.days_late += sign * o.days_late;
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
    pub(crate) orders: i64,
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

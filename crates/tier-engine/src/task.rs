//! Tasks: one input partition's customers and their due index.
//!
//! The engine keeps one [`Task`] per scope (input partition, plus one for
//! the unscoped customers known only from commands). A task owns the
//! states of its customers and the instants they fall due, so a partition
//! is a unit the engine can hand over whole: a revoke drops its task, an
//! assignment loads one, and a sweep takes due customers task by task.
//! Customer ids are routed to their task by the engine's scope map.
//!
//! What a task does not hold is population-wide: the policy in force, the
//! `abc` and RFM rankings (a customer's band depends on every customer
//! this instance grades), the rescore queue and the at-risk and overdue
//! totals stay with the [`Engine`](crate::Engine).

use std::collections::BTreeSet;

use tier_core::Timestamp;
use tier_core::projection::CustomerMap;
use tier_core::state::CustomerState;

/// One scope's customers and when each falls due.
#[derive(Debug, Default)]
pub(crate) struct Task {
    pub(crate) states: CustomerMap<CustomerState>,
    /// `(when, customer)`: the next instant the sweeper must look at a
    /// customer. Exactly one entry per customer with anything due.
    due: BTreeSet<(Timestamp, String)>,
    due_of: CustomerMap<Timestamp>,
}

impl Task {
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
                    String::new(),
                ),
            )
            .count()
    }

    /// Take the first customer due at or before `horizon` off the index.
    pub(crate) fn pop_due(&mut self, horizon: Timestamp) -> Option<String> {
        if self.first_due()? > horizon {
            return None;
        }
        let (_, id) = self.due.pop_first()?;
        self.due_of.remove(&id);
        Some(id)
    }

    /// Index `id` at `at` (`None`: nothing due), replacing its entry.
    pub(crate) fn index(&mut self, id: &str, at: Option<Timestamp>) {
        if let Some(old) = self.due_of.remove(id) {
            self.due.remove(&(old, id.to_owned()));
        }
        if let Some(t) = at {
            self.due.insert((t, id.to_owned()));
            self.due_of.insert(id.to_owned(), t);
        }
    }

    /// Take `id` out of the task (state and due entry).
    pub(crate) fn remove(&mut self, id: &str) -> Option<CustomerState> {
        self.index(id, None);
        self.states.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_due_index_pops_in_order_up_to_the_horizon_and_keeps_one_entry_per_customer() {
        let mut task = Task::default();
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
}

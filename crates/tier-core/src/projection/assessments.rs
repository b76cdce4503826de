//! A customer's qualitative assessments: the one in force per assessment
//! indicator and a bounded history of every one applied.
//!
//! The rules (the policy side is in `policy/assessment.rs`):
//!
//! - **The latest by event time is in force.** An assessment older than
//!   the one in force (it arrived late) goes to the history only; equal
//!   instants go to arrival order (the later arrival wins), which a replay
//!   of the same log reproduces.
//! - **Duplicates change nothing**: the projection's `seen` set drops a
//!   resent event id, and an event id already in the history is a
//!   duplicate too (the history outlives the `seen` set's window).
//! - **Expiry is fixed when folded**: `expires_at` is the start of the
//!   business day `valid_days` after the assessment's business day, in the
//!   policy's calendar (see [`expiry`]). From that instant the indicator is
//!   missing; the state's `next_due` names the instant, so the sweeper
//!   rescores the customer then (cause `Time`).
//! - **Never stale**: an assessment is a judgement with its own validity,
//!   not a window figure. One of an indicator the policy does not declare,
//!   or with a value off its scale, changes nothing (the decoder rejects
//!   those; one can still reach the fold when a policy reload dropped the
//!   indicator in between), and is counted as stale.
//! - **The history** keeps every applied assessment, by `assessed_at`
//!   (ties in arrival order), at most [`MAX_ASSESSMENT_HISTORY`] per
//!   customer, the oldest dropped first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{AssessmentSpec, ExplainedAssessment};
use crate::time::{BusinessCalendar, Timestamp};

/// Most assessments a customer's history keeps.
pub const MAX_ASSESSMENT_HISTORY: usize = 64;

/// One assessment, as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub indicator: String,
    /// A level of the indicator's scale.
    pub value: i64,
    pub assessed_by: String,
    pub note: String,
    /// The event's `occurred_at`.
    pub assessed_at: Timestamp,
    /// When it stops counting (see [`expiry`]).
    pub expires_at: Timestamp,
    /// Hash of the event id (`stable_hash`).
    pub event: u64,
}

impl Assessment {
    /// Whether it counts at `at`.
    pub fn valid_at(&self, at: Timestamp) -> bool {
        at < self.expires_at
    }
}

/// When an assessment made at `at` expires: the start of the business day
/// `valid_days` after `at`'s business day. It counts on `valid_days`
/// business days, the day it was made included.
pub fn expiry(calendar: &BusinessCalendar, at: Timestamp, valid_days: u32) -> Timestamp {
    let days = i32::try_from(valid_days).unwrap_or(i32::MAX);
    calendar.day_start(calendar.day(at).plus(days))
}

/// The assessments of one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AssessmentBook {
    /// The latest assessment per indicator (by event time), even expired.
    current: BTreeMap<String, Assessment>,
    /// Every applied assessment, by `assessed_at`, at most
    /// [`MAX_ASSESSMENT_HISTORY`].
    history: Vec<Assessment>,
}

impl AssessmentBook {
    /// Heap bytes held, about (see `CustomerProjection::heap_size`).
    pub(crate) fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let strings =
            |a: &Assessment| a.indicator.capacity() + a.assessed_by.capacity() + a.note.capacity();
        super::btree::<String, Assessment>(self.current.len())
            + self
                .current
                .iter()
                .map(|(k, a)| k.capacity() + strings(a))
                .sum::<usize>()
            + self.history.capacity() * size_of::<Assessment>()
            + self.history.iter().map(strings).sum::<usize>()
    }

    /// Whether the event (by id hash) was applied already.
    pub(crate) fn has_event(&self, event: u64) -> bool {
        self.history.iter().any(|a| a.event == event)
    }

    /// Apply a checked assessment: into the history, and in force unless
    /// a later one is.
    pub(crate) fn apply(&mut self, rec: Assessment) {
        let at = rec.assessed_at;
        let pos = self.history.partition_point(|a| a.assessed_at <= at);
        self.history.insert(pos, rec.clone());
        if self.history.len() > MAX_ASSESSMENT_HISTORY {
            self.history.remove(0);
        }
        match self.current.get(&rec.indicator) {
            Some(now) if now.assessed_at > at => {}
            _ => {
                self.current.insert(rec.indicator.clone(), rec);
            }
        }
    }

    /// The value of `spec`'s indicator at `at`: the level in force, `None`
    /// when never assessed, expired, or off the (possibly changed) scale.
    #[inline]
    pub(crate) fn value_at(&self, spec: &AssessmentSpec, at: Timestamp) -> Option<f64> {
        self.current
            .get(&spec.name)
            .filter(|a| a.valid_at(at) && spec.in_scale(a.value))
            .map(|a| a.value as f64)
    }

    /// The latest assessment per indicator, by indicator name.
    pub(crate) fn current(&self) -> impl Iterator<Item = &Assessment> {
        self.current.values()
    }

    pub(crate) fn get(&self, indicator: &str) -> Option<&Assessment> {
        self.current.get(indicator)
    }

    pub(crate) fn history(&self) -> &[Assessment] {
        &self.history
    }
}

/// Fill in who assessed each explained assessment, when, and until when,
/// from the customer's latest assessments (`current`, e.g.
/// `CustomerProjection::assessments`).
pub fn annotate<'a>(
    explained: &mut [ExplainedAssessment],
    current: impl IntoIterator<Item = &'a Assessment>,
) {
    let current: Vec<&Assessment> = current.into_iter().collect();
    for e in explained {
        if let Some(a) = current.iter().find(|a| a.indicator == e.name) {
            e.assessed_by = Some(a.assessed_by.clone());
            e.note = Some(a.note.clone());
            e.assessed_at = Some(a.assessed_at);
            e.expires_at = Some(a.expires_at);
        }
    }
}

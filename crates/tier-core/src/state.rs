//! A customer's whole state and the one step the service runs per event:
//! fold, rescore, decide (with hysteresis), and describe any tier change.
//!
//! [`CustomerState`] is what the store persists per customer. The functions
//! here are pure: the caller passes the policy (and, to rescore without an
//! event, the instant).
//!
//! ## What "now" is for a decision
//! A decision is made at the customer's *decision instant*: the latest of
//! the projection's watermark (the latest `occurred_at` applied) and the
//! previous decision instant. It never depends on when tierd happens to
//! process the event, so a live run and a replay of the same log on a later
//! day make the same decisions, with the same scores, `since` and
//! `changed_at`; hysteresis counts days in a tier on that same clock. A
//! rescore without an event (time passed, policy changed) decides at the
//! instant it is given, if that is later.
//!
//! ## Corrections
//! When an order's placement upgrades the tier, the state remembers the
//! order and the assignment before it. A cancellation or return of that
//! order decides again from that earlier assignment: the tier the order
//! caused is taken back at once (hysteresis holds only organic drops),
//! and a customer who had been held in a tier by hysteresis before the
//! order is held there again, with the `since` it had.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::indicators::Indicators;
use crate::policy::{Evaluation, Policy, Reason, TierAssignment};
use crate::projection::{Applied, CustomerProjection, stable_hash};
use crate::time::Timestamp;

/// How many reasons a tier change carries.
pub const MAX_REASONS: usize = 5;

/// Why a tier changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// An input event.
    Event,
    /// Time passed: activity left the window.
    Time,
    /// The policy changed.
    Policy,
    /// A manager set or cleared an override.
    Override,
}

impl Cause {
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Time => "time",
            Cause::Policy => "policy",
            Cause::Override => "override",
        }
    }
}

/// A tier change, ready to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierChange {
    pub customer_id: String,
    /// `None` for the customer's first tier.
    pub old_tier: Option<String>,
    pub new_tier: String,
    pub old_score: f64,
    pub new_score: f64,
    pub cause: Cause,
    pub causing_event_id: Option<String>,
    /// The contributions that moved most since the previous tier change.
    pub reasons: Vec<Reason>,
    pub policy_version: String,
    /// Per customer, from 1, without gaps.
    pub sequence: u64,
    pub changed_at: Timestamp,
}

/// An upgrade caused by an order's placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Raise {
    /// Hash of the order's id.
    order: u64,
    /// The assignment before the upgrade (`None`: it was the first).
    prior: Option<TierAssignment>,
}

/// What the store keeps per customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub projection: CustomerProjection,
    /// The tier currently held; `None` until the first event is scored.
    pub assignment: Option<TierAssignment>,
    /// When the last decision was made (see the module docs).
    pub decided_at: Timestamp,
    /// Version of the policy that made the last decision.
    pub policy_version: String,
    /// Sequence number of the last published tier change.
    pub sequence: u64,
    /// The last upgrade an order caused, while it is the held tier's cause.
    raise: Option<Box<Raise>>,
    /// Indicators at the last tier change: the baseline of the next
    /// change's reasons ("what moved since the tier was last set"). Boxed
    /// and written only on a change, so the per-event path neither copies
    /// nor carries them. Not stored (it would double a customer's size on
    /// disk): after a restart the first change's reasons compare with
    /// empty indicators.
    #[serde(skip)]
    pub indicators_at_change: Option<Box<Indicators>>,
}

/// The outcome of [`CustomerState::process`].
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub applied: Applied,
    pub change: Option<TierChange>,
}

/// What a rescore is about, beyond its cause.
#[derive(Debug, Clone, Copy)]
struct Trigger<'a> {
    cause: Cause,
    event_id: Option<&'a str>,
    /// The order an event placed (`Some` for a placement).
    placed: Option<u64>,
    /// The order an event corrected (cancellation or return).
    corrected: Option<u64>,
}

impl CustomerState {
    /// Fold `event` in and rescore at the decision instant. Duplicates and
    /// stale events change nothing, not even the score.
    pub fn process(&mut self, customer_id: &str, event: &Event, policy: &Policy) -> Processed {
        let applied = self.projection.apply(event, policy.fold_rules());
        if applied != Applied::Applied {
            return Processed {
                applied,
                change: None,
            };
        }
        let (placed, corrected) = match &event.kind {
            EventKind::OrderPlaced { order_id, .. } => (Some(stable_hash(order_id)), None),
            EventKind::OrderCancelled { order_id } | EventKind::OrderReturned { order_id, .. } => {
                (None, Some(stable_hash(order_id)))
            }
            _ => (None, None),
        };
        let at = self.decision_instant(None);
        let trigger = Trigger {
            cause: Cause::Event,
            event_id: Some(&event.event_id),
            placed,
            corrected,
        };
        let change = self.rescore(customer_id, policy, at, trigger);
        Processed { applied, change }
    }

    /// Rescore without an event, at `at` (or the decision instant, when
    /// later): time passed or the policy changed.
    pub fn reevaluate(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        at: Timestamp,
        cause: Cause,
    ) -> Option<TierChange> {
        let at = self.decision_instant(Some(at));
        let trigger = Trigger {
            cause,
            event_id: None,
            placed: None,
            corrected: None,
        };
        self.rescore(customer_id, policy, at, trigger)
    }

    /// The latest of the watermark, the last decision and `at`.
    fn decision_instant(&self, at: Option<Timestamp>) -> Timestamp {
        let mut t = self.decided_at;
        if let Some(c) = self.projection.clock() {
            t = t.max(c);
        }
        at.map_or(t, |a| t.max(a))
    }

    fn rescore(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
        trigger: Trigger<'_>,
    ) -> Option<TierChange> {
        let after = self.projection.indicators(now, policy.fold_rules());
        let eval: Evaluation = policy.evaluate(&after);
        self.decided_at = now;
        if self.policy_version != policy.version() {
            self.policy_version = policy.version().to_owned();
        }
        // A correction of the order that raised the held tier decides from
        // the assignment the order replaced.
        let undo = match (&self.raise, trigger.corrected) {
            (Some(r), Some(order)) if r.order == order => self.raise.take(),
            _ => None,
        };
        let base = match &undo {
            Some(r) => r.prior.as_ref(),
            None => self.assignment.as_ref(),
        };
        let tier_idx = policy.decide(base, eval, now);
        let new_tier = &policy.tiers()[tier_idx].name;
        let held_idx = self
            .assignment
            .as_ref()
            .and_then(|a| policy.tier_index(&a.tier));
        match &mut self.assignment {
            Some(a) if a.tier == *new_tier => {
                a.score = eval.score;
                None
            }
            current => {
                let old = current.take();
                // Back to the tier the corrected order replaced: keep its since.
                let since = undo
                    .and_then(|r| r.prior)
                    .filter(|p| p.tier == *new_tier)
                    .map_or(now, |p| p.since);
                let upgrade = held_idx.is_none_or(|h| tier_idx < h);
                self.raise = match trigger.placed {
                    Some(order) if upgrade => Some(Box::new(Raise {
                        order,
                        prior: old.clone(),
                    })),
                    _ => None,
                };
                *current = Some(TierAssignment {
                    tier: new_tier.clone(),
                    score: eval.score,
                    since,
                });
                self.sequence += 1;
                // Reasons compare with the figures at the previous change
                // (a state loaded from the store starts from empty ones).
                let baseline = self.indicators_at_change.get_or_insert_with(Box::default);
                let reasons = policy.reasons(baseline, &after, MAX_REASONS);
                **baseline = after;
                Some(TierChange {
                    customer_id: customer_id.to_owned(),
                    old_score: old.as_ref().map_or(0.0, |o| o.score),
                    old_tier: old.map(|o| o.tier),
                    new_tier: new_tier.clone(),
                    new_score: eval.score,
                    cause: trigger.cause,
                    causing_event_id: trigger.event_id.map(str::to_owned),
                    reasons,
                    policy_version: policy.version().to_owned(),
                    sequence: self.sequence,
                    changed_at: now,
                })
            }
        }
    }

    /// The indicators of the last decision (at [`Self::decided_at`]): the
    /// figures behind the held tier and score, for explanations and queries.
    pub fn indicators(&self, policy: &Policy) -> Indicators {
        self.projection
            .indicators(self.decision_instant(None), policy.fold_rules())
    }
}

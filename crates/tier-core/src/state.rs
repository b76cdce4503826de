//! A customer's whole state and the one step the service runs per event:
//! fold, rescore, decide (with hysteresis), and describe any tier change.
//!
//! [`CustomerState`] is what the store persists per customer. The functions
//! here are pure: the caller passes the policy and `now`.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::indicators::Indicators;
use crate::policy::{Evaluation, Policy, Reason, TierAssignment};
use crate::projection::{Applied, CustomerProjection};
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
    pub reasons: Vec<Reason>,
    pub policy_version: String,
    /// Per customer, from 1, without gaps.
    pub sequence: u64,
    pub changed_at: Timestamp,
}

/// What the store keeps per customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub projection: CustomerProjection,
    /// The tier currently held; `None` until the first event is scored.
    pub assignment: Option<TierAssignment>,
    /// Sequence number of the last published tier change.
    pub sequence: u64,
    /// Indicators at the last scoring: the baseline of a change's reasons.
    /// Not stored (it would double a customer's size on disk): after a
    /// restart the first change's reasons compare with empty indicators.
    #[serde(skip)]
    pub last_indicators: Option<Indicators>,
}

/// The outcome of [`CustomerState::process`].
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub applied: Applied,
    pub change: Option<TierChange>,
}

impl CustomerState {
    /// Fold `event` in and rescore. Duplicates and stale events change
    /// nothing, not even the score.
    pub fn process(
        &mut self,
        customer_id: &str,
        event: &Event,
        policy: &Policy,
        now: Timestamp,
    ) -> Processed {
        let applied = self.projection.apply(event, now, policy.window_months());
        if applied != Applied::Applied {
            return Processed {
                applied,
                change: None,
            };
        }
        let change = self.rescore(
            customer_id,
            policy,
            now,
            Cause::Event,
            Some(&event.event_id),
        );
        Processed { applied, change }
    }

    /// Rescore without an event: time passed or the policy changed.
    pub fn reevaluate(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
        cause: Cause,
    ) -> Option<TierChange> {
        self.projection.advance(now, policy.window_months());
        self.rescore(customer_id, policy, now, cause, None)
    }

    fn rescore(
        &mut self,
        customer_id: &str,
        policy: &Policy,
        now: Timestamp,
        cause: Cause,
        causing_event_id: Option<&str>,
    ) -> Option<TierChange> {
        let after = self.projection.indicators(now, policy.window_months());
        let before = self.last_indicators.replace(after);
        let eval: Evaluation = policy.evaluate(&after);
        let tier_idx = policy.decide(self.assignment.as_ref(), eval, now);
        let new_tier = &policy.tiers()[tier_idx].name;
        match &mut self.assignment {
            Some(a) if a.tier == *new_tier => {
                a.score = eval.score;
                None
            }
            current => {
                let old = current.take();
                *current = Some(TierAssignment {
                    tier: new_tier.clone(),
                    score: eval.score,
                    since: now,
                });
                self.sequence += 1;
                // Reasons compare with the previous scoring (a state loaded
                // from the store starts from empty indicators).
                let baseline = before.unwrap_or_default();
                let reasons = policy.reasons(&baseline, &after, MAX_REASONS);
                Some(TierChange {
                    customer_id: customer_id.to_owned(),
                    old_score: old.as_ref().map_or(0.0, |o| o.score),
                    old_tier: old.map(|o| o.tier),
                    new_tier: new_tier.clone(),
                    new_score: eval.score,
                    cause,
                    causing_event_id: causing_event_id.map(str::to_owned),
                    reasons,
                    policy_version: policy.version().to_owned(),
                    sequence: self.sequence,
                    changed_at: now,
                })
            }
        }
    }

    /// The current indicators (for explanations and queries).
    pub fn indicators(&self, policy: &Policy, now: Timestamp) -> Indicators {
        self.projection.indicators(now, policy.window_months())
    }
}

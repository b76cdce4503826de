//! Manual overrides on top of the computed tier: a manager pins a
//! customer's tier, or bounds it from below or above, with a reason and
//! optionally an end. Both values stay visible: the computed tier keeps
//! following the figures, the *effective* tier is what consumers act on.

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::time::{BusinessCalendar, Timestamp};

/// How an override bounds the computed tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideMode {
    /// Exactly this tier.
    Pin,
    /// At least this tier: a better computed tier wins.
    Floor,
    /// At most this tier: a worse computed tier wins.
    Ceiling,
}

impl OverrideMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            OverrideMode::Pin => "pin",
            OverrideMode::Floor => "floor",
            OverrideMode::Ceiling => "ceiling",
        }
    }
}

/// A manager's override of one customer's tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub tier: String,
    pub mode: OverrideMode,
    pub reason: String,
    pub author: String,
    pub set_at: Timestamp,
    /// `None`: until cleared.
    pub expires_at: Option<Timestamp>,
}

impl Override {
    /// The effective tier index under this override, given the computed
    /// one (`None` before any scoring). `None` when the override's tier is
    /// not in the policy (a retired tier: the computed tier applies).
    pub fn apply(&self, policy: &Policy, computed: Option<usize>) -> Option<usize> {
        let own = policy.tier_index(&self.tier)?;
        Some(match (self.mode, computed) {
            (OverrideMode::Pin, _) | (_, None) => own,
            // Lower index = better tier.
            (OverrideMode::Floor, Some(c)) => c.min(own),
            (OverrideMode::Ceiling, Some(c)) => c.max(own),
        })
    }

    /// Why this override cannot be set under `policy` (as of its
    /// `set_at`), if it cannot.
    pub fn check(&self, policy: &Policy) -> Result<(), OverrideError> {
        if policy.tier_index(&self.tier).is_none() {
            return Err(OverrideError::UnknownTier {
                tier: self.tier.clone(),
                policy_version: policy.version().to_owned(),
            });
        }
        check_signed(&self.reason, &self.author)?;
        if let Some(e) = self.expires_at
            && e <= self.set_at
        {
            return Err(OverrideError::ExpiresInThePast {
                expires_at: e,
                at: self.set_at,
            });
        }
        Ok(())
    }

    /// What an explanation of a customer under this override says first:
    /// "pinned to A by li.wei (strategic account), ends on 2027-03-31; the
    /// figures give D". `computed` is the tier the figures give; the end
    /// is the business day (in `calendar`) the override ends on.
    pub fn note(&self, computed: &str, calendar: &BusinessCalendar) -> String {
        let what = match self.mode {
            OverrideMode::Pin => "pinned to",
            OverrideMode::Floor => "held at least at",
            OverrideMode::Ceiling => "held at most at",
        };
        let end = self.expires_at.map_or_else(
            || "until cleared".to_owned(),
            |t| format!("ends on {}", calendar.day(t)),
        );
        format!(
            "{what} {} by {} ({}), {end}; the figures give {computed}",
            self.tier, self.author, self.reason
        )
    }
}

/// Every override command says why and who: neither may be blank.
pub fn check_signed(reason: &str, author: &str) -> Result<(), OverrideError> {
    if reason.trim().is_empty() {
        return Err(OverrideError::Missing { field: "reason" });
    }
    if author.trim().is_empty() {
        return Err(OverrideError::Missing { field: "author" });
    }
    Ok(())
}

/// What happened to a customer's override, for its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverrideAction {
    Set(Override),
    Cleared {
        reason: String,
        author: String,
    },
    /// The override reached its `expires_at`.
    Expired,
}

/// One entry of a customer's override history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideEntry {
    pub at: Timestamp,
    pub action: OverrideAction,
}

/// Most history entries kept per customer (the oldest are dropped).
pub const MAX_OVERRIDE_HISTORY: usize = 100;

/// Why an override command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("tier {tier:?} is not a tier of policy {policy_version}")]
    UnknownTier {
        tier: String,
        policy_version: String,
    },
    #[error("expires_at {expires_at} is not after the override's start {at}")]
    ExpiresInThePast {
        expires_at: Timestamp,
        at: Timestamp,
    },
    #[error("{field} must not be empty")]
    Missing { field: &'static str },
    #[error("customer {customer_id} has no override to clear")]
    NothingToClear { customer_id: String },
}

//! Assessment indicators: what account managers judge after visits and
//! surveys (industry position, cooperation stability, the potential of a
//! new customer), declared by the policy and set per customer by
//! `CustomerAssessed` events.
//!
//! ```toml
//! [[assessments]]
//! name = "industry_position"          # snake_case, not an event indicator's name
//! scale = { min = 1, max = 5, labels = ["weak", "minor", "average", "strong", "leader"] }
//! valid_days = 180                     # business days an assessment counts
//! missing_points = 40                  # weighted points when missing or expired
//! ```
//!
//! The rules:
//!
//! - **Values are whole levels** of the scale, `min..=max` (both within
//!   `0..=1000`); `labels`, when given, name every level, lowest first.
//!   A value outside the scale is rejected by the decoder
//!   (`customer_assessed.value`), an unknown name too
//!   (`customer_assessed.indicator`).
//! - **Validity is counted in business days** of the policy's time zone:
//!   an assessment made on business day `D` counts on days
//!   `D ..= D + valid_days - 1` and expires at the start of day
//!   `D + valid_days` (its `expires_at`, fixed when it is folded, like a
//!   complaint's deadline). From then on the indicator is missing.
//! - **Missing** (never assessed, or expired) earns the assessment's
//!   `missing_points` in every weighted part that scores it (a part on an
//!   assessment may not set its own `missing_points`).
//! - **Where they can be used**: the weighted method's parts name an
//!   assessment like any indicator (`indicator = "industry_position"`),
//!   with a curve over the scale's values. Tier gates, rule conditions and
//!   grading axes read event-derived indicators only (for now).
//!
//! At scoring time the values travel inside [`crate::Indicators`] (a fixed
//! array, [`MAX_ASSESSMENTS`] slots, in policy order), so scoring stays
//! allocation-free.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Most assessment indicators a policy may declare.
pub const MAX_ASSESSMENTS: usize = 16;

/// Largest `valid_days`.
pub const MAX_VALID_DAYS: u32 = 3650;

/// Bounds of a scale's `min` and `max`.
pub const SCALE_LIMIT: i64 = 1000;

/// Longest `note`, in bytes (checked by [`crate::Event::validate`];
/// `indicator` and `assessed_by` are limited like ids).
pub const MAX_NOTE_LEN: usize = 2000;

/// One assessment indicator declared by the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssessmentSpec {
    /// Stable snake_case name, unique, not an event indicator's name.
    pub name: String,
    /// Lowest level of the scale.
    pub min: i64,
    /// Highest level of the scale (`> min`).
    pub max: i64,
    /// One label per level, lowest first (`max - min + 1` of them), or empty.
    pub labels: Vec<String>,
    /// Business days an assessment counts (see the module docs).
    pub valid_days: u32,
    /// Points a weighted part on this indicator earns when it is missing.
    pub missing_points: f64,
}

impl AssessmentSpec {
    /// Whether `value` is a level of the scale.
    pub fn in_scale(&self, value: i64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// The label of a level, when the scale has labels.
    pub fn label(&self, value: i64) -> Option<&str> {
        let i = usize::try_from(value.checked_sub(self.min)?).ok()?;
        self.labels.get(i).map(String::as_str)
    }
}

/// The assessment indicators of a policy, in policy order: position `i` is
/// slot `i` of [`crate::indicators::Assessed`]. Cheap to clone (shared).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssessmentRules(Arc<[AssessmentSpec]>);

impl AssessmentRules {
    pub fn new(specs: Vec<AssessmentSpec>) -> Self {
        Self(specs.into())
    }

    /// Every declared assessment, in policy order.
    pub fn specs(&self) -> &[AssessmentSpec] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The slot and spec of the assessment named `name`.
    pub fn find(&self, name: &str) -> Option<(usize, &AssessmentSpec)> {
        self.0.iter().enumerate().find(|(_, s)| s.name == name)
    }

    /// Check an assessment against the policy: the indicator is declared
    /// and the value a level of its scale. The error names the field
    /// (`customer_assessed.indicator` or `customer_assessed.value`).
    pub fn check(&self, indicator: &str, value: i64) -> Result<(), crate::InvalidEvent> {
        use crate::{InvalidEvent, RejectReason};
        let Some((_, spec)) = self.find(indicator) else {
            let known: Vec<&str> = self.0.iter().map(|s| s.name.as_str()).collect();
            return Err(InvalidEvent::new(
                RejectReason::InvalidField,
                "customer_assessed.indicator",
                if known.is_empty() {
                    format!(
                        "{indicator:?} is not an assessment indicator; the policy declares none"
                    )
                } else {
                    format!(
                        "{indicator:?} is not an assessment indicator of the policy; it declares {}",
                        known.join(", ")
                    )
                },
            ));
        };
        if !spec.in_scale(value) {
            return Err(InvalidEvent::new(
                RejectReason::InvalidField,
                "customer_assessed.value",
                format!(
                    "{value} is outside the scale {}..={} of {}",
                    spec.min, spec.max, spec.name
                ),
            ));
        }
        Ok(())
    }
}

//! Secondary gradings: other lenses of the seed texts reported beside the
//! primary tier (which alone drives priority and entitlements).
//!
//! A policy lists them as `[[gradings]]`, each with a `name` and a `kind`:
//!
//! - **`matrix`** (relationship x potential): `x` (default
//!   `share_of_wallet`) against `x_min`, `y` (default
//!   `purchase_potential`) against `y_min`. High x and high y is `key`,
//!   low x and high y `potential` (room to grow), high x and low y
//!   `regular`, low both `low_value`; a value at its threshold counts as
//!   high. Either axis may be an assessment (e.g. `y = "potential"`: the
//!   judged potential instead of the profile's figure). A customer with
//!   either figure unknown (no purchase potential in its profile, an
//!   assessment never made or expired) is not graded. Per customer: needs nothing but its own
//!   figures.
//! - **`abc`** (proportional ranking): the population ranked by `by` (an
//!   indicator, or `"score"` for the primary score), best first; the first
//!   `shares[0]` of it is `classes[0]`, and so on; `low_value_share`
//!   optionally flags the bottom share as low value. Cut points move as the
//!   population moves (see `crate::rank`).
//! - **`rfm`**: recency, frequency and monetary quintile scores (1-5, 5
//!   best) over the population: `days_since_last_order` (fewer is better),
//!   `order_count_12m`, `order_amount_12m`; the class is the three digits,
//!   e.g. `"545"`. Customers without an order are not graded. (The
//!   `rfm_*` indicators a tier may read are the same quintiles with ties
//!   to the better fifth, so that equal figures score alike; see the
//!   policy module's "RFM scores".)
//!
//! Population gradings are computed over the committed population by the
//! read side, their cut points recomputed at most every `recut_seconds`
//! (default [`DEFAULT_RECUT_SECONDS`]) while the population changes and at
//! once on a policy change; see the API's grading module.

use super::Operand;
use crate::indicators::{IndicatorName, Indicators};

/// What a matrix grading calls its quadrants.
pub const MATRIX_CLASSES: [&str; 4] = ["key", "potential", "regular", "low_value"];

/// A customer's class in one grading.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GradingClass {
    /// The grading's name in the policy.
    pub grading: String,
    /// `matrix`, `abc` or `rfm`.
    pub kind: String,
    pub class: String,
}

/// What a population is ranked by.
#[derive(Clone, Debug, PartialEq)]
pub enum RankBy {
    /// The primary method's score.
    Score,
    Indicator(IndicatorName),
}

/// How often population cut points are recomputed while the population
/// changes, unless the grading says (`recut_seconds`, 1 to 86400).
pub const DEFAULT_RECUT_SECONDS: u32 = 10;

/// One secondary grading of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Grading {
    pub name: String,
    pub kind: GradingKind,
    /// Population gradings: longest time cut points lag the population.
    pub recut_seconds: u32,
}

/// How a secondary grading grades.
#[derive(Clone, Debug, PartialEq)]
pub enum GradingKind {
    Matrix {
        /// An indicator or an assessment (see `operand.rs`).
        x: Operand,
        x_min: f64,
        y: Operand,
        y_min: f64,
    },
    Abc {
        by: RankBy,
        /// Shares of the ranked population, best first, summing to 1.
        shares: Vec<f64>,
        classes: Vec<String>,
        /// The bottom share flagged as low value, if any.
        low_value_share: Option<f64>,
    },
    Rfm,
}

impl Grading {
    /// The class of a per-customer grading (matrix); `None` for a
    /// population grading or an ungraded customer.
    pub fn classify(&self, ind: &Indicators) -> Option<&'static str> {
        match &self.kind {
            GradingKind::Matrix { x, x_min, y, y_min } => {
                let (xv, yv) = (x.value(ind)?, y.value(ind)?);
                let (hx, hy) = (xv >= *x_min, yv >= *y_min);
                Some(match (hx, hy) {
                    (true, true) => MATRIX_CLASSES[0],
                    (false, true) => MATRIX_CLASSES[1],
                    (true, false) => MATRIX_CLASSES[2],
                    (false, false) => MATRIX_CLASSES[3],
                })
            }
            GradingKind::Abc { .. } | GradingKind::Rfm => None,
        }
    }

    /// The kind's name as in the policy.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            GradingKind::Matrix { .. } => "matrix",
            GradingKind::Abc { .. } => "abc",
            GradingKind::Rfm => "rfm",
        }
    }

    /// The class of a per-customer grading, named; `None` as for
    /// [`Self::classify`].
    pub fn class_of(&self, ind: &Indicators) -> Option<GradingClass> {
        Some(GradingClass {
            grading: self.name.clone(),
            kind: self.kind_name().to_owned(),
            class: self.classify(ind)?.to_owned(),
        })
    }

    /// Whether the grading needs the whole population.
    pub fn is_population(&self) -> bool {
        !matches!(self.kind, GradingKind::Matrix { .. })
    }

    /// Whether the grading reads the assessment in `slot` (a matrix axis).
    pub fn uses_assessment(&self, slot: usize) -> bool {
        match &self.kind {
            GradingKind::Matrix { x, y, .. } => {
                x.assessment_slot() == Some(slot) || y.assessment_slot() == Some(slot)
            }
            GradingKind::Abc { .. } | GradingKind::Rfm => false,
        }
    }

    /// Indicators the grading reads.
    pub fn uses(&self, name: IndicatorName) -> bool {
        match &self.kind {
            GradingKind::Matrix { x, y, .. } => {
                x.indicator() == Some(name) || y.indicator() == Some(name)
            }
            GradingKind::Abc { by, .. } => *by == RankBy::Indicator(name),
            GradingKind::Rfm => matches!(
                name,
                IndicatorName::DaysSinceLastOrder
                    | IndicatorName::OrderCount12m
                    | IndicatorName::OrderAmount12m
            ),
        }
    }
}

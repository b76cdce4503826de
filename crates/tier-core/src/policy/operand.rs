//! What a gate, a rule condition or a matrix axis reads: an event-derived
//! indicator, or an assessment the policy declares (`[[assessments]]`).
//!
//! A policy names either the same way (`indicator = "potential"` reads the
//! assessment called `potential`), and both behave alike: an assessment
//! never made, or expired, is unknown, exactly like a margin without known
//! costs, so a rule condition on it does not hold and a gate on it follows
//! its `unknown` setting. Assessment levels are whole numbers on the
//! declared scale ([`Unit::Level`]).
//!
//! An indicator may be an RFM quintile score (`rfm_recency`, ...): its
//! value is the customer's own figure mapped through the population's cut
//! points the policy holds, filled in with the other indicators (see the
//! policy module's "RFM scores"); it reads like any indicator.
//!
//! An assessment is a judgement to make, not a lever: explanations name an
//! unmet condition or a failing gate on one in their gap text and failed
//! gates, never in the structured advice (which lists the event-derived
//! figures a customer can move).

use std::fmt;
use std::sync::Arc;

use crate::indicators::{IndicatorName, Indicators, Unit};

/// An event-derived indicator or a declared assessment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Indicator(IndicatorName),
    /// The level of the assessment in `slot` of the policy's
    /// `[[assessments]]`, called `name` there.
    Assessment {
        slot: usize,
        name: Arc<str>,
    },
}

impl Operand {
    /// The value in `ind`; `None` when unknown (for an assessment: never
    /// made, or expired).
    #[inline]
    pub fn value(&self, ind: &Indicators) -> Option<f64> {
        match self {
            Operand::Indicator(n) => ind.get(*n),
            Operand::Assessment { slot, .. } => ind.assessed.get(*slot).copied().flatten(),
        }
    }

    /// Set the value in `ind` (what-if trials of explanations).
    pub(crate) fn set(&self, ind: &mut Indicators, value: Option<f64>) {
        match self {
            Operand::Indicator(n) => ind.set(*n, value),
            Operand::Assessment { slot, .. } => {
                if let Some(v) = ind.assessed.get_mut(*slot) {
                    *v = value;
                }
            }
        }
    }

    /// The name as the policy writes it.
    pub fn name(&self) -> &str {
        match self {
            Operand::Indicator(n) => n.as_str(),
            Operand::Assessment { name, .. } => name,
        }
    }

    pub fn unit(&self) -> Unit {
        match self {
            Operand::Indicator(n) => n.unit(),
            Operand::Assessment { .. } => Unit::Level,
        }
    }

    /// The event-derived indicator, when this is one.
    pub fn indicator(&self) -> Option<IndicatorName> {
        match self {
            Operand::Indicator(n) => Some(*n),
            Operand::Assessment { .. } => None,
        }
    }

    /// The assessment's slot, when this is one.
    pub fn assessment_slot(&self) -> Option<usize> {
        match self {
            Operand::Indicator(_) => None,
            Operand::Assessment { slot, .. } => Some(*slot),
        }
    }
}

impl From<IndicatorName> for Operand {
    fn from(n: IndicatorName) -> Self {
        Operand::Indicator(n)
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assessment_reads_its_slot_and_is_unknown_when_missing() {
        let potential = Operand::Assessment {
            slot: 1,
            name: "potential".into(),
        };
        let mut ind = Indicators::default();
        assert_eq!(potential.value(&ind), None);
        potential.set(&mut ind, Some(4.0));
        assert_eq!(potential.value(&ind), Some(4.0));
        assert_eq!(ind.assessed[0], None);
        assert_eq!(potential.unit(), Unit::Level);
        assert_eq!(potential.to_string(), "potential");
        assert_eq!(potential.indicator(), None);
        assert_eq!(potential.assessment_slot(), Some(1));

        let ratio = Operand::from(IndicatorName::OnTimePaymentRatio);
        assert_eq!(ratio.value(&ind), None);
        ratio.set(&mut ind, Some(0.5));
        assert_eq!(ratio.value(&ind), Some(0.5));
        assert_eq!(ratio.name(), "on_time_payment_ratio");
        assert_eq!(ratio.unit(), Unit::Ratio);
    }
}

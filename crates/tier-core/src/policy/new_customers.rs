//! The new-customer rule set: customers with too little history are graded
//! by an assessment (the judged purchase potential) instead of by figures
//! they do not have yet.
//!
//! ```toml
//! [new_customers]
//! orders = 3            # fewer orders than this in the window: new
//! tenure_days = 90      # or a tenure under this many days: new
//! assessment = "judged_potential"
//! tiers = [ { min_level = 5, tier = "B" }, { min_level = 4, tier = "C" } ]
//! ```
//!
//! While a customer is new (fewer than `orders` orders, or a tenure under
//! `tenure_days` days; at least one of the two is required), the first rule
//! whose `min_level` its assessment in force reaches gives a tier. The
//! customer holds the better of that tier and the one its score reaches, so
//! the rule can lift a promising account from day one but never holds a
//! new customer below what its figures earn. Gates still apply. Without an
//! assessment in force (never made, or expired), or once the customer has
//! enough history, it is graded by the policy's method alone: the move to
//! the normal grading happens on the day the tenure passes `tenure_days`
//! (a due instant, cause `TIME`) or with the order that reaches `orders`.
//! ExplainTier names the rule ([`NewCustomers::describe`]).

use crate::indicators::Indicators;

use super::TierSpec;

/// A parsed `[new_customers]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCustomers {
    pub(crate) orders: Option<u32>,
    pub(crate) tenure_days: Option<u32>,
    /// The assessment's name and slot.
    pub(crate) assessment: String,
    pub(crate) slot: usize,
    /// `(min_level, tier index)`, highest level first.
    pub(crate) rules: Vec<(i64, usize)>,
}

impl NewCustomers {
    /// Whether a customer with these figures is new.
    pub fn is_new(&self, ind: &Indicators) -> bool {
        self.orders
            .is_some_and(|n| ind.order_count_12m < f64::from(n))
            || self
                .tenure_days
                .is_some_and(|d| ind.tenure_days < f64::from(d))
    }

    /// The tier the rule set gives, with the level that gave it; `None`
    /// for a customer that is not new, has no assessment in force, or
    /// whose level reaches no rule.
    pub fn tier_for(&self, ind: &Indicators) -> Option<(usize, i64)> {
        if !self.is_new(ind) {
            return None;
        }
        let level = ind.assessed.get(self.slot).copied().flatten()?;
        self.rules
            .iter()
            .find(|(min, _)| level >= *min as f64)
            .map(|(_, tier)| (*tier, level.round() as i64))
    }

    /// What ExplainTier says when the rule grades the customer:
    /// `new customer (fewer than 3 orders or under 90 days): judged_potential 5 gives B`.
    pub fn describe(&self, ind: &Indicators, tiers: &[TierSpec]) -> Option<String> {
        let (tier, level) = self.tier_for(ind)?;
        let mut why = Vec::new();
        if let Some(n) = self.orders {
            why.push(format!("fewer than {n} orders"));
        }
        if let Some(d) = self.tenure_days {
            why.push(format!("under {d} days"));
        }
        Some(format!(
            "new customer ({}): {} {level} gives {}",
            why.join(" or "),
            self.assessment,
            tiers.get(tier).map_or("?", |t| t.name.as_str())
        ))
    }
}

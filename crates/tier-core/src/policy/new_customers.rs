//! The new-customer rule set: customers with too little history are graded
//! by an assessment (the judged purchase potential) instead of by figures
//! they do not have yet.
//!
//! ```toml
//! [new_customers]
//! orders = 3            # fewer orders than this ever: new
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
//! ExplainTier names the rule ([`NewCustomers::describe`]) while it lifts
//! the customer above its score's tier.
//!
//! "Fewer than `orders` orders" means orders ever, not in the window: the
//! rule is for accounts without a trading history, and a long-standing
//! customer whose old orders leave the window, or one lapsed for a year,
//! has one. The projection keeps only the window's orders, so the count
//! is read from the window only while the relationship began inside it
//! (its tenure start, the first order or the profile's `customer_since`,
//! is on or after the window's first day: then every order is in the
//! window). A customer whose tenure reaches before the window is not new
//! by its order count, whatever the window holds; time alone never makes
//! it new again. The day the tenure start leaves the window is due
//! (`CustomerState::next_due_reference`), for a relationship that began
//! before its first order.

use crate::indicators::Indicators;
use crate::time::Day;

use super::TierSpec;

/// A parsed `[new_customers]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCustomers {
    pub(crate) orders: Option<u32>,
    pub(crate) tenure_days: Option<u32>,
    /// The policy's window in days: a tenure this long or longer began
    /// before the window, whose order count is then not every order.
    pub(crate) window_days: u32,
    /// The assessment's name and slot.
    pub(crate) assessment: String,
    pub(crate) slot: usize,
    /// `(min_level, tier index)`, highest level first.
    pub(crate) rules: Vec<(i64, usize)>,
}

impl NewCustomers {
    /// Whether a customer with these figures is new: fewer than `orders`
    /// orders ever, or a tenure under `tenure_days`. The window's count is
    /// every order only while the tenure start is in the window (`tenure_days`
    /// counts whole business days from it, and the window's first day is
    /// `window_days - 1` days back): a tenure of the window's length or
    /// more has history before it, and the count says nothing of newness.
    pub fn is_new(&self, ind: &Indicators) -> bool {
        let all_orders_in_window = ind.tenure_days < f64::from(self.window_days);
        self.orders
            .is_some_and(|n| all_orders_in_window && ind.order_count_12m < f64::from(n))
            || self
                .tenure_days
                .is_some_and(|d| ind.tenure_days < f64::from(d))
    }

    /// The business day from which a customer whose tenure starts on
    /// `start` has history before the window, and stops being new by its
    /// order count; `None` when the rule has no order count. When the
    /// tenure starts with the first order this is the day that order
    /// leaves the window; when the profile's `customer_since` comes
    /// first, no figure's change marks it.
    pub fn history_before_window_from(&self, start: Day) -> Option<Day> {
        self.orders?;
        Some(start.plus(i32::try_from(self.window_days).unwrap_or(i32::MAX)))
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
    /// `None` also when the rule's tier is no better than `score_tier`, the
    /// one the method alone reaches: the customer holds the better of the
    /// two, so the score grades it then, and naming the rule would explain
    /// a tier by what did not give it.
    pub fn describe(
        &self,
        ind: &Indicators,
        tiers: &[TierSpec],
        score_tier: usize,
    ) -> Option<String> {
        let (tier, level) = self.tier_for(ind).filter(|(t, _)| *t < score_tier)?;
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

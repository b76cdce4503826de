//! Indicators: the named figures a customer is graded on.
//!
//! [`Indicators`] is a plain value computed from a projection at a given
//! `now` (see `CustomerProjection::indicators`). Policies refer to
//! indicators by their stable snake_case names ([`IndicatorName`]), which
//! are also the names shown in explanations.

use serde::{Deserialize, Serialize};

/// Stable indicator names. Policies, explanations and the API use these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorName {
    /// Net order amount in the window (placed - returned - cancelled), minor units.
    #[serde(rename = "order_amount_12m")]
    OrderAmount12m,
    /// Orders placed in the window and not cancelled.
    #[serde(rename = "order_count_12m")]
    OrderCount12m,
    /// `order_amount_12m / order_count_12m`, minor units.
    #[serde(rename = "avg_order_value_12m")]
    AvgOrderValue12m,
    /// Orders per active month of the window.
    #[serde(rename = "orders_per_month_12m")]
    OrdersPerMonth12m,
    /// Net amount minus net cost of goods in the window, minor units.
    #[serde(rename = "margin_12m")]
    Margin12m,
    /// `margin_12m / order_amount_12m` (0 when there is no amount).
    #[serde(rename = "margin_rate_12m")]
    MarginRate12m,
    /// Share of invoices due so far that were paid in full by their due
    /// date (1.0 when nothing has fallen due: no evidence of late payment).
    OnTimePaymentRatio,
    /// Mean days late over invoices due in the window (late ones count
    /// their lateness, on-time ones 0; unpaid overdue ones count days so far).
    AvgDaysLate,
    /// Largest days late over the same invoices.
    MaxDaysLate,
    /// Unpaid remainder of invoices past their due date, minor units.
    OverdueAmount,
    /// Complaints opened and not yet resolved.
    OpenComplaints,
    /// Complaints opened in the window.
    #[serde(rename = "complaints_12m")]
    Complaints12m,
    /// Complaints opened in the window weighted by severity (1/1/2/4/8).
    #[serde(rename = "complaints_weighted_12m")]
    ComplaintsWeighted12m,
    /// Days since the last (not cancelled) order; window length in days when none.
    DaysSinceLastOrder,
    /// Days since the customer's first event in the window.
    TenureDays,
    /// `order_amount_12m / purchase_potential`, when the potential is known.
    ShareOfWallet,
    /// Growth of the last 3 complete months' amount over the 3 before, as a
    /// ratio (-1.0 ..= capped at 10.0; 0 with no history).
    #[serde(rename = "growth_3m")]
    Growth3m,
}

impl IndicatorName {
    pub const ALL: [IndicatorName; 17] = [
        IndicatorName::OrderAmount12m,
        IndicatorName::OrderCount12m,
        IndicatorName::AvgOrderValue12m,
        IndicatorName::OrdersPerMonth12m,
        IndicatorName::Margin12m,
        IndicatorName::MarginRate12m,
        IndicatorName::OnTimePaymentRatio,
        IndicatorName::AvgDaysLate,
        IndicatorName::MaxDaysLate,
        IndicatorName::OverdueAmount,
        IndicatorName::OpenComplaints,
        IndicatorName::Complaints12m,
        IndicatorName::ComplaintsWeighted12m,
        IndicatorName::DaysSinceLastOrder,
        IndicatorName::TenureDays,
        IndicatorName::ShareOfWallet,
        IndicatorName::Growth3m,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            IndicatorName::OrderAmount12m => "order_amount_12m",
            IndicatorName::OrderCount12m => "order_count_12m",
            IndicatorName::AvgOrderValue12m => "avg_order_value_12m",
            IndicatorName::OrdersPerMonth12m => "orders_per_month_12m",
            IndicatorName::Margin12m => "margin_12m",
            IndicatorName::MarginRate12m => "margin_rate_12m",
            IndicatorName::OnTimePaymentRatio => "on_time_payment_ratio",
            IndicatorName::AvgDaysLate => "avg_days_late",
            IndicatorName::MaxDaysLate => "max_days_late",
            IndicatorName::OverdueAmount => "overdue_amount",
            IndicatorName::OpenComplaints => "open_complaints",
            IndicatorName::Complaints12m => "complaints_12m",
            IndicatorName::ComplaintsWeighted12m => "complaints_weighted_12m",
            IndicatorName::DaysSinceLastOrder => "days_since_last_order",
            IndicatorName::TenureDays => "tenure_days",
            IndicatorName::ShareOfWallet => "share_of_wallet",
            IndicatorName::Growth3m => "growth_3m",
        }
    }

    /// Parse a stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

impl std::fmt::Display for IndicatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every indicator of one customer at one instant. Money in minor units of
/// the base currency (as `f64` for scoring; exact sums live in the projection).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Indicators {
    pub order_amount_12m: f64,
    pub order_count_12m: f64,
    pub avg_order_value_12m: f64,
    pub orders_per_month_12m: f64,
    pub margin_12m: f64,
    pub margin_rate_12m: f64,
    pub on_time_payment_ratio: f64,
    pub avg_days_late: f64,
    pub max_days_late: f64,
    pub overdue_amount: f64,
    pub open_complaints: f64,
    pub complaints_12m: f64,
    pub complaints_weighted_12m: f64,
    pub days_since_last_order: f64,
    pub tenure_days: f64,
    /// `None` when the purchase potential is unknown.
    pub share_of_wallet: Option<f64>,
    pub growth_3m: f64,
    /// Complaints opened in the window, per [`crate::Severity::index`].
    pub complaints_by_severity_12m: [u32; 5],
}

impl Indicators {
    /// The value of one indicator; `None` only for an unknown share of wallet.
    pub fn get(&self, name: IndicatorName) -> Option<f64> {
        Some(match name {
            IndicatorName::OrderAmount12m => self.order_amount_12m,
            IndicatorName::OrderCount12m => self.order_count_12m,
            IndicatorName::AvgOrderValue12m => self.avg_order_value_12m,
            IndicatorName::OrdersPerMonth12m => self.orders_per_month_12m,
            IndicatorName::Margin12m => self.margin_12m,
            IndicatorName::MarginRate12m => self.margin_rate_12m,
            IndicatorName::OnTimePaymentRatio => self.on_time_payment_ratio,
            IndicatorName::AvgDaysLate => self.avg_days_late,
            IndicatorName::MaxDaysLate => self.max_days_late,
            IndicatorName::OverdueAmount => self.overdue_amount,
            IndicatorName::OpenComplaints => self.open_complaints,
            IndicatorName::Complaints12m => self.complaints_12m,
            IndicatorName::ComplaintsWeighted12m => self.complaints_weighted_12m,
            IndicatorName::DaysSinceLastOrder => self.days_since_last_order,
            IndicatorName::TenureDays => self.tenure_days,
            IndicatorName::ShareOfWallet => return self.share_of_wallet,
            IndicatorName::Growth3m => self.growth_3m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_parse_back() {
        for n in IndicatorName::ALL {
            assert_eq!(IndicatorName::parse(n.as_str()), Some(n));
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{}\"", n.as_str()));
        }
        assert_eq!(IndicatorName::parse("nope"), None);
    }
}

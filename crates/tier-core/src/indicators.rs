//! Indicators: the named figures a customer is graded on.
//!
//! [`Indicators`] is a plain value computed from a projection at a given
//! `now` (see `CustomerProjection::indicators`). Policies refer to
//! indicators by their stable snake_case names ([`IndicatorName`]), which
//! are also the names shown in explanations. The RFM quintile scores
//! (`rfm_*`) are the only ones relative to the population: the projection
//! maps the customer's figures through the cut points the policy holds
//! (`FoldRules::rfm`).

use serde::{Deserialize, Serialize};

mod packed;
use packed::Pack;

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
    /// Orders per month over the span the window actually covers: from
    /// the first order (or the profile's `customer_since`) to today,
    /// capped at the window, at least one month.
    #[serde(rename = "orders_per_month_12m")]
    OrdersPerMonth12m,
    /// Net amount minus net cost of goods of the window's orders whose cost
    /// is known (an order without a cost adds nothing), minor units;
    /// unknown when the window has orders and none has a known cost.
    #[serde(rename = "margin_12m")]
    Margin12m,
    /// Margin over the amount of the orders whose cost is known; unknown
    /// when no order of the window has a known cost.
    #[serde(rename = "margin_rate_12m")]
    MarginRate12m,
    /// Share of invoices settled in the window (by their payment date) and
    /// invoices overdue now that were paid in full by their due date;
    /// unknown when none fell due (no evidence either way).
    OnTimePaymentRatio,
    /// Mean business days late over the same invoices (on-time ones count
    /// 0, unpaid overdue ones the days so far); unknown when none fell due.
    AvgDaysLate,
    /// Largest days late over the same invoices; unknown when none fell due.
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
    /// Days since the last order that still counts (not cancelled, not
    /// fully returned), growing past the window; unknown with no order.
    DaysSinceLastOrder,
    /// Days since the relationship began: the profile's `customer_since`
    /// or the first order ever, whichever is earlier (0 with neither).
    TenureDays,
    /// Yearly order amount (the window's amount annualised) over the
    /// profile's yearly purchase potential; unknown without a potential.
    ShareOfWallet,
    /// Growth of the last 3 complete business months' amount per day over
    /// the 3 before (quarters are 89 to 92 days), as a ratio (-1.0 ..=
    /// 10.0); unknown when the prior quarter had no amount (no base to grow
    /// from).
    #[serde(rename = "growth_3m")]
    Growth3m,
    /// Consecutive complete business months, up to the last one, each with
    /// a larger net amount per day than the month before (DOMAIN's "three
    /// months of growing spend" is `>= 3`).
    GrowthStreakMonths,
    /// Business days the oldest unpaid invoice is past its due day, as of
    /// the decision instant (1 on the day after the due day); 0 when
    /// nothing is overdue. Grows by one every day until the invoice is
    /// paid in full or voided: "no overdue debt older than 60 days" is
    /// `<= 60`. Any unpaid remainder counts, however small. (Listed last,
    /// like every later indicator: persisted names keep their positions.)
    OldestOverdueDays,
    /// The profile's yearly purchase potential, minor units; unknown
    /// without one. The other axis of the relationship x potential matrix
    /// beside `share_of_wallet`.
    PurchasePotential,
    /// Recency quintile score over the population, 1-5 (5 = the fifth
    /// with the most recent last order); unknown with no order, or before
    /// the population is first ranked. See [`crate::rank::RfmQuintiles`].
    RfmRecency,
    /// Frequency quintile score (`order_count_12m` over the population),
    /// 1-5; unknown as for [`Self::RfmRecency`].
    RfmFrequency,
    /// Monetary quintile score (`order_amount_12m` over the population),
    /// 1-5; unknown as for [`Self::RfmRecency`].
    RfmMonetary,
    /// The sum of the three RFM scores, 3-15; unknown when any is.
    RfmScore,
}

impl IndicatorName {
    pub const ALL: [IndicatorName; 24] = [
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
        IndicatorName::GrowthStreakMonths,
        IndicatorName::OldestOverdueDays,
        IndicatorName::PurchasePotential,
        IndicatorName::RfmRecency,
        IndicatorName::RfmFrequency,
        IndicatorName::RfmMonetary,
        IndicatorName::RfmScore,
    ];

    /// The RFM quintile scores (population-relative, see
    /// [`crate::rank::RfmQuintiles`]).
    pub const RFM: [IndicatorName; 4] = [
        IndicatorName::RfmRecency,
        IndicatorName::RfmFrequency,
        IndicatorName::RfmMonetary,
        IndicatorName::RfmScore,
    ];

    /// Whether this is an RFM quintile score (its value depends on the
    /// population, not on the customer's figures alone).
    pub const fn is_rfm(self) -> bool {
        matches!(
            self,
            IndicatorName::RfmRecency
                | IndicatorName::RfmFrequency
                | IndicatorName::RfmMonetary
                | IndicatorName::RfmScore
        )
    }

    /// Position in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

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
            IndicatorName::GrowthStreakMonths => "growth_streak_months",
            IndicatorName::OldestOverdueDays => "oldest_overdue_days",
            IndicatorName::PurchasePotential => "purchase_potential",
            IndicatorName::RfmRecency => "rfm_recency",
            IndicatorName::RfmFrequency => "rfm_frequency",
            IndicatorName::RfmMonetary => "rfm_monetary",
            IndicatorName::RfmScore => "rfm_score",
        }
    }

    /// What the indicator's values measure.
    pub const fn unit(self) -> Unit {
        match self {
            IndicatorName::OrderAmount12m
            | IndicatorName::AvgOrderValue12m
            | IndicatorName::Margin12m
            | IndicatorName::OverdueAmount
            | IndicatorName::PurchasePotential => Unit::Money,
            IndicatorName::OrderCount12m => Unit::Orders,
            IndicatorName::OrdersPerMonth12m => Unit::OrdersPerMonth,
            IndicatorName::MarginRate12m
            | IndicatorName::OnTimePaymentRatio
            | IndicatorName::ShareOfWallet
            | IndicatorName::Growth3m => Unit::Ratio,
            IndicatorName::AvgDaysLate
            | IndicatorName::MaxDaysLate
            | IndicatorName::DaysSinceLastOrder
            | IndicatorName::TenureDays
            | IndicatorName::OldestOverdueDays => Unit::Days,
            IndicatorName::OpenComplaints | IndicatorName::Complaints12m => Unit::Complaints,
            IndicatorName::ComplaintsWeighted12m => Unit::WeightedComplaints,
            IndicatorName::GrowthStreakMonths => Unit::Months,
            // Whole quintile scores, like an assessment's levels.
            IndicatorName::RfmRecency
            | IndicatorName::RfmFrequency
            | IndicatorName::RfmMonetary
            | IndicatorName::RfmScore => Unit::Level,
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

/// The unit of an indicator's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Minor units of the policy's base currency.
    Money,
    Orders,
    OrdersPerMonth,
    /// A fraction (0.25 = 25%).
    Ratio,
    Days,
    Complaints,
    /// Complaints weighted by severity.
    WeightedComplaints,
    Months,
    /// A level on an assessment's declared scale (whole numbers).
    Level,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Money => "money",
            Unit::Orders => "orders",
            Unit::OrdersPerMonth => "orders_per_month",
            Unit::Ratio => "ratio",
            Unit::Days => "days",
            Unit::Complaints => "complaints",
            Unit::WeightedComplaints => "weighted_complaints",
            Unit::Months => "months",
            Unit::Level => "level",
        }
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
    /// `None`: orders in the window, none with a known cost.
    pub margin_12m: Option<f64>,
    /// `None`: no order of the window has a known cost.
    pub margin_rate_12m: Option<f64>,
    /// `None` (and the two below): no invoice has fallen due.
    pub on_time_payment_ratio: Option<f64>,
    pub avg_days_late: Option<f64>,
    pub max_days_late: Option<f64>,
    pub overdue_amount: f64,
    /// Days the oldest unpaid invoice is past due; 0 when none is.
    #[serde(default)]
    pub oldest_overdue_days: f64,
    /// The profile's yearly purchase potential; `None` without one.
    #[serde(default)]
    pub purchase_potential: Option<f64>,
    pub open_complaints: f64,
    pub complaints_12m: f64,
    pub complaints_weighted_12m: f64,
    /// `None`: no order that still counts, ever.
    pub days_since_last_order: Option<f64>,
    pub tenure_days: f64,
    /// `None` when the purchase potential is unknown.
    pub share_of_wallet: Option<f64>,
    /// `None` without a prior quarter to compare with.
    pub growth_3m: Option<f64>,
    pub growth_streak_months: f64,
    /// Complaints opened in the window, per [`crate::Severity::index`].
    pub complaints_by_severity_12m: [u32; 5],
    /// Of those, the ones resolved since.
    pub resolved_by_severity_12m: [u32; 5],
    /// The assessment indicators' values by the policy's slot (see
    /// [`crate::policy::AssessmentRules`]); `None` when never assessed or
    /// expired. A fixed array, so the hot path copies, never allocates.
    #[serde(default)]
    pub assessed: Assessed,
    /// RFM quintile scores 1-5 against the policy's cut points (see
    /// [`crate::rank::RfmQuintiles`]); `None` with no order, or before the
    /// population is first ranked.
    #[serde(default)]
    pub rfm_recency: Option<f64>,
    #[serde(default)]
    pub rfm_frequency: Option<f64>,
    #[serde(default)]
    pub rfm_monetary: Option<f64>,
    /// `rfm_recency + rfm_frequency + rfm_monetary` (3-15); `None` when
    /// any is unknown.
    #[serde(default)]
    pub rfm_score: Option<f64>,
}

/// Values of the assessment indicators, by slot: the policy's
/// `[[assessments]]` in order, at most
/// [`crate::policy::MAX_ASSESSMENTS`].
pub type Assessed = [Option<f64>; crate::policy::MAX_ASSESSMENTS];

impl Indicators {
    /// The value of one indicator; `None` when it is unknown.
    pub fn get(&self, name: IndicatorName) -> Option<f64> {
        match name {
            IndicatorName::OrderAmount12m => Some(self.order_amount_12m),
            IndicatorName::OrderCount12m => Some(self.order_count_12m),
            IndicatorName::AvgOrderValue12m => Some(self.avg_order_value_12m),
            IndicatorName::OrdersPerMonth12m => Some(self.orders_per_month_12m),
            IndicatorName::Margin12m => self.margin_12m,
            IndicatorName::MarginRate12m => self.margin_rate_12m,
            IndicatorName::OnTimePaymentRatio => self.on_time_payment_ratio,
            IndicatorName::AvgDaysLate => self.avg_days_late,
            IndicatorName::MaxDaysLate => self.max_days_late,
            IndicatorName::OverdueAmount => Some(self.overdue_amount),
            IndicatorName::OpenComplaints => Some(self.open_complaints),
            IndicatorName::Complaints12m => Some(self.complaints_12m),
            IndicatorName::ComplaintsWeighted12m => Some(self.complaints_weighted_12m),
            IndicatorName::DaysSinceLastOrder => self.days_since_last_order,
            IndicatorName::TenureDays => Some(self.tenure_days),
            IndicatorName::ShareOfWallet => self.share_of_wallet,
            IndicatorName::Growth3m => self.growth_3m,
            IndicatorName::GrowthStreakMonths => Some(self.growth_streak_months),
            IndicatorName::OldestOverdueDays => Some(self.oldest_overdue_days),
            IndicatorName::PurchasePotential => self.purchase_potential,
            IndicatorName::RfmRecency => self.rfm_recency,
            IndicatorName::RfmFrequency => self.rfm_frequency,
            IndicatorName::RfmMonetary => self.rfm_monetary,
            IndicatorName::RfmScore => self.rfm_score,
        }
    }

    /// A mutable slot for one indicator (tests, what-if analysis): setting
    /// it to `Some` makes it known.
    pub fn set(&mut self, name: IndicatorName, value: Option<f64>) {
        let v = value.unwrap_or(0.0);
        match name {
            IndicatorName::OrderAmount12m => self.order_amount_12m = v,
            IndicatorName::OrderCount12m => self.order_count_12m = v,
            IndicatorName::AvgOrderValue12m => self.avg_order_value_12m = v,
            IndicatorName::OrdersPerMonth12m => self.orders_per_month_12m = v,
            IndicatorName::Margin12m => self.margin_12m = value,
            IndicatorName::MarginRate12m => self.margin_rate_12m = value,
            IndicatorName::OnTimePaymentRatio => self.on_time_payment_ratio = value,
            IndicatorName::AvgDaysLate => self.avg_days_late = value,
            IndicatorName::MaxDaysLate => self.max_days_late = value,
            IndicatorName::OverdueAmount => self.overdue_amount = v,
            IndicatorName::OpenComplaints => self.open_complaints = v,
            IndicatorName::Complaints12m => self.complaints_12m = v,
            IndicatorName::ComplaintsWeighted12m => self.complaints_weighted_12m = v,
            IndicatorName::DaysSinceLastOrder => self.days_since_last_order = value,
            IndicatorName::TenureDays => self.tenure_days = v,
            IndicatorName::ShareOfWallet => self.share_of_wallet = value,
            IndicatorName::Growth3m => self.growth_3m = value,
            IndicatorName::GrowthStreakMonths => self.growth_streak_months = v,
            IndicatorName::OldestOverdueDays => self.oldest_overdue_days = v,
            IndicatorName::PurchasePotential => self.purchase_potential = value,
            IndicatorName::RfmRecency => self.rfm_recency = value,
            IndicatorName::RfmFrequency => self.rfm_frequency = value,
            IndicatorName::RfmMonetary => self.rfm_monetary = value,
            IndicatorName::RfmScore => self.rfm_score = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_parse_back() {
        for n in IndicatorName::ALL {
            assert_eq!(IndicatorName::parse(n.as_str()), Some(n));
            assert_eq!(IndicatorName::ALL[n.index()], n);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{}\"", n.as_str()));
        }
        assert_eq!(IndicatorName::parse("nope"), None);
    }
}

/// Declares how [`KeptIndicators`] packs and unpacks [`Indicators`]: the
/// figures listed, then the assessment slots. `unpack`
/// names every field, so a figure added to `Indicators` and not here
/// fails to compile.
macro_rules! kept_indicators {
    ($($field:ident),* $(,)?) => {
        impl KeptIndicators {
            fn pack(ind: &Indicators, out: &mut Vec<u8>) {
                $(ind.$field.pack(out);)*
                // The assessment slots behind a flag, absent when none is
                // set (most customers).
                let assessed = ind.assessed.iter().any(Option::is_some);
                u8::from(assessed).pack(out);
                if assessed {
                    ind.assessed.pack(out);
                }
            }

            /// `None` when `bytes` are not exactly one packed value.
            fn unpack(mut bytes: &[u8]) -> Option<Indicators> {
                let input = &mut bytes;
                $(let $field = Pack::unpack(input)?;)*
                let assessed: Assessed = match u8::unpack(input)? {
                    0 => Assessed::default(),
                    1 => Pack::unpack(input)?,
                    _ => return None,
                };
                input.is_empty().then_some(Indicators { $($field,)* assessed })
            }
        }
    };
}

/// [`Indicators`] as a customer state keeps them between two tier
/// changes (the baseline of the next change's reasons): the same
/// figures, exactly, packed (the `packed` module): whole figures in a
/// byte or a few, the assessment slots only when one is set. About 60
/// bytes for a typical customer, against 400 for `Indicators`; stored
/// as they are held, so encoding a state copies them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptIndicators(Box<[u8]>);

impl KeptIndicators {
    pub fn new(ind: &Indicators) -> Self {
        thread_local! {
            /// Packed into here, then copied into one allocation of the
            /// exact size: packing into a vector and shrinking it to its
            /// length reallocated (and copied) nearly every time, the
            /// read model's publish builds one per view.
            static SCRATCH: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(Vec::with_capacity(256));
        }
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            Self::pack(ind, out);
            Self(Box::from(out.as_slice()))
        })
    }

    /// Bytes held on the heap.
    pub fn heap_size(&self) -> usize {
        self.0.len()
    }

    /// The indicators kept, as they were.
    pub fn get(&self) -> Indicators {
        // Checked when made or decoded: always one packed value.
        Self::unpack(&self.0).unwrap_or_default()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

kept_indicators! {
    order_amount_12m,
    order_count_12m,
    avg_order_value_12m,
    orders_per_month_12m,
    margin_12m,
    margin_rate_12m,
    on_time_payment_ratio,
    avg_days_late,
    max_days_late,
    overdue_amount,
    oldest_overdue_days,
    purchase_potential,
    open_complaints,
    complaints_12m,
    complaints_weighted_12m,
    days_since_last_order,
    tenure_days,
    share_of_wallet,
    growth_3m,
    growth_streak_months,
    complaints_by_severity_12m,
    resolved_by_severity_12m,
    rfm_recency,
    rfm_frequency,
    rfm_monetary,
    rfm_score,
}

impl Serialize for KeptIndicators {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeptIndicators {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Packed;

        impl serde::de::Visitor<'_> for Packed {
            type Value = KeptIndicators;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the packed figures of a tier change")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                match KeptIndicators::unpack(bytes) {
                    Some(_) => Ok(KeptIndicators(bytes.into())),
                    None => Err(E::custom(
                        "damaged figures of a tier change (the reasons' baseline)",
                    )),
                }
            }
        }

        deserializer.deserialize_bytes(Packed)
    }
}

#[cfg(test)]
mod kept_tests {
    use super::*;

    #[test]
    fn kept_indicators_give_back_every_figure() {
        let mut ind = Indicators {
            order_amount_12m: 1.5,
            margin_12m: Some(-2.0),
            days_since_last_order: Some(3.0),
            complaints_by_severity_12m: [1, 2, 3, 4, 5],
            tenure_days: 7.0,
            ..Indicators::default()
        };
        assert_eq!(KeptIndicators::new(&ind).get(), ind);
        let without = KeptIndicators::new(&ind).len();
        ind.assessed[3] = Some(4.0);
        assert_eq!(KeptIndicators::new(&ind).get(), ind);
        // The slots take room only when one is set.
        assert!(KeptIndicators::new(&ind).len() > without + 15);
        ind.rfm_recency = Some(5.0);
        ind.rfm_monetary = Some(1.0);
        ind.rfm_score = Some(11.0);
        assert_eq!(KeptIndicators::new(&ind).get(), ind);
        assert_eq!(std::mem::size_of::<KeptIndicators>(), 16);
        assert_eq!(std::mem::size_of::<Option<KeptIndicators>>(), 16);
    }

    #[test]
    fn kept_indicators_are_stored_exactly_in_few_bytes() {
        let quiet = Indicators {
            order_amount_12m: 125_000.0,
            order_count_12m: 4.0,
            avg_order_value_12m: 31_250.0,
            orders_per_month_12m: 4.0 / 12.0,
            margin_12m: Some(30_000.0),
            margin_rate_12m: Some(0.24),
            on_time_payment_ratio: Some(1.0),
            avg_days_late: Some(0.0),
            max_days_late: Some(0.0),
            days_since_last_order: Some(12.0),
            tenure_days: 900.0,
            ..Indicators::default()
        };
        let mut busy = quiet;
        busy.assessed[0] = Some(0.75);
        busy.growth_3m = Some(-0.125);
        busy.rfm_score = Some(12.0);
        busy.complaints_by_severity_12m = [0, 3, 0, 1, 0];
        for (ind, most) in [(Indicators::default(), 40), (quiet, 64), (busy, 96)] {
            let kept = KeptIndicators::new(&ind);
            let bytes = postcard::to_allocvec(&Some(kept.clone())).unwrap();
            let back: Option<KeptIndicators> = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back.as_ref(), Some(&kept));
            assert_eq!(back.unwrap().get(), ind);
            // Postcard's fixed-width floats: over 150 bytes each.
            assert!(bytes.len() <= most, "{} bytes for {ind:?}", bytes.len());
        }
        // Damaged: cut short, or with a byte too many.
        let bytes = postcard::to_allocvec(&KeptIndicators::new(&quiet)).unwrap();
        let mut short = bytes.clone();
        short.truncate(bytes.len() - 1);
        short[0] -= 1;
        assert!(postcard::from_bytes::<KeptIndicators>(&short).is_err());
        let mut long = bytes.clone();
        long.push(0);
        long[0] += 1;
        assert!(postcard::from_bytes::<KeptIndicators>(&long).is_err());
        // The assessment flag, last when no slot is set, is 0 or 1.
        let mut flag = postcard::to_allocvec(&KeptIndicators::new(&Indicators::default())).unwrap();
        if let Some(last) = flag.last_mut() {
            assert_eq!(*last, 0);
            *last = 2;
        }
        assert!(postcard::from_bytes::<KeptIndicators>(&flag).is_err());
    }
}

//! Lists and reports for managers: `ListCustomers`, `GetTierDistribution`
//! and `GetAccountManagerBalance`, answered from the [`ReadModel`] alone.
//!
//! # `ListCustomers`: keyset pagination
//! Customers are walked in customer-id order (byte order) over the read
//! model's id index. A page token holds the last id the server examined
//! and a fingerprint of the filter (`tier`, `account_manager`,
//! `lifecycle`); the next page starts strictly after that id. So, however
//! tiers change between pages:
//! - a customer that exists for the whole walk is examined exactly once,
//!   never skipped, never repeated; with no filter it is listed exactly
//!   once;
//! - with a filter, a customer is listed when it matches at the moment
//!   the walk passes its id: one that moves into or out of the filtered
//!   tier (or changes manager or lifecycle) during the walk is listed
//!   according to where it stood when its page was read, and never twice;
//! - a customer first seen during the walk is listed when its id sorts
//!   after the page being read, and not otherwise.
//!
//! A token sent with another filter, or not issued by this server, is
//! `INVALID_ARGUMENT` naming `page_token`. Tokens do not expire (they hold
//! no server state) and survive restarts. `page_size` 0 means
//! [`DEFAULT_PAGE_SIZE`]; more than [`MAX_PAGE_SIZE`] is
//! `INVALID_ARGUMENT` (the API's other limits refuse too, rather than
//! silently clamp). One request examines at most [`MAX_EXAMINED`]
//! customers, so a selective filter gives short (even empty) pages with a
//! token rather than one long scan: only an empty `next_page_token` ends a
//! walk.
//!
//! # `GetTierDistribution`: the Pareto check
//! Per tier of the policy in force, in policy order (empty tiers too):
//! customers, 12-month revenue and margin, and each one's share of the
//! total. Customers holding a tier the policy no longer defines (until the
//! rescore after a policy change reaches them) are listed by name in
//! `other_tiers` and counted in the totals; customers without a decision
//! are reported apart (`undecided`). Shares are integer basis points
//! (10,000 = 100%) rounded by the largest-remainder method, so each share
//! column of `tiers` + `other_tiers` sums to exactly 10,000 (ties go to
//! the earlier row); when a total is not positive (e.g. a loss-making
//! book's margin) its shares are all 0. Margin shares are over the
//! customers whose margin is known. The exact integer sums come with the
//! shares, for any other rounding.
//!
//! # `GetAccountManagerBalance`
//! Per account manager of the customers' profiles (by name; customers
//! without one in an "unassigned" bucket, last): customers and 12-month
//! revenue per tier (every policy tier, zeros too), and the top-tier
//! customers. The spread of the top tier over the managers that have any
//! customer (the unassigned bucket excluded, its top-tier count reported
//! apart): min, max, mean, population standard deviation, the coefficient
//! of variation (stddev / mean; 0 is perfectly even) and max / min (unset
//! when some manager has none).
//!
//! Figures are those of each customer's last committed decision (see
//! [`crate::read_model::Book`]); totals come from the model's running
//! [`crate::read_model::Totals`], merged shard by shard (a near-instant,
//! not an atomic, snapshot).

use std::collections::BTreeMap;
use tier_core::projection::CustomerId;

use tier_core::policy::Policy;
use tier_proto::api::{
    AccountManagerBalance, CustomerRow, Lifecycle, ListCustomersRequest, ListCustomersResponse,
    ManagerBalance, ManagerTierCount, TierDistribution, TierShare, TopTierSpread,
};
use tier_wire::tier_changed::lifecycle_to_proto;

use crate::error::ApiError;
use crate::read_model::{Cell, Entry, ReadModel};
use crate::service::TierServiceImpl;

/// Customers per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most customers per page; a larger `page_size` is refused.
pub const MAX_PAGE_SIZE: u32 = 1_000;
/// Most customers one `ListCustomers` request examines.
pub const MAX_EXAMINED: usize = 50_000;
/// Ids copied from the index per lock.
const CHUNK: usize = 512;
/// 100% in basis points.
pub const WHOLE_BP: i64 = 10_000;

/// A `ListCustomers` filter, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    /// Empty: any.
    tier: String,
    /// `None`: any; `Some("")`: customers without a manager.
    account_manager: Option<String>,
    /// `None`: any.
    lifecycle: Option<Lifecycle>,
}

impl Filter {
    fn parse(req: &ListCustomersRequest, policy: &Policy) -> Result<Self, ApiError> {
        if !req.tier.is_empty() && policy.tier_index(&req.tier).is_none() {
            let names: Vec<&str> = policy.tiers().iter().map(|t| t.name.as_str()).collect();
            return Err(ApiError::invalid(
                "tier",
                format!(
                    "{:?} is not a tier of policy {} (its tiers: {})",
                    req.tier,
                    policy.version(),
                    names.join(", ")
                ),
            ));
        }
        let lifecycle = match Lifecycle::try_from(req.lifecycle) {
            Ok(Lifecycle::Unspecified) => None,
            Ok(l) => Some(l),
            Err(_) => {
                return Err(ApiError::invalid(
                    "lifecycle",
                    format!(
                        "{} is not a lifecycle stage (PROSPECT, NEW, ACTIVE, LAPSED, REACTIVATED; UNSPECIFIED for any)",
                        req.lifecycle
                    ),
                ));
            }
        };
        Ok(Self {
            tier: req.tier.clone(),
            account_manager: req.account_manager.as_deref().map(|m| m.trim().to_owned()),
            lifecycle,
        })
    }

    fn matches(&self, entry: &Entry) -> bool {
        (self.tier.is_empty() || *entry.view.tier == *self.tier)
            && self
                .account_manager
                .as_deref()
                .is_none_or(|m| *entry.book().account_manager == *m)
            && self.lifecycle.is_none_or(|l| lifecycle_of(entry) == l)
    }

    /// A stable digest of the filter, carried in page tokens.
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.write(b"tier\0");
        h.write(self.tier.as_bytes());
        match &self.account_manager {
            None => h.write(b"\0manager:any\0"),
            Some(m) => {
                h.write(b"\0manager=\0");
                h.write(m.as_bytes());
            }
        }
        h.write(b"\0lifecycle\0");
        h.write(&self.lifecycle.map_or(-1, |l| l as i32).to_le_bytes());
        h.finish()
    }
}

fn lifecycle_of(entry: &Entry) -> Lifecycle {
    entry
        .view
        .lifecycle
        .map_or(Lifecycle::Unspecified, lifecycle_to_proto)
}

/// FNV-1a, 64 bits: stable across builds and platforms.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// `ListCustomers`' page tokens:
/// `c1.<filter fingerprint>.<hex of the last id>.<checksum>`.
const TOKENS: crate::page::Tokens = crate::page::Tokens {
    rpc: "ListCustomers",
    tag: "c1",
    filter: "tier, account_manager and lifecycle",
};

fn encode_token(last_id: &str, fingerprint: u64) -> String {
    TOKENS.encode(fingerprint, &[last_id.to_owned()])
}

/// The last id a token carries, if it was issued for `fingerprint`.
fn decode_token(token: &str, fingerprint: u64) -> Result<String, ApiError> {
    match <[String; 1]>::try_from(TOKENS.decode(token, fingerprint, 1)?) {
        Ok([id]) if !id.is_empty() => Ok(id),
        _ => Err(TOKENS.foreign()),
    }
}

fn page_size(requested: u32) -> Result<usize, ApiError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n > MAX_PAGE_SIZE => Err(ApiError::invalid(
            "page_size",
            format!("at most {MAX_PAGE_SIZE} customers per page, got {n}"),
        )),
        n => Ok(n as usize),
    }
}

fn row(customer_id: &str, entry: &Entry, policy: &Policy) -> CustomerRow {
    let view = &entry.view;
    CustomerRow {
        customer_id: customer_id.to_owned(),
        tier: view.tier.to_string(),
        computed_tier: view.computed_tier().to_owned(),
        score: view.score,
        lifecycle: lifecycle_of(entry) as i32,
        account_manager: view.book.account_manager.to_string(),
        revenue_12m: view.book.revenue_12m,
        margin_12m: view.book.margin_12m,
        overridden: view.overridden,
        priority: TierServiceImpl::spec_for(policy, view).priority,
    }
}

/// `ListCustomers`: one page of the walk (see the module docs).
pub fn list_customers(
    read: &ReadModel,
    policy: &Policy,
    req: &ListCustomersRequest,
) -> Result<ListCustomersResponse, ApiError> {
    let filter = Filter::parse(req, policy)?;
    let fingerprint = filter.fingerprint();
    let limit = page_size(req.page_size)?;
    let mut cursor: Option<CustomerId> = if req.page_token.is_empty() {
        None
    } else {
        Some(CustomerId::from(decode_token(
            &req.page_token,
            fingerprint,
        )?))
    };
    let mut customers = Vec::with_capacity(limit.min(CHUNK));
    let mut examined = 0usize;
    let mut at_end = false;
    'walk: loop {
        let chunk = read.ids_after(cursor.as_deref(), CHUNK.min(MAX_EXAMINED - examined));
        if chunk.is_empty() {
            at_end = true;
            break;
        }
        for id in chunk {
            examined += 1;
            if let Some(entry) = read.entry(&id)
                && filter.matches(&entry)
            {
                customers.push(row(&id, &entry, policy));
            }
            cursor = Some(id);
            if customers.len() == limit || examined == MAX_EXAMINED {
                break 'walk;
            }
        }
    }
    let next_page_token = match cursor {
        Some(last) if !at_end && read.has_ids_after(&last) => encode_token(&last, fingerprint),
        _ => String::new(),
    };
    Ok(ListCustomersResponse {
        customers,
        next_page_token,
        currency: policy.currency_rules().base().to_owned(),
    })
}

/// Basis points of each value in their sum, rounded by the largest
/// remainder so they sum to exactly [`WHOLE_BP`] (ties: the earlier
/// value); all 0 when the sum is not positive. Saturated at the bounds of
/// `i64` (only reachable with negative values).
pub fn shares_bp(values: &[i128]) -> Vec<i64> {
    let total: i128 = values.iter().sum();
    if total <= 0 {
        return vec![0; values.len()];
    }
    let whole = i128::from(WHOLE_BP);
    let mut shares: Vec<i128> = Vec::with_capacity(values.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let scaled = v.saturating_mul(whole);
        shares.push(scaled.div_euclid(total));
        remainders.push((scaled.rem_euclid(total), i));
    }
    // Each remainder is below `total` and they add up to a multiple of
    // it, so fewer than `values.len()` units are missing.
    let missing = whole - shares.iter().sum::<i128>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders
        .iter()
        .take(usize::try_from(missing).unwrap_or(0))
    {
        shares[i] += 1;
    }
    shares
        .into_iter()
        .map(|s| i64::try_from(s).unwrap_or(if s < 0 { i64::MIN } else { i64::MAX }))
        .collect()
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn tier_share(tier: &str, cell: &Cell) -> TierShare {
    TierShare {
        tier: tier.to_owned(),
        customers: cell.customers,
        revenue_12m: saturate(cell.revenue_12m),
        margin_12m: saturate(cell.margin_12m),
        margin_known_customers: cell.margin_known,
        customer_share_bp: 0,
        revenue_share_bp: 0,
        margin_share_bp: 0,
    }
}

/// `GetTierDistribution` (see the module docs).
pub fn tier_distribution(read: &ReadModel, policy: &Policy) -> TierDistribution {
    let mut by_tier = read.totals().by_tier();
    let undecided = by_tier.remove("").unwrap_or_default();
    let mut cells: Vec<(String, Cell)> = policy
        .tiers()
        .iter()
        .map(|t| (t.name.clone(), by_tier.remove(&t.name).unwrap_or_default()))
        .collect();
    let in_policy = cells.len();
    cells.extend(by_tier);
    let mut total = Cell::default();
    for (_, c) in &cells {
        total.merge(c);
    }
    let column =
        |f: fn(&Cell) -> i128| shares_bp(&cells.iter().map(|(_, c)| f(c)).collect::<Vec<_>>());
    let customer_bp = column(|c| i128::from(c.customers));
    let revenue_bp = column(|c| c.revenue_12m);
    let margin_bp = column(|c| c.margin_12m);
    let mut rows: Vec<TierShare> = cells
        .iter()
        .enumerate()
        .map(|(i, (tier, cell))| TierShare {
            customer_share_bp: customer_bp[i],
            revenue_share_bp: revenue_bp[i],
            margin_share_bp: margin_bp[i],
            ..tier_share(tier, cell)
        })
        .collect();
    let other_tiers = rows.split_off(in_policy);
    TierDistribution {
        policy_version: policy.version().to_owned(),
        currency: policy.currency_rules().base().to_owned(),
        tiers: rows,
        other_tiers,
        total_customers: total.customers,
        total_revenue_12m: saturate(total.revenue_12m),
        total_margin_12m: saturate(total.margin_12m),
        total_margin_known_customers: total.margin_known,
        undecided: Some(tier_share("", &undecided)),
    }
}

/// The spread of per-manager top-tier counts (see the module docs).
pub fn spread(tier: &str, counts: &[u64], unassigned: u64) -> TopTierSpread {
    let managers = counts.len();
    let customers: u64 = counts.iter().sum();
    let min = counts.iter().copied().min().unwrap_or(0);
    let max = counts.iter().copied().max().unwrap_or(0);
    let (mean, stddev) = if managers == 0 {
        (0.0, 0.0)
    } else {
        let n = managers as f64;
        let mean = customers as f64 / n;
        let var = counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    };
    TopTierSpread {
        tier: tier.to_owned(),
        managers: u32::try_from(managers).unwrap_or(u32::MAX),
        customers,
        min,
        max,
        mean,
        stddev,
        coefficient_of_variation: if mean > 0.0 { stddev / mean } else { 0.0 },
        max_min_ratio: (managers > 0 && min > 0).then(|| max as f64 / min as f64),
        unassigned,
    }
}

/// `GetAccountManagerBalance` (see the module docs).
pub fn manager_balance(read: &ReadModel, policy: &Policy) -> AccountManagerBalance {
    let totals = read.totals();
    let mut by_manager: BTreeMap<&str, BTreeMap<&str, Cell>> = BTreeMap::new();
    for (tier, manager, cell) in totals.cells() {
        by_manager
            .entry(manager)
            .or_default()
            .entry(tier)
            .or_default()
            .merge(cell);
    }
    let top = policy.tiers().first().map_or("", |t| t.name.as_str());
    let balance = |manager: &str, mut tiers: BTreeMap<&str, Cell>| {
        let mut rows: Vec<ManagerTierCount> = Vec::with_capacity(tiers.len());
        let mut total = Cell::default();
        let mut top_count = 0;
        for spec in policy.tiers() {
            let cell = tiers.remove(spec.name.as_str()).unwrap_or_default();
            if spec.name == top {
                top_count = cell.customers;
            }
            total.merge(&cell);
            rows.push(ManagerTierCount {
                tier: spec.name.clone(),
                customers: cell.customers,
                revenue_12m: saturate(cell.revenue_12m),
            });
        }
        for (tier, cell) in tiers {
            total.merge(&cell);
            rows.push(ManagerTierCount {
                tier: tier.to_owned(),
                customers: cell.customers,
                revenue_12m: saturate(cell.revenue_12m),
            });
        }
        ManagerBalance {
            account_manager: manager.to_owned(),
            unassigned: manager.is_empty(),
            tiers: rows,
            customers: total.customers,
            revenue_12m: saturate(total.revenue_12m),
            top_tier_customers: top_count,
        }
    };
    let unassigned = by_manager.remove("");
    let mut managers: Vec<ManagerBalance> = by_manager
        .into_iter()
        .map(|(m, tiers)| balance(m, tiers))
        .collect();
    let counts: Vec<u64> = managers.iter().map(|m| m.top_tier_customers).collect();
    let unassigned = unassigned.map(|tiers| balance("", tiers));
    let unassigned_top = unassigned.as_ref().map_or(0, |u| u.top_tier_customers);
    managers.extend(unassigned);
    AccountManagerBalance {
        policy_version: policy.version().to_owned(),
        currency: policy.currency_rules().base().to_owned(),
        managers,
        top_tier_spread: Some(spread(top, &counts, unassigned_top)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_sums_to_exactly_whole() {
        // 1/3 each: 3333.33.. -> one gets the extra unit, the first.
        assert_eq!(shares_bp(&[1, 1, 1]), [3334, 3333, 3333]);
        assert_eq!(shares_bp(&[0, 0]), [0, 0]);
        assert_eq!(shares_bp(&[]), Vec::<i64>::new());
        assert_eq!(shares_bp(&[5, 0, 0]), [10_000, 0, 0]);
        // 2/3 and 1/3: 6666.67 and 3333.33: the larger remainder rounds up.
        assert_eq!(shares_bp(&[2, 1]), [6667, 3333]);
        // A negative part: shares beyond 100% and below 0 still sum to 100%.
        let s = shares_bp(&[30, -10]);
        assert_eq!(s, [15_000, -5_000]);
        // A non-positive total: no shares.
        assert_eq!(shares_bp(&[-3, 1]), [0, 0]);
        for values in [
            vec![7_i128, 11, 13, 17, 19, 23],
            vec![1, 999_999_999_999],
            vec![123_456_789, 987_654_321, 5, 0, 42],
        ] {
            assert_eq!(
                shares_bp(&values).iter().sum::<i64>(),
                WHOLE_BP,
                "{values:?}"
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let fp = 0x0123_4567_89ab_cdef;
        for id in ["c-1", "客户-7", "a.b.c", "x"] {
            let t = encode_token(id, fp);
            assert_eq!(decode_token(&t, fp).unwrap(), id);
            let e = decode_token(&t, fp ^ 1).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("invalid page_token: was issued for another filter"),
                "{e}"
            );
        }
        let t = encode_token("c-1", fp);
        let mut tampered = t.clone();
        tampered.replace_range(20..22, "ff");
        for bad in [
            "",
            "garbage",
            "c1.x.y.z",
            &tampered,
            &t[..t.len() - 1],
            &format!("{t}0"),
        ] {
            let e = decode_token(bad, fp).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid page_token: not a token"),
                "{bad:?}: {e}"
            );
        }
    }

    /// The reports over 200,000 customers: every customer counted, the
    /// filtered walk capped; `--release --nocapture` prints what a request
    /// costs besides gRPC (a figure, not an assertion: a timed test is a
    /// flaky test).
    #[test]
    fn reports_over_200k_customers() {
        use crate::read_model::Book;
        use crate::read_model::CustomerView;
        use tier_core::{Indicators, Timestamp};

        let policy = Policy::default_policy();
        let read = ReadModel::new();
        let ids: Vec<String> = (0..200_000).map(|i| format!("cust-{i:07}")).collect();
        let managers: Vec<crate::Name> = (0..80)
            .map(|i| crate::name::intern(&format!("rep-{i}")))
            .collect();
        let t = std::time::Instant::now();
        read.upsert_entries(ids.iter().enumerate().map(|(i, id)| {
            let view = CustomerView {
                tier: policy.tiers()[i % 4].name.clone(),
                score: 1.0,
                since: Timestamp::from_millis(0),
                sequence: 1,
                indicators: Indicators::default(),
                scored_at: Timestamp::from_millis(0),
                policy_version: "v".into(),
                overridden: false,
                relation: Default::default(),
            };
            let book = Book {
                account_manager: managers[i % 80].clone(),
                revenue_12m: i as i64,
                margin_12m: None,
            };
            (id.as_str(), Entry::new(view, book))
        }));
        let fill = t.elapsed();
        let t = std::time::Instant::now();
        let d = tier_distribution(&read, &policy);
        let dist = t.elapsed();
        assert_eq!(d.total_customers, 200_000);
        let t = std::time::Instant::now();
        let b = manager_balance(&read, &policy);
        let bal = t.elapsed();
        assert_eq!(b.managers.len(), 80);
        // A selective filter: rep-5's tier-B customers are 1 in 80.
        let t = std::time::Instant::now();
        let page = list_customers(
            &read,
            &policy,
            &ListCustomersRequest {
                tier: "B".into(),
                account_manager: Some("rep-5".into()),
                page_size: MAX_PAGE_SIZE,
                ..Default::default()
            },
        )
        .unwrap();
        let list = t.elapsed();
        // 50,000 examined (the cap), 1 in 80 matches (i % 80 == 5): a
        // short page, and a token to go on.
        assert_eq!(page.customers.len(), 625);
        assert!(!page.next_page_token.is_empty());
        println!(
            "200k customers: fill {fill:?}, distribution {dist:?}, balance {bal:?}, filtered page {list:?}"
        );
    }

    #[test]
    fn spread_measures() {
        // Counts 4, 2, 0: mean 2, variance (4 + 0 + 4) / 3.
        let s = spread("A", &[4, 2, 0], 3);
        assert_eq!((s.managers, s.customers, s.min, s.max), (3, 6, 0, 4));
        assert_eq!(s.mean, 2.0);
        assert!((s.stddev - (8.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.coefficient_of_variation - (8.0_f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(s.max_min_ratio, None);
        assert_eq!(s.unassigned, 3);
        let even = spread("A", &[3, 3], 0);
        assert_eq!((even.stddev, even.coefficient_of_variation), (0.0, 0.0));
        assert_eq!(even.max_min_ratio, Some(1.0));
        let none = spread("A", &[], 0);
        assert_eq!(
            (none.managers, none.mean, none.coefficient_of_variation),
            (0, 0.0, 0.0)
        );
        assert_eq!(none.max_min_ratio, None);
    }
}

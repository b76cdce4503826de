//! `distribution`: customers, 12-month revenue and margin per tier with
//! their shares (`GetTierDistribution`): the Pareto check.
//!
//! Shares come from the server in basis points, rounded so each column
//! sums to exactly 100.00%; they are shown as they come.

use anyhow::Result;
use tier_proto::api::{GetTierDistributionRequest, TierDistribution, TierShare};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::OutputFormat;
use crate::format::{Table, bp_number, bp_percent, count, csv_line, money_major, plain_money};

pub async fn run(rpc: &RpcOptions, format: OutputFormat) -> Result<()> {
    let mut client = rpc.connect().await?;
    let d = client
        .get_tier_distribution(rpc.request(GetTierDistributionRequest {}))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match format {
        OutputFormat::Json => emit(&proto_json_line(&d, "tiering.v1.TierDistribution")?),
        OutputFormat::Csv => emit(&csv(&d)),
        OutputFormat::Table => emit(&render(&d)),
    }
}

/// The share columns of the totals row: 100% when the column has a
/// positive total, else 0 (as the server's shares).
fn whole(positive: bool) -> i64 {
    if positive { 10_000 } else { 0 }
}

/// One row per policy tier (best first), then tiers of an earlier policy
/// (marked), a total row; then customers without a tier, if any.
pub fn render(d: &TierDistribution) -> String {
    let unit = if d.currency.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.currency)
    };
    let mut table = Table::new([
        "tier".to_owned(),
        "customers".to_owned(),
        "share".to_owned(),
        format!("revenue 12m{unit}"),
        "share".to_owned(),
        format!("margin 12m{unit}"),
        "share".to_owned(),
    ])
    .right(&[1, 2, 3, 4, 5, 6]);
    let cells = |name: String, s: &TierShare| {
        [
            name,
            count(s.customers),
            bp_percent(s.customer_share_bp),
            money_major(s.revenue_12m, &d.currency),
            bp_percent(s.revenue_share_bp),
            money_major(s.margin_12m, &d.currency),
            bp_percent(s.margin_share_bp),
        ]
    };
    for s in &d.tiers {
        table.row(cells(s.tier.clone(), s));
    }
    for s in &d.other_tiers {
        table.row(cells(format!("{} (not in policy)", s.tier), s));
    }
    let total = total_share(d);
    table.row(cells("total".to_owned(), &total));
    let mut out = table.render();
    out.push_str(&format!(
        "policy {}; margin over the {} of {} customers with a known cost\n",
        d.policy_version,
        count(d.total_margin_known_customers),
        count(d.total_customers)
    ));
    if let Some(u) = d.undecided.as_ref().filter(|u| u.customers > 0) {
        out.push_str(&format!(
            "without a tier yet (not counted above): {} customers, revenue 12m {}\n",
            count(u.customers),
            money_major(u.revenue_12m, &d.currency)
        ));
    }
    out
}

fn total_share(d: &TierDistribution) -> TierShare {
    TierShare {
        tier: String::new(),
        customers: d.total_customers,
        revenue_12m: d.total_revenue_12m,
        margin_12m: d.total_margin_12m,
        margin_known_customers: d.total_margin_known_customers,
        customer_share_bp: whole(d.total_customers > 0),
        revenue_share_bp: whole(d.total_revenue_12m > 0),
        margin_share_bp: whole(d.total_margin_12m > 0),
    }
}

/// One line per row; `kind` says what a row is: `tier` (of the policy),
/// `other` (a tier of an earlier policy), `total`, `undecided`. Shares in
/// percent with two decimals, money in major units.
pub fn csv(d: &TierDistribution) -> String {
    let mut out = csv_line([
        "kind",
        "tier",
        "customers",
        "customer_share_pct",
        "revenue_12m",
        "revenue_share_pct",
        "margin_12m",
        "margin_share_pct",
        "margin_known_customers",
        "currency",
    ]);
    let line = |kind: &str, s: &TierShare| {
        csv_line([
            kind.to_owned(),
            s.tier.clone(),
            s.customers.to_string(),
            bp_number(s.customer_share_bp),
            plain_money(s.revenue_12m, &d.currency),
            bp_number(s.revenue_share_bp),
            plain_money(s.margin_12m, &d.currency),
            bp_number(s.margin_share_bp),
            s.margin_known_customers.to_string(),
            d.currency.clone(),
        ])
    };
    for s in &d.tiers {
        out.push_str(&line("tier", s));
    }
    for s in &d.other_tiers {
        out.push_str(&line("other", s));
    }
    out.push_str(&line("total", &total_share(d)));
    if let Some(u) = &d.undecided {
        out.push_str(&line("undecided", u));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(tier: &str, customers: u64, revenue: i64, c_bp: i64, r_bp: i64) -> TierShare {
        TierShare {
            tier: tier.into(),
            customers,
            revenue_12m: revenue,
            margin_12m: revenue / 4,
            margin_known_customers: customers,
            customer_share_bp: c_bp,
            revenue_share_bp: r_bp,
            margin_share_bp: r_bp,
        }
    }

    #[test]
    fn table_and_csv() {
        let d = TierDistribution {
            policy_version: "v7".into(),
            currency: "CNY".into(),
            tiers: vec![
                share("A", 2, 900_000, 3334, 9000),
                share("B", 4, 100_000, 6666, 1000),
                share("C", 0, 0, 0, 0),
            ],
            other_tiers: vec![],
            total_customers: 6,
            total_revenue_12m: 1_000_000,
            total_margin_12m: 250_000,
            total_margin_known_customers: 6,
            undecided: Some(share("", 1, 7, 0, 0)),
        };
        assert_eq!(
            render(&d),
            "tier   customers    share  revenue 12m (CNY)    share  margin 12m (CNY)    share\n\
             -----  ---------  -------  -----------------  -------  ----------------  -------\n\
             A              2   33.34%           9,000.00   90.00%          2,250.00   90.00%\n\
             B              4   66.66%           1,000.00   10.00%            250.00   10.00%\n\
             C              0    0.00%               0.00    0.00%              0.00    0.00%\n\
             total          6  100.00%          10,000.00  100.00%          2,500.00  100.00%\n\
             policy v7; margin over the 6 of 6 customers with a known cost\n\
             without a tier yet (not counted above): 1 customers, revenue 12m 0.07\n"
        );
        let text = csv(&d);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "kind,tier,customers,customer_share_pct,revenue_12m,revenue_share_pct,margin_12m,margin_share_pct,margin_known_customers,currency"
        );
        assert_eq!(lines[1], "tier,A,2,33.34,9000.00,90.00,2250.00,90.00,2,CNY");
        assert_eq!(
            lines[4],
            "total,,6,100.00,10000.00,100.00,2500.00,100.00,6,CNY"
        );
        assert_eq!(lines[5], "undecided,,1,0.00,0.07,0.00,0.01,0.00,1,CNY");
    }
}

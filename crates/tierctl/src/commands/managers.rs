//! `managers`: customers and 12-month revenue per account manager and
//! tier, and how evenly the top tier is spread over the managers
//! (`GetAccountManagerBalance`).

use anyhow::Result;
use tier_proto::api::{AccountManagerBalance, GetAccountManagerBalanceRequest, TopTierSpread};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::OutputFormat;
use crate::format::{Table, count, csv_line, fixed, money_major, plain_money};

/// The manager column of the customers without one.
const UNASSIGNED: &str = "(unassigned)";

pub async fn run(rpc: &RpcOptions, format: OutputFormat) -> Result<()> {
    let mut client = rpc.connect().await?;
    let b = client
        .get_account_manager_balance(rpc.request(GetAccountManagerBalanceRequest {}))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match format {
        OutputFormat::Json => emit(&proto_json_line(&b, "tiering.v1.AccountManagerBalance")?),
        OutputFormat::Csv => emit(&csv(&b)),
        OutputFormat::Table => emit(&render(&b)),
    }
}

/// Every tier named in any manager's row, in the order first seen (the
/// policy's tiers come first, best first, in every row).
fn tier_columns(b: &AccountManagerBalance) -> Vec<String> {
    let mut tiers: Vec<String> = Vec::new();
    for m in &b.managers {
        for t in &m.tiers {
            if !tiers.contains(&t.tier) {
                tiers.push(t.tier.clone());
            }
        }
    }
    tiers
}

/// A manager's customers in `tier` (0 when the row lacks it).
fn in_tier(m: &tier_proto::api::ManagerBalance, tier: &str) -> u64 {
    m.tiers
        .iter()
        .find(|t| t.tier == tier)
        .map_or(0, |t| t.customers)
}

fn manager_name(m: &tier_proto::api::ManagerBalance) -> String {
    if m.unassigned {
        UNASSIGNED.to_owned()
    } else {
        m.account_manager.clone()
    }
}

/// One row per manager (customers per tier, total customers and
/// revenue), the unassigned bucket last, then the top tier's spread.
pub fn render(b: &AccountManagerBalance) -> String {
    if b.managers.is_empty() {
        return "no customers\n".to_owned();
    }
    let tiers = tier_columns(b);
    let unit = if b.currency.is_empty() {
        String::new()
    } else {
        format!(" ({})", b.currency)
    };
    let mut headers = vec!["manager".to_owned()];
    headers.extend(tiers.iter().cloned());
    headers.push("customers".to_owned());
    headers.push(format!("revenue 12m{unit}"));
    let right: Vec<usize> = (1..headers.len()).collect();
    let mut table = Table::new(headers).right(&right);
    for m in &b.managers {
        let mut cells = vec![manager_name(m)];
        cells.extend(tiers.iter().map(|t| count(in_tier(m, t))));
        cells.push(count(m.customers));
        cells.push(money_major(m.revenue_12m, &b.currency));
        table.row(cells);
    }
    let mut out = table.render();
    if let Some(s) = &b.top_tier_spread {
        out.push_str(&spread_text(s));
    }
    out
}

/// The spread in one or two lines.
pub fn spread_text(s: &TopTierSpread) -> String {
    let ratio = s
        .max_min_ratio
        .map_or_else(|| "n/a (a manager has none)".to_owned(), |r| fixed(r, 2));
    let mut out = format!(
        "top tier {} over {} managers: {} customers, min {}, max {}, mean {}, stddev {}, CV {}, max/min {}\n",
        s.tier,
        s.managers,
        count(s.customers),
        count(s.min),
        count(s.max),
        fixed(s.mean, 2),
        fixed(s.stddev, 2),
        fixed(s.coefficient_of_variation, 2),
        ratio
    );
    if s.unassigned > 0 {
        out.push_str(&format!(
            "{} top-tier customers have no account manager\n",
            count(s.unassigned)
        ));
    }
    out
}

/// One line per manager: customers per tier in columns named after the
/// tiers; the unassigned bucket with an empty manager and `unassigned`
/// true. The spread is in the table and JSON outputs.
pub fn csv(b: &AccountManagerBalance) -> String {
    let tiers = tier_columns(b);
    let mut header: Vec<String> = ["account_manager", "unassigned"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    header.extend(tiers.iter().cloned());
    header.extend(
        ["customers", "revenue_12m", "top_tier_customers", "currency"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let mut out = csv_line(header);
    for m in &b.managers {
        let mut cells = vec![m.account_manager.clone(), m.unassigned.to_string()];
        cells.extend(tiers.iter().map(|t| in_tier(m, t).to_string()));
        cells.push(m.customers.to_string());
        cells.push(plain_money(m.revenue_12m, &b.currency));
        cells.push(m.top_tier_customers.to_string());
        cells.push(b.currency.clone());
        out.push_str(&csv_line(cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tier_proto::api::{ManagerBalance, ManagerTierCount};

    fn manager(name: &str, counts: &[(&str, u64)], revenue: i64) -> ManagerBalance {
        ManagerBalance {
            account_manager: name.into(),
            unassigned: name.is_empty(),
            tiers: counts
                .iter()
                .map(|(t, n)| ManagerTierCount {
                    tier: (*t).into(),
                    customers: *n,
                    revenue_12m: 0,
                })
                .collect(),
            customers: counts.iter().map(|(_, n)| n).sum(),
            revenue_12m: revenue,
            top_tier_customers: counts[0].1,
        }
    }

    #[test]
    fn table_and_csv() {
        let b = AccountManagerBalance {
            policy_version: "v7".into(),
            currency: "CNY".into(),
            managers: vec![
                manager("li", &[("A", 1), ("B", 2)], 690_000),
                manager("wang", &[("A", 2), ("B", 0)], 410_000),
                manager("", &[("A", 1), ("B", 0), ("old", 1)], 1_000),
            ],
            top_tier_spread: Some(TopTierSpread {
                tier: "A".into(),
                managers: 2,
                customers: 3,
                min: 1,
                max: 2,
                mean: 1.5,
                stddev: 0.5,
                coefficient_of_variation: 1.0 / 3.0,
                max_min_ratio: Some(2.0),
                unassigned: 1,
            }),
        };
        assert_eq!(
            render(&b),
            "manager       A  B  old  customers  revenue 12m (CNY)\n\
             ------------  -  -  ---  ---------  -----------------\n\
             li            1  2    0          3           6,900.00\n\
             wang          2  0    0          2           4,100.00\n\
             (unassigned)  1  0    1          2              10.00\n\
             top tier A over 2 managers: 3 customers, min 1, max 2, mean 1.50, stddev 0.50, CV 0.33, max/min 2.00\n\
             1 top-tier customers have no account manager\n"
        );
        assert_eq!(
            csv(&b),
            "account_manager,unassigned,A,B,old,customers,revenue_12m,top_tier_customers,currency\n\
             li,false,1,2,0,3,6900.00,1,CNY\n\
             wang,false,2,0,0,2,4100.00,2,CNY\n\
             ,true,1,0,1,2,10.00,1,CNY\n"
        );
        let none = AccountManagerBalance::default();
        assert_eq!(render(&none), "no customers\n");
    }
}

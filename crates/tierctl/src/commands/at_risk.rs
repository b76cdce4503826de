//! `at-risk`: customers whose tier will drop if nothing happens.

use anyhow::Result;
use tier_proto::api::{ListAtRiskCustomersRequest, TierAtRisk};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{AtRiskArgs, Output};
use crate::format::{Table, dash, day_start_date};

pub async fn run(rpc: &RpcOptions, args: &AtRiskArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let customers = client
        .list_at_risk_customers(rpc.request(ListAtRiskCustomersRequest {
            tier: args.tier.clone().unwrap_or_default(),
            limit: args.limit.unwrap_or(0),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner()
        .customers;
    match rpc.output {
        Output::Json => {
            let mut text = String::new();
            for c in &customers {
                text.push_str(&proto_json_line(c, "tiering.v1.TierAtRisk")?);
            }
            emit(&text)
        }
        Output::Table => emit(&render(&customers)),
    }
}

/// Customer, current tier, the tier it falls to, the day it falls, and
/// what would keep it; in the server's order (soonest first).
pub fn render(customers: &[TierAtRisk]) -> String {
    if customers.is_empty() {
        return "no customers at risk\n".to_owned();
    }
    let mut table = Table::new(["customer", "tier", "falls to", "on", "to keep it"]);
    for c in customers {
        table.row([
            c.customer_id.clone(),
            dash(&c.current_tier),
            dash(&c.falls_to),
            // The server's business day; an older server sends none.
            if c.on_day.is_empty() {
                day_start_date(c.on.as_ref())
            } else {
                c.on_day.clone()
            },
            dash(&c.summary),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_customer() {
        let c = TierAtRisk {
            customer_id: "c-1".into(),
            current_tier: "A".into(),
            falls_to: "B".into(),
            // 2027-01-31 00:00 Asia/Shanghai.
            on: Some(prost_types::Timestamp {
                seconds: 1_801_353_600 - 8 * 3600,
                nanos: 0,
            }),
            keep: Vec::new(),
            summary: "orders of 120,000.00 CNY by 2027-01-31".into(),
            policy_version: "v7".into(),
            currency: "CNY".into(),
            on_day: String::new(),
        };
        // An override ending at 21:30 in Shanghai (13:30Z): the server's
        // day, not the UTC midnight nearest the instant (2027-02-01).
        let ending = TierAtRisk {
            customer_id: "c-2".into(),
            on: Some(prost_types::Timestamp {
                seconds: 1_801_353_600 + 13 * 3600 + 1800,
                nanos: 0,
            }),
            on_day: "2027-01-31".into(),
            summary: "falls from A to B on 2027-01-31".into(),
            ..c.clone()
        };
        assert!(render(&[ending]).contains("c-2       A     B         2027-01-31"));
        let text = render(&[c]);
        assert_eq!(
            text,
            "customer  tier  falls to  on          to keep it\n\
             --------  ----  --------  ----------  --------------------------------------\n\
             c-1       A     B         2027-01-31  orders of 120,000.00 CNY by 2027-01-31\n"
        );
        assert_eq!(render(&[]), "no customers at risk\n");
    }
}

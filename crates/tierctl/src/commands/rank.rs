//! `rank`: order work items by their customers' tier priority.

use anyhow::Result;
use tier_proto::api::{RankByPriorityRequest, RankedWorkItem, WorkItem};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{Output, RankArgs};
use crate::format::Table;

pub async fn run(rpc: &RpcOptions, args: &RankArgs) -> Result<()> {
    let items = args
        .items
        .iter()
        .map(|i| WorkItem {
            id: i.item_id.clone(),
            customer_id: i.customer_id.clone(),
        })
        .collect();
    let mut client = rpc.connect().await?;
    let ranked = client
        .rank_by_priority(rpc.request(RankByPriorityRequest { items }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner()
        .items;
    match rpc.output {
        Output::Json => {
            let mut text = String::new();
            for item in &ranked {
                text.push_str(&proto_json_line(item, "tiering.v1.RankedWorkItem")?);
            }
            emit(&text)
        }
        Output::Table => emit(&render(&ranked)),
    }
}

/// Position, item, customer, tier, priority; in the server's order. A
/// customer the server holds no event of ranks at the lowest tier, marked
/// so (it may be another instance's, or new).
pub fn render(items: &[RankedWorkItem]) -> String {
    let mut table = Table::new(["#", "item", "customer", "tier", "priority"]).right(&[0, 4]);
    let mut unknown = 0;
    for (n, item) in items.iter().enumerate() {
        // Unset: a server older than the field, which says nothing.
        let tier = if item.known != Some(false) {
            item.tier.clone()
        } else {
            unknown += 1;
            format!("{} (unknown)", item.tier)
        };
        table.row([
            (n + 1).to_string(),
            item.id.clone(),
            item.customer_id.clone(),
            tier,
            item.priority.to_string(),
        ]);
    }
    let mut text = table.render();
    if unknown > 0 {
        text.push_str(&format!(
            "{unknown} customer(s) unknown to this instance rank at the lowest tier (new to tierd, or of a partition another instance owns)\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_items_keep_server_order() {
        let item = |id: &str, c: &str, tier: &str, priority| RankedWorkItem {
            id: id.into(),
            customer_id: c.into(),
            tier: tier.into(),
            priority,
            known: Some(true),
        };
        let text = render(&[item("o2", "c2", "S", 1), item("o1", "c1", "C", 4)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#  item  customer  tier  priority");
        assert_eq!(lines[2], "1  o2    c2        S            1");
        assert_eq!(lines[3], "2  o1    c1        C            4");
        assert_eq!(lines.len(), 4, "{text}");
    }

    #[test]
    fn a_customer_unknown_to_the_server_is_marked() {
        let items = [RankedWorkItem {
            id: "o9".into(),
            customer_id: "c9".into(),
            tier: "C".into(),
            priority: 4,
            known: Some(false),
        }];
        let text = render(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "1  o9    c9        C (unknown)         4");
        assert!(lines[3].starts_with("1 customer(s) unknown"), "{text}");
    }
}

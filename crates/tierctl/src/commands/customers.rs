//! `customers`: customers by id, filtered, walked page by page with
//! `ListCustomers`.
//!
//! By default every page is fetched (a walk never repeats or skips a
//! customer, whatever changes meanwhile); `--one-page` stops after the
//! first and prints the token of the next on stderr, so stdout stays
//! clean for scripts. CSV and JSON lines are written page by page; the
//! table is aligned over all rows, so it is printed at the end.

use anyhow::Result;
use tier_proto::api::{CustomerRow, Lifecycle, ListCustomersRequest, ListCustomersResponse};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{CustomersArgs, LifecycleArg, OutputFormat};
use crate::format::{Table, csv_line, dash, fixed, lifecycle_name, money_major, plain_money};

const CUSTOMER_ROW: &str = "tiering.v1.CustomerRow";

/// The request of the walk's first page (`page_token` from the args).
pub fn request(args: &CustomersArgs) -> ListCustomersRequest {
    let account_manager = if args.unassigned {
        Some(String::new())
    } else {
        args.account_manager.clone()
    };
    ListCustomersRequest {
        tier: args.tier.clone().unwrap_or_default(),
        account_manager,
        lifecycle: args.lifecycle.map_or(Lifecycle::Unspecified, lifecycle) as i32,
        page_size: args.page_size.unwrap_or(0),
        page_token: args.page_token.clone().unwrap_or_default(),
    }
}

fn lifecycle(l: LifecycleArg) -> Lifecycle {
    match l {
        LifecycleArg::Prospect => Lifecycle::Prospect,
        LifecycleArg::New => Lifecycle::New,
        LifecycleArg::Active => Lifecycle::Active,
        LifecycleArg::Lapsed => Lifecycle::Lapsed,
        LifecycleArg::Reactivated => Lifecycle::Reactivated,
    }
}

pub async fn run(rpc: &RpcOptions, format: OutputFormat, args: &CustomersArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let mut req = request(args);
    let mut rows: Vec<CustomerRow> = Vec::new();
    let mut currency = String::new();
    let mut first = true;
    loop {
        let page: ListCustomersResponse = client
            .list_customers(rpc.request(req.clone()))
            .await
            .map_err(|s| rpc.rpc_error(s))?
            .into_inner();
        currency.clone_from(&page.currency);
        match format {
            OutputFormat::Json => {
                let mut text = String::new();
                for row in &page.customers {
                    text.push_str(&proto_json_line(row, CUSTOMER_ROW)?);
                }
                emit(&text)?;
            }
            OutputFormat::Csv => {
                let mut text = if first { csv_header() } else { String::new() };
                for row in &page.customers {
                    text.push_str(&csv_row(row, &page.currency));
                }
                emit(&text)?;
            }
            OutputFormat::Table => rows.extend(page.customers),
        }
        first = false;
        if page.next_page_token.is_empty() {
            break;
        }
        if args.one_page {
            eprintln!("next page: --page-token {}", page.next_page_token);
            break;
        }
        req.page_token = page.next_page_token;
    }
    if format == OutputFormat::Table {
        emit(&render(&rows, &currency))?;
    }
    Ok(())
}

/// The CSV header line.
pub fn csv_header() -> String {
    csv_line([
        "customer_id",
        "tier",
        "computed_tier",
        "score",
        "lifecycle",
        "account_manager",
        "revenue_12m",
        "margin_12m",
        "currency",
    ])
}

/// One customer as a CSV line: money in major units without separators,
/// an unknown margin empty, no manager empty.
pub fn csv_row(row: &CustomerRow, currency: &str) -> String {
    let lifecycle = match lifecycle_name(row.lifecycle).as_str() {
        "-" => String::new(),
        name => name.to_owned(),
    };
    csv_line([
        row.customer_id.clone(),
        row.tier.clone(),
        row.computed_tier.clone(),
        fixed(row.score, 2),
        lifecycle,
        row.account_manager.clone(),
        plain_money(row.revenue_12m, currency),
        row.margin_12m
            .map_or_else(String::new, |m| plain_money(m, currency)),
        currency.to_owned(),
    ])
}

/// Customer, tier (with the computed one when an override differs),
/// score, lifecycle, manager, revenue and margin in the server's order.
pub fn render(rows: &[CustomerRow], currency: &str) -> String {
    if rows.is_empty() {
        return "no customers\n".to_owned();
    }
    let unit = if currency.is_empty() {
        String::new()
    } else {
        format!(" ({currency})")
    };
    let mut table = Table::new([
        "customer".to_owned(),
        "tier".to_owned(),
        "computed".to_owned(),
        "score".to_owned(),
        "lifecycle".to_owned(),
        "manager".to_owned(),
        format!("revenue 12m{unit}"),
        format!("margin 12m{unit}"),
    ])
    .right(&[3, 6, 7]);
    for r in rows {
        table.row([
            r.customer_id.clone(),
            dash(&r.tier),
            dash(&r.computed_tier),
            fixed(r.score, 2),
            lifecycle_name(r.lifecycle),
            dash(&r.account_manager),
            money_major(r.revenue_12m, currency),
            r.margin_12m
                .map_or_else(|| "unknown".to_owned(), |m| money_major(m, currency)),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, manager: &str, margin: Option<i64>) -> CustomerRow {
        CustomerRow {
            customer_id: id.into(),
            tier: "A".into(),
            computed_tier: "B".into(),
            score: 81.256,
            lifecycle: Lifecycle::Active.into(),
            account_manager: manager.into(),
            revenue_12m: 123_456_789,
            margin_12m: margin,
            overridden: true,
            priority: 1,
        }
    }

    #[test]
    fn table_csv_and_request() {
        let rows = [row("c-1", "li", Some(-5_000)), row("c-2", "", None)];
        assert_eq!(
            render(&rows, "CNY"),
            "customer  tier  computed  score  lifecycle  manager  revenue 12m (CNY)  margin 12m (CNY)\n\
             --------  ----  --------  -----  ---------  -------  -----------------  ----------------\n\
             c-1       A     B         81.26  active     li            1,234,567.89            -50.00\n\
             c-2       A     B         81.26  active     -             1,234,567.89           unknown\n"
        );
        assert_eq!(render(&[], "CNY"), "no customers\n");
        assert_eq!(
            csv_header(),
            "customer_id,tier,computed_tier,score,lifecycle,account_manager,revenue_12m,margin_12m,currency\n"
        );
        assert_eq!(
            csv_row(&row("c,1", "li", Some(-5_000)), "CNY"),
            "\"c,1\",A,B,81.26,active,li,1234567.89,-50.00,CNY\n"
        );
        assert_eq!(
            csv_row(&row("c-2", "", None), "CNY"),
            "c-2,A,B,81.26,active,,1234567.89,,CNY\n"
        );

        let args = CustomersArgs {
            tier: Some("A".into()),
            account_manager: None,
            unassigned: true,
            lifecycle: Some(LifecycleArg::Lapsed),
            page_size: Some(50),
            page_token: None,
            one_page: false,
        };
        let req = request(&args);
        assert_eq!(req.account_manager.as_deref(), Some(""));
        assert_eq!(req.lifecycle(), Lifecycle::Lapsed);
        assert_eq!((req.tier.as_str(), req.page_size), ("A", 50));
    }
}

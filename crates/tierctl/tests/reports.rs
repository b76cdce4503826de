//! `customers`, `distribution` and `managers`, run as the real binary
//! against the real `TierService` (tier-api) over a hand-filled read
//! model: every page followed, `--one-page` and its token, filters, the
//! three output formats, and refusals.

// Helpers outside `#[test]` fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tier_api::read_model::Relation;
use tier_api::{Book, CustomerView, Entry, ReadModel};
use tier_core::state::Lifecycle;
use tier_core::{Indicators, Timestamp};

mod common;
use common::{ok, serve, stderr, tierctl};

const MANAGERS: [&str; 3] = ["li", "wang", ""];
const TIERS: [&str; 4] = ["A", "B", "C", "D"];

fn entry(tier: &str, manager: &str, revenue: i64, lifecycle: Lifecycle) -> Entry {
    Entry::new(
        CustomerView {
            tier: tier.to_owned(),
            score: 42.5,
            since: Timestamp::from_millis(1_700_000_000_000),
            sequence: 1,
            indicators: Indicators::default(),
            scored_at: Timestamp::from_millis(1_700_000_000_000),
            policy_version: "default-2027.01".into(),
            overridden: false,
            relation: Relation {
                lifecycle: Some(lifecycle),
                ..Relation::default()
            },
        },
        Book {
            account_manager: tier_api::Name::new(manager),
            revenue_12m: revenue,
            margin_12m: Some(revenue / 5),
        },
    )
}

/// 250 customers `c-000`..`c-249`: tier i % 4 (D only for multiples of
/// 4, ...), manager i % 3 (every third unassigned), 1.00 CNY times i,
/// every tenth lapsed.
fn model() -> Arc<ReadModel> {
    let read = Arc::new(ReadModel::new());
    let ids: Vec<String> = (0..250).map(|i| format!("c-{i:03}")).collect();
    read.upsert_entries(ids.iter().enumerate().map(|(i, id)| {
        let lifecycle = if i % 10 == 0 {
            Lifecycle::Lapsed
        } else {
            Lifecycle::Active
        };
        (
            id.as_str(),
            entry(TIERS[i % 4], MANAGERS[i % 3], 100 * i as i64, lifecycle),
        )
    }));
    read
}

#[test]
fn customers_follows_every_page_in_each_format() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, model());

    // The table: every customer once, in id order, over 36 pages of 7.
    let text = ok(&tierctl(&addr, &["customers", "--page-size", "7"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "customer  tier  computed  score  lifecycle  manager  revenue 12m (CNY)  margin 12m (CNY)"
    );
    assert_eq!(lines.len(), 2 + 250);
    assert_eq!(
        lines[3],
        "c-001     B     B         42.50  active     wang                  1.00              0.20"
    );
    let ids: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let expected: Vec<String> = (0..250).map(|i| format!("c-{i:03}")).collect();
    assert_eq!(ids, expected);

    // CSV: one header, then the tier-A customers across pages.
    let text = ok(&tierctl(
        &addr,
        &["customers", "--tier", "A", "--page-size", "10", "-o", "csv"],
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "customer_id,tier,computed_tier,score,lifecycle,account_manager,revenue_12m,margin_12m,currency"
    );
    assert_eq!(lines[1], "c-000,A,A,42.50,lapsed,li,0.00,0.00,CNY");
    assert_eq!(lines[2], "c-004,A,A,42.50,active,wang,4.00,0.80,CNY");
    assert_eq!(lines.len(), 1 + 63, "63 of 250 customers are in A");
    assert!(lines[1..].iter().all(|l| l.split(',').nth(1) == Some("A")));

    // JSON lines with filters: the unassigned, lapsed customers.
    let text = ok(&tierctl(
        &addr,
        &[
            "customers",
            "--unassigned",
            "--lifecycle",
            "lapsed",
            "-o",
            "json",
        ],
    ));
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // i % 3 == 2 and i % 10 == 0: i = 20, 50, 80, ...
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["customer_id"], "c-020");
    assert!(rows.iter().all(|r| r["account_manager"] == ""));
    assert!(rows.iter().all(|r| r["lifecycle"] == "LIFECYCLE_LAPSED"));
    assert_eq!(rows[0]["revenue_12m"], "2000");
}

#[test]
fn one_page_prints_the_token_of_the_next() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, model());
    let args = ["customers", "--account-manager", "li", "--page-size", "5"];
    let mut first_args = args.to_vec();
    first_args.extend(["--one-page", "-o", "csv"]);
    let out = tierctl(&addr, &first_args);
    let text = ok(&out);
    assert_eq!(text.lines().count(), 1 + 5);
    assert!(text.lines().nth(5).unwrap().starts_with("c-012,"));
    let err = stderr(&out);
    let token = err
        .strip_prefix("next page: --page-token ")
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{err:?}"));

    let mut next_args = args.to_vec();
    next_args.extend(["--one-page", "-o", "csv", "--page-token", token]);
    let text = ok(&tierctl(&addr, &next_args));
    assert!(text.lines().nth(1).unwrap().starts_with("c-015,"), "{text}");

    // The token with another filter: refused, naming the field.
    let out = tierctl(&addr, &["customers", "--tier", "A", "--page-token", token]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: INVALID_ARGUMENT: invalid page_token: "),
        "{}",
        stderr(&out)
    );
    let out = tierctl(&addr, &["customers", "--tier", "Z"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: INVALID_ARGUMENT: invalid tier: \"Z\" is not a tier"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn distribution_and_managers_in_each_format() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, model());

    // 250 customers: A and B 63 each, C and D 62; revenue 100 * i.
    let text = ok(&tierctl(&addr, &["distribution"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "tier   customers    share  revenue 12m (CNY)    share  margin 12m (CNY)    share"
    );
    let cells = |i: usize| -> Vec<&str> { lines[i].split_whitespace().collect() };
    assert_eq!(cells(2)[..3], ["A", "63", "25.20%"]);
    assert_eq!(cells(5)[..3], ["D", "62", "24.80%"]);
    assert_eq!(
        cells(6),
        [
            "total",
            "250",
            "100.00%",
            "31,125.00",
            "100.00%",
            "6,225.00",
            "100.00%"
        ]
    );
    assert_eq!(
        lines[7],
        "policy default-2027.01; margin over the 250 of 250 customers with a known cost"
    );

    let text = ok(&tierctl(&addr, &["distribution", "-o", "csv"]));
    let shares: i64 = text
        .lines()
        .filter(|l| l.starts_with("tier,"))
        .map(|l| {
            let pct: f64 = l.split(',').nth(5).unwrap().parse().unwrap();
            (pct * 100.0).round() as i64
        })
        .sum();
    assert_eq!(shares, 10_000, "revenue shares sum to 100.00%:\n{text}");

    let v: serde_json::Value =
        serde_json::from_str(&ok(&tierctl(&addr, &["distribution", "-o", "json"]))).unwrap();
    assert_eq!(v["tiers"].as_array().unwrap().len(), 4);
    assert_eq!(v["total_customers"], "250");

    // Managers: li (i % 3 == 0), wang, then the unassigned.
    let text = ok(&tierctl(&addr, &["managers"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "manager        A   B   C   D  customers  revenue 12m (CNY)"
    );
    assert_eq!(lines[2].split_whitespace().next(), Some("li"));
    assert_eq!(lines[4].split_whitespace().next(), Some("(unassigned)"));
    assert!(
        lines[5].starts_with("top tier A over 2 managers: "),
        "{text}"
    );
    assert!(lines[6].ends_with("top-tier customers have no account manager"));

    let text = ok(&tierctl(&addr, &["managers", "-o", "csv"]));
    assert_eq!(
        text.lines().next(),
        Some(
            "account_manager,unassigned,A,B,C,D,customers,revenue_12m,top_tier_customers,currency"
        )
    );
    assert_eq!(text.lines().count(), 4);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&tierctl(&addr, &["managers", "-o", "json"]))).unwrap();
    assert_eq!(v["top_tier_spread"]["tier"], "A");
    assert_eq!(v["managers"].as_array().unwrap().len(), 3);
}

#[test]
fn every_other_command_prints_its_json_as_csv() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt, model());
    // `get` has no CSV layout of its own: its JSON's fields are the
    // columns, the customer one row.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tierctl(&addr, &["get", "c-001", "-o", "json"]))).unwrap();
    let csv = ok(&tierctl(&addr, &["get", "c-001", "-o", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let fields: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(header, fields, "{csv}");
    // The values are the JSON's (nested ones as quoted JSON cells).
    let tier = json["tier"].as_str().unwrap();
    assert!(
        format!("{},", lines[1]).contains(&format!(",{tier},")),
        "{csv}"
    );
    assert!(lines[1].contains("c-001"), "{csv}");
}

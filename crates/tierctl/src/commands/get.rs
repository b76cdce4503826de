//! `get` and `batch-get`.

use anyhow::{Context as _, Result, bail};
use tier_proto::api::{BatchGetTiersRequest, CustomerTier, Entitlements, GetTierRequest};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{BatchGetArgs, GetArgs, Output};
use crate::format::{
    Table, dash, fixed, gradings_text, key_values, lifecycle_name, override_text, proto_time,
    yes_no,
};

const CUSTOMER_TIER: &str = "tiering.v1.CustomerTier";

/// Most ids per `BatchGetTiers` call (the API's limit); longer lists are
/// sent in chunks, answers kept in request order.
pub const BATCH_LIMIT: usize = 10_000;

pub async fn get(rpc: &RpcOptions, args: &GetArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let tier = client
        .get_tier(rpc.request(GetTierRequest {
            customer_id: args.customer_id.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(&tier, CUSTOMER_TIER)?),
        Output::Table => emit(&render_one(&tier)),
    }
}

pub async fn batch_get(rpc: &RpcOptions, args: &BatchGetArgs) -> Result<()> {
    let mut ids = args.customer_ids.clone();
    if let Some(path) = &args.file {
        ids.extend(read_ids(path)?);
    }
    if ids.is_empty() {
        bail!("no customer ids given (pass ids or --file)");
    }
    let mut client = rpc.connect().await?;
    let mut table = tier_table();
    for chunk in ids.chunks(BATCH_LIMIT) {
        let tiers = client
            .batch_get_tiers(rpc.request(BatchGetTiersRequest {
                customer_ids: chunk.to_vec(),
            }))
            .await
            .map_err(|s| rpc.rpc_error(s))?
            .into_inner()
            .tiers;
        match rpc.output {
            Output::Json => {
                let mut text = String::new();
                for t in &tiers {
                    text.push_str(&proto_json_line(t, CUSTOMER_TIER)?);
                }
                emit(&text)?;
            }
            Output::Table => {
                for t in &tiers {
                    table.row(tier_row(t));
                }
            }
        }
    }
    if rpc.output == Output::Table {
        emit(&table.render())?;
    }
    Ok(())
}

/// Ids from a file (`-` = stdin), one per line; blank lines and `#`
/// comments skipped.
pub fn read_ids(path: &std::path::Path) -> Result<Vec<String>> {
    let reader: Box<dyn std::io::BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    parse_ids(reader).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_ids(reader: impl std::io::BufRead) -> std::io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let id = line.trim();
        if !id.is_empty() && !id.starts_with('#') {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

fn entitlements_text(e: Option<&Entitlements>) -> String {
    match e {
        None => "-".to_owned(),
        Some(e) => format!(
            "priority {}, complaint SLA {} h, visit every {} days, payment terms {} days",
            e.priority, e.complaint_sla_hours, e.visit_every_days, e.payment_terms_days
        ),
    }
}

/// One customer as key/value lines. `as of` (the event-time instant the
/// tier is as of) is left out when unset, as it is for unknown customers;
/// `override` when none is in force.
pub fn render_one(t: &CustomerTier) -> String {
    let mut pairs = vec![
        ("customer", t.customer_id.clone()),
        ("tier", t.tier.clone()),
        ("computed", dash(&t.computed_tier)),
        ("score", fixed(t.score, 2)),
        ("priority", t.priority.to_string()),
        ("since", proto_time(t.since.as_ref())),
    ];
    if let Some(at) = &t.evaluated_at {
        pairs.push(("as of", proto_time(Some(at))));
    }
    pairs.extend([
        ("known", yes_no(t.known).to_owned()),
        ("lifecycle", lifecycle_name(t.lifecycle)),
        ("gradings", gradings_text(&t.gradings)),
        ("overridden", yes_no(t.overridden).to_owned()),
    ]);
    if let Some(o) = &t.r#override {
        pairs.push(("override", override_text(o)));
    }
    pairs.extend([
        ("entitlements", entitlements_text(t.entitlements.as_ref())),
        ("policy", t.policy_version.clone()),
    ]);
    key_values(&pairs)
}

fn tier_table() -> Table {
    Table::new([
        "customer",
        "tier",
        "score",
        "priority",
        "since",
        "as of",
        "known",
        "overridden",
        "policy",
    ])
    .right(&[2, 3])
}

/// One table row; `as of` is `-` when unset (unknown customers).
fn tier_row(t: &CustomerTier) -> [String; 9] {
    [
        t.customer_id.clone(),
        t.tier.clone(),
        fixed(t.score, 2),
        t.priority.to_string(),
        proto_time(t.since.as_ref()),
        proto_time(t.evaluated_at.as_ref()),
        yes_no(t.known).to_owned(),
        yes_no(t.overridden).to_owned(),
        t.policy_version.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_files_skip_blanks_and_comments() {
        let ids = parse_ids(&b"a\n\n  b  \n# note\nc"[..]).unwrap();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn one_customer_renders_every_field() {
        let t = CustomerTier {
            customer_id: "c-1".into(),
            tier: "GOLD".into(),
            score: 81.456,
            priority: 1,
            since: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            overridden: false,
            known: true,
            policy_version: "v3".into(),
            entitlements: Some(Entitlements {
                priority: 1,
                complaint_sla_hours: 4,
                visit_every_days: 30,
                payment_terms_days: 60,
            }),
            evaluated_at: Some(prost_types::Timestamp {
                seconds: 1_767_312_000,
                nanos: 0,
            }),
            lifecycle: tier_proto::api::Lifecycle::Active.into(),
            computed_tier: "GOLD".into(),
            r#override: None,
            gradings: Vec::new(),
        };
        let text = render_one(&t);
        assert!(text.contains("score         81.46\n"), "{text}");
        assert!(text.contains("computed      GOLD\n"), "{text}");
        assert!(text.contains("lifecycle     active\n"), "{text}");
        assert!(!text.contains("override "), "{text}");
        assert!(
            text.contains("since         2026-01-01T00:00:00Z\n"),
            "{text}"
        );
        assert!(
            text.contains("as of         2026-01-02T00:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("complaint SLA 4 h"), "{text}");
        let mut table = tier_table();
        table.row(tier_row(&t));
        let rendered = table.render();
        assert_eq!(rendered.lines().count(), 3);
        assert!(
            rendered.lines().next().unwrap().contains("since  "),
            "{rendered}"
        );
        assert!(
            rendered.contains("2026-01-01T00:00:00Z  2026-01-02T00:00:00Z"),
            "{rendered}"
        );
    }

    #[test]
    fn overrides_show_with_the_computed_tier() {
        let t = CustomerTier {
            customer_id: "c-2".into(),
            tier: "A".into(),
            computed_tier: "B".into(),
            overridden: true,
            lifecycle: tier_proto::api::Lifecycle::Lapsed.into(),
            r#override: Some(tier_proto::api::Override {
                tier: "A".into(),
                mode: tier_proto::api::OverrideMode::Pin.into(),
                reason: "key account".into(),
                author: "alice".into(),
                set_at: None,
                expires_at: Some(prost_types::Timestamp {
                    seconds: 1_801_353_600,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        };
        let text = render_one(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "tier          A", "{text}");
        let graded = render_one(&CustomerTier {
            gradings: vec![
                tier_proto::api::GradingClass {
                    grading: "abc_revenue".into(),
                    kind: "abc".into(),
                    class: "A".into(),
                },
                tier_proto::api::GradingClass {
                    grading: "rfm".into(),
                    kind: "rfm".into(),
                    class: "545".into(),
                },
            ],
            ..t.clone()
        });
        assert!(
            graded.contains("gradings      abc_revenue A, rfm 545\n"),
            "{graded}"
        );
        assert_eq!(lines[2], "computed      B", "{text}");
        assert!(
            text.contains("lifecycle     lapsed\ngradings      -\noverridden    yes\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "override      pin A until 2027-01-31T00:00:00Z, set by alice: key account\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn unknown_customers_have_no_instant() {
        let t = CustomerTier {
            customer_id: "new-1".into(),
            tier: "C".into(),
            known: false,
            ..Default::default()
        };
        let text = render_one(&t);
        assert!(!text.contains("as of"), "{text}");
        assert!(text.contains("since         -\n"), "{text}");
        assert!(text.contains("known         no\n"), "{text}");
        assert!(text.contains("computed      -\n"), "{text}");
        assert!(text.contains("lifecycle     -\n"), "{text}");
        let mut table = tier_table();
        table.row(tier_row(&t));
        let rendered = table.render();
        let row = rendered.lines().nth(2).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["new-1", "C", "0.00", "0", "-", "-", "no", "no"]);
    }
}

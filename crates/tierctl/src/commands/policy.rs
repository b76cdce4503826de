//! `policy show`, `policy dry-run`, `policy apply` and `policy status`.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Read as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tier_proto::api::{
    ApplyPolicyRequest, DryRunPolicyRequest, DryRunPolicyResponse, GetPolicyRequest,
    GetPolicyStatusRequest, PolicyInfo, PolicyStatus,
};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{Output, PolicyApplyArgs, PolicyDryRunArgs, PolicyShowArgs};
use crate::format::{Table, count, dash, fixed, key_values, percent_of_ratio, proto_time, signed};

const POLICY_STATUS: &str = "tiering.v1.PolicyStatus";

/// Reasons shown per mover.
const TOP_REASONS: usize = 3;

/// Label of customers without a tier in the migration matrix.
const NO_TIER: &str = "(none)";

/// A policy file's text (`-` = stdin).
pub fn read_policy(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the policy from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(text)
}

pub async fn show(rpc: &RpcOptions, args: &PolicyShowArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let info = client
        .get_policy(rpc.request(GetPolicyRequest {}))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    if args.text_only {
        return emit(&info.text);
    }
    match rpc.output {
        Output::Json => emit(&proto_json_line(&info, "tiering.v1.PolicyInfo")?),
        Output::Table => emit(&render_info(&info)),
    }
}

/// Version and hash, a blank line, then the text.
pub fn render_info(info: &PolicyInfo) -> String {
    let mut out = key_values(&[("version", dash(&info.version)), ("hash", dash(&info.hash))]);
    out.push('\n');
    out.push_str(&info.text);
    if !info.text.is_empty() && !info.text.ends_with('\n') {
        out.push('\n');
    }
    out
}

pub async fn dry_run(rpc: &RpcOptions, args: &PolicyDryRunArgs) -> Result<()> {
    let policy_text = read_policy(&args.file)?;
    let order = policy_tier_order(&policy_text);
    let mut client = rpc.connect().await?;
    let response = client
        .dry_run_policy(rpc.request(DryRunPolicyRequest {
            policy_text,
            sample: args.sample.unwrap_or(0),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(
            &response,
            "tiering.v1.DryRunPolicyResponse",
        )?),
        Output::Table => emit(&render_dry_run(&response, &order)),
    }
}

/// The policy's tiers, best first, when tierctl can read the policy
/// itself; empty otherwise (the server is the judge of validity).
pub fn policy_tier_order(text: &str) -> Vec<String> {
    tier_core::policy::Policy::from_toml_str(text).map_or_else(
        |_| Vec::new(),
        |p| p.tiers().iter().map(|t| t.name.clone()).collect(),
    )
}

/// Sort tiers by their place in `order` (the policy's, best first); tiers
/// not in it follow in the order they came.
fn ordered<'a>(tiers: impl IntoIterator<Item = &'a str>, order: &[String]) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for t in tiers {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    let rank = |t: &str| order.iter().position(|o| o == t).unwrap_or(order.len());
    // Stable: unknown tiers keep their order of appearance.
    seen.sort_by_key(|t| rank(t));
    seen
}

/// The migration matrix (rows: tier now, columns: tier under the new
/// policy, with totals), the number of movers, then the sample of movers
/// with their top reasons. Tiers are in `order` (best first) where
/// known, customers without a tier last.
pub fn render_dry_run(r: &DryRunPolicyResponse, order: &[String]) -> String {
    let mut out = format!(
        "dry run of policy {} as of {}\n\n",
        dash(&r.version),
        proto_time(r.as_of.as_ref())
    );
    let mut cells: HashMap<(&str, &str), u64> = HashMap::new();
    for c in &r.matrix {
        *cells
            .entry((c.from_tier.as_str(), c.to_tier.as_str()))
            .or_default() += c.customers;
    }
    let mut rows = ordered(
        r.matrix
            .iter()
            .map(|c| c.from_tier.as_str())
            .filter(|t| !t.is_empty()),
        order,
    );
    if r.matrix.iter().any(|c| c.from_tier.is_empty()) {
        rows.push("");
    }
    let columns = ordered(r.matrix.iter().map(|c| c.to_tier.as_str()), order);
    let customers: u64 = r.matrix.iter().map(|c| c.customers).sum();
    if r.matrix.is_empty() {
        out.push_str("no customers\n");
    } else {
        let headers = std::iter::once("from \\ to".to_owned())
            .chain(columns.iter().map(|c| dash(c)))
            .chain(std::iter::once("total".to_owned()));
        let numeric: Vec<usize> = (1..=columns.len() + 1).collect();
        let mut table = Table::new(headers).right(&numeric);
        let cell = |n: u64| if n == 0 { "-".to_owned() } else { count(n) };
        for from in &rows {
            let counts: Vec<u64> = columns
                .iter()
                .map(|to| cells.get(&(*from, *to)).copied().unwrap_or(0))
                .collect();
            let label = if from.is_empty() {
                NO_TIER.to_owned()
            } else {
                (*from).to_owned()
            };
            table.row(
                std::iter::once(label)
                    .chain(counts.iter().map(|&n| cell(n)))
                    .chain(std::iter::once(count(counts.iter().sum()))),
            );
        }
        let column_totals = columns.iter().map(|to| {
            cell(
                r.matrix
                    .iter()
                    .filter(|c| c.to_tier == *to)
                    .map(|c| c.customers)
                    .sum(),
            )
        });
        table.row(
            std::iter::once("total".to_owned())
                .chain(column_totals)
                .chain(std::iter::once(count(customers))),
        );
        out.push_str(&table.render());
    }
    let shown = u64::try_from(r.sample.len()).unwrap_or(u64::MAX);
    out.push_str(&format!(
        "\nmovers: {} of {} customers would change tier",
        count(r.movers),
        count(customers)
    ));
    if shown > 0 && shown < r.movers {
        out.push_str(&format!(" ({} shown)", count(shown)));
    }
    out.push('\n');
    if !r.sample.is_empty() {
        out.push('\n');
        let mut table = Table::new(["customer", "from", "to", "score", "reasons"]);
        for m in &r.sample {
            let reasons: Vec<String> = m
                .reasons
                .iter()
                .take(TOP_REASONS)
                .map(|x| format!("{} {}", x.name, signed(x.delta)))
                .collect();
            table.row([
                m.customer_id.clone(),
                if m.from_tier.is_empty() {
                    NO_TIER.to_owned()
                } else {
                    m.from_tier.clone()
                },
                m.to_tier.clone(),
                format!("{} -> {}", fixed(m.old_score, 2), fixed(m.new_score, 2)),
                if reasons.is_empty() {
                    "-".to_owned()
                } else {
                    reasons.join(", ")
                },
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

pub async fn apply(rpc: &RpcOptions, args: &PolicyApplyArgs) -> Result<()> {
    let policy_text = read_policy(&args.file)?;
    let mut admin = rpc.connect_admin().await?;
    let mut status = admin
        .apply_policy(rpc.request(ApplyPolicyRequest { policy_text }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(&status, POLICY_STATUS)?)?,
        Output::Table => emit(&format!("applied\n{}", render_status(&status)))?,
    }
    if !args.wait || !status.rescoring {
        return Ok(());
    }
    let applied = status.version.clone();
    let mut client = rpc.connect().await?;
    let mut last = (status.rescored, status.changed);
    // On a terminal a bar shows the rescore; otherwise a line per step.
    let bar = (rpc.output == Output::Table && std::io::stderr().is_terminal()).then(|| {
        let pb = ProgressBar::with_draw_target(Some(status.total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "rescoring [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} customers ({per_sec}, eta {eta}) {msg}",
        ) {
            pb.set_style(style);
        }
        pb
    });
    while status.rescoring {
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
        status = client
            .get_policy_status(rpc.request(GetPolicyStatusRequest {}))
            .await
            .map_err(|s| rpc.rpc_error(s))?
            .into_inner();
        if status.version != applied {
            bail!(
                "policy {} replaced {} while waiting for its rescore",
                dash(&status.version),
                dash(&applied)
            );
        }
        if let Some(pb) = &bar {
            pb.set_length(status.total);
            pb.set_position(status.rescored);
            pb.set_message(format!("{} changes", count(status.changed)));
            if !status.rescoring {
                pb.finish_and_clear();
            }
        }
        match rpc.output {
            Output::Json => emit(&proto_json_line(&status, POLICY_STATUS)?)?,
            Output::Table if !status.rescoring => emit(&format!(
                "rescored {}: {} customers, {} changes\n",
                dash(&status.version),
                count(status.rescored),
                count(status.changed)
            ))?,
            Output::Table if bar.is_none() && (status.rescored, status.changed) != last => {
                emit(&format!("rescoring {}\n", progress_line(&status)))?;
            }
            Output::Table => {}
        }
        last = (status.rescored, status.changed);
    }
    Ok(())
}

pub async fn status(rpc: &RpcOptions) -> Result<()> {
    let mut client = rpc.connect().await?;
    let status = client
        .get_policy_status(rpc.request(GetPolicyStatusRequest {}))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(&status, POLICY_STATUS)?),
        Output::Table => emit(&render_status(&status)),
    }
}

/// `v8: 5 of 10 customers (50%), 2 changes`.
fn progress_line(s: &PolicyStatus) -> String {
    format!(
        "{}: {}, {} changes",
        dash(&s.version),
        progress(s),
        count(s.changed)
    )
}

/// `5 of 10 customers (50%)`.
fn progress(s: &PolicyStatus) -> String {
    let mut text = format!("{} of {} customers", count(s.rescored), count(s.total));
    if s.total > 0 {
        // Counts far below 2^53: the ratio is exact enough to print.
        #[allow(clippy::cast_precision_loss)]
        let ratio = s.rescored as f64 / s.total as f64;
        text.push_str(&format!(" ({})", percent_of_ratio(ratio)));
    }
    text
}

/// Version, hash, when it was applied, the rescore's progress and the
/// changes it published.
pub fn render_status(s: &PolicyStatus) -> String {
    let rescore = if s.rescoring {
        format!("in progress, {}", progress(s))
    } else {
        format!("done, {} customers", count(s.rescored))
    };
    key_values(&[
        ("version", dash(&s.version)),
        ("hash", dash(&s.hash)),
        ("applied at", proto_time(s.applied_at.as_ref())),
        ("rescore", rescore),
        ("changes", count(s.changed)),
    ])
}

#[cfg(test)]
mod tests {
    use tier_proto::api::{MigrationCell, Mover, Reason};

    use super::*;

    fn cell(from: &str, to: &str, customers: u64) -> MigrationCell {
        MigrationCell {
            from_tier: from.into(),
            to_tier: to.into(),
            customers,
        }
    }

    #[test]
    fn migration_matrix_in_policy_order() {
        let r = DryRunPolicyResponse {
            version: "v8".into(),
            matrix: vec![
                cell("B", "B", 40),
                cell("A", "A", 10),
                cell("B", "A", 3),
                cell("", "C", 2),
                cell("C", "C", 1_200),
                cell("A", "B", 1),
            ],
            movers: 6,
            sample: vec![Mover {
                customer_id: "c-7".into(),
                from_tier: "B".into(),
                to_tier: "A".into(),
                old_score: 58.2,
                new_score: 61.04,
                reasons: vec![Reason {
                    name: "margin_12m".into(),
                    contribution: 20.0,
                    delta: 2.5,
                }],
            }],
            as_of: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
        };
        let order = ["A".to_owned(), "B".to_owned(), "C".to_owned()];
        let text = render_dry_run(&r, &order);
        assert_eq!(
            text,
            "dry run of policy v8 as of 2026-01-01T00:00:00Z\n\
             \n\
             from \\ to   A   B      C  total\n\
             ---------  --  --  -----  -----\n\
             A          10   1      -     11\n\
             B           3  40      -     43\n\
             C           -   -  1,200  1,200\n\
             (none)      -   -      2      2\n\
             total      13  41  1,202  1,256\n\
             \n\
             movers: 6 of 1,256 customers would change tier (1 shown)\n\
             \n\
             customer  from  to  score           reasons\n\
             --------  ----  --  --------------  ----------------\n\
             c-7       B     A   58.20 -> 61.04  margin_12m +2.50\n"
        );
        // Without the policy's order: as the server listed them.
        let text = render_dry_run(&r, &[]);
        assert!(
            text.contains("from \\ to   B   A      C  total\n"),
            "{text}"
        );
    }

    #[test]
    fn tier_order_from_the_shipped_policy() {
        let order = policy_tier_order(tier_core::policy::DEFAULT_POLICY_TOML);
        assert!(order.len() >= 2, "{order:?}");
        assert!(policy_tier_order("not a policy").is_empty());
    }

    #[test]
    fn status_lines() {
        let mut s = PolicyStatus {
            version: "v8".into(),
            hash: "ab12".into(),
            rescoring: true,
            rescored: 5,
            total: 8,
            changed: 2,
            applied_at: None,
        };
        assert_eq!(
            render_status(&s),
            "version     v8\n\
             hash        ab12\n\
             applied at  -\n\
             rescore     in progress, 5 of 8 customers (62.5%)\n\
             changes     2\n"
        );
        assert_eq!(progress_line(&s), "v8: 5 of 8 customers (62.5%), 2 changes");
        s.rescoring = false;
        s.rescored = 8;
        assert!(render_status(&s).contains("rescore     done, 8 customers\n"));
        s.total = 0;
        assert_eq!(progress(&s), "8 of 0 customers");
    }
}

//! `complaints queue` and `complaints overdue`: the open complaints in the
//! order customer service works them (`ListComplaintQueue`), and those
//! past their deadline (`ListOverdueComplaints`).
//!
//! Each complaint shows its customer's tier and priority now beside the
//! deadline it got at its opening (from the tier held then, which may
//! differ). The server cuts the list at `--limit` and says how many there
//! are in all: the table ends with a line saying so, CSV says it on stderr
//! (stdout stays clean for scripts), JSON carries `total`. `--all` walks
//! every page (`--limit` is then the page size).

use anyhow::Result;
use tier_proto::api::{
    ComplaintItem, ListComplaintQueueRequest, ListComplaintQueueResponse,
    ListOverdueComplaintsRequest, ListOverdueComplaintsResponse,
};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{ComplaintListArgs, OutputFormat};
use crate::format::{Table, csv_line, dash, proto_time, yes_no};

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Every open complaint.
    Queue,
    /// Open complaints past their deadline.
    Overdue,
}

impl Which {
    /// What the list holds, plural: `open complaints`.
    fn noun(self) -> &'static str {
        match self {
            Which::Queue => "open complaints",
            Which::Overdue => "overdue complaints",
        }
    }
}

pub async fn run(
    rpc: &RpcOptions,
    format: OutputFormat,
    which: Which,
    args: &ComplaintListArgs,
) -> Result<()> {
    let mut client = rpc.connect().await?;
    let limit = crate::cli::page_limit(args.limit, args.all);
    let mut complaints = Vec::new();
    let mut total;
    let mut page_token = String::new();
    // One page, or with --all every page (keyset pages: each complaint
    // once, however the list changes meanwhile).
    loop {
        let (page, all, next) = match which {
            Which::Queue => {
                let r = client
                    .list_complaint_queue(
                        rpc.request(ListComplaintQueueRequest { limit, page_token }),
                    )
                    .await
                    .map_err(|s| rpc.rpc_error(s))?
                    .into_inner();
                (r.complaints, r.total, r.next_page_token)
            }
            Which::Overdue => {
                let r = client
                    .list_overdue_complaints(
                        rpc.request(ListOverdueComplaintsRequest { limit, page_token }),
                    )
                    .await
                    .map_err(|s| rpc.rpc_error(s))?
                    .into_inner();
                (r.complaints, r.total, r.next_page_token)
            }
        };
        complaints.extend(page);
        total = all;
        page_token = next;
        if !args.all || page_token.is_empty() {
            break;
        }
    }
    match format {
        OutputFormat::Json => emit(&match which {
            Which::Queue => proto_json_line(
                &ListComplaintQueueResponse {
                    complaints,
                    total,
                    next_page_token: page_token,
                },
                "tiering.v1.ListComplaintQueueResponse",
            )?,
            Which::Overdue => proto_json_line(
                &ListOverdueComplaintsResponse {
                    complaints,
                    total,
                    next_page_token: page_token,
                },
                "tiering.v1.ListOverdueComplaintsResponse",
            )?,
        }),
        OutputFormat::Csv => {
            emit(&csv(&complaints))?;
            if let Some(note) = cut_note(which, complaints.len(), total) {
                eprint!("{note}");
            }
            Ok(())
        }
        OutputFormat::Table => emit(&render(which, &complaints, total)),
    }
}

/// `showing 2 of 3 open complaints (--all lists every one)` when the
/// list was cut, else `None`.
pub fn cut_note(which: Which, shown: usize, total: u32) -> Option<String> {
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    (total > shown).then(|| {
        format!(
            "showing {shown} of {total} {} (--all lists every one)\n",
            which.noun()
        )
    })
}

/// The SLA a deadline came from: `A/72h`, `-` without a deadline.
fn sla(c: &ComplaintItem) -> String {
    if c.deadline.is_none() {
        "-".to_owned()
    } else {
        format!("{}/{}h", dash(&c.deadline_tier), c.sla_hours)
    }
}

/// A priority, `-` for 0 (a tier the policy no longer has).
fn priority(p: u32) -> String {
    if p == 0 {
        "-".to_owned()
    } else {
        p.to_string()
    }
}

/// One row per complaint in the server's order, then a line with the
/// total when the list was cut.
pub fn render(which: Which, complaints: &[ComplaintItem], total: u32) -> String {
    if complaints.is_empty() {
        let mut out = format!("no {}\n", which.noun());
        if let Some(note) = cut_note(which, 0, total) {
            out.push_str(&note);
        }
        return out;
    }
    let mut table = Table::new([
        "customer",
        "complaint",
        "severity",
        "tier",
        "priority",
        "opened",
        "deadline",
        "deadline tier/SLA",
        "overdue",
    ])
    .right(&[4]);
    for c in complaints {
        table.row([
            c.customer_id.clone(),
            c.complaint_id.clone(),
            dash(&c.severity),
            dash(&c.customer_tier),
            priority(c.priority),
            proto_time(c.opened_at.as_ref()),
            proto_time(c.deadline.as_ref()),
            sla(c),
            yes_no(c.overdue).to_owned(),
        ]);
    }
    let mut out = table.render();
    if let Some(note) = cut_note(which, complaints.len(), total) {
        out.push_str(&note);
    }
    out
}

/// A timestamp for CSV: RFC 3339, empty when unset.
fn csv_time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map_or_else(String::new, crate::format::proto_time_exact)
}

/// A header line, then one line per complaint; an unset deadline, its
/// tier and SLA empty, a priority of a tier no longer in the policy 0.
pub fn csv(complaints: &[ComplaintItem]) -> String {
    let mut out = csv_line([
        "customer_id",
        "complaint_id",
        "severity",
        "category",
        "customer_tier",
        "priority",
        "opened_at",
        "deadline",
        "deadline_tier",
        "sla_hours",
        "overdue",
    ]);
    for c in complaints {
        let has_deadline = c.deadline.is_some();
        out.push_str(&csv_line([
            c.customer_id.clone(),
            c.complaint_id.clone(),
            c.severity.clone(),
            c.category.clone(),
            c.customer_tier.clone(),
            c.priority.to_string(),
            csv_time(c.opened_at.as_ref()),
            csv_time(c.deadline.as_ref()),
            c.deadline_tier.clone(),
            if has_deadline {
                c.sla_hours.to_string()
            } else {
                String::new()
            },
            c.overdue.to_string(),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn item(id: &str, overdue: bool, deadline: bool) -> ComplaintItem {
        ComplaintItem {
            customer_id: "c-1".into(),
            complaint_id: id.into(),
            severity: "high".into(),
            category: "quality, delivery".into(),
            // 2026-01-01T00:00:00Z.
            opened_at: ts(1_767_225_600),
            deadline: if deadline {
                ts(1_767_225_600 + 72 * 3600)
            } else {
                None
            },
            deadline_tier: if deadline { "A".into() } else { String::new() },
            sla_hours: if deadline { 72 } else { 0 },
            customer_tier: "B".into(),
            priority: 2,
            overdue,
        }
    }

    #[test]
    fn table_csv_and_cut_note() {
        let items = [item("k1", true, true), item("k2", false, false)];
        assert_eq!(
            render(Which::Queue, &items, 5),
            "customer  complaint  severity  tier  priority  opened                deadline              deadline tier/SLA  overdue\n\
             --------  ---------  --------  ----  --------  --------------------  --------------------  -----------------  -------\n\
             c-1       k1         high      B            2  2026-01-01T00:00:00Z  2026-01-04T00:00:00Z  A/72h              yes\n\
             c-1       k2         high      B            2  2026-01-01T00:00:00Z  -                     -                  no\n\
             showing 2 of 5 open complaints (--all lists every one)\n"
        );
        assert!(!render(Which::Overdue, &items, 2).contains("showing"));
        assert_eq!(render(Which::Overdue, &[], 0), "no overdue complaints\n");
        assert_eq!(
            csv(&items),
            "customer_id,complaint_id,severity,category,customer_tier,priority,opened_at,deadline,deadline_tier,sla_hours,overdue\n\
             c-1,k1,high,\"quality, delivery\",B,2,2026-01-01T00:00:00Z,2026-01-04T00:00:00Z,A,72,true\n\
             c-1,k2,high,\"quality, delivery\",B,2,2026-01-01T00:00:00Z,,,,false\n"
        );
        assert_eq!(cut_note(Which::Queue, 3, 3), None);
    }
}

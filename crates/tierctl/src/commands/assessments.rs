//! `assess`, `assessments history` and `assessments due`: qualitative
//! assessments. `assess` goes to `AdminService` (an admin token).

use anyhow::{Context as _, Result};
use tier_proto::api::{
    AssessmentEntry, GetAssessmentHistoryRequest, ListAssessmentsDueRequest,
    ListAssessmentsDueResponse, SetAssessmentRequest,
};

use super::overrides::render_response;
use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{AssessArgs, AssessmentsDueArgs, Output, OverrideHistoryArgs};
use crate::format::{Table, dash, proto_time};

pub async fn assess(rpc: &RpcOptions, args: &AssessArgs) -> Result<()> {
    let mut client = rpc.connect_admin().await?;
    let response = client
        .set_assessment(rpc.request(SetAssessmentRequest {
            customer_id: args.customer_id.clone(),
            indicator: args.indicator.clone(),
            value: args.value,
            assessed_by: args.assessed_by.clone(),
            note: args.note.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(&response, "tiering.v1.OverrideResponse")?),
        Output::Table => emit(&render_response(&args.customer_id, &response)),
    }
}

/// `4 (high)`, or the bare level when the scale has no labels.
fn level(e: &AssessmentEntry) -> String {
    if e.label.is_empty() {
        e.value.to_string()
    } else {
        format!("{} ({})", e.value, e.label)
    }
}

pub async fn history(rpc: &RpcOptions, args: &OverrideHistoryArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let history = client
        .get_assessment_history(rpc.request(GetAssessmentHistoryRequest {
            customer_id: args.customer_id.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => {
            let mut text = String::new();
            for e in &history.entries {
                text.push_str(&proto_json_line(e, "tiering.v1.AssessmentEntry")?);
            }
            emit(&text)
        }
        Output::Table => {
            if history.entries.is_empty() {
                return emit(&format!("no assessments of {}\n", args.customer_id));
            }
            let mut t = Table::new(["assessed", "indicator", "level", "by", "until", "note"]);
            for e in &history.entries {
                t.row([
                    proto_time(e.assessed_at.as_ref()),
                    e.indicator.clone(),
                    level(e),
                    e.assessed_by.clone(),
                    proto_time(e.expires_at.as_ref()),
                    dash(&e.note),
                ]);
            }
            emit(&t.render())
        }
    }
}

pub async fn due(rpc: &RpcOptions, args: &AssessmentsDueArgs) -> Result<()> {
    let before = std::time::SystemTime::now()
        .checked_add(args.within)
        .context("the --within duration is too long")?;
    let mut client = rpc.connect().await?;
    let due = client
        .list_assessments_due(rpc.request(ListAssessmentsDueRequest {
            before: Some(prost_types::Timestamp::from(before)),
            limit: args.limit,
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => emit(&proto_json_line(
            &due,
            "tiering.v1.ListAssessmentsDueResponse",
        )?),
        Output::Table => emit(&render_due(&due)),
    }
}

/// Soonest expiry first: customer, tier, indicator, level, by, expires.
pub fn render_due(due: &ListAssessmentsDueResponse) -> String {
    if due.due.is_empty() {
        return "no assessment expires in that time\n".to_owned();
    }
    let mut t = Table::new(["customer", "tier", "indicator", "level", "by", "expires"]);
    for d in &due.due {
        let Some(a) = &d.assessment else { continue };
        t.row([
            d.customer_id.clone(),
            d.tier.clone(),
            a.indicator.clone(),
            level(a),
            a.assessed_by.clone(),
            proto_time(a.expires_at.as_ref()),
        ]);
    }
    let mut out = t.render();
    if (due.due.len() as u32) < due.total {
        out.push_str(&format!(
            "showing {} of {} (raise --limit to see more)\n",
            due.due.len(),
            due.total
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_rows_with_labels_and_the_cut() {
        let entry = AssessmentEntry {
            indicator: "potential".into(),
            value: 4,
            label: "high".into(),
            assessed_by: "li.wei".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            ..Default::default()
        };
        let text = render_due(&ListAssessmentsDueResponse {
            due: vec![tier_proto::api::AssessmentDue {
                customer_id: "c-1".into(),
                assessment: Some(entry),
                tier: "B".into(),
            }],
            total: 3,
        });
        let row = text.lines().nth(2).unwrap_or_default();
        assert!(row.contains("c-1") && row.contains("4 (high)"), "{text}");
        assert!(row.contains("2026-01-01"), "{text}");
        assert!(text.contains("showing 1 of 3"), "{text}");
        assert_eq!(
            render_due(&ListAssessmentsDueResponse::default()),
            "no assessment expires in that time\n"
        );
    }
}

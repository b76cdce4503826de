//! What account managers judged: a customer's assessment history and the
//! assessments about to expire (so they re-assess in time), from the read
//! model's views (committed state only). Setting one is an admin command
//! (`admin.rs`), applied by the engine like a `CustomerAssessed` event.

use tier_core::policy::Policy;
use tier_core::projection::assessments::Assessment;
use tier_proto::api::{
    AssessmentDue, AssessmentEntry, AssessmentHistory, GetAssessmentHistoryRequest,
    ListAssessmentsDueRequest, ListAssessmentsDueResponse,
};

use crate::convert::{list_limit as limit, required_instant, timestamp};
use crate::error::ApiError;
use crate::read_model::ReadModel;

fn entry(a: &Assessment, policy: &Policy) -> AssessmentEntry {
    let label = policy
        .assessments()
        .find(&a.indicator)
        .and_then(|(_, spec)| spec.label(a.value))
        .unwrap_or_default()
        .to_owned();
    AssessmentEntry {
        indicator: a.indicator.clone(),
        value: a.value,
        label,
        assessed_by: a.assessed_by.clone(),
        note: a.note.clone(),
        assessed_at: Some(timestamp(a.assessed_at)),
        expires_at: Some(timestamp(a.expires_at)),
    }
}

pub(crate) fn history(
    read: &ReadModel,
    policy: &Policy,
    req: &GetAssessmentHistoryRequest,
) -> Result<AssessmentHistory, ApiError> {
    crate::service::require_id("customer_id", &req.customer_id)?;
    let view = read
        .get(&req.customer_id)
        .ok_or_else(|| ApiError::NotFound {
            customer_id: req.customer_id.clone(),
        })?;
    Ok(AssessmentHistory {
        customer_id: req.customer_id.clone(),
        entries: view
            .assessment_history()
            .iter()
            .map(|a| entry(a, policy))
            .collect(),
    })
}

pub(crate) fn due(
    read: &ReadModel,
    policy: &Policy,
    req: &ListAssessmentsDueRequest,
) -> Result<ListAssessmentsDueResponse, ApiError> {
    let limit = limit(req.limit)?;
    let before = required_instant("before", req.before.as_ref())?;
    let mut all: Vec<(tier_core::Timestamp, String, AssessmentDue)> = Vec::new();
    for (id, view) in read.all_shared() {
        for a in view.assessments() {
            if a.expires_at < before && policy.assessments().find(&a.indicator).is_some() {
                all.push((
                    a.expires_at,
                    id.to_string(),
                    AssessmentDue {
                        customer_id: id.to_string(),
                        assessment: Some(entry(a, policy)),
                        tier: view.tier.to_string(),
                    },
                ));
            }
        }
    }
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(ListAssessmentsDueResponse {
        total: u32::try_from(all.len()).unwrap_or(u32::MAX),
        due: all.into_iter().take(limit).map(|(_, _, d)| d).collect(),
    })
}

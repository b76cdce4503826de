//! The `tiering.v1.AdminService` handlers: overrides and policy changes.
//!
//! Every write is a command to the engine (see tier-engine's `command`
//! module): validated here for shape (fields present, enums known), then
//! applied by the engine on its own thread inside a commit unit, and
//! answered only once that unit is durable. Refusals map to gRPC codes in
//! [`crate::error`], naming the request field.

use std::sync::Arc;

use tier_core::overrides::OverrideMode;
use tier_engine::command::OverrideOutcome;
use tier_engine::{ActivePolicy, Command, SetOverride};
use tier_proto::api::admin_service_server::AdminService;
use tier_proto::api::{
    ApplyPolicyRequest, ClearOverrideRequest, OverrideResponse, PolicyStatus, SetOverrideRequest,
};
use tier_wire::tier_changed::tier_changed_to_proto;
use tier_wire::trace::TraceParent;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::metrics::instrument;
use crate::service::{TierServiceImpl, ask, parse_policy, require_id, status_to_proto};

/// The `AdminService` implementation; shares the read side with a
/// [`TierServiceImpl`] built with `with_engine`.
#[derive(Debug, Clone)]
pub struct AdminServiceImpl {
    reads: TierServiceImpl,
    commands: tier_engine::CommandSender,
}

impl AdminServiceImpl {
    pub fn new(reads: TierServiceImpl, commands: tier_engine::CommandSender) -> Self {
        Self { reads, commands }
    }

    /// The answer to an override or assessment: the customer's tier now
    /// and the change made, stamped like its `TierChanged` record.
    fn answer(
        &self,
        customer_id: String,
        outcome: OverrideOutcome,
        trace: Option<TraceParent>,
    ) -> Result<OverrideResponse, ApiError> {
        let change = outcome?;
        let view = self.reads.read_model().get(&customer_id);
        Ok(OverrideResponse {
            tier: Some(self.reads.customer_tier(customer_id, view.as_deref())),
            change: change.as_ref().map(|c| {
                let mut msg = tier_changed_to_proto(c);
                if let Some(t) = trace {
                    msg.traceparent = t.child(&c.customer_id, c.sequence).to_string();
                }
                msg
            }),
        })
    }

    async fn set_override_async(
        &self,
        req: SetOverrideRequest,
        trace: Option<TraceParent>,
    ) -> Result<OverrideResponse, ApiError> {
        require_id("customer_id", &req.customer_id)?;
        require("tier", &req.tier)?;
        require("reason", &req.reason)?;
        require("author", &req.author)?;
        let mode = match tier_proto::api::OverrideMode::try_from(req.mode) {
            Ok(tier_proto::api::OverrideMode::Pin) => OverrideMode::Pin,
            Ok(tier_proto::api::OverrideMode::Floor) => OverrideMode::Floor,
            Ok(tier_proto::api::OverrideMode::Ceiling) => OverrideMode::Ceiling,
            _ => {
                return Err(ApiError::invalid(
                    "mode",
                    "must be OVERRIDE_MODE_PIN, OVERRIDE_MODE_FLOOR or OVERRIDE_MODE_CEILING",
                ));
            }
        };
        let expires_at = match req.expires_at {
            None => None,
            Some(t) => Some(crate::convert::instant("expires_at", &t)?),
        };
        let customer_id = req.customer_id.clone();
        let cmd = SetOverride {
            customer_id: req.customer_id,
            tier: req.tier,
            mode,
            reason: req.reason,
            author: req.author,
            expires_at,
        };
        let outcome = ask(&self.commands, |reply| {
            Command::SetOverride { cmd, reply }.traced(trace)
        })
        .await?;
        self.answer(customer_id, outcome, trace)
    }

    async fn set_assessment_async(
        &self,
        req: tier_proto::api::SetAssessmentRequest,
        trace: Option<TraceParent>,
    ) -> Result<OverrideResponse, ApiError> {
        require_id("customer_id", &req.customer_id)?;
        require("indicator", &req.indicator)?;
        require_id("assessed_by", &req.assessed_by)?;
        fits("note", &req.note)?;
        let customer_id = req.customer_id.clone();
        let cmd = tier_engine::SetAssessment {
            customer_id: req.customer_id,
            indicator: req.indicator,
            value: req.value,
            assessed_by: req.assessed_by,
            note: req.note,
        };
        let outcome = ask(&self.commands, |reply| {
            Command::SetAssessment { cmd, reply }.traced(trace)
        })
        .await?;
        self.answer(customer_id, outcome, trace)
    }

    async fn clear_override_async(
        &self,
        req: ClearOverrideRequest,
        trace: Option<TraceParent>,
    ) -> Result<OverrideResponse, ApiError> {
        require_id("customer_id", &req.customer_id)?;
        require("reason", &req.reason)?;
        require("author", &req.author)?;
        let customer_id = req.customer_id.clone();
        let outcome = ask(&self.commands, |reply| {
            Command::ClearOverride {
                customer_id: req.customer_id,
                reason: req.reason,
                author: req.author,
                reply,
            }
            .traced(trace)
        })
        .await?;
        self.answer(customer_id, outcome, trace)
    }

    async fn apply_policy_async(&self, req: ApplyPolicyRequest) -> Result<PolicyStatus, ApiError> {
        let policy = parse_policy(&req.policy_text)?;
        let current = self.reads.policy_handle().active();
        let folded = self.reads.read_model().has_folded();
        let changed = current.is_changed_by(&policy, &req.policy_text, folded)?;
        if !changed {
            // Already in force: nothing to do.
            let mut out = status_to_proto(&self.reads.policy_handle().status());
            out.hash.clone_from(&current.hash);
            return Ok(out);
        }
        // Recorded against the `--policy` file the policy in force was
        // recorded against (the start-up rule: an applied policy survives
        // restarts while that file is unchanged), which a SIGHUP moves: not
        // the file read at start.
        let active = Arc::new(
            ActivePolicy::new(policy, req.policy_text, current.source_hash.clone())
                .replacing(&current),
        );
        let hash = active.hash.clone();
        let status = ask(&self.commands, |reply| Command::ApplyPolicy {
            policy: active,
            reply,
        })
        .await??;
        let mut out = status_to_proto(&status);
        out.hash = hash;
        Ok(out)
    }
}

/// The W3C trace context of a request (`traceparent` metadata), when valid.
pub(crate) fn trace_of<T>(request: &Request<T>) -> Option<TraceParent> {
    request
        .metadata()
        .get(TraceParent::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
}

/// A required text of a command: not empty, and within [`fits`].
fn require(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    fits(field, value)
}

/// A command's text is kept in the customer's state (its override history,
/// its assessments), written again with every batch that touches the
/// customer: at most [`tier_core::policy::MAX_NOTE_LEN`] bytes, as the same
/// texts on Kafka.
fn fits(field: &str, value: &str) -> Result<(), ApiError> {
    let max = tier_core::policy::MAX_NOTE_LEN;
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("is {} bytes, longer than {max}", value.len()),
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl AdminService for AdminServiceImpl {
    async fn set_override(
        &self,
        request: Request<SetOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        let trace = trace_of(&request);
        instrument(
            "SetOverride",
            self.set_override_async(request.into_inner(), trace),
        )
        .await
    }

    async fn set_assessment(
        &self,
        request: Request<tier_proto::api::SetAssessmentRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        let trace = trace_of(&request);
        instrument(
            "SetAssessment",
            self.set_assessment_async(request.into_inner(), trace),
        )
        .await
    }

    async fn clear_override(
        &self,
        request: Request<ClearOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        let trace = trace_of(&request);
        instrument(
            "ClearOverride",
            self.clear_override_async(request.into_inner(), trace),
        )
        .await
    }

    async fn apply_policy(
        &self,
        request: Request<ApplyPolicyRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        instrument("ApplyPolicy", self.apply_policy_async(request.into_inner())).await
    }
}

//! The `tiering.v1.TierService` handlers.
//!
//! Every handler validates its request, reads [`ReadModel`] views and the
//! [`Policy`], and answers; nothing here writes state. Each trait method
//! is a one-line call of `metrics::instrument` around a plain function returning
//! `Result<_, ApiError>`, so metrics and the error-to-status mapping live
//! in exactly one place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tier_core::IndicatorName;
use tier_core::policy::{Policy, TierSpec};
use tier_proto::api::tier_service_server::TierService;
use tier_proto::api::{
    BatchGetTiersRequest, BatchGetTiersResponse, CustomerTier, ExplainTierRequest, GetTierRequest,
    Indicator, RankByPriorityRequest, RankByPriorityResponse, RankedWorkItem, TierChanged,
    TierExplanation, WatchTierChangesRequest,
};
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Request, Response, Status};

use crate::convert::{advice, entitlements, timestamp, unit};
use crate::error::ApiError;
use crate::metrics::{WATCHERS_LAGGED, instrument};
use crate::read_model::{CustomerView, ReadModel};

/// Most ids in one `BatchGetTiers` request.
pub const MAX_BATCH_IDS: usize = 10_000;
/// Most work items in one `RankByPriority` request.
pub const MAX_RANK_ITEMS: usize = 10_000;

/// The `TierService` implementation: reads only.
#[derive(Debug, Clone)]
pub struct TierServiceImpl {
    read: Arc<ReadModel>,
    policy: Arc<Policy>,
    changes: broadcast::Sender<TierChanged>,
    shutdown: CancellationToken,
}

impl TierServiceImpl {
    /// A service answering from `read` under `policy`; `WatchTierChanges`
    /// streams what is sent on `changes` after a client subscribed.
    pub fn new(
        read: Arc<ReadModel>,
        policy: Arc<Policy>,
        changes: broadcast::Sender<TierChanged>,
    ) -> Self {
        Self {
            read,
            policy,
            changes,
            shutdown: CancellationToken::new(),
        }
    }

    /// End open `WatchTierChanges` streams (with `UNAVAILABLE`) when
    /// `shutdown` is cancelled, so a graceful server shutdown is not held
    /// up by long-lived streams. [`crate::serve`] sets this itself.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The read model this service answers from.
    pub fn read_model(&self) -> &Arc<ReadModel> {
        &self.read
    }

    /// The policy this service answers under.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The tier spec that entitlements and priority come from for a held
    /// tier. A tier name the current policy does not have (the policy
    /// changed and the recompute has not reached this customer yet) falls
    /// back to the tier the current policy computes from the view.
    fn spec_for(&self, view: &CustomerView) -> &TierSpec {
        let tiers = self.policy.tiers();
        let idx = self
            .policy
            .tier_index(&view.tier)
            .unwrap_or_else(|| self.policy.evaluate(&view.indicators).tier);
        tiers.get(idx).unwrap_or_else(|| self.policy.lowest_tier())
    }

    fn customer_tier(&self, customer_id: String, view: Option<&CustomerView>) -> CustomerTier {
        match view {
            Some(view) => {
                let spec = self.spec_for(view);
                CustomerTier {
                    customer_id,
                    tier: view.tier.clone(),
                    score: view.score,
                    priority: spec.priority,
                    since: Some(timestamp(view.since)),
                    overridden: view.overridden,
                    known: true,
                    // The decision's own version: every answer about it
                    // (and its TierChanged) names the same one.
                    policy_version: view.policy_version.clone(),
                    entitlements: Some(entitlements(spec)),
                    evaluated_at: Some(timestamp(view.scored_at)),
                }
            }
            None => {
                let spec = self.policy.lowest_tier();
                CustomerTier {
                    customer_id,
                    tier: spec.name.clone(),
                    score: 0.0,
                    priority: spec.priority,
                    since: None,
                    overridden: false,
                    known: false,
                    policy_version: self.policy.version().to_owned(),
                    entitlements: Some(entitlements(spec)),
                    evaluated_at: None,
                }
            }
        }
    }

    /// `GetTier`: one known customer.
    fn get_tier_sync(&self, req: GetTierRequest) -> Result<CustomerTier, ApiError> {
        require_id("customer_id", &req.customer_id)?;
        let view = self
            .read
            .get(&req.customer_id)
            .ok_or_else(|| ApiError::NotFound {
                customer_id: req.customer_id.clone(),
            })?;
        Ok(self.customer_tier(req.customer_id, Some(&view)))
    }

    /// `BatchGetTiers`: request order, unknown customers at the lowest tier.
    pub(crate) fn batch_get_tiers_sync(
        &self,
        req: BatchGetTiersRequest,
    ) -> Result<BatchGetTiersResponse, ApiError> {
        check_limit("customer_ids", req.customer_ids.len(), MAX_BATCH_IDS, "ids")?;
        let mut tiers = Vec::with_capacity(req.customer_ids.len());
        for (i, id) in req.customer_ids.into_iter().enumerate() {
            if id.is_empty() {
                return Err(ApiError::invalid(
                    format!("customer_ids[{i}]"),
                    "must not be empty",
                ));
            }
            let view = self.read.get(&id);
            tiers.push(self.customer_tier(id, view.as_deref()));
        }
        Ok(BatchGetTiersResponse { tiers })
    }

    /// `RankByPriority`: stable sort on the customers' tier priority.
    fn rank_by_priority_sync(
        &self,
        req: RankByPriorityRequest,
    ) -> Result<RankByPriorityResponse, ApiError> {
        check_limit("items", req.items.len(), MAX_RANK_ITEMS, "items")?;
        let lowest = self.policy.lowest_tier();
        let mut items = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.into_iter().enumerate() {
            if item.customer_id.is_empty() {
                return Err(ApiError::invalid(
                    format!("items[{i}].customer_id"),
                    "must not be empty",
                ));
            }
            if item.id.is_empty() {
                return Err(ApiError::invalid(
                    format!("items[{i}].id"),
                    "must not be empty",
                ));
            }
            let view = self.read.get(&item.customer_id);
            let (tier, priority) = match view.as_deref() {
                Some(view) => (view.tier.clone(), self.spec_for(view).priority),
                None => (lowest.name.clone(), lowest.priority),
            };
            items.push(RankedWorkItem {
                id: item.id,
                customer_id: item.customer_id,
                tier,
                priority,
            });
        }
        // `sort_by_key` is stable: equal priorities keep request order.
        items.sort_by_key(|item| item.priority);
        Ok(RankByPriorityResponse { items })
    }

    /// `ExplainTier`: the policy's explanation of a known customer's tier.
    fn explain_tier_sync(&self, req: ExplainTierRequest) -> Result<TierExplanation, ApiError> {
        require_id("customer_id", &req.customer_id)?;
        let view = self
            .read
            .get(&req.customer_id)
            .ok_or_else(|| ApiError::NotFound {
                customer_id: req.customer_id.clone(),
            })?;
        let computed = self.policy.evaluate(&view.indicators);
        // Explain the held tier; one the current policy does not know
        // (policy changed, recompute pending) is explained as the computed one.
        let held = self.policy.tier_index(&view.tier).unwrap_or(computed.tier);
        let explanation = self.policy.explain(&view.indicators, held);
        let computed_tier = self
            .policy
            .tiers()
            .get(computed.tier)
            .map_or_else(|| explanation.tier.clone(), |t| t.name.clone());
        // The scored indicators first, then every other known indicator
        // with weight 0, so managers see the whole picture.
        let mut indicators: Vec<Indicator> = explanation
            .indicators
            .iter()
            .map(|ind| Indicator {
                name: ind.name.as_str().to_owned(),
                value: ind.value.unwrap_or(0.0),
                known: ind.value.is_some(),
                unit: unit(ind.name.unit()).into(),
                points: ind.points,
                weight: ind.weight,
                contribution: ind.contribution,
            })
            .collect();
        for name in IndicatorName::ALL {
            if explanation.indicators.iter().any(|i| i.name == name) {
                continue;
            }
            let value = view.indicators.get(name);
            indicators.push(Indicator {
                name: name.as_str().to_owned(),
                value: value.unwrap_or(0.0),
                known: value.is_some(),
                unit: unit(name.unit()).into(),
                points: 0.0,
                weight: 0.0,
                contribution: 0.0,
            });
        }
        Ok(TierExplanation {
            customer_id: req.customer_id,
            tier: view.tier.clone(),
            // The held decision's score: the same figure GetTier and the
            // TierChanged that made the decision carry (the explanation
            // recomputes it from the same indicators under the same
            // policy version).
            score: view.score,
            penalty: explanation.penalty,
            indicators,
            next_tier: explanation.next_tier.unwrap_or_default(),
            gap: explanation.gap,
            policy_version: view.policy_version.clone(),
            band: explanation.band,
            overridden: view.overridden,
            computed_tier,
            advice: explanation.advice.iter().map(advice).collect(),
            evaluated_at: Some(timestamp(view.scored_at)),
            currency: self.policy.currency_rules().base().to_owned(),
        })
    }
}

fn require_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    Ok(())
}

fn check_limit(field: &str, len: usize, max: usize, what: &str) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} {what} per request, got {len}"),
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl TierService for TierServiceImpl {
    async fn get_tier(
        &self,
        request: Request<GetTierRequest>,
    ) -> Result<Response<CustomerTier>, Status> {
        instrument("GetTier", async {
            self.get_tier_sync(request.into_inner())
        })
        .await
    }

    async fn batch_get_tiers(
        &self,
        request: Request<BatchGetTiersRequest>,
    ) -> Result<Response<BatchGetTiersResponse>, Status> {
        instrument("BatchGetTiers", async {
            self.batch_get_tiers_sync(request.into_inner())
        })
        .await
    }

    async fn rank_by_priority(
        &self,
        request: Request<RankByPriorityRequest>,
    ) -> Result<Response<RankByPriorityResponse>, Status> {
        instrument("RankByPriority", async {
            self.rank_by_priority_sync(request.into_inner())
        })
        .await
    }

    async fn explain_tier(
        &self,
        request: Request<ExplainTierRequest>,
    ) -> Result<Response<TierExplanation>, Status> {
        instrument("ExplainTier", async {
            self.explain_tier_sync(request.into_inner())
        })
        .await
    }

    type WatchTierChangesStream = TierChangeStream;

    async fn watch_tier_changes(
        &self,
        _request: Request<WatchTierChangesRequest>,
    ) -> Result<Response<Self::WatchTierChangesStream>, Status> {
        instrument("WatchTierChanges", async {
            if self.shutdown.is_cancelled() {
                return Err(ApiError::Unavailable("the server is shutting down".into()));
            }
            Ok(TierChangeStream::new(
                self.changes.subscribe(),
                self.shutdown.clone(),
            ))
        })
        .await
    }
}

/// The `WatchTierChanges` stream: every change broadcast after the client
/// subscribed, in order.
///
/// It never skips silently: a client that falls behind the broadcast
/// buffer gets `RESOURCE_EXHAUSTED` naming how many changes it missed and
/// the stream ends. On server shutdown (or when the feed closes) the
/// stream ends with `UNAVAILABLE`, so clients reconnect rather than take
/// the end for a completed feed.
pub struct TierChangeStream {
    changes: BroadcastStream<TierChanged>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl std::fmt::Debug for TierChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierChangeStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl TierChangeStream {
    fn new(rx: broadcast::Receiver<TierChanged>, shutdown: CancellationToken) -> Self {
        Self {
            changes: BroadcastStream::new(rx),
            shutdown: Box::pin(shutdown.cancelled_owned()),
            done: false,
        }
    }

    fn finish(&mut self, err: ApiError) -> Poll<Option<Result<TierChanged, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(err.into())))
    }
}

impl Stream for TierChangeStream {
    type Item = Result<TierChanged, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            return this.finish(ApiError::Unavailable(
                "the server is shutting down; watch again after reconnecting".into(),
            ));
        }
        match Pin::new(&mut this.changes).poll_next(cx) {
            Poll::Ready(Some(Ok(change))) => Poll::Ready(Some(Ok(change))),
            Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(dropped)))) => {
                metrics::counter!(WATCHERS_LAGGED).increment(1);
                tracing::warn!(
                    dropped,
                    "tier-change watcher fell behind; ending its stream"
                );
                this.finish(ApiError::ClientTooSlow { dropped })
            }
            Poll::Ready(None) => this.finish(ApiError::Unavailable(
                "the tier-change feed closed; watch again after reconnecting".into(),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tier_core::Indicators;
    use tier_core::Timestamp;

    fn service_with(n: usize) -> TierServiceImpl {
        let policy = Policy::default_policy();
        let read = ReadModel::new();
        for i in 0..n {
            let indicators = Indicators {
                order_amount_12m: (i as f64) * 1_000.0,
                order_count_12m: (i % 40) as f64,
                on_time_payment_ratio: Some(1.0),
                ..Indicators::default()
            };
            let eval = policy.evaluate(&indicators);
            read.upsert(
                &format!("c-{i}"),
                CustomerView {
                    tier: policy.tiers()[eval.tier].name.clone(),
                    score: eval.score,
                    since: Timestamp::from_millis(0),
                    sequence: 1,
                    indicators,
                    scored_at: Timestamp::from_millis(0),
                    policy_version: policy.version().to_owned(),
                    overridden: false,
                },
            );
        }
        let (tx, _) = broadcast::channel(16);
        TierServiceImpl::new(Arc::new(read), Arc::new(policy), tx)
    }

    /// The handler part of a 1000-id batch (what the server does besides
    /// HTTP/2 and protobuf). Generous bound so debug builds pass; run with
    /// `--release --nocapture` for the real figure.
    #[test]
    fn batch_of_1000_is_fast() {
        let svc = service_with(100_000);
        let ids: Vec<String> = (0..1000).map(|i| format!("c-{}", i * 97)).collect();
        let mut took = Vec::new();
        for _ in 0..200 {
            let req = BatchGetTiersRequest {
                customer_ids: ids.clone(),
            };
            let t = std::time::Instant::now();
            let resp = svc.batch_get_tiers_sync(req).unwrap();
            took.push(t.elapsed());
            assert_eq!(resp.tiers.len(), 1000);
        }
        took.sort();
        let p99 = took[took.len() * 99 / 100];
        println!(
            "BatchGetTiers handler, 1000 ids: p50 {:?}, p99 {:?}",
            took[took.len() / 2],
            p99
        );
        assert!(p99 < std::time::Duration::from_millis(50), "p99 {p99:?}");
    }
}

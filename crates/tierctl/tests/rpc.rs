//! The gRPC commands, run as the real binary against a fake `TierService`:
//! output shapes, request order, status rendering and exit codes.

// Helpers outside `#[test]` fns are test code too (clippy.toml only
// exempts the test fns themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::process::Output;

use futures::Stream;
use tier_proto::api::tier_service_server::{TierService, TierServiceServer};
use tier_proto::api::{
    BatchGetTiersRequest, BatchGetTiersResponse, ChangeCause, CustomerTier, Entitlements,
    ExplainTierRequest, GetTierRequest, Indicator, RankByPriorityRequest, RankByPriorityResponse,
    RankedWorkItem, Reason, TierChanged, TierExplanation, WatchTierChangesRequest,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
struct Fake;

fn tier_of(id: &str) -> CustomerTier {
    let (tier, priority) = if id.starts_with("key") {
        ("S", 1)
    } else {
        ("C", 4)
    };
    CustomerTier {
        customer_id: id.to_owned(),
        tier: tier.to_owned(),
        score: if priority == 1 { 88.5 } else { 20.25 },
        priority,
        since: Some(prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }),
        overridden: false,
        known: true,
        policy_version: "v7".into(),
        entitlements: Some(Entitlements {
            priority,
            complaint_sla_hours: 4,
            visit_every_days: 30,
            payment_terms_days: 60,
        }),
    }
}

#[tonic::async_trait]
impl TierService for Fake {
    async fn get_tier(
        &self,
        request: Request<GetTierRequest>,
    ) -> Result<Response<CustomerTier>, Status> {
        let id = request.into_inner().customer_id;
        if id == "ghost" {
            return Err(Status::not_found("customer \"ghost\" is unknown"));
        }
        Ok(Response::new(tier_of(&id)))
    }

    async fn batch_get_tiers(
        &self,
        request: Request<BatchGetTiersRequest>,
    ) -> Result<Response<BatchGetTiersResponse>, Status> {
        let tiers = request
            .into_inner()
            .customer_ids
            .iter()
            .map(|id| tier_of(id))
            .collect();
        Ok(Response::new(BatchGetTiersResponse { tiers }))
    }

    async fn rank_by_priority(
        &self,
        request: Request<RankByPriorityRequest>,
    ) -> Result<Response<RankByPriorityResponse>, Status> {
        let mut items: Vec<RankedWorkItem> = request
            .into_inner()
            .items
            .into_iter()
            .map(|i| {
                let t = tier_of(&i.customer_id);
                RankedWorkItem {
                    id: i.id,
                    customer_id: i.customer_id,
                    tier: t.tier,
                    priority: t.priority,
                }
            })
            .collect();
        items.sort_by_key(|i| i.priority);
        Ok(Response::new(RankByPriorityResponse { items }))
    }

    async fn explain_tier(
        &self,
        request: Request<ExplainTierRequest>,
    ) -> Result<Response<TierExplanation>, Status> {
        let id = request.into_inner().customer_id;
        let ind = |name: &str, value: f64, points: f64, weight: f64| Indicator {
            name: name.into(),
            value,
            points,
            weight,
            contribution: points * weight / 100.0,
        };
        Ok(Response::new(TierExplanation {
            customer_id: id,
            tier: "A".into(),
            score: 66.0,
            indicators: vec![
                ind("order_amount_12m", 1_234_567.0, 70.0, 60.0),
                ind("on_time_payment_ratio", 0.9, 60.0, 40.0),
            ],
            next_tier: "S".into(),
            gap: "14 points: order_amount_12m needs CNY 80,000.00 more".into(),
            policy_version: "v7".into(),
            band: ">= 60 and < 80".into(),
            overridden: false,
            computed_tier: "A".into(),
            penalty: 0.0,
        }))
    }

    type WatchTierChangesStream =
        Pin<Box<dyn Stream<Item = Result<TierChanged, Status>> + Send + 'static>>;

    async fn watch_tier_changes(
        &self,
        _request: Request<WatchTierChangesRequest>,
    ) -> Result<Response<Self::WatchTierChangesStream>, Status> {
        let change = |seq: u64| TierChanged {
            customer_id: format!("cust-{seq}"),
            old_tier: "B".into(),
            new_tier: "A".into(),
            old_score: 59.0,
            new_score: 61.0,
            cause: ChangeCause::Event as i32,
            causing_event_id: format!("evt-{seq}"),
            reasons: vec![Reason {
                name: "margin_12m".into(),
                contribution: 20.0,
                delta: 2.0,
            }],
            policy_version: "v7".into(),
            sequence: seq,
            changed_at: None,
        };
        // Two changes, then the server ends the stream.
        let stream = futures::stream::iter([Ok(change(1)), Ok(change(2))]);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serve the fake on a free loopback port; returns `http://127.0.0.1:PORT`.
fn serve(rt: &tokio::runtime::Runtime) -> String {
    let incoming = rt
        .block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().unwrap()) })
        .unwrap();
    let addr = incoming.local_addr().unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TierServiceServer::new(Fake))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

fn tierctl(addr: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tierctl"))
        .env_remove("TIERCTL_ADDR")
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn commands_against_a_fake_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt);

    let out = tierctl(&addr, &["get", "key-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("tier          S\n"), "{text}");
    assert!(
        text.contains("since         2026-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(text.contains("policy        v7"), "{text}");

    let out = tierctl(&addr, &["get", "key-1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["customer_id"], "key-1");
    assert_eq!(v["entitlements"]["payment_terms_days"], 60);

    // A status: code and message, exit code 1.
    let out = tierctl(&addr, &["get", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: NOT_FOUND: customer \"ghost\" is unknown\n"
    );

    // Request order, one line each.
    let out = tierctl(&addr, &["batch-get", "small-2", "key-1", "small-3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let ids: Vec<&str> = text
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["small-2", "key-1", "small-3"], "{text}");
    let out = tierctl(&addr, &["batch-get", "a", "b", "-o", "json"]);
    assert_eq!(stdout(&out).lines().count(), 2);

    let out = tierctl(&addr, &["explain", "key-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("CNY 12,345.67"), "{text}");
    assert!(text.contains("90%"), "{text}");
    assert!(text.contains("60%"), "{text}");
    assert!(text.contains("42.00"), "{text}");
    assert!(text.contains("total score  66.00\n"), "{text}");
    assert!(text.contains("next tier    S\n"), "{text}");

    let out = tierctl(&addr, &["rank", "small-1:o1", "key-9:o2", "small-2:o3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: Vec<String> = stdout(&out)
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(items, ["o2", "o1", "o3"]);

    // The stream ends server-side: lines printed, then an error.
    let out = tierctl(&addr, &["watch"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with("-  cust-1  B -> A  score 59.00 -> 61.00  event evt-1  reasons: margin_12m +2.00  seq 1\n"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("closed the watch stream"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn connection_failures_name_the_address() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = tierctl(&addr, &["get", "c-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: cannot connect to tierd at http://{addr}")),
        "{err}"
    );
}

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
    Advice, BatchGetTiersRequest, BatchGetTiersResponse, ChangeCause, CustomerTier,
    DryRunPolicyRequest, DryRunPolicyResponse, Entitlements, ExplainTierRequest,
    GetOverrideHistoryRequest, GetPolicyRequest, GetPolicyStatusRequest, GetTierRequest, Indicator,
    Lifecycle, ListAtRiskCustomersRequest, ListAtRiskCustomersResponse, OverrideHistory,
    PolicyInfo, PolicyStatus, RankByPriorityRequest, RankByPriorityResponse, RankedWorkItem,
    Reason, TierChanged, TierExplanation, Unit, WatchTierChangesRequest,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
struct Fake;

/// Ids starting `new` are customers tierd has never seen: lowest tier, no
/// instants. Ids starting `key` are top customers.
fn tier_of(id: &str) -> CustomerTier {
    if id.starts_with("new") {
        return CustomerTier {
            customer_id: id.to_owned(),
            tier: "C".into(),
            priority: 4,
            known: false,
            policy_version: "v7".into(),
            ..Default::default()
        };
    }
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
        evaluated_at: Some(prost_types::Timestamp {
            seconds: 1_767_312_000,
            nanos: 0,
        }),
        lifecycle: Lifecycle::Active.into(),
        computed_tier: tier.to_owned(),
        r#override: None,
        gradings: Vec::new(),
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
                    known: Some(t.known),
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
        // Ids starting `jp` are scored under a JPY policy (no minor digits).
        let (currency, scale) = if id.starts_with("jp") {
            ("JPY", 1.0)
        } else {
            ("CNY", 100.0)
        };
        let ind =
            |name: &str, value: Option<f64>, unit: Unit, points: f64, weight: f64| Indicator {
                name: name.into(),
                value: value.unwrap_or(0.0),
                points,
                weight,
                contribution: points * weight / 100.0,
                known: value.is_some(),
                unit: unit.into(),
            };
        Ok(Response::new(TierExplanation {
            customer_id: id,
            tier: "A".into(),
            score: 61.0,
            indicators: vec![
                ind(
                    "order_amount_12m",
                    Some(1_500_000.0 * scale),
                    Unit::Money,
                    70.0,
                    40.0,
                ),
                ind("on_time_payment_ratio", Some(0.9), Unit::Ratio, 60.0, 30.0),
                ind("margin_rate_12m", None, Unit::Ratio, 50.0, 30.0),
                ind("avg_days_late", Some(12.0), Unit::Days, 0.0, 0.0),
            ],
            next_tier: "S".into(),
            gap: "+14 points to S: no single indicator closes the gap".into(),
            policy_version: "v7".into(),
            band: ">= 60 and < 80".into(),
            overridden: false,
            computed_tier: "A".into(),
            penalty: 0.0,
            advice: vec![
                Advice {
                    indicator: "order_amount_12m".into(),
                    current: Some(1_500_000.0 * scale),
                    target: 2_000_000.0 * scale,
                    unit: Unit::Money.into(),
                },
                Advice {
                    indicator: "margin_rate_12m".into(),
                    current: None,
                    target: 0.25,
                    unit: Unit::Ratio.into(),
                },
            ],
            evaluated_at: Some(prost_types::Timestamp {
                seconds: 1_767_312_000,
                nanos: 0,
            }),
            currency: currency.into(),
            lifecycle: Lifecycle::Active.into(),
            r#override: None,
            ..Default::default()
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
            computed_tier: "A".into(),
            overridden: false,
            lifecycle: Lifecycle::Unspecified.into(),
            gradings: Vec::new(),
            traceparent: String::new(),
        };
        // Two changes, then the server ends the stream.
        let stream = futures::stream::iter([Ok(change(1)), Ok(change(2))]);
        Ok(Response::new(Box::pin(stream)))
    }

    // The admin-era reads are covered by tests/admin.rs.

    async fn get_override_history(
        &self,
        _request: Request<GetOverrideHistoryRequest>,
    ) -> Result<Response<OverrideHistory>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_policy(
        &self,
        _request: Request<GetPolicyRequest>,
    ) -> Result<Response<PolicyInfo>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn dry_run_policy(
        &self,
        _request: Request<DryRunPolicyRequest>,
    ) -> Result<Response<DryRunPolicyResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_policy_status(
        &self,
        _request: Request<GetPolicyStatusRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_at_risk_customers(
        &self,
        _request: Request<ListAtRiskCustomersRequest>,
    ) -> Result<Response<ListAtRiskCustomersResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_customers(
        &self,
        _request: Request<tier_proto::api::ListCustomersRequest>,
    ) -> Result<Response<tier_proto::api::ListCustomersResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_tier_distribution(
        &self,
        _request: Request<tier_proto::api::GetTierDistributionRequest>,
    ) -> Result<Response<tier_proto::api::TierDistribution>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_account_manager_balance(
        &self,
        _request: Request<tier_proto::api::GetAccountManagerBalanceRequest>,
    ) -> Result<Response<tier_proto::api::AccountManagerBalance>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_complaint_queue(
        &self,
        _request: Request<tier_proto::api::ListComplaintQueueRequest>,
    ) -> Result<Response<tier_proto::api::ListComplaintQueueResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_overdue_complaints(
        &self,
        _request: Request<tier_proto::api::ListOverdueComplaintsRequest>,
    ) -> Result<Response<tier_proto::api::ListOverdueComplaintsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_tier_history(
        &self,
        _request: Request<tier_proto::api::GetTierHistoryRequest>,
    ) -> Result<Response<tier_proto::api::TierHistory>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_tier_as_of(
        &self,
        _request: Request<tier_proto::api::GetTierAsOfRequest>,
    ) -> Result<Response<tier_proto::api::TierAsOf>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_tier_movers(
        &self,
        _request: Request<tier_proto::api::ListTierMoversRequest>,
    ) -> Result<Response<tier_proto::api::ListTierMoversResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_assessment_history(
        &self,
        _request: Request<tier_proto::api::GetAssessmentHistoryRequest>,
    ) -> Result<Response<tier_proto::api::AssessmentHistory>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_assessments_due(
        &self,
        _request: Request<tier_proto::api::ListAssessmentsDueRequest>,
    ) -> Result<Response<tier_proto::api::ListAssessmentsDueResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
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
        .env_remove("TIERD_TOKEN")
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
    assert!(text.contains("1,500,000.00 CNY"), "{text}");
    assert!(text.contains("90.0%"), "{text}");
    assert!(text.contains("60.0"), "{text}");
    assert!(text.contains("28.00"), "{text}");
    assert!(text.contains("total score  61.00\n"), "{text}");
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
fn explain_shows_money_units_unknowns_and_advice() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt);

    let out = tierctl(&addr, &["explain", "key-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // Money in major units with the policy's currency, not minor units.
    let row = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("order_amount_12m"),
        [
            "order_amount_12m",
            "1,500,000.00 CNY",
            "70.0",
            "40%",
            "28.00"
        ],
        "{text}"
    );
    assert!(!text.contains("150,000,000"), "{text}");
    assert_eq!(row("on_time_payment_ratio")[1], "90.0%", "{text}");
    // An unknown figure is `unknown`, not its placeholder 0.
    assert_eq!(row("margin_rate_12m")[1], "unknown", "{text}");
    assert_eq!(row("avg_days_late")[1], "12 days", "{text}");
    assert!(
        text.contains("as of        2026-01-02T00:00:00Z\n"),
        "{text}"
    );
    assert!(
        text.contains("gap          +14 points to S: no single indicator closes the gap\n"),
        "{text}"
    );
    // The structured advice, one aligned line per indicator.
    let advice: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("to reach "))
        .collect();
    assert_eq!(
        advice,
        [
            "to reach S: order_amount_12m  1,500,000.00 CNY -> 2,000,000.00 CNY",
            "            margin_rate_12m            unknown ->            25.0%",
            "            (all of these together, everything else unchanged)",
        ],
        "{text}"
    );

    // The server's currency decides the minor digits; --currency only
    // labels amounts when the server names none.
    let out = tierctl(&addr, &["explain", "jp-1", "--currency", "CNY"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("to reach S: order_amount_12m  1,500,000 JPY -> 2,000,000 JPY\n"),
        "{text}"
    );
    assert!(!text.contains(" CNY"), "{text}");

    // JSON carries the new fields as they are on the wire.
    let out = tierctl(&addr, &["explain", "key-1", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["currency"], "CNY");
    assert_eq!(v["evaluated_at"], "2026-01-02T00:00:00Z");
    assert_eq!(v["indicators"][0]["unit"], "UNIT_MONEY");
    assert_eq!(v["indicators"][0]["value"], 150_000_000.0);
    assert_eq!(v["indicators"][2]["known"], false);
    assert_eq!(v["advice"][0]["indicator"], "order_amount_12m");
    assert_eq!(v["advice"][0]["current"], 150_000_000.0);
    assert_eq!(v["advice"][0]["target"], 200_000_000.0);
    assert_eq!(v["advice"][1]["unit"], "UNIT_RATIO");
    assert!(
        v["advice"][1].get("current").is_none_or(|c| c.is_null()),
        "{v}"
    );
}

#[test]
fn tiers_show_the_instant_they_are_as_of() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = serve(&rt);

    let out = tierctl(&addr, &["get", "key-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("as of         2026-01-02T00:00:00Z\n"),
        "{text}"
    );

    // An unknown customer: no instant, output as before.
    let out = tierctl(&addr, &["get", "new-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("as of"), "{text}");
    assert!(text.contains("known         no\n"), "{text}");

    let out = tierctl(&addr, &["batch-get", "key-1", "new-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("  since  ") && lines[0].contains("  as of  "),
        "{text}"
    );
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cells(lines[2])[4..6],
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
        "{text}"
    );
    assert_eq!(
        cells(lines[3])[..6],
        ["new-1", "C", "0.00", "4", "-", "-"],
        "{text}"
    );

    let out = tierctl(&addr, &["get", "key-1", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["evaluated_at"], "2026-01-02T00:00:00Z");
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

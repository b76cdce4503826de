//! The admin-era commands (`override`, `policy`, `at-risk`) and the bearer
//! token, run as the real binary against a fake tierd that serves both
//! `TierService` and `AdminService`, records every request and checks the
//! token like tierd does.

// Helpers outside `#[test]` fns are test code too (clippy.toml only
// exempts the test fns themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tier_proto::api::admin_service_server::{AdminService, AdminServiceServer};
use tier_proto::api::tier_service_server::{TierService, TierServiceServer};
use tier_proto::api::{
    ApplyPolicyRequest, BatchGetTiersRequest, BatchGetTiersResponse, ChangeCause,
    ClearOverrideRequest, CustomerTier, DryRunPolicyRequest, DryRunPolicyResponse,
    ExplainTierRequest, GetOverrideHistoryRequest, GetPolicyRequest, GetPolicyStatusRequest,
    GetTierRequest, Lifecycle, ListAtRiskCustomersRequest, ListAtRiskCustomersResponse,
    MigrationCell, Mover, Override, OverrideHistory, OverrideHistoryEntry, OverrideMode,
    OverrideResponse, PolicyInfo, PolicyStatus, RankByPriorityRequest, RankByPriorityResponse,
    Reason, SetOverrideRequest, TierAtRisk, TierChanged, TierExplanation, WatchTierChangesRequest,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The admin token the fake accepts for everything.
const ADMIN_TOKEN: &str = "adm-7f3c9e2b1d";
/// A token the fake accepts for reads only.
const READ_TOKEN: &str = "rd-41aa09c3";

/// 2026-01-01T00:00:00Z.
const JAN_1_2026: i64 = 1_767_225_600;
/// 2027-01-31T00:00:00Z.
const JAN_31_2027: i64 = 1_801_353_600;
/// The fake's policy in force: where its business days begin is all
/// tierctl reads of it (dates given on the command line).
const POLICY_TEXT: &str = "version = \"v7\"\ntime_zone = \"Asia/Shanghai\"\n# the rest\n";

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// What the fake received.
#[derive(Debug, Default)]
struct Log {
    /// The `authorization` metadata of every call, in order.
    auth: Vec<Option<String>>,
    set: Vec<SetOverrideRequest>,
    clear: Vec<ClearOverrideRequest>,
    history: Vec<GetOverrideHistoryRequest>,
    dry_run: Vec<DryRunPolicyRequest>,
    apply: Vec<ApplyPolicyRequest>,
    at_risk: Vec<ListAtRiskCustomersRequest>,
    /// `GetPolicyStatus` calls since the last `ApplyPolicy`.
    status_polls: u64,
    applied: bool,
}

#[derive(Debug, Clone, Default)]
struct Fake {
    log: Arc<Mutex<Log>>,
}

impl Fake {
    /// Record the call's token and check it: none or an unknown one is
    /// UNAUTHENTICATED, a read token on a write PERMISSION_DENIED.
    fn authorize<T>(&self, request: &Request<T>, write: bool) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        self.log.lock().unwrap().auth.push(header.clone());
        let Some(header) = header else {
            return Err(Status::unauthenticated("missing bearer token"));
        };
        match header.strip_prefix("Bearer ") {
            Some(ADMIN_TOKEN) => Ok(()),
            Some(READ_TOKEN) if !write => Ok(()),
            Some(READ_TOKEN) => Err(Status::permission_denied(
                "this token may not change tierd (admin token needed)",
            )),
            _ => Err(Status::unauthenticated("invalid bearer token")),
        }
    }

    fn status(&self) -> PolicyStatus {
        let mut log = self.log.lock().unwrap();
        if !log.applied {
            return PolicyStatus {
                version: "v7".into(),
                hash: "9f2c".into(),
                rescoring: false,
                rescored: 10,
                total: 10,
                changed: 0,
                applied_at: ts(JAN_1_2026),
            };
        }
        log.status_polls += 1;
        // Rescoring until the third poll.
        let rescored = (log.status_polls * 4).min(10);
        PolicyStatus {
            version: "v8".into(),
            hash: "c0ffee".into(),
            rescoring: rescored < 10,
            rescored,
            total: 10,
            changed: rescored / 2,
            applied_at: ts(JAN_1_2026 + 86_400),
        }
    }
}

fn floor_a() -> Override {
    Override {
        tier: "A".into(),
        mode: OverrideMode::Floor.into(),
        reason: "key account".into(),
        author: "alice".into(),
        set_at: ts(JAN_1_2026),
        expires_at: ts(JAN_31_2027),
    }
}

/// `c-1`: computed B, held at A by a floor override.
fn overridden_tier() -> CustomerTier {
    CustomerTier {
        customer_id: "c-1".into(),
        tier: "A".into(),
        score: 58.25,
        priority: 2,
        since: ts(JAN_1_2026),
        overridden: true,
        known: true,
        policy_version: "v7".into(),
        entitlements: None,
        evaluated_at: ts(JAN_1_2026),
        lifecycle: Lifecycle::Reactivated.into(),
        computed_tier: "B".into(),
        r#override: Some(floor_a()),
        gradings: Vec::new(),
    }
}

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented("not in this fake"))
}

#[tonic::async_trait]
impl TierService for Fake {
    async fn get_tier(
        &self,
        request: Request<GetTierRequest>,
    ) -> Result<Response<CustomerTier>, Status> {
        self.authorize(&request, false)?;
        Ok(Response::new(overridden_tier()))
    }

    async fn batch_get_tiers(
        &self,
        _request: Request<BatchGetTiersRequest>,
    ) -> Result<Response<BatchGetTiersResponse>, Status> {
        unimplemented()
    }

    async fn rank_by_priority(
        &self,
        _request: Request<RankByPriorityRequest>,
    ) -> Result<Response<RankByPriorityResponse>, Status> {
        unimplemented()
    }

    async fn explain_tier(
        &self,
        request: Request<ExplainTierRequest>,
    ) -> Result<Response<TierExplanation>, Status> {
        self.authorize(&request, false)?;
        Ok(Response::new(TierExplanation {
            customer_id: request.into_inner().customer_id,
            tier: "A".into(),
            score: 58.25,
            next_tier: "S".into(),
            policy_version: "v7".into(),
            overridden: true,
            computed_tier: "B".into(),
            evaluated_at: ts(JAN_1_2026),
            currency: "CNY".into(),
            lifecycle: Lifecycle::Reactivated.into(),
            r#override: Some(floor_a()),
            ..Default::default()
        }))
    }

    type WatchTierChangesStream =
        Pin<Box<dyn Stream<Item = Result<TierChanged, Status>> + Send + 'static>>;

    async fn watch_tier_changes(
        &self,
        request: Request<WatchTierChangesRequest>,
    ) -> Result<Response<Self::WatchTierChangesStream>, Status> {
        self.authorize(&request, false)?;
        let change = TierChanged {
            customer_id: "c-1".into(),
            old_tier: "B".into(),
            new_tier: "A".into(),
            old_score: 58.25,
            new_score: 58.25,
            cause: ChangeCause::Override.into(),
            sequence: 3,
            changed_at: ts(JAN_1_2026),
            computed_tier: "B".into(),
            overridden: true,
            lifecycle: Lifecycle::Active.into(),
            ..Default::default()
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(change)]))))
    }

    async fn get_override_history(
        &self,
        request: Request<GetOverrideHistoryRequest>,
    ) -> Result<Response<OverrideHistory>, Status> {
        self.authorize(&request, false)?;
        let request = request.into_inner();
        let customer_id = request.customer_id.clone();
        self.log.lock().unwrap().history.push(request);
        let pin_b = Override {
            tier: "B".into(),
            mode: OverrideMode::Pin.into(),
            reason: "trial".into(),
            author: "bob".into(),
            set_at: ts(JAN_1_2026 + 86_400),
            expires_at: None,
        };
        Ok(Response::new(OverrideHistory {
            customer_id,
            entries: vec![
                OverrideHistoryEntry {
                    at: ts(JAN_1_2026),
                    action: "set".into(),
                    r#override: Some(floor_a()),
                    reason: String::new(),
                    author: String::new(),
                },
                OverrideHistoryEntry {
                    at: ts(JAN_1_2026 + 3600),
                    action: "cleared".into(),
                    r#override: None,
                    reason: "contract ended".into(),
                    author: "carol".into(),
                },
                OverrideHistoryEntry {
                    at: ts(JAN_1_2026 + 86_400),
                    action: "set".into(),
                    r#override: Some(pin_b),
                    reason: String::new(),
                    author: String::new(),
                },
            ],
        }))
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<PolicyInfo>, Status> {
        self.authorize(&request, false)?;
        Ok(Response::new(PolicyInfo {
            version: "v7".into(),
            hash: "9f2c".into(),
            text: POLICY_TEXT.into(),
        }))
    }

    async fn dry_run_policy(
        &self,
        request: Request<DryRunPolicyRequest>,
    ) -> Result<Response<DryRunPolicyResponse>, Status> {
        self.authorize(&request, false)?;
        let request = request.into_inner();
        self.log.lock().unwrap().dry_run.push(request);
        let cell = |from: &str, to: &str, customers| MigrationCell {
            from_tier: from.into(),
            to_tier: to.into(),
            customers,
        };
        let mover = |id: &str, from: &str, to: &str, delta| Mover {
            customer_id: id.into(),
            from_tier: from.into(),
            to_tier: to.into(),
            old_score: 59.5,
            new_score: 59.5 + delta,
            reasons: vec![Reason {
                name: "margin_12m".into(),
                contribution: 30.0,
                delta,
            }],
        };
        // Not in tier order: tierctl orders rows and columns itself.
        Ok(Response::new(DryRunPolicyResponse {
            version: "default-2027.01".into(),
            matrix: vec![
                cell("C", "C", 1_500),
                cell("A", "B", 2),
                cell("B", "A", 5),
                cell("A", "A", 20),
                cell("", "D", 3),
                cell("B", "B", 60),
                cell("D", "D", 300),
                cell("C", "D", 7),
            ],
            movers: 14,
            sample: vec![mover("c-5", "B", "A", 1.25), mover("c-9", "A", "B", -0.75)],
            as_of: ts(JAN_1_2026),
        }))
    }

    async fn get_policy_status(
        &self,
        request: Request<GetPolicyStatusRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        self.authorize(&request, false)?;
        Ok(Response::new(self.status()))
    }

    async fn list_at_risk_customers(
        &self,
        request: Request<ListAtRiskCustomersRequest>,
    ) -> Result<Response<ListAtRiskCustomersResponse>, Status> {
        self.authorize(&request, false)?;
        self.log.lock().unwrap().at_risk.push(request.into_inner());
        let at_risk = |id: &str, tier: &str, falls_to: &str, on: i64, summary: &str| TierAtRisk {
            customer_id: id.into(),
            current_tier: tier.into(),
            falls_to: falls_to.into(),
            on: ts(on),
            keep: Vec::new(),
            summary: summary.into(),
            policy_version: "v7".into(),
            currency: "CNY".into(),
            on_day: String::new(),
        };
        Ok(Response::new(ListAtRiskCustomersResponse {
            customers: vec![
                // The start of 2027-01-31 in Shanghai: 2027-01-30T16:00:00Z.
                at_risk(
                    "c-3",
                    "A",
                    "B",
                    JAN_31_2027 - 8 * 3600,
                    "orders of 120,000.00 CNY by 2027-01-31",
                ),
                at_risk(
                    "c-44",
                    "B",
                    "C",
                    JAN_31_2027 + 86_400 - 8 * 3600,
                    "an order by 2027-02-01",
                ),
            ],
        }))
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

#[tonic::async_trait]
impl AdminService for Fake {
    async fn set_override(
        &self,
        request: Request<SetOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        self.authorize(&request, true)?;
        let request = request.into_inner();
        if request.tier == "Z" {
            return Err(Status::invalid_argument(
                "tier \"Z\" is not in policy v7 (tiers: A, B, C, D)",
            ));
        }
        self.log.lock().unwrap().set.push(request.clone());
        let mut tier = overridden_tier();
        tier.customer_id.clone_from(&request.customer_id);
        tier.tier.clone_from(&request.tier);
        tier.r#override = Some(Override {
            tier: request.tier.clone(),
            mode: request.mode,
            reason: request.reason,
            author: request.author,
            set_at: ts(JAN_1_2026),
            expires_at: request.expires_at,
        });
        Ok(Response::new(OverrideResponse {
            tier: Some(tier),
            change: Some(TierChanged {
                customer_id: request.customer_id,
                old_tier: "B".into(),
                new_tier: request.tier,
                cause: ChangeCause::Override.into(),
                computed_tier: "B".into(),
                overridden: true,
                ..Default::default()
            }),
        }))
    }

    async fn set_assessment(
        &self,
        _request: Request<tier_proto::api::SetAssessmentRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn clear_override(
        &self,
        request: Request<ClearOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        self.authorize(&request, true)?;
        let request = request.into_inner();
        self.log.lock().unwrap().clear.push(request.clone());
        let tier = CustomerTier {
            customer_id: request.customer_id.clone(),
            tier: "B".into(),
            computed_tier: "B".into(),
            overridden: false,
            r#override: None,
            policy_version: "v7".into(),
            ..overridden_tier()
        };
        Ok(Response::new(OverrideResponse {
            tier: Some(tier),
            change: Some(TierChanged {
                customer_id: request.customer_id,
                old_tier: "A".into(),
                new_tier: "B".into(),
                cause: ChangeCause::Override.into(),
                computed_tier: "B".into(),
                ..Default::default()
            }),
        }))
    }

    async fn apply_policy(
        &self,
        request: Request<ApplyPolicyRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        self.authorize(&request, true)?;
        let request = request.into_inner();
        if request.policy_text.contains("min_score = 200") {
            return Err(Status::invalid_argument(
                "line 3: tiers[0].min_score: 200 is not in 0..=100",
            ));
        }
        {
            let mut log = self.log.lock().unwrap();
            log.apply.push(request);
            log.applied = true;
            log.status_polls = 0;
        }
        Ok(Response::new(PolicyStatus {
            version: "v8".into(),
            hash: "c0ffee".into(),
            rescoring: true,
            rescored: 0,
            total: 10,
            changed: 0,
            applied_at: ts(JAN_1_2026 + 86_400),
        }))
    }
}

/// Serve the fake on a free loopback port; returns the address and the
/// request log.
fn serve(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Log>>) {
    let incoming = rt
        .block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().unwrap()) })
        .unwrap();
    let addr = incoming.local_addr().unwrap();
    let fake = Fake::default();
    let log = fake.log.clone();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TierServiceServer::new(fake.clone()))
            .add_service(AdminServiceServer::new(fake))
            .serve_with_incoming(incoming),
    );
    (format!("http://{addr}"), log)
}

/// Run tierctl with `--addr`, no token from the environment unless given
/// in `env_token`, and `args`.
fn run(addr: &str, env_token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tierctl"));
    cmd.env_remove("TIERCTL_ADDR")
        .env_remove("TIERD_TOKEN")
        .arg("--addr")
        .arg(addr)
        .args(args);
    if let Some(t) = env_token {
        cmd.env("TIERD_TOKEN", t);
    }
    cmd.output().unwrap()
}

/// Run tierctl with the admin token given as `--token`.
fn admin(addr: &str, args: &[&str]) -> Output {
    let mut all = vec!["--token", ADMIN_TOKEN];
    all.extend_from_slice(args);
    run(addr, None, &all)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Success, and neither token anywhere in the output.
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    assert_no_token(o);
    stdout(o)
}

fn assert_no_token(o: &Output) {
    for text in [stdout(o), stderr(o)] {
        assert!(
            !text.contains(ADMIN_TOKEN) && !text.contains(READ_TOKEN),
            "{text}"
        );
    }
}

/// The cells of a table row (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn policy_file(name: &str, text: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tierctl-admin-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn override_set_sends_mode_and_expiry_and_shows_both_tiers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);

    let out = admin(
        &addr,
        &[
            "override",
            "set",
            "c-1",
            "--tier",
            "A",
            "--mode",
            "floor",
            "--reason",
            "key account",
            "--author",
            "alice",
            "--expires",
            "2027-01-31T00:00:00Z",
        ],
    );
    let text = ok(&out);
    {
        let log = log.lock().unwrap();
        let r = &log.set[0];
        assert_eq!(
            (r.customer_id.as_str(), r.tier.as_str(), r.mode()),
            ("c-1", "A", OverrideMode::Floor)
        );
        assert_eq!(
            (r.reason.as_str(), r.author.as_str()),
            ("key account", "alice")
        );
        assert_eq!(r.expires_at, ts(JAN_31_2027));
        assert_eq!(
            log.auth.last().unwrap().as_deref(),
            Some(format!("Bearer {ADMIN_TOKEN}").as_str())
        );
    }
    assert_eq!(
        text,
        "customer        c-1\n\
         effective tier  A\n\
         computed tier   B\n\
         override        floor A until 2027-01-31T00:00:00Z, set 2026-01-01T00:00:00Z by alice: key account\n\
         change          B -> A\n\
         policy          v7\n"
    );

    // --for: from now; a date for --expires is the start of that day in
    // the policy's zone (Asia/Shanghai: 16:00 UTC the day before); no
    // expiry at all holds until cleared.
    let before = prost_types::Timestamp::from(std::time::SystemTime::now()).seconds;
    let base = [
        "override", "set", "c-2", "--tier", "S", "--reason", "r", "--author", "a",
    ];
    let with = |extra: &[&'static str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args
    };
    ok(&admin(&addr, &with(&["--mode", "pin", "--for", "30d"])));
    ok(&admin(
        &addr,
        &with(&["--mode", "ceiling", "--expires", "2027-01-31"]),
    ));
    ok(&admin(&addr, &with(&["--mode", "pin"])));
    {
        let log = log.lock().unwrap();
        assert_eq!(log.set.len(), 4);
        assert_eq!(log.set[1].mode(), OverrideMode::Pin);
        let at = log.set[1].expires_at.unwrap().seconds;
        let after = prost_types::Timestamp::from(std::time::SystemTime::now()).seconds;
        assert!(
            (before + 30 * 86_400..=after + 30 * 86_400).contains(&at),
            "{at}"
        );
        assert_eq!(log.set[2].mode(), OverrideMode::Ceiling);
        assert_eq!(log.set[2].expires_at, ts(JAN_31_2027 - 8 * 3_600));
        assert_eq!(log.set[3].expires_at, None);
    }

    // Usage errors never reach the server.
    for bad in [
        with(&["--mode", "pin", "--for", "30d", "--expires", "2027-01-31"]),
        with(&["--mode", "always"]),
        with(&["--mode", "pin", "--for", "soon"]),
        base.to_vec(),
    ] {
        let out = admin(&addr, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert_no_token(&out);
    }
    assert_eq!(log.lock().unwrap().set.len(), 4);

    // JSON: the response as it is on the wire.
    let out = admin(&addr, &with(&["--mode", "floor", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["tier"]["tier"], "S");
    assert_eq!(v["tier"]["computed_tier"], "B");
    assert_eq!(v["tier"]["override"]["mode"], "OVERRIDE_MODE_FLOOR");
    assert_eq!(v["change"]["new_tier"], "S");
}

#[test]
fn override_clear_and_history() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);

    let out = admin(
        &addr,
        &[
            "override",
            "clear",
            "c-1",
            "--reason",
            "contract ended",
            "--author",
            "carol",
        ],
    );
    let text = ok(&out);
    assert_eq!(
        log.lock().unwrap().clear,
        [ClearOverrideRequest {
            customer_id: "c-1".into(),
            reason: "contract ended".into(),
            author: "carol".into(),
        }]
    );
    assert!(text.contains("effective tier  B\n"), "{text}");
    assert!(text.contains("computed tier   B\n"), "{text}");
    assert!(text.contains("override        none\n"), "{text}");
    assert!(text.contains("change          A -> B\n"), "{text}");
    assert!(
        admin(&addr, &["override", "clear", "c-1", "--author", "x"])
            .status
            .code()
            == Some(2)
    );

    // History needs only a read token.
    let out = run(&addr, Some(READ_TOKEN), &["override", "history", "c-1"]);
    let text = ok(&out);
    assert_eq!(log.lock().unwrap().history[0].customer_id, "c-1");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        cells(lines[0]),
        [
            "at", "action", "tier", "mode", "author", "reason", "expires"
        ]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "2026-01-01T00:00:00Z",
            "set",
            "A",
            "floor",
            "alice",
            "key account",
            "2027-01-31T00:00:00Z"
        ]
    );
    assert_eq!(
        cells(lines[3]),
        [
            "2026-01-01T01:00:00Z",
            "cleared",
            "-",
            "-",
            "carol",
            "contract ended",
            "-"
        ]
    );
    assert_eq!(
        cells(lines[4]),
        [
            "2026-01-02T00:00:00Z",
            "set",
            "B",
            "pin",
            "bob",
            "trial",
            "until cleared"
        ]
    );

    // JSON: one entry per line.
    let out = run(
        &addr,
        Some(READ_TOKEN),
        &["override", "history", "c-1", "-o", "json"],
    );
    let text = ok(&out);
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1]["action"], "cleared");
    assert_eq!(entries[2]["override"]["mode"], "OVERRIDE_MODE_PIN");
}

#[test]
fn policy_show_and_status() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, _log) = serve(&rt);

    let text = ok(&admin(&addr, &["policy", "show"]));
    assert_eq!(text, format!("version  v7\nhash     9f2c\n\n{POLICY_TEXT}"));
    let text = ok(&admin(&addr, &["policy", "show", "--text-only"]));
    assert_eq!(text, POLICY_TEXT);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&admin(&addr, &["policy", "show", "-o", "json"]))).unwrap();
    assert_eq!(v["hash"], "9f2c");

    let text = ok(&admin(&addr, &["policy", "status"]));
    assert_eq!(
        text,
        "version     v7\n\
         hash        9f2c\n\
         applied at  2026-01-01T00:00:00Z\n\
         rescore     done, 10 customers\n\
         changes     0\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&admin(&addr, &["policy", "status", "-o", "json"]))).unwrap();
    assert_eq!(v["rescoring"], false);
    assert_eq!(v["total"], "10");
}

#[test]
fn policy_dry_run_prints_the_migration_matrix() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);
    // The shipped policy: tierctl reads its tier order (A best, D worst).
    let file = policy_file("dry-run.toml", tier_core::policy::DEFAULT_POLICY_TOML);

    let text = ok(&admin(
        &addr,
        &["policy", "dry-run", &file, "--sample", "2"],
    ));
    {
        let log = log.lock().unwrap();
        assert_eq!(
            log.dry_run[0].policy_text,
            tier_core::policy::DEFAULT_POLICY_TOML
        );
        assert_eq!(log.dry_run[0].sample, 2);
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..9],
        [
            "dry run of policy default-2027.01 as of 2026-01-01T00:00:00Z",
            "",
            "from \\ to   A   B      C    D  total",
            "---------  --  --  -----  ---  -----",
            "A          20   2      -    -     22",
            "B           5  60      -    -     65",
            "C           -   -  1,500    7  1,507",
            "D           -   -      -  300    300",
            "(none)      -   -      -    3      3",
        ],
        "{text}"
    );
    assert_eq!(lines[9], "total      25  62  1,500  310  1,897", "{text}");
    assert_eq!(
        lines[11], "movers: 14 of 1,897 customers would change tier (2 shown)",
        "{text}"
    );
    assert_eq!(
        cells(lines[13]),
        ["customer", "from", "to", "score", "reasons"],
        "{text}"
    );
    assert_eq!(
        cells(lines[15]),
        ["c-5", "B", "A", "59.50 -> 60.75", "margin_12m +1.25"],
        "{text}"
    );
    assert_eq!(
        cells(lines[16]),
        ["c-9", "A", "B", "59.50 -> 58.75", "margin_12m -0.75"],
        "{text}"
    );

    // From stdin, default sample (0 = the server's), as JSON.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tierctl"))
        .env_remove("TIERD_TOKEN")
        .args(["--addr", &addr, "--token", ADMIN_TOKEN])
        .args(["policy", "dry-run", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"version = \"from-stdin\"\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["movers"], "14");
    assert_eq!(v["matrix"].as_array().unwrap().len(), 8);
    let log = log.lock().unwrap();
    assert_eq!(log.dry_run[1].policy_text, "version = \"from-stdin\"\n");
    assert_eq!(log.dry_run[1].sample, 0);
}

#[test]
fn policy_apply_waits_for_the_rescore() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);
    let file = policy_file("apply.toml", "version = \"v8\"\n");

    let out = admin(
        &addr,
        &["policy", "apply", &file, "--wait", "--interval", "0.1"],
    );
    let text = ok(&out);
    assert_eq!(
        log.lock().unwrap().apply[0].policy_text,
        "version = \"v8\"\n"
    );
    assert_eq!(
        text,
        "applied\n\
         version     v8\n\
         hash        c0ffee\n\
         applied at  2026-01-02T00:00:00Z\n\
         rescore     in progress, 0 of 10 customers (0%)\n\
         changes     0\n\
         rescoring v8: 4 of 10 customers (40%), 2 changes\n\
         rescoring v8: 8 of 10 customers (80%), 4 changes\n\
         rescored v8: 10 customers, 5 changes\n"
    );
    let out = admin(&addr, &["policy", "status"]);
    assert!(ok(&out).contains("rescore     done, 10 customers\n"));

    // Without --wait: the answer to ApplyPolicy only. As JSON, one status
    // per line with --wait.
    let text = ok(&admin(&addr, &["policy", "apply", &file]));
    assert!(text.starts_with("applied\nversion     v8\n"), "{text}");
    assert!(!text.contains("rescoring v8"), "{text}");
    let text = ok(&admin(
        &addr,
        &[
            "policy",
            "apply",
            &file,
            "--wait",
            "--interval",
            "0.1",
            "-o",
            "json",
        ],
    ));
    let statuses: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(statuses.len(), 4, "{text}");
    assert_eq!(statuses[0]["rescoring"], true);
    assert_eq!(statuses[3]["rescoring"], false);
    assert_eq!(statuses[3]["rescored"], "10");
}

#[test]
fn at_risk_table() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);

    let text = ok(&admin(&addr, &["at-risk", "--tier", "A", "--limit", "5"]));
    assert_eq!(
        log.lock().unwrap().at_risk[0],
        ListAtRiskCustomersRequest {
            tier: "A".into(),
            limit: 5
        }
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        cells(lines[0]),
        ["customer", "tier", "falls to", "on", "to keep it"]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "c-3",
            "A",
            "B",
            "2027-01-31",
            "orders of 120,000.00 CNY by 2027-01-31"
        ]
    );
    assert_eq!(
        cells(lines[3]),
        ["c-44", "B", "C", "2027-02-01", "an order by 2027-02-01"]
    );

    // Defaults: all tiers, the server's limit; JSON one per line.
    let text = ok(&admin(&addr, &["at-risk", "-o", "json"]));
    assert_eq!(
        log.lock().unwrap().at_risk[1],
        ListAtRiskCustomersRequest {
            tier: String::new(),
            limit: 0
        }
    );
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["falls_to"], "B");
    assert_eq!(first["on"], "2027-01-30T16:00:00Z");
    assert_eq!(text.lines().count(), 2);
    assert_eq!(
        admin(&addr, &["at-risk", "--limit", "0"]).status.code(),
        Some(2)
    );
}

#[test]
fn the_token_goes_with_every_call_and_new_fields_show() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);

    // From the environment, on the existing commands too.
    let text = ok(&run(&addr, Some(READ_TOKEN), &["get", "c-1"]));
    assert!(
        text.contains("tier          A\ncomputed      B\n"),
        "{text}"
    );
    assert!(text.contains("lifecycle     reactivated\n"), "{text}");
    assert!(text.contains("overridden    yes\n"), "{text}");
    assert!(
        text.contains(
            "override      floor A until 2027-01-31T00:00:00Z, set 2026-01-01T00:00:00Z by alice: key account\n"
        ),
        "{text}"
    );

    let text = ok(&run(&addr, Some(READ_TOKEN), &["explain", "c-1"]));
    assert!(
        text.contains("tier         A  (overridden; computed B)\n"),
        "{text}"
    );
    assert!(text.contains("computed     B\n"), "{text}");
    assert!(text.contains("lifecycle    reactivated\n"), "{text}");
    assert!(
        text.contains("override     floor A until 2027-01-31T00:00:00Z"),
        "{text}"
    );

    // The fake ends the stream after one change: exit 1 after the line.
    let out = run(&addr, Some(READ_TOKEN), &["watch"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_no_token(&out);
    assert_eq!(
        stdout(&out),
        "2026-01-01T00:00:00Z  c-1  B -> A (overridden; computed B)  score 58.25 -> 58.25  \
         lifecycle active  override  reasons: -  seq 3\n"
    );

    // --token wins over the environment.
    let out = run(&addr, Some("stale"), &["--token", READ_TOKEN, "get", "c-1"]);
    ok(&out);
    let auth = log.lock().unwrap().auth.clone();
    assert_eq!(auth.len(), 4);
    let expected = format!("Bearer {READ_TOKEN}");
    assert!(
        auth.iter().all(|a| a.as_deref() == Some(expected.as_str())),
        "{auth:?}"
    );

    // JSON carries the new fields.
    let out = run(&addr, Some(READ_TOKEN), &["get", "c-1", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["lifecycle"], "LIFECYCLE_REACTIVATED");
    assert_eq!(v["computed_tier"], "B");
    assert_eq!(v["override"]["author"], "alice");

    // The help names the variable, never its value.
    let out = run(&addr, Some(ADMIN_TOKEN), &["--help"]);
    let text = ok(&out);
    assert!(text.contains("TIERD_TOKEN"), "{text}");
}

#[test]
fn auth_failures_are_one_clear_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);
    let set = [
        "override", "set", "c-1", "--tier", "A", "--mode", "pin", "--reason", "r", "--author", "a",
    ];

    // No token at all.
    for args in [&set[..], &["get", "c-1"], &["policy", "status"]] {
        let out = run(&addr, None, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out),
            "error: UNAUTHENTICATED: missing bearer token (no token sent: pass --token or set TIERD_TOKEN)\n"
        );
        assert_eq!(stdout(&out), "");
    }
    assert!(log.lock().unwrap().auth.iter().all(Option::is_none));

    // A token the server does not know.
    let out = run(&addr, Some("nope-123"), &set);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: UNAUTHENTICATED: invalid bearer token\n"
    );
    assert!(!stderr(&out).contains("nope-123"));

    // A read token on a write.
    let out = run(&addr, Some(READ_TOKEN), &set);
    assert_eq!(out.status.code(), Some(1));
    assert_no_token(&out);
    assert_eq!(
        stderr(&out),
        "error: PERMISSION_DENIED: this token may not change tierd (admin token needed)\n"
    );
    assert!(log.lock().unwrap().set.is_empty());

    // A token that cannot be a header value: refused before any call,
    // without echoing it.
    let out = run(&addr, None, &["--token", "bad tok\u{e9}n", "get", "c-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the token (--token or TIERD_TOKEN) is not a valid"),
        "{err}"
    );
    assert!(!err.contains("tok\u{e9}n"), "{err}");
}

#[test]
fn invalid_arguments_show_the_server_message() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, log) = serve(&rt);

    let file = policy_file("bad.toml", "version = \"v9\"\n[[tiers]]\nmin_score = 200\n");
    let out = admin(&addr, &["policy", "apply", &file, "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: INVALID_ARGUMENT: line 3: tiers[0].min_score: 200 is not in 0..=100\n"
    );
    assert_eq!(stdout(&out), "");
    assert!(log.lock().unwrap().apply.is_empty());

    let out = admin(
        &addr,
        &[
            "override", "set", "c-1", "--tier", "Z", "--mode", "pin", "--reason", "r", "--author",
            "a",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: INVALID_ARGUMENT: tier \"Z\" is not in policy v7 (tiers: A, B, C, D)\n"
    );

    // A missing file is a plain error, before any call.
    let out = admin(&addr, &["policy", "dry-run", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot read /nonexistent/policy.toml: "),
        "{}",
        stderr(&out)
    );
    assert!(log.lock().unwrap().dry_run.is_empty());
}

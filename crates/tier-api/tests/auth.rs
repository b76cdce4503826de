//! Bearer-token authorization end to end: a real tonic server on
//! `127.0.0.1:0` with fake `AdminService`/`TierService` implementations
//! behind [`AuthLayer`], called with every kind of `authorization` header;
//! the decision for non-loopback peers (which a loopback test cannot
//! produce) through [`Auth::decide`] and the layer itself; and the wiring
//! of [`ApiServer::with_auth`].

// Test code: a panic is a failed test (clippy's allow-*-in-tests does not
// reach the harness helpers outside `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::TryStreamExt as _;
use http::HeaderMap;
use tier_api::auth::{Access, Grant, Refusal};
use tier_api::connection::Counted;
use tier_api::{ApiServer, Auth, AuthLayer, ReadModel, Scope, TierServiceImpl, health_pair};
use tier_core::policy::Policy;
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::admin_service_server::{AdminService, AdminServiceServer};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::tier_service_server::{TierService, TierServiceServer};
use tier_proto::api::{
    ApplyPolicyRequest, BatchGetTiersRequest, BatchGetTiersResponse, ClearOverrideRequest,
    CustomerTier, DryRunPolicyRequest, DryRunPolicyResponse, ExplainTierRequest,
    GetOverrideHistoryRequest, GetPolicyRequest, GetPolicyStatusRequest, GetTierRequest,
    ListAtRiskCustomersRequest, ListAtRiskCustomersResponse, OverrideHistory, OverrideResponse,
    PolicyInfo, PolicyStatus, RankByPriorityRequest, RankByPriorityResponse, SetOverrideRequest,
    TierChanged, TierExplanation, WatchTierChangesRequest,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::{Layer, Service};

const ADMIN_TOKEN: &str = "admin-token-5f2c9e1a7b";
const READ_TOKEN: &str = "read-token-3d8a0c6f4e";
const WRONG_TOKEN: &str = "wrong-token-0000000000";
/// What the fakes answer with: its presence means the handler ran.
const MARKER: &str = "fake-handler-answer";

// ---------------------------------------------------------------- fakes

/// Answers every RPC it implements with [`MARKER`] and counts the calls
/// that reached it.
#[derive(Clone, Default)]
struct Fake {
    calls: Arc<AtomicUsize>,
}

impl Fake {
    fn answer<T>(&self, request: &Request<T>) -> CustomerTier {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CustomerTier {
            customer_id: MARKER.to_owned(),
            // What the layer put in the extensions, for the handler.
            tier: format!("{:?}", request.extensions().get::<Grant>()),
            ..CustomerTier::default()
        }
    }
}

#[tonic::async_trait]
impl AdminService for Fake {
    async fn set_override(
        &self,
        request: Request<SetOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        Ok(Response::new(OverrideResponse {
            tier: Some(self.answer(&request)),
            change: None,
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
        _: Request<ClearOverrideRequest>,
    ) -> Result<Response<OverrideResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn apply_policy(
        &self,
        _: Request<ApplyPolicyRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

#[tonic::async_trait]
impl TierService for Fake {
    async fn get_tier(
        &self,
        request: Request<GetTierRequest>,
    ) -> Result<Response<CustomerTier>, Status> {
        Ok(Response::new(self.answer(&request)))
    }

    async fn batch_get_tiers(
        &self,
        _: Request<BatchGetTiersRequest>,
    ) -> Result<Response<BatchGetTiersResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn rank_by_priority(
        &self,
        _: Request<RankByPriorityRequest>,
    ) -> Result<Response<RankByPriorityResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn explain_tier(
        &self,
        _: Request<ExplainTierRequest>,
    ) -> Result<Response<TierExplanation>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type WatchTierChangesStream = tokio_stream::Empty<Result<TierChanged, Status>>;

    async fn watch_tier_changes(
        &self,
        _: Request<WatchTierChangesRequest>,
    ) -> Result<Response<Self::WatchTierChangesStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_override_history(
        &self,
        _: Request<GetOverrideHistoryRequest>,
    ) -> Result<Response<OverrideHistory>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_policy(
        &self,
        _: Request<GetPolicyRequest>,
    ) -> Result<Response<PolicyInfo>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn dry_run_policy(
        &self,
        _: Request<DryRunPolicyRequest>,
    ) -> Result<Response<DryRunPolicyResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_policy_status(
        &self,
        _: Request<GetPolicyStatusRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_at_risk_customers(
        &self,
        _: Request<ListAtRiskCustomersRequest>,
    ) -> Result<Response<ListAtRiskCustomersResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_customers(
        &self,
        _request: Request<tier_proto::api::ListCustomersRequest>,
    ) -> Result<Response<tier_proto::api::ListCustomersResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_tier_distribution(
        &self,
        _request: Request<tier_proto::api::GetTierDistributionRequest>,
    ) -> Result<Response<tier_proto::api::TierDistribution>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_account_manager_balance(
        &self,
        _request: Request<tier_proto::api::GetAccountManagerBalanceRequest>,
    ) -> Result<Response<tier_proto::api::AccountManagerBalance>, Status> {
        Err(Status::unimplemented("fake"))
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

// -------------------------------------------------------------- harness

struct Harness {
    channel: Channel,
    fake: Fake,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// The fakes and health behind `AuthLayer::new(auth)` on `127.0.0.1:0`.
async fn start(auth: Auth) -> Harness {
    let fake = Fake::default();
    let (_, health) = health_pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        Server::builder()
            .layer(AuthLayer::new(auth))
            .add_service(AdminServiceServer::new(fake.clone()))
            .add_service(TierServiceServer::new(fake.clone()))
            .add_service(tonic_health::pb::health_server::HealthServer::new(health))
            // Each connection counted, as `ApiServer` serves them: the
            // peer comes from its `ConnectionInfo`.
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).map_ok(Counted::new),
                shutdown.clone().cancelled_owned(),
            ),
    );
    Harness {
        channel: connect(addr).await,
        fake,
        shutdown,
        server,
    }
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `message` with `authorization: <header>` when given.
fn with_header<T>(message: T, header: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(header) = header {
        request
            .metadata_mut()
            .insert("authorization", header.parse().unwrap());
    }
    request
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn tokens() -> Auth {
    Auth::from_tokens(vec![
        (Scope::Admin, ADMIN_TOKEN.to_owned()),
        (Scope::Read, READ_TOKEN.to_owned()),
    ])
}

impl Harness {
    fn calls(&self) -> usize {
        self.fake.calls.load(Ordering::SeqCst)
    }

    /// `SetOverride` (admin); the answer's `CustomerTier`.
    async fn admin(&self, header: Option<&str>) -> Result<CustomerTier, Status> {
        let request = with_header(SetOverrideRequest::default(), header);
        let response = AdminServiceClient::new(self.channel.clone())
            .set_override(request)
            .await?;
        Ok(response.into_inner().tier.unwrap())
    }

    /// `GetTier` (read).
    async fn read(&self, header: Option<&str>) -> Result<CustomerTier, Status> {
        let request = with_header(GetTierRequest::default(), header);
        let response = TierServiceClient::new(self.channel.clone())
            .get_tier(request)
            .await?;
        Ok(response.into_inner())
    }

    /// `result` is a refusal with `code`, a message containing `says`
    /// and no token, and the handler did not run.
    fn assert_refused(
        &self,
        what: &str,
        result: Result<CustomerTier, Status>,
        code: Code,
        says: &str,
    ) {
        let before = self.calls();
        let status = match result {
            Ok(answer) => panic!("{what}: answered {answer:?}, expected {code:?}"),
            Err(status) => status,
        };
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(
            status.message().contains(says),
            "{what}: {:?} lacks {says:?}",
            status.message()
        );
        for token in [ADMIN_TOKEN, READ_TOKEN, WRONG_TOKEN, "xyz"] {
            assert!(
                !status.message().contains(token),
                "{what}: message echoes a token: {status:?}"
            );
        }
        assert!(status.details().is_empty(), "{what}: details in a refusal");
        assert!(
            !status.message().contains(MARKER),
            "{what}: handler data in a refusal"
        );
        assert_eq!(self.calls(), before, "{what}: handler called");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

fn assert_answered(what: &str, result: Result<CustomerTier, Status>) -> CustomerTier {
    match result {
        Ok(answer) => {
            assert_eq!(answer.customer_id, MARKER, "{what}");
            answer
        }
        Err(status) => panic!("{what}: refused: {status:?}"),
    }
}

/// The refusals every RPC needing a token gives before looking at scopes.
async fn assert_bad_credentials_refused(
    h: &Harness,
    call: impl AsyncFn(&Harness, Option<&str>) -> Result<CustomerTier, Status>,
) {
    let unauthenticated = Code::Unauthenticated;
    h.assert_refused(
        "no token",
        call(h, None).await,
        unauthenticated,
        "missing bearer token",
    );
    for header in ["Basic xyz", "Bearer", "Bearer ", "Bearer  ", "Token xyz"] {
        h.assert_refused(
            header,
            call(h, Some(header)).await,
            unauthenticated,
            "malformed authorization header",
        );
    }
    h.assert_refused(
        "wrong token",
        call(h, Some(&bearer(WRONG_TOKEN))).await,
        unauthenticated,
        "invalid bearer token",
    );
    let almost = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    h.assert_refused(
        "admin token prefix",
        call(h, Some(&bearer(almost))).await,
        unauthenticated,
        "invalid bearer token",
    );
    h.assert_refused(
        "admin token plus a character",
        call(h, Some(&bearer(&format!("{ADMIN_TOKEN}x")))).await,
        unauthenticated,
        "invalid bearer token",
    );
}

// ---------------------------------------------------------- over the wire

#[tokio::test]
async fn admin_rpc_needs_an_admin_token() {
    let h = start(tokens()).await;
    assert_bad_credentials_refused(&h, Harness::admin).await;
    h.assert_refused(
        "read token",
        h.admin(Some(&bearer(READ_TOKEN))).await,
        Code::PermissionDenied,
        "needs an admin token",
    );
    let answer = assert_answered("admin token", h.admin(Some(&bearer(ADMIN_TOKEN))).await);
    assert!(
        answer.tier.contains("Admin"),
        "grant seen by the handler: {}",
        answer.tier
    );
    assert_answered(
        "lower-case scheme",
        h.admin(Some(&format!("bearer {ADMIN_TOKEN}"))).await,
    );
    assert_eq!(h.calls(), 2);
    h.stop().await;
}

#[tokio::test]
async fn read_rpc_needs_a_read_or_admin_token_when_read_tokens_are_configured() {
    let h = start(tokens()).await;
    assert_bad_credentials_refused(&h, Harness::read).await;
    let answer = assert_answered("read token", h.read(Some(&bearer(READ_TOKEN))).await);
    assert!(answer.tier.contains("Read"), "{}", answer.tier);
    assert_answered("admin token", h.read(Some(&bearer(ADMIN_TOKEN))).await);
    assert_eq!(h.calls(), 2);
    h.stop().await;
}

#[tokio::test]
async fn with_admin_tokens_only_reads_are_open_and_admin_still_needs_its_token() {
    let h = start(Auth::from_tokens(vec![(
        Scope::Admin,
        ADMIN_TOKEN.to_owned(),
    )]))
    .await;
    assert_answered("read, no token", h.read(None).await);
    h.assert_refused(
        "admin, no token",
        h.admin(None).await,
        Code::Unauthenticated,
        "missing",
    );
    assert_answered("admin token", h.admin(Some(&bearer(ADMIN_TOKEN))).await);
    h.stop().await;
}

#[tokio::test]
async fn with_read_tokens_only_admin_rpcs_are_refused() {
    let h = start(Auth::from_tokens(vec![(
        Scope::Read,
        READ_TOKEN.to_owned(),
    )]))
    .await;
    h.assert_refused(
        "admin, read token",
        h.admin(Some(&bearer(READ_TOKEN))).await,
        Code::PermissionDenied,
        "needs an admin token",
    );
    h.assert_refused(
        "admin, no token",
        h.admin(None).await,
        Code::Unauthenticated,
        "missing",
    );
    assert_answered("read token", h.read(Some(&bearer(READ_TOKEN))).await);
    h.stop().await;
}

#[tokio::test]
async fn with_no_tokens_loopback_may_call_admin_and_anyone_may_read() {
    let h = start(Auth::none()).await;
    let answer = assert_answered("admin from loopback", h.admin(None).await);
    assert!(answer.tier.contains("Loopback"), "{}", answer.tier);
    assert_answered(
        "admin from loopback, any header",
        h.admin(Some("Basic xyz")).await,
    );
    assert_answered("read, no token", h.read(None).await);
    h.stop().await;
}

#[tokio::test]
async fn health_stays_open_with_tokens_configured() {
    let h = start(tokens()).await;
    let mut health = HealthClient::new(h.channel.clone());
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    health
        .check(with_header(
            HealthCheckRequest {
                service: String::new(),
            },
            Some("Basic xyz"),
        ))
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn the_handler_sees_the_named_entry_that_matched() {
    let auth = Auth::parse(
        &format!(
            "[[token]]\nscope = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\nname = \"ops-oncall\"\n"
        ),
        Path::new("tokens.toml"),
    )
    .unwrap();
    let h = start(auth).await;
    let answer = assert_answered("admin token", h.admin(Some(&bearer(ADMIN_TOKEN))).await);
    assert!(answer.tier.contains("ops-oncall"), "{}", answer.tier);
    h.stop().await;
}

// ------------------------------------------------- non-loopback decisions

fn peer(addr: &str) -> Option<SocketAddr> {
    Some(addr.parse().unwrap())
}

#[test]
fn with_no_tokens_admin_rpcs_from_other_peers_are_denied() {
    let auth = Auth::none();
    let none = HeaderMap::new();
    for remote in [peer("10.0.0.7:51000"), peer("[2001:db8::1]:51000"), None] {
        let refusal = auth.decide(Access::Admin, &none, remote).unwrap_err();
        assert_eq!(refusal, Refusal::NotLoopback, "{remote:?}");
        let status = Status::from(refusal);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(
            status.message().contains("--auth-tokens-file"),
            "{status:?}"
        );
        assert_eq!(auth.decide(Access::Read, &none, remote), Ok(Grant::Open));
        assert_eq!(auth.decide(Access::Open, &none, remote), Ok(Grant::Open));
    }
    for local in [
        "127.0.0.1:1",
        "127.8.9.10:1",
        "[::1]:1",
        "[::ffff:127.0.0.1]:1",
    ] {
        assert_eq!(
            auth.decide(Access::Admin, &none, peer(local)),
            Ok(Grant::Loopback),
            "{local}"
        );
    }
}

#[test]
fn with_tokens_the_peer_does_not_matter() {
    let auth = tokens();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", bearer(ADMIN_TOKEN).parse().unwrap());
    let grant = auth
        .decide(Access::Admin, &headers, peer("10.0.0.7:51000"))
        .unwrap();
    assert!(matches!(
        grant,
        Grant::Token {
            scope: Scope::Admin,
            ..
        }
    ));
    let refusal = auth.decide(Access::Admin, &HeaderMap::new(), peer("127.0.0.1:1"));
    assert_eq!(refusal, Err(Refusal::MissingToken));
}

/// An inner service counting its calls, answering with a body.
#[derive(Clone, Default)]
struct Inner {
    calls: Arc<AtomicUsize>,
}

impl Service<http::Request<()>> for Inner {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ready(Ok(http::Response::new(MARKER.to_owned())))
    }
}

fn admin_request_from(remote: &str) -> http::Request<()> {
    let mut request = http::Request::builder()
        .uri("/tiering.v1.AdminService/SetOverride")
        .body(())
        .unwrap();
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr: peer("10.0.0.1:50051"),
        remote_addr: peer(remote),
    });
    request
}

#[tokio::test]
async fn the_layer_refuses_a_remote_admin_rpc_without_calling_the_service() {
    let inner = Inner::default();
    let mut service = AuthLayer::new(Auth::none()).layer(inner.clone());

    let response = service
        .call(admin_request_from("192.0.2.10:40000"))
        .await
        .unwrap();
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
    assert!(
        response.body().is_empty(),
        "refusal has a body: {:?}",
        response.body()
    );
    let status = Status::from_header_map(response.headers()).unwrap();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("--auth-tokens-file"),
        "{status:?}"
    );

    let response = service
        .call(admin_request_from("127.0.0.1:40000"))
        .await
        .unwrap();
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    assert_eq!(response.body(), MARKER);
}

// -------------------------------------------------------- ApiServer wiring

#[tokio::test]
async fn api_server_with_auth_guards_reads_and_leaves_health_and_reflection_open() {
    use tonic_reflection::pb::v1;

    let (changes, _) = broadcast::channel(4);
    let service = TierServiceImpl::new(
        Arc::new(ReadModel::new()),
        Arc::new(Policy::default_policy()),
        changes,
    );
    let (_, health) = health_pair();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        ApiServer::new(service, health)
            .with_auth(tokens())
            .serve(listener, shutdown.clone()),
    );
    let channel = connect(addr).await;

    let mut client = TierServiceClient::new(channel.clone());
    let refused = client
        .get_tier(GetTierRequest {
            customer_id: "c-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // Past auth, the real handler answers: the customer is unknown.
    let answered = client
        .get_tier(with_header(
            GetTierRequest {
                customer_id: "c-1".into(),
            },
            Some(&bearer(READ_TOKEN)),
        ))
        .await
        .unwrap_err();
    assert_eq!(answered.code(), Code::NotFound, "{answered:?}");

    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();

    let mut reflection = v1::server_reflection_client::ServerReflectionClient::new(channel);
    let list = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .unwrap()
        .into_inner();
    responses.message().await.unwrap().unwrap();

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

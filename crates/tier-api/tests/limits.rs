//! The API server's limits under load, on the real server assembly
//! ([`ApiServer::serve`], what tierd runs) on `127.0.0.1:0`.
//!
//! A slow request is a production one: `DryRunPolicy` waits for the
//! engine, and the engine here is a command channel nobody drains (a busy
//! or stuck engine). The test takes the command off the channel to know
//! the request is in its handler, and lets it go by dropping the command
//! (its reply with it: the request ends `UNAVAILABLE`).
//!
//! Proven: with one request in flight allowed per connection, a second on
//! the same connection is shed at once with `RESOURCE_EXHAUSTED` while
//! another connection is served; a request past the server's timeout, or
//! the client's shorter deadline, ends `CANCELLED`; the server keeps
//! serving afterwards; both are counted in `tierd_grpc_requests_total`.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tier_api::{ApiError, ApiServer, Limits, ReadModel, TierServiceImpl, health_pair};
use tier_core::policy::{DEFAULT_POLICY_TOML, Policy};
use tier_engine::{ActivePolicy, Command, PolicyHandle};
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{DryRunPolicyRequest, GetPolicyRequest};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

// ---------------------------------------------------------------- harness

struct Harness {
    addr: SocketAddr,
    /// One HTTP/2 connection; clones share it.
    channel: Channel,
    /// The engine's command channel, never drained by an engine.
    inbox: Arc<Mutex<Receiver<Command>>>,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), ApiError>>,
}

async fn start(limits: Limits) -> Harness {
    metrics_recorder();
    let active = ActivePolicy::new(
        Policy::default_policy(),
        DEFAULT_POLICY_TOML.to_owned(),
        "test".into(),
    );
    let policy = Arc::new(PolicyHandle::new(Arc::new(active)));
    let (commands, inbox) = tier_engine::command::channel(16);
    let (changes, _) = broadcast::channel(16);
    let service =
        TierServiceImpl::with_engine(Arc::new(ReadModel::new()), policy, commands, changes);
    let (health, health_service) = health_pair();
    health.set_serving(true);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        ApiServer::new(service, health_service)
            .with_limits(limits)
            .serve(listener, shutdown.clone()),
    );
    Harness {
        addr,
        channel: connect(addr).await,
        inbox: Arc::new(Mutex::new(inbox)),
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

impl Harness {
    fn client(&self) -> TierServiceClient<Channel> {
        TierServiceClient::new(self.channel.clone())
    }

    /// The next command the API handed to the engine (a handler is
    /// waiting on its reply while the test holds it).
    async fn engine_receives(&self) -> Command {
        let inbox = Arc::clone(&self.inbox);
        tokio::task::spawn_blocking(move || {
            inbox
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .expect("the request reached the engine")
        })
        .await
        .unwrap()
    }

    /// Serving: health says so and a request on the same connection is
    /// answered.
    async fn assert_serving(&self) {
        let status = HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
        let policy = self
            .client()
            .get_policy(GetPolicyRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(policy.version, Policy::default_policy().version());
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.server)
            .await
            .expect("server stops after cancel")
            .unwrap()
            .unwrap();
    }
}

/// A request that waits for the engine.
fn dry_run() -> DryRunPolicyRequest {
    DryRunPolicyRequest {
        policy_text: DEFAULT_POLICY_TOML.to_owned(),
        sample: 0,
    }
}

#[path = "support/recorder.rs"]
mod recorder;
use recorder::{counter, metrics_recorder};

fn requests(method: &str, code: &str) -> u64 {
    counter(&format!(
        "tierd_grpc_requests_total{{method={method},code={code}}}"
    ))
}

/// Poll until `requests(method, code)` reaches `want`, up to 5 s.
async fn wait_for_requests(method: &str, code: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while requests(method, code) < want {
        assert!(
            Instant::now() < deadline,
            "{method} {code}: counted {} of {want}",
            requests(method, code)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_request_beyond_the_connections_limit_is_shed_and_counted() {
    let h = start(Limits {
        concurrent_requests_per_connection: 1,
        request_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let shed_before = requests("GetPolicy", "RESOURCE_EXHAUSTED");

    // The connection's one place: a request waiting for the engine.
    let mut slow_client = h.client();
    let slow = tokio::spawn(async move { slow_client.dry_run_policy(dry_run()).await });
    let command = h.engine_receives().await;

    // A second request on the same connection: shed at once, not queued.
    let started = Instant::now();
    let err = h
        .client()
        .get_policy(GetPolicyRequest {})
        .await
        .expect_err("a second request in flight on the connection is shed");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too many requests"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shed at once, not after waiting for a place: {:?}",
        started.elapsed()
    );
    assert_eq!(
        requests("GetPolicy", "RESOURCE_EXHAUSTED"),
        shed_before + 1,
        "the shed request is counted under its method"
    );

    // The limit is per connection: another connection is served.
    let other = connect(h.addr).await;
    TierServiceClient::new(other)
        .get_policy(GetPolicyRequest {})
        .await
        .expect("another connection has its own places");

    // The engine gives up the command (its reply is dropped): the slow
    // request ends, its place is free again.
    drop(command);
    let err = slow.await.unwrap().expect_err("the engine never answered");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    h.assert_serving().await;
    h.stop().await;
}

#[tokio::test]
async fn a_request_past_the_timeout_is_cancelled_counted_and_the_server_stays_healthy() {
    let timeout = Duration::from_millis(300);
    let h = start(Limits {
        concurrent_requests_per_connection: 1,
        request_timeout: timeout,
        ..Limits::default()
    })
    .await;
    let cancelled_before = requests("DryRunPolicy", "CANCELLED");

    // The server's own timeout.
    let started = Instant::now();
    let err = h
        .client()
        .dry_run_policy(dry_run())
        .await
        .expect_err("the engine never answers");
    let took = started.elapsed();
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    assert!(err.message().contains("Timeout expired"), "{err:?}");
    assert!(
        took >= timeout && took < Duration::from_secs(5),
        "cancelled after the 300 ms timeout, took {took:?}"
    );
    let command = h.engine_receives().await;
    wait_for_requests("DryRunPolicy", "CANCELLED", cancelled_before + 1).await;
    drop(command);
    // Its place on the connection was given back (the limit is 1).
    h.assert_serving().await;

    // A client deadline shorter than the server's timeout wins.
    let h2 = start(Limits {
        request_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut request = Request::new(dry_run());
    request.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = h2
        .client()
        .dry_run_policy(request)
        .await
        .expect_err("the engine never answers");
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client's 200 ms deadline, not the server's 60 s: {:?}",
        started.elapsed()
    );
    // The client gave up first (its own timer); the server's, started a
    // moment later, drops the handler: counted while the engine still
    // holds the command.
    let command = h2.engine_receives().await;
    wait_for_requests("DryRunPolicy", "CANCELLED", cancelled_before + 2).await;
    drop(command);
    h2.assert_serving().await;

    h.stop().await;
    h2.stop().await;
}

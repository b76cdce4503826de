//! Server assembly: `TierService`, `grpc.health.v1` and reflection (v1 and
//! v1alpha) on one already-bound listener, behind the bearer-token
//! [`AuthLayer`], until a cancellation token fires; optionally over TLS or
//! mutual TLS ([`ApiTls`]), always within [`Limits`].
//!
//! ## Limits
//! - A request message larger than [`Limits::max_request_bytes`] is
//!   refused before it is decoded (`OUT_OF_RANGE`, tonic's code for an
//!   oversized message); batch RPCs also cap their id lists
//!   ([`crate::MAX_BATCH_IDS`], `INVALID_ARGUMENT` naming the field).
//! - At most [`Limits::concurrent_requests_per_connection`] requests run
//!   at once per connection; more are shed at once with
//!   `RESOURCE_EXHAUSTED` rather than queued, so one client flooding a
//!   connection gets told to back off and nobody else waits
//!   ([`crate::shed`]; counted in `tierd_grpc_requests_total`).
//! - Every request ends within [`Limits::request_timeout`], or the
//!   client's own deadline (`grpc-timeout`) when shorter; a request past
//!   it is cancelled: the client gets `CANCELLED` ("Timeout expired",
//!   tonic's code for a server-side timeout) and the request is counted
//!   under `CANCELLED`. The timeout covers producing the response: a
//!   stream's messages (`WatchTierChanges`) flow for as long as the
//!   client keeps it open.
//!
//! `tests/limits.rs` drives both against this very server assembly.

use std::time::Duration;

use futures::TryStreamExt as _;
use tier_proto::api::admin_service_server::AdminServiceServer;
use tier_proto::api::tier_service_server::TierServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::HealthServer;

use crate::admin::AdminServiceImpl;
use crate::auth::{Auth, AuthLayer};
use crate::connection::Counted;
use crate::error::ApiError;
use crate::health::HealthService;
use crate::service::TierServiceImpl;
use crate::shed::ShedLayer;
use crate::tls::ApiTls;

/// How long [`ApiServer::serve`] waits, after `shutdown` fired, for open
/// connections to finish their requests before it returns anyway.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// HTTP/2 pings on idle connections, so a vanished `WatchTierChanges`
/// client is noticed and its stream dropped.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resource limits of the API server (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Requests served at once per connection; the rest are shed.
    pub concurrent_requests_per_connection: usize,
    /// Longest a request may run (a shorter client deadline wins).
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// 4 MiB requests (a 1,000-id batch is about 20 KiB), 256 concurrent
    /// requests per connection, 30 s per request.
    fn default() -> Self {
        Self {
            max_request_bytes: 4 * 1024 * 1024,
            concurrent_requests_per_connection: 256,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The API server: the services to expose and how to shut down.
#[derive(Debug)]
pub struct ApiServer {
    service: TierServiceImpl,
    health: HealthService,
    grace: Duration,
    auth: Auth,
    admin: Option<AdminServiceImpl>,
    tls: Option<ApiTls>,
    limits: Limits,
}

impl ApiServer {
    /// A server exposing `service`, health and reflection, with no auth
    /// tokens ([`Auth::none`]) until [`ApiServer::with_auth`].
    pub fn new(service: TierServiceImpl, health: HealthService) -> Self {
        Self {
            service,
            health,
            grace: DEFAULT_GRACE_PERIOD,
            auth: Auth::none(),
            admin: None,
            tls: None,
            limits: Limits::default(),
        }
    }

    /// Serve over TLS (mutual TLS when `tls` has a client CA).
    pub fn with_tls(mut self, tls: ApiTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Change the limits (default [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Also expose `tiering.v1.AdminService` (overrides, policy changes).
    pub fn with_admin(mut self, admin: AdminServiceImpl) -> Self {
        self.admin = Some(admin);
        self
    }

    /// Authorize requests with `auth` (default [`Auth::none`]: admin RPCs
    /// from loopback peers only, read RPCs open).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Change the shutdown grace period (default [`DEFAULT_GRACE_PERIOD`]).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serve on `listener` until `shutdown` is cancelled.
    ///
    /// On cancel: stop accepting, report `NOT_SERVING`, end open
    /// `WatchTierChanges` (`UNAVAILABLE`) and health `Watch` streams, let
    /// unary requests in flight finish, and return once every connection
    /// closed or the grace period passed, whichever is first.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ApiError> {
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tier_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tier_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let health = self.health.with_shutdown(shutdown.clone());
        let handle = health.handle();
        let service = self.service.with_shutdown(shutdown.clone());
        let tls = match &self.tls {
            Some(tls) if tls.is_mutual() => "mutual TLS",
            Some(_) => "TLS",
            None => "plaintext",
        };
        tracing::info!(addr = ?listener.local_addr().ok(), tls, limits = ?self.limits, "gRPC API listening");
        self.auth.log_mode();

        let signal = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                handle.set_serving(false);
                tracing::info!("gRPC API shutting down: no new connections");
            }
        };
        // `TcpIncoming` rather than a bare `TcpListenerStream`: the builder's
        // `tcp_nodelay` only applies to listeners tonic binds itself, and
        // without TCP_NODELAY small responses wait out delayed ACKs (~40 ms).
        // Each connection gets its own requests-in-flight counter.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map_ok(Counted::new);
        let limits = self.limits;
        let mut builder = Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.server_config())?;
        }
        let server = builder
            .trace_fn(request_span)
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .timeout(limits.request_timeout)
            // Shed before authorizing: a flood costs no token checks.
            .layer(ShedLayer::new(limits.concurrent_requests_per_connection))
            .layer(AuthLayer::new(self.auth))
            .add_service(
                TierServiceServer::new(service).max_decoding_message_size(limits.max_request_bytes),
            )
            .add_optional_service(self.admin.map(|admin| {
                AdminServiceServer::new(admin).max_decoding_message_size(limits.max_request_bytes)
            }))
            .add_service(HealthServer::new(health))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(incoming, signal);

        let grace = self.grace;
        let deadline = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => {
                result?;
                tracing::info!("gRPC API stopped");
                Ok(())
            }
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs_f64(), "gRPC connections still open after the grace period; stopping anyway");
                Ok(())
            }
        }
    }
}

/// The span every request is served in: its method path and, when the
/// caller sent a valid W3C `traceparent`, the trace id, so log lines of the
/// request can be found by the caller's trace. Exported spans (OTLP) are
/// named by the path, and are children of the caller's span
/// ([`tier_wire::trace::adopt`]).
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let trace = request
        .headers()
        .get(tier_wire::trace::TraceParent::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(tier_wire::trace::TraceParent::parse);
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc",
        path,
        trace_id = trace.map(|t| t.trace_id()),
        otel.name = path,
        otel.kind = "server"
    );
    if let Some(trace) = &trace {
        tier_wire::trace::adopt(&span, trace);
    }
    span
}

/// Serve `TierService` + `grpc.health.v1` + reflection (v1 and v1alpha) on
/// an already-bound listener until `shutdown` is cancelled, with no auth
/// tokens ([`Auth::none`]). See [`ApiServer::serve`].
pub async fn serve(
    listener: TcpListener,
    service: TierServiceImpl,
    health: HealthService,
    shutdown: CancellationToken,
) -> Result<(), ApiError> {
    ApiServer::new(service, health)
        .serve(listener, shutdown)
        .await
}

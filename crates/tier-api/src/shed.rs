//! Per-connection load shedding, counted: at most
//! [`Limits::concurrent_requests_per_connection`](crate::Limits) requests
//! of one connection are in flight; one more is answered at once with
//! `RESOURCE_EXHAUSTED` (never queued) and counted in
//! [`GRPC_REQUESTS`](crate::metrics::GRPC_REQUESTS) under its method.
//!
//! tonic's own `concurrency_limit_per_connection` + `load_shed` shed the
//! same way, but outside every layer the server adds, so a shed request
//! reached no handler and was counted nowhere. This layer sits inside
//! tonic's stack instead and tells connections apart by their addresses
//! (tonic's [`TcpConnectInfo`], present over plaintext and TLS alike): a
//! TCP connection is the only one with its local and peer address while it
//! is open. A request without connection info (not served over TCP) is
//! not limited.
//!
//! A request holds its place until its response starts (for a stream:
//! until it opened), exactly as tower's concurrency limit does; a request
//! dropped unanswered (the request timeout) gives its place back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::error::code_label;
use crate::metrics::{GRPC_REQUESTS, method_label};

/// A connection: its local and peer address.
type Connection = (Option<SocketAddr>, Option<SocketAddr>);

/// Requests in flight per open connection (connections with none are not
/// kept).
type InFlight = Arc<Mutex<HashMap<Connection, usize>>>;

/// Sheds a connection's requests beyond `limit` in flight.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    limit: usize,
    in_flight: InFlight,
}

impl ShedLayer {
    /// At most `limit` (at least 1) requests in flight per connection.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            in_flight: InFlight::default(),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            limit: self.limit,
            in_flight: Arc::clone(&self.in_flight),
        }
    }
}

/// The service [`ShedLayer`] wraps around `S`.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    limit: usize,
    in_flight: InFlight,
}

/// A request's place on its connection, given back when dropped.
struct Place {
    connection: Connection,
    in_flight: InFlight,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.connection) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.connection);
            }
        }
    }
}

impl<S> Shed<S> {
    /// A place for one more request of `connection`, if it has one free.
    fn take_place(&self, connection: Connection) -> Option<Place> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(connection).or_default();
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Place {
            connection,
            in_flight: Arc::clone(&self.in_flight),
        })
    }
}

impl<S, B, ResBody> Service<Request<B>> for Shed<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(connection) = request
            .extensions()
            .get::<TcpConnectInfo>()
            .map(|info| (info.local_addr, info.remote_addr))
        else {
            return self.inner.call(request).boxed();
        };
        match self.take_place(connection) {
            Some(place) => {
                let response = self.inner.call(request);
                async move {
                    let response = response.await;
                    drop(place);
                    response
                }
                .boxed()
            }
            None => {
                let method = method_label(request.uri().path());
                tracing::debug!(
                    path = request.uri().path(),
                    peer = ?connection.1,
                    limit = self.limit,
                    "gRPC request shed: too many in flight on its connection"
                );
                metrics::counter!(GRPC_REQUESTS, "method" => method, "code" => code_label(Code::ResourceExhausted))
                    .increment(1);
                let status = Status::resource_exhausted(format!(
                    "too many requests in flight on this connection (at most {}); retry with backoff",
                    self.limit
                ));
                futures::future::ready(Ok(status.into_http())).boxed()
            }
        }
    }
}

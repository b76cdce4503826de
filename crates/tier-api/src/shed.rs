//! Per-connection load shedding, counted: at most
//! [`Limits::concurrent_requests_per_connection`](crate::Limits) requests
//! of one connection are in flight; one more is answered at once with
//! `RESOURCE_EXHAUSTED` (never queued) and counted in
//! [`GRPC_REQUESTS`](crate::metrics::GRPC_REQUESTS) under its method.
//!
//! tonic's own `concurrency_limit_per_connection` + `load_shed` shed the
//! same way, but outside every layer the server adds, so a shed request
//! reached no handler and was counted nowhere. This layer sits inside
//! tonic's stack instead and counts on the connection's own counter
//! ([`ConnectionInfo`], which [`ApiServer`](crate::ApiServer) gives every
//! connection it accepts): one atomic operation a request, no lock shared
//! by every connection. A request without it (not served by `ApiServer`)
//! is not limited.
//!
//! A request holds its place until its response starts (for a stream:
//! until it opened), exactly as tower's concurrency limit does; a request
//! dropped unanswered (the request timeout) gives its place back.

use std::task::{Context, Poll};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::connection::ConnectionInfo;
use crate::error::code_label;
use crate::metrics::{GRPC_REQUESTS, method_label};

/// Sheds a connection's requests beyond `limit` in flight.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    limit: usize,
}

impl ShedLayer {
    /// At most `limit` (at least 1) requests in flight per connection.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`ShedLayer`] wraps around `S`.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    limit: usize,
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
        let place = match request.extensions().get::<ConnectionInfo>() {
            Some(connection) => connection.take_place(self.limit),
            None => return self.inner.call(request).boxed(),
        };
        match place {
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
                    peer = ?ConnectionInfo::peer_of(&request),
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

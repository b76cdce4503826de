//! `grpc.health.v1.Health`, driven by the daemon's readiness.
//!
//! Health starts `NOT_SERVING` for the whole server (`""`) and for
//! `tiering.v1.TierService`; the daemon flips it with
//! [`HealthHandle::set_serving`] when ingest has caught up or stalls: that
//! is readiness. [`LIVENESS_SERVICE`] is `SERVING` for as long as the
//! server answers (until shutdown), whatever ingest does: a liveness probe
//! on it does not restart a tierd that is catching up or waiting for its
//! brokers, which a restart would not help. Our
//! own small implementation (rather than `tonic_health`'s reporter) keeps
//! `set_serving` synchronous and lets `Watch` streams end on shutdown,
//! which a graceful shutdown needs: it waits for every open stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tier_proto::api::tier_service_server::SERVICE_NAME;
use tokio::sync::watch;
use tokio_stream::Stream;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::error::ApiError;

/// The service names health reports readiness on: the whole server and the
/// API.
pub const HEALTH_SERVICES: [&str; 2] = ["", SERVICE_NAME];

/// The service name a liveness probe checks: `SERVING` until shutdown.
pub const LIVENESS_SERVICE: &str = "tierd.liveness";

/// Flips the reported health. Cheap to clone; every clone drives the same
/// [`HealthService`].
#[derive(Debug, Clone)]
pub struct HealthHandle {
    serving: Arc<watch::Sender<bool>>,
}

impl HealthHandle {
    /// Report `SERVING` (true) or `NOT_SERVING` (false) for every service
    /// in [`HEALTH_SERVICES`]. Watchers are told only about changes.
    pub fn set_serving(&self, serving: bool) {
        self.serving.send_if_modified(|current| {
            let changed = *current != serving;
            *current = serving;
            changed
        });
    }

    /// What is reported now.
    pub fn is_serving(&self) -> bool {
        *self.serving.borrow()
    }
}

/// The `grpc.health.v1.Health` service. Add it with
/// `tonic_health::pb::health_server::HealthServer::new`, or let
/// [`crate::serve`] do it.
#[derive(Debug, Clone)]
pub struct HealthService {
    serving: Arc<watch::Sender<bool>>,
    shutdown: CancellationToken,
}

/// A linked handle and service, reporting `NOT_SERVING` until
/// [`HealthHandle::set_serving`]`(true)`.
pub fn health_pair() -> (HealthHandle, HealthService) {
    let (tx, _rx) = watch::channel(false);
    let serving = Arc::new(tx);
    (
        HealthHandle {
            serving: Arc::clone(&serving),
        },
        HealthService {
            serving,
            shutdown: CancellationToken::new(),
        },
    )
}

impl HealthService {
    /// End open `Watch` streams when `shutdown` is cancelled (after a last
    /// `NOT_SERVING`). [`crate::serve`] sets this itself.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// A handle driving this service.
    pub fn handle(&self) -> HealthHandle {
        HealthHandle {
            serving: Arc::clone(&self.serving),
        }
    }

    fn known(service: &str) -> Result<(), ApiError> {
        if HEALTH_SERVICES.contains(&service) || service == LIVENESS_SERVICE {
            Ok(())
        } else {
            Err(ApiError::UnknownService {
                service: service.to_owned(),
            })
        }
    }
}

fn status_of(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        Self::known(service)?;
        let serving = if service == LIVENESS_SERVICE {
            !self.shutdown.is_cancelled()
        } else {
            *self.serving.borrow()
        };
        Ok(Response::new(response(status_of(serving))))
    }

    type WatchStream = HealthWatchStream;

    /// Per the health protocol, an unknown service is not an error for
    /// `Watch`: it reports `SERVICE_UNKNOWN` and keeps the stream open.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = &request.get_ref().service;
        let known = Self::known(service).is_ok();
        Ok(Response::new(HealthWatchStream {
            statuses: WatchStream::new(self.serving.subscribe()),
            known,
            alive: service == LIVENESS_SERVICE,
            last: None,
            shutdown: Box::pin(self.shutdown.clone().cancelled_owned()),
            done: false,
        }))
    }
}

/// A `Watch` stream: the current status, then every change; ends with a
/// last `NOT_SERVING` on shutdown.
pub struct HealthWatchStream {
    statuses: WatchStream<bool>,
    known: bool,
    /// The liveness service: `SERVING` whatever readiness says.
    alive: bool,
    last: Option<ServingStatus>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl std::fmt::Debug for HealthWatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWatchStream")
            .field("known", &self.known)
            .field("last", &self.last)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for HealthWatchStream {
    type Item = Result<HealthCheckResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            this.done = true;
            let last = (this.known && this.last != Some(ServingStatus::NotServing))
                .then(|| Ok(response(ServingStatus::NotServing)));
            return Poll::Ready(last);
        }
        loop {
            match Pin::new(&mut this.statuses).poll_next(cx) {
                Poll::Ready(Some(serving)) => {
                    let status = if this.known {
                        status_of(serving || this.alive)
                    } else {
                        ServingStatus::ServiceUnknown
                    };
                    if this.last == Some(status) {
                        continue;
                    }
                    this.last = Some(status);
                    return Poll::Ready(Some(Ok(response(status))));
                }
                // The sender lives as long as the service; treat its end
                // like shutdown.
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

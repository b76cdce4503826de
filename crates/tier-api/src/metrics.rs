//! Metric names of the gRPC API and the one wrapper that records them.
//! Every name is prefixed `tierd_`; counters end in `_total`.

use std::future::Future;
use std::time::Instant;

use tonic::{Code, Response, Status};

use crate::error::{ApiError, code_label};

/// Requests answered, by `method` and `code` (`OK`, `NOT_FOUND`, ...).
pub const GRPC_REQUESTS: &str = "tierd_grpc_requests_total";
/// Time to answer a request (for streams: to open the stream), by `method`.
pub const GRPC_REQUEST_DURATION: &str = "tierd_grpc_request_duration_seconds";
/// Tier-change watchers cut off because they fell behind.
pub const WATCHERS_LAGGED: &str = "tierd_grpc_watchers_lagged_total";

/// Suggested buckets for [`GRPC_REQUEST_DURATION`], in seconds.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Describe every metric once (help texts for /metrics).
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC requests answered, by method and status code."
    );
    describe_histogram!(
        GRPC_REQUEST_DURATION,
        "Latency of gRPC requests, by method (for streams: until the stream opened)."
    );
    describe_counter!(
        WATCHERS_LAGGED,
        "WatchTierChanges streams ended because the client fell behind."
    );
}

/// Run one handler, record its outcome and latency, and turn its error
/// into a [`Status`]. Every `TierService` method goes through here.
pub(crate) async fn instrument<T, F>(method: &'static str, fut: F) -> Result<Response<T>, Status>
where
    F: Future<Output = Result<T, ApiError>>,
{
    let started = Instant::now();
    let result = fut.await;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(err) => err.code(),
    };
    metrics::histogram!(GRPC_REQUEST_DURATION, "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(GRPC_REQUESTS, "method" => method, "code" => code_label(code)).increment(1);
    match result {
        Ok(value) => Ok(Response::new(value)),
        Err(err) => {
            tracing::debug!(method, code = code_label(code), error = %err, "gRPC request failed");
            Err(err.into())
        }
    }
}

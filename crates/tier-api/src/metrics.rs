//! Metric names of the gRPC API and the one wrapper that records them.
//! Every name is prefixed `tierd_`; counters end in `_total`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
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

/// The `method` label of a request path: the method's name for
/// `TierService` and `AdminService` methods (as their handlers label
/// them), `other` for anything else (health, reflection, unknown paths),
/// so clients cannot mint label values.
pub(crate) fn method_label(path: &str) -> &'static str {
    static METHODS: OnceLock<HashMap<String, String>> = OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        use tier_proto::api::admin_service_server::SERVICE_NAME as ADMIN_SERVICE;
        use tier_proto::api::tier_service_server::SERVICE_NAME as TIER_SERVICE;
        let pool = tier_proto::descriptor_pool();
        [TIER_SERVICE, ADMIN_SERVICE]
            .into_iter()
            .filter_map(|name| pool.get_service_by_name(name))
            .flat_map(|service| {
                service
                    .methods()
                    .map(|m| {
                        (
                            format!("/{}/{}", service.full_name(), m.name()),
                            m.name().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    methods.get(path).map_or("other", String::as_str)
}

/// Record one request's outcome and latency.
fn record(method: &'static str, code: Code, started: Instant) {
    metrics::histogram!(GRPC_REQUEST_DURATION, "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(GRPC_REQUESTS, "method" => method, "code" => code_label(code)).increment(1);
}

/// Records a request as `CANCELLED` if its handler is dropped before it
/// answers: the server's request timeout (or the client's shorter
/// `grpc-timeout`) expired, which tonic reports to the client as
/// `CANCELLED`, or the client went away.
struct Unanswered {
    method: &'static str,
    started: Instant,
    answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.answered {
            record(self.method, Code::Cancelled, self.started);
        }
    }
}

/// Run one handler, record its outcome and latency, and turn its error
/// into a [`Status`]. Every `TierService` and `AdminService` method goes
/// through here; one dropped unanswered (timed out, client gone) is
/// recorded as `CANCELLED`.
pub(crate) async fn instrument<T, F>(method: &'static str, fut: F) -> Result<Response<T>, Status>
where
    F: Future<Output = Result<T, ApiError>>,
{
    let mut guard = Unanswered {
        method,
        started: Instant::now(),
        answered: false,
    };
    let result = fut.await;
    guard.answered = true;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(err) => err.code(),
    };
    record(method, code, guard.started);
    match result {
        Ok(value) => Ok(Response::new(value)),
        Err(err) => {
            tracing::debug!(method, code = code_label(code), error = %err, "gRPC request failed");
            Err(err.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_the_services_method_names_only() {
        assert_eq!(method_label("/tiering.v1.TierService/GetTier"), "GetTier");
        assert_eq!(
            method_label("/tiering.v1.AdminService/SetOverride"),
            "SetOverride"
        );
        assert_eq!(
            method_label("/tiering.v1.TierService/NoSuchMethod"),
            "other"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "other");
        assert_eq!(method_label("garbage"), "other");
    }
}

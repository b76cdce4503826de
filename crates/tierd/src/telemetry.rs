//! Logs and, optionally, exported spans.
//!
//! Log lines go to stdout as JSON or text (`--log-format`), filtered by
//! `RUST_LOG` (default [`DEFAULT_FILTER`]). Spans of work a caller traced
//! with a W3C `traceparent` (gRPC requests, engine commands) carry its
//! `trace_id`.
//!
//! In builds with the `otlp` cargo feature, `--otlp-endpoint URL` also
//! exports the spans (the same filter) to an OpenTelemetry collector over
//! OTLP/HTTP with protobuf bodies, to `URL/v1/traces`, as service `tierd`.
//! A gRPC request span and an engine command span whose caller sent a
//! `traceparent` are children of the caller's span in the caller's trace
//! (its sampled flag is honoured); other spans start traces of their own.
//! Spans are sent in batches from a background thread (at most every 5 s),
//! over plain HTTP (no TLS: send to a collector agent nearby), through
//! hyper on tierd's own runtime; [`Telemetry::shutdown`], last in the stop
//! order, sends what is pending. An unreachable collector costs spans, not
//! service: failed exports are logged and dropped.
//!
//! Builds without the feature refuse `--otlp-endpoint` ([`check`]) instead
//! of ignoring it: an operator who asked for traces should not wait for
//! ones that never come.

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

/// Log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,rdkafka=warn,librdkafka=warn";

/// Whether this build can export spans (the `otlp` feature).
pub const OTLP_COMPILED_IN: bool = cfg!(feature = "otlp");

/// The path spans are posted to, under the configured endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// The URL spans are posted to for `--otlp-endpoint endpoint`: the
/// endpoint with `/v1/traces` appended, unless it ends with it already.
/// Only `http://` URLs: the exporter has no TLS.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let endpoint = endpoint.trim();
    let uri: tonic::codegen::http::Uri = endpoint
        .parse()
        .with_context(|| format!("{endpoint:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => anyhow::bail!(
            "{endpoint:?}: https is not supported (tierd's OTLP exporter speaks plain HTTP); send to a collector agent on the host or in the pod, e.g. http://localhost:4318"
        ),
        _ => anyhow::bail!(
            "{endpoint:?}: expected an http:// URL of an OTLP/HTTP collector, e.g. http://localhost:4318"
        ),
    }
    if uri.host().is_none_or(str::is_empty) {
        anyhow::bail!("{endpoint:?} names no host");
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with(TRACES_PATH) {
        base.to_owned()
    } else {
        format!("{base}{TRACES_PATH}")
    })
}

/// The telemetry settings' problems, if any (at start and in
/// `check-config`).
pub fn check(config: &Config) -> anyhow::Result<()> {
    match &config.otlp_endpoint {
        None => Ok(()),
        Some(endpoint) if !OTLP_COMPILED_IN => anyhow::bail!(
            "set to {endpoint:?}, but this tierd was built without the otlp feature and cannot export spans: build it with `--features otlp`, or unset otlp_endpoint"
        ),
        Some(endpoint) => traces_url(endpoint).map(drop),
    }
}

/// The installed logging (and span export); see [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otlp")]
        {
            self.provider.is_some()
        }
        #[cfg(not(feature = "otlp"))]
        {
            false
        }
    }

    /// Send the spans not exported yet and stop exporting. Blocks until
    /// they are sent or 10 s passed: call it last, off the runtime's
    /// worker threads (`spawn_blocking`); the runtime must still run (the
    /// export is sent on it).
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(otlp::EXPORT_TIMEOUT)
        {
            tracing::warn!(error = %e, "could not send the last spans to the OTLP collector");
        }
    }
}

/// Install the process's logging as `config` says and, when configured,
/// the span export. Call once, inside the tokio runtime (the exporter
/// sends on it).
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    check(config).context("otlp_endpoint")?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (json, human) = match config.log_format.resolved() {
        LogFormat::Json => (Some(tracing_subscriber::fmt::layer().json()), None),
        LogFormat::Human | LogFormat::Auto => (None, Some(tracing_subscriber::fmt::layer())),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(human);

    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TracerProvider as _;

        let provider = match &config.otlp_endpoint {
            Some(endpoint) => Some(otlp::provider(endpoint)?),
            None => None,
        };
        let layer = provider
            .as_ref()
            .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("tierd")));
        registry
            .with(layer)
            .try_init()
            .context("installing the log subscriber")?;
        if let Some(endpoint) = &config.otlp_endpoint {
            tracing::info!(url = %traces_url(endpoint)?, "exporting spans over OTLP/HTTP");
        }
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        registry
            .try_init()
            .context("installing the log subscriber")?;
        Ok(Telemetry {})
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    //! The OTLP/HTTP exporter on hyper (already in tierd for gRPC), run on
    //! tierd's tokio runtime: the SDK's batch processor sends from a thread
    //! of its own, outside any runtime.

    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::Context as _;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_http::hyper::HyperClient;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tier_wire::trace::TraceParent;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    /// Longest one export (connect, send, answer) may take.
    pub(super) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    /// An [`HttpClient`] that runs hyper's requests on a tokio runtime.
    #[derive(Debug)]
    struct OnRuntime {
        client: Arc<HyperClient>,
        runtime: tokio::runtime::Handle,
    }

    #[async_trait::async_trait]
    impl HttpClient for OnRuntime {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = Arc::clone(&self.client);
            self.runtime
                .spawn(async move { client.send_bytes(request).await })
                .await?
        }
    }

    /// A tracer provider exporting to `endpoint` in batches; installs the
    /// hook that gives traced spans their caller's span as parent.
    pub(super) fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
        let url = super::traces_url(endpoint)?;
        let runtime = tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs a tokio runtime")?;
        let client = OnRuntime {
            client: Arc::new(HyperClient::with_default_connector(EXPORT_TIMEOUT, None)),
            runtime,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("building the OTLP span exporter")?;
        let resource = Resource::builder()
            .with_service_name("tierd")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        tier_wire::trace::set_remote_parent_hook(remote_parent);
        Ok(provider)
    }

    /// Make `span` a child of the caller's span `trace`.
    fn remote_parent(span: &tracing::Span, trace: &TraceParent) {
        let caller = SpanContext::new(
            TraceId::from_bytes(trace.trace_id_bytes()),
            SpanId::from_bytes(trace.parent_id_bytes()),
            TraceFlags::new(trace.flags()),
            true,
            TraceState::default(),
        );
        if let Err(e) =
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(caller))
        {
            tracing::debug!(error = %e, "span not linked to its caller's trace");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_go_to_v1_traces_under_the_endpoint() {
        for (endpoint, url) in [
            ("http://localhost:4318", "http://localhost:4318/v1/traces"),
            ("http://localhost:4318/", "http://localhost:4318/v1/traces"),
            ("http://c:4318/otlp", "http://c:4318/otlp/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
            (" http://c:4318 ", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(traces_url(endpoint).unwrap(), url, "{endpoint}");
        }
        for bad in ["https://c:4318", "c:4318", "", "ftp://c", "http://"] {
            assert!(traces_url(bad).is_err(), "{bad:?}");
        }
    }
}

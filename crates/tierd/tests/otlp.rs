//! `--otlp-endpoint` end to end: the `tierd` binary (built with the `otlp`
//! feature, on its embedded broker) exports its spans to a collector
//! played by this test, a plain HTTP server on `127.0.0.1:0` that takes
//! OTLP/HTTP protobuf posts. A `GetPolicy` and a `SetOverride` sent with
//! known `traceparent`s must arrive, after a SIGTERM (the flush in the
//! stop order), as spans of those traces: the request span named by its
//! gRPC path with the caller's span as parent, the engine's command span
//! in the admin caller's trace, all from service `tierd`.
//!
//! Without the feature, the binary must refuse the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "otlp")]
mod common;

#[cfg(not(feature = "otlp"))]
#[test]
fn without_the_feature_the_endpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tierd"))
        .current_dir(dir.path())
        .args(["--otlp-endpoint", "http://127.0.0.1:4318"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("built without the otlp feature"),
        "{stderr}"
    );
}

#[cfg(feature = "otlp")]
mod with_the_feature {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message as _;
    use tier_proto::api::admin_service_client::AdminServiceClient;
    use tier_proto::api::tier_service_client::TierServiceClient;
    use tier_proto::api::{GetPolicyRequest, OverrideMode, SetOverrideRequest};

    use crate::common::Tierd;

    const READ_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const READ_PARENT: &str = "00f067aa0ba902b7";
    const ADMIN_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const ADMIN_PARENT: &str = "b7ad6b7169203331";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// One OTLP/HTTP post: the path and the body.
    type Post = (String, String, Vec<u8>);

    /// A collector on `127.0.0.1:0`: every request's path, content type
    /// and body go to the returned channel; each is answered 200.
    fn collector() -> (String, mpsc::Receiver<Post>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let tx = tx.clone();
                std::thread::spawn(move || serve(conn, &tx));
            }
        });
        (url, rx)
    }

    /// HTTP/1.1 requests on one connection (keep-alive), until it closes.
    fn serve(conn: TcpStream, tx: &mpsc::Sender<Post>) {
        let mut writer = conn.try_clone().unwrap();
        let mut reader = BufReader::new(conn);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let (mut length, mut content_type) = (0, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = value.trim().to_owned(),
                    "transfer-encoding" => panic!("chunked posts are not expected"),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send((path, content_type, body));
            writer
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                )
                .unwrap();
        }
    }

    fn attribute(
        attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
        key: &str,
    ) -> Option<String> {
        attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn traced_requests_are_exported_as_spans_of_the_callers_traces() {
        let (url, posts) = collector();
        let dir = tempfile::tempdir().unwrap();
        let (mut tierd, info) = Tierd::start(
            dir.path(),
            &["--otlp-endpoint", &url],
            "info",
            Stdio::null(),
        );
        let grpc = format!("http://{}", info["grpc"].as_str().unwrap());

        let mut read = TierServiceClient::connect(grpc.clone()).await.unwrap();
        let mut request = tonic::Request::new(GetPolicyRequest {});
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{READ_TRACE}-{READ_PARENT}-01").parse().unwrap(),
        );
        read.get_policy(request).await.unwrap();

        let mut admin = AdminServiceClient::connect(grpc).await.unwrap();
        let mut request = tonic::Request::new(SetOverrideRequest {
            customer_id: "c-traced".into(),
            tier: "D".into(),
            mode: OverrideMode::Pin as i32,
            reason: "credit hold".into(),
            author: "ops".into(),
            expires_at: None,
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{ADMIN_TRACE}-{ADMIN_PARENT}-01")
                .parse()
                .unwrap(),
        );
        // Its outcome does not matter here, only that the engine ran it.
        let _ = admin.set_override(request).await;

        // SIGTERM: tierd stops, then sends the spans still pending.
        let exit = tierd.stop();
        assert!(exit.success(), "tierd exited with {exit}");

        let mut spans: Vec<(String, Span)> = Vec::new();
        while let Ok((path, content_type, body)) = posts.recv_timeout(Duration::from_secs(1)) {
            assert_eq!(path, "/v1/traces");
            assert_eq!(content_type, "application/x-protobuf");
            let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            for rs in export.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| attribute(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();

        let (service, get_policy) = spans
            .iter()
            .find(|(_, s)| s.trace_id == unhex(READ_TRACE))
            .unwrap_or_else(|| panic!("no span of the GetPolicy's trace among {names:?}"));
        assert_eq!(service, "tierd");
        assert_eq!(get_policy.name, "/tiering.v1.TierService/GetPolicy");
        assert_eq!(
            get_policy.parent_span_id,
            unhex(READ_PARENT),
            "the caller's span is the parent"
        );
        assert_eq!(
            attribute(&get_policy.attributes, "trace_id").as_deref(),
            Some(READ_TRACE)
        );

        let admin_spans: Vec<&str> = spans
            .iter()
            .filter(|(_, s)| s.trace_id == unhex(ADMIN_TRACE))
            .map(|(_, s)| s.name.as_str())
            .collect();
        assert!(
            admin_spans.contains(&"/tiering.v1.AdminService/SetOverride"),
            "{admin_spans:?}"
        );
        assert!(
            admin_spans.contains(&"command"),
            "the engine's command span is in the caller's trace: {admin_spans:?}"
        );
    }
}

//! The Prometheus recorder and a minimal `/metrics` endpoint on a listener
//! we bound ourselves (so port 0 works and the address can be reported).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide recorder once (several in-process daemons in
/// tests share it) and return its handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    // One installer at a time; the loser of a race finds the handle set.
    let _guard = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in [
        (
            tier_kafka::metrics::BATCH_COMMIT_SECONDS,
            tier_kafka::metrics::COMMIT_BUCKETS,
        ),
        (
            tier_kafka::metrics::BATCH_SIZE,
            tier_kafka::metrics::BATCH_BUCKETS,
        ),
        (
            tier_api::metrics::GRPC_REQUEST_DURATION,
            tier_api::metrics::REQUEST_BUCKETS,
        ),
    ] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    tier_kafka::metrics::describe();
    tier_api::metrics::describe();
    metrics::describe_counter!(
        crate::STORE_QUARANTINED,
        "Data dirs moved aside because they could not be opened or failed the integrity check."
    );
    let _ = HANDLE.set(handle.clone());
    Ok(HANDLE.get().cloned().unwrap_or(handle))
}

/// Serve `GET /metrics` until `shutdown`.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, shutdown: CancellationToken) {
    let upkeep = {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                    () = shutdown.cancelled() => break,
                }
            }
        })
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body, ctype) = if request.starts_with("GET /metrics") {
                ("200 OK", handle.render(), "text/plain; version=0.0.4")
            } else {
                (
                    "404 Not Found",
                    "try GET /metrics\n".to_owned(),
                    "text/plain",
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
    upkeep.abort();
}

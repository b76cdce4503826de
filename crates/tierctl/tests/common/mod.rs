//! The harness the tierctl report tests share: the real service over a
//! read model on a free loopback port, and the real binary run against it.

#![allow(dead_code, reason = "each test file uses a part of the harness")]

use std::process::Output;
use std::sync::Arc;

use tier_api::{ReadModel, TierServiceImpl};
use tier_core::policy::Policy;
use tier_proto::api::tier_service_server::TierServiceServer;
use tonic::transport::server::TcpIncoming;

/// Serve the real service on a free loopback port, under the default
/// policy (its text too: tierctl reads dates in its `time_zone`).
pub(crate) fn serve(rt: &tokio::runtime::Runtime, read: Arc<ReadModel>) -> String {
    let incoming = rt
        .block_on(async { TcpIncoming::bind("127.0.0.1:0".parse().unwrap()) })
        .unwrap();
    let addr = incoming.local_addr().unwrap();
    let (changes, _) = tokio::sync::broadcast::channel(4);
    let service = TierServiceImpl::with_policy_text(
        read,
        Arc::new(Policy::default_policy()),
        tier_core::policy::DEFAULT_POLICY_TOML.to_owned(),
        changes,
    );
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TierServiceServer::new(service))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

/// Run tierctl against `addr` (no address or token from the environment).
pub(crate) fn tierctl(addr: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tierctl"))
        .env_remove("TIERCTL_ADDR")
        .env_remove("TIERD_TOKEN")
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .unwrap()
}

/// The command succeeded; its stdout.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

//! tierctl over TLS and mutual TLS: `--ca-cert` (an address without a
//! scheme then means https), `--cert`/`--key` for mTLS, against the real
//! API server with rcgen certificates. A call that reaches the handler
//! answers NOT_FOUND (no customer); one refused at the handshake never
//! does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{stderr, tierctl};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tier_api::{ApiServer, ApiTls, ReadModel, TierServiceImpl, health_pair};
use tier_core::policy::Policy;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn tierctl_speaks_tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["ops.example".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    let ca_pem = write(dir.path(), "ca.pem", &ca.pem());
    let cert = write(dir.path(), "client.pem", &client.pem());
    let key = write(dir.path(), "client.key", &client_key.serialize_pem());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (changes, _) = tokio::sync::broadcast::channel(4);
    let service = TierServiceImpl::new(
        Arc::new(ReadModel::new()),
        Arc::new(Policy::default_policy()),
        changes,
    );
    let (_, health) = health_pair();
    let tls = ApiTls::from_pem(server.pem(), server_key.serialize_pem()).with_client_ca(ca.pem());
    let shutdown = tokio_util::sync::CancellationToken::new();
    rt.spawn(
        ApiServer::new(service, health)
            .with_tls(tls)
            .serve(listener, shutdown.clone()),
    );

    let addr = format!("localhost:{port}");
    let mtls = ["--ca-cert", &ca_pem, "--cert", &cert, "--key", &key];
    let out = tierctl(&addr, &[&mtls[..], &["get", "c-1"]].concat());
    let err = stderr(&out);
    assert!(
        err.contains("NOT_FOUND"),
        "mTLS call reached the handler: {err}"
    );

    // No client certificate: refused at the handshake.
    let out = tierctl(&addr, &["--ca-cert", &ca_pem, "get", "c-1"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("NOT_FOUND"), "{err}");
    // Plaintext: refused.
    let out = tierctl(&format!("http://{addr}"), &["get", "c-1"]);
    assert!(!stderr(&out).contains("NOT_FOUND"));
    // A --cert without --key is a usage error.
    let out = tierctl(&addr, &["--cert", &cert, "get", "c-1"]);
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
    // An unreadable CA file is named.
    let out = tierctl(&addr, &["--ca-cert", "/nonexistent/ca.pem", "get", "c-1"]);
    assert!(
        stderr(&out).contains("/nonexistent/ca.pem"),
        "{}",
        stderr(&out)
    );
    shutdown.cancel();
}

//! tierd's gRPC over mutual TLS, configured as an operator would
//! (`--grpc-tls-cert`, `--grpc-tls-key`, `--grpc-tls-client-ca`): a client
//! with a certificate from the CA is served, a plaintext client is not;
//! a certificate without its key is refused at start, naming the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tier_proto::api::GetTierRequest;
use tier_proto::api::tier_service_client::TierServiceClient;
use tierd_tests::Sandbox;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tierd_serves_mutual_tls_from_its_settings() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["scheduler".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    sb.config.grpc_tls_cert = Some(write("server.pem", server.pem()));
    sb.config.grpc_tls_key = Some(write("server.key", server_key.serialize_pem()));
    sb.config.grpc_tls_client_ca = Some(write("ca.pem", ca.pem()));
    sb.start().await;
    let port = sb.running().grpc_addr.port();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .identity(Identity::from_pem(client.pem(), client_key.serialize_pem()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let status = TierServiceClient::new(channel)
        .get_tier(GetTierRequest {
            customer_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "served over mTLS: {status:?}"
    );

    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let refused = TierServiceClient::new(plain)
            .get_tier(GetTierRequest {
                customer_id: "nobody".into(),
            })
            .await
            .unwrap_err();
        assert_ne!(refused.code(), Code::NotFound, "{refused:?}");
    }
    sb.stop().await;

    // A certificate without its key: refused at start, naming the setting.
    let mut half = sb.config.clone();
    half.grpc_tls_key = None;
    half.grpc_tls_client_ca = None;
    half.data_dir = dir.join("other-data");
    let err = tierd::start(half).await.expect_err("refused");
    assert!(
        format!("{err:#}").contains("grpc_tls_cert needs grpc_tls_key"),
        "{err:#}"
    );
}

//! TLS and mutual TLS of the API server with rcgen certificates, and the
//! bearer tokens on top of both: a TLS client trusting the CA is served; a
//! plaintext client or one trusting another CA is not; with a client CA a
//! client without a certificate, or with one from another CA, fails the
//! handshake, and one with a certificate from the CA is served; tokens are
//! checked the same over TLS and mTLS (no token, wrong, read on admin,
//! admin). Also the limits: an oversized request is refused before it is
//! decoded, and TLS files that cannot be read are named in the error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tier_api::{
    ApiServer, ApiTls, Auth, Limits, ReadModel, Scope, TierServiceImpl, TlsFiles, health_pair,
};
use tier_core::policy::Policy;
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::tier_service_client::TierServiceClient;
use tier_proto::api::{BatchGetTiersRequest, ClearOverrideRequest, GetTierRequest};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};

const ADMIN: &str = "admin-token-tls-5f2c9e1a7b";
const READ: &str = "read-token-tls-3d8a0c6f4e";

/// A CA and what it signed.
struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["scheduler.example".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), tier_api::ApiError>>,
}

impl Server {
    async fn start(tls: Option<ApiTls>, limits: Limits) -> Self {
        let (changes, _) = broadcast::channel(4);
        let policy = Arc::new(Policy::default_policy());
        let service = TierServiceImpl::new(Arc::new(ReadModel::new()), policy, changes);
        let (_, health) = health_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let auth = Auth::from_tokens(vec![
            (Scope::Admin, ADMIN.to_owned()),
            (Scope::Read, READ.to_owned()),
        ]);
        let mut server = ApiServer::new(service, health)
            .with_auth(auth)
            .with_limits(limits);
        if let Some(tls) = tls {
            server = server.with_tls(tls);
        }
        let task = tokio::spawn(server.serve(listener, shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// A channel over TLS trusting `ca`, presenting `identity` if any.
    async fn tls_channel(
        &self,
        ca: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Endpoint::from_shared(format!("https://localhost:{}", self.addr.port()))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    async fn plain_channel(&self) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("http://{}", self.addr))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// A read RPC that reached the handler answers NOT_FOUND (no customer).
async fn read_code(channel: &Channel, token: Option<&str>) -> Code {
    let request = with_token(
        GetTierRequest {
            customer_id: "c-1".into(),
        },
        token,
    );
    match TierServiceClient::new(channel.clone())
        .get_tier(request)
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// An admin RPC (ClearOverride) with `token`.
async fn admin_code(channel: &Channel, token: Option<&str>) -> Code {
    let request = with_token(ClearOverrideRequest::default(), token);
    match AdminServiceClient::new(channel.clone())
        .clear_override(request)
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The token matrix, the same over any transport.
async fn assert_token_matrix(channel: &Channel, admin_served: Code) {
    assert_eq!(read_code(channel, None).await, Code::Unauthenticated);
    assert_eq!(
        read_code(channel, Some("wrong-token-000000000000")).await,
        Code::Unauthenticated
    );
    assert_eq!(read_code(channel, Some(READ)).await, Code::NotFound);
    assert_eq!(read_code(channel, Some(ADMIN)).await, Code::NotFound);
    assert_eq!(admin_code(channel, None).await, Code::Unauthenticated);
    assert_eq!(
        admin_code(channel, Some(READ)).await,
        Code::PermissionDenied
    );
    assert_eq!(admin_code(channel, Some(ADMIN)).await, admin_served);
}

/// A call on `channel` fails at the transport: no status from a handler.
async fn assert_refused(channel: Result<Channel, tonic::transport::Error>, what: &str) {
    let Ok(channel) = channel else {
        return;
    };
    let code = read_code(&channel, Some(READ)).await;
    assert!(
        matches!(code, Code::Unavailable | Code::Unknown | Code::Internal),
        "{what}: a handler answered ({code:?})"
    );
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_tokens_still_apply() {
    let pki = pki();
    let server = Server::start(
        Some(ApiTls::from_pem(
            pki.server_cert.clone(),
            pki.server_key.clone(),
        )),
        Limits::default(),
    )
    .await;
    let channel = server.tls_channel(&pki.ca_pem, None).await.unwrap();
    // No admin service is mounted here: past auth, UNIMPLEMENTED.
    assert_token_matrix(&channel, Code::Unimplemented).await;

    assert_refused(server.plain_channel().await, "plaintext client").await;
    let other = ca();
    assert_refused(
        server.tls_channel(&other.pem(), None).await,
        "client trusting another CA",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let pki = pki();
    let tls = ApiTls::from_pem(pki.server_cert.clone(), pki.server_key.clone())
        .with_client_ca(pki.ca_pem.clone());
    assert!(tls.is_mutual());
    let server = Server::start(Some(tls), Limits::default()).await;

    let channel = server
        .tls_channel(&pki.ca_pem, Some((&pki.client_cert, &pki.client_key)))
        .await
        .unwrap();
    assert_token_matrix(&channel, Code::Unimplemented).await;

    assert_refused(
        server.tls_channel(&pki.ca_pem, None).await,
        "client without a certificate",
    )
    .await;
    let rogue_ca = ca();
    let rogue_key = KeyPair::generate().unwrap();
    let rogue = CertificateParams::new(vec!["rogue.example".to_owned()])
        .unwrap()
        .signed_by(&rogue_key, &rogue_ca)
        .unwrap();
    assert_refused(
        server
            .tls_channel(
                &pki.ca_pem,
                Some((&rogue.pem(), &rogue_key.serialize_pem())),
            )
            .await,
        "client certificate from another CA",
    )
    .await;
    assert_refused(server.plain_channel().await, "plaintext client").await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_it_is_decoded() {
    let limits = Limits {
        max_request_bytes: 4 * 1024,
        ..Limits::default()
    };
    let server = Server::start(None, limits).await;
    let channel = server.plain_channel().await.unwrap();
    let big = BatchGetTiersRequest {
        customer_ids: (0..1000).map(|i| format!("customer-{i:08}")).collect(),
    };
    let status = TierServiceClient::new(channel.clone())
        .batch_get_tiers(with_token(big, Some(READ)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    // A small one is served.
    assert_eq!(read_code(&channel, Some(READ)).await, Code::NotFound);
    server.stop().await;
}

#[test]
fn unreadable_tls_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let files = TlsFiles {
        cert: cert.clone(),
        key: dir.path().join("missing.key"),
        client_ca: None,
    };
    let e = ApiTls::from_files(&files).unwrap_err().to_string();
    assert!(e.contains("certificate") && e.contains("server.pem"), "{e}");
    assert!(e.contains("no PEM block"), "{e}");

    let pki = pki();
    std::fs::write(&cert, &pki.server_cert).unwrap();
    let e = ApiTls::from_files(&files).unwrap_err().to_string();
    assert!(
        e.contains("private key") && e.contains("missing.key"),
        "{e}"
    );

    let key = dir.path().join("server.key");
    std::fs::write(&key, &pki.server_key).unwrap();
    let tls = ApiTls::from_files(&TlsFiles {
        cert,
        key,
        client_ca: None,
    })
    .unwrap();
    assert!(!tls.is_mutual());
    assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
}

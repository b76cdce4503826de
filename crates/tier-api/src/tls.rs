//! TLS for the gRPC API: the server's certificate and key, and, for mutual
//! TLS, the CA that client certificates must chain to. PEM files, read
//! once at start; a file that cannot be read or parsed stops the start
//! with the path named.
//!
//! With a client CA configured every connection must present a client
//! certificate signed by it (the handshake fails otherwise, before any
//! RPC); bearer tokens (see [`crate::auth`]) are checked on top, so a
//! certificate proves the machine and a token the role.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::ApiError;

/// Where the server's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA (PEM) client certificates must chain to; `None`: server-only
    /// TLS, no client certificate asked for.
    pub client_ca: Option<PathBuf>,
}

/// TLS material read into memory, ready for [`crate::ApiServer::with_tls`].
#[derive(Clone)]
pub struct ApiTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ApiTls")
            .field("cert_bytes", &self.cert.len())
            .field("mutual", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiTls {
    /// Read the files; the error names the one that failed.
    pub fn from_files(files: &TlsFiles) -> Result<Self, ApiError> {
        let read = |path: &Path, what: &'static str| {
            let bytes = std::fs::read(path).map_err(|source| ApiError::TlsFile {
                what,
                path: path.to_owned(),
                source,
            })?;
            if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
                return Err(ApiError::TlsFile {
                    what,
                    path: path.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "no PEM block (-----BEGIN ...) in the file",
                    ),
                });
            }
            Ok(bytes)
        };
        Ok(Self {
            cert: read(&files.cert, "certificate")?,
            key: read(&files.key, "private key")?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|p| read(p, "client CA"))
                .transpose()?,
        })
    }

    /// From PEM text in memory (tests, embedders).
    pub fn from_pem(cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        }
    }

    /// Require client certificates signed by `ca` (PEM): mutual TLS.
    pub fn with_client_ca(mut self, ca: impl Into<Vec<u8>>) -> Self {
        self.client_ca = Some(ca.into());
        self
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        match &self.client_ca {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}

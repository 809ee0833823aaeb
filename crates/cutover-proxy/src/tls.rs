//! TLS termination: a client that asks for TLS (an SSL request after the server's greeting)
//! gets a TLS session with the proxy (`--tls-cert`/`--tls-key`), and the proxy opens TLS to
//! the upstream in turn, so the conversation can be decoded while it stays encrypted on both
//! legs. The proxy never strips TLS: when it cannot terminate it (no certificate configured),
//! the encrypted bytes are relayed unchanged and the session is marked undecodable; when the
//! upstream refuses TLS, the client's connection is closed.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How the proxy speaks TLS on both legs.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    /// The name presented to the upstream (SNI; checked only with a CA).
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or parsed.
    #[error("{path}: {source}")]
    Pem {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: String },
    /// A CA certificate rustls refuses.
    #[error("{path}: {source}")]
    Certificate { path: String, source: rustls::Error },
    /// The crypto provider offers no safe protocol version.
    #[error("TLS: {0}")]
    Protocols(rustls::Error),
    #[error("TLS: certificate and key: {0}")]
    CertificateAndKey(rustls::Error),
    #[error("TLS: upstream host `{host}`: {source}")]
    UpstreamHost {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    }
}

impl Tls {
    /// The proxy's certificate chain and key (PEM), and how to check the upstream: against
    /// `upstream_ca` (PEM) when given — the chain and the host name `upstream_host` — or not at
    /// all (encryption only, like `ssl-mode=required`).
    pub fn new(
        cert: &Path,
        key: &Path,
        upstream_ca: Option<&Path>,
        upstream_host: &str,
    ) -> Result<Tls, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(pem_error(cert))?
            .collect::<Result<_, _>>()
            .map_err(pem_error(cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.display().to_string(),
            });
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocols)?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(TlsError::CertificateAndKey)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocols)?;
        let client = match upstream_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).map_err(pem_error(ca))? {
                    roots.add(c.map_err(pem_error(ca))?).map_err(|source| {
                        TlsError::Certificate {
                            path: ca.display().to_string(),
                            source,
                        }
                    })?;
                }
                if roots.is_empty() {
                    return Err(TlsError::NoCertificate {
                        path: ca.display().to_string(),
                    });
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
                .with_no_client_auth(),
        };
        let server_name = ServerName::try_from(upstream_host.to_string()).map_err(|source| {
            TlsError::UpstreamHost {
                host: upstream_host.to_string(),
                source,
            }
        })?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}

/// Accepts any upstream certificate but still checks the handshake's signatures: the
/// connection is encrypted, the server not authenticated (`ssl-mode=required`).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a client's first packet (payload, after the greeting) is an SSL request: the
/// first 32 bytes of a handshake response with `CLIENT_SSL` set.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    const CLIENT_SSL: u32 = 0x0800;
    payload.len() == 32
        && payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .is_some_and(|caps| caps & CLIENT_SSL != 0)
}

//! TLS from the node to its back-ends (`[service.backend_tls]`): re-encryption with
//! certificate verification on by default.
//!
//! Owns the rustls client configuration (trusted roots from a CA file or the system store, or
//! — only when the operator turned verification off — a verifier that checks signatures but
//! not the chain) and the name sent in SNI. It must not pool or schedule.

use std::net::SocketAddr;
use std::sync::Arc;

use pentaflow_config::BackendTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::tls::{provider, TlsError};

/// A service's way of opening TLS to its back-ends.
pub(crate) struct UpstreamTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
    /// The settings it was built from (a reload with other settings builds a new one).
    pub(crate) settings: BackendTls,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("settings", &self.settings)
            .finish()
    }
}

impl UpstreamTls {
    pub(crate) fn new(settings: &BackendTls) -> Result<Self, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?;
        let mut config = if settings.verify {
            let mut roots = rustls::RootCertStore::empty();
            match &settings.ca_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| TlsError::File {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        let reason = "no usable CA certificate in the file".to_owned();
                        return Err(TlsError::File {
                            path: path.clone(),
                            reason,
                        });
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SignaturesOnly(provider)))
                .with_no_client_auth()
        };
        // Back-ends are spoken to in HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = match &settings.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|e| TlsError::File {
                path: n.into(),
                reason: format!("not a valid server name: {e}"),
            })?),
            None => None,
        };
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            settings: settings.clone(),
        })
    }

    /// The name to send and verify: the configured one, else the back-end's IP address.
    pub(crate) fn server_name(&self, address: SocketAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(address.ip().into()))
    }
}

/// `verify = false`: the handshake is still authenticated by signature, but any certificate is
/// accepted (for back-ends with self-signed certificates on a trusted network).
#[derive(Debug)]
struct SignaturesOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for SignaturesOnly {
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

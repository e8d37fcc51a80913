//! TLS termination: certificates chosen by SNI, session tickets shared by the array, and the
//! per-service acceptor with its handshake limits (seed 001's decrypting array; claims 7–8).
//!
//! Owns: loading PEM chains and keys (with a clear error naming the file), the SNI resolver
//! (exact names, `*.` wildcards, the key type the client can verify, a default or a refusal),
//! the ticket encrypter whose keys every node shares so a client resumes on any node, and the
//! rustls server configuration (TLS 1.2 and 1.3 only, the aws-lc-rs provider's modern AEAD
//! suites, ALPN `h2` + `http/1.1`). It must not speak HTTP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use pentaflow_config::{CertificateConfig, TicketKeys, TlsConfig, UnknownSni};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Semaphore;

/// Stateful session-ID cache per service (TLS 1.2 clients without tickets); tickets are what
/// work across nodes, this only helps a client that comes back to the same node.
const SESSION_CACHE_ENTRIES: usize = 4096;
/// Bytes of the key identifier in front of every ticket.
const KEY_ID_LEN: usize = 4;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or holds no usable PEM item.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file from the configuration.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate, or is of an unsupported kind.
    #[error("{} and {}: {reason}", cert.display(), key.display())]
    KeyPair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The TLS library refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[source] rustls::Error),
}

/// The crypto provider of every TLS context: aws-lc-rs with its default (modern, AEAD-only) suites.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Session-ticket encryption with keys shared by the array: AES-256-GCM, the newest key
/// encrypts, every configured key decrypts (rotation without breaking live resumptions).
pub(crate) struct SharedTicketer {
    keys: Vec<([u8; KEY_ID_LEN], LessSafeKey)>,
    lifetime: u32,
}

impl std::fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedTicketer({} keys, lifetime {}s)",
            self.keys.len(),
            self.lifetime
        )
    }
}

impl SharedTicketer {
    /// Ticketer for the configured keys, or for one random key when none are configured.
    pub(crate) fn new(tickets: &TicketKeys) -> Self {
        let mut raw = tickets.keys.clone();
        if raw.is_empty() {
            let mut key = [0u8; 32];
            // A failing system RNG leaves tickets unusable; handshakes still work (full ones).
            let _ = aws_lc_rs::rand::fill(&mut key);
            raw.push(key);
        }
        let keys = raw
            .iter()
            .filter_map(|k| {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, k);
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
                let key = UnboundKey::new(&AES_256_GCM, k).ok()?;
                Some((id, LessSafeKey::new(key)))
            })
            .collect();
        let lifetime = u32::try_from(tickets.lifetime.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        Self { keys, lifetime }
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let id = cipher.get(..KEY_ID_LEN)?;
        let nonce = cipher.get(KEY_ID_LEN..KEY_ID_LEN + NONCE_LEN)?;
        let sealed = cipher.get(KEY_ID_LEN + NONCE_LEN..)?;
        let (key_id, key) = self.keys.iter().find(|(k, _)| k == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(key_id), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// Chooses the certificate for a ClientHello by SNI.
#[derive(Debug)]
struct SniResolver {
    /// Lower-case DNS name → certificates for it (e.g. one ECDSA and one RSA).
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Suffix after `*.` → certificates.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// For unknown or absent SNI; `None` = refuse.
    default: Option<Vec<Arc<CertifiedKey>>>,
}

impl SniResolver {
    fn candidates(&self, name: Option<&str>) -> Option<&Vec<Arc<CertifiedKey>>> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return self.default.as_ref();
        };
        if let Some(c) = self.exact.get(&name) {
            return Some(c);
        }
        if let Some(c) = name
            .split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
        {
            return Some(c);
        }
        self.default.as_ref()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.candidates(hello.server_name())?;
        // Prefer a key the client can verify (ECDSA vs RSA), else the first.
        certs
            .iter()
            .find(|c| c.key.choose_scheme(hello.signature_schemes()).is_some())
            .or_else(|| certs.first())
            .cloned()
    }
}

/// A certificate chain and key loaded from PEM files, with the names it is valid for.
fn load_certificate(
    cfg: &CertificateConfig,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), TlsError> {
    let chain = read_chain(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| pem_error(&cfg.key, e))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::KeyPair {
            cert: cfg.cert.clone(),
            key: cfg.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::KeyPair {
        cert: cfg.cert.clone(),
        key: cfg.key.clone(),
        reason: e.to_string(),
    })?;
    let names = certificate_names(&certified.cert[0]);
    Ok((Arc::new(certified), names))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::File {
            path: path.to_owned(),
            reason: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(chain)
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// DNS names of a certificate: subjectAltName DNS entries, else the subject CN.
fn certificate_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => {
                        Some(n.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    names
}

/// A service's TLS front: the rustls configuration and the handshake limits.
pub(crate) struct Terminator {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) handshake_timeout: Duration,
    pub(crate) handshakes: Arc<Semaphore>,
}

impl Terminator {
    /// Loads every certificate and builds the server configuration.
    pub(crate) fn new(tls: &TlsConfig, ticketer: Arc<SharedTicketer>) -> Result<Self, TlsError> {
        let provider = provider();
        let mut resolver = SniResolver {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        };
        let mut default = None;
        for (i, cfg) in tls.certificates.iter().enumerate() {
            let (certified, names) = load_certificate(cfg, &provider)?;
            for name in names {
                let table = match name.strip_prefix("*.") {
                    Some(suffix) => resolver.wildcard.entry(suffix.to_owned()),
                    None => resolver.exact.entry(name),
                };
                table.or_default().push(Arc::clone(&certified));
            }
            if cfg.default || (i == 0 && default.is_none()) {
                default = Some(certified);
            }
        }
        if tls.unknown_sni == UnknownSni::Default {
            resolver.default = default.map(|d| vec![d]);
        }
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.ticketer = ticketer;
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        config.alpn_protocols = if tls.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: tls.handshake_timeout,
            handshakes: Arc::new(Semaphore::new(tls.max_handshakes)),
        })
    }
}

/// What a finished handshake negotiated (for the access log and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handshake {
    pub(crate) version: &'static str,
    pub(crate) resumed: bool,
    pub(crate) http2: bool,
}

impl Handshake {
    pub(crate) fn of(conn: &rustls::ServerConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        Self {
            version,
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            http2: conn.alpn_protocol() == Some(b"h2"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticketer(keys: Vec<[u8; 32]>) -> SharedTicketer {
        SharedTicketer::new(&TicketKeys {
            keys,
            lifetime: Duration::from_secs(3600),
        })
    }

    #[test]
    fn tickets_round_trip_and_survive_rotation() {
        let old = ticketer(vec![[1; 32]]);
        let ticket = old.encrypt(b"session state").unwrap();
        assert_ne!(&ticket[KEY_ID_LEN + NONCE_LEN..], b"session state");
        assert_eq!(old.decrypt(&ticket).unwrap(), b"session state");
        // A node that rotated (new key first, old kept) still opens the old ticket.
        let rotated = ticketer(vec![[2; 32], [1; 32]]);
        assert_eq!(rotated.decrypt(&ticket).unwrap(), b"session state");
        let fresh = rotated.encrypt(b"x").unwrap();
        assert!(
            old.decrypt(&fresh).is_none(),
            "the old node cannot open tickets of a newer key"
        );
        assert!(ticketer(vec![[3; 32]]).decrypt(&ticket).is_none());
    }

    #[test]
    fn tampered_or_truncated_tickets_are_rejected() {
        let t = ticketer(vec![[9; 32]]);
        let mut ticket = t.encrypt(b"abc").unwrap();
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.decrypt(&ticket).is_none());
        for n in 0..20 {
            assert!(t.decrypt(&ticket[..n.min(ticket.len())]).is_none());
        }
    }
}

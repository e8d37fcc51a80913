//! Checks of a service's TLS: `tls_listen` against `[service.tls]` and its certificates,
//! `redirect_https`, and `[service.backend_tls]`.
//!
//! Certificate, key and CA files are checked to be readable regular files (through `files`),
//! never parsed: PEM belongs to the proxy.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use toml::Spanned;

use super::{Checker, Zero};
use crate::file::{FileBackendTls, FileCertificate, FileService, FileTls};
use crate::model::{BackendTls, CertificateConfig, TlsConfig, UnknownSni};

/// `max_handshakes`: at least one, or no client could ever connect; a million concurrent
/// handshakes is past what any node can compute, so more is surely a typo.
const MAX_HANDSHAKES: RangeInclusive<i64> = 1..=1_000_000;
/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_DNS_LABEL: usize = 63;

impl Checker<'_> {
    /// `[service.tls]` against `tls_listen` (one needs the other) and `redirect_https`.
    /// `has_listen` / `has_tls_listen`: whether the service wrote any plain / HTTPS address.
    pub(super) fn service_tls(
        &mut self,
        key: &str,
        s: &FileService,
        has_listen: bool,
        has_tls_listen: bool,
    ) -> (Option<TlsConfig>, bool) {
        let tls = match (&s.tls, &s.tls_listen) {
            (Some(table), _) if has_tls_listen => Some(self.tls(key, table)),
            (Some(table), _) => {
                self.report(
                    table.span(),
                    &format!("{key}.tls"),
                    "[service.tls] is set but tls_listen is empty: add tls_listen addresses or remove the table",
                );
                None
            }
            (None, Some(list)) if has_tls_listen => {
                self.report(
                    list.span(),
                    &format!("{key}.tls"),
                    "tls_listen needs a [service.tls] table with at least one [[service.tls.certificate]]",
                );
                None
            }
            (None, _) => None,
        };
        let redirect_https = match &s.redirect_https {
            Some(r) if *r.get_ref() => {
                let rk = format!("{key}.redirect_https");
                if !has_tls_listen {
                    self.report(
                        r.span(),
                        &rk,
                        "redirect_https = true needs tls_listen: there is no HTTPS address to redirect to",
                    );
                } else if !has_listen {
                    self.report(
                        r.span(),
                        &rk,
                        "redirect_https = true needs listen: there is no plain-HTTP address to redirect from",
                    );
                }
                true
            }
            _ => false,
        };
        (tls, redirect_https)
    }

    fn tls(&mut self, key: &str, table: &Spanned<FileTls>) -> TlsConfig {
        let d = TlsConfig::default();
        let t = table.get_ref();
        let unknown_sni = match &t.unknown_sni {
            None => d.unknown_sni,
            Some(v) => match v.get_ref().as_str() {
                "default" => UnknownSni::Default,
                "refuse" => UnknownSni::Refuse,
                other => {
                    let message = format!("{other:?} is not default or refuse");
                    self.report(v.span(), &format!("{key}.tls.unknown_sni"), message);
                    d.unknown_sni
                }
            },
        };
        TlsConfig {
            certificates: self.certificates(key, table),
            unknown_sni,
            handshake_timeout: self.duration(
                t.handshake_timeout.as_ref(),
                &format!("{key}.tls.handshake_timeout"),
                d.handshake_timeout,
                Zero::Rejected,
            ),
            max_handshakes: self.int(
                t.max_handshakes.as_ref(),
                &format!("{key}.tls.max_handshakes"),
                MAX_HANDSHAKES,
                d.max_handshakes,
            ),
            http2: t.http2.unwrap_or(d.http2),
        }
    }

    fn certificates(&mut self, key: &str, table: &Spanned<FileTls>) -> Vec<CertificateConfig> {
        let certs = &table.get_ref().certificate;
        if certs.is_empty() {
            self.report(
                table.span(),
                &format!("{key}.tls.certificate"),
                "at least one [[service.tls.certificate]] is required",
            );
        }
        // (key, line) of the certificate marked default, to name it when a second one is.
        let mut default_at: Option<(String, usize)> = None;
        let mut out = Vec::with_capacity(certs.len());
        for (j, cert) in certs.iter().enumerate() {
            let ck = format!("{key}.tls.certificate[{j}]");
            let c: &FileCertificate = cert.get_ref();
            let file = |checker: &mut Self, value: &Option<Spanned<String>>, name: &str| {
                let fk = format!("{ck}.{name}");
                match value {
                    None => {
                        checker.report(cert.span(), &fk, "missing required key");
                        None
                    }
                    Some(v) => checker.readable_file(v, &fk),
                }
            };
            let cert_path = file(self, &c.cert, "cert");
            let key_path = file(self, &c.key, "key");
            let default = match &c.default {
                Some(v) if *v.get_ref() => {
                    if let Some((first, line)) = &default_at {
                        let message = format!(
                            "only one certificate may be the default; {first} on line {line} already is"
                        );
                        self.report(v.span(), &format!("{ck}.default"), message);
                    } else {
                        default_at = Some((ck.clone(), self.line(v.span())));
                    }
                    true
                }
                _ => false,
            };
            if let (Some(cert), Some(key)) = (cert_path, key_path) {
                out.push(CertificateConfig { cert, key, default });
            }
        }
        out
    }

    /// `[service.backend_tls]`.
    pub(super) fn backend_tls(
        &mut self,
        key: &str,
        table: Option<&Spanned<FileBackendTls>>,
    ) -> Option<BackendTls> {
        let b = table?.get_ref();
        let d = BackendTls::default();
        let verify = b.verify.unwrap_or(d.verify);
        let ca_file = b.ca_file.as_ref().and_then(|ca| {
            let ck = format!("{key}.backend_tls.ca_file");
            if !verify {
                // A CA that is never consulted suggests the operator meant to verify.
                self.report(
                    ca.span(),
                    &ck,
                    "has no effect with verify = false: remove one of them",
                );
                return None;
            }
            self.readable_file(ca, &ck)
        });
        let server_name = b.server_name.as_ref().map(|name| {
            let n = name.get_ref();
            if n.parse::<IpAddr>().is_err() && !is_dns_name(n) {
                let message = format!(
                    "{n:?} is neither a DNS name (letters, digits, '-', '_', dot-separated) nor an IP address"
                );
                self.report(name.span(), &format!("{key}.backend_tls.server_name"), message);
            }
            n.clone()
        });
        Some(BackendTls {
            verify,
            ca_file,
            server_name,
        })
    }
}

/// A DNS name as a TLS client can send it in SNI: dot-separated labels of letters, digits,
/// '-' (not at either end) and '_' (seen in real internal names), within RFC 1035's lengths.
/// An all-digit last label is refused: that is a mistyped IP address, not a host.
fn is_dns_name(name: &str) -> bool {
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    name.len() <= MAX_DNS_NAME
        && !numeric_tld
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_DNS_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

//! Errors of the proxy: start-up errors for the operator, and request-path errors that know
//! which side failed and whether trying another back-end is safe (pingora's habit).

use std::net::SocketAddr;
use std::time::Duration;

/// Errors building or starting the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A listen address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address from the configuration.
        address: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// A service's TLS front could not be built (certificate or key file, key mismatch).
    #[error("service {service:?}: TLS")]
    Tls {
        /// The service whose `[service.tls]` failed.
        service: String,
        /// What failed.
        #[source]
        source: crate::tls::TlsError,
    },
    /// A service's CDN rules were refused by the rewriter.
    #[error("service {service:?}: [service.cdn]")]
    Cdn {
        /// The service whose `[service.cdn]` failed.
        service: String,
        /// Every problem with the rules.
        #[source]
        source: pentaflow_rewrite::RulesError,
    },
}

/// Whether a failed exchange may be repeated on another back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryType {
    /// Nothing reached the back-end: always safe.
    Safe,
    /// The request may have been processed: only for idempotent, replayable requests.
    IfIdempotent,
}

/// A failure talking to a back-end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("connect to {address} failed")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connect to {address} timed out")]
    ConnectTimeout { address: SocketAddr },
    #[error("writing the request to {address} failed")]
    NotSent {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} closed the connection before any response byte")]
    NoResponse {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} failed inside its response head")]
    Exchange {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} sent an invalid response: {reason}")]
    BadResponse {
        address: SocketAddr,
        reason: &'static str,
    },
    #[error("{address} sent no response head within {timeout:?}")]
    ResponseTimeout {
        address: SocketAddr,
        timeout: Duration,
    },
}

impl UpstreamError {
    /// Which retries are safe after this error.
    pub(crate) fn retry_type(&self) -> RetryType {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } => RetryType::Safe,
            // Part of the request may have reached the back-end.
            Self::NotSent { .. }
            | Self::NoResponse { .. }
            | Self::Exchange { .. }
            | Self::BadResponse { .. }
            | Self::ResponseTimeout { .. } => RetryType::IfIdempotent,
        }
    }
}

//! The admin crate's error type.

use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong serving the admin API or fetching a node's status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A socket operation failed (reading the listener's address, connecting to a node).
    #[error("admin socket {addr}: {source}")]
    Io {
        /// The admin address involved.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange with a node's admin API failed.
    #[error("admin HTTP exchange with {addr} failed")]
    Http {
        /// The node's admin address.
        addr: SocketAddr,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (an address that makes an invalid `Host` header).
    #[error("cannot build the admin request for {addr}")]
    Request {
        /// The node's admin address.
        addr: SocketAddr,
        /// http's error.
        #[source]
        source: http::Error,
    },
    /// The node answered with a status other than 200.
    #[error("admin API at {addr} answered HTTP {code}")]
    BadStatus {
        /// The node's admin address.
        addr: SocketAddr,
        /// The HTTP status code received.
        code: u16,
    },
    /// The response body could not be read completely (connection cut, or over the size limit).
    #[error("reading the admin response body from {addr} failed (limit {limit} bytes)")]
    Body {
        /// The node's admin address.
        addr: SocketAddr,
        /// The largest body accepted.
        limit: usize,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The body was not a status document.
    #[error("the admin response from {addr} is not a status document")]
    Decode {
        /// The node's admin address.
        addr: SocketAddr,
        /// serde_json's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The metrics could not be encoded (prometheus-client refused a value; it reports no
    /// details, and the collector avoids every case known to trigger it).
    #[error("encoding the metrics exposition failed")]
    Encode,
    /// The node did not answer in time.
    #[error("admin API at {addr} did not answer within {after:?}")]
    Timeout {
        /// The node's admin address.
        addr: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
}

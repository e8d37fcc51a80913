//! What a forwarding proxy adds to and refuses in heads (RFC 9110 §7.6): the forwarding
//! values of one client connection ([`ClientSide`], made once at accept), our `Via`
//! pseudonym, and the framing errors that refuse ambiguous requests (request smuggling). The
//! rewriting itself works on the raw bytes of a head (the HTTP/1 engine's `h1::head`). No I/O.

use std::net::IpAddr;

use http::header::HeaderValue;

/// What we say in `Via` (RFC 9110 §7.6.3): protocol version and a pseudonym, never a host name.
pub(crate) const VIA_SELF: &str = "1.1 pentaflow";

/// Why a request's framing is refused (always 400, and the connection is closed after).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`: two parsers could disagree on the length.
    #[error("both Content-Length and Transfer-Encoding are present")]
    LengthAndChunked,
    /// More than one `Content-Length` field (even with equal values).
    #[error("more than one Content-Length")]
    DuplicateLength,
    /// A `Content-Length` that is not a plain decimal number.
    #[error("invalid Content-Length")]
    InvalidLength,
    /// A `Transfer-Encoding` whose final coding is not `chunked`.
    #[error("Transfer-Encoding does not end in chunked")]
    BadTransferEncoding,
    /// More than one `Host` field: two servers could route it to different sites.
    #[error("more than one Host")]
    DuplicateHost,
}

/// The forwarding headers of one client connection, built once when it is accepted so that
/// each request only clones them (no formatting on the request path).
#[derive(Debug, Clone)]
pub struct ClientSide {
    /// The client's address as seen on the accepted socket.
    pub ip: IpAddr,
    /// `"http"` or `"https"`.
    pub proto: &'static str,
    /// The client's address as a header value (`X-Forwarded-For`).
    for_value: HeaderValue,
    /// `for=<ip>;proto=<proto>` (`Forwarded`, RFC 7239).
    forwarded_value: HeaderValue,
    /// The address the client reached (the socket's local address, or a PROXY header's
    /// destination): the destination of a `send_proxy` header. Kept here, built once per
    /// connection, rather than in every connection's future.
    local: Option<std::net::SocketAddr>,
}

impl ClientSide {
    /// The forwarding headers of a client at `ip`, connected over HTTPS or not.
    pub fn new(ip: IpAddr, https: bool) -> Self {
        let proto = if https { "https" } else { "http" };
        // RFC 7239: IPv6 addresses are quoted and bracketed.
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let forwarded = format!("for={node};proto={proto}");
        Self {
            ip,
            proto,
            for_value: HeaderValue::from_str(&ip.to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            forwarded_value: HeaderValue::from_str(&forwarded)
                .unwrap_or(HeaderValue::from_static("for=unknown")),
            local: None,
        }
    }
}

impl ClientSide {
    /// The same, with the address the client reached.
    pub(crate) fn with_local(mut self, local: Option<std::net::SocketAddr>) -> Self {
        self.local = local;
        self
    }

    /// The address the client reached, if known.
    pub(crate) fn local(&self) -> Option<std::net::SocketAddr> {
        self.local
    }

    /// The client's address as it goes into `X-Forwarded-For`.
    pub(crate) fn for_value(&self) -> &[u8] {
        self.for_value.as_bytes()
    }

    /// `for=<ip>;proto=<proto>`, as it goes into `Forwarded`.
    pub(crate) fn forwarded_value(&self) -> &[u8] {
        self.forwarded_value.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_values_are_made_once_per_connection() {
        let v4 = ClientSide::new("192.0.2.7".parse().unwrap(), false);
        assert_eq!(v4.for_value(), b"192.0.2.7");
        assert_eq!(v4.forwarded_value(), b"for=192.0.2.7;proto=http");
        let v6 = ClientSide::new("::1".parse().unwrap(), true);
        assert_eq!(v6.forwarded_value(), b"for=\"[::1]\";proto=https");
        assert_eq!(v6.for_value(), b"::1");
        assert_eq!(v6.proto, "https");
    }
}

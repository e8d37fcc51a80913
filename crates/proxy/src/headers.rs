//! Request and response header hygiene for a forwarding proxy (RFC 9110 §7.6).
//!
//! Owns: removing hop-by-hop headers (the fixed list and those named in `Connection`), adding
//! `Via`, `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`, and the
//! framing checks that refuse ambiguous requests (request smuggling). Pure functions over
//! `HeaderMap`s; it must not do I/O or know about back-ends.

use std::net::IpAddr;
use std::sync::LazyLock;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// What we say in `Via` (RFC 9110 §7.6.3): protocol version and a pseudonym, never a host name.
const VIA_SELF: &str = "1.1 pentaflow";

/// Hop-by-hop headers that are never forwarded, whatever `Connection` lists.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

// Header names used on every request, made once. `HeaderName::from_static` and `&str` lookups
// parse and validate the name on each call (≈1.5 % of the proxy's CPU in the keep-alive
// benchmark of bench/run.sh); a ready `HeaderName` only hashes. `http` has constants for the
// standard names only; these are the others, made on first use.
static KEEP_ALIVE: LazyLock<HeaderName> = LazyLock::new(|| HeaderName::from_static("keep-alive"));
static PROXY_CONNECTION: LazyLock<HeaderName> =
    LazyLock::new(|| HeaderName::from_static("proxy-connection"));
static X_FORWARDED_FOR: LazyLock<HeaderName> =
    LazyLock::new(|| HeaderName::from_static("x-forwarded-for"));
static X_FORWARDED_PROTO: LazyLock<HeaderName> =
    LazyLock::new(|| HeaderName::from_static("x-forwarded-proto"));
static X_FORWARDED_HOST: LazyLock<HeaderName> =
    LazyLock::new(|| HeaderName::from_static("x-forwarded-host"));

/// The position of `name` in [`HOP_BY_HOP`] (ASCII case-insensitive), if it is there.
fn hop_by_hop_index(name: &str) -> Option<usize> {
    HOP_BY_HOP.iter().position(|h| h.eq_ignore_ascii_case(name))
}

/// The name at position `i` of [`HOP_BY_HOP`], ready for a map lookup.
fn hop_by_hop_name(i: usize) -> HeaderName {
    match i {
        0 => header::CONNECTION,
        1 => KEEP_ALIVE.clone(),
        2 => PROXY_CONNECTION.clone(),
        3 => header::TE,
        4 => header::TRAILER,
        5 => header::TRANSFER_ENCODING,
        6 => header::UPGRADE,
        _ => header::PROXY_AUTHENTICATE,
    }
}

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

/// Refuses requests whose body length two HTTP implementations could read differently.
///
/// hyper already rejects obs-fold, bad chunk sizes and conflicting lengths while parsing; this
/// covers what a lenient parser downstream could still disagree on.
pub fn check_request_framing(headers: &HeaderMap) -> Result<(), FramingError> {
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(FramingError::DuplicateHost);
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let has_te = headers.contains_key(header::TRANSFER_ENCODING);
    if let Some(first) = lengths.next() {
        if has_te {
            return Err(FramingError::LengthAndChunked);
        }
        if lengths.next().is_some() {
            return Err(FramingError::DuplicateLength);
        }
        let text = first.to_str().map_err(|_| FramingError::InvalidLength)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FramingError::InvalidLength);
        }
    }
    if has_te {
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|c| !c.is_empty());
        if !matches!(last, Some(c) if c.eq_ignore_ascii_case("chunked")) {
            return Err(FramingError::BadTransferEncoding);
        }
    }
    Ok(())
}

/// True when the request asks to switch protocols (e.g. WebSocket): `Connection: upgrade` + `Upgrade`.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_lists(headers, "upgrade")
}

/// Removes hop-by-hop headers. When `keep_upgrade` is set (a tunnelled upgrade), `Upgrade` and
/// `Connection: upgrade` are kept, since the next hop must see them to switch protocols.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the field names (no hashing, no parsing) finds which fixed hop-by-hop
    // fields are present; a message with none of them (so no `Connection` either) is left as
    // it is, and only the present ones are looked up and removed below. This runs twice per
    // request (request and response) and was ~3 % of the proxy's CPU when it removed the
    // eight names by `&str` (a parse each) and collected `Connection` tokens into a `Vec`.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Fields named in `Connection`. Tokens that are on the fixed list are removed with it
        // below, so the common `Connection: keep-alive` / `close` allocates nothing here.
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            if keep_upgrade && token.eq_ignore_ascii_case("upgrade") {
                continue;
            }
            if hop_by_hop_index(token).is_some() {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    let upgrade = keep_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for i in 0..HOP_BY_HOP.len() {
        if present & (1 << i) != 0 {
            headers.remove(hop_by_hop_name(i));
        }
    }
    if let Some(value) = upgrade {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
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
        }
    }
}

/// Adds `Via`, `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `Forwarded` (appended) to a request about to go to a back-end.
pub fn add_forwarding(headers: &mut HeaderMap, client: &ClientSide) {
    append_list(headers, header::VIA, &HeaderValue::from_static(VIA_SELF));
    append_list(headers, X_FORWARDED_FOR.clone(), &client.for_value);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(client.proto),
    );
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    append_list(headers, header::FORWARDED, &client.forwarded_value);
}

/// Adds our `Via` to a response going back to the client.
pub fn add_response_via(headers: &mut HeaderMap) {
    append_list(headers, header::VIA, &HeaderValue::from_static(VIA_SELF));
}

fn connection_lists(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Appends `item` to a comma-separated list header, folding existing fields into one. The
/// common case — no such header yet — costs no formatting at all.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: &HeaderValue) {
    let mut existing = headers.get_all(&name).iter().peekable();
    if existing.peek().is_none() {
        headers.insert(name, item.clone());
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in existing {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(item.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn framing_refuses_ambiguous_lengths() {
        let cl_te = map(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
        assert_eq!(
            check_request_framing(&cl_te),
            Err(FramingError::LengthAndChunked)
        );
        let dup = map(&[("content-length", "5"), ("content-length", "5")]);
        assert_eq!(
            check_request_framing(&dup),
            Err(FramingError::DuplicateLength)
        );
        let bad = map(&[("content-length", "+5")]);
        assert_eq!(
            check_request_framing(&bad),
            Err(FramingError::InvalidLength)
        );
        let te = map(&[("transfer-encoding", "chunked, gzip")]);
        assert_eq!(
            check_request_framing(&te),
            Err(FramingError::BadTransferEncoding)
        );
        assert!(check_request_framing(&map(&[("content-length", "12")])).is_ok());
        let hosts = map(&[("host", "a.test"), ("host", "b.test")]);
        assert_eq!(
            check_request_framing(&hosts),
            Err(FramingError::DuplicateHost)
        );
        assert!(check_request_framing(&map(&[("transfer-encoding", "gzip, chunked")])).is_ok());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("host", "example.com"),
            ("upgrade", "websocket"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("host"));
    }

    #[test]
    fn upgrade_is_kept_for_tunnels() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("host", "a"),
        ]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn forwarding_headers_append() {
        let mut h = map(&[("host", "site.test"), ("x-forwarded-for", "10.9.9.9")]);
        add_forwarding(
            &mut h,
            &ClientSide::new("192.0.2.7".parse().unwrap(), false),
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.9.9.9, 192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "site.test");
        assert_eq!(h.get("via").unwrap(), "1.1 pentaflow");
        assert_eq!(h.get("forwarded").unwrap(), "for=192.0.2.7;proto=http");
        let mut h6 = HeaderMap::new();
        add_forwarding(&mut h6, &ClientSide::new("::1".parse().unwrap(), true));
        assert_eq!(h6.get("forwarded").unwrap(), "for=\"[::1]\";proto=https");
        assert_eq!(h6.get("x-forwarded-for").unwrap(), "::1");
    }
}

//! The one place where request-path failures become HTTP responses (linkerd's habit): every
//! refusal the proxy itself makes has its status code and body chosen here.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::headers::FramingError;

/// Why the proxy answers a request itself instead of a back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No listener-service matched (should not happen outside a reload race).
    NoService,
    /// Every back-end is down or was tried.
    NoBackend,
    /// The back-end did not send a response head in time.
    GatewayTimeout,
    /// The back-end failed and the request could not be retried.
    BadGateway,
    /// Ambiguous request framing.
    BadFraming(FramingError),
    /// The client's body was malformed or cut off.
    BadBody,
    /// A request the proxy cannot route (e.g. no usable path), or a malformed request head.
    BadRequest,
    /// The request head did not arrive within `header_read_timeout`.
    RequestTimeout,
    /// The request head is larger than `max_header_bytes` or has more than `max_headers`.
    HeadTooLarge,
    /// The client stopped sending its body for longer than `client_body_timeout`.
    BodyTimeout,
    /// The body is larger than the service's `max_body_bytes`.
    BodyTooLarge,
}

/// Every reason the node answers a request itself, with its status, in the order of
/// `Refusal::index` (then the redirect to HTTPS and the per-client connection limit, which are
/// not request refusals): the labels of the `local_responses` metric.
pub const LOCAL_REASONS: [(u16, &str); 13] = [
    (503, "no_service"),
    (503, "no_backend"),
    (504, "gateway_timeout"),
    (502, "bad_gateway"),
    (400, "bad_framing"),
    (400, "bad_body"),
    (400, "bad_request"),
    (408, "request_timeout"),
    (431, "head_too_large"),
    (408, "body_timeout"),
    (413, "body_too_large"),
    (308, "https_redirect"),
    (503, "client_connection_limit"),
];

/// The index of the HTTPS redirect in [`LOCAL_REASONS`].
pub(crate) const REDIRECT_INDEX: usize = 11;

/// The index of the per-client connection limit's `503` in [`LOCAL_REASONS`] (on a TLS
/// listener the connection is only closed, and counted here too).
pub(crate) const CLIENT_LIMIT_INDEX: usize = 12;

/// What a plain-HTTP connection past `max_connections_per_client` is sent, before any request
/// is read: a complete `503` that closes the connection.
pub(crate) const CLIENT_LIMIT_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 50\r\n\r\n\
503 too many connections from this client address\n";

impl Refusal {
    /// This refusal's position in [`LOCAL_REASONS`].
    pub(crate) fn index(self) -> usize {
        match self {
            Self::NoService => 0,
            Self::NoBackend => 1,
            Self::GatewayTimeout => 2,
            Self::BadGateway => 3,
            Self::BadFraming(_) => 4,
            Self::BadBody => 5,
            Self::BadRequest => 6,
            Self::RequestTimeout => 7,
            Self::HeadTooLarge => 8,
            Self::BodyTimeout => 9,
            Self::BodyTooLarge => 10,
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::NoService | Self::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::BadFraming(_) | Self::BadBody | Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::RequestTimeout | Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// Whether the client connection must be closed after the response: after a framing error
    /// the rest of the byte stream cannot be trusted.
    pub(crate) fn closes_connection(self) -> bool {
        matches!(
            self,
            Self::BadFraming(_)
                | Self::BadBody
                | Self::BadRequest
                | Self::RequestTimeout
                | Self::HeadTooLarge
                | Self::BodyTimeout
                | Self::BodyTooLarge
        )
    }

    fn message(self) -> String {
        match self {
            Self::NoService => "no service is configured for this listener".to_owned(),
            Self::NoBackend => "no healthy back-end server is available".to_owned(),
            Self::GatewayTimeout => "the back-end server did not answer in time".to_owned(),
            Self::BadGateway => "the back-end server failed to answer".to_owned(),
            Self::BadFraming(e) => format!("bad request framing: {e}"),
            Self::BadBody => "malformed or truncated request body".to_owned(),
            Self::BadRequest => "bad request".to_owned(),
            Self::RequestTimeout => "request head not completed in time".to_owned(),
            Self::HeadTooLarge => "request header fields too large".to_owned(),
            Self::BodyTimeout => "request body not received in time".to_owned(),
            Self::BodyTooLarge => "request body too large".to_owned(),
        }
    }

    /// The response sent to the client.
    pub(crate) fn response(self) -> Response<ResponseBody> {
        let status = self.status();
        let text = format!("{} {}\n", status.as_u16(), self.message());
        let mut resp = Response::new(ResponseBody::full(Bytes::from(text)));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// A permanent redirect (`308`, which keeps the method and body) to `location`.
pub(crate) fn redirect(location: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(Bytes::from(format!(
        "moved to {location}\n"
    ))));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

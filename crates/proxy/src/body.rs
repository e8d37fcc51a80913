//! Bodies that stream through the proxy, and the bookkeeping that ends with them.
//!
//! Owns: the response body sent to the client (a back-end's body streamed as it arrives — read
//! from the back-end's socket by the task that polls it, see h1::upstream — or a small local
//! body, or a rewritten one), and [`Exchange`], the record of one request that is finished —
//! access-logged, counted — when the response body ends or is dropped. Nothing here buffers a
//! whole body.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::Full;

use crate::backend::Backend;
use crate::conn::ConnState;
use crate::h1::upstream::UpstreamBody;

/// Errors carried by bodies that cross the proxy.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a response on its way to the client.
pub struct ResponseBody {
    kind: Kind,
    exchange: Option<Exchange>,
}

enum Kind {
    Full(Full<Bytes>),
    Upstream(UpstreamBody),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl ResponseBody {
    /// A small body the proxy makes itself.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full(Full::new(bytes)),
            exchange: None,
        }
    }

    /// A back-end's body, streamed as it arrives.
    pub(crate) fn upstream(body: UpstreamBody) -> Self {
        Self {
            kind: Kind::Upstream(body),
            exchange: None,
        }
    }

    /// Any other body (e.g. a rewritten one).
    pub(crate) fn boxed(body: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        Self {
            kind: Kind::Boxed(body),
            exchange: None,
        }
    }

    /// Attaches the request's record, finished when this body ends or is dropped.
    pub(crate) fn with_exchange(mut self, exchange: Exchange) -> Self {
        self.exchange = Some(exchange);
        self
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut ex) = self.exchange.take() {
            ex.complete = complete;
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Kind::Upstream(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
            Kind::Boxed(b) => Pin::new(b).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(ex), Some(data)) = (this.exchange.as_mut(), frame.data_ref()) {
                    ex.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_end_stream(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => b.size_hint(),
            Kind::Upstream(b) => b.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper never polls a body that is already at its end (HEAD, 204, 304, empty local
        // bodies), so an end-of-stream body dropped here did complete.
        let done = self.is_end_stream();
        self.finish(done);
    }
}

/// One request's record: what is logged and counted when its response is over.
pub(crate) struct Exchange {
    /// When the request arrived; read only for the access log, so taken only when it is on
    /// (one clock read less per request otherwise).
    pub(crate) started: Option<Instant>,
    pub(crate) service: Arc<str>,
    pub(crate) client: IpAddr,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) status: u16,
    /// How the answer was chosen: "cookie", "session", "policy", "cache" (CDN page cache) or
    /// "local" (the proxy refused).
    pub(crate) route: &'static str,
    pub(crate) backend: Option<Arc<Backend>>,
    pub(crate) bytes: u64,
    pub(crate) complete: bool,
    pub(crate) access_log: bool,
    /// The client connection's TLS handshake, if any (logged: version, resumed).
    pub(crate) tls: Option<crate::tls::Handshake>,
    pub(crate) conn: Arc<ConnState>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(backend) = &self.backend {
            backend.end_request();
        }
        self.conn.end_request();
        if self.access_log {
            let backend = self
                .backend
                .as_ref()
                .map_or("-", |b| b.config.name.as_str());
            tracing::info!(
                target: "pentaflow::access",
                service = %self.service,
                client = %self.client,
                method = %self.method,
                path = %self.path,
                status = self.status,
                backend,
                route = self.route,
                bytes = self.bytes,
                duration_ms = self
                    .started
                    .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0),
                complete = self.complete,
                tls = self.tls.map_or("-", |t| t.version),
                tls_resumed = self.tls.is_some_and(|t| t.resumed),
            );
        }
    }
}

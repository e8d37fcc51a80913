//! Forwarding one client request: schedule, connect (rerouting on failure), send, stream back.
//!
//! Owns the request path of seed 002's DLBA server: every request on a client keep-alive
//! connection is scheduled on its own; a failed connect is rerouted at once (nothing was sent,
//! so it is always safe); a reused pooled connection that fails before any response byte is
//! sent again once on a fresh connection whatever the method (the body replayed from a 64 KiB
//! record), without counting against the back-end; another failure after sending is retried
//! only for idempotent requests without a body; the back-end is timed from the request fully
//! sent, and a client's body failing is never the back-end's fault; after `101` the back-end
//! connection is handed to the client side as a [`Tunnel`]. It runs in the client
//! connection's task, generic over the request body (HTTP/1's `ClientBody`, hyper's h2
//! `Incoming`). It must not pick back-ends itself (the service does) nor choose error
//! responses (respond.rs does).
//!
//! **Interim responses** (`1xx` but `101`, e.g. `103 Early Hints`, RFC 9110 §15.2): each one
//! a back-end sends before its final head is written to the client as it arrives, through
//! the request body's [`InterimSink`] (the HTTP/1 body is what holds the client's connection
//! while a request is in flight), with hop-by-hop fields dropped and `Via` added like on a
//! final head. Not to HTTP/1.0 clients, which do not know them; not a back-end's `100
//! Continue`, since the node answers `Expect: 100-continue` itself and never forwards the
//! expectation; and not to HTTP/2 clients: hyper's HTTP/2 server has no way to send a `1xx`
//! before the final response (hyperium/hyper#4114 is open), so they are dropped there. A
//! CDN service forwards them too: they pass before the rewriter sees the final response (it
//! rewrites bodies, not the `Link` fields of hints). At most [`MAX_INTERIM`] heads and
//! [`MAX_INTERIM_BYTES`] are waited through, all within `response_timeout`; past that the
//! back-end's answer is a `502` (counted as `interim_floods`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use pentaflow_config::Persistence;

use crate::body::{BoxError, Exchange, ResponseBody};
use crate::conn::ConnState;
use crate::error::{RetryType, UpstreamError};
use crate::h1::head::{RequestHead, ResponseHead};
use crate::h1::upstream::{
    is_interim, HeadError, InterimBudget, Return, SendError, Upstream, UpstreamBody, INTERIM_FLOOD,
};
#[cfg(doc)]
use crate::h1::upstream::{MAX_INTERIM, MAX_INTERIM_BYTES};
use crate::headers::ClientSide;
use crate::node::{Counters, NodeState, Shared};
use crate::persistence::{app_cookie_lifetime_in, cookie_value};
use crate::proxy_protocol::Outbound;
use crate::respond::Refusal;
use crate::service::Service;
use http_body_util::BodyExt;
use pentaflow_rewrite::{RequestInfo, Rewriter};

/// Most request-body bytes kept for replaying a request whose reused pooled connection failed
/// before any response byte (pingora keeps 64 KiB for the same purpose).
const REPLAY_LIMIT: usize = 64 * 1024;

/// Where a back-end's interim responses go while the final one is awaited. A trait of the
/// request body because, on HTTP/1, the body is what holds the client's connection while its
/// request is in flight.
pub(crate) trait InterimSink {
    /// Whether interim responses reach this client at all (HTTP/1.1 clients only).
    fn takes_interim(&self) -> bool;

    /// Writes one interim head, complete with its final CRLF, to the client and flushes it.
    fn send_interim<'a>(
        &'a mut self,
        head: &'a [u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'a;
}

/// A request body whose client takes no interim responses (hyper's HTTP/2 server cannot send
/// them, see the module doc).
struct NoInterim<B>(B);

impl<B: Body + Unpin> Body for NoInterim<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

impl<B> InterimSink for NoInterim<B> {
    fn takes_interim(&self) -> bool {
        false
    }

    fn send_interim<'a>(
        &'a mut self,
        _head: &'a [u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'a {
        std::future::ready(Ok(()))
    }
}

/// What [`handle_head`] answers: a head, the body, and after `101` the back-end connection
/// the client side turns into a tunnel.
pub(crate) struct Reply {
    pub(crate) head: ReplyHead,
    pub(crate) body: ResponseBody,
    pub(crate) tunnel: Option<Upstream>,
}

/// The head of a [`Reply`].
pub(crate) enum ReplyHead {
    /// A back-end's head, forwarded as it arrived apart from what h1::head rewrites, with the
    /// injected persistence cookie, if any.
    Backend {
        head: Box<ResponseHead>,
        set_cookie: Option<HeaderValue>,
        switching: bool,
    },
    /// A head the node made (a refusal, a redirect, a cached or rewritten page).
    Made(http::response::Parts),
}

impl Reply {
    fn made(resp: Response<ResponseBody>) -> Self {
        let (head, body) = resp.into_parts();
        Self {
            head: ReplyHead::Made(head),
            body,
            tunnel: None,
        }
    }

    /// The reply as an `http::Response`, for hyper's HTTP/2 server and the CDN rewriter.
    fn into_response(self) -> Response<ResponseBody> {
        Response::from_parts(self.head.into_parts(), self.body)
    }
}

impl ReplyHead {
    fn into_parts(self) -> http::response::Parts {
        match self {
            Self::Made(p) => p,
            Self::Backend {
                head,
                set_cookie,
                switching,
            } => {
                let mut parts = Response::new(()).into_parts().0;
                parts.status = head.status;
                parts.headers = head.header_map(switching);
                if let Some(v) = set_cookie {
                    parts.headers.append(header::SET_COOKIE, v);
                }
                parts
            }
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub(crate) struct ClientInfo {
    /// The client's address: the TCP peer's, or on an `accept_proxy` listener the one its
    /// PROXY header carried. Everything that means "the client" uses it.
    pub(crate) peer: SocketAddr,
    /// The configured listen address that accepted it (selects the service).
    pub(crate) listener: SocketAddr,
    /// What the TLS handshake negotiated; `None` for plain HTTP.
    pub(crate) tls: Option<crate::tls::Handshake>,
    /// The forwarding headers of this connection, built once at accept.
    pub(crate) side: Arc<ClientSide>,
    pub(crate) conn: Arc<ConnState>,
}

impl ClientInfo {
    pub(crate) fn https(&self) -> bool {
        self.tls.is_some()
    }
}

/// Handles one request from hyper's HTTP/2 server; never fails (errors become responses).
/// The head crosses into the HTTP/1 form here (see h1's module doc), so both protocols reach
/// the back-ends through the same code.
pub(crate) async fn handle<B>(
    shared: &Shared,
    client: &ClientInfo,
    req: Request<B>,
    early: Option<Refusal>,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let max_headers = shared.state.load().limits.max_headers;
    let (head, early) = match RequestHead::from_parts(&parts, max_headers) {
        Ok(head) => (head, early),
        Err(_) => {
            // Fields httparse refuses: answered 400 like on HTTP/1, logged under the method.
            let line = format!("{} / HTTP/1.1\r\n\r\n", parts.method);
            match RequestHead::from_bytes(Bytes::from(line)) {
                Some(head) => (head, Some(Refusal::BadRequest)),
                None => return Refusal::BadRequest.response(),
            }
        }
    };
    handle_head(shared, client, head, NoInterim(body), early, false)
        .await
        .into_response()
}

/// Handles one request whose head is `head`; never fails (errors become responses). `early`
/// is a refusal the connection already decided on (bad framing seen while parsing), answered
/// here so that it is counted and logged like every other answer. `http1` = the head came
/// from an HTTP/1 client (which must send `Host`).
pub(crate) async fn handle_head<B>(
    shared: &Shared,
    client: &ClientInfo,
    head: RequestHead,
    body: B,
    early: Option<Refusal>,
    http1: bool,
) -> Reply
where
    B: Body<Data = Bytes> + InterimSink + Unpin,
    B::Error: Into<BoxError>,
{
    client.conn.begin_request();
    shared.counters.request();
    let state = shared.state.load_full();
    let upgrade = head.is_upgrade();
    let method = head.method();
    let mut exchange = Exchange {
        started: state.access_log.then(Instant::now),
        service: no_service_name(),
        client: client.peer.ip(),
        method: method.clone(),
        path: if state.access_log {
            String::from_utf8_lossy(head.target()).into_owned()
        } else {
            String::new()
        },
        status: 0,
        route: "local",
        backend: None,
        bytes: 0,
        complete: false,
        access_log: state.access_log,
        tls: client.tls,
        conn: Arc::clone(&client.conn),
    };
    let Some(service) = state.by_listen.get(&client.listener).cloned() else {
        return refuse(shared, Refusal::NoService, exchange);
    };
    exchange.service = Arc::clone(&service.name);
    if let Some(refusal) = early {
        return refuse(shared, refusal, exchange);
    }
    if !client.https() && service.config.redirect_https {
        return redirect_to_https(shared, &service, &head, exchange);
    }
    if let Err(e) = head.framing {
        return refuse(shared, Refusal::BadFraming(e), exchange);
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused.
    if http1 && head.version == Version::HTTP_11 && head.host().is_none() {
        return refuse(shared, Refusal::BadRequest, exchange);
    }
    // What scheduling reads (path, query, cookies) as an `http` request head: the target's
    // bytes are shared, and only the `Cookie` fields are copied into a map, only when a
    // persistence mode reads them.
    let mut sched = Request::new(()).into_parts().0;
    sched.method = method;
    sched.uri = head.uri();
    if !matches!(service.config.persistence, Persistence::None) {
        sched.headers = head.cookies();
    }
    // CDN rewriting: a fresh rewritten copy may be served without asking a back-end.
    let cdn = service.rewriter.as_ref().map(|rw| {
        let mut parts = Request::new(()).into_parts().0;
        parts.method = sched.method.clone();
        parts.uri = sched.uri.clone();
        parts.headers = head.header_map();
        (rw, RequestInfo::from_parts(&parts, client.peer.ip()))
    });
    let mut replace = HeaderMap::new();
    if let Some((rw, info)) = &cdn {
        if let Some(cached) = rw.serve_cached::<UpstreamBody>(info) {
            exchange.status = cached.status().as_u16();
            exchange.route = "cache";
            let (head, body) = cached.into_parts();
            let body = ResponseBody::boxed(body.map_err(BoxError::from).boxed_unsync());
            return Reply::made(Response::from_parts(head, body.with_exchange(exchange)));
        }
        rw.prepare_upstream(info, &mut replace);
    }
    let no_body = body.is_end_stream();
    let chunked = !no_body && !head.has_length();
    let mut outgoing = Vec::with_capacity(head.bytes().len() + 192);
    head.write_upstream(&client.side, &replace, chunked, &mut outgoing);
    let replayable = is_idempotent(&sched.method) && no_body;
    let head_request = sched.method == Method::HEAD;
    let attempt = Attempt {
        state: &state,
        counters: &shared.counters,
        service: &service,
        sched,
        outgoing,
        chunked,
        has_body: !no_body,
        body,
        replay: Replay::default(),
        replayable,
        upgrade,
        head_request,
        origin: Outbound::Client {
            source: client.peer,
            destination: client.side.local().unwrap_or(client.listener),
        },
    };
    match attempt.run().await {
        Ok((decision, backend, conn, head)) => {
            let reply = respond_upstream(
                &service,
                client,
                decision,
                backend,
                conn,
                head,
                state.limits.response_timeout,
                &mut exchange,
            );
            finish_response(reply, cdn, exchange)
        }
        Err(refusal) => refuse(shared, refusal, exchange),
    }
}

/// The service name logged before a service is known: one shared `Arc`, not an allocation per
/// request (every request starts with it).
fn no_service_name() -> Arc<str> {
    static NONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));
    Arc::clone(&NONE)
}

fn refuse(shared: &Shared, refusal: Refusal, mut exchange: Exchange) -> Reply {
    shared.counters.refusal(refusal);
    let resp = refusal.response();
    exchange.status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    Reply::made(Response::from_parts(parts, body.with_exchange(exchange)))
}

/// `308 Permanent Redirect` to the same URL over HTTPS (the service's first TLS port).
fn redirect_to_https(
    shared: &Shared,
    service: &Service,
    head: &RequestHead,
    mut exchange: Exchange,
) -> Reply {
    let host = head
        .host()
        .and_then(|h| std::str::from_utf8(&h).ok().map(host_without_port));
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return refuse(shared, Refusal::BadRequest, exchange);
    };
    let port = service.config.tls_listen.first().map_or(443, |a| a.port());
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    let pq = head.path_and_query();
    let pq = String::from_utf8_lossy(&pq);
    shared.counters.redirect();
    let resp = crate::respond::redirect(&format!("https://{authority}{pq}"));
    exchange.status = resp.status().as_u16();
    let (head, body) = resp.into_parts();
    Reply::made(Response::from_parts(head, body.with_exchange(exchange)))
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') =>
        {
            h.to_owned()
        }
        _ => host.to_owned(),
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

type Success = (
    crate::service::Decision,
    Arc<crate::backend::Backend>,
    Upstream,
    ResponseHead,
);

/// The request-body frames already sent on a reused connection, kept so the request can be
/// sent again on a fresh one when the reused connection turns out to be stale.
#[derive(Default)]
struct Replay {
    frames: Vec<Bytes>,
    bytes: usize,
    /// More was sent than is kept: no replay possible.
    overflowed: bool,
}

/// The client's body as sent on one attempt: the recorded frames first (on a replay), then the
/// client's stream, recording what passes while it may still be needed.
struct Recorded<'a, B> {
    replay: &'a mut Replay,
    /// Next recorded frame to send again.
    next: usize,
    inner: Option<&'a mut B>,
    record: bool,
}

impl<B> Body for Recorded<'_, B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(f) = this.replay.frames.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(http_body::Frame::data(f.clone()))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match std::pin::Pin::new(&mut **inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (true, Some(d)) = (this.record, frame.data_ref()) {
                    let r = &mut *this.replay;
                    if !r.overflowed && r.bytes + d.len() <= REPLAY_LIMIT {
                        r.bytes += d.len();
                        r.frames.push(d.clone());
                        this.next = r.frames.len();
                    } else {
                        r.overflowed = true;
                        r.frames.clear();
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The back-ends already tried for one request, in order. The first few live inline: a `Vec`
/// here cost an allocation per request, and almost every request makes one attempt.
#[derive(Default)]
struct Tried {
    inline: [usize; 4],
    len: usize,
    /// All of them, once there are more than fit inline.
    spilled: Vec<usize>,
}

impl Tried {
    fn push(&mut self, index: usize) {
        if self.spilled.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = index;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.push(index);
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_slice(&self) -> &[usize] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// The retry loop for one request.
struct Attempt<'a, B> {
    state: &'a NodeState,
    counters: &'a Counters,
    service: &'a Arc<Service>,
    /// What scheduling reads of the request.
    sched: Parts,
    /// The request head as it goes to every back-end tried.
    outgoing: Vec<u8>,
    /// The body goes out chunked.
    chunked: bool,
    /// The client's body (kept for a request without one too: it is the [`InterimSink`]).
    body: B,
    /// The request has a body to send.
    has_body: bool,
    replay: Replay,
    replayable: bool,
    upgrade: bool,
    head_request: bool,
    /// Whose connection a back-end connection serves (its PROXY header with `send_proxy`).
    origin: Outbound,
}

/// How one attempt on one connection ended without a response head.
enum Failure {
    /// The client's body failed: the client's fault, never the back-end's.
    Client(Refusal),
    /// The back-end failed.
    Backend(UpstreamError),
}

impl<B> Attempt<'_, B>
where
    B: Body<Data = Bytes> + InterimSink + Unpin,
    B::Error: Into<BoxError>,
{
    async fn run(mut self) -> Result<Success, Refusal> {
        let limits = &self.state.limits;
        let cfg = &self.service.config;
        let mut tried = Tried::default();
        let mut last = Refusal::NoBackend;
        let chunked = self.chunked;
        let head = std::mem::take(&mut self.outgoing);
        loop {
            if tried.len() > cfg.retries as usize {
                return Err(last);
            }
            let Some(decision) = self.service.schedule(&self.sched, tried.as_slice()) else {
                return Err(if tried.is_empty() {
                    Refusal::NoBackend
                } else {
                    last
                });
            };
            tried.push(decision.index);
            let backend = Arc::clone(&self.service.backends[decision.index]);
            let pooled = !self.upgrade && cfg.backend_keepalive;
            let mut conn = match backend
                .checkout(limits.connect_timeout, pooled, self.origin)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    self.failed(&backend, &e);
                    last = Refusal::NoBackend;
                    continue;
                }
            };
            backend.begin_request();
            let mut outcome = self.exchange(&mut conn, &head, chunked, &backend).await;
            // A reused pooled connection that failed before any response byte was most likely
            // closed by the back-end while idle: send again once on a fresh connection,
            // whatever the method, and do not hold it against the back-end.
            if conn.reused && self.stale(&outcome) {
                tracing::debug!(backend = %backend.config.name, "stale pooled connection: retrying on a fresh one");
                match backend.connect(limits.connect_timeout, self.origin).await {
                    Ok(fresh) => {
                        conn = fresh;
                        outcome = self.exchange(&mut conn, &head, chunked, &backend).await;
                    }
                    Err(e) => outcome = Err(Failure::Backend(e)),
                }
            }
            let error = match outcome {
                Ok((resp, elapsed)) => {
                    backend.record_success(elapsed, self.service.active_checks());
                    return Ok((decision, backend, conn, resp));
                }
                Err(Failure::Client(refusal)) => {
                    backend.end_request();
                    return Err(refusal);
                }
                Err(Failure::Backend(e)) => e,
            };
            backend.end_request();
            self.failed(&backend, &error);
            last = match error {
                UpstreamError::ResponseTimeout { .. } => Refusal::GatewayTimeout,
                UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. } => {
                    Refusal::NoBackend
                }
                _ => Refusal::BadGateway,
            };
            let may_retry = match error.retry_type() {
                RetryType::Safe => true,
                RetryType::IfIdempotent => self.replayable,
            };
            let more_attempts = tried.len() <= cfg.retries as usize;
            if !may_retry || !more_attempts {
                return Err(last);
            }
        }
    }

    /// Whether a failed attempt may be sent again on a fresh connection to the same back-end.
    fn stale(&self, outcome: &Result<(ResponseHead, std::time::Duration), Failure>) -> bool {
        let replayable_body = !self.has_body || !self.replay.overflowed;
        replayable_body
            && matches!(
                outcome,
                Err(Failure::Backend(
                    UpstreamError::NotSent { .. } | UpstreamError::NoResponse { .. }
                ))
            )
    }

    /// Sends the request on `conn` and reads the response head.
    async fn exchange(
        &mut self,
        conn: &mut Upstream,
        head: &[u8],
        chunked: bool,
        backend: &crate::backend::Backend,
    ) -> Result<(ResponseHead, std::time::Duration), Failure> {
        let address = backend.address();
        let limits = &self.state.limits;
        let sent = if self.has_body {
            let mut recorded = Recorded {
                replay: &mut self.replay,
                next: 0,
                inner: Some(&mut self.body),
                record: conn.reused,
            };
            conn.send(head, Some(&mut recorded), chunked).await
        } else {
            conn.send::<http_body_util::Empty<Bytes>>(head, None, false)
                .await
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Client(e)) => {
                tracing::debug!(error = %e, "client request body failed");
                return Err(Failure::Client(crate::h1::refusal_of_body_error(&*e)));
            }
            Err(SendError::Backend(source)) => {
                return Err(Failure::Backend(UpstreamError::NotSent { address, source }))
            }
        }
        // The back-end is timed only for what it does: from the request fully sent, and not
        // while an interim response is being written to the client.
        let sent_at = Instant::now();
        // One clock read for both (tokio's `Instant` is std's).
        let mut deadline = tokio::time::Instant::from_std(sent_at) + limits.response_timeout;
        let mut client_time = std::time::Duration::ZERO;
        let mut budget = InterimBudget::default();
        let mut to_client = self.body.takes_interim();
        loop {
            let read = tokio::time::timeout_at(deadline, conn.read_head(self.head_request)).await;
            let resp = match read {
                Ok(Ok(resp)) => resp,
                // After an interim head the back-end had the request: not a stale connection.
                Ok(Err(HeadError::NothingReceived(source))) if budget.any() => {
                    return Err(Failure::Backend(UpstreamError::Exchange {
                        address,
                        source,
                    }))
                }
                Ok(Err(HeadError::NothingReceived(source))) => {
                    return Err(Failure::Backend(UpstreamError::NoResponse {
                        address,
                        source,
                    }))
                }
                Ok(Err(HeadError::Truncated(source))) => {
                    return Err(Failure::Backend(UpstreamError::Exchange {
                        address,
                        source,
                    }))
                }
                Ok(Err(HeadError::Invalid(reason))) => {
                    return Err(Failure::Backend(UpstreamError::BadResponse {
                        address,
                        reason,
                    }))
                }
                Err(_) => {
                    return Err(Failure::Backend(UpstreamError::ResponseTimeout {
                        address,
                        timeout: limits.response_timeout,
                    }))
                }
            };
            if !is_interim(resp.status) {
                return Ok((resp, sent_at.elapsed().saturating_sub(client_time)));
            }
            if !budget.admit(&resp) {
                self.counters
                    .interim_floods
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(Failure::Backend(UpstreamError::BadResponse {
                    address,
                    reason: INTERIM_FLOOD,
                }));
            }
            // The node answered (or will answer) `Expect: 100-continue` itself.
            if !to_client || resp.status == StatusCode::CONTINUE {
                continue;
            }
            let mut out = Vec::with_capacity(resp.wire_len() + 32);
            resp.write_interim(&mut out);
            let writing = Instant::now();
            if let Err(e) = self.body.send_interim(&out).await {
                // The final response will fail the same way and close; until then the
                // back-end is still read, so that it is not blamed for the client.
                tracing::debug!(error = %e, "interim response to the client failed");
                to_client = false;
            }
            let spent = writing.elapsed();
            client_time += spent;
            deadline += spent;
        }
    }

    fn failed(&self, backend: &crate::backend::Backend, error: &UpstreamError) {
        backend.record_failure(&self.service.config.passive);
        tracing::warn!(service = %self.service.name, backend = %backend.config.name, error = %error,
            cause = ?std::error::Error::source(error).map(ToString::to_string), "back-end attempt failed");
    }
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces of a finished exchange
fn respond_upstream(
    service: &Service,
    client: &ClientInfo,
    decision: crate::service::Decision,
    backend: Arc<crate::backend::Backend>,
    conn: Upstream,
    head: ResponseHead,
    read_timeout: std::time::Duration,
    exchange: &mut Exchange,
) -> (ReplyHead, UpstreamBody, Option<Upstream>) {
    let switching = head.status == StatusCode::SWITCHING_PROTOCOLS;
    if head.dropped_length {
        tracing::debug!(backend = %backend.config.name,
            "back-end response had Content-Length and Transfer-Encoding: length dropped");
    }
    let mut set_cookie = None;
    if let Persistence::Cookie(cfg) = &service.config.persistence {
        let lifetime = cfg
            .follow
            .as_deref()
            .and_then(|n| app_cookie_lifetime_in(head.set_cookies(), n));
        let token = (decision.inject_cookie || lifetime.is_some())
            .then(|| service.cookie_token(&decision, &backend.config.name))
            .flatten();
        if let Some(token) = token {
            set_cookie = cookie_value(cfg, &token, client.https(), lifetime.as_ref());
        }
    }
    exchange.status = head.status.as_u16();
    exchange.route = decision.reason.as_str();
    exchange.backend = Some(Arc::clone(&backend));
    let pool = service.config.backend_keepalive && head.keep_alive && !switching;
    let framing = head.framing;
    let reply_head = ReplyHead::Backend {
        head: Box::new(head),
        set_cookie,
        switching,
    };
    if switching {
        // The connection now belongs to the tunnel; the body is empty.
        return (reply_head, UpstreamBody::empty(), Some(conn));
    }
    let body = UpstreamBody::new(conn, framing, Return { backend, pool }, read_timeout);
    (reply_head, body, None)
}

/// The back-end's response on its way to the client: through the CDN rewriter when the service
/// has one (it leaves alone what it must), with the exchange finished when the body ends.
fn finish_response(
    (head, body, tunnel): (ReplyHead, UpstreamBody, Option<Upstream>),
    cdn: Option<(&Rewriter, RequestInfo)>,
    exchange: Exchange,
) -> Reply {
    match cdn {
        None => Reply {
            head,
            body: ResponseBody::upstream(body).with_exchange(exchange),
            tunnel,
        },
        Some((rw, info)) => {
            let resp = Response::from_parts(head.into_parts(), body);
            let (head, body) = rw.rewrite(resp, &info).into_parts();
            let body = ResponseBody::boxed(body.map_err(BoxError::from).boxed_unsync());
            Reply {
                head: ReplyHead::Made(head),
                body: body.with_exchange(exchange),
                tunnel,
            }
        }
    }
}

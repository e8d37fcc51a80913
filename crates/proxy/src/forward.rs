//! Forwarding one client request: schedule, connect (rerouting on failure), send, stream back.
//!
//! Owns the request path of seed 002's DLBA server: every request on a client keep-alive
//! connection is scheduled on its own; a failed connect is rerouted at once (nothing was sent,
//! so it is always safe); a failure after sending is retried only for idempotent requests
//! without a body; upgrades (WebSocket) are tunnelled. It must not pick back-ends itself (the
//! service does) nor choose error responses (respond.rs does).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pentaflow_config::Persistence;

use crate::body::{
    client_request_body, empty_request_body, BoxError, Exchange, RequestBody, ResponseBody,
};
use crate::conn::ConnState;
use crate::error::{RetryType, UpstreamError};
use crate::headers::{self, ClientSide};
use crate::node::{NodeState, Shared};
use crate::persistence::{app_cookie_lifetime, inject_cookie};
use crate::respond::Refusal;
use crate::service::Service;
use http_body_util::BodyExt;
use pentaflow_rewrite::{RequestInfo, Rewriter};

/// Where a request came from.
#[derive(Debug, Clone)]
pub(crate) struct ClientInfo {
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

/// Handles one request from a client connection; never fails (errors become responses).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    client: ClientInfo,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    client.conn.begin_request();
    shared.counters.request();
    let state = shared.state.load_full();
    let upgrade = headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut exchange = Exchange {
        started: state.access_log.then(Instant::now),
        service: no_service_name(),
        client: client.peer.ip(),
        method: parts.method.clone(),
        path: if state.access_log {
            parts.uri.to_string()
        } else {
            String::new()
        },
        status: 0,
        route: "local",
        backend: None,
        pooled: None,
        bytes: 0,
        complete: false,
        access_log: state.access_log,
        tls: client.tls,
        conn: Arc::clone(&client.conn),
    };
    let Some(service) = state.by_listen.get(&client.listener).cloned() else {
        return refuse(&shared, Refusal::NoService, exchange);
    };
    exchange.service = Arc::clone(&service.name);
    if !client.https() && service.config.redirect_https {
        return redirect_to_https(&shared, &service, &parts, exchange);
    }
    if let Some(e) = client.conn.take_ambiguous_head() {
        return refuse(&shared, Refusal::BadFraming(e), exchange);
    }
    if let Err(e) = headers::check_request_framing(&parts.headers) {
        return refuse(&shared, Refusal::BadFraming(e), exchange);
    }
    // CDN rewriting: a fresh rewritten copy may be served without asking a back-end.
    let cdn = service
        .rewriter
        .as_ref()
        .map(|rw| (rw, RequestInfo::from_parts(&parts, client.peer.ip())));
    if let Some((rw, info)) = &cdn {
        if let Some(cached) = rw.serve_cached::<Incoming>(info) {
            exchange.status = cached.status().as_u16();
            exchange.route = "cache";
            let (head, body) = cached.into_parts();
            let body = ResponseBody::boxed(body.map_err(BoxError::from).boxed_unsync());
            return Response::from_parts(head, body.with_exchange(exchange));
        }
    }
    let Some(mut outgoing) = outgoing_head(parts, &client) else {
        return refuse(&shared, Refusal::BadRequest, exchange);
    };
    if let Some((rw, info)) = &cdn {
        rw.prepare_upstream(info, &mut outgoing.headers);
    }
    let no_body = body.is_end_stream();
    let replayable = is_idempotent(&outgoing.method) && no_body;
    // A request without a body (nearly all of them) goes out with an empty body that cannot
    // break: no flag and no boxed wrapper to allocate per request.
    let (body, broken) = if no_body {
        (empty_request_body(), None)
    } else {
        let broken = Arc::new(AtomicBool::new(false));
        (client_request_body(body, Arc::clone(&broken)), Some(broken))
    };
    let attempt = Attempt {
        state: &state,
        service: &service,
        outgoing,
        body: Some(body),
        broken,
        replayable,
        upgrade,
    };
    match attempt.run().await {
        Ok((decision, backend, sender, resp)) => {
            let resp = respond_upstream(
                &service,
                &client,
                decision,
                backend,
                sender,
                resp,
                client_upgrade,
                &mut exchange,
            );
            finish_response(resp, cdn, exchange)
        }
        Err(refusal) => refuse(&shared, refusal, exchange),
    }
}

/// The service name logged before a service is known: one shared `Arc`, not an allocation per
/// request (every request starts with it).
fn no_service_name() -> Arc<str> {
    static NONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("-"));
    Arc::clone(&NONE)
}

fn refuse(shared: &Shared, refusal: Refusal, mut exchange: Exchange) -> Response<ResponseBody> {
    shared.counters.refusal(refusal);
    let resp = refusal.response();
    exchange.status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body.with_exchange(exchange))
}

/// `308 Permanent Redirect` to the same URL over HTTPS (the service's first TLS port).
fn redirect_to_https(
    shared: &Shared,
    service: &Service,
    parts: &Parts,
    mut exchange: Exchange,
) -> Response<ResponseBody> {
    let host = parts.uri.host().map(str::to_owned).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
    });
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return refuse(shared, Refusal::BadRequest, exchange);
    };
    let port = service.config.tls_listen.first().map_or(443, |a| a.port());
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let resp = crate::respond::redirect(&format!("https://{authority}{pq}"));
    exchange.status = resp.status().as_u16();
    let (head, body) = resp.into_parts();
    Response::from_parts(head, body.with_exchange(exchange))
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

/// The request head as it goes to a back-end: origin-form URI, hop-by-hop headers removed,
/// forwarding headers added, Host kept (or taken from an absolute-form URI).
fn outgoing_head(mut parts: Parts, client: &ClientInfo) -> Option<Parts> {
    if let Some(authority) = parts.uri.authority() {
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        parts.headers.insert(header::HOST, host);
    } else if parts.version == Version::HTTP_11 && !parts.headers.contains_key(header::HOST) {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused.
        return None;
    }
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(pq);
    let upgrade = headers::is_upgrade(&parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    // hyper answers `Expect: 100-continue` itself when the body is first read.
    parts.headers.remove(header::EXPECT);
    headers::add_forwarding(&mut parts.headers, &client.side);
    parts.version = Version::HTTP_11;
    Some(parts)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

type Sender = hyper::client::conn::http1::SendRequest<RequestBody>;
type Success = (
    crate::service::Decision,
    Arc<crate::backend::Backend>,
    Sender,
    Response<Incoming>,
);

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
struct Attempt<'a> {
    state: &'a NodeState,
    service: &'a Arc<Service>,
    outgoing: Parts,
    body: Option<RequestBody>,
    /// Set when the client's body failed; `None` for a request without a body.
    broken: Option<Arc<AtomicBool>>,
    replayable: bool,
    upgrade: bool,
}

impl Attempt<'_> {
    async fn run(mut self) -> Result<Success, Refusal> {
        let limits = &self.state.limits;
        let cfg = &self.service.config;
        let mut tried = Tried::default();
        let mut last = Refusal::NoBackend;
        loop {
            if tried.len() > cfg.retries as usize {
                return Err(last);
            }
            let Some(decision) = self.service.schedule(&self.outgoing, tried.as_slice()) else {
                return Err(if tried.is_empty() {
                    Refusal::NoBackend
                } else {
                    last
                });
            };
            tried.push(decision.index);
            let backend = Arc::clone(&self.service.backends[decision.index]);
            let connected = if self.upgrade {
                backend
                    .connect(limits.connect_timeout, true)
                    .await
                    .map(|s| (s, false))
            } else {
                backend
                    .checkout(limits.connect_timeout, cfg.backend_keepalive)
                    .await
                    .map(|c| (c.sender, c.reused))
            };
            let (mut sender, _reused) = match connected {
                Ok(c) => c,
                Err(e) => {
                    self.failed(&backend, &e);
                    last = Refusal::NoBackend;
                    continue;
                }
            };
            if let Err(source) = sender.ready().await {
                let e = UpstreamError::NotSent {
                    address: backend.address(),
                    source,
                };
                self.failed(&backend, &e);
                continue;
            }
            let more_attempts = tried.len() <= cfg.retries as usize;
            let request = self.next_request(more_attempts);
            backend.begin_request();
            let sent_at = Instant::now();
            let outcome =
                tokio::time::timeout(limits.response_timeout, sender.send_request(request)).await;
            let error = match outcome {
                Ok(Ok(resp)) => {
                    backend.record_success(sent_at.elapsed(), self.service.active_checks());
                    return Ok((decision, backend, sender, resp));
                }
                Ok(Err(source)) if source.is_canceled() => UpstreamError::NotSent {
                    address: backend.address(),
                    source,
                },
                Ok(Err(source)) => UpstreamError::Exchange {
                    address: backend.address(),
                    source,
                },
                Err(_) => UpstreamError::ResponseTimeout {
                    address: backend.address(),
                    timeout: limits.response_timeout,
                },
            };
            backend.end_request();
            if self
                .broken
                .as_ref()
                .is_some_and(|b| b.load(Ordering::Acquire))
            {
                return Err(Refusal::BadBody);
            }
            self.failed(&backend, &error);
            last = match error {
                UpstreamError::ResponseTimeout { .. } => Refusal::GatewayTimeout,
                _ => Refusal::BadGateway,
            };
            let may_retry = match error.retry_type() {
                RetryType::Safe => self.body.is_some() || self.replayable,
                RetryType::IfIdempotent => self.replayable,
            };
            if !may_retry || !more_attempts {
                return Err(last);
            }
        }
    }

    /// The request for this attempt: a copy while a replay may still be needed, else the
    /// original head with the client's streamed body.
    fn next_request(&mut self, more_attempts: bool) -> Request<RequestBody> {
        let body = if self.replayable {
            empty_request_body()
        } else {
            self.body.take().unwrap_or_else(empty_request_body)
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.outgoing.method.clone();
        *req.uri_mut() = self.outgoing.uri.clone();
        *req.version_mut() = Version::HTTP_11;
        if more_attempts && self.replayable {
            *req.headers_mut() = self.outgoing.headers.clone();
        } else {
            *req.headers_mut() = std::mem::take(&mut self.outgoing.headers);
            // A later schedule() may still read cookies; keep those.
            for v in req.headers().get_all(header::COOKIE) {
                self.outgoing.headers.append(header::COOKIE, v.clone());
            }
        }
        req
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
    sender: Sender,
    mut resp: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    exchange: &mut Exchange,
) -> Response<Incoming> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_side)) = (switching, client_upgrade) {
        let backend_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(tunnel(client_side, backend_side));
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    headers::add_response_via(&mut parts.headers);
    if let Persistence::Cookie(cfg) = &service.config.persistence {
        let lifetime = cfg
            .follow
            .as_deref()
            .and_then(|n| app_cookie_lifetime(&parts.headers, n));
        let token = (decision.inject_cookie || lifetime.is_some())
            .then(|| service.cookie_token(&decision, &backend.config.name))
            .flatten();
        if let Some(token) = token {
            inject_cookie(
                &mut parts.headers,
                cfg,
                &token,
                client.https(),
                lifetime.as_ref(),
            );
        }
    }
    exchange.status = parts.status.as_u16();
    if service.config.backend_keepalive && !switching {
        exchange.pooled = Some(sender);
    }
    exchange.route = decision.reason.as_str();
    exchange.backend = Some(backend);
    Response::from_parts(parts, body)
}

/// The back-end's response on its way to the client: through the CDN rewriter when the service
/// has one (it leaves alone what it must), with the exchange finished when the body ends.
fn finish_response(
    resp: Response<Incoming>,
    cdn: Option<(&Rewriter, RequestInfo)>,
    exchange: Exchange,
) -> Response<ResponseBody> {
    match cdn {
        None => {
            let (head, body) = resp.into_parts();
            Response::from_parts(head, ResponseBody::upstream(body).with_exchange(exchange))
        }
        Some((rw, info)) => {
            let (head, body) = rw.rewrite(resp, &info).into_parts();
            let body = ResponseBody::boxed(body.map_err(BoxError::from).boxed_unsync());
            Response::from_parts(head, body.with_exchange(exchange))
        }
    }
}

/// Copies bytes both ways between the client and the back-end after `101 Switching Protocols`.
async fn tunnel(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
}

//! The admin listener: accept loop, routing and responses.
//!
//! Owns: the admin HTTP/1.1 server (its own listener, never a data-plane port), its limits
//! and its graceful stop, and the once-a-second sampler that feeds the dashboard's
//! [`Timeline`]. Must not: hold state of its own beyond its start time and that bounded
//! timeline; every other answer is computed from a fresh [`StatusSource`] snapshot.

use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::control;
use crate::dashboard;
use crate::error::AdminError;
use crate::metrics;
use crate::metrics::classic::Format;
use crate::model::{StatusDocument, StatusSource};
use crate::timeline::{Timeline, INTERVAL_MS};

/// A client that has not sent its request head by then is cut off, so idle or slow admin
/// clients cannot pin connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin traffic is a few scrapers and operators; past this many connections the listener
/// stops accepting until one closes, so the admin port cannot exhaust the node's descriptors.
const MAX_CONNECTIONS: usize = 64;
/// On shutdown, in-flight admin requests get this long to finish before they are dropped;
/// a scrape must not hold up the node's exit.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);
/// After an accept error that is not about a single connection (descriptor limit reached),
/// wait this long before accepting again instead of spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// `Allow` header of a 405: the admin API is read-only.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// What every request handler reads.
struct Admin {
    source: Arc<dyn StatusSource>,
    node: String,
    started: Instant,
    /// The token operator actions need; `None` refuses them all.
    token: Option<Vec<u8>>,
    /// The dashboard's sparklines and events, fed by [`sample`].
    timeline: Mutex<Timeline>,
}

/// Options of [`serve_with`].
#[derive(Clone, Default)]
pub struct AdminOptions {
    token: Option<Vec<u8>>,
}

impl AdminOptions {
    /// Operator actions (`POST /cluster/…`) accept `Authorization: Bearer <token>`.
    #[must_use]
    pub fn with_token(mut self, token: Vec<u8>) -> Self {
        self.token = Some(token);
        self
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Serves the admin API until `shutdown` turns true (or its sender is dropped, since nothing
/// could stop the server then): GET /status (JSON StatusDocument), GET /metrics (OpenMetrics
/// text via prometheus-client: per-back-end gauges/counters labelled service+backend —
/// pentaflow_backend_up, _hits_total, _open_connections, _active_requests, _failures_total,
/// _avg_response_seconds, _session_groups, _weight — and node metrics prefixed pentaflow_),
/// GET /healthz (200 "ok"). HEAD is answered like GET without a body. Anything else 404;
/// other methods 405. HTTP/1.1 via hyper. Off the data path: its own listener.
///
/// On shutdown it stops accepting, lets requests in flight finish for a short deadline, then
/// returns `Ok`. Accept errors are logged and retried, never fatal: the admin API must not take
/// the node down. Idle or silent admin connections are closed after a header read timeout, and
/// at most a few dozen are served at once. Snapshots are taken on the blocking pool, off the
/// runtime workers the data plane uses.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn StatusSource>,
    node: String,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AdminError> {
    serve_with(listener, source, node, shutdown, AdminOptions::default()).await
}

/// [`serve`] with options: with a token, also the operator actions `POST /cluster/config`
/// (push), `/cluster/commit[?proposal=N]`, `/cluster/drain`, `/cluster/enable` (see
/// [`crate::ControlRequest`]), and every page but `/healthz` needs `Authorization: Bearer
/// <token>` (an array's status pages name its back-ends and nodes; `/healthz` stays open for
/// whatever checks that the node is up). Without a token the pages are open and the actions
/// refused.
pub async fn serve_with(
    listener: TcpListener,
    source: Arc<dyn StatusSource>,
    node: String,
    mut shutdown: watch::Receiver<bool>,
    options: AdminOptions,
) -> Result<(), AdminError> {
    let admin = Arc::new(Admin {
        source,
        node,
        started: Instant::now(),
        token: options.token,
        timeline: Mutex::new(Timeline::default()),
    });
    let sampler = tokio::spawn(sample(Arc::clone(&admin), shutdown.clone()));
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "admin API listening");
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connection tasks so the set stays as small as the open connections.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break, // The semaphore is never closed; stop if it ever is.
            },
            () = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let admin = Arc::clone(&admin);
        let service = service_fn(move |request| {
            let admin = Arc::clone(&admin);
            async move { Ok::<_, Infallible>(respond_any(admin, request).await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::debug!("admin connections still open at the drain deadline; closing them");
        }
    }
    connections.shutdown().await;
    sampler.abort();
    tracing::info!(addr = ?local, "admin API stopped");
    Ok(())
}

/// Feeds the dashboard's timeline once a second until shutdown: one snapshot of the back-ends
/// and of the array (on the blocking pool, as every page), so a page opened now shows the last
/// minutes and the events of them. One snapshot a second costs the node nothing measurable.
async fn sample(admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => return,
        }
        let admin = Arc::clone(&admin);
        let observed = tokio::task::spawn_blocking(move || {
            let rows = admin.source.web_servers();
            let cluster = admin.source.cluster_report();
            // Wall-clock time for the operator's timeline; a clock before 1970 shows as 0.
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let mut timeline = admin
                .timeline
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            timeline.observe(now, &rows, &cluster);
        });
        if let Err(error) = observed.await {
            tracing::warn!(%error, "dashboard sample failed");
        }
    }
}

/// Resolves once shutdown is requested or can no longer be requested.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Errors about one connection (reset before accept) are ignored; others (out of descriptors)
/// are logged and slowed down so the loop does not spin.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "admin accept failed");
    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
}

/// What a request asks for, once routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Status,
    Metrics,
    Healthz,
    Cdn,
    Cluster,
    /// The dashboard's sparklines and events since `(observation, event)`.
    History(u64, u64),
    /// The dashboard's bucket picture.
    Buckets,
}

/// Why a request gets no page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// 404: not one of the admin paths.
    NotFound,
    /// 405: an admin path, but not GET or HEAD.
    MethodNotAllowed,
}

/// Operator actions first (they need the body and the token), then the read-only pages.
async fn respond_any(admin: Arc<Admin>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !control::is_control(request.uri().path()) {
        return respond(admin, &request).await;
    }
    if let Err((status, message)) = control::authorize(request.headers(), admin.token.as_deref()) {
        return owned_text(status, message);
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let body = match Limited::new(request.into_body(), control::MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or broken\n"),
    };
    let action = match control::parse(&method, &path, query.as_deref(), &body) {
        Ok(action) => action,
        Err((status, message)) => return owned_text(status, message),
    };
    tracing::info!(?method, path, "admin operator action");
    let answer =
        tokio::task::spawn_blocking(move || control::run(admin.source.as_ref(), action)).await;
    match answer {
        Ok(Ok(doc)) => match serde_json::to_vec(&doc) {
            Ok(body) => with_body(StatusCode::OK, "application/json", body.into()),
            Err(error) => internal_error("control", &error),
        },
        Ok(Err(e)) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::CONFLICT);
            owned_text(status, format!("{}\n", e.message))
        }
        Err(error) => internal_error("control handler", &error),
    }
}

fn owned_text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_body(status, "text/plain; charset=utf-8", Bytes::from(body))
}

/// The admin API in one place: route, method check, body.
async fn respond<B>(admin: Arc<Admin>, request: &Request<B>) -> Response<Full<Bytes>> {
    if let Some(asset) = dashboard::asset(request.uri().path()) {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Refusal::MethodNotAllowed.response();
        }
        // The page and its files carry no data: open, so that the page can ask for a token.
        let mut response = with_body(
            StatusCode::OK,
            asset.content_type,
            Bytes::from_static(asset.body.as_bytes()),
        );
        for (name, value) in dashboard::SECURITY_HEADERS {
            response
                .headers_mut()
                .insert(name.clone(), HeaderValue::from_static(value));
        }
        return response;
    }
    let page = match route(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    ) {
        Ok(Page::Healthz) => return text(StatusCode::OK, "ok"),
        Ok(page) => page,
        Err(refusal) => return refusal.response(),
    };
    if let Some(token) = admin.token.as_deref() {
        if let Err((status, message)) = control::authorize(request.headers(), Some(token)) {
            return owned_text(status, message);
        }
    }
    // A snapshot and its encoding take about a millisecond per thousand back-ends, and the
    // source may take a lock: keep that off the runtime's workers, which run the data plane.
    let format = metrics::classic::Format::negotiate(
        request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    tokio::task::spawn_blocking(move || render(&admin, page, format))
        .await
        .unwrap_or_else(|error| internal_error("admin handler", &error))
}

/// Which page, or why none.
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Page, Refusal> {
    let page = match path {
        "/ui/history" => {
            let number = |key: &str| {
                query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0)
            };
            Page::History(number("since"), number("events_since"))
        }
        "/ui/buckets" => Page::Buckets,
        "/status" => Page::Status,
        "/metrics" => Page::Metrics,
        "/healthz" => Page::Healthz,
        "/cdn" => Page::Cdn,
        "/cluster" => Page::Cluster,
        _ => return Err(Refusal::NotFound),
    };
    // HEAD needs no branch of its own: hyper sends the headers of the GET answer, no body.
    if method != Method::GET && method != Method::HEAD {
        return Err(Refusal::MethodNotAllowed);
    }
    Ok(page)
}

impl Refusal {
    fn response(self) -> Response<Full<Bytes>> {
        match self {
            Self::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
            Self::MethodNotAllowed => {
                let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                let allow = HeaderValue::from_static(ALLOWED_METHODS);
                response.headers_mut().insert(ALLOW, allow);
                response
            }
        }
    }
}

/// Takes a snapshot and encodes it as `page` asks (`/metrics` in `format`).
fn render(admin: &Admin, page: Page, format: Format) -> Response<Full<Bytes>> {
    let json = |what: &str, doc: &serde_json::Value| match serde_json::to_vec(doc) {
        Ok(body) => with_body(StatusCode::OK, "application/json", body.into()),
        Err(error) => internal_error(what, &error),
    };
    match page {
        Page::History(since, events_since) => {
            let timeline = admin
                .timeline
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return json("history", &timeline.json(since, events_since));
        }
        Page::Buckets => {
            let table = admin.source.bucket_table();
            return json("buckets", &dashboard::bucket_cells(table.as_deref()));
        }
        _ => {}
    }
    if page == Page::Cdn || page == Page::Cluster {
        let doc = if page == Page::Cdn {
            admin.source.cdn_report()
        } else {
            admin.source.cluster_report()
        };
        return match serde_json::to_vec(&doc) {
            Ok(body) => with_body(StatusCode::OK, "application/json", body.into()),
            Err(error) => internal_error("cdn", &error),
        };
    }
    let uptime = admin.started.elapsed().as_secs();
    let doc = StatusDocument::snapshot(admin.source.as_ref(), admin.node.clone(), uptime);
    if page == Page::Status {
        match serde_json::to_vec(&doc) {
            Ok(body) => with_body(StatusCode::OK, "application/json", body.into()),
            Err(error) => internal_error("status", &error),
        }
    } else {
        let body = metrics::encode(doc).map(|om| match format {
            Format::OpenMetrics => om,
            Format::Classic => metrics::classic::to_classic(&om),
        });
        match body {
            Ok(body) => with_body(StatusCode::OK, format.content_type(), body.into()),
            Err(error) => internal_error("metrics", &error),
        }
    }
}

fn internal_error(what: &str, error: &dyn std::error::Error) -> Response<Full<Bytes>> {
    tracing::error!(what, %error, "admin API could not encode a response");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Every answer is a live snapshot; a cache in between would show stale numbers.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod tests;

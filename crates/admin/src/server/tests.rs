use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use pentaflow_balance::WebServerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::*;
use crate::exposition;
use crate::fixture;
use crate::model::NodeMetric;
use crate::{fetch_status, AdminError};

/// The fixture document, with a hit counter that moves between requests.
struct Source {
    hits: AtomicU64,
}

impl StatusSource for Source {
    fn web_servers(&self) -> Vec<WebServerStatus> {
        let mut rows = fixture::document().web_servers;
        rows[0].hits = self.hits.load(Ordering::Relaxed);
        rows
    }
    fn node_metrics(&self) -> Vec<NodeMetric> {
        fixture::document().metrics
    }
}

struct Running {
    addr: SocketAddr,
    source: Arc<Source>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), AdminError>>,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let source = Arc::new(Source {
        hits: AtomicU64::new(100),
    });
    let (stop, shutdown) = watch::channel(false);
    let dyn_source: Arc<dyn StatusSource> = Arc::clone(&source) as _;
    let task = tokio::spawn(serve(
        listener,
        dyn_source,
        "pentaflow 0.1.0".into(),
        shutdown,
    ));
    Running {
        addr,
        source,
        stop,
        task,
    }
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_ascii_lowercase(), body.to_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
}

/// What Prometheus 2.x/3.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn get_accepting(path: &str, accept: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: admin\r\nAccept: {accept}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn metrics_without_accept_are_the_classic_format() {
    let server = start().await;
    for request in [get("/metrics"), get_accepting("/metrics", "text/plain")] {
        let (code, head, body) = raw(server.addr, &request).await;
        assert_eq!(code, 200);
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            !body.contains("# EOF") && !body.contains("# UNIT"),
            "{body}"
        );
        for line in [
            "# TYPE pentaflow_backend_hits_total counter",
            "# TYPE pentaflow_node_info gauge",
            "pentaflow_backend_hits_total{service=\"web\",backend=\"app1\"} 100",
            "pentaflow_connections_accepted_total 42",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "missing {line:?} in\n{body}"
            );
        }
    }
}

#[tokio::test]
async fn status_round_trips_through_fetch_status() {
    let server = start().await;
    let doc = fetch_status(server.addr, None).await.unwrap();
    let expected = fixture::document();
    assert_eq!(doc.node, "pentaflow 0.1.0");
    assert_eq!(doc.web_servers, expected.web_servers);
    assert_eq!(doc.metrics, expected.metrics);
    assert!(doc.uptime_secs < 60);

    // Every request reads the source afresh: nothing is cached between requests.
    server.source.hits.store(101, Ordering::Relaxed);
    let doc = fetch_status(server.addr, None).await.unwrap();
    assert_eq!(doc.web_servers[0].hits, 101);
}

#[tokio::test]
async fn metrics_are_a_valid_exposition_with_labels_and_values() {
    let server = start().await;
    let (code, head, body) = raw(server.addr, &get_accepting("/metrics", PROMETHEUS_ACCEPT)).await;
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    for line in [
        "# TYPE pentaflow_backend_up gauge",
        "# TYPE pentaflow_backend_hits counter",
        "# TYPE pentaflow_backend_open_connections gauge",
        "# TYPE pentaflow_backend_active_requests gauge",
        "# TYPE pentaflow_backend_failures counter",
        "# TYPE pentaflow_backend_avg_response_seconds gauge",
        "# TYPE pentaflow_backend_session_groups gauge",
        "# TYPE pentaflow_connections_accepted counter",
        "# TYPE pentaflow_connections_open gauge",
        "pentaflow_backend_hits_total{service=\"web\",backend=\"app1\"} 100",
        "pentaflow_backend_up{service=\"web\",backend=\"app2\"} 0",
        "pentaflow_connections_accepted_total 42",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    let families = exposition::parse(&body).unwrap();
    let labels = [("service", "api"), ("backend", "backend-long-name")];
    assert_eq!(
        exposition::value(&families, "pentaflow_backend_hits_total", &labels),
        Some(123_456.0)
    );
    assert_eq!(
        exposition::value(&families, "pentaflow_backend_failures_total", &labels),
        Some(4.0)
    );
    assert_eq!(
        exposition::value(&families, "pentaflow_backend_session_groups", &labels),
        Some(5.0)
    );
}

#[tokio::test]
async fn healthz_not_found_and_wrong_methods() {
    let server = start().await;
    let (code, head, body) = raw(server.addr, &get("/healthz")).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    assert!(head.contains("cache-control: no-store"), "{head}");

    let (code, head, body) = raw(server.addr, &get("/")).await;
    assert_eq!(code, 200, "the dashboard");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("/ui/app.js"), "{body}");
    let (code, _, _) = raw(server.addr, &get("/ui/nothing.js")).await;
    assert_eq!(code, 404);
    let (code, _, _) = raw(server.addr, &get("/status/extra")).await;
    assert_eq!(code, 404);

    let post =
        "POST /status HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (code, head, _) = raw(server.addr, post).await;
    assert_eq!(code, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let delete = "DELETE /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(server.addr, delete).await.0, 405);

    let head_request = "HEAD /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let (code, head, body) = raw(server.addr, head_request).await;
    assert_eq!(code, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(body.is_empty(), "{body}");
}

#[tokio::test]
async fn cdn_report_is_json_and_null_without_a_cdn() {
    let server = start().await;
    let (code, head, body) = raw(server.addr, &get("/cdn")).await;
    assert_eq!(code, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body, "null", "the test source has no CDN report");
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let two = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    stream.write_all(two.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
}

#[tokio::test]
async fn shutdown_stops_the_server_even_with_an_idle_connection() {
    let server = start().await;
    // An idle keep-alive connection must not hold up the stop.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    server.stop.send(true).unwrap();
    let result = tokio::time::timeout(DRAIN_DEADLINE * 2, server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener still open"
    );
    // The idle connection was closed by the server.
    assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn dropping_the_shutdown_sender_stops_the_server() {
    let server = start().await;
    drop(server.stop);
    let result = tokio::time::timeout(DRAIN_DEADLINE * 2, server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
}

/// A one-shot server that answers any request with `response`, for the client's error paths.
async fn canned(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await.unwrap();
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    addr
}

#[tokio::test]
async fn fetch_status_reports_each_failure() {
    let addr = canned("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(
        matches!(error, AdminError::BadStatus { code: 503, .. }),
        "{error:?}"
    );

    let addr = canned("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!").await;
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(matches!(error, AdminError::Decode { .. }), "{error:?}");
    assert!(error.to_string().contains(&addr.to_string()), "{error}");

    let addr = canned("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"node\":").await;
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(matches!(error, AdminError::Body { .. }), "{error:?}");

    let addr = canned("this is not HTTP\r\n\r\n").await;
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(matches!(error, AdminError::Http { .. }), "{error:?}");

    // A port nobody listens on: bind one, then free it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(matches!(error, AdminError::Io { .. }), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn fetch_status_times_out_on_a_silent_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers; the stream stays open until the task is aborted.
    let silent = tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let error = fetch_status(addr, None).await.unwrap_err();
    assert!(matches!(error, AdminError::Timeout { .. }), "{error:?}");
    silent.abort();
}

#[tokio::test(start_paused = true)]
async fn idle_and_silent_connections_are_cut() {
    let server = start().await;
    let mut buf = [0u8; 256];
    // Silent from the start: no request head within the header read timeout.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Idle after one request on a keep-alive connection.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let cut = tokio::time::timeout(HEADER_READ_TIMEOUT * 2, async {
        let silent_end = silent.read(&mut buf).await.unwrap_or(0);
        let mut other = [0u8; 256];
        let idle_end = idle.read(&mut other).await.unwrap_or(0);
        (silent_end, idle_end)
    });
    assert_eq!(cut.await.expect("connections were not cut"), (0, 0));
}

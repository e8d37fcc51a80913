//! CDN rewriting end to end: a real back-end serves real HTML pages (plain and gzip), the proxy
//! rewrites asset URLs to the CDN, caches static rewritten pages (304 on conditionals) and leaves
//! alone what it must.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;

const BLOG: &str = include_str!("../../rewrite/tests/fixtures/blog.html");

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// A web server with a blog page (cacheable), a gzip page, and JSON; counts page requests.
async fn site() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let counter = Arc::clone(&counter);
                    async move {
                        let resp = match req.uri().path() {
                            "/blog/post.html" => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                                    .header(header::CACHE_CONTROL, "max-age=60")
                                    .header(header::ETAG, "\"v1\"")
                                    .body(Full::new(Bytes::from(BLOG)))
                            }
                            "/blog/gz.html" => Response::builder()
                                .header(header::CONTENT_TYPE, "text/html")
                                .header(header::CONTENT_ENCODING, "gzip")
                                .body(Full::new(Bytes::from(gzip(BLOG)))),
                            _ => Response::builder()
                                .header(header::CONTENT_TYPE, "application/json")
                                .body(Full::new(Bytes::from_static(
                                    b"{\"img\":\"/static/img/logo.svg\"}",
                                ))),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

async fn proxy_for(site: SocketAddr) -> (pentaflow_proxy::Proxy, SocketAddr) {
    let text = format!(
        "{}[service.cdn]\nhost = \"cdn.test\"\nsite_hosts = [\"www.example.com\"]\n\n[[service.backend]]\nname = \"site\"\naddress = \"{site}\"\n",
        service("")
    );
    start_proxy(&text).await
}

#[tokio::test]
async fn asset_urls_are_rewritten_to_the_cdn_and_links_left_alone() {
    let (site, _) = site().await;
    let (_p, addr) = proxy_for(site).await;
    let a = get(addr, "/blog/post.html", &[("host", "www.example.com")]).await;
    assert_eq!(a.status, 200);
    let body = &a.body;
    assert!(
        body.contains(r#"href="https://cdn.test/static/css/main.css?v=42""#),
        "{body}"
    );
    assert!(
        body.contains(r#"src="https://cdn.test/static/img/logo.svg""#),
        "{body}"
    );
    assert!(
        body.contains(r#"src="https://cdn.test/blog/images/diagram.png""#),
        "relative URL resolved: {body}"
    );
    assert!(
        body.contains(r#"src="https://cdn.test/blog/images/chart.PNG""#),
        "absolute URL of the site: {body}"
    );
    assert!(
        body.contains(r#"<a href="/about.html">"#),
        "links are not assets: {body}"
    );
    assert!(
        body.contains("https://fonts.googleapis.com/css2?family=Inter"),
        "other hosts untouched"
    );
    let length = a
        .headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    assert!(
        length.is_none_or(|n| n == body.len()),
        "no stale Content-Length"
    );
}

#[tokio::test]
async fn static_rewritten_pages_are_cached_and_answer_conditionals() {
    let (site, hits) = site().await;
    let (proxy, addr) = proxy_for(site).await;
    let first = get(addr, "/blog/post.html", &[("host", "www.example.com")]).await;
    let second = get(addr, "/blog/post.html", &[("host", "www.example.com")]).await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second page came from the cache"
    );
    assert_eq!(second.headers.get("x-pentaflow-cache").unwrap(), "hit");
    let etag = second
        .headers
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let not_modified = get(
        addr,
        "/blog/post.html",
        &[("host", "www.example.com"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    let reports = proxy.cdn_reports();
    assert_eq!(reports.len(), 1);
    let text = report_text(&reports[0].1);
    assert!(text.contains("cdn.test"), "{text}");
}

fn report_text(report: &pentaflow_proxy::CdnReport) -> String {
    format!("{report:?}")
}

#[tokio::test]
async fn gzip_pages_are_rewritten_and_stay_gzip() {
    let (site, _) = site().await;
    let (_p, addr) = proxy_for(site).await;
    let mut client = Client::connect(addr).await;
    let req = Request::get("/blog/gz.html")
        .header("host", "www.example.com")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let sent = client.send_raw(req).await;
    assert_eq!(
        sent.0.headers.get(header::CONTENT_ENCODING).unwrap(),
        "gzip"
    );
    let text = gunzip(&sent.1);
    assert!(
        text.contains(r#"src="https://cdn.test/static/img/logo.svg""#),
        "{text}"
    );
}

#[tokio::test]
async fn non_html_and_head_are_left_alone() {
    let (site, _) = site().await;
    let (_p, addr) = proxy_for(site).await;
    let json = get(addr, "/data.json", &[("host", "www.example.com")]).await;
    assert_eq!(json.body, "{\"img\":\"/static/img/logo.svg\"}");
    let mut client = Client::connect(addr).await;
    let head = Request::head("/blog/post.html")
        .header("host", "www.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = client.send(head).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers
            .get(header::CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(BLOG.len().to_string())
    );
}

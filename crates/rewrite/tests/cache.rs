//! The page cache: static rewritten pages are stored and served without parsing until they
//! expire (time injected), conditional requests get 304, rule changes invalidate, and
//! per-coding / per-token keys keep clients apart.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use http::StatusCode;
use http_body_util::Full;
use pentaflow_rewrite::{CdnRules, RequestInfo, Rewriter, CACHE_STATUS_HEADER};

type Cached = Full<bytes::Bytes>;

const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn static_headers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "public, max-age=60"),
        ("etag", "\"v1\""),
        ("last-modified", LAST_MODIFIED),
    ];
    h.extend_from_slice(extra);
    h
}

/// Serves the blog page through `rw` at `now` and returns the rewritten body.
async fn fill(
    rw: &Rewriter,
    req: &RequestInfo,
    headers: &[(&str, &str)],
    now: SystemTime,
) -> bytes::Bytes {
    let out = rw.rewrite_at(response(headers, &fixture("blog.html"), 1000), req, now);
    collect(out.into_body()).await.expect("rewrites")
}

#[tokio::test]
async fn static_page_is_served_from_cache_until_it_expires() {
    let rw = rewriter();
    let req = req("/blog/post.html?x=1");
    assert!(rw.serve_cached_at::<Cached>(&req, t0()).is_none());
    let first = fill(&rw, &req, &static_headers(&[]), t0()).await;
    assert_eq!(rw.stats().entries, 1);
    assert_eq!(rw.stats().stores, 1);

    let later = t0() + Duration::from_secs(59);
    let hit = rw.serve_cached_at::<Cached>(&req, later).expect("cached");
    assert_eq!(hit.status(), StatusCode::OK);
    assert_eq!(hit.headers()[CACHE_STATUS_HEADER], "hit");
    assert_eq!(hit.headers()["age"], "59");
    assert_eq!(hit.headers()["etag"], "W/\"v1\"");
    assert_eq!(
        hit.headers()["content-length"],
        first.len().to_string().as_str()
    );
    assert_eq!(collect(hit.into_body()).await.unwrap(), first);

    // Other URL, other host: misses.
    assert!(rw
        .serve_cached_at::<Cached>(&common::req("/blog/post.html"), later)
        .is_none());
    let mut other_host = req.clone();
    other_host.host = Some("static.example.com".into());
    assert!(rw.serve_cached_at::<Cached>(&other_host, later).is_none());

    assert!(
        rw.serve_cached_at::<Cached>(&req, t0() + Duration::from_secs(60))
            .is_none(),
        "expired"
    );
    let stats = rw.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (1, 4, 0));
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let rw = rewriter();
    fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    for (name, value) in [
        ("if-none-match", "W/\"v1\""),
        ("if-none-match", "\"other\", \"v1\""),
        ("if-modified-since", LAST_MODIFIED),
        ("if-modified-since", "Thu, 22 Oct 2015 07:28:00 GMT"),
    ] {
        let mut r = req("/p.html");
        r.headers.insert(name, value.parse().unwrap());
        let resp = rw.serve_cached_at::<Cached>(&r, t0()).unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(resp.headers()["etag"], "W/\"v1\"");
        assert!(resp.headers().get("content-type").is_none());
        assert!(collect(resp.into_body()).await.unwrap().is_empty());
    }
    let mut r = req("/p.html");
    r.headers.insert("if-none-match", "\"v0\"".parse().unwrap());
    assert_eq!(
        rw.serve_cached_at::<Cached>(&r, t0()).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(rw.stats().not_modified, 4);
}

#[tokio::test]
async fn only_static_pages_are_cached() {
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("set-cookie", static_headers(&[("set-cookie", "sid=1")])),
        (
            "private",
            vec![
                ("content-type", "text/html"),
                ("cache-control", "private, max-age=60"),
                ("etag", "\"a\""),
            ],
        ),
        (
            "no validator",
            vec![
                ("content-type", "text/html"),
                ("cache-control", "max-age=60"),
            ],
        ),
        (
            "no lifetime",
            vec![("content-type", "text/html"), ("etag", "\"a\"")],
        ),
        ("vary cookie", static_headers(&[("vary", "Cookie")])),
    ];
    for (what, headers) in cases {
        let rw = rewriter();
        fill(&rw, &req("/p.html"), &headers, t0()).await;
        assert_eq!(rw.stats().entries, 0, "{what}");
    }
    // Authorised and no-cache requests neither fill nor use the cache.
    let rw = rewriter();
    let mut r = req("/p.html");
    r.headers
        .insert("authorization", "Basic eDp5".parse().unwrap());
    fill(&rw, &r, &static_headers(&[]), t0()).await;
    assert_eq!(rw.stats().entries, 0);
    fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    let mut r = req("/p.html");
    r.headers
        .insert("cache-control", "no-cache".parse().unwrap());
    assert!(rw.serve_cached_at::<Cached>(&r, t0()).is_none());
    // A failed body is not stored.
    let rw = rewriter();
    let mut headers = static_headers(&[("content-encoding", "gzip")]);
    headers.push(("x", "y"));
    let out = rw.rewrite_at(response(&headers, b"not gzip", 3), &req("/p.html"), t0());
    assert!(collect(out.into_body()).await.is_err());
    assert_eq!(rw.stats().entries, 0);
}

#[tokio::test]
async fn entries_are_per_coding_and_per_client_token() {
    let rw = rewriter();
    let page = fixture("blog.html");
    let gz_headers = static_headers(&[("content-encoding", "gzip")]);
    let out = rw.rewrite_at(
        response(&gz_headers, &gzip(&page), 100),
        &req("/p.html"),
        t0(),
    );
    let gz_body = collect(out.into_body()).await.unwrap();
    // A client without gzip gets no cached copy; one with it does.
    assert!(rw
        .serve_cached_at::<Cached>(&req("/p.html"), t0())
        .is_none());
    let mut r = req("/p.html");
    r.headers
        .insert("accept-encoding", "gzip, br".parse().unwrap());
    let hit = rw.serve_cached_at::<Cached>(&r, t0()).unwrap();
    assert_eq!(hit.headers()["content-encoding"], "gzip");
    assert_eq!(collect(hit.into_body()).await.unwrap(), gz_body);

    let rw = Rewriter::new(
        CdnRules {
            cdn_host: "{client_token}.cdn.example.net".into(),
            ..rules()
        },
        1 << 20,
    )
    .unwrap();
    let a = fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    assert!(!String::from_utf8_lossy(&a).contains("https://cdn.example.net"));
    let mut same_net = req("/p.html");
    same_net.client_ip = "192.0.2.200".parse().unwrap();
    assert!(rw.serve_cached_at::<Cached>(&same_net, t0()).is_some());
    let mut other_net = req("/p.html");
    other_net.client_ip = "203.0.113.5".parse().unwrap();
    assert!(rw.serve_cached_at::<Cached>(&other_net, t0()).is_none());
}

#[tokio::test]
async fn rule_changes_invalidate_and_bad_rules_are_refused() {
    let rw = rewriter();
    fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    assert_eq!(rw.stats().entries, 1);
    assert!(rw.set_rules(CdnRules::new("")).is_err());
    assert_eq!(rw.stats().entries, 1, "a refused reload changes nothing");
    assert_eq!(rw.rules().cdn_host, CDN);

    rw.set_rules(CdnRules {
        cdn_host: "cdn2.example.net".into(),
        ..rules()
    })
    .unwrap();
    assert_eq!(rw.stats().entries, 0);
    assert!(rw
        .serve_cached_at::<Cached>(&req("/p.html"), t0())
        .is_none());
    let body = fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    assert!(String::from_utf8_lossy(&body).contains("https://cdn2.example.net/static/css/main.css"));

    // A page that started under the old rules is not stored once they change.
    let out = rw.rewrite_at(
        response(&static_headers(&[]), &fixture("blog.html"), 100),
        &req("/q.html"),
        t0(),
    );
    rw.set_rules(rules()).unwrap();
    collect(out.into_body()).await.unwrap();
    assert_eq!(rw.stats().entries, 0);
}

#[tokio::test]
async fn the_cache_stays_within_its_bytes() {
    let rw = Rewriter::new(rules(), 64 << 10).unwrap();
    for i in 0..50 {
        fill(
            &rw,
            &req(&format!("/p{i}.html")),
            &static_headers(&[]),
            t0(),
        )
        .await;
    }
    let stats = rw.stats();
    assert!(stats.bytes <= 64 << 10, "{stats:?}");
    assert!(stats.evictions > 0 && stats.entries > 1, "{stats:?}");
    // The most recent page is still there.
    assert!(rw
        .serve_cached_at::<Cached>(&req("/p49.html"), t0())
        .is_some());
}

#[tokio::test]
async fn a_page_past_the_size_limit_is_not_kept() {
    let rw = Rewriter::new(
        CdnRules {
            max_decoded_page_bytes: 1000,
            ..rules()
        },
        1 << 20,
    )
    .unwrap();
    let body = fill(&rw, &req("/p.html"), &static_headers(&[]), t0()).await;
    assert!(body.len() > 1000);
    assert_eq!(rw.stats().entries, 0);
}

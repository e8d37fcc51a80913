//! Rewrite throughput on a ~100 KB page (MB/s via criterion's byte throughput): identity and gzip
//! pages streamed in 16 KB chunks, the same page passed through unrewritten, and a cache hit.
//! `identity_lol_html` is the same page behind an inline `<svg>`, which the fast scan hands to
//! lol_html: the cost of a page that needs the full parser.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use pentaflow_rewrite::{CdnRules, RequestInfo, Rewriter};

const CHUNK: usize = 16 << 10;
const PAGE_BYTES: usize = 100 << 10;

fn page() -> Vec<u8> {
    let blog = include_bytes!("../tests/fixtures/blog.html");
    let srcset = include_bytes!("../tests/fixtures/srcset.html");
    let mut page = Vec::with_capacity(PAGE_BYTES + blog.len());
    while page.len() < PAGE_BYTES {
        page.extend_from_slice(blog);
        page.extend_from_slice(srcset);
    }
    page
}

fn request() -> RequestInfo {
    RequestInfo {
        method: http::Method::GET,
        host: Some("www.example.com".into()),
        path_and_query: "/blog/post.html".into(),
        client_ip: "192.0.2.7".parse().expect("literal address"),
        headers: http::HeaderMap::new(),
    }
}

fn response(
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Response<impl http_body::Body<Data = Bytes, Error = Infallible>> {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = body
        .chunks(CHUNK)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let mut builder = http::Response::builder();
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(StreamBody::new(stream::iter(frames)))
        .expect("valid head")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rules = CdnRules {
        site_hosts: vec!["www.example.com".into()],
        ..CdnRules::new("cdn.example.net")
    };
    let rw = Rewriter::new(rules, 16 << 20).expect("valid rules");
    let req = request();
    let page = page();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&page).expect("in memory");
    let gz = gz.finish().expect("in memory");

    let mut group = c.benchmark_group("rewrite_100k");
    group.throughput(Throughput::Bytes(page.len() as u64));
    group.bench_function("identity", |b| {
        b.iter(|| {
            let out = rw.rewrite(response(&[("content-type", "text/html")], &page), &req);
            rt.block_on(out.into_body().collect()).expect("rewrites")
        })
    });
    group.bench_function("gzip", |b| {
        b.iter(|| {
            let head = [("content-type", "text/html"), ("content-encoding", "gzip")];
            let out = rw.rewrite(response(&head, &gz), &req);
            rt.block_on(out.into_body().collect()).expect("rewrites")
        })
    });
    let mut svg_page = b"<svg></svg>".to_vec();
    svg_page.extend_from_slice(&page);
    group.bench_function("identity_lol_html", |b| {
        b.iter(|| {
            let out = rw.rewrite(response(&[("content-type", "text/html")], &svg_page), &req);
            rt.block_on(out.into_body().collect()).expect("rewrites")
        })
    });
    group.bench_function("passthrough", |b| {
        b.iter(|| {
            let out = rw.rewrite(response(&[("content-type", "text/css")], &page), &req);
            rt.block_on(out.into_body().collect()).expect("passes")
        })
    });
    let cacheable = [
        ("content-type", "text/html"),
        ("cache-control", "max-age=3600"),
        ("etag", "\"bench\""),
    ];
    let out = rw.rewrite(response(&cacheable, &page), &req);
    rt.block_on(out.into_body().collect())
        .expect("fills the cache");
    group.bench_function("cache_hit", |b| {
        b.iter(|| {
            let hit = rw.serve_cached::<Full<Bytes>>(&req).expect("cached");
            rt.block_on(hit.into_body().collect()).expect("cached body")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

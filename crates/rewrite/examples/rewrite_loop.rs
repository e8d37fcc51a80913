//! A fixed number of rewrites of the bench page, for `perf stat` (user-mode cycles and
//! instructions do not depend on what else the machine runs, as criterion's wall time does):
//! `perf stat -e cycles:u,instructions:u target/release/examples/rewrite_loop identity 2000`.
#![allow(missing_docs)]

use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use pentaflow_rewrite::{CdnRules, RequestInfo, Rewriter};

const CHUNK: usize = 16 << 10;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "identity".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let blog = include_bytes!("../tests/fixtures/blog.html");
    let srcset = include_bytes!("../tests/fixtures/srcset.html");
    let mut page = Vec::new();
    if case == "lol_html" {
        page.extend_from_slice(b"<svg></svg>");
    }
    while page.len() < 100 << 10 {
        page.extend_from_slice(blog);
        page.extend_from_slice(srcset);
    }
    let coding = if case == "gzip" { "gzip" } else { "identity" };
    let body = if coding == "gzip" {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&page).expect("in memory");
        gz.finish().expect("in memory")
    } else {
        page.clone()
    };
    let rules = CdnRules {
        site_hosts: vec!["www.example.com".into()],
        ..CdnRules::new("cdn.example.net")
    };
    let rw = Rewriter::new(rules, 0).expect("valid rules");
    let req = RequestInfo {
        method: http::Method::GET,
        host: Some("www.example.com".into()),
        path_and_query: "/blog/post.html".into(),
        client_ip: "192.0.2.7".parse().expect("literal"),
        headers: http::HeaderMap::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut total = 0;
    for _ in 0..n {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = body
            .chunks(CHUNK)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let resp = http::Response::builder()
            .header("content-type", "text/html")
            .header("content-encoding", coding)
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .expect("valid head");
        let out = rw.rewrite(resp, &req);
        total += rt
            .block_on(out.into_body().collect())
            .expect("rewrites")
            .to_bytes()
            .len();
    }
    println!("{case}: {n} pages of {} B, {total} B out", page.len());
}

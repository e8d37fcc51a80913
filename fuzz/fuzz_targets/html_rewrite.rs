//! Fuzz the HTML rewrite pipeline with arbitrary back-end bodies: any bytes, claimed as any
//! content coding and charset, delivered in chunks of any size (a back-end controls all of it).
//!
//! Checks, besides "never panics": the body always ends (with data or an error) within a bounded
//! number of polls, i.e. never hangs, and serving the cache afterwards is safe; and the fast scan
//! writes exactly what lol_html alone writes for the same decoded bytes and chunking
//! (differential: the fast path must never change a page's meaning).

#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use pentaflow_rewrite::{CdnRules, RequestInfo, Rewriter};

const CODINGS: [&str; 4] = ["identity", "gzip", "deflate", "br"];
const CHARSETS: [&str; 4] = [
    "",
    "; charset=utf-8",
    "; charset=windows-1252",
    "; charset=shift_jis",
];

/// Shared like in the proxy, so the page cache and statistics are exercised across inputs.
static REWRITER: LazyLock<Rewriter> = LazyLock::new(|| {
    let rules = CdnRules {
        site_hosts: vec!["www.example.com".into()],
        ..CdnRules::new("{client_token}.cdn.example.net")
    };
    Rewriter::new(rules, 1 << 20).expect("valid rules")
});

/// A body whose chunks are all ready at once.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let coding = CODINGS[usize::from(control & 3)];
    let charset = CHARSETS[usize::from((control >> 2) & 3)];
    let chunk = 1 + usize::from(control >> 4) * 97;
    let (fast, full) = pentaflow_rewrite::differential::rewrite_both(
        body,
        chunk,
        [None, Some("utf-8"), Some("windows-1252"), Some("shift_jis")]
            [usize::from((control >> 2) & 3)],
    );
    assert!(fast == full, "fast scan and lol_html differ");
    let chunks = Chunks(body.chunks(chunk).map(Bytes::copy_from_slice).collect());
    let resp = http::Response::builder()
        .header("content-type", format!("text/html{charset}"))
        .header("content-encoding", coding)
        .header("cache-control", "max-age=60")
        .header("etag", "\"fuzz\"")
        .body(chunks)
        .expect("valid head");
    let req = RequestInfo {
        method: http::Method::GET,
        host: Some("www.example.com".into()),
        path_and_query: format!("/p{}.html", control % 8),
        client_ip: "192.0.2.1".parse().expect("literal"),
        headers: http::HeaderMap::new(),
    };
    let mut out = Box::pin(REWRITER.rewrite(resp, &req).into_body());
    let mut cx = Context::from_waker(Waker::noop());
    // Every poll consumes at least one input chunk or ends the body: more polls means a hang.
    for _ in 0..body.len() + 4 {
        match out.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(_)) => {}
            Poll::Ready(None) => {
                let _ = REWRITER.serve_cached::<Chunks>(&req);
                return;
            }
            Poll::Pending => panic!("an always-ready body returned Pending"),
        }
    }
    panic!("body did not end after {} polls", body.len() + 4);
});

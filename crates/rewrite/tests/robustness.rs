//! Property tests over hostile back-end bodies: arbitrary bytes, mutated compressed streams and
//! arbitrary chunkings never panic, always end, and a clean rewrite never depends on chunking.

mod common;

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::*;
use http_body::Body;
use pentaflow_rewrite::{RequestInfo, Rewriter};
use proptest::prelude::*;

const CODINGS: [&str; 4] = ["identity", "gzip", "deflate", "br"];

/// Drives the body synchronously (the test bodies are always ready): `Ok(bytes)` or `Err(())`
/// when it ended with an error. Panics if it does not end within `max_polls`.
fn drive(
    rw: &Rewriter,
    req: &RequestInfo,
    coding: &str,
    body: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, ()> {
    let headers = [("content-type", "text/html"), ("content-encoding", coding)];
    let out = rw.rewrite(response(&headers, body, chunk), req);
    let mut out = pin!(out.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    let mut produced = Vec::new();
    let mut failed = false;
    for _ in 0..body.len() + 4 {
        match out.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                produced.extend_from_slice(&frame.into_data().unwrap_or_default())
            }
            Poll::Ready(Some(Err(_))) => failed = true,
            Poll::Ready(None) => return if failed { Err(()) } else { Ok(produced) },
            Poll::Pending => panic!("an always-ready body returned Pending"),
        }
    }
    panic!("body did not end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_in_any_coding_end_cleanly(
        body in proptest::collection::vec(any::<u8>(), 0..2000),
        coding in 0usize..4,
        chunk in 1usize..300,
    ) {
        let _ = drive(&rewriter(), &req("/x.html"), CODINGS[coding], &body, chunk);
    }

    #[test]
    fn mutated_gzip_ends_cleanly(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        chunk in 1usize..500,
    ) {
        let mut gz = gzip(&fixture("srcset.html"));
        for (at, byte) in flips {
            let i = at.index(gz.len());
            gz[i] ^= byte;
        }
        let len = cut.index(gz.len() + 1);
        let _ = drive(&rewriter(), &req("/x.html"), "gzip", &gz[..len], chunk);
    }

    #[test]
    fn html_soup_rewrites_the_same_in_any_chunking(
        parts in proptest::collection::vec(
            prop::sample::select(vec![
                "<img src=\"/a.png\">", "<img src='b.jpg' srcset='c.png 1x, /d.png 2x'>",
                "<script src=/x.js></script>", "<!-- <img src=/e.png> -->", "<script>var s='<img src=/f.png>'</script>",
                "<link rel=stylesheet href=s.css>", "<base href=/sub/>", "<p>text &amp; more", "<", ">", "\"", "'",
                "<img src=\"", "<video poster=/p.jpg src=/v.mp4>", "\u{e9}\u{2014}", "<style>a{}</style>", " ",
            ]),
            0..40,
        ),
        chunk in 1usize..64,
    ) {
        let page: String = parts.concat();
        let rw = rewriter();
        let whole = drive(&rw, &req("/dir/x.html"), "identity", page.as_bytes(), 1 << 20);
        let pieces = drive(&rw, &req("/dir/x.html"), "identity", page.as_bytes(), chunk);
        prop_assert_eq!(whole, pieces);
    }
}

/// hyper serves the body from spawned tasks, and the rewriter is shared by every connection.
#[test]
fn types_can_cross_threads() {
    fn send_static<T: Send + 'static>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send_static::<pentaflow_rewrite::RewriteBody<Chunked>>();
    send_static::<pentaflow_rewrite::RewriteBody<http_body_util::Full<bytes::Bytes>>>();
    send_sync::<Rewriter>();
    send_sync::<pentaflow_rewrite::RewriteError>();
}

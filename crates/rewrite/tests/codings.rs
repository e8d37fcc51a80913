//! Compressed pages round trip in their own coding; the leave-alone list passes bodies through
//! untouched; bad input ends cleanly (an error or a pass-through), never a panic or a hang.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::*;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use pentaflow_rewrite::{Coding, RewriteError};

const PAGE: &str = "blog.html";
const PATH: &str = "/blog/moving-to-a-cdn.html";

async fn identity_output() -> Vec<u8> {
    let (_, body) = run(
        &rewriter(),
        &req(PATH),
        &[("content-type", "text/html")],
        &fixture(PAGE),
        4096,
    )
    .await;
    body.expect("rewrites").to_vec()
}

#[tokio::test]
async fn every_coding_round_trips_in_its_own_coding() {
    let expected = identity_output().await;
    let page = fixture(PAGE);
    type Codec = (&'static str, fn(&[u8]) -> Vec<u8>, fn(&[u8]) -> Vec<u8>);
    let codecs: [Codec; 4] = [
        ("gzip", gzip, gunzip),
        ("deflate", zlib, unzlib),
        ("deflate", raw_deflate, raw_inflate),
        ("br", br, unbr),
    ];
    for (name, encode, decode) in codecs {
        let compressed = encode(&page);
        for chunk in [1, 3, 100, 1 << 20] {
            let headers = [
                ("content-type", "text/html"),
                ("content-encoding", name),
                ("content-length", &compressed.len().to_string()),
            ];
            let (parts, body) = run(&rewriter(), &req(PATH), &headers, &compressed, chunk).await;
            assert_eq!(parts.headers["content-encoding"], name);
            assert!(parts.headers.get("content-length").is_none());
            let body = body.unwrap_or_else(|e| panic!("{name} chunk {chunk}: {e}"));
            assert_eq!(decode(&body), expected, "{name} in chunks of {chunk}");
        }
    }
}

#[tokio::test]
async fn leave_alone_list_passes_bodies_and_heads_untouched() {
    let page = fixture(PAGE);
    let html = ("content-type", "text/html");
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, http::Method, Headers, Headers)> = vec![
        (
            "not html",
            http::Method::GET,
            vec![],
            vec![("content-type", "text/css")],
        ),
        ("head", http::Method::HEAD, vec![], vec![html]),
        (
            "range",
            http::Method::GET,
            vec![("range", "bytes=0-99")],
            vec![html],
        ),
        (
            "no-transform",
            http::Method::GET,
            vec![],
            vec![html, ("cache-control", "no-transform")],
        ),
        (
            "zstd",
            http::Method::GET,
            vec![],
            vec![html, ("content-encoding", "zstd")],
        ),
        (
            "too large",
            http::Method::GET,
            vec![],
            vec![html, ("content-length", "99999999999")],
        ),
        (
            "utf-16",
            http::Method::GET,
            vec![],
            vec![("content-type", "text/html; charset=utf-16le")],
        ),
    ];
    for (what, method, req_headers, resp_headers) in cases {
        let mut request = req(PATH);
        request.method = method;
        for (k, v) in &req_headers {
            request.headers.insert(*k, v.parse().unwrap());
        }
        let rw = rewriter();
        let out = rw.rewrite(response(&resp_headers, &page, 100), &request);
        assert!(!out.body().is_rewriting(), "{what}");
        assert_eq!(
            out.headers().len(),
            resp_headers.len(),
            "{what}: head changed"
        );
        let body = collect(out.into_body()).await.unwrap();
        assert_eq!(body, page, "{what}");
    }
    for status in [204u16, 206, 304] {
        let rw = rewriter();
        let mut resp = response(&[html], b"", 1);
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        assert!(
            !rw.rewrite(resp, &req(PATH)).body().is_rewriting(),
            "{status}"
        );
    }
}

#[tokio::test]
async fn bad_gzip_and_truncated_streams_end_with_an_error() {
    let page = fixture(PAGE);
    let headers =
        |coding: &'static str| [("content-type", "text/html"), ("content-encoding", coding)];
    let mut garbage = gzip(&page);
    garbage[40] ^= 0xff;
    garbage[41] ^= 0xff;
    let gz = gzip(&page);
    let brotli = br(&page);
    let z = zlib(&page);
    let cases: Vec<(&str, &'static str, Vec<u8>)> = vec![
        (
            "not gzip at all",
            "gzip",
            b"<html>plain text that claims to be gzip".to_vec(),
        ),
        ("corrupt gzip", "gzip", garbage),
        ("truncated gzip", "gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip without trailer", "gzip", gz[..gz.len() - 4].to_vec()),
        ("truncated br", "br", brotli[..brotli.len() / 2].to_vec()),
        ("truncated deflate", "deflate", z[..z.len() / 2].to_vec()),
        ("one byte of deflate", "deflate", vec![0x78]),
        ("empty gzip", "gzip", Vec::new()),
    ];
    for (what, coding, body) in cases {
        for chunk in [1, 4096] {
            let rw = rewriter();
            let (_, out) = run(&rw, &req(PATH), &headers(coding), &body, chunk).await;
            match out {
                Err(RewriteError::Decode { coding: c, .. }) => {
                    assert_eq!(c.as_str(), coding, "{what}")
                }
                other => panic!("{what} (chunk {chunk}): {other:?}"),
            }
            assert_eq!(rw.report().pages.errors, 1, "{what}");
        }
    }
}

#[tokio::test]
async fn lying_content_length_and_truncated_identity_bodies_are_harmless() {
    let page = fixture(PAGE);
    let expected = identity_output().await;
    // Too small, too big: the rewriter streams what arrives and drops the header anyway.
    for length in ["10", "1000000"] {
        let headers = [("content-type", "text/html"), ("content-length", length)];
        let (parts, body) = run(&rewriter(), &req(PATH), &headers, &page, 512).await;
        assert!(parts.headers.get("content-length").is_none());
        assert_eq!(body.unwrap(), expected);
    }
    // A page cut in the middle of a tag still ends cleanly.
    let cut = &page[..page.len() / 2];
    let cut = &cut[..cut.iter().rposition(|b| *b == b'<').unwrap() + 4];
    let (_, body) = run(
        &rewriter(),
        &req(PATH),
        &[("content-type", "text/html")],
        cut,
        7,
    )
    .await;
    let body = body.unwrap();
    assert!(
        body.len() >= cut.len() - 10,
        "{} < {}",
        body.len(),
        cut.len()
    );
}

#[tokio::test]
async fn upstream_errors_end_the_body_with_an_error() {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(
            b"<html><img src=\"/a.png\">",
        ))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )),
    ];
    let body = StreamBody::new(stream::iter(frames));
    let resp = http::Response::builder()
        .header("content-type", "text/html")
        .body(body)
        .unwrap();
    let rw = rewriter();
    let mut out = rw.rewrite(resp, &req("/")).into_body();
    let mut saw_error = false;
    while let Some(frame) = out.frame().await {
        if let Err(e) = frame {
            assert!(matches!(e, RewriteError::Upstream { .. }));
            saw_error = true;
        }
    }
    assert!(saw_error);
    assert_eq!(rw.report().pages.errors, 1);
}

#[tokio::test]
async fn trailers_follow_the_rewritten_data() {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"<img src=\"/a.png\">"))),
        Ok(Frame::trailers(trailers)),
    ];
    let resp = http::Response::builder()
        .header("content-type", "text/html")
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap();
    let out = rewriter()
        .rewrite(resp, &req("/"))
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(out.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(
        out.to_bytes(),
        r#"<img src="https://cdn.example.net/a.png">"#
    );
}

#[tokio::test]
async fn multi_megabyte_pages_stream_in_bounded_pieces() {
    // 24 MB of repeated blog page, streamed in 16 KB chunks with no Content-Length: every output
    // piece stays small (nothing is buffered whole) and the size limit stops rewriting.
    let mut rules = rules();
    rules.max_decoded_page_bytes = 8 << 20;
    let rw = pentaflow_rewrite::Rewriter::new(rules, 1 << 20).unwrap();
    let page = fixture(PAGE);
    let big: Vec<u8> = page.iter().copied().cycle().take(24 << 20).collect();
    let out = rw.rewrite(
        response(&[("content-type", "text/html")], &big, 16 << 10),
        &req(PATH),
    );
    let mut body = out.into_body();
    let (mut total, mut largest) = (0usize, 0usize);
    let mut tail = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        total += data.len();
        largest = largest.max(data.len());
        tail = data.to_vec();
    }
    assert!(largest < 64 << 10, "largest piece {largest}");
    assert!(total > big.len());
    let tail = String::from_utf8_lossy(&tail);
    assert!(
        !tail.contains("cdn.example.net"),
        "rewriting stops past the limit"
    );
    assert!(tail.contains("/static/"));
    assert!(rw.report().pages.urls_rewritten > 1000);
}

#[tokio::test]
async fn a_giant_tag_hits_the_memory_cap_cleanly() {
    let mut page = b"<html><img alt=\"x\" src=\"data:image/png;base64,".to_vec();
    page.extend(std::iter::repeat_n(b'A', 6 << 20));
    page.extend_from_slice(b"\"></html>");
    let (_, body) = run(
        &rewriter(),
        &req("/"),
        &[("content-type", "text/html")],
        &page,
        64 << 10,
    )
    .await;
    assert!(matches!(body, Err(RewriteError::Html { .. })), "{body:?}");
}

#[test]
fn coding_names() {
    assert_eq!(Coding::Brotli.as_str(), "br");
}

//! Helpers shared by the integration tests: requests, responses with chunked bodies, running a
//! body to its end with a timeout, compression helpers, and the attribute collector.
// Helpers are not `#[test]` functions, so clippy's allow-unwrap-in-tests does not cover them;
// a panic here is the failure report, as in a test. Not every test file uses every helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use pentaflow_rewrite::{CdnRules, RequestInfo, RewriteBody, RewriteError, Rewriter};

pub const CDN: &str = "cdn.example.net";
pub const SITE: &str = "www.example.com";

pub type Chunked = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn rules() -> CdnRules {
    let mut rules = CdnRules::new(CDN);
    rules.site_hosts = vec![SITE.into()];
    rules
}

pub fn rewriter() -> Rewriter {
    Rewriter::new(rules(), 1 << 20).unwrap()
}

pub fn req(path: &str) -> RequestInfo {
    RequestInfo {
        method: http::Method::GET,
        host: Some(SITE.into()),
        path_and_query: path.into(),
        client_ip: "192.0.2.7".parse().unwrap(),
        headers: HeaderMap::new(),
    }
}

/// A body delivering `data` in chunks of `chunk` bytes.
pub fn chunked(data: &[u8], chunk: usize) -> Chunked {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(stream::iter(frames))
}

pub fn response(headers: &[(&str, &str)], body: &[u8], chunk: usize) -> Response<Chunked> {
    let mut builder = Response::builder();
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(chunked(body, chunk)).unwrap()
}

/// Collects a body, failing the test if it takes more than a few seconds (a hang).
pub async fn collect<B>(body: RewriteBody<B>) -> Result<Bytes, RewriteError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<pentaflow_rewrite::BoxError>,
{
    tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body hung")
        .map(|c| c.to_bytes())
}

/// Rewrites `page` served with `headers` in chunks of `chunk` bytes; returns the head and body.
pub async fn run(
    rw: &Rewriter,
    req: &RequestInfo,
    headers: &[(&str, &str)],
    page: &[u8],
    chunk: usize,
) -> (http::response::Parts, Result<Bytes, RewriteError>) {
    let out = rw.rewrite(response(headers, page, chunk), req);
    let (parts, body) = out.into_parts();
    (parts, collect(body).await)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn unzlib(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn raw_inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn br(data: &[u8]) -> Vec<u8> {
    let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 9, 22);
    w.write_all(data).unwrap();
    w.into_inner()
}

pub fn unbr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every URL-carrying attribute of the page, in document order: (tag, attribute, value).
pub fn url_attrs(html: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    lol_html::rewrite_str(
        html,
        lol_html::RewriteStrSettings {
            element_content_handlers: vec![lol_html::element!("*", |el| {
                for attr in el.attributes() {
                    let name = attr.name();
                    if ["src", "href", "srcset", "poster", "imagesrcset"].contains(&name.as_str()) {
                        found.push((el.tag_name(), name, attr.value()));
                    }
                }
                Ok(())
            })],
            ..lol_html::RewriteStrSettings::new()
        },
    )
    .unwrap();
    found
}

/// `(tag, attr, value)` rows from string slices.
pub fn rows(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(t, a, v)| ((*t).to_owned(), (*a).to_owned(), (*v).to_owned()))
        .collect()
}

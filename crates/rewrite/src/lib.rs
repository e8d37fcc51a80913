//! pentaflow-rewrite: CDN URL rewriting of outgoing HTML, and the cache of rewritten pages
//! (seeds 000/003 claims 14–15).
//!
//! The proxy hands each back-end response to a [`Rewriter`] (one per service). HTML pages stream
//! through [lol_html](https://docs.rs/lol_html): the `src`/`href`/`srcset`/`poster` URLs of
//! images, scripts, stylesheets, preloads and media that point at this site and match the
//! service's [`CdnRules`] become `https://CDN_HOST/...`. Compressed pages are decoded and
//! re-encoded in the same coding; the charset comes from Content-Type or `<meta charset>`.
//! Static rewritten pages are kept in a bounded LRU and served from it until they expire, with
//! 304s for conditional requests. In [`Mode::Auto`] the URLs sent to the CDN are chosen from
//! sampled traffic. Anything that must not change (non-HTML, HEAD, 204/206/304, ranges,
//! `no-transform`, pages over the size limit, unknown codings) passes through untouched.
//!
//! This crate owns no sockets, no clock in its pure parts (the `*_at` methods take `now`) and no
//! configuration file: the proxy calls it, the config crate fills [`CdnRules`], the admin API
//! serialises [`Rewriter::report`].
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use pentaflow_rewrite::{CdnRules, RequestInfo, Rewriter};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let rewriter = Rewriter::new(CdnRules::new("cdn.example.net"), 1 << 20).unwrap();
//! let req = RequestInfo {
//!     method: http::Method::GET,
//!     host: Some("www.example.com".into()),
//!     path_and_query: "/blog/post.html".into(),
//!     client_ip: "192.0.2.7".parse().unwrap(),
//!     headers: http::HeaderMap::new(),
//! };
//! // Before asking a back-end: a fresh rewritten copy may already be cached.
//! assert!(rewriter.serve_cached::<Full<Bytes>>(&req).is_none());
//!
//! let page = r#"<img src="img/cat.png"><a href="/about.png">about</a>"#;
//! let resp = http::Response::builder()
//!     .header("content-type", "text/html; charset=utf-8")
//!     .body(Full::new(Bytes::from(page)))
//!     .unwrap();
//! let out = rewriter.rewrite(resp, &req);
//! let html = out.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     html,
//!     r#"<img src="https://cdn.example.net/blog/img/cat.png"><a href="/about.png">about</a>"#
//! );
//! # });
//! ```
#![forbid(unsafe_code)]

mod body;
mod cache;
#[doc(hidden)]
pub mod differential;
mod error;
mod html;
mod memo;
mod pipeline;
mod policy;
mod report;
mod request;
mod rewriter;
mod rules;
mod scan;
mod stats;
mod urls;

pub use body::RewriteBody;
pub use error::{BoxError, RewriteError};
pub use policy::{Coding, LeaveAlone};
pub use report::{CacheStats, CdnReport, ObjectReport, PageCounters, Why};
pub use request::RequestInfo;
pub use rewriter::{rewrite_response, Rewriter, CACHE_STATUS_HEADER};
pub use rules::{
    client_token, CdnRules, Mode, RuleProblem, RulesError, CLIENT_TOKEN_PLACEHOLDER,
    DEFAULT_EXTENSIONS, DEFAULT_MAX_DECODED_PAGE_BYTES, DEFAULT_MAX_OBJECTS,
};
pub use stats::ObjectStat;

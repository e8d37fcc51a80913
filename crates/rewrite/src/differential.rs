//! Both HTML engines on the same page, for the differential tests and the `html_rewrite` fuzz
//! target: the fast scan (`scan`) and lol_html alone must write the same bytes. Hidden from the
//! documentation; not for the proxy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::html::PageRewrite;
use crate::pipeline::Pipeline;
use crate::policy::{Coding, Plan};
use crate::rules::{CdnRules, Compiled};

const LIMIT: u64 = 1 << 30;

/// The page rewritten by one engine in chunks of `chunk`: output and URLs rewritten.
pub(crate) fn run(page: &[u8], chunk: usize, fast: bool, charset: Option<&str>) -> (Vec<u8>, u64) {
    let rules = CdnRules {
        site_hosts: vec!["www.example.com".into()],
        ..CdnRules::new("cdn.example.net")
    };
    let rewritten = Arc::new(AtomicU64::new(0));
    let rewrite = PageRewrite {
        rules: Arc::new(Compiled::new(rules).expect("valid rules")),
        selected: None,
        cdn_host: "cdn.example.net".into(),
        request_host: Some("www.example.com".into()),
        page_path: "/blog/post.html".into(),
        stop: Arc::new(AtomicBool::new(false)),
        rewritten: rewritten.clone(),
    };
    let encoding = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        .and_then(lol_html::AsciiCompatibleEncoding::new);
    let plan = Plan {
        coding: Coding::Identity,
        encoding: encoding.unwrap_or_else(lol_html::AsciiCompatibleEncoding::utf_8),
        follow_meta_charset: encoding.is_none(),
    };
    let mut pipe = Pipeline::with_engine(&plan, rewrite, LIMIT, fast);
    let mut out = Vec::new();
    let mut failed = false;
    for piece in page.chunks(chunk.max(1)) {
        match pipe.push(piece) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        match pipe.finish() {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(_) => out.extend_from_slice(b"<<error>>"),
        }
    } else {
        out.extend_from_slice(b"<<error>>");
    }
    (out, rewritten.load(Ordering::Relaxed))
}

/// The page rewritten by the fast scan and by lol_html alone, in chunks of `chunk`, served with
/// `charset` (`None`: none named, `<meta>` decides): `(fast, full)`, each the output and the
/// number of URLs rewritten. An engine that fails ends its output with `<<error>>`.
pub fn rewrite_both(
    page: &[u8],
    chunk: usize,
    charset: Option<&str>,
) -> ((Vec<u8>, u64), (Vec<u8>, u64)) {
    (
        run(page, chunk, true, charset),
        run(page, chunk, false, charset),
    )
}

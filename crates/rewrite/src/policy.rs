//! Header-level decisions, pure functions of the request, the response head and `now`: whether a
//! response may be rewritten (and why not), its content coding and character set, whether and
//! until when it may be cached, and whether a conditional request is satisfied.
//!
//! Nothing here touches a body or keeps state.

use std::time::{Duration, SystemTime};

use http::header::{
    ACCEPT_ENCODING, AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, PRAGMA,
    RANGE, SET_COOKIE, VARY,
};
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

/// Content codings the rewriter can undo and redo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Coding {
    /// No content coding.
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped, or raw deflate from servers that get it wrong).
    Deflate,
    /// `br`.
    Brotli,
}

/// Why a response was passed through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaveAlone {
    /// Not `text/html`.
    NotHtml,
    /// Request method other than GET or POST (HEAD has no body to rewrite).
    Method,
    /// Status without a rewritable body (1xx, 204, 205, 206, 304).
    Status,
    /// The request asked for a byte range: offsets into the original must stay valid.
    Range,
    /// `Cache-Control: no-transform`.
    NoTransform,
    /// A content coding the rewriter cannot undo (or several stacked).
    Coding,
    /// A character set that is not ASCII-compatible (UTF-16 and friends).
    Charset,
    /// Content-Length above `max_decoded_page_bytes`.
    TooLarge,
}

/// Every [`LeaveAlone`] reason, in the order of the report's counters.
pub(crate) const LEAVE_ALONE_REASONS: [LeaveAlone; 8] = [
    LeaveAlone::NotHtml,
    LeaveAlone::Method,
    LeaveAlone::Status,
    LeaveAlone::Range,
    LeaveAlone::NoTransform,
    LeaveAlone::Coding,
    LeaveAlone::Charset,
    LeaveAlone::TooLarge,
];

/// What to do with a response that may be rewritten.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) coding: Coding,
    pub(crate) encoding: lol_html::AsciiCompatibleEncoding,
    /// True when Content-Type named no charset: `<meta charset>` then decides.
    pub(crate) follow_meta_charset: bool,
}

/// Validators and lifetime of a response that may be kept in the page cache.
#[derive(Debug, Clone)]
pub(crate) struct Freshness {
    pub(crate) expires_at: SystemTime,
    pub(crate) age_at_store: Duration,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }

    /// Codings in the order a cached copy is preferred for a client.
    pub(crate) const PREFERENCE: [Coding; 4] = [
        Coding::Brotli,
        Coding::Gzip,
        Coding::Deflate,
        Coding::Identity,
    ];
}

/// Decides whether the response may be rewritten.
pub(crate) fn plan(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    headers: &HeaderMap,
    max_bytes: u64,
) -> Result<Plan, LeaveAlone> {
    if method != Method::GET && method != Method::POST {
        return Err(LeaveAlone::Method);
    }
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT
                | StatusCode::RESET_CONTENT
                | StatusCode::PARTIAL_CONTENT
                | StatusCode::NOT_MODIFIED
        )
    {
        return Err(LeaveAlone::Status);
    }
    if req_headers.contains_key(RANGE) {
        return Err(LeaveAlone::Range);
    }
    let content_type = header_str(headers, &CONTENT_TYPE).unwrap_or_default();
    let (mime, charset) = split_content_type(content_type);
    if !mime.eq_ignore_ascii_case("text/html") {
        return Err(LeaveAlone::NotHtml);
    }
    if has_directive(headers, &CACHE_CONTROL, "no-transform") {
        return Err(LeaveAlone::NoTransform);
    }
    let coding = content_coding(headers).ok_or(LeaveAlone::Coding)?;
    if content_length(headers).is_some_and(|len| len > max_bytes) {
        return Err(LeaveAlone::TooLarge);
    }
    let (encoding, follow_meta_charset) = match charset {
        Some(label) => {
            let found = encoding_rs::Encoding::for_label(label.as_bytes())
                .and_then(lol_html::AsciiCompatibleEncoding::new)
                .ok_or(LeaveAlone::Charset)?;
            (found, false)
        }
        None => (lol_html::AsciiCompatibleEncoding::utf_8(), true),
    };
    Ok(Plan {
        coding,
        encoding,
        follow_meta_charset,
    })
}

/// The response's content coding; `None` when it cannot be undone.
pub(crate) fn content_coding(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Some(Coding::Identity);
    };
    if values.next().is_some() {
        return None;
    }
    match value.to_str().ok()?.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Some(Coding::Identity),
        "gzip" | "x-gzip" => Some(Coding::Gzip),
        "deflate" => Some(Coding::Deflate),
        "br" => Some(Coding::Brotli),
        _ => None,
    }
}

/// Whether the client accepts `coding` by its `Accept-Encoding` (identity unless refused).
pub(crate) fn accepts(req_headers: &HeaderMap, coding: Coding) -> bool {
    let mut identity_refused = false;
    let mut star: Option<bool> = None;
    for value in req_headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let allowed = !parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if name == "*" {
                star = Some(allowed);
            } else if name.eq_ignore_ascii_case(coding.as_str())
                || (coding == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"))
            {
                return allowed;
            } else if name.eq_ignore_ascii_case("identity") && !allowed {
                identity_refused = true;
            }
        }
    }
    match coding {
        Coding::Identity => !identity_refused && star != Some(false),
        _ => star == Some(true),
    }
}

/// Whether a request may be answered from (or fill) the shared page cache.
pub(crate) fn request_cacheable(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && !headers.contains_key(RANGE)
        && !headers.contains_key(AUTHORIZATION)
        && !has_directive(headers, &CACHE_CONTROL, "no-cache")
        && !has_directive(headers, &CACHE_CONTROL, "no-store")
        && !has_directive(headers, &PRAGMA, "no-cache")
}

/// Freshness of a response a shared cache may store, `None` when it may not: needs a positive
/// lifetime, a validator (ETag or Last-Modified), no Set-Cookie, no `private`/`no-store`/
/// `no-cache`, and a `Vary` of at most `Accept-Encoding`.
pub(crate) fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Freshness> {
    if status != StatusCode::OK || headers.contains_key(SET_COOKIE) {
        return None;
    }
    if !headers.contains_key(ETAG) && !headers.contains_key(LAST_MODIFIED) {
        return None;
    }
    let vary_ok = headers.get_all(VARY).iter().all(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|name| name.is_empty() || name.eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !vary_ok {
        return None;
    }
    let lifetime = object_lifetime(headers, now)?;
    let age = Duration::from_secs(
        header_str(headers, &AGE)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or(0),
    );
    let remaining = lifetime.checked_sub(age).filter(|d| !d.is_zero())?;
    Some(Freshness {
        expires_at: now + remaining,
        age_at_store: age,
    })
}

/// Lifetime a shared cache may give a response (s-maxage, max-age, then Expires), `None` when it
/// is not cacheable at all. Used for pages and for the sampled objects alike.
pub(crate) fn object_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if headers.contains_key(SET_COOKIE) {
        return None;
    }
    for banned in ["no-store", "private", "no-cache"] {
        if has_directive(headers, &CACHE_CONTROL, banned) {
            return None;
        }
    }
    let seconds =
        directive_value(headers, "s-maxage").or_else(|| directive_value(headers, "max-age"));
    let lifetime = match seconds {
        Some(s) => Duration::from_secs(s),
        None => {
            let expires = httpdate::parse_http_date(header_str(headers, &EXPIRES)?).ok()?;
            let date = header_str(headers, &DATE)
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .unwrap_or(now);
            expires.duration_since(date).ok()?
        }
    };
    (!lifetime.is_zero()).then_some(lifetime)
}

/// Whether a conditional request is satisfied by a page with these validators (RFC 9110 13.2.2:
/// If-None-Match wins over If-Modified-Since; weak comparison).
pub(crate) fn not_modified(
    req_headers: &HeaderMap,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> bool {
    if let Some(inm) = header_str(req_headers, &IF_NONE_MATCH) {
        let Some(etag) = etag else { return false };
        let ours = opaque_tag(etag);
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || opaque_tag(tag) == ours);
    }
    let (Some(ims), Some(lm)) = (header_str(req_headers, &IF_MODIFIED_SINCE), last_modified) else {
        return false;
    };
    match (
        httpdate::parse_http_date(ims),
        httpdate::parse_http_date(lm),
    ) {
        (Ok(ims), Ok(lm)) => lm <= ims,
        _ => false,
    }
}

/// The entity tag made weak: the rewritten body is not byte-for-byte the back-end's.
pub(crate) fn weaken_etag(etag: &str) -> String {
    if etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("W/{etag}")
    }
}

/// Content-Length when present and numeric.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, &CONTENT_LENGTH)?.trim().parse().ok()
}

/// The media type without parameters, lower-case.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    split_content_type(header_str(headers, &CONTENT_TYPE).unwrap_or_default())
        .0
        .to_ascii_lowercase()
}

pub(crate) fn header_str<'h>(
    headers: &'h HeaderMap,
    name: &http::header::HeaderName,
) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

fn opaque_tag(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

fn split_content_type(value: &str) -> (&str, Option<&str>) {
    let mut parts = value.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    });
    (mime, charset.filter(|c| !c.is_empty()))
}

fn has_directive(headers: &HeaderMap, name: &http::header::HeaderName, directive: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|d| {
                let d = d.trim();
                let key = d.split('=').next().unwrap_or_default().trim();
                key.eq_ignore_ascii_case(directive)
            })
        })
    })
}

fn directive_value(headers: &HeaderMap, directive: &str) -> Option<u64> {
    headers.get_all(CACHE_CONTROL).iter().find_map(|v| {
        v.to_str().ok()?.split(',').find_map(|d| {
            let (k, val) = d.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(directive)
                .then(|| val.trim().trim_matches('"').parse().ok())?
        })
    })
}

#[cfg(test)]
mod tests;

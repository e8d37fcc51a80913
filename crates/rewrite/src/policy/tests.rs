use std::time::{Duration, SystemTime};

use http::header::{HeaderName, HeaderValue};

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn plan_for(req: &[(&str, &str)], status: u16, resp: &[(&str, &str)]) -> Result<Plan, LeaveAlone> {
    plan(
        &Method::GET,
        &headers(req),
        StatusCode::from_u16(status).unwrap(),
        &headers(resp),
        1000,
    )
}

const HTML: (&str, &str) = ("content-type", "text/html; charset=utf-8");

#[test]
fn leave_alone_list() {
    let head = |m: Method| {
        plan(
            &m,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[HTML]),
            1000,
        )
    };
    assert_eq!(head(Method::HEAD).unwrap_err(), LeaveAlone::Method);
    assert!(head(Method::POST).is_ok());
    for status in [204, 206, 304, 101] {
        assert_eq!(
            plan_for(&[], status, &[HTML]).unwrap_err(),
            LeaveAlone::Status,
            "{status}"
        );
    }
    assert_eq!(
        plan_for(&[("range", "bytes=0-10")], 200, &[HTML]).unwrap_err(),
        LeaveAlone::Range
    );
    assert_eq!(
        plan_for(&[], 200, &[("content-type", "image/png")]).unwrap_err(),
        LeaveAlone::NotHtml
    );
    assert_eq!(plan_for(&[], 200, &[]).unwrap_err(), LeaveAlone::NotHtml);
    let no_transform = [HTML, ("cache-control", "public, no-transform")];
    assert_eq!(
        plan_for(&[], 200, &no_transform).unwrap_err(),
        LeaveAlone::NoTransform
    );
    let zstd = [HTML, ("content-encoding", "zstd")];
    assert_eq!(plan_for(&[], 200, &zstd).unwrap_err(), LeaveAlone::Coding);
    let stacked = [
        HTML,
        ("content-encoding", "gzip"),
        ("content-encoding", "br"),
    ];
    assert_eq!(
        plan_for(&[], 200, &stacked).unwrap_err(),
        LeaveAlone::Coding
    );
    let big = [HTML, ("content-length", "1001")];
    assert_eq!(plan_for(&[], 200, &big).unwrap_err(), LeaveAlone::TooLarge);
    let utf16 = [("content-type", "text/html; charset=utf-16")];
    assert_eq!(plan_for(&[], 200, &utf16).unwrap_err(), LeaveAlone::Charset);
    let bogus = [("content-type", "text/html; charset=klingon")];
    assert_eq!(plan_for(&[], 200, &bogus).unwrap_err(), LeaveAlone::Charset);
}

#[test]
fn coding_and_charset_are_read() {
    let p = plan_for(
        &[],
        404,
        &[
            ("content-type", "TEXT/HTML;Charset=\"ISO-8859-1\""),
            ("content-encoding", "gzip"),
        ],
    )
    .unwrap();
    assert_eq!(p.coding, Coding::Gzip);
    assert!(!p.follow_meta_charset);
    let p = plan_for(
        &[],
        200,
        &[("content-type", "text/html"), ("content-encoding", "br")],
    )
    .unwrap();
    assert_eq!(p.coding, Coding::Brotli);
    assert!(p.follow_meta_charset);
}

#[test]
fn accept_encoding() {
    let h = headers(&[("accept-encoding", "gzip, deflate;q=0, br;q=0.5")]);
    assert!(accepts(&h, Coding::Gzip));
    assert!(!accepts(&h, Coding::Deflate));
    assert!(accepts(&h, Coding::Brotli));
    assert!(accepts(&h, Coding::Identity));
    assert!(accepts(&HeaderMap::new(), Coding::Identity));
    assert!(!accepts(&HeaderMap::new(), Coding::Gzip));
    let h = headers(&[("accept-encoding", "*;q=0")]);
    assert!(!accepts(&h, Coding::Identity));
    let h = headers(&[("accept-encoding", "*")]);
    assert!(accepts(&h, Coding::Brotli));
}

#[test]
fn freshness_rules() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let ok = [("cache-control", "public, max-age=60"), ("etag", "\"a\"")];
    let f = freshness(StatusCode::OK, &headers(&ok), now).unwrap();
    assert_eq!(f.expires_at, now + Duration::from_secs(60));
    let aged = [
        ("cache-control", "max-age=60, s-maxage=100"),
        ("etag", "\"a\""),
        ("age", "30"),
    ];
    let f = freshness(StatusCode::OK, &headers(&aged), now).unwrap();
    assert_eq!(f.expires_at, now + Duration::from_secs(70));
    let date = httpdate::fmt_http_date(now);
    let expires = httpdate::fmt_http_date(now + Duration::from_secs(120));
    let by_expires = [
        ("date", date.as_str()),
        ("expires", expires.as_str()),
        ("last-modified", date.as_str()),
    ];
    let f = freshness(StatusCode::OK, &headers(&by_expires), now).unwrap();
    assert_eq!(f.expires_at, now + Duration::from_secs(120));

    for bad in [
        vec![("cache-control", "max-age=60")],
        vec![
            ("cache-control", "max-age=60"),
            ("etag", "\"a\""),
            ("set-cookie", "s=1"),
        ],
        vec![("cache-control", "private, max-age=60"), ("etag", "\"a\"")],
        vec![("cache-control", "no-store"), ("etag", "\"a\"")],
        vec![("cache-control", "max-age=0"), ("etag", "\"a\"")],
        vec![("etag", "\"a\"")],
        vec![
            ("cache-control", "max-age=60"),
            ("etag", "\"a\""),
            ("vary", "cookie"),
        ],
        vec![
            ("cache-control", "max-age=60"),
            ("etag", "\"a\""),
            ("age", "61"),
        ],
    ] {
        assert!(
            freshness(StatusCode::OK, &headers(&bad), now).is_none(),
            "{bad:?}"
        );
    }
    assert!(freshness(StatusCode::NOT_FOUND, &headers(&ok), now).is_none());
    let vary_ae = [
        ("cache-control", "max-age=60"),
        ("etag", "\"a\""),
        ("vary", "Accept-Encoding"),
    ];
    assert!(freshness(StatusCode::OK, &headers(&vary_ae), now).is_some());
}

#[test]
fn conditionals() {
    let inm = headers(&[("if-none-match", "\"x\", W/\"a\"")]);
    assert!(not_modified(&inm, Some("W/\"a\""), None));
    assert!(not_modified(&inm, Some("\"a\""), None));
    assert!(!not_modified(&inm, Some("\"b\""), None));
    assert!(!not_modified(
        &inm,
        None,
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    ));
    assert!(not_modified(
        &headers(&[("if-none-match", "*")]),
        Some("\"z\""),
        None
    ));
    let ims = headers(&[("if-modified-since", "Wed, 21 Oct 2015 07:28:00 GMT")]);
    assert!(not_modified(
        &ims,
        None,
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    ));
    assert!(not_modified(
        &ims,
        None,
        Some("Tue, 20 Oct 2015 07:28:00 GMT")
    ));
    assert!(!not_modified(
        &ims,
        None,
        Some("Thu, 22 Oct 2015 07:28:00 GMT")
    ));
    assert!(!not_modified(&ims, None, Some("garbage")));
    assert_eq!(weaken_etag("\"a\""), "W/\"a\"");
    assert_eq!(weaken_etag("W/\"a\""), "W/\"a\"");
}

#[test]
fn request_cacheability() {
    assert!(request_cacheable(&Method::GET, &HeaderMap::new()));
    assert!(!request_cacheable(&Method::POST, &HeaderMap::new()));
    for h in [
        ("range", "bytes=0-1"),
        ("authorization", "Basic x"),
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
    ] {
        assert!(!request_cacheable(&Method::GET, &headers(&[h])), "{h:?}");
    }
}

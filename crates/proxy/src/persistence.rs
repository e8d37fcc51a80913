//! Reading persistence keys from requests and writing the injected cookie into responses.
//!
//! Owns: finding a cookie in `Cookie` headers, extracting an application session ID from a
//! cookie or the URL (`;jsessionid=` path parameter or query parameter), and
//! [`cookie_value`]: the `Set-Cookie` that maps a client to its back-end (seed 002 "Cookie
//! Injection"), with the lifetime of the application's own session cookie. Pure functions.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use pentaflow_config::{CookiePersistence, SessionPersistence};

/// The value of cookie `name` in the request's `Cookie` headers, if present.
pub(crate) fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The application session ID of a request: the configured cookie first, then the URL.
pub(crate) fn session_id(req: &Parts, cfg: &SessionPersistence) -> Option<String> {
    if let Some(name) = &cfg.cookie {
        if let Some(v) = find_cookie(&req.headers, name).filter(|v| !v.is_empty()) {
            return Some(v.to_owned());
        }
    }
    let param = cfg.url_param.as_deref()?;
    let path = req.uri.path();
    // Path parameter, as servlet containers write it: /cart;jsessionid=ABC?x=1
    for segment in path.split('/') {
        for p in segment.split(';').skip(1) {
            if let Some((k, v)) = p.split_once('=') {
                if k.eq_ignore_ascii_case(param) && !v.is_empty() {
                    return Some(v.to_owned());
                }
            }
        }
    }
    req.uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == param && !v.is_empty()).then(|| v.to_owned())
    })
}

/// The lifetime attributes of a `Set-Cookie` (`Max-Age`, `Expires`), as written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Lifetime {
    max_age: Option<String>,
    expires: Option<String>,
}

/// The lifetime the application gave its session cookie `name` in this response, if it set it.
#[cfg(test)]
pub(crate) fn app_cookie_lifetime(headers: &HeaderMap, name: &str) -> Option<Lifetime> {
    app_cookie_lifetime_in(
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(HeaderValue::as_bytes),
        name,
    )
}

/// The application cookie lifetime over the values of a response's `Set-Cookie` fields.
pub(crate) fn app_cookie_lifetime_in<'a>(
    set_cookies: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<Lifetime> {
    set_cookies
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find(|sc| {
            sc.split(';')
                .next()
                .and_then(|nv| nv.split_once('='))
                .is_some_and(|(k, _)| k.trim() == name)
        })
        .map(|sc| {
            let mut life = Lifetime::default();
            for attr in sc.split(';').skip(1) {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("max-age") {
                    life.max_age = Some(v.to_owned());
                } else if k.eq_ignore_ascii_case("expires") {
                    life.expires = Some(v.to_owned());
                }
            }
            life
        })
}

/// Adds the persistence cookie naming the back-end to a response.
///
/// `token` is the back-end's opaque, signed token; `https` says whether the client came over
/// TLS (the default for `Secure`); `lifetime` is copied from the application's session cookie
/// (none = a session cookie, as the application's own was).
#[cfg(test)]
pub(crate) fn inject_cookie(
    headers: &mut HeaderMap,
    cfg: &CookiePersistence,
    token: &str,
    https: bool,
    lifetime: Option<&Lifetime>,
) {
    if let Some(v) = cookie_value(cfg, token, https, lifetime) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// The `Set-Cookie` value of the persistence cookie (what `inject_cookie` adds in tests).
pub(crate) fn cookie_value(
    cfg: &CookiePersistence,
    token: &str,
    https: bool,
    lifetime: Option<&Lifetime>,
) -> Option<HeaderValue> {
    let mut value = format!("{}={}; Path=/", cfg.name, token);
    if let Some(life) = lifetime {
        if let Some(m) = &life.max_age {
            value.push_str("; Max-Age=");
            value.push_str(m);
        }
        if let Some(e) = &life.expires {
            value.push_str("; Expires=");
            value.push_str(e);
        }
    }
    if cfg.http_only {
        value.push_str("; HttpOnly");
    }
    if cfg.secure.unwrap_or(https) {
        value.push_str("; Secure");
    }
    if let Some(s) = &cfg.same_site {
        value.push_str("; SameSite=");
        value.push_str(s);
    }
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parts(uri: &str, cookie: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn session_cfg() -> SessionPersistence {
        SessionPersistence {
            cookie: Some("JSESSIONID".into()),
            url_param: Some("jsessionid".into()),
            groups: 64,
            group_idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn finds_cookies_among_many() {
        let p = parts("/", Some("a=1; PFSRV=tok; b=\"2\""));
        assert_eq!(find_cookie(&p.headers, "PFSRV"), Some("tok"));
        assert_eq!(find_cookie(&p.headers, "b"), Some("2"));
        assert_eq!(find_cookie(&p.headers, "c"), None);
    }

    #[test]
    fn session_id_from_cookie_path_parameter_and_query() {
        let cfg = session_cfg();
        assert_eq!(
            session_id(&parts("/", Some("JSESSIONID=abc")), &cfg).as_deref(),
            Some("abc")
        );
        assert_eq!(
            session_id(&parts("/cart;jsessionid=P1?x=1", None), &cfg).as_deref(),
            Some("P1")
        );
        assert_eq!(
            session_id(&parts("/cart?x=1&jsessionid=Q2", None), &cfg).as_deref(),
            Some("Q2")
        );
        assert_eq!(session_id(&parts("/cart?x=1", None), &cfg), None);
        assert_eq!(session_id(&parts("/c;jsessionid=", None), &cfg), None);
    }

    #[test]
    fn injected_cookie_copies_app_lifetime() {
        let mut resp = HeaderMap::new();
        resp.append(
            header::SET_COOKIE,
            HeaderValue::from_static("JSESSIONID=x; Max-Age=600; Path=/app"),
        );
        let life = app_cookie_lifetime(&resp, "JSESSIONID").unwrap();
        let cfg = CookiePersistence {
            name: "PFSRV".into(),
            secret: vec![0; 16],
            previous_secrets: Vec::new(),
            max_idle: None,
            max_life: None,
            follow: Some("JSESSIONID".into()),
            secure: None,
            http_only: true,
            same_site: Some("Lax".into()),
        };
        let mut out = HeaderMap::new();
        inject_cookie(&mut out, &cfg, "T0K", false, Some(&life));
        assert_eq!(
            out.get(header::SET_COOKIE).unwrap(),
            "PFSRV=T0K; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"
        );
        let mut tls = HeaderMap::new();
        inject_cookie(&mut tls, &cfg, "T0K", true, None);
        assert_eq!(
            tls.get(header::SET_COOKIE).unwrap(),
            "PFSRV=T0K; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        assert!(app_cookie_lifetime(&resp, "OTHER").is_none());
    }
}

//! [`RequestInfo`]: what the proxy tells the rewriter about the request a response answers.

use std::net::IpAddr;

use http::header::HOST;
use http::{HeaderMap, Method};

/// What the proxy knows of the request a response answers.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// Request method.
    pub method: Method,
    /// Host the client asked for (`Host` header or URI authority), possibly with a port.
    pub host: Option<String>,
    /// Path and query as requested.
    pub path_and_query: String,
    /// The client's address (for the CDN host token).
    pub client_ip: IpAddr,
    /// Request headers (Accept-Encoding, Range, conditionals, Cache-Control...).
    pub headers: HeaderMap,
}

impl RequestInfo {
    /// Builds the request view from a request head.
    pub fn from_parts(parts: &http::request::Parts, client_ip: IpAddr) -> Self {
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
        Self {
            method: parts.method.clone(),
            host,
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            client_ip,
            headers: parts.headers.clone(),
        }
    }

    /// The path without the query.
    pub(crate) fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("/")
    }

    /// The host in lower case, without port.
    pub(crate) fn bare_host(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let bare = if host.starts_with('[') {
            host.split_inclusive(']').next().unwrap_or(host)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        Some(bare.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_takes_host_header_or_authority() {
        let (parts, ()) = http::Request::get("/a/b.html?x=1")
            .header("host", "WWW.Example.com:8080")
            .body(())
            .unwrap()
            .into_parts();
        let req = RequestInfo::from_parts(&parts, "192.0.2.1".parse().unwrap());
        assert_eq!(req.path_and_query, "/a/b.html?x=1");
        assert_eq!(req.path(), "/a/b.html");
        assert_eq!(req.bare_host().as_deref(), Some("www.example.com"));

        let (parts, ()) = http::Request::get("https://[2001:db8::1]:443/")
            .body(())
            .unwrap()
            .into_parts();
        let req = RequestInfo::from_parts(&parts, "2001:db8::2".parse().unwrap());
        assert_eq!(req.bare_host().as_deref(), Some("[2001:db8::1]"));
        assert_eq!(req.path(), "/");
    }
}

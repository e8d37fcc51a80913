//! Per-service CDN rules: what an operator configures, its validation, and the compiled form the
//! hot path reads (host template pieces, lower-cased lists).
//!
//! This module owns *which* URLs may go to the CDN by their shape (host, path prefix, extension)
//! and how the CDN host is spelled for one client. It must not look at traffic: popularity belongs
//! to `stats`, and it must not do I/O.

use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;

/// Placeholder of the CDN host template replaced by a token derived from the client's network.
pub const CLIENT_TOKEN_PLACEHOLDER: &str = "{client_token}";

/// Clients in one IPv4 /24 share a token: they usually share a resolver, so the CDN's DNS tier
/// sees one consistent name per network rather than one per address.
const TOKEN_V4_PREFIX_BYTES: usize = 3;
/// IPv6 equivalent of [`TOKEN_V4_PREFIX_BYTES`]: a /48 is the usual site allocation.
const TOKEN_V6_PREFIX_BYTES: usize = 6;

/// File extensions that are static on nearly every site; the default of [`CdnRules::extensions`].
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "woff", "woff2",
    "ttf", "mp4", "webm", "mp3", "ogg",
];

/// Pages above this many decoded bytes are left alone by default (8 MiB).
pub const DEFAULT_MAX_DECODED_PAGE_BYTES: u64 = 8 << 20;
/// Default bound on the per-object statistics table.
pub const DEFAULT_MAX_OBJECTS: usize = 4096;

/// How the URLs sent to the CDN are chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Every same-site URL matching the path prefixes or extensions is rewritten.
    Explicit,
    /// Only URLs matching the rules *and* seen in sampled traffic as static and popular enough.
    Auto {
        /// Minimum sampled hits before an object is sent to the CDN.
        min_hits: u64,
        /// When set, only the `top_k` most-hit eligible objects are sent.
        top_k: Option<usize>,
    },
}

/// Per-service CDN settings (the `[service.cdn]` table of the configuration maps onto this).
///
/// Build with [`CdnRules::new`] and adjust the public fields; [`CdnRules::validate`] (also run by
/// `Rewriter::new` and `Rewriter::set_rules`) reports every problem at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdnRules {
    /// CDN host name, possibly with [`CLIENT_TOKEN_PLACEHOLDER`], e.g.
    /// `"{client_token}.cdn.example.net"`.
    pub cdn_host: String,
    /// Host names that are "this site" besides the request's own `Host` (no port).
    pub site_hosts: Vec<String>,
    /// Path prefixes that go to the CDN (e.g. `"/static/"`).
    pub path_prefixes: Vec<String>,
    /// File extensions (without the dot, any case) that go to the CDN.
    pub extensions: Vec<String>,
    /// In `Auto` mode, content-type prefixes an object must have been served with
    /// (e.g. `"image/"`, `"text/css"`); empty means any.
    pub content_types: Vec<String>,
    /// How URLs are chosen.
    pub mode: Mode,
    /// Pages whose Content-Length is above this are left alone; past it while streaming,
    /// rewriting stops and the page is not cached. Bounds the decode/re-encode work.
    pub max_decoded_page_bytes: u64,
    /// Fraction of responses (0.0 to 1.0) sampled into the object statistics.
    pub sample_rate: f64,
    /// Bound on the number of objects tracked by the statistics.
    pub max_objects: usize,
    /// Ask the back-end for an uncompressed page (`Accept-Encoding: identity`) instead of
    /// decoding and re-encoding it.
    pub ask_identity_from_backend: bool,
    /// Seed of the client-token hash: every node of the array must use the same one so a client
    /// gets the same CDN name whichever node serves it.
    pub token_seed: u64,
}

/// Everything wrong with a [`CdnRules`], collected rather than the first problem only.
#[derive(Debug, Error)]
#[error("invalid CDN rules: {}", display_problems(.problems))]
pub struct RulesError {
    /// Each problem found.
    pub problems: Vec<RuleProblem>,
}

/// One problem of a [`CdnRules`].
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RuleProblem {
    /// `cdn_host` is empty.
    #[error("cdn_host is empty")]
    EmptyCdnHost,
    /// `cdn_host` holds a character that cannot be in a host name, or an unknown placeholder.
    #[error("cdn_host {template:?} is not a host name template ({reason})")]
    BadCdnHost {
        /// The template as configured.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path prefix does not start with `/`.
    #[error("path prefix {prefix:?} must start with '/'")]
    BadPathPrefix {
        /// The prefix as configured.
        prefix: String,
    },
    /// An extension is empty or holds a dot or slash.
    #[error("extension {extension:?} must be non-empty, without '.' or '/'")]
    BadExtension {
        /// The extension as configured.
        extension: String,
    },
    /// A site host is empty or holds a character that cannot be in a host name.
    #[error("site host {host:?} is not a host name")]
    BadSiteHost {
        /// The host as configured.
        host: String,
    },
    /// `sample_rate` is outside 0.0..=1.0 or not a number.
    #[error("sample_rate {value} must be within 0.0 and 1.0")]
    SampleRate {
        /// The rate as configured.
        value: f64,
    },
    /// A bound that must be positive is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

/// Rules checked and prepared for the hot path.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) rules: CdnRules,
    /// The template split around the placeholder: `host = parts.join(token)`.
    host_parts: Vec<String>,
    site_hosts: Vec<String>,
    extensions: Vec<String>,
}

impl CdnRules {
    /// Rules sending the [`DEFAULT_EXTENSIONS`] of this site to `cdn_host`, explicit mode.
    pub fn new(cdn_host: impl Into<String>) -> Self {
        Self {
            cdn_host: cdn_host.into(),
            site_hosts: Vec::new(),
            path_prefixes: Vec::new(),
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            content_types: Vec::new(),
            mode: Mode::Explicit,
            max_decoded_page_bytes: DEFAULT_MAX_DECODED_PAGE_BYTES,
            sample_rate: 0.1,
            max_objects: DEFAULT_MAX_OBJECTS,
            ask_identity_from_backend: false,
            token_seed: 0,
        }
    }

    /// Checks every field; returns all problems found.
    pub fn validate(&self) -> Result<(), RulesError> {
        let mut problems = Vec::new();
        if self.cdn_host.is_empty() {
            problems.push(RuleProblem::EmptyCdnHost);
        } else if let Err(reason) = check_template(&self.cdn_host) {
            problems.push(RuleProblem::BadCdnHost {
                template: self.cdn_host.clone(),
                reason,
            });
        }
        for host in &self.site_hosts {
            if host.is_empty() || !host.bytes().all(is_host_byte) {
                problems.push(RuleProblem::BadSiteHost { host: host.clone() });
            }
        }
        for prefix in &self.path_prefixes {
            if !prefix.starts_with('/') {
                problems.push(RuleProblem::BadPathPrefix {
                    prefix: prefix.clone(),
                });
            }
        }
        for extension in &self.extensions {
            if extension.is_empty() || extension.contains(['.', '/']) {
                problems.push(RuleProblem::BadExtension {
                    extension: extension.clone(),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            problems.push(RuleProblem::SampleRate {
                value: self.sample_rate,
            });
        }
        if self.max_objects == 0 {
            problems.push(RuleProblem::Zero {
                field: "max_objects",
            });
        }
        if self.max_decoded_page_bytes == 0 {
            problems.push(RuleProblem::Zero {
                field: "max_decoded_page_bytes",
            });
        }
        if let Mode::Auto { top_k: Some(0), .. } = self.mode {
            problems.push(RuleProblem::Zero { field: "top_k" });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RulesError { problems })
        }
    }
}

impl Compiled {
    /// Validates and prepares `rules`.
    pub(crate) fn new(rules: CdnRules) -> Result<Self, RulesError> {
        rules.validate()?;
        let host_parts = rules
            .cdn_host
            .to_ascii_lowercase()
            .split(CLIENT_TOKEN_PLACEHOLDER)
            .map(str::to_owned)
            .collect();
        let site_hosts = rules
            .site_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let extensions = rules
            .extensions
            .iter()
            .map(|e| e.to_ascii_lowercase())
            .collect();
        Ok(Self {
            rules,
            host_parts,
            site_hosts,
            extensions,
        })
    }

    /// Whether the CDN host differs per client (then cached pages are kept per token).
    pub(crate) fn uses_client_token(&self) -> bool {
        self.host_parts.len() > 1
    }

    /// The client's token, when the template uses one.
    pub(crate) fn client_token(&self, client: IpAddr) -> Option<String> {
        self.uses_client_token()
            .then(|| client_token(client, self.rules.token_seed))
    }

    /// The CDN host for a client with `token` (from [`Compiled::client_token`]).
    pub(crate) fn cdn_host(&self, token: Option<&str>) -> String {
        self.host_parts.join(token.unwrap_or_default())
    }

    /// Whether `host` (lower-case, no port) is this site, given the request's own host.
    pub(crate) fn is_site_host(&self, host: &str, request_host: Option<&str>) -> bool {
        request_host.is_some_and(|r| r.eq_ignore_ascii_case(host))
            || self.site_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether an absolute `path` (no query) has the shape of CDN content.
    pub(crate) fn path_matches(&self, path: &str) -> bool {
        let prefixes = &self.rules.path_prefixes;
        if prefixes.is_empty() && self.extensions.is_empty() {
            return true;
        }
        if prefixes.iter().any(|p| path.starts_with(p.as_str())) {
            return true;
        }
        let bytes = path.as_bytes();
        let last = memchr::memrchr(b'/', bytes).map_or(bytes, |i| &bytes[i + 1..]);
        match memchr::memrchr(b'.', last) {
            Some(dot) => {
                let ext = &last[dot + 1..];
                self.extensions
                    .iter()
                    .any(|e| e.len() == ext.len() && e.as_bytes().eq_ignore_ascii_case(ext))
            }
            None => false,
        }
    }

    /// Whether an observed content type passes the `content_types` filter.
    pub(crate) fn content_type_matches(&self, content_type: &str) -> bool {
        let wanted = &self.rules.content_types;
        wanted.is_empty()
            || wanted.iter().any(|w| {
                content_type
                    .get(..w.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(w))
            })
    }
}

/// Token of `client`'s network: 8 hex digits of a seeded hash of its address prefix.
pub fn client_token(client: IpAddr, seed: u64) -> String {
    let hash = match client {
        IpAddr::V4(v4) => {
            xxhash_rust::xxh3::xxh3_64_with_seed(&v4.octets()[..TOKEN_V4_PREFIX_BYTES], seed)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                xxhash_rust::xxh3::xxh3_64_with_seed(&v4.octets()[..TOKEN_V4_PREFIX_BYTES], seed)
            }
            None => {
                xxhash_rust::xxh3::xxh3_64_with_seed(&v6.octets()[..TOKEN_V6_PREFIX_BYTES], seed)
            }
        },
    };
    format!("{:08x}", hash >> 32)
}

fn check_template(template: &str) -> Result<(), &'static str> {
    let rest = template.replace(CLIENT_TOKEN_PLACEHOLDER, "t");
    if rest.contains(['{', '}']) {
        return Err("unknown placeholder; only {client_token} is known");
    }
    if !rest.bytes().all(is_host_byte) {
        return Err("only letters, digits, '-', '.' and ':' may appear");
    }
    if rest.starts_with('.') || rest.ends_with('.') {
        return Err("may not start or end with '.'");
    }
    Ok(())
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
}

fn display_problems(problems: &[RuleProblem]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_collects_every_problem() {
        let mut rules = CdnRules::new("bad host");
        rules.path_prefixes = vec!["static/".into()];
        rules.extensions = vec![".png".into()];
        rules.sample_rate = 2.0;
        rules.max_objects = 0;
        let err = rules.validate().unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
    }

    #[test]
    fn template_with_token_renders_per_network() {
        let compiled = Compiled::new(CdnRules::new("{client_token}.cdn.example.net")).unwrap();
        let a = compiled.client_token("192.0.2.10".parse().unwrap());
        let b = compiled.client_token("192.0.2.99".parse().unwrap());
        let c = compiled.client_token("198.51.100.1".parse().unwrap());
        assert_eq!(a, b, "same /24, same token");
        assert_ne!(a, c);
        let host = compiled.cdn_host(a.as_deref());
        assert!(
            host.ends_with(".cdn.example.net") && host.len() == 8 + 16,
            "{host}"
        );
        assert!(Compiled::new(CdnRules::new("{client}.cdn")).is_err());
    }

    #[test]
    fn path_matching_by_prefix_or_extension() {
        let mut rules = CdnRules::new("cdn.example.net");
        rules.path_prefixes = vec!["/assets/".into()];
        rules.extensions = vec!["PNG".into()];
        let compiled = Compiled::new(rules).unwrap();
        assert!(compiled.path_matches("/assets/app"));
        assert!(compiled.path_matches("/img/a.png"));
        assert!(!compiled.path_matches("/img.png/readme"));
        assert!(!compiled.path_matches("/index.html"));
    }
}

//! Checks of back-ends named by DNS (`address = "name:port"`, `srv = "..."`) and of the
//! `[node]` keys that say how they are re-resolved (`resolvers`, `resolve_*`).
//!
//! Only the form of a name is judged here: nothing is resolved, so `pentaflow check` passes
//! without a DNS server and a name that does not resolve yet is not an error (the node keeps
//! asking). Must not: open sockets.

use std::net::SocketAddr;

use toml::Spanned;

use super::{Checker, Zero};
use crate::file::FileNode;
use crate::model::{DnsTarget, ResolveSettings};

/// What a `[[service.backend]]` names: a fixed address, or a DNS question.
pub(super) enum Target {
    Fixed(SocketAddr),
    Dns(DnsTarget),
}

/// A DNS name has at most 253 characters (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;
/// ... and labels of at most 63 (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

impl Checker<'_> {
    /// `address` of a back-end: `ip:port`, or `dns.name:port` (followed by DNS).
    pub(super) fn backend_address(&mut self, value: &Spanned<String>, key: &str) -> Option<Target> {
        let text = value.get_ref();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                self.report(value.span(), key, "port 0 cannot be connected to");
                return None;
            }
            return Some(Target::Fixed(addr));
        }
        let problem = match text.rsplit_once(':') {
            None => Some("has no port".to_owned()),
            Some((host, port)) => match port.parse::<u16>() {
                Err(_) | Ok(0) => Some(format!("has no valid port ({port:?}: 1..=65535)")),
                Ok(port) => match name_problem(host, false) {
                    Some(why) => Some(why),
                    None => {
                        return Some(Target::Dns(DnsTarget::Host {
                            host: host.trim_end_matches('.').to_owned(),
                            port,
                        }))
                    }
                },
            },
        };
        let why = problem.unwrap_or_default();
        self.report(
            value.span(),
            key,
            format!(
                r#"{text:?} {why}: use ip:port ("127.0.0.1:8080", "[::1]:8080") or dns.name:port ("app.internal:8080")"#
            ),
        );
        None
    }

    /// `srv` of a back-end: an SRV owner name such as `_http._tcp.app.internal`.
    pub(super) fn srv_name(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        let text = value.get_ref();
        match name_problem(text, true) {
            None => Some(text.trim_end_matches('.').to_owned()),
            Some(why) => {
                self.report(
                    value.span(),
                    key,
                    format!(r#"{text:?} {why}: an SRV name looks like "_http._tcp.app.internal""#),
                );
                None
            }
        }
    }

    /// `[node] resolvers`, `resolve_min_ttl`, `resolve_max_ttl`, `resolve_drain`.
    pub(super) fn resolve_settings(&mut self, node: &FileNode) -> ResolveSettings {
        let d = ResolveSettings::default();
        let resolvers = node.resolvers.as_ref().map_or_else(Vec::new, |list| {
            list.get_ref()
                .iter()
                .filter_map(|r| {
                    let addr = self.addr(r, "node.resolvers")?;
                    if addr.port() == 0 {
                        self.report(r.span(), "node.resolvers", "port 0 cannot be asked");
                        return None;
                    }
                    Some(addr)
                })
                .collect()
        });
        let min_ttl = self.duration(
            node.resolve_min_ttl.as_ref(),
            "node.resolve_min_ttl",
            d.min_ttl,
            Zero::Rejected,
        );
        let max_ttl = self.duration(
            node.resolve_max_ttl.as_ref(),
            "node.resolve_max_ttl",
            d.max_ttl.max(min_ttl),
            Zero::Rejected,
        );
        if max_ttl < min_ttl {
            let span = node.resolve_max_ttl.as_ref().map_or(0..0, Spanned::span);
            self.report(
                span,
                "node.resolve_max_ttl",
                format!("{max_ttl:?} is below resolve_min_ttl ({min_ttl:?})"),
            );
        }
        let drain = self.duration(
            node.resolve_drain.as_ref(),
            "node.resolve_drain",
            d.drain,
            Zero::Allowed,
        );
        ResolveSettings {
            resolvers,
            min_ttl,
            max_ttl,
            drain,
        }
    }
}

/// Why `name` is not a DNS name we can ask, if it is not. Host names take letters, digits,
/// '-' and '_' (seen in real zones); an SRV name must start with `_service._proto`.
fn name_problem(name: &str, srv: bool) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Some("has an empty name".to_owned());
    }
    if name.len() > MAX_NAME {
        return Some(format!("is longer than {MAX_NAME} characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Some(format!(
                "has an empty label or one longer than {MAX_LABEL} characters"
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Some(format!("has an invalid label {label:?}"));
        }
    }
    if srv && !(labels.len() >= 3 && labels[0].starts_with('_') && labels[1].starts_with('_')) {
        return Some("is not of the form _service._proto.name".to_owned());
    }
    if !srv && labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        // "10.0.0.1:80" parses as an address; "10.0.0.300:80" must not be asked as a name.
        return Some("is neither an IP address nor a DNS name".to_owned());
    }
    None
}

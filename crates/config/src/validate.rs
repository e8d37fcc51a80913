//! File model → validated [`Config`], collecting every problem.
//!
//! Each check that fails records a [`Problem`] (line, key path, message) and carries on with
//! a harmless stand-in value, so one run reports everything that is wrong with a file. The
//! result is a `Config` only when no problem was recorded. Defaults come from the model's
//! `Default` impls. The only I/O is in `files`: reading a cookie `secret_file` or the ticket
//! `keys_file`, and checking that certificate, key and CA files are readable. This module
//! must not open sockets or look at the clock.

use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::error::{line_col, Problem};
use crate::file::{FileConfig, FileDuration, FileLimits, FileNode};
use crate::model::{Config, Limits, NodeConfig};

mod array;
mod cdn;
mod cluster;
mod discovery;
#[cfg(test)]
mod expect;
mod files;
mod persistence;
mod service;
#[cfg(test)]
mod tests;
mod tickets;
mod tls;

/// `[limits] max_header_bytes`: below 1 KiB ordinary browsers fail; above 1 MiB one client
/// can pin too much memory per connection.
const MAX_HEADER_BYTES: RangeInclusive<i64> = 1024..=1024 * 1024;
/// `[limits] max_headers`: HTTP servers commonly cap at ~100; 1000 is far past any real client.
const MAX_HEADERS: RangeInclusive<i64> = 1..=1000;
/// `[limits] max_connections`: at least one; capped only so it fits any `usize`.
const MAX_CONNECTIONS: RangeInclusive<i64> = 1..=U32_MAX;
/// Upper bound of counters kept as `u32` in the model.
const U32_MAX: i64 = u32::MAX as i64;

/// Whether a zero duration is meaningful for a key (a grace period may be zero; a timeout
/// or an interval of zero would fire at once or spin).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Rejected,
}

/// Accumulates problems while walking the file model.
struct Checker<'a> {
    /// The TOML text, to turn spans into line numbers.
    text: &'a str,
    /// Directory that relative paths in the file resolve against (`None`: the current one).
    base_dir: Option<&'a Path>,
    problems: Vec<Problem>,
}

/// A listen address already claimed, to find addresses used twice.
struct Claimed {
    addr: SocketAddr,
    key: String,
    line: usize,
}

/// Validate the parsed file; `text` is what it was parsed from (for line numbers) and
/// `base_dir` the directory relative paths (`secret_file`, `keys_file`, certificates) resolve
/// against.
/// On failure, every problem found, in the order found.
pub(crate) fn validate(
    file: &FileConfig,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<Config, Vec<Problem>> {
    let mut checker = Checker {
        text,
        base_dir,
        problems: Vec::new(),
    };
    let mut claimed = Vec::new();
    let node = checker.node(file.node.as_ref(), &mut claimed);
    let limits = checker.limits(file.limits.as_ref());
    let tickets = checker.tickets(file.tls_tickets.as_ref());
    let services = checker.services(&file.service, &mut claimed);
    let array = file
        .array
        .as_ref()
        .map(|array| checker.array(array, &services));
    if let (Some(array), Some(admin)) = (&array, node.admin) {
        checker.admin_off_the_vip(file, array, admin);
    }
    if checker.problems.is_empty() {
        Ok(Config {
            node,
            limits,
            services,
            tickets,
            array,
        })
    } else {
        Err(checker.problems)
    }
}

impl Checker<'_> {
    /// Record a problem at the start of `span`.
    fn report(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let (line, _) = line_col(self.text, span.start);
        self.problems.push(Problem {
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Line of the start of `span`.
    fn line(&self, span: Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// An array node's admin API listens on its management address only: a wildcard or the
    /// VIP would put the status pages and operator actions on the address clients reach.
    fn admin_off_the_vip(
        &mut self,
        file: &FileConfig,
        array: &crate::ArrayConfig,
        admin: SocketAddr,
    ) {
        let ip = admin.ip();
        let why = if ip.is_unspecified() {
            "listens on every address, the VIP included"
        } else if ip == std::net::IpAddr::V4(array.vip) {
            "is the VIP"
        } else {
            return;
        };
        let span = file
            .node
            .as_ref()
            .and_then(|n| n.get_ref().admin.as_ref())
            .map_or(0..0, Spanned::span);
        let message = format!(
            "{admin} {why}: on an array node the admin API must listen on a management \
             address (e.g. the node's own address or 127.0.0.1)"
        );
        self.report(span, "node.admin", message);
    }

    fn node(&mut self, node: Option<&Spanned<FileNode>>, claimed: &mut Vec<Claimed>) -> NodeConfig {
        let default = NodeConfig::default();
        let Some(node) = node.map(Spanned::get_ref) else {
            return default;
        };
        let admin = node.admin.as_ref().and_then(|admin| {
            let addr = self.addr(admin, "node.admin")?;
            self.claim(addr, admin.span(), "node.admin", claimed);
            Some(addr)
        });
        let admin_token = self.admin_token(
            node.admin_token.as_ref(),
            node.admin_token_file.as_ref(),
            "node",
        );
        let resolve = self.resolve_settings(node);
        NodeConfig {
            admin,
            admin_token,
            resolve,
            access_log: node.access_log.unwrap_or(default.access_log),
            shutdown_grace: self.duration(
                node.shutdown_grace.as_ref(),
                "node.shutdown_grace",
                default.shutdown_grace,
                Zero::Allowed,
            ),
        }
    }

    fn limits(&mut self, limits: Option<&Spanned<FileLimits>>) -> Limits {
        let d = Limits::default();
        let Some(l) = limits.map(Spanned::get_ref) else {
            return d;
        };
        Limits {
            max_header_bytes: self.int(
                l.max_header_bytes.as_ref(),
                "limits.max_header_bytes",
                MAX_HEADER_BYTES,
                d.max_header_bytes,
            ),
            max_headers: self.int(
                l.max_headers.as_ref(),
                "limits.max_headers",
                MAX_HEADERS,
                d.max_headers,
            ),
            header_read_timeout: self.duration(
                l.header_read_timeout.as_ref(),
                "limits.header_read_timeout",
                d.header_read_timeout,
                Zero::Rejected,
            ),
            idle_timeout: self.duration(
                l.idle_timeout.as_ref(),
                "limits.idle_timeout",
                d.idle_timeout,
                Zero::Rejected,
            ),
            connect_timeout: self.duration(
                l.connect_timeout.as_ref(),
                "limits.connect_timeout",
                d.connect_timeout,
                Zero::Rejected,
            ),
            response_timeout: self.duration(
                l.response_timeout.as_ref(),
                "limits.response_timeout",
                d.response_timeout,
                Zero::Rejected,
            ),
            client_body_timeout: self.duration(
                l.client_body_timeout.as_ref(),
                "limits.client_body_timeout",
                d.client_body_timeout,
                Zero::Rejected,
            ),
            send_timeout: self.duration(
                l.send_timeout.as_ref(),
                "limits.send_timeout",
                d.send_timeout,
                Zero::Rejected,
            ),
            max_connections: self.int(
                l.max_connections.as_ref(),
                "limits.max_connections",
                MAX_CONNECTIONS,
                d.max_connections,
            ),
            max_connections_per_client: l.max_connections_per_client.as_ref().map(|v| {
                self.int(
                    Some(v),
                    "limits.max_connections_per_client",
                    MAX_CONNECTIONS,
                    usize::MAX,
                )
            }),
            h2_glitch_threshold: self.int(
                l.h2_glitch_threshold.as_ref(),
                "limits.h2_glitch_threshold",
                0..=U32_MAX,
                d.h2_glitch_threshold,
            ),
            h2_glitch_window: self.duration(
                l.h2_glitch_window.as_ref(),
                "limits.h2_glitch_window",
                d.h2_glitch_window,
                Zero::Rejected,
            ),
        }
    }

    /// An integer within `range`, or `default` when absent (or, after reporting, invalid).
    fn int<T: TryFrom<i64>>(
        &mut self,
        value: Option<&Spanned<i64>>,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        let v = *value.get_ref();
        match T::try_from(v) {
            Ok(converted) if range.contains(&v) => converted,
            _ => {
                let message = if *range.end() >= U32_MAX {
                    format!("must be at least {}, not {v}", range.start())
                } else {
                    format!(
                        "must be between {} and {}, not {v}",
                        range.start(),
                        range.end()
                    )
                };
                self.report(value.span(), key, message);
                default
            }
        }
    }

    /// A duration, or `default` when absent (or, after reporting, invalid).
    fn duration(
        &mut self,
        value: Option<&Spanned<FileDuration>>,
        key: &str,
        default: Duration,
        zero: Zero,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        let text = &value.get_ref().0;
        match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() && zero == Zero::Rejected => {
                self.report(value.span(), key, "must be longer than zero");
                default
            }
            Ok(d) => d,
            Err(err) => {
                self.report(
                    value.span(),
                    key,
                    format!(
                        r#"{text:?} is not a duration (write e.g. "500ms", "2s", "1m"): {err}"#
                    ),
                );
                default
            }
        }
    }

    /// An `ip:port` socket address (`127.0.0.1:80`, `[::1]:80`); host names are not resolved.
    fn addr(&mut self, value: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        let text = value.get_ref();
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.report(
                    value.span(),
                    key,
                    format!(r#"{text:?} is not an ip:port address (e.g. "127.0.0.1:8080", "[::1]:8080")"#),
                );
                None
            }
        }
    }

    /// Record that `addr` is listened on at `key`, reporting a clash with an earlier claim.
    /// Port 0 (an ephemeral port chosen at bind) never clashes.
    fn claim(
        &mut self,
        addr: SocketAddr,
        span: Range<usize>,
        key: &str,
        claimed: &mut Vec<Claimed>,
    ) {
        if let Some(other) = claimed.iter().find(|c| clashes(c.addr, addr)) {
            let how = if other.addr == addr {
                String::new()
            } else {
                format!(" (as {})", other.addr)
            };
            let message = format!(
                "{addr} is already used{how} by {} on line {}",
                other.key, other.line
            );
            self.report(span, key, message);
            return;
        }
        let line = self.line(span);
        claimed.push(Claimed {
            addr,
            key: key.to_owned(),
            line,
        });
    }
}

/// Whether two listeners cannot both bind: same port, and the same IP or a wildcard of the
/// same family on either side.
fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

/// `name` is non-empty and every character satisfies `allowed`.
fn is_name(name: &str, allowed: impl Fn(char) -> bool) -> bool {
    !name.is_empty() && name.chars().all(allowed)
}

/// A cookie name: an HTTP token (RFC 6265 §4.1.1 → RFC 7230 `tchar`).
fn is_token(name: &str) -> bool {
    is_name(name, |c| {
        c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
    })
}

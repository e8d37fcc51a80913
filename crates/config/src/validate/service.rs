//! Checks of `[[service]]`, its listen addresses, its health tables (passive, health) and its
//! back-ends. Persistence tables are checked in `persistence`, TLS tables in `tls`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use toml::Spanned;

use super::discovery::Target;
use super::{is_name, Checker, Claimed, Zero, U32_MAX};
use crate::file::{FileBackend, FileHealth, FilePassive, FileService};
use crate::model::{
    AcceptProxy, BackendAdminState, BackendConfig, Cidr, DiscoveredBackend, DnsTarget, HealthCheck,
    PassiveHealth, Policy, ProxyVersion, ServiceConfig,
};

/// `retries`: each retry costs a connect timeout; 16 already exceeds any sane pool.
const RETRIES: RangeInclusive<i64> = 0..=16;
/// `max_body_bytes`: any size a signed 64-bit file integer can say.
const BODY_BYTES: RangeInclusive<i64> = 0..=i64::MAX;
/// `weight`: wide enough for real capacity ratios, small enough that weight × connections
/// arithmetic in the scheduler cannot overflow.
const WEIGHT: RangeInclusive<i64> = 1..=1000;
/// `hash_balance_factor`: a percentage of the average load, so it must exceed 100.
const HASH_BALANCE_FACTOR: RangeInclusive<i64> = 101..=U32_MAX;
/// Counters that must be at least one (`max_fails`, `rise`, `fall`).
const AT_LEAST_ONE: RangeInclusive<i64> = 1..=U32_MAX;

impl Checker<'_> {
    pub(super) fn services(
        &mut self,
        services: &[Spanned<FileService>],
        claimed: &mut Vec<Claimed>,
    ) -> Vec<ServiceConfig> {
        if services.is_empty() {
            self.report(0..0, "service", "at least one [[service]] is required");
        }
        // Service name → (key, line) of its first use.
        let mut names: HashMap<&str, (String, usize)> = HashMap::new();
        let mut out = Vec::with_capacity(services.len());
        for (i, service) in services.iter().enumerate() {
            let key = format!("service[{i}]");
            if let Some(name) = &service.get_ref().name {
                let line = self.line(name.span());
                if let Some((first, first_line)) = names.get(name.get_ref().as_str()) {
                    let message = format!(
                        "service name {:?} is already used by {first} on line {first_line}",
                        name.get_ref()
                    );
                    self.report(name.span(), &format!("{key}.name"), message);
                } else {
                    names.insert(name.get_ref(), (key.clone(), line));
                }
            }
            out.push(self.service(&key, service, claimed));
        }
        out
    }

    fn service(
        &mut self,
        key: &str,
        service: &Spanned<FileService>,
        claimed: &mut Vec<Claimed>,
    ) -> ServiceConfig {
        let s = service.get_ref();
        let name = match &s.name {
            None => {
                self.report(
                    service.span(),
                    &format!("{key}.name"),
                    "missing required key",
                );
                String::new()
            }
            Some(name) => {
                if !is_name(name.get_ref(), |c| {
                    c.is_ascii_alphanumeric() || c == '_' || c == '-'
                }) {
                    let message = format!(
                        "{:?} is not a valid service name: use letters, digits, '_' and '-'",
                        name.get_ref()
                    );
                    self.report(name.span(), &format!("{key}.name"), message);
                }
                name.get_ref().clone()
            }
        };

        let listen = self.addresses(key, "listen", s.listen.as_ref(), claimed);
        let tls_listen = self.addresses(key, "tls_listen", s.tls_listen.as_ref(), claimed);
        // Judge what was written, not what parsed: a bad address is reported on its own.
        let written = |list: &Option<Spanned<Vec<Spanned<String>>>>| {
            list.as_ref().is_some_and(|l| !l.get_ref().is_empty())
        };
        let (has_listen, has_tls_listen) = (written(&s.listen), written(&s.tls_listen));
        if !has_listen && !has_tls_listen {
            const NEED: &str = "at least one of listen / tls_listen must list an ip:port address";
            match (&s.listen, &s.tls_listen) {
                (Some(l), _) => self.report(l.span(), &format!("{key}.listen"), NEED),
                (None, Some(t)) => self.report(t.span(), &format!("{key}.tls_listen"), NEED),
                (None, None) => self.report(
                    service.span(),
                    &format!("{key}.listen"),
                    "missing: set listen (plain HTTP), tls_listen (HTTPS) or both",
                ),
            }
        }
        let (tls, redirect_https) = self.service_tls(key, s, has_listen, has_tls_listen);

        let policy = match &s.policy {
            None => Some(Policy::default()),
            Some(p) => {
                let policy = match p.get_ref().as_str() {
                    "least_conn" => Some(Policy::LeastConn),
                    "round_robin" => Some(Policy::RoundRobin),
                    "url_hash" => Some(Policy::UrlHash),
                    _ => None,
                };
                if policy.is_none() {
                    let message = format!(
                        "{:?} is not a policy: use least_conn, round_robin or url_hash",
                        p.get_ref()
                    );
                    self.report(p.span(), &format!("{key}.policy"), message);
                }
                policy
            }
        };

        let hbf_key = format!("{key}.hash_balance_factor");
        let hash_balance_factor = s.hash_balance_factor.as_ref().map(|hbf| {
            if policy.is_some_and(|p| p != Policy::UrlHash) {
                self.report(
                    hbf.span(),
                    &hbf_key,
                    r#"only applies to policy = "url_hash""#,
                );
            }
            self.int(Some(hbf), &hbf_key, HASH_BALANCE_FACTOR, 0)
        });

        let persistence = self.persistence(key, s);
        let (backends, discovered) = self.backends(key, service.span(), &s.backend);

        ServiceConfig {
            name,
            listen,
            policy: policy.unwrap_or_default(),
            hash_balance_factor,
            persistence,
            backend_keepalive: s.backend_keepalive.unwrap_or(true),
            retries: self.int(s.retries.as_ref(), &format!("{key}.retries"), RETRIES, 2),
            max_body_bytes: s.max_body_bytes.as_ref().map(|m| {
                self.int(
                    Some(m),
                    &format!("{key}.max_body_bytes"),
                    BODY_BYTES,
                    u64::MAX,
                )
            }),
            passive: self.passive(key, s.passive.as_ref()),
            health: s.health.as_ref().map(|h| self.health(key, h)),
            backends,
            discovered,
            tls_listen,
            tls,
            redirect_https,
            backend_tls: self.backend_tls(key, s.backend_tls.as_ref()),
            cdn: s.cdn.as_ref().map(|c| self.cdn(key, c)),
            accept_proxy: self.accept_proxy(key, s),
            send_proxy: self.send_proxy(key, s),
        }
    }

    /// `accept_proxy` and its `proxy_trusted` networks.
    fn accept_proxy(&mut self, key: &str, s: &FileService) -> Option<AcceptProxy> {
        let on = s.accept_proxy.as_ref().is_some_and(|a| *a.get_ref());
        let Some(list) = s.proxy_trusted.as_ref() else {
            return on.then(AcceptProxy::default);
        };
        if !on {
            self.report(
                list.span(),
                &format!("{key}.proxy_trusted"),
                "proxy_trusted needs accept_proxy = true (it says who may send the PROXY header)",
            );
            return None;
        }
        let mut trusted = Vec::new();
        for (j, entry) in list.get_ref().iter().enumerate() {
            match entry.get_ref().parse::<Cidr>() {
                Ok(c) => trusted.push(c),
                Err(why) => self.report(
                    entry.span(),
                    &format!("{key}.proxy_trusted[{j}]"),
                    format!("{why} (write a network as 10.0.0.0/8 or one address as 10.1.2.3)"),
                ),
            }
        }
        if list.get_ref().is_empty() {
            self.report(
                list.span(),
                &format!("{key}.proxy_trusted"),
                "an empty list trusts nobody: list the proxies' networks, or remove the key to accept any source",
            );
        }
        Some(AcceptProxy { trusted })
    }

    /// `send_proxy`: `"v1"` or `"v2"`.
    fn send_proxy(&mut self, key: &str, s: &FileService) -> Option<ProxyVersion> {
        let v = s.send_proxy.as_ref()?;
        match v.get_ref().as_str() {
            "v1" => Some(ProxyVersion::V1),
            "v2" => Some(ProxyVersion::V2),
            other => {
                let message = format!(
                    "{other:?} is not a PROXY protocol version: use \"v1\" (text) or \"v2\" (binary)"
                );
                self.report(v.span(), &format!("{key}.send_proxy"), message);
                None
            }
        }
    }

    /// The addresses of `listen` or `tls_listen` (`field`), each claimed so no address is
    /// listened on twice anywhere in the file.
    fn addresses(
        &mut self,
        key: &str,
        field: &str,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        claimed: &mut Vec<Claimed>,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (j, addr) in list.map(Spanned::get_ref).into_iter().flatten().enumerate() {
            let addr_key = format!("{key}.{field}[{j}]");
            if let Some(parsed) = self.addr(addr, &addr_key) {
                self.claim(parsed, addr.span(), &addr_key, claimed);
                out.push(parsed);
            }
        }
        out
    }

    fn passive(&mut self, key: &str, table: Option<&Spanned<FilePassive>>) -> PassiveHealth {
        let d = PassiveHealth::default();
        let Some(p) = table.map(Spanned::get_ref) else {
            return d;
        };
        PassiveHealth {
            max_fails: self.int(
                p.max_fails.as_ref(),
                &format!("{key}.passive.max_fails"),
                AT_LEAST_ONE,
                d.max_fails,
            ),
            fail_timeout: self.duration(
                p.fail_timeout.as_ref(),
                &format!("{key}.passive.fail_timeout"),
                d.fail_timeout,
                Zero::Rejected,
            ),
        }
    }

    fn health(&mut self, key: &str, table: &Spanned<FileHealth>) -> HealthCheck {
        let d = HealthCheck::default();
        let h = table.get_ref();
        let path = match &h.path {
            None => d.path,
            Some(path) => {
                let p = path.get_ref();
                let pk = format!("{key}.health.path");
                if !p.starts_with('/') {
                    self.report(path.span(), &pk, format!("{p:?} must start with '/'"));
                } else if !p.chars().all(|c| c.is_ascii_graphic()) {
                    // It goes verbatim into a request line.
                    let message = format!(
                        "{p:?} must be printable ASCII without spaces (percent-encode the rest)"
                    );
                    self.report(path.span(), &pk, message);
                }
                p.clone()
            }
        };
        let interval_key = format!("{key}.health.interval");
        let timeout_key = format!("{key}.health.timeout");
        let interval = self.duration(
            h.interval.as_ref(),
            &interval_key,
            d.interval,
            Zero::Rejected,
        );
        let timeout = self.duration(h.timeout.as_ref(), &timeout_key, d.timeout, Zero::Rejected);
        if timeout >= interval {
            // Point at whichever of the two the operator wrote (timeout first).
            let (span, k) = match (&h.timeout, &h.interval) {
                (Some(t), _) => (t.span(), &timeout_key),
                (None, Some(i)) => (i.span(), &interval_key),
                (None, None) => (table.span(), &timeout_key),
            };
            let message = format!(
                "timeout ({}) must be shorter than interval ({})",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            );
            self.report(span, k, message);
        }
        HealthCheck {
            path,
            interval,
            timeout,
            rise: self.int(
                h.rise.as_ref(),
                &format!("{key}.health.rise"),
                AT_LEAST_ONE,
                d.rise,
            ),
            fall: self.int(
                h.fall.as_ref(),
                &format!("{key}.health.fall"),
                AT_LEAST_ONE,
                d.fall,
            ),
        }
    }

    fn backends(
        &mut self,
        key: &str,
        service_span: std::ops::Range<usize>,
        backends: &[Spanned<FileBackend>],
    ) -> (Vec<BackendConfig>, Vec<DiscoveredBackend>) {
        if backends.is_empty() {
            self.report(
                service_span,
                &format!("{key}.backend"),
                "at least one [[service.backend]] is required",
            );
        }
        let mut names: HashMap<&str, (String, usize)> = HashMap::new();
        let mut out = Vec::with_capacity(backends.len());
        let mut discovered = Vec::new();
        for (j, backend) in backends.iter().enumerate() {
            let bk = format!("{key}.backend[{j}]");
            let b = backend.get_ref();
            let name = match &b.name {
                None => {
                    self.report(
                        backend.span(),
                        &format!("{bk}.name"),
                        "missing required key",
                    );
                    String::new()
                }
                Some(name) => {
                    let n = name.get_ref();
                    let nk = format!("{bk}.name");
                    if !is_name(n, |c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                        let message = format!(
                            "{n:?} is not a valid back-end name: use letters, digits, '_', '.' and '-'"
                        );
                        self.report(name.span(), &nk, message);
                    } else if let Some((first, line)) = names.get(n.as_str()) {
                        let message = format!(
                            "back-end name {n:?} is already used by {first} on line {line}"
                        );
                        self.report(name.span(), &nk, message);
                    } else {
                        names.insert(n, (bk.clone(), self.line(name.span())));
                    }
                    n.clone()
                }
            };
            let ak = format!("{bk}.address");
            let target = match (&b.address, &b.srv) {
                (None, None) => {
                    self.report(
                        backend.span(),
                        &ak,
                        "missing required key (an ip:port, a dns.name:port, or srv = \"...\")",
                    );
                    None
                }
                (Some(_), Some(srv)) => {
                    self.report(
                        srv.span(),
                        &format!("{bk}.srv"),
                        "address and srv exclude each other: the SRV records give the ports",
                    );
                    None
                }
                (Some(a), None) => self.backend_address(a, &ak),
                (None, Some(srv)) => self
                    .srv_name(srv, &format!("{bk}.srv"))
                    .map(|name| Target::Dns(DnsTarget::Srv { name })),
            };
            let weight = self.int(b.weight.as_ref(), &format!("{bk}.weight"), WEIGHT, 1);
            let state = match &b.state {
                None => BackendAdminState::Ready,
                Some(word) => BackendAdminState::from_word(word.get_ref()).unwrap_or_else(|| {
                    let message = format!(
                        "{:?} is not a back-end state: use \"ready\", \"drain\" or \"maintenance\"",
                        word.get_ref()
                    );
                    self.report(word.span(), &format!("{bk}.state"), message);
                    BackendAdminState::Ready
                }),
            };
            match target {
                Some(Target::Fixed(address)) => out.push(BackendConfig {
                    name,
                    address,
                    weight,
                    state,
                }),
                Some(Target::Dns(target)) => discovered.push(DiscoveredBackend {
                    name,
                    target,
                    weight,
                    state,
                }),
                None => {}
            }
        }
        (out, discovered)
    }
}

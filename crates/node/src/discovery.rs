//! DNS service discovery of back-ends: one task per `[[service.backend]]` named by DNS
//! (`address = "name:port"` or `srv = "_service._proto.name"`), asking hickory-resolver at
//! the record's TTL (bounded by `[node] resolve_min_ttl`/`resolve_max_ttl`) and handing the
//! back-ends the answer stands for to [`Proxy::set_discovered`] — the proxy's reload path,
//! so a discovered change keeps open connections and every other back-end's stickiness, and
//! a SIGHUP or an API change keeps what DNS found.
//!
//! What an answer means for each address (appear, drain, removal, failures) is decided by
//! the pure [`tracker::Tracker`]; this module owns the I/O: the resolver, the tasks, which
//! follow the configuration the proxy was last given (entries added, changed or removed by a
//! reload), and the status and metrics they publish.
//!
//! Must not: write discovered back-ends to the configuration file (they are run-time state,
//! re-found at every start), or change back-ends by any other path than the proxy's.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use pentaflow_admin::{DiscoveryStatus, NodeMetric};
use pentaflow_config::{Config, DiscoveredBackend, DnsTarget, ResolveSettings};
use pentaflow_proxy::Proxy;
use tokio::task::JoinHandle;

use crate::cause_chain;

pub mod tracker;

use tracker::{Answer, Tracker};

/// How long one DNS query may take before it counts as failed (then once more).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Queries per resolution before it fails.
const QUERY_ATTEMPTS: usize = 2;
/// The weights a back-end may have (`[[service.backend]] weight`); an SRV weight is brought
/// into it (0 — "pick rarely" in RFC 2782 — becomes 1).
const WEIGHT_RANGE: (u32, u32) = (1, 1000);

/// The node's DNS discovery: started once, follows every reload.
pub struct Discovery {
    reports: Reports,
    manager: JoinHandle<()>,
}

/// What each entry's task last published, by `(service, entry)`.
type Reports = Arc<Mutex<BTreeMap<(String, String), Report>>>;

/// One entry's published state.
#[derive(Clone, Debug)]
struct Report {
    status: DiscoveryStatus,
    resolved_ok: u64,
    resolved_failed: u64,
}

/// What one task follows; a change of any part restarts it.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    entry: DiscoveredBackend,
    settings: ResolveSettings,
}

impl Discovery {
    /// Starts following the back-ends named by DNS in the configuration `proxy` was given,
    /// and in every one it is given later.
    pub fn start(proxy: Proxy) -> Self {
        let reports: Reports = Arc::default();
        let manager = tokio::spawn(manage(proxy, Arc::clone(&reports)));
        Discovery { reports, manager }
    }

    /// Each entry's addresses and last resolutions, for `/status`.
    pub fn status(&self) -> Vec<DiscoveryStatus> {
        self.lock().values().map(|r| r.status.clone()).collect()
    }

    /// `dns_resolutions{service,backend,result}` and `dns_addresses{service,backend}`.
    pub fn metrics(&self) -> Vec<NodeMetric> {
        let mut out = Vec::new();
        for ((service, name), r) in self.lock().iter() {
            for (result, value) in [("ok", r.resolved_ok), ("failed", r.resolved_failed)] {
                out.push(
                    NodeMetric::counter(
                        "dns_resolutions",
                        "Resolutions of back-ends named by DNS, by outcome (a failure keeps the last good set).",
                        value,
                    )
                    .with_label("service", service.clone())
                    .with_label("backend", name.clone())
                    .with_label("result", result),
                );
            }
            out.push(
                NodeMetric::gauge(
                    "dns_addresses",
                    "Addresses a back-end named by DNS resolves to now (draining ones not counted).",
                    r.status.addresses.len() as u64,
                )
                .with_label("service", service.clone())
                .with_label("backend", name.clone()),
            );
        }
        out
    }

    /// Stops resolving (the node is stopping); the back-ends found stay as they are.
    pub fn stop(&self) {
        self.manager.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Report>> {
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The entries' tasks, ended with the manager (aborted or not).
#[derive(Default)]
struct Tasks(HashMap<(String, String), (Spec, JoinHandle<()>)>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, (_, task)) in self.0.drain() {
            task.abort();
        }
    }
}

/// Keeps one task per discovered entry of the configuration last given to the proxy.
async fn manage(proxy: Proxy, reports: Reports) {
    let mut given = proxy.given_config();
    let mut tasks = Tasks::default();
    let tasks = &mut tasks.0;
    loop {
        let config: Arc<Config> = Arc::clone(&given.borrow_and_update());
        let wanted = specs(&config);
        let stale: Vec<(String, String)> = tasks
            .iter()
            .filter(|(key, (spec, _))| wanted.get(*key) != Some(spec))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some((_, task)) = tasks.remove(&key) {
                task.abort();
            }
            if !wanted.contains_key(&key) {
                // Gone from the file: its back-ends go with it (a changed entry keeps them
                // until its new name answers).
                lock(&reports).remove(&key);
                if let Err(e) = proxy.set_discovered(&key.0, &key.1, Vec::new()).await {
                    tracing::warn!(service = %key.0, backend = %key.1, error = %cause_chain(&e), "cannot drop the discovered back-ends of a removed entry");
                }
            }
        }
        for (key, spec) in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let task = tokio::spawn(follow(
                proxy.clone(),
                key.clone(),
                spec.clone(),
                Arc::clone(&reports),
            ));
            tasks.insert(key, (spec, task));
        }
        if given.changed().await.is_err() {
            break;
        }
    }
}

/// Every discovered entry of `config`, with the settings it is resolved with.
fn specs(config: &Config) -> HashMap<(String, String), Spec> {
    config
        .services
        .iter()
        .flat_map(|s| {
            s.discovered.iter().map(|entry| {
                (
                    (s.name.clone(), entry.name.clone()),
                    Spec {
                        entry: entry.clone(),
                        settings: config.node.resolve.clone(),
                    },
                )
            })
        })
        .collect()
}

/// One entry's task: resolve when due, expire drains, apply every change of the set.
async fn follow(proxy: Proxy, key: (String, String), spec: Spec, reports: Reports) {
    let (service, name) = &key;
    let resolver = resolver(&spec.settings);
    let mut tracker = Tracker::new(spec.entry.clone(), spec.settings.clone(), Instant::now());
    let mut applied: Option<Vec<pentaflow_config::BackendConfig>> = None;
    loop {
        let now = Instant::now();
        if tracker.resolve_due(now) {
            let outcome = match &resolver {
                Ok(r) => resolve(r, &spec.entry.target, spec.entry.weight).await,
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(%service, backend = %name, target = %spec.entry.target.describe(), error = %e, "DNS resolution failed; keeping the last good addresses");
            }
            tracker.observe(outcome, Instant::now());
        }
        tracker.expire(Instant::now());
        let backends = tracker.backends();
        // Only a change is applied; the first good answer is one, even when empty of old.
        if tracker.last_success.is_some() && applied.as_ref() != Some(&backends) {
            match proxy.set_discovered(service, name, backends.clone()).await {
                Ok(()) => {
                    tracing::info!(%service, backend = %name, addresses = ?tracker.addresses().collect::<Vec<_>>(), draining = ?tracker.draining().collect::<Vec<_>>(), "discovered back-ends changed");
                    applied = Some(backends);
                }
                Err(e) => {
                    tracing::error!(%service, backend = %name, error = %cause_chain(&e), "the proxy refused the discovered back-ends");
                }
            }
        }
        publish(&reports, &key, &spec, &tracker);
        tokio::time::sleep_until(tracker.next_wake().into()).await;
    }
}

/// Puts the tracker's state where status and metrics read it.
fn publish(reports: &Reports, key: &(String, String), spec: &Spec, tracker: &Tracker) {
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let last_success_unix = tracker.last_success.map(|t| {
        unix_now
            .saturating_sub(now.saturating_duration_since(t))
            .as_secs()
    });
    let status = DiscoveryStatus {
        service: key.0.clone(),
        name: key.1.clone(),
        target: spec.entry.target.describe(),
        addresses: tracker.addresses().map(ToString::to_string).collect(),
        draining: tracker.draining().map(ToString::to_string).collect(),
        last_success_unix,
        last_error: tracker.last_error.clone(),
        consecutive_failures: tracker.consecutive_failures,
    };
    lock(reports).insert(
        key.clone(),
        Report {
            status,
            resolved_ok: tracker.resolved_ok,
            resolved_failed: tracker.resolved_failed,
        },
    );
}

fn lock(reports: &Reports) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Report>> {
    reports
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The resolver of `settings`: its `resolvers`, else `/etc/resolv.conf`. Its own cache is
/// off: the tracker decides when to ask again, and each ask must reach the server.
fn resolver(settings: &ResolveSettings) -> Result<TokioResolver, String> {
    let provider = TokioConnectionProvider::default();
    let mut builder = if settings.resolvers.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
    } else {
        let mut config = ResolverConfig::new();
        for addr in &settings.resolvers {
            // UDP first; TCP for answers too large for a datagram.
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(config, provider)
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.cache_size = 0;
    options.timeout = QUERY_TIMEOUT;
    options.attempts = QUERY_ATTEMPTS;
    options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
    Ok(builder.build())
}

/// One resolution of `target`: every address with its weight, and the smallest TTL.
async fn resolve(
    resolver: &TokioResolver,
    target: &DnsTarget,
    weight: u32,
) -> Result<Answer, String> {
    let mut addresses = BTreeMap::new();
    let ttl;
    match target {
        DnsTarget::Host { host, port } => {
            let found = resolver
                .lookup_ip(host.as_str())
                .await
                .map_err(|e| format!("{host}: {e}"))?;
            ttl = found
                .valid_until()
                .saturating_duration_since(Instant::now());
            for ip in found.iter() {
                addresses.insert(SocketAddr::new(ip, *port), weight);
            }
        }
        DnsTarget::Srv { name } => {
            let found = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            let mut shortest = found
                .as_lookup()
                .valid_until()
                .saturating_duration_since(Instant::now());
            // RFC 2782: the lowest priority is used while any of its targets exists.
            let best = found.iter().map(|srv| srv.priority()).min();
            for srv in found.iter().filter(|srv| Some(srv.priority()) == best) {
                let target = srv.target().to_ascii();
                let ips = resolver
                    .lookup_ip(target.as_str())
                    .await
                    .map_err(|e| format!("{name}: target {target}: {e}"))?;
                shortest =
                    shortest.min(ips.valid_until().saturating_duration_since(Instant::now()));
                let w = u32::from(srv.weight()).clamp(WEIGHT_RANGE.0, WEIGHT_RANGE.1);
                for ip in ips.iter() {
                    let entry = addresses
                        .entry(SocketAddr::new(ip, srv.port()))
                        .or_insert(0);
                    *entry = (*entry + w).min(WEIGHT_RANGE.1);
                }
            }
            ttl = shortest;
        }
    }
    if addresses.is_empty() {
        return Err(format!("{}: no address in the answer", target.describe()));
    }
    Ok(Answer { addresses, ttl })
}

//! `pentaflow serve`: one node from a configuration file, and the signal handling shared with
//! the demo (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pentaflow_admin::{AdminOptions, ControlError, ControlRequest, NodeMetric, StatusSource};
use pentaflow_config::{ArrayConfig, Config};
use pentaflow_proxy::Proxy;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use super::array::ArrayRole;
use super::backend::BackendApi;
use super::cluster::{ClusterAccess, ClusterDriver};
use super::cluster_status;

/// Runs a node from `path` until SIGTERM or SIGINT; `node_id` says which `[[array.node]]`
/// this is (overriding the file's `node_id`).
pub(crate) async fn run(path: PathBuf, node_id: Option<u16>) -> anyhow::Result<ExitCode> {
    let config = pentaflow_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_array_node(config, Some(path), node_id).await
}

/// Starts the proxy and the admin API for `config`; reloads from `reload_from` on SIGHUP.
pub(crate) async fn run_node(
    config: Config,
    reload_from: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    run_array_node(config, reload_from, None).await
}

/// [`run_node`], taking this node's part in the `[array]` (if the config has one) before the
/// proxy binds the VIP, and leaving it after the proxy drained — or at once if start-up fails.
async fn run_array_node(
    config: Config,
    reload_from: Option<PathBuf>,
    node_id: Option<u16>,
) -> anyhow::Result<ExitCode> {
    // Signals first: a SIGTERM during the array set-up must not kill the process before it
    // can restore the kernel (it is handled once serving starts).
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let array = match &config.array {
        Some(array) => {
            let array = array.clone();
            // A few blocking `ip`/`nft` commands and a thread start: off the async workers.
            let role = tokio::task::spawn_blocking(move || ArrayRole::start(&array, node_id))
                .await
                .context("array set-up task")??;
            Some(role)
        }
        None => None,
    };
    let stop_array = |array: Option<ArrayRole>| {
        if let Some(role) = array {
            // Joins the scheduler thread and runs a few `ip`/`nft` commands: brief, blocking.
            tokio::task::block_in_place(|| role.stop());
        }
    };
    let proxy = match Proxy::start(&config).await {
        Ok(proxy) => proxy,
        Err(e) => {
            stop_array(array);
            return Err(anyhow::Error::new(e).context("cannot start the proxy"));
        }
    };
    // The control plane starts once the proxy serves: a node must not win an election (and
    // take the VIP) before it can answer its share.
    let cluster = match (&config.array, &array) {
        (Some(a), Some(role)) => match &a.cluster {
            Some(settings) => {
                let file = reload_from.clone();
                match ClusterDriver::start(a, settings, role.node_id(), proxy.clone(), file).await {
                    Ok(driver) => Some(driver),
                    Err(e) => {
                        let _ = proxy.shutdown(std::time::Duration::ZERO).await;
                        stop_array(array);
                        return Err(e.context("cannot join the array's cluster"));
                    }
                }
            }
            None => None,
        },
        _ => None,
    };
    let (stop_admin, admin_stopped) = watch::channel(false);
    if let Some(admin) = config.node.admin {
        let listener = match tokio::net::TcpListener::bind(admin).await {
            Ok(listener) => listener,
            Err(e) => {
                let _ = proxy.shutdown(std::time::Duration::ZERO).await;
                stop_array(array);
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot listen on the admin address {admin}")));
            }
        };
        let cluster_access = match (&config.array, &cluster) {
            (Some(a), Some(driver)) => Some((a.clone(), driver.access())),
            _ => None,
        };
        let mut options = AdminOptions::default();
        // One token guards every action: an array's own, else the node's (`[node]`).
        if let Some(token) = config
            .array
            .as_ref()
            .and_then(|a| a.cluster.as_ref())
            .and_then(|c| c.admin_token.clone())
            .or_else(|| config.node.admin_token.clone())
        {
            options = options.with_token(token);
        }
        let backends = BackendApi::new(reload_from.clone(), config.array.is_some(), proxy.clone());
        let source: Arc<dyn StatusSource> = Arc::new(ProxyStatus {
            proxy: proxy.clone(),
            cluster: cluster_access,
            backends,
        });
        let node = format!("pentaflow {}", env!("CARGO_PKG_VERSION"));
        tokio::spawn(async move {
            let served =
                pentaflow_admin::serve_with(listener, source, node, admin_stopped, options);
            if let Err(e) = served.await {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
        tracing::info!(%admin, "admin API listening");
    }
    // Every listener is bound (the proxy's above, the admin API's here): systemd may go on.
    super::readiness::ready();
    let mut grace = config.node.shutdown_grace;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let Some(path) = &reload_from else {
                    tracing::info!("SIGHUP ignored: no configuration file to reload");
                    continue;
                };
                super::readiness::reloading();
                // A bad file or a failed bind keeps the running configuration: never exit here.
                let applied = match pentaflow_config::load(path) {
                    Ok(new) => match proxy.reload(&new).await {
                        Ok(()) => {
                            grace = new.node.shutdown_grace;
                            true
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reload failed; keeping the running configuration");
                            false
                        }
                    },
                    Err(e) => {
                        tracing::error!("reload refused; keeping the running configuration:\n{e}");
                        false
                    }
                };
                super::readiness::reloaded(applied);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    super::readiness::stopping();
    tracing::info!(grace = ?grace, "draining: no new connections, finishing requests in flight");
    let started = Instant::now();
    let clean = proxy.shutdown(grace).await;
    let _ = stop_admin.send(true);
    if let Some(cluster) = cluster {
        // Stops the scheduler thread first: it restores what it changed over the node set-up.
        cluster.stop().await;
    }
    stop_array(array);
    tracing::info!(clean, took = ?started.elapsed(), "stopped");
    Ok(ExitCode::SUCCESS)
}

/// The admin API's view of the proxy, and of the cluster when the node is in one.
struct ProxyStatus {
    proxy: Proxy,
    cluster: Option<(ArrayConfig, ClusterAccess)>,
    /// `POST /backend/...`.
    backends: BackendApi,
}

impl StatusSource for ProxyStatus {
    fn web_servers(&self) -> Vec<pentaflow_balance::WebServerStatus> {
        self.proxy.status()
    }

    fn node_metrics(&self) -> Vec<NodeMetric> {
        let c = self.proxy.counters();
        let mut metrics = vec![
            NodeMetric::counter("connections_accepted", "Client connections accepted.", c.connections_accepted),
            NodeMetric::counter(
                "connections_refused",
                "Client connections closed at accept (max_connections).",
                c.connections_refused,
            ),
            NodeMetric::gauge("connections_open", "Client connections open now.", c.connections_open),
            NodeMetric::counter("requests", "Requests received.", c.requests),
            NodeMetric::counter("local_4xx", "Requests the proxy refused itself with a 4xx.", c.local_4xx),
            NodeMetric::counter("local_5xx", "Requests the proxy answered itself with a 5xx.", c.local_5xx),
            NodeMetric::counter(
                "send_timeouts",
                "Client connections closed because the client did not read within send_timeout.",
                c.send_timeouts,
            ),
            NodeMetric::counter(
                "response_body_errors",
                "Responses cut off because the back-end's body broke (the client's connection is closed).",
                c.response_body_errors,
            ),
            NodeMetric::counter("tls_handshakes", "TLS handshakes completed.", c.tls_handshakes),
            NodeMetric::counter("tls_resumed", "TLS handshakes that resumed a session.", c.tls_resumed),
            NodeMetric::counter("tls13_handshakes", "TLS handshakes that negotiated TLS 1.3.", c.tls13),
            NodeMetric::counter(
                "tls_failed",
                "TLS handshakes that failed or timed out (garbage, plain HTTP, unknown SNI, stalls).",
                c.tls_failed,
            ),
            NodeMetric::counter(
                "tls_over_limit",
                "TLS connections closed because max_handshakes were in progress.",
                c.tls_over_limit,
            ),
            NodeMetric::counter("http2_connections", "Client connections that negotiated HTTP/2.", c.http2_connections),
        ];
        // Every answer the node made itself, one series per status and reason.
        metrics.extend(c.local_responses.iter().map(|l| {
            NodeMetric::counter(
                "local_responses",
                "Responses the proxy made itself, by status and reason.",
                l.count,
            )
            .with_label("status", l.status.to_string())
            .with_label("reason", l.reason)
        }));
        // The CDN page caches of every service, summed.
        let reports = self.proxy.cdn_reports();
        let sum = |f: fn(&pentaflow_proxy::CdnReport) -> u64| {
            reports.iter().map(|(_, r)| f(r)).sum::<u64>()
        };
        metrics.extend([
            NodeMetric::counter(
                "cdn_cache_hits",
                "Rewritten pages served from the page cache.",
                sum(|r| r.cache.hits),
            ),
            NodeMetric::counter(
                "cdn_cache_misses",
                "Rewritten pages not found in the page cache.",
                sum(|r| r.cache.misses),
            ),
            NodeMetric::counter(
                "cdn_pages_rewritten",
                "HTML pages rewritten for the CDN.",
                sum(|r| r.pages.rewritten),
            ),
            NodeMetric::counter(
                "cdn_urls_rewritten",
                "URLs rewritten to the CDN.",
                sum(|r| r.pages.urls_rewritten),
            ),
        ]);
        if let Some((_, access)) = &self.cluster {
            metrics.extend(cluster_status::metrics(access));
        }
        metrics
    }

    fn cluster_report(&self) -> serde_json::Value {
        self.cluster
            .as_ref()
            .map_or(serde_json::Value::Null, |(_, access)| {
                cluster_status::report(access)
            })
    }

    fn bucket_table(&self) -> Option<Arc<pentaflow_balance::BucketSnapshot>> {
        let (_, access) = self.cluster.as_ref()?;
        let table = Arc::clone(&access.view.borrow().table);
        Some(table)
    }

    fn control(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError> {
        if let ControlRequest::Backend(change) = &request {
            return self.backends.apply(change);
        }
        match &self.cluster {
            Some((_, access)) => cluster_status::control(access, request),
            None => Err(ControlError::new(
                503,
                "this node is not part of an array cluster",
            )),
        }
    }

    fn cdn_report(&self) -> serde_json::Value {
        let reports = self.proxy.cdn_reports();
        if reports.is_empty() {
            return serde_json::Value::Null;
        }
        let by_service = reports
            .into_iter()
            .map(|(name, r)| (name, serde_json::to_value(r).unwrap_or_default()));
        serde_json::Value::Object(by_service.collect())
    }
}

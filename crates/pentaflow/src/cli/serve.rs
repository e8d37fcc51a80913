//! `pentaflow serve`: one node from a configuration file, and the signal handling shared with
//! the demo (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pentaflow_admin::{MetricKind, NodeMetric, StatusSource};
use pentaflow_config::Config;
use pentaflow_proxy::Proxy;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Runs a node from `path` until SIGTERM or SIGINT.
pub(crate) async fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = pentaflow_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_node(config, Some(path)).await
}

/// Starts the proxy and the admin API for `config`; reloads from `reload_from` on SIGHUP.
pub(crate) async fn run_node(
    config: Config,
    reload_from: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let proxy = Proxy::start(&config)
        .await
        .context("cannot start the proxy")?;
    let (stop_admin, admin_stopped) = watch::channel(false);
    if let Some(admin) = config.node.admin {
        let listener = tokio::net::TcpListener::bind(admin)
            .await
            .with_context(|| format!("cannot listen on the admin address {admin}"))?;
        let source: Arc<dyn StatusSource> = Arc::new(ProxyStatus {
            proxy: proxy.clone(),
        });
        let node = format!("pentaflow {}", env!("CARGO_PKG_VERSION"));
        tokio::spawn(async move {
            if let Err(e) = pentaflow_admin::serve(listener, source, node, admin_stopped).await {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
        tracing::info!(%admin, "admin API listening");
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut grace = config.node.shutdown_grace;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let Some(path) = &reload_from else {
                    tracing::info!("SIGHUP ignored: no configuration file to reload");
                    continue;
                };
                // A bad file or a failed bind keeps the running configuration: never exit here.
                match pentaflow_config::load(path) {
                    Ok(new) => match proxy.reload(&new).await {
                        Ok(()) => grace = new.node.shutdown_grace,
                        Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
                    },
                    Err(e) => tracing::error!("reload refused; keeping the running configuration:\n{e}"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!(grace = ?grace, "draining: no new connections, finishing requests in flight");
    let started = Instant::now();
    let clean = proxy.shutdown(grace).await;
    let _ = stop_admin.send(true);
    tracing::info!(clean, took = ?started.elapsed(), "stopped");
    Ok(ExitCode::SUCCESS)
}

/// The admin API's view of the proxy.
struct ProxyStatus {
    proxy: Proxy,
}

impl StatusSource for ProxyStatus {
    fn web_servers(&self) -> Vec<pentaflow_balance::WebServerStatus> {
        self.proxy.status()
    }

    fn node_metrics(&self) -> Vec<NodeMetric> {
        let c = self.proxy.counters();
        let metric = |name: &str, help: &str, kind, value| NodeMetric {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            value,
        };
        vec![
            metric(
                "connections_accepted",
                "Client connections accepted.",
                MetricKind::Counter,
                c.connections_accepted,
            ),
            metric(
                "connections_refused",
                "Client connections closed at accept (max_connections).",
                MetricKind::Counter,
                c.connections_refused,
            ),
            metric(
                "connections_open",
                "Client connections open now.",
                MetricKind::Gauge,
                c.connections_open,
            ),
            metric(
                "requests",
                "Requests received.",
                MetricKind::Counter,
                c.requests,
            ),
            metric(
                "local_4xx",
                "Requests the proxy refused itself with a 4xx.",
                MetricKind::Counter,
                c.local_4xx,
            ),
            metric(
                "local_5xx",
                "Requests the proxy answered itself with a 5xx.",
                MetricKind::Counter,
                c.local_5xx,
            ),
        ]
    }
}

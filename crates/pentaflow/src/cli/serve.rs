//! `pentaflow serve`: one node from a configuration file, and the signal handling shared with
//! the demo (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pentaflow_admin::{NodeMetric, StatusSource};
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
        vec![
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
        ]
    }
}

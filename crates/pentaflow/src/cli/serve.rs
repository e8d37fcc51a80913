//! `pentaflow serve`: one node from a configuration file, and the signal handling shared with
//! the demo (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pentaflow_admin::{AdminOptions, StatusSource};
use pentaflow_config::Config;
use pentaflow_proxy::{Proxy, Workers};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use pentaflow_node::backend_api::{ArrayPath, BackendApi};
use pentaflow_node::status_source::NodeStatusSource;
use pentaflow_node::{ArrayRole, ClusterDriver, Discovery};

/// Runs a node from `path` until SIGTERM or SIGINT; `node_id` says which `[[array.node]]`
/// this is (overriding the file's `node_id`). With `workers` ≥ 2 the proxy serves on that many
/// worker threads, each with a runtime of its own; with 1, on the runtime this runs on.
pub(crate) async fn run(
    path: PathBuf,
    node_id: Option<u16>,
    workers: usize,
) -> anyhow::Result<ExitCode> {
    let config = pentaflow_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(refusal) = not_runnable(&config) {
        eprintln!("pentaflow: {}: {refusal}", path.display());
        return Ok(ExitCode::from(2));
    }
    let workers = if workers >= 2 {
        Some(Workers::start(workers).context("cannot start the worker threads")?)
    } else {
        None
    };
    let outcome = run_array_node(config, Some(path), node_id, workers.as_ref()).await;
    if let Some(workers) = workers {
        // Joins the worker threads (the proxy drained them first): brief, blocking.
        let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    }
    outcome
}

/// Why this build cannot serve `config`, if it cannot: active-active mode validates (so
/// `check` and config pushes work), but its packet path is not wired to a data plane yet —
/// starting it as a single scheduler would publish the VIP the wrong way.
fn not_runnable(config: &Config) -> Option<String> {
    let array = config.array.as_ref()?;
    (array.mode == pentaflow_config::ArrayMode::ActiveActive).then(|| {
        "active-active mode is not runnable in this build yet (issue 12): its decisions \
         (pentaflow_packet::ilb_core) are built and tested, but no data plane runs them and \
         the nodes do not exchange associations; use mode = \"scheduler\" (the default)"
            .to_owned()
    })
}

/// Starts the proxy and the admin API for `config`; reloads from `reload_from` on SIGHUP.
pub(crate) async fn run_node(
    config: Config,
    reload_from: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    run_array_node(config, reload_from, None, None).await
}

/// [`run_node`], taking this node's part in the `[array]` (if the config has one) before the
/// proxy binds the VIP, and leaving it after the proxy drained — or at once if start-up fails.
/// The proxy serves on `workers` if given (the caller stops them after this returns), else on
/// this runtime.
async fn run_array_node(
    config: Config,
    reload_from: Option<PathBuf>,
    node_id: Option<u16>,
    workers: Option<&Workers>,
) -> anyhow::Result<ExitCode> {
    // Signals first: a SIGTERM during the array set-up must not kill the process before it
    // can restore the kernel (it is handled once serving starts).
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let upgrade = super::upgrade::Upgrade::of_this_process()?;
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
    let proxy = match workers {
        Some(workers) => Proxy::start_on(&config, workers).await,
        None => Proxy::start(&config).await,
    };
    let proxy = match proxy {
        Ok(proxy) => proxy,
        Err(e) => {
            stop_array(array).await;
            return Err(anyhow::Error::new(e).context("cannot start the proxy"));
        }
    };
    // Back-ends named by DNS: resolved from now on, following every reload of the proxy.
    let discovery = Arc::new(Discovery::start(proxy.clone()));
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
                        stop_array(array).await;
                        return Err(
                            anyhow::Error::new(e).context("cannot join the array's cluster")
                        );
                    }
                }
            }
            None => None,
        },
        _ => None,
    };
    let (stop_admin, admin_stopped) = watch::channel(false);
    // A second descriptor of the admin API's socket, for an upgrade's new process.
    let mut admin_fd: Option<(std::net::SocketAddr, std::os::fd::OwnedFd)> = None;
    if let Some(admin) = config.node.admin {
        let bound = match pentaflow_proxy::inherited::take(admin) {
            // Handed over by the process this one replaces (`SIGUSR2`).
            Some(listener) => listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener)),
            None => tokio::net::TcpListener::bind(admin).await,
        };
        let listener = match bound {
            Ok(listener) => listener,
            Err(e) => {
                let _ = proxy.shutdown(std::time::Duration::ZERO).await;
                stop_array(array).await;
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot listen on the admin address {admin}")));
            }
        };
        admin_fd = {
            use std::os::fd::AsFd;
            let local = listener.local_addr().unwrap_or(admin);
            listener
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(|fd| (local, fd))
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
        let path = match (&config.array, &cluster_access) {
            (None, _) => ArrayPath::None,
            (Some(_), None) => ArrayPath::Static,
            (Some(_), Some((_, access))) => ArrayPath::Cluster(access.clone()),
        };
        let backends = BackendApi::new(reload_from.clone(), path, proxy.clone());
        let source: Arc<dyn StatusSource> = Arc::new(NodeStatusSource {
            proxy: proxy.clone(),
            cluster: cluster_access,
            backends,
            discovery: Arc::clone(&discovery),
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
    for stale in pentaflow_proxy::inherited::unclaimed() {
        tracing::warn!(address = %stale, "a handed-over socket matches no listener of this configuration: closed");
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
            _ = usr2.recv() => {
                if config.array.is_some() {
                    tracing::warn!("SIGUSR2 ignored: an array node is upgraded by a restart (the array fails over), not by a hand-over");
                    continue;
                }
                let mut listeners = proxy.listener_fds();
                if let Some((addr, fd)) = &admin_fd {
                    if let Ok(fd) = fd.try_clone() {
                        listeners.push((*addr, fd));
                    }
                }
                match upgrade.hand_over(listeners).await {
                    Ok(pid) => {
                        tracing::info!(pid, "upgrade: the new process serves; this one drains and exits");
                        break;
                    }
                    Err(e) => tracing::error!("upgrade failed; this process keeps serving: {e:#}"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    super::readiness::stopping();
    tracing::info!(grace = ?grace, "draining: no new connections, finishing requests in flight");
    let started = Instant::now();
    discovery.stop();
    let clean = proxy.shutdown(grace).await;
    let _ = stop_admin.send(true);
    if let Some(cluster) = cluster {
        // Stops the scheduler thread first: it restores what it changed over the node set-up.
        cluster.stop().await;
    }
    stop_array(array).await;
    tracing::info!(clean, took = ?started.elapsed(), "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Leaves the array: joins the scheduler thread and runs a few `ip`/`nft` commands — brief
/// but blocking, so on the blocking pool (`block_in_place` would panic on the single-threaded
/// control runtime).
async fn stop_array(array: Option<ArrayRole>) {
    if let Some(role) = array {
        if let Err(e) = tokio::task::spawn_blocking(move || role.stop()).await {
            tracing::error!(error = %e, "leaving the array failed");
        }
    }
}

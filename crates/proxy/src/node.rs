//! The proxy node: listeners, client connections, the swappable service state, reload and
//! graceful shutdown.
//!
//! Owns the accept loops (one per configured listen address), the connection limit, serving each
//! client connection with hyper (HTTP/1.1, keep-alive, upgrades), and the [`NodeState`] snapshot
//! that request handlers read without locks and that a reload replaces atomically (a bad new
//! config never replaces a working one). It must not know about the cluster.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pentaflow_config::{Config, Limits};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::conn::{ClientIo, ConnState};
use crate::error::ProxyError;
use crate::forward::{self, ClientInfo};
use crate::health;
use crate::respond::Refusal;
use crate::service::Service;

/// hyper refuses read buffers smaller than this; smaller header limits are rounded up to it.
const HYPER_MIN_BUF: usize = 8192;
/// How often idle session hash groups are released.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

/// What request handlers read: swapped whole on reload.
pub(crate) struct NodeState {
    pub(crate) services: Vec<Arc<Service>>,
    pub(crate) by_listen: HashMap<SocketAddr, Arc<Service>>,
    pub(crate) limits: Limits,
    pub(crate) access_log: bool,
}

impl NodeState {
    fn build(config: &Config, previous: Option<&NodeState>) -> Self {
        let services: Vec<Arc<Service>> = config
            .services
            .iter()
            .map(|s| {
                let old =
                    previous.and_then(|p| p.services.iter().find(|o| o.config.name == s.name));
                Arc::new(Service::new(s.clone(), old.map(|o| &**o)))
            })
            .collect();
        let by_listen = services
            .iter()
            .flat_map(|s| s.config.listen.iter().map(move |a| (*a, Arc::clone(s))))
            .collect();
        Self {
            services,
            by_listen,
            limits: config.limits.clone(),
            access_log: config.node.access_log,
        }
    }
}

/// Node-wide counters (exported as metrics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    refused_over_limit: AtomicU64,
    requests: AtomicU64,
    local_4xx: AtomicU64,
    local_5xx: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refusal(&self, refusal: Refusal) {
        let counter = if refusal.status().is_client_error() {
            &self.local_4xx
        } else {
            &self.local_5xx
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct ListenerHandle {
    local: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Everything the node's tasks share.
pub(crate) struct Shared {
    pub(crate) state: ArcSwap<NodeState>,
    pub(crate) counters: Counters,
    conn_limit: Arc<Semaphore>,
    max_connections: usize,
    listeners: Mutex<HashMap<SocketAddr, ListenerHandle>>,
    /// Set to true on shutdown; every open client connection holds a receiver, so
    /// `closed()` on the sender resolves when the last one has ended.
    draining: watch::Sender<bool>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

/// A running proxy node. Dropping it does not stop it: call [`Proxy::shutdown`].
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// A snapshot of the node-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCounters {
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Client connections closed at accept because `max_connections` was reached.
    pub connections_refused: u64,
    /// Client connections open now.
    pub connections_open: u64,
    /// Requests received.
    pub requests: u64,
    /// Requests the proxy answered itself with a 4xx (bad framing, bad body...).
    pub local_4xx: u64,
    /// Requests the proxy answered itself with a 5xx (no back-end, timeouts...).
    pub local_5xx: u64,
}

impl Proxy {
    /// Binds every listen address of `config` and starts serving.
    pub async fn start(config: &Config) -> Result<Self, ProxyError> {
        let max = config.limits.max_connections;
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(NodeState::build(config, None)),
            counters: Counters::default(),
            conn_limit: Arc::new(Semaphore::new(max)),
            max_connections: max,
            listeners: Mutex::new(HashMap::new()),
            draining: watch::channel(false).0,
            background: Mutex::new(Vec::new()),
        });
        let proxy = Self { shared };
        let bound = proxy.bind_new(config).await?;
        proxy.install_listeners(bound);
        proxy.restart_background();
        Ok(proxy)
    }

    /// Applies a new configuration without dropping connections: new listeners are bound first
    /// (on failure nothing changes), then the state is swapped, then removed listeners stop.
    /// Back-end statistics, pools and session groups carry over by name.
    pub async fn reload(&self, config: &Config) -> Result<(), ProxyError> {
        let bound = self.bind_new(config).await?;
        let old = self.shared.state.load_full();
        self.shared
            .state
            .store(Arc::new(NodeState::build(config, Some(&old))));
        self.install_listeners(bound);
        let keep: Vec<SocketAddr> = config
            .services
            .iter()
            .flat_map(|s| s.listen.clone())
            .collect();
        if let Ok(mut listeners) = self.shared.listeners.lock() {
            listeners.retain(|addr, handle| {
                let keep_it = keep.contains(addr);
                if !keep_it {
                    let _ = handle.stop.send(true);
                }
                keep_it
            });
        }
        self.restart_background();
        tracing::info!(services = config.services.len(), "configuration reloaded");
        Ok(())
    }

    /// The actual local address of each configured listen address (differs for port 0).
    pub fn local_addrs(&self) -> HashMap<SocketAddr, SocketAddr> {
        self.shared
            .listeners
            .lock()
            .map(|l| l.iter().map(|(k, h)| (*k, h.local)).collect())
            .unwrap_or_default()
    }

    /// The Web Server Status Table of this node: one row per back-end of every service.
    pub fn status(&self) -> Vec<pentaflow_balance::WebServerStatus> {
        self.shared
            .state
            .load()
            .services
            .iter()
            .flat_map(|s| s.status_rows())
            .collect()
    }

    /// Node-wide counters.
    pub fn counters(&self) -> NodeCounters {
        let c = &self.shared.counters;
        NodeCounters {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_refused: c.refused_over_limit.load(Ordering::Relaxed),
            connections_open: (self.shared.max_connections
                - self.shared.conn_limit.available_permits()) as u64,
            requests: c.requests.load(Ordering::Relaxed),
            local_4xx: c.local_4xx.load(Ordering::Relaxed),
            local_5xx: c.local_5xx.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then returns.
    /// Returns whether every connection finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        if let Ok(mut listeners) = self.shared.listeners.lock() {
            for (_, handle) in listeners.drain() {
                let _ = handle.stop.send(true);
            }
        }
        if let Ok(mut tasks) = self.shared.background.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
        let _ = self.shared.draining.send(true);
        tokio::time::timeout(grace, self.shared.draining.closed())
            .await
            .is_ok()
    }

    async fn bind_new(
        &self,
        config: &Config,
    ) -> Result<Vec<(SocketAddr, TcpListener)>, ProxyError> {
        let existing: Vec<SocketAddr> = self
            .shared
            .listeners
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default();
        let mut bound = Vec::new();
        for service in &config.services {
            for &address in &service.listen {
                if existing.contains(&address) {
                    continue;
                }
                let listener =
                    bind(address).map_err(|source| ProxyError::Bind { address, source })?;
                bound.push((address, listener));
            }
        }
        Ok(bound)
    }

    fn install_listeners(&self, bound: Vec<(SocketAddr, TcpListener)>) {
        for (address, listener) in bound {
            let local = listener.local_addr().unwrap_or(address);
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(accept_loop(
                Arc::clone(&self.shared),
                address,
                listener,
                stopped,
            ));
            tracing::info!(%address, %local, "listening");
            if let Ok(mut l) = self.shared.listeners.lock() {
                l.insert(address, ListenerHandle { local, stop });
            }
        }
    }

    fn restart_background(&self) {
        let Ok(mut tasks) = self.shared.background.lock() else {
            return;
        };
        tasks.drain(..).for_each(|t| t.abort());
        let state = self.shared.state.load_full();
        for service in &state.services {
            tasks.extend(health::spawn_checks(service));
        }
        let shared = Arc::clone(&self.shared);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                tick.tick().await;
                for s in &shared.state.load().services {
                    s.expire_session_groups();
                }
            }
        }));
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // Lets a restarted node bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(4096)
}

async fn accept_loop(
    shared: Arc<Shared>,
    listen: SocketAddr,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%listen, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.conn_limit).try_acquire_owned() else {
            shared
                .counters
                .refused_over_limit
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            serve_connection(shared, listen, stream, peer).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    listen: SocketAddr,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared.state.load().limits.clone();
    let conn_state = Arc::new(ConnState::default());
    let io = ClientIo::new(
        stream,
        Arc::clone(&conn_state),
        limits.header_read_timeout,
        limits.idle_timeout,
    );
    let client = ClientInfo {
        peer,
        listener: listen,
        https: false,
        conn: conn_state,
    };
    let handler_shared = Arc::clone(&shared);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&handler_shared);
        let client = client.clone();
        async move { Ok::<_, Infallible>(forward::handle(shared, client, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let mut draining = shared.draining.subscribe();
    if *draining.borrow_and_update() {
        return;
    }
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = draining.changed() => {
            // Finish the request in flight, then close instead of keeping the connection alive.
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    drop(draining);
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}

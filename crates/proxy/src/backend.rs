//! One back-end web server as the proxy sees it at run time: its row of the Web Server Status
//! Table (seed 002 Fig. 7), its health, and its pool of idle keep-alive connections.
//!
//! Owns: the counters behind the status table, passive failure detection (claim 13), and
//! pooling HTTP/1.1 connections (opened by h1::upstream) to the back-end — one pool per worker
//! runtime (workers.rs), since a pooled socket belongs to the reactor of the runtime that opened
//! it and must be reused there. With `send_proxy`, a pooled connection carries the PROXY header
//! of the client connection that opened it, so it is reused only for requests of that same
//! client connection (same source and destination address and port): a back-end never sees one
//! client's request on another's header. It must not choose back-ends (that is the service's
//! scheduler) nor build responses for clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pentaflow_balance::{BackendId, BackendState, Candidate, WebServerStatus};
use pentaflow_config::{BackendAdminState, BackendConfig, PassiveHealth, ProxyVersion};

use crate::clock::now_ms;
use crate::error::UpstreamError;
use crate::h1::upstream::{self, Upstream};
use crate::proxy_protocol::Outbound;
use crate::upstream_tls::UpstreamTls;

/// Idle pooled connections kept per back-end and worker; beyond this a finished connection is
/// closed.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// Pooled connections unused for this long are closed rather than reused (back-ends commonly
/// close idle keep-alive connections after 60–75 s; reusing one at that instant races).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Weight of a new sample in the moving average of response time, in 1/1024ths.
const EWMA_WEIGHT_1024: u64 = 128;

/// A back-end web server: configuration, live statistics, health and connection pool.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) config: BackendConfig,
    pub(crate) id: BackendId,
    /// Re-encryption to this back-end, if the service asks for it.
    pub(crate) tls: Option<Arc<UpstreamTls>>,
    /// The PROXY header written first on each new connection (the service's `send_proxy`).
    pub(crate) send_proxy: Option<ProxyVersion>,
    stats: Stats,
    health: Health,
    /// Idle connections, one pool per worker (indexed by [`crate::workers::current`]: 0 is the
    /// runtime of a node without workers). Each is locked only by its own worker (and by
    /// [`Backend::drain_pool`]), so the lock is never contended on the hot path.
    pools: Box<[Mutex<Vec<IdleConn>>]>,
}

#[derive(Debug, Default)]
struct Stats {
    hits: AtomicU64,
    active: AtomicU32,
    /// Shared with each open connection, which decrements it when dropped.
    open_connections: Arc<AtomicU64>,
    failures: AtomicU64,
    /// Exponentially weighted moving average of response-head latency, microseconds.
    avg_response_us: AtomicU64,
}

#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
    /// Set when passive detection took the back-end down: when it may be tried again.
    retry_at_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Active check streak: successes while down, failures while up.
    check_streak: AtomicU32,
}

#[derive(Debug)]
struct IdleConn {
    conn: Upstream,
    since: Instant,
}

impl Backend {
    /// A back-end with `pools` connection pools (one per worker number a thread may have,
    /// see [`crate::workers::current`]).
    pub(crate) fn new(
        config: BackendConfig,
        tls: Option<Arc<UpstreamTls>>,
        send_proxy: Option<ProxyVersion>,
        pools: usize,
    ) -> Self {
        let id = BackendId::from_name(&config.name);
        Self {
            config,
            id,
            tls,
            send_proxy,
            stats: Stats::default(),
            health: Health::default(),
            pools: (0..pools.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// The pool of the worker running now; `None` on a thread with no pool here (nothing is
    /// pooled there rather than handing a socket to another runtime).
    fn own_pool(&self) -> Option<&Mutex<Vec<IdleConn>>> {
        self.pools.get(crate::workers::current())
    }

    /// The scheduler's view of this back-end right now. One in maintenance is unavailable to
    /// everyone (its persistent clients move); a draining one is the service's business.
    pub(crate) fn candidate(&self, now: u64, active_checks: bool) -> Candidate {
        Candidate {
            id: self.id,
            weight: self.config.weight,
            available: self.config.state != BackendAdminState::Maintenance
                && self.is_available(now, active_checks),
            active: self.stats.active.load(Ordering::Relaxed),
        }
    }

    /// Up, or down by passive detection only and its retry time has come (half-open: the next
    /// request tries it, and one more failure takes it down again).
    pub(crate) fn is_available(&self, now: u64, active_checks: bool) -> bool {
        if !self.health.down.load(Ordering::Acquire) {
            return true;
        }
        !active_checks && now >= self.health.retry_at_ms.load(Ordering::Acquire)
    }

    pub(crate) fn is_down(&self) -> bool {
        self.health.down.load(Ordering::Acquire)
    }

    pub(crate) fn begin_request(&self) {
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        self.stats.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn end_request(&self) {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records the time to the response head of a successful exchange.
    pub(crate) fn record_success(&self, elapsed: Duration, active_checks: bool) {
        let sample = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let old = self.stats.avg_response_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * (1024 - EWMA_WEIGHT_1024) + sample * EWMA_WEIGHT_1024) / 1024
        };
        self.stats.avg_response_us.store(new, Ordering::Relaxed);
        self.health.consecutive_failures.store(0, Ordering::Relaxed);
        if !active_checks && self.health.down.swap(false, Ordering::AcqRel) {
            tracing::info!(backend = %self.config.name, "back-end answered again: up");
        }
    }

    /// Passive detection: a failed connect or exchange. Returns true if this took it down.
    pub(crate) fn record_failure(&self, passive: &PassiveHealth) -> bool {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let fails = self
            .health
            .consecutive_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if fails < passive.max_fails {
            return false;
        }
        let retry = now_ms().saturating_add(duration_ms(passive.fail_timeout));
        self.health.retry_at_ms.store(retry, Ordering::Release);
        let was_down = self.health.down.swap(true, Ordering::AcqRel);
        if !was_down {
            self.health.check_streak.store(0, Ordering::Relaxed);
            tracing::warn!(backend = %self.config.name, fails, "back-end marked down (passive)");
            self.drain_pool();
        }
        !was_down
    }

    /// Active health check result, with rise/fall thresholds.
    pub(crate) fn record_check(&self, ok: bool, rise: u32, fall: u32) {
        let down = self.is_down();
        if ok != down {
            self.health.check_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = self.health.check_streak.fetch_add(1, Ordering::AcqRel) + 1;
        if down && streak >= rise {
            self.health.down.store(false, Ordering::Release);
            self.health.consecutive_failures.store(0, Ordering::Relaxed);
            self.health.check_streak.store(0, Ordering::Relaxed);
            tracing::info!(backend = %self.config.name, "health check passed: up");
        } else if !down && streak >= fall {
            self.health.down.store(true, Ordering::Release);
            self.health.retry_at_ms.store(u64::MAX, Ordering::Release);
            self.health.check_streak.store(0, Ordering::Relaxed);
            tracing::warn!(backend = %self.config.name, "health check failed: down");
            self.drain_pool();
        }
    }

    /// A pooled connection if one is usable (checked for liveness now, not by a task per
    /// pooled connection; with `send_proxy`, one opened for `origin`), else a new one.
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        connect_timeout: Duration,
        keepalive: bool,
        origin: Outbound,
    ) -> Result<Upstream, UpstreamError> {
        if keepalive {
            if let Some(conn) = self.take_idle(origin) {
                return Ok(conn);
            }
        }
        self.connect(connect_timeout, origin).await
    }

    /// Opens a new connection (plain or TLS), with the PROXY header of `origin` first when the
    /// service sends one.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        connect_timeout: Duration,
        origin: Outbound,
    ) -> Result<Upstream, UpstreamError> {
        upstream::open(
            self.config.address,
            self.tls.as_deref(),
            connect_timeout,
            Arc::clone(&self.stats.open_connections),
            self.send_proxy.map(|v| (v, origin)),
        )
        .await
    }

    /// Returns a connection whose exchange completed to the pool.
    pub(crate) fn checkin(&self, conn: Upstream) {
        if self.is_down() {
            return;
        }
        let Some(pool) = self.own_pool() else {
            return;
        };
        if let Ok(mut idle) = pool.lock() {
            if idle.len() < MAX_IDLE_PER_BACKEND {
                idle.push(IdleConn {
                    conn,
                    since: Instant::now(),
                });
            }
        }
    }

    fn take_idle(&self, origin: Outbound) -> Option<Upstream> {
        let mut idle = self.own_pool()?.lock().ok()?;
        if self.send_proxy.is_none() {
            while let Some(mut c) = idle.pop() {
                if c.since.elapsed() < POOL_IDLE_TIMEOUT && c.conn.is_alive() {
                    return Some(c.conn);
                }
            }
            return None;
        }
        // Only a connection whose header names this client; stale ones met on the way go.
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].conn.proxied.as_deref() != Some(&origin) {
                if idle[i].since.elapsed() >= POOL_IDLE_TIMEOUT {
                    idle.swap_remove(i);
                }
                continue;
            }
            let mut c = idle.swap_remove(i);
            if c.since.elapsed() < POOL_IDLE_TIMEOUT && c.conn.is_alive() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Closes every pooled connection. This may run on the control plane's thread: dropping a
    /// tokio socket deregisters it from its own runtime's reactor, the one thing tokio allows
    /// from any thread; the connections are never used here.
    fn drain_pool(&self) {
        for pool in &self.pools {
            if let Ok(mut idle) = pool.lock() {
                idle.clear();
            }
        }
    }

    /// This back-end's row of the Web Server Status Table.
    pub(crate) fn status_row(&self, service: &str, session_groups: usize) -> WebServerStatus {
        WebServerStatus {
            service: service.to_owned(),
            name: self.config.name.clone(),
            address: self.config.address.to_string(),
            // In maintenance it takes no traffic at all: the table says so.
            state: if self.is_down() || self.config.state == BackendAdminState::Maintenance {
                BackendState::Down
            } else {
                BackendState::Up
            },
            weight: self.config.weight,
            avg_response_ms: self.stats.avg_response_us.load(Ordering::Relaxed) as f64 / 1000.0,
            hits: self.stats.hits.load(Ordering::Relaxed),
            open_connections: self.stats.open_connections.load(Ordering::Relaxed),
            active_requests: u64::from(self.stats.active.load(Ordering::Relaxed)),
            failures: self.stats.failures.load(Ordering::Relaxed),
            session_groups,
        }
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.config.address
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! The self-healing part of the array role: every node runs the cluster shell, and the node
//! the cluster elects runs the AF_PACKET scheduler with the replicated table.
//!
//! One tokio task per node ([`ClusterDriver`]) performs what the pure
//! [`crate::Supervisor`] decides from each cluster view and data-plane event:
//!
//! * `StartScheduler` → start the scheduler thread from the replica (`initial_table`),
//!   recording its assignments; `StopScheduler` → stop it (its thread restores the kernel);
//!   `UpdateNodes`, `Adopt`, `SetAcceptingNew` → commands to the running data plane;
//! * a data plane that cannot start, or whose thread exits by itself (the LAN interface went
//!   down), is logged with its whole cause chain, counted, shown in `/cluster`, and the
//!   supervisor's `Relinquish` makes the cluster core step down so another node serves;
//! * every `SYNC_EVERY` (20 ms) → the scheduler's assignments and idle releases to the cluster, and
//!   a check that its thread is still running;
//!   every `LIVE_EVERY` (100 ms) this node's live buckets (of the proxy's open client connections),
//!   its status and its Web Server Status Table (for the scheduler's summary);
//! * `Config(Committed)` → apply the text: services and back-ends with `Proxy::reload`, then
//!   what may change live of `[array]` (see `pushed_config`) to the cluster and the scheduler.
//!
//! The cluster shell itself runs on a thread of its own (`spawn_thread`), so client load on
//! the proxy's workers cannot delay heartbeats into a false failover.
//!
//! Must not: decide anything the cluster core decides (who is scheduler, which node failed),
//! nor touch frames; it only translates between the crates.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pentaflow_admin::{ControlError, ControlRequest};
use pentaflow_balance::{BucketSnapshot, NodeCandidate};
use pentaflow_cluster::{
    ClusterHandle, ClusterInfo, ClusterKey, ClusterView, ConfigEvent, ConfigSyncError, NodeParams,
    NodeStatus, Output, Reconfigure, ServerRow, ShellConfig, ShellError, Timing,
};
use pentaflow_config::{ArrayConfig, ClusterSettings};
use pentaflow_packet::{spawn_scheduler, Command, MacAddr, NodeEntry, NodeId, SchedulerHandle};
use pentaflow_proxy::Proxy;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::array_role::{log_counters, scheduler_config};
use crate::node_report::{avg_response_us, load_permille, LiveBuckets};
use crate::notify::Notifier;
use crate::pushed_config::{check_push, persist, pushed_source, validate};
use crate::{cause_chain, Action, Configured, DataPlane, Event, RoleError, Supervisor};

/// How often assignments are forwarded and live buckets reported: well under the cluster's
/// 150 ms merge deadline, so a takeover's merge sees connections opened a moment before.
const SYNC_EVERY: Duration = Duration::from_millis(20);
/// Live buckets are re-read from the proxy this often.
const LIVE_EVERY: Duration = Duration::from_millis(100);

/// Operator actions queued for the driver (from the admin API's blocking pool).
const CONTROL_QUEUE: usize = 16;

/// One operator action and where its answer goes.
pub type ControlCall = (
    ControlRequest,
    oneshot::Sender<Result<serde_json::Value, ControlError>>,
);

/// What the admin API reads of, and sends to, the cluster on this node.
#[derive(Clone)]
pub struct ClusterAccess {
    /// The data planes' view (role, table, alive nodes).
    pub view: watch::Receiver<ClusterView>,
    /// The operator's summary (members, status poll).
    pub info: watch::Receiver<ClusterInfo>,
    /// Operator actions.
    pub control: mpsc::Sender<ControlCall>,
    /// The `[array]` in force: the file's, then each committed one's (nodes may be added).
    pub array: watch::Receiver<Arc<ArrayConfig>>,
    /// This node's scheduler data plane: state, failures, the last cause.
    pub data_plane: watch::Receiver<DataPlaneReport>,
}

/// What `/cluster` shows of this node's scheduler data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataPlaneReport {
    /// `down`, `starting` or `up`.
    pub state: &'static str,
    /// Failures (could not start, or died running) since this process started.
    pub failures: u64,
    /// The last one: whether at start, its whole cause chain, and when.
    pub last_failure: Option<(bool, String, Instant)>,
    /// What the last start got (`xdp_native`, `xdp_generic`, `af_packet`) and why.
    pub kind: Option<(&'static str, String)>,
}

/// The running control plane of one node. [`ClusterDriver::stop`] stops the scheduler (if
/// this node holds it) and the shell.
pub struct ClusterDriver {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    access: ClusterAccess,
}

impl ClusterDriver {
    /// Binds the control socket on this node's LAN address and starts the task.
    pub async fn start(
        array: &ArrayConfig,
        settings: &ClusterSettings,
        node_id: u16,
        proxy: Proxy,
        config_path: Option<PathBuf>,
    ) -> Result<Self, RoleError> {
        let me = array.node(node_id).ok_or(RoleError::NotListed(node_id))?;
        let params = NodeParams {
            id: NodeId(node_id),
            priority: me.priority,
            weight: me.weight,
            incarnation: incarnation(),
            key: ClusterKey::new(settings.key.clone())
                .map_err(|e| RoleError::ClusterKey(e.to_string()))?,
            table_size: array.table_size,
            timing: timing(settings),
            preempt: settings.preempt,
            quorum: array.quorum(),
        };
        let bind = SocketAddr::from((me.address, settings.port));
        let peers = peers_of(array, settings, node_id);
        let shell = ShellConfig {
            params,
            bind,
            peers,
        };
        let running = array.clone();
        let dest = config_path.clone();
        let validator = Box::new(move |text: &str| {
            validate(&running, node_id, dest.as_deref(), text).map_err(|e| e.to_string())
        });
        let handle =
            tokio::task::spawn_blocking(move || pentaflow_cluster::spawn_thread(shell, validator))
                .await
                .map_err(RoleError::StartupTask)?
                .map_err(|source| RoleError::ClusterStart { bind, source })?;
        if !me.enabled {
            handle.set_enabled(false).await.map_err(RoleError::Shell)?;
        }
        tracing::info!(node = node_id, %bind, priority = me.priority, "cluster member started");
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (array_tx, array_rx) = watch::channel(Arc::new(array.clone()));
        let (plane_tx, plane_rx) = watch::channel(DataPlaneReport {
            state: "down",
            ..DataPlaneReport::default()
        });
        let access = ClusterAccess {
            view: handle.view.clone(),
            info: handle.info.clone(),
            control,
            array: array_rx,
            data_plane: plane_rx,
        };
        let (stop, stopped) = oneshot::channel();
        let driver = Driver {
            array: array.clone(),
            array_tx,
            config_path,
            notify: Notifier::start(settings.notify.clone(), node_id, array.vip.to_string()),
            node_id,
            proxy,
            scheduler: None,
            supervisor: Supervisor::default(),
            epoch: Instant::now(),
            plane_tx,
            live: LiveBuckets::new(array),
            last_proposal: None,
        };
        let task = tokio::spawn(driver.run(handle, stopped, control_rx));
        Ok(ClusterDriver {
            stop: Some(stop),
            task,
            access,
        })
    }

    /// What the admin API needs.
    pub fn access(&self) -> ClusterAccess {
        self.access.clone()
    }

    /// Stops the scheduler (restoring the kernel) and the shell.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "cluster task ended abnormally");
        }
    }
}

/// `incarnation` must grow with every start: the wall clock in ms does.
fn incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds, at least 1.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn timing(s: &ClusterSettings) -> Timing {
    Timing {
        interval_ms: ms(s.heartbeat),
        dead_after_ms: ms(s.dead_after),
        status_poll_ms: ms(s.status_poll),
        status_retries: s.status_retries,
        ..Timing::default()
    }
}

/// The control addresses of every node of `array` but `node_id`.
fn peers_of(array: &ArrayConfig, settings: &ClusterSettings, node_id: u16) -> Vec<SocketAddr> {
    array
        .nodes
        .iter()
        .filter(|n| n.id != node_id)
        .map(|n| SocketAddr::from((n.address, settings.port)))
        .collect()
}

/// The cluster parameters of node `node_id` in `array` (timers, priority, weight, peers).
fn reconfigure_of(
    array: &ArrayConfig,
    settings: &ClusterSettings,
    node_id: u16,
) -> Option<Reconfigure> {
    let me = array.node(node_id)?;
    let peers = peers_of(array, settings, node_id);
    Some(Reconfigure {
        priority: me.priority,
        weight: me.weight,
        timing: timing(settings),
        preempt: settings.preempt,
        peers,
        quorum: array.quorum(),
    })
}

struct Driver {
    array: ArrayConfig,
    /// Publishes `array` to the status pages.
    array_tx: watch::Sender<Arc<ArrayConfig>>,
    /// The file this node was started from: committed configurations are written over it.
    config_path: Option<PathBuf>,
    /// The operator's `[array] notify` script.
    notify: Notifier,
    node_id: u16,
    proxy: Proxy,
    scheduler: Option<SchedulerHandle>,
    /// Decides which data plane runs and what it is told (pure; this driver performs it).
    supervisor: Supervisor,
    /// The supervisor's clock (ms since the driver started).
    epoch: Instant,
    /// Publishes the data plane's state to `/cluster`.
    plane_tx: watch::Sender<DataPlaneReport>,
    live: LiveBuckets,
    /// The last proposal pushed through this node (what a bare `config commit` commits).
    last_proposal: Option<u64>,
}

impl Driver {
    async fn run(
        mut self,
        mut handle: ClusterHandle,
        mut stopped: oneshot::Receiver<()>,
        mut control: mpsc::Receiver<ControlCall>,
    ) {
        let mut sync = tokio::time::interval(SYNC_EVERY);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut live = tokio::time::interval(LIVE_EVERY);
        live.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut view = handle.view.clone();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                Some((request, reply)) = control.recv() => {
                    let answer = self.control(&handle, request).await;
                    let _ = reply.send(answer);
                }
                event = handle.events.recv() => match event {
                    Some(event) => {
                        let current = view.borrow().clone();
                        self.event(&handle, event, &current).await;
                    }
                    None => break,
                },
                changed = view.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // The view is the truth (the role in it decides the data plane); the
                    // events only say why it changed.
                    let v = view.borrow_and_update().clone();
                    self.supervise(&handle, Event::View(v)).await;
                }
                _ = sync.tick() => {
                    if self.scheduler.as_ref().is_some_and(SchedulerHandle::exited) {
                        self.died(&handle).await;
                    }
                    if let Some(s) = &self.scheduler {
                        let changes = s.take_changes();
                        if !changes.is_empty() && handle.assignments.send(changes).await.is_err() {
                            break;
                        }
                    }
                }
                _ = live.tick() => {
                    let (buckets, open) = self.live.of(&self.proxy.live_clients());
                    // This node's Web Server Status Table, for the scheduler's summary.
                    let servers: Vec<ServerRow> =
                        self.proxy.status().iter().map(ServerRow::from).collect();
                    let load = load_permille(open, self.proxy.connection_limit());
                    let status = NodeStatus {
                        open_connections: open,
                        hits: self.proxy.counters().requests,
                        avg_response_us: avg_response_us(&servers),
                        live_buckets: u32::try_from(buckets.len()).unwrap_or(u32::MAX),
                    };
                    if handle.set_live_buckets(buckets).await.is_err()
                        || handle.set_status(status, load).await.is_err()
                        || handle.set_server_status(servers).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
        if self.scheduler.is_some() {
            self.notify.event("standby", None);
        }
        self.step_down("stopping").await;
        self.publish_plane();
        handle.abort();
    }

    /// One operator action through the cluster.
    async fn control(
        &mut self,
        handle: &ClusterHandle,
        request: ControlRequest,
    ) -> Result<serde_json::Value, ControlError> {
        let refused = |e: ShellError| ControlError::new(409, e.to_string());
        match request {
            ControlRequest::PushConfig(text) => {
                let proposal = handle.push_config(text).await.map_err(refused)?;
                self.last_proposal = Some(proposal);
                tracing::info!(proposal, "configuration pushed to the array");
                Ok(serde_json::json!({ "proposal": proposal }))
            }
            ControlRequest::CommitConfig { proposal } => {
                let proposal = proposal.or(self.last_proposal).ok_or_else(|| {
                    ControlError::new(409, "nothing pushed through this node: name a proposal")
                })?;
                // Not acked by every alive node yet is a wait, not a refusal: 503, so the
                // caller tries again in a moment (the driver's loop must not wait here).
                let version = handle.commit_config(proposal).await.map_err(|e| match e {
                    ShellError::Config(ConfigSyncError::NotReady { .. }) => {
                        ControlError::new(503, e.to_string())
                    }
                    e => refused(e),
                })?;
                tracing::info!(proposal, version, "configuration committed");
                Ok(serde_json::json!({ "proposal": proposal, "version": version }))
            }
            ControlRequest::Drain | ControlRequest::Enable => {
                let enable = matches!(request, ControlRequest::Enable);
                handle.set_enabled(enable).await.map_err(refused)?;
                tracing::info!(
                    node = self.node_id,
                    enabled = enable,
                    "operator changed the node's state"
                );
                Ok(serde_json::json!({ "node": self.node_id, "enabled": enable }))
            }
            other => Err(ControlError::new(
                400,
                format!("unsupported action {other:?}"),
            )),
        }
    }

    async fn event(&mut self, handle: &ClusterHandle, event: Output, view: &ClusterView) {
        match event {
            // The view that follows these starts or stops the data plane (`supervise`).
            Output::BecomeScheduler { table_version } => tracing::info!(
                node = self.node_id,
                table_version,
                "elected scheduler: taking the VIP"
            ),
            Output::StepDown { scheduler } => {
                let by = scheduler.map(|n| n.0);
                tracing::info!(node = self.node_id, ?by, "stepping down");
            }
            Output::NodeFailed(n) => {
                tracing::warn!(node = n.0, "node failed");
                self.notify.event("node-failed", Some(n.0.to_string()));
            }
            Output::NodeJoined(n) => {
                tracing::info!(node = n.0, "node joined");
                self.notify.event("node-joined", Some(n.0.to_string()));
            }
            Output::AcceptingNew => tracing::info!("live-bucket merge done: assigning new buckets"),
            Output::Config(ConfigEvent::Committed { version, text }) => {
                self.apply_config(handle, view, version, &text).await;
            }
            Output::Config(other) => tracing::info!(event = ?other, "config"),
            other => tracing::debug!(event = ?other, "cluster event"),
        }
    }

    /// The supervisor's `now`.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Hands `event` to the supervisor and performs its actions, in order.
    async fn supervise(&mut self, handle: &ClusterHandle, event: Event) {
        let mut queue: VecDeque<Action> = self.supervisor.handle(event, self.now()).into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::StartScheduler {
                    table,
                    nodes,
                    accepting_new,
                } => {
                    let answer = self.start_scheduler(table, &nodes, accepting_new).await;
                    queue.extend(self.supervisor.handle(answer, self.now()));
                }
                Action::StopScheduler { why } => self.step_down(why).await,
                Action::UpdateNodes(nodes) => {
                    let entries = scheduler_nodes(&self.array, &nodes);
                    self.command(Command::Nodes(entries));
                }
                Action::Adopt(table) => self.command(Command::Adopt(table)),
                Action::SetAcceptingNew(accepting) => {
                    if accepting {
                        tracing::info!("live-bucket merge done: assigning new buckets");
                    }
                    self.command(Command::AcceptingNew(accepting));
                }
                Action::Relinquish { hold_ms } => {
                    tracing::warn!(
                        node = self.node_id,
                        hold_ms,
                        "no data plane: stepping down so another node can serve the VIP"
                    );
                    if handle.data_plane_failed(hold_ms).await.is_err() {
                        tracing::error!("cluster task gone: cannot step down");
                    }
                }
                Action::Notify(event) => self.notify.event(event, None),
            }
        }
        self.publish_plane();
    }

    fn command(&self, command: Command) {
        if let Some(s) = &self.scheduler {
            s.command(command);
        }
    }

    /// Starts the scheduler thread from the replica (blocking set-up off the workers).
    async fn start_scheduler(
        &mut self,
        table: Arc<BucketSnapshot>,
        nodes: &[NodeCandidate],
        accepting_new: bool,
    ) -> Event {
        let mut cfg = scheduler_config(&self.array, self.node_id);
        cfg.nodes = scheduler_nodes(&self.array, nodes);
        let assigned = table.assigned.len();
        cfg.initial_table = Some(table);
        cfg.record_changes = true;
        cfg.accepting_new = accepting_new;
        match tokio::task::spawn_blocking(move || spawn_scheduler(cfg)).await {
            Ok(Ok(handle)) => {
                let plane = handle.data_plane();
                tracing::info!(
                    node = self.node_id,
                    assigned,
                    data_plane = plane.kind.as_str(),
                    reason = %plane.reason,
                    "scheduler up (gratuitous ARP sent)"
                );
                let kind = Some((plane.kind.as_str(), plane.reason.clone()));
                self.plane_tx.send_modify(|r| r.kind = kind);
                self.scheduler = Some(handle);
                Event::Started
            }
            Ok(Err(e)) => {
                let cause = cause_chain(&e);
                tracing::error!(node = self.node_id, error = %cause, "cannot start the scheduler");
                Event::StartFailed { cause }
            }
            Err(e) => {
                let cause = format!("scheduler start-up task: {e}");
                tracing::error!(node = self.node_id, error = %cause, "cannot start the scheduler");
                Event::StartFailed { cause }
            }
        }
    }

    /// The scheduler's thread ended by itself: say why and let the supervisor hand the role
    /// on.
    async fn died(&mut self, handle: &ClusterHandle) {
        let Some(s) = self.scheduler.take() else {
            return;
        };
        let node = self.node_id;
        let cause = match tokio::task::spawn_blocking(move || s.stop()).await {
            Ok(Ok(counters)) => {
                log_counters(node, &counters);
                "the scheduler loop ended without an error".to_owned()
            }
            Ok(Err(e)) => cause_chain(&e),
            Err(e) => format!("scheduler stop task: {e}"),
        };
        tracing::error!(node, error = %cause, "the scheduler's data plane died (kernel restored)");
        self.supervise(handle, Event::Died { cause }).await;
    }

    /// Publishes the data plane's state for `/cluster`.
    fn publish_plane(&self) {
        let state = match self.supervisor.data_plane() {
            DataPlane::Down => "down",
            DataPlane::Starting => "starting",
            DataPlane::Up => "up",
        };
        let failures = self.supervisor.failures();
        self.plane_tx.send_if_modified(|r| {
            if r.state == state && r.failures == failures {
                return false;
            }
            r.state = state;
            if r.failures != failures {
                r.last_failure = self
                    .supervisor
                    .last_failure()
                    .map(|f| (f.at_start, f.cause.clone(), Instant::now()));
            }
            r.failures = failures;
            true
        });
    }

    async fn step_down(&mut self, why: &str) {
        let Some(handle) = self.scheduler.take() else {
            return;
        };
        let node = self.node_id;
        let stopped = tokio::task::spawn_blocking(move || handle.stop()).await;
        match stopped {
            Ok(Ok(counters)) => log_counters(node, &counters),
            Ok(Err(e)) => tracing::error!(error = %e, "scheduler stopped with an error"),
            Err(e) => tracing::error!(error = %e, "scheduler stop task"),
        }
        tracing::info!(node, why, "scheduler role left; kernel restored");
    }

    /// A committed configuration: the proxy's services and back-ends, then what may change
    /// live of `[array]` (node list, weights, priorities, timers, `bucket_idle`).
    async fn apply_config(
        &mut self,
        handle: &ClusterHandle,
        view: &ClusterView,
        version: u64,
        text: &str,
    ) {
        let label = format!("committed version {version}");
        let source = pushed_source(&label, self.config_path.as_deref());
        let config = match pentaflow_config::parse(text, source) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(version, "committed configuration refused here:\n{e}");
                return;
            }
        };
        if let Err(e) = self.proxy.reload(&config).await {
            tracing::error!(version, error = %e, "committed configuration not applied");
            return;
        }
        if let Some(path) = self.config_path.clone() {
            let text = text.to_owned();
            let shown = path.display().to_string();
            match tokio::task::spawn_blocking(move || persist(&path, &text)).await {
                Ok(Ok(())) => {
                    tracing::info!(version, file = %shown, "committed configuration written")
                }
                Ok(Err(e)) => tracing::warn!(version, file = %shown, error = %e,
                    "committed configuration not written: a restart or SIGHUP would bring back the old file"),
                Err(e) => tracing::warn!(version, error = %e, "config write task"),
            }
        }
        // Validated on every node before the commit; checked again so that a text committed
        // by a node of another build never half-applies here.
        if let Err(reason) = check_push(&self.array, config.array.as_ref(), self.node_id) {
            tracing::error!(version, %reason, "array part of the committed configuration not applied");
            return;
        }
        let (Some(array), Some(settings)) = (
            config.array.clone(),
            config.array.as_ref().and_then(|a| a.cluster.clone()),
        ) else {
            return;
        };
        let was_enabled = self.array.node(self.node_id).map(|n| n.enabled);
        let old_notify = self.array.cluster.as_ref().and_then(|c| c.notify.clone());
        self.array = array;
        if settings.notify != old_notify {
            self.notify = Notifier::start(
                settings.notify.clone(),
                self.node_id,
                self.array.vip.to_string(),
            );
        }
        self.array_tx.send_replace(Arc::new(self.array.clone()));
        if let Some(r) = reconfigure_of(&self.array, &settings, self.node_id) {
            if handle.reconfigure(r).await.is_err() {
                tracing::error!(version, "cluster task gone: array part not applied");
                return;
            }
        }
        let enabled = self.array.node(self.node_id).map(|n| n.enabled);
        if enabled != was_enabled {
            // Only an edit of this node's `enabled` applies; a drain by the operator stays.
            if let Some(e) = enabled {
                let _ = handle.set_enabled(e).await;
            }
        }
        self.command(Command::Nodes(scheduler_nodes(&self.array, &view.nodes)));
        self.command(Command::BucketIdle(ms(self.array.bucket_idle)));
        tracing::info!(
            version,
            nodes = self.array.nodes.len(),
            "committed configuration applied (services, back-ends and [array])"
        );
        self.notify
            .event("config-committed", Some(version.to_string()));
    }
}

/// The scheduler's node table from the configured nodes and the cluster's candidates.
pub fn scheduler_nodes(array: &ArrayConfig, alive: &[NodeCandidate]) -> Vec<NodeEntry> {
    let configured: Vec<Configured> = array
        .nodes
        .iter()
        .map(|n| Configured {
            id: NodeId(n.id),
            mac: MacAddr(n.mac),
            weight: n.weight,
            enabled: n.enabled,
        })
        .collect();
    crate::node_entries(&configured, alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::two_node_array as array;

    #[test]
    fn node_entries_follow_the_cluster() {
        let a = array();
        let alive = [NodeCandidate {
            id: NodeId(2),
            weight: 5,
            enabled: false,
            alive: true,
        }];
        let entries = scheduler_nodes(&a, &alive);
        assert_eq!(entries.len(), a.nodes.len());
        assert!(!entries[0].alive, "node 1 is not listed: failed");
        assert!(entries[1].alive && !entries[1].enabled && entries[1].weight == 5);
    }
}

//! The I/O shell: a tokio task driving one [`Node`] over a UDP socket.
//!
//! Owns: the socket, the clock (a monotonic `Instant` at spawn is ms 0), the map from node id
//! to the address its authenticated datagrams come from, and the channels the binary wires:
//!
//! * `view`: a `watch` of [`ClusterView`] — role, scheduler, whether new buckets may be
//!   assigned, the table as an `Arc<BucketSnapshot>` and its version, the alive nodes — for
//!   the data planes (they swap it in atomically; they never call the control plane);
//! * `assignments`: an `mpsc` on which the scheduler's data plane reports every bucket it
//!   assigned or released (`(bucket, Some(node) | None)`), broadcast as deltas at once;
//! * `events`: every non-datagram [`Output`] (become scheduler → take the VIP and send
//!   gratuitous ARP; step down → release it; config committed → apply it; node failed/joined);
//! * commands: live buckets, status, the Web Server Status Table, drain, config push/commit.
//!
//! "Broadcast" is a send to every address of the peer list (which may hold a LAN broadcast
//! address); a message to one node goes to its learned address, or to every peer until known.
//!
//! Must not: decide anything — all logic is in the pure core.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pentaflow_balance::{BucketError, BucketSnapshot, NodeCandidate, NodeId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::config_sync::{ConfigSyncError, Validator};
use crate::info::ClusterInfo;
use crate::node::{Node, NodeParams, Output};
use crate::replication::Change;
use crate::wire::{Destination, NodeStatus, Role, ServerRow, MAX_DATAGRAM};

/// Assignment reports the data plane may queue before it must wait: one per new flow on the
/// scheduler, drained every loop turn.
const ASSIGNMENT_QUEUE: usize = 4096;

/// A changed table is republished at most this often (ms): rebuilding a 65,536-bucket
/// snapshot per assignment would cost the scheduler more than routing; role changes are
/// published at once. Standbys only need the table at takeover, so 20 ms of lag is harmless.
const TABLE_PUBLISH_MS: u64 = 20;

/// The operator's summary ([`ClusterInfo`]) is republished this often (ms): status pages
/// are read by people and scrapers, and every heartbeat would be far more than they need.
const INFO_PUBLISH_MS: u64 = 250;

/// Receive buffer asked for the control socket. A full table snapshot is a burst of ~100
/// datagrams (65,536 buckets); with the default ~200 KiB buffer the kernel drops its tail,
/// and since every retry is the same burst, a replica could stay behind for seconds. The
/// kernel caps the request at `net.core.rmem_max`.
const RECV_BUFFER_BYTES: usize = 4 << 20;

/// Events buffered for the binary; beyond this they are dropped with a warning (the view
/// channel still carries the state).
const EVENT_QUEUE: usize = 1024;

/// Where the shell listens and whom it talks to.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// The core's parameters.
    pub params: NodeParams,
    /// Local address of the control socket.
    pub bind: SocketAddr,
    /// Addresses every broadcast goes to (the other nodes, or a broadcast address).
    pub peers: Vec<SocketAddr>,
}

/// What a committed configuration may change of a running node's control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconfigure {
    /// Election priority.
    pub priority: u8,
    /// Weight for new buckets.
    pub weight: u32,
    /// Timers.
    pub timing: crate::node::Timing,
    /// Preemption.
    pub preempt: bool,
    /// The new peer list (every other node's control address).
    pub peers: Vec<SocketAddr>,
    /// Nodes to hear before taking or keeping the scheduler role ([`NodeParams::quorum`]).
    ///
    /// [`NodeParams::quorum`]: crate::NodeParams::quorum
    pub quorum: u16,
}

/// What the data planes and the admin API see of the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's role.
    pub role: Role,
    /// The scheduler as this node sees it.
    pub scheduler: Option<NodeId>,
    /// Scheduler only: the live-bucket merge is over, unassigned buckets may be assigned.
    pub accepting_new: bool,
    /// The bucket table.
    pub table: Arc<BucketSnapshot>,
    /// Its version (same as `table.version`).
    pub version: u64,
    /// This node and the alive members, as bucket candidates.
    pub nodes: Arc<[NodeCandidate]>,
    /// Active config version.
    pub config_version: u64,
    /// The membership epoch the view was taken under (bumped by every join and failure).
    pub epoch: u64,
}

/// Why the shell failed or refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// The control socket could not be bound.
    #[error("cannot bind the cluster socket on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The table size is invalid.
    #[error("invalid bucket table")]
    Table(#[source] BucketError),
    /// The task is gone.
    #[error("the cluster task has stopped")]
    Stopped,
    /// The dedicated thread or its runtime could not be started.
    #[error("cannot start the cluster thread")]
    Thread(#[source] io::Error),
    /// A config push or commit was refused.
    #[error(transparent)]
    Config(#[from] ConfigSyncError),
}

/// Commands from the binary to the task.
enum Command {
    LiveBuckets(Vec<u32>),
    Status(NodeStatus, u16),
    ServerStatus(Vec<ServerRow>),
    Enabled(bool),
    DataPlaneFailed(u64),
    Reconfigure(Reconfigure),
    Push(String, oneshot::Sender<Result<u64, ConfigSyncError>>),
    Commit(u64, oneshot::Sender<Result<u64, ConfigSyncError>>),
}

/// The binary's handle on a running cluster task. Dropping it stops the task.
#[derive(Debug)]
pub struct ClusterHandle {
    /// The current view, for the data planes.
    pub view: watch::Receiver<ClusterView>,
    /// Where the scheduler's data plane reports its assignments.
    pub assignments: mpsc::Sender<Vec<Change>>,
    /// Events for the binary (everything but datagrams).
    pub events: mpsc::Receiver<Output>,
    /// The operator's summary (members, status poll, drops), at most `INFO_PUBLISH_MS` (250 ms) old.
    pub info: watch::Receiver<ClusterInfo>,
    commands: mpsc::Sender<Command>,
    task: AbortHandle,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Bind `cfg.bind` and start the task.
pub async fn spawn(cfg: ShellConfig, validator: Validator) -> Result<ClusterHandle, ShellError> {
    let socket = UdpSocket::bind(cfg.bind)
        .await
        .map_err(|source| ShellError::Bind {
            addr: cfg.bind,
            source,
        })?;
    spawn_on(socket, cfg.params, cfg.peers, validator)
}

/// Start the task on an already bound socket (tests bind port 0 first to learn the ports).
pub fn spawn_on(
    socket: UdpSocket,
    params: NodeParams,
    peers: Vec<SocketAddr>,
    validator: Validator,
) -> Result<ClusterHandle, ShellError> {
    start_task(socket, params, peers, validator).map(|(handle, _)| handle)
}

/// [`spawn`] on a thread of its own ("pf-cluster") with a single-threaded runtime, returning
/// once the socket is bound. Failure detection is a matter of a few heartbeats: sharing the
/// data plane's workers would let a burst of client load delay them and get a healthy node
/// declared failed; on its own thread the control plane keeps its timing (as keepalived does
/// by being a process of its own). The thread ends with the task (dropping the handle, or
/// [`ClusterHandle::abort`]). Blocks: call it from a blocking context.
pub fn spawn_thread(cfg: ShellConfig, validator: Validator) -> Result<ClusterHandle, ShellError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("pf-cluster".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let rt = match rt {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(ShellError::Thread(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let bound = UdpSocket::bind(cfg.bind)
                    .await
                    .map_err(|source| ShellError::Bind {
                        addr: cfg.bind,
                        source,
                    });
                let started = bound.and_then(|s| start_task(s, cfg.params, cfg.peers, validator));
                match started {
                    Ok((handle, task)) => {
                        let _ = tx.send(Ok(handle));
                        // Aborted or finished: either way the runtime and thread end here.
                        let _ = task.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(ShellError::Thread)?;
    rx.recv().map_err(|_| ShellError::Stopped)?
}

fn start_task(
    socket: UdpSocket,
    params: NodeParams,
    peers: Vec<SocketAddr>,
    validator: Validator,
) -> Result<(ClusterHandle, JoinHandle<()>), ShellError> {
    let start = Instant::now();
    if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(RECV_BUFFER_BYTES) {
        // Not fatal: snapshots still complete, only more slowly under loss.
        tracing::warn!(error = %e, "cannot enlarge the cluster socket's receive buffer");
    }
    let mut node = Node::new(params, validator, 0).map_err(ShellError::Table)?;
    let own = socket.local_addr().ok();
    let peers: Vec<SocketAddr> = peers.into_iter().filter(|p| Some(*p) != own).collect();
    let (view_tx, view) = watch::channel(view_of(&mut node));
    let (info_tx, info) = watch::channel(ClusterInfo::of(&node, 0));
    let (assignments, assign_rx) = mpsc::channel(ASSIGNMENT_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (commands, command_rx) = mpsc::channel(16);
    let task = tokio::spawn(run(Task {
        node,
        socket,
        peers,
        addrs: HashMap::new(),
        start,
        view: view_tx,
        events: events_tx,
        assign_rx,
        command_rx,
        table_published: 0,
        info: info_tx,
        info_published: 0,
    }));
    let handle = ClusterHandle {
        view,
        assignments,
        events,
        info,
        commands,
        task: task.abort_handle(),
    };
    Ok((handle, task))
}

impl ClusterHandle {
    async fn send(&self, c: Command) -> Result<(), ShellError> {
        self.commands.send(c).await.map_err(|_| ShellError::Stopped)
    }

    /// Report the buckets of this node's live client connections.
    pub async fn set_live_buckets(&self, buckets: Vec<u32>) -> Result<(), ShellError> {
        self.send(Command::LiveBuckets(buckets)).await
    }

    /// Report this node's status for the scheduler's polls, and its load (per mille).
    pub async fn set_status(&self, status: NodeStatus, load: u16) -> Result<(), ShellError> {
        self.send(Command::Status(status, load)).await
    }

    /// Report this node's Web Server Status Table (the proxy's rows), sent to the scheduler
    /// with each poll's answer for the Summary Web Server Status Table.
    pub async fn set_server_status(&self, rows: Vec<ServerRow>) -> Result<(), ShellError> {
        self.send(Command::ServerStatus(rows)).await
    }

    /// Drain (false) or re-enable (true) this node.
    pub async fn set_enabled(&self, enabled: bool) -> Result<(), ShellError> {
        self.send(Command::Enabled(enabled)).await
    }

    /// This node's data plane failed: step down (or do not stand) for `hold_ms` (see
    /// [`Node::data_plane_failed`]).
    pub async fn data_plane_failed(&self, hold_ms: u64) -> Result<(), ShellError> {
        self.send(Command::DataPlaneFailed(hold_ms)).await
    }

    /// Apply a committed configuration's cluster parameters of this node (see
    /// [`Node::reconfigure`]) and its new peer list.
    pub async fn reconfigure(&self, r: Reconfigure) -> Result<(), ShellError> {
        self.send(Command::Reconfigure(r)).await
    }

    /// Phase one: push a config to every alive node; returns the proposal id. Watch `events`
    /// for `Config(Ready | Rejected | TimedOut)`.
    pub async fn push_config(&self, text: String) -> Result<u64, ShellError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Push(text, tx)).await?;
        Ok(rx.await.map_err(|_| ShellError::Stopped)??)
    }

    /// Phase two: commit a proposal every alive node acked; returns the new version.
    pub async fn commit_config(&self, proposal: u64) -> Result<u64, ShellError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Commit(proposal, tx)).await?;
        Ok(rx.await.map_err(|_| ShellError::Stopped)??)
    }

    /// Stop the task now (as a crash would: no goodbye is sent).
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Task {
    node: Node,
    socket: UdpSocket,
    peers: Vec<SocketAddr>,
    addrs: HashMap<NodeId, SocketAddr>,
    start: Instant,
    view: watch::Sender<ClusterView>,
    events: mpsc::Sender<Output>,
    assign_rx: mpsc::Receiver<Vec<Change>>,
    command_rx: mpsc::Receiver<Command>,
    /// When the table was last published (ms).
    table_published: u64,
    info: watch::Sender<ClusterInfo>,
    /// When the info was last published (ms).
    info_published: u64,
}

fn view_of(node: &mut Node) -> ClusterView {
    ClusterView::of(node)
}

impl ClusterView {
    /// The view of `node` as it is now (what the shell publishes after every turn; the
    /// simulation builds it the same way).
    pub fn of(node: &mut Node) -> Self {
        let table = node.snapshot();
        ClusterView {
            role: node.role(),
            scheduler: node.scheduler(),
            accepting_new: node.accepting_new(),
            version: table.version,
            table,
            nodes: node.candidates().into(),
            config_version: node.config_version(),
            epoch: node.membership_epoch(),
        }
    }
}

impl Task {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

async fn run(mut t: Task) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let wake = t.start + Duration::from_millis(t.node.poll_timeout());
        tokio::select! {
            r = t.socket.recv_from(&mut buf) => match r {
                Ok((n, addr)) => {
                    let now = t.now();
                    if let Some(from) = t.node.handle_datagram(&buf[..n], now) {
                        t.addrs.insert(from, addr);
                    }
                }
                // Linux reports ICMP port unreachable of an earlier send here; not fatal.
                Err(e) => tracing::debug!(error = %e, "cluster socket receive error"),
            },
            () = tokio::time::sleep_until(wake) => {
                let now = t.now();
                t.node.handle_timeout(now);
            }
            Some(changes) = t.assign_rx.recv() => {
                let now = t.now();
                t.node.report_assignments(&changes, now);
            }
            c = t.command_rx.recv() => {
                let Some(c) = c else { return };
                command(&mut t, c);
            }
        }
        drain(&mut t).await;
    }
}

fn command(t: &mut Task, c: Command) {
    let now = t.now();
    match c {
        Command::LiveBuckets(b) => t.node.set_live_buckets(b),
        Command::Status(s, load) => t.node.set_status(s, load),
        Command::ServerStatus(rows) => t.node.set_server_status(rows),
        Command::Enabled(e) => t.node.set_enabled(e, now),
        Command::DataPlaneFailed(hold_ms) => t.node.data_plane_failed(hold_ms, now),
        Command::Reconfigure(r) => {
            let own = t.socket.local_addr().ok();
            t.peers = r.peers.into_iter().filter(|p| Some(*p) != own).collect();
            // An address learned from a node that left the list is forgotten with it.
            t.addrs.retain(|_, a| t.peers.contains(a));
            t.node
                .reconfigure(r.priority, r.weight, r.timing, r.preempt, now);
            t.node.set_quorum(r.quorum, now);
        }
        Command::Push(text, reply) => {
            let _ = reply.send(t.node.push_config(&text, now));
        }
        Command::Commit(p, reply) => {
            let _ = reply.send(t.node.commit_config(p, now));
        }
    }
}

async fn drain(t: &mut Task) {
    while let Some(out) = t.node.poll_output() {
        match out {
            Output::Send { to, datagram } => {
                let known = match to {
                    Destination::Node(n) => t.addrs.get(&n).copied(),
                    Destination::Broadcast => None,
                };
                let targets = known.map_or_else(|| t.peers.clone(), |a| vec![a]);
                for addr in targets {
                    if let Err(e) = t.socket.send_to(&datagram, addr).await {
                        tracing::debug!(error = %e, %addr, "cluster send failed");
                    }
                }
            }
            // The view carries the table; an event per assignment would flood the queue.
            Output::TableChanged { .. } => {}
            other => {
                if t.events.try_send(other).is_err() {
                    tracing::warn!("cluster event queue full; event dropped");
                }
            }
        }
    }
    let now = t.now();
    let table_due = now.saturating_sub(t.table_published) >= TABLE_PUBLISH_MS;
    let node = &mut t.node;
    let nodes = node.candidates();
    let mut table_sent = false;
    t.view.send_if_modified(|v| {
        let state_changed = v.role != node.role()
            || v.scheduler != node.scheduler()
            || v.accepting_new != node.accepting_new()
            || v.config_version != node.config_version()
            || *v.nodes != *nodes;
        let table_changed = v.version != node.table_version();
        let publish = state_changed || (table_changed && table_due);
        if !publish {
            return false;
        }
        if table_changed {
            table_sent = true;
        }
        *v = view_of(node);
        true
    });
    if table_sent {
        t.table_published = now;
    }
    if now.saturating_sub(t.info_published) >= INFO_PUBLISH_MS {
        t.info.send_replace(ClusterInfo::of(&t.node, now));
        t.info_published = now;
    }
}

//! The scheduler shell: a dedicated blocking thread that owns the data plane.
//!
//! Owns: kernel set-up in the right order, opening [`AfPacketIo`], announcing the VIP by
//! gratuitous ARP, the receive → decide → send loop ([`run_loop`], generic over [`FrameIo`]),
//! publishing counters, node-table updates from other threads, and restoring the kernel on
//! the way out. Must not: block on anything but the packet socket's poll, or decide about a
//! frame itself.
//!
//! Why a thread and not async: the loop is one syscall-bound hot path that must not share a
//! runtime's workers with the L7 proxy; a thread with a short poll timeout gives bounded
//! shutdown latency and keeps the namespace of its creator (which the lab tests rely on).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pentaflow_balance::{BucketError, BucketSnapshot, BucketTable, NodeId};

use crate::frame::{self, L4Proto, Verdict};
use crate::io::{AfPacketIo, FrameIo, Output, PacketBuf};
use crate::scheduler::{Change, CoreParams, Counters, NodeEntry, SchedulerCore};
use crate::setup::{self, KernelGuard, SetupError};
use crate::sys;

/// The TAP device used for local delivery unless configured otherwise.
pub const DEFAULT_TAP: &str = "pftap0";
/// The seed's typical table size: 65,536 buckets.
pub const DEFAULT_TABLE_SIZE: usize = 1 << 16;
/// Buckets idle this long may move to another node: long past any TCP keep-alive.
pub const DEFAULT_IDLE_MS: u64 = 300_000;
/// Frames drained per poll: enough to amortise the poll, small enough to stay in cache.
pub const DEFAULT_BATCH: usize = 64;
/// Longest wait for a frame before checking for shutdown and node updates.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often counters are copied out for readers.
const PUBLISH_EVERY_MS: u64 = 50;
/// How often idle buckets are released.
const TICK_EVERY_MS: u64 = 1_000;
/// Gratuitous ARPs sent when taking the role (more than one in case the first is lost).
const GRATUITOUS_ARP_COUNT: usize = 3;
/// Default period of the repeated gratuitous ARP: a router or node that cached another
/// scheduler's MAC (split brain, a lost announcement, a dead scheduler whose kernel still
/// answers ARP) is corrected within a second.
pub const DEFAULT_ANNOUNCE_EVERY_MS: u64 = 1_000;
/// Right after taking the role the announcement repeats this often (ms) for
/// [`FAST_ANNOUNCE_FOR_MS`]: Linux ignores an ARP update for an entry changed less than
/// `locktime` (1 s by default) ago, so a router that learned the old scheduler's MAC just
/// before the takeover only accepts ours a moment later — announcing every 100 ms bounds the
/// extra outage to ~100 ms past that lock instead of a whole period.
const FAST_ANNOUNCE_EVERY_MS: u64 = 100;
/// How long the fast announcements last: past the default 1 s `locktime`, with a margin.
const FAST_ANNOUNCE_FOR_MS: u64 = 2_000;
/// Assignments kept for the control plane before the oldest are dropped: one per new flow,
/// drained every few ms; the control plane's periodic version check repairs any loss.
const MAX_PENDING_CHANGES: usize = 1 << 18;

/// Everything the scheduler thread needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The LAN interface carrying VIP traffic (e.g. `eth0`).
    pub lan: String,
    /// The VIP (IPv4 only in this data plane).
    pub vip: Ipv4Addr,
    /// The (protocol, port) pairs served on the VIP.
    pub services: Vec<(L4Proto, u16)>,
    /// This node's id.
    pub self_id: NodeId,
    /// The nodes, this one included (its MAC is not used: it is served through the TAP).
    pub nodes: Vec<NodeEntry>,
    /// Buckets in the table (a power of two).
    pub table_size: usize,
    /// Idle time after which a bucket may move.
    pub idle_ms: u64,
    /// Name of the TAP device for local delivery (≤ 15 bytes).
    pub tap: String,
    /// Frames drained per poll.
    pub batch: usize,
    /// Start from this replica of the table (a takeover) instead of an empty one; every
    /// assigned bucket counts as in use from the start (seed 002).
    pub initial_table: Option<Arc<BucketSnapshot>>,
    /// Keep every assignment for [`SchedulerHandle::take_changes`] (the cluster replicates
    /// them); off for a static scheduler, where nobody would drain them.
    pub record_changes: bool,
    /// Repeat the gratuitous ARP this often (ms); 0 = only at start.
    pub announce_every_ms: u64,
}

/// Why the scheduler stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Kernel set-up failed (privileges, missing tools, ...).
    #[error("scheduler set-up")]
    Setup(#[from] SetupError),
    /// The bucket table size is invalid.
    #[error("bucket table")]
    Table(#[from] BucketError),
    /// A system call of the data plane failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The scheduler thread could not be started or panicked.
    #[error("scheduler thread: {what}")]
    Thread {
        /// What happened.
        what: &'static str,
    },
}

/// Shared between the loop and its handle.
#[derive(Debug, Default)]
pub struct LoopControl {
    stop: AtomicBool,
    counters: Mutex<Counters>,
    /// Set while new assignments are held (takeover merge).
    hold_new: AtomicBool,
    /// Assignments waiting for the control plane.
    changes: Mutex<Vec<Change>>,
    /// A newer replica to adopt at the next turn.
    adopt: Mutex<Option<Arc<BucketSnapshot>>>,
    /// Gratuitous ARP period (ms); 0 = never repeated.
    announce_every_ms: AtomicU64,
    /// Bucket idle time (ms) set while running; 0 = the loop's starting value.
    bucket_idle_ms: AtomicU64,
}

/// A running scheduler thread. Dropping it stops the thread and restores the kernel.
#[derive(Debug)]
pub struct SchedulerHandle {
    control: Arc<LoopControl>,
    nodes: mpsc::Sender<Vec<NodeEntry>>,
    thread: Option<JoinHandle<Result<Counters, RunError>>>,
}

impl SchedulerConfig {
    /// A configuration with the defaults for everything but addressing.
    pub fn new(lan: &str, vip: Ipv4Addr, self_id: NodeId, nodes: Vec<NodeEntry>) -> Self {
        SchedulerConfig {
            lan: lan.to_owned(),
            vip,
            services: vec![(L4Proto::Tcp, 80), (L4Proto::Tcp, 443)],
            self_id,
            nodes,
            table_size: DEFAULT_TABLE_SIZE,
            idle_ms: DEFAULT_IDLE_MS,
            tap: DEFAULT_TAP.to_owned(),
            batch: DEFAULT_BATCH,
            initial_table: None,
            record_changes: false,
            announce_every_ms: DEFAULT_ANNOUNCE_EVERY_MS,
        }
    }
}

impl LoopControl {
    /// Asks the loop to stop at its next poll.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The counters as last published.
    pub fn counters(&self) -> Counters {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Hold (false) or allow (true) new bucket assignments.
    pub fn set_accepting_new(&self, accepting: bool) {
        self.hold_new.store(!accepting, Ordering::Relaxed);
    }

    /// Hands the loop a newer replica to adopt (unassigned buckets only).
    pub fn adopt_table(&self, table: Arc<BucketSnapshot>) {
        *self.adopt.lock().unwrap_or_else(PoisonError::into_inner) = Some(table);
    }

    /// The assignments made since the last call.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Repeat the gratuitous ARP every `ms` (0 = never).
    pub fn set_announce_every(&self, ms: u64) {
        self.announce_every_ms.store(ms, Ordering::Relaxed);
    }

    /// Release buckets idle this long from now on (a committed configuration changed
    /// `bucket_idle`); 0 is ignored.
    pub fn set_bucket_idle(&self, ms: u64) {
        self.bucket_idle_ms.store(ms, Ordering::Relaxed);
    }

    fn push_changes(&self, mut new: Vec<Change>) {
        let mut pending = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        pending.append(&mut new);
        if pending.len() > MAX_PENDING_CHANGES {
            let excess = pending.len() - MAX_PENDING_CHANGES;
            pending.drain(..excess);
        }
    }

    fn publish(&self, c: &Counters) {
        c.clone_into(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl SchedulerHandle {
    /// The counters as last published (at most ~50 ms old).
    pub fn counters(&self) -> Counters {
        self.control.counters()
    }

    /// Replaces the node table (membership changed, weights edited, ...).
    pub fn update_nodes(&self, nodes: Vec<NodeEntry>) {
        let _ = self.nodes.send(nodes);
    }

    /// Hold (false) or allow (true) new bucket assignments (the cluster's `accepting_new`).
    pub fn set_accepting_new(&self, accepting: bool) {
        self.control.set_accepting_new(accepting);
    }

    /// Adopt a newer replica of the table: its buckets unassigned here are taken.
    pub fn adopt_table(&self, table: Arc<BucketSnapshot>) {
        self.control.adopt_table(table);
    }

    /// The assignments routed since the last call (needs `record_changes`).
    pub fn take_changes(&self) -> Vec<Change> {
        self.control.take_changes()
    }

    /// A new bucket idle time (ms) for the running loop.
    pub fn set_bucket_idle(&self, ms: u64) {
        self.control.set_bucket_idle(ms);
    }

    /// Stops the loop, restores the kernel and returns the final counters.
    pub fn stop(mut self) -> Result<Counters, RunError> {
        self.join()
    }

    fn join(&mut self) -> Result<Counters, RunError> {
        self.control.request_stop();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| RunError::Thread { what: "panicked" })?,
            None => Ok(self.control.counters()),
        }
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Starts the scheduler on a new thread in the **calling thread's network namespace** and
/// returns once the data plane is up (or failed to come up).
///
/// Order: privileges → VIP on lo, ARP answered (sysctls) → packet socket and TAP →
/// TAP sysctls → nftables ingress drop → gratuitous ARP → loop. On stop (or error) every
/// kernel change is undone by the thread itself, in its namespace.
pub fn spawn_scheduler(cfg: SchedulerConfig) -> Result<SchedulerHandle, RunError> {
    setup::check_privileges()?;
    let control = Arc::new(LoopControl::default());
    control.set_announce_every(cfg.announce_every_ms);
    let (nodes_tx, nodes_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), RunError>>();
    let ctl = Arc::clone(&control);
    let thread = std::thread::Builder::new()
        .name("pf-scheduler".into())
        .spawn(move || {
            let started = start(&cfg);
            let (mut io, mut core, guard) = match started {
                Ok(parts) => {
                    let _ = ready_tx.send(Ok(()));
                    parts
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Err(RunError::Thread {
                        what: "set-up failed",
                    });
                }
            };
            let result = run_loop(&mut io, &mut core, &ctl, &nodes_rx, cfg.idle_ms, cfg.batch);
            drop(io);
            for e in guard.restore() {
                tracing::warn!(error = %e, "restoring the kernel after the scheduler");
            }
            result.map_err(|source| RunError::Io {
                what: "scheduler loop",
                source,
            })?;
            Ok(ctl.counters())
        })
        .map_err(|_| RunError::Thread {
            what: "could not spawn",
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(SchedulerHandle {
            control,
            nodes: nodes_tx,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(RunError::Thread {
                what: "exited during set-up",
            })
        }
    }
}

/// Set-up, in the scheduler thread.
fn start(cfg: &SchedulerConfig) -> Result<(AfPacketIo, SchedulerCore, KernelGuard), RunError> {
    // A replica of another size cannot be adopted; start empty rather than refuse the role.
    let table = match &cfg.initial_table {
        Some(s) if s.size == cfg.table_size => BucketTable::from_snapshot(s, 0)?,
        _ => BucketTable::new(cfg.table_size)?,
    };
    let mut guard = setup::prepare_scheduler(&cfg.lan, cfg.vip)?;
    let mut io = AfPacketIo::open(&cfg.lan, cfg.vip, &cfg.tap).map_err(|source| RunError::Io {
        what: "opening the packet socket and TAP",
        source,
    })?;
    guard.absorb(setup::prepare_tap(&cfg.tap)?);
    let mac = |name: &str| {
        sys::interface_mac(name).map_err(|source| SetupError::Interface {
            what: "reading the MAC address",
            interface: name.to_owned(),
            source,
        })
    };
    let params = CoreParams {
        vip: IpAddr::V4(cfg.vip),
        services: cfg.services.clone(),
        self_id: cfg.self_id,
        lan_mac: mac(&cfg.lan)?,
        local_mac: mac(&cfg.tap)?,
    };
    guard.drop_vip_ingress(&cfg.lan, cfg.vip)?;
    let arp = frame::gratuitous_arp(params.lan_mac, cfg.vip);
    for _ in 0..GRATUITOUS_ARP_COUNT {
        io.announce(&arp).map_err(|source| RunError::Io {
            what: "sending gratuitous ARP",
            source,
        })?;
    }
    tracing::info!(lan = %cfg.lan, vip = %cfg.vip, mac = %params.lan_mac, "scheduler up");
    let mut core = SchedulerCore::new(params, cfg.nodes.clone(), table);
    if cfg.record_changes {
        core.record_changes();
    }
    Ok((io, core, guard))
}

/// The data-plane loop over any [`FrameIo`], until `control` asks it to stop. Send failures
/// (e.g. a full device queue) are counted in [`Counters::send_errors`], not fatal; a receive
/// failure ends the loop.
pub fn run_loop(
    io: &mut impl FrameIo,
    core: &mut SchedulerCore,
    control: &LoopControl,
    nodes: &mpsc::Receiver<Vec<NodeEntry>>,
    idle_ms: u64,
    batch: usize,
) -> io::Result<()> {
    let epoch = Instant::now();
    let mut bufs: Vec<PacketBuf> = (0..batch.max(1)).map(|_| PacketBuf::new()).collect();
    let (mut last_publish, mut last_tick) = (0u64, 0u64);
    let mut send_errors = 0u64;
    let mut dirty = false;
    let mut last_announce = 0u64;
    let arp = match core.params().vip {
        IpAddr::V4(vip) => Some(frame::gratuitous_arp(core.params().lan_mac, vip)),
        IpAddr::V6(_) => None,
    };
    while !control.stop.load(Ordering::Relaxed) {
        while let Ok(n) = nodes.try_recv() {
            core.set_nodes(n);
        }
        core.set_accepting_new(!control.hold_new.load(Ordering::Relaxed));
        let adopt = control
            .adopt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(table) = adopt {
            let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            core.adopt(&table, now_ms);
        }
        let n = io.recv_batch(&mut bufs, POLL_INTERVAL)?;
        let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut lan: Vec<&PacketBuf> = Vec::with_capacity(n);
        let mut local: Vec<&PacketBuf> = Vec::new();
        for buf in bufs.iter_mut().take(n) {
            match core.handle(buf.frame_mut(), now_ms) {
                Verdict::Forward { .. } => lan.push(buf),
                Verdict::Local => local.push(buf),
                Verdict::Drop(_) => {}
            }
        }
        for (out, batch) in [(Output::Lan, &lan), (Output::Local, &local)] {
            if !batch.is_empty() {
                let sent = io.send_batch(out, batch);
                send_errors += (batch.len() - sent.min(batch.len())) as u64;
            }
        }
        dirty |= n > 0;
        let changes = core.take_changes();
        if !changes.is_empty() {
            control.push_changes(changes);
        }
        let mut every = control.announce_every_ms.load(Ordering::Relaxed);
        if every > 0 && now_ms < FAST_ANNOUNCE_FOR_MS {
            every = every.min(FAST_ANNOUNCE_EVERY_MS);
        }
        if every > 0 && now_ms.saturating_sub(last_announce) >= every {
            if let Some(arp) = &arp {
                // A lost announcement is repeated next period; not worth failing the loop.
                if io.announce(arp).is_err() {
                    send_errors += 1;
                }
            }
            last_announce = now_ms;
        }
        if now_ms.saturating_sub(last_tick) >= TICK_EVERY_MS {
            let idle = match control.bucket_idle_ms.load(Ordering::Relaxed) {
                0 => idle_ms,
                set => set,
            };
            core.tick(now_ms, idle);
            last_tick = now_ms;
        }
        if dirty && now_ms.saturating_sub(last_publish) >= PUBLISH_EVERY_MS {
            publish(control, core, send_errors);
            last_publish = now_ms;
            dirty = false;
        }
    }
    publish(control, core, send_errors);
    Ok(())
}

fn publish(control: &LoopControl, core: &SchedulerCore, send_errors: u64) {
    let mut c = core.counters().clone();
    c.send_errors = send_errors;
    control.publish(&c);
}

#[cfg(test)]
mod tests;

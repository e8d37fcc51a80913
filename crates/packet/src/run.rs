//! The scheduler shell: a dedicated blocking thread that owns the data plane.
//!
//! Owns: kernel set-up in the right order, opening [`AfPacketIo`], announcing the VIP by
//! gratuitous ARP, the receive → decide → send loop ([`run_loop`], generic over [`FrameIo`]),
//! publishing counters, and restoring the kernel on the way out. The control plane talks to a
//! running loop through **one command channel in** ([`Command`], applied in order at the next
//! turn — so a merged table is always adopted before the hold ends) and **one event channel
//! out** ([`SchedulerEvent`]: the assignments to replicate); counters are a published
//! snapshot, and the loop's own exit is seen with [`SchedulerHandle::exited`].
//! Must not: block on anything but the packet socket's poll, or decide about a frame itself.
//!
//! Why a thread and not async: the loop is one syscall-bound hot path that must not share a
//! runtime's workers with the L7 proxy; a thread with a short poll timeout gives bounded
//! shutdown latency and keeps the namespace of its creator (which the lab tests rely on).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// How often the LAN link's state is checked: a lost carrier must end the loop (and hand the
/// VIP on) well inside the failover bound.
const LINK_CHECK_EVERY_MS: u64 = 50;
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
/// Event batches (one per loop turn with assignments) queued for the control plane before new
/// ones are dropped and counted: it drains them every few ms; a lost batch is repaired by
/// the merge of the next takeover (the node holding the connection claims its bucket).
const EVENT_QUEUE: usize = 4096;

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
    /// Start assigning new buckets at once (true), or hold every flow until
    /// [`Command::AcceptingNew`] (a takeover whose live-bucket merge is running).
    pub accepting_new: bool,
    /// Which data plane to run (`[array] data_plane`).
    pub data_plane: DataPlaneChoice,
}

/// Which data plane the scheduler should run: the `[array] data_plane` key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataPlaneChoice {
    /// XDP native, else XDP generic, else AF_PACKET — whatever this interface and kernel give.
    Auto,
    /// XDP (native, else generic); failing that the role is refused.
    Xdp,
    /// The AF_PACKET socket and TAP.
    #[default]
    AfPacket,
}

/// Which data plane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataPlaneKind {
    /// The XDP program in the driver.
    XdpNative,
    /// The XDP program in generic (skb) mode.
    XdpGeneric,
    /// The AF_PACKET socket and TAP.
    AfPacket,
}

/// The data plane a scheduler got, and why (for the log, `status --cluster` and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPlaneReport {
    /// What runs.
    pub kind: DataPlaneKind,
    /// Why this one: the choice asked for and what was tried.
    pub reason: String,
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
    /// The XDP data plane could not be loaded or attached.
    #[error("XDP data plane")]
    Xdp(#[from] crate::xdp::XdpError),
    /// The scheduler thread could not be started or panicked.
    #[error("scheduler thread: {what}")]
    Thread {
        /// What happened.
        what: &'static str,
    },
}

/// What the control plane tells a running loop; applied in order at the loop's next turn.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Replace the node table (membership changed, weights edited, ...).
    Nodes(Vec<NodeEntry>),
    /// Hold (false) or allow (true) new assignments (the takeover merge).
    AcceptingNew(bool),
    /// Adopt a replica (see [`SchedulerCore::adopt`]).
    Adopt(Arc<BucketSnapshot>),
    /// Release buckets idle this long (ms) from now on; 0 is ignored.
    BucketIdle(u64),
    /// Repeat the gratuitous ARP every this many ms (0 = never).
    AnnounceEvery(u64),
}

/// What a running loop tells the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerEvent {
    /// Assignments and releases made since the last one (with `record_changes`).
    Assigned(Vec<Change>),
}

/// Shared between the loop and its handle: the stop request and the published counters.
#[derive(Debug, Default)]
pub struct LoopControl {
    stop: AtomicBool,
    counters: Mutex<Counters>,
}

/// A running scheduler thread. Dropping it stops the thread and restores the kernel.
#[derive(Debug)]
pub struct SchedulerHandle {
    control: Arc<LoopControl>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<SchedulerEvent>,
    thread: Option<JoinHandle<Result<Counters, RunError>>>,
    report: DataPlaneReport,
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
            accepting_new: true,
            data_plane: DataPlaneChoice::AfPacket,
        }
    }
}

impl DataPlaneChoice {
    /// The configuration spelling (`auto`, `xdp`, `af_packet`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DataPlaneChoice::Auto => "auto",
            DataPlaneChoice::Xdp => "xdp",
            DataPlaneChoice::AfPacket => "af_packet",
        }
    }
}

impl DataPlaneKind {
    /// A stable snake_case name, for metrics labels, logs and `status --cluster`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DataPlaneKind::XdpNative => "xdp_native",
            DataPlaneKind::XdpGeneric => "xdp_generic",
            DataPlaneKind::AfPacket => "af_packet",
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

    fn publish(&self, c: &Counters) {
        c.clone_into(&mut self.counters.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl SchedulerHandle {
    /// The data plane that runs, and why that one.
    #[must_use]
    pub fn data_plane(&self) -> &DataPlaneReport {
        &self.report
    }

    /// The counters as last published (at most ~50 ms old).
    pub fn counters(&self) -> Counters {
        self.control.counters()
    }

    /// Sends a command to the loop (applied at its next turn, in order). A loop that has
    /// exited ignores it: [`SchedulerHandle::exited`] says so.
    pub fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Replaces the node table (membership changed, weights edited, ...).
    pub fn update_nodes(&self, nodes: Vec<NodeEntry>) {
        self.command(Command::Nodes(nodes));
    }

    /// The assignments routed since the last call (needs `record_changes`), from the event
    /// channel.
    pub fn take_changes(&self) -> Vec<Change> {
        let mut all = Vec::new();
        for event in self.events.try_iter() {
            match event {
                SchedulerEvent::Assigned(mut c) => all.append(&mut c),
            }
        }
        all
    }

    /// Whether the data plane has stopped by itself (its loop failed, e.g. the LAN interface
    /// went down, or its thread panicked): [`SchedulerHandle::stop`] then returns why. The
    /// control plane polls this — a dead data plane on the elected node black-holes the VIP.
    #[must_use]
    pub fn exited(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
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
    let (commands_tx, commands_rx) = mpsc::channel();
    let (events_tx, events_rx) = mpsc::sync_channel(EVENT_QUEUE);
    // The configured period, as the first command the loop applies.
    let _ = commands_tx.send(Command::AnnounceEvery(cfg.announce_every_ms));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<DataPlaneReport, RunError>>();
    let ctl = Arc::clone(&control);
    let thread = std::thread::Builder::new()
        .name("pf-scheduler".into())
        .spawn(move || {
            let ports = LoopPorts {
                commands: commands_rx,
                events: Some(events_tx),
            };
            let (xdp_plane, why) = match cfg.data_plane {
                DataPlaneChoice::AfPacket => (None, "configured".to_owned()),
                choice => match xdp_plane::start(&cfg) {
                    Ok(plane) => (Some(plane), String::new()),
                    Err(e) if choice == DataPlaneChoice::Auto => {
                        let why = format!("XDP unavailable: {}", error_chain(&e));
                        tracing::warn!(lan = %cfg.lan, reason = %why, "data plane: falling back to AF_PACKET");
                        (None, why)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Err(RunError::Thread {
                            what: "set-up failed",
                        });
                    }
                },
            };
            if let Some(plane) = xdp_plane {
                let _ = ready_tx.send(Ok(plane.report(cfg.data_plane)));
                return xdp_plane::run(plane, &ctl, &ports, cfg.idle_ms);
            }
            let (mut io, mut core, guard) = match start(&cfg) {
                Ok(parts) => {
                    let reason = format!("data_plane = {:?}: {why}", cfg.data_plane.as_str());
                    tracing::info!(lan = %cfg.lan, kind = "af_packet", %reason, "data plane");
                    let _ = ready_tx.send(Ok(DataPlaneReport {
                        kind: DataPlaneKind::AfPacket,
                        reason,
                    }));
                    parts
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Err(RunError::Thread {
                        what: "set-up failed",
                    });
                }
            };
            let result = run_loop(&mut io, &mut core, &ctl, &ports, cfg.idle_ms, cfg.batch);
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
        Ok(Ok(report)) => Ok(SchedulerHandle {
            control,
            commands: commands_tx,
            events: events_rx,
            thread: Some(thread),
            report,
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

/// An error and its causes on one line, for a log line or a reason shown to an operator.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Set-up, in the scheduler thread.
fn start(cfg: &SchedulerConfig) -> Result<(AfPacketIo, SchedulerCore, KernelGuard), RunError> {
    // A replica of another size cannot be adopted; start empty rather than refuse the role.
    let table = match &cfg.initial_table {
        // Every bucket counts as just used (seed 002), on the data plane's clock.
        Some(s) if s.size == cfg.table_size => BucketTable::from_snapshot(s, sys::monotonic_ns())?,
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
    core.set_accepting_new(cfg.accepting_new);
    Ok((io, core, guard))
}

/// The loop's channels: commands in, events out (`None`: nobody listens, e.g. a static
/// scheduler or a test).
#[derive(Debug)]
pub struct LoopPorts {
    /// Commands from the control plane.
    pub commands: mpsc::Receiver<Command>,
    /// Where assignments go.
    pub events: Option<mpsc::SyncSender<SchedulerEvent>>,
}

/// The loop's settings that commands change.
struct Settings {
    announce_every_ms: u64,
    idle_ms: u64,
}

fn apply(command: Command, core: &mut SchedulerCore, settings: &mut Settings, now_ns: u64) {
    match command {
        Command::Nodes(n) => core.set_nodes(n),
        Command::AcceptingNew(a) => core.set_accepting_new(a),
        Command::Adopt(table) => {
            core.adopt(&table, now_ns);
        }
        Command::BucketIdle(ms) if ms > 0 => settings.idle_ms = ms,
        Command::BucketIdle(_) => {}
        Command::AnnounceEvery(ms) => settings.announce_every_ms = ms,
    }
}

/// The data-plane loop over any [`FrameIo`], until `control` asks it to stop. Send failures
/// (e.g. a full device queue) are counted in [`Counters::send_errors`], not fatal; a receive
/// failure (the interface went down) ends the loop with that error.
pub fn run_loop(
    io: &mut impl FrameIo,
    core: &mut SchedulerCore,
    control: &LoopControl,
    ports: &LoopPorts,
    idle_ms: u64,
    batch: usize,
) -> io::Result<()> {
    let epoch = Instant::now();
    let mut bufs: Vec<PacketBuf> = (0..batch.max(1)).map(|_| PacketBuf::new()).collect();
    let (mut last_publish, mut last_tick, mut next_link_check) = (0u64, 0u64, 0u64);
    let mut send_errors = 0u64;
    let mut dirty = false;
    let mut last_announce = 0u64;
    let mut settings = Settings {
        announce_every_ms: 0,
        idle_ms,
    };
    let arp = match core.params().vip {
        IpAddr::V4(vip) => Some(frame::gratuitous_arp(core.params().lan_mac, vip)),
        IpAddr::V6(_) => None,
    };
    while !control.stop.load(Ordering::Relaxed) {
        while let Ok(command) = ports.commands.try_recv() {
            apply(command, core, &mut settings, sys::monotonic_ns());
        }
        let n = io.recv_batch(&mut bufs, POLL_INTERVAL)?;
        let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The table's clock (see `SchedulerCore`); the loop's own timers use `now_ms`.
        let now_ns = sys::monotonic_ns();
        let mut lan: Vec<&PacketBuf> = Vec::with_capacity(n);
        let mut local: Vec<&PacketBuf> = Vec::new();
        for buf in bufs.iter_mut().take(n) {
            match core.handle(buf.frame_mut(), now_ns) {
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
        let mut every = settings.announce_every_ms;
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
            core.tick(now_ns, settings.idle_ms.saturating_mul(1_000_000));
            last_tick = now_ms;
        }
        if now_ms >= next_link_check {
            next_link_check = now_ms + LINK_CHECK_EVERY_MS;
            if !io.link_up()? {
                publish(control, core, send_errors);
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the LAN interface is down or has no carrier",
                ));
            }
        }
        let changes = core.take_changes();
        if let (false, Some(events)) = (changes.is_empty(), ports.events.as_ref()) {
            // A full queue means the control plane is stalled: drop rather than grow.
            let _ = events.try_send(SchedulerEvent::Assigned(changes));
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

mod xdp_plane;

#[cfg(test)]
mod tests;

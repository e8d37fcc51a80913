//! The scheduler thread's XDP variant: set-up, the control loop, restore.
//!
//! Owns: loading and attaching the program (native, else generic; a leftover program on the
//! interface is detected and replaced; the attachment outlives a crash, see `sys::set_xdp`),
//! the kernel set-up the XDP path needs (VIP on lo, ARP
//! answered — and *no* nftables ingress drop, which would drop the frames the program passes
//! to the local stack), the loop that applies [`Command`]s to [`XdpSchedule`], forwards the
//! program's assignments as [`SchedulerEvent`]s, releases idle buckets, announces the VIP
//! and watches the link, and detaching on the way out.
//! Must not: touch frames — the program does, in the kernel.

use std::io;
use std::time::Instant;

use pentaflow_balance::BucketTable;

use super::{
    Command, DataPlaneChoice, DataPlaneKind, DataPlaneReport, LoopControl, LoopPorts, RunError,
    SchedulerConfig, SchedulerEvent, FAST_ANNOUNCE_EVERY_MS, FAST_ANNOUNCE_FOR_MS,
    GRATUITOUS_ARP_COUNT, LINK_CHECK_EVERY_MS, POLL_INTERVAL, PUBLISH_EVERY_MS, TICK_EVERY_MS,
};
use crate::frame::{self, ARP_FRAME_LEN};
use crate::setup::{self, KernelGuard, SetupError};
use crate::sys::{self, PacketSocket};
use crate::xdp::{XdpAttach, XdpError, XdpParams, XdpProgram, XdpSchedule};

/// A started XDP data plane, owned by the scheduler thread.
pub(super) struct XdpPlane {
    schedule: XdpSchedule,
    announcer: PacketSocket,
    arp: [u8; ARP_FRAME_LEN],
    guard: KernelGuard,
    lan: String,
    why: String,
}

impl XdpPlane {
    /// What runs and why, logged once.
    pub(super) fn report(&self, choice: DataPlaneChoice) -> DataPlaneReport {
        let kind = match self.schedule.program().attached() {
            Some(XdpAttach::Native) => DataPlaneKind::XdpNative,
            _ => DataPlaneKind::XdpGeneric,
        };
        let reason = format!("data_plane = {:?}: {}", choice.as_str(), self.why);
        tracing::info!(lan = %self.lan, kind = kind.as_str(), %reason, "data plane");
        DataPlaneReport { kind, reason }
    }
}

/// Loads, configures and attaches the program; on any failure everything done is undone.
pub(super) fn start(cfg: &SchedulerConfig) -> Result<XdpPlane, RunError> {
    let now = sys::monotonic_ns();
    let table = match &cfg.initial_table {
        Some(s) if s.size == cfg.table_size => BucketTable::from_snapshot(s, now)?,
        _ => BucketTable::new(cfg.table_size)?,
    };
    let program = XdpProgram::load(cfg.table_size)?;
    let guard = setup::prepare_scheduler(&cfg.lan, cfg.vip)?;
    let lan_mac = sys::interface_mac(&cfg.lan).map_err(|source| SetupError::Interface {
        what: "reading the MAC address",
        interface: cfg.lan.clone(),
        source,
    })?;
    let params = XdpParams {
        vip: cfg.vip,
        services: cfg.services.clone(),
        self_id: cfg.self_id,
        lan_mac,
    };
    let mut schedule = XdpSchedule::new(program, params, cfg.nodes.clone(), table, now)?;
    if cfg.record_changes {
        schedule.record_changes();
    }
    schedule.set_accepting_new(cfg.accepting_new)?;
    let why = attach(schedule.program_mut(), &cfg.lan)?;
    let announcer = PacketSocket::open_send_only(&cfg.lan).map_err(|source| RunError::Io {
        what: "opening the announcement socket",
        source,
    })?;
    let arp = frame::gratuitous_arp(lan_mac, cfg.vip);
    for _ in 0..GRATUITOUS_ARP_COUNT {
        announcer.send(&arp).map_err(|source| RunError::Io {
            what: "sending gratuitous ARP",
            source,
        })?;
    }
    Ok(XdpPlane {
        schedule,
        announcer,
        arp,
        guard,
        lan: cfg.lan.clone(),
        why,
    })
}

/// Attaches natively where the driver can forward by `XDP_TX` on its own, else generically;
/// a program left on the interface (a crashed run attached through netlink, or another
/// tool's) is removed and the attach retried once. Returns why this mode.
fn attach(program: &mut XdpProgram, lan: &str) -> Result<String, XdpError> {
    let driver = sys::interface_driver(lan).unwrap_or_default();
    // A veth's XDP_TX needs NAPI on its peer (an XDP program or GRO there, DESIGN.md field
    // notes), which this end cannot see or arrange: native mode would attach and then drop
    // every forwarded frame. Generic mode forwards on any device.
    let modes: &[XdpAttach] = if driver == "veth" {
        &[XdpAttach::Generic]
    } else {
        &[XdpAttach::Native, XdpAttach::Generic]
    };
    let mut tried: Vec<String> = Vec::new();
    for &mode in modes {
        match program.attach(lan, mode) {
            Ok(replaced) => {
                let mut why = match (mode, driver.as_str()) {
                    (XdpAttach::Generic, "veth") => {
                        "veth: native XDP_TX needs the peer's NAPI, so generic".to_owned()
                    }
                    (XdpAttach::Native, d) => format!("native mode on driver {d:?}"),
                    (XdpAttach::Generic, d) => format!("generic mode on driver {d:?}"),
                };
                for t in &tried {
                    why.push_str("; ");
                    why.push_str(t.as_str());
                }
                if replaced {
                    tracing::warn!(%lan, "an XDP program was already attached: replaced it");
                    why.push_str("; replaced a leftover XDP program");
                }
                return Ok(why);
            }
            Err(e) if mode == XdpAttach::Native => {
                tried.push(format!("native refused: {}", super::error_chain(&e)));
            }
            Err(e) => return Err(e),
        }
    }
    Err(XdpError::NoAttachMode {
        interface: lan.to_owned(),
    })
}

/// The control loop, until `control` asks it to stop or the link goes down; detaches the
/// program and restores the kernel on the way out.
pub(super) fn run(
    mut plane: XdpPlane,
    control: &LoopControl,
    ports: &LoopPorts,
    idle_ms: u64,
) -> Result<crate::Counters, RunError> {
    let result = run_loop(&mut plane, control, ports, idle_ms);
    publish(control, &plane.schedule);
    if let Err(e) = plane.schedule.program_mut().detach() {
        tracing::warn!(error = %e, "detaching the XDP program");
    }
    drop(plane.schedule);
    for e in plane.guard.restore() {
        tracing::warn!(error = %e, "restoring the kernel after the scheduler");
    }
    result.map_err(|source| RunError::Io {
        what: "scheduler loop",
        source,
    })?;
    Ok(control.counters())
}

fn run_loop(
    plane: &mut XdpPlane,
    control: &LoopControl,
    ports: &LoopPorts,
    idle_ms: u64,
) -> io::Result<()> {
    let epoch = Instant::now();
    let (mut last_publish, mut last_tick, mut next_link_check) = (0u64, 0u64, 0u64);
    let mut last_announce = 0u64;
    let mut announce_every_ms = 0u64;
    let mut idle_ms = idle_ms;
    let schedule = &mut plane.schedule;
    let failed = |what: &str, e: XdpError| tracing::warn!(error = %e, "XDP data plane: {what}");
    while !control.stop.load(std::sync::atomic::Ordering::Relaxed) {
        while let Ok(command) = ports.commands.try_recv() {
            let now = sys::monotonic_ns();
            let r = match command {
                Command::Nodes(n) => schedule.set_nodes(n),
                Command::AcceptingNew(a) => schedule.set_accepting_new(a),
                Command::Adopt(table) => schedule.adopt(&table, now).map(drop),
                Command::BucketIdle(ms) => {
                    if ms > 0 {
                        idle_ms = ms;
                    }
                    Ok(())
                }
                Command::AnnounceEvery(ms) => {
                    announce_every_ms = ms;
                    Ok(())
                }
            };
            if let Err(e) = r {
                failed("applying a command", e);
            }
        }
        // Assignments wake the loop at once; otherwise it turns every poll interval.
        sys::wait_readable(schedule.program().events_fd(), POLL_INTERVAL)?;
        if let Err(e) = schedule.poll() {
            failed("reading assignments", e);
        }
        let now_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut every = announce_every_ms;
        if every > 0 && now_ms < FAST_ANNOUNCE_FOR_MS {
            every = every.min(FAST_ANNOUNCE_EVERY_MS);
        }
        if every > 0 && now_ms.saturating_sub(last_announce) >= every {
            // A lost announcement is repeated next period.
            let _ = plane.announcer.send(&plane.arp);
            last_announce = now_ms;
        }
        if now_ms.saturating_sub(last_tick) >= TICK_EVERY_MS {
            let idle_ns = idle_ms.saturating_mul(1_000_000);
            if let Err(e) = schedule.tick(sys::monotonic_ns(), idle_ns) {
                failed("releasing idle buckets", e);
            }
            last_tick = now_ms;
        }
        if now_ms >= next_link_check {
            next_link_check = now_ms + LINK_CHECK_EVERY_MS;
            if !sys::interface_running(&plane.lan)? {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the LAN interface is down or has no carrier",
                ));
            }
        }
        let changes = schedule.take_changes();
        if let (false, Some(events)) = (changes.is_empty(), ports.events.as_ref()) {
            let _ = events.try_send(SchedulerEvent::Assigned(changes));
        }
        if now_ms.saturating_sub(last_publish) >= PUBLISH_EVERY_MS {
            publish(control, schedule);
            last_publish = now_ms;
        }
    }
    Ok(())
}

fn publish(control: &LoopControl, schedule: &XdpSchedule) {
    match schedule.counters() {
        Ok(c) => control.publish(&c),
        Err(e) => tracing::warn!(error = %e, "XDP data plane: reading counters"),
    }
}

//! pentaflow-packet: the L4 data plane of the scheduler.
//!
//! The scheduler owns the VIP by ARP and routes every inbound frame for it by rewriting the
//! destination MAC to the node that the client IP/port bucket table picks — or hands it to
//! its own stack when it picked itself. It is a router, not a proxy: it never completes a
//! TCP handshake, and replies never come back through it.
//!
//! Layout (pure core, I/O shell):
//! * [`frame`] — panic-free parsing and in-place rewriting of frames (pure);
//! * [`scheduler`] — [`SchedulerCore`]: frame + bucket table + node table → [`Verdict`], with
//!   counters (pure: time is a parameter);
//! * [`io`] — the [`FrameIo`] trait between the core and the kernel, and the AF_PACKET + TAP
//!   implementation; a future XDP data plane implements the same trait;
//! * [`setup`] — kernel set-up and restore (VIP on lo, ARP sysctls, nftables ingress drop);
//! * [`run`] — the blocking scheduler thread the binary starts ([`spawn_scheduler`]);
//! * [`xdp`] — the same decisions in an XDP program (C, `bpf/`, compiled by `build.rs`),
//!   loaded with aya, and its user-space half [`xdp::XdpSchedule`].
//!
//! This crate never depends on the control plane: the node table arrives as data.
//! It is the only crate allowed `unsafe`, confined to the private `sys` module.
//!
//! # Running it (what the binary does)
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use pentaflow_packet::{prepare_node, spawn_scheduler, MacAddr, NodeEntry, NodeId, SchedulerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vip = Ipv4Addr::new(10, 77, 1, 10);
//! // Every node, scheduler or not: VIP on lo, no ARP for it. Keep the guard while serving.
//! let node_guard = prepare_node("eth0", vip)?;
//! let nodes = vec![
//!     NodeEntry { id: NodeId(1), mac: "02:77:01:00:00:01".parse()?, weight: 1, enabled: true, alive: true },
//!     NodeEntry { id: NodeId(2), mac: "02:77:01:00:00:02".parse()?, weight: 1, enabled: true, alive: true },
//! ];
//! // The scheduler node only: a thread in this thread's network namespace.
//! let scheduler = spawn_scheduler(SchedulerConfig::new("eth0", vip, NodeId(1), nodes))?;
//! println!("{:?}", scheduler.counters());
//! let final_counters = scheduler.stop()?; // restores nft, sysctls, removes the TAP
//! drop(node_guard); // restores arp_ignore/arp_announce, removes the VIP from lo
//! # let _ = (final_counters, MacAddr::BROADCAST);
//! # Ok(()) }
//! ```

#[cfg(test)]
mod fixtures;
pub mod frame;
pub mod ilb_core;
pub mod io;
pub mod run;
pub mod scheduler;
pub mod setup;
pub mod synth;
pub mod xdp;
// The only module allowed `unsafe` (workspace lint: deny): raw sockets, TAP, ioctls.
#[allow(unsafe_code)]
mod sys;

pub use frame::{DropReason, Flow, FrameError, L4Proto, MacAddr, TcpFlags, Verdict};
pub use ilb_core::{Handled, IlbCore, HANDOFF_VID, SECOND_CHANCE_VID};
pub use io::{AfPacketIo, FrameIo, Output, PacketBuf};
/// Re-exported so callers name nodes and tables with the same types as this crate.
pub use pentaflow_balance::{BucketTable, NodeId};
pub use run::{
    run_loop, spawn_scheduler, Command, DataPlaneChoice, DataPlaneKind, DataPlaneReport,
    LoopControl, LoopPorts, RunError, SchedulerConfig, SchedulerEvent, SchedulerHandle,
    DEFAULT_ANNOUNCE_EVERY_MS,
};
pub use scheduler::{
    BucketSchedule, Change, CoreParams, Counters, NodeEntry, Schedule, SchedulerCore,
};
pub use setup::{prepare_node, KernelGuard, SetupError};

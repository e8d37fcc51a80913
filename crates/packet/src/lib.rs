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
//! * [`run`] — the blocking scheduler thread the binary starts ([`spawn_scheduler`]).
//!
//! This crate never depends on the control plane: the node table arrives as data.
//! It is the only crate allowed `unsafe`, confined to the private `sys` module.

pub mod frame;
pub mod io;
pub mod run;
pub mod scheduler;
pub mod setup;
pub mod synth;
// The only module allowed `unsafe` (workspace lint: deny): raw sockets, TAP, ioctls.
#[allow(unsafe_code)]
mod sys;

pub use frame::{DropReason, Flow, FrameError, L4Proto, MacAddr, Verdict};
pub use io::{AfPacketIo, FrameIo, Output, PacketBuf};
/// Re-exported so callers name nodes and tables with the same types as this crate.
pub use pentaflow_balance::{BucketTable, NodeId};
pub use run::{run_loop, spawn_scheduler, LoopControl, RunError, SchedulerConfig, SchedulerHandle};
pub use scheduler::{CoreParams, Counters, NodeEntry, SchedulerCore};
pub use setup::{prepare_node, KernelGuard, SetupError};

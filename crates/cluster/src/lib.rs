//! pentaflow-cluster: the control plane of a pentaflow array.
//!
//! Owns membership (seed 004's ID messages), scheduler election and failover (seed 002
//! "Scheduler Failover"), replication of the bucket table to every node (snapshot + versioned
//! deltas + the live-bucket merge at takeover), two-phase config push/commit and node status
//! polling with the Summary Web Server Status Table — as a **pure core** ([`Node`]: datagrams
//! and ticks in, datagrams and events out, time as an argument) and a thin tokio **shell**
//! ([`shell`]) that owns the UDP socket.
//!
//! * [`wire`] — the messages and their compact binary encoding (fuzzed);
//! * [`auth`] — HMAC-SHA256 tags, replay windows, drop counters;
//! * [`membership`], [`election`], [`replication`], [`config_sync`] — the sub-cores;
//! * [`servers`] — each node's Web Server Status Table on its way to the scheduler, and
//!   [`info::summarize`], the scheduler's Summary Web Server Status Table over all nodes;
//! * [`node`] — one node's state machine gluing them;
//! * [`shell`] — the tokio task, its watch channel of [`ClusterView`] and its inputs.
//!
//! The failover sequence, step by step, is in `LIFECYCLE.md` beside this crate.
//!
//! ```
//! use pentaflow_balance::NodeId;
//! use pentaflow_cluster::{ClusterKey, Node, NodeParams, Output, Role, Timing};
//!
//! let params = NodeParams {
//!     id: NodeId(1),
//!     priority: 1,
//!     weight: 1,
//!     incarnation: 1,
//!     key: ClusterKey::new(b"a shared key of 16+ bytes".to_vec())?,
//!     table_size: 65_536,
//!     timing: Timing::default(),
//!     preempt: false,
//!     quorum: 1,
//! };
//! let mut node = Node::new(params, Box::new(|_config: &str| Ok(())), 0)?;
//! // The shell's loop, with a virtual clock: sleep until poll_timeout, then handle it.
//! let mut now = 0;
//! while node.role() != Role::Scheduler {
//!     now = node.poll_timeout();
//!     node.handle_timeout(now);
//! }
//! while let Some(out) = node.poll_output() {
//!     if let Output::Send { to: _, datagram } = out {
//!         assert!(datagram.len() <= pentaflow_cluster::wire::MAX_DATAGRAM); // send_to(...)
//!     }
//! }
//! // The data plane (pentaflow-packet's `SchedulerCore`) routes; the core replicates what it
//! // reports and never routes itself.
//! node.report_assignments(&[(42, Some(NodeId(1)))], now);
//! assert_eq!(node.owner(42), Some(NodeId(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Must not: depend on the data planes (packet, proxy) or the lab, or route a flow: the
//! scheduler's data plane is the only writer of new assignments; this crate replicates the
//! change stream it reports. The data planes get this crate's results as values (a
//! [`ClusterView`] with an `Arc<BucketSnapshot>`), wired by `pentaflow-node`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config_sync;
pub mod election;
pub mod info;
pub mod membership;
pub mod node;
pub mod replication;
pub mod servers;
pub mod shell;
pub mod wire;

pub use auth::{ClusterKey, DropCounts, DropReason};
pub use config_sync::{ConfigEvent, ConfigSyncError, Validator};
pub use info::{summarize, ClusterInfo, MemberInfo, PolledStatus, ServerReport, SummaryRow};
pub use node::{quorum_of, Node, NodeParams, Output, Timing};
pub use replication::Change;
pub use servers::ServerTables;
pub use shell::{
    spawn, spawn_on, spawn_thread, ClusterHandle, ClusterView, Reconfigure, ShellConfig, ShellError,
};
pub use wire::{Destination, Message, NodeStatus, Role, ServerRow};

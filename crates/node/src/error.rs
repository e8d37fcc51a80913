//! Why this node could not take its part in the array: the typed errors of [`crate::ArrayRole`]
//! and [`crate::ClusterDriver`]. The binary prints them with their whole cause chain.

use std::net::{Ipv4Addr, SocketAddr};

use pentaflow_cluster::ShellError;
use pentaflow_packet::{RunError, SetupError};

/// A failure to start (or reach) this node's array role.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The node id given is not in the file's `[[array.node]]` list.
    #[error("node {0} is not listed in [[array.node]]")]
    NotListed(u16),
    /// No node id at all.
    #[error("which node is this? pass --node-id N (or PENTAFLOW_NODE_ID, or [array] node_id)")]
    WhichNode,
    /// The process may not change the network set-up.
    #[error("the [array] section needs root (or CAP_NET_ADMIN and CAP_NET_RAW)")]
    Privileges(#[source] SetupError),
    /// The VIP could not be put on `lo` (or ARP for it turned off).
    #[error("cannot prepare {interface} for the VIP {vip}")]
    PrepareNode {
        /// The LAN interface.
        interface: String,
        /// The array's VIP.
        vip: Ipv4Addr,
        /// What failed.
        #[source]
        source: SetupError,
    },
    /// The static scheduler's data plane did not start.
    #[error("cannot start the scheduler")]
    Scheduler(#[source] RunError),
    /// The cluster key is unusable (validation refuses it first; kept for other callers).
    #[error("[array] key: {0}")]
    ClusterKey(String),
    /// The blocking task that starts the cluster shell panicked or was cancelled.
    #[error("cluster start-up task")]
    StartupTask(#[source] tokio::task::JoinError),
    /// The cluster shell did not start (its socket could not be bound…).
    #[error("cannot start the cluster on {bind}")]
    ClusterStart {
        /// The control address.
        bind: SocketAddr,
        /// What failed.
        #[source]
        source: ShellError,
    },
    /// The running cluster shell refused a request.
    #[error("the cluster shell refused")]
    Shell(#[source] ShellError),
}

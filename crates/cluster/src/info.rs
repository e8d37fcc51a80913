//! What an operator reads of the control plane: the Node Status Table (seed 002 Fig. 5) as
//! this node knows it, with ages — published by the shell a few times a second.
//!
//! Owns only the read-only summary type and its construction from a [`Node`]; it must not
//! feed back into any decision (the data planes read [`crate::ClusterView`], not this).

use pentaflow_balance::NodeId;

use crate::auth::DropCounts;
use crate::node::Node;
use crate::wire::{NodeStatus, Role};

/// One member as last announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The node.
    pub id: NodeId,
    /// Heard within `dead_after`.
    pub alive: bool,
    /// Its incarnation (grows with each start).
    pub incarnation: u64,
    /// Its role as announced.
    pub role: Role,
    /// Election priority.
    pub priority: u8,
    /// Enabled (false = draining).
    pub enabled: bool,
    /// Weight for new buckets.
    pub weight: u32,
    /// Version of its table replica.
    pub table_version: u64,
    /// Its active configuration version.
    pub config_version: u64,
    /// Its load (per mille).
    pub load: u16,
    /// How long ago it was last heard (ms).
    pub heard_ms_ago: u64,
}

/// One row of the scheduler's status poll: a node's last answer and its age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolledStatus {
    /// The node.
    pub id: NodeId,
    /// Its answer.
    pub status: NodeStatus,
    /// How long ago it came (ms).
    pub age_ms: u64,
}

/// The operator's view of the cluster from one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// This node.
    pub node: Option<NodeId>,
    /// This node's role.
    pub role: Option<Role>,
    /// The scheduler as this node sees it.
    pub scheduler: Option<NodeId>,
    /// This node's table version.
    pub table_version: u64,
    /// This node's active configuration version.
    pub config_version: u64,
    /// The other nodes, by id.
    pub members: Vec<MemberInfo>,
    /// Scheduler only: the status poll's table (empty elsewhere).
    pub polled: Vec<PolledStatus>,
    /// Scheduler only: how long ago the last full poll sweep ended (ms).
    pub last_sweep_ms_ago: Option<u64>,
    /// Datagrams dropped, per reason.
    pub drops: DropCounts,
}

impl ClusterInfo {
    /// The summary of `node` at `now` (ms on the node's clock).
    pub(crate) fn of(node: &Node, now: u64) -> Self {
        let members = node
            .members()
            .all()
            .map(|m| MemberInfo {
                id: m.id,
                alive: m.alive,
                incarnation: m.incarnation,
                role: m.announce.role,
                priority: m.announce.priority,
                enabled: m.announce.enabled,
                weight: m.announce.weight,
                table_version: m.announce.table_version,
                config_version: m.announce.config_version,
                load: m.announce.load,
                heard_ms_ago: now.saturating_sub(m.last_heard),
            })
            .collect();
        let (table, sweep) = node.status_table();
        let polled = table
            .iter()
            .map(|(&id, &(status, at))| PolledStatus {
                id,
                status,
                age_ms: now.saturating_sub(at),
            })
            .collect();
        ClusterInfo {
            node: Some(node.id()),
            role: Some(node.role()),
            scheduler: node.scheduler(),
            table_version: node.table_version(),
            config_version: node.config_version(),
            members,
            polled,
            last_sweep_ms_ago: sweep.map(|s| now.saturating_sub(s)),
            drops: node.drops(),
        }
    }
}

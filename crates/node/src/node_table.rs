//! The scheduler's node table: every configured node with its MAC, alive when the cluster
//! lists it, weight and drain state as the cluster reports them.
//!
//! Must not: decide liveness (the cluster does) or hold state.

use pentaflow_balance::{NodeCandidate, NodeId};
use pentaflow_packet::{MacAddr, NodeEntry};

/// A node as configured (`[[array.node]]`): what the cluster does not carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Configured {
    /// Its number.
    pub id: NodeId,
    /// The MAC of its LAN interface.
    pub mac: MacAddr,
    /// Configured weight (used until the cluster reports one).
    pub weight: u32,
    /// Configured state (used until the cluster reports one).
    pub enabled: bool,
}

/// The node table for the scheduler's data plane: each configured node, alive only when the
/// cluster lists it alive, with the cluster's weight and drain state when it has them.
#[must_use]
pub fn node_entries(configured: &[Configured], alive: &[NodeCandidate]) -> Vec<NodeEntry> {
    configured
        .iter()
        .map(|n| {
            let c = alive.iter().find(|c| c.id == n.id);
            NodeEntry {
                id: n.id,
                mac: n.mac,
                weight: c.map_or(n.weight, |c| c.weight),
                enabled: c.map_or(n.enabled, |c| c.enabled),
                alive: c.is_some_and(|c| c.alive),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_the_cluster() {
        let configured: Vec<Configured> = (1..=3)
            .map(|i| Configured {
                id: NodeId(i),
                mac: MacAddr([2, 0, 0, 0, 0, u8::try_from(i).unwrap_or(0)]),
                weight: 1,
                enabled: true,
            })
            .collect();
        let alive = [NodeCandidate {
            id: NodeId(2),
            weight: 5,
            enabled: false,
            alive: true,
        }];
        let entries = node_entries(&configured, &alive);
        assert_eq!(entries.len(), 3);
        assert!(!entries[0].alive, "node 1 is not listed: failed");
        assert!(entries[1].alive && !entries[1].enabled && entries[1].weight == 5);
        assert_eq!(entries[2].mac, MacAddr([2, 0, 0, 0, 0, 3]));
    }
}

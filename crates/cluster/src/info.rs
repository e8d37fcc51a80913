//! What an operator reads of the control plane: the Node Status Table (seed 002 Fig. 5) as
//! this node knows it, and on the scheduler the Summary Web Server Status Table (Fig. 8)
//! summed over every node's Web Server Status Table (Fig. 7), with ages — published by the
//! shell a few times a second.
//!
//! Owns only the read-only summary types, their construction from a [`Node`] and the pure
//! [`summarize`]; it must not feed back into any decision (the data planes read
//! [`crate::ClusterView`], not this: seed 002's summary "is just for monitoring").

use std::collections::BTreeMap;

use pentaflow_balance::NodeId;

use crate::auth::DropCounts;
use crate::node::Node;
use crate::wire::{NodeStatus, Role, ServerRow};

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
    /// Scheduler: failed by the status poll (announcing, but not answering polls).
    pub unresponsive: bool,
    /// Not heard directly for `dead_after`, but not failed: a witness still hears it, or the
    /// loss measured on the LAN stretched its detection time. It keeps its buckets.
    pub suspected: bool,
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
    /// This node is enabled (false: drained by the operator, or `enabled = false`).
    pub enabled: bool,
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
    /// The Node Status Table: this node's own status first (age 0), then the status poll's
    /// rows (on the scheduler; a former scheduler keeps its last ones, with growing ages).
    pub polled: Vec<PolledStatus>,
    /// Scheduler only: how long ago the last full poll sweep ended (ms).
    pub last_sweep_ms_ago: Option<u64>,
    /// Datagrams dropped, per reason.
    pub drops: DropCounts,
    /// The Summary Web Server Status Table: on the scheduler over every node's latest
    /// report and its own, elsewhere over this node's own table only.
    pub summary: Vec<SummaryRow>,
    /// Web Server Status Table rows dropped for exceeding
    /// [`crate::wire::MAX_SERVER_ROWS`] per node (a counter).
    pub server_rows_dropped: u64,
    /// Nodes this node must hear (itself included) to take or keep the VIP.
    pub quorum: u16,
    /// Nodes it hears now, itself included.
    pub heard: usize,
}

/// One node's Web Server Status Table as [`summarize`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerReport<'a> {
    /// The node reporting.
    pub node: NodeId,
    /// Its rows.
    pub rows: &'a [ServerRow],
    /// How old the report is (ms).
    pub age_ms: u64,
}

/// One back-end of the Summary Web Server Status Table (seed 002 Fig. 8): its rows from every
/// reporting node, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryRow {
    /// The service the back-end belongs to.
    pub service: String,
    /// The back-end's name.
    pub name: String,
    /// Its address (`host:port`).
    pub address: String,
    /// Up if any node sees it up (a node that sees it down routes around it; the others
    /// still use it).
    pub up: bool,
    /// Nodes that see it up.
    pub nodes_up: u32,
    /// Nodes that see it down.
    pub nodes_down: u32,
    /// Nodes whose reports list it.
    pub nodes_reporting: u32,
    /// Requests all nodes sent to it (Fig. 8's Total Number of Hits).
    pub hits: u64,
    /// Connections all nodes have open to it (Total Number of Open Connections).
    pub open_connections: u64,
    /// Session / cookie groups all nodes assigned to it (Number of Cookie Groups Assigned).
    pub session_groups: u64,
    /// Average response time over all nodes, weighted by each node's hits (µs); the plain
    /// mean of the nodes' averages while nobody has hits.
    pub avg_response_us: u32,
    /// Age of the oldest report it was summed from (ms): how stale the row may be.
    pub age_ms: u64,
}

/// The Summary Web Server Status Table of `reports`: one row per (service, back-end name,
/// address), sorted so, summed over the nodes. A node listing one back-end twice adds both
/// rows' counters but counts once in `nodes_*`. Sums saturate instead of wrapping.
#[must_use]
pub fn summarize(reports: &[ServerReport<'_>]) -> Vec<SummaryRow> {
    /// One summary row being summed, with what its average needs.
    struct Acc {
        row: SummaryRow,
        /// Σ avg × hits, and Σ avg with its count (for the no-hits fallback).
        weighted_us: u128,
        plain_us: u64,
        plain_n: u64,
        last_node: Option<NodeId>,
    }
    let mut by: BTreeMap<(&str, &str, &str), Acc> = BTreeMap::new();
    for report in reports {
        for r in report.rows {
            let acc = by
                .entry((&r.service, &r.name, &r.address))
                .or_insert_with(|| Acc {
                    row: SummaryRow {
                        service: r.service.clone(),
                        name: r.name.clone(),
                        address: r.address.clone(),
                        ..SummaryRow::default()
                    },
                    weighted_us: 0,
                    plain_us: 0,
                    plain_n: 0,
                    last_node: None,
                });
            let s = &mut acc.row;
            if acc.last_node != Some(report.node) {
                acc.last_node = Some(report.node);
                s.nodes_reporting = s.nodes_reporting.saturating_add(1);
                if r.up {
                    s.nodes_up = s.nodes_up.saturating_add(1);
                } else {
                    s.nodes_down = s.nodes_down.saturating_add(1);
                }
                s.up |= r.up;
                s.age_ms = s.age_ms.max(report.age_ms);
            }
            s.hits = s.hits.saturating_add(r.hits);
            s.open_connections = s
                .open_connections
                .saturating_add(u64::from(r.open_connections));
            s.session_groups = s.session_groups.saturating_add(u64::from(r.session_groups));
            acc.weighted_us = acc
                .weighted_us
                .saturating_add(u128::from(r.avg_response_us) * u128::from(r.hits));
            acc.plain_us = acc.plain_us.saturating_add(u64::from(r.avg_response_us));
            acc.plain_n += 1;
        }
    }
    by.into_values()
        .map(|mut acc| {
            let avg = if acc.row.hits > 0 {
                acc.weighted_us / u128::from(acc.row.hits)
            } else {
                u128::from(acc.plain_us / acc.plain_n.max(1))
            };
            acc.row.avg_response_us = u32::try_from(avg).unwrap_or(u32::MAX);
            acc.row
        })
        .collect()
}

impl ClusterInfo {
    /// The summary of `node` at `now` (ms on the node's clock).
    pub(crate) fn of(node: &Node, now: u64) -> Self {
        let suspected: Vec<NodeId> = node.members().suspected(now).map(|m| m.id).collect();
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
                unresponsive: node.unresponsive().contains(&m.id),
                suspected: suspected.contains(&m.id),
            })
            .collect();
        let (table, sweep) = node.status_table();
        let own = PolledStatus {
            id: node.id(),
            status: node.own_status(),
            age_ms: 0,
        };
        let polled =
            std::iter::once(own)
                .chain(table.iter().filter(|(&id, _)| id != node.id()).map(
                    |(&id, &(status, at))| PolledStatus {
                        id,
                        status,
                        age_ms: now.saturating_sub(at),
                    },
                ))
                .collect();
        // Only the scheduler polls, so only its copies of other nodes' tables are current; a
        // former scheduler's would be stale numbers summed as if they were not.
        let servers = node.server_tables();
        let own_rows = ServerReport {
            node: node.id(),
            rows: servers.own(),
            age_ms: 0,
        };
        let mut reports = vec![own_rows];
        if node.role() == Role::Scheduler {
            reports.extend(
                servers
                    .reports()
                    .filter(|r| r.0 != node.id())
                    .map(|(id, rows, at)| ServerReport {
                        node: id,
                        rows,
                        age_ms: now.saturating_sub(at),
                    }),
            );
        }
        ClusterInfo {
            node: Some(node.id()),
            enabled: node.enabled(),
            role: Some(node.role()),
            scheduler: node.scheduler(),
            table_version: node.table_version(),
            config_version: node.config_version(),
            members,
            polled,
            last_sweep_ms_ago: sweep.map(|s| now.saturating_sub(s)),
            drops: node.drops(),
            summary: summarize(&reports),
            server_rows_dropped: servers.dropped(),
            quorum: node.quorum(),
            heard: node.heard_nodes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn row(
        service: &str,
        name: &str,
        up: bool,
        hits: u64,
        open: u32,
        us: u32,
        groups: u32,
    ) -> ServerRow {
        ServerRow {
            service: service.into(),
            name: name.into(),
            address: format!("10.0.0.{}:80", &name[name.len() - 1..]),
            up,
            hits,
            open_connections: open,
            avg_response_us: us,
            session_groups: groups,
        }
    }

    #[test]
    fn sums_by_hand() {
        let n1 = [
            row("web", "web1", true, 100, 2, 1_000, 3),
            row("web", "web2", true, 0, 0, 0, 0),
        ];
        let n2 = [
            row("web", "web1", true, 300, 5, 3_000, 4),
            row("web", "web2", false, 0, 0, 500, 0),
            row("api", "web1", true, 7, 1, 10, 1),
        ];
        let n3 = [row("web", "web1", false, 600, 0, 2_000, 0)];
        let reports = [
            ServerReport {
                node: NodeId(1),
                rows: &n1,
                age_ms: 0,
            },
            ServerReport {
                node: NodeId(2),
                rows: &n2,
                age_ms: 150,
            },
            ServerReport {
                node: NodeId(3),
                rows: &n3,
                age_ms: 420,
            },
        ];
        let s = summarize(&reports);
        // Sorted by service, then name: api/web1, web/web1, web/web2.
        let keys: Vec<(&str, &str)> = s
            .iter()
            .map(|r| (r.service.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(keys, [("api", "web1"), ("web", "web1"), ("web", "web2")]);
        let web1 = &s[1];
        assert_eq!(web1.hits, 100 + 300 + 600);
        assert_eq!(web1.open_connections, 2 + 5);
        assert_eq!(web1.session_groups, 3 + 4);
        // (1000·100 + 3000·300 + 2000·600) / 1000 = 2200.
        assert_eq!(web1.avg_response_us, 2_200);
        assert_eq!(
            (
                web1.up,
                web1.nodes_up,
                web1.nodes_down,
                web1.nodes_reporting
            ),
            (true, 2, 1, 3)
        );
        assert_eq!(web1.age_ms, 420);
        let web2 = &s[2];
        // No hits anywhere: the plain mean of 0 and 500.
        assert_eq!((web2.hits, web2.avg_response_us), (0, 250));
        assert_eq!(
            (
                web2.up,
                web2.nodes_up,
                web2.nodes_down,
                web2.nodes_reporting
            ),
            (true, 1, 1, 2)
        );
        assert_eq!(web2.age_ms, 150);
        let api = &s[0];
        assert_eq!(
            (
                api.hits,
                api.nodes_reporting,
                api.age_ms,
                api.address.as_str()
            ),
            (7, 1, 150, "10.0.0.1:80")
        );
    }

    #[test]
    fn all_down_duplicates_and_saturation() {
        let n1 = [
            row("web", "web1", false, u64::MAX, u32::MAX, u32::MAX, u32::MAX),
            row("web", "web1", false, 5, 1, 1, 1),
        ];
        let n2 = [row("web", "web1", false, 5, 1, 1, 1)];
        let s = summarize(&[
            ServerReport {
                node: NodeId(1),
                rows: &n1,
                age_ms: 3,
            },
            ServerReport {
                node: NodeId(2),
                rows: &n2,
                age_ms: 1,
            },
        ]);
        assert_eq!(s.len(), 1);
        let r = &s[0];
        assert_eq!((r.up, r.nodes_down, r.nodes_reporting), (false, 2, 2));
        assert_eq!(r.hits, u64::MAX);
        assert_eq!(r.open_connections, u64::from(u32::MAX) + 2);
        // (u32::MAX · u64::MAX + 1 · 5 + 1 · 5) / u64::MAX (saturated hits), cut to u32.
        assert_eq!(r.avg_response_us, u32::MAX);
        assert!(summarize(&[]).is_empty());
    }
}

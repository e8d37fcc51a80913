//! The cluster's status surfaces on this node, as data: the admin API's `GET /cluster`
//! document (typed, [`pentaflow_admin::ClusterDocument`]), the cluster metrics of `/metrics`
//! (the Summary Web Server Status Table, seed 002 Fig. 8, among them), and operator actions
//! handed to the cluster driver.
//!
//! Tables (seed 002): the Node Status Table (Fig. 5: every node with its role, state, load,
//! connections and hits, and how old each row is — this node's own row has age 0), the
//! bucket-table summary (Fig. 4: buckets per node, unassigned, version) and the summary of
//! every node's Web Server Status Table (Fig. 8). Must not: compute anything the cluster does
//! not report, or print (the binary renders the document as terminal tables).

use std::sync::Arc;

use pentaflow_admin::{
    ClusterBuckets, ClusterDocument, ClusterNodeRow, ClusterSummaryRow, ControlError,
    ControlRequest, DataPlaneFailure, DataPlaneStatus, DroppedDatagrams, NodeMetric, QuorumStatus,
};
use pentaflow_cluster::{ClusterInfo, ClusterView, Role, SummaryRow};
use pentaflow_config::ArrayConfig;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::{ClusterAccess, DataPlaneReport};

/// `scheduler`, `standby`, `starting`.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Scheduler => "scheduler",
        Role::Standby => "standby",
        Role::Starting => "starting",
        _ => "unknown",
    }
}

/// The `GET /cluster` document.
pub fn report(access: &ClusterAccess) -> Value {
    let view = access.view.borrow().clone();
    let info = access.info.borrow().clone();
    let array = Arc::clone(&access.array.borrow());
    let plane = access.data_plane.borrow().clone();
    let mut doc = typed_document(&array, &view, &info);
    doc.data_plane = Some(data_plane_status(&plane));
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// This node's scheduler data plane in the `/cluster` document.
pub fn data_plane_status(plane: &DataPlaneReport) -> DataPlaneStatus {
    DataPlaneStatus {
        state: plane.state.to_owned(),
        kind: plane.kind.as_ref().map(|(k, _)| (*k).to_owned()),
        reason: plane.kind.as_ref().map(|(_, r)| r.clone()),
        failures: plane.failures,
        last_failure: plane
            .last_failure
            .as_ref()
            .map(|(at_start, cause, when)| DataPlaneFailure {
                at_start: *at_start,
                cause: cause.clone(),
                ms_ago: u64::try_from(when.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
    }
}

/// A node's state for the operator: `failed` (not heard), `unresponsive` (heard, but failed by
/// the status poll), `suspected` (not heard directly for `dead_after`, but vouched for by a
/// witness or within its loss-stretched detection time: it keeps its buckets), `draining` (no
/// new buckets; live connections left, or not known here), `drained` (no new buckets and no
/// live connection: safe to stop), `active`.
fn node_state(
    alive: bool,
    unresponsive: bool,
    suspected: bool,
    enabled: bool,
    live: Option<u32>,
) -> &'static str {
    match (alive, unresponsive, enabled, live) {
        (false, ..) => "failed",
        (true, true, ..) => "unresponsive",
        _ if suspected => "suspected",
        (true, false, false, Some(0)) => "drained",
        (true, false, false, _) => "draining",
        (true, false, true, _) => "active",
    }
}

/// The document from one view and one summary (pure, for tests), as JSON.
#[cfg(test)]
fn document(array: &ArrayConfig, view: &ClusterView, info: &ClusterInfo) -> Value {
    // A document of plain numbers, strings and maps always serializes.
    serde_json::to_value(typed_document(array, view, info)).unwrap_or(Value::Null)
}

/// The typed document from one view and one summary (pure).
fn typed_document(array: &ArrayConfig, view: &ClusterView, info: &ClusterInfo) -> ClusterDocument {
    let me = info.node.map(|n| n.0);
    let mut by_node = std::collections::BTreeMap::<u16, usize>::new();
    for (_, n) in &view.table.assigned {
        *by_node.entry(n.0).or_default() += 1;
    }
    let nodes = array
        .nodes
        .iter()
        .map(|n| {
            let member = info.members.iter().find(|m| m.id.0 == n.id);
            let polled = info.polled.iter().find(|p| p.id.0 == n.id);
            let is_me = me == Some(n.id);
            let role = if is_me {
                Some(role_name(view.role))
            } else {
                member.filter(|m| m.alive).map(|m| role_name(m.role))
            };
            let alive = is_me || member.is_some_and(|m| m.alive);
            let enabled = if is_me {
                info.enabled
            } else {
                member.map_or(n.enabled, |m| m.enabled)
            };
            let unresponsive = member.is_some_and(|m| m.unresponsive);
            let suspected = member.is_some_and(|m| m.suspected);
            let live = polled.map(|p| p.status.live_buckets);
            ClusterNodeRow {
                id: n.id,
                address: n.address.to_string(),
                is_self: is_me,
                alive,
                state: node_state(alive, unresponsive, suspected, enabled, live).to_owned(),
                role: role.map(str::to_owned),
                priority: member.map_or(n.priority, |m| m.priority),
                enabled,
                weight: member.map_or(n.weight, |m| m.weight),
                incarnation: member.map(|m| m.incarnation),
                heard_ms_ago: if is_me {
                    Some(0)
                } else {
                    member.map(|m| m.heard_ms_ago)
                },
                table_version: if is_me {
                    Some(view.version)
                } else {
                    member.map(|m| m.table_version)
                },
                config_version: if is_me {
                    Some(view.config_version)
                } else {
                    member.map(|m| m.config_version)
                },
                load_permille: member.map(|m| m.load),
                open_connections: polled.map(|p| p.status.open_connections),
                hits: polled.map(|p| p.status.hits),
                live_buckets: live,
                status_age_ms: polled.map(|p| p.age_ms),
                buckets: by_node.get(&n.id).copied().unwrap_or(0),
            }
        })
        .collect();
    let assigned = view.table.assigned.len();
    let d = info.drops;
    ClusterDocument {
        node: me,
        role: role_name(view.role).to_owned(),
        scheduler: view.scheduler.map(|n| n.0),
        accepting_new: view.accepting_new,
        config_version: view.config_version,
        nodes,
        status_sweep_ms_ago: info.last_sweep_ms_ago,
        summary: summary_rows(&info.summary),
        server_rows_dropped: info.server_rows_dropped,
        buckets: ClusterBuckets {
            size: view.table.size,
            version: view.version,
            assigned,
            unassigned: view.table.size.saturating_sub(assigned),
            by_node,
        },
        dropped_datagrams: DroppedDatagrams {
            malformed: d.malformed,
            bad_version: d.bad_version,
            forged: d.forged,
            stale: d.stale,
            replayed: d.replayed,
            own_id: d.own_id,
            not_for_us: d.not_for_us,
        },
        data_plane: None,
        quorum: Some(QuorumStatus {
            needed: info.quorum,
            heard: info.heard,
            quorate: info.heard >= usize::from(info.quorum),
        }),
    }
}

/// Cluster gauges and counters for `/metrics`.
pub fn metrics(access: &ClusterAccess) -> Vec<NodeMetric> {
    let view = access.view.borrow().clone();
    let info = access.info.borrow().clone();
    let d = info.drops;
    let dropped =
        d.malformed + d.bad_version + d.forged + d.stale + d.replayed + d.own_id + d.not_for_us;
    let alive = info.members.iter().filter(|m| m.alive).count() + 1;
    let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut metrics = vec![
        NodeMetric::gauge(
            "cluster_is_scheduler",
            "1 while this node holds the VIP as the array's scheduler.",
            u64::from(view.role == Role::Scheduler),
        ),
        NodeMetric::gauge(
            "cluster_alive_nodes",
            "Nodes this node hears (itself included).",
            as_u64(alive),
        ),
        NodeMetric::gauge(
            "cluster_table_version",
            "Version of this node's bucket table.",
            view.version,
        ),
        NodeMetric::gauge(
            "cluster_buckets_assigned",
            "Buckets of the table assigned to a node.",
            as_u64(view.table.assigned.len()),
        ),
        NodeMetric::gauge(
            "cluster_config_version",
            "Version of the configuration committed through the array.",
            view.config_version,
        ),
        NodeMetric::gauge(
            "cluster_data_plane_kind",
            "The scheduler data plane the last start got: 0 none yet, 1 af_packet, 2 xdp_generic, 3 xdp_native.",
            match access.data_plane.borrow().kind.as_ref().map(|(k, _)| *k) {
                Some("af_packet") => 1,
                Some("xdp_generic") => 2,
                Some("xdp_native") => 3,
                _ => 0,
            },
        ),
        NodeMetric::gauge(
            "cluster_quorum",
            "Nodes this node must hear, itself included, to take or keep the VIP.",
            u64::from(info.quorum),
        ),
        NodeMetric::gauge(
            "cluster_quorate",
            "1 while this node hears its quorum.",
            u64::from(info.heard >= usize::from(info.quorum)),
        ),
        NodeMetric::gauge(
            "cluster_suspected_nodes",
            "Nodes not heard directly for dead_after but not failed (a witness vouches, or loss stretched the detection time).",
            as_u64(info.members.iter().filter(|m| m.suspected).count()),
        ),
        NodeMetric::counter(
            "cluster_data_plane_failures",
            "Times this node's scheduler data plane could not start or died (it then stepped down).",
            access.data_plane.borrow().failures,
        ),
        NodeMetric::counter(
            "cluster_dropped_datagrams",
            "Control datagrams dropped (malformed, forged, stale, replayed, ...).",
            dropped,
        ),
    ];
    metrics.extend(summary_metrics(&info));
    metrics
}

/// Hands an operator action to the cluster driver and waits for its answer (called on the
/// admin API's blocking pool).
pub fn control(access: &ClusterAccess, request: ControlRequest) -> Result<Value, ControlError> {
    let gone = || ControlError::new(503, "the cluster task has stopped");
    let (tx, rx) = oneshot::channel();
    access
        .control
        .blocking_send((request, tx))
        .map_err(|_| gone())?;
    rx.blocking_recv().map_err(|_| gone())?
}

/// The `summary` array of the `/cluster` document.
pub fn summary_rows(rows: &[SummaryRow]) -> Vec<ClusterSummaryRow> {
    rows.iter()
        .map(|r| ClusterSummaryRow {
            service: r.service.clone(),
            backend: r.name.clone(),
            address: r.address.clone(),
            state: if r.up { "up" } else { "down" }.to_owned(),
            nodes_up: r.nodes_up,
            nodes_down: r.nodes_down,
            nodes_reporting: r.nodes_reporting,
            hits: r.hits,
            open_connections: r.open_connections,
            session_groups: r.session_groups,
            avg_response_ms: f64::from(r.avg_response_us) / 1000.0,
            age_ms: r.age_ms,
        })
        .collect()
}

/// One metric family over the summary's rows: its name, help text, whether it is a counter,
/// and how to read a row.
type Family = (&'static str, &'static str, bool, fn(&SummaryRow) -> u64);

/// The summary as metric families (one series per back-end), in the admin API's naming: the
/// per-node `backend_*` families with a `cluster_` prefix, labelled `service`, `backend` and
/// `address`.
const FAMILIES: &[Family] = &[
    (
        "cluster_backend_up",
        "1 if any node of the array sees the back-end up.",
        false,
        |r| u64::from(r.up),
    ),
    (
        "cluster_backend_nodes_down",
        "Nodes of the array that see the back-end down.",
        false,
        |r| u64::from(r.nodes_down),
    ),
    (
        "cluster_backend_nodes_reporting",
        "Nodes whose Web Server Status Table lists the back-end.",
        false,
        |r| u64::from(r.nodes_reporting),
    ),
    (
        "cluster_backend_hits",
        "Requests every node sent to the back-end (drops when a node leaves the array).",
        true,
        |r| r.hits,
    ),
    (
        "cluster_backend_open_connections",
        "Connections every node has open to the back-end.",
        false,
        |r| r.open_connections,
    ),
    (
        "cluster_backend_session_groups",
        "Session and cookie groups every node assigned to the back-end.",
        false,
        |r| r.session_groups,
    ),
    (
        "cluster_backend_avg_response_microseconds",
        "Average response time over the array, weighted by each node's hits, in microseconds.",
        false,
        |r| u64::from(r.avg_response_us),
    ),
    (
        "cluster_backend_report_age_milliseconds",
        "Age of the oldest node report the back-end's summary row was summed from.",
        false,
        |r| r.age_ms,
    ),
];

/// The Summary Web Server Status Table's metrics: every family of `FAMILIES` per back-end, and the rows dropped.
pub fn summary_metrics(info: &ClusterInfo) -> Vec<NodeMetric> {
    let mut out = Vec::with_capacity(FAMILIES.len() * info.summary.len() + 1);
    for &(name, help, counter, read) in FAMILIES {
        for r in &info.summary {
            let m = if counter {
                NodeMetric::counter(name, help, read(r))
            } else {
                NodeMetric::gauge(name, help, read(r))
            };
            out.push(
                m.with_label("service", r.service.as_str())
                    .with_label("backend", r.name.as_str())
                    .with_label("address", r.address.as_str()),
            );
        }
    }
    out.push(NodeMetric::counter(
        "cluster_server_rows_dropped",
        "Web Server Status Table rows dropped for exceeding the per-node bound.",
        info.server_rows_dropped,
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use pentaflow_balance::{BucketSnapshot, NodeCandidate, NodeId};
    use pentaflow_cluster::{MemberInfo, PolledStatus};

    use super::*;

    #[test]
    fn the_document_joins_config_members_poll_and_table() {
        let text = crate::fixtures::two_node_text();
        let array = pentaflow_config::parse(text, pentaflow_config::Source::Inline("t".into()))
            .unwrap()
            .array
            .unwrap();
        let table = BucketSnapshot {
            size: 65536,
            version: 4,
            assigned: vec![(1, NodeId(1)), (2, NodeId(2)), (3, NodeId(2))],
        };
        let view = ClusterView {
            role: Role::Scheduler,
            scheduler: Some(NodeId(1)),
            accepting_new: true,
            table: Arc::new(table),
            version: 4,
            nodes: Arc::from(vec![NodeCandidate {
                id: NodeId(1),
                weight: 1,
                enabled: true,
                alive: true,
            }]),
            config_version: 2,
            epoch: 0,
        };
        let info = ClusterInfo {
            node: Some(NodeId(1)),
            enabled: true,
            members: vec![MemberInfo {
                id: NodeId(2),
                alive: true,
                incarnation: 9,
                role: Role::Standby,
                priority: 100,
                enabled: false,
                weight: 1,
                table_version: 4,
                config_version: 2,
                load: 3,
                heard_ms_ago: 40,
                unresponsive: false,
                suspected: false,
            }],
            polled: vec![
                PolledStatus {
                    id: NodeId(1),
                    status: pentaflow_cluster::NodeStatus {
                        hits: 11,
                        ..Default::default()
                    },
                    age_ms: 0,
                },
                PolledStatus {
                    id: NodeId(2),
                    status: pentaflow_cluster::NodeStatus {
                        open_connections: 7,
                        ..Default::default()
                    },
                    age_ms: 120,
                },
            ],
            last_sweep_ms_ago: Some(30),
            quorum: 2,
            heard: 2,
            summary: vec![pentaflow_cluster::SummaryRow {
                service: "web".into(),
                name: "web1".into(),
                hits: 42,
                nodes_reporting: 2,
                up: true,
                ..Default::default()
            }],
            ..ClusterInfo::default()
        };
        let doc = document(&array, &view, &info);
        if std::env::var_os("PENTAFLOW_WRITE_GOLDEN").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/cluster-document.json"
            );
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        }
        let golden: Value =
            serde_json::from_str(include_str!("../tests/fixtures/cluster-document.json")).unwrap();
        assert_eq!(
            doc, golden,
            "the typed document keeps the shape the dashboard and scripts read \
             (tests/fixtures/cluster-document.json; change it only with them: \
             PENTAFLOW_WRITE_GOLDEN=1 rewrites it)"
        );
        let typed: ClusterDocument = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(
            typed,
            typed_document(&array, &view, &info),
            "and reads back"
        );
        assert_eq!(doc["role"], "scheduler");
        assert_eq!(doc["buckets"]["assigned"], 3);
        assert_eq!(doc["buckets"]["unassigned"], 65533);
        assert_eq!(doc["buckets"]["by_node"]["2"], 2);
        let n2 = &doc["nodes"][1];
        assert_eq!(
            (n2["role"].as_str(), n2["enabled"].as_bool()),
            (Some("standby"), Some(false))
        );
        assert_eq!(n2["state"], "drained", "disabled, no live buckets");
        assert_eq!(
            (
                n2["open_connections"].as_u64(),
                n2["status_age_ms"].as_u64()
            ),
            (Some(7), Some(120))
        );
        let n1 = &doc["nodes"][0];
        assert_eq!(n1["self"], true);
        assert_eq!(
            (n1["hits"].as_u64(), n1["status_age_ms"].as_u64()),
            (Some(11), Some(0)),
            "the scheduler's own row"
        );
        assert_eq!(doc["summary"][0]["hits"], 42);
        assert_eq!(doc["summary"][0]["nodes_reporting"], 2);
    }

    #[test]
    fn a_failed_data_plane_is_shown_with_its_cause() {
        let plane = DataPlaneReport {
            state: "down",
            failures: 2,
            last_failure: Some((
                true,
                "scheduler set-up: could not run `nft -f -`: is `nft` installed?".to_owned(),
                std::time::Instant::now(),
            )),
            kind: Some(("xdp_generic", "data_plane = \"xdp\": veth".to_owned())),
        };
        let doc = json!({ "data_plane": data_plane_status(&plane) });
        assert_eq!(doc["data_plane"]["failures"], 2);
        assert_eq!(doc["data_plane"]["state"], "down");
        assert_eq!(doc["data_plane"]["kind"], "xdp_generic");
        assert_eq!(doc["data_plane"]["last_failure"]["at_start"], true);
        assert!(doc["data_plane"]["last_failure"]["cause"]
            .as_str()
            .is_some_and(|c| c.contains("is `nft` installed?")));
    }

    #[test]
    fn a_suspected_node_is_shown_as_such_and_keeps_its_place() {
        assert_eq!(node_state(true, false, true, true, Some(3)), "suspected");
        assert_eq!(node_state(true, true, true, true, None), "unresponsive");
        assert_eq!(node_state(false, false, true, true, None), "failed");
        assert_eq!(node_state(true, false, false, true, None), "active");
    }
}

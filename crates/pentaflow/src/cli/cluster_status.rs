//! The cluster's status pages: the admin API's `GET /cluster` document and cluster metrics
//! (built from the node's [`ClusterAccess`]), operator actions handed to the cluster driver,
//! and `pentaflow status --cluster`, which prints the document as terminal tables.
//!
//! Tables (seed 002): the Node Status Table (Fig. 5: every node with its role, state, load,
//! connections and hits, and how old each row is — this node's own row has age 0), the
//! bucket-table summary (Fig. 4: buckets per node, unassigned, version) and, from
//! [`super::cluster_summary`], the Summary Web Server Status Table (Fig. 8). Must not:
//! compute anything the cluster does not report.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use pentaflow_admin::{
    ClusterBuckets, ClusterDocument, ClusterNodeRow, ControlError, ControlRequest,
    DataPlaneFailure, DataPlaneStatus, DroppedDatagrams, NodeMetric,
};
use pentaflow_cluster::{ClusterInfo, ClusterView, Role};
use pentaflow_config::ArrayConfig;
use serde_json::Value;
use tokio::sync::oneshot;

use super::cluster::{ClusterAccess, DataPlaneReport};
use super::cluster_summary;

/// Bound on one admin exchange of the command line.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(crate) fn report(access: &ClusterAccess) -> Value {
    let view = access.view.borrow().clone();
    let info = access.info.borrow().clone();
    let array = Arc::clone(&access.array.borrow());
    let plane = access.data_plane.borrow().clone();
    let mut doc = typed_document(&array, &view, &info);
    doc.data_plane = Some(data_plane_status(&plane));
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// This node's scheduler data plane in the `/cluster` document.
fn data_plane_status(plane: &DataPlaneReport) -> DataPlaneStatus {
    DataPlaneStatus {
        state: plane.state.to_owned(),
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
/// the status poll), `draining` (no new buckets; live connections left, or not known here),
/// `drained` (no new buckets and no live connection: safe to stop), `active`.
fn node_state(alive: bool, unresponsive: bool, enabled: bool, live: Option<u32>) -> &'static str {
    match (alive, unresponsive, enabled, live) {
        (false, ..) => "failed",
        (true, true, ..) => "unresponsive",
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
            let live = polled.map(|p| p.status.live_buckets);
            ClusterNodeRow {
                id: n.id,
                address: n.address.to_string(),
                is_self: is_me,
                alive,
                state: node_state(alive, unresponsive, enabled, live).to_owned(),
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
        summary: cluster_summary::rows(&info.summary),
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
    }
}

/// Cluster gauges and counters for `/metrics`.
pub(crate) fn metrics(access: &ClusterAccess) -> Vec<NodeMetric> {
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
    metrics.extend(cluster_summary::metrics(&info));
    metrics
}

/// Hands an operator action to the cluster driver and waits for its answer (called on the
/// admin API's blocking pool).
pub(crate) fn control(
    access: &ClusterAccess,
    request: ControlRequest,
) -> Result<Value, ControlError> {
    let gone = || ControlError::new(503, "the cluster task has stopped");
    let (tx, rx) = oneshot::channel();
    access
        .control
        .blocking_send((request, tx))
        .map_err(|_| gone())?;
    rx.blocking_recv().map_err(|_| gone())?
}

/// One HTTP/1.1 exchange with a node's admin API: `(status, body)`.
pub(crate) fn exchange(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&admin, ADMIN_TIMEOUT)
        .with_context(|| format!("cannot reach the admin API at {admin}"))?;
    s.set_read_timeout(Some(ADMIN_TIMEOUT))?;
    s.set_write_timeout(Some(ADMIN_TIMEOUT))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n{auth}\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {admin}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        bail!("{admin} sent no HTTP answer");
    };
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{admin} sent a malformed status line"))?;
    Ok((code, body.to_owned()))
}

/// The `/cluster` document of a node.
pub(crate) fn fetch(admin: SocketAddr, token: Option<&str>) -> anyhow::Result<Value> {
    let (code, body) = exchange(admin, "GET", "/cluster", token, b"")?;
    if code != 200 {
        bail!("{admin} answered HTTP {code}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{admin} sent no JSON"))
}

/// `pentaflow status --cluster`.
pub(crate) fn run(admin: SocketAddr, json: bool, token: Option<&str>) -> anyhow::Result<ExitCode> {
    let doc = fetch(admin, token)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if doc.is_null() {
        println!("{admin} is not part of an array cluster");
    } else {
        print!("{}", render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// Terminal tables of a `/cluster` document.
pub(crate) fn render(doc: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "node {} ({}), scheduler {}, accepting new buckets: {}, config version {}\n\n",
        text(&doc["node"]),
        text(&doc["role"]),
        text(&doc["scheduler"]),
        text(&doc["accepting_new"]),
        text(&doc["config_version"]),
    );
    out.push_str("Node Status Table\n");
    out.push_str(
        "  id  address          role       state         prio  weight  heard   conns  hits      live-bk  buckets  table  config  status-age\n",
    );
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let ms = |v: &Value| {
            v.as_u64()
                .map_or_else(|| "-".to_owned(), |m| format!("{m}ms"))
        };
        let _ = writeln!(
            out,
            "  {:<3} {:<16} {:<10} {:<13} {:<5} {:<7} {:<7} {:<6} {:<9} {:<8} {:<8} {:<6} {:<7} {}",
            text(&n["id"]),
            text(&n["address"]),
            text(&n["role"]),
            text(&n["state"]),
            text(&n["priority"]),
            text(&n["weight"]),
            ms(&n["heard_ms_ago"]),
            text(&n["open_connections"]),
            text(&n["hits"]),
            text(&n["live_buckets"]),
            text(&n["buckets"]),
            text(&n["table_version"]),
            text(&n["config_version"]),
            ms(&n["status_age_ms"]),
        );
    }
    let b = &doc["buckets"];
    let _ = writeln!(
        out,
        "\nBucket table: {} buckets, version {}, {} assigned, {} unassigned; by node {}",
        text(&b["size"]),
        text(&b["version"]),
        text(&b["assigned"]),
        text(&b["unassigned"]),
        text(&b["by_node"]),
    );
    let _ = writeln!(
        out,
        "Status poll: last sweep {} ago",
        doc["status_sweep_ms_ago"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |m| format!("{m}ms"))
    );
    let p = &doc["data_plane"];
    if !p.is_null() {
        let _ = writeln!(
            out,
            "Scheduler data plane here: {}, {} failure(s)",
            text(&p["state"]),
            text(&p["failures"]),
        );
        let f = &p["last_failure"];
        if !f.is_null() {
            let when = if f["at_start"].as_bool() == Some(true) {
                "could not start"
            } else {
                "died"
            };
            let _ = writeln!(
                out,
                "  last: {when} {} ago: {}",
                f["ms_ago"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), |m| format!("{m}ms")),
                text(&f["cause"]),
            );
        }
    }
    cluster_summary::render(doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use pentaflow_balance::{BucketSnapshot, NodeCandidate, NodeId};
    use pentaflow_cluster::{MemberInfo, PolledStatus};

    use super::*;

    /// The document as it was built before it was typed: the typed one must equal it.
    fn reference_document(array: &ArrayConfig, view: &ClusterView, info: &ClusterInfo) -> Value {
        let me = info.node.map(|n| n.0);
        let mut by_node = std::collections::BTreeMap::<u16, usize>::new();
        for (_, n) in &view.table.assigned {
            *by_node.entry(n.0).or_default() += 1;
        }
        let nodes: Vec<Value> = array
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
                let live = polled.map(|p| p.status.live_buckets);
                json!({
                    "id": n.id,
                    "address": n.address.to_string(),
                    "self": is_me,
                    "alive": alive,
                    "state": node_state(alive, unresponsive, enabled, live),
                    "role": role,
                    "priority": member.map_or(n.priority, |m| m.priority),
                    "enabled": enabled,
                    "weight": member.map_or(n.weight, |m| m.weight),
                    "incarnation": member.map(|m| m.incarnation),
                    "heard_ms_ago": if is_me { Some(0) } else { member.map(|m| m.heard_ms_ago) },
                    "table_version": if is_me { Some(view.version) } else { member.map(|m| m.table_version) },
                    "config_version": if is_me { Some(view.config_version) } else { member.map(|m| m.config_version) },
                    "load_permille": member.map(|m| m.load),
                    "open_connections": polled.map(|p| p.status.open_connections),
                    "hits": polled.map(|p| p.status.hits),
                    "live_buckets": live,
                    "status_age_ms": polled.map(|p| p.age_ms),
                    "buckets": by_node.get(&n.id).copied().unwrap_or(0),
                })
            })
            .collect();
        let assigned = view.table.assigned.len();
        let d = info.drops;
        json!({
            "node": me,
            "role": role_name(view.role),
            "scheduler": view.scheduler.map(|n| n.0),
            "accepting_new": view.accepting_new,
            "config_version": view.config_version,
            "nodes": nodes,
            "status_sweep_ms_ago": info.last_sweep_ms_ago,
            "summary": cluster_summary::json(&info.summary),
            "server_rows_dropped": info.server_rows_dropped,
            "buckets": {
                "size": view.table.size,
                "version": view.version,
                "assigned": assigned,
                "unassigned": view.table.size.saturating_sub(assigned),
                "by_node": by_node,
            },
            "dropped_datagrams": {
                "malformed": d.malformed, "bad_version": d.bad_version, "forged": d.forged,
                "stale": d.stale, "replayed": d.replayed, "own_id": d.own_id,
                "not_for_us": d.not_for_us,
            },
        })
    }

    #[test]
    fn the_document_joins_config_members_poll_and_table() {
        let text = super::super::lab::array_config_for_tests();
        let array = pentaflow_config::parse(&text, pentaflow_config::Source::Inline("t".into()))
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
        assert_eq!(
            doc,
            reference_document(&array, &view, &info),
            "the typed document keeps the shape the dashboard reads"
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
        let table = render(&doc);
        assert!(table.contains("Summary Web Server Status Table"), "{table}");
        assert!(table.contains("Node Status Table"), "{table}");
        assert!(table.contains("10.77.1.12"), "{table}");
        assert!(table.contains("65533 unassigned"), "{table}");
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
        };
        let doc = json!({ "nodes": [], "buckets": {}, "data_plane": data_plane_status(&plane) });
        assert_eq!(doc["data_plane"]["failures"], 2);
        let table = render(&doc);
        assert!(
            table.contains("Scheduler data plane here: down, 2 failure(s)"),
            "{table}"
        );
        assert!(
            table.contains("could not start") && table.contains("is `nft` installed?"),
            "{table}"
        );
    }
}

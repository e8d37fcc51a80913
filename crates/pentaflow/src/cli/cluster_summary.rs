//! The Summary Web Server Status Table (seed 002 Fig. 8) on the status surfaces: its rows in
//! the `GET /cluster` document, as labelled cluster metrics, and as the third terminal table of
//! `pentaflow status --cluster`.
//!
//! Owns only the presentation of [`SummaryRow`]s (JSON field names, metric names, columns).
//! Must not: sum or judge anything — the cluster's `summarize` did — and must not print a
//! remote node's text unfiltered (control characters are replaced).

use std::fmt::Write as _;

use pentaflow_admin::{ClusterSummaryRow, NodeMetric};
use pentaflow_cluster::{ClusterInfo, SummaryRow};
#[cfg(test)]
use serde_json::json;
use serde_json::Value;

/// The `summary` array of the `/cluster` document.
pub(crate) fn rows(rows: &[SummaryRow]) -> Vec<ClusterSummaryRow> {
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

/// The summary rows as JSON (the `summary` of `/cluster`).
#[cfg(test)]
pub(crate) fn json(rows: &[SummaryRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "service": r.service,
                "backend": r.name,
                "address": r.address,
                "state": if r.up { "up" } else { "down" },
                "nodes_up": r.nodes_up,
                "nodes_down": r.nodes_down,
                "nodes_reporting": r.nodes_reporting,
                "hits": r.hits,
                "open_connections": r.open_connections,
                "session_groups": r.session_groups,
                "avg_response_ms": f64::from(r.avg_response_us) / 1000.0,
                "age_ms": r.age_ms,
            })
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

/// The summary's metrics: every family of [`FAMILIES`] per back-end, and the rows dropped.
pub(crate) fn metrics(info: &ClusterInfo) -> Vec<NodeMetric> {
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

/// Appends the "Summary Web Server Status Table" of a `/cluster` document to `out`.
pub(crate) fn render(doc: &Value, out: &mut String) {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    };
    let rows: Vec<&Value> = doc["summary"].as_array().into_iter().flatten().collect();
    out.push_str("\nSummary Web Server Status Table (over every node's report; age = oldest)\n");
    let header = [
        "service", "back-end", "address", "state", "nodes", "hits", "conns", "groups", "avg-ms",
        "age",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for r in &rows {
        let down = r["nodes_down"].as_u64().unwrap_or(0);
        let state = match (r["state"].as_str(), down) {
            (Some("up"), 0) => "up".to_owned(),
            (Some("up"), n) => format!("up ({n} down)"),
            _ => "DOWN".to_owned(),
        };
        let avg = r["avg_response_ms"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"));
        let age = r["age_ms"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms"));
        table.push(vec![
            text(&r["service"]),
            text(&r["backend"]),
            text(&r["address"]),
            state,
            text(&r["nodes_reporting"]),
            text(&r["hits"]),
            text(&r["open_connections"]),
            text(&r["session_groups"]),
            avg,
            age,
        ]);
    }
    let mut widths = vec![0usize; header.len()];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &table {
        let mut line = String::from(" ");
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, " {cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("  (no back-ends reported)\n");
    }
}

/// Replaces control characters (escape sequences, newlines) of remote text with `?`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use pentaflow_admin::MetricKind;

    use super::*;

    fn rows() -> Vec<SummaryRow> {
        vec![
            SummaryRow {
                service: "web".into(),
                name: "web1".into(),
                address: "10.77.2.11:80".into(),
                up: true,
                nodes_up: 2,
                nodes_down: 1,
                nodes_reporting: 3,
                hits: 900,
                open_connections: 4,
                session_groups: 6,
                avg_response_us: 1_250,
                age_ms: 180,
            },
            SummaryRow {
                service: "web".into(),
                name: "evil\u{1b}[2J".into(),
                address: "10.77.2.12:80".into(),
                nodes_down: 3,
                nodes_reporting: 3,
                ..SummaryRow::default()
            },
        ]
    }

    #[test]
    fn json_metrics_and_table_show_the_sums_and_ages() {
        let info = ClusterInfo {
            summary: rows(),
            server_rows_dropped: 2,
            ..ClusterInfo::default()
        };
        let doc = json!({ "summary": json(&info.summary) });
        let web1 = &doc["summary"][0];
        assert_eq!(
            (
                web1["backend"].as_str(),
                web1["hits"].as_u64(),
                web1["state"].as_str()
            ),
            (Some("web1"), Some(900), Some("up"))
        );
        assert_eq!(web1["avg_response_ms"].as_f64(), Some(1.25));
        assert_eq!(web1["age_ms"].as_u64(), Some(180));

        let m = metrics(&info);
        let hits = m
            .iter()
            .find(|m| m.name == "cluster_backend_hits" && m.labels[1].1 == "web1")
            .unwrap();
        assert_eq!((hits.kind, hits.value), (MetricKind::Counter, 900));
        assert_eq!(hits.labels[0], ("service".to_owned(), "web".to_owned()));
        assert_eq!(m.len(), FAMILIES.len() * 2 + 1);
        let text = pentaflow_admin::encode_metrics(pentaflow_admin::StatusDocument {
            node: "n".into(),
            uptime_secs: 1,
            web_servers: Vec::new(),
            metrics: m,
        })
        .unwrap();
        assert!(
            text.contains(
                "pentaflow_cluster_backend_hits_total{service=\"web\",backend=\"web1\",\
                 address=\"10.77.2.11:80\"} 900"
            ),
            "{text}"
        );

        let mut out = String::new();
        render(&doc, &mut out);
        assert!(out.contains("Summary Web Server Status Table"), "{out}");
        assert!(out.contains("up (1 down)"), "{out}");
        assert!(out.contains("180ms"), "{out}");
        assert!(out.contains("DOWN"), "{out}");
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        let mut empty = String::new();
        render(&json!({ "summary": [] }), &mut empty);
        assert!(empty.contains("(no back-ends reported)"), "{empty}");
    }
}

//! The Summary Web Server Status Table (seed 002 Fig. 8) as the third terminal table of
//! `pentaflow status --cluster` (its rows and metrics are built by
//! `pentaflow_node::cluster_document`).
//!
//! Owns only the columns.
//! Must not: sum or judge anything — the cluster's `summarize` did — and must not print a
//! remote node's text unfiltered (control characters are replaced).

use std::fmt::Write as _;

use serde_json::Value;

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
    use pentaflow_cluster::{ClusterInfo, SummaryRow};
    use pentaflow_node::cluster_document::{summary_metrics as metrics, summary_rows};
    use serde_json::json;

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
        let doc = json!({ "summary": summary_rows(&info.summary) });
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
        assert_eq!(
            m.len(),
            8 * 2 + 1,
            "eight families per back-end, and the dropped rows"
        );
        let text = pentaflow_admin::encode_metrics(pentaflow_admin::StatusDocument {
            node: "n".into(),
            uptime_secs: 1,
            web_servers: Vec::new(),
            metrics: m,
            discovery: Vec::new(),
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

use proptest::prelude::*;

use super::*;
use crate::fixture;

const GOLDEN: &str = "\
node    pentaflow 0.1.0
uptime  1h 2m 3s

SERVICE  BACK-END           ADDRESS         STATE  WEIGHT  AVG RESP MS    HITS  OPEN CONNS  ACTIVE  FAILURES  SESSION GROUPS
web      app1               127.0.0.1:9000  up          2         12.5     100           3       1         4               5
web      app2               127.0.0.1:9007  DOWN        2         12.5       7           3       1         4               5
api      backend-long-name  127.0.0.1:9056  up          2         12.5  123456           3       1         4               5

METRIC                KIND     VALUE
connections_accepted  counter     42
connections_open      gauge        5
";

#[test]
fn golden() {
    assert_eq!(render_table(&fixture::document()), GOLDEN);
}

#[test]
fn empty_document() {
    let doc = StatusDocument {
        node: "n".into(),
        uptime_secs: 0,
        web_servers: Vec::new(),
        metrics: Vec::new(),
        discovery: Vec::new(),
    };
    let expected = "\
node    n
uptime  0s

SERVICE  BACK-END  ADDRESS  STATE  WEIGHT  AVG RESP MS  HITS  OPEN CONNS  ACTIVE  FAILURES  SESSION GROUPS
(no back-ends)

METRIC  KIND  VALUE
(no node metrics)
";
    assert_eq!(render_table(&doc), expected);
}

#[test]
fn labelled_metrics_show_their_labels() {
    let mut doc = fixture::document();
    doc.metrics = vec![NodeMetric::counter("cluster_backend_hits", "h", 7)
        .with_label("service", "web")
        .with_label("backend", "a\u{1b}")];
    let out = render_table(&doc);
    assert!(
        out.contains("cluster_backend_hits{service=\"web\",backend=\"a?\"}  counter      7"),
        "{out}"
    );
}

#[test]
fn control_characters_cannot_reach_the_terminal() {
    let mut doc = fixture::document();
    doc.node = "evil\u{1b}[2J".into();
    doc.web_servers = vec![fixture::row("s\nx", "b\u{7}", true, 1)];
    let out = render_table(&doc);
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    assert!(out.starts_with("node    evil?[2J\n"), "{out}");
    assert!(out.contains("\ns?x      b?  "), "{out}");
}

proptest! {
    /// Every line of a table is as long as its header: the last column is right-aligned, so
    /// equal lengths mean every column lined up.
    #[test]
    fn columns_line_up(
        rows in prop::collection::vec(("[ -~]{0,20}", "[ -~]{0,20}", any::<u64>(), any::<u32>(), 0.0..1e9f64), 1..6),
        metrics in prop::collection::vec(("[a-z_]{1,30}", any::<u64>()), 1..6),
    ) {
        let mut doc = fixture::document();
        doc.web_servers = rows
            .iter()
            .map(|(s, b, hits, weight, avg)| {
                let mut row = fixture::row(s, b, *hits % 2 == 0, *hits);
                row.weight = *weight;
                row.avg_response_ms = *avg;
                row
            })
            .collect();
        doc.metrics = metrics.iter().map(|(n, v)| NodeMetric::counter(n.as_str(), "", *v)).collect();
        let out = render_table(&doc);
        let tables: Vec<&str> = out.split("\n\n").skip(1).collect();
        prop_assert_eq!(tables.len(), 2);
        for table in tables {
            let lengths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
            prop_assert!(lengths.windows(2).all(|w| w[0] == w[1]), "{:?}\n{}", lengths, table);
        }
    }
}

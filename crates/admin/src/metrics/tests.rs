use proptest::prelude::*;

use super::*;
use crate::exposition::{self, value};
use crate::fixture;

fn parsed(doc: StatusDocument) -> Vec<exposition::Family> {
    let text = encode(doc).unwrap();
    exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn golden() {
    assert_eq!(
        encode(fixture::document()).unwrap(),
        include_str!("golden.openmetrics")
    );
}

#[test]
fn values_and_labels() {
    let families = parsed(fixture::document());
    let web_app2 = [("service", "web"), ("backend", "app2")];
    let api = [("service", "api"), ("backend", "backend-long-name")];
    assert_eq!(
        value(&families, "pentaflow_backend_up", &web_app2),
        Some(0.0)
    );
    assert_eq!(value(&families, "pentaflow_backend_up", &api), Some(1.0));
    assert_eq!(
        value(&families, "pentaflow_backend_hits_total", &api),
        Some(123_456.0)
    );
    assert_eq!(
        value(&families, "pentaflow_backend_avg_response_seconds", &api),
        Some(0.0125)
    );
    assert_eq!(
        value(&families, "pentaflow_connections_accepted_total", &[]),
        Some(42.0)
    );
    assert_eq!(
        value(&families, "pentaflow_connections_open", &[]),
        Some(5.0)
    );
    assert_eq!(
        value(&families, "pentaflow_uptime_seconds", &[]),
        Some(3723.0)
    );
    assert_eq!(
        value(
            &families,
            "pentaflow_node_info",
            &[("node", "pentaflow 0.1.0")]
        ),
        Some(1.0)
    );
    let kinds: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert!(
        kinds.contains(&("pentaflow_backend_failures", "counter")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("pentaflow_backend_session_groups", "gauge")),
        "{kinds:?}"
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut doc = fixture::document();
    doc.web_servers = vec![fixture::row("we\"b\\", "a\nb", true, 1)];
    doc.metrics = vec![NodeMetric::gauge("g", "say \"hi\"\\\nbye", 1)];
    let text = encode(doc).unwrap();
    assert!(
        text.contains(r#"pentaflow_backend_hits_total{service="we\"b\\",backend="a\nb"} 1"#),
        "{text}"
    );
    let families = exposition::parse(&text).unwrap();
    let labels = [("service", "we\"b\\"), ("backend", "a\nb")];
    assert_eq!(
        value(&families, "pentaflow_backend_hits_total", &labels),
        Some(1.0)
    );
    let gauge = families.iter().find(|f| f.name == "pentaflow_g").unwrap();
    assert_eq!(gauge.help, "say \"hi\"\\\nbye");
}

#[test]
fn node_metric_names_are_normalised_and_collisions_skipped() {
    let mut doc = fixture::document();
    doc.metrics = vec![
        NodeMetric::counter("requests_total", "Counter named with its suffix.", 1),
        NodeMetric::gauge("bad name-1", "Invalid characters.", 2),
        NodeMetric::gauge("backend_up", "Collides with a back-end family.", 3),
        NodeMetric::gauge("backend_hits_total", "Collides with a back-end sample.", 4),
        NodeMetric::counter("requests", "Same family as the first.", 5),
        NodeMetric::gauge("9lives", "Starts with a digit.", 6),
        NodeMetric::gauge("uptime_seconds", "Collides with the uptime gauge.", 7),
        NodeMetric::counter("node_info", "Collides with the node info family.", 8),
        NodeMetric::gauge(
            "backend_avg_response_seconds",
            "Collides with a unit family.",
            9,
        ),
    ];
    let families = parsed(doc);
    assert_eq!(value(&families, "pentaflow_requests_total", &[]), Some(1.0));
    assert_eq!(value(&families, "pentaflow_bad_name_1", &[]), Some(2.0));
    assert_eq!(value(&families, "pentaflow_unnamed_9lives", &[]), Some(6.0));
    let up = families
        .iter()
        .find(|f| f.name == "pentaflow_backend_up")
        .unwrap();
    assert_eq!(
        up.samples.len(),
        3,
        "the node gauge must not join the back-end family"
    );
    assert!(families
        .iter()
        .all(|f| f.name != "pentaflow_backend_hits_total"));
}

#[test]
fn labelled_node_metrics_form_one_family() {
    let mut doc = fixture::document();
    let hits = |backend: &str, v| {
        NodeMetric::counter("cluster_backend_hits", "Summed hits.", v)
            .with_label("service", "web")
            .with_label("backend", backend)
    };
    doc.metrics = vec![
        hits("a", 3),
        NodeMetric::gauge("plain", "No labels.", 1),
        hits("b", 4),
        hits("a", 99), // the same series again: skipped
        NodeMetric::gauge("cluster_backend_hits", "Another kind.", 5).with_label("backend", "c"),
        NodeMetric::gauge("odd", "Odd label names.", 6)
            .with_label("bad-name", "x")
            .with_label("9x", "y")
            .with_label("bad-name", "dropped"),
    ];
    let text = encode(doc).unwrap();
    let families = exposition::parse(&text).unwrap_or_else(|e| {
        panic!(
            "{e}
{text}"
        )
    });
    let name = "pentaflow_cluster_backend_hits_total";
    let a = [("service", "web"), ("backend", "a")];
    let b = [("service", "web"), ("backend", "b")];
    assert_eq!(value(&families, name, &a), Some(3.0));
    assert_eq!(value(&families, name, &b), Some(4.0));
    assert_eq!(value(&families, name, &[("backend", "c")]), None);
    let family = families
        .iter()
        .find(|f| f.name == "pentaflow_cluster_backend_hits")
        .unwrap();
    assert_eq!((family.kind.as_str(), family.samples.len()), ("counter", 2));
    assert_eq!(value(&families, "pentaflow_plain", &[]), Some(1.0));
    assert_eq!(
        value(
            &families,
            "pentaflow_odd",
            &[("bad_name", "x"), ("unnamed_9x", "y")]
        ),
        Some(6.0)
    );
}

#[test]
fn duplicate_rows_keep_the_first() {
    let mut doc = fixture::document();
    doc.web_servers = vec![
        fixture::row("s", "b", true, 1),
        fixture::row("s", "b", false, 2),
    ];
    let families = parsed(doc);
    let labels = [("service", "s"), ("backend", "b")];
    assert_eq!(
        value(&families, "pentaflow_backend_hits_total", &labels),
        Some(1.0)
    );
}

#[test]
fn no_backends_still_declares_every_family() {
    let mut doc = fixture::document();
    doc.web_servers.clear();
    doc.metrics.clear();
    let families = parsed(doc);
    for name in [
        "pentaflow_backend_up",
        "pentaflow_backend_hits",
        "pentaflow_backend_session_groups",
    ] {
        assert!(families.iter().any(|f| f.name == name), "{name} missing");
    }
}

proptest! {
    /// Whatever names the configuration or the node hands over, the scrape stays valid and every
    /// back-end's labels read back exactly.
    #[test]
    fn any_names_give_a_valid_exposition(
        rows in prop::collection::vec((any::<String>(), any::<String>(), any::<u64>()), 0..8),
        metrics in prop::collection::vec((any::<String>(), any::<String>(), any::<bool>(), any::<u64>()), 0..8),
    ) {
        let mut doc = fixture::document();
        doc.web_servers = rows.iter().map(|(s, b, hits)| fixture::row(s, b, true, *hits)).collect();
        doc.metrics = metrics
            .iter()
            .map(|(name, help, counter, v)| {
                let m = if *counter { NodeMetric::counter(name.as_str(), help.as_str(), *v) }
                else { NodeMetric::gauge(name.as_str(), help.as_str(), *v) };
                // Some with labels of any name and value (a label set may repeat: skipped).
                if *v % 2 == 0 { m.with_label(help.as_str(), name.as_str()) } else { m }
            })
            .collect();
        let text = encode(doc).unwrap();
        let families = exposition::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut seen = HashSet::new();
        for (service, backend, hits) in &rows {
            if seen.insert((service, backend)) {
                let labels = [("service", service.as_str()), ("backend", backend.as_str())];
                // Compare in f64, as the exposition carries it.
                #[allow(clippy::cast_precision_loss)]
                let expected = *hits as f64;
                prop_assert_eq!(value(&families, "pentaflow_backend_hits_total", &labels), Some(expected));
            }
        }
    }
}

//! What one scrape and one `pentaflow status` cost on a large node: encoding 1,000 back-ends'
//! rows as OpenMetrics text, as JSON, and as the terminal table. A scrape runs on a tokio
//! worker of the node, so it must stay far below a millisecond per hundred back-ends.

// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pentaflow_admin::{
    encode_metrics, render_table, BackendState, NodeMetric, StatusDocument, WebServerStatus,
};

/// A large deployment: 50 services of 20 back-ends each.
const BACKENDS: usize = 1_000;
const PER_SERVICE: usize = 20;

fn document() -> StatusDocument {
    let web_servers = (0..BACKENDS)
        .map(|i| WebServerStatus {
            service: format!("service-{}", i / PER_SERVICE),
            name: format!("backend-{i}"),
            address: format!("10.0.{}.{}:8080", i / 250, i % 250),
            state: BackendState::from_available(i % 7 != 0),
            weight: 1 + (i % 4) as u32,
            avg_response_ms: 3.25 + (i % 50) as f64,
            hits: 1_000_000 + i as u64 * 37,
            open_connections: (i % 100) as u64,
            active_requests: (i % 9) as u64,
            failures: (i % 3) as u64,
            session_groups: i % 64,
        })
        .collect();
    let metrics = vec![
        NodeMetric::counter(
            "connections_accepted",
            "Client connections accepted.",
            123_456_789,
        ),
        NodeMetric::gauge("connections_open", "Client connections open now.", 10_000),
        NodeMetric::counter("requests", "Requests received.", 987_654_321),
    ];
    StatusDocument {
        node: "pentaflow 0.1.0".into(),
        uptime_secs: 86_400,
        web_servers,
        metrics,
        discovery: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let doc = document();
    c.bench_function("metrics_1000_backends", |b| {
        b.iter(|| encode_metrics(black_box(doc.clone())).expect("encodes"))
    });
    c.bench_function("status_json_1000_backends", |b| {
        b.iter(|| serde_json::to_vec(black_box(&doc)).expect("serialises"))
    });
    c.bench_function("table_1000_backends", |b| {
        b.iter(|| render_table(black_box(&doc)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

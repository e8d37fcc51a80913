//! A status document shared by the unit tests.

use pentaflow_balance::{BackendState, WebServerStatus};

use crate::model::{NodeMetric, StatusDocument};

/// A back-end row with the counters given and the rest fixed.
pub(crate) fn row(service: &str, name: &str, up: bool, hits: u64) -> WebServerStatus {
    WebServerStatus {
        service: service.into(),
        name: name.into(),
        address: format!("127.0.0.1:{}", 9000 + hits % 100),
        state: BackendState::from_available(up),
        weight: 2,
        avg_response_ms: 12.5,
        hits,
        open_connections: 3,
        active_requests: 1,
        failures: 4,
        session_groups: 5,
    }
}

/// Two services, three back-ends (one down), two node metrics.
pub(crate) fn document() -> StatusDocument {
    StatusDocument {
        node: "pentaflow 0.1.0".into(),
        uptime_secs: 3723,
        web_servers: vec![
            row("web", "app1", true, 100),
            row("web", "app2", false, 7),
            row("api", "backend-long-name", true, 123_456),
        ],
        metrics: vec![
            NodeMetric::counter("connections_accepted", "Client connections accepted.", 42),
            NodeMetric::gauge("connections_open", "Client connections open now.", 5),
        ],
        discovery: Vec::new(),
    }
}

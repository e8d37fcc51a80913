//! pentaflow-admin: the node's admin HTTP API, its Prometheus metrics and the terminal tables
//! of `pentaflow status`.
//!
//! Owns: the admin listener ([`serve`]: the operator's dashboard at `GET /` (embedded, see
//! `dashboard`), `GET /status` as JSON, `GET /metrics` in the
//! OpenMetrics text format that Prometheus scrapes, `GET /cdn` and `GET /cluster` as JSON,
//! `GET /healthz`, and the token-protected operator actions under `POST /cluster/…`), the
//! client that reads a
//! remote node's status ([`fetch_status`]) and the table rendering ([`render_table`]).
//!
//! Must not: depend on the data planes or the cluster, or keep counters of its own. Everything
//! it shows is read, at request time, from a [`StatusSource`] that the binary implements over
//! the proxy (and later the cluster); the metrics are encoded straight from that snapshot by a
//! prometheus-client `Collector`, so there is no second copy of any number to keep in step.
//! It runs on its own listener, never on a data-plane port.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pentaflow_admin::{serve, MetricKind, NodeMetric, StatusSource};
//! use pentaflow_balance::WebServerStatus;
//!
//! struct Empty;
//! impl StatusSource for Empty {
//!     fn web_servers(&self) -> Vec<WebServerStatus> { Vec::new() }
//!     fn node_metrics(&self) -> Vec<NodeMetric> {
//!         vec![NodeMetric::counter("requests", "Requests received.", 0)]
//!     }
//! }
//!
//! # async fn run() -> Result<(), pentaflow_admin::AdminError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await.expect("bind");
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! serve(listener, Arc::new(Empty), "pentaflow 0.1.0".into(), shutdown).await
//! # }
//! ```

#![forbid(unsafe_code)]

mod client;
mod control;
mod dashboard;
mod error;
#[cfg(test)]
mod exposition;
#[cfg(test)]
mod fixture;
mod metrics;
mod model;
mod server;
mod table;
mod timeline;

pub use client::{exchange, fetch_status};
pub use control::{ControlError, ControlRequest};
pub use error::AdminError;
pub use metrics::encode_metrics;
pub use model::{
    ClusterBuckets, ClusterDocument, ClusterNodeRow, ClusterSummaryRow, DataPlaneFailure,
    DataPlaneStatus, DiscoveryStatus, DroppedDatagrams, MetricKind, NodeMetric, QuorumStatus,
    StatusDocument, StatusSource,
};
pub use pentaflow_balance::{BackendState, WebServerStatus};
pub use server::{serve, serve_with, AdminOptions};
pub use table::render_table;

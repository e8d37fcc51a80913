//! The admin API's view of this node ([`pentaflow_admin::StatusSource`]): the proxy's
//! Web Server Status Table and counters as metrics, the CDN reports, and — on an array node
//! with a cluster — the `/cluster` document, the bucket table, operator actions; the runtime
//! back-end API's changes go to [`BackendApi`]; the DNS discovery's status and metrics.
//!
//! Must not: keep numbers of its own (everything is read from the proxy and the cluster at
//! request time) or decide anything.

use std::sync::Arc;

use pentaflow_admin::{ControlError, ControlRequest, NodeMetric, StatusSource};
use pentaflow_config::ArrayConfig;
use pentaflow_proxy::Proxy;

use crate::backend_api::BackendApi;
use crate::discovery::Discovery;
use crate::ClusterAccess;

/// The admin API's view of the proxy, and of the cluster when the node is in one.
pub struct NodeStatusSource {
    /// The node's proxy.
    pub proxy: Proxy,
    /// The array (as the node started) and the cluster, when the node is in one.
    pub cluster: Option<(ArrayConfig, ClusterAccess)>,
    /// `POST /backend/...`.
    pub backends: BackendApi,
    /// The DNS discovery of back-ends named by DNS.
    pub discovery: Arc<Discovery>,
}

impl StatusSource for NodeStatusSource {
    fn web_servers(&self) -> Vec<pentaflow_balance::WebServerStatus> {
        self.proxy.status()
    }

    fn node_metrics(&self) -> Vec<NodeMetric> {
        let c = self.proxy.counters();
        let mut metrics = vec![
            NodeMetric::counter("connections_accepted", "Client connections accepted.", c.connections_accepted),
            NodeMetric::counter(
                "connections_refused",
                "Client connections refused at accept (max_connections_per_client; answered 503).",
                c.connections_refused,
            ),
            NodeMetric::counter(
                "accept_paused",
                "Times accepting paused at max_connections (new clients waited in the listen backlog).",
                c.accept_paused,
            ),
            NodeMetric::gauge("connections_open", "Client connections open now.", c.connections_open),
            NodeMetric::gauge(
                "connections_parked",
                "Idle keep-alive client connections parked now (no buffer, smallest state).",
                c.connections_parked,
            ),
            NodeMetric::counter("requests", "Requests received.", c.requests),
            NodeMetric::counter("local_4xx", "Requests the proxy refused itself with a 4xx.", c.local_4xx),
            NodeMetric::counter("local_5xx", "Requests the proxy answered itself with a 5xx.", c.local_5xx),
            NodeMetric::counter(
                "send_timeouts",
                "Client connections closed because the client did not read within send_timeout.",
                c.send_timeouts,
            ),
            NodeMetric::counter(
                "response_body_errors",
                "Responses cut off because the back-end's body broke (the client's connection is closed).",
                c.response_body_errors,
            ),
            NodeMetric::counter("tls_handshakes", "TLS handshakes completed.", c.tls_handshakes),
            NodeMetric::counter("tls_resumed", "TLS handshakes that resumed a session.", c.tls_resumed),
            NodeMetric::counter("tls13_handshakes", "TLS handshakes that negotiated TLS 1.3.", c.tls13),
            NodeMetric::counter(
                "tls_failed",
                "TLS handshakes that failed or timed out (garbage, plain HTTP, unknown SNI, stalls).",
                c.tls_failed,
            ),
            NodeMetric::counter(
                "tls_over_limit",
                "TLS connections closed because max_handshakes were in progress.",
                c.tls_over_limit,
            ),
            NodeMetric::counter("http2_connections", "Client connections that negotiated HTTP/2.", c.http2_connections),
            NodeMetric::counter(
                "h2_glitch_closures",
                "HTTP/2 client connections closed with GOAWAY ENHANCE_YOUR_CALM (h2_glitch_threshold).",
                c.h2_glitch_closures,
            ),
            NodeMetric::counter("proxy_headers", "PROXY protocol headers read on accept_proxy listeners.", c.proxy_headers),
            NodeMetric::counter(
                "proxy_untrusted",
                "Connections to accept_proxy listeners closed: source not in proxy_trusted.",
                c.proxy_untrusted,
            ),
            NodeMetric::counter(
                "proxy_header_errors",
                "Connections to accept_proxy listeners closed: PROXY header missing, malformed, too long or late.",
                c.proxy_header_errors,
            ),
            NodeMetric::counter(
                "interim_floods",
                "Back-end answers refused with 502: more interim (1xx) responses than a proxy waits through.",
                c.interim_floods,
            ),
        ];
        // Every answer the node made itself, one series per status and reason.
        metrics.extend(c.local_responses.iter().map(|l| {
            NodeMetric::counter(
                "local_responses",
                "Responses the proxy made itself, by status and reason.",
                l.count,
            )
            .with_label("status", l.status.to_string())
            .with_label("reason", l.reason)
        }));
        // With per-worker runtimes: how the listening sockets' connections spread over them.
        metrics.extend(
            self.proxy
                .accepted_by_worker()
                .into_iter()
                .map(|(worker, n)| {
                    NodeMetric::counter(
                "worker_connections_accepted",
                "Client connections accepted by each worker runtime (serve --workers N, N >= 2).",
                n,
            )
            .with_label("worker", worker.to_string())
                }),
        );
        // The CDN page caches of every service, summed.
        let reports = self.proxy.cdn_reports();
        let sum = |f: fn(&pentaflow_proxy::CdnReport) -> u64| {
            reports.iter().map(|(_, r)| f(r)).sum::<u64>()
        };
        metrics.extend([
            NodeMetric::counter(
                "cdn_cache_hits",
                "Rewritten pages served from the page cache.",
                sum(|r| r.cache.hits),
            ),
            NodeMetric::counter(
                "cdn_cache_misses",
                "Rewritten pages not found in the page cache.",
                sum(|r| r.cache.misses),
            ),
            NodeMetric::counter(
                "cdn_pages_rewritten",
                "HTML pages rewritten for the CDN.",
                sum(|r| r.pages.rewritten),
            ),
            NodeMetric::counter(
                "cdn_urls_rewritten",
                "URLs rewritten to the CDN.",
                sum(|r| r.pages.urls_rewritten),
            ),
        ]);
        metrics.extend(self.discovery.metrics());
        if let Some((_, access)) = &self.cluster {
            metrics.extend(crate::cluster_document::metrics(access));
        }
        metrics
    }

    fn discovery(&self) -> Vec<pentaflow_admin::DiscoveryStatus> {
        self.discovery.status()
    }

    fn cluster_report(&self) -> serde_json::Value {
        self.cluster
            .as_ref()
            .map_or(serde_json::Value::Null, |(_, access)| {
                crate::cluster_document::report(access)
            })
    }

    fn bucket_table(&self) -> Option<Arc<pentaflow_balance::BucketSnapshot>> {
        let (_, access) = self.cluster.as_ref()?;
        let table = Arc::clone(&access.view.borrow().table);
        Some(table)
    }

    fn control(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError> {
        if let ControlRequest::Backend(change) = &request {
            return self.backends.apply(change);
        }
        match &self.cluster {
            Some((_, access)) => crate::cluster_document::control(access, request),
            None => Err(ControlError::new(
                503,
                "this node is not part of an array cluster",
            )),
        }
    }

    fn cdn_report(&self) -> serde_json::Value {
        let reports = self.proxy.cdn_reports();
        if reports.is_empty() {
            return serde_json::Value::Null;
        }
        let by_service = reports
            .into_iter()
            .map(|(name, r)| (name, serde_json::to_value(r).unwrap_or_default()));
        serde_json::Value::Object(by_service.collect())
    }
}

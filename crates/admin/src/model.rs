//! The data the admin API shows: the source trait the binary implements, node metrics and the
//! `/status` document.
//!
//! Owns: the serde shape of `GET /status` (the contract between `serve` and `fetch_status`,
//! possibly of different versions on two nodes). Must not: read clocks or live state.

use std::sync::Arc;

use pentaflow_balance::{BucketSnapshot, WebServerStatus};
use serde::{Deserialize, Serialize};

use crate::control::{ControlError, ControlRequest};

/// What the admin API shows; implemented by the binary over the proxy (and later the cluster).
///
/// Called on every admin request (a scrape, a `pentaflow status`), from a tokio worker: an
/// implementation should take a cheap snapshot and must not block for long.
pub trait StatusSource: Send + Sync + 'static {
    /// The Web Server Status Table (seed 002 Fig. 7), one row per back-end.
    fn web_servers(&self) -> Vec<WebServerStatus>;
    /// Node-wide counters and gauges.
    fn node_metrics(&self) -> Vec<NodeMetric>;
    /// What is served from the CDN and why, per service (`GET /cdn`); `null` when no service
    /// rewrites to a CDN.
    fn cdn_report(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The array as this node sees it (`GET /cluster`): roles, members with their ages, the
    /// bucket table summary; `null` when the node is not in an array cluster.
    fn cluster_report(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Back-ends named by DNS and their last resolutions (the status document's
    /// `discovery`); empty when none is.
    fn discovery(&self) -> Vec<DiscoveryStatus> {
        Vec::new()
    }
    /// The array's bucket table as this node holds it, for the dashboard's bucket picture
    /// (`GET /ui/buckets`); `None` when the node is not in an array cluster.
    fn bucket_table(&self) -> Option<Arc<BucketSnapshot>> {
        None
    }
    /// An operator action, called only once the admin token was checked, on the blocking
    /// pool (it may wait for the cluster briefly). Without a cluster: refused with 503.
    fn control(&self, request: ControlRequest) -> Result<serde_json::Value, ControlError> {
        let _ = request;
        Err(ControlError::new(
            503,
            "this node is not part of an array cluster",
        ))
    }
}

/// One node-wide number, e.g. connections accepted, or one labelled series of a family (e.g.
/// the array's summed hits of one back-end): metrics of one name form one family, told apart
/// by their labels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeMetric {
    /// Snake-case name without the `pentaflow_` prefix or a `_total` suffix, e.g.
    /// `connections_accepted` (exported as `pentaflow_connections_accepted_total`).
    pub name: String,
    /// One-line description, shown as the metric's `# HELP`.
    pub help: String,
    /// Whether it only grows (counter) or goes up and down (gauge).
    pub kind: MetricKind,
    /// The value now.
    pub value: u64,
    /// `(label, value)` pairs of this series (label names as metric names are normalised);
    /// empty for a plain node-wide number. Absent from the JSON when empty, so older
    /// readers of `GET /status` are unaffected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

/// The Prometheus type of a [`NodeMetric`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only grows (until the node restarts).
    Counter,
    /// A level that goes up and down.
    Gauge,
}

/// The JSON document of GET /status.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusDocument {
    /// The node's name and version, as given to `serve`.
    pub node: String,
    /// Seconds since the admin API started serving.
    pub uptime_secs: u64,
    /// The Web Server Status Table, one row per back-end.
    pub web_servers: Vec<WebServerStatus>,
    /// Node-wide counters and gauges.
    pub metrics: Vec<NodeMetric>,
    /// Back-ends named by DNS: what each name resolves to and how its last resolutions went
    /// (empty, and absent from the JSON, when no back-end is named by DNS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery: Vec<DiscoveryStatus>,
}

/// One `[[service.backend]]` named by DNS, as its discovery sees it now.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// The service.
    pub service: String,
    /// The entry's name (the discovered back-ends are `<name>#<ip:port>`).
    pub name: String,
    /// What is asked: `host:port` or `SRV _service._proto.name`.
    pub target: String,
    /// The addresses in the last good answer (`ip:port`), each a back-end taking new clients.
    pub addresses: Vec<String>,
    /// Addresses gone from the answer, draining until they are removed.
    pub draining: Vec<String>,
    /// When the name last resolved (Unix seconds); `None` = never yet.
    pub last_success_unix: Option<u64>,
    /// The last resolution's error, while the name fails (the last good set is kept); `None`
    /// once it resolves again.
    pub last_error: Option<String>,
    /// Resolutions that failed in a row (0 after a success).
    pub consecutive_failures: u32,
}

impl NodeMetric {
    /// A counter named `name` (see [`NodeMetric::name`] for the naming rule).
    pub fn counter(name: impl Into<String>, help: impl Into<String>, value: u64) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind: MetricKind::Counter,
            value,
            labels: Vec::new(),
        }
    }

    /// A gauge named `name` (see [`NodeMetric::name`] for the naming rule).
    pub fn gauge(name: impl Into<String>, help: impl Into<String>, value: u64) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind: MetricKind::Gauge,
            value,
            labels: Vec::new(),
        }
    }

    /// The metric with one more label, e.g. `.with_label("service", "web")`.
    #[must_use]
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

impl MetricKind {
    /// The lower-case name used in JSON and tables (`counter`, `gauge`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

impl StatusDocument {
    /// Takes a snapshot of `source`. Non-finite response times (no sample yet, or a bug
    /// upstream) become 0 because JSON has no NaN and the reader would fail on the `null`.
    pub fn snapshot(source: &dyn StatusSource, node: String, uptime_secs: u64) -> Self {
        let mut web_servers = source.web_servers();
        for row in &mut web_servers {
            if !row.avg_response_ms.is_finite() {
                row.avg_response_ms = 0.0;
            }
        }
        Self {
            node,
            uptime_secs,
            web_servers,
            metrics: source.node_metrics(),
            discovery: source.discovery(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pentaflow_balance::BackendState;

    struct Nan;
    impl StatusSource for Nan {
        fn web_servers(&self) -> Vec<WebServerStatus> {
            vec![WebServerStatus {
                service: "s".into(),
                name: "b".into(),
                address: "127.0.0.1:1".into(),
                state: BackendState::Down,
                weight: 1,
                avg_response_ms: f64::NAN,
                hits: 0,
                open_connections: 0,
                active_requests: 0,
                failures: 0,
                session_groups: 0,
            }]
        }
        fn node_metrics(&self) -> Vec<NodeMetric> {
            vec![NodeMetric::gauge("connections_open", "Open.", 3)]
        }
    }

    #[test]
    fn labels_are_in_the_json_only_when_present() {
        let plain = serde_json::to_value(NodeMetric::gauge("g", "h", 1)).unwrap();
        assert!(plain.get("labels").is_none(), "{plain}");
        let old: NodeMetric =
            serde_json::from_str(r#"{"name":"g","help":"h","kind":"gauge","value":1}"#).unwrap();
        assert!(old.labels.is_empty());
        let m = NodeMetric::counter("c", "h", 2).with_label("backend", "web1");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["labels"][0][1], "web1");
        assert_eq!(serde_json::from_value::<NodeMetric>(json).unwrap(), m);
    }

    #[test]
    fn snapshot_is_valid_json_even_with_nan() {
        let doc = StatusDocument::snapshot(&Nan, "n".into(), 7);
        let text = serde_json::to_string(&doc).unwrap();
        let back: StatusDocument = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back.web_servers[0].avg_response_ms, 0.0);
        assert!(text.contains(r#""kind":"gauge""#), "{text}");
    }
}

/// The JSON document of GET /cluster: this node's view of the array (seed 002's Node Status
/// Table, bucket-table summary and Summary Web Server Status Table) and its data plane. The
/// dashboard and `pentaflow status --cluster` read this shape; a field is added, never
/// renamed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterDocument {
    /// This node's id.
    pub node: Option<u16>,
    /// Its role: `scheduler`, `standby` or `starting`.
    pub role: String,
    /// The scheduler as this node sees it.
    pub scheduler: Option<u16>,
    /// Scheduler only: the takeover's merge is over and new buckets are assigned.
    pub accepting_new: bool,
    /// The configuration version committed through the array and active here.
    pub config_version: u64,
    /// Every configured node, in file order.
    pub nodes: Vec<ClusterNodeRow>,
    /// How long ago the scheduler's status poll last went round every node.
    pub status_sweep_ms_ago: Option<u64>,
    /// The Summary Web Server Status Table (scheduler only; empty elsewhere).
    pub summary: Vec<ClusterSummaryRow>,
    /// Web Server Status rows dropped on the way to the scheduler (over the per-node limit).
    pub server_rows_dropped: u64,
    /// The bucket table as this node holds it.
    pub buckets: ClusterBuckets,
    /// Control datagrams dropped, per reason.
    pub dropped_datagrams: DroppedDatagrams,
    /// This node's scheduler data plane (absent from nodes of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane: Option<DataPlaneStatus>,
    /// Whether this node hears its quorum (absent from nodes of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumStatus>,
}

/// The quorum as one node sees it: without it a node neither takes nor keeps the VIP.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuorumStatus {
    /// Nodes that must be heard, this one included (`[array] quorum`).
    pub needed: u16,
    /// Nodes heard now, this one included.
    pub heard: usize,
    /// `heard >= needed`.
    pub quorate: bool,
}

/// One row of the Node Status Table in [`ClusterDocument`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterNodeRow {
    /// The node's id.
    pub id: u16,
    /// Its LAN address.
    pub address: String,
    /// Whether it is the node answering.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Heard recently (always true for the node answering).
    pub alive: bool,
    /// `active`, `draining`, `drained`, `suspected`, `unresponsive` or `failed`.
    pub state: String,
    /// Its announced role, if alive.
    pub role: Option<String>,
    /// Election priority.
    pub priority: u8,
    /// Administratively enabled.
    pub enabled: bool,
    /// Weight for new buckets.
    pub weight: u32,
    /// Its incarnation (start time), if heard.
    pub incarnation: Option<u64>,
    /// How long ago it was last heard.
    pub heard_ms_ago: Option<u64>,
    /// Its bucket-table version.
    pub table_version: Option<u64>,
    /// Its active configuration version.
    pub config_version: Option<u64>,
    /// Its announced load (per mille of its connection limit).
    pub load_permille: Option<u16>,
    /// Open client connections, from the status poll.
    pub open_connections: Option<u32>,
    /// Requests served, from the status poll.
    pub hits: Option<u64>,
    /// Buckets with a live connection on it, from the status poll.
    pub live_buckets: Option<u32>,
    /// Age of its polled status.
    pub status_age_ms: Option<u64>,
    /// Buckets assigned to it in this node's table.
    pub buckets: usize,
}

/// One row of the Summary Web Server Status Table in [`ClusterDocument`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterSummaryRow {
    /// The service.
    pub service: String,
    /// The back-end's name.
    pub backend: String,
    /// Its address.
    pub address: String,
    /// `up` if any node sees it up, else `down`.
    pub state: String,
    /// Nodes that see it up.
    pub nodes_up: u32,
    /// Nodes that see it down.
    pub nodes_down: u32,
    /// Nodes whose table has it.
    pub nodes_reporting: u32,
    /// Requests over all nodes.
    pub hits: u64,
    /// Open connections over all nodes.
    pub open_connections: u64,
    /// Session groups over all nodes.
    pub session_groups: u64,
    /// Average response time over all nodes.
    pub avg_response_ms: f64,
    /// Age of the oldest row summed.
    pub age_ms: u64,
}

/// The bucket table in [`ClusterDocument`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterBuckets {
    /// Buckets in the table.
    pub size: usize,
    /// Version of the mapping.
    pub version: u64,
    /// Buckets assigned to a node.
    pub assigned: usize,
    /// Buckets assigned to none.
    pub unassigned: usize,
    /// Assigned buckets per node id.
    pub by_node: std::collections::BTreeMap<u16, usize>,
}

/// Control datagrams dropped, per reason, in [`ClusterDocument`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DroppedDatagrams {
    /// Not a datagram of ours.
    pub malformed: u64,
    /// Another protocol version.
    pub bad_version: u64,
    /// Failed authentication.
    pub forged: u64,
    /// Older than the replay window.
    pub stale: u64,
    /// Seen before.
    pub replayed: u64,
    /// Claiming this node's own id.
    pub own_id: u64,
    /// Addressed to another node.
    pub not_for_us: u64,
}

/// This node's scheduler data plane in [`ClusterDocument`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataPlaneStatus {
    /// `down`, `starting` or `up`.
    pub state: String,
    /// What the last start got: `xdp_native`, `xdp_generic` or `af_packet` (`[array]
    /// data_plane`); absent before the first start and from older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Why that one (the choice asked for, what was tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Times it could not start or died since the process started (each made the node step
    /// down).
    pub failures: u64,
    /// The last failure.
    pub last_failure: Option<DataPlaneFailure>,
}

/// A data-plane failure in [`DataPlaneStatus`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataPlaneFailure {
    /// It failed to start (true) or died running (false).
    pub at_start: bool,
    /// Its whole cause chain.
    pub cause: String,
    /// How long ago.
    pub ms_ago: u64,
}

//! `GET /metrics`: a status snapshot encoded as OpenMetrics text (what Prometheus scrapes), or,
//! unless OpenMetrics is asked for, in the classic text format ([`classic`]).
//!
//! Owns: metric names, help texts, labels and the escaping of label values and help texts.
//! Must not: keep its own counters. A fresh [`Registry`] holds one [`Collector`] over the
//! snapshot taken for this scrape, so every number comes from the proxy's own counters and
//! the `/status` JSON and `/metrics` can never disagree in kind or naming.

use std::collections::{HashMap, HashSet};
use std::fmt;

use pentaflow_balance::{BackendState, WebServerStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelValue, GaugeValueEncoder, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::error::AdminError;
use crate::model::{MetricKind, NodeMetric, StatusDocument};

/// Every metric name starts with this, so pentaflow's series are easy to select and never
/// collide with another exporter's on the same Prometheus.
const PREFIX: &str = "pentaflow";
/// The `Content-Type` of the body: OpenMetrics 1.0 text, which is what prometheus-client
/// writes (counters end in `_total`, the body ends with `# EOF`) and Prometheus parses.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Web Server Status Table as metric families, one per column, labelled `service` and
/// `backend`. Kept as data so the list of names taken (see [`SnapshotCollector::taken`]) can
/// never drift from what is written.
const BACKEND_FAMILIES: &[BackendFamily] = &[
    BackendFamily {
        name: "backend_up",
        help: "1 if the back-end passes health checks, else 0.",
        column: Column::Level(|r| u64::from(r.state == BackendState::Up)),
    },
    BackendFamily {
        name: "backend_weight",
        help: "Configured weight.",
        column: Column::Level(|r| u64::from(r.weight)),
    },
    BackendFamily {
        name: "backend_hits",
        help: "Requests sent to the back-end.",
        column: Column::Count(|r| r.hits),
    },
    BackendFamily {
        name: "backend_open_connections",
        help: "Connections open to the back-end.",
        column: Column::Level(|r| r.open_connections),
    },
    BackendFamily {
        name: "backend_active_requests",
        help: "Requests in flight to the back-end.",
        column: Column::Level(|r| r.active_requests),
    },
    BackendFamily {
        name: "backend_failures",
        help: "Failed requests and health checks.",
        column: Column::Count(|r| r.failures),
    },
    BackendFamily {
        name: "backend_avg_response",
        help: "Average response time of the back-end.",
        column: Column::Seconds(|r| r.avg_response_ms / MILLIS_PER_SECOND),
    },
    BackendFamily {
        name: "backend_session_groups",
        help: "Session hash groups assigned.",
        column: Column::Level(|r| u64::try_from(r.session_groups).unwrap_or(u64::MAX)),
    },
];
/// The info family naming the node (sample `pentaflow_node_info{node="..."} 1`).
const NODE_FAMILY: &str = "node";
/// The uptime gauge (in seconds, so `pentaflow_uptime_seconds`).
const UPTIME_FAMILY: &str = "uptime";
/// Response times arrive in milliseconds; Prometheus convention is base units (seconds).
const MILLIS_PER_SECOND: f64 = 1000.0;

/// The body of `GET /metrics`: `doc` as a complete OpenMetrics text exposition (ending in
/// `# EOF`). Per back-end, labelled `service` and `backend`: `pentaflow_backend_up`,
/// `_weight`, `_hits_total`, `_open_connections`, `_active_requests`, `_failures_total`,
/// `_avg_response_seconds`, `_session_groups`; then `pentaflow_node_info`,
/// `pentaflow_uptime_seconds` and each node metric as `pentaflow_NAME` (`_total` for counters;
/// node metrics of one name with distinct labels are the series of one family).
///
/// Public so the binary can print what a scrape would see without a listener.
pub fn encode_metrics(doc: StatusDocument) -> Result<String, AdminError> {
    encode(doc).map_err(|_| AdminError::Encode)
}

/// [`encode_metrics`] with the encoder's own error.
pub(crate) fn encode(doc: StatusDocument) -> Result<String, fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(SnapshotCollector { doc }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Turns one snapshot into metric families when the registry is encoded.
#[derive(Debug)]
struct SnapshotCollector {
    doc: StatusDocument,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let node = [("node", Escaped(&self.doc.node))];
        encoder
            .encode_descriptor(
                NODE_FAMILY,
                "The node's name and version.",
                None,
                MetricType::Info,
            )?
            .encode_info(&node)?;
        encoder
            .encode_descriptor(
                UPTIME_FAMILY,
                "Seconds since the admin API started.",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?
            .encode_gauge(&Level(self.doc.uptime_secs))?;
        self.encode_backends(&mut encoder)?;
        self.encode_node_metrics(&mut encoder)
    }
}

/// One column of the status table as a metric family.
struct BackendFamily {
    /// Name without prefix or unit (a [`Column::Seconds`] family gets `_seconds`).
    name: &'static str,
    help: &'static str,
    column: Column,
}

/// How to read a column from a row; the variant decides type, unit and encoding.
#[derive(Clone, Copy)]
enum Column {
    /// Only grows: a counter, its sample name gets `_total`.
    Count(fn(&WebServerStatus) -> u64),
    /// Goes up and down: a gauge.
    Level(fn(&WebServerStatus) -> u64),
    /// A duration: a gauge in the seconds unit.
    Seconds(fn(&WebServerStatus) -> f64),
}

impl SnapshotCollector {
    fn encode_backends(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        // Two rows with one label set would make the scrape invalid; keep the first.
        let mut seen = HashSet::new();
        let rows: Vec<&WebServerStatus> = self
            .doc
            .web_servers
            .iter()
            .filter(|r| seen.insert((r.service.as_str(), r.name.as_str())))
            .collect();
        for family in BACKEND_FAMILIES {
            let (metric_type, unit) = family.kind();
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, unit, metric_type)?;
            for row in &rows {
                let labels = labels(row);
                let mut sample = metric.encode_family(&labels)?;
                match family.column {
                    Column::Count(read) => {
                        sample.encode_counter::<NoLabelSet, u64, u64>(&read(row), None)?;
                    }
                    Column::Level(read) => sample.encode_gauge(&Level(read(row)))?,
                    Column::Seconds(read) => sample.encode_gauge(&read(row))?,
                }
            }
        }
        Ok(())
    }

    fn encode_node_metrics(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        // Metrics of one (normalised) name are one family, written together in the order of
        // first appearance, with the help text and kind of the first; a later metric of that
        // name with another kind, or with a label set already written, would make the scrape
        // invalid and is skipped.
        let mut taken = Self::taken();
        let mut families: Vec<(String, Vec<&NodeMetric>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for metric in &self.doc.metrics {
            let name = family_name(metric);
            if let Some(&i) = index.get(&name) {
                let (_, members) = &mut families[i];
                if members
                    .first()
                    .is_some_and(|first| first.kind == metric.kind)
                {
                    members.push(metric);
                } else {
                    tracing::debug!(metric = %metric.name, "node metric skipped: kind differs");
                }
                continue;
            }
            let sample = match metric.kind {
                MetricKind::Counter => format!("{name}_total"),
                MetricKind::Gauge => name.clone(),
            };
            if taken.contains(&name) || taken.contains(&sample) {
                tracing::debug!(metric = %metric.name, "node metric skipped: name already used");
                continue;
            }
            taken.insert(sample);
            taken.insert(name.clone());
            index.insert(name.clone(), families.len());
            families.push((name, vec![metric]));
        }
        for (name, members) in families {
            let Some(first) = members.first() else {
                continue;
            };
            let help = escape_help(&first.help)?;
            let metric_type = match first.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(&name, &help, None, metric_type)?;
            let mut written = HashSet::new();
            for metric in members {
                let labels = label_set(metric);
                let mut key: Vec<(String, &str)> =
                    labels.iter().map(|(k, v)| (k.clone(), v.0)).collect();
                key.sort_unstable();
                if !written.insert(key) {
                    tracing::debug!(metric = %metric.name, "node metric skipped: series repeated");
                    continue;
                }
                if labels.is_empty() {
                    encode_value(&mut family, metric)?;
                } else {
                    encode_value(&mut family.encode_family(&labels)?, metric)?;
                }
            }
        }
        Ok(())
    }

    /// Family and sample names (without the prefix) written before the node metrics. A node
    /// metric that takes one of them would put two series of one name in the scrape, which
    /// Prometheus rejects as a whole, so such a metric is skipped.
    fn taken() -> HashSet<String> {
        let mut taken = HashSet::from([
            NODE_FAMILY.to_owned(),
            format!("{NODE_FAMILY}_info"),
            format!("{UPTIME_FAMILY}_{}", Unit::Seconds.as_str()),
        ]);
        for family in BACKEND_FAMILIES {
            let name = match family.kind() {
                (_, Some(unit)) => format!("{}_{}", family.name, unit.as_str()),
                _ => family.name.to_owned(),
            };
            if matches!(family.column, Column::Count(_)) {
                taken.insert(format!("{name}_total"));
            }
            taken.insert(name);
        }
        taken
    }
}

impl BackendFamily {
    /// The family's type and unit.
    fn kind(&self) -> (MetricType, Option<&'static Unit>) {
        const SECONDS: &Unit = &Unit::Seconds;
        match self.column {
            Column::Count(_) => (MetricType::Counter, None),
            Column::Level(_) => (MetricType::Gauge, None),
            Column::Seconds(_) => (MetricType::Gauge, Some(SECONDS)),
        }
    }
}

fn labels(row: &WebServerStatus) -> [(&'static str, Escaped<'_>); 2] {
    [
        ("service", Escaped(&row.service)),
        ("backend", Escaped(&row.name)),
    ]
}

/// Writes one node metric's value on its (possibly labelled) sample.
fn encode_value(sample: &mut MetricEncoder<'_>, metric: &NodeMetric) -> fmt::Result {
    match metric.kind {
        MetricKind::Counter => sample.encode_counter::<NoLabelSet, u64, u64>(&metric.value, None),
        MetricKind::Gauge => sample.encode_gauge(&Level(metric.value)),
    }
}

/// A node metric's labels with valid names (as [`family_name`] makes metric names valid) and
/// escaped values; a label name given twice keeps its first value (a series cannot carry one
/// label twice).
fn label_set(metric: &NodeMetric) -> Vec<(String, Escaped<'_>)> {
    let mut out: Vec<(String, Escaped<'_>)> = Vec::with_capacity(metric.labels.len());
    for (name, value) in &metric.labels {
        let mut name = sanitize(name);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert_str(0, "unnamed_");
        }
        if out.iter().all(|(n, _)| *n != name) {
            out.push((name, Escaped(value)));
        }
    }
    out
}

/// `text` with every character outside `[A-Za-z0-9_]` replaced by `_`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The family name of a node metric: invalid characters become `_` (names come from code
/// today, but one bad name must not invalidate the whole scrape) and a counter's `_total` is
/// dropped because the encoder appends it.
fn family_name(metric: &NodeMetric) -> String {
    let mut name = sanitize(&metric.name);
    if metric.kind == MetricKind::Counter {
        if let Some(stripped) = name.strip_suffix("_total") {
            name.truncate(stripped.len());
        }
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "unnamed_");
    }
    name
}

/// OpenMetrics escapes `\`, `"` and line feeds in help texts; prometheus-client writes them raw.
fn escape_help(help: &str) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(help.len());
    escape_into(&mut out, help)?;
    Ok(out)
}

/// Writes `text` with the three OpenMetrics escapes (`\\`, `\"`, `\n`). Runs between
/// escapes are written whole: names rarely need escaping and this runs once per sample.
fn escape_into(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)
}

/// A gauge reading. prometheus-client refuses (fails the whole scrape on) a `u64` gauge above
/// `i64::MAX`; no real level gets there, so a corrupt one saturates instead.
#[derive(Debug, Clone, Copy)]
struct Level(u64);

impl EncodeGaugeValue for Level {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> fmt::Result {
        EncodeGaugeValue::encode(&i64::try_from(self.0).unwrap_or(i64::MAX), encoder)
    }
}

/// A label value escaped as OpenMetrics requires (`\\`, `\"`, `\n`); prometheus-client writes
/// label values raw, and a back-end or service name with a quote would break the scrape.
#[derive(Debug, Clone, Copy)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        escape_into(encoder, self.0)
    }
}

pub(crate) mod classic;

#[cfg(test)]
mod tests;

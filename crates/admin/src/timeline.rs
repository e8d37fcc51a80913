//! The dashboard's memory: the last minutes of per-back-end samples (request rate, response
//! time, errors) and the events timeline (back-ends going down or up; in an array take-overs,
//! nodes failed or joined, drains, config commits).
//!
//! Owns: two bounded rings filled by [`Timeline::observe`], which the admin server calls about
//! once a second with a fresh snapshot and the wall-clock time, and their JSON form for the
//! page (`GET /ui/history?since=N`, only what is newer than `N`, so a page polling every
//! second fetches a few hundred bytes, not the whole ring). Events are derived by comparing each
//! snapshot with the one before, so nothing else has to report them.
//!
//! Must not: read a clock or the source itself (time and snapshots are arguments, which keeps
//! it testable), or grow: [`SAMPLES`] points per series, [`MAX_SERIES`] series, [`EVENTS`]
//! events. The array facts are read from the `GET /cluster` JSON by field name, so this module
//! follows that document and does not depend on the cluster crate.

use std::collections::{BTreeMap, VecDeque};

use pentaflow_balance::{BackendState, WebServerStatus};
use serde::Serialize;
use serde_json::Value;

/// Points kept per series: five minutes at one sample a second.
pub(crate) const SAMPLES: usize = 300;
/// Back-ends with a sparkline; past that the table still shows every row, without a history
/// (a node with thousands of back-ends must not keep megabytes for a page nobody may open).
pub(crate) const MAX_SERIES: usize = 256;
/// Events kept for the timeline.
pub(crate) const EVENTS: usize = 200;

/// The samples and events of the last minutes.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Number of the last observation (the first is 1).
    seq: u64,
    last_at_ms: Option<u64>,
    series: BTreeMap<(String, String), Series>,
    events: VecDeque<Event>,
    /// Sequence number of the last event (the first is 1).
    event_seq: u64,
    cluster: Option<ClusterFacts>,
}

/// One back-end's sparklines: point `i` is observation `first_seq + i`.
#[derive(Debug)]
struct Series {
    first_seq: u64,
    rate: VecDeque<f32>,
    response_ms: VecDeque<f32>,
    errors: VecDeque<f32>,
    last_hits: u64,
    last_failures: u64,
    state: BackendState,
}

/// One entry of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Event {
    /// Increasing number, for `since`.
    pub(crate) seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    /// `backend_down`, `backend_up`, `takeover` (the scheduler changed), `elected` (a first
    /// scheduler), `no_scheduler`, `node_failed`, `node_joined`, `node_draining`,
    /// `node_enabled`, `config_commit`.
    pub(crate) kind: &'static str,
    /// One line for the operator.
    pub(crate) text: String,
}

/// What the timeline remembers of one `/cluster` document.
#[derive(Debug, Clone, PartialEq)]
struct ClusterFacts {
    scheduler: Option<u64>,
    config_version: Option<u64>,
    /// `(id, alive, enabled)` of every node.
    nodes: BTreeMap<u64, (bool, bool)>,
}

impl Timeline {
    /// Records one snapshot taken at `at_ms` (ms since the epoch): one point per back-end and
    /// the events since the previous snapshot. `cluster` is the `/cluster` document (`null`
    /// outside an array).
    pub(crate) fn observe(&mut self, at_ms: u64, rows: &[WebServerStatus], cluster: &Value) {
        self.seq += 1;
        // Rates need the interval; the first observation (or a clock step back) has none.
        let secs = match self.last_at_ms {
            Some(last) if at_ms > last => Some((at_ms - last) as f32 / 1000.0),
            _ => None,
        };
        self.last_at_ms = Some(at_ms);
        self.observe_rows(at_ms, secs, rows);
        self.observe_cluster(at_ms, cluster);
    }

    fn observe_rows(&mut self, at_ms: u64, secs: Option<f32>, rows: &[WebServerStatus]) {
        let seq = self.seq;
        let mut seen = std::collections::BTreeSet::new();
        for row in rows {
            let key = (row.service.clone(), row.name.clone());
            seen.insert(key.clone());
            let fresh = !self.series.contains_key(&key);
            if fresh && self.series.len() >= MAX_SERIES {
                continue;
            }
            let series = self.series.entry(key).or_insert_with(|| Series {
                first_seq: seq,
                rate: VecDeque::new(),
                response_ms: VecDeque::new(),
                errors: VecDeque::new(),
                last_hits: row.hits,
                last_failures: row.failures,
                state: row.state,
            });
            // A counter that went back (a reload replaced the back-end) counts from zero.
            let per_sec = |now: u64, before: u64| match secs {
                Some(s) if !fresh => now.saturating_sub(before) as f32 / s,
                _ => 0.0,
            };
            let rate = per_sec(row.hits, series.last_hits);
            let errors = per_sec(row.failures, series.last_failures);
            let ms = if row.avg_response_ms.is_finite() {
                row.avg_response_ms as f32
            } else {
                0.0
            };
            series.push(rate, ms, errors);
            series.last_hits = row.hits;
            series.last_failures = row.failures;
            let changed = series.state != row.state;
            series.state = row.state;
            if changed {
                let (kind, word) = match row.state {
                    BackendState::Down => ("backend_down", "down"),
                    BackendState::Up => ("backend_up", "up"),
                };
                let text = format!("back-end {} of {} is {word}", row.name, row.service);
                self.push_event(at_ms, kind, text);
            }
        }
        self.series.retain(|key, _| seen.contains(key));
    }

    fn observe_cluster(&mut self, at_ms: u64, cluster: &Value) {
        let now = ClusterFacts::read(cluster);
        let before = std::mem::replace(&mut self.cluster, now.clone());
        let (Some(before), Some(now)) = (before, now) else {
            return;
        };
        if now.scheduler != before.scheduler {
            let (kind, text) = match (before.scheduler, now.scheduler) {
                (Some(a), Some(b)) => (
                    "takeover",
                    format!("node {b} took over as scheduler from node {a}"),
                ),
                (None, Some(b)) => ("elected", format!("node {b} became the scheduler")),
                (Some(a), None) => ("no_scheduler", format!("no scheduler (node {a} was)")),
                (None, None) => ("no_scheduler", String::new()),
            };
            self.push_event(at_ms, kind, text);
        }
        for (id, &(alive, enabled)) in &now.nodes {
            let Some(&(was_alive, was_enabled)) = before.nodes.get(id) else {
                self.push_event(at_ms, "node_joined", format!("node {id} joined"));
                continue;
            };
            if was_alive && !alive {
                self.push_event(at_ms, "node_failed", format!("node {id} failed"));
            } else if !was_alive && alive {
                self.push_event(at_ms, "node_joined", format!("node {id} joined"));
            }
            if was_enabled && !enabled {
                self.push_event(at_ms, "node_draining", format!("node {id} is draining"));
            } else if !was_enabled && enabled {
                self.push_event(
                    at_ms,
                    "node_enabled",
                    format!("node {id} takes new buckets"),
                );
            }
        }
        if let (Some(a), Some(b)) = (before.config_version, now.config_version) {
            if b != a {
                let text = format!("configuration version {b} committed (was {a})");
                self.push_event(at_ms, "config_commit", text);
            }
        }
    }

    fn push_event(&mut self, at_ms: u64, kind: &'static str, text: String) {
        self.event_seq += 1;
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            seq: self.event_seq,
            at_ms,
            kind,
            text,
        });
    }

    /// What is newer than observation `since` (and events newer than event `events_since`),
    /// as the page reads it.
    pub(crate) fn json(&self, since: u64, events_since: u64) -> Value {
        let series: Vec<Value> = self
            .series
            .iter()
            .map(|((service, name), s)| {
                // Points after `since`: skip the older ones (never more than the ring holds).
                let skip = usize::try_from(since.saturating_sub(s.first_seq - 1))
                    .unwrap_or(usize::MAX)
                    .min(s.rate.len());
                let first_seq = s.first_seq + skip as u64;
                let tail = |ring: &VecDeque<f32>| -> Vec<f32> {
                    ring.iter()
                        .skip(skip)
                        .map(|v| (v * 100.0).round() / 100.0)
                        .collect()
                };
                serde_json::json!({
                    "service": service,
                    "name": name,
                    "first_seq": first_seq,
                    "rate": tail(&s.rate),
                    "response_ms": tail(&s.response_ms),
                    "errors": tail(&s.errors),
                })
            })
            .collect();
        let events: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.seq > events_since)
            .collect();
        serde_json::json!({
            "seq": self.seq,
            "event_seq": self.event_seq,
            "interval_ms": INTERVAL_MS,
            "samples": SAMPLES,
            "series": series,
            "events": events,
        })
    }
}

/// How often the admin server observes (the page polls at the same pace).
pub(crate) const INTERVAL_MS: u64 = 1000;

impl Series {
    fn push(&mut self, rate: f32, ms: f32, errors: f32) {
        if self.rate.len() == SAMPLES {
            self.rate.pop_front();
            self.response_ms.pop_front();
            self.errors.pop_front();
            self.first_seq += 1;
        }
        self.rate.push_back(rate);
        self.response_ms.push_back(ms);
        self.errors.push_back(errors);
    }
}

impl ClusterFacts {
    /// The facts of a `/cluster` document; `None` for `null` (not in an array).
    fn read(doc: &Value) -> Option<Self> {
        let object = doc.as_object()?;
        let nodes = object
            .get("nodes")
            .and_then(Value::as_array)
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| {
                        let id = n.get("id")?.as_u64()?;
                        let alive = n.get("alive").and_then(Value::as_bool).unwrap_or(false);
                        let enabled = n.get("enabled").and_then(Value::as_bool).unwrap_or(true);
                        Some((id, (alive, enabled)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            scheduler: object.get("scheduler").and_then(Value::as_u64),
            config_version: object.get("config_version").and_then(Value::as_u64),
            nodes,
        })
    }
}

#[cfg(test)]
mod tests;

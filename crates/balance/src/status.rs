//! The Web Server Status Table of seed 002 (Fig. 7): one row per back-end, pure data.
//!
//! Owns: the row type and its serde form (the admin API serves it as JSON, the cluster sums
//! rows from every node into the summary table). Must not: compute anything from live state —
//! the proxy fills rows from its counters.

use serde::{Deserialize, Serialize};

/// One back-end as a node sees it (seed 002 Fig. 7, plus the session groups of Fig. 8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebServerStatus {
    /// The service (listener / site) the back-end belongs to.
    pub service: String,
    /// The back-end's configured name.
    pub name: String,
    /// The back-end's address (`host:port`).
    pub address: String,
    /// Up or down, from health checks.
    pub state: BackendState,
    /// Configured weight.
    pub weight: u32,
    /// Average response time in milliseconds.
    pub avg_response_ms: f64,
    /// Requests sent to it since start.
    pub hits: u64,
    /// Open connections to it now.
    pub open_connections: u64,
    /// Requests in flight to it now.
    pub active_requests: u64,
    /// Failed requests or health checks since start.
    pub failures: u64,
    /// Session / cookie hash groups assigned to it.
    pub session_groups: usize,
}

/// Health of a back-end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Passing health checks; receives traffic.
    Up,
    /// Failing health checks or disabled; receives no new traffic.
    Down,
}

impl BackendState {
    /// `Up` if the back-end is available, else `Down`.
    #[must_use]
    pub fn from_available(available: bool) -> Self {
        if available {
            Self::Up
        } else {
            Self::Down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_helper() {
        assert_eq!(BackendState::from_available(true), BackendState::Up);
        assert_eq!(BackendState::from_available(false), BackendState::Down);
    }

    #[test]
    fn json_form_is_stable() {
        let row = WebServerStatus {
            service: "shop".into(),
            name: "web1".into(),
            address: "10.0.0.11:80".into(),
            state: BackendState::Up,
            weight: 2,
            avg_response_ms: 1.5,
            hits: 10,
            open_connections: 3,
            active_requests: 1,
            failures: 0,
            session_groups: 4,
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["state"], "up");
        assert_eq!(json["session_groups"], 4);
        let back: WebServerStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, row);
        assert_eq!(
            serde_json::to_string(&BackendState::Down).unwrap(),
            "\"down\""
        );
    }
}

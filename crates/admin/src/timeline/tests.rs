use serde_json::json;

use super::*;

fn row(name: &str, state: BackendState, hits: u64, failures: u64) -> WebServerStatus {
    WebServerStatus {
        service: "web".into(),
        name: name.into(),
        address: "127.0.0.1:1".into(),
        state,
        weight: 1,
        avg_response_ms: 2.5,
        hits,
        open_connections: 0,
        active_requests: 0,
        failures,
        session_groups: 0,
    }
}

fn cluster(scheduler: u64, version: u64, nodes: &[(u64, bool, bool)]) -> Value {
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|&(id, alive, enabled)| json!({"id": id, "alive": alive, "enabled": enabled}))
        .collect();
    json!({"scheduler": scheduler, "config_version": version, "nodes": nodes})
}

#[test]
fn rates_are_per_second_deltas_and_the_first_point_is_zero() {
    let mut t = Timeline::default();
    t.observe(10_000, &[row("a", BackendState::Up, 100, 1)], &Value::Null);
    t.observe(12_000, &[row("a", BackendState::Up, 140, 5)], &Value::Null);
    let doc = t.json(0, 0);
    let s = &doc["series"][0];
    assert_eq!(s["name"], "a");
    assert_eq!(s["first_seq"], 1);
    assert_eq!(s["rate"], json!([0.0, 20.0]));
    assert_eq!(s["errors"], json!([0.0, 2.0]));
    assert_eq!(s["response_ms"], json!([2.5, 2.5]));
    // Only what is newer than `since`.
    let tail = t.json(1, 0);
    assert_eq!(tail["series"][0]["first_seq"], 2);
    assert_eq!(tail["series"][0]["rate"], json!([20.0]));
    assert_eq!(t.json(2, 0)["series"][0]["rate"], json!([]));
}

#[test]
fn a_counter_going_back_and_a_clock_step_back_give_zero_not_garbage() {
    let mut t = Timeline::default();
    t.observe(10_000, &[row("a", BackendState::Up, 100, 0)], &Value::Null);
    t.observe(11_000, &[row("a", BackendState::Up, 3, 0)], &Value::Null);
    t.observe(10_500, &[row("a", BackendState::Up, 50, 0)], &Value::Null);
    assert_eq!(t.json(0, 0)["series"][0]["rate"], json!([0.0, 0.0, 0.0]));
}

#[test]
fn state_changes_are_events_and_the_rings_are_bounded() {
    let mut t = Timeline::default();
    for i in 0..(SAMPLES as u64 + 20) {
        let state = if i == 5 {
            BackendState::Down
        } else {
            BackendState::Up
        };
        t.observe(i * 1000, &[row("a", state, i, 0)], &Value::Null);
    }
    let doc = t.json(0, 0);
    assert_eq!(doc["series"][0]["rate"].as_array().unwrap().len(), SAMPLES);
    assert_eq!(doc["series"][0]["first_seq"], 21);
    let kinds: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backend_down", "backend_up"]);
    assert_eq!(doc["events"][0]["at_ms"], 5000);
    assert_eq!(doc["events"][0]["text"], "back-end a of web is down");
    assert_eq!(t.json(0, 1)["events"].as_array().unwrap().len(), 1);

    for i in 0..(EVENTS + 10) {
        t.push_event(0, "backend_up", format!("{i}"));
    }
    assert_eq!(t.events.len(), EVENTS);
}

#[test]
fn series_are_capped_and_removed_back_ends_forgotten() {
    let mut t = Timeline::default();
    let rows: Vec<WebServerStatus> = (0..MAX_SERIES + 5)
        .map(|i| row(&format!("b{i:04}"), BackendState::Up, 0, 0))
        .collect();
    t.observe(0, &rows, &Value::Null);
    assert_eq!(t.series.len(), MAX_SERIES);
    t.observe(1000, &rows[..2], &Value::Null);
    assert_eq!(t.series.len(), 2);
}

#[test]
fn array_events_take_over_failure_join_drain_commit() {
    let mut t = Timeline::default();
    t.observe(0, &[], &cluster(1, 3, &[(1, true, true), (2, true, true)]));
    assert!(t.events.is_empty(), "the first snapshot is the baseline");
    t.observe(
        1000,
        &[],
        &cluster(2, 3, &[(1, false, true), (2, true, true)]),
    );
    t.observe(
        2000,
        &[],
        &cluster(2, 4, &[(1, true, true), (2, true, false), (3, true, true)]),
    );
    let texts: Vec<(String, String)> = t
        .events
        .iter()
        .map(|e| (e.kind.to_owned(), e.text.clone()))
        .collect();
    let expected = [
        ("takeover", "node 2 took over as scheduler from node 1"),
        ("node_failed", "node 1 failed"),
        ("node_joined", "node 1 joined"),
        ("node_draining", "node 2 is draining"),
        ("node_joined", "node 3 joined"),
        ("config_commit", "configuration version 4 committed (was 3)"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, t)| ((*k).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(texts, expected);
    // A first scheduler, and none at all, are told apart from a take-over.
    let mut u = Timeline::default();
    u.observe(0, &[], &json!({"scheduler": null, "nodes": []}));
    u.observe(1000, &[], &json!({"scheduler": 1, "nodes": []}));
    u.observe(2000, &[], &json!({"scheduler": null, "nodes": []}));
    let kinds: Vec<&str> = u.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["elected", "no_scheduler"]);
    // Leaving the array (null) and coming back is a new baseline, not a flood of events.
    t.observe(3000, &[], &Value::Null);
    t.observe(4000, &[], &cluster(9, 1, &[]));
    assert_eq!(t.events.len(), 6);
}

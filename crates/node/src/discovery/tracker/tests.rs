#![allow(clippy::unwrap_used)]

use super::*;
use pentaflow_config::DnsTarget;

fn settings() -> ResolveSettings {
    ResolveSettings {
        resolvers: Vec::new(),
        min_ttl: Duration::from_secs(2),
        max_ttl: Duration::from_secs(60),
        drain: Duration::from_secs(10),
    }
}

fn entry() -> DiscoveredBackend {
    DiscoveredBackend {
        name: "app".into(),
        target: DnsTarget::Host {
            host: "app.internal".into(),
            port: 80,
        },
        weight: 1,
        state: BackendAdminState::Ready,
    }
}

fn answer(addrs: &[&str], ttl: u64) -> Answer {
    Answer {
        addresses: addrs.iter().map(|a| (a.parse().unwrap(), 1)).collect(),
        ttl: Duration::from_secs(ttl),
    }
}

fn names_and_states(t: &Tracker) -> Vec<(String, BackendAdminState)> {
    t.backends()
        .into_iter()
        .map(|b| (b.name, b.state))
        .collect()
}

#[test]
fn the_ttl_is_clamped_to_min_and_max() {
    let t0 = Instant::now();
    let mut t = Tracker::new(entry(), settings(), t0);
    assert!(t.resolve_due(t0));
    t.observe(Ok(answer(&["10.0.0.1:80"], 0)), t0);
    assert_eq!(t.next_wake(), t0 + Duration::from_secs(2), "TTL 0 → min");
    assert!(!t.resolve_due(t0 + Duration::from_secs(1)));
    t.observe(Ok(answer(&["10.0.0.1:80"], 86_400)), t0);
    assert_eq!(t.next_wake(), t0 + Duration::from_secs(60), "a day → max");
    t.observe(Ok(answer(&["10.0.0.1:80"], 30)), t0);
    assert_eq!(t.next_wake(), t0 + Duration::from_secs(30), "within: as is");
}

#[test]
fn a_failure_keeps_the_last_good_set_and_backs_off() {
    let t0 = Instant::now();
    let mut t = Tracker::new(entry(), settings(), t0);
    t.observe(Ok(answer(&["10.0.0.1:80", "10.0.0.2:80"], 5)), t0);
    let good = t.backends();
    let mut now = t0;
    let mut delays = Vec::new();
    for _ in 0..7 {
        t.observe(Err("timed out".into()), now);
        delays.push(t.next_wake() - now);
        now = t.next_wake();
    }
    assert_eq!(t.backends(), good, "a failure must not change the set");
    assert_eq!(t.last_error.as_deref(), Some("timed out"));
    assert_eq!(
        (t.consecutive_failures, t.resolved_failed, t.resolved_ok),
        (7, 7, 1)
    );
    let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
    assert_eq!(
        secs,
        [2, 4, 8, 16, 32, 60, 60],
        "doubling from min, capped at max"
    );
    t.observe(Ok(answer(&["10.0.0.1:80"], 5)), now);
    assert_eq!((t.last_error.as_deref(), t.consecutive_failures), (None, 0));
}

#[test]
fn a_vanished_address_drains_then_is_removed_and_may_come_back() {
    let t0 = Instant::now();
    let mut t = Tracker::new(entry(), settings(), t0);
    t.observe(Ok(answer(&["10.0.0.1:80", "10.0.0.2:80"], 5)), t0);
    let t1 = t0 + Duration::from_secs(5);
    t.observe(Ok(answer(&["10.0.0.2:80"], 5)), t1);
    assert_eq!(
        names_and_states(&t),
        [
            ("app#10.0.0.2:80".to_owned(), BackendAdminState::Ready),
            ("app#10.0.0.1:80".to_owned(), BackendAdminState::Drain),
        ]
    );
    // The drain's end is the next thing to do when it comes before the next resolution.
    t.observe(Ok(answer(&["10.0.0.2:80"], 60)), t1);
    assert_eq!(t.next_wake(), t1 + Duration::from_secs(10));
    t.expire(t1 + Duration::from_secs(9));
    assert_eq!(t.backends().len(), 2, "still draining");
    t.expire(t1 + Duration::from_secs(10));
    assert_eq!(
        names_and_states(&t),
        [("app#10.0.0.2:80".to_owned(), BackendAdminState::Ready)]
    );
    // Back while draining: ready again under the same name.
    let t2 = t1 + Duration::from_secs(20);
    t.observe(Ok(answer(&["10.0.0.3:80"], 5)), t2);
    t.observe(Ok(answer(&["10.0.0.2:80", "10.0.0.3:80"], 5)), t2);
    assert_eq!(t.draining().count(), 0);
    assert_eq!(t.addresses().count(), 2);
}

#[test]
fn an_entry_in_maintenance_keeps_its_addresses_in_maintenance() {
    let t0 = Instant::now();
    let mut e = entry();
    e.state = BackendAdminState::Maintenance;
    let mut t = Tracker::new(e, settings(), t0);
    t.observe(Ok(answer(&["10.0.0.1:80"], 5)), t0);
    t.observe(Ok(answer(&["10.0.0.2:80"], 5)), t0);
    assert!(t
        .backends()
        .iter()
        .all(|b| b.state == BackendAdminState::Maintenance));
}

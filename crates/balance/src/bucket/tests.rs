//! Unit tests, one or more per rule of the table; the property tests are in `props`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

mod props;

pub(super) fn node(id: u16, weight: u32) -> NodeCandidate {
    NodeCandidate {
        id: NodeId(id),
        weight,
        enabled: true,
        alive: true,
    }
}

/// Counts by scanning every bucket (the slow truth the incremental counts must equal).
pub(super) fn rescan(t: &BucketTable) -> BTreeMap<NodeId, usize> {
    let mut m = BTreeMap::new();
    for b in 0..t.len() {
        if let Some((n, _)) = t.get(b) {
            *m.entry(n).or_insert(0) += 1;
        }
    }
    m
}

pub(super) fn mapping(t: &BucketTable) -> Vec<Option<(NodeId, u64)>> {
    (0..t.len()).map(|b| t.get(b)).collect()
}

#[test]
fn size_must_be_a_power_of_two_in_range() {
    for size in [0, 1, 3, 100, MAX_BUCKETS * 2] {
        assert_eq!(
            BucketTable::new(size).unwrap_err(),
            BucketError::BadSize { size }
        );
    }
    for size in [2, 1024, 65_536] {
        let t = BucketTable::new(size).unwrap();
        assert_eq!(t.len(), size);
        assert!(!t.is_empty());
        assert_eq!(t.version(), 0);
        assert!(t.assigned_counts().is_empty());
    }
}

#[test]
fn bucket_of_is_in_range_and_canonical() {
    let t = BucketTable::new(1024).unwrap();
    let v4 = Ipv4Addr::new(192, 0, 2, 7);
    let b = t.bucket_of(IpAddr::V4(v4), 40_000);
    assert!(b < 1024);
    assert_eq!(t.bucket_of(IpAddr::V6(v4.to_ipv6_mapped()), 40_000), b);
    let spread: std::collections::BTreeSet<usize> = (0..200u16)
        .map(|p| t.bucket_of(IpAddr::V4(v4), 30_000 + p))
        .collect();
    assert!(
        spread.len() > 150,
        "ports should spread over buckets: {}",
        spread.len()
    );
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert!(t.bucket_of(v6, 1) < 1024);
}

#[test]
fn route_assigns_least_assigned_and_ties_to_lowest_id() {
    let mut t = BucketTable::new(16).unwrap();
    let nodes = [node(3, 1), node(1, 1), node(2, 1)];
    assert_eq!(t.route(0, &nodes, 10), Some(NodeId(1)));
    assert_eq!(t.route(1, &nodes, 10), Some(NodeId(2)));
    assert_eq!(t.route(2, &nodes, 10), Some(NodeId(3)));
    assert_eq!(t.route(3, &nodes, 10), Some(NodeId(1)));
    assert_eq!(t.version(), 4);
    assert_eq!(t.get(3), Some((NodeId(1), 10)));
}

#[test]
fn route_follows_weights() {
    let mut t = BucketTable::new(1024).unwrap();
    let nodes = [node(0, 1), node(1, 3)];
    for b in 0..1024 {
        t.route(b, &nodes, 0).unwrap();
    }
    assert_eq!(
        t.assigned_counts(),
        BTreeMap::from([(NodeId(0), 256), (NodeId(1), 768)])
    );
}

#[test]
fn route_is_sticky_and_refreshes_last_access() {
    let mut t = BucketTable::new(8).unwrap();
    let mut nodes = vec![node(1, 1)];
    assert_eq!(t.route(5, &nodes, 10), Some(NodeId(1)));
    nodes.push(node(2, 100));
    let v = t.version();
    assert_eq!(t.route(5, &nodes, 20), Some(NodeId(1)));
    assert_eq!(t.get(5), Some((NodeId(1), 20)));
    assert_eq!(t.version(), v, "a hit is not a change of mapping");
}

#[test]
fn route_reassigns_when_node_dead_or_gone() {
    let mut t = BucketTable::new(8).unwrap();
    let mut nodes = vec![node(1, 1), node(2, 1)];
    assert_eq!(t.route(0, &nodes, 0), Some(NodeId(1)));
    nodes[0].alive = false;
    assert_eq!(t.route(0, &nodes, 1), Some(NodeId(2)));
    assert_eq!(t.assigned_counts(), BTreeMap::from([(NodeId(2), 1)]));
    // Node 2 removed from the config entirely.
    let only3 = [node(3, 1)];
    assert_eq!(t.route(0, &only3, 2), Some(NodeId(3)));
}

#[test]
fn disabled_node_keeps_its_buckets_but_gets_no_new_ones() {
    let mut t = BucketTable::new(8).unwrap();
    let mut nodes = vec![node(1, 1), node(2, 1)];
    assert_eq!(t.route(0, &nodes, 0), Some(NodeId(1)));
    nodes[0].enabled = false;
    assert_eq!(t.route(0, &nodes, 1), Some(NodeId(1)));
    assert_eq!(t.route(1, &nodes, 1), Some(NodeId(2)));
    assert_eq!(t.route(2, &nodes, 1), Some(NodeId(2)));
}

#[test]
fn route_without_eligible_node_is_none_and_changes_nothing() {
    let mut t = BucketTable::new(8).unwrap();
    let mut nodes = vec![node(1, 1)];
    t.route(0, &nodes, 0);
    nodes[0].alive = false;
    let before = mapping(&t);
    assert_eq!(t.route(0, &nodes, 5), None);
    assert_eq!(t.route(1, &nodes, 5), None);
    assert_eq!(t.route(1, &[node(2, 0)], 5), None, "weight 0 gets nothing");
    assert_eq!(
        t.route(1, &[node(u16::MAX, 1)], 5),
        None,
        "reserved id gets nothing"
    );
    assert_eq!(t.route(8, &[node(2, 1)], 5), None, "out of range");
    assert_eq!(mapping(&t), before);
}

#[test]
fn release_node_unassigns_its_buckets() {
    let mut t = BucketTable::new(16).unwrap();
    let nodes = [node(1, 1), node(2, 1)];
    for b in 0..16 {
        t.route(b, &nodes, 0);
    }
    let v = t.version();
    assert_eq!(t.release_node(NodeId(1)), 8);
    assert_eq!(t.version(), v + 1);
    assert_eq!(t.assigned_counts(), BTreeMap::from([(NodeId(2), 8)]));
    assert_eq!(t.release_node(NodeId(1)), 0);
    assert_eq!(t.release_node(NodeId(9)), 0);
    assert_eq!(t.version(), v + 1);
}

#[test]
fn release_idle_frees_only_old_buckets() {
    let mut t = BucketTable::new(8).unwrap();
    let nodes = [node(1, 1)];
    t.route(0, &nodes, 100);
    t.route(1, &nodes, 200);
    t.route(2, &nodes, 300);
    // At 400 with idle 200: bucket 0 (idle 300) goes, bucket 1 (idle exactly 200) stays.
    assert_eq!(t.release_idle(400, 200), 1);
    assert_eq!(t.get(0), None);
    assert_eq!(t.get(1), Some((NodeId(1), 200)));
    assert_eq!(t.assigned_counts(), BTreeMap::from([(NodeId(1), 2)]));
    let v = t.version();
    assert_eq!(t.release_idle(400, 200), 0);
    assert_eq!(t.version(), v);
    let mut released = Vec::new();
    assert_eq!(t.release_idle_each(1_000, 200, |b| released.push(b)), 2);
    assert_eq!(released, vec![1, 2]);
}

#[test]
fn new_node_enters_gradually_through_idle_buckets() {
    let mut t = BucketTable::new(64).unwrap();
    let mut nodes = vec![node(1, 1), node(2, 1)];
    for b in 0..64 {
        t.route(b, &nodes, 0);
    }
    nodes.push(node(3, 1));
    // Half the buckets stay busy, half go quiet.
    for b in 0..32 {
        assert_ne!(t.route(b, &nodes, 1_000), Some(NodeId(3)));
    }
    assert_eq!(t.release_idle(1_300, 400), 32);
    for b in 0..64 {
        t.route(b, &nodes, 1_600);
    }
    let counts = t.assigned_counts();
    assert!(counts[&NodeId(3)] > 0);
    for b in 0..32 {
        assert_ne!(
            t.get(b).map(|x| x.0),
            Some(NodeId(3)),
            "bucket {b} was live"
        );
    }
}

#[test]
fn touch_all_stamps_assigned_buckets() {
    let mut t = BucketTable::new(4).unwrap();
    t.route(1, &[node(1, 1)], 5);
    t.touch_all(99);
    assert_eq!(t.get(1), Some((NodeId(1), 99)));
    assert_eq!(t.get(0), None);
}

#[test]
fn set_and_try_set() {
    let mut t = BucketTable::new(4).unwrap();
    t.set(2, Some(NodeId(7)), 3);
    assert_eq!(t.get(2), Some((NodeId(7), 3)));
    assert_eq!(t.version(), 1);
    t.set(2, Some(NodeId(7)), 4);
    assert_eq!(t.version(), 1, "same mapping, no bump");
    t.set(2, None, 5);
    assert_eq!(t.get(2), None);
    assert_eq!(t.version(), 2);
    t.set(4, Some(NodeId(1)), 0);
    t.set(1, Some(NodeId(u16::MAX)), 0);
    assert_eq!(t.get(1), None);
    assert_eq!(
        t.try_set(4, None, 0),
        Err(BucketError::BucketOutOfRange { bucket: 4, size: 4 })
    );
    assert_eq!(
        t.try_set(0, Some(NodeId(u16::MAX)), 0),
        Err(BucketError::ReservedNode { bucket: 0 })
    );
    assert!(t.assigned_counts().is_empty());
    t.set_version(42);
    assert_eq!(t.version(), 42);
    assert_eq!(t.assigned_to(NodeId(7)), 0);
}

#[test]
fn snapshot_round_trip_and_errors() {
    let mut t = BucketTable::new(32).unwrap();
    let nodes = [node(1, 1), node(2, 2)];
    for b in (0..32).step_by(3) {
        t.route(b, &nodes, 7);
    }
    let s = t.snapshot();
    assert_eq!(s.size, 32);
    assert_eq!(s.version, t.version());
    let r = BucketTable::from_snapshot(&s, 1_000).unwrap();
    assert_eq!(r.snapshot(), s);
    assert_eq!(r.assigned_counts(), t.assigned_counts());
    assert_eq!(r.get(0), Some((t.get(0).unwrap().0, 1_000)));

    let bad = |assigned: Vec<(u32, NodeId)>| BucketSnapshot {
        size: 4,
        version: 1,
        assigned,
    };
    assert_eq!(
        BucketTable::from_snapshot(&bad(vec![(4, NodeId(1))]), 0).unwrap_err(),
        BucketError::BucketOutOfRange { bucket: 4, size: 4 }
    );
    assert_eq!(
        BucketTable::from_snapshot(&bad(vec![(1, NodeId(1)), (1, NodeId(2))]), 0).unwrap_err(),
        BucketError::DuplicateBucket { bucket: 1 }
    );
    assert_eq!(
        BucketTable::from_snapshot(&bad(vec![(1, NodeId(u16::MAX))]), 0).unwrap_err(),
        BucketError::ReservedNode { bucket: 1 }
    );
    let s3 = BucketSnapshot {
        size: 3,
        version: 0,
        assigned: vec![],
    };
    assert_eq!(
        BucketTable::from_snapshot(&s3, 0).unwrap_err(),
        BucketError::BadSize { size: 3 }
    );
}

#[test]
fn debug_is_short() {
    let t = BucketTable::new(65_536).unwrap();
    let s = format!("{t:?}");
    assert!(s.len() < 200, "{s}");
    assert!(BucketError::BadSize { size: 3 }.to_string().contains('3'));
}

#[test]
fn the_stored_entry_is_the_c_layout() {
    assert_eq!(std::mem::offset_of!(BucketEntry, node), 0);
    assert_eq!(std::mem::offset_of!(BucketEntry, reserved), 2);
    assert_eq!(std::mem::offset_of!(BucketEntry, last_used), 8);
    let mut t = BucketTable::new(4).unwrap();
    t.set(2, Some(NodeId(7)), 99);
    assert_eq!(
        t.entries()[2],
        BucketEntry {
            node: 7,
            reserved: [0; 3],
            last_used: 99
        }
    );
    assert_eq!(t.entries()[0].node, BucketEntry::UNASSIGNED);
}

#[test]
fn the_policy_is_usable_without_the_table() {
    let nodes = [
        NodeCandidate {
            id: NodeId(1),
            weight: 1,
            enabled: true,
            alive: true,
        },
        NodeCandidate {
            id: NodeId(2),
            weight: 3,
            enabled: true,
            alive: true,
        },
    ];
    // 2 buckets on node 1 (2 per weight), 3 on node 2 (1 per weight): node 2 is next.
    let counts = |id: NodeId| if id == NodeId(1) { 2 } else { 3 };
    assert_eq!(least_assigned(&nodes, counts), Some(NodeId(2)));
    assert_eq!(least_assigned(&[], counts), None);
}

//! Property tests of the bucket table: random operation sequences on a small table with the
//! invariants of the module documentation checked after every step.

use proptest::prelude::*;

use super::super::*;
use super::{mapping, node, rescan};

const P_SIZE: usize = 64;
const P_NODES: u16 = 5;

#[derive(Clone, Debug)]
enum Op {
    Route { bucket: usize, dt: u64 },
    Alive { node: u16, alive: bool },
    Enabled { node: u16, enabled: bool },
    Join { node: u16 },
    ReleaseNode { node: u16 },
    ReleaseIdle { dt: u64, idle: u64 },
    Set { bucket: usize, node: Option<u16> },
    TouchAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..P_SIZE, 0..50u64).prop_map(|(bucket, dt)| Op::Route { bucket, dt }),
        1 => (0..P_NODES, any::<bool>()).prop_map(|(node, alive)| Op::Alive { node, alive }),
        1 => (0..P_NODES, any::<bool>()).prop_map(|(node, enabled)| Op::Enabled { node, enabled }),
        1 => (0..P_NODES).prop_map(|node| Op::Join { node }),
        1 => (0..P_NODES).prop_map(|node| Op::ReleaseNode { node }),
        1 => (0..200u64, 0..300u64).prop_map(|(dt, idle)| Op::ReleaseIdle { dt, idle }),
        1 => (0..P_SIZE, proptest::option::of(0..P_NODES))
            .prop_map(|(bucket, node)| Op::Set { bucket, node }),
        1 => Just(Op::TouchAll),
    ]
}

/// Whether `raw` is listed and alive (the condition under which `route` keeps a bucket).
fn is_alive(nodes: &[NodeCandidate], n: NodeId) -> bool {
    nodes.iter().any(|c| c.id == n && c.alive)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_under_random_operations(
        weights in proptest::collection::vec(1..4u32, P_NODES as usize),
        initial in 1..=P_NODES,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut t = BucketTable::new(P_SIZE).unwrap();
        // Nodes 0..initial are members at start; the others may join later.
        let mut nodes: Vec<NodeCandidate> =
            (0..initial).map(|i| node(i, weights[usize::from(i)])).collect();
        let mut now = 0u64;
        for op in ops {
            let before = mapping(&t);
            match op {
                Op::Route { bucket, dt } => {
                    now += dt;
                    let got = t.route(bucket, &nodes, now);
                    let after = mapping(&t);
                    for b in 0..P_SIZE {
                        if b != bucket {
                            prop_assert_eq!(before[b], after[b], "route touched another bucket");
                        }
                    }
                    match before[bucket] {
                        // (2) a bucket on a live node never moves (alive implies kept, even
                        // when disabled; a fortiori when alive and enabled).
                        Some((n, _)) if is_alive(&nodes, n) => {
                            prop_assert_eq!(got, Some(n));
                        }
                        // (4) otherwise it may move, and only to an eligible node, which is
                        // how a new node only ever takes unassigned (or orphaned) buckets.
                        _ => {
                            if let Some(g) = got {
                                prop_assert!(nodes.iter().any(|c| c.id == g && c.eligible()));
                            } else {
                                prop_assert!(!nodes.iter().any(NodeCandidate::eligible));
                            }
                        }
                    }
                    if let Some(g) = got {
                        prop_assert_eq!(after[bucket], Some((g, now)));
                    }
                }
                Op::Alive { node: n, alive } => {
                    if let Some(c) = nodes.iter_mut().find(|c| c.id.0 == n) { c.alive = alive; }
                }
                Op::Enabled { node: n, enabled } => {
                    if let Some(c) = nodes.iter_mut().find(|c| c.id.0 == n) { c.enabled = enabled; }
                }
                Op::Join { node: n } => {
                    if !nodes.iter().any(|c| c.id.0 == n) {
                        nodes.push(node(n, weights[usize::from(n)]));
                    }
                }
                Op::ReleaseNode { node: n } => {
                    let had = t.assigned_counts().get(&NodeId(n)).copied().unwrap_or(0);
                    prop_assert_eq!(t.release_node(NodeId(n)), had);
                    // (5) nothing maps to the failed node any more.
                    prop_assert!(mapping(&t).iter().flatten().all(|(x, _)| *x != NodeId(n)));
                }
                Op::ReleaseIdle { dt, idle } => {
                    now += dt;
                    let freed = t.release_idle(now, idle);
                    let after = mapping(&t);
                    let mut changed = 0;
                    for b in 0..P_SIZE {
                        match before[b] {
                            // (3) recently used buckets are untouched.
                            Some((_, last)) if now - last <= idle => {
                                prop_assert_eq!(before[b], after[b]);
                            }
                            Some(_) => { prop_assert_eq!(after[b], None); changed += 1; }
                            None => prop_assert_eq!(after[b], None),
                        }
                    }
                    prop_assert_eq!(freed, changed);
                }
                Op::Set { bucket, node: n } => {
                    t.set(bucket, n.map(NodeId), now);
                    prop_assert_eq!(t.get(bucket), n.map(|x| (NodeId(x), now)));
                }
                Op::TouchAll => {
                    t.touch_all(now);
                    prop_assert!(mapping(&t).iter().flatten().all(|(_, last)| *last == now));
                }
            }
            // (1) incremental counts equal a rescan, after every step.
            let truth = rescan(&t);
            prop_assert_eq!(t.assigned_counts(), truth.clone());
            for n in 0..P_NODES {
                let want = truth.get(&NodeId(n)).copied().unwrap_or(0);
                prop_assert_eq!(t.assigned_to(NodeId(n)), want);
            }
            // Snapshot round trip preserves mapping, counts and version.
            let s = t.snapshot();
            let r = BucketTable::from_snapshot(&s, now).unwrap();
            prop_assert_eq!(r.snapshot(), s);
            prop_assert_eq!(r.assigned_counts(), t.assigned_counts());
        }
    }

    /// (4) A node that joins a full, busy table receives only buckets that were unassigned
    /// when it got them — released idle ones — never a live one.
    #[test]
    fn joining_node_never_takes_a_live_bucket(
        busy in proptest::collection::vec(any::<bool>(), P_SIZE),
        order in Just((0..P_SIZE).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut t = BucketTable::new(P_SIZE).unwrap();
        let mut nodes = vec![node(0, 1), node(1, 1)];
        for b in 0..P_SIZE {
            t.route(b, &nodes, 0);
        }
        nodes.push(node(2, 1));
        // Busy buckets see traffic at t = 1000; the rest have been quiet since 0.
        for (b, &is_busy) in busy.iter().enumerate() {
            if is_busy {
                t.route(b, &nodes, 1_000);
            }
        }
        t.release_idle(1_100, 500);
        for &b in &order {
            let before = t.get(b);
            let got = t.route(b, &nodes, 1_200);
            if got == Some(NodeId(2)) {
                prop_assert_eq!(before, None, "node 2 took bucket {} from a live node", b);
                prop_assert!(!busy[b]);
            }
        }
        // And it did get its share of the quiet ones.
        let quiet = busy.iter().filter(|x| !**x).count();
        if quiet >= 3 { prop_assert!(t.assigned_to(NodeId(2)) > 0); }
    }

    /// (6) Filling an empty table in any order keeps every node within one bucket per unit of
    /// weight of every other: for all i, j: (c_i - 1) / w_i <= c_j / w_j.
    #[test]
    fn fill_is_balanced_per_unit_weight(
        weights in proptest::collection::vec(1..5u32, 1..6),
        order in Just((0..256usize).collect::<Vec<_>>()).prop_shuffle(),
        equal in any::<bool>(),
    ) {
        let mut t = BucketTable::new(256).unwrap();
        let nodes: Vec<NodeCandidate> = weights
            .iter()
            .zip(0u16..)
            .map(|(&w, i)| node(i, if equal { 1 } else { w }))
            .collect();
        for b in order {
            t.route(b, &nodes, 0).unwrap();
            for a in &nodes {
                for c in &nodes {
                    let ca = t.assigned_to(a.id) as u64;
                    let cc = t.assigned_to(c.id) as u64;
                    if ca > 0 {
                        prop_assert!((ca - 1) * u64::from(c.weight) <= cc * u64::from(a.weight));
                    }
                }
            }
            if equal {
                let counts: Vec<usize> = nodes.iter().map(|n| t.assigned_to(n.id)).collect();
                let (mn, mx) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                prop_assert!(mx - mn <= 1, "{counts:?}");
            }
        }
    }
}

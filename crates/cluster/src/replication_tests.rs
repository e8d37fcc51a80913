use proptest::prelude::*;

use super::*;

const S: NodeId = NodeId(1);
const R: NodeId = NodeId(2);

fn cands(ids: &[u16]) -> Vec<NodeCandidate> {
    ids.iter()
        .map(|&i| NodeCandidate {
            id: NodeId(i),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect()
}

/// An authority (node 1, done merging) and a replica (node 2) following it.
fn pair(size: usize) -> (Replication, Replication) {
    let mut a = Replication::new(size).unwrap();
    let mut out = Vec::new();
    a.take_over(S, &[], &[], 0, 0, &mut out);
    assert!(
        a.tick(0, &cands(&[1, 2]), &mut out),
        "no peers: merge ends at once"
    );
    let mut r = Replication::new(size).unwrap();
    r.follow(Some(S), 0, &mut out);
    let mut snap = Vec::new();
    a.on_request(R, None, &mut snap);
    pump(&mut a, &mut r, snap, 0, &mut |_| true);
    assert!(!r.is_assembling());
    (a, r)
}

/// Deliver `msgs` from the authority to the replica (and the replica's requests back), until
/// quiet. `keep` decides which authority → replica messages survive.
fn pump(
    a: &mut Replication,
    r: &mut Replication,
    mut msgs: Outbox,
    now: u64,
    keep: &mut dyn FnMut(usize) -> bool,
) {
    let mut i = 0;
    while !msgs.is_empty() {
        let mut back = Vec::new();
        for (_, m) in std::mem::take(&mut msgs) {
            i += 1;
            match m {
                Message::TableDelta {
                    base,
                    version,
                    changes,
                } if keep(i) => r.on_delta(S, base, version, changes, now),
                Message::TableSnapshot {
                    version,
                    size,
                    start,
                    nodes,
                } if keep(i) => {
                    r.on_snapshot(S, (version, size, start), nodes, now);
                }
                _ => {}
            }
        }
        r.tick(now, &[], &mut back);
        for (_, m) in back {
            if let Message::TableSnapshotRequest { have } = m {
                a.on_request(R, have, &mut msgs);
            }
        }
    }
}

fn same(a: &mut Replication, r: &mut Replication) {
    assert_eq!(r.version(), a.version());
    assert_eq!(r.snapshot(), a.snapshot());
}

#[test]
fn deltas_replicate_in_order() {
    let (mut a, mut r) = pair(64);
    let mut out = Vec::new();
    for b in 0..10 {
        a.assign(&[(b, Some(NodeId(1 + u16::try_from(b % 2).unwrap())))], 5);
    }
    assert!(a.flush(&mut out));
    assert_eq!(out.len(), 1, "ten changes, one datagram");
    pump(&mut a, &mut r, out, 5, &mut |_| true);
    same(&mut a, &mut r);
    assert_eq!(a.version(), 1);
}

#[test]
fn a_replica_far_behind_asks_for_a_snapshot_not_the_whole_log() {
    let (mut a, mut r) = pair(64);
    let mut sent = Vec::new();
    for b in 0..200u32 {
        a.assign(
            &[(b % 64, Some(NodeId(1 + u16::try_from(b / 64 % 2).unwrap())))],
            0,
        );
        a.flush(&mut sent);
    }
    assert_eq!(a.version(), 200);
    // Only the newest delta reaches the replica: 199 versions behind.
    let (_, last) = sent.pop().unwrap();
    let Message::TableDelta {
        base,
        version,
        changes,
    } = last
    else {
        unreachable!()
    };
    r.on_delta(S, base, version, changes, 10);
    let mut req = Vec::new();
    r.tick(200, &[], &mut req);
    assert!(
        matches!(req[..], [(_, Message::TableSnapshotRequest { have: None })]),
        "{req:?}"
    );
    let mut answer = Vec::new();
    a.on_request(R, None, &mut answer);
    pump(&mut a, &mut r, answer, 200, &mut |_| true);
    same(&mut a, &mut r);
}

#[test]
fn gap_is_repaired_from_the_log() {
    let (mut a, mut r) = pair(64);
    let mut sent = Vec::new();
    for b in 0..5 {
        a.assign(&[(b, Some(NodeId(1 + u16::try_from(b % 2).unwrap())))], 0);
        a.flush(&mut sent);
    }
    // Deliver all but the second delta, in reverse order.
    sent.remove(1);
    sent.reverse();
    for (_, m) in sent {
        if let Message::TableDelta {
            base,
            version,
            changes,
        } = m
        {
            r.on_delta(S, base, version, changes, 10);
        }
    }
    assert_eq!(r.version(), 1, "stuck before the gap, later ones buffered");
    let mut req = Vec::new();
    r.tick(20, &[], &mut req);
    assert!(req.is_empty(), "grace not over");
    r.tick(40, &[], &mut req);
    assert!(matches!(
        req[..],
        [(_, Message::TableSnapshotRequest { have: Some(1) })]
    ));
    let mut answer = Vec::new();
    a.on_request(R, Some(1), &mut answer);
    assert_eq!(answer.len(), 4, "deltas from the log, not a snapshot");
    pump(&mut a, &mut r, answer, 40, &mut |_| true);
    same(&mut a, &mut r);
}

#[test]
fn snapshot_of_mixed_versions_converges() {
    let size = 4096; // 7 chunks
    let (mut a, mut r) = pair(size);
    let mut out = Vec::new();
    for b in 0..u32::try_from(size).unwrap() {
        a.assign(&[(b, Some(NodeId(1 + u16::try_from(b % 3).unwrap())))], 0);
    }
    a.flush(&mut out);
    // The replica missed all of that; it asks for a snapshot, gets chunk 0 and 1 ...
    let mut ask = Vec::new();
    r.follow(None, 1, &mut ask);
    r.follow(Some(S), 1, &mut ask);
    assert!(matches!(
        ask[..],
        [(_, Message::TableSnapshotRequest { have: None })]
    ));
    let mut snap = Vec::new();
    a.on_request(R, None, &mut snap);
    for (_, m) in snap.drain(..2) {
        if let Message::TableSnapshot {
            version,
            size,
            start,
            nodes,
        } = m
        {
            r.on_snapshot(S, (version, size, start), nodes, 1);
        }
    }
    // ... the table changes (delta received while assembling) ...
    a.assign(&[(0, Some(NodeId(3))), (size as u32 - 1, None)], 2);
    let mut d = Vec::new();
    a.flush(&mut d);
    let deliver = |r: &mut Replication, msgs: Outbox, now| {
        for (_, m) in msgs {
            match m {
                Message::TableDelta {
                    base,
                    version,
                    changes,
                } => r.on_delta(S, base, version, changes, now),
                Message::TableSnapshot {
                    version,
                    size,
                    start,
                    nodes,
                } => r.on_snapshot(S, (version, size, start), nodes, now),
                _ => unreachable!(),
            }
        }
    };
    deliver(&mut r, d, 2);
    assert!(r.is_assembling());
    // ... and the rest comes from a newer snapshot.
    let mut snap2 = Vec::new();
    a.on_request(R, None, &mut snap2);
    deliver(&mut r, snap2.split_off(2), 3);
    assert!(!r.is_assembling());
    same(&mut a, &mut r);
    assert_eq!(r.table().get(0).map(|x| x.0), Some(NodeId(3)));
}

#[test]
fn takeover_merges_live_buckets_then_releases_the_dead() {
    let mut t = Replication::new(16).unwrap();
    let mut out = Vec::new();
    // Replica content: bucket 1 → node 3 (old scheduler 9 owned 2 and 4).
    t.follow(Some(NodeId(9)), 0, &mut out);
    t.on_snapshot(
        NodeId(9),
        (7, 16, 0),
        vec![
            None,
            Some(NodeId(3)),
            Some(NodeId(9)),
            None,
            Some(NodeId(9)),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ],
        0,
    );
    assert_eq!(t.version(), 7);
    let alive = cands(&[2, 3, 4]);
    out.clear();
    t.take_over(NodeId(2), &[NodeId(3), NodeId(4)], &[5], 100, 150, &mut out);
    assert!(matches!(
        out[..],
        [(Destination::Broadcast, Message::LiveBucketsQuery { .. })]
    ));
    let Message::LiveBucketsQuery { query } = out[0].1 else {
        unreachable!()
    };
    // While merging the data plane holds every flow (`SchedulerCore`'s hold): even an
    // assigned bucket may be stale.
    assert!(t.is_merging());
    // Node 3 holds bucket 1 and bucket 3 (its delta was lost); node 4 answers in two chunks.
    assert!(!t.on_live_buckets(NodeId(3), (query, 0, 1), &[1, 3], &alive, 110, &mut out));
    assert!(
        !t.on_live_buckets(NodeId(4), (query + 1, 0, 1), &[8], &alive, 110, &mut out),
        "old query"
    );
    assert!(!t.on_live_buckets(NodeId(4), (query, 0, 2), &[8], &alive, 110, &mut out));
    assert!(t.on_live_buckets(NodeId(4), (query, 1, 2), &[4], &alive, 111, &mut out));
    assert!(!t.is_merging());
    let owner = |t: &Replication, b: usize| t.table().get(b).map(|x| x.0);
    assert_eq!(owner(&t, 1), Some(NodeId(3)));
    assert_eq!(owner(&t, 3), Some(NodeId(3)), "merged from the live answer");
    assert_eq!(
        owner(&t, 5),
        Some(NodeId(2)),
        "the new scheduler's own live bucket"
    );
    assert_eq!(owner(&t, 8), Some(NodeId(4)));
    assert_eq!(
        owner(&t, 4),
        Some(NodeId(4)),
        "dead owner, live elsewhere: moved"
    );
    assert_eq!(owner(&t, 2), None, "dead owner, not live: released");
    assert!(t.version() > 7);
    assert!(out
        .iter()
        .any(|(_, m)| matches!(m, Message::TableDelta { base: 7, .. })));
}

#[test]
fn merge_ends_at_the_deadline() {
    let mut t = Replication::new(16).unwrap();
    let mut out = Vec::new();
    t.take_over(NodeId(2), &[NodeId(3)], &[], 100, 150, &mut out);
    assert!(!t.tick(249, &cands(&[2, 3]), &mut out));
    assert!(t.tick(250, &cands(&[2, 3]), &mut out));
    assert!(!t.is_merging(), "new buckets may be assigned from here on");
}

#[test]
fn live_answers_are_chunked() {
    let live: Vec<u32> = (0..700).collect();
    let parts = live_bucket_answer(1, &live);
    assert_eq!(parts.len(), 3);
    assert_eq!(
        live_bucket_answer(1, &[]).len(),
        1,
        "an empty answer still answers"
    );
}

proptest! {
    /// Whatever is lost or reordered, repeated repair requests bring the replica to the
    /// authority's table.
    #[test]
    fn replica_converges_under_loss(
        ops in proptest::collection::vec((0u32..256, 0u16..4), 1..200),
        loss in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let (mut a, mut r) = pair(256);
        let mut out = Vec::new();
        for (i, (b, n)) in ops.iter().enumerate() {
            let node = (*n > 0).then_some(NodeId(*n));
            a.assign(&[(*b, node)], i as u64);
            if i % 7 == 0 {
                a.flush(&mut out);
            }
        }
        a.flush(&mut out);
        let mut drop_some = |i: usize| !loss[i % loss.len()];
        pump(&mut a, &mut r, out, 1_000, &mut drop_some);
        // Then the periodic version check with a clean network repairs what is left.
        for k in 0..10u64 {
            let now = 2_000 + k * 300;
            let mut req = Vec::new();
            r.on_version_check(S, a.version(), now);
            r.tick(now, &[], &mut req);
            let mut answer = Vec::new();
            for (_, m) in req {
                if let Message::TableSnapshotRequest { have } = m {
                    a.on_request(R, have, &mut answer);
                }
            }
            pump(&mut a, &mut r, answer, now, &mut |_| true);
        }
        prop_assert_eq!(r.version(), a.version());
        prop_assert_eq!(r.snapshot(), a.snapshot());
    }
}

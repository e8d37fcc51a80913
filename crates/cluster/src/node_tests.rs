use super::*;
use crate::wire::{Envelope, Message};

fn key() -> ClusterKey {
    ClusterKey::new(b"node-tests-cluster-key".to_vec()).unwrap()
}

fn node(id: u16, now: u64) -> Node {
    let params = NodeParams {
        id: NodeId(id),
        priority: 5,
        weight: 1,
        incarnation: 1,
        key: key(),
        table_size: 1024,
        timing: Timing::default(),
        preempt: false,
        quorum: 1,
    };
    Node::new(params, Box::new(|_: &str| Ok(())), now).unwrap()
}

fn sealed(from: u16, to: Destination, seq: u64, message: Message) -> Vec<u8> {
    key()
        .seal(&Envelope {
            from: NodeId(from),
            to,
            incarnation: 1,
            sequence: seq,
            message,
        })
        .unwrap()
}

#[test]
fn every_drop_reason_is_counted() {
    let mut n = node(1, 0);
    let q = |seq| {
        sealed(
            2,
            Destination::Broadcast,
            seq,
            Message::NodeStatusQuery { poll: 1 },
        )
    };
    assert_eq!(n.handle_datagram(&q(5), 1), Some(NodeId(2)));
    assert_eq!(n.handle_datagram(&q(5), 2), None, "replayed");
    let mut forged = q(6);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(n.handle_datagram(&forged, 3), None);
    assert_eq!(n.handle_datagram(&forged[..10], 3), None, "malformed");
    let mut other_version = q(7);
    other_version[0] = 9;
    assert_eq!(n.handle_datagram(&other_version, 3), None);
    assert_eq!(
        n.handle_datagram(
            &sealed(
                1,
                Destination::Broadcast,
                1,
                Message::NodeStatusQuery { poll: 1 }
            ),
            3
        ),
        None,
        "own id"
    );
    assert_eq!(
        n.handle_datagram(
            &sealed(
                2,
                Destination::Node(NodeId(3)),
                8,
                Message::NodeStatusQuery { poll: 1 }
            ),
            3
        ),
        None
    );
    let d = n.drops();
    assert_eq!(
        (
            d.replayed,
            d.forged,
            d.malformed,
            d.bad_version,
            d.own_id,
            d.not_for_us
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!(d.total(), 6);
    // The accepted query was answered, to its sender only (its status, then its Web Server
    // Status Table: one chunk, empty).
    let sends: Vec<Destination> = std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            Output::Send { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(sends, [Destination::Node(NodeId(2)); 2]);
}

#[test]
fn a_lone_node_becomes_scheduler_after_listening() {
    let mut n = node(3, 1_000);
    n.handle_timeout(1_000);
    assert_eq!(n.role(), Role::Starting);
    let mut t = 1_000;
    while n.role() == Role::Starting {
        t = n.poll_timeout();
        n.handle_timeout(t);
    }
    assert!((1_000 + DEFAULT_DEAD_AFTER_MS..=1_000 + DEFAULT_DEAD_AFTER_MS + 25).contains(&t));
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(outs.contains(&Output::BecomeScheduler { table_version: 0 }));
    assert!(outs.contains(&Output::AcceptingNew), "nobody to wait for");
    assert!(n.accepting_new());
    // The data plane routes; the core replicates what it reports.
    n.report_assignments(&[(5, Some(NodeId(3)))], t);
    assert_eq!(n.owner(5), Some(NodeId(3)));
    assert_eq!(n.snapshot().assigned, [(5, NodeId(3))]);
}

#[test]
fn a_failed_data_plane_steps_down_and_is_elected_again_after_the_hold_off() {
    let mut n = node(3, 0);
    let mut t = 0;
    while n.role() != Role::Scheduler {
        t = n.poll_timeout();
        n.handle_timeout(t);
    }
    std::iter::from_fn(|| n.poll_output()).for_each(drop);
    n.data_plane_failed(1_000, t);
    assert_eq!(
        n.role(),
        Role::Standby,
        "a node without a data plane does not schedule"
    );
    assert!(n.unfit(t));
    assert_eq!(n.data_plane_failures(), 1);
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(
        outs.contains(&Output::StepDown { scheduler: None }),
        "{outs:?}"
    );
    // It announced priority 0 at once, so the others elect a successor.
    let announced = outs.iter().find_map(|o| match o {
        Output::Send { datagram, .. } => match key().open(datagram).ok()?.message {
            Message::Announce(a) => Some(a),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(
        announced.map(|a| (a.role, a.priority)),
        Some((Role::Standby, 0))
    );
    // Alone, it is elected again once the hold-off is over (the data plane is retried).
    let end = t + 1_000;
    while n.role() != Role::Scheduler {
        t = n.poll_timeout();
        assert!(t <= end + 50, "not elected again by {t}");
        n.handle_timeout(t);
    }
    assert!(t >= end, "elected again during the hold-off at {t}");
}

/// Node 2 keeps announcing itself as a standby of node 1 but never answers a status poll.
fn standby_announce(seq: u64) -> Vec<u8> {
    let a = crate::wire::Announce {
        role: Role::Standby,
        priority: 1,
        enabled: true,
        weight: 1,
        table_version: 0,
        config_version: 0,
        load: 0,
        following: Some(NodeId(1)),
        heard: Vec::new(),
    };
    sealed(2, Destination::Broadcast, seq, Message::Announce(a))
}

fn polls_to_2(outs: &[Output], key: &ClusterKey) -> Vec<u32> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send {
                to: Destination::Node(NodeId(2)),
                datagram,
            } => match key.open(datagram).ok()?.message {
                Message::NodeStatusQuery { poll } => Some(poll),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_that_stops_answering_polls_is_failed_by_them_until_it_answers() {
    let mut n = node(1, 0);
    let mut t = 0;
    let mut seq = 0;
    let mut polls = Vec::new();
    let mut outs = Vec::new();
    // Announced every 50 ms (the default interval: nothing lost) for 2 s: alive all along,
    // silent to polls.
    while t < 2_000 {
        t = n.poll_timeout().min(t + 50);
        if t % 50 == 0 {
            seq += 1;
            n.handle_datagram(&standby_announce(seq), t);
        }
        n.handle_timeout(t);
        let batch: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
        polls.extend(polls_to_2(&batch, &key()));
        outs.extend(batch);
    }
    assert_eq!(n.role(), Role::Scheduler);
    assert!(
        n.members().alive().any(|m| m.id == NodeId(2)),
        "still announcing"
    );
    assert_eq!(
        n.unresponsive().iter().copied().collect::<Vec<_>>(),
        [NodeId(2)]
    );
    assert!(outs.contains(&Output::NodeFailed(NodeId(2))));
    // First poll + the default 2 retries before it was failed, then the sweeps go on.
    assert!(polls.len() >= 3, "{polls:?}");
    let two = n
        .candidates()
        .into_iter()
        .find(|c| c.id == NodeId(2))
        .unwrap();
    assert!(!two.alive, "no new buckets for it");
    let eligible: Vec<NodeId> = n
        .candidates()
        .iter()
        .filter(|c| c.eligible())
        .map(|c| c.id)
        .collect();
    assert_eq!(eligible, [NodeId(1)]);
    // It answers the next poll: back in the table.
    let last = *polls.last().unwrap();
    let answer = Message::NodeStatus {
        poll: last,
        status: NodeStatus::default(),
    };
    seq += 1;
    n.handle_datagram(&sealed(2, Destination::Node(NodeId(1)), seq, answer), t + 1);
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert!(outs.contains(&Output::NodeJoined(NodeId(2))));
    assert!(n.unresponsive().is_empty());
    assert!(n.candidates().iter().all(|c| c.alive));
}

#[test]
fn reconfigure_changes_timers_and_weight_live() {
    let mut n = node(1, 0);
    n.handle_datagram(&standby_announce(1), 10);
    let slow = Timing {
        interval_ms: 200,
        dead_after_ms: 1_000,
        ..Timing::default()
    };
    n.reconfigure(9, 7, slow, true, 20);
    n.handle_timeout(600);
    assert!(
        n.members().alive().any(|m| m.id == NodeId(2)),
        "silent 590 ms: alive under the new dead_after"
    );
    let me = n
        .candidates()
        .into_iter()
        .find(|c| c.id == NodeId(1))
        .unwrap();
    assert_eq!(me.weight, 7);
    // The change is announced at once.
    let announced: Vec<crate::wire::Announce> = std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            Output::Send { datagram, .. } => match key().open(&datagram).ok()?.message {
                Message::Announce(a) => Some(a),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(announced.iter().any(|a| a.priority == 9 && a.weight == 7));
    n.handle_timeout(1_100);
    assert!(!n.members().alive().any(|m| m.id == NodeId(2)));
}

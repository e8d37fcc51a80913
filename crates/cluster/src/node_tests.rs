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
    // The accepted query was answered, to its sender only.
    let sends: Vec<Destination> = std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            Output::Send { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(sends, [Destination::Node(NodeId(2))]);
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
    assert_eq!(n.route(5, t), Some(NodeId(3)));
    assert_eq!(n.owner(5), Some(NodeId(3)));
    assert_eq!(n.snapshot().assigned, [(5, NodeId(3))]);
}

use std::net::Ipv4Addr;

use super::*;

fn member(id: u16) -> NodeCandidate {
    NodeCandidate {
        id: NodeId(id),
        weight: 1,
        enabled: true,
        alive: true,
    }
}

fn conn(port: u16) -> ConnectionId {
    ConnectionId::new(
        Ipv4Addr::new(10, 77, 1, 10),
        80,
        Ipv4Addr::new(192, 0, 2, 7),
        port,
    )
}

/// A connection of which node `want` is the owner among `members`.
fn owned_by(want: u16, members: &[u16]) -> ConnectionId {
    let ids: Vec<NodeId> = members.iter().map(|&m| NodeId(m)).collect();
    (1..u16::MAX)
        .map(conn)
        .find(|c| owners(c, &ids).0.map(|o| o.node) == Some(NodeId(want)))
        .unwrap()
}

fn three() -> Vec<NodeCandidate> {
    vec![member(1), member(2), member(3)]
}

#[test]
fn a_non_owner_hands_a_syn_to_the_owner_which_chooses_and_keeps_it_half_open() {
    let c = owned_by(2, &[1, 2, 3]);
    let mut one = Ilb::new(NodeId(1), &three(), IlbLimits::default());
    let mut two = Ilb::new(NodeId(2), &three(), IlbLimits::default());
    assert_eq!(
        one.segment(c, true, false, Arrival::Router, 0),
        Verdict::HandOff(NodeId(2))
    );
    let Verdict::Serve(serving) = two.segment(c, true, false, Arrival::HandOff, 0) else {
        panic!("the owner serves")
    };
    assert_eq!(two.sizes(), (0, 1, 0), "half-open, nothing replicated yet");
    assert!(
        two.take_announcements().is_empty(),
        "no announcement before the handshake"
    );
    // The SYN's retransmission gets the same server; the first ACK establishes it.
    assert_eq!(
        two.segment(c, true, false, Arrival::HandOff, 1),
        Verdict::Serve(serving)
    );
    assert_eq!(
        two.segment(c, false, false, Arrival::HandOff, 2),
        Verdict::Serve(serving)
    );
    assert_eq!(two.sizes(), (1, 0, 0));
    let said = two.take_announcements();
    assert!(
        matches!(&said[..], [Announcement::Associated { conn, association }]
            if *conn == c && association.serving == serving && association.owner == NodeId(2)),
        "{said:?}"
    );
}

#[test]
fn the_owner_spreads_new_connections_by_least_connections() {
    let mut two = Ilb::new(NodeId(2), &three(), IlbLimits::default());
    let mut served = HashMap::<NodeId, u32>::new();
    let mut n = 0;
    for port in 1..u16::MAX {
        let c = conn(port);
        if owners(&c, &[NodeId(1), NodeId(2), NodeId(3)])
            .0
            .map(|o| o.node)
            != Some(NodeId(2))
        {
            continue;
        }
        let Verdict::Serve(s) = two.segment(c, true, false, Arrival::Router, 0) else {
            panic!()
        };
        *served.entry(s).or_default() += 1;
        n += 1;
        if n == 300 {
            break;
        }
    }
    assert_eq!(served.len(), 3, "{served:?}");
    assert!(served.values().all(|&v| v == 100), "{served:?}");
}

#[test]
fn a_new_owner_without_an_entry_gives_the_backup_a_second_chance_then_forgets_the_grace() {
    let c = owned_by(3, &[1, 2, 3]);
    let limits = IlbLimits::default();
    let mut three_ = Ilb::new(NodeId(3), &three(), limits);
    assert_eq!(
        three_.segment(c, false, false, Arrival::HandOff, 10),
        Verdict::Serve(three_.stateless_choice(&c).unwrap()),
        "settled: an unknown segment at its owner is chosen statelessly, not dropped"
    );
    let mut fresh = Ilb::new(NodeId(3), &[member(3)], limits);
    fresh.set_members(&three(), 100);
    let (_, backup) = fresh.roles(&c);
    assert_eq!(
        fresh.segment(c, false, false, Arrival::HandOff, 200),
        Verdict::SecondChance(backup.unwrap()),
        "just after a join: ask the backup, it held the entry"
    );
    assert_eq!(
        fresh.segment(c, false, false, Arrival::SecondChance, 200),
        Verdict::Drop(IlbDrop::Unknown),
        "a second chance is never passed on"
    );
}

#[test]
fn fin_or_rst_ends_an_association_everywhere_after_a_linger() {
    let c = owned_by(1, &[1, 2, 3]);
    let limits = IlbLimits::default();
    let mut one = Ilb::new(NodeId(1), &three(), limits);
    let Verdict::Serve(s) = one.segment(c, true, false, Arrival::Router, 0) else {
        panic!()
    };
    one.segment(c, false, false, Arrival::Router, 1);
    one.take_announcements();
    assert_eq!(
        one.segment(c, false, true, Arrival::Router, 5),
        Verdict::Serve(s)
    );
    assert_eq!(
        one.take_announcements(),
        vec![Announcement::Ended { conn: c }]
    );
    assert_eq!(
        one.segment(c, false, false, Arrival::Router, 6),
        Verdict::Serve(s),
        "the last ACK still goes through"
    );
    assert_eq!(one.release_idle(5 + limits.linger - 1), 0);
    assert_eq!(one.release_idle(5 + limits.linger), 1);
    assert_eq!(one.sizes(), (0, 0, 0));
}

#[test]
fn a_syn_flood_costs_bounded_memory_and_expires() {
    let limits = IlbLimits {
        half_open: 100,
        ..IlbLimits::default()
    };
    let mut one = Ilb::new(NodeId(1), &[member(1)], limits);
    for port in 1..=5_000 {
        let v = one.segment(conn(port), true, false, Arrival::Router, 0);
        assert!(matches!(v, Verdict::Serve(NodeId(1))), "{v:?}");
    }
    assert_eq!(one.sizes(), (0, 100, 0));
    assert_eq!(one.counters().chosen_stateless, 4_900);
    assert_eq!(one.release_idle(limits.handshake), 100);
    assert_eq!(one.sizes(), (0, 0, 0));
}

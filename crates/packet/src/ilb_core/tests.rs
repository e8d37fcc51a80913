//! The active-active core's fixture table (input frame, verdict, output frame, announcements)
//! and the ILB invariant as a property: whichever nodes ECMP sends a connection's segments to,
//! before and after its owner fails, they all end at the node that served its SYN.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use pentaflow_balance::{owners, Association};
use proptest::prelude::*;

use super::*;
use crate::fixtures::{node, LAN_MAC, SELF_ID, SERVICES, VIP};
use crate::frame::MacAddr;
use crate::synth::FrameSpec;

const TAP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0xee, 1]);
/// The upstream router's MAC (the source of frames ECMP sends).
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;

fn params(id: u16) -> CoreParams {
    CoreParams {
        vip: IpAddr::V4(VIP),
        services: SERVICES.to_vec(),
        self_id: NodeId(id),
        lan_mac: node(id).mac,
        local_mac: MacAddr([2, 0, 0, 0, 0xee, u8::try_from(id).unwrap_or(0xff)]),
    }
}

fn conn(src_port: u16) -> ConnectionId {
    ConnectionId::new(VIP, 80, Ipv4Addr::new(10, 77, 2, 11), src_port)
}

/// The client ports from 40000 up whose connections `owner` owns among nodes 1–3.
fn ports_owned_by(owner: u16) -> impl Iterator<Item = u16> {
    let members = [NodeId(1), NodeId(2), NodeId(3)];
    (40000..u16::MAX)
        .filter(move |&p| owners(&conn(p), &members).0.map(|o| o.node) == Some(NodeId(owner)))
}

/// The first of them.
fn port_owned_by(owner: u16) -> u16 {
    ports_owned_by(owner).next().unwrap()
}

/// A TCP segment of client port `src_port` to the VIP's port 80 with `flags`, from `src` to
/// `dst`, tagged with `vid` if given.
fn segment(src_port: u16, flags: u8, dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
    let mut f = FrameSpec {
        dst_mac: dst,
        src_mac: src,
        src_port,
        ..FrameSpec::default()
    }
    .build();
    f[ETHERNET_HEADER_LEN + 20 + 13] = flags;
    if let Some(vid) = vid {
        let [c, d] = vid.to_be_bytes();
        f.splice(12..12, [0x81, 0x00, c, d]);
    }
    f
}

/// What an announcement is about, for comparison: kind and connection.
fn about(a: &Announcement) -> (&'static str, ConnectionId) {
    match a {
        Announcement::Associated { conn, .. } => ("associated", *conn),
        Announcement::Ended { conn } => ("ended", *conn),
        Announcement::Transfer { .. } => ("transfer", ConnectionId([0; 12])),
    }
}

struct Fixture {
    what: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    /// `None`: the input unchanged.
    output: Option<Vec<u8>>,
    announces: Vec<(&'static str, ConnectionId)>,
}

fn fixtures() -> Vec<Fixture> {
    let (m2, m3) = (node(2).mac, node(3).mac);
    let a = port_owned_by(2);
    let b = port_owned_by(1);
    let mut ours = ports_owned_by(1).skip(1);
    let c = ours.next().unwrap();
    let d = ours.next().unwrap();
    let mut other_vlan = segment(b, ACK, LAN_MAC, ROUTER_MAC, Some(5));
    other_vlan[15] = 5;
    let mut v = vec![
        Fixture {
            what: "SYN from the router, node 2 owns it: handed off to node 2, tagged",
            input: segment(a, SYN, LAN_MAC, ROUTER_MAC, None),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(a, SYN, m2, LAN_MAC, Some(HANDOFF_VID))),
            announces: vec![],
        },
        Fixture {
            what: "SYN from the router, we own it: least connections (all idle, rotation) picks node 2",
            input: segment(b, SYN, LAN_MAC, ROUTER_MAC, None),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(b, SYN, m2, LAN_MAC, None)),
            announces: vec![],
        },
        Fixture {
            what: "its handshake's ACK: established in the LTOC and announced, still to node 2",
            input: segment(b, ACK, LAN_MAC, ROUTER_MAC, None),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(b, ACK, m2, LAN_MAC, None)),
            announces: vec![("associated", conn(b))],
        },
        Fixture {
            what: "a later segment of it handed off by node 3: served by the LTOC, tag removed",
            input: segment(b, ACK, LAN_MAC, m3, Some(HANDOFF_VID)),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(b, ACK, m2, LAN_MAC, None)),
            announces: vec![],
        },
        Fixture {
            what: "a SYN we own handed off by node 2: node 2 serves one, so least connections picks us",
            input: segment(c, SYN, LAN_MAC, m2, Some(HANDOFF_VID)),
            verdict: Verdict::Local,
            output: Some(segment(c, SYN, TAP_MAC, m2, None)),
            announces: vec![],
        },
        Fixture {
            what: "an ACK node 2 owns, nothing cached here: handed off to node 2",
            input: segment(a, ACK, LAN_MAC, ROUTER_MAC, None),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(a, ACK, m2, LAN_MAC, Some(HANDOFF_VID))),
            announces: vec![],
        },
        Fixture {
            what: "a frame node 2 decided we serve (untagged, node 2's source MAC): delivered, not decided",
            input: segment(a, ACK, LAN_MAC, m2, None),
            verdict: Verdict::Local,
            output: Some(segment(a, ACK, TAP_MAC, m2, None)),
            announces: vec![],
        },
        Fixture {
            what: "FIN of our established connection: served by the LTOC, its end announced",
            input: segment(b, FIN_ACK, LAN_MAC, ROUTER_MAC, None),
            verdict: Verdict::Forward { to: m2 },
            output: Some(segment(b, FIN_ACK, m2, LAN_MAC, None)),
            announces: vec![("ended", conn(b))],
        },
        Fixture {
            what: "a second chance for a connection we hold nothing of: dropped (never passed on)",
            input: segment(d, ACK, LAN_MAC, m2, Some(SECOND_CHANCE_VID)),
            verdict: Verdict::Drop(DropReason::NoNode),
            output: None,
            announces: vec![],
        },
        Fixture {
            what: "a VLAN tag that is not ours",
            input: other_vlan,
            verdict: Verdict::Drop(DropReason::NotIp),
            output: None,
            announces: vec![],
        },
        Fixture {
            what: "our tag and nothing after it",
            input: segment(b, ACK, LAN_MAC, m2, Some(HANDOFF_VID))[..18].to_vec(),
            verdict: Verdict::Drop(DropReason::Truncated),
            output: None,
            announces: vec![],
        },
        Fixture {
            what: "a tag protocol id with no tag control field",
            input: segment(b, ACK, LAN_MAC, m2, Some(HANDOFF_VID))[..15].to_vec(),
            verdict: Verdict::Drop(DropReason::Truncated),
            output: None,
            announces: vec![],
        },
        Fixture {
            what: "a hand-off whose IPv4 header length is bad",
            input: {
                let mut f = segment(b, ACK, LAN_MAC, m2, Some(HANDOFF_VID));
                f[18] = 0x41;
                f
            },
            verdict: Verdict::Drop(DropReason::Malformed),
            output: None,
            announces: vec![],
        },
    ];
    // Every hostile frame of the scheduler's table is dropped for the same reason here.
    for (what, input, verdict, output) in crate::fixtures::fixtures(TAP_MAC) {
        if matches!(verdict, Verdict::Drop(_)) {
            v.push(Fixture {
                what,
                input,
                verdict,
                output,
                announces: vec![],
            });
        }
    }
    v
}

#[test]
fn fixture_table() {
    let mut core = IlbCore::new(
        CoreParams {
            local_mac: TAP_MAC,
            ..params(SELF_ID.0)
        },
        vec![node(1), node(2), node(3)],
        IlbLimits::default(),
    );
    let table = fixtures();
    let drops = table
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Drop(_)))
        .count() as u64;
    for f in table {
        let mut frame = f.input.clone();
        let handled = core.handle(&mut frame, 1);
        assert_eq!(handled.verdict, f.verdict, "fixture: {}", f.what);
        assert_eq!(
            frame,
            f.output.unwrap_or(f.input),
            "output frame of fixture: {}",
            f.what
        );
        let announced: Vec<_> = handled.announcements.iter().map(about).collect();
        assert_eq!(
            announced, f.announces,
            "announcements of fixture: {}",
            f.what
        );
    }
    let c = core.counters();
    assert_eq!(c.forwarded_to(NodeId(2)), 6);
    assert_eq!(c.local, 2);
    assert_eq!(c.dropped_total(), drops);
    assert_eq!(core.ilb().counters().handed_off, 2);
}

#[test]
fn the_announced_association_names_the_server_owner_and_backup() {
    let mut core = IlbCore::new(
        params(1),
        vec![node(1), node(2), node(3)],
        IlbLimits::default(),
    );
    let b = port_owned_by(1);
    core.handle(&mut segment(b, SYN, LAN_MAC, ROUTER_MAC, None), 1);
    let handled = core.handle(&mut segment(b, ACK, LAN_MAC, ROUTER_MAC, None), 2);
    let backup = owners(&conn(b), &[NodeId(1), NodeId(2), NodeId(3)])
        .1
        .map(|o| o.node);
    assert_eq!(
        handled.announcements,
        [Announcement::Associated {
            conn: conn(b),
            association: Association {
                serving: NodeId(2),
                owner: NodeId(1),
                backup,
                last_seen: 2,
                ended_at: None,
            },
        }]
    );
}

#[test]
fn a_cached_association_sends_a_segment_straight_to_its_server() {
    let mut core = IlbCore::new(
        params(1),
        vec![node(1), node(2), node(3)],
        IlbLimits::default(),
    );
    let a = port_owned_by(2);
    let members = [NodeId(1), NodeId(2), NodeId(3)];
    let (_, backup) = owners(&conn(a), &members);
    let association = Association {
        serving: NodeId(3),
        owner: NodeId(2),
        backup: backup.map(|o| o.node),
        last_seen: 0,
        ended_at: None,
    };
    core.receive(
        Announcement::Associated {
            conn: conn(a),
            association,
        },
        1,
    );
    let mut frame = segment(a, ACK, LAN_MAC, ROUTER_MAC, None);
    let handled = core.handle(&mut frame, 2);
    assert_eq!(handled.verdict, Verdict::Forward { to: node(3).mac });
    assert_eq!(frame, segment(a, ACK, node(3).mac, LAN_MAC, None));
}

#[test]
fn a_new_owner_without_an_entry_gives_the_backup_a_second_chance_after_a_join() {
    // Node 3 of nodes 1 and 3; node 2 joins, and node 3 owns a connection it never saw.
    let two = vec![node(1), node(2), node(3)]
        .into_iter()
        .map(|mut n| {
            n.alive = n.id != NodeId(2);
            n
        })
        .collect();
    let mut core = IlbCore::new(params(3), two, IlbLimits::default());
    core.set_nodes(vec![node(1), node(2), node(3)], 10);
    let p = port_owned_by(3);
    let backup = owners(&conn(p), &[NodeId(1), NodeId(2), NodeId(3)])
        .1
        .map(|o| o.node)
        .unwrap();
    let mut frame = segment(p, ACK, node(3).mac, node(1).mac, Some(HANDOFF_VID));
    let handled = core.handle(&mut frame, 11);
    let to = core.nodes().iter().find(|n| n.id == backup).unwrap().mac;
    assert_eq!(handled.verdict, Verdict::Forward { to });
    assert_eq!(
        frame,
        segment(p, ACK, to, node(3).mac, Some(SECOND_CHANCE_VID))
    );
}

/// An array of cores wired by a perfect L2 segment and control plane.
struct Array {
    cores: BTreeMap<u16, IlbCore>,
    now: u64,
}

impl Array {
    fn new(n: u16) -> Array {
        let nodes: Vec<NodeEntry> = (1..=n).map(node).collect();
        let cores = (1..=n)
            .map(|id| {
                (
                    id,
                    IlbCore::new(params(id), nodes.clone(), IlbLimits::default()),
                )
            })
            .collect();
        Array { cores, now: 0 }
    }

    fn announce(&mut self, from: u16, announcements: Vec<Announcement>) {
        for a in announcements {
            for (&id, core) in &mut self.cores {
                let to_it = match &a {
                    Announcement::Transfer { to, .. } => *to == NodeId(id),
                    _ => id != from,
                };
                if to_it {
                    core.receive(a.clone(), self.now);
                }
            }
        }
    }

    /// Sends a segment from the router to node `at`; the node whose stack got it, if any.
    fn deliver(&mut self, at: u16, src_port: u16, flags: u8) -> Option<u16> {
        self.now += 1;
        let mut frame = segment(src_port, flags, node(at).mac, ROUTER_MAC, None);
        let mut here = at;
        for _hop in 0..4 {
            let core = self.cores.get_mut(&here)?;
            let handled = core.handle(&mut frame, self.now);
            self.announce(here, handled.announcements);
            match handled.verdict {
                Verdict::Local => return Some(here),
                Verdict::Forward { to } => here = u16::from(to.0[5]),
                Verdict::Drop(_) => return None,
            }
        }
        None
    }

    fn kill(&mut self, dead: u16) {
        self.cores.remove(&dead);
        let ids: Vec<u16> = self.cores.keys().copied().collect();
        let nodes: Vec<NodeEntry> = ids.iter().map(|&id| node(id)).collect();
        self.now += 1;
        for id in ids {
            let out = self
                .cores
                .get_mut(&id)
                .map(|c| c.set_nodes(nodes.clone(), self.now))
                .unwrap_or_default();
            self.announce(id, out);
        }
    }

    /// ECMP's choice among the alive nodes.
    fn router(&self, pick: u8) -> u16 {
        let ids: Vec<u16> = self.cores.keys().copied().collect();
        ids[usize::from(pick) % ids.len()]
    }
}

proptest! {
    #[test]
    fn every_segment_of_a_connection_ends_at_its_server_across_an_owner_failure(
        n in 3u16..=5,
        ports in proptest::collection::btree_set(1024u16.., 1..8),
        picks in proptest::collection::vec(any::<u8>(), 64),
        victim in any::<u8>(),
    ) {
        let mut array = Array::new(n);
        let mut pick = picks.iter().cycle().copied();
        let mut served: BTreeMap<u16, u16> = BTreeMap::new();
        for &p in &ports {
            let at = array.router(pick.next().unwrap_or(0));
            let server = array.deliver(at, p, SYN);
            prop_assert!(server.is_some(), "SYN of port {p} was served");
            served.insert(p, server.unwrap_or(0));
        }
        for _round in 0..3 {
            for &p in &ports {
                let at = array.router(pick.next().unwrap_or(0));
                prop_assert_eq!(array.deliver(at, p, ACK), served.get(&p).copied(), "port {}", p);
            }
        }
        // The owner of one connection fails; connections it merely owned or backed up live on.
        let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let first = ports.iter().nth(usize::from(victim) % ports.len()).copied().unwrap_or(0);
        let dead = owners(&conn(first), &members).0.map_or(1, |o| o.node.0);
        array.kill(dead);
        for _round in 0..3 {
            for &p in &ports {
                if served.get(&p) == Some(&dead) {
                    continue; // its server died with it
                }
                let at = array.router(pick.next().unwrap_or(0));
                prop_assert_eq!(array.deliver(at, p, ACK), served.get(&p).copied(), "port {} after node {} died", p, dead);
            }
        }
    }
}

//! Scheduler fixtures (description, input frame, expected verdict, expected output frame)
//! and properties of the routing.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::synth::FrameSpec;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10));
const LAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const TAP_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0xee, 1]);

fn node(id: u16) -> NodeEntry {
    NodeEntry {
        id: NodeId(id),
        mac: MacAddr([2, 0, 0, 0, 1, id as u8]),
        weight: 1,
        enabled: true,
        alive: true,
    }
}

fn core(nodes: Vec<NodeEntry>) -> SchedulerCore {
    let params = CoreParams {
        vip: VIP,
        services: vec![(L4Proto::Tcp, 80), (L4Proto::Tcp, 443)],
        self_id: NodeId(1),
        lan_mac: LAN_MAC,
        local_mac: TAP_MAC,
    };
    SchedulerCore::new(params, nodes, BucketTable::new(256).unwrap())
}

#[test]
fn fixture_table() {
    // The shared table (crate::fixtures), also run against the XDP program (crate::xdp).
    let mut table_core = core(vec![node(1), node(2), node(3)]);
    let syn = crate::fixtures::syn();
    let b = table_core.schedule.table.bucket_of(syn.src, syn.src_port);
    table_core.schedule.table.set(b, Some(NodeId(2)), 0);
    let fixtures = crate::fixtures::fixtures(TAP_MAC);
    let drops = fixtures
        .iter()
        .filter(|f| matches!(f.2, Verdict::Drop(_)))
        .count() as u64;
    for (what, input, verdict, output) in fixtures {
        let mut frame = input.clone();
        assert_eq!(table_core.handle(&mut frame, 1), verdict, "fixture: {what}");
        let expected = output.unwrap_or(input);
        assert_eq!(frame, expected, "output frame of fixture: {what}");
    }
    let c = table_core.counters();
    assert_eq!(c.forwarded_to(NodeId(2)), 1);
    assert_eq!(c.local, 2);
    assert_eq!(c.dropped(DropReason::UnservedPort), 2);
    assert_eq!(c.dropped_total(), drops);
}

#[test]
fn no_node_drops_and_counts() {
    let mut dead = node(2);
    dead.alive = false;
    let mut c = core(vec![dead]);
    let mut f = FrameSpec::default().build();
    assert_eq!(c.handle(&mut f, 0), Verdict::Drop(DropReason::NoNode));
    assert_eq!(c.counters().dropped(DropReason::NoNode), 1);
}

#[test]
fn a_dead_node_loses_its_buckets_and_flows_move() {
    let mut c = core(vec![node(2), node(3)]);
    let mut spread = [0u64; 4];
    for port in 0..200u16 {
        let mut f = FrameSpec {
            src_port: 1000 + port,
            ..FrameSpec::default()
        }
        .build();
        if let Verdict::Forward { to } = c.handle(&mut f, 0) {
            spread[usize::from(to.0[5])] += 1;
        }
    }
    assert!(spread[2] > 50 && spread[3] > 50, "spread {spread:?}");
    let mut dead = node(2);
    dead.alive = false;
    c.set_nodes(vec![dead, node(3)]);
    assert_eq!(c.table().assigned_counts().get(&NodeId(2)), None);
    for port in 0..200u16 {
        let mut f = FrameSpec {
            src_port: 1000 + port,
            ..FrameSpec::default()
        }
        .build();
        assert_eq!(c.handle(&mut f, 1), Verdict::Forward { to: node(3).mac });
    }
}

#[test]
fn idle_buckets_are_released_by_tick() {
    let mut c = core(vec![node(1), node(2)]);
    let mut f = FrameSpec::default().build();
    c.handle(&mut f, 0);
    c.tick(1_000, 5_000);
    assert_eq!(c.counters().idle_released, 0);
    c.tick(10_000, 5_000);
    assert_eq!(c.counters().idle_released, 1);
}

proptest! {
    /// A flow keeps its node for as long as the node table does not change, and the verdict
    /// for every frame of a flow is the same.
    #[test]
    fn a_flow_is_sticky(ports in proptest::collection::vec(any::<u16>(), 1..50), t in 0u64..1000) {
        let mut c = core(vec![node(1), node(2), node(3)]);
        let first: Vec<Verdict> = ports.iter().map(|&p| {
            let mut f = FrameSpec { src_port: p, dst_mac: LAN_MAC, ..FrameSpec::default() }.build();
            c.handle(&mut f, 0)
        }).collect();
        for (&p, v) in ports.iter().zip(&first) {
            let mut f = FrameSpec { src_port: p, dst_mac: LAN_MAC, ..FrameSpec::default() }.build();
            prop_assert_eq!(c.handle(&mut f, t), *v);
        }
    }

    /// Whatever the bytes, the core answers and counts exactly one verdict per frame.
    #[test]
    fn every_frame_is_counted_once(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..30)) {
        let mut c = core(vec![node(1), node(2)]);
        for mut f in frames.clone() {
            c.handle(&mut f, 0);
        }
        let k = c.counters();
        prop_assert_eq!(k.forwarded_total() + k.local + k.dropped_total(), frames.len() as u64);
    }
}

/// Another mode behind the same core: every flow to node 2, recording what it was asked.
#[derive(Default)]
struct ToTwo {
    seen: Vec<Flow>,
}

impl Schedule for ToTwo {
    fn schedule(&mut self, flow: &Flow, _now_ms: u64) -> Option<NodeId> {
        self.seen.push(*flow);
        Some(NodeId(2))
    }

    fn set_nodes(&mut self, _nodes: &[NodeEntry]) {}
}

#[test]
fn a_schedule_sees_only_flows_that_passed_the_vip_and_port_checks() {
    let nodes: Vec<NodeEntry> = (1..=2)
        .map(|id| NodeEntry {
            id: NodeId(id),
            mac: MacAddr([2, 0, 0, 0, 0, id as u8]),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect();
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    let mut core = SchedulerCore::with_schedule(params, nodes, ToTwo::default());
    let mut good = FrameSpec::default().build();
    assert_eq!(
        core.handle(&mut good, 1),
        Verdict::Forward {
            to: MacAddr([2, 0, 0, 0, 0, 2])
        }
    );
    let mut other_port = FrameSpec {
        dst_port: 25,
        ..FrameSpec::default()
    }
    .build();
    assert_eq!(
        core.handle(&mut other_port, 2),
        Verdict::Drop(DropReason::UnservedPort)
    );
    let mut garbage = vec![0u8; 9];
    assert!(matches!(core.handle(&mut garbage, 3), Verdict::Drop(_)));
    assert_eq!(core.schedule_ref().seen.len(), 1, "only the VIP:80 flow");
    assert!(core.schedule_ref().seen[0].tcp_flags.is_initial_syn());
}

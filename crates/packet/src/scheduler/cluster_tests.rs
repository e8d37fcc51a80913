//! The core's side of the control plane: recorded assignments, the takeover hold, adopting
//! a replica.

use std::net::{IpAddr, Ipv4Addr};

use pentaflow_balance::{BucketSnapshot, BucketTable, NodeId};

use super::{CoreParams, NodeEntry, SchedulerCore};
use crate::frame::{DropReason, L4Proto, MacAddr, Verdict};
use crate::synth::FrameSpec;

fn node(id: u16) -> NodeEntry {
    NodeEntry {
        id: NodeId(id),
        mac: MacAddr([2, 0, 0, 0, 1, id as u8]),
        weight: 1,
        enabled: true,
        alive: true,
    }
}

fn core() -> SchedulerCore {
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 1, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    SchedulerCore::new(
        params,
        vec![node(1), node(2)],
        BucketTable::new(256).unwrap(),
    )
}

fn syn() -> FrameSpec {
    FrameSpec {
        dst_mac: MacAddr([2, 0, 0, 0, 1, 1]),
        ..FrameSpec::default()
    }
}

#[test]
fn new_assignments_are_recorded_once() {
    let mut c = core();
    c.record_changes();
    let spec = syn();
    let b = c.table().bucket_of(spec.src, spec.src_port) as u32;
    for _ in 0..3 {
        let mut f = spec.build();
        assert_eq!(c.handle(&mut f, 5), Verdict::Local);
    }
    assert_eq!(c.take_changes(), vec![(b, Some(NodeId(1)))]);
    assert!(c.take_changes().is_empty());
}

#[test]
fn idle_releases_are_recorded_after_the_assignment() {
    let mut c = core();
    c.record_changes();
    let spec = syn();
    let b = c.table().bucket_of(spec.src, spec.src_port) as u32;
    let mut f = spec.build();
    c.handle(&mut f, 5);
    c.tick(1_000, 5_000);
    assert_eq!(c.take_changes(), vec![(b, Some(NodeId(1)))]);
    c.tick(10_000, 5_000);
    assert_eq!(c.take_changes(), vec![(b, None)]);
    // The next flow of the bucket is an assignment again.
    let mut f = spec.build();
    c.handle(&mut f, 10_001);
    assert_eq!(c.take_changes(), vec![(b, Some(NodeId(1)))]);
}

#[test]
fn without_recording_nothing_is_kept() {
    let mut c = core();
    let mut f = syn().build();
    c.handle(&mut f, 5);
    assert!(c.take_changes().is_empty());
}

#[test]
fn the_hold_drops_every_flow_and_adopts_the_merge_whole() {
    let mut c = core();
    let spec = syn();
    let b = c.table().bucket_of(spec.src, spec.src_port);
    // Assigned before the takeover (the replica it started from) ...
    let mut f = spec.build();
    assert_eq!(c.handle(&mut f, 1), Verdict::Local);
    c.set_accepting_new(false);
    // ... but while merging even an assigned bucket may be stale: held.
    let mut f = spec.build();
    assert_eq!(c.handle(&mut f, 5), Verdict::Drop(DropReason::NoNode));
    c.tick(1_000_000, 1);
    assert_eq!(
        c.table().get(b).map(|(n, _)| n),
        Some(NodeId(1)),
        "no release while held"
    );
    // The merge says node 2 holds it live (the delta that moved it was lost): adopted whole.
    let snapshot = BucketSnapshot {
        size: 256,
        version: 9,
        assigned: vec![(b as u32, NodeId(2))],
    };
    assert_eq!(c.adopt(&snapshot, 6), 1);
    c.set_accepting_new(true);
    let mut f = spec.build();
    assert!(
        matches!(c.handle(&mut f, 7), Verdict::Forward { .. }),
        "merged bucket routes to its live owner"
    );
}

#[test]
fn adopting_never_overrides_the_core() {
    let mut c = core();
    let spec = syn();
    let b = c.table().bucket_of(spec.src, spec.src_port);
    let mut f = spec.build();
    assert_eq!(c.handle(&mut f, 1), Verdict::Local);
    let conflicting = BucketSnapshot {
        size: 256,
        version: 9,
        assigned: vec![(b as u32, NodeId(2))],
    };
    assert_eq!(c.adopt(&conflicting, 2), 0);
    let wrong_size = BucketSnapshot {
        size: 512,
        version: 1,
        assigned: vec![(3, NodeId(2))],
    };
    assert_eq!(c.adopt(&wrong_size, 2), 0);
    assert_eq!(c.table().get(b).map(|(n, _)| n), Some(NodeId(1)));
}

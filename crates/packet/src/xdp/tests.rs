//! The XDP program against the Rust core, through `BPF_PROG_TEST_RUN` (root only: loading a
//! program needs CAP_BPF; skipped loudly otherwise, and failing under
//! `PENTAFLOW_REQUIRE_ROOT=1`, which CI sets).

use std::net::{IpAddr, Ipv4Addr};

use pentaflow_balance::hash::bucket_hash;
use pentaflow_balance::BucketTable;

use super::*;
use crate::fixtures::{self, node, LAN_MAC, SELF_ID, SERVICES, VIP};
use crate::scheduler::{CoreParams, SchedulerCore};
use crate::synth::FrameSpec;

const TABLE: usize = 256;

/// Whether this process may load BPF programs; if not, says so and returns false — or
/// panics when `PENTAFLOW_REQUIRE_ROOT=1` (a skipped test is not a pass).
fn may_load(test: &str) -> bool {
    // SAFETY-free check: the effective uid, as the lab's tests use.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if root {
        return true;
    }
    let required = matches!(
        std::env::var("PENTAFLOW_REQUIRE_ROOT").as_deref(),
        Ok("1" | "true" | "yes")
    );
    assert!(
        !required,
        "{test} needs root to load BPF programs, and PENTAFLOW_REQUIRE_ROOT=1"
    );
    eprintln!("SKIPPED {test}: needs root to load BPF programs");
    false
}

fn params() -> XdpParams {
    XdpParams {
        vip: VIP,
        services: SERVICES.to_vec(),
        self_id: SELF_ID,
        lan_mac: LAN_MAC,
    }
}

/// The Rust core as the XDP plane behaves: local frames keep the LAN MAC as destination.
fn rust_core(nodes: Vec<NodeEntry>, table: BucketTable) -> SchedulerCore {
    let params = CoreParams {
        vip: IpAddr::V4(VIP),
        services: SERVICES.to_vec(),
        self_id: SELF_ID,
        lan_mac: LAN_MAC,
        local_mac: LAN_MAC,
    };
    let mut core = SchedulerCore::new(params, nodes, table);
    core.record_changes();
    core
}

fn xdp(nodes: Vec<NodeEntry>, table: BucketTable) -> XdpSchedule {
    let program = XdpProgram::load(table.len()).expect("the XDP program loads");
    let mut s = XdpSchedule::new(program, params(), nodes, table, 0).expect("configured");
    s.record_changes();
    s
}

fn stat_index(verdict: Verdict, frame: &[u8]) -> u32 {
    let reason = |r: DropReason| u32::try_from(r.index()).unwrap_or(u32::MAX);
    match verdict {
        Verdict::Forward { .. } => maps::STAT_FORWARDED,
        Verdict::Local => maps::STAT_LOCAL,
        // The program passes IPv6 unexamined and counts it apart.
        Verdict::Drop(_) if frame.get(12..14) == Some(&[0x86, 0xdd][..]) => maps::STAT_IPV6,
        Verdict::Drop(r) if expected_action(verdict, frame, VIP) == XdpAction::Drop => reason(r),
        Verdict::Drop(r) => maps::STAT_PASSED + reason(r),
    }
}

fn stat_vector(s: &XdpStats) -> Vec<u64> {
    let mut v = s.dropped.to_vec();
    v.extend(s.passed);
    v.extend([
        s.ipv6_passed,
        s.forwarded,
        s.local,
        s.assigned,
        s.events_lost,
    ]);
    v
}

#[test]
fn the_c_bucket_hash_matches_the_golden_vectors_and_the_rust_one() {
    if !may_load("the_c_bucket_hash_matches_the_golden_vectors_and_the_rust_one") {
        return;
    }
    let program = XdpProgram::load(TABLE).expect("loads");
    // The golden vectors of pentaflow-balance (tests/golden.rs), from the C side.
    let golden = [
        (Ipv4Addr::new(192, 0, 2, 1), 40_000, 0xb7e3_cd39_u32),
        (Ipv4Addr::new(10, 77, 2, 11), 40_000, 0x8338_31e6),
        (Ipv4Addr::new(0, 0, 0, 0), 0, 0x6aed_3ca3),
    ];
    for (ip, port, want) in golden {
        assert_eq!(
            program.c_bucket_hash(ip, port).expect("probe"),
            want,
            "{ip}:{port}"
        );
    }
    // And any client: a deterministic spread over addresses and ports.
    let mut x = 0x9e37_79b9_u32;
    for _ in 0..500 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let ip = Ipv4Addr::from(x);
        let port = u16::try_from(x >> 16).unwrap_or(0) ^ 0x5a5a;
        assert_eq!(
            program.c_bucket_hash(ip, port).expect("probe"),
            bucket_hash(IpAddr::V4(ip), port),
            "{ip}:{port}"
        );
    }
}

#[test]
fn the_fixture_table_gives_the_same_verdicts_frames_and_counters_in_both_data_planes() {
    if !may_load("the_fixture_table_gives_the_same_verdicts_frames_and_counters") {
        return;
    }
    let nodes = vec![node(1), node(2), node(3)];
    let mut table = BucketTable::new(TABLE).expect("size");
    let syn = fixtures::syn();
    let pinned = table.bucket_of(syn.src, syn.src_port);
    table.set(pinned, Some(NodeId(2)), 0);
    let mut core = rust_core(nodes.clone(), table.clone());
    let mut plane = xdp(nodes, table);
    for (what, input, verdict, output) in fixtures::fixtures(LAN_MAC) {
        let mut frame = input.clone();
        assert_eq!(core.handle(&mut frame, 1), verdict, "core, fixture: {what}");
        assert_eq!(
            frame,
            output.clone().unwrap_or(input.clone()),
            "core output: {what}"
        );

        if input.len() < crate::frame::ETHERNET_HEADER_LEN {
            // No device hands XDP a frame shorter than its Ethernet header, and
            // BPF_PROG_TEST_RUN refuses one (EINVAL); the program's bounds check stays.
            assert!(plane.program().test_run(&input).is_err(), "fixture: {what}");
            continue;
        }
        let before = stat_vector(&plane.program().stats().expect("stats"));
        let (action, out) = plane.program().test_run(&input).expect("test run");
        assert_eq!(
            action,
            expected_action(verdict, &input, VIP),
            "xdp action, fixture: {what}"
        );
        assert_eq!(out, frame, "xdp output frame, fixture: {what}");
        let after = stat_vector(&plane.program().stats().expect("stats"));
        let mut want = before.clone();
        want[stat_index(verdict, &input) as usize] += 1;
        if what.starts_with("https to the VIP") {
            want[maps::STAT_ASSIGNED as usize] += 1;
        }
        assert_eq!(after, want, "xdp counters, fixture: {what}");
        plane.poll().expect("events");
    }
    // The one new assignment reached user space by the ring buffer, as the core recorded it.
    assert_eq!(plane.take_changes(), core.take_changes());
    assert_eq!(
        plane.table().snapshot().assigned,
        core.table().snapshot().assigned
    );
    let c = plane.counters().expect("counters");
    assert_eq!(c.forwarded, vec![(NodeId(2), 1)]);
    assert_eq!(c.local, core.counters().local);
}

/// Many new flows, a node that dies, one that joins and idle release: the program and user
/// space together route exactly as the core does when "next" is recomputed between frames.
#[test]
fn routing_follows_the_core_through_new_flows_failure_and_idle_release() {
    if !may_load("routing_follows_the_core_through_new_flows_failure_and_idle_release") {
        return;
    }
    let nodes = vec![node(1), node(2), node(3)];
    let table = BucketTable::new(TABLE).expect("size");
    let mut core = rust_core(nodes.clone(), table.clone());
    let mut plane = xdp(nodes.clone(), table);
    let frame_of = |i: u16| {
        FrameSpec {
            dst_mac: LAN_MAC,
            src: IpAddr::V4(Ipv4Addr::new(
                10,
                77,
                2,
                u8::try_from(i % 200).unwrap_or(0) + 1,
            )),
            src_port: 20_000 + i,
            ..FrameSpec::default()
        }
        .build()
    };
    let run = |core: &mut SchedulerCore, plane: &mut XdpSchedule, range: std::ops::Range<u16>| {
        for i in range {
            let input = frame_of(i);
            let mut frame = input.clone();
            let verdict = core.handle(&mut frame, 0);
            let (action, out) = plane.program().test_run(&input).expect("run");
            assert_eq!(action, expected_action(verdict, &input, VIP), "flow {i}");
            assert_eq!(out, frame, "flow {i}");
            plane.poll().expect("events");
        }
    };
    run(&mut core, &mut plane, 0..300);
    assert_eq!(
        plane.table().snapshot().assigned,
        core.table().snapshot().assigned
    );
    assert_eq!(plane.take_changes(), core.take_changes());

    // Node 3 dies: its buckets are released in both, and its flows move to 1 and 2.
    let mut dead = nodes.clone();
    dead[2].alive = false;
    core.set_nodes(dead.clone());
    plane.set_nodes(dead).expect("nodes");
    assert_eq!(plane.table().assigned_to(NodeId(3)), 0);
    run(&mut core, &mut plane, 0..300);
    assert_eq!(
        plane.table().snapshot().assigned,
        core.table().snapshot().assigned
    );

    // Node 4 joins; everything goes idle; the next flows fill node 4 first.
    let mut joined = nodes;
    joined[2].alive = false;
    joined.push(node(4));
    core.set_nodes(joined.clone());
    plane.set_nodes(joined).expect("nodes");
    let now = crate::sys::monotonic_ns();
    let idle = 1_000_000;
    core.tick(now + 10 * idle, idle);
    let released = plane.tick(now + 10 * idle, idle).expect("tick");
    assert!(
        released > 0,
        "the program's access times are old enough to release"
    );
    assert_eq!(
        plane.table().snapshot().assigned,
        core.table().snapshot().assigned
    );
    core.take_changes();
    plane.take_changes();
    run(&mut core, &mut plane, 300..400);
    assert_eq!(
        plane.table().snapshot().assigned,
        core.table().snapshot().assigned
    );
    assert!(plane.table().assigned_to(NodeId(4)) > 0);
    assert_eq!(plane.take_changes(), core.take_changes());
}

#[test]
fn a_takeover_hold_drops_ours_and_adopting_a_replica_routes_by_it() {
    if !may_load("a_takeover_hold_drops_ours_and_adopting_a_replica_routes_by_it") {
        return;
    }
    let nodes = vec![node(1), node(2), node(3)];
    let mut plane = xdp(nodes, BucketTable::new(TABLE).expect("size"));
    plane.set_accepting_new(false).expect("hold");
    let syn = fixtures::syn().build();
    let (action, _) = plane.program().test_run(&syn).expect("run");
    assert_eq!(action, XdpAction::Drop);
    assert_eq!(
        plane.program().stats().expect("stats").dropped[DropReason::NoNode.index()],
        1
    );
    // The merge's result: the client's bucket is node 3's.
    let spec = fixtures::syn();
    let bucket = plane.table().bucket_of(spec.src, spec.src_port);
    let replica = BucketSnapshot {
        size: TABLE,
        version: 7,
        assigned: vec![(u32::try_from(bucket).expect("bucket"), NodeId(3))],
    };
    assert_eq!(plane.adopt(&replica, 5).expect("adopt"), 1);
    plane.set_accepting_new(true).expect("accept");
    let (action, out) = plane.program().test_run(&syn).expect("run");
    assert_eq!(action, XdpAction::Tx);
    assert_eq!(&out[..6], &node(3).mac.0);
    assert_eq!(&out[6..12], &LAN_MAC.0);
    let (held, last) = plane.program().bucket(bucket).expect("in range");
    assert_eq!(held, Some(NodeId(3)));
    assert!(
        last > 5,
        "the program stamped the access on CLOCK_MONOTONIC"
    );
}

#[test]
fn the_map_layout_is_the_c_layout() {
    // Offsets the C compiler gives `struct pf_config` (scheduler.h), checked without root.
    assert_eq!(std::mem::offset_of!(maps::Config, bucket_mask), 4);
    assert_eq!(std::mem::offset_of!(maps::Config, self_id), 8);
    assert_eq!(std::mem::offset_of!(maps::Config, lan_mac), 10);
    assert_eq!(std::mem::offset_of!(maps::Config, accepting), 16);
    assert_eq!(std::mem::offset_of!(maps::Config, n_services), 17);
    assert_eq!(std::mem::offset_of!(maps::Config, services), 20);
    assert_eq!(std::mem::offset_of!(maps::Event, at), 8);
    assert_eq!(maps::STAT_PASSED as usize, DropReason::ALL.len());
    assert_eq!(maps::STAT_COUNT as usize, 2 * DropReason::ALL.len() + 5);
}

#[test]
fn expected_actions_follow_ownership_of_the_frame() {
    let syn = fixtures::syn().build();
    let v = |r| Verdict::Drop(r);
    assert_eq!(
        expected_action(v(DropReason::UnservedPort), &syn, VIP),
        XdpAction::Drop
    );
    assert_eq!(
        expected_action(v(DropReason::Truncated), &syn[..30], VIP),
        XdpAction::Pass
    );
    assert_eq!(
        expected_action(v(DropReason::NotVip), &syn, Ipv4Addr::new(10, 0, 0, 1)),
        XdpAction::Pass
    );
    assert_eq!(expected_action(Verdict::Local, &syn, VIP), XdpAction::Pass);
    assert_eq!(
        expected_action(Verdict::Forward { to: LAN_MAC }, &syn, VIP),
        XdpAction::Tx
    );
}

#[test]
fn a_replica_loaded_at_start_routes_its_flows_to_their_nodes() {
    if !may_load("a_replica_loaded_at_start_routes_its_flows_to_their_nodes") {
        return;
    }
    let spec = fixtures::syn();
    let mut table = BucketTable::new(TABLE).expect("size");
    let bucket = table.bucket_of(spec.src, spec.src_port);
    table.set(bucket, Some(NodeId(3)), 0);
    let mut dead1 = node(1);
    dead1.alive = false;
    let mut plane = xdp(vec![dead1, node(2), node(3)], table);
    plane.set_accepting_new(false).expect("hold");
    plane.set_accepting_new(true).expect("accept");
    let (action, out) = plane.program().test_run(&spec.build()).expect("run");
    assert_eq!(action, XdpAction::Tx);
    assert_eq!(&out[..6], &node(3).mac.0);
}

/// Hostile frames: every fixture with random bytes overwritten, truncated or extended. The
/// program and the core must agree on each (action, output frame, counter), as the fixtures do.
#[test]
fn mutated_frames_get_the_same_decision_from_both_data_planes() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    if !may_load("mutated_frames_get_the_same_decision_from_both_data_planes") {
        return;
    }
    let nodes = vec![node(1), node(2), node(3)];
    let mut table = BucketTable::new(TABLE).expect("size");
    let syn = fixtures::syn();
    table.set(table.bucket_of(syn.src, syn.src_port), Some(NodeId(2)), 0);
    let core = std::cell::RefCell::new(rust_core(nodes.clone(), table.clone()));
    let plane = std::cell::RefCell::new(xdp(nodes, table));
    let inputs: Vec<Vec<u8>> = fixtures::fixtures(LAN_MAC)
        .into_iter()
        .map(|f| f.1)
        .filter(|f| f.len() >= crate::frame::ETHERNET_HEADER_LEN)
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..inputs.len(),
        proptest::collection::vec((14usize..80, any::<u8>()), 0..6),
        0usize..100,
    );
    runner
        .run(&strategy, |(which, writes, cut)| {
            let mut input = inputs[which].clone();
            for (at, byte) in writes {
                if let Some(b) = input.get_mut(at) {
                    *b = byte;
                }
            }
            // Sometimes shorter (never below an Ethernet header), sometimes padded.
            if cut < 40 {
                input.truncate((14 + cut).max(14));
            } else if cut > 90 {
                input.resize(input.len() + cut, 0);
            }
            let mut frame = input.clone();
            let verdict = core.borrow_mut().handle(&mut frame, 1);
            let plane = plane.borrow_mut();
            let before = stat_vector(&plane.program().stats().expect("stats"));
            let (action, out) = plane.program().test_run(&input).expect("run");
            let after = stat_vector(&plane.program().stats().expect("stats"));
            prop_assert_eq!(
                action,
                expected_action(verdict, &input, VIP),
                "{:?}",
                verdict
            );
            prop_assert_eq!(out, frame);
            let idx = stat_index(verdict, &input) as usize;
            prop_assert_eq!(after[idx], before[idx] + 1, "counter of {:?}", verdict);
            Ok(())
        })
        .expect("both data planes agree");
    // A mutated frame may have assigned new buckets; both sides must have the same table.
    let mut plane = plane.into_inner();
    plane.poll().expect("events");
    assert_eq!(
        plane.table().snapshot().assigned,
        core.borrow().table().snapshot().assigned
    );
}

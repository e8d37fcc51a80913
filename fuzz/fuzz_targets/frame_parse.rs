//! Fuzz the frame parser and the scheduler core with arbitrary frames: neither may panic, a
//! parsed flow must survive a MAC rewrite unchanged, and every frame gets exactly one verdict.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use pentaflow_packet::frame::{parse_flow, rewrite_macs};
use pentaflow_packet::{BucketTable, CoreParams, L4Proto, MacAddr, NodeEntry, NodeId, SchedulerCore};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_flow(data);
    let mut copy = data.to_vec();
    if rewrite_macs(&mut copy, MacAddr([2, 0, 0, 0, 0, 2]), MacAddr([2, 0, 0, 0, 0, 1])).is_ok() {
        assert_eq!(parse_flow(&copy), parsed, "a MAC rewrite never changes the flow");
    }

    let nodes = (1..=2u16)
        .map(|id| NodeEntry { id: NodeId(id), mac: MacAddr([2, 0, 0, 0, 0, id as u8]), weight: 1, enabled: true, alive: true })
        .collect();
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80), (L4Proto::Udp, 443)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    let Ok(table) = BucketTable::new(64) else { return };
    let mut core = SchedulerCore::new(params, nodes, table);
    let mut frame = data.to_vec();
    core.handle(&mut frame, 0);
    let c = core.counters();
    assert_eq!(c.forwarded_total() + c.local + c.dropped_total(), 1);
});

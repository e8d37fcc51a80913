//! Fuzz the active-active core's frame entry point (`IlbCore::handle`), which reads the
//! hand-off tag itself before the shared parser: no frame may panic it, every frame gets
//! exactly one counted verdict, and a frame it sends on still parses to the same flow.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use pentaflow_balance::ilb::IlbLimits;
use pentaflow_packet::frame::parse_flow;
use pentaflow_packet::{CoreParams, IlbCore, L4Proto, MacAddr, NodeEntry, NodeId, Verdict};

/// The frame without our 802.1Q tag, if it has one.
fn untagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f.len() >= 16 && f[12..14] == [0x81, 0x00] {
        f.drain(12..16);
    }
    f
}

fuzz_target!(|data: &[u8]| {
    let nodes = (1..=3u16)
        .map(|id| NodeEntry { id: NodeId(id), mac: MacAddr([2, 0, 0, 0, 0, id as u8]), weight: 1, enabled: true, alive: true })
        .collect();
    let params = CoreParams {
        vip: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
        services: vec![(L4Proto::Tcp, 80), (L4Proto::Udp, 443)],
        self_id: NodeId(1),
        lan_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        local_mac: MacAddr([2, 0, 0, 0, 0xee, 1]),
    };
    let mut core = IlbCore::new(params, nodes, IlbLimits::default());
    let mut frame = data.to_vec();
    let handled = core.handle(&mut frame, 0);
    let c = core.counters();
    assert_eq!(c.forwarded_total() + c.local + c.dropped_total(), 1);
    match handled.verdict {
        Verdict::Drop(_) => assert_eq!(frame, data, "a dropped frame is left as it came"),
        Verdict::Forward { .. } | Verdict::Local => {
            let before = parse_flow(&untagged(data)).map(|f| (f.src, f.src_port, f.dst, f.dst_port));
            let after = parse_flow(&untagged(&frame)).map(|f| (f.src, f.src_port, f.dst, f.dst_port));
            assert!(before.is_ok(), "only a parsed frame is sent on");
            assert_eq!(after, before, "the rewrite never changes the flow");
        }
    }
    // A second segment of the same bytes must not panic either (state now held).
    let mut again = data.to_vec();
    core.handle(&mut again, 1);
});

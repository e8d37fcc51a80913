//! The scheduler's fixture table — input frame, expected verdict, expected output frame —
//! shared by the tests of both data planes: the Rust core ([`crate::SchedulerCore`]) and the
//! XDP program through `BPF_PROG_TEST_RUN` (`crate::xdp`), so one list states what both do.
//!
//! The setting: VIP 10.77.1.10, services TCP 80 and 443, nodes 1 (us), 2 and 3, and the
//! bucket of the default SYN (10.77.2.11:40000) pre-assigned to node 2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frame::{self, DropReason, L4Proto, MacAddr, Verdict};
use crate::scheduler::NodeEntry;
use crate::synth::FrameSpec;
use crate::NodeId;

/// The VIP of the fixtures.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 10);
/// The scheduler's LAN MAC.
pub(crate) const LAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
/// The served (protocol, port) pairs.
pub(crate) const SERVICES: [(L4Proto, u16); 2] = [(L4Proto::Tcp, 80), (L4Proto::Tcp, 443)];
/// This node's id.
pub(crate) const SELF_ID: NodeId = NodeId(1);

/// One fixture: what it is, the input, the verdict of the core, the output frame (`None`:
/// the input unchanged).
pub(crate) type Fixture = (&'static str, Vec<u8>, Verdict, Option<Vec<u8>>);

/// Node `id` of the fixtures (MAC 02:00:00:00:01:id).
pub(crate) fn node(id: u16) -> NodeEntry {
    NodeEntry {
        id: NodeId(id),
        mac: MacAddr([2, 0, 0, 0, 1, u8::try_from(id).unwrap_or(0xff)]),
        weight: 1,
        enabled: true,
        alive: true,
    }
}

/// The default SYN of the fixtures, addressed to the scheduler.
pub(crate) fn syn() -> FrameSpec {
    FrameSpec {
        dst_mac: LAN_MAC,
        ..FrameSpec::default()
    }
}

/// A frame with the given MACs and the rest of `spec`.
fn with_macs(spec: &FrameSpec, dst: MacAddr, src: MacAddr) -> Vec<u8> {
    FrameSpec {
        dst_mac: dst,
        src_mac: src,
        ..spec.clone()
    }
    .build()
}

/// The fixtures, in order (the second assigns a new bucket to node 1), for a core whose local
/// delivery MAC is `local_mac` (the TAP's for AF_PACKET, the LAN's for XDP).
pub(crate) fn fixtures(local_mac: MacAddr) -> Vec<Fixture> {
    let syn = syn();
    let client_mac = syn.src_mac;
    let https = FrameSpec {
        dst_port: 443,
        src_port: 40001,
        ..syn.clone()
    };
    let mut fragment = syn.build();
    fragment[20] = 0x20; // more fragments
    let mut later_fragment = syn.build();
    later_fragment[21] = 0x10; // offset 16 words
    let mut bad_ihl = syn.build();
    bad_ihl[14] = 0x41;
    let mut bad_version = syn.build();
    bad_version[14] = 0x65;
    let mut bad_doff = syn.build();
    bad_doff[14 + 20 + 12] = 0x40; // data offset 4 words
    let mut doff_past_end = syn.build();
    doff_past_end[14 + 20 + 12] = 0x80; // 32 bytes of TCP header, 20 present
    let mut vlan = syn.build();
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let v6 = FrameSpec {
        src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10)),
        ..syn.clone()
    };
    let other = FrameSpec {
        dst: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 11)),
        ..syn.clone()
    };
    vec![
        (
            "syn to the VIP, bucket of node 2: both MACs rewritten",
            syn.build(),
            Verdict::Forward { to: node(2).mac },
            Some(with_macs(&syn, node(2).mac, LAN_MAC)),
        ),
        (
            "https to the VIP on another client port: new bucket, least assigned is node 1 (us)",
            https.build(),
            Verdict::Local,
            Some(with_macs(&https, local_mac, client_mac)),
        ),
        (
            "the same flow again: its bucket is ours now",
            https.build(),
            Verdict::Local,
            Some(with_macs(&https, local_mac, client_mac)),
        ),
        (
            "tcp to an unserved port",
            FrameSpec {
                dst_port: 22,
                ..syn.clone()
            }
            .build(),
            Verdict::Drop(DropReason::UnservedPort),
            None,
        ),
        (
            "udp to a served port number",
            FrameSpec {
                proto: 17,
                ..syn.clone()
            }
            .build(),
            Verdict::Drop(DropReason::UnservedPort),
            None,
        ),
        (
            "icmp to the VIP",
            FrameSpec {
                proto: 1,
                ..syn.clone()
            }
            .build(),
            Verdict::Drop(DropReason::UnsupportedProtocol),
            None,
        ),
        (
            "not the VIP",
            other.build(),
            Verdict::Drop(DropReason::NotVip),
            None,
        ),
        (
            "udp, not the VIP",
            FrameSpec {
                proto: 17,
                ..other.clone()
            }
            .build(),
            Verdict::Drop(DropReason::NotVip),
            None,
        ),
        (
            "truncated tcp",
            syn.build()[..40].to_vec(),
            Verdict::Drop(DropReason::Truncated),
            None,
        ),
        (
            "truncated ip header (no destination to read)",
            syn.build()[..30].to_vec(),
            Verdict::Drop(DropReason::Truncated),
            None,
        ),
        (
            "shorter than an ethernet header",
            syn.build()[..13].to_vec(),
            Verdict::Drop(DropReason::Truncated),
            None,
        ),
        (
            "first fragment",
            fragment,
            Verdict::Drop(DropReason::Fragment),
            None,
        ),
        (
            "later fragment",
            later_fragment,
            Verdict::Drop(DropReason::Fragment),
            None,
        ),
        (
            "arp",
            frame::gratuitous_arp(client_mac, Ipv4Addr::new(10, 77, 1, 1)).to_vec(),
            Verdict::Drop(DropReason::NotIp),
            None,
        ),
        (
            "vlan-tagged syn",
            vlan,
            Verdict::Drop(DropReason::NotIp),
            None,
        ),
        (
            "bad ip header length",
            bad_ihl,
            Verdict::Drop(DropReason::Malformed),
            None,
        ),
        (
            "ip version 6 in an ipv4 frame",
            bad_version,
            Verdict::Drop(DropReason::Malformed),
            None,
        ),
        (
            "tcp data offset below 5",
            bad_doff,
            Verdict::Drop(DropReason::Malformed),
            None,
        ),
        (
            "tcp options past the end",
            doff_past_end,
            Verdict::Drop(DropReason::Truncated),
            None,
        ),
        (
            "ipv6 syn (the VIP is IPv4)",
            v6.build(),
            Verdict::Drop(DropReason::NotVip),
            None,
        ),
    ]
}

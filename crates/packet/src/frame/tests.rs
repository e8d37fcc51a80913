//! Frame parsing fixtures (description, input frame, expected result) and properties.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::synth::FrameSpec;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Applies `edit` to the default SYN frame.
fn edited(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = FrameSpec::default().build();
    edit(&mut f);
    f
}

/// The fixture table: every frame the scheduler may meet, and what parsing must say.
fn fixtures() -> Vec<(&'static str, Vec<u8>, Result<Flow, FrameError>)> {
    let syn = Flow {
        src: v4(10, 77, 2, 11),
        src_port: 40000,
        dst: v4(10, 77, 1, 10),
        dst_port: 80,
        proto: L4Proto::Tcp,
        tcp_flags: TcpFlags(TcpFlags::SYN),
    };
    let v6_src = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 11));
    let v6_dst = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 10));
    vec![
        ("tcp syn over ipv4", FrameSpec::default().build(), Ok(syn)),
        (
            "tcp with payload and ethernet padding",
            edited(|f| f.extend_from_slice(&[0; 6])),
            Ok(syn),
        ),
        (
            "udp over ipv4",
            FrameSpec {
                proto: 17,
                dst_port: 443,
                ..FrameSpec::default()
            }
            .build(),
            Ok(Flow {
                proto: L4Proto::Udp,
                dst_port: 443,
                tcp_flags: TcpFlags::NONE,
                ..syn
            }),
        ),
        (
            "tcp over ipv6",
            FrameSpec {
                src: v6_src,
                dst: v6_dst,
                ..FrameSpec::default()
            }
            .build(),
            Ok(Flow {
                src: v6_src,
                dst: v6_dst,
                ..syn
            }),
        ),
        (
            "ipv4 with options (ihl 6)",
            {
                let mut f = FrameSpec::default().build();
                f[14] = 0x46;
                f.splice(34..34, [1u8, 1, 1, 0]); // four NOP/EOL option bytes
                f
            },
            Ok(syn),
        ),
        (
            "empty frame",
            vec![],
            Err(FrameError::Truncated {
                layer: Layer::Ethernet,
                need: 14,
                have: 0,
            }),
        ),
        (
            "ethernet header only",
            edited(|f| f.truncate(14)),
            Err(FrameError::Truncated {
                layer: Layer::Ipv4,
                need: 34,
                have: 14,
            }),
        ),
        (
            "truncated inside tcp",
            edited(|f| f.truncate(40)),
            Err(FrameError::Truncated {
                layer: Layer::Tcp,
                need: 54,
                have: 40,
            }),
        ),
        (
            "tcp data offset beyond the frame",
            edited(|f| f[46] = 0xF0),
            Err(FrameError::Truncated {
                layer: Layer::Tcp,
                need: 94,
                have: 54,
            }),
        ),
        (
            "tcp data offset below minimum",
            edited(|f| f[46] = 0x40),
            Err(FrameError::BadHeaderLength {
                layer: Layer::Tcp,
                len: 16,
            }),
        ),
        (
            "arp",
            gratuitous_arp(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 77, 1, 10)).to_vec(),
            Err(FrameError::UnsupportedEtherType {
                ethertype: ETHERTYPE_ARP,
            }),
        ),
        (
            "vlan tagged",
            edited(|f| f[12..14].copy_from_slice(&[0x81, 0x00])),
            Err(FrameError::UnsupportedEtherType { ethertype: 0x8100 }),
        ),
        (
            "ipv6 version in ipv4 ethertype",
            edited(|f| f[14] = 0x65),
            Err(FrameError::BadIpVersion {
                version: 6,
                ethertype: ETHERTYPE_IPV4,
            }),
        ),
        (
            "ihl below minimum",
            edited(|f| f[14] = 0x44),
            Err(FrameError::BadHeaderLength {
                layer: Layer::Ipv4,
                len: 16,
            }),
        ),
        (
            "ihl beyond the frame",
            edited(|f| {
                f[14] = 0x4F;
                f.truncate(40)
            }),
            Err(FrameError::Truncated {
                layer: Layer::Ipv4,
                need: 74,
                have: 40,
            }),
        ),
        (
            "first fragment",
            edited(|f| f[20] = 0x20),
            Err(FrameError::Fragment {
                offset: 0,
                more: true,
            }),
        ),
        (
            "later fragment",
            edited(|f| f[21] = 0x10),
            Err(FrameError::Fragment {
                offset: 0x4010 & IPV4_OFFSET_MASK,
                more: false,
            }),
        ),
        (
            "icmp",
            FrameSpec {
                proto: 1,
                ..FrameSpec::default()
            }
            .build(),
            Err(FrameError::UnsupportedProtocol { proto: 1 }),
        ),
        (
            "ipv6 hop-by-hop extension header",
            FrameSpec {
                src: v6_src,
                dst: v6_dst,
                proto: 0,
                ..FrameSpec::default()
            }
            .build(),
            Err(FrameError::UnsupportedProtocol { proto: 0 }),
        ),
        (
            "udp truncated",
            FrameSpec {
                proto: 17,
                ..FrameSpec::default()
            }
            .build()[..38]
                .to_vec(),
            Err(FrameError::Truncated {
                layer: Layer::Udp,
                need: 42,
                have: 38,
            }),
        ),
    ]
}

#[test]
fn fixture_table() {
    for (what, frame, expected) in fixtures() {
        assert_eq!(parse_flow(&frame), expected, "fixture: {what}");
    }
}

#[test]
fn rewrite_changes_only_the_macs() {
    let mut frame = FrameSpec {
        payload_len: 100,
        ..FrameSpec::default()
    }
    .build();
    let before = frame.clone();
    let to = MacAddr([2, 0, 0, 0, 0, 0x22]);
    let me = MacAddr([2, 0, 0, 0, 0, 0x11]);
    rewrite_macs(&mut frame, to, me).unwrap();
    assert_eq!(dst_mac(&frame).unwrap(), to);
    assert_eq!(&frame[6..12], &me.0);
    assert_eq!(&frame[12..], &before[12..]);
    assert_eq!(parse_flow(&frame), parse_flow(&before));
    rewrite_dst_mac(&mut frame, me).unwrap();
    assert_eq!(dst_mac(&frame).unwrap(), me);
    assert!(rewrite_macs(&mut [0u8; 11], to, me).is_err());
    assert!(rewrite_dst_mac(&mut [0u8; 5], to).is_err());
}

#[test]
fn gratuitous_arp_layout() {
    let mac = MacAddr([2, 0xaa, 0, 0, 0, 1]);
    let f = gratuitous_arp(mac, Ipv4Addr::new(10, 77, 1, 10));
    assert_eq!(f.len(), 42);
    assert_eq!(ethertype(&f).unwrap(), ETHERTYPE_ARP);
    assert_eq!(&f[0..6], &[0xff; 6]);
    assert_eq!(&f[20..22], &[0, 2], "opcode reply");
    assert_eq!(&f[22..28], &mac.0, "sender MAC");
    assert_eq!(&f[28..32], &[10, 77, 1, 10], "sender IP");
    assert_eq!(&f[38..42], &[10, 77, 1, 10], "target IP = sender IP");
}

#[test]
fn mac_text_round_trip() {
    let mac: MacAddr = "02:aB:00:10:ff:7".parse().unwrap();
    assert_eq!(mac, MacAddr([2, 0xab, 0, 0x10, 0xff, 7]));
    assert_eq!(mac.to_string(), "02:ab:00:10:ff:07");
    for bad in [
        "",
        "02:ab",
        "02:ab:00:10:ff:07:00",
        "02:ab:00:10:ff:xyz",
        "02::00:10:ff:07",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
    }
}

#[test]
fn drop_reason_indexes_are_dense() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(!r.as_str().is_empty());
    }
}

proptest! {
    /// No input panics, and anything accepted has its ports where the header says.
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_flow(&bytes);
        let _ = dst_mac(&bytes);
    }

    /// Corrupting any single byte of a valid frame never panics.
    #[test]
    fn single_byte_corruption_never_panics(at in 0usize..54, value in any::<u8>(), cut in 0usize..60) {
        let mut f = FrameSpec::default().build();
        f[at] = value;
        f.truncate(cut.max(at + 1));
        let _ = parse_flow(&f);
    }

    /// Building then parsing gives back the fields.
    #[test]
    fn build_parse_round_trip(sport in any::<u16>(), dport in any::<u16>(), a in any::<u32>(), udp in any::<bool>(), len in 0usize..64) {
        let spec = FrameSpec {
            src: IpAddr::V4(Ipv4Addr::from(a)),
            src_port: sport,
            dst_port: dport,
            proto: if udp { 17 } else { 6 },
            payload_len: len,
            ..FrameSpec::default()
        };
        let flow = parse_flow(&spec.build()).unwrap();
        prop_assert_eq!(flow.src, spec.src);
        prop_assert_eq!(flow.src_port, sport);
        prop_assert_eq!(flow.dst_port, dport);
        prop_assert_eq!(flow.proto, if udp { L4Proto::Udp } else { L4Proto::Tcp });
    }
}

#[test]
fn tcp_flags_are_read_from_the_header() {
    let with_flags = |flags: u8| {
        let mut f = FrameSpec::default().build();
        f[14 + 20 + 13] = flags;
        parse_flow(&f).map(|flow| flow.tcp_flags)
    };
    let syn = with_flags(TcpFlags::SYN).unwrap();
    assert!(syn.is_initial_syn() && !syn.ends());
    let syn_ack = with_flags(TcpFlags::SYN | TcpFlags::ACK).unwrap();
    assert!(!syn_ack.is_initial_syn());
    assert!(with_flags(TcpFlags::FIN | TcpFlags::ACK).unwrap().ends());
    assert!(with_flags(TcpFlags::RST).unwrap().ends());
    assert!(!with_flags(TcpFlags::ACK).unwrap().ends());
}

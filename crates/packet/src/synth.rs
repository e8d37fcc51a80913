//! Synthetic frames for tests, fixtures, benches and fuzz seeds.
//!
//! Owns: building well-formed Ethernet/IPv4/IPv6 + TCP/UDP frames from a few fields, so that
//! fixtures state what they mean instead of listing bytes. Must not be used on the data path:
//! it allocates, and it fills checksums with zeros (the scheduler never reads them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frame::{MacAddr, ETHERNET_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// IPv4 TTL of synthetic frames (a typical Linux default).
const DEFAULT_TTL: u8 = 64;
/// TCP flags of synthetic frames: SYN, the first packet of every connection.
const TCP_SYN: u8 = 0x02;

/// The fields of a synthetic frame; `Default` is a TCP SYN from 10.77.2.11:40000 to
/// 10.77.1.10:80 with no payload.
#[derive(Clone, Debug)]
pub struct FrameSpec {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Source address; its family decides IPv4 or IPv6 (`dst` must match).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 = TCP, 17 = UDP, anything else gets no L4 header).
    pub proto: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload bytes after the L4 header.
    pub payload_len: usize,
}

impl Default for FrameSpec {
    fn default() -> Self {
        FrameSpec {
            dst_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 0xfe]),
            src: IpAddr::V4(Ipv4Addr::new(10, 77, 2, 11)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 10)),
            proto: 6,
            src_port: 40000,
            dst_port: 80,
            payload_len: 0,
        }
    }
}

impl FrameSpec {
    /// Builds the frame bytes.
    pub fn build(&self) -> Vec<u8> {
        let l4 = match self.proto {
            6 => {
                let mut tcp = vec![0u8; 20];
                tcp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                tcp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                tcp[12] = 5 << 4; // data offset: 5 words, no options
                tcp[13] = TCP_SYN;
                tcp[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
                tcp
            }
            17 => {
                let mut udp = vec![0u8; 8];
                udp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
                udp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
                let len = u16::try_from(8 + self.payload_len).unwrap_or(u16::MAX);
                udp[4..6].copy_from_slice(&len.to_be_bytes());
                udp
            }
            _ => Vec::new(),
        };
        let l4_len = l4.len() + self.payload_len;
        let mut f = Vec::with_capacity(ETHERNET_HEADER_LEN + 40 + l4_len);
        f.extend_from_slice(&self.dst_mac.0);
        f.extend_from_slice(&self.src_mac.0);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let total = u16::try_from(20 + l4_len).unwrap_or(u16::MAX);
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = DEFAULT_TTL;
                ip[9] = self.proto;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                f.extend_from_slice(&ip);
            }
            (s, d) => {
                let s6 = to_v6(s);
                let d6 = to_v6(d);
                f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                let payload = u16::try_from(l4_len).unwrap_or(u16::MAX);
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&payload.to_be_bytes());
                ip[6] = self.proto;
                ip[7] = DEFAULT_TTL;
                ip[8..24].copy_from_slice(&s6.octets());
                ip[24..40].copy_from_slice(&d6.octets());
                f.extend_from_slice(&ip);
            }
        }
        f.extend_from_slice(&l4);
        f.resize(f.len() + self.payload_len, 0xAB);
        f
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

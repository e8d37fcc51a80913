//! Ethernet frame parsing and in-place rewriting, pure and panic-free.
//!
//! Owns: reading the Ethernet, IPv4, IPv6, TCP and UDP headers of one frame into a [`Flow`],
//! rewriting the MAC addresses of a frame in place, building ARP frames, and the
//! [`Verdict`]/[`DropReason`] vocabulary the scheduler answers with.
//! Must not: do I/O, allocate per frame, or panic on any input — every byte here may come from
//! an attacker, so every read is bounds-checked through a private `Reader` and failures are a typed
//! [`FrameError`]. Checksums are never touched: only MAC addresses change, which the IP and
//! TCP checksums do not cover.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Length of an Ethernet II header without VLAN tag: two MACs and the EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// Length of an ARP frame for IPv4 over Ethernet (no padding; the NIC pads to 60 bytes).
pub const ARP_FRAME_LEN: usize = ETHERNET_HEADER_LEN + 28;

/// IP protocol number of TCP.
const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
const IPPROTO_UDP: u8 = 17;
/// Smallest IPv4 header (IHL = 5 words).
const IPV4_MIN_HEADER: usize = 20;
/// The fixed IPv6 header.
const IPV6_HEADER: usize = 40;
/// Smallest TCP header (data offset = 5 words).
const TCP_MIN_HEADER: usize = 20;
/// The UDP header.
const UDP_HEADER: usize = 8;
/// IPv4 "more fragments" flag in the flags/fragment-offset word.
const IPV4_MF: u16 = 0x2000;
/// IPv4 fragment offset mask in the flags/fragment-offset word.
const IPV4_OFFSET_MASK: u16 = 0x1FFF;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// The transport protocols the scheduler routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

/// The addressing of one frame: what the bucket table is keyed on and what the VIP check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Client (source) address.
    pub src: IpAddr,
    /// Client (source) port.
    pub src_port: u16,
    /// Destination address (the VIP, for traffic the scheduler routes).
    pub dst: IpAddr,
    /// Destination port (the service).
    pub dst_port: u16,
    /// Transport protocol.
    pub proto: L4Proto,
    /// The TCP flags byte (`TcpFlags::NONE` for UDP): active-active ownership (seed 004)
    /// tells a connection's first SYN from its later segments, and its end by FIN or RST.
    pub tcp_flags: TcpFlags,
}

/// The TCP header's flags byte (offset 13: CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No flag (and every UDP datagram).
    pub const NONE: TcpFlags = TcpFlags(0);
    /// FIN: the sender is done.
    pub const FIN: u8 = 0x01;
    /// SYN: opens a connection.
    pub const SYN: u8 = 0x02;
    /// RST: aborts it.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// Whether every bit of `mask` is set.
    #[must_use]
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// A connection's first segment: SYN without ACK.
    #[must_use]
    pub fn is_initial_syn(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK)
    }

    /// A segment that ends the connection (FIN or RST).
    #[must_use]
    pub fn ends(self) -> bool {
        self.0 & (Self::FIN | Self::RST) != 0
    }
}

/// The protocol layer at which a frame was found to be short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The Ethernet header.
    Ethernet,
    /// The IPv4 header.
    Ipv4,
    /// The IPv6 header.
    Ipv6,
    /// The TCP header.
    Tcp,
    /// The UDP header.
    Udp,
    /// An ARP payload.
    Arp,
}

/// Why a frame could not be read as a routable flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame ends inside a header.
    #[error("frame truncated in the {layer:?} header: need {need} bytes, have {have}")]
    Truncated {
        /// The header being read.
        layer: Layer,
        /// Bytes the header needs from the start of the frame.
        need: usize,
        /// Bytes the frame has.
        have: usize,
    },
    /// Not IPv4 or IPv6 (ARP, VLAN-tagged, LLDP, ...).
    #[error("unsupported EtherType {ethertype:#06x}")]
    UnsupportedEtherType {
        /// The EtherType found.
        ethertype: u16,
    },
    /// The IP version nibble disagrees with the EtherType.
    #[error("IP version {version} in a frame of EtherType {ethertype:#06x}")]
    BadIpVersion {
        /// The version nibble found.
        version: u8,
        /// The EtherType of the frame.
        ethertype: u16,
    },
    /// An IPv4 IHL or TCP data offset below the minimum header size.
    #[error("{layer:?} header length {len} below the minimum")]
    BadHeaderLength {
        /// The header whose length field is wrong.
        layer: Layer,
        /// The length it claims, in bytes.
        len: usize,
    },
    /// An IPv4 fragment: later fragments carry no ports, so no fragment can be bucketed.
    #[error("IPv4 fragment (offset {offset} words, more fragments: {more})")]
    Fragment {
        /// Fragment offset, in 8-byte units.
        offset: u16,
        /// The "more fragments" flag.
        more: bool,
    },
    /// Neither TCP nor UDP (ICMP, GRE, IPv6 extension headers, ...).
    #[error("unsupported IP protocol {proto}")]
    UnsupportedProtocol {
        /// The IP protocol / IPv6 next-header number.
        proto: u8,
    },
}

/// What to do with one frame received for the VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame back out of the LAN interface to this node's MAC.
    Forward {
        /// The chosen node's MAC address (the new destination MAC).
        to: MacAddr,
    },
    /// The scheduler chose itself: hand the frame to the local stack.
    Local,
    /// Discard the frame, counted under this reason.
    Drop(DropReason),
}

/// Why the scheduler discarded a frame; each reason is counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The frame ends inside a header.
    Truncated,
    /// Not an IP frame (ARP, VLAN, ...).
    NotIp,
    /// A header length or version field is invalid.
    Malformed,
    /// An IPv4 fragment.
    Fragment,
    /// An IP protocol the VIP does not serve (ICMP, ...).
    UnsupportedProtocol,
    /// The destination is not the VIP (the socket filter should have kept it away).
    NotVip,
    /// A port of the VIP that no service listens on.
    UnservedPort,
    /// No node is enabled and alive.
    NoNode,
}

/// A bounds-checked big-endian reader over a frame: the only way this module reads bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Error of [`MacAddr::from_str`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {input:?}: expected six hex octets separated by ':'")]
pub struct ParseMacError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError {
            input: s.to_owned(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl DropReason {
    /// Every reason, in counter order ([`DropReason::index`]).
    pub const ALL: [DropReason; 8] = [
        DropReason::Truncated,
        DropReason::NotIp,
        DropReason::Malformed,
        DropReason::Fragment,
        DropReason::UnsupportedProtocol,
        DropReason::NotVip,
        DropReason::UnservedPort,
        DropReason::NoNode,
    ];

    /// Position of this reason in [`DropReason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        match self {
            DropReason::Truncated => 0,
            DropReason::NotIp => 1,
            DropReason::Malformed => 2,
            DropReason::Fragment => 3,
            DropReason::UnsupportedProtocol => 4,
            DropReason::NotVip => 5,
            DropReason::UnservedPort => 6,
            DropReason::NoNode => 7,
        }
    }

    /// A stable snake_case name, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NotIp => "not_ip",
            DropReason::Malformed => "malformed",
            DropReason::Fragment => "fragment",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::NotVip => "not_vip",
            DropReason::UnservedPort => "unserved_port",
            DropReason::NoNode => "no_node",
        }
    }
}

impl From<FrameError> for DropReason {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::Truncated { .. } => DropReason::Truncated,
            FrameError::UnsupportedEtherType { .. } => DropReason::NotIp,
            FrameError::BadIpVersion { .. } | FrameError::BadHeaderLength { .. } => {
                DropReason::Malformed
            }
            FrameError::Fragment { .. } => DropReason::Fragment,
            FrameError::UnsupportedProtocol { .. } => DropReason::UnsupportedProtocol,
        }
    }
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Fails unless the frame holds at least `need` bytes (from its start).
    fn require(&self, layer: Layer, need: usize) -> Result<(), FrameError> {
        if self.bytes.len() < need {
            return Err(FrameError::Truncated {
                layer,
                need,
                have: self.bytes.len(),
            });
        }
        Ok(())
    }

    /// Reads `N` bytes at `at`; callers `require` first, so a short read is still an error,
    /// never a panic.
    fn array<const N: usize>(&self, layer: Layer, at: usize) -> Result<[u8; N], FrameError> {
        let end = at.saturating_add(N);
        self.bytes
            .get(at..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(FrameError::Truncated {
                layer,
                need: end,
                have: self.bytes.len(),
            })
    }

    fn u8(&self, layer: Layer, at: usize) -> Result<u8, FrameError> {
        Ok(self.array::<1>(layer, at)?[0])
    }

    fn u16(&self, layer: Layer, at: usize) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.array(layer, at)?))
    }
}

/// Reads the EtherType of a frame.
pub fn ethertype(frame: &[u8]) -> Result<u16, FrameError> {
    let r = Reader::new(frame);
    r.require(Layer::Ethernet, ETHERNET_HEADER_LEN)?;
    r.u16(Layer::Ethernet, 12)
}

/// Reads the destination MAC address of a frame.
pub fn dst_mac(frame: &[u8]) -> Result<MacAddr, FrameError> {
    let r = Reader::new(frame);
    r.require(Layer::Ethernet, ETHERNET_HEADER_LEN)?;
    Ok(MacAddr(r.array(Layer::Ethernet, 0)?))
}

/// Parses the flow of an Ethernet II frame carrying TCP or UDP over IPv4 or IPv6.
///
/// Only headers are read: a frame longer than its IP total length (Ethernet padding) or a
/// GSO super-frame is fine, and the payload is never inspected. IPv6 extension headers and
/// VLAN tags are reported as unsupported rather than walked.
pub fn parse_flow(frame: &[u8]) -> Result<Flow, FrameError> {
    let r = Reader::new(frame);
    let ethertype = ethertype(frame)?;
    let l3 = ETHERNET_HEADER_LEN;
    let (src, dst, proto, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            r.require(Layer::Ipv4, l3 + IPV4_MIN_HEADER)?;
            let vihl = r.u8(Layer::Ipv4, l3)?;
            let version = vihl >> 4;
            if version != 4 {
                return Err(FrameError::BadIpVersion { version, ethertype });
            }
            let ihl = usize::from(vihl & 0x0F) * 4;
            if ihl < IPV4_MIN_HEADER {
                return Err(FrameError::BadHeaderLength {
                    layer: Layer::Ipv4,
                    len: ihl,
                });
            }
            r.require(Layer::Ipv4, l3 + ihl)?;
            let frag = r.u16(Layer::Ipv4, l3 + 6)?;
            let (offset, more) = (frag & IPV4_OFFSET_MASK, frag & IPV4_MF != 0);
            if offset != 0 || more {
                return Err(FrameError::Fragment { offset, more });
            }
            let proto = r.u8(Layer::Ipv4, l3 + 9)?;
            let src = Ipv4Addr::from(r.array::<4>(Layer::Ipv4, l3 + 12)?);
            let dst = Ipv4Addr::from(r.array::<4>(Layer::Ipv4, l3 + 16)?);
            (IpAddr::V4(src), IpAddr::V4(dst), proto, l3 + ihl)
        }
        ETHERTYPE_IPV6 => {
            r.require(Layer::Ipv6, l3 + IPV6_HEADER)?;
            let version = r.u8(Layer::Ipv6, l3)? >> 4;
            if version != 6 {
                return Err(FrameError::BadIpVersion { version, ethertype });
            }
            let proto = r.u8(Layer::Ipv6, l3 + 6)?;
            let src = Ipv6Addr::from(r.array::<16>(Layer::Ipv6, l3 + 8)?);
            let dst = Ipv6Addr::from(r.array::<16>(Layer::Ipv6, l3 + 24)?);
            (IpAddr::V6(src), IpAddr::V6(dst), proto, l3 + IPV6_HEADER)
        }
        other => return Err(FrameError::UnsupportedEtherType { ethertype: other }),
    };
    let (proto, tcp_flags) = match proto {
        IPPROTO_TCP => {
            r.require(Layer::Tcp, l4 + TCP_MIN_HEADER)?;
            let data_offset = usize::from(r.u8(Layer::Tcp, l4 + 12)? >> 4) * 4;
            if data_offset < TCP_MIN_HEADER {
                return Err(FrameError::BadHeaderLength {
                    layer: Layer::Tcp,
                    len: data_offset,
                });
            }
            r.require(Layer::Tcp, l4 + data_offset)?;
            (L4Proto::Tcp, TcpFlags(r.u8(Layer::Tcp, l4 + 13)?))
        }
        IPPROTO_UDP => {
            r.require(Layer::Udp, l4 + UDP_HEADER)?;
            (L4Proto::Udp, TcpFlags::NONE)
        }
        other => return Err(FrameError::UnsupportedProtocol { proto: other }),
    };
    let layer = match proto {
        L4Proto::Tcp => Layer::Tcp,
        L4Proto::Udp => Layer::Udp,
    };
    Ok(Flow {
        src,
        src_port: r.u16(layer, l4)?,
        dst,
        dst_port: r.u16(layer, l4 + 2)?,
        proto,
        tcp_flags,
    })
}

/// Overwrites the destination and source MAC addresses of a frame in place.
///
/// Both change when forwarding: the new source is the scheduler's own MAC, otherwise the
/// bridge would learn the client's (router's) MAC on the scheduler's port and misdeliver
/// the replies (see DESIGN.md, field notes).
pub fn rewrite_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) -> Result<(), FrameError> {
    let have = frame.len();
    let header = frame.get_mut(..12).ok_or(FrameError::Truncated {
        layer: Layer::Ethernet,
        need: ETHERNET_HEADER_LEN,
        have,
    })?;
    header[..6].copy_from_slice(&dst.0);
    header[6..].copy_from_slice(&src.0);
    Ok(())
}

/// Overwrites only the destination MAC of a frame in place.
pub fn rewrite_dst_mac(frame: &mut [u8], dst: MacAddr) -> Result<(), FrameError> {
    let have = frame.len();
    let header = frame.get_mut(..6).ok_or(FrameError::Truncated {
        layer: Layer::Ethernet,
        need: ETHERNET_HEADER_LEN,
        have,
    })?;
    header.copy_from_slice(&dst.0);
    Ok(())
}

/// Builds a gratuitous ARP reply announcing that `ip` is at `mac`, broadcast.
///
/// A reply (opcode 2) with sender = target = `ip` updates existing neighbour entries on
/// Linux even with the default `arp_accept=0`, which is what a new scheduler needs so that
/// the router switches to it at once (DESIGN.md, field notes).
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    /// ARP hardware type Ethernet.
    const HTYPE_ETHERNET: u16 = 1;
    /// ARP opcode "reply".
    const OP_REPLY: u16 = 2;
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    f[20..22].copy_from_slice(&OP_REPLY.to_be_bytes());
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&MacAddr::BROADCAST.0);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

#[cfg(test)]
mod tests;

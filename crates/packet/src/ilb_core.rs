//! The active-active packet core (seed 004, issue 12 item 3): one Ethernet frame in, a
//! [`Verdict`] and the announcements it caused out — pure and deterministic.
//!
//! Owns: the frame-level half of an individual load balancer (ILB): the mode-independent
//! checks [`crate::SchedulerCore`] makes (parse, VIP, served port; hostile frames dropped and
//! counted alike), the **hand-off tag** that tells a segment to be *decided* from one to be
//! *served* (both arrive at a node's own MAC), and the MAC rewrite of the output frame. The
//! decisions themselves — owner and backup by rendezvous score, LTOC, cache, weighted least
//! connections, second chance, transfer tables — are [`pentaflow_balance::Ilb`]'s; this
//! module only translates frames to its inputs and its verdicts to frames.
//!
//! Must not: read a clock (`now` is an argument), do I/O, send announcements (the control
//! plane takes them from [`Handled::announcements`]), or panic on a frame.
//!
//! How a frame is recognised (the tag is an 802.1Q header with a reserved VLAN id, only ever
//! between nodes of one L2 segment; the router never sees it):
//!
//! | input frame | meaning | decided as |
//! |---|---|---|
//! | tagged [`HANDOFF_VID`] | a node that does not own the connection handed it here | [`Arrival::HandOff`] |
//! | tagged [`SECOND_CHANCE_VID`] | its new owner had no entry just after a membership change | [`Arrival::SecondChance`] |
//! | untagged, source MAC of a peer | a peer decided this node serves it | not decided: delivered locally |
//! | untagged, any other source | from the upstream router (ECMP) | [`Arrival::Router`] |
//! | any other VLAN tag | not ours | dropped ([`DropReason::NotIp`], as the scheduler does) |
//!
//! And what leaves: served here → local delivery, tag removed, destination = the local
//! device's MAC; served by node X → untagged to X's MAC from ours (X's stack takes it as
//! is); hand-off or second chance → tagged to the owner's or backup's MAC from ours.
//! A frame is therefore decided at most three times (router → any node → owner → backup)
//! and never loops: a served frame is never decided again, and the ILB never hands a
//! hand-off on.

use std::net::{IpAddr, Ipv4Addr};

use pentaflow_balance::ilb::{self, Announcement, Arrival, Ilb, IlbLimits};
use pentaflow_balance::{ConnectionId, NodeCandidate, NodeId};

use crate::frame::{self, DropReason, L4Proto, Verdict, ETHERNET_HEADER_LEN};
use crate::scheduler::{CoreParams, Counters, NodeEntry};

/// The 802.1Q tag protocol identifier.
pub const TPID_8021Q: u16 = 0x8100;
/// VLAN id of a hand-off (a segment sent to its owner to be decided). The top of the VLAN
/// space (4095 is reserved by 802.1Q itself), where operators rarely configure VLANs.
pub const HANDOFF_VID: u16 = 4094;
/// VLAN id of a second chance (a segment the new owner sends to the backup).
pub const SECOND_CHANCE_VID: u16 = 4093;
/// Bytes of an 802.1Q tag.
const TAG_LEN: usize = 4;
/// The most header bytes [`frame::parse_flow`] reads: Ethernet, IPv4 with options, TCP
/// with options. A tagged frame's headers are copied untagged into a buffer this size.
const MAX_HEADERS: usize = ETHERNET_HEADER_LEN + 60 + 60;

/// What one frame did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// What to do with the frame, rewritten in place: send it out of the LAN interface to
    /// this MAC, deliver it locally, or drop it.
    pub verdict: Verdict,
    /// The ILB's decision behind it; `None` when the frame never reached the ILB (dropped
    /// by the checks, or served here by a peer's decision).
    pub decision: Option<ilb::Verdict>,
    /// What the control plane must tell the other nodes because of this frame.
    pub announcements: Vec<Announcement>,
}

/// The pure active-active core of one node: see the module documentation.
pub struct IlbCore {
    params: CoreParams,
    nodes: Vec<NodeEntry>,
    ilb: Ilb,
    counters: Counters,
}

/// How a frame arrived, by its tag and source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// To be decided, arriving this way.
    Decide(Arrival),
    /// A peer decided that this node serves it.
    ServeHere,
}

impl IlbCore {
    /// The core of node `params.self_id` among `nodes` (alive ones are the members), with
    /// the ILB's bounds and timers `limits` (in the unit of `now`).
    #[must_use]
    pub fn new(params: CoreParams, nodes: Vec<NodeEntry>, limits: IlbLimits) -> Self {
        let ilb = Ilb::new(params.self_id, &candidates(&nodes), limits);
        IlbCore {
            params,
            nodes,
            ilb,
            counters: Counters::default(),
        }
    }

    /// Decides one frame and rewrites it in place (MACs, and the tag added, changed or
    /// removed); a dropped frame is left as it came.
    pub fn handle(&mut self, frame: &mut Vec<u8>, now: u64) -> Handled {
        let (verdict, decision, node, tag) = self.decide(frame, now);
        let rewritten = match verdict {
            Verdict::Forward { to } => {
                set_tag(frame, tag);
                frame::rewrite_macs(frame, to, self.params.lan_mac)
            }
            Verdict::Local => {
                set_tag(frame, None);
                frame::rewrite_dst_mac(frame, self.params.local_mac)
            }
            Verdict::Drop(_) => Ok(()),
        };
        let verdict = match rewritten {
            Ok(()) => verdict,
            Err(_) => Verdict::Drop(DropReason::Truncated),
        };
        self.count(verdict, node);
        Handled {
            verdict,
            decision,
            announcements: self.ilb.take_announcements(),
        }
    }

    /// The verdict, the ILB's decision, the node it names and the tag of the output frame.
    fn decide(
        &mut self,
        input: &[u8],
        now: u64,
    ) -> (Verdict, Option<ilb::Verdict>, Option<NodeId>, Option<u16>) {
        let drop = |reason| (Verdict::Drop(reason), None, None, None);
        let (received, untagged) = match self.received(input) {
            Ok(r) => r,
            Err(reason) => return drop(reason),
        };
        let flow = match frame::parse_flow(untagged.as_deref().unwrap_or(input)) {
            Ok(flow) => flow,
            Err(e) => return drop(e.into()),
        };
        if flow.dst.to_canonical() != self.params.vip.to_canonical() {
            return drop(DropReason::NotVip);
        }
        if !self.params.services.contains(&(flow.proto, flow.dst_port)) {
            return drop(DropReason::UnservedPort);
        }
        // Seed 004 tracks TCP connections by a 12-byte IPv4 id; anything else has no owner.
        let (IpAddr::V4(src), IpAddr::V4(dst), L4Proto::Tcp) = (flow.src, flow.dst, flow.proto)
        else {
            return drop(DropReason::UnsupportedProtocol);
        };
        let arrival = match received {
            Received::ServeHere => {
                return (Verdict::Local, None, Some(self.params.self_id), None);
            }
            Received::Decide(arrival) => arrival,
        };
        let conn = connection_id(dst, flow.dst_port, src, flow.src_port);
        let flags = flow.tcp_flags;
        let decision = self
            .ilb
            .segment(conn, flags.is_initial_syn(), flags.ends(), arrival, now);
        let (node, tag) = match decision {
            ilb::Verdict::Serve(node) => (node, None),
            ilb::Verdict::HandOff(node) => (node, Some(HANDOFF_VID)),
            ilb::Verdict::SecondChance(node) => (node, Some(SECOND_CHANCE_VID)),
            ilb::Verdict::Drop(_) => {
                return (
                    Verdict::Drop(DropReason::NoNode),
                    Some(decision),
                    None,
                    None,
                )
            }
        };
        if node == self.params.self_id && tag.is_none() {
            return (Verdict::Local, Some(decision), Some(node), None);
        }
        match self.nodes.iter().find(|n| n.id == node) {
            Some(n) => (
                Verdict::Forward { to: n.mac },
                Some(decision),
                Some(node),
                tag,
            ),
            // The ILB only names members; an unknown id is a bug, not a panic.
            None => (
                Verdict::Drop(DropReason::NoNode),
                Some(decision),
                None,
                None,
            ),
        }
    }

    /// How the frame arrived and, if it carries our tag, its headers untagged.
    fn received(&self, input: &[u8]) -> Result<(Received, Option<Vec<u8>>), DropReason> {
        let ethertype = frame::ethertype(input).map_err(DropReason::from)?;
        if ethertype != TPID_8021Q {
            let src = input.get(6..12).unwrap_or_default();
            let from_peer = self
                .nodes
                .iter()
                .any(|n| n.id != self.params.self_id && n.mac.0 == src);
            let received = if from_peer {
                Received::ServeHere
            } else {
                Received::Decide(Arrival::Router)
            };
            return Ok((received, None));
        }
        let tci = input
            .get(14..16)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(DropReason::Truncated)?;
        let arrival = match tci & 0x0FFF {
            HANDOFF_VID => Arrival::HandOff,
            SECOND_CHANCE_VID => Arrival::SecondChance,
            _ => return Err(DropReason::NotIp),
        };
        // The headers without the tag, for the one parser every data plane shares.
        let end = input.len().min(MAX_HEADERS + TAG_LEN);
        let mut headers = Vec::with_capacity(end);
        headers.extend_from_slice(input.get(..12).unwrap_or_default());
        headers.extend_from_slice(input.get(12 + TAG_LEN..end).unwrap_or_default());
        Ok((Received::Decide(arrival), Some(headers)))
    }

    fn count(&mut self, verdict: Verdict, node: Option<NodeId>) {
        let c = &mut self.counters;
        match (verdict, node) {
            (Verdict::Forward { .. }, Some(id)) => {
                match c.forwarded.iter_mut().find(|(n, _)| *n == id) {
                    Some((_, n)) => *n += 1,
                    None => c.forwarded.push((id, 1)),
                }
            }
            (Verdict::Local, _) => c.local += 1,
            (Verdict::Drop(reason), _) => {
                if let Some(n) = c.dropped.get_mut(reason.index()) {
                    *n += 1;
                }
            }
            (Verdict::Forward { .. }, None) => {}
        }
    }

    /// An announcement from another node (through the control plane).
    pub fn receive(&mut self, announcement: Announcement, now: u64) {
        self.ilb.receive(announcement, now);
    }

    /// The node table changed (membership, weights, enabled): owners and backups are
    /// recomputed; returns the transfer tables to send (claims 17–18).
    pub fn set_nodes(&mut self, nodes: Vec<NodeEntry>, now: u64) -> Vec<Announcement> {
        self.ilb.set_members(&candidates(&nodes), now);
        self.nodes = nodes;
        self.ilb.take_announcements()
    }

    /// Periodic housekeeping: idle, timed-out and ended associations are forgotten.
    pub fn tick(&mut self, now: u64) -> usize {
        self.ilb.release_idle(now)
    }

    /// Frame counters (same shape as the scheduler's).
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The ILB (its counters, sizes and held associations).
    #[must_use]
    pub fn ilb(&self) -> &Ilb {
        &self.ilb
    }

    /// The node table.
    #[must_use]
    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }
}

/// The connection id of a TCP segment to the VIP (claim 4's quadruplet).
fn connection_id(dst: Ipv4Addr, dst_port: u16, src: Ipv4Addr, src_port: u16) -> ConnectionId {
    ConnectionId::new(dst, dst_port, src, src_port)
}

/// The node table as the ILB takes it.
fn candidates(nodes: &[NodeEntry]) -> Vec<NodeCandidate> {
    nodes
        .iter()
        .map(|n| NodeCandidate {
            id: n.id,
            weight: n.weight,
            enabled: n.enabled,
            alive: n.alive,
        })
        .collect()
}

/// Gives the frame our tag `vid` (inserting, or rewriting ours), or removes it (`None`).
/// Called only on frames [`IlbCore::received`] accepted, so any 802.1Q tag present is ours.
fn set_tag(frame: &mut Vec<u8>, vid: Option<u16>) {
    let tagged = frame::ethertype(frame) == Ok(TPID_8021Q);
    match (tagged, vid) {
        (true, None) => {
            frame.drain(12..12 + TAG_LEN);
        }
        (true, Some(vid)) => {
            if let Some(tci) = frame.get_mut(14..16) {
                tci.copy_from_slice(&vid.to_be_bytes());
            }
        }
        (false, Some(vid)) => {
            let [a, b] = TPID_8021Q.to_be_bytes();
            let [c, d] = vid.to_be_bytes();
            frame.splice(12..12, [a, b, c, d]);
        }
        (false, None) => {}
    }
}

#[cfg(test)]
mod tests;

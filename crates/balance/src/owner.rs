//! Node ownership of a connection for active-active mode (seed 004, claims 3–9): every node
//! computes, for each connection, an integer score per node; the highest score owns the
//! connection, the second highest is its back-up owner.
//!
//! Owns: the 12-byte connection id ([`ConnectionId`], claim 4: TCP destination port, IP
//! destination address, TCP source port, IP source address, network byte order), the score
//! ([`score`], claim 9: CRC-32 over the node id concatenated to the connection id) and the
//! ranking ([`owners`], claims 7–8: by arithmetic value, the largest first).
//!
//! Must not: depend on anything a node knows that another may not (time, load, local
//! state): every node and every data plane (Rust or BPF) must agree on the owner from the
//! connection and the member list alone. The golden vectors in `tests/golden.rs` pin it.

use std::net::Ipv4Addr;

use crate::bucket::NodeId;

/// Bytes of a [`ConnectionId`].
pub const CONNECTION_ID_LEN: usize = 12;

/// Seed 004's connection unique identifier: `dst port ‖ dst IPv4 ‖ src port ‖ src IPv4`, each
/// in network byte order (claim 4's twelve-byte quadruplet). IPv4 only, as the claim is; an
/// IPv6 array will need a 36-byte id, which is a new wire and score version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub [u8; CONNECTION_ID_LEN]);

/// A node's rank for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The node.
    pub node: NodeId,
    /// Its score (higher wins).
    pub score: u32,
}

impl ConnectionId {
    /// The id of the TCP connection `src:src_port → dst:dst_port`.
    #[must_use]
    pub fn new(dst: Ipv4Addr, dst_port: u16, src: Ipv4Addr, src_port: u16) -> Self {
        let mut id = [0u8; CONNECTION_ID_LEN];
        id[0..2].copy_from_slice(&dst_port.to_be_bytes());
        id[2..6].copy_from_slice(&dst.octets());
        id[6..8].copy_from_slice(&src_port.to_be_bytes());
        id[8..12].copy_from_slice(&src.octets());
        ConnectionId(id)
    }
}

/// Node `node`'s score for connection `conn`: the CRC-32 (IEEE 802.3 / zlib polynomial,
/// reflected, initial and final xor `0xFFFFFFFF` — the CRC every C library, `zlib.crc32` and
/// a table-driven BPF loop compute alike) of the node id (2 bytes, big-endian; claim 6's
/// index unique within the array) followed by the 12-byte connection id.
#[must_use]
pub fn score(node: NodeId, conn: &ConnectionId) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&node.0.to_be_bytes());
    h.update(&conn.0);
    h.finalize()
}

/// The owner and the back-up owner of `conn` among `nodes`: the largest score, then the
/// second largest (claim 8); equal scores (a CRC collision) go to the lower node id, so every
/// node still agrees. `None` where there are not enough nodes.
#[must_use]
pub fn owners(conn: &ConnectionId, nodes: &[NodeId]) -> (Option<Owner>, Option<Owner>) {
    let mut best: Option<Owner> = None;
    let mut second: Option<Owner> = None;
    let better = |a: &Owner, b: &Option<Owner>| {
        b.is_none_or(|b| a.score > b.score || (a.score == b.score && a.node < b.node))
    };
    for &node in nodes {
        let o = Owner {
            node,
            score: score(node, conn),
        };
        if best.is_some_and(|b| b.node == node) || second.is_some_and(|s| s.node == node) {
            continue; // a node listed twice counts once
        }
        if better(&o, &best) {
            second = best;
            best = Some(o);
        } else if better(&o, &second) {
            second = Some(o);
        }
    }
    (best, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnectionId {
        ConnectionId::new(
            Ipv4Addr::new(10, 77, 1, 10),
            80,
            Ipv4Addr::new(192, 0, 2, 1),
            40_000,
        )
    }

    #[test]
    fn the_id_is_claim_4s_quadruplet() {
        assert_eq!(
            conn().0,
            [0x00, 0x50, 10, 77, 1, 10, 0x9c, 0x40, 192, 0, 2, 1]
        );
    }

    #[test]
    fn the_crc_is_the_standard_one() {
        let mut h = crc32fast::Hasher::new();
        h.update(b"123456789");
        assert_eq!(h.finalize(), 0xCBF4_3926, "the CRC-32 check value");
    }

    #[test]
    fn owner_and_backup_are_the_two_largest_scores_whatever_the_order() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)];
        let (o, b) = owners(&conn(), &nodes);
        let mut rev = nodes;
        rev.reverse();
        assert_eq!(owners(&conn(), &rev), (o, b));
        let (o, b) = (o.map(|o| o.node), b.map(|b| b.node));
        // Scores (tests/golden.rs): 5 → 0xe5240eda, 2 → 0x98570882, ...
        assert_eq!((o, b), (Some(NodeId(5)), Some(NodeId(2))));
        assert_eq!(owners(&conn(), &[NodeId(3)]).1, None);
        assert_eq!(owners(&conn(), &[]), (None, None));
        let twice = owners(&conn(), &[NodeId(5), NodeId(5)]);
        assert_eq!(
            twice.1, None,
            "one node listed twice is not its own back-up"
        );
    }
}

//! Authentication and replay protection of control-plane datagrams.
//!
//! Owns: the cluster key, sealing an [`Envelope`] (encode + HMAC-SHA256 tag truncated to
//! [`TAG_LEN`]), opening a datagram (tag checked in constant time *before* anything past the
//! header is trusted), the per-sender replay window over `(incarnation, sequence)`, and the
//! per-reason counters of dropped datagrams.
//!
//! Must not: log or expose the key, or accept a datagram whose tag has not been verified.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use pentaflow_balance::NodeId;
use sha2::Sha256;

use crate::wire::{self, Envelope, WireError, HEADER_LEN, MAX_DATAGRAM, TAG_LEN};

/// Sequence numbers a receiver remembers below the highest one seen: a datagram overtaken by
/// up to this many later ones is still accepted once; older ones are refused as stale. Large,
/// because one sequence counter serves all receivers: a burst of catch-up deltas or snapshot
/// chunks to one node must not make a delayed broadcast to another look stale.
pub const REPLAY_WINDOW: u64 = 4096;

/// Words of the replay bitmap.
const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Shortest cluster key accepted: 128 bits, the strength of the truncated tag.
pub const MIN_KEY_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The secret every node of an array shares. `Debug` never prints it.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

/// Why a received datagram was dropped (each reason has its own counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a well-formed datagram (length, fields, counts).
    Malformed,
    /// Another wire version.
    BadVersion,
    /// Tag mismatch: wrong key or altered bytes.
    Forged,
    /// From an older incarnation, or a sequence below the replay window.
    Stale,
    /// A `(incarnation, sequence)` already accepted.
    Replayed,
    /// Claims to come from this node (our own broadcast echoed, or an id clash).
    OwnId,
    /// Addressed to another node.
    NotForUs,
}

/// Counters of dropped datagrams, one per [`DropReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// See [`DropReason::Malformed`].
    pub malformed: u64,
    /// See [`DropReason::BadVersion`].
    pub bad_version: u64,
    /// See [`DropReason::Forged`].
    pub forged: u64,
    /// See [`DropReason::Stale`].
    pub stale: u64,
    /// See [`DropReason::Replayed`].
    pub replayed: u64,
    /// See [`DropReason::OwnId`].
    pub own_id: u64,
    /// See [`DropReason::NotForUs`].
    pub not_for_us: u64,
}

/// Why a datagram could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The tag does not match.
    #[error("authentication tag mismatch")]
    Forged,
    /// The tag matches but the bytes do not decode (a sender bug or another build).
    #[error("malformed datagram")]
    Malformed(#[source] WireError),
}

/// Why a cluster key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cluster key of {len} bytes is shorter than {MIN_KEY_LEN}")]
pub struct KeyError {
    /// Length given.
    pub len: usize,
}

/// Replay state of one sender.
#[derive(Clone, Debug)]
struct Window {
    incarnation: u64,
    highest: u64,
    /// Ring bitmap: bit `s % REPLAY_WINDOW` set = sequence `s` (within the window) accepted.
    seen: Box<[u64; WINDOW_WORDS]>,
}

impl Window {
    fn new(incarnation: u64, sequence: u64) -> Self {
        let mut w = Self {
            incarnation,
            highest: sequence,
            seen: Box::new([0; WINDOW_WORDS]),
        };
        w.mark(sequence);
        w
    }

    fn slot(sequence: u64) -> (usize, u64) {
        let bit = sequence % REPLAY_WINDOW;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn mark(&mut self, sequence: u64) {
        let (i, m) = Self::slot(sequence);
        self.seen[i] |= m;
    }

    fn is_marked(&self, sequence: u64) -> bool {
        let (i, m) = Self::slot(sequence);
        self.seen[i] & m != 0
    }

    /// Move the window up to `sequence`, forgetting the slots it reuses.
    fn advance(&mut self, sequence: u64) {
        if sequence - self.highest >= REPLAY_WINDOW {
            self.seen.fill(0);
        } else {
            for s in self.highest + 1..=sequence {
                let (i, m) = Self::slot(s);
                self.seen[i] &= !m;
            }
        }
        self.highest = sequence;
    }
}

/// Per-sender replay windows.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    windows: HashMap<NodeId, Window>,
}

impl ClusterKey {
    /// A key of at least [`MIN_KEY_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        }
    }

    /// Encode and tag an envelope.
    pub fn seal(&self, env: &Envelope) -> Result<Vec<u8>, WireError> {
        let mut out = wire::encode(env)?;
        let mut mac = self.mac();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..TAG_LEN]);
        Ok(out)
    }

    /// Check the tag and decode. The tag is checked first, in constant time, so nothing an
    /// attacker sends reaches the body decoder without the key.
    pub fn open(&self, datagram: &[u8]) -> Result<Envelope, OpenError> {
        let min = HEADER_LEN + TAG_LEN;
        if datagram.len() < min {
            return Err(OpenError::Malformed(WireError::TooShort {
                len: datagram.len(),
                min,
            }));
        }
        if datagram.len() > MAX_DATAGRAM {
            return Err(OpenError::Malformed(WireError::TooLong {
                len: datagram.len(),
            }));
        }
        // Version first: another version may use another tag; it is counted apart.
        if datagram[0] != wire::WIRE_VERSION {
            return Err(OpenError::Malformed(WireError::BadVersion {
                version: datagram[0],
            }));
        }
        let (body, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| OpenError::Forged)?;
        wire::decode(body).map_err(OpenError::Malformed)
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// `Hmac::new_from_slice` only fails for fixed-key-size MACs; HMAC has none.
#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

impl DropReason {
    /// The reason for an error of [`ClusterKey::open`].
    #[must_use]
    pub fn of(err: &OpenError) -> Self {
        match err {
            OpenError::Forged => DropReason::Forged,
            OpenError::Malformed(WireError::BadVersion { .. }) => DropReason::BadVersion,
            OpenError::Malformed(_) => DropReason::Malformed,
        }
    }
}

impl DropCounts {
    /// Count one drop.
    pub fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::BadVersion => &mut self.bad_version,
            DropReason::Forged => &mut self.forged,
            DropReason::Stale => &mut self.stale,
            DropReason::Replayed => &mut self.replayed,
            DropReason::OwnId => &mut self.own_id,
            DropReason::NotForUs => &mut self.not_for_us,
        };
        *c += 1;
    }

    /// All drops.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.malformed
            + self.bad_version
            + self.forged
            + self.stale
            + self.replayed
            + self.own_id
            + self.not_for_us
    }
}

impl ReplayGuard {
    /// Accept `(incarnation, sequence)` from `from` once: a newer incarnation resets the
    /// window (the sender restarted), an older one is stale, a sequence already seen is a
    /// replay, one more than [`REPLAY_WINDOW`] below the highest is stale.
    pub fn check(
        &mut self,
        from: NodeId,
        incarnation: u64,
        sequence: u64,
    ) -> Result<(), DropReason> {
        let Some(w) = self.windows.get_mut(&from) else {
            self.windows
                .insert(from, Window::new(incarnation, sequence));
            return Ok(());
        };
        if incarnation < w.incarnation {
            return Err(DropReason::Stale);
        }
        if incarnation > w.incarnation {
            *w = Window::new(incarnation, sequence);
            return Ok(());
        }
        if sequence > w.highest {
            w.advance(sequence);
            w.mark(sequence);
            return Ok(());
        }
        if w.highest - sequence >= REPLAY_WINDOW {
            return Err(DropReason::Stale);
        }
        if w.is_marked(sequence) {
            return Err(DropReason::Replayed);
        }
        w.mark(sequence);
        Ok(())
    }

    /// The incarnation last accepted from a node.
    #[must_use]
    pub fn incarnation_of(&self, node: NodeId) -> Option<u64> {
        self.windows.get(&node).map(|w| w.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Destination, Message};

    fn env(seq: u64) -> Envelope {
        Envelope {
            from: NodeId(3),
            to: Destination::Broadcast,
            incarnation: 7,
            sequence: seq,
            message: Message::TableSnapshotRequest { have: None },
        }
    }

    fn key(b: &[u8]) -> ClusterKey {
        ClusterKey::new(b.to_vec()).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_forgery() {
        let k = key(b"0123456789abcdef");
        let d = k.seal(&env(1)).unwrap();
        assert_eq!(k.open(&d).unwrap(), env(1));
        let other = key(b"fedcba9876543210");
        assert_eq!(other.open(&d), Err(OpenError::Forged));
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            let err = k.open(&bad).unwrap_err();
            let want = if i == 0 {
                DropReason::BadVersion
            } else {
                DropReason::Forged
            };
            assert_eq!(DropReason::of(&err), want, "byte {i}");
        }
        assert!(matches!(k.open(&d[..10]), Err(OpenError::Malformed(_))));
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert_eq!(
            ClusterKey::new(b"short".to_vec()).unwrap_err(),
            KeyError { len: 5 }
        );
        assert_eq!(format!("{:?}", key(b"0123456789abcdef")), "ClusterKey(..)");
    }

    #[test]
    fn golden_tag() {
        // Pins the tag construction: HMAC-SHA256 over header+body, first 16 bytes (checked
        // independently with Python: hmac.new(key, msg, sha256).hexdigest()[:32]).
        let d = key(b"pentaflow-test-key").seal(&env(1)).unwrap();
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "02020003ffff00000000000000070000000000000001ffffffffffffffff85db29668538af191cbe8b334ce5eb43"
        );
    }

    #[test]
    fn replay_window() {
        let mut g = ReplayGuard::default();
        let n = NodeId(1);
        assert_eq!(g.check(n, 5, 10), Ok(()));
        assert_eq!(g.check(n, 5, 10), Err(DropReason::Replayed));
        assert_eq!(g.check(n, 5, 12), Ok(()));
        assert_eq!(g.check(n, 5, 11), Ok(()), "reordered, in window");
        assert_eq!(g.check(n, 5, 11), Err(DropReason::Replayed));
        assert_eq!(g.check(n, 5, 10 + REPLAY_WINDOW), Ok(()));
        assert_eq!(
            g.check(n, 5, 11 + REPLAY_WINDOW),
            Ok(()),
            "slot of 11 reused, not a replay"
        );
        assert_eq!(g.check(n, 5, 10), Err(DropReason::Stale), "below window");
        assert_eq!(
            g.check(n, 5, 12),
            Err(DropReason::Replayed),
            "oldest in window, seen"
        );
        assert_eq!(g.check(n, 5, 13), Ok(()), "in window, not seen");
        assert_eq!(g.check(n, 5, 50_000), Ok(()), "a jump clears the window");
        assert_eq!(g.check(n, 5, 50_000 - 5), Ok(()));
        assert_eq!(
            g.check(n, 4, 1_000),
            Err(DropReason::Stale),
            "old incarnation"
        );
        assert_eq!(g.check(n, 6, 0), Ok(()), "restart resets");
        assert_eq!(g.incarnation_of(n), Some(6));
        assert_eq!(g.check(NodeId(2), 0, 0), Ok(()), "windows are per node");
    }
}

//! The scheduler's Client IP/Port → node hash table (seed 002, Figs. 4–5; claims 11–12).
//!
//! Owns: a fixed number of buckets, each holding the node that serves the clients hashing to it
//! (or "unassigned") and the time of its last access; the per-node assigned counts; the
//! version that replication follows; a compact snapshot form.
//!
//! The rules, straight from the seed:
//! * an unassigned bucket hit by a new flow goes to the enabled, alive node with the fewest
//!   assigned buckets per unit of weight ([`BucketTable::route`]);
//! * a failed node's buckets become unassigned ([`BucketTable::release_node`]), so its clients
//!   are spread over the survivors;
//! * a node that joins takes over only buckets that have been idle longer than a configured
//!   time ([`BucketTable::release_idle`] then `route`), so it enters gradually and **no live
//!   connection ever moves**;
//! * only the bucket → node mapping is versioned and replicated; a new scheduler stamps every
//!   bucket as just used ([`BucketTable::touch_all`]) so nothing looks idle at takeover.
//!
//! A node that is alive but *disabled* keeps the buckets it has (its connections drain) and gets
//! no new ones; its buckets leave it as they go idle.
//!
//! Times (`now`, `idle`) are in one unit of a monotonic clock, chosen by the caller: the
//! scheduler's data plane uses nanoseconds of `CLOCK_MONOTONIC` (see [`BucketEntry`]).
//!
//! Must not: read the clock (`now` is an argument), do I/O, or scan the table on the hot
//! path — the per-node counts are kept incrementally, and a routing decision costs O(nodes).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::hash::bucket_hash;

/// Smallest table: one bit of hash. (A table of one bucket could not spread anything.)
pub const MIN_BUCKETS: usize = 2;

/// Largest table: 2^24 buckets. Bucket numbers then fit the `u32` of the snapshot with room to
/// spare and a full table is 16 Mi × 16 bytes = 256 MiB, far past any real need (the seed's
/// typical size is 65,536).
pub const MAX_BUCKETS: usize = 1 << 24;

/// The raw node number meaning "unassigned" — the seed's "unsigned -1". No node may use it.
const UNASSIGNED: u16 = u16::MAX;

/// A node of the array, by its configured number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u16);

/// A node as the scheduler sees it for a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCandidate {
    /// The node's number.
    pub id: NodeId,
    /// Configured weight; 0 means "gets no new buckets".
    pub weight: u32,
    /// Administratively enabled (config); disabled nodes keep, but never gain, buckets.
    pub enabled: bool,
    /// Passing membership heartbeats; a node that is not alive loses its buckets on next use.
    pub alive: bool,
}

/// The Client IP/Port hash table. See the module documentation for the rules.
#[derive(Clone)]
pub struct BucketTable {
    /// One entry per bucket; the length is a power of two and never changes.
    entries: Vec<BucketEntry>,
    /// Buckets assigned per raw node number, grown on demand (at most 65,535 slots).
    counts: Vec<u32>,
    /// Bumped on every change of the bucket → node mapping.
    version: u64,
}

/// The replicable form of a [`BucketTable`]: its size, version and assigned buckets. Last
/// access times are deliberately absent (seed 002: they need not be synchronised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    /// Number of buckets.
    pub size: usize,
    /// Version of the mapping.
    pub version: u64,
    /// `(bucket, node)` of every assigned bucket, in bucket order.
    pub assigned: Vec<(u32, NodeId)>,
}

/// What can be wrong with a table size, a bucket number or a snapshot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BucketError {
    /// The size is not a power of two in `MIN_BUCKETS..=MAX_BUCKETS`.
    #[error(
        "bucket table size {size} is not a power of two between {MIN_BUCKETS} and {MAX_BUCKETS}"
    )]
    BadSize {
        /// The size asked for.
        size: usize,
    },
    /// A bucket number is not below the table size.
    #[error("bucket {bucket} is out of range for a table of {size} buckets")]
    BucketOutOfRange {
        /// The bucket number.
        bucket: usize,
        /// The table size.
        size: usize,
    },
    /// A bucket names node number 65535, which means "unassigned" and no node may use.
    #[error("bucket {bucket} is assigned to the reserved node number {}", u16::MAX)]
    ReservedNode {
        /// The bucket number.
        bucket: usize,
    },
    /// A snapshot assigns the same bucket twice.
    #[error("snapshot assigns bucket {bucket} more than once")]
    DuplicateBucket {
        /// The bucket number.
        bucket: usize,
    },
}

/// One bucket as stored: the raw node number ([`BucketEntry::UNASSIGNED`] = none) and the
/// time of its last access.
///
/// `#[repr(C)]`, 16 bytes, no implicit padding: the layout a BPF array map's value (and the C
/// struct of an XDP scheduler) uses, so the table can move into a map as it is. The time is a
/// monotonic clock in whatever unit the caller passes consistently; the data plane passes
/// nanoseconds of `CLOCK_MONOTONIC` (what `bpf_ktime_get_ns()` returns), see
/// `pentaflow_packet`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketEntry {
    /// The node number, or [`BucketEntry::UNASSIGNED`].
    pub node: u16,
    /// Explicit padding to the 8-byte alignment of `last_used` (always zero).
    pub reserved: [u16; 3],
    /// Last access, on the caller's monotonic clock.
    pub last_used: u64,
}

const _: () = assert!(std::mem::size_of::<BucketEntry>() == 16);
const _: () = assert!(std::mem::align_of::<BucketEntry>() == 8);

impl BucketEntry {
    /// The raw node number meaning "unassigned" (the seed's "unsigned -1").
    pub const UNASSIGNED: u16 = UNASSIGNED;

    const fn new(node: u16, last_used: u64) -> Self {
        BucketEntry {
            node,
            reserved: [0; 3],
            last_used,
        }
    }
}

impl NodeId {
    /// Whether this id is the reserved "unassigned" number, which no node may have.
    #[must_use]
    pub fn is_reserved(self) -> bool {
        self.0 == UNASSIGNED
    }
}

impl NodeCandidate {
    /// Whether this node may be given new buckets.
    #[must_use]
    pub fn eligible(&self) -> bool {
        self.enabled && self.alive && self.weight > 0 && !self.id.is_reserved()
    }
}

impl BucketTable {
    /// An empty table of `size` buckets (a power of two, `2..=2^24`), version 0.
    pub fn new(size: usize) -> Result<Self, BucketError> {
        if !size.is_power_of_two() || !(MIN_BUCKETS..=MAX_BUCKETS).contains(&size) {
            return Err(BucketError::BadSize { size });
        }
        let entries = vec![BucketEntry::new(UNASSIGNED, 0); size];
        Ok(Self {
            entries,
            counts: Vec::new(),
            version: 0,
        })
    }

    /// Number of buckets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false (a table has at least [`MIN_BUCKETS`]); present for symmetry with `len`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Version of the bucket → node mapping; replicas compare it to skip unchanged tables.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Set the version, for a replica that applies a change set made elsewhere (`set` bumps its
    /// own version; the replica then adopts the scheduler's).
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// Bucket of a client: [`bucket_hash`] (lookup3/jhash over one 20-byte key for IPv4
    /// and IPv6 alike; IPv4-mapped IPv6 counts as IPv4) masked to the size — what a C or BPF
    /// data plane computes bit-exactly.
    #[must_use]
    pub fn bucket_of(&self, ip: IpAddr, port: u16) -> usize {
        (bucket_hash(ip, port) as usize) & (self.entries.len() - 1)
    }

    /// The node serving this bucket, assigning it if unassigned.
    ///
    /// An assigned bucket whose node is listed in `nodes` and alive stays put (even if the node
    /// is disabled: its connections drain). Otherwise — unassigned, node not alive, or node no
    /// longer listed — the bucket goes to the eligible node (enabled, alive, weight > 0) with
    /// the fewest assigned buckets per unit of weight, ties to the lowest id, and the version
    /// is bumped. Refreshes the last access. `None` if the bucket is out of range or a choice
    /// was needed and no node is eligible (the bucket is then left as it was).
    pub fn route(&mut self, bucket: usize, nodes: &[NodeCandidate], now: u64) -> Option<NodeId> {
        let entry = self.entries.get(bucket)?;
        let current = entry.node;
        if current != UNASSIGNED && nodes.iter().any(|n| n.id.0 == current && n.alive) {
            self.entries[bucket].last_used = now;
            return Some(NodeId(current));
        }
        let chosen = least_assigned(nodes, |id| self.count_of(id.0))?;
        self.assign(bucket, chosen.0, now);
        Some(chosen)
    }

    /// The stored entries, in bucket order: what a BPF map of the table is loaded from.
    #[must_use]
    pub fn entries(&self) -> &[BucketEntry] {
        &self.entries
    }

    /// `(node, last_used)` of a bucket if it is assigned.
    #[must_use]
    pub fn get(&self, bucket: usize) -> Option<(NodeId, u64)> {
        let e = self.entries.get(bucket)?;
        (e.node != UNASSIGNED).then_some((NodeId(e.node), e.last_used))
    }

    /// Assign explicitly (replication, merge of live connections), stamping `now` and
    /// bumping the version if the mapping changed. An out-of-range bucket is ignored and a
    /// reserved node id means unassigned; use [`BucketTable::try_set`] to be told instead.
    pub fn set(&mut self, bucket: usize, node: Option<NodeId>, now: u64) {
        let node = node.filter(|n| !n.is_reserved());
        // Out of range is the only error once the node is filtered; ignoring it is documented.
        let _ = self.try_set(bucket, node, now);
    }

    /// Like [`BucketTable::set`], but an out-of-range bucket or a reserved node is an error.
    pub fn try_set(
        &mut self,
        bucket: usize,
        node: Option<NodeId>,
        now: u64,
    ) -> Result<(), BucketError> {
        if bucket >= self.entries.len() {
            return Err(BucketError::BucketOutOfRange {
                bucket,
                size: self.entries.len(),
            });
        }
        let raw = match node {
            Some(n) if n.is_reserved() => return Err(BucketError::ReservedNode { bucket }),
            Some(n) => n.0,
            None => UNASSIGNED,
        };
        self.assign(bucket, raw, now);
        Ok(())
    }

    /// A node failed: its buckets become unassigned. Returns how many. O(1) when the node has
    /// none, one pass over the table otherwise.
    pub fn release_node(&mut self, node: NodeId) -> usize {
        if self.count_of(node.0) == 0 {
            return 0;
        }
        let mut n = 0;
        for e in &mut self.entries {
            if e.node == node.0 {
                e.node = UNASSIGNED;
                n += 1;
            }
        }
        self.counts[usize::from(node.0)] = 0;
        self.version += 1;
        n
    }

    /// Buckets idle for longer than `idle` (last access strictly before `now - idle`)
    /// become unassigned, so their next flow is balanced anew and a new node enters gradually.
    /// Returns how many; bumps the version once if any.
    pub fn release_idle(&mut self, now: u64, idle: u64) -> usize {
        self.release_idle_each(now, idle, |_| {})
    }

    /// [`BucketTable::release_idle`], calling `released` with each bucket it unassigns: a
    /// scheduler replicating its table must tell the other nodes about releases too, or a
    /// node taking over later waits `idle` again before it may move those buckets.
    pub fn release_idle_each(
        &mut self,
        now: u64,
        idle: u64,
        mut released: impl FnMut(usize),
    ) -> usize {
        let mut n = 0;
        for (bucket, e) in self.entries.iter_mut().enumerate() {
            if e.node != UNASSIGNED && now.saturating_sub(e.last_used) > idle {
                if let Some(c) = self.counts.get_mut(usize::from(e.node)) {
                    *c -= 1;
                }
                e.node = UNASSIGNED;
                n += 1;
                released(bucket);
            }
        }
        if n > 0 {
            self.version += 1;
        }
        n
    }

    /// Stamp every assigned bucket's last access with `now`: a new scheduler takes over
    /// (seed 002) and, not knowing the real times, must treat every bucket as in use.
    pub fn touch_all(&mut self, now: u64) {
        for e in self.entries.iter_mut().filter(|e| e.node != UNASSIGNED) {
            e.last_used = now;
        }
    }

    /// Buckets assigned per node (nodes with none are absent).
    #[must_use]
    pub fn assigned_counts(&self) -> BTreeMap<NodeId, usize> {
        (0..=u16::MAX)
            .zip(self.counts.iter())
            .filter(|(_, &c)| c > 0)
            .map(|(id, &c)| (NodeId(id), c as usize))
            .collect()
    }

    /// Buckets assigned to one node (O(1)).
    #[must_use]
    pub fn assigned_to(&self, node: NodeId) -> usize {
        self.count_of(node.0) as usize
    }

    /// The compact replicable form: size, version and the assigned buckets in order.
    #[must_use]
    pub fn snapshot(&self) -> BucketSnapshot {
        let assigned = (0u32..)
            .zip(self.entries.iter())
            .filter(|(_, e)| e.node != UNASSIGNED)
            .map(|(b, e)| (b, NodeId(e.node)))
            .collect();
        BucketSnapshot {
            size: self.entries.len(),
            version: self.version,
            assigned,
        }
    }

    /// Rebuild a table from a snapshot, every assigned bucket stamped `now` (the receiver
    /// cannot know real access times, so nothing may look idle). Rejects a bad size, an
    /// out-of-range or duplicated bucket and the reserved node number.
    pub fn from_snapshot(s: &BucketSnapshot, now: u64) -> Result<Self, BucketError> {
        let mut t = Self::new(s.size)?;
        for &(b, node) in &s.assigned {
            let bucket = b as usize;
            let Some(e) = t.entries.get(bucket) else {
                return Err(BucketError::BucketOutOfRange {
                    bucket,
                    size: s.size,
                });
            };
            if e.node != UNASSIGNED {
                return Err(BucketError::DuplicateBucket { bucket });
            }
            t.try_set(bucket, Some(node), now)?;
        }
        t.version = s.version;
        Ok(t)
    }

    /// Point a bucket at a raw node number (or [`UNASSIGNED`]), keeping counts and version.
    fn assign(&mut self, bucket: usize, raw: u16, now: u64) {
        let old = self.entries[bucket].node;
        self.entries[bucket] = BucketEntry::new(raw, now);
        if old == raw {
            return;
        }
        if old != UNASSIGNED {
            if let Some(c) = self.counts.get_mut(usize::from(old)) {
                *c -= 1;
            }
        }
        if raw != UNASSIGNED {
            let i = usize::from(raw);
            if self.counts.len() <= i {
                self.counts.resize(i + 1, 0);
            }
            self.counts[i] += 1;
        }
        self.version += 1;
    }

    fn count_of(&self, raw: u16) -> u32 {
        self.counts.get(usize::from(raw)).copied().unwrap_or(0)
    }
}

/// The policy for a bucket that needs a node (seed 002): the eligible node with the fewest
/// assigned buckets per unit of weight, ties to the lowest id. Separate from the storage so
/// another data plane (a BPF map beside its user-space assigner) applies the same rule to its
/// own counts.
#[must_use]
pub fn least_assigned(nodes: &[NodeCandidate], assigned: impl Fn(NodeId) -> u32) -> Option<NodeId> {
    let mut best: Option<(NodeId, u64, u64)> = None; // (id, count, weight)
    for n in nodes.iter().filter(|n| n.eligible()) {
        let count = u64::from(assigned(n.id));
        let weight = u64::from(n.weight);
        let better = match best {
            None => true,
            // count/weight < best_count/best_weight, exactly: counts < 2^25, weights < 2^32.
            Some((id, bc, bw)) => {
                let (lhs, rhs) = (count * bw, bc * weight);
                lhs < rhs || (lhs == rhs && n.id < id)
            }
        };
        if better {
            best = Some((n.id, count, weight));
        }
    }
    best.map(|(id, _, _)| id)
}

impl fmt::Debug for BucketTable {
    /// The size, version and counts — not 65,536 entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketTable")
            .field("size", &self.entries.len())
            .field("version", &self.version)
            .field("assigned", &self.assigned_counts())
            .finish()
    }
}

#[cfg(test)]
mod tests;

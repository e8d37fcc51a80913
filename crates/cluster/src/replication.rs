//! The replica of the bucket table every node keeps, and the scheduler's authority over it.
//!
//! Owns, on a **replica** (standby node): the table as of the last version applied; deltas
//! applied strictly in version order (early ones wait in a small buffer, a gap that stays
//! open asks the scheduler for the missing deltas or a snapshot); snapshot reassembly from
//! chunks of possibly different versions (sound because deltas are per-bucket "last writer
//! wins": a mixed table plus every delta since its oldest chunk is the newest table).
//!
//! On the **authority** (scheduler): every change is recorded and broadcast as a versioned
//! delta in the same call that made it; a bounded log of recent deltas answers catch-up
//! requests; at takeover every bucket is stamped as just used, every node is asked for the
//! buckets of its live connections and the answers are merged (until all answered or a
//! deadline) *before* anything new is assigned; failed nodes' buckets are released after the
//! merge, so a live connection on a surviving node never moves.
//!
//! Must not: read the clock, do I/O, or decide who the scheduler is (see `crate::election`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use pentaflow_balance::{BucketError, BucketSnapshot, BucketTable, NodeCandidate, NodeId};

use crate::wire::{Destination, Message, SNAPSHOT_CHUNK};

pub use authority::live_bucket_answer;

mod authority;

/// A delta gap left open this long (ms) is repaired by a catch-up request: long enough for a
/// reordered datagram to arrive, short enough that the replica is rarely behind at a crash.
const GAP_GRACE_MS: u64 = 30;

/// Minimum time (ms) between two catch-up or snapshot requests of a replica, so a lossy link
/// does not turn into a request storm — and short enough that a lost request (or answer)
/// leaves the replica behind for only a moment: a scheduler assigns hundreds of buckets a
/// second, and a replica that is behind at a crash loses the newest assignments.
const REQUEST_RETRY_MS: u64 = 100;

/// A version-check mismatch must persist this long (ms) before it triggers a request: deltas
/// in flight when the check was sent are not a gap.
const MISMATCH_GRACE_MS: u64 = 150;

/// A new scheduler asks nodes that have not answered its live-bucket query again this often
/// (ms), so one lost datagram does not cost the whole merge deadline.
const QUERY_RETRY_MS: u64 = 40;

/// Deltas kept by the scheduler for catch-up; older gaps get a full snapshot.
const LOG_LEN: usize = 2048;

/// Early deltas a replica buffers while waiting for a missing one.
const FUTURE_LEN: usize = 512;

/// A replica this many versions behind asks for a full snapshot rather than the missing
/// deltas: replaying hundreds of deltas over a lossy link stalls at every lost one (a node
/// that restarted behind a busy scheduler crawled through its whole log), while a snapshot is
/// `size / SNAPSHOT_CHUNK` datagrams whatever the distance.
const MAX_REPLAY: u64 = 64;

/// Messages a core wants sent.
pub(crate) type Outbox = Vec<(Destination, Message)>;

/// One `(bucket, node)` change; `None` = unassigned.
pub type Change = (u32, Option<NodeId>);

/// Replica and authority state of the bucket table.
#[derive(Debug)]
pub struct Replication {
    table: BucketTable,
    version: u64,
    authority: bool,
    following: Option<NodeId>,
    future: BTreeMap<u64, (u64, Vec<Change>)>,
    gap_since: Option<u64>,
    /// The scheduler's version from its last check that differed from ours, and since when.
    mismatch: Option<(u64, u64)>,
    last_request: Option<u64>,
    /// A full snapshot was asked for and is not complete: only then are chunks taken.
    want_snapshot: bool,
    assembly: Option<Assembly>,
    /// Authority: recent deltas `(base, version, changes)` for catch-up.
    log: VecDeque<(u64, u64, Vec<Change>)>,
    pending: Vec<Change>,
    merge: Option<Merge>,
    queries: u32,
    published: Option<Arc<BucketSnapshot>>,
}

/// A snapshot being reassembled.
#[derive(Debug)]
struct Assembly {
    size: usize,
    min_version: u64,
    nodes: Vec<Option<NodeId>>,
    got: Vec<bool>,
    missing: usize,
}

/// The live-bucket merge of a takeover.
#[derive(Debug)]
struct Merge {
    query: u32,
    deadline: u64,
    last_query: u64,
    /// Nodes still to answer, with the chunks received so far.
    waiting: BTreeMap<NodeId, BTreeSet<u16>>,
    claims: BTreeMap<u32, Vec<NodeId>>,
}

impl Replication {
    /// An empty replica of `size` buckets, following nobody.
    pub fn new(size: usize) -> Result<Self, BucketError> {
        Ok(Self {
            table: BucketTable::new(size)?,
            version: 0,
            authority: false,
            following: None,
            future: BTreeMap::new(),
            gap_since: None,
            mismatch: None,
            last_request: None,
            want_snapshot: false,
            assembly: None,
            log: VecDeque::new(),
            pending: Vec::new(),
            merge: None,
            queries: 0,
            published: None,
        })
    }

    /// Version of the table as applied (replica) or published (authority).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table (its last-access times are meaningful only on the authority).
    #[must_use]
    pub fn table(&self) -> &BucketTable {
        &self.table
    }

    /// The scheduler this replica follows.
    #[must_use]
    pub fn following(&self) -> Option<NodeId> {
        self.following
    }

    /// Whether a takeover merge is running (nothing new may be assigned).
    #[must_use]
    pub fn is_merging(&self) -> bool {
        self.merge.is_some()
    }

    /// Whether a full snapshot is being reassembled.
    #[must_use]
    pub fn is_assembling(&self) -> bool {
        self.assembly.is_some()
    }

    /// The table as an immutable snapshot, rebuilt only when the version changed.
    pub fn snapshot(&mut self) -> Arc<BucketSnapshot> {
        if let Some(p) = &self.published {
            if p.version == self.version {
                return Arc::clone(p);
            }
        }
        let mut s = self.table.snapshot();
        s.version = self.version;
        let s = Arc::new(s);
        self.published = Some(Arc::clone(&s));
        s
    }

    /// Become a replica of `scheduler` (or of nobody). A new scheduler means a full snapshot:
    /// two schedulers of a split brain may have used the same versions for different tables.
    pub fn follow(&mut self, scheduler: Option<NodeId>, now: u64, out: &mut Outbox) {
        let changed = self.following != scheduler || self.authority;
        self.authority = false;
        self.merge = None;
        self.pending.clear();
        self.log.clear();
        if !changed {
            return;
        }
        self.following = scheduler;
        self.future.clear();
        self.gap_since = None;
        self.mismatch = None;
        self.assembly = None;
        self.last_request = None;
        if scheduler.is_some() {
            self.request(None, now, out);
        }
    }

    fn request(&mut self, have: Option<u64>, now: u64, out: &mut Outbox) {
        let Some(s) = self.following else { return };
        if self
            .last_request
            .is_some_and(|t| now.saturating_sub(t) < REQUEST_RETRY_MS)
        {
            return;
        }
        self.last_request = Some(now);
        self.want_snapshot |= have.is_none();
        out.push((Destination::Node(s), Message::TableSnapshotRequest { have }));
    }

    /// A delta from `from`. Applied if it continues this table, buffered if early, ignored if
    /// old or not from the followed scheduler.
    pub fn on_delta(
        &mut self,
        from: NodeId,
        base: u64,
        version: u64,
        changes: Vec<Change>,
        now: u64,
    ) {
        if self.authority || Some(from) != self.following || version <= base {
            return;
        }
        if self.assembly.is_some() || base > self.version {
            if self.future.len() < FUTURE_LEN {
                self.future.insert(base, (version, changes));
            }
            if self.assembly.is_none() {
                self.gap_since.get_or_insert(now);
            }
            return;
        }
        if base == self.version {
            self.apply(version, &changes, now);
            self.drain_future(now);
        }
    }

    fn apply(&mut self, version: u64, changes: &[Change], now: u64) {
        for &(b, n) in changes {
            // An out-of-range bucket from an authenticated scheduler means another table
            // size: ignoring it keeps this table sane; the version check then repairs.
            let _ = self.table.try_set(b as usize, n, now);
        }
        self.version = version;
        self.table.set_version(version);
    }

    fn drain_future(&mut self, now: u64) {
        self.future = self.future.split_off(&self.version);
        while let Some((version, changes)) = self.future.remove(&self.version) {
            self.apply(version, &changes, now);
        }
        self.future = self.future.split_off(&self.version);
        if self.future.is_empty() {
            self.gap_since = None;
            // Caught up: the next gap may ask at once.
            self.last_request = None;
        } else {
            self.gap_since.get_or_insert(now);
        }
    }

    /// A snapshot chunk from `from`.
    pub fn on_snapshot(
        &mut self,
        from: NodeId,
        (version, size, start): (u64, u32, u32),
        nodes: Vec<Option<NodeId>>,
        now: u64,
    ) {
        if self.authority || Some(from) != self.following || !self.want_snapshot {
            return;
        }
        let size = size as usize;
        let start = start as usize;
        let index = start / SNAPSHOT_CHUNK;
        let expected = SNAPSHOT_CHUNK.min(size.saturating_sub(start));
        if size != self.table.len()
            || start % SNAPSHOT_CHUNK != 0
            || nodes.len() != expected
            || expected == 0
        {
            return;
        }
        let a = self.assembly.get_or_insert_with(|| {
            let chunks = size.div_ceil(SNAPSHOT_CHUNK);
            Assembly {
                size,
                min_version: version,
                nodes: vec![None; size],
                got: vec![false; chunks],
                missing: chunks,
            }
        });
        a.nodes[start..start + expected].copy_from_slice(&nodes);
        a.min_version = a.min_version.min(version);
        if !a.got[index] {
            a.got[index] = true;
            a.missing -= 1;
        }
        if a.missing > 0 {
            return;
        }
        let Some(a) = self.assembly.take() else {
            return;
        };
        self.want_snapshot = false;
        let mut table = match BucketTable::new(a.size) {
            Ok(t) => t,
            Err(_) => return,
        };
        for (b, n) in a.nodes.iter().enumerate() {
            if n.is_some() {
                let _ = table.try_set(b, *n, now);
            }
        }
        self.table = table;
        self.version = a.min_version;
        self.table.set_version(self.version);
        self.drain_future(now);
    }

    /// The scheduler's periodic version check: a difference that outlives the deltas in
    /// flight (see `tick`) is repaired.
    pub fn on_version_check(&mut self, from: NodeId, version: u64, now: u64) {
        if self.authority || Some(from) != self.following {
            return;
        }
        // Only "behind" matters: a replica ahead of a check has applied deltas sent after it
        // (a new scheduler's different numbering is handled by `follow`'s full snapshot).
        if version > self.version {
            let since = self.mismatch.map_or(now, |(_, t)| t);
            self.mismatch = Some((version, since));
        }
    }

    /// Time-driven repairs and the takeover deadline. Returns true when a merge finished.
    pub fn tick(&mut self, now: u64, alive: &[NodeCandidate], out: &mut Outbox) -> bool {
        if self.authority {
            let Some(m) = self.merge.as_mut() else {
                return false;
            };
            if now >= m.deadline {
                self.finish_merge(alive, now, out);
                return true;
            }
            if now.saturating_sub(m.last_query) >= QUERY_RETRY_MS {
                m.last_query = now;
                for &n in m.waiting.keys() {
                    out.push((
                        Destination::Node(n),
                        Message::LiveBucketsQuery { query: m.query },
                    ));
                }
            }
            return false;
        }
        if let Some((target, since)) = self.mismatch {
            if self.version >= target {
                self.mismatch = None;
            } else if now.saturating_sub(since) >= MISMATCH_GRACE_MS && self.assembly.is_none() {
                self.mismatch = Some((target, now));
                let have = self.catch_up_from(target);
                self.request(have, now, out);
                return false;
            }
        }
        if self.assembly.is_some() {
            self.request(None, now, out);
        } else if self
            .gap_since
            .is_some_and(|t| now.saturating_sub(t) >= GAP_GRACE_MS)
        {
            let newest = self
                .future
                .keys()
                .next_back()
                .copied()
                .unwrap_or(self.version);
            let have = self.catch_up_from(newest);
            self.request(have, now, out);
        }
        false
    }

    /// What to ask for to reach version `target`: the deltas since this table's version, or
    /// (`None`) a full snapshot when that is more than [`MAX_REPLAY`] versions away.
    fn catch_up_from(&self, target: u64) -> Option<u64> {
        (target.saturating_sub(self.version) <= MAX_REPLAY).then_some(self.version)
    }
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;

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

use crate::wire::{Destination, Message, DELTA_CHUNK, LIVE_CHUNK, SNAPSHOT_CHUNK};

/// A delta gap left open this long (ms) is repaired by a catch-up request: long enough for a
/// reordered datagram to arrive, short enough that the replica is rarely behind at a crash.
const GAP_GRACE_MS: u64 = 30;

/// Minimum time (ms) between two catch-up or snapshot requests of a replica, so a lossy link
/// does not turn into a request storm.
const REQUEST_RETRY_MS: u64 = 250;

/// A version-check mismatch must persist this long (ms) before it triggers a request: deltas
/// in flight when the check was sent are not a gap.
const MISMATCH_GRACE_MS: u64 = 150;

/// Deltas kept by the scheduler for catch-up; older gaps get a full snapshot.
const LOG_LEN: usize = 2048;

/// Early deltas a replica buffers while waiting for a missing one.
const FUTURE_LEN: usize = 512;

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
    mismatch_since: Option<u64>,
    last_request: Option<u64>,
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
            mismatch_since: None,
            last_request: None,
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
        self.mismatch_since = None;
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
        out.push((Destination::Node(s), Message::TableSnapshotRequest { have }));
    }

    /// A delta from `from`. Applied if it continues this table, buffered if early, ignored if
    /// old or not from the followed scheduler.
    pub fn on_delta(&mut self, from: NodeId, base: u64, version: u64, changes: Vec<Change>, now: u64) {
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
        if self.authority || Some(from) != self.following {
            return;
        }
        let size = size as usize;
        let start = start as usize;
        let index = start / SNAPSHOT_CHUNK;
        let expected = SNAPSHOT_CHUNK.min(size.saturating_sub(start));
        if size != self.table.len() || start % SNAPSHOT_CHUNK != 0 || nodes.len() != expected || expected == 0 {
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
        let Some(a) = self.assembly.take() else { return };
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

    /// The scheduler's periodic version check.
    pub fn on_version_check(&mut self, from: NodeId, version: u64, now: u64, out: &mut Outbox) {
        if self.authority || Some(from) != self.following {
            return;
        }
        if version == self.version || self.assembly.is_some() {
            self.mismatch_since = None;
            return;
        }
        let since = *self.mismatch_since.get_or_insert(now);
        if now.saturating_sub(since) >= MISMATCH_GRACE_MS {
            // Behind: catch up; ahead (the scheduler restarted its numbering): start over.
            let have = (version > self.version).then_some(self.version);
            self.mismatch_since = None;
            self.request(have, now, out);
        }
    }

    /// Time-driven repairs and the takeover deadline. Returns true when a merge finished.
    pub fn tick(&mut self, now: u64, alive: &[NodeCandidate], out: &mut Outbox) -> bool {
        if self.authority {
            if self.merge.as_ref().is_some_and(|m| now >= m.deadline) {
                self.finish_merge(alive, now, out);
                return true;
            }
            return false;
        }
        if self.assembly.is_some() {
            self.request(None, now, out);
        } else if self
            .gap_since
            .is_some_and(|t| now.saturating_sub(t) >= GAP_GRACE_MS)
        {
            let have = Some(self.version);
            self.request(have, now, out);
        }
        false
    }

    /// Answer a catch-up or snapshot request (authority only).
    pub fn on_request(&self, from: NodeId, have: Option<u64>, out: &mut Outbox) {
        if !self.authority {
            return;
        }
        let to = Destination::Node(from);
        if let Some(have) = have {
            let covered = self.log.front().is_some_and(|(b, _, _)| *b <= have) || have == self.version;
            if covered && have <= self.version {
                for (base, version, changes) in self.log.iter().filter(|(b, _, _)| *b >= have) {
                    let m = Message::TableDelta {
                        base: *base,
                        version: *version,
                        changes: changes.clone(),
                    };
                    out.push((to, m));
                }
                return;
            }
        }
        let size = self.table.len();
        for start in (0..size).step_by(SNAPSHOT_CHUNK) {
            let end = (start + SNAPSHOT_CHUNK).min(size);
            let nodes = (start..end).map(|b| self.table.get(b).map(|(n, _)| n)).collect();
            let m = Message::TableSnapshot {
                version: self.version,
                size: u32::try_from(size).unwrap_or(u32::MAX),
                start: u32::try_from(start).unwrap_or(u32::MAX),
                nodes,
            };
            out.push((to, m));
        }
    }

    /// Become the authority with this node's replica: stamp every bucket as used now (seed
    /// 002), ask every other alive node for its live buckets and count this node's own.
    pub fn take_over(
        &mut self,
        me: NodeId,
        others: &[NodeId],
        own_live: &[u32],
        now: u64,
        deadline_ms: u64,
        out: &mut Outbox,
    ) {
        self.authority = true;
        self.following = Some(me);
        self.assembly = None;
        self.future.clear();
        self.gap_since = None;
        self.log.clear();
        self.table.touch_all(now);
        self.queries = self.queries.wrapping_add(1);
        let mut merge = Merge {
            query: self.queries,
            deadline: now + deadline_ms,
            waiting: others.iter().map(|&n| (n, BTreeSet::new())).collect(),
            claims: BTreeMap::new(),
        };
        for &b in own_live {
            merge.claims.entry(b).or_default().push(me);
        }
        out.push((
            Destination::Broadcast,
            Message::LiveBucketsQuery { query: merge.query },
        ));
        self.merge = Some(merge);
    }

    /// One chunk of a node's live buckets. Returns true when this completed the merge.
    pub fn on_live_buckets(
        &mut self,
        from: NodeId,
        (query, chunk, chunks): (u32, u16, u16),
        buckets: &[u32],
        alive: &[NodeCandidate],
        now: u64,
        out: &mut Outbox,
    ) -> bool {
        let Some(m) = self.merge.as_mut() else { return false };
        if query != m.query {
            return false;
        }
        let Some(got) = m.waiting.get_mut(&from) else { return false };
        if !got.insert(chunk) {
            return false;
        }
        for &b in buckets {
            m.claims.entry(b).or_default().push(from);
        }
        if got.len() >= usize::from(chunks) {
            m.waiting.remove(&from);
        }
        if m.waiting.is_empty() {
            self.finish_merge(alive, now, out);
            return true;
        }
        false
    }

    /// A node failed during the merge: do not wait for it.
    pub fn forget_waiting(&mut self, node: NodeId) {
        if let Some(m) = self.merge.as_mut() {
            m.waiting.remove(&node);
            if m.waiting.is_empty() {
                m.deadline = 0;
            }
        }
    }

    fn finish_merge(&mut self, alive: &[NodeCandidate], now: u64, out: &mut Outbox) {
        let Some(m) = self.merge.take() else { return };
        let is_alive = |n: NodeId| alive.iter().any(|c| c.id == n && c.alive);
        for (b, claimants) in m.claims {
            let current = self.table.get(b as usize).map(|(n, _)| n);
            // The table's owner wins if it claims the bucket; otherwise the lowest alive id
            // (two claimants mean one of them holds a connection that already broke).
            let keep = current.filter(|c| claimants.contains(c));
            let chosen = keep.or_else(|| claimants.iter().copied().filter(|&n| is_alive(n)).min());
            if chosen.is_some() && chosen != current {
                self.set(b, chosen, now);
            }
        }
        // Buckets of nodes that are gone become unassigned only now, after the claims.
        for b in 0..self.table.len() {
            if let Some((n, _)) = self.table.get(b) {
                if !is_alive(n) {
                    self.set(u32::try_from(b).unwrap_or(u32::MAX), None, now);
                }
            }
        }
        self.flush(out);
    }

    fn set(&mut self, bucket: u32, node: Option<NodeId>, now: u64) {
        if self.table.try_set(bucket as usize, node, now).is_ok() {
            self.pending.push((bucket, node));
        }
    }

    /// Authority: record changes made by this node's data plane (bucket → node, or released),
    /// unchanged ones skipped. Call [`Replication::flush`] after.
    pub fn assign(&mut self, changes: &[Change], now: u64) {
        if !self.authority {
            return;
        }
        for &(b, n) in changes {
            if self.table.get(b as usize).map(|(x, _)| x) != n {
                self.set(b, n, now);
            }
        }
    }

    /// Authority: route a flow of `bucket` like the data plane would (sticky while its node
    /// is alive, else least assigned), recording any change. `None` while merging, if the
    /// bucket is out of range, or if no node is eligible.
    pub fn route(&mut self, bucket: u32, nodes: &[NodeCandidate], now: u64) -> Option<NodeId> {
        if !self.authority {
            return None;
        }
        let before = self.table.get(bucket as usize).map(|(n, _)| n);
        if self.merge.is_some() && before.is_none_or(|n| !nodes.iter().any(|c| c.id == n && c.alive)) {
            return None;
        }
        let chosen = self.table.route(bucket as usize, nodes, now)?;
        if before != Some(chosen) {
            self.pending.push((bucket, Some(chosen)));
        }
        Some(chosen)
    }

    /// Authority: a node failed; its buckets become unassigned (deferred while merging).
    pub fn release_node(&mut self, node: NodeId, now: u64) {
        if !self.authority || self.merge.is_some() {
            return;
        }
        for b in 0..self.table.len() {
            if self.table.get(b).is_some_and(|(n, _)| n == node) {
                self.set(u32::try_from(b).unwrap_or(u32::MAX), None, now);
            }
        }
    }

    /// Authority: unassign buckets idle longer than `idle_ms`, so a new node enters gradually.
    pub fn release_idle(&mut self, now: u64, idle_ms: u64) {
        if !self.authority || self.merge.is_some() {
            return;
        }
        for b in 0..self.table.len() {
            if self
                .table
                .get(b)
                .is_some_and(|(_, last)| now.saturating_sub(last) > idle_ms)
            {
                self.set(u32::try_from(b).unwrap_or(u32::MAX), None, now);
            }
        }
    }

    /// Authority: broadcast pending changes as deltas, one version step per datagram.
    /// Returns whether the version moved.
    pub fn flush(&mut self, out: &mut Outbox) -> bool {
        if !self.authority || self.pending.is_empty() {
            self.pending.clear();
            return false;
        }
        let pending = std::mem::take(&mut self.pending);
        for chunk in pending.chunks(DELTA_CHUNK) {
            let base = self.version;
            self.version += 1;
            let changes = chunk.to_vec();
            if self.log.len() == LOG_LEN {
                self.log.pop_front();
            }
            self.log.push_back((base, self.version, changes.clone()));
            out.push((
                Destination::Broadcast,
                Message::TableDelta {
                    base,
                    version: self.version,
                    changes,
                },
            ));
        }
        self.table.set_version(self.version);
        true
    }
}

/// Split a node's live buckets into [`Message::LiveBuckets`] chunks (at least one).
#[must_use]
pub fn live_bucket_answer(query: u32, live: &[u32]) -> Vec<Message> {
    let parts: Vec<&[u32]> = if live.is_empty() {
        vec![&[]]
    } else {
        live.chunks(LIVE_CHUNK).collect()
    };
    let chunks = u16::try_from(parts.len()).unwrap_or(u16::MAX);
    parts
        .into_iter()
        .zip(0u16..chunks)
        .map(|(p, chunk)| Message::LiveBuckets {
            query,
            chunk,
            chunks,
            buckets: p.to_vec(),
        })
        .collect()
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;

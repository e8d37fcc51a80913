//! The scheduler's side of replication: answering catch-up and snapshot requests, the
//! live-bucket merge of a takeover, and recording every change as a broadcast delta.
//!
//! Must not: apply anything received from another scheduler (that is the replica side, in the
//! parent module).

use std::collections::{BTreeMap, BTreeSet};

use pentaflow_balance::{NodeCandidate, NodeId};

use super::{Change, Merge, Outbox, Replication, LOG_LEN};
use crate::wire::{Destination, Message, DELTA_CHUNK, LIVE_CHUNK, SNAPSHOT_CHUNK};

impl Replication {
    /// Answer a catch-up or snapshot request (authority only).
    pub fn on_request(&self, from: NodeId, have: Option<u64>, out: &mut Outbox) {
        if !self.authority {
            return;
        }
        let to = Destination::Node(from);
        if let Some(have) = have {
            let covered =
                self.log.front().is_some_and(|(b, _, _)| *b <= have) || have == self.version;
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
            let nodes = (start..end)
                .map(|b| self.table.get(b).map(|(n, _)| n))
                .collect();
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
            last_query: now,
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
        let Some(m) = self.merge.as_mut() else {
            return false;
        };
        if query != m.query {
            return false;
        }
        let Some(got) = m.waiting.get_mut(&from) else {
            return false;
        };
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

    pub(super) fn finish_merge(&mut self, alive: &[NodeCandidate], now: u64, out: &mut Outbox) {
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

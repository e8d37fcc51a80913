//! The scheduler core: one frame in, one [`Verdict`] out — pure and deterministic.
//!
//! Owns: the VIP check, the service-port check, the bucket look-up through
//! [`pentaflow_balance::BucketTable`], the MAC rewrite for the chosen output, the node table
//! (id → MAC, weight, state) and the counters. Must not: read a clock (`now_ms` is an
//! argument), do I/O, or panic on a frame — the shell ([`crate::run`]) owns every syscall.

use std::net::IpAddr;

use pentaflow_balance::{BucketSnapshot, BucketTable, NodeCandidate, NodeId};

use crate::frame::{self, DropReason, L4Proto, MacAddr, Verdict};

/// One node of the array as the scheduler routes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node's number (shared with the bucket table and the cluster).
    pub id: NodeId,
    /// The MAC address of its LAN interface: the destination of frames forwarded to it.
    pub mac: MacAddr,
    /// Weight; 0 means it gets no new buckets.
    pub weight: u32,
    /// Administratively enabled: disabled nodes keep their buckets but get no new ones.
    pub enabled: bool,
    /// Alive according to membership; a dead node's buckets are released.
    pub alive: bool,
}

/// The addressing the core needs beside the node table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreParams {
    /// The virtual IP the array publishes.
    pub vip: IpAddr,
    /// The (protocol, port) pairs served on the VIP; anything else is dropped.
    pub services: Vec<(L4Proto, u16)>,
    /// This node's number: a bucket routed to it is delivered locally.
    pub self_id: NodeId,
    /// The MAC of this node's LAN interface: the source MAC of forwarded frames.
    pub lan_mac: MacAddr,
    /// The MAC of the local-delivery device (TAP): the destination MAC of local frames, so
    /// that the stack accepts them as addressed to it.
    pub local_mac: MacAddr,
}

/// What the scheduler did, since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames forwarded per node (nodes never forwarded to are absent).
    pub forwarded: Vec<(NodeId, u64)>,
    /// Frames delivered to the local stack.
    pub local: u64,
    /// Frames dropped, indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
    /// Buckets released because they were idle (by [`SchedulerCore::tick`]).
    pub idle_released: u64,
    /// Frames whose send failed (set by the I/O shell; the core never sends).
    pub send_errors: u64,
}

/// The pure scheduler: see the module documentation.
#[derive(Debug)]
pub struct SchedulerCore {
    params: CoreParams,
    nodes: Vec<NodeEntry>,
    /// `nodes` in the form the bucket table takes, rebuilt only when the node table changes.
    candidates: Vec<NodeCandidate>,
    table: BucketTable,
    counters: Counters,
    /// While false (a takeover's live-bucket merge) every frame to the VIP is held (dropped,
    /// counted as `NoNode`; TCP retransmits it a moment later): assigning a bucket now could
    /// move a surviving connection, and even an assigned bucket of the replica may be stale
    /// (its delta lost in the crash) until the merge has heard every node's live buckets.
    accepting_new: bool,
    /// Assignments made by routing, for the control plane to replicate; `None` = not kept.
    changes: Option<Vec<Change>>,
}

/// One replicated assignment: `(bucket, node)`, `None` = released.
pub type Change = (u32, Option<NodeId>);

impl Counters {
    /// Frames forwarded to `node`.
    pub fn forwarded_to(&self, node: NodeId) -> u64 {
        self.forwarded
            .iter()
            .find(|(id, _)| *id == node)
            .map_or(0, |(_, n)| *n)
    }

    /// Frames forwarded to any node.
    pub fn forwarded_total(&self) -> u64 {
        self.forwarded.iter().map(|(_, n)| n).sum()
    }

    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    fn count(&mut self, verdict: Verdict, node: Option<NodeId>) {
        match (verdict, node) {
            (Verdict::Forward { .. }, Some(id)) => {
                match self.forwarded.iter_mut().find(|(n, _)| *n == id) {
                    Some((_, c)) => *c += 1,
                    None => self.forwarded.push((id, 1)),
                }
            }
            (Verdict::Local, _) => self.local += 1,
            (Verdict::Drop(reason), _) => {
                if let Some(c) = self.dropped.get_mut(reason.index()) {
                    *c += 1;
                }
            }
            (Verdict::Forward { .. }, None) => {}
        }
    }
}

impl SchedulerCore {
    /// A core over `table` (usually empty, or restored from a snapshot) and `nodes`.
    pub fn new(params: CoreParams, nodes: Vec<NodeEntry>, table: BucketTable) -> Self {
        let mut core = SchedulerCore {
            params,
            nodes: Vec::new(),
            candidates: Vec::new(),
            table,
            counters: Counters::default(),
            accepting_new: true,
            changes: None,
        };
        core.set_nodes(nodes);
        core
    }

    /// Keep every assignment routing makes, for [`SchedulerCore::take_changes`] (the
    /// control plane replicates them to the standbys).
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The assignments made since the last call (empty unless recording).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Allow (true) or hold (false) new assignments; see the field's comment.
    pub fn set_accepting_new(&mut self, accepting: bool) {
        self.accepting_new = accepting;
    }

    /// Adopt the control plane's replica, stamped `now_ms` (a takeover's live-bucket merge).
    ///
    /// While new assignments are held (the merge is running) this core has routed nothing
    /// since the hold began, so the replica — the merge's result — replaces the mapping
    /// whole, releases included. Otherwise only buckets unassigned here are taken: on a
    /// conflict this core wins, as it routed the newer flow. Returns how many buckets changed.
    pub fn adopt(&mut self, snapshot: &BucketSnapshot, now_ms: u64) -> usize {
        if snapshot.size != self.table.len() {
            return 0;
        }
        let mut n = 0;
        if !self.accepting_new {
            let mut want: Vec<Option<NodeId>> = vec![None; self.table.len()];
            for &(bucket, node) in &snapshot.assigned {
                if let Some(slot) = want.get_mut(bucket as usize) {
                    *slot = Some(node).filter(|n| !n.is_reserved());
                }
            }
            for (b, node) in want.into_iter().enumerate() {
                if self.table.get(b).map(|(n, _)| n) != node {
                    self.table.set(b, node, now_ms);
                    n += 1;
                }
            }
            return n;
        }
        for &(bucket, node) in &snapshot.assigned {
            let b = bucket as usize;
            if self.table.get(b).is_none() && !node.is_reserved() {
                self.table.set(b, Some(node), now_ms);
                n += 1;
            }
        }
        n
    }

    /// Decides the fate of one frame and rewrites its MACs accordingly, in place:
    /// forwarded frames get the node's MAC as destination and ours as source; local frames
    /// get the local device's MAC as destination; dropped frames are left as they are.
    pub fn handle(&mut self, frame: &mut [u8], now_ms: u64) -> Verdict {
        let (verdict, node) = self.decide(frame, now_ms);
        let rewritten = match verdict {
            Verdict::Forward { to } => frame::rewrite_macs(frame, to, self.params.lan_mac),
            Verdict::Local => frame::rewrite_dst_mac(frame, self.params.local_mac),
            Verdict::Drop(_) => Ok(()),
        };
        // `decide` has parsed the headers, so the frame is long enough; stay total anyway.
        let verdict = match rewritten {
            Ok(()) => verdict,
            Err(_) => Verdict::Drop(DropReason::Truncated),
        };
        self.counters.count(verdict, node);
        verdict
    }

    /// The verdict for a frame and the node chosen, without rewriting or counting.
    fn decide(&mut self, frame: &[u8], now_ms: u64) -> (Verdict, Option<NodeId>) {
        let flow = match frame::parse_flow(frame) {
            Ok(flow) => flow,
            Err(e) => return (Verdict::Drop(e.into()), None),
        };
        if flow.dst.to_canonical() != self.params.vip.to_canonical() {
            return (Verdict::Drop(DropReason::NotVip), None);
        }
        if !self.params.services.contains(&(flow.proto, flow.dst_port)) {
            return (Verdict::Drop(DropReason::UnservedPort), None);
        }
        if !self.accepting_new {
            return (Verdict::Drop(DropReason::NoNode), None);
        }
        let bucket = self.table.bucket_of(flow.src, flow.src_port);
        let before = self.table.get(bucket).map(|(n, _)| n);
        let Some(id) = self.table.route(bucket, &self.candidates, now_ms) else {
            return (Verdict::Drop(DropReason::NoNode), None);
        };
        if before != Some(id) {
            if let (Some(changes), Ok(b)) = (self.changes.as_mut(), u32::try_from(bucket)) {
                changes.push((b, Some(id)));
            }
        }
        if id == self.params.self_id {
            return (Verdict::Local, Some(id));
        }
        match self.nodes.iter().find(|n| n.id == id) {
            Some(n) => (Verdict::Forward { to: n.mac }, Some(id)),
            // The table only routes to listed candidates; an unknown id is a bug, not a panic.
            None => (Verdict::Drop(DropReason::NoNode), None),
        }
    }

    /// Replaces the node table. Buckets of nodes that are no longer alive, or no longer
    /// listed, are released at once so that their clients are spread over the survivors.
    pub fn set_nodes(&mut self, nodes: Vec<NodeEntry>) {
        for old in &self.nodes {
            let still_alive = nodes.iter().any(|n| n.id == old.id && n.alive);
            if !still_alive {
                self.table.release_node(old.id);
            }
        }
        self.candidates = nodes
            .iter()
            .map(|n| NodeCandidate {
                id: n.id,
                weight: n.weight,
                enabled: n.enabled,
                alive: n.alive,
            })
            .collect();
        self.nodes = nodes;
    }

    /// Periodic housekeeping: buckets idle longer than `idle_ms` become unassigned, so a node
    /// that joined takes its share gradually without moving a live connection.
    /// Releases are recorded like assignments (see [`SchedulerCore::record_changes`]).
    pub fn tick(&mut self, now_ms: u64, idle_ms: u64) {
        // The merge decides what stays; releasing now could undo one of its answers.
        if !self.accepting_new {
            return;
        }
        let changes = &mut self.changes;
        let n = self.table.release_idle_each(now_ms, idle_ms, |bucket| {
            if let (Some(changes), Ok(b)) = (changes.as_mut(), u32::try_from(bucket)) {
                changes.push((b, None));
            }
        });
        self.counters.idle_released += n as u64;
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The bucket table (for snapshots and status).
    pub fn table(&self) -> &BucketTable {
        &self.table
    }

    /// The node table.
    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    /// The addressing parameters.
    pub fn params(&self) -> &CoreParams {
        &self.params
    }
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;

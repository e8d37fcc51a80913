//! The scheduler core: one frame in, one [`Verdict`] out — pure and deterministic.
//!
//! Owns: the mode-independent checks (parse, VIP, service port), the MAC rewrite for the
//! chosen output, the node table (id → MAC, weight, state) and the counters; the choice of a
//! node is the [`Schedule`] seam — [`BucketSchedule`] (single-scheduler mode: the bucket
//! table through [`pentaflow_balance::BucketTable`], its only writer, and the takeover hold)
//! today, seed 004's owners tomorrow. Must not: read a clock (`now` is an argument), do
//! I/O, or panic on a frame — the shell ([`crate::run`]) owns every syscall.

use std::net::IpAddr;

use pentaflow_balance::{BucketSnapshot, BucketTable, NodeCandidate, NodeId};

use crate::frame::{self, DropReason, Flow, L4Proto, MacAddr, Verdict};

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

/// The mode-dependent half of a scheduling decision: which node serves a flow that passed
/// the mode-independent checks ([`SchedulerCore`]: parse, VIP, served port). Single-scheduler
/// mode is [`BucketSchedule`] (seed 002's client IP/port bucket table); active-active mode
/// (seed 004's rendezvous owners) is another implementation behind the same core.
pub trait Schedule {
    /// The node for `flow` now, or `None` (the frame is dropped as [`DropReason::NoNode`]).
    fn schedule(&mut self, flow: &Flow, now: u64) -> Option<NodeId>;
    /// The node table changed (membership, weights, drain state).
    fn set_nodes(&mut self, nodes: &[NodeEntry]);
}

/// Single-scheduler mode: the bucket table, its sole writer, and the takeover hold.
#[derive(Debug)]
pub struct BucketSchedule {
    /// The node table in the form the bucket table takes, rebuilt only when it changes.
    candidates: Vec<NodeCandidate>,
    table: BucketTable,
    /// While false (a takeover's live-bucket merge) every frame to the VIP is held (dropped,
    /// counted as `NoNode`; TCP retransmits it a moment later): assigning a bucket now could
    /// move a surviving connection, and even an assigned bucket of the replica may be stale
    /// (its delta lost in the crash) until the merge has heard every node's live buckets.
    accepting_new: bool,
    /// Assignments made by routing, for the control plane to replicate; `None` = not kept.
    changes: Option<Vec<Change>>,
}

/// The pure scheduler: see the module documentation. `S` is the scheduling mode.
///
/// Time (`now`, `idle`) is in any one unit of a monotonic clock, stored as given in the
/// bucket table's `last_used`. The data plane (`crate::run`) passes nanoseconds of
/// `CLOCK_MONOTONIC` — what `bpf_ktime_get_ns()` returns — so an XDP program and this core
/// stamp one table alike; tests pass small integers.
#[derive(Debug)]
pub struct SchedulerCore<S = BucketSchedule> {
    params: CoreParams,
    nodes: Vec<NodeEntry>,
    schedule: S,
    counters: Counters,
}

/// One replicated assignment: `(bucket, node)`, `None` = released.
pub type Change = (u32, Option<NodeId>);

impl BucketSchedule {
    /// Single-scheduler mode over `table` (usually empty, or restored from a replica).
    #[must_use]
    pub fn new(table: BucketTable) -> Self {
        BucketSchedule {
            candidates: Vec::new(),
            table,
            accepting_new: true,
            changes: None,
        }
    }
}

impl Schedule for BucketSchedule {
    fn schedule(&mut self, flow: &Flow, now: u64) -> Option<NodeId> {
        if !self.accepting_new {
            return None;
        }
        let bucket = self.table.bucket_of(flow.src, flow.src_port);
        let before = self.table.get(bucket).map(|(n, _)| n);
        let id = self.table.route(bucket, &self.candidates, now)?;
        if before != Some(id) {
            if let (Some(changes), Ok(b)) = (self.changes.as_mut(), u32::try_from(bucket)) {
                changes.push((b, Some(id)));
            }
        }
        Some(id)
    }

    /// Buckets of nodes that are no longer alive, or no longer listed, are released at once
    /// so that their clients are spread over the survivors.
    fn set_nodes(&mut self, nodes: &[NodeEntry]) {
        for old in &self.candidates {
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
    }
}

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

impl SchedulerCore<BucketSchedule> {
    /// A single-scheduler core over `table` (usually empty, or restored from a snapshot) and
    /// `nodes`.
    pub fn new(params: CoreParams, nodes: Vec<NodeEntry>, table: BucketTable) -> Self {
        SchedulerCore::with_schedule(params, nodes, BucketSchedule::new(table))
    }

    /// Keep every assignment routing makes, for [`SchedulerCore::take_changes`] (the
    /// control plane replicates them to the standbys).
    pub fn record_changes(&mut self) {
        self.schedule.changes.get_or_insert_with(Vec::new);
    }

    /// The assignments made since the last call (empty unless recording).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.schedule
            .changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Allow (true) or hold (false) new assignments; see the field's comment.
    pub fn set_accepting_new(&mut self, accepting: bool) {
        self.schedule.accepting_new = accepting;
    }

    /// Adopt the control plane's replica, stamped `now` (a takeover's live-bucket merge).
    ///
    /// While new assignments are held (the merge is running) this core has routed nothing
    /// since the hold began, so the replica — the merge's result — replaces the mapping
    /// whole, releases included. Otherwise only buckets unassigned here are taken: on a
    /// conflict this core wins, as it routed the newer flow. Returns how many buckets changed.
    pub fn adopt(&mut self, snapshot: &BucketSnapshot, now: u64) -> usize {
        let s = &mut self.schedule;
        if snapshot.size != s.table.len() {
            return 0;
        }
        let mut n = 0;
        if !s.accepting_new {
            let mut want: Vec<Option<NodeId>> = vec![None; s.table.len()];
            for &(bucket, node) in &snapshot.assigned {
                if let Some(slot) = want.get_mut(bucket as usize) {
                    *slot = Some(node).filter(|n| !n.is_reserved());
                }
            }
            for (b, node) in want.into_iter().enumerate() {
                if s.table.get(b).map(|(n, _)| n) != node {
                    s.table.set(b, node, now);
                    n += 1;
                }
            }
            return n;
        }
        for &(bucket, node) in &snapshot.assigned {
            let b = bucket as usize;
            if s.table.get(b).is_none() && !node.is_reserved() {
                s.table.set(b, Some(node), now);
                n += 1;
            }
        }
        n
    }

    /// Periodic housekeeping: buckets idle longer than `idle` become unassigned, so a node
    /// that joined takes its share gradually without moving a live connection.
    /// Releases are recorded like assignments (see [`SchedulerCore::record_changes`]).
    pub fn tick(&mut self, now: u64, idle: u64) {
        let s = &mut self.schedule;
        // The merge decides what stays; releasing now could undo one of its answers.
        if !s.accepting_new {
            return;
        }
        let changes = &mut s.changes;
        let n = s.table.release_idle_each(now, idle, |bucket| {
            if let (Some(changes), Ok(b)) = (changes.as_mut(), u32::try_from(bucket)) {
                changes.push((b, None));
            }
        });
        self.counters.idle_released += n as u64;
    }

    /// The bucket table (for snapshots and status).
    pub fn table(&self) -> &BucketTable {
        &self.schedule.table
    }
}

impl<S: Schedule> SchedulerCore<S> {
    /// A core deciding with `schedule` after the mode-independent checks.
    pub fn with_schedule(params: CoreParams, nodes: Vec<NodeEntry>, schedule: S) -> Self {
        let mut core = SchedulerCore {
            params,
            nodes: Vec::new(),
            schedule,
            counters: Counters::default(),
        };
        core.set_nodes(nodes);
        core
    }

    /// Decides the fate of one frame and rewrites its MACs accordingly, in place:
    /// forwarded frames get the node's MAC as destination and ours as source; local frames
    /// get the local device's MAC as destination; dropped frames are left as they are.
    pub fn handle(&mut self, frame: &mut [u8], now: u64) -> Verdict {
        let (verdict, node) = self.decide(frame, now);
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
    fn decide(&mut self, frame: &[u8], now: u64) -> (Verdict, Option<NodeId>) {
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
        let Some(id) = self.schedule.schedule(&flow, now) else {
            return (Verdict::Drop(DropReason::NoNode), None);
        };
        if id == self.params.self_id {
            return (Verdict::Local, Some(id));
        }
        match self.nodes.iter().find(|n| n.id == id) {
            Some(n) => (Verdict::Forward { to: n.mac }, Some(id)),
            // The table only routes to listed candidates; an unknown id is a bug, not a panic.
            None => (Verdict::Drop(DropReason::NoNode), None),
        }
    }

    /// Replaces the node table (and tells the schedule, which releases what failed nodes
    /// held).
    pub fn set_nodes(&mut self, nodes: Vec<NodeEntry>) {
        self.schedule.set_nodes(&nodes);
        self.nodes = nodes;
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The node table.
    pub fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    /// The scheduling mode.
    pub fn schedule_ref(&self) -> &S {
        &self.schedule
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

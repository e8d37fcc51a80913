//! One node's control plane as a pure state machine: datagrams and timer ticks in, datagrams
//! and role/table/config events out.
//!
//! Owns: the glue between authentication (`crate::auth`), membership, election, replication,
//! config sync and node-status polling; sequence numbers; the announce, version-check and
//! poll timers. Driven by `handle_datagram(bytes, now)` and `handle_timeout(now)`, drained by
//! `poll_output()`, woken at `poll_timeout()` (STYLE habit 3).
//!
//! Must not: read the clock, touch a socket or spawn; every time is a `now` in ms since an
//! arbitrary epoch, the same for all calls of one node.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use pentaflow_balance::{BucketError, BucketSnapshot, NodeCandidate, NodeId};

use crate::auth::{ClusterKey, DropCounts, DropReason, ReplayGuard};
use crate::config_sync::{ConfigEvent, ConfigSync, ConfigSyncError, Validator};
use crate::membership::Membership;
use crate::replication::{Change, Outbox, Replication};
use crate::servers::ServerTables;
use crate::wire::{Destination, NodeStatus, Role, ServerRow};

mod inner;

/// Default announce interval (ms): 20 ID messages of ~100 bytes a second per node is nothing
/// on a LAN, and four of them fit in [`DEFAULT_DEAD_AFTER_MS`], so three lost in a row (or a
/// 150 ms stall of the sender) never fail a node.
pub const DEFAULT_INTERVAL_MS: u64 = 50;

/// Default failure detection time (ms). A crash is detected 150–200 ms after it (the last
/// announcement came up to one interval before), which leaves room in issue 5's 300 ms
/// failover goal for the takeover itself (~30 ms) and the router's ARP update.
pub const DEFAULT_DEAD_AFTER_MS: u64 = 200;

/// Default time (ms) a new scheduler waits for live-bucket answers before assigning anything
/// new: a round trip on a LAN is well under a millisecond; this covers loss and a busy node.
pub const DEFAULT_MERGE_DEADLINE_MS: u64 = 150;

/// How the node's timers are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Announce every this many ms.
    pub interval_ms: u64,
    /// A node silent this long is failed.
    pub dead_after_ms: u64,
    /// Takeover: wait at most this long for live-bucket answers.
    pub merge_deadline_ms: u64,
    /// Scheduler: broadcast its table version this often.
    pub version_check_ms: u64,
    /// Scheduler: poll one node's status this often (seed 002: one at a time); a poll not
    /// answered by the next slot is retried then.
    pub status_poll_ms: u64,
    /// Scheduler: polls a node may miss in a row after the first before it is failed by the
    /// poll (no new buckets, its buckets released) until it answers again.
    pub status_retries: u32,
}

/// Everything a node core needs to start.
#[derive(Clone, Debug)]
pub struct NodeParams {
    /// This node's id.
    pub id: NodeId,
    /// Election priority (0 = never scheduler).
    pub priority: u8,
    /// Weight for new buckets.
    pub weight: u32,
    /// Larger on every start of the process (the shell uses the wall clock in ms).
    pub incarnation: u64,
    /// The array's shared key.
    pub key: ClusterKey,
    /// Bucket table size (a power of two; every node must agree).
    pub table_size: usize,
    /// Timers.
    pub timing: Timing,
    /// Take the scheduler role from a lower-ranked scheduler (off by default: no flapping).
    pub preempt: bool,
    /// Nodes, this one included, a node must hear to take or keep the scheduler role: a
    /// majority of the configured nodes keeps a cut-off minority from electing a second
    /// scheduler (0 or 1: no quorum, as keepalived). See [`quorum_of`].
    pub quorum: u16,
}

/// The default quorum of an array of `nodes` configured nodes: a strict majority; 1 for one
/// or two nodes, where a majority would make every failure fatal (two nodes cannot tell a
/// dead peer from a cut cable, so, like keepalived, each serves alone — `[array] quorum = 2`
/// chooses safety instead).
#[must_use]
pub fn quorum_of(nodes: usize) -> u16 {
    if nodes <= 2 {
        1
    } else {
        u16::try_from(nodes / 2 + 1).unwrap_or(u16::MAX)
    }
}

/// What the core asks its shell to do or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send a sealed datagram.
    Send {
        /// Receiver(s).
        to: Destination,
        /// The bytes.
        datagram: Vec<u8>,
    },
    /// This node is now the scheduler: take the VIP (gratuitous ARP) and route with the
    /// table; assign nothing new until [`Output::AcceptingNew`].
    BecomeScheduler {
        /// Version of the table it starts from.
        table_version: u64,
    },
    /// The live-bucket merge is over: unassigned buckets may be assigned.
    AcceptingNew,
    /// This node is no longer the scheduler: release the VIP.
    StepDown {
        /// The scheduler it now follows.
        scheduler: Option<NodeId>,
    },
    /// A node was heard for the first time or again.
    NodeJoined(NodeId),
    /// A node failed (silent for `dead_after`, or restarted).
    NodeFailed(NodeId),
    /// The table (replica or authority) has a new version.
    TableChanged {
        /// The version.
        version: u64,
    },
    /// A config push/commit event.
    Config(ConfigEvent),
}

/// One node's control plane. See the module documentation.
#[derive(Debug)]
pub struct Node {
    params: NodeParams,
    role: Role,
    started: u64,
    /// Since when this node hears its quorum (`None`: it does not).
    quorate_since: Option<u64>,
    sequence: u64,
    guard: ReplayGuard,
    drops: DropCounts,
    members: Membership,
    repl: Replication,
    config: ConfigSync,
    enabled: bool,
    load: u16,
    live: Vec<u32>,
    status: NodeStatus,
    status_table: BTreeMap<NodeId, (NodeStatus, u64)>,
    /// This node's Web Server Status Table and, on the scheduler, every polled node's.
    servers: ServerTables,
    polls: u32,
    poll_cursor: Option<NodeId>,
    /// The poll in flight: `(node, poll id, attempts so far)`, until it is answered.
    outstanding: Option<(NodeId, u32, u32)>,
    /// Nodes that stopped answering polls while still announcing themselves.
    unresponsive: std::collections::BTreeSet<NodeId>,
    /// Scheduler: failed members whose buckets are released once a grace is over (see
    /// `release_failed`), with when they failed; they stay candidates meanwhile.
    releasing: BTreeMap<NodeId, u64>,
    last_sweep: Option<u64>,
    next_announce: u64,
    next_version_check: u64,
    next_poll: u64,
    last_tick: u64,
    published: u64,
    /// The data plane failed: until then this node announces (and elects with) priority 0,
    /// so another node takes the VIP instead of this one retrying a broken set-up.
    unfit_until: Option<u64>,
    /// Data-plane failures reported so far (for status pages).
    data_plane_failures: u64,
    outbox: Outbox,
    outputs: VecDeque<Output>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            interval_ms: DEFAULT_INTERVAL_MS,
            dead_after_ms: DEFAULT_DEAD_AFTER_MS,
            merge_deadline_ms: DEFAULT_MERGE_DEADLINE_MS,
            version_check_ms: 500,
            status_poll_ms: 200,
            status_retries: 2,
        }
    }
}

impl Node {
    /// A node starting at `now`, validating pushed configs with `validator`.
    pub fn new(params: NodeParams, validator: Validator, now: u64) -> Result<Self, BucketError> {
        let repl = Replication::new(params.table_size)?;
        Ok(Self {
            members: Membership::new(params.timing.dead_after_ms, params.timing.interval_ms),
            params,
            role: Role::Starting,
            started: now,
            quorate_since: None,
            sequence: 0,
            guard: ReplayGuard::default(),
            drops: DropCounts::default(),
            repl,
            config: ConfigSync::new(validator),
            enabled: true,
            load: 0,
            live: Vec::new(),
            status: NodeStatus::default(),
            status_table: BTreeMap::new(),
            servers: ServerTables::default(),
            polls: 0,
            poll_cursor: None,
            outstanding: None,
            unresponsive: std::collections::BTreeSet::new(),
            releasing: BTreeMap::new(),
            last_sweep: None,
            next_announce: now,
            next_version_check: now,
            next_poll: now,
            last_tick: now,
            published: 0,
            unfit_until: None,
            data_plane_failures: 0,
            outbox: Vec::new(),
            outputs: VecDeque::new(),
        })
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.params.id
    }

    /// Current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The scheduler as this node sees it (itself when it is the scheduler).
    #[must_use]
    pub fn scheduler(&self) -> Option<NodeId> {
        match self.role {
            Role::Scheduler => Some(self.params.id),
            _ => self.repl.following(),
        }
    }

    /// Whether this node is the scheduler and done merging live buckets.
    #[must_use]
    pub fn accepting_new(&self) -> bool {
        self.role == Role::Scheduler && !self.repl.is_merging()
    }

    /// Version of this node's table.
    #[must_use]
    pub fn table_version(&self) -> u64 {
        self.repl.version()
    }

    /// This node's table as an immutable snapshot (cheap when unchanged).
    pub fn snapshot(&mut self) -> Arc<BucketSnapshot> {
        self.repl.snapshot()
    }

    /// The node currently owning a bucket in this node's table.
    #[must_use]
    pub fn owner(&self, bucket: u32) -> Option<NodeId> {
        self.repl.table().get(bucket as usize).map(|(n, _)| n)
    }

    /// This node and the alive members, as candidates for new buckets.
    #[must_use]
    pub fn candidates(&self) -> Vec<NodeCandidate> {
        let me = NodeCandidate {
            id: self.params.id,
            weight: self.params.weight,
            enabled: self.enabled,
            alive: true,
        };
        // Failed members in their release grace keep their buckets (and stay eligible).
        let releasing = self.releasing.keys().filter_map(|id| {
            self.members.get(*id).map(|m| NodeCandidate {
                id: m.id,
                weight: m.announce.weight,
                enabled: m.announce.enabled,
                alive: true,
            })
        });
        std::iter::once(me)
            .chain(self.members.candidates())
            .chain(releasing)
            .map(|mut c| {
                // Failed by the status poll: alive to the election, not to the table.
                c.alive &= !self.unresponsive.contains(&c.id);
                c
            })
            .collect()
    }

    /// The table replica (for status pages and tests).
    #[must_use]
    pub fn replication(&self) -> &Replication {
        &self.repl
    }

    /// The membership epoch (see [`Membership::epoch`]).
    #[must_use]
    pub fn membership_epoch(&self) -> u64 {
        self.members.epoch()
    }

    /// The members as last heard.
    #[must_use]
    pub fn members(&self) -> &Membership {
        &self.members
    }

    /// Dropped datagrams per reason.
    #[must_use]
    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// Active config version.
    #[must_use]
    pub fn config_version(&self) -> u64 {
        self.config.version()
    }

    /// Active config text, if one was committed through the array.
    #[must_use]
    pub fn active_config(&self) -> Option<Arc<str>> {
        self.config.active()
    }

    /// Scheduler: the last status of each node and when it came, and the end of the last full
    /// sweep (seed 002's Node Status Table with its age).
    #[must_use]
    pub fn status_table(&self) -> (&BTreeMap<NodeId, (NodeStatus, u64)>, Option<u64>) {
        (&self.status_table, self.last_sweep)
    }

    /// Whether this node takes new buckets (false: drained).
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Scheduler: nodes failed by the status poll (announcing, but not answering polls).
    #[must_use]
    pub fn unresponsive(&self) -> &std::collections::BTreeSet<NodeId> {
        &self.unresponsive
    }

    /// This node's own status as it answers polls (its row of the Node Status Table).
    #[must_use]
    pub fn own_status(&self) -> NodeStatus {
        self.status
    }

    /// This node's Web Server Status Table and, on the scheduler, each polled node's latest
    /// complete one with when it came (for the Summary Web Server Status Table).
    #[must_use]
    pub fn server_tables(&self) -> &ServerTables {
        &self.servers
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Node::handle_timeout`] next (ms). Liveness is checked at a quarter of
    /// the announce interval, so detection is late by at most that.
    #[must_use]
    pub fn poll_timeout(&self) -> u64 {
        let tick = (self.params.timing.interval_ms / 4).max(1);
        self.next_announce.min(self.last_tick + tick)
    }

    /// Buckets of this node's live client connections (for a new scheduler's merge).
    pub fn set_live_buckets(&mut self, mut buckets: Vec<u32>) {
        buckets.sort_unstable();
        buckets.dedup();
        self.status.live_buckets = u32::try_from(buckets.len()).unwrap_or(u32::MAX);
        self.live = buckets;
    }

    /// This node's status for the scheduler's polls (live_buckets is filled in here).
    pub fn set_status(&mut self, status: NodeStatus, load: u16) {
        self.status = NodeStatus {
            live_buckets: self.status.live_buckets,
            ..status
        };
        self.load = load;
    }

    /// This node's Web Server Status Table (seed 002 Fig. 7), sent to the scheduler with each
    /// poll's answer. Rows beyond [`crate::wire::MAX_SERVER_ROWS`] are dropped and counted.
    pub fn set_server_status(&mut self, rows: Vec<ServerRow>) {
        self.servers.set_own(rows);
    }

    /// Apply what a committed configuration changed of this node's own parameters: election
    /// priority, weight, timers and preemption (id, key, incarnation and table size cannot
    /// change while running; the binary refuses such a configuration before it is pushed).
    /// Announces at once, so the others see the change within a round trip.
    pub fn reconfigure(
        &mut self,
        priority: u8,
        weight: u32,
        timing: Timing,
        preempt: bool,
        now: u64,
    ) {
        self.params.priority = priority;
        self.params.weight = weight;
        self.params.timing = timing;
        self.params.preempt = preempt;
        self.members
            .set_timing(timing.dead_after_ms, timing.interval_ms);
        self.next_announce = now;
        self.next_poll = self.next_poll.min(now + timing.status_poll_ms);
        self.elect(now);
        self.finish();
    }

    /// A new quorum (a committed configuration added or removed nodes, or changed
    /// `[array] quorum`); a scheduler that no longer has one steps down at once.
    pub fn set_quorum(&mut self, quorum: u16, now: u64) {
        self.params.quorum = quorum;
        self.elect(now);
        self.finish();
    }

    /// Nodes this node hears, itself included.
    #[must_use]
    pub fn heard_nodes(&self) -> usize {
        1 + self.members.alive().count()
    }

    /// Whether this node hears its quorum (see [`NodeParams::quorum`]).
    #[must_use]
    pub fn quorate(&self) -> bool {
        self.heard_nodes() >= usize::from(self.params.quorum)
    }

    /// The quorum in force.
    #[must_use]
    pub fn quorum(&self) -> u16 {
        self.params.quorum
    }

    /// Drain (false: keep buckets, get no new ones) or re-enable this node.
    pub fn set_enabled(&mut self, enabled: bool, now: u64) {
        self.enabled = enabled;
        self.next_announce = now;
    }

    /// Scheduler: record assignments made by the data plane and broadcast them at once.
    pub fn report_assignments(&mut self, changes: &[Change], now: u64) {
        if self.role == Role::Scheduler {
            self.repl.assign(changes, now);
        }
        self.finish();
    }

    /// This node's data plane could not start or died: for `hold_ms` it elects and announces
    /// with priority 0, so a scheduler steps down at once (another node takes the VIP) and a
    /// standby is not elected. After the hold-off its priority is back and, if no other
    /// scheduler is alive by then, it is elected again (the data plane is retried).
    pub fn data_plane_failed(&mut self, hold_ms: u64, now: u64) {
        self.data_plane_failures += 1;
        self.unfit_until = Some(now.saturating_add(hold_ms));
        self.next_announce = now;
        self.elect(now);
        self.finish();
    }

    /// Data-plane failures reported with [`Node::data_plane_failed`] since start.
    #[must_use]
    pub fn data_plane_failures(&self) -> u64 {
        self.data_plane_failures
    }

    /// Whether this node is in a data-plane hold-off at `now` (see
    /// [`Node::data_plane_failed`]).
    #[must_use]
    pub fn unfit(&self, now: u64) -> bool {
        self.unfit_until.is_some_and(|t| now < t)
    }

    /// The election priority in force: the configured one, 0 during a data-plane hold-off.
    fn effective_priority(&self, now: u64) -> u8 {
        if self.unfit(now) {
            0
        } else {
            self.params.priority
        }
    }

    /// Start a config push to every alive node; returns the proposal id.
    pub fn push_config(&mut self, text: &str, now: u64) -> Result<u64, ConfigSyncError> {
        let targets: Vec<NodeId> = self.members.alive().map(|m| m.id).collect();
        let newest = self
            .members
            .all()
            .map(|m| m.announce.config_version)
            .max()
            .unwrap_or(0);
        let r = self.config.push(
            self.params.id,
            text,
            newest,
            &targets,
            now,
            &mut self.outbox,
        );
        if r.is_ok() && targets.is_empty() {
            let id = r.as_ref().copied().unwrap_or(0);
            self.outputs
                .push_back(Output::Config(ConfigEvent::Ready { proposal: id }));
        }
        self.finish();
        r
    }

    /// Commit a proposal every alive node acked; returns the new version.
    pub fn commit_config(&mut self, proposal: u64, now: u64) -> Result<u64, ConfigSyncError> {
        let alive: Vec<NodeId> = self.members.alive().map(|m| m.id).collect();
        let mut events = Vec::new();
        let r = self
            .config
            .commit(proposal, &alive, now, &mut self.outbox, &mut events);
        self.config_events(events);
        self.next_announce = now;
        self.finish();
        r
    }

    /// A datagram from the network. Returns the authenticated sender if it was accepted
    /// (the shell learns the sender's address from it).
    pub fn handle_datagram(&mut self, bytes: &[u8], now: u64) -> Option<NodeId> {
        let env = match self.params.key.open(bytes) {
            Ok(env) => env,
            Err(e) => {
                self.drops.count(DropReason::of(&e));
                return None;
            }
        };
        let verdict = if env.from == self.params.id {
            Err(DropReason::OwnId)
        } else if matches!(env.to, Destination::Node(n) if n != self.params.id) {
            Err(DropReason::NotForUs)
        } else {
            self.guard.check(env.from, env.incarnation, env.sequence)
        };
        if let Err(reason) = verdict {
            self.drops.count(reason);
            return None;
        }
        let from = env.from;
        self.dispatch(env, now);
        self.elect(now);
        self.finish();
        Some(from)
    }

    /// Timers: announce, failure detection, repairs, polls, resends, deadlines.
    pub fn handle_timeout(&mut self, now: u64) {
        self.last_tick = now;
        let mut events = Vec::new();
        self.members.expire(now, &mut events);
        if self.role == Role::Scheduler && !self.quorate() {
            // Lost the majority: hand the VIP back before anything is released, so a
            // cut-off scheduler never routes the others' connections to itself.
            self.elect(now);
        }
        self.member_events(events, now);
        self.elect(now);
        self.release_failed(now);
        let alive = self.candidates();
        if self.repl.tick(now, &alive, &mut self.outbox) {
            self.outputs.push_back(Output::AcceptingNew);
        }
        if self.role == Role::Scheduler {
            self.scheduler_timers(now);
        }
        let alive_ids: Vec<NodeId> = self.members.alive().map(|m| m.id).collect();
        let laggards: Vec<NodeId> = self
            .members
            .alive()
            .filter(|m| m.announce.config_version < self.config.version())
            .map(|m| m.id)
            .collect();
        let mut cevents = Vec::new();
        self.config
            .tick(now, &alive_ids, &laggards, &mut self.outbox, &mut cevents);
        self.config_events(cevents);
        let versions: Vec<(NodeId, u64)> = self
            .members
            .alive()
            .map(|m| (m.id, m.announce.config_version))
            .collect();
        self.config
            .catch_up(self.params.id, &versions, now, &mut self.outbox);
        if now >= self.next_announce {
            self.announce(now);
        }
        self.finish();
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;

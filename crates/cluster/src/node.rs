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
use crate::election::{decide, Decision, Peer, Rank};
use crate::membership::{MemberEvent, Membership};
use crate::replication::{live_bucket_answer, Change, Outbox, Replication};
use crate::wire::{Announce, Destination, Envelope, Message, NodeStatus, Role};

/// Default announce interval (ms): 10 ID messages a second per node is nothing on a LAN and
/// lets a silence of 3 intervals detect a failure within [`DEFAULT_DEAD_AFTER_MS`].
pub const DEFAULT_INTERVAL_MS: u64 = 100;

/// Default failure detection time (ms), issue 5's 300 ms target.
pub const DEFAULT_DEAD_AFTER_MS: u64 = 300;

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
    /// Scheduler: poll one node's status this often (seed 002: one at a time).
    pub status_poll_ms: u64,
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
    polls: u32,
    poll_cursor: Option<NodeId>,
    last_sweep: Option<u64>,
    next_announce: u64,
    next_version_check: u64,
    next_poll: u64,
    last_tick: u64,
    published: u64,
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
        }
    }
}

impl Node {
    /// A node starting at `now`, validating pushed configs with `validator`.
    pub fn new(params: NodeParams, validator: Validator, now: u64) -> Result<Self, BucketError> {
        let repl = Replication::new(params.table_size)?;
        Ok(Self {
            members: Membership::new(params.timing.dead_after_ms),
            params,
            role: Role::Starting,
            started: now,
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
            polls: 0,
            poll_cursor: None,
            last_sweep: None,
            next_announce: now,
            next_version_check: now,
            next_poll: now,
            last_tick: now,
            published: 0,
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
        std::iter::once(me).chain(self.members.candidates()).collect()
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

    /// Scheduler: route a new flow of `bucket` in this core's table (sticky, else least
    /// assigned); `None` if not the scheduler, while merging (for buckets without a live
    /// owner) or if nobody is eligible.
    pub fn route(&mut self, bucket: u32, now: u64) -> Option<NodeId> {
        if self.role != Role::Scheduler {
            return None;
        }
        let nodes = self.candidates();
        let n = self.repl.route(bucket, &nodes, now);
        self.finish();
        n
    }

    /// Scheduler: unassign buckets idle longer than `idle_ms` (a new node enters gradually).
    pub fn release_idle(&mut self, idle_ms: u64, now: u64) {
        self.repl.release_idle(now, idle_ms);
        self.finish();
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
        let r = self
            .config
            .push(self.params.id, text, newest, &targets, now, &mut self.outbox);
        if r.is_ok() && targets.is_empty() {
            let id = r.as_ref().copied().unwrap_or(0);
            self.outputs.push_back(Output::Config(ConfigEvent::Ready { proposal: id }));
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
        self.member_events(events, now);
        self.elect(now);
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
        if now >= self.next_announce {
            self.announce(now);
        }
        self.finish();
    }

    fn scheduler_timers(&mut self, now: u64) {
        let t = self.params.timing;
        if now >= self.next_version_check {
            self.next_version_check = now + t.version_check_ms;
            let m = Message::VersionCheck {
                table_version: self.repl.version(),
                config_version: self.config.version(),
            };
            self.outbox.push((Destination::Broadcast, m));
        }
        if now >= self.next_poll {
            self.next_poll = now + t.status_poll_ms;
            let after = self.poll_cursor;
            let next = self
                .members
                .alive()
                .map(|m| m.id)
                .find(|&id| after.is_none_or(|a| id > a));
            match next {
                Some(id) => {
                    self.polls = self.polls.wrapping_add(1);
                    self.poll_cursor = Some(id);
                    let m = Message::NodeStatusQuery { poll: self.polls };
                    self.outbox.push((Destination::Node(id), m));
                }
                None => {
                    // A full round is over (or there is nobody to poll).
                    self.poll_cursor = None;
                    self.last_sweep = Some(now);
                }
            }
        }
    }

    fn announce(&mut self, now: u64) {
        self.next_announce = now + self.params.timing.interval_ms;
        let a = Announce {
            role: self.role,
            priority: self.params.priority,
            enabled: self.enabled,
            weight: self.params.weight,
            table_version: self.repl.version(),
            config_version: self.config.version(),
            load: self.load,
            following: self.scheduler(),
        };
        self.outbox.push((Destination::Broadcast, Message::Announce(a)));
    }

    fn dispatch(&mut self, env: Envelope, now: u64) {
        let from = env.from;
        let to_from = Destination::Node(from);
        if !matches!(env.message, Message::Announce(_)) {
            self.members.touch(from, env.incarnation, now);
        }
        match env.message {
            Message::Announce(a) => {
                let mut events = Vec::new();
                self.members.heard(from, env.incarnation, a, now, &mut events);
                self.member_events(events, now);
            }
            Message::TableSnapshotRequest { have } => self.repl.on_request(from, have, &mut self.outbox),
            Message::TableSnapshot {
                version,
                size,
                start,
                nodes,
            } => self.repl.on_snapshot(from, (version, size, start), nodes, now),
            Message::TableDelta {
                base,
                version,
                changes,
            } => self.repl.on_delta(from, base, version, changes, now),
            Message::VersionCheck { table_version, .. } => {
                self.repl
                    .on_version_check(from, table_version, now, &mut self.outbox);
            }
            Message::LiveBucketsQuery { query } => {
                for m in live_bucket_answer(query, &self.live) {
                    self.outbox.push((to_from, m));
                }
            }
            Message::LiveBuckets {
                query,
                chunk,
                chunks,
                buckets,
            } => {
                let alive = self.candidates();
                let done = self.repl.on_live_buckets(
                    from,
                    (query, chunk, chunks),
                    &buckets,
                    &alive,
                    now,
                    &mut self.outbox,
                );
                if done {
                    self.outputs.push_back(Output::AcceptingNew);
                }
            }
            Message::ConfigPush {
                proposal,
                version,
                total,
                offset,
                bytes,
            } => self
                .config
                .on_push(from, (proposal, version, total, offset), &bytes, &mut self.outbox),
            Message::ConfigCommit { proposal, version } => {
                let mut events = Vec::new();
                self.config.on_commit(proposal, version, &mut events);
                if !events.is_empty() {
                    self.next_announce = now;
                }
                self.config_events(events);
            }
            Message::ConfigAck { proposal, verdict } => {
                let mut events = Vec::new();
                self.config.on_ack(from, proposal, verdict, &mut events);
                self.config_events(events);
            }
            Message::NodeStatusQuery { poll } => {
                let m = Message::NodeStatus {
                    poll,
                    status: self.status,
                };
                self.outbox.push((to_from, m));
            }
            Message::NodeStatus { status, .. } => {
                self.status_table.insert(from, (status, now));
            }
        }
    }

    fn member_events(&mut self, events: Vec<MemberEvent>, now: u64) {
        for e in events {
            match e {
                MemberEvent::Joined(n) => self.outputs.push_back(Output::NodeJoined(n)),
                MemberEvent::Failed(n) => {
                    if self.role == Role::Scheduler {
                        self.repl.forget_waiting(n);
                        self.repl.release_node(n, now);
                    }
                    self.status_table.remove(&n);
                    self.outputs.push_back(Output::NodeFailed(n));
                }
            }
        }
    }

    fn config_events(&mut self, events: Vec<ConfigEvent>) {
        self.outputs.extend(events.into_iter().map(Output::Config));
    }

    /// Re-run the election over what this node knows and act on the decision.
    fn elect(&mut self, now: u64) {
        let me = Rank {
            priority: self.params.priority,
            id: self.params.id,
        };
        let peers: Vec<Peer> = self
            .members
            .alive()
            .map(|m| Peer {
                rank: Rank {
                    priority: m.announce.priority,
                    id: m.id,
                },
                role: m.announce.role,
            })
            .collect();
        let settled = now.saturating_sub(self.started) >= self.params.timing.dead_after_ms;
        match decide(me, self.role, settled, &peers, self.params.preempt) {
            Decision::Stay => {}
            Decision::BecomeScheduler => {
                self.role = Role::Scheduler;
                let others: Vec<NodeId> = peers.iter().map(|p| p.rank.id).collect();
                let deadline = self.params.timing.merge_deadline_ms;
                let deadline = if others.is_empty() { 0 } else { deadline };
                self.repl
                    .take_over(self.params.id, &others, &self.live, now, deadline, &mut self.outbox);
                self.outputs.push_back(Output::BecomeScheduler {
                    table_version: self.repl.version(),
                });
                self.next_version_check = now;
                self.announce(now);
                let alive = self.candidates();
                if self.repl.tick(now, &alive, &mut self.outbox) {
                    self.outputs.push_back(Output::AcceptingNew);
                }
            }
            Decision::Follow(s) => {
                if self.role == Role::Scheduler {
                    self.outputs.push_back(Output::StepDown { scheduler: s });
                    self.role = Role::Standby;
                    self.repl.follow(s, now, &mut self.outbox);
                    self.announce(now);
                    return;
                }
                if self.role == Role::Starting {
                    self.role = Role::Standby;
                }
                if s != self.repl.following() {
                    self.repl.follow(s, now, &mut self.outbox);
                }
            }
        }
    }

    /// Flush table changes, seal queued messages, report a new table version.
    fn finish(&mut self) {
        if self.role == Role::Scheduler {
            self.repl.flush(&mut self.outbox);
        }
        for (to, message) in std::mem::take(&mut self.outbox) {
            self.sequence += 1;
            let env = Envelope {
                from: self.params.id,
                to,
                incarnation: self.params.incarnation,
                sequence: self.sequence,
                message,
            };
            match self.params.key.seal(&env) {
                Ok(datagram) => self.outputs.push_back(Output::Send { to, datagram }),
                // Chunk sizes make this unreachable; a bug here must not take the node down.
                Err(e) => tracing::error!(error = %e, "control message not sent"),
            }
        }
        if self.repl.version() != self.published {
            self.published = self.repl.version();
            self.outputs.push_back(Output::TableChanged {
                version: self.published,
            });
        }
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;

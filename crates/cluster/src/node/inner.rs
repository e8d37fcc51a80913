//! The inside of a [`Node`]: message dispatch, membership events, the election step, timers
//! of the scheduler, and `finish` (flush deltas, seal datagrams, report a new table version).
//!
//! Must not: be called from outside `node` — the public API is in the parent module.

use pentaflow_balance::NodeId;

use super::{Node, Output};
use crate::config_sync::ConfigEvent;
use crate::election::{decide, Decision, Peer, Rank};
use crate::membership::MemberEvent;
use crate::replication::live_bucket_answer;
use crate::servers::server_status_answer;
use crate::wire::{Announce, Destination, Envelope, Message, Role};

impl Node {
    pub(super) fn scheduler_timers(&mut self, now: u64) {
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
            if let Some((id, _, attempts)) = self.outstanding {
                let alive = self.members.alive().any(|m| m.id == id);
                let allowed = self.members.poll_attempts(id, t.status_retries);
                if alive && attempts < allowed {
                    // Seed 002: retry the same node after the configured delay.
                    self.send_poll(id, attempts + 1);
                    return;
                }
                self.outstanding = None;
                if alive && self.unresponsive.insert(id) {
                    tracing::warn!(node = id.0, attempts, "node failed by the status poll");
                    self.repl.release_node(id, now);
                    self.outputs.push_back(Output::NodeFailed(id));
                }
            }
            let after = self.poll_cursor;
            let next = self
                .members
                .alive()
                .map(|m| m.id)
                .find(|&id| after.is_none_or(|a| id > a));
            match next {
                Some(id) => {
                    self.poll_cursor = Some(id);
                    self.send_poll(id, 1);
                }
                None => {
                    // A full round is over (or there is nobody to poll).
                    self.poll_cursor = None;
                    self.last_sweep = Some(now);
                }
            }
        }
    }

    fn send_poll(&mut self, id: NodeId, attempt: u32) {
        self.polls = self.polls.wrapping_add(1);
        self.outstanding = Some((id, self.polls, attempt));
        let m = Message::NodeStatusQuery { poll: self.polls };
        self.outbox.push((Destination::Node(id), m));
    }

    pub(super) fn announce(&mut self, now: u64) {
        self.next_announce = now + self.params.timing.interval_ms;
        let a = Announce {
            role: self.role,
            priority: self.effective_priority(now),
            enabled: self.enabled,
            weight: self.params.weight,
            table_version: self.repl.version(),
            config_version: self.config.version(),
            load: self.load,
            following: self.scheduler(),
            heard: self.members.heard_list(now),
        };
        self.outbox
            .push((Destination::Broadcast, Message::Announce(a)));
    }

    pub(super) fn dispatch(&mut self, env: Envelope, now: u64) {
        let from = env.from;
        let to_from = Destination::Node(from);
        if !matches!(env.message, Message::Announce(_)) {
            self.members.touch(from, env.incarnation, now);
        }
        match env.message {
            Message::Announce(a) => {
                let mut events = Vec::new();
                let heard = a.heard.clone();
                self.members
                    .heard(from, env.incarnation, a, now, &mut events);
                self.members.vouch(self.params.id, from, &heard, now);
                self.member_events(events, now);
            }
            Message::TableSnapshotRequest { have } => {
                self.repl.on_request(from, have, &mut self.outbox)
            }
            Message::TableSnapshot {
                version,
                size,
                start,
                nodes,
            } => self
                .repl
                .on_snapshot(from, (version, size, start), nodes, now),
            Message::TableDelta {
                base,
                version,
                changes,
            } => self.repl.on_delta(from, base, version, changes, now),
            Message::VersionCheck { table_version, .. } => {
                self.repl.on_version_check(from, table_version, now);
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
            } => self.config.on_push(
                from,
                (proposal, version, total, offset),
                &bytes,
                &mut self.outbox,
            ),
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
                // Right behind it, this node's Web Server Status Table for the summary.
                for m in server_status_answer(poll, self.servers.own()) {
                    self.outbox.push((to_from, m));
                }
            }
            Message::NodeStatus { status, .. } => {
                // Any answer of this node's counts (a retry's answer may overtake the first).
                if self.outstanding.is_some_and(|(id, _, _)| id == from) {
                    self.outstanding = None;
                }
                if self.unresponsive.remove(&from) {
                    tracing::info!(node = from.0, "node answers the status poll again");
                    self.outputs.push_back(Output::NodeJoined(from));
                }
                self.status_table.insert(from, (status, now));
            }
            Message::ServerStatus {
                poll,
                chunk,
                chunks,
                rows,
            } => self
                .servers
                .on_chunk(from, (poll, chunk, chunks), rows, now),
        }
    }

    pub(super) fn member_events(&mut self, events: Vec<MemberEvent>, now: u64) {
        for e in events {
            match e {
                MemberEvent::Joined(n) => {
                    self.releasing.remove(&n);
                    self.outputs.push_back(Output::NodeJoined(n));
                }
                MemberEvent::Failed(n) => {
                    if self.role == Role::Scheduler {
                        self.repl.forget_waiting(n);
                        if self.members.is_alive(n) {
                            // A restart (a new incarnation): its connections are gone.
                            self.repl.release_node(n, now);
                        } else {
                            // Released after the grace (see `release_failed`), if still the
                            // scheduler then.
                            self.releasing.insert(n, now);
                        }
                    }
                    self.status_table.remove(&n);
                    self.servers.forget(n);
                    self.unresponsive.remove(&n);
                    if self.outstanding.is_some_and(|(id, _, _)| id == n) {
                        self.outstanding = None;
                    }
                    self.outputs.push_back(Output::NodeFailed(n));
                }
            }
        }
    }

    /// Scheduler: release the buckets of members failed at least a grace ago. The grace
    /// (an announcement interval and a tick) lets a scheduler cut off from the array notice
    /// that it lost the quorum — its peers' silences end within a tick or two of each other —
    /// and step down before it routes anyone's connections to itself.
    pub(super) fn release_failed(&mut self, now: u64) {
        if self.role != Role::Scheduler {
            self.releasing.clear();
            return;
        }
        let t = self.params.timing;
        let grace = t.interval_ms + (t.interval_ms / 4).max(1);
        let due: Vec<NodeId> = self
            .releasing
            .iter()
            .filter(|&(_, &at)| now.saturating_sub(at) >= grace)
            .map(|(&n, _)| n)
            .collect();
        for n in due {
            self.releasing.remove(&n);
            self.repl.release_node(n, now);
        }
    }

    pub(super) fn config_events(&mut self, events: Vec<ConfigEvent>) {
        self.outputs.extend(events.into_iter().map(Output::Config));
    }

    /// Re-run the election over what this node knows and act on the decision.
    pub(super) fn elect(&mut self, now: u64) {
        let me = Rank {
            priority: self.effective_priority(now),
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
                following: m.announce.following,
            })
            .collect();
        let quorate = self.quorate();
        let (heard, quorum) = (self.heard_nodes(), self.params.quorum);
        if !quorate {
            if self.quorate_since.take().is_some() || self.role == Role::Scheduler {
                tracing::warn!(
                    heard,
                    quorum,
                    role = ?self.role,
                    "no quorum: this node hears too few nodes to take or keep the VIP"
                );
            }
        } else if self.quorate_since.is_none() {
            self.quorate_since = Some(now);
            if now > self.started {
                tracing::info!(heard, quorum, "quorum (re)gained");
            }
        }
        // Listened for `dead_after` since the start and since the quorum was (re)gained.
        let dead_after = self.params.timing.dead_after_ms;
        let settled = now.saturating_sub(self.started) >= dead_after
            && self
                .quorate_since
                .is_some_and(|t| now.saturating_sub(t) >= dead_after);
        match decide(me, self.role, settled, quorate, &peers, self.params.preempt) {
            Decision::Stay => {}
            Decision::BecomeScheduler => {
                self.role = Role::Scheduler;
                let others: Vec<NodeId> = peers.iter().map(|p| p.rank.id).collect();
                let deadline = self.params.timing.merge_deadline_ms;
                let deadline = if others.is_empty() { 0 } else { deadline };
                self.repl.take_over(
                    self.params.id,
                    &others,
                    &self.live,
                    now,
                    deadline,
                    &mut self.outbox,
                );
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
    pub(super) fn finish(&mut self) {
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

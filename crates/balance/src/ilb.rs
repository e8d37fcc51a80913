//! One individual load balancer (ILB) of an active-active array (seed 004): what a node
//! decides for every inbound TCP segment when an upstream router spreads the VIP's traffic
//! over all nodes, and what it must tell the others.
//!
//! Owns: this node's lookup table of owned connections ([`Association`]s it owns or backs up:
//! claims 10–11), its bounded cache of associations learned from others (claim 12), the
//! half-open connections it owns (kept local and bounded: nothing is replicated before the
//! handshake completes), and the decisions of claims 13–15 and 17–18 as a pure state
//! machine: segments, announcements from peers, membership changes and `now` in, a
//! [`Verdict`] per segment and [`Announcement`]s out.
//!
//! Must not: do I/O, read a clock, or depend on anything two nodes could disagree on when
//! computing an owner (that is [`crate::owner`]). Nor may a segment loop: a segment handed
//! from node to node is tagged with why ([`Arrival`]), and a hand-off is never handed off
//! again, so any segment is served or dropped after at most three hops (router → any node →
//! owner → backup).
//!
//! How segments move (the data plane carries the tag, e.g. as a reserved VLAN id, because a
//! segment to be *served* and a segment to be *decided* both arrive at a node's own MAC):
//!
//! | arrival | this node is | has an entry | verdict |
//! |---|---|---|---|
//! | router | owner, SYN | no | choose the serving node (weighted least connections), keep it half-open, [`Verdict::Serve`] |
//! | router | not owner, SYN | (cache) | [`Verdict::HandOff`] to the owner |
//! | router or hand-off | owner or backup | yes | serve by the entry; the first ACK makes a half-open entry established and announces it |
//! | router | neither | cache hit | serve by the cache |
//! | router | neither | no | hand off to the owner (claim 15) |
//! | hand-off | owner | no, membership just changed | [`Verdict::SecondChance`] to the backup (it held the entry before the change) |
//! | hand-off | owner | no, settled | choose statelessly and record (the entry was lost, or the SYN came in a flood) |
//! | second chance | — | no | drop, counted |
//!
//! FIN and RST end an association everywhere ([`Announcement::Ended`]); idle ones expire.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::bucket::{NodeCandidate, NodeId};
use crate::candidate::{BackendId, Candidate};
use crate::owner::{owners, score, ConnectionId};
use crate::policy::least_connections;

/// Bounds and timers of one ILB (time in the caller's monotonic unit, as `now`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IlbLimits {
    /// Established associations this node may own or back up.
    pub associations: usize,
    /// Half-open connections (SYN seen, handshake not completed) this node may own; past it a
    /// SYN is served by the stateless choice and nothing is kept (a SYN flood costs no memory).
    pub half_open: usize,
    /// Associations cached from other nodes' announcements.
    pub cache: usize,
    /// An established association not seen for this long is forgotten.
    pub idle: u64,
    /// A half-open connection whose handshake did not complete in this time is forgotten.
    pub handshake: u64,
    /// After FIN or RST an association lingers this long (the last ACKs still flow).
    pub linger: u64,
    /// For this long after a membership change, a new owner without an entry gives the
    /// backup a second chance instead of choosing anew (transfer tables are on their way).
    pub join_grace: u64,
}

impl Default for IlbLimits {
    /// In milliseconds: 1 M associations, 64 Ki half-open, 256 Ki cached; idle 15 min,
    /// handshake 5 s, linger 2 s, join grace 2 s.
    fn default() -> Self {
        IlbLimits {
            associations: 1 << 20,
            half_open: 1 << 16,
            cache: 1 << 18,
            idle: 15 * 60 * 1000,
            handshake: 5_000,
            linger: 2_000,
            join_grace: 2_000,
        }
    }
}

/// How a segment reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// From the upstream router (ECMP chose this node).
    Router,
    /// Handed off by a node that is not the owner (or has no entry): decide as owner.
    HandOff,
    /// The owner had no entry just after a membership change and asks the backup.
    SecondChance,
}

/// What the data plane does with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it, untagged, to this node's proxy (the node may be this one).
    Serve(NodeId),
    /// Tag it as a hand-off and send it to this owner.
    HandOff(NodeId),
    /// Tag it as a second chance and send it to this backup.
    SecondChance(NodeId),
    /// Drop it.
    Drop(IlbDrop),
}

/// Why a segment was dropped (each is counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IlbDrop {
    /// No node is alive and enabled to serve a new connection.
    NoServer,
    /// A second-chance segment found no entry here either.
    Unknown,
    /// The association table is full.
    TableFull,
}

/// Held association: who serves a connection, who owns it and who backs it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Association {
    /// The node whose proxy terminates the connection.
    pub serving: NodeId,
    /// Its owner when this entry was last (re)computed.
    pub owner: NodeId,
    /// Its backup owner then (`None` with a single node).
    pub backup: Option<NodeId>,
    /// Last time a segment of it was seen here (or the entry arrived).
    pub last_seen: u64,
    /// When FIN or RST was seen: the entry then expires after `linger`.
    pub ended_at: Option<u64>,
}

/// What this node must tell others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// A connection's handshake completed: its owner tells the backup (the full record) and
    /// everyone else may cache it (claim 13, sent once the handshake completes rather than on
    /// the SYN, so a SYN flood is not multiplied by the number of nodes).
    Associated {
        /// The connection.
        conn: ConnectionId,
        /// The association.
        association: Association,
    },
    /// FIN or RST: every node forgets it (claim 14).
    Ended {
        /// The connection.
        conn: ConnectionId,
    },
    /// The associations `to` now owns or backs up after a membership change (claims 17–18).
    Transfer {
        /// The receiving node.
        to: NodeId,
        /// What it now holds.
        entries: Vec<(ConnectionId, Association)>,
    },
}

/// Counters of one ILB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IlbCounters {
    /// Segments served by an owned or backed-up entry.
    pub served_by_table: u64,
    /// Segments served by the cache.
    pub served_by_cache: u64,
    /// New connections this node chose a server for.
    pub chosen: u64,
    /// Of those, chosen statelessly (half-open table full, or an entry lost).
    pub chosen_stateless: u64,
    /// Segments handed off to an owner.
    pub handed_off: u64,
    /// Segments given a second chance at a backup.
    pub second_chances: u64,
    /// Drops by reason.
    pub dropped: HashMap<IlbDrop, u64>,
    /// Entries received in transfer tables.
    pub transferred_in: u64,
    /// Entries sent in transfer tables.
    pub transferred_out: u64,
    /// Entries expired (idle, handshake timeout, linger).
    pub expired: u64,
}

/// One ILB: see the module documentation.
pub struct Ilb {
    me: NodeId,
    limits: IlbLimits,
    /// Alive members (this node included), sorted by id.
    members: Vec<NodeCandidate>,
    member_ids: Vec<NodeId>,
    /// Established associations this node owns or backs up (the LTOC).
    table: HashMap<ConnectionId, Association>,
    /// Half-open connections this node owns: serving node and when the SYN came.
    half_open: HashMap<ConnectionId, (NodeId, u64)>,
    /// Associations learned from others: connection → serving node.
    cache: LruCache<ConnectionId, NodeId>,
    /// Connections per serving node among the entries this node owns (for least connections).
    owned_per_server: HashMap<NodeId, u32>,
    /// Until when a new owner without an entry gives the backup a second chance.
    grace_until: u64,
    /// Rotates among equally loaded servers.
    tiebreak: u64,
    out: Vec<Announcement>,
    counters: IlbCounters,
}

impl Ilb {
    /// ILB `me` of an array whose alive members are `members` (this node among them).
    #[must_use]
    pub fn new(me: NodeId, members: &[NodeCandidate], limits: IlbLimits) -> Self {
        let cache = NonZeroUsize::new(limits.cache.max(1)).unwrap_or(NonZeroUsize::MIN);
        let mut ilb = Ilb {
            me,
            limits,
            members: Vec::new(),
            member_ids: Vec::new(),
            table: HashMap::new(),
            half_open: HashMap::new(),
            cache: LruCache::new(cache),
            owned_per_server: HashMap::new(),
            grace_until: 0,
            tiebreak: 0,
            out: Vec::new(),
            counters: IlbCounters::default(),
        };
        ilb.set_alive(members);
        ilb
    }

    /// This node's counters.
    #[must_use]
    pub fn counters(&self) -> &IlbCounters {
        &self.counters
    }

    /// Associations owned or backed up here, half-open ones, and cached ones.
    #[must_use]
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.table.len(), self.half_open.len(), self.cache.len())
    }

    /// The association held here (owned or backed up) for `conn`.
    #[must_use]
    pub fn held(&self, conn: &ConnectionId) -> Option<&Association> {
        self.table.get(conn)
    }

    /// Announcements made since the last call, for the control plane to send.
    pub fn take_announcements(&mut self) -> Vec<Announcement> {
        std::mem::take(&mut self.out)
    }

    fn roles(&self, conn: &ConnectionId) -> (Option<NodeId>, Option<NodeId>) {
        let (o, b) = owners(conn, &self.member_ids);
        (o.map(|o| o.node), b.map(|b| b.node))
    }

    fn drop(&mut self, why: IlbDrop) -> Verdict {
        *self.counters.dropped.entry(why).or_default() += 1;
        Verdict::Drop(why)
    }

    /// Decides one TCP segment of `conn`: `syn` is an initial SYN (no ACK), `ends` a FIN or RST.
    pub fn segment(
        &mut self,
        conn: ConnectionId,
        syn: bool,
        ends: bool,
        arrival: Arrival,
        now: u64,
    ) -> Verdict {
        let (owner, backup) = self.roles(&conn);
        let Some(owner) = owner else {
            return self.drop(IlbDrop::NoServer);
        };
        // An established entry serves whoever we are: an old owner keeps serving until its
        // transfer is done, a backup serves for a failed owner.
        if let Some(entry) = self.table.get_mut(&conn) {
            entry.last_seen = now;
            let serving = entry.serving;
            if ends && entry.ended_at.is_none() {
                entry.ended_at = Some(now);
                self.out.push(Announcement::Ended { conn });
            }
            self.counters.served_by_table += 1;
            return Verdict::Serve(serving);
        }
        if owner == self.me {
            if let Some(&(serving, _)) = self.half_open.get(&conn) {
                if !syn {
                    // The handshake's first ACK (or any later segment): established now.
                    self.half_open.remove(&conn);
                    self.establish(conn, serving, backup, now, ends, true);
                }
                self.counters.served_by_table += 1;
                return Verdict::Serve(serving);
            }
            if syn {
                return self.choose_new(conn, now);
            }
            return match arrival {
                Arrival::SecondChance => self.drop(IlbDrop::Unknown),
                _ if now < self.grace_until && backup.is_some_and(|b| b != self.me) => {
                    self.counters.second_chances += 1;
                    Verdict::SecondChance(backup.unwrap_or(owner))
                }
                _ => {
                    // Lost, or chosen statelessly in a flood: the stateless choice is the one
                    // a flood's SYN got, and anything else is better than a reset.
                    let Some(serving) = self.stateless_choice(&conn) else {
                        return self.drop(IlbDrop::NoServer);
                    };
                    self.counters.chosen_stateless += 1;
                    self.establish(conn, serving, backup, now, ends, false);
                    Verdict::Serve(serving)
                }
            };
        }
        if arrival == Arrival::SecondChance {
            return self.drop(IlbDrop::Unknown);
        }
        if !syn {
            if let Some(&serving) = self.cache.get(&conn) {
                if ends {
                    self.cache.pop(&conn);
                    self.out.push(Announcement::Ended { conn });
                }
                self.counters.served_by_cache += 1;
                return Verdict::Serve(serving);
            }
        }
        if arrival == Arrival::HandOff {
            // Our view and the sender's differ (a membership change in flight): a hand-off is
            // never handed off again; decide as the owner would, statelessly.
            let Some(serving) = self.stateless_choice(&conn) else {
                return self.drop(IlbDrop::NoServer);
            };
            self.counters.chosen_stateless += 1;
            return Verdict::Serve(serving);
        }
        self.counters.handed_off += 1;
        Verdict::HandOff(owner)
    }

    /// A SYN this node owns: weighted least connections over the alive, enabled nodes,
    /// kept half-open (locally, bounded) until the handshake completes.
    fn choose_new(&mut self, conn: ConnectionId, now: u64) -> Verdict {
        if self.half_open.len() >= self.limits.half_open {
            let Some(serving) = self.stateless_choice(&conn) else {
                return self.drop(IlbDrop::NoServer);
            };
            self.counters.chosen_stateless += 1;
            return Verdict::Serve(serving);
        }
        let candidates: Vec<Candidate> = self
            .members
            .iter()
            .map(|m| Candidate {
                id: BackendId(u64::from(m.id.0)),
                weight: m.weight,
                available: m.enabled && m.weight > 0,
                active: self.owned_per_server.get(&m.id).copied().unwrap_or(0),
            })
            .collect();
        self.tiebreak = self.tiebreak.wrapping_add(1);
        let Some(i) = least_connections(&candidates, self.tiebreak) else {
            return self.drop(IlbDrop::NoServer);
        };
        let serving = self.members[i].id;
        self.half_open.insert(conn, (serving, now));
        *self.owned_per_server.entry(serving).or_default() += 1;
        self.counters.chosen += 1;
        Verdict::Serve(serving)
    }

    /// The serving node every node computes alike from the connection and the members alone
    /// (highest score with the node id's top bit set, so it is independent of ownership, over
    /// nodes that take new connections); unweighted, as integer-only rendezvous must be.
    fn stateless_choice(&self, conn: &ConnectionId) -> Option<NodeId> {
        self.members
            .iter()
            .filter(|m| m.enabled && m.weight > 0)
            .max_by_key(|m| {
                (
                    score(NodeId(m.id.0 | 0x8000), conn),
                    std::cmp::Reverse(m.id),
                )
            })
            .map(|m| m.id)
    }

    /// An owned connection whose handshake completed: kept, and announced. `counted`: its
    /// server's load already counts it (it was half-open here).
    fn establish(
        &mut self,
        conn: ConnectionId,
        serving: NodeId,
        backup: Option<NodeId>,
        now: u64,
        ends: bool,
        counted: bool,
    ) {
        if self.table.len() >= self.limits.associations {
            self.release_idle(now);
            if self.table.len() >= self.limits.associations {
                *self.counters.dropped.entry(IlbDrop::TableFull).or_default() += 1;
                if counted {
                    self.uncount(serving);
                }
                return;
            }
        }
        let association = Association {
            serving,
            owner: self.me,
            backup,
            last_seen: now,
            ended_at: ends.then_some(now),
        };
        if !counted {
            *self.owned_per_server.entry(serving).or_default() += 1;
        }
        self.table.insert(conn, association);
        self.out
            .push(Announcement::Associated { conn, association });
        if ends {
            self.out.push(Announcement::Ended { conn });
        }
    }

    /// An announcement from another node.
    pub fn receive(&mut self, announcement: Announcement, now: u64) {
        match announcement {
            Announcement::Associated { conn, association } => {
                let (owner, backup) = self.roles(&conn);
                if owner == Some(self.me) || backup == Some(self.me) {
                    self.hold(conn, association, now);
                } else {
                    self.cache.put(conn, association.serving);
                }
            }
            Announcement::Ended { conn } => {
                if let Some(entry) = self.table.get_mut(&conn) {
                    entry.ended_at.get_or_insert(now);
                }
                self.cache.pop(&conn);
            }
            Announcement::Transfer { to, entries } => {
                if to != self.me {
                    return;
                }
                for (conn, association) in entries {
                    self.counters.transferred_in += 1;
                    self.hold(conn, association, now);
                }
            }
        }
    }

    /// Keeps `association` in the table (from the owner, or a transfer), with the roles of
    /// the current members.
    fn hold(&mut self, conn: ConnectionId, association: Association, now: u64) {
        if !self.alive(association.serving) {
            return; // its server is gone: the connection is dead
        }
        if self.table.len() >= self.limits.associations && !self.table.contains_key(&conn) {
            *self.counters.dropped.entry(IlbDrop::TableFull).or_default() += 1;
            return;
        }
        let (owner, backup) = self.roles(&conn);
        let entry = Association {
            owner: owner.unwrap_or(association.owner),
            backup,
            last_seen: now,
            ..association
        };
        if owner == Some(self.me) && self.table.get(&conn).is_none_or(|e| e.owner != self.me) {
            *self.owned_per_server.entry(entry.serving).or_default() += 1;
        }
        self.table.insert(conn, entry);
    }

    fn uncount(&mut self, serving: NodeId) {
        if let Some(n) = self.owned_per_server.get_mut(&serving) {
            *n = n.saturating_sub(1);
        }
    }

    fn alive(&self, node: NodeId) -> bool {
        self.member_ids.binary_search(&node).is_ok()
    }

    /// The alive members changed (claims 17–18): every held association gets its owner and
    /// backup recomputed; what another node now owns or backs up is sent to it in a transfer
    /// table; entries of connections served by a node that left are dropped (the connection
    /// died with it); entries this node no longer holds move to its cache, so segments ECMP
    /// still sends here keep going straight to their server.
    pub fn set_members(&mut self, members: &[NodeCandidate], now: u64) {
        let before = self.member_ids.clone();
        self.set_alive(members);
        if before == self.member_ids {
            return;
        }
        self.grace_until = now.saturating_add(self.limits.join_grace);
        let mut transfers: HashMap<NodeId, Vec<(ConnectionId, Association)>> = HashMap::new();
        let mut keep = HashMap::with_capacity(self.table.len());
        let mut owned: HashMap<NodeId, u32> = HashMap::new();
        for (conn, entry) in self.table.drain() {
            if self.member_ids.binary_search(&entry.serving).is_err() {
                continue;
            }
            let (o, b) = owners(&conn, &self.member_ids);
            let (owner, backup) = (o.map(|o| o.node), b.map(|b| b.node));
            let Some(owner) = owner else { continue };
            let updated = Association {
                owner,
                backup,
                ..entry
            };
            // Whoever holds it newly gets it from the node that held it as owner before (or,
            // if that node left, from the backup that held it).
            let was_sender = entry.owner == self.me
                || (entry.backup == Some(self.me) && !self.member_ids.contains(&entry.owner));
            if was_sender {
                for holder in [Some(owner), backup].into_iter().flatten() {
                    let had = holder == entry.owner || Some(holder) == entry.backup;
                    if holder != self.me && !had {
                        transfers.entry(holder).or_default().push((conn, updated));
                    }
                }
            }
            if owner == self.me || backup == Some(self.me) {
                if owner == self.me {
                    *owned.entry(updated.serving).or_default() += 1;
                }
                keep.insert(conn, updated);
            } else {
                self.cache.put(conn, updated.serving);
            }
        }
        self.table = keep;
        self.owned_per_server = owned;
        // Half-open connections stay with us until their handshake completes or times out.
        for &(serving, _) in self.half_open.values() {
            *self.owned_per_server.entry(serving).or_default() += 1;
        }
        let gone: Vec<NodeId> = before
            .iter()
            .copied()
            .filter(|n| self.member_ids.binary_search(n).is_err())
            .collect();
        if !gone.is_empty() {
            // Claim 18: a node that left takes its cached associations with it.
            let stale: Vec<ConnectionId> = self
                .cache
                .iter()
                .filter(|(_, s)| gone.contains(s))
                .map(|(c, _)| *c)
                .collect();
            for c in stale {
                self.cache.pop(&c);
            }
            self.half_open.retain(|_, (s, _)| !gone.contains(s));
        }
        let mut to: Vec<NodeId> = transfers.keys().copied().collect();
        to.sort_unstable();
        for node in to {
            let mut entries = transfers.remove(&node).unwrap_or_default();
            entries.sort_unstable_by_key(|(c, _)| c.0);
            self.counters.transferred_out += entries.len() as u64;
            self.out.push(Announcement::Transfer { to: node, entries });
        }
    }

    fn set_alive(&mut self, members: &[NodeCandidate]) {
        let mut m: Vec<NodeCandidate> = members.iter().copied().filter(|m| m.alive).collect();
        if !m.iter().any(|m| m.id == self.me) {
            m.push(NodeCandidate {
                id: self.me,
                weight: 1,
                enabled: true,
                alive: true,
            });
        }
        m.sort_unstable_by_key(|m| m.id);
        m.dedup_by_key(|m| m.id);
        self.member_ids = m.iter().map(|m| m.id).collect();
        self.members = m;
    }

    /// Forgets idle associations, half-open connections whose handshake timed out, and ended
    /// ones past their linger; returns how many.
    pub fn release_idle(&mut self, now: u64) -> usize {
        let limits = self.limits;
        let me = self.me;
        let before = self.table.len() + self.half_open.len();
        let owned = &mut self.owned_per_server;
        let mut release = |serving: NodeId, is_owner: bool| {
            if is_owner {
                if let Some(n) = owned.get_mut(&serving) {
                    *n = n.saturating_sub(1);
                }
            }
        };
        self.table.retain(|_, e| {
            let keep = match e.ended_at {
                Some(t) => now.saturating_sub(t) < limits.linger,
                None => now.saturating_sub(e.last_seen) < limits.idle,
            };
            if !keep {
                release(e.serving, e.owner == me);
            }
            keep
        });
        self.half_open.retain(|_, (serving, at)| {
            let keep = now.saturating_sub(*at) < limits.handshake;
            if !keep {
                release(*serving, true);
            }
            keep
        });
        let released = before - self.table.len() - self.half_open.len();
        self.counters.expired += released as u64;
        released
    }
}

#[cfg(test)]
mod tests;

//! Who is in the array and who is alive (seed 004's ID messages).
//!
//! Owns: one [`Member`] per node heard from, with its last [`Announce`] and the time it was
//! last heard; failure after `dead_after` of silence; joins and restarts (a new incarnation is
//! a failure followed by a join: the old process's connections are gone).
//!
//! Must not: read the clock (every call takes `now` in ms) or decide roles.

use std::collections::BTreeMap;

use pentaflow_balance::{NodeCandidate, NodeId};

use crate::wire::Announce;

/// A node as last heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
    /// Its last ID message.
    pub announce: Announce,
    /// When it was last heard (ms).
    pub last_heard: u64,
    /// Heard within `dead_after`.
    pub alive: bool,
}

/// A change of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// A node was heard for the first time, or again after it failed.
    Joined(NodeId),
    /// A node was not heard for `dead_after`, or restarted.
    Failed(NodeId),
}

/// The members other than this node.
#[derive(Debug)]
pub struct Membership {
    members: BTreeMap<NodeId, Member>,
    dead_after: u64,
    /// Bumped on every join and failure: the member set a decision was made under (seed
    /// 004's owners depend on it; two views of this node with the same epoch list the same
    /// alive nodes). Local to this node: it is not announced yet, so nodes' epochs differ.
    epoch: u64,
}

impl Membership {
    /// No members yet; a node silent for `dead_after` ms is failed.
    #[must_use]
    pub fn new(dead_after: u64) -> Self {
        Self {
            members: BTreeMap::new(),
            dead_after,
            epoch: 0,
        }
    }

    /// The membership epoch: how many joins and failures this node has seen.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A new failure detection time (a committed configuration changed it).
    pub fn set_dead_after(&mut self, dead_after: u64) {
        self.dead_after = dead_after;
    }

    /// An ID message from `id`. Events are appended to `events`.
    pub fn heard(
        &mut self,
        id: NodeId,
        incarnation: u64,
        announce: Announce,
        now: u64,
        events: &mut Vec<MemberEvent>,
    ) {
        let before = events.len();
        self.heard_inner(id, incarnation, announce, now, events);
        self.epoch += (events.len() - before) as u64;
    }

    fn heard_inner(
        &mut self,
        id: NodeId,
        incarnation: u64,
        announce: Announce,
        now: u64,
        events: &mut Vec<MemberEvent>,
    ) {
        let fresh = Member {
            id,
            incarnation,
            announce,
            last_heard: now,
            alive: true,
        };
        match self.members.get_mut(&id) {
            None => {
                self.members.insert(id, fresh);
                events.push(MemberEvent::Joined(id));
            }
            Some(m) if incarnation > m.incarnation => {
                if m.alive {
                    events.push(MemberEvent::Failed(id));
                }
                *m = fresh;
                events.push(MemberEvent::Joined(id));
            }
            // The replay guard already refuses older incarnations; this is a second line.
            Some(m) if incarnation < m.incarnation => {}
            Some(m) => {
                if !m.alive {
                    events.push(MemberEvent::Joined(id));
                }
                *m = fresh;
            }
        }
    }

    /// Any other authenticated message from a live member also proves it alive.
    pub fn touch(&mut self, id: NodeId, incarnation: u64, now: u64) {
        if let Some(m) = self.members.get_mut(&id) {
            if m.alive && m.incarnation == incarnation {
                m.last_heard = now;
            }
        }
    }

    /// Fail members silent for longer than `dead_after`.
    pub fn expire(&mut self, now: u64, events: &mut Vec<MemberEvent>) {
        for m in self.members.values_mut() {
            if m.alive && now.saturating_sub(m.last_heard) > self.dead_after {
                m.alive = false;
                events.push(MemberEvent::Failed(m.id));
                self.epoch += 1;
            }
        }
    }

    /// A member by id (alive or not).
    #[must_use]
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Whether a member is alive.
    #[must_use]
    pub fn is_alive(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|m| m.alive)
    }

    /// Every member ever heard, in id order.
    pub fn all(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Alive members, in id order.
    pub fn alive(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.alive)
    }

    /// Alive members as candidates for buckets.
    pub fn candidates(&self) -> impl Iterator<Item = NodeCandidate> + '_ {
        self.alive().map(|m| NodeCandidate {
            id: m.id,
            weight: m.announce.weight,
            enabled: m.announce.enabled,
            alive: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Role;

    fn ann() -> Announce {
        Announce {
            role: Role::Standby,
            priority: 1,
            enabled: true,
            weight: 1,
            table_version: 0,
            config_version: 0,
            load: 0,
            following: None,
        }
    }

    #[test]
    fn join_fail_rejoin_restart() {
        let mut m = Membership::new(300);
        let mut ev = Vec::new();
        let n = NodeId(2);
        m.heard(n, 1, ann(), 0, &mut ev);
        assert_eq!(ev, [MemberEvent::Joined(n)]);
        ev.clear();
        m.heard(n, 1, ann(), 100, &mut ev);
        m.touch(n, 1, 250);
        m.expire(550, &mut ev);
        assert!(
            ev.is_empty() && m.is_alive(n),
            "heard at 250, 300 ms not yet over"
        );
        m.expire(551, &mut ev);
        assert_eq!(ev, [MemberEvent::Failed(n)]);
        ev.clear();
        m.touch(n, 1, 600);
        assert!(!m.is_alive(n), "only an ID message revives");
        m.heard(n, 1, ann(), 700, &mut ev);
        assert_eq!(ev, [MemberEvent::Joined(n)]);
        ev.clear();
        m.heard(n, 2, ann(), 710, &mut ev);
        assert_eq!(ev, [MemberEvent::Failed(n), MemberEvent::Joined(n)]);
        assert_eq!(m.epoch(), 5, "join, fail, rejoin, fail + join of a restart");
        ev.clear();
        m.heard(n, 1, ann(), 720, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(m.get(n).unwrap().incarnation, 2);
        assert_eq!(m.candidates().count(), 1);
    }
}

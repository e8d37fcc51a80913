//! Who is the scheduler: a pure decision over what this node knows.
//!
//! Lifecycle of a node's role:
//!
//! ```text
//! Starting ──(dead_after elapsed, or a scheduler heard)──▶ Standby ◀──(higher-ranked scheduler heard)──┐
//!                                                            │                                          │
//!                          (no alive scheduler and this node ranks first among alive nodes)             │
//!                                                            ▼                                          │
//!                                                        Scheduler ─────────────────────────────────────┘
//! ```
//!
//! Quorum: a node that does not hear its quorum (a majority of the configured nodes, by
//! default) never elects itself, and a scheduler that stops hearing it steps down — a node
//! cut off from the array cannot tell its peers' death from its own isolation, and only one
//! side of a split can hold a majority. A node that regains its quorum (a healed partition)
//! is unsettled again for `dead_after`, as at start: it hears the majority's scheduler before
//! it could elect a second one.
//!
//! Rank: the highest priority, ties to the lowest id. Priority 0 never becomes scheduler.
//! A returning node that outranks the current scheduler does **not** take over (no preemption,
//! no flapping) unless `preempt` is set. Two schedulers (a healed partition, or two nodes that
//! briefly saw different members) resolve by rank: the lower-ranked one steps down.
//!
//! Must not: read the clock, send anything, or touch the table.

use std::cmp::Ordering;

use pentaflow_balance::NodeId;

use crate::wire::Role;

/// Election rank of a node: compare with `>`: higher priority first, then lower id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank {
    /// Configured priority (0 = never scheduler).
    pub priority: u8,
    /// Node id (the lower wins a tie).
    pub id: NodeId,
}

/// What this node knows about another alive node, for a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its rank.
    pub rank: Rank,
    /// Its announced role.
    pub role: Role,
    /// The scheduler it announced it follows.
    pub following: Option<NodeId>,
}

/// What this node should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes.
    Stay,
    /// Take the VIP and the table.
    BecomeScheduler,
    /// Be (or stay) a standby following this scheduler (`None`: no scheduler yet, wait).
    Follow(Option<NodeId>),
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The deterministic successor among `ranks`: highest rank with a priority above 0.
pub fn successor(ranks: impl IntoIterator<Item = Rank>) -> Option<NodeId> {
    ranks
        .into_iter()
        .filter(|r| r.priority > 0)
        .max()
        .map(|r| r.id)
}

/// Decide this node's role.
///
/// * `me`, `role`: this node; `settled`: whether it has listened for `dead_after` since start
///   (before that, it only joins a scheduler it hears, it never elects);
/// * `quorate`: it hears its quorum (itself included);
/// * `peers`: the alive members; `preempt`: take over from a lower-ranked scheduler.
#[must_use]
pub fn decide(
    me: Rank,
    role: Role,
    settled: bool,
    quorate: bool,
    peers: &[Peer],
    preempt: bool,
) -> Decision {
    let best_scheduler = peers
        .iter()
        .filter(|p| p.role == Role::Scheduler)
        .map(|p| p.rank)
        .max();
    match (role, best_scheduler) {
        (Role::Scheduler, Some(s)) if s > me => Decision::Follow(Some(s.id)),
        // Cut off from the majority: this side must not keep a second scheduler.
        (Role::Scheduler, s) if !quorate => Decision::Follow(s.map(|s| s.id)),
        // Priority 0 never schedules: a scheduler whose priority dropped to 0 (a committed
        // configuration, or a data plane that failed — see `Node::data_plane_failed`) hands
        // the role on; the others elect a successor once they hear it announce `Standby`.
        (Role::Scheduler, s) if me.priority == 0 => Decision::Follow(s.map(|s| s.id)),
        (Role::Scheduler, _) => Decision::Stay,
        (_, Some(s)) if preempt && settled && quorate && me > s && me.priority > 0 => {
            Decision::BecomeScheduler
        }
        (_, Some(s)) => Decision::Follow(Some(s.id)),
        (_, None) if !settled => Decision::Stay,
        (_, None) if !quorate => Decision::Follow(None),
        (_, None) => {
            let all = peers.iter().map(|p| p.rank).chain(std::iter::once(me));
            if successor(all) == Some(me.id) {
                Decision::BecomeScheduler
            } else {
                Decision::Follow(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(priority: u8, id: u16) -> Rank {
        Rank {
            priority,
            id: NodeId(id),
        }
    }

    fn p(priority: u8, id: u16, role: Role) -> Peer {
        Peer {
            rank: r(priority, id),
            role,
            following: None,
        }
    }

    #[test]
    fn rank_orders_priority_then_lowest_id() {
        assert!(r(2, 9) > r(1, 1));
        assert!(r(1, 1) > r(1, 2));
        assert_eq!(successor([r(1, 3), r(1, 2), r(0, 1)]), Some(NodeId(2)));
        assert_eq!(successor([r(0, 1)]), None, "priority 0 never schedules");
    }

    #[test]
    fn a_scheduler_at_priority_zero_hands_the_role_on() {
        let peers = [p(1, 2, Role::Standby)];
        assert_eq!(
            decide(r(0, 1), Role::Scheduler, true, true, &peers, false),
            Decision::Follow(None)
        );
        // ...and the others elect among themselves once they hear it as a standby.
        let me = [p(0, 1, Role::Standby)];
        assert_eq!(
            decide(r(1, 2), Role::Standby, true, true, &me, false),
            Decision::BecomeScheduler
        );
    }

    #[test]
    fn election_without_scheduler() {
        let peers = [p(1, 2, Role::Standby), p(1, 3, Role::Starting)];
        assert_eq!(
            decide(r(1, 1), Role::Standby, true, true, &peers, false),
            Decision::BecomeScheduler
        );
        assert_eq!(
            decide(r(1, 4), Role::Standby, true, true, &peers, false),
            Decision::Follow(None)
        );
        assert_eq!(
            decide(r(1, 1), Role::Starting, false, true, &peers, false),
            Decision::Stay
        );
    }

    #[test]
    fn no_preemption_but_split_brain_resolves() {
        let peers = [p(1, 5, Role::Scheduler)];
        // A returning higher-ranked node follows the current scheduler...
        assert_eq!(
            decide(r(9, 1), Role::Starting, false, true, &peers, false),
            Decision::Follow(Some(NodeId(5)))
        );
        assert_eq!(
            decide(r(9, 1), Role::Standby, true, true, &peers, false),
            Decision::Follow(Some(NodeId(5)))
        );
        // ...unless preemption is configured.
        assert_eq!(
            decide(r(9, 1), Role::Standby, true, true, &peers, true),
            Decision::BecomeScheduler
        );
        // Two schedulers: the lower-ranked steps down, the higher stays.
        assert_eq!(
            decide(r(1, 6), Role::Scheduler, true, true, &peers, false),
            Decision::Follow(Some(NodeId(5)))
        );
        assert_eq!(
            decide(r(1, 4), Role::Scheduler, true, true, &peers, false),
            Decision::Stay
        );
    }

    #[test]
    fn without_quorum_nobody_elects_and_a_scheduler_steps_down() {
        let peers = [p(1, 2, Role::Standby)];
        assert_eq!(
            decide(r(1, 1), Role::Standby, true, false, &peers, false),
            Decision::Follow(None),
            "a cut-off node does not elect itself"
        );
        assert_eq!(
            decide(r(1, 1), Role::Scheduler, true, false, &[], false),
            Decision::Follow(None),
            "a scheduler that lost the majority steps down"
        );
        let sched = [p(1, 5, Role::Scheduler)];
        assert_eq!(
            decide(r(9, 1), Role::Standby, true, false, &sched, true),
            Decision::Follow(Some(NodeId(5))),
            "no preemption without quorum either"
        );
        assert_eq!(
            decide(r(1, 1), Role::Standby, true, true, &peers, false),
            Decision::BecomeScheduler
        );
    }
}

//! Who is in the array and who is alive (seed 004's ID messages), robust to a lossy LAN.
//!
//! Owns: one [`Member`] per node heard from, with its last [`Announce`] and the time it was
//! last heard; joins and restarts (a new incarnation is a failure followed by a join: the old
//! process's connections are gone); and the failure detector:
//!
//! * **Indirect evidence.** Every announcement lists the members its sender hears and how
//!   long ago it last heard each one directly ([`Announce::heard`]). A member is failed only
//!   when neither this node nor any witness has heard it for its detection time: a member
//!   this node lost a few announcements of, but another node still hears, is *suspected*
//!   (see [`Membership::suspected`]) and keeps its buckets and connections. Witnesses vouch
//!   only for what they heard themselves, so a dead node is never kept alive by gossip.
//! * **Loss-aware detection time.** The gaps between a member's announcements measure the
//!   loss on the way from it; the detection time is `dead_after` on a clean LAN (a crash is
//!   found as fast as before) and stretches, up to [`MAX_STRETCH`] × `dead_after`, to as many
//!   announcement intervals as make losing every piece of evidence (its own announcements and
//!   every witness's fresh word) less likely than [`FALSE_FAILURE_ODDS`].
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
    /// Not yet failed by the detector.
    pub alive: bool,
    /// Latest time a witness last heard it directly (ms), from their announcements.
    pub vouched: u64,
    /// When its last announcement came (ms): the start of the next gap.
    last_announce: u64,
    /// Average announcement intervals per received announcement, in thousandths
    /// (1000 = nothing lost): the plain mean of the first 32, then an exponentially
    /// weighted mean over about 32 (so the estimate is good within a couple of seconds).
    slots_milli: u64,
    /// Gaps measured so far (up to [`GAP_WEIGHT`]).
    samples: u64,
}

/// The chance, per announcement interval, that a live member is failed because every piece
/// of evidence for it was lost, that the detection time is stretched to stay under.
pub const FALSE_FAILURE_ODDS: f64 = 1e-9;

/// The detection time never stretches beyond this many times `dead_after`: a crash on a
/// very lossy LAN is still found within a second or so.
pub const MAX_STRETCH: u64 = 5;

/// Witnesses counted at most when the detection time is worked out (their evidence is not
/// independent of one another's in every network; three is enough on any LAN).
const MAX_WITNESSES: i32 = 3;

/// Estimated loss below this (5 %) keeps the plain `dead_after`.
const CLEAN_LOSS: f64 = 0.05;

/// The weight of a new gap in the mean: 1/32.
const GAP_WEIGHT: u64 = 32;

impl Member {
    /// The estimated share of this member's datagrams lost on the way here (0.0..1.0).
    #[must_use]
    pub fn loss(&self) -> f64 {
        if self.slots_milli <= 1000 {
            return 0.0;
        }
        1.0 - 1000.0 / self.slots_milli as f64
    }
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
    interval: u64,
    /// Bumped on every join and failure: the member set a decision was made under (seed
    /// 004's owners depend on it; two views of this node with the same epoch list the same
    /// alive nodes). Local to this node: it is not announced yet, so nodes' epochs differ.
    epoch: u64,
}

impl Membership {
    /// No members yet; members announce every `interval` ms, and one silent (to this node
    /// and to every witness) for `dead_after` ms on a clean LAN is failed.
    #[must_use]
    pub fn new(dead_after: u64, interval: u64) -> Self {
        Self {
            members: BTreeMap::new(),
            dead_after,
            interval: interval.max(1),
            epoch: 0,
        }
    }

    /// The membership epoch: how many joins and failures this node has seen.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// New timers (a committed configuration changed them).
    pub fn set_timing(&mut self, dead_after: u64, interval: u64) {
        self.dead_after = dead_after;
        self.interval = interval.max(1);
    }

    /// Alive members other than `m` that can vouch for it, at most [`MAX_WITNESSES`].
    fn witnesses(&self, m: &Member) -> i32 {
        let n = self.alive().filter(|o| o.id != m.id).count();
        i32::try_from(n).unwrap_or(MAX_WITNESSES).min(MAX_WITNESSES)
    }

    /// How long `m` may stay unheard (directly and by every witness) before it is failed.
    #[must_use]
    pub fn detection_ms(&self, m: &Member) -> u64 {
        let p = m.loss();
        // A clean LAN's stray loss (and the noise of a 32-sample estimate of it) is what
        // `dead_after`'s margin of several intervals is for.
        if p < CLEAN_LOSS {
            return self.dead_after;
        }
        // Per interval, all evidence is lost when its own announcement is lost and, for each
        // witness, either the witness's announcement or the witness's own last word from it.
        let per_witness = p + (1.0 - p) * p;
        let miss = (p * per_witness.powi(self.witnesses(m))).clamp(1e-12, 0.999);
        let slots = (FALSE_FAILURE_ODDS.ln() / miss.ln()).ceil();
        // `slots` is finite and positive (miss is in (0, 1)); the cast saturates anyway.
        let ms = (slots * self.interval as f64) as u64;
        ms.clamp(self.dead_after, self.dead_after.saturating_mul(MAX_STRETCH))
    }

    /// Members this node has not heard directly for `dead_after` but that are not failed
    /// yet: a witness still hears them, or the loss on the LAN stretched their detection
    /// time. Their buckets and connections stay where they are.
    pub fn suspected(&self, now: u64) -> impl Iterator<Item = &Member> + '_ {
        self.alive()
            .filter(move |m| now.saturating_sub(m.last_heard) > self.dead_after)
    }

    /// What this node's announcement says it hears: each alive member with the ms since it
    /// was last heard directly.
    #[must_use]
    pub fn heard_list(&self, now: u64) -> Vec<(NodeId, u16)> {
        self.alive()
            .take(crate::wire::MAX_HEARD)
            .map(|m| {
                let age = now.saturating_sub(m.last_heard);
                (m.id, u16::try_from(age).unwrap_or(u16::MAX))
            })
            .collect()
    }

    /// `from`'s announcement said it heard each of `heard` that many ms ago: evidence for
    /// the alive ones (never for `me`, never for `from` itself, never reviving a failed one).
    pub fn vouch(&mut self, me: NodeId, from: NodeId, heard: &[(NodeId, u16)], now: u64) {
        if !self.is_alive(from) {
            return;
        }
        for &(id, age) in heard {
            if id == me || id == from {
                continue;
            }
            if let Some(m) = self.members.get_mut(&id) {
                if m.alive {
                    m.vouched = m.vouched.max(now.saturating_sub(u64::from(age)));
                }
            }
        }
    }

    /// Scheduler: unanswered status polls of `id` after which it is failed by the poll — at
    /// least `retries + 1`, and as many as make a loss-only explanation unlikely (a poll and
    /// its answer each cross the LAN once).
    #[must_use]
    pub fn poll_attempts(&self, id: NodeId, retries: u32) -> u32 {
        let least = retries.saturating_add(1);
        let Some(m) = self.members.get(&id) else {
            return least;
        };
        let p = m.loss();
        if p <= 0.0 {
            return least;
        }
        let q = (1.0 - (1.0 - p) * (1.0 - p)).clamp(1e-12, 0.999);
        let needed = (FALSE_FAILURE_ODDS.ln() / q.ln()).ceil().min(1000.0) as u32;
        least.max(needed)
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
            vouched: 0,
            last_announce: now,
            slots_milli: 1000,
            samples: 0,
        };
        let interval = self.interval;
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
                if m.alive {
                    // The gap since its last announcement, in intervals: 1 when nothing
                    // was lost (reordering makes it shorter, never counted below 1).
                    let gap = now.saturating_sub(m.last_announce);
                    let slots = ((gap + interval / 2) / interval).clamp(1, 16);
                    let sample = slots * 1000;
                    let w = (m.samples + 1).min(GAP_WEIGHT);
                    m.slots_milli = (m.slots_milli * (w - 1) + sample) / w;
                    let keep = (m.vouched, m.slots_milli, w);
                    *m = fresh;
                    (m.vouched, m.slots_milli, m.samples) = keep;
                } else {
                    // Back after a failure: the loss estimate starts over.
                    events.push(MemberEvent::Joined(id));
                    *m = fresh;
                }
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

    /// Fail members that neither this node nor a witness heard for their detection time.
    pub fn expire(&mut self, now: u64, events: &mut Vec<MemberEvent>) {
        let expired: Vec<NodeId> = self
            .alive()
            .filter(|m| {
                let evidence = m.last_heard.max(m.vouched);
                now.saturating_sub(evidence) > self.detection_ms(m)
            })
            .map(|m| m.id)
            .collect();
        for id in expired {
            if let Some(m) = self.members.get_mut(&id) {
                m.alive = false;
                events.push(MemberEvent::Failed(id));
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
            heard: Vec::new(),
        }
    }

    #[test]
    fn join_fail_rejoin_restart() {
        let mut m = Membership::new(300, 100);
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

    #[test]
    fn a_witness_keeps_a_member_this_node_lost_alive_but_never_a_dead_one() {
        let me = NodeId(1);
        let (b, c) = (NodeId(2), NodeId(3));
        let mut m = Membership::new(200, 50);
        let mut ev = Vec::new();
        m.heard(b, 1, ann(), 0, &mut ev);
        m.heard(c, 1, ann(), 0, &mut ev);
        ev.clear();
        // This node hears nothing more from c, but b keeps saying it heard c 10 ms ago.
        for t in (50..=1_000).step_by(50) {
            m.heard(b, 1, ann(), t, &mut ev);
            m.vouch(me, b, &[(c, 10), (me, 0)], t);
            m.expire(t, &mut ev);
        }
        assert!(
            ev.is_empty() && m.is_alive(c),
            "suspected, not failed: {ev:?}"
        );
        assert_eq!(m.suspected(1_000).map(|m| m.id).collect::<Vec<_>>(), [c]);
        // c dies: b's word about it ages like this node's own; failed dead_after later.
        for t in (1_050..=1_300).step_by(50) {
            m.heard(b, 1, ann(), t, &mut ev);
            m.vouch(me, b, &[(c, u16::try_from(t - 990).unwrap())], t);
            m.expire(t, &mut ev);
        }
        assert_eq!(
            ev,
            [MemberEvent::Failed(c)],
            "failed 200 ms after b last heard it"
        );
        ev.clear();
        m.vouch(me, b, &[(c, 0)], 1_300);
        assert!(!m.is_alive(c), "a witness never revives a failed member");
    }

    #[test]
    fn the_detection_time_stretches_with_measured_loss_and_is_dead_after_on_a_clean_lan() {
        let (b, c) = (NodeId(2), NodeId(3));
        let mut m = Membership::new(200, 50);
        let mut ev = Vec::new();
        m.heard(c, 1, ann(), 0, &mut ev);
        for t in (50..=3_000).step_by(50) {
            m.heard(c, 1, ann(), t, &mut ev);
        }
        let clean = m.get(c).unwrap().clone();
        assert_eq!(m.detection_ms(&clean), 200);
        // b arrives with every other announcement lost (50 %).
        m.heard(b, 1, ann(), 0, &mut ev);
        for t in (100..=3_000).step_by(100) {
            m.heard(b, 1, ann(), t, &mut ev);
        }
        let lossy = m.get(b).unwrap().clone();
        assert!((lossy.loss() - 0.5).abs() < 0.05, "{}", lossy.loss());
        let d = m.detection_ms(&lossy);
        assert!(d > 200 && d <= 200 * MAX_STRETCH, "{d}");
        assert_eq!(m.poll_attempts(c, 2), 3, "clean: the configured retries");
        assert!(
            m.poll_attempts(b, 2) > 10,
            "lossy: a loss-proof run of misses"
        );
    }
}

//! Session-ID hash groups: hash-group based persistence (seed 002, claim 12).
//!
//! Owns: a fixed number of groups, each mapped to a back-end with the time it was last used.
//! Session IDs hash into a group, so the table never grows with traffic: a million sessions
//! cost the same memory as ten. Sessions of one group share a back-end, which is the price of
//! the bound; with groups ≫ back-ends the spread stays even.
//!
//! Must not: pick back-ends (the proxy does, with a policy, then calls [`SessionGroups::assign`])
//! or read the clock (`now_ms` is an argument).

use std::collections::BTreeMap;

use crate::candidate::BackendId;
use crate::hash::stable_hash;

/// A fixed-size table of session groups → back-end, with last access per group.
#[derive(Debug, Clone)]
pub struct SessionGroups {
    /// One slot per group: the assigned back-end, if any, and the last access in ms.
    slots: Vec<(Option<BackendId>, u64)>,
}

impl SessionGroups {
    /// A table of `groups` unassigned groups (0 is clamped to 1 so `group_of` is total).
    #[must_use]
    pub fn new(groups: usize) -> Self {
        Self {
            slots: vec![(None, 0); groups.max(1)],
        }
    }

    /// Number of groups (fixed for the life of the table).
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false (a table has at least one group); present for API symmetry with `len`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The group of a session ID: `stable_hash(session_id) % len`, the same on every node.
    #[must_use]
    pub fn group_of(&self, session_id: &[u8]) -> usize {
        // len >= 1 and fits in u64 on every supported platform; the result is < len.
        let len = self.slots.len() as u64;
        (stable_hash(session_id) % len) as usize
    }

    /// The group's back-end if assigned; refreshes its last access to `now_ms`.
    /// An out-of-range group is treated as unassigned.
    pub fn lookup(&mut self, group: usize, now_ms: u64) -> Option<BackendId> {
        let slot = self.slots.get_mut(group)?;
        let backend = slot.0?;
        slot.1 = now_ms;
        Some(backend)
    }

    /// Assign (or re-assign) a group, stamping `now_ms`. An out-of-range group is ignored.
    pub fn assign(&mut self, group: usize, backend: BackendId, now_ms: u64) {
        if let Some(slot) = self.slots.get_mut(group) {
            *slot = (Some(backend), now_ms);
        }
    }

    /// Unassign every group of a back-end (it was removed from the config or failed).
    /// Returns how many groups were released.
    pub fn release(&mut self, backend: BackendId) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            if slot.0 == Some(backend) {
                slot.0 = None;
                n += 1;
            }
        }
        n
    }

    /// Unassign groups idle for longer than `idle_ms` (last access strictly before
    /// `now_ms - idle_ms`); returns how many.
    pub fn expire_idle(&mut self, now_ms: u64, idle_ms: u64) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            if slot.0.is_some() && now_ms.saturating_sub(slot.1) > idle_ms {
                slot.0 = None;
                n += 1;
            }
        }
        n
    }

    /// Number of groups assigned per back-end (for the status table).
    #[must_use]
    pub fn counts(&self) -> BTreeMap<BackendId, usize> {
        let mut m = BTreeMap::new();
        for id in self.slots.iter().filter_map(|s| s.0) {
            *m.entry(id).or_insert(0) += 1;
        }
        m
    }

    /// Build a table of a new size keeping nothing, or of the same size keeping everything
    /// (used on reload: a different size rehashes every session, so old mappings are void).
    #[must_use]
    pub fn resized(&self, groups: usize) -> Self {
        if groups.max(1) == self.len() {
            self.clone()
        } else {
            Self::new(groups)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: BackendId = BackendId(1);
    const B: BackendId = BackendId(2);

    #[test]
    fn size_is_fixed_regardless_of_sessions() {
        let mut g = SessionGroups::new(64);
        for i in 0..10_000u32 {
            let grp = g.group_of(&i.to_le_bytes());
            assert!(grp < 64);
            if g.lookup(grp, u64::from(i)).is_none() {
                g.assign(grp, if i % 2 == 0 { A } else { B }, u64::from(i));
            }
        }
        assert_eq!(g.len(), 64);
        assert_eq!(g.counts().values().sum::<usize>(), 64);
        assert!(!g.is_empty());
    }

    #[test]
    fn zero_groups_clamps_to_one() {
        let g = SessionGroups::new(0);
        assert_eq!(g.len(), 1);
        assert_eq!(g.group_of(b"anything"), 0);
    }

    #[test]
    fn group_of_is_stable() {
        let g = SessionGroups::new(1000);
        assert_eq!(g.group_of(b"PHPSESSID=abc"), g.group_of(b"PHPSESSID=abc"));
    }

    #[test]
    fn lookup_assign_refresh() {
        let mut g = SessionGroups::new(8);
        assert_eq!(g.lookup(3, 10), None);
        g.assign(3, A, 10);
        assert_eq!(g.lookup(3, 50), Some(A));
        // The lookup at 50 refreshed it: not idle for 30 ms at 80.
        assert_eq!(g.expire_idle(80, 30), 0);
        assert_eq!(g.expire_idle(81, 30), 1);
        assert_eq!(g.lookup(3, 90), None);
        g.assign(3, B, 100);
        g.assign(3, A, 101);
        assert_eq!(g.lookup(3, 102), Some(A));
        // Out of range is harmless.
        g.assign(8, A, 0);
        assert_eq!(g.lookup(8, 0), None);
    }

    #[test]
    fn release_unassigns_only_that_backend() {
        let mut g = SessionGroups::new(4);
        g.assign(0, A, 0);
        g.assign(1, B, 0);
        g.assign(2, A, 0);
        assert_eq!(g.release(A), 2);
        assert_eq!(g.counts(), BTreeMap::from([(B, 1)]));
        assert_eq!(g.release(A), 0);
    }

    #[test]
    fn resized_keeps_same_size_only() {
        let mut g = SessionGroups::new(4);
        g.assign(0, A, 0);
        assert_eq!(g.resized(4).counts(), g.counts());
        let r = g.resized(8);
        assert_eq!(r.len(), 8);
        assert!(r.counts().is_empty());
    }
}

//! What a per-request scheduler sees of a back-end.
//!
//! Owns: [`BackendId`], the stable identity of a back-end, and [`Candidate`], the snapshot of
//! one back-end a policy decides on. Must not: hold live counters or anything shared — the
//! proxy builds a slice of candidates from its own state for each decision.

use serde::{Deserialize, Serialize};

use crate::hash::stable_hash;

/// Stable identity of a back-end: `stable_hash(name)`. Survives reloads because names do.
///
/// Being derived from the name (not from a position in the config), it is the same on every
/// node and across config pushes that reorder or add back-ends, so hash groups, cookies and URL
/// ownership keyed by it stay put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BackendId(pub u64);

/// What a scheduler sees of one back-end at the moment of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Stable identity (see [`BackendId::from_name`]).
    pub id: BackendId,
    /// Configured weight; 0 means "never pick" (drained).
    pub weight: u32,
    /// Whether health checks currently pass and the back-end is enabled.
    pub available: bool,
    /// Requests (or connections) currently in flight to this back-end from this node.
    pub active: u32,
}

impl BackendId {
    /// The identity of the back-end called `name` in the configuration.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        Self(stable_hash(name.as_bytes()))
    }
}

impl Candidate {
    /// Whether a policy may pick this candidate at all: available and of non-zero weight.
    #[must_use]
    pub fn eligible(&self) -> bool {
        self.available && self.weight > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_the_stable_hash_of_the_name() {
        assert_eq!(BackendId::from_name("web1").0, stable_hash(b"web1"));
        assert_ne!(BackendId::from_name("web1"), BackendId::from_name("web2"));
    }

    #[test]
    fn eligibility_needs_availability_and_weight() {
        let mut c = Candidate {
            id: BackendId(1),
            weight: 1,
            available: true,
            active: 0,
        };
        assert!(c.eligible());
        c.weight = 0;
        assert!(!c.eligible());
        c.weight = 1;
        c.available = false;
        assert!(!c.eligible());
    }
}

//! URL hashing: weighted rendezvous (highest random weight, HRW) hashing with optional bounded
//! loads.
//!
//! Owns: the ranking of back-ends for a key and the pick for a URL. Must not: keep per-key
//! state, read the clock or allocate more than one ranking per lookup.
//!
//! # Why rendezvous hashing rather than a ring
//!
//! * **Minimal disruption, exactly.** Each key goes to the back-end with the highest score for
//!   that key. Removing a back-end moves only the keys it owned (each to its runner-up); adding
//!   one moves only the keys it now wins, an expected `w_new / W` of them, and only *to* it. A
//!   ring gets there only on average and needs many virtual nodes to do so.
//! * **Weights are exact.** With the logarithmic method (`score = -w / ln(u)`, `u` uniform in
//!   (0,1)) a back-end of weight `w` wins with probability exactly `w / W` — no replica counts.
//! * **No memory.** There is no ring to build, store, rebuild on reload or replicate: nodes
//!   agree because they share the hash, not a data structure.
//! * **Bounded loads fall out.** The full ranking is the key's preference list, so "consistent
//!   hashing with bounded loads" (Mirrokni et al., HAProxy's `hash-balance-factor`) is walking
//!   it past back-ends that are over their bound; the overflow of a hot key lands on the same
//!   second choice every time, which keeps caches warm.
//! * The cost is O(N) per lookup, a few ns per back-end: nothing for the tens of back-ends a
//!   site has.
//!
//! Scores use `f64::ln`. Every node of an array runs the same binary on the same platform, so
//! they agree; the golden vectors in the tests pin the ranking.

use std::cmp::Ordering;

use crate::candidate::Candidate;
use crate::hash::mix64;

/// The smallest balance factor (percent) honoured: at 100 the bounds already add up to more
/// than the load, so some back-end is always under its bound; below that the bound would push
/// keys off their owners for no gain in balance.
pub const MIN_BALANCE_FACTOR: u32 = 100;

/// 2^-53: turns the top 53 bits of a hash into an `f64` in [0, 1) without rounding.
const F64_UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// The HRW score of a back-end for a key: `-weight / ln(u)`, `u = mix64(key_hash ^ id)` mapped
/// into the open interval (0, 1). Higher wins. Weight 0 scores 0 (ranks last).
#[must_use]
pub fn hrw_score(key_hash: u64, c: &Candidate) -> f64 {
    let h = mix64(key_hash ^ c.id.0);
    // Top 53 bits plus one half: strictly inside (0, 1), so ln(u) is finite and negative.
    let u = ((h >> 11) as f64 + 0.5) * F64_UNIT;
    -f64::from(c.weight) / u.ln()
}

/// All candidate indexes (available or not) ordered by descending score for this key.
///
/// Equal scores (only possible with equal weights and colliding hashes, or weight 0) are
/// ordered by back-end id and then position, so the order is total and the same everywhere.
#[must_use]
pub fn rendezvous_rank(key_hash: u64, c: &[Candidate]) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = c
        .iter()
        .enumerate()
        .map(|(i, cand)| (hrw_score(key_hash, cand), i))
        .collect();
    scored.sort_unstable_by(|a, b| rank_cmp(c, *a, *b));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Pick the back-end for a URL whose hash is `key_hash`.
///
/// Walks the ranking and skips ineligible candidates (unavailable or weight 0). With
/// `balance_factor = Some(f)` (percent; `Some(0)` disables, values up to
/// [`MIN_BALANCE_FACTOR`] are raised to it) it also skips candidates whose `active` is at or
/// over their bound
/// `bound_i = ceil(f/100 × (total_active + 1) × weight_i / total_weight)`, totals over
/// eligible candidates — consistent hashing with bounded loads. If every eligible candidate is
/// over its bound, the first eligible one in the ranking is returned. `None` only if no
/// candidate is eligible.
///
/// "The first in the ranking that passes a filter" is the maximum over those that pass, so
/// this is two passes over `c` and allocates nothing; it equals walking
/// [`rendezvous_rank`] (a property test checks that).
#[must_use]
pub fn url_hash_pick(key_hash: u64, c: &[Candidate], balance_factor: Option<u32>) -> Option<usize> {
    let bound = match balance_factor {
        None | Some(0) => None,
        Some(f) => Some(LoadBound::new(c, f.max(MIN_BALANCE_FACTOR))),
    };
    // Best eligible candidate overall, and best one under its bound.
    let mut first: Option<(f64, usize)> = None;
    let mut under: Option<(f64, usize)> = None;
    for (i, cand) in c.iter().enumerate().filter(|(_, x)| x.eligible()) {
        let here = (hrw_score(key_hash, cand), i);
        let beats = |best: Option<(f64, usize)>| {
            best.is_none_or(|b| rank_cmp(c, here, b) == Ordering::Less)
        };
        if beats(first) {
            first = Some(here);
        }
        if bound.as_ref().is_some_and(|b| b.admits(cand)) && beats(under) {
            under = Some(here);
        }
    }
    let first = first?.1;
    match bound {
        None => Some(first),
        Some(_) => Some(under.map_or(first, |u| u.1)),
    }
}

/// The ranking order: higher score first, then lower back-end id, then lower position.
fn rank_cmp(c: &[Candidate], a: (f64, usize), b: (f64, usize)) -> Ordering {
    b.0.total_cmp(&a.0)
        .then_with(|| c[a.1].id.cmp(&c[b.1].id))
        .then_with(|| a.1.cmp(&b.1))
}

/// The bounded-loads rule for one decision: totals over eligible candidates and the factor.
struct LoadBound {
    factor: u128,
    total_active: u128,
    total_weight: u128,
}

impl LoadBound {
    fn new(c: &[Candidate], factor: u32) -> Self {
        let (total_active, total_weight) = c
            .iter()
            .filter(|x| x.eligible())
            .fold((0u128, 0u128), |(a, w), x| {
                (a + u128::from(x.active), w + u128::from(x.weight))
            });
        Self {
            factor: u128::from(factor),
            total_active,
            total_weight,
        }
    }

    /// Whether `cand.active < ceil(f × (T+1) × w / (100 × W))`, in integers (u128 cannot
    /// overflow: 2^32 × 2^64 × 2^32 < 2^128 for any slice that fits in memory).
    fn admits(&self, cand: &Candidate) -> bool {
        let num = self.factor * (self.total_active + 1) * u128::from(cand.weight);
        let den = 100 * self.total_weight;
        den > 0 && u128::from(cand.active) < num.div_ceil(den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::BackendId;

    fn pool(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Candidate {
                id: BackendId::from_name(&format!("web{i}")),
                weight: w,
                available: true,
                active: 0,
            })
            .collect()
    }

    #[test]
    fn rank_is_a_permutation_and_pick_is_its_head() {
        let c = pool(&[1, 2, 3, 4]);
        for key in 0..100u64 {
            let mut r = rendezvous_rank(key, &c);
            assert_eq!(url_hash_pick(key, &c, None), Some(r[0]));
            r.sort_unstable();
            assert_eq!(r, vec![0, 1, 2, 3]);
        }
    }

    #[test]
    fn pick_skips_unavailable_and_zero_weight() {
        let mut c = pool(&[1, 1, 1]);
        let key = 42;
        let r = rendezvous_rank(key, &c);
        c[r[0]].available = false;
        assert_eq!(url_hash_pick(key, &c, None), Some(r[1]));
        c[r[1]].weight = 0;
        assert_eq!(url_hash_pick(key, &c, Some(150)), Some(r[2]));
        c[r[2]].available = false;
        assert_eq!(url_hash_pick(key, &c, None), None);
        assert_eq!(url_hash_pick(key, &[], Some(125)), None);
    }

    #[test]
    fn zero_weight_ranks_last() {
        let c = pool(&[0, 1, 1]);
        for key in 0..50u64 {
            assert_eq!(rendezvous_rank(key, &c)[2], 0);
        }
    }

    #[test]
    fn bounded_pick_moves_off_an_overloaded_owner() {
        let mut c = pool(&[1, 1, 1, 1]);
        let key = 7;
        let r = rendezvous_rank(key, &c);
        // Owner has 10 of 10 active: bound = ceil(1.25 × 11 × 1/4) = 4, so it is over.
        c[r[0]].active = 10;
        assert_eq!(url_hash_pick(key, &c, Some(125)), Some(r[1]));
        assert_eq!(url_hash_pick(key, &c, None), Some(r[0]));
        assert_eq!(url_hash_pick(key, &c, Some(0)), Some(r[0]));
    }

    #[test]
    fn bounded_pick_falls_back_to_owner_when_all_are_over() {
        // Below MIN_BALANCE_FACTOR the factor is raised to it, so use the raw rule directly:
        // with one candidate, bound = ceil(f × (a+1) / 100) > a for any f >= 100.
        let mut c = pool(&[1]);
        c[0].active = 1_000;
        assert_eq!(url_hash_pick(1, &c, Some(101)), Some(0));
    }

    #[test]
    fn score_is_finite_and_positive() {
        let c = pool(&[1, u32::MAX]);
        for key in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
            for cand in &c {
                let s = hrw_score(key ^ cand.id.0, cand);
                assert!(s.is_finite() && s > 0.0, "{s}");
            }
        }
    }

    /// The definition, literally: walk the ranking.
    fn pick_by_walking(key: u64, c: &[Candidate], factor: Option<u32>) -> Option<usize> {
        let rank = rendezvous_rank(key, c);
        let mut eligible = rank.iter().copied().filter(|&i| c[i].eligible());
        let first = eligible.next()?;
        let Some(f) = factor.filter(|&f| f > 0) else {
            return Some(first);
        };
        let bound = LoadBound::new(c, f.max(MIN_BALANCE_FACTOR));
        Some(
            rank.iter()
                .copied()
                .find(|&i| c[i].eligible() && bound.admits(&c[i]))
                .unwrap_or(first),
        )
    }

    proptest::proptest! {
        #[test]
        fn single_pass_pick_equals_walking_the_ranking(
            key in proptest::prelude::any::<u64>(),
            backends in proptest::collection::vec((0..4u32, proptest::prelude::any::<bool>(), 0..20u32), 0..10),
            factor in proptest::option::of(0..300u32),
        ) {
            let c: Vec<Candidate> = backends
                .iter()
                .enumerate()
                .map(|(i, &(weight, available, active))| Candidate {
                    // A few duplicate ids, to exercise the tie-breaks.
                    id: BackendId(i as u64 % 7),
                    weight,
                    available,
                    active,
                })
                .collect();
            proptest::prop_assert_eq!(url_hash_pick(key, &c, factor), pick_by_walking(key, &c, factor));
        }
    }
}

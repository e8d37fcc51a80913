//! Per-request choice among back-ends that are all equally acceptable: weighted least
//! connections and smooth weighted round-robin.
//!
//! Owns: the two stateless-or-tiny-state policies. Must not: look at the clock, draw random
//! numbers or allocate on the request path — tie-breaking is an argument, the round-robin state
//! is a small vector the caller keeps.
//!
//! A candidate is eligible when it is available and has a non-zero weight
//! ([`Candidate::eligible`]); weight 0 is how a back-end is drained without removing it.

use std::cmp::Ordering;

use crate::candidate::Candidate;

/// nginx-style smooth weighted round-robin (the `ngx_http_upstream_get_peer` algorithm).
///
/// Each step every eligible candidate's current weight grows by its weight, the largest wins
/// and pays back the total. For weights 5, 1, 1 this yields `a a b a c a a`: the heavy back-end
/// gets its share without bursts. State is keyed by position in the slice; when the slice length
/// changes the state resets (a reload), which costs at most one uneven round.
#[derive(Debug, Default, Clone)]
pub struct SmoothWeightedRoundRobin {
    /// Current weight per candidate position.
    current: Vec<i64>,
}

/// Weighted least connections: the eligible candidate with the smallest `active / weight`.
///
/// Ratios are compared by cross-multiplication in `u64` (no floats, exact). Ties are broken by
/// `tiebreak` (e.g. a counter the caller increments): among the tied, the
/// `(tiebreak % tied_count)`-th in slice order is picked, so an idle pool is walked round-robin
/// instead of always hitting the first back-end. Returns the index into `c`, or `None` if no
/// candidate is eligible. Two passes, no allocation.
#[must_use]
pub fn least_connections(c: &[Candidate], tiebreak: u64) -> Option<usize> {
    // Pass 1: the best ratio and how many candidates share it.
    let mut best: Option<usize> = None;
    let mut tied: u64 = 0;
    for (i, cand) in c.iter().enumerate() {
        if !cand.eligible() {
            continue;
        }
        match best {
            None => {
                best = Some(i);
                tied = 1;
            }
            Some(b) => match load_cmp(cand, &c[b]) {
                Ordering::Less => {
                    best = Some(i);
                    tied = 1;
                }
                Ordering::Equal => tied += 1,
                Ordering::Greater => {}
            },
        }
    }
    let best = best?;
    if tied == 1 {
        return Some(best);
    }
    // Pass 2: the (tiebreak % tied)-th candidate with the best ratio.
    let mut nth = tiebreak % tied;
    for (i, cand) in c.iter().enumerate().skip(best) {
        if cand.eligible() && load_cmp(cand, &c[best]) == Ordering::Equal {
            if nth == 0 {
                return Some(i);
            }
            nth -= 1;
        }
    }
    // Unreachable in practice (pass 1 counted exactly these); fall back to the first best.
    Some(best)
}

/// Compare `a.active / a.weight` with `b.active / b.weight` exactly. Both weights are non-zero
/// for eligible candidates; u32 × u32 always fits in u64.
fn load_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    let lhs = u64::from(a.active) * u64::from(b.weight);
    let rhs = u64::from(b.active) * u64::from(a.weight);
    lhs.cmp(&rhs)
}

impl SmoothWeightedRoundRobin {
    /// A fresh state (all current weights zero).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Pick the next candidate. Skips ineligible candidates (their current weight is left as
    /// it is, as nginx does). Returns the index into `c`, or `None` if none is eligible.
    pub fn next(&mut self, c: &[Candidate]) -> Option<usize> {
        if self.current.len() != c.len() {
            self.current.clear();
            self.current.resize(c.len(), 0);
        }
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (i, cand) in c.iter().enumerate() {
            if !cand.eligible() {
                continue;
            }
            let w = i64::from(cand.weight);
            self.current[i] += w;
            total += w;
            // Strictly greater: the first of equals wins, which is what gives nginx's order.
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::BackendId;

    fn cand(i: u64, weight: u32, active: u32) -> Candidate {
        Candidate {
            id: BackendId(i),
            weight,
            available: true,
            active,
        }
    }

    #[test]
    fn least_connections_prefers_lowest_ratio() {
        // 4/2 = 2 beats 3/1 = 3 although it has more active requests.
        let c = [cand(0, 1, 3), cand(1, 2, 4), cand(2, 1, 5)];
        assert_eq!(least_connections(&c, 0), Some(1));
        assert_eq!(least_connections(&c, 7), Some(1));
    }

    #[test]
    fn least_connections_weighting_over_many_picks() {
        // Filling an idle pool one request at a time keeps active proportional to weight.
        let mut c = [cand(0, 3, 0), cand(1, 1, 0)];
        for t in 0..400 {
            let i = least_connections(&c, t).unwrap();
            c[i].active += 1;
        }
        assert_eq!(c[0].active, 300);
        assert_eq!(c[1].active, 100);
    }

    #[test]
    fn least_connections_rotates_ties() {
        let c = [
            cand(0, 1, 2),
            cand(1, 1, 1),
            cand(2, 1, 9),
            cand(3, 1, 1),
            cand(4, 1, 1),
        ];
        let picks: Vec<usize> = (0..6).map(|t| least_connections(&c, t).unwrap()).collect();
        assert_eq!(picks, vec![1, 3, 4, 1, 3, 4]);
    }

    #[test]
    fn least_connections_skips_unavailable_and_zero_weight() {
        let mut c = [cand(0, 1, 0), cand(1, 0, 0), cand(2, 1, 5)];
        c[0].available = false;
        assert_eq!(least_connections(&c, 0), Some(2));
        c[2].available = false;
        assert_eq!(least_connections(&c, 0), None);
        assert_eq!(least_connections(&[], 0), None);
    }

    #[test]
    fn swrr_matches_nginx_sequence() {
        let c = [cand(0, 5, 0), cand(1, 1, 0), cand(2, 1, 0)];
        let mut rr = SmoothWeightedRoundRobin::new();
        let seq: String = (0..14)
            .map(|_| char::from(b'a' + u8::try_from(rr.next(&c).unwrap()).unwrap()))
            .collect();
        assert_eq!(seq, "aabacaaaabacaa");
    }

    #[test]
    fn swrr_skips_unavailable_and_resets_on_resize() {
        let mut c = vec![cand(0, 1, 0), cand(1, 1, 0), cand(2, 1, 0)];
        c[1].available = false;
        let mut rr = SmoothWeightedRoundRobin::new();
        let picks: Vec<usize> = (0..4).map(|_| rr.next(&c).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        c.push(cand(3, 1, 0));
        c[1].available = true;
        let picks: Vec<usize> = (0..4).map(|_| rr.next(&c).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 3]);
        assert_eq!(rr.next(&[]), None);
        let none = [Candidate {
            available: false,
            ..cand(0, 1, 0)
        }];
        assert_eq!(rr.next(&none), None);
    }
}

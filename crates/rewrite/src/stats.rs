//! Sampled per-object statistics for `auto` mode: a deterministic sampler and a bounded table of
//! objects (hits, bytes, content type, cacheability) from which the CDN set is chosen.
//!
//! The table never grows past its bound: when full, a new object replaces the least-hit one and
//! inherits its count as an over-estimate ("space-saving" heavy hitters), so a popular newcomer
//! is not starved by old entries. Pure: no clock, no RNG, no I/O.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// One sampled observation of an object served by this site.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) bytes: u64,
    pub(crate) content_type: String,
    pub(crate) cacheable: bool,
}

/// What is known of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectStat {
    /// Sampled hits, including `overestimate`.
    pub hits: u64,
    /// Hits inherited from the entry this one replaced: the true count is at least
    /// `hits - overestimate`.
    pub overestimate: u64,
    /// Size of the last sampled response, bytes (0 when unknown).
    pub bytes: u64,
    /// Media type of the last sampled response.
    pub content_type: String,
    /// Whether the last sampled response was cacheable by a shared cache.
    pub cacheable: bool,
}

/// Thresholds deciding which objects go to the CDN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selection {
    pub(crate) min_hits: u64,
    pub(crate) top_k: Option<usize>,
}

/// Deterministic, lock-free sampler: takes `rate` of the calls, evenly spread (call `n` is taken
/// when `floor((n + 1) * rate)` steps past `floor(n * rate)`). No RNG, so tests and replays see
/// the same samples.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    calls: AtomicU64,
}

/// Bounded table of object statistics keyed by absolute path.
#[derive(Debug)]
pub(crate) struct ObjectTable {
    max: usize,
    objects: HashMap<String, ObjectStat>,
}

impl Sampler {
    /// Whether this call is sampled at `rate` (0.0 to 1.0).
    pub(crate) fn sample(&self, rate: f64) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * rate).floor() > (n * rate).floor()
    }
}

impl ObjectTable {
    /// An empty table holding at most `max` objects.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            objects: HashMap::new(),
        }
    }

    /// Number of objects tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// Records one sampled response for `path`.
    pub(crate) fn record(&mut self, path: &str, seen: Observation) {
        if let Some(stat) = self.objects.get_mut(path) {
            stat.hits += 1;
            stat.bytes = seen.bytes;
            stat.content_type = seen.content_type;
            stat.cacheable = seen.cacheable;
            return;
        }
        let mut inherited = 0;
        if self.objects.len() >= self.max {
            let victim = self
                .objects
                .iter()
                .min_by(|a, b| a.1.hits.cmp(&b.1.hits).then_with(|| b.0.cmp(a.0)))
                .map(|(k, v)| (k.clone(), v.hits));
            if let Some((key, hits)) = victim {
                self.objects.remove(&key);
                inherited = hits;
            }
        }
        self.objects.insert(
            path.to_owned(),
            ObjectStat {
                hits: inherited + 1,
                overestimate: inherited,
                bytes: seen.bytes,
                content_type: seen.content_type,
                cacheable: seen.cacheable,
            },
        );
    }

    /// The objects that pass `eligible` (static, right type, right shape) and `selection`.
    pub(crate) fn select(
        &self,
        selection: Selection,
        eligible: &dyn Fn(&str, &ObjectStat) -> bool,
    ) -> HashSet<String> {
        let mut ranked: Vec<(&String, &ObjectStat)> = self
            .objects
            .iter()
            .filter(|(path, stat)| stat.hits >= selection.min_hits && eligible(path, stat))
            .collect();
        // Most hits first; ties by path so the choice does not depend on hash order.
        ranked.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then_with(|| a.0.cmp(b.0)));
        if let Some(k) = selection.top_k {
            ranked.truncate(k);
        }
        ranked.into_iter().map(|(p, _)| p.clone()).collect()
    }

    /// Every object, most hits first (for the report).
    pub(crate) fn ranked(&self) -> Vec<(String, ObjectStat)> {
        let mut all: Vec<(String, ObjectStat)> = self
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then_with(|| a.0.cmp(&b.0)));
        all
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn seen(cacheable: bool) -> Observation {
        Observation {
            bytes: 10,
            content_type: "image/png".into(),
            cacheable,
        }
    }

    #[test]
    fn sampler_takes_the_rate_exactly() {
        let sampler = Sampler::default();
        let taken = (0..1000).filter(|_| sampler.sample(0.25)).count();
        assert_eq!(taken, 250);
        let sampler = Sampler::default();
        assert_eq!((0..10).filter(|_| sampler.sample(0.0)).count(), 0);
        assert_eq!((0..10).filter(|_| sampler.sample(1.0)).count(), 10);
    }

    #[test]
    fn selection_by_threshold_and_top_k() {
        let mut table = ObjectTable::new(10);
        for (path, hits) in [("/a.png", 5), ("/b.png", 3), ("/c.png", 1), ("/d.png", 9)] {
            for _ in 0..hits {
                table.record(path, seen(path != "/d.png"));
            }
        }
        let all = |_: &str, s: &ObjectStat| s.cacheable;
        let chosen = table.select(
            Selection {
                min_hits: 2,
                top_k: None,
            },
            &all,
        );
        assert_eq!(
            chosen,
            HashSet::from(["/a.png".to_owned(), "/b.png".to_owned()])
        );
        let chosen = table.select(
            Selection {
                min_hits: 1,
                top_k: Some(1),
            },
            &all,
        );
        assert_eq!(chosen, HashSet::from(["/a.png".to_owned()]));
    }

    #[test]
    fn a_full_table_replaces_the_least_hit() {
        let mut table = ObjectTable::new(2);
        table.record("/a", seen(true));
        table.record("/a", seen(true));
        table.record("/b", seen(true));
        table.record("/c", seen(true));
        let ranked = table.ranked();
        assert_eq!(ranked.len(), 2);
        assert_eq!(ranked[0].0, "/a");
        assert_eq!(ranked[1].0, "/c");
        assert_eq!(ranked[1].1.hits, 2);
        assert_eq!(ranked[1].1.overestimate, 1);
    }

    proptest! {
        /// The table stays bounded, and a hit count never under-estimates the true count
        /// (the space-saving guarantee) while `hits - overestimate` never over-estimates it.
        #[test]
        fn bounded_and_counts_bracket_truth(
            max in 1usize..8,
            paths in proptest::collection::vec(0u8..20, 0..300),
        ) {
            let mut table = ObjectTable::new(max);
            let mut truth: HashMap<String, u64> = HashMap::new();
            for p in paths {
                let path = format!("/{p}");
                *truth.entry(path.clone()).or_default() += 1;
                table.record(&path, seen(true));
                prop_assert!(table.len() <= max);
            }
            for (path, stat) in table.ranked() {
                let real = truth[&path];
                prop_assert!(stat.hits >= real);
                prop_assert!(stat.hits - stat.overestimate <= real);
            }
        }
    }
}

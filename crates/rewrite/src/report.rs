//! What the admin API shows: which objects go to the CDN and why, page and cache counters.
//! Plain serde data, built on demand by [`Rewriter::report`](crate::Rewriter::report).

use std::collections::HashSet;

use serde::Serialize;

use crate::policy::LeaveAlone;
use crate::rules::{Compiled, Mode};
use crate::stats::{ObjectStat, Selection};

/// What is served from the CDN and why, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct CdnReport {
    /// The CDN host template.
    pub cdn_host: String,
    /// How URLs are chosen.
    pub mode: Mode,
    /// Configured path prefixes.
    pub path_prefixes: Vec<String>,
    /// Configured extensions.
    pub extensions: Vec<String>,
    /// Configured content-type prefixes (auto mode).
    pub content_types: Vec<String>,
    /// Fraction of responses sampled.
    pub sample_rate: f64,
    /// Sampled objects, most hits first, with the decision for each.
    pub objects: Vec<ObjectReport>,
    /// Page counters.
    pub pages: PageCounters,
    /// Page cache counters.
    pub cache: CacheStats,
}

/// One sampled object and whether it is served from the CDN.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// Absolute path on this site.
    pub path: String,
    /// Its sampled statistics.
    #[serde(flatten)]
    pub stat: ObjectStat,
    /// Whether references to it are rewritten to the CDN.
    pub on_cdn: bool,
    /// Why (or why not).
    pub why: Why,
}

/// The reason for an [`ObjectReport`]'s decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Why {
    /// Explicit mode: its path matches a prefix or extension.
    MatchesRules,
    /// Auto mode: static and popular enough.
    Popular,
    /// Its path matches no prefix or extension.
    OutsideRules,
    /// Auto mode: its content type is not one of the configured ones.
    ContentType,
    /// Auto mode: not cacheable by a shared cache, so not static.
    NotStatic,
    /// Auto mode: fewer sampled hits than `min_hits`.
    TooFewHits,
    /// Auto mode: eligible but not among the `top_k` most hit.
    OutsideTopK,
}

/// Counters of pages seen by the rewriter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PageCounters {
    /// Pages streamed through the rewriter.
    pub rewritten: u64,
    /// URLs changed to CDN URLs (cached copies served again are not counted).
    pub urls_rewritten: u64,
    /// Rewritten bodies that ended with an error (bad input, back-end failure).
    pub errors: u64,
    /// Responses sampled into the object statistics.
    pub sampled: u64,
    /// Responses passed through unchanged, by reason.
    pub left_alone: Vec<(LeaveAlone, u64)>,
}

/// Counters of the page cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Requests answered from the cache (including 304s).
    pub hits: u64,
    /// Cacheable requests not found in the cache.
    pub misses: u64,
    /// Hits answered with 304 Not Modified.
    pub not_modified: u64,
    /// Pages stored.
    pub stores: u64,
    /// Pages evicted to make room.
    pub evictions: u64,
    /// Pages held now.
    pub entries: u64,
    /// Bytes held now (bodies plus a fixed overhead per entry).
    pub bytes: u64,
}

/// The decision for one object: on the CDN or not, and why. `auto` carries the selection
/// thresholds and the chosen set when in `auto` mode.
pub(crate) fn why(
    rules: &Compiled,
    auto: Option<&(Selection, HashSet<String>)>,
    path: &str,
    stat: &ObjectStat,
) -> (bool, Why) {
    if !rules.path_matches(path) {
        return (false, Why::OutsideRules);
    }
    let Some((selection, chosen)) = auto else {
        return (true, Why::MatchesRules);
    };
    if !rules.content_type_matches(&stat.content_type) {
        (false, Why::ContentType)
    } else if !stat.cacheable {
        (false, Why::NotStatic)
    } else if stat.hits < selection.min_hits {
        (false, Why::TooFewHits)
    } else if chosen.contains(path) {
        (true, Why::Popular)
    } else {
        (false, Why::OutsideTopK)
    }
}

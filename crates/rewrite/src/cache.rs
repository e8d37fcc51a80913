//! The cache of rewritten pages (claim 15): a byte-bounded LRU of finished, re-encoded bodies
//! keyed by host, URL, content coding and client token, each with its expiry.
//!
//! It only stores and finds; the decisions (what is cacheable, when a conditional request is
//! satisfied) live in `policy`, the counters in the `Rewriter`. Time is a parameter.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use lru::LruCache;

use crate::policy::Coding;

/// Fixed cost charged per entry on top of its body, for key and headers: keeps a flood of tiny
/// pages from exceeding the memory bound.
const ENTRY_OVERHEAD_BYTES: usize = 512;

/// Identity of a cached page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub(crate) host: String,
    pub(crate) path_and_query: String,
    pub(crate) coding: Coding,
    /// The client token when the CDN host template has one: pages differ per client network.
    pub(crate) token: Option<String>,
}

/// A rewritten page as sent.
#[derive(Debug)]
pub(crate) struct CachedPage {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) stored_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    /// `Age` the page already had when stored.
    pub(crate) age_at_store: std::time::Duration,
}

/// Byte-bounded LRU of [`CachedPage`]s.
#[derive(Debug)]
pub(crate) struct PageCache {
    lru: LruCache<CacheKey, Arc<CachedPage>>,
    bytes: usize,
    capacity: usize,
    /// Entries dropped to make room.
    pub(crate) evictions: u64,
}

impl CachedPage {
    fn cost(&self) -> usize {
        self.body.len() + ENTRY_OVERHEAD_BYTES
    }
}

impl PageCache {
    /// An empty cache of at most `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lru: LruCache::unbounded(),
            bytes: 0,
            capacity,
            evictions: 0,
        }
    }

    /// The largest body worth capturing: one page may take at most a quarter of the cache so a
    /// single huge page cannot flush everything else.
    pub(crate) fn max_entry_bytes(&self) -> usize {
        (self.capacity / 4).saturating_sub(ENTRY_OVERHEAD_BYTES)
    }

    /// The fresh page for `key` at `now`, refreshing its recency; drops it when expired.
    pub(crate) fn get(&mut self, key: &CacheKey, now: SystemTime) -> Option<Arc<CachedPage>> {
        let page = self.lru.get(key)?.clone();
        if page.expires_at <= now {
            self.remove(key);
            return None;
        }
        Some(page)
    }

    /// Stores `page`, evicting least-recently-used pages until it fits.
    pub(crate) fn insert(&mut self, key: CacheKey, page: CachedPage) {
        let cost = page.cost();
        if cost > self.capacity {
            return;
        }
        self.remove(&key);
        while self.bytes + cost > self.capacity {
            match self.lru.pop_lru() {
                Some((_, old)) => {
                    self.bytes -= old.cost();
                    self.evictions += 1;
                }
                None => break,
            }
        }
        self.bytes += cost;
        self.lru.put(key, Arc::new(page));
    }

    /// Drops every page (the rules changed).
    pub(crate) fn clear(&mut self) {
        self.lru.clear();
        self.bytes = 0;
    }

    /// Number of pages held.
    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }

    /// Bytes charged for the pages held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(old) = self.lru.pop(key) {
            self.bytes -= old.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(path: &str) -> CacheKey {
        CacheKey {
            host: "h".into(),
            path_and_query: path.into(),
            coding: Coding::Identity,
            token: None,
        }
    }

    fn page(len: usize, expires_at: SystemTime) -> CachedPage {
        CachedPage {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; len]),
            stored_at: SystemTime::UNIX_EPOCH,
            expires_at,
            age_at_store: Duration::ZERO,
        }
    }

    #[test]
    fn bounded_by_bytes_and_evicts_least_recent() {
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut cache = PageCache::new(3 * (1000 + ENTRY_OVERHEAD_BYTES));
        for p in ["/a", "/b", "/c"] {
            cache.insert(key(p), page(1000, later));
        }
        assert!(cache.get(&key("/a"), SystemTime::UNIX_EPOCH).is_some());
        cache.insert(key("/d"), page(1000, later));
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&key("/b"), SystemTime::UNIX_EPOCH).is_none(),
            "b was least recent"
        );
        assert_eq!(cache.evictions, 1);
        assert!(cache.bytes() <= 3 * (1000 + ENTRY_OVERHEAD_BYTES));
    }

    #[test]
    fn expired_pages_are_dropped() {
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let mut cache = PageCache::new(1 << 20);
        cache.insert(key("/a"), page(10, expiry));
        assert!(cache
            .get(&key("/a"), expiry - Duration::from_secs(1))
            .is_some());
        assert!(cache.get(&key("/a"), expiry).is_none());
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.bytes(), 0);
    }
}

//! [`Rewriter`]: the shared state of one service (rules swapped atomically on reload, sampled
//! object statistics, the page cache, counters) and the two calls of the response path:
//! [`Rewriter::serve_cached`] before asking a back-end, [`Rewriter::rewrite`] on its response.
//!
//! Decisions come from `policy` (headers), `rules` (URL shapes) and `stats` (traffic); this module
//! only wires them and keeps the state. Time is a parameter of the `*_at` variants.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_RANGES, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION,
    DATE, ETAG, EXPIRES, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::body::{Capture, Job, RewriteBody};
use crate::cache::{CacheKey, CachedPage, PageCache};
use crate::html::PageRewrite;
use crate::pipeline::Pipeline;
use crate::policy::{self, Coding, LEAVE_ALONE_REASONS};
use crate::report::{why, CacheStats, CdnReport, ObjectReport, PageCounters};
use crate::request::RequestInfo;
use crate::rules::{CdnRules, Compiled, Mode, RulesError};
use crate::stats::{ObjectStat, ObjectTable, Observation, Sampler, Selection};

/// Header set on responses served from the page cache, so operators (and tests) can tell.
pub const CACHE_STATUS_HEADER: &str = "x-pentaflow-cache";
/// How often, at most, the `auto` selection is recomputed from the statistics: often enough to
/// follow traffic, rarely enough that a sort of the table is not paid per page.
const RESELECT_INTERVAL: Duration = Duration::from_secs(1);
/// Headers a 304 from the cache repeats (RFC 9110 15.4.5).
const NOT_MODIFIED_HEADERS: [HeaderName; 6] =
    [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY];

/// Shared state of one service. Cheap to clone (an `Arc`); share one per service.
#[derive(Debug, Clone)]
pub struct Rewriter {
    shared: Arc<Shared>,
}

/// State shared with every body being rewritten.
#[derive(Debug)]
pub(crate) struct Shared {
    rules: ArcSwap<Compiled>,
    /// Outside the objects' lock: most responses are not sampled and should not take it.
    sampler: Sampler,
    objects: Mutex<Objects>,
    /// The page cache and the rules generation it was filled under (one lock: a reload and a
    /// store cannot interleave).
    cache: Mutex<CacheState>,
    counters: Counters,
}

#[derive(Debug)]
struct Objects {
    table: ObjectTable,
    selected: Arc<HashSet<String>>,
    dirty: bool,
    last_select: Option<SystemTime>,
}

#[derive(Debug)]
struct CacheState {
    pages: PageCache,
    generation: u64,
}

#[derive(Debug, Default)]
struct Counters {
    pages_rewritten: AtomicU64,
    urls_rewritten: Arc<AtomicU64>,
    errors: AtomicU64,
    sampled: AtomicU64,
    left_alone: [AtomicU64; LEAVE_ALONE_REASONS.len()],
    hits: AtomicU64,
    misses: AtomicU64,
    not_modified: AtomicU64,
    stores: AtomicU64,
}

impl Rewriter {
    /// A rewriter for `rules` with a page cache of `cache_bytes` (0 disables it).
    pub fn new(rules: CdnRules, cache_bytes: usize) -> Result<Self, RulesError> {
        let compiled = Compiled::new(rules)?;
        let objects = Objects {
            table: ObjectTable::new(compiled.rules.max_objects),
            selected: Arc::default(),
            dirty: true,
            last_select: None,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                rules: ArcSwap::from_pointee(compiled),
                sampler: Sampler::default(),
                objects: Mutex::new(objects),
                cache: Mutex::new(CacheState {
                    pages: PageCache::new(cache_bytes),
                    generation: 0,
                }),
                counters: Counters::default(),
            }),
        })
    }

    /// Replaces the rules (config reload) and empties the page cache. Invalid rules are refused
    /// and the old ones keep serving.
    pub fn set_rules(&self, rules: CdnRules) -> Result<(), RulesError> {
        let compiled = Compiled::new(rules)?;
        {
            let mut objects = lock(&self.shared.objects);
            if compiled.rules.max_objects != self.shared.rules.load().rules.max_objects {
                objects.table = ObjectTable::new(compiled.rules.max_objects);
            }
            objects.dirty = true;
            objects.last_select = None;
            objects.selected = Arc::default();
        }
        self.shared.rules.store(Arc::new(compiled));
        self.shared.invalidate();
        Ok(())
    }

    /// The rules in force.
    pub fn rules(&self) -> CdnRules {
        self.shared.rules.load().rules.clone()
    }

    /// Adjusts the request to the back-end: with `ask_identity_from_backend`, page requests
    /// (those accepting `text/html`) ask for an uncompressed body so it need not be decoded.
    pub fn prepare_upstream(&self, req: &RequestInfo, upstream_headers: &mut HeaderMap) {
        let wants_html = req
            .headers
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if self.shared.rules.load().rules.ask_identity_from_backend
            && wants_html
            && (req.method == Method::GET || req.method == Method::POST)
        {
            upstream_headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
    }

    /// [`Rewriter::serve_cached_at`] now.
    pub fn serve_cached<B>(&self, req: &RequestInfo) -> Option<Response<RewriteBody<B>>> {
        self.serve_cached_at(req, SystemTime::now())
    }

    /// The cached rewritten page for `req` at `now`, if fresh: 200 with the page, or 304 when the
    /// request's conditionals match it. `None` means: ask the back-end.
    pub fn serve_cached_at<B>(
        &self,
        req: &RequestInfo,
        now: SystemTime,
    ) -> Option<Response<RewriteBody<B>>> {
        if !policy::request_cacheable(&req.method, &req.headers) {
            return None;
        }
        let host = req.host.as_deref()?.to_ascii_lowercase();
        let token = self.shared.rules.load().client_token(req.client_ip);
        let page = {
            let mut cache = lock(&self.shared.cache);
            Coding::PREFERENCE
                .into_iter()
                .filter(|c| policy::accepts(&req.headers, *c))
                .find_map(|coding| {
                    let key = CacheKey {
                        host: host.clone(),
                        path_and_query: req.path_and_query.clone(),
                        coding,
                        token: token.clone(),
                    };
                    cache.pages.get(&key, now)
                })
        };
        let Some(page) = page else {
            self.shared.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.shared.counters.hits.fetch_add(1, Ordering::Relaxed);
        let age = page.age_at_store + now.duration_since(page.stored_at).unwrap_or_default();
        let header = |name: &HeaderName| page.headers.get(name).and_then(|v| v.to_str().ok());
        let mut resp = if policy::not_modified(&req.headers, header(&ETAG), header(&LAST_MODIFIED))
        {
            self.shared
                .counters
                .not_modified
                .fetch_add(1, Ordering::Relaxed);
            let mut resp = Response::new(RewriteBody::full(Bytes::new()));
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            for name in NOT_MODIFIED_HEADERS.iter().chain([&LAST_MODIFIED]) {
                for value in page.headers.get_all(name) {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
            }
            resp
        } else {
            let mut resp = Response::new(RewriteBody::full(page.body.clone()));
            *resp.status_mut() = page.status;
            *resp.headers_mut() = page.headers.clone();
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(page.body.len()));
            resp
        };
        resp.headers_mut()
            .insert(AGE, HeaderValue::from(age.as_secs()));
        resp.headers_mut()
            .insert(CACHE_STATUS_HEADER, HeaderValue::from_static("hit"));
        Some(resp)
    }

    /// [`Rewriter::rewrite_at`] now.
    pub fn rewrite<B>(&self, resp: Response<B>, req: &RequestInfo) -> Response<RewriteBody<B>> {
        self.rewrite_at(resp, req, SystemTime::now())
    }

    /// The response to send for the back-end's `resp` to `req`: unchanged when it must be left
    /// alone, else with a streaming rewritten body (Content-Length dropped, ETag made weak), and
    /// copied into the page cache when it is static. Also samples objects for `auto` mode.
    pub fn rewrite_at<B>(
        &self,
        resp: Response<B>,
        req: &RequestInfo,
        now: SystemTime,
    ) -> Response<RewriteBody<B>> {
        let (mut parts, body) = resp.into_parts();
        let rules = self.shared.rules.load_full();
        let limit = rules.rules.max_decoded_page_bytes;
        let plan = match policy::plan(
            &req.method,
            &req.headers,
            parts.status,
            &parts.headers,
            limit,
        ) {
            Ok(plan) => plan,
            Err(reason) => {
                if let Some(i) = LEAVE_ALONE_REASONS.iter().position(|r| *r == reason) {
                    self.shared.counters.left_alone[i].fetch_add(1, Ordering::Relaxed);
                }
                if reason == policy::LeaveAlone::NotHtml {
                    self.observe(&rules, req, parts.status, &parts.headers, now);
                }
                return Response::from_parts(parts, RewriteBody::pass(body));
            }
        };
        self.shared
            .counters
            .pages_rewritten
            .fetch_add(1, Ordering::Relaxed);
        let token = rules.client_token(req.client_ip);
        let selected = match rules.rules.mode {
            Mode::Explicit => None,
            Mode::Auto { min_hits, top_k } => {
                Some(self.selected(&rules, Selection { min_hits, top_k }, now))
            }
        };
        let generation = lock(&self.shared.cache).generation;

        let headers = &mut parts.headers;
        headers.remove(CONTENT_LENGTH);
        headers.remove(ACCEPT_RANGES);
        headers.remove("content-md5");
        let weak = headers
            .get(ETAG)
            .and_then(|e| e.to_str().ok())
            .map(policy::weaken_etag)
            .and_then(|e| HeaderValue::from_str(&e).ok());
        if let Some(weak) = weak {
            headers.insert(ETAG, weak);
        }

        let capture = self.capture_plan(req, &parts, plan.coding, token.clone(), generation, now);
        let page = PageRewrite {
            cdn_host: rules.cdn_host(token.as_deref()),
            request_host: req.bare_host(),
            page_path: req.path().to_owned(),
            selected,
            stop: Arc::default(),
            rewritten: self.shared.counters.urls_rewritten.clone(),
            rules,
        };
        let job = Job {
            pipe: Pipeline::new(&plan, page, limit),
            capture,
            shared: self.shared.clone(),
        };
        Response::from_parts(parts, RewriteBody::rewrite(body, job))
    }

    /// Page cache counters.
    pub fn stats(&self) -> CacheStats {
        let c = &self.shared.counters;
        let cache = lock(&self.shared.cache);
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            stores: c.stores.load(Ordering::Relaxed),
            evictions: cache.pages.evictions,
            entries: cache.pages.len() as u64,
            bytes: cache.pages.bytes() as u64,
        }
    }

    /// What is served from the CDN and why (for the admin API).
    pub fn report(&self) -> CdnReport {
        let rules = self.shared.rules.load_full();
        let objects = {
            let objects = lock(&self.shared.objects);
            let selection = match rules.rules.mode {
                Mode::Auto { min_hits, top_k } => {
                    let selection = Selection { min_hits, top_k };
                    Some((
                        selection,
                        objects.table.select(selection, &eligible(&rules)),
                    ))
                }
                _ => None,
            };
            objects
                .table
                .ranked()
                .into_iter()
                .map(|(path, stat)| {
                    let (on_cdn, why) = why(&rules, selection.as_ref(), &path, &stat);
                    ObjectReport {
                        path,
                        stat,
                        on_cdn,
                        why,
                    }
                })
                .collect()
        };
        let c = &self.shared.counters;
        let r = &rules.rules;
        CdnReport {
            cdn_host: r.cdn_host.clone(),
            mode: r.mode.clone(),
            path_prefixes: r.path_prefixes.clone(),
            extensions: r.extensions.clone(),
            content_types: r.content_types.clone(),
            sample_rate: r.sample_rate,
            objects,
            pages: PageCounters {
                rewritten: c.pages_rewritten.load(Ordering::Relaxed),
                urls_rewritten: c.urls_rewritten.load(Ordering::Relaxed),
                errors: c.errors.load(Ordering::Relaxed),
                sampled: c.sampled.load(Ordering::Relaxed),
                left_alone: LEAVE_ALONE_REASONS
                    .iter()
                    .zip(&c.left_alone)
                    .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
                    .collect(),
            },
            cache: self.stats(),
        }
    }

    /// Samples a non-HTML response into the object statistics.
    fn observe(
        &self,
        rules: &Compiled,
        req: &RequestInfo,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) {
        if req.method != Method::GET || status != StatusCode::OK {
            return;
        }
        if !self.shared.sampler.sample(rules.rules.sample_rate) {
            return;
        }
        let seen = Observation {
            bytes: policy::content_length(headers).unwrap_or(0),
            content_type: policy::media_type(headers),
            cacheable: policy::object_lifetime(headers, now).is_some(),
        };
        let mut objects = lock(&self.shared.objects);
        objects.table.record(req.path(), seen);
        objects.dirty = true;
        self.shared.counters.sampled.fetch_add(1, Ordering::Relaxed);
    }

    /// The `auto` selection, recomputed when the statistics changed (at most once per
    /// [`RESELECT_INTERVAL`]); a changed selection empties the page cache.
    fn selected(
        &self,
        rules: &Compiled,
        selection: Selection,
        now: SystemTime,
    ) -> Arc<HashSet<String>> {
        let mut objects = lock(&self.shared.objects);
        let due = objects
            .last_select
            .is_none_or(|last| now.duration_since(last).unwrap_or_default() >= RESELECT_INTERVAL);
        if !(objects.dirty && due) {
            return objects.selected.clone();
        }
        objects.dirty = false;
        objects.last_select = Some(now);
        let fresh = objects.table.select(selection, &eligible(rules));
        if fresh == *objects.selected {
            return objects.selected.clone();
        }
        objects.selected = Arc::new(fresh);
        let selected = objects.selected.clone();
        drop(objects);
        self.shared.invalidate();
        selected
    }

    /// Where to keep a copy of the rewritten page, when it may be cached.
    fn capture_plan(
        &self,
        req: &RequestInfo,
        parts: &http::response::Parts,
        coding: Coding,
        token: Option<String>,
        generation: u64,
        now: SystemTime,
    ) -> Option<Capture> {
        if !policy::request_cacheable(&req.method, &req.headers) {
            return None;
        }
        let fresh = policy::freshness(parts.status, &parts.headers, now)?;
        let limit = lock(&self.shared.cache).pages.max_entry_bytes();
        if limit == 0 {
            return None;
        }
        Some(Capture {
            key: CacheKey {
                host: req.host.as_deref()?.to_ascii_lowercase(),
                path_and_query: req.path_and_query.clone(),
                coding,
                token,
            },
            page: CachedPage {
                status: parts.status,
                headers: parts.headers.clone(),
                body: Bytes::new(),
                stored_at: now,
                expires_at: fresh.expires_at,
                age_at_store: fresh.age_at_store,
            },
            buf: BytesMut::new(),
            limit,
            generation,
        })
    }
}

impl Shared {
    /// Stores a finished page unless the rules changed while it streamed.
    pub(crate) fn store_page(&self, capture: Capture) {
        let Capture {
            key,
            mut page,
            buf,
            generation,
            ..
        } = capture;
        page.body = buf.freeze();
        let mut cache = lock(&self.cache);
        if cache.generation == generation {
            cache.pages.insert(key, page);
            self.counters.stores.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a rewritten body that ended with an error. Logged at debug only: a back-end
    /// sending broken pages would otherwise flood the log at request rate.
    pub(crate) fn count_error(&self, error: &crate::RewriteError) {
        tracing::debug!(error = %error, source = ?std::error::Error::source(error), "rewritten body ended early");
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn invalidate(&self) {
        let mut cache = lock(&self.cache);
        cache.generation += 1;
        cache.pages.clear();
    }
}

/// Entry point on the response path: [`Rewriter::rewrite`] as a free function.
pub fn rewrite_response<B>(
    resp: Response<B>,
    req: &RequestInfo,
    rw: &Rewriter,
) -> Response<RewriteBody<B>> {
    rw.rewrite(resp, req)
}

/// Whether an object may be chosen in `auto` mode, whatever its hits.
pub(crate) fn eligible(rules: &Compiled) -> impl Fn(&str, &ObjectStat) -> bool + '_ {
    move |path, stat| {
        stat.cacheable && rules.path_matches(path) && rules.content_type_matches(&stat.content_type)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the state consistent at each step, so a panic elsewhere
    // while holding the lock does not make the data unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

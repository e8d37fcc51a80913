//! A load-balanced service at run time and its per-request scheduler.
//!
//! Owns: the back-ends of one `[[service]]`, the scheduling state (round-robin position, the
//! session hash groups, the cookie codec) and the decision for one request: persistence first
//! (injected cookie or session-ID hash group), then the base policy. State that clients depend
//! on — back-end statistics and pools, session groups — is carried over a reload by back-end
//! name, so stickiness survives it. It must not do I/O.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::request::Parts;
use pentaflow_balance::{
    hash::stable_hash, least_connections, url_hash_pick, BackendId, Candidate, CookieCodec,
    CookieLifetime, Freshness, SessionGroups, SmoothWeightedRoundRobin, WebServerStatus,
};
use pentaflow_config::{BackendAdminState, Persistence, Policy, ServiceConfig};

use crate::backend::{duration_ms, Backend};
use crate::clock::{now_ms, unix_secs};
use crate::error::ProxyError;
use crate::persistence::{find_cookie, session_id};
use crate::upstream_tls::UpstreamTls;
use pentaflow_config::CdnConfig;
use pentaflow_rewrite::{CdnRules, Mode, Rewriter};

/// One service's back-ends and scheduling state.
pub(crate) struct Service {
    pub(crate) name: Arc<str>,
    pub(crate) config: ServiceConfig,
    pub(crate) backends: Vec<Arc<Backend>>,
    by_id: HashMap<BackendId, usize>,
    round_robin: Mutex<SmoothWeightedRoundRobin>,
    /// Rotates ties among equally loaded back-ends so they share new work.
    tiebreak: AtomicU64,
    pub(crate) sessions: Option<Mutex<SessionGroups>>,
    pub(crate) cookies: Option<CookieCodec>,
    /// `max_idle`/`max_life` of the injected cookie, in seconds.
    cookie_lifetime: CookieLifetime,
    /// CDN rewriting of outgoing HTML and its page cache (`[service.cdn]`).
    pub(crate) rewriter: Option<Rewriter>,
    /// Some back-end has `state = "drain"`: new clients must skip it.
    any_draining: bool,
}

/// Why a back-end was chosen (for the access log and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The client's injected cookie named it.
    Cookie,
    /// The session ID's hash group maps to it.
    SessionGroup,
    /// The base policy chose it.
    Policy,
}

impl Reason {
    /// The word used in the access log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Cookie => "cookie",
            Self::SessionGroup => "session",
            Self::Policy => "policy",
        }
    }
}

/// The scheduler's answer for one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub(crate) index: usize,
    pub(crate) reason: Reason,
    /// Whether the response must carry a (new or refreshed) persistence cookie.
    pub(crate) inject_cookie: bool,
    /// When the client's cookie was first issued, if it is being refreshed (kept, so
    /// `max_life` counts from the first visit); `None` for a new cookie.
    pub(crate) cookie_issued: Option<u32>,
}

impl Service {
    /// Builds the run-time service, taking over back-ends (same name and address) and session
    /// groups (same size) from `previous`; a new back-end gets `pools` connection pools (one
    /// per worker number, see backend.rs).
    pub(crate) fn new(
        config: ServiceConfig,
        previous: Option<&Service>,
        pools: usize,
    ) -> Result<Self, ProxyError> {
        let tls = match &config.backend_tls {
            None => None,
            Some(settings) => {
                // Keep the previous connector (and its pooled connections) if nothing changed.
                let old = previous
                    .and_then(|p| p.backends.first())
                    .and_then(|b| b.tls.clone())
                    .filter(|t| t.settings == *settings);
                match old {
                    Some(t) => Some(t),
                    None => Some(Arc::new(UpstreamTls::new(settings).map_err(|source| {
                        ProxyError::Tls {
                            service: config.name.clone(),
                            source,
                        }
                    })?)),
                }
            }
        };
        let same_tls = |b: &Backend| match (&b.tls, &tls) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .map(|b| {
                previous
                    .and_then(|p| {
                        p.backends.iter().find(|old| {
                            old.config == *b && same_tls(old) && old.send_proxy == config.send_proxy
                        })
                    })
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Backend::new(
                            b.clone(),
                            tls.clone(),
                            config.send_proxy,
                            pools,
                        ))
                    })
            })
            .collect();
        let by_id = backends
            .iter()
            .enumerate()
            .map(|(i, b)| (b.id, i))
            .collect();
        let sessions = match &config.persistence {
            Persistence::Session(s) => {
                let mut table = previous
                    .and_then(|p| p.sessions.as_ref())
                    .and_then(|m| m.lock().ok().map(|t| t.resized(s.groups)))
                    .unwrap_or_else(|| SessionGroups::new(s.groups));
                if let Some(prev) = previous {
                    for old in &prev.backends {
                        if !backends.iter().any(|b| b.id == old.id) {
                            table.release(old.id);
                        }
                    }
                }
                Some(Mutex::new(table))
            }
            _ => None,
        };
        let (cookies, cookie_lifetime) = match &config.persistence {
            Persistence::Cookie(c) => {
                let names: Vec<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
                let previous: Vec<&[u8]> = c.previous_secrets.iter().map(Vec::as_slice).collect();
                let secs = |d: Option<std::time::Duration>| {
                    d.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
                };
                let lifetime = CookieLifetime {
                    max_idle: secs(c.max_idle),
                    max_life: secs(c.max_life),
                };
                (
                    Some(CookieCodec::with_secrets(&c.secret, &previous, &names)),
                    lifetime,
                )
            }
            _ => (None, CookieLifetime::default()),
        };
        let rewriter = match &config.cdn {
            None => None,
            Some(cdn) => {
                let rules = cdn_rules(cdn, &config.name);
                let invalid = |source| ProxyError::Cdn {
                    service: config.name.clone(),
                    source,
                };
                // Keep the previous rewriter's statistics; new rules empty its cache.
                match previous.and_then(|p| p.rewriter.clone()) {
                    Some(rw) => {
                        if rw.rules() != rules {
                            rw.set_rules(rules).map_err(invalid)?;
                        }
                        Some(rw)
                    }
                    None => Some(Rewriter::new(rules, cdn.cache_bytes).map_err(invalid)?),
                }
            }
        };
        let any_draining = config
            .backends
            .iter()
            .any(|b| b.state == BackendAdminState::Drain);
        Ok(Self {
            any_draining,
            name: Arc::from(config.name.as_str()),
            rewriter,
            backends,
            by_id,
            round_robin: Mutex::new(SmoothWeightedRoundRobin::new()),
            tiebreak: AtomicU64::new(0),
            sessions,
            cookies,
            cookie_lifetime,
            config,
        })
    }

    /// The persistence-cookie value to send for `decision`'s back-end `backend_name`: a fresh
    /// random nonce every time (so no two clients hold the same value), issued now or, when
    /// refreshing, at the time the client's cookie was first issued. `None` without cookie
    /// persistence.
    pub(crate) fn cookie_token(&self, decision: &Decision, backend_name: &str) -> Option<String> {
        let codec = self.cookies.as_ref()?;
        let now = unix_secs();
        let issued = decision.cookie_issued.unwrap_or(now);
        Some(codec.token(backend_name, rand::random(), issued, now))
    }

    pub(crate) fn active_checks(&self) -> bool {
        self.config.health.is_some()
    }

    /// Chooses a back-end for one attempt; `tried` back-ends are excluded. None = nobody left.
    pub(crate) fn schedule(&self, req: &Parts, tried: &[usize]) -> Option<Decision> {
        /// Services with up to this many back-ends take their snapshot on the stack: collecting
        /// it into a `Vec` cost an allocation per request.
        const INLINE: usize = 16;
        let now = now_ms();
        let active_checks = self.active_checks();
        let snapshot = self.backends.iter().enumerate().map(|(i, b)| {
            let mut c = b.candidate(now, active_checks);
            c.available &= !tried.contains(&i);
            c
        });
        if self.backends.len() <= INLINE {
            let unused = Candidate {
                id: BackendId(0),
                weight: 0,
                available: false,
                active: 0,
            };
            let mut buf = [unused; INLINE];
            for (slot, c) in buf.iter_mut().zip(snapshot) {
                *slot = c;
            }
            self.decide(req, &buf[..self.backends.len()], now)
        } else {
            let candidates: Vec<Candidate> = snapshot.collect();
            self.decide(req, &candidates, now)
        }
    }

    /// The decision of [`Service::schedule`] over a snapshot of every back-end.
    fn decide(&self, req: &Parts, candidates: &[Candidate], now: u64) -> Option<Decision> {
        match &self.config.persistence {
            Persistence::None => {
                self.by_policy(req, &self.for_new_clients(candidates))
                    .map(|index| Decision {
                        index,
                        reason: Reason::Policy,
                        inject_cookie: false,
                        cookie_issued: None,
                    })
            }
            Persistence::Cookie(cfg) => {
                let decoded = find_cookie(&req.headers, &cfg.name)
                    .and_then(|v| self.cookies.as_ref()?.decode(v).ok());
                // An expired value is as good as none: the client is scheduled anew.
                let honoured = decoded.and_then(|d| {
                    let freshness = self.cookie_lifetime.judge(&d, unix_secs());
                    let i = self.by_id.get(&d.backend).copied()?;
                    match freshness {
                        Freshness::Expired => None,
                        Freshness::Valid => Some((i, None)),
                        Freshness::Refresh => Some((i, Some(d.issued))),
                    }
                });
                match honoured {
                    Some((i, refresh)) if candidates[i].available => Some(Decision {
                        index: i,
                        reason: Reason::Cookie,
                        inject_cookie: refresh.is_some(),
                        cookie_issued: refresh,
                    }),
                    _ => self
                        .by_policy(req, &self.for_new_clients(candidates))
                        .map(|index| Decision {
                            index,
                            reason: Reason::Policy,
                            inject_cookie: true,
                            cookie_issued: None,
                        }),
                }
            }
            Persistence::Session(cfg) => {
                let (Some(sid), Some(table)) = (session_id(req, cfg), &self.sessions) else {
                    return self
                        .by_policy(req, &self.for_new_clients(candidates))
                        .map(|index| Decision {
                            index,
                            reason: Reason::Policy,
                            inject_cookie: false,
                            cookie_issued: None,
                        });
                };
                let mut table = table.lock().ok()?;
                let group = table.group_of(sid.as_bytes());
                if let Some(i) = table
                    .lookup(group, now)
                    .and_then(|id| self.by_id.get(&id).copied())
                {
                    if candidates[i].available {
                        return Some(Decision {
                            index: i,
                            reason: Reason::SessionGroup,
                            inject_cookie: false,
                            cookie_issued: None,
                        });
                    }
                }
                // First use of the group (or its back-end is gone): the least-loaded one.
                let index =
                    least_connections(&self.for_new_clients(candidates), self.next_tiebreak())?;
                table.assign(group, self.backends[index].id, now);
                Some(Decision {
                    index,
                    reason: Reason::SessionGroup,
                    inject_cookie: false,
                    cookie_issued: None,
                })
            }
        }
    }

    /// The candidates a new client (or a new session group) may be placed on: without the
    /// draining back-ends, which keep only the clients that persist to them. Copies only
    /// while something drains.
    fn for_new_clients<'c>(&self, candidates: &'c [Candidate]) -> Cow<'c, [Candidate]> {
        if !self.any_draining {
            return Cow::Borrowed(candidates);
        }
        let mut fresh = candidates.to_vec();
        for (c, b) in fresh.iter_mut().zip(&self.backends) {
            if b.config.state == BackendAdminState::Drain {
                c.available = false;
            }
        }
        Cow::Owned(fresh)
    }

    fn by_policy(&self, req: &Parts, candidates: &[Candidate]) -> Option<usize> {
        match self.config.policy {
            Policy::LeastConn => least_connections(candidates, self.next_tiebreak()),
            Policy::RoundRobin => self.round_robin.lock().ok()?.next(candidates),
            Policy::UrlHash => {
                let key = req.uri.path_and_query().map_or("/", |p| p.as_str());
                url_hash_pick(
                    stable_hash(key.as_bytes()),
                    candidates,
                    self.config.hash_balance_factor,
                )
            }
        }
    }

    fn next_tiebreak(&self) -> u64 {
        self.tiebreak.fetch_add(1, Ordering::Relaxed)
    }

    /// Session groups idle too long are released so a group can move to a less loaded back-end.
    pub(crate) fn expire_session_groups(&self) {
        if let (Some(table), Persistence::Session(cfg)) = (&self.sessions, &self.config.persistence)
        {
            if let Ok(mut t) = table.lock() {
                t.expire_idle(now_ms(), duration_ms(cfg.group_idle));
            }
        }
    }

    /// This service's rows of the Web Server Status Table.
    pub(crate) fn status_rows(&self) -> Vec<WebServerStatus> {
        let groups = self
            .sessions
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.counts()))
            .unwrap_or_default();
        self.backends
            .iter()
            .map(|b| b.status_row(&self.name, groups.get(&b.id).copied().unwrap_or(0)))
            .collect()
    }
}

/// The rewriter's rules for a `[service.cdn]` table. The client-token seed is derived from the
/// service name, so every node of an array hands a client the same CDN host.
fn cdn_rules(cdn: &CdnConfig, service: &str) -> CdnRules {
    let mut rules = CdnRules::new(cdn.host.clone());
    rules.site_hosts = cdn.site_hosts.clone();
    rules.path_prefixes = cdn.path_prefixes.clone();
    if !cdn.extensions.is_empty() {
        rules.extensions = cdn.extensions.clone();
    }
    if let Some(auto) = &cdn.auto {
        rules.mode = Mode::Auto {
            min_hits: auto.min_hits,
            top_k: auto.top_k,
        };
        rules.content_types = auto.content_types.clone();
    }
    rules.sample_rate = cdn.sample_rate;
    rules.max_decoded_page_bytes = cdn.max_page_bytes;
    rules.ask_identity_from_backend = cdn.ask_identity;
    rules.token_seed = stable_hash(service.as_bytes());
    rules
}

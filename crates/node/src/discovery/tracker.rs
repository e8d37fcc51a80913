//! The pure state of one back-end named by DNS: the last good answer, the addresses draining
//! since they left it, and when to ask again — time is an argument, nothing here does I/O.
//!
//! Lifecycle of an address: it appears in an answer → a back-end `<entry>#<ip:port>` taking
//! clients; it is missing from a later good answer → draining (no new clients, sticky ones
//! stay) for `resolve_drain`; then removed. It comes back while draining → taking clients
//! again (same name, so its stickiness is intact). A failed resolution changes no address:
//! the last good set stays, and the failure is counted and kept for the status page.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pentaflow_config::{BackendAdminState, BackendConfig, DiscoveredBackend, ResolveSettings};

/// A good answer: each address with its weight, and the TTL the resolver reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Addresses (`ip:port`) and their weights (1..=1000).
    pub addresses: BTreeMap<SocketAddr, u32>,
    /// The smallest TTL of the records that gave them.
    pub ttl: Duration,
}

/// One discovered entry's state.
#[derive(Debug)]
pub struct Tracker {
    entry: DiscoveredBackend,
    settings: ResolveSettings,
    current: BTreeMap<SocketAddr, u32>,
    /// Gone from the answer: weight and since when.
    draining: BTreeMap<SocketAddr, (u32, Instant)>,
    next_resolve: Instant,
    /// When the name last resolved.
    pub last_success: Option<Instant>,
    /// The last failure's text, until the next success.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Resolutions that succeeded, since start.
    pub resolved_ok: u64,
    /// Resolutions that failed, since start.
    pub resolved_failed: u64,
}

impl Tracker {
    /// A tracker that asks at once.
    pub fn new(entry: DiscoveredBackend, settings: ResolveSettings, now: Instant) -> Self {
        Tracker {
            entry,
            settings,
            current: BTreeMap::new(),
            draining: BTreeMap::new(),
            next_resolve: now,
            last_success: None,
            last_error: None,
            consecutive_failures: 0,
            resolved_ok: 0,
            resolved_failed: 0,
        }
    }

    /// The entry it follows.
    pub fn entry(&self) -> &DiscoveredBackend {
        &self.entry
    }

    /// Takes the outcome of a resolution made at `now`.
    pub fn observe(&mut self, outcome: Result<Answer, String>, now: Instant) {
        match outcome {
            Ok(answer) => {
                for (addr, weight) in &self.current {
                    if !answer.addresses.contains_key(addr) {
                        self.draining.insert(*addr, (*weight, now));
                    }
                }
                for addr in answer.addresses.keys() {
                    self.draining.remove(addr);
                }
                self.current = answer.addresses;
                self.next_resolve = now + self.clamp(answer.ttl);
                self.last_success = Some(now);
                self.last_error = None;
                self.consecutive_failures = 0;
                self.resolved_ok += 1;
            }
            Err(error) => {
                self.last_error = Some(error);
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.resolved_failed += 1;
                self.next_resolve = now + self.retry_delay();
            }
        }
    }

    /// Drops the addresses whose drain is over at `now`.
    pub fn expire(&mut self, now: Instant) {
        let drain = self.settings.drain;
        self.draining
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < drain);
    }

    /// Whether a resolution is due at `now`.
    pub fn resolve_due(&self, now: Instant) -> bool {
        now >= self.next_resolve
    }

    /// When something is next to do: a resolution, or the end of a drain.
    pub fn next_wake(&self) -> Instant {
        let drain_ends = self
            .draining
            .values()
            .map(|(_, since)| *since + self.settings.drain);
        drain_ends.fold(self.next_resolve, Instant::min)
    }

    /// The back-ends this entry stands for now: the answer's addresses in the entry's state,
    /// then the draining ones (in maintenance if the entry is).
    pub fn backends(&self) -> Vec<BackendConfig> {
        let leaving = match self.entry.state {
            BackendAdminState::Maintenance => BackendAdminState::Maintenance,
            _ => BackendAdminState::Drain,
        };
        let current = self.current.iter().map(|(a, w)| (a, *w, self.entry.state));
        let draining = self.draining.iter().map(|(a, (w, _))| (a, *w, leaving));
        current
            .chain(draining)
            .map(|(address, weight, state)| BackendConfig {
                name: self.backend_name(address),
                address: *address,
                weight,
                state,
            })
            .collect()
    }

    /// The addresses of the last good answer.
    pub fn addresses(&self) -> impl Iterator<Item = &SocketAddr> {
        self.current.keys()
    }

    /// The addresses draining.
    pub fn draining(&self) -> impl Iterator<Item = &SocketAddr> {
        self.draining.keys()
    }

    /// `<entry>#<ip:port>`: `#` is not allowed in the file's names, so it never clashes.
    fn backend_name(&self, address: &SocketAddr) -> String {
        format!("{}#{address}", self.entry.name)
    }

    /// A TTL within `resolve_min_ttl..=resolve_max_ttl`.
    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.settings.min_ttl, self.settings.max_ttl)
    }

    /// After a failure: `resolve_min_ttl`, doubled with each failure in a row, at most
    /// `resolve_max_ttl` — a dead DNS server is not hammered, a blip is retried soon.
    fn retry_delay(&self) -> Duration {
        let doublings = self.consecutive_failures.saturating_sub(1).min(16);
        (self.settings.min_ttl * (1u32 << doublings)).min(self.settings.max_ttl)
    }
}

#[cfg(test)]
mod tests;

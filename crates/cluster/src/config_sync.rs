//! Two-phase configuration push and commit (seed 002 "Configuration").
//!
//! Phase one, `push`: the coordinating node (any node an operator talks to) validates the text
//! itself, then sends it in chunks to every alive node; each validates it with the validator
//! given to this core and answers with an ack or a nack (with the reason). Chunks are resent
//! to nodes that have not answered until a deadline.
//!
//! Phase two, `commit`: allowed only when every alive node acked; the coordinator broadcasts
//! the commit (resent to nodes still announcing an older config version) and every node makes
//! the text active under the new version. On any nack, nothing changes anywhere.
//!
//! Catch-up: a node that joins (or restarts) after a commit announces an older version; one
//! node holding the newest text (the lowest id among them, so only one sends) pushes it the
//! committed text and its commit again, under the original proposal and version, so it
//! validates and activates exactly what the others run.
//!
//! Must not: parse the configuration itself (the validator closure does, so this crate does not
//! depend on `pentaflow-config`), read the clock, or apply anything (the node emits the
//! committed text; the binary applies it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pentaflow_balance::NodeId;

use crate::replication::Outbox;
use crate::wire::{Destination, Message, CONFIG_CHUNK};

/// Largest configuration text: a generous array file is tens of KiB; the limit bounds what a
/// peer can make a node buffer.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Resend unanswered push chunks (and unapplied commits) this often (ms).
const RETRY_MS: u64 = 200;

/// Give up a push that has not been answered by every node within this time (ms).
const PUSH_TIMEOUT_MS: u64 = 5_000;

/// Keep resending a commit to nodes still on an older version for this long (ms).
const COMMIT_RESEND_MS: u64 = 5_000;

/// Send the active text to a node announcing an older version at most this often (ms): a
/// joiner's copy is a few datagrams; a node that refuses it must not cause a storm.
const CATCH_UP_MS: u64 = 1_000;

/// A node must lag this long (ms) before a catch-up: right after a commit every node lags
/// until its next announcement, and the commit itself (and its resends) is enough there.
const CATCH_UP_GRACE_MS: u64 = 500;

/// Validates a configuration text; `Err` carries the reason shown to the operator.
pub type Validator = Box<dyn FnMut(&str) -> Result<(), String> + Send>;

/// What the config core reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigEvent {
    /// Every alive node acked the proposal: it may be committed.
    Ready {
        /// The proposal.
        proposal: u64,
    },
    /// A node refused the proposal; it can no longer be committed.
    Rejected {
        /// The proposal.
        proposal: u64,
        /// The node that refused.
        node: NodeId,
        /// Its reason.
        reason: String,
    },
    /// Not every node answered in time.
    TimedOut {
        /// The proposal.
        proposal: u64,
    },
    /// A configuration became active on this node.
    Committed {
        /// Its version.
        version: u64,
        /// Its text.
        text: Arc<str>,
    },
}

/// Why an operator's push or commit was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSyncError {
    /// The text is longer than [`MAX_CONFIG_BYTES`].
    #[error("configuration of {len} bytes is larger than {MAX_CONFIG_BYTES}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// This node's own validator refused the text.
    #[error("configuration is invalid here: {reason}")]
    Invalid {
        /// The validator's reason.
        reason: String,
    },
    /// Another proposal of this node is still being pushed.
    #[error("proposal {proposal} is still being pushed")]
    Busy {
        /// That proposal.
        proposal: u64,
    },
    /// No such proposal on this node (finished, timed out or never pushed here).
    #[error("no pending proposal {proposal} on this node")]
    Unknown {
        /// The proposal asked for.
        proposal: u64,
    },
    /// Some alive nodes have not acked yet.
    #[error("proposal {proposal} is not acked by {missing:?}")]
    NotReady {
        /// The proposal.
        proposal: u64,
        /// Alive nodes without an ack.
        missing: Vec<NodeId>,
    },
    /// A node refused the proposal.
    #[error("proposal {proposal} was refused by node {}: {reason}", node.0)]
    Rejected {
        /// The proposal.
        proposal: u64,
        /// The node.
        node: NodeId,
        /// Its reason.
        reason: String,
    },
}

/// The config state of a node: its active version and text, what it received, what it pushes.
pub struct ConfigSync {
    version: u64,
    active: Option<Arc<str>>,
    /// The proposal the active text was committed under (what a catch-up resends).
    active_proposal: u64,
    /// Catch-up: since when each lagging node lags, and when it was last sent the text.
    caught_up: BTreeMap<NodeId, (u64, Option<u64>)>,
    validator: Validator,
    incoming: Option<Incoming>,
    pushing: Option<Proposal>,
    /// `(proposal, version, committed at, last resend)` of this node's last commit.
    committing: Option<(u64, u64, u64, u64)>,
    proposals: u64,
}

/// A validator's answer and, when it accepted, the text to activate on commit.
type Verdict = (Result<(), String>, Option<Arc<str>>);

/// A proposal being received.
struct Incoming {
    proposal: u64,
    version: u64,
    buf: Vec<u8>,
    got: Vec<bool>,
    missing: usize,
    /// The validator's answer and, if it accepted, the text.
    verdict: Option<Verdict>,
}

/// A proposal this node pushes.
struct Proposal {
    id: u64,
    version: u64,
    text: Arc<str>,
    acks: BTreeMap<NodeId, Result<(), String>>,
    started: u64,
    last_send: u64,
    ready: bool,
}

impl std::fmt::Debug for ConfigSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSync")
            .field("version", &self.version)
            .field("pushing", &self.pushing.as_ref().map(|p| p.id))
            .finish_non_exhaustive()
    }
}

impl ConfigSync {
    /// Version 0, no active text, checking proposals with `validator`.
    #[must_use]
    pub fn new(validator: Validator) -> Self {
        Self {
            version: 0,
            active: None,
            active_proposal: 0,
            caught_up: BTreeMap::new(),
            validator,
            incoming: None,
            pushing: None,
            committing: None,
            proposals: 0,
        }
    }

    /// The active version.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The active text, if any was committed.
    #[must_use]
    pub fn active(&self) -> Option<Arc<str>> {
        self.active.clone()
    }

    /// Start phase one. `me` makes the proposal id unique in the array, `newest` is the
    /// highest config version announced by any member (the new one is above it).
    pub fn push(
        &mut self,
        me: NodeId,
        text: &str,
        newest: u64,
        targets: &[NodeId],
        now: u64,
        out: &mut Outbox,
    ) -> Result<u64, ConfigSyncError> {
        if let Some(p) = self.pushing.as_ref().filter(|p| !p.ready) {
            return Err(ConfigSyncError::Busy { proposal: p.id });
        }
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigSyncError::TooLarge { len: text.len() });
        }
        (self.validator)(text).map_err(|reason| ConfigSyncError::Invalid { reason })?;
        self.proposals += 1;
        // Unique per node and per push; the node id in the low bits tells whose it is.
        let id = (self.proposals << 16) | u64::from(me.0);
        let p = Proposal {
            id,
            version: newest.max(self.version) + 1,
            text: Arc::from(text),
            acks: targets.iter().map(|&n| (n, Err(String::new()))).collect(),
            started: now,
            last_send: now,
            ready: targets.is_empty(),
        };
        for &n in targets {
            send_chunks((p.id, p.version, &p.text), Destination::Node(n), out);
        }
        // Acks start as a placeholder `Err("")` meaning "not answered yet".
        self.pushing = Some(p);
        Ok(id)
    }

    /// Phase two. `alive` are the other alive nodes now.
    pub fn commit(
        &mut self,
        proposal: u64,
        alive: &[NodeId],
        now: u64,
        out: &mut Outbox,
        events: &mut Vec<ConfigEvent>,
    ) -> Result<u64, ConfigSyncError> {
        let Some(p) = self.pushing.as_ref().filter(|p| p.id == proposal) else {
            return Err(ConfigSyncError::Unknown { proposal });
        };
        if let Some((node, Err(reason))) = p
            .acks
            .iter()
            .find(|(_, a)| matches!(a, Err(r) if !r.is_empty()))
        {
            return Err(ConfigSyncError::Rejected {
                proposal,
                node: *node,
                reason: reason.clone(),
            });
        }
        let missing: Vec<NodeId> = alive
            .iter()
            .copied()
            .filter(|n| !matches!(p.acks.get(n), Some(Ok(()))))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigSyncError::NotReady { proposal, missing });
        }
        let version = p.version;
        let text = Arc::clone(&p.text);
        self.pushing = None;
        out.push((
            Destination::Broadcast,
            Message::ConfigCommit { proposal, version },
        ));
        self.committing = Some((proposal, version, now, now));
        self.activate(proposal, version, text, events);
        Ok(version)
    }

    fn activate(
        &mut self,
        proposal: u64,
        version: u64,
        text: Arc<str>,
        events: &mut Vec<ConfigEvent>,
    ) {
        if version <= self.version {
            return;
        }
        self.version = version;
        self.active_proposal = proposal;
        self.active = Some(Arc::clone(&text));
        events.push(ConfigEvent::Committed { version, text });
    }

    /// A chunk of someone's proposal.
    pub fn on_push(
        &mut self,
        from: NodeId,
        (proposal, version, total, offset): (u64, u64, u32, u32),
        bytes: &[u8],
        out: &mut Outbox,
    ) {
        let (total, offset) = (total as usize, offset as usize);
        let to = Destination::Node(from);
        if total > MAX_CONFIG_BYTES {
            let verdict = Err(format!("configuration of {total} bytes is too large"));
            out.push((to, Message::ConfigAck { proposal, verdict }));
            return;
        }
        let fresh = self
            .incoming
            .as_ref()
            .is_none_or(|i| i.proposal != proposal);
        if fresh {
            let chunks = total.div_ceil(CONFIG_CHUNK).max(1);
            self.incoming = Some(Incoming {
                proposal,
                version,
                buf: vec![0; total],
                got: vec![false; chunks],
                missing: chunks,
                verdict: None,
            });
        }
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        let expected = CONFIG_CHUNK.min(total.saturating_sub(offset));
        if offset % CONFIG_CHUNK != 0 || bytes.len() != expected || (offset >= total && total > 0) {
            return;
        }
        let index = offset / CONFIG_CHUNK;
        if !inc.got[index] {
            inc.buf[offset..offset + expected].copy_from_slice(bytes);
            inc.got[index] = true;
            inc.missing -= 1;
        }
        if inc.missing > 0 {
            return;
        }
        if inc.verdict.is_none() {
            inc.verdict = Some(match std::str::from_utf8(&inc.buf) {
                Err(e) => (Err(format!("configuration is not UTF-8: {e}")), None),
                Ok(text) => match (self.validator)(text) {
                    Ok(()) => (Ok(()), Some(Arc::from(text))),
                    Err(reason) => (Err(reason), None),
                },
            });
        }
        // Answer every complete copy: the coordinator resends only when an ack was lost.
        if let Some((verdict, _)) = &inc.verdict {
            out.push((
                to,
                Message::ConfigAck {
                    proposal,
                    verdict: verdict.clone(),
                },
            ));
        }
    }

    /// A commit from the coordinator: activate the matching validated proposal.
    pub fn on_commit(&mut self, proposal: u64, version: u64, events: &mut Vec<ConfigEvent>) {
        let Some(inc) = self.incoming.as_ref().filter(|i| i.proposal == proposal) else {
            return;
        };
        if inc.version != version {
            return;
        }
        if let Some((Ok(()), Some(text))) = &inc.verdict {
            let text = Arc::clone(text);
            self.activate(proposal, version, text, events);
        }
    }

    /// An answer to this node's push.
    pub fn on_ack(
        &mut self,
        from: NodeId,
        proposal: u64,
        verdict: Result<(), String>,
        events: &mut Vec<ConfigEvent>,
    ) {
        let Some(p) = self.pushing.as_mut().filter(|p| p.id == proposal) else {
            return;
        };
        let verdict = match verdict {
            // An empty reason would read as "not answered": give it words.
            Err(r) if r.is_empty() => Err("refused".to_owned()),
            v => v,
        };
        if let Err(reason) = &verdict {
            events.push(ConfigEvent::Rejected {
                proposal,
                node: from,
                reason: reason.clone(),
            });
        }
        p.acks.insert(from, verdict);
        if !p.ready && p.acks.values().all(Result::is_ok) {
            p.ready = true;
            events.push(ConfigEvent::Ready { proposal });
        }
    }

    /// Resends and deadlines. `alive` are the other alive nodes; `laggards` those announcing
    /// a config version below the one this node committed last.
    pub fn tick(
        &mut self,
        now: u64,
        alive: &[NodeId],
        laggards: &[NodeId],
        out: &mut Outbox,
        events: &mut Vec<ConfigEvent>,
    ) {
        if let Some(p) = self.pushing.as_mut().filter(|p| !p.ready) {
            if now.saturating_sub(p.started) >= PUSH_TIMEOUT_MS {
                events.push(ConfigEvent::TimedOut { proposal: p.id });
                self.pushing = None;
            } else if now.saturating_sub(p.last_send) >= RETRY_MS {
                p.last_send = now;
                let unanswered: BTreeSet<NodeId> = p
                    .acks
                    .iter()
                    .filter(|(n, a)| matches!(a, Err(r) if r.is_empty()) && alive.contains(n))
                    .map(|(n, _)| *n)
                    .collect();
                for n in unanswered {
                    send_chunks((p.id, p.version, &p.text), Destination::Node(n), out);
                }
            }
        }
        if let Some((proposal, version, since, last)) = self.committing {
            if now.saturating_sub(since) >= COMMIT_RESEND_MS {
                self.committing = None;
            } else if now.saturating_sub(last) >= RETRY_MS {
                self.committing = Some((proposal, version, since, now));
                for &n in laggards {
                    out.push((
                        Destination::Node(n),
                        Message::ConfigCommit { proposal, version },
                    ));
                }
            }
        }
    }
}

impl ConfigSync {
    /// Catch-up of late joiners. `me` is this node; `members` the other alive nodes with the
    /// config version each announces. Sends this node's active text and its commit to every
    /// member below its version, unless a member with the same text (or newer) has a lower id
    /// and will send it; each laggard at most once a second, after it has lagged half a second
    /// (right after a commit every node lags until its next announcement).
    pub fn catch_up(&mut self, me: NodeId, members: &[(NodeId, u64)], now: u64, out: &mut Outbox) {
        let Some(text) = self.active.clone() else {
            return;
        };
        let v = self.version;
        self.caught_up
            .retain(|n, _| members.iter().any(|&(m, mv)| m == *n && mv < v));
        let someone_else = members.iter().any(|&(m, mv)| mv >= v && m < me);
        if someone_else {
            return;
        }
        for &(n, mv) in members {
            if mv >= v {
                continue;
            }
            let (since, last) = *self.caught_up.entry(n).or_insert((now, None));
            if now.saturating_sub(since) < CATCH_UP_GRACE_MS
                || last.is_some_and(|t| now.saturating_sub(t) < CATCH_UP_MS)
            {
                continue;
            }
            self.caught_up.insert(n, (since, Some(now)));
            let proposal = self.active_proposal;
            let to = Destination::Node(n);
            send_chunks((proposal, v, &text), to, out);
            out.push((
                to,
                Message::ConfigCommit {
                    proposal,
                    version: v,
                },
            ));
        }
    }
}

fn send_chunks((id, version, text): (u64, u64, &Arc<str>), to: Destination, out: &mut Outbox) {
    let bytes = text.as_bytes();
    let total = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let mut offset = 0;
    loop {
        let end = (offset + CONFIG_CHUNK).min(bytes.len());
        out.push((
            to,
            Message::ConfigPush {
                proposal: id,
                version,
                total,
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
                bytes: bytes[offset..end].to_vec(),
            },
        ));
        offset = end;
        if offset >= bytes.len() {
            break;
        }
    }
}

#[cfg(test)]
#[path = "config_sync_tests.rs"]
mod tests;

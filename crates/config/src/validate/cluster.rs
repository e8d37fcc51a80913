//! The cluster keys of `[array]`: the control plane's key, port and timers.
//!
//! A cluster key (`key` or `key_file`) switches the array from a static scheduler to an
//! elected one; without it every other cluster key is refused, so a half-configured cluster
//! cannot silently run static. Reads `key_file` (through `files`); nothing else does I/O.

use std::ops::RangeInclusive;

use toml::Spanned;

use super::{Checker, Zero};
use crate::file::FileArray;
use crate::model::{
    ClusterSettings, DEFAULT_CLUSTER_PORT, DEFAULT_DEAD_AFTER, DEFAULT_HEARTBEAT,
    DEFAULT_STATUS_POLL, DEFAULT_STATUS_RETRIES,
};

/// Shortest cluster key: 128 bits, so tags cannot be brute-forced (the cluster crate's floor).
const MIN_KEY_BYTES: usize = 16;
/// Longest `key_file`: far beyond any HMAC key, small enough to read without a thought.
const MAX_KEY_FILE_BYTES: u64 = 4096;
/// UDP control port.
const PORT: RangeInclusive<i64> = 1..=65535;
/// `status_retries`: beyond a hundred a node that stopped answering is never failed.
const STATUS_RETRIES: RangeInclusive<i64> = 0..=100;
/// `quorum`: nodes, as many as an array can have.
const QUORUM: RangeInclusive<i64> = 1..=65534;

impl Checker<'_> {
    /// `key`/`key_file`, `port`, `heartbeat`, `dead_after`, `preempt`, `status_poll`,
    /// `status_retries`, `admin_token`; `None` without a key.
    pub(super) fn cluster(
        &mut self,
        a: &FileArray,
        span: std::ops::Range<usize>,
    ) -> Option<ClusterSettings> {
        let key = match (&a.key, &a.key_file) {
            (Some(k), Some(file)) => {
                let message = "set either key or key_file, not both";
                self.report(file.span(), "array.key_file", message);
                // Still a cluster: one problem, not a second about a missing `scheduler`.
                k.get_ref().as_bytes().to_vec()
            }
            (Some(k), None) => {
                let bytes = k.get_ref().as_bytes().to_vec();
                self.cluster_secret_length(&bytes, k.span(), "array.key", "the cluster key", "");
                bytes
            }
            (None, Some(file)) => self.cluster_key_file(file)?,
            (None, None) => {
                self.no_cluster_keys(a);
                return None;
            }
        };
        let port = self.int(a.port.as_ref(), "array.port", PORT, DEFAULT_CLUSTER_PORT);
        let heartbeat = self.duration(
            a.heartbeat.as_ref(),
            "array.heartbeat",
            DEFAULT_HEARTBEAT,
            Zero::Rejected,
        );
        let dead_after = self.duration(
            a.dead_after.as_ref(),
            "array.dead_after",
            DEFAULT_DEAD_AFTER,
            Zero::Rejected,
        );
        if dead_after <= heartbeat {
            let at = a
                .dead_after
                .as_ref()
                .map(Spanned::span)
                .or_else(|| a.heartbeat.as_ref().map(Spanned::span))
                .unwrap_or(span);
            let message = format!(
                "dead_after ({}) must be longer than heartbeat ({}), or every node looks failed",
                humantime::format_duration(dead_after),
                humantime::format_duration(heartbeat)
            );
            self.report(at, "array.dead_after", message);
        }
        let status_poll = self.duration(
            a.status_poll.as_ref(),
            "array.status_poll",
            DEFAULT_STATUS_POLL,
            Zero::Rejected,
        );
        let status_retries = self.int(
            a.status_retries.as_ref(),
            "array.status_retries",
            STATUS_RETRIES,
            DEFAULT_STATUS_RETRIES,
        );
        let quorum = a
            .quorum
            .as_ref()
            .map(|q| self.int(Some(q), "array.quorum", QUORUM, 1u16));
        if let (Some(q), Some(at)) = (quorum, a.quorum.as_ref()) {
            self.quorum_fits(q, at.span(), a.node.len());
        }
        let notify = a
            .notify
            .as_ref()
            .and_then(|n| self.executable_file(n, "array.notify"));
        let admin_token =
            self.admin_token(a.admin_token.as_ref(), a.admin_token_file.as_ref(), "array");
        Some(ClusterSettings {
            key,
            port,
            heartbeat,
            dead_after,
            preempt: a.preempt.unwrap_or(false),
            status_poll,
            status_retries,
            quorum,
            notify,
            admin_token,
        })
    }

    /// `quorum` against the number of `[[array.node]]`s: never more than there are (no node
    /// could ever schedule), and more than half of them from three nodes on (two halves
    /// could each elect a scheduler); two nodes may choose 1 (each serves alone) or 2.
    fn quorum_fits(&mut self, q: u16, at: std::ops::Range<usize>, nodes: usize) {
        let q = usize::from(q);
        let message = if q > nodes {
            format!("quorum {q} is more than the {nodes} [[array.node]]s: no node could ever take the VIP")
        } else if nodes >= 3 && q * 2 <= nodes {
            format!(
                "quorum {q} of {nodes} nodes lets two halves each elect a scheduler (split \
                 brain): use more than half, at least {}",
                nodes / 2 + 1
            )
        } else {
            return;
        };
        self.report(at, "array.quorum", message);
    }

    /// Cluster keys without a cluster key: refused, naming the first.
    fn no_cluster_keys(&mut self, a: &FileArray) {
        let durations = [
            ("heartbeat", &a.heartbeat),
            ("dead_after", &a.dead_after),
            ("status_poll", &a.status_poll),
        ];
        let mut found: Vec<(&str, std::ops::Range<usize>)> = durations
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.span())))
            .collect();
        if let Some(p) = &a.port {
            found.push(("port", p.span()));
        }
        if let Some(r) = &a.status_retries {
            found.push(("status_retries", r.span()));
        }
        if let Some(q) = &a.quorum {
            found.push(("quorum", q.span()));
        }
        let tokens = [
            ("admin_token", &a.admin_token),
            ("admin_token_file", &a.admin_token_file),
            ("notify", &a.notify),
        ];
        for (k, v) in tokens {
            if let Some(v) = v {
                found.push((k, v.span()));
            }
        }
        for (k, at) in found {
            let message = "needs a cluster key (key or key_file) to mean anything";
            self.report(at, &format!("array.{k}"), message);
        }
    }

    fn cluster_key_file(&mut self, file: &Spanned<String>) -> Option<Vec<u8>> {
        self.cluster_secret_file(file, "array.key_file", "the cluster key")
    }

    /// The admin token of `[section]`: given inline (`admin_token`) or in a file
    /// (`admin_token_file`), not both, and long enough to be a secret.
    pub(super) fn admin_token(
        &mut self,
        inline: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
        section: &str,
    ) -> Option<Vec<u8>> {
        match (inline, file) {
            (Some(_), Some(file)) => {
                let message = "set either admin_token or admin_token_file, not both";
                self.report(file.span(), &format!("{section}.admin_token_file"), message);
                None
            }
            (Some(t), None) => {
                let bytes = t.get_ref().as_bytes().to_vec();
                let key = format!("{section}.admin_token");
                self.cluster_secret_length(&bytes, t.span(), &key, "the admin token", "");
                Some(bytes)
            }
            (None, Some(file)) => {
                let key = format!("{section}.admin_token_file");
                self.cluster_secret_file(file, &key, "the admin token")
            }
            (None, None) => None,
        }
    }

    /// A secret file (relative to the config's directory) minus one trailing line break.
    pub(super) fn cluster_secret_file(
        &mut self,
        file: &Spanned<String>,
        key: &str,
        what: &str,
    ) -> Option<Vec<u8>> {
        let (path, mut bytes) = self.read_small_file(file, key, MAX_KEY_FILE_BYTES)?;
        // `echo key > file` works: one trailing line break is not part of the key.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        let from = format!(" in {}", path.display());
        self.cluster_secret_length(&bytes, file.span(), key, what, &from);
        Some(bytes)
    }

    pub(super) fn cluster_secret_length(
        &mut self,
        bytes: &[u8],
        span: std::ops::Range<usize>,
        key: &str,
        what: &str,
        from: &str,
    ) {
        if bytes.len() < MIN_KEY_BYTES {
            // Never quote the secret itself: error messages end up in logs.
            let message = format!(
                "{what}{from} must be at least {MIN_KEY_BYTES} bytes, it has {}",
                bytes.len()
            );
            self.report(span, key, message);
        }
    }
}

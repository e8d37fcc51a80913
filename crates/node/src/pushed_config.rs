//! A configuration pushed to the array, on one node: how it is parsed (as the file it will
//! replace), what it may change of a running node and what only a restart can change, and how
//! the committed text is written over the node's file.
//!
//! Applied live on commit (by the cluster driver): the services and back-ends (the proxy's
//! reload), the node list — nodes added or removed, addresses, MACs, weights, `enabled`,
//! priorities — `bucket_idle`, the cluster timers (`heartbeat`, `dead_after`, `status_poll`,
//! `status_retries`) and `preempt`. Needing a restart of every node: the VIP, the LAN
//! interface, the `mode`, `table_size`, `ports`, the cluster key and port, the admin token,
//! and this node's own address or presence in the list. A pushed file that changes any of
//! those is refused by every node's validator, naming the keys, so nothing is silently
//! half-applied.
//!
//! Must not: apply anything to the running node (the cluster driver does); its only I/O is
//! [`persist`]'s write of the committed file. Refusals are a typed [`PushRefused`], whose text
//! is what a refusing node sends back to the node that pushed.

use std::path::{Path, PathBuf};

use pentaflow_config::{ArrayConfig, ChangeKind};

/// Keys of `[array]` that cannot change while the array runs: the VIP and interface the data
/// planes hold, the table every node must agree on, the served ports, and the control plane's
/// key, port and admin token.
const RESTART_ONLY: &[&str] = &[
    "array.mode",
    "array.vip",
    "array.interface",
    "array.table_size",
    "array.ports",
    "array.key",
    "array.port",
    "array.admin_token",
];

/// The keys of `pushed` that differ from `running` and cannot change without a restart, for
/// node `node_id`; empty when the push may be applied live. Built on
/// [`pentaflow_config::diff_array`], so every key is compared.
pub fn restart_only_changes(
    running: &ArrayConfig,
    pushed: Option<&ArrayConfig>,
    node_id: u16,
) -> Vec<String> {
    let Some(pushed) = pushed else {
        return vec!["[array] (the pushed file has none)".to_owned()];
    };
    let own = format!("array.node[id = {node_id}]");
    let own_address = format!("{own}.address");
    let mut keys = Vec::new();
    for change in pentaflow_config::diff_array(running, pushed) {
        if RESTART_ONLY.contains(&change.key.as_str()) {
            keys.push(change.key);
        } else if change.key == own && change.kind == ChangeKind::Removed {
            keys.push(format!(
                "array.node (this node, id {node_id}, is not listed: stop a node before removing it)"
            ));
        } else if change.key == own_address {
            keys.push(format!("{own_address} (this node's own control address)"));
        }
    }
    if running.node(node_id).is_none() && pushed.node(node_id).is_none() {
        keys.push(format!(
            "array.node (this node, id {node_id}, is not listed: stop a node before removing it)"
        ));
    }
    keys
}

/// Why a node refuses a pushed configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefused {
    /// The text is not a valid configuration here (the parser's report: file, line, key).
    #[error("{0}")]
    Invalid(String),
    /// It changes keys that need a restart of every node.
    #[error(
        "node {node_id}: {} cannot change while the array runs (restart every node with the \
         new file instead)",
        keys.join(", ")
    )]
    RestartOnly {
        /// The refusing node.
        node_id: u16,
        /// The keys, as [`restart_only_changes`] names them.
        keys: Vec<String>,
    },
}

/// The validator's verdict on a pushed array part.
pub fn check_push(
    running: &ArrayConfig,
    pushed: Option<&ArrayConfig>,
    node_id: u16,
) -> Result<(), PushRefused> {
    let keys = restart_only_changes(running, pushed, node_id);
    if keys.is_empty() {
        return Ok(());
    }
    Err(PushRefused::RestartOnly { node_id, keys })
}

/// The cluster's validator: a pushed text must be a valid configuration here, and change
/// nothing of `[array]` that needs a restart (see [`check_push`]). Keys that may change live
/// never include those, so the array this node started with is the one to compare to.
pub fn validate(
    running: &ArrayConfig,
    node_id: u16,
    dest: Option<&Path>,
    text: &str,
) -> Result<(), PushRefused> {
    let config = pentaflow_config::parse(text, pushed_source("pushed configuration", dest))
        .map_err(|e| PushRefused::Invalid(e.to_string()))?;
    check_push(running, config.array.as_ref(), node_id)
}

/// How a pushed text is parsed: as the file it will replace (relative paths resolve beside
/// it), or, for a node started without a file, from the current directory.
pub fn pushed_source(label: &str, dest: Option<&Path>) -> pentaflow_config::Source {
    match dest {
        Some(dest) => pentaflow_config::Source::Pushed {
            label: label.to_owned(),
            dest: dest.to_owned(),
        },
        None => pentaflow_config::Source::Inline(label.to_owned()),
    }
}

/// Writes a committed configuration over this node's file, so that a restart or a SIGHUP keeps
/// it rather than bringing back the old one: into a temporary file beside it with the old
/// file's permissions, renamed over it (atomic); the replaced file is kept as `FILE.previous`.
pub fn persist(path: &Path, text: &str) -> std::io::Result<()> {
    // Already there (a late joiner started from it, or the nodes of a lab sharing one file):
    // rewriting would only replace `.previous` with the same text.
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let beside = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let tmp = beside(&format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    let written = std::fs::metadata(path)
        .and_then(|old| std::fs::set_permissions(&tmp, old.permissions()))
        .and_then(|()| std::fs::copy(path, beside(".previous")).map(|_| ()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(text: &str) -> ArrayConfig {
        pentaflow_config::parse(text, pentaflow_config::Source::Inline("t".into()))
            .unwrap()
            .array
            .unwrap()
    }

    fn base() -> String {
        crate::fixtures::two_node_text().to_owned()
    }

    #[test]
    fn live_changes_pass() {
        let running = array(&base());
        let text = base()
            .replace("id = 2\n", "id = 2\nweight = 3\npriority = 9\n")
            .replace("[array]\n", "[array]\nbucket_idle = \"5s\"\n");
        let pushed = array(&text);
        assert_ne!(pushed, running, "the edit took");
        assert_eq!(check_push(&running, Some(&pushed), 2), Ok(()));
    }

    #[test]
    fn restart_only_keys_are_named() {
        let running = array(&base());
        let moved = base()
            .replace("10.77.1.10\"", "10.77.1.20\"")
            .replace("10.77.1.10:", "10.77.1.20:");
        assert_ne!(moved, base());
        let err = check_push(&running, Some(&array(&moved)), 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("array.vip") && err.contains("restart"),
            "{err}"
        );
        let none = check_push(&running, None, 1).unwrap_err().to_string();
        assert!(none.contains("[array]"), "{none}");
    }

    #[test]
    fn this_node_must_stay_listed_at_its_address() {
        let running = array(&base());
        let readdressed = base().replace("10.77.1.12\"", "10.77.1.42\"");
        assert_ne!(readdressed, base());
        let pushed = array(&readdressed);
        let err = check_push(&running, Some(&pushed), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("own control address"), "{err}");
        // Another node's address is a live change for node 1.
        assert_eq!(check_push(&running, Some(&pushed), 1), Ok(()));
        assert!(check_push(&running, Some(&pushed), 9)
            .unwrap_err()
            .to_string()
            .contains("not listed"));
    }

    #[test]
    fn a_committed_file_replaces_the_old_one_which_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pf-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        persist(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            std::fs::read_to_string(dir.join("node.toml.previous")).unwrap(),
            "old"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the old file's permissions");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left");
        // The same text again changes nothing (the previous version stays).
        persist(&path, "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("node.toml.previous")).unwrap(),
            "old"
        );
        // A file that cannot be written leaves nothing behind and says why.
        assert!(persist(&dir.join("missing").join("x.toml"), "t").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pushed_text_is_validated() {
        let text = base();
        let a = array(&text);
        assert!(validate(&a, 1, None, "[[service]]\nname = 1\n").is_err());
        assert!(validate(&a, 1, None, &text).is_ok());
        let moved = text
            .replace("10.77.1.10\"", "10.77.1.20\"")
            .replace("10.77.1.10:", "10.77.1.20:");
        assert!(validate(&a, 1, None, &moved)
            .unwrap_err()
            .to_string()
            .contains("array.vip"));
    }
}

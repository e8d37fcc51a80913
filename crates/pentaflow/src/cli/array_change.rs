//! What a pushed configuration may change of a running array node, and what only a restart
//! can change.
//!
//! Applied live on commit (by the cluster driver): the services and back-ends (the proxy's
//! reload), the node list — nodes added or removed, addresses, MACs, weights, `enabled`,
//! priorities — `bucket_idle`, the cluster timers (`heartbeat`, `dead_after`, `status_poll`,
//! `status_retries`) and `preempt`. Needing a restart of every node: the VIP, the LAN
//! interface, `table_size`, `ports`, the cluster key and port, the admin token, and this
//! node's own address or presence in the list. A pushed file that changes any of those is
//! refused by every node's validator, naming the keys, so nothing is silently half-applied.
//!
//! Must not: apply anything or do I/O; it compares two parsed configurations.

use pentaflow_config::ArrayConfig;

/// The keys of `pushed` that differ from `running` and cannot change without a restart, for
/// node `node_id`; empty when the push may be applied live.
pub(crate) fn restart_only_changes(
    running: &ArrayConfig,
    pushed: Option<&ArrayConfig>,
    node_id: u16,
) -> Vec<String> {
    let Some(pushed) = pushed else {
        return vec!["[array] (the pushed file has none)".to_owned()];
    };
    let mut keys = Vec::new();
    let mut differs = |key: &str, same: bool| {
        if !same {
            keys.push(format!("array.{key}"));
        }
    };
    differs("vip", running.vip == pushed.vip);
    differs("interface", running.interface == pushed.interface);
    differs("table_size", running.table_size == pushed.table_size);
    differs("ports", running.ports == pushed.ports);
    let (rc, pc) = (running.cluster.as_ref(), pushed.cluster.as_ref());
    differs("key", rc.map(|c| &c.key) == pc.map(|c| &c.key));
    differs("port", rc.map(|c| c.port) == pc.map(|c| c.port));
    differs(
        "admin_token",
        rc.map(|c| &c.admin_token) == pc.map(|c| &c.admin_token),
    );
    match (running.node(node_id), pushed.node(node_id)) {
        (_, None) => keys.push(format!(
            "array.node (this node, id {node_id}, is not listed: stop a node before removing it)"
        )),
        (Some(r), Some(p)) if r.address != p.address => keys.push(format!(
            "array.node[id = {node_id}].address (this node's own control address)"
        )),
        _ => {}
    }
    keys
}

/// The validator's verdict on a pushed array part, as the reason a node sends back.
pub(crate) fn check_push(
    running: &ArrayConfig,
    pushed: Option<&ArrayConfig>,
    node_id: u16,
) -> Result<(), String> {
    let keys = restart_only_changes(running, pushed, node_id);
    if keys.is_empty() {
        return Ok(());
    }
    Err(format!(
        "node {node_id}: {} cannot change while the array runs (restart every node with the \
         new file instead)",
        keys.join(", ")
    ))
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
        super::super::lab::array_config_for_tests()
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
        let err = check_push(&running, Some(&array(&moved)), 1).unwrap_err();
        assert!(
            err.contains("array.vip") && err.contains("restart"),
            "{err}"
        );
        let none = check_push(&running, None, 1).unwrap_err();
        assert!(none.contains("[array]"), "{none}");
    }

    #[test]
    fn this_node_must_stay_listed_at_its_address() {
        let running = array(&base());
        let readdressed = base().replace("10.77.1.12\"", "10.77.1.42\"");
        assert_ne!(readdressed, base());
        let pushed = array(&readdressed);
        let err = check_push(&running, Some(&pushed), 2).unwrap_err();
        assert!(err.contains("own control address"), "{err}");
        // Another node's address is a live change for node 1.
        assert_eq!(check_push(&running, Some(&pushed), 1), Ok(()));
        assert!(check_push(&running, Some(&pushed), 9)
            .unwrap_err()
            .contains("not listed"));
    }
}

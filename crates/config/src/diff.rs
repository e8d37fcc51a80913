//! What changed between two `[array]` sections, key by key — pure, for the restart-only check
//! of a pushed configuration and for logs.
//!
//! Owns: naming each changed key as the file spells it (`array.vip`,
//! `array.node[id = 2].weight`, `array.node[id = 4]` for a node added or removed). Every
//! field is destructured, so a new `[array]` field does not compile until this module says
//! how it differs. Must not: decide what may change live (the caller does) or read files.

use crate::model::{ArrayConfig, ArrayNode, ClusterSettings};

/// One difference between two `[array]` sections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayChange {
    /// The key as the file spells it.
    pub key: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// How a key differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Present in both, different values.
    Changed,
    /// Only in the new section (a node, or the cluster part).
    Added,
    /// Only in the old section.
    Removed,
}

/// The keys of `new` that differ from `old`, in file order: the section's own keys, the
/// cluster keys (flat in `[array]`), then each node by id.
#[must_use]
pub fn diff_array(old: &ArrayConfig, new: &ArrayConfig) -> Vec<ArrayChange> {
    let ArrayConfig {
        mode,
        vip,
        interface,
        node_id,
        scheduler,
        table_size,
        bucket_idle,
        data_plane,
        ports,
        nodes,
        cluster,
    } = old;
    let mut out = Vec::new();
    let mut changed = |key: &str, same: bool| {
        if !same {
            out.push(ArrayChange {
                key: format!("array.{key}"),
                kind: ChangeKind::Changed,
            });
        }
    };
    changed("mode", *mode == new.mode);
    changed("vip", *vip == new.vip);
    changed("interface", *interface == new.interface);
    changed("node_id", *node_id == new.node_id);
    changed("scheduler", *scheduler == new.scheduler);
    changed("table_size", *table_size == new.table_size);
    changed("bucket_idle", *bucket_idle == new.bucket_idle);
    changed("data_plane", *data_plane == new.data_plane);
    changed("ports", *ports == new.ports);
    diff_cluster(cluster.as_ref(), new.cluster.as_ref(), &mut out);
    diff_nodes(nodes, &new.nodes, &mut out);
    out
}

fn diff_cluster(
    old: Option<&ClusterSettings>,
    new: Option<&ClusterSettings>,
    out: &mut Vec<ArrayChange>,
) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (Some(_), None) | (None, Some(_)) => {
            out.push(ArrayChange {
                key: "array.key".to_owned(),
                kind: if new.is_some() {
                    ChangeKind::Added
                } else {
                    ChangeKind::Removed
                },
            });
            return;
        }
        (Some(o), Some(n)) => (o, n),
    };
    let ClusterSettings {
        key,
        port,
        heartbeat,
        dead_after,
        preempt,
        status_poll,
        status_retries,
        quorum,
        notify,
        admin_token,
    } = old;
    let mut changed = |name: &str, same: bool| {
        if !same {
            out.push(ArrayChange {
                key: format!("array.{name}"),
                kind: ChangeKind::Changed,
            });
        }
    };
    changed("key", *key == new.key);
    changed("port", *port == new.port);
    changed("heartbeat", *heartbeat == new.heartbeat);
    changed("dead_after", *dead_after == new.dead_after);
    changed("preempt", *preempt == new.preempt);
    changed("status_poll", *status_poll == new.status_poll);
    changed("status_retries", *status_retries == new.status_retries);
    changed("quorum", *quorum == new.quorum);
    changed("notify", *notify == new.notify);
    changed("admin_token", *admin_token == new.admin_token);
}

fn diff_nodes(old: &[ArrayNode], new: &[ArrayNode], out: &mut Vec<ArrayChange>) {
    let mut ids: Vec<u16> = old.iter().chain(new).map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let at = |kind| ArrayChange {
            key: format!("array.node[id = {id}]"),
            kind,
        };
        let (o, n) = (
            old.iter().find(|n| n.id == id),
            new.iter().find(|n| n.id == id),
        );
        let (o, n) = match (o, n) {
            (Some(o), Some(n)) => (o, n),
            (None, Some(_)) => {
                out.push(at(ChangeKind::Added));
                continue;
            }
            (Some(_), None) => {
                out.push(at(ChangeKind::Removed));
                continue;
            }
            (None, None) => continue,
        };
        let ArrayNode {
            id: _,
            address,
            mac,
            weight,
            enabled,
            priority,
        } = o;
        let mut changed = |name: &str, same: bool| {
            if !same {
                out.push(ArrayChange {
                    key: format!("array.node[id = {id}].{name}"),
                    kind: ChangeKind::Changed,
                });
            }
        };
        changed("address", *address == n.address);
        changed("mac", *mac == n.mac);
        changed("weight", *weight == n.weight);
        changed("enabled", *enabled == n.enabled);
        changed("priority", *priority == n.priority);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;
    use crate::model::{ArrayMode, DataPlane};

    fn node(id: u16) -> ArrayNode {
        ArrayNode {
            id,
            address: Ipv4Addr::new(10, 77, 1, 10 + u8::try_from(id).unwrap_or(0)),
            mac: [2, 0, 0, 0, 0, u8::try_from(id).unwrap_or(0)],
            weight: 1,
            enabled: true,
            priority: 100,
        }
    }

    fn array() -> ArrayConfig {
        ArrayConfig {
            mode: ArrayMode::Scheduler,
            vip: Ipv4Addr::new(10, 77, 1, 10),
            interface: "eth0".to_owned(),
            node_id: None,
            scheduler: 1,
            table_size: 65_536,
            bucket_idle: Duration::from_secs(300),
            data_plane: DataPlane::AfPacket,
            ports: vec![80],
            nodes: vec![node(1), node(2)],
            cluster: Some(ClusterSettings {
                key: b"a cluster key of 16+ bytes".to_vec(),
                port: 7946,
                heartbeat: Duration::from_millis(50),
                dead_after: Duration::from_millis(200),
                preempt: false,
                status_poll: Duration::from_millis(200),
                status_retries: 2,
                quorum: None,
                notify: None,
                admin_token: None,
            }),
        }
    }

    fn keys(c: &[ArrayChange]) -> Vec<(&str, ChangeKind)> {
        c.iter().map(|c| (c.key.as_str(), c.kind)).collect()
    }

    #[test]
    fn the_same_section_has_no_difference() {
        assert!(diff_array(&array(), &array()).is_empty());
    }

    #[test]
    fn every_changed_key_is_named_as_the_file_spells_it() {
        let old = array();
        let mut new = array();
        new.vip = Ipv4Addr::new(10, 77, 1, 99);
        new.bucket_idle = Duration::from_secs(10);
        if let Some(c) = new.cluster.as_mut() {
            c.port = 7000;
            c.preempt = true;
        }
        new.nodes[1].weight = 5;
        new.nodes.push(node(3));
        new.nodes.remove(0);
        assert_eq!(
            keys(&diff_array(&old, &new)),
            [
                ("array.vip", ChangeKind::Changed),
                ("array.bucket_idle", ChangeKind::Changed),
                ("array.port", ChangeKind::Changed),
                ("array.preempt", ChangeKind::Changed),
                ("array.node[id = 1]", ChangeKind::Removed),
                ("array.node[id = 2].weight", ChangeKind::Changed),
                ("array.node[id = 3]", ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn a_cluster_part_added_or_removed_is_one_change() {
        let mut bare = array();
        bare.cluster = None;
        assert_eq!(
            keys(&diff_array(&bare, &array())),
            [("array.key", ChangeKind::Added)]
        );
        assert_eq!(
            keys(&diff_array(&array(), &bare)),
            [("array.key", ChangeKind::Removed)]
        );
    }
}

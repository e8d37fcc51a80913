//! The array role of `pentaflow serve`: what a node with an `[array]` section does beside
//! its proxy.
//!
//! Every node: the VIP on `lo` and no ARP for it (`prepare_node`), kept while serving. With a
//! cluster key the scheduler is elected and run by [`crate::driver`]; without one, the static
//! scheduler node also runs the L4 scheduler thread (`spawn_scheduler`: it answers ARP for
//! the VIP, announces it by gratuitous ARP, routes frames by MAC rewrite and serves its own
//! share through a TAP). Everything is undone on [`ArrayRole::stop`] — or on drop, so a
//! failed start of the proxy restores the kernel too.
//!
//! This module only translates the validated config into the packet crate's types and
//! keeps the guards; it must not implement any of the data plane.

use pentaflow_config::ArrayConfig;
use pentaflow_packet::{
    prepare_node, setup::check_privileges, spawn_scheduler, Counters, DataPlaneChoice, KernelGuard,
    L4Proto, MacAddr, NodeEntry, NodeId, SchedulerConfig, SchedulerHandle,
};

use crate::RoleError;

/// The kernel state and threads of this node's part in the array.
///
/// Field order is drop order: the scheduler stops (restoring `arp_ignore` to the node's
/// value and removing its nftables table and TAP) before the node guard restores the rest.
pub struct ArrayRole {
    scheduler: Option<SchedulerHandle>,
    node: Option<KernelGuard>,
    node_id: u16,
}

impl ArrayRole {
    /// Takes this node's role: `node_id` (the command line) or the file's `node_id` says
    /// which node this is. Blocks for the few `ip`/`nft` commands of the set-up.
    pub fn start(array: &ArrayConfig, node_id: Option<u16>) -> Result<Self, RoleError> {
        let me = array
            .self_node(node_id)
            .ok_or_else(|| match node_id.or(array.node_id) {
                Some(id) => RoleError::NotListed(id),
                None => RoleError::WhichNode,
            })?;
        check_privileges().map_err(RoleError::Privileges)?;
        let guard =
            prepare_node(&array.interface, array.vip).map_err(|source| RoleError::PrepareNode {
                interface: array.interface.clone(),
                vip: array.vip,
                source,
            })?;
        tracing::info!(node = me.id, vip = %array.vip, lan = %array.interface, "VIP on lo, no ARP for it");
        let mut role = ArrayRole {
            scheduler: None,
            node: Some(guard),
            node_id: me.id,
        };
        if array.is_scheduler(me.id) {
            // On error `role` drops here and restores the node set-up.
            let handle =
                spawn_scheduler(scheduler_config(array, me.id)).map_err(RoleError::Scheduler)?;
            tracing::info!(
                node = me.id,
                nodes = array.nodes.len(),
                ports = ?array.ports,
                table_size = array.table_size,
                "scheduler role taken (gratuitous ARP sent)"
            );
            role.scheduler = Some(handle);
        }
        Ok(role)
    }

    /// This node's id.
    pub fn node_id(&self) -> u16 {
        self.node_id
    }

    /// Stops the scheduler (logging its counters) and restores every kernel change.
    pub fn stop(mut self) {
        if let Some(scheduler) = self.scheduler.take() {
            match scheduler.stop() {
                Ok(counters) => log_counters(self.node_id, &counters),
                Err(e) => tracing::error!(error = %e, "scheduler stopped with an error"),
            }
        }
        if let Some(guard) = self.node.take() {
            for e in guard.restore() {
                tracing::warn!(error = %e, "restoring the node's kernel settings");
            }
        }
        tracing::info!(
            node = self.node_id,
            "array role left; kernel settings restored"
        );
    }
}

/// The scheduler thread's configuration: every node (this one included: it serves its own
/// share through the TAP), the table and the ports of the file.
pub fn scheduler_config(array: &ArrayConfig, self_id: u16) -> SchedulerConfig {
    let nodes = array
        .nodes
        .iter()
        .map(|n| NodeEntry {
            id: NodeId(n.id),
            mac: MacAddr(n.mac),
            weight: n.weight,
            enabled: n.enabled,
            // Static membership: with a cluster key, the driver's `scheduler_nodes` follows the view.
            alive: true,
        })
        .collect();
    let mut cfg = SchedulerConfig::new(&array.interface, array.vip, NodeId(self_id), nodes);
    cfg.services = array.ports.iter().map(|&p| (L4Proto::Tcp, p)).collect();
    cfg.table_size = array.table_size;
    cfg.idle_ms = u64::try_from(array.bucket_idle.as_millis()).unwrap_or(u64::MAX);
    cfg.data_plane = match array.data_plane {
        pentaflow_config::DataPlane::Auto => DataPlaneChoice::Auto,
        pentaflow_config::DataPlane::Xdp => DataPlaneChoice::Xdp,
        pentaflow_config::DataPlane::AfPacket => DataPlaneChoice::AfPacket,
    };
    cfg
}

/// One log line with the scheduler's final counters (the lab test reads it).
pub fn log_counters(node: u16, c: &Counters) {
    let forwarded: Vec<String> = c
        .forwarded
        .iter()
        .map(|(id, n)| format!("{}={n}", id.0))
        .collect();
    tracing::info!(
        node,
        forwarded = %forwarded.join(","),
        local = c.local,
        dropped = c.dropped_total(),
        idle_released = c.idle_released,
        send_errors = c.send_errors,
        "scheduler stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_config_follows_the_file() {
        let config = pentaflow_config::parse(
            pentaflow_config::array_example(),
            pentaflow_config::Source::Inline("example".into()),
        )
        .unwrap();
        let array = config.array.unwrap();
        let cfg = scheduler_config(&array, 1);
        assert_eq!(cfg.self_id, NodeId(1));
        assert_eq!(cfg.lan, "eth0");
        assert_eq!(cfg.services, vec![(L4Proto::Tcp, 80), (L4Proto::Tcp, 443)]);
        assert_eq!(cfg.table_size, 65536);
        assert_eq!(cfg.idle_ms, 60_000);
        assert_eq!(cfg.nodes.len(), 3);
        assert_eq!(cfg.nodes[2].mac.to_string(), "02:77:01:00:00:03");
        assert!(cfg
            .nodes
            .iter()
            .all(|n| n.alive && n.enabled && n.weight == 1));
    }

    #[test]
    fn an_unknown_node_is_refused_before_touching_the_kernel() {
        let config = pentaflow_config::parse(
            pentaflow_config::array_example(),
            pentaflow_config::Source::Inline("example".into()),
        )
        .unwrap();
        let array = config.array.unwrap();
        let err = ArrayRole::start(&array, None).err().unwrap();
        assert!(err.to_string().contains("--node-id"), "{err}");
        let err = ArrayRole::start(&array, Some(9)).err().unwrap();
        assert!(err.to_string().contains("node 9 is not listed"), "{err}");
    }
}

//! `[array]` and `[[array.node]]`: the VIP, the LAN interface, the node list and the static
//! scheduler.
//!
//! Checks shapes and cross-references only (unique ids, addresses and MACs; the scheduler
//! and `node_id` are listed nodes; the VIP is nobody's address). It must not look at the
//! machine: whether the interface exists or this host owns an address is the binary's
//! business at start-up.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use toml::Spanned;

use super::{Checker, Zero};
use crate::file::{FileArray, FileArrayNode};
use crate::model::{
    ArrayConfig, ArrayMode, ArrayNode, DataPlane, ServiceConfig, DEFAULT_BUCKET_IDLE,
    DEFAULT_PRIORITY, DEFAULT_TABLE_SIZE, PREFERRED_PRIORITY,
};

/// Node ids: 0 is kept free as "no node" for humans, 65535 is the bucket table's
/// unassigned sentinel.
const NODE_ID: RangeInclusive<i64> = 1..=65534;
/// `table_size`: the bucket table's own bounds (2 buckets to 16 Mi buckets).
const TABLE_SIZE: RangeInclusive<i64> = 2..=(1 << 24);
/// Node weights, as for back-ends.
const NODE_WEIGHT: RangeInclusive<i64> = 1..=1000;
/// TCP ports.
const PORT: RangeInclusive<i64> = 1..=65535;
/// Linux interface names hold at most 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Election priorities: a byte on the wire.
const PRIORITY: RangeInclusive<i64> = 0..=255;

/// Where a unique value was first used: its key and line.
type FirstUse = (String, usize);

impl Checker<'_> {
    /// Checks `[array]`; `services` give the default `ports`.
    pub(super) fn array(
        &mut self,
        array: &Spanned<FileArray>,
        services: &[ServiceConfig],
    ) -> ArrayConfig {
        let span = array.span();
        let a = array.get_ref();
        let mode = self.array_mode(a);
        let vip = match &a.vip {
            Some(v) => self.ipv4(v, "array.vip"),
            None => {
                self.report(span.clone(), "array.vip", "missing required key");
                None
            }
        };
        let interface = match &a.interface {
            Some(name) => self.interface(name),
            None => {
                self.report(span.clone(), "array.interface", "missing required key");
                String::new()
            }
        };
        let cluster = self.cluster(a, span.clone());
        let mut nodes = self.array_nodes(&a.node, vip, span.clone());
        // Judged by the ids as written, so a node with another fault still counts as listed.
        let ids: Vec<i64> = a
            .node
            .iter()
            .filter_map(|n| n.get_ref().id.as_ref())
            .map(|v| *v.get_ref())
            .collect();
        let listed = |id: u16| ids.contains(&i64::from(id));
        let node_id = a.node_id.as_ref().and_then(|v| {
            let id = self.int(Some(v), "array.node_id", NODE_ID, 0u16);
            if id != 0 && !listed(id) {
                self.report(
                    v.span(),
                    "array.node_id",
                    format!("node {id} is not an [[array.node]]"),
                );
            }
            (id != 0).then_some(id)
        });
        let scheduler = match &a.scheduler {
            Some(v) => {
                let id = self.int(Some(v), "array.scheduler", NODE_ID, 0u16);
                if id != 0 && !ids.is_empty() && !listed(id) {
                    let message = format!("node {id} is not an [[array.node]]");
                    self.report(v.span(), "array.scheduler", message);
                }
                id
            }
            // With a cluster key the nodes elect the scheduler: no preference is needed; in
            // active-active mode there is none (every node schedules).
            None if cluster.is_some() || mode == ArrayMode::ActiveActive => 0,
            None => {
                self.report(span.clone(), "array.scheduler", "missing required key");
                0
            }
        };
        // The preferred scheduler's default priority ranks it first in the first election.
        for (node, file) in nodes.iter_mut().zip(&a.node) {
            if node.id == scheduler && file.get_ref().priority.is_none() {
                node.priority = PREFERRED_PRIORITY;
            }
        }
        let table_size = a.table_size.as_ref().map_or(DEFAULT_TABLE_SIZE, |v| {
            let size = self.int(Some(v), "array.table_size", TABLE_SIZE, DEFAULT_TABLE_SIZE);
            if size.is_power_of_two() {
                size
            } else {
                let message = format!("must be a power of two (e.g. 65536), not {size}");
                self.report(v.span(), "array.table_size", message);
                DEFAULT_TABLE_SIZE
            }
        });
        let bucket_idle = self.duration(
            a.bucket_idle.as_ref(),
            "array.bucket_idle",
            DEFAULT_BUCKET_IDLE,
            Zero::Rejected,
        );
        let data_plane = match &a.data_plane {
            None => DataPlane::default(),
            Some(word) => DataPlane::from_word(word.get_ref()).unwrap_or_else(|| {
                let message = format!(
                    "{:?} is not a data plane: use \"auto\", \"xdp\" or \"af_packet\"",
                    word.get_ref()
                );
                self.report(word.span(), "array.data_plane", message);
                DataPlane::default()
            }),
        };
        let ports = match &a.ports {
            Some(ports) => self.ports(ports),
            None => {
                let ports = vip.map(|vip| vip_ports(vip, services)).unwrap_or_default();
                if vip.is_some() && ports.is_empty() && !services.is_empty() {
                    let message = "no service listens on the VIP (or a wildcard): set ports, \
                                   or add the VIP to a listen/tls_listen list";
                    self.report(span.clone(), "array.ports", message);
                }
                ports
            }
        };
        if mode == ArrayMode::ActiveActive {
            self.active_active(a, span.clone(), cluster.is_some());
        }
        ArrayConfig {
            mode,
            vip: vip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            interface,
            node_id,
            scheduler,
            table_size,
            bucket_idle,
            data_plane,
            ports,
            nodes,
            cluster,
        }
    }

    /// `mode`: the word, or the default; an unknown word lists the valid ones.
    fn array_mode(&mut self, a: &FileArray) -> ArrayMode {
        let Some(word) = &a.mode else {
            return ArrayMode::default();
        };
        ArrayMode::from_word(word.get_ref()).unwrap_or_else(|| {
            let valid: Vec<String> = ArrayMode::ALL
                .iter()
                .map(|m| format!("{:?}", m.as_str()))
                .collect();
            let message = format!(
                "{:?} is not a mode: use {}",
                word.get_ref(),
                valid.join(" or ")
            );
            self.report(word.span(), "array.mode", message);
            ArrayMode::default()
        })
    }

    /// What active-active mode needs (a cluster key: the nodes announce associations to each
    /// other; two nodes: ownership needs an owner and a backup) and the keys of the
    /// single scheduler it refuses, each at its own line.
    fn active_active(&mut self, a: &FileArray, span: std::ops::Range<usize>, cluster: bool) {
        // A key that failed to read was reported already: one problem, not two.
        if !cluster && a.key.is_none() && a.key_file.is_none() {
            let message = "mode = \"active-active\" needs a cluster key (key or key_file): \
                           the nodes announce associations and membership to each other";
            self.report(span.clone(), "array.key", message);
        }
        if a.node.len() == 1 {
            let message = format!(
                "mode = \"active-active\" needs at least 2 [[array.node]]s (an owner and a \
                 backup per connection), found {}",
                a.node.len()
            );
            self.report(span.clone(), "array.node", message);
        }
        let why = "only means something with mode = \"scheduler\": in active-active mode \
                   every node schedules";
        let spans = [
            ("scheduler", a.scheduler.as_ref().map(Spanned::span)),
            ("table_size", a.table_size.as_ref().map(Spanned::span)),
            ("bucket_idle", a.bucket_idle.as_ref().map(Spanned::span)),
            // A bare boolean carries no span of its own: the section's line.
            ("preempt", a.preempt.map(|_| span.clone())),
        ];
        for (key, at) in spans {
            if let Some(at) = at {
                self.report(at, &format!("array.{key}"), why);
            }
        }
        for (i, node) in a.node.iter().enumerate() {
            if let Some(p) = &node.get_ref().priority {
                let message = "only means something with mode = \"scheduler\": in \
                               active-active mode no node is elected";
                self.report(p.span(), &format!("array.node[{i}].priority"), message);
            }
        }
    }

    fn array_nodes(
        &mut self,
        nodes: &[Spanned<FileArrayNode>],
        vip: Option<Ipv4Addr>,
        array_span: std::ops::Range<usize>,
    ) -> Vec<ArrayNode> {
        if nodes.is_empty() {
            self.report(
                array_span,
                "array.node",
                "at least one [[array.node]] is required",
            );
        }
        let mut ids: HashMap<u16, FirstUse> = HashMap::new();
        let mut addresses: HashMap<Ipv4Addr, FirstUse> = HashMap::new();
        let mut macs: HashMap<[u8; 6], FirstUse> = HashMap::new();
        let mut out = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let key = format!("array.node[{i}]");
            let n = node.get_ref();
            let missing = |checker: &mut Self, what: &str| {
                checker.report(
                    node.span(),
                    &format!("{key}.{what}"),
                    "missing required key",
                );
            };
            let id = match &n.id {
                Some(v) => {
                    let id = self.int(Some(v), &format!("{key}.id"), NODE_ID, 0u16);
                    (id != 0 && self.unique(&mut ids, id, v.span(), &format!("{key}.id"), "id"))
                        .then_some(id)
                }
                None => {
                    missing(self, "id");
                    None
                }
            };
            let address = match &n.address {
                Some(v) => {
                    let k = format!("{key}.address");
                    self.ipv4(v, &k).filter(|&ip| {
                        if Some(ip) == vip {
                            self.report(v.span(), &k, "a node's address must not be the VIP");
                            return false;
                        }
                        self.unique(&mut addresses, ip, v.span(), &k, "address")
                    })
                }
                None => {
                    missing(self, "address");
                    None
                }
            };
            let mac = match &n.mac {
                Some(v) => {
                    let k = format!("{key}.mac");
                    self.mac(v, &k)
                        .filter(|&mac| self.unique(&mut macs, mac, v.span(), &k, "MAC"))
                }
                None => {
                    missing(self, "mac");
                    None
                }
            };
            let weight = self.int(
                n.weight.as_ref(),
                &format!("{key}.weight"),
                NODE_WEIGHT,
                1u32,
            );
            let priority = self.int(
                n.priority.as_ref(),
                &format!("{key}.priority"),
                PRIORITY,
                DEFAULT_PRIORITY,
            );
            if let (Some(id), Some(address), Some(mac)) = (id, address, mac) {
                out.push(ArrayNode {
                    id,
                    address,
                    mac,
                    weight,
                    enabled: n.enabled.unwrap_or(true),
                    priority,
                });
            }
        }
        out
    }

    /// Records `value` at `key`; reports (and returns false) when an earlier key has it.
    fn unique<T: std::hash::Hash + Eq + std::fmt::Debug>(
        &mut self,
        seen: &mut HashMap<T, FirstUse>,
        value: T,
        span: std::ops::Range<usize>,
        key: &str,
        what: &str,
    ) -> bool {
        if let Some((first, line)) = seen.get(&value) {
            let message = format!("{what} is already used by {first} on line {line}");
            self.report(span, key, message);
            return false;
        }
        let line = self.line(span);
        seen.insert(value, (key.to_owned(), line));
        true
    }

    fn ipv4(&mut self, value: &Spanned<String>, key: &str) -> Option<Ipv4Addr> {
        let text = value.get_ref();
        match text.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() => {
                self.report(value.span(), key, format!("{ip} is not a unicast address"));
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                let message = format!(r#"{text:?} is not an IPv4 address (e.g. "10.0.0.10")"#);
                self.report(value.span(), key, message);
                None
            }
        }
    }

    fn interface(&mut self, value: &Spanned<String>) -> String {
        let name = value.get_ref();
        let ok = !name.is_empty()
            && name.len() <= IFNAME_MAX
            && name.chars().all(|c| c.is_ascii_graphic() && c != '/')
            && name != "."
            && name != "..";
        if !ok {
            let message = format!(
                "{name:?} is not an interface name (1..={IFNAME_MAX} bytes, no spaces or '/')"
            );
            self.report(value.span(), "array.interface", message);
        }
        name.clone()
    }

    fn mac(&mut self, value: &Spanned<String>, key: &str) -> Option<[u8; 6]> {
        let text = value.get_ref();
        let Some(mac) = parse_mac(text) else {
            let message = format!(r#"{text:?} is not a MAC address (e.g. "02:00:00:00:00:01")"#);
            self.report(value.span(), key, message);
            return None;
        };
        // A group bit (multicast/broadcast) or all zeros can never be one node's interface.
        if mac[0] & 1 == 1 || mac == [0; 6] {
            self.report(value.span(), key, format!("{text:?} is not a unicast MAC"));
            return None;
        }
        Some(mac)
    }

    fn ports(&mut self, ports: &Spanned<Vec<Spanned<i64>>>) -> Vec<u16> {
        if ports.get_ref().is_empty() {
            self.report(ports.span(), "array.ports", "at least one port is required");
        }
        let mut seen: HashMap<u16, FirstUse> = HashMap::new();
        let mut out = Vec::new();
        for (i, p) in ports.get_ref().iter().enumerate() {
            let key = format!("array.ports[{i}]");
            let port = self.int(Some(p), &key, PORT, 0u16);
            if port != 0 && self.unique(&mut seen, port, p.span(), &key, "port") {
                out.push(port);
            }
        }
        out.sort_unstable();
        out
    }
}

/// The ports of every listener that accepts on `vip`: the VIP itself or an IPv4 wildcard.
fn vip_ports(vip: Ipv4Addr, services: &[ServiceConfig]) -> Vec<u16> {
    let mut ports: Vec<u16> = services
        .iter()
        .flat_map(|s| s.listen.iter().chain(&s.tls_listen))
        .filter(|a| a.port() != 0)
        .filter(|a| a.ip() == IpAddr::V4(vip) || a.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .map(std::net::SocketAddr::port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), case-insensitive.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod mode_tests;
#[cfg(test)]
mod tests;

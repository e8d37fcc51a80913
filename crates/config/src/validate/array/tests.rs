//! One test per `[array]` rule, each asserting the problem's line and key.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::{parse, DataPlane, Source};

use super::super::expect::{only_problem, problems};

/// A service on the VIP (ports 80 and 443 by default) and a valid two-node array.
const VALID: &str = r#"[[service]]
name = "web"
listen = ["10.77.1.10:80", "127.0.0.1:8080"]

[[service.backend]]
name = "web1"
address = "10.77.1.101:8080"

[array]
vip = "10.77.1.10"
interface = "eth0"
scheduler = 1

[[array.node]]
id = 1
address = "10.77.1.11"
mac = "02:77:01:00:00:01"

[[array.node]]
id = 2
address = "10.77.1.12"
mac = "02:77:01:00:00:02"
weight = 3
enabled = false
"#;

/// `VALID` with the first occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from:?}");
    VALID.replacen(from, to, 1)
}

#[test]
fn valid_array_gets_its_defaults() {
    let config = parse(VALID, Source::Inline("test".into())).unwrap();
    let array = config.array.unwrap();
    assert_eq!(array.vip, Ipv4Addr::new(10, 77, 1, 10));
    assert_eq!(array.interface, "eth0");
    assert_eq!((array.node_id, array.scheduler), (None, 1));
    assert_eq!(array.table_size, 65536);
    assert_eq!(array.bucket_idle, Duration::from_secs(60));
    assert_eq!(array.ports, vec![80], "only the listener on the VIP counts");
    assert_eq!(array.nodes.len(), 2);
    assert_eq!(array.nodes[0].mac, [2, 0x77, 1, 0, 0, 1]);
    assert_eq!((array.nodes[0].weight, array.nodes[0].enabled), (1, true));
    assert_eq!((array.nodes[1].weight, array.nodes[1].enabled), (3, false));
    assert_eq!(array.self_node(Some(2)).map(|n| n.id), Some(2));
    assert!(array.self_node(None).is_none() && array.self_node(Some(7)).is_none());
    assert!(array.is_scheduler(1));
}

#[test]
fn no_array_section_is_a_plain_node() {
    let text = VALID.split("[array]").next().unwrap();
    assert!(parse(text, Source::Inline("t".into()))
        .unwrap()
        .array
        .is_none());
}

#[test]
fn explicit_keys_are_taken() {
    let text = edit(
        "scheduler = 1\n",
        "scheduler = 2\nnode_id = 1\ntable_size = 1024\nbucket_idle = \"5m\"\nports = [443, 80]\n",
    );
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!((array.node_id, array.scheduler), (Some(1), 2));
    assert_eq!(array.table_size, 1024);
    assert_eq!(array.bucket_idle, Duration::from_secs(300));
    assert_eq!(array.ports, vec![80, 443]);
}

#[test]
fn wildcard_listeners_count_for_the_default_ports() {
    let text = edit("\"10.77.1.10:80\", ", "\"0.0.0.0:8000\", ");
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.ports, vec![8000]);
}

#[test]
fn missing_keys_are_named() {
    let text = edit(
        "vip = \"10.77.1.10\"\ninterface = \"eth0\"\nscheduler = 1\n",
        "",
    );
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["array.vip", "array.interface", "array.scheduler"]);
    let line = text.lines().position(|l| l == "[array]").unwrap() + 1;
    assert!(found.iter().all(|p| p.line == line), "{found:?}");
}

#[test]
fn vip_must_be_unicast_ipv4() {
    only_problem(
        &edit("vip = \"10.77.1.10\"", "vip = \"::1\""),
        "vip =",
        "array.vip",
        "not an IPv4",
    );
    only_problem(
        &edit("vip = \"10.77.1.10\"", "vip = \"255.255.255.255\""),
        "vip =",
        "array.vip",
        "unicast",
    );
}

#[test]
fn interface_names_fit_the_kernel() {
    let text = edit("\"eth0\"", "\"a-name-of-16-byt\"");
    only_problem(
        &text,
        "interface",
        "array.interface",
        "not an interface name",
    );
    let text = edit("\"eth0\"", "\"eth 0\"");
    only_problem(
        &text,
        "interface",
        "array.interface",
        "not an interface name",
    );
}

#[test]
fn scheduler_and_node_id_must_be_listed() {
    only_problem(
        &edit("scheduler = 1", "scheduler = 9"),
        "scheduler",
        "array.scheduler",
        "not an [[array.node]]",
    );
    let text = edit("scheduler = 1\n", "scheduler = 1\nnode_id = 3\n");
    only_problem(&text, "node_id", "array.node_id", "not an [[array.node]]");
    let text = edit("scheduler = 1", "scheduler = 65535");
    only_problem(&text, "scheduler", "array.scheduler", "between 1 and 65534");
}

#[test]
fn table_size_is_a_power_of_two_in_range() {
    let text = edit("scheduler = 1\n", "scheduler = 1\ntable_size = 1000\n");
    only_problem(&text, "table_size", "array.table_size", "power of two");
    let text = edit("scheduler = 1\n", "scheduler = 1\ntable_size = 1\n");
    only_problem(&text, "table_size", "array.table_size", "between 2 and");
}

#[test]
fn data_plane_is_one_of_three_words_and_defaults_to_af_packet() {
    let config = parse(VALID, Source::Inline("test".into())).unwrap();
    assert_eq!(config.array.unwrap().data_plane, DataPlane::AfPacket);
    for (word, want) in [
        ("auto", DataPlane::Auto),
        ("xdp", DataPlane::Xdp),
        ("af_packet", DataPlane::AfPacket),
    ] {
        let text = edit(
            "scheduler = 1\n",
            &format!("scheduler = 1\ndata_plane = \"{word}\"\n"),
        );
        let config = parse(&text, Source::Inline("test".into())).unwrap();
        assert_eq!(config.array.unwrap().data_plane, want);
        assert_eq!(want.as_str(), word);
    }
    let text = edit("scheduler = 1\n", "scheduler = 1\ndata_plane = \"dpdk\"\n");
    only_problem(&text, "data_plane", "array.data_plane", "not a data plane");
    let text = edit("scheduler = 1\n", "scheduler = 1\ndata_plane = 1\n");
    assert!(!problems(&text).is_empty(), "a number is refused");
}

#[test]
fn bucket_idle_is_a_nonzero_duration() {
    let text = edit("scheduler = 1\n", "scheduler = 1\nbucket_idle = \"0s\"\n");
    only_problem(
        &text,
        "bucket_idle",
        "array.bucket_idle",
        "longer than zero",
    );
}

#[test]
fn ports_are_valid_and_unique() {
    let text = edit("scheduler = 1\n", "scheduler = 1\nports = [80, 0, 80]\n");
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["array.ports[1]", "array.ports[2]"], "{found:?}");
    let text = edit("scheduler = 1\n", "scheduler = 1\nports = []\n");
    only_problem(&text, "ports", "array.ports", "at least one");
}

#[test]
fn default_ports_need_a_listener_on_the_vip() {
    let text = edit("\"10.77.1.10:80\", ", "");
    only_problem(
        &text,
        "[array]",
        "array.ports",
        "no service listens on the VIP",
    );
}

#[test]
fn nodes_are_required_and_complete() {
    let text = VALID.split("[[array.node]]").next().unwrap().to_owned();
    only_problem(&text, "[array]", "array.node", "at least one");
    let text = edit("mac = \"02:77:01:00:00:01\"\n", "");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "array.node[0].mac");
}

#[test]
fn node_ids_addresses_and_macs_are_unique() {
    only_problem(
        &edit("id = 2", "id = 1"),
        "id = 1\naddress = \"10.77.1.12",
        "array.node[1].id",
        "already used by array.node[0].id",
    );
    only_problem(
        &edit("\"10.77.1.12\"", "\"10.77.1.11\""),
        "address = \"10.77.1.11\"\nmac = \"02:77:01:00:00:02",
        "array.node[1].address",
        "already used",
    );
    only_problem(
        &edit("00:00:02", "00:00:01"),
        "mac = \"02:77:01:00:00:01\"\nweight",
        "array.node[1].mac",
        "already used",
    );
}

#[test]
fn node_values_are_checked() {
    only_problem(
        &edit("\"10.77.1.12\"", "\"10.77.1.10\""),
        "\"10.77.1.10\"\nmac",
        "array.node[1].address",
        "must not be the VIP",
    );
    only_problem(
        &edit("\"02:77:01:00:00:02\"", "\"02:77:01:00:00\""),
        "02:77:01:00:00\"",
        "array.node[1].mac",
        "not a MAC",
    );
    only_problem(
        &edit("\"02:77:01:00:00:02\"", "\"ff:ff:ff:ff:ff:ff\""),
        "ff:ff",
        "array.node[1].mac",
        "unicast",
    );
    only_problem(
        &edit("weight = 3", "weight = 0"),
        "weight = 0",
        "array.node[1].weight",
        "between 1 and 1000",
    );
}

//! Rules of back-ends named by DNS (`address = "name:port"`, `srv`) and of `[node] resolve_*`.

use std::time::Duration;

use super::{only_problem, SERVICE};
use crate::{parse, Config, DnsTarget, Source};

fn valid(text: &str) -> Config {
    match parse(text, Source::Inline("t".into())) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid file, got {e}\n--- text:\n{text}"),
    }
}

/// A name with a port is a DNS back-end, not a fixed one; check needs no DNS for it.
#[test]
fn a_name_with_a_port_is_discovered() {
    let text = SERVICE.replace("127.0.0.1:8001", "app.internal.:8080");
    let config = valid(&text);
    let s = &config.services[0];
    assert!(s.backends.is_empty(), "{:?}", s.backends);
    assert_eq!(s.discovered.len(), 1);
    assert_eq!(s.discovered[0].name, "web1");
    assert_eq!(
        s.discovered[0].target,
        DnsTarget::Host {
            host: "app.internal".into(),
            port: 8080
        }
    );
}

#[test]
fn srv_names_a_discovered_backend() {
    let text = SERVICE.replace(
        "address = \"127.0.0.1:8001\"",
        "srv = \"_http._tcp.app.internal\"\nweight = 3",
    );
    let config = valid(&text);
    let d = &config.services[0].discovered[0];
    assert_eq!(
        d.target,
        DnsTarget::Srv {
            name: "_http._tcp.app.internal".into()
        }
    );
    assert_eq!(d.weight, 3);
}

#[test]
fn bad_names_ports_and_both_keys_are_refused() {
    let key = "service[0].backend[0].address";
    let text = SERVICE.replace("127.0.0.1:8001", "app.internal");
    only_problem(&text, "app.internal", key, "has no port");
    let text = SERVICE.replace("127.0.0.1:8001", "app.internal:0");
    only_problem(&text, "app.internal", key, "no valid port");
    let text = SERVICE.replace("127.0.0.1:8001", "app..internal:80");
    only_problem(&text, "app..internal", key, "empty label");
    let text = SERVICE.replace("127.0.0.1:8001", "10.0.0.300:80");
    only_problem(
        &text,
        "10.0.0.300",
        key,
        "neither an IP address nor a DNS name",
    );
    let text = SERVICE.replace("127.0.0.1:8001", "-app.internal:80");
    only_problem(&text, "-app", key, "invalid label");

    let srv = "service[0].backend[0].srv";
    let text = SERVICE.replace("address = \"127.0.0.1:8001\"", "srv = \"app.internal\"");
    only_problem(&text, "srv", srv, "_service._proto.name");
    let text = format!("{SERVICE}srv = \"_http._tcp.app.internal\"\n");
    only_problem(&text, "srv", srv, "exclude each other");
}

#[test]
fn resolve_settings_default_and_bounds() {
    let config = valid(SERVICE);
    assert!(config.node.resolve.resolvers.is_empty());
    assert_eq!(config.node.resolve.min_ttl, Duration::from_secs(1));
    assert_eq!(config.node.resolve.max_ttl, Duration::from_secs(300));

    let text = format!(
        "[node]\nresolvers = [\"127.0.0.1:5353\", \"[::1]:53\"]\nresolve_min_ttl = \"2s\"\n\
         resolve_max_ttl = \"1m\"\nresolve_drain = \"0s\"\n\n{SERVICE}"
    );
    let r = valid(&text).node.resolve;
    assert_eq!(r.resolvers.len(), 2);
    assert_eq!(r.min_ttl, Duration::from_secs(2));
    assert_eq!(r.max_ttl, Duration::from_secs(60));
    assert_eq!(r.drain, Duration::ZERO);

    let text = format!("[node]\nresolve_min_ttl = \"10s\"\nresolve_max_ttl = \"5s\"\n\n{SERVICE}");
    only_problem(
        &text,
        "resolve_max_ttl",
        "node.resolve_max_ttl",
        "below resolve_min_ttl",
    );
    let text = format!("[node]\nresolve_min_ttl = \"0s\"\n\n{SERVICE}");
    only_problem(&text, "resolve_min_ttl", "node.resolve_min_ttl", "");
    let text = format!("[node]\nresolvers = [\"ns.example:53\"]\n\n{SERVICE}");
    only_problem(&text, "resolvers", "node.resolvers", "not an ip:port");
    let text = format!("[node]\nresolvers = [\"127.0.0.1:0\"]\n\n{SERVICE}");
    only_problem(&text, "resolvers", "node.resolvers", "port 0");
}

/// A minimum above the default maximum raises the maximum with it rather than failing.
#[test]
fn a_large_minimum_alone_is_valid() {
    let text = format!("[node]\nresolve_min_ttl = \"10m\"\n\n{SERVICE}");
    let r = valid(&text).node.resolve;
    assert_eq!(r.max_ttl, Duration::from_secs(600));
}

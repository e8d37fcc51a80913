//! One test per validation rule, each asserting the problem's line and key.

use std::path::PathBuf;

use crate::{parse, Source};

use super::expect::{line_of, only_problem, problems};

/// A valid service to append to or edit: lines 1–7.
const SERVICE: &str = r#"[[service]]
name = "web"
listen = ["127.0.0.1:8080"]

[[service.backend]]
name = "web1"
address = "127.0.0.1:8001"
"#;

/// `SERVICE` with `extra` lines inserted after its `listen` line (line 3).
fn service_with(extra: &str) -> String {
    SERVICE.replacen(
        "listen = [\"127.0.0.1:8080\"]\n",
        &format!("listen = [\"127.0.0.1:8080\"]\n{extra}\n"),
        1,
    )
}

/// A scratch directory unique to one test (by `tag`) of this process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "pentaflow-config-unit-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Write `contents` to `name` (directories created) and return its absolute path.
    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn base_service_is_valid() {
    let config = parse(SERVICE, Source::Inline("test".into())).unwrap();
    assert_eq!(config.services.len(), 1);
}

// ---- [node] ----

#[test]
fn node_admin_must_be_ip_port() {
    let text = format!("[node]\nadmin = \"localhost:9090\"\n{SERVICE}");
    only_problem(&text, "admin", "node.admin", "is not an ip:port address");
}

#[test]
fn node_shutdown_grace_must_be_a_duration_but_may_be_zero() {
    let text = format!("[node]\nshutdown_grace = \"soon\"\n{SERVICE}");
    only_problem(
        &text,
        "shutdown_grace",
        "node.shutdown_grace",
        "is not a duration",
    );
    let text = format!("[node]\nshutdown_grace = \"0s\"\n{SERVICE}");
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    assert!(config.node.shutdown_grace.is_zero());
}

#[test]
fn node_admin_must_not_clash_with_a_listener() {
    let text = format!("[node]\nadmin = \"127.0.0.1:8080\"\n{SERVICE}");
    only_problem(
        &text,
        "listen",
        "service[0].listen[0]",
        "already used by node.admin on line 2",
    );
}

// ---- [limits] ----

#[test]
fn limits_integer_ranges() {
    for (line, key, says) in [
        (
            "max_header_bytes = 1023",
            "limits.max_header_bytes",
            "between 1024 and 1048576, not 1023",
        ),
        (
            "max_header_bytes = 1048577",
            "limits.max_header_bytes",
            "between 1024 and 1048576",
        ),
        (
            "max_headers = 0",
            "limits.max_headers",
            "between 1 and 1000, not 0",
        ),
        (
            "max_headers = 1001",
            "limits.max_headers",
            "between 1 and 1000",
        ),
        (
            "max_connections = 0",
            "limits.max_connections",
            "at least 1, not 0",
        ),
        (
            "max_connections = -5",
            "limits.max_connections",
            "at least 1, not -5",
        ),
        (
            "max_connections_per_client = 0",
            "limits.max_connections_per_client",
            "at least 1, not 0",
        ),
    ] {
        let text = format!("{SERVICE}\n[limits]\n{line}\n");
        only_problem(&text, line, key, says);
    }
}

#[test]
fn limits_timeouts_must_be_nonzero_durations() {
    for field in [
        "header_read_timeout",
        "idle_timeout",
        "connect_timeout",
        "response_timeout",
    ] {
        let key = format!("limits.{field}");
        let text = format!("{SERVICE}\n[limits]\n{field} = \"0ms\"\n");
        only_problem(&text, field, &key, "must be longer than zero");
        let text = format!("{SERVICE}\n[limits]\n{field} = \"3 parsecs\"\n");
        only_problem(&text, field, &key, "is not a duration");
    }
}

// ---- [[service]] ----

#[test]
fn at_least_one_service() {
    only_problem(
        "[node]\naccess_log = false\n",
        "[node]",
        "service",
        "at least one [[service]]",
    );
}

#[test]
fn service_name_is_required_valid_and_unique() {
    let text = SERVICE.replace("name = \"web\"\n", "");
    only_problem(
        &text,
        "[[service]]",
        "service[0].name",
        "missing required key",
    );

    let text = SERVICE.replace("name = \"web\"", "name = \"web site\"");
    only_problem(
        &text,
        "web site",
        "service[0].name",
        "not a valid service name",
    );

    let second = SERVICE.replace("8080", "8081");
    let text = format!("{SERVICE}\n{second}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "service[1].name");
    assert_eq!(found[0].line, 10);
    assert!(found[0]
        .message
        .contains("already used by service[0] on line 2"));
}

#[test]
fn service_listen_is_required_and_nonempty() {
    let text = SERVICE.replace("listen = [\"127.0.0.1:8080\"]\n", "");
    only_problem(
        &text,
        "[[service]]",
        "service[0].listen",
        "missing: set listen (plain HTTP), tls_listen (HTTPS) or both",
    );
    let text = SERVICE.replace("[\"127.0.0.1:8080\"]", "[]");
    only_problem(&text, "listen", "service[0].listen", "at least one");
    let text = SERVICE.replace("[\"127.0.0.1:8080\"]", "[\"127.0.0.1:8080\", \"8081\"]");
    only_problem(
        &text,
        "listen",
        "service[0].listen[1]",
        "\"8081\" is not an ip:port",
    );
}

#[test]
fn listen_addresses_are_not_used_twice() {
    let second = SERVICE.replace("\"web\"", "\"api\"");
    let text = format!("{SERVICE}\n{second}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].line, found[0].key.as_str()),
        (11, "service[1].listen[0]")
    );
    assert!(found[0]
        .message
        .contains("already used by service[0].listen[0] on line 3"));

    // A wildcard on the same port clashes too; the same address within one service as well.
    let text = SERVICE.replace(
        "[\"127.0.0.1:8080\"]",
        "[\"127.0.0.1:8080\", \"0.0.0.0:8080\"]",
    );
    only_problem(
        &text,
        "listen",
        "service[0].listen[1]",
        "(as 127.0.0.1:8080)",
    );
    // Other ports, other families and ephemeral ports do not.
    let text = SERVICE.replace(
        "[\"127.0.0.1:8080\"]",
        "[\"127.0.0.1:8080\", \"127.0.0.1:8081\", \"[::1]:8080\", \"127.0.0.1:0\", \"127.0.0.1:0\"]",
    );
    parse(&text, Source::Inline("t".into())).unwrap();
}

#[test]
fn policy_must_be_known() {
    let text = service_with("policy = \"random\"");
    only_problem(
        &text,
        "policy",
        "service[0].policy",
        "\"random\" is not a policy",
    );
}

#[test]
fn hash_balance_factor_only_with_url_hash_and_above_100() {
    let text = service_with("hash_balance_factor = 150");
    only_problem(
        &text,
        "hash_balance",
        "service[0].hash_balance_factor",
        "only applies to policy = \"url_hash\"",
    );
    let text = service_with("policy = \"url_hash\"\nhash_balance_factor = 100");
    only_problem(
        &text,
        "hash_balance",
        "service[0].hash_balance_factor",
        "at least 101, not 100",
    );
    let text = service_with("policy = \"url_hash\"\nhash_balance_factor = 101");
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    assert_eq!(config.services[0].hash_balance_factor, Some(101));
}

#[test]
fn retries_range() {
    let text = service_with("retries = 17");
    only_problem(
        &text,
        "retries",
        "service[0].retries",
        "between 0 and 16, not 17",
    );
    let text = service_with("retries = -1");
    only_problem(&text, "retries", "service[0].retries", "not -1");
}

#[test]
fn persistence_must_be_known() {
    let text = service_with("persistence = \"sticky\"");
    only_problem(
        &text,
        "persistence",
        "service[0].persistence",
        "\"sticky\" is not a persistence mode",
    );
}

#[test]
fn persistence_needs_its_table() {
    let text = service_with("persistence = \"cookie\"");
    only_problem(
        &text,
        "persistence",
        "service[0].cookie",
        "needs a [service.cookie] table",
    );
    let text = service_with("persistence = \"session\"");
    only_problem(
        &text,
        "persistence",
        "service[0].session",
        "needs a [service.session] table",
    );
}

#[test]
fn a_table_for_another_mode_is_an_error() {
    let text = format!("{SERVICE}\n[service.cookie]\nsecret = \"0123456789abcdef\"\n");
    only_problem(
        &text,
        "[service.cookie]",
        "service[0].cookie",
        "persistence is \"none\"",
    );
    let text = format!(
        "{}\n[service.session]\ncookie = \"JSESSIONID\"\n[service.cookie]\nsecret = \"0123456789abcdef\"\n",
        service_with("persistence = \"cookie\"")
    );
    only_problem(
        &text,
        "[service.session]",
        "service[0].session",
        "persistence is \"cookie\"",
    );
}

mod backend;
mod discovery;
mod proxy_protocol;
mod tables;
mod tickets;
mod tls;

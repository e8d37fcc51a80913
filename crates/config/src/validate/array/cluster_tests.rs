//! The cluster keys of `[array]`: defaults, priorities and each refusal with its line and key.

use std::time::Duration;

use crate::{parse, Source};

use super::super::expect::only_problem;

/// A two-node array with a cluster key and no static scheduler.
const CLUSTER: &str = r#"[[service]]
name = "web"
listen = ["10.77.1.10:80"]

[[service.backend]]
name = "web1"
address = "10.77.1.101:8080"

[array]
vip = "10.77.1.10"
interface = "eth0"
key = "a cluster key of 16+ bytes"

[[array.node]]
id = 1
address = "10.77.1.11"
mac = "02:77:01:00:00:01"

[[array.node]]
id = 2
address = "10.77.1.12"
mac = "02:77:01:00:00:02"
priority = 7
"#;

#[test]
fn a_key_elects_the_scheduler_with_defaults() {
    let array = parse(CLUSTER, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    let c = array.cluster.clone().unwrap();
    assert_eq!(c.key, b"a cluster key of 16+ bytes");
    assert_eq!(c.port, 7946);
    assert_eq!(c.heartbeat, Duration::from_millis(50));
    assert_eq!(c.dead_after, Duration::from_millis(200));
    assert!(!c.preempt);
    assert_eq!(
        (c.status_poll, c.status_retries),
        (Duration::from_millis(200), 2)
    );
    assert_eq!(c.admin_token, None);
    assert_eq!(array.scheduler, 0);
    assert_eq!((array.nodes[0].priority, array.nodes[1].priority), (100, 7));
    assert!(!array.is_scheduler(1) && !array.is_scheduler(0));
    assert!(
        !format!("{c:?}").contains("cluster key"),
        "the key is redacted"
    );
}

#[test]
fn the_preferred_scheduler_ranks_first_unless_told() {
    let text = CLUSTER.replace(
        "interface = \"eth0\"\n",
        "interface = \"eth0\"\nscheduler = 2\n",
    );
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.nodes[1].priority, 7, "an explicit priority wins");
    let text = CLUSTER.replace(
        "interface = \"eth0\"\n",
        "interface = \"eth0\"\nscheduler = 1\n",
    );
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.nodes[0].priority, 200);
}

#[test]
fn timers_and_port_are_read() {
    let text = CLUSTER.replace(
        "key = ",
        "port = 9000\nheartbeat = \"50ms\"\ndead_after = \"1s\"\npreempt = true\n\
         status_poll = \"1s\"\nstatus_retries = 0\nkey = ",
    );
    let c = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(
        (c.port, c.heartbeat, c.dead_after, c.preempt),
        (
            9000,
            Duration::from_millis(50),
            Duration::from_secs(1),
            true
        )
    );
    assert_eq!(
        (c.status_poll, c.status_retries),
        (Duration::from_secs(1), 0)
    );
}

#[test]
fn refusals_name_line_and_key() {
    only_problem(
        &CLUSTER.replace("a cluster key of 16+ bytes", "short"),
        "key = ",
        "array.key",
        "at least 16 bytes",
    );
    only_problem(
        &CLUSTER.replace("key = ", "dead_after = \"50ms\"\nkey = "),
        "dead_after",
        "array.dead_after",
        "longer than heartbeat",
    );
    only_problem(
        &CLUSTER.replace("key = ", "key_file = \"k\"\nkey = "),
        "key_file",
        "array.key_file",
        "not both",
    );
    only_problem(
        &CLUSTER.replace("key = ", "status_retries = 101\nkey = "),
        "status_retries",
        "array.status_retries",
        "between 0 and 100",
    );
    only_problem(
        &CLUSTER.replace("key = ", "status_poll = \"0s\"\nkey = "),
        "status_poll",
        "array.status_poll",
        "",
    );
    only_problem(
        &CLUSTER.replace("priority = 7", "priority = 300"),
        "priority = 300",
        "array.node[1].priority",
        "between 0 and 255",
    );
    let no_key = CLUSTER.replace(
        "key = \"a cluster key of 16+ bytes\"\n",
        "scheduler = 1\nport = 7000\n",
    );
    only_problem(&no_key, "port = 7000", "array.port", "needs a cluster key");
}

#[test]
fn a_key_file_loses_its_line_break() {
    let dir = std::env::temp_dir().join(format!("pf-cluster-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cluster.key"), "0123456789abcdef0123\n").unwrap();
    let text = CLUSTER.replace(
        "key = \"a cluster key of 16+ bytes\"",
        "key_file = \"cluster.key\"",
    );
    let path = dir.join("array.toml");
    std::fs::write(&path, &text).unwrap();
    let c = crate::load(&path).unwrap().array.unwrap().cluster.unwrap();
    assert_eq!(c.key, b"0123456789abcdef0123");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_admin_token_is_read_and_checked() {
    let text = CLUSTER.replace("key = ", "admin_token = \"operator token 0123\"\nkey = ");
    let c = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.admin_token.as_deref(), Some(&b"operator token 0123"[..]));
    assert!(!format!("{c:?}").contains("operator token"), "redacted");
    only_problem(
        &CLUSTER.replace("key = ", "admin_token = \"short\"\nkey = "),
        "admin_token",
        "array.admin_token",
        "the admin token must be at least 16 bytes",
    );
}

#[test]
fn an_array_nodes_admin_stays_off_the_vip() {
    for (admin, says) in [
        ("0.0.0.0:9090", "listens on every address"),
        ("10.77.1.10:9090", "is the VIP"),
    ] {
        let text = format!("[node]\nadmin = \"{admin}\"\n\n{CLUSTER}");
        only_problem(&text, "admin =", "node.admin", says);
    }
    let ok = format!("[node]\nadmin = \"127.0.0.1:9090\"\n\n{CLUSTER}");
    assert!(parse(&ok, Source::Inline("t".into())).is_ok());
}

#[test]
fn the_notify_script_must_be_an_executable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("pf-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let text = CLUSTER.replace("key = ", "notify = \"notify.sh\"\nkey = ");
    let path = dir.join("array.toml");
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = crate::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("array.notify") && err.contains("not executable"),
        "{err}"
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = crate::load(&path).unwrap().array.unwrap().cluster.unwrap();
    assert_eq!(c.notify, Some(script), "resolved beside the file");
    std::fs::remove_file(dir.join("notify.sh")).unwrap();
    let err = crate::load(&path).unwrap_err().to_string();
    assert!(err.contains("array.notify"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `[array] mode`: the default, active-active's needs, the keys each mode refuses (each at its
//! own line and key), and an unknown word.

use crate::{parse, ArrayMode, Source};

use super::super::expect::{line_of, only_problem, problems};

/// A two-node active-active array: a cluster key, no scheduler.
const ACTIVE_ACTIVE: &str = r#"[[service]]
name = "web"
listen = ["10.77.1.10:80"]

[[service.backend]]
name = "web1"
address = "10.77.1.101:8080"

[array]
mode = "active-active"
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
"#;

#[test]
fn the_default_mode_is_the_single_scheduler() {
    let text = ACTIVE_ACTIVE.replace("mode = \"active-active\"\n", "scheduler = 1\n");
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.mode, ArrayMode::Scheduler);
    let text = text.replace("scheduler = 1\n", "mode = \"scheduler\"\nscheduler = 1\n");
    let array = parse(&text, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.mode, ArrayMode::Scheduler);
}

#[test]
fn active_active_with_a_key_and_two_nodes_is_valid_and_needs_no_scheduler() {
    let array = parse(ACTIVE_ACTIVE, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.mode, ArrayMode::ActiveActive);
    assert_eq!(array.scheduler, 0);
    assert_eq!(array.nodes.len(), 2);
    assert!(array.cluster.is_some());
}

#[test]
fn an_unknown_mode_lists_the_valid_ones() {
    let text = ACTIVE_ACTIVE.replace("\"active-active\"", "\"active-passive\"");
    only_problem(
        &text,
        "mode = ",
        "array.mode",
        "\"active-passive\" is not a mode: use \"scheduler\" or \"active-active\"",
    );
}

#[test]
fn active_active_needs_a_cluster_key() {
    let text = ACTIVE_ACTIVE.replace("key = \"a cluster key of 16+ bytes\"\n", "");
    only_problem(
        &text,
        "[array]",
        "array.key",
        "mode = \"active-active\" needs a cluster key",
    );
}

#[test]
fn active_active_needs_two_nodes() {
    let cut = ACTIVE_ACTIVE
        .rfind("[[array.node]]")
        .expect("a second node");
    only_problem(
        &ACTIVE_ACTIVE[..cut],
        "[array]",
        "array.node",
        "needs at least 2 [[array.node]]s (an owner and a backup per connection), found 1",
    );
}

#[test]
fn active_active_refuses_each_key_of_the_single_scheduler_at_its_line() {
    let text = ACTIVE_ACTIVE
        .replace(
            "interface = \"eth0\"\n",
            "interface = \"eth0\"\nscheduler = 1\ntable_size = 1024\nbucket_idle = \"30s\"\n",
        )
        .replace(
            "mac = \"02:77:01:00:00:02\"\n",
            "mac = \"02:77:01:00:00:02\"\npriority = 7\n",
        );
    let found = problems(&text);
    let got: Vec<(&str, usize)> = found.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("array.scheduler", line_of(&text, "scheduler = 1")),
            ("array.table_size", line_of(&text, "table_size")),
            ("array.bucket_idle", line_of(&text, "bucket_idle")),
            ("array.node[1].priority", line_of(&text, "priority = 7")),
        ],
        "{found:#?}"
    );
    assert!(found[0]
        .message
        .contains("only means something with mode = \"scheduler\""));
    assert!(found[3].message.contains("no node is elected"));
}

#[test]
fn active_active_refuses_preempt_at_the_section() {
    let text = ACTIVE_ACTIVE.replace(
        "interface = \"eth0\"\n",
        "interface = \"eth0\"\npreempt = true\n",
    );
    only_problem(&text, "[array]", "array.preempt", "in active-active mode");
}

#[test]
fn a_mode_change_is_a_difference_of_the_array() {
    let aa = parse(ACTIVE_ACTIVE, Source::Inline("t".into()))
        .unwrap()
        .array
        .unwrap();
    let mut single = aa.clone();
    single.mode = ArrayMode::Scheduler;
    let keys: Vec<String> = crate::diff_array(&single, &aa)
        .into_iter()
        .map(|c| c.key)
        .collect();
    assert_eq!(keys, ["array.mode"]);
}

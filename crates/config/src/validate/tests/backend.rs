//! Rules of `[[service.backend]]`.

use super::{only_problem, problems, SERVICE};
use crate::{parse, Source};

#[test]
fn at_least_one_backend() {
    let text = SERVICE.split("\n\n").next().unwrap().to_owned() + "\n";
    only_problem(
        &text,
        "[[service]]",
        "service[0].backend",
        "at least one [[service.backend]]",
    );
}

#[test]
fn backend_name_required_valid_unique() {
    let text = SERVICE.replace("name = \"web1\"\n", "");
    only_problem(
        &text,
        "[[service.backend]]",
        "service[0].backend[0].name",
        "missing required key",
    );
    let text = SERVICE.replace("\"web1\"", "\"web/1\"");
    only_problem(
        &text,
        "web/1",
        "service[0].backend[0].name",
        "not a valid back-end name",
    );
    let text =
        format!("{SERVICE}\n[[service.backend]]\nname = \"web1\"\naddress = \"127.0.0.1:8002\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].line, found[0].key.as_str()),
        (10, "service[0].backend[1].name")
    );
    assert!(found[0]
        .message
        .contains("already used by service[0].backend[0] on line 6"));
}

#[test]
fn backend_address_required_ip_port_nonzero() {
    let text = SERVICE.replace("address = \"127.0.0.1:8001\"\n", "");
    only_problem(
        &text,
        "[[service.backend]]",
        "service[0].backend[0].address",
        "missing required key",
    );
    let text = SERVICE.replace("127.0.0.1:8001", "web1 local:80");
    only_problem(
        &text,
        "web1 local",
        "service[0].backend[0].address",
        "invalid label",
    );
    let text = SERVICE.replace("127.0.0.1:8001", "127.0.0.1:0");
    only_problem(&text, "address", "service[0].backend[0].address", "port 0");
}

#[test]
fn backend_weight_range_and_default() {
    let text = format!("{SERVICE}weight = 0\n");
    only_problem(
        &text,
        "weight",
        "service[0].backend[0].weight",
        "between 1 and 1000, not 0",
    );
    let text = format!("{SERVICE}weight = 1001\n");
    only_problem(&text, "weight", "service[0].backend[0].weight", "not 1001");
    let text = format!("{SERVICE}weight = 1000\n");
    let config = parse(&text, Source::Inline("t".into())).unwrap();
    assert_eq!(config.services[0].backends[0].weight, 1000);
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let text = r#"[limits]
max_headers = 0
connect_timeout = "0s"

[[service]]
name = "bad name"
listen = ["nowhere"]
policy = "random"

[[service.backend]]
name = "b1"
address = "10.0.0.5"
weight = 5000

[[service.backend]]
name = "b1"
address = "10.0.0.6:80"
"#;
    let found: Vec<(usize, String)> = problems(text)
        .into_iter()
        .map(|p| (p.line, p.key))
        .collect();
    let expected = [
        (2, "limits.max_headers"),
        (3, "limits.connect_timeout"),
        (6, "service[0].name"),
        (7, "service[0].listen[0]"),
        (8, "service[0].policy"),
        (12, "service[0].backend[0].address"),
        (13, "service[0].backend[0].weight"),
        (16, "service[0].backend[1].name"),
    ]
    .map(|(line, key)| (line, key.to_owned()));
    assert_eq!(found, expected);
    let err = parse(text, Source::Inline("array.toml".into())).unwrap_err();
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 8, "{shown}");
    assert!(shown.contains(
        "array.toml:12: service[0].backend[0].address: \"10.0.0.5\" has no port: use ip:port"
    ));
}

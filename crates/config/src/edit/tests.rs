use super::*;

const TEXT: &str = r#"# the operator's comment survives
[node]
admin = "127.0.0.1:9090"

[[service]]
name = "web"
listen = ["127.0.0.1:8080"]

[[service.backend]]
name = "a"          # first
address = "127.0.0.1:8001"

[[service.backend]]
name = "b"
address = "127.0.0.1:8002"
weight = 2

[[service]]
name = "api"
listen = ["127.0.0.1:8081"]

[[service.backend]]
name = "x"
address = "127.0.0.1:9001"
"#;

fn run(change: &BackendChange) -> Result<(String, Config), EditError> {
    apply(TEXT, Source::Inline("test".into()), change)
}

fn web(change_name: &str) -> (String, String) {
    ("web".to_owned(), change_name.to_owned())
}

#[test]
fn add_goes_to_the_right_service_and_keeps_comments() {
    let (text, config) = run(&BackendChange::Add {
        service: "web".into(),
        name: "c".into(),
        address: "127.0.0.1:8003".into(),
        weight: Some(5),
        state: Some(BackendAdminState::Drain),
    })
    .unwrap();
    assert!(text.contains("# the operator's comment survives"));
    assert!(text.contains("# first"));
    let names: Vec<_> = config.services[0]
        .backends
        .iter()
        .map(|b| &b.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let c = &config.services[0].backends[2];
    assert_eq!((c.weight, c.state), (5, BackendAdminState::Drain));
    assert_eq!(config.services[1].backends.len(), 1);
}

#[test]
fn weight_state_and_remove() {
    let (service, name) = web("a");
    let (text, config) = run(&BackendChange::Weight {
        service: service.clone(),
        name: name.clone(),
        weight: 7,
    })
    .unwrap();
    assert_eq!(config.services[0].backends[0].weight, 7);
    let (text, config) = apply(
        &text,
        Source::Inline("t".into()),
        &BackendChange::State {
            service: service.clone(),
            name: name.clone(),
            state: BackendAdminState::Maintenance,
        },
    )
    .unwrap();
    assert_eq!(
        config.services[0].backends[0].state,
        BackendAdminState::Maintenance
    );
    let (text, config) = apply(
        &text,
        Source::Inline("t".into()),
        &BackendChange::State {
            service: service.clone(),
            name: name.clone(),
            state: BackendAdminState::Ready,
        },
    )
    .unwrap();
    assert!(!text.contains("state"));
    assert_eq!(
        config.services[0].backends[0].state,
        BackendAdminState::Ready
    );
    let (_, config) = apply(
        &text,
        Source::Inline("t".into()),
        &BackendChange::Remove { service, name },
    )
    .unwrap();
    assert_eq!(config.services[0].backends.len(), 1);
    assert_eq!(config.services[0].backends[0].name, "b");
}

#[test]
fn bad_changes_are_refused() {
    let add = |service: &str, name: &str, address: &str, weight| BackendChange::Add {
        service: service.into(),
        name: name.into(),
        address: address.into(),
        weight,
        state: None,
    };
    assert!(matches!(
        run(&add("nope", "c", "127.0.0.1:8003", None)),
        Err(EditError::UnknownService(_))
    ));
    assert!(matches!(
        run(&add("web", "a", "127.0.0.1:8003", None)),
        Err(EditError::DuplicateName { .. })
    ));
    assert!(matches!(
        run(&add("web", "c", "127.0.0.1:8002", None)),
        Err(EditError::DuplicateAddress { .. })
    ));
    assert!(matches!(
        run(&add("web", "c", "localhost:80", None)),
        Err(EditError::BadAddress(_))
    ));
    assert!(matches!(
        run(&add("web", "c", "127.0.0.1:0", None)),
        Err(EditError::BadAddress(_))
    ));
    assert!(matches!(
        run(&add("web", "c", "127.0.0.1:8003", Some(0))),
        Err(EditError::WeightOutOfRange(0))
    ));
    assert!(matches!(
        run(&add("web", "c d", "127.0.0.1:8003", None)),
        Err(EditError::Invalid(_))
    ));
    let (service, name) = web("zz");
    assert!(matches!(
        run(&BackendChange::Weight {
            service,
            name,
            weight: 3
        }),
        Err(EditError::UnknownBackend { .. })
    ));
    let (service, name) = web("a");
    assert!(matches!(
        run(&BackendChange::Weight {
            service,
            name,
            weight: 1001
        }),
        Err(EditError::WeightOutOfRange(1001))
    ));
    // The last back-end of a service cannot go: the file would not validate.
    assert!(matches!(
        run(&BackendChange::Remove {
            service: "api".into(),
            name: "x".into()
        }),
        Err(EditError::Invalid(_))
    ));
}

#[test]
fn a_bad_state_word_in_the_file_is_named() {
    let text = TEXT.replace("weight = 2", "weight = 2\nstate = \"off\"");
    let err = crate::parse(&text, Source::Inline("t".into())).unwrap_err();
    assert!(
        err.to_string().contains("service[0].backend[1].state"),
        "{err}"
    );
}

#[test]
fn the_node_admin_token_is_read_and_checked() {
    let with = |line: &str| TEXT.replace("[node]\n", &format!("[node]\n{line}\n"));
    let config = crate::parse(
        &with("admin_token = \"a node token 0123\""),
        Source::Inline("t".into()),
    )
    .unwrap();
    assert_eq!(
        config.node.admin_token.as_deref(),
        Some(&b"a node token 0123"[..])
    );
    assert!(!format!("{:?}", config.node).contains("a node token"));
    let err = crate::parse(&with("admin_token = \"short\""), Source::Inline("t".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node.admin_token") && !err.contains("short"),
        "{err}"
    );
    let both = "admin_token = \"a node token 0123\"\nadmin_token_file = \"x\"";
    let err = crate::parse(&with(both), Source::Inline("t".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not both"), "{err}");
}

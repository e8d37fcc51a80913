//! Public-API tests: the example, defaults, syntax errors and `load` from disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pentaflow_config::{
    array_example, example, load, parse, tls_example, BackendConfig, BackendTls, CertificateConfig,
    Config, ConfigError, CookiePersistence, HealthCheck, Limits, NodeConfig, PassiveHealth,
    Persistence, Policy, ResolveSettings, ServiceConfig, SessionPersistence, Source, TicketKeys,
    TlsConfig, UnknownSni,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses are valid")
}

fn inline(text: &str) -> Result<Config, ConfigError> {
    parse(text, Source::Inline("test".into()))
}

fn backend(name: &str, address: &str, weight: u32) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        address: addr(address),
        weight,
        state: pentaflow_config::BackendAdminState::Ready,
    }
}

#[test]
fn example_parses_to_the_expected_config() {
    let expected = Config {
        node: NodeConfig {
            admin: Some(addr("127.0.0.1:9090")),
            access_log: true,
            shutdown_grace: Duration::from_secs(30),
            admin_token: None,
            resolve: ResolveSettings::default(),
        },
        limits: Limits {
            max_header_bytes: 16384,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            client_body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: None,
            h2_glitch_threshold: 1000,
            h2_glitch_window: Duration::from_secs(10),
        },
        services: vec![
            ServiceConfig {
                name: "web".into(),
                listen: vec![addr("127.0.0.1:8080")],
                policy: Policy::LeastConn,
                hash_balance_factor: None,
                persistence: Persistence::Cookie(CookiePersistence {
                    name: "PFSRV".into(),
                    secret: b"change me: at least 16 bytes".to_vec(),
                    previous_secrets: Vec::new(),
                    max_idle: Some(Duration::from_secs(3600)),
                    max_life: Some(Duration::from_secs(7 * 86_400)),
                    follow: Some("JSESSIONID".into()),
                    secure: Some(true),
                    http_only: true,
                    same_site: Some("Lax".into()),
                }),
                backend_keepalive: true,
                retries: 2,
                max_body_bytes: None,
                passive: PassiveHealth {
                    max_fails: 3,
                    fail_timeout: Duration::from_secs(10),
                },
                health: Some(HealthCheck {
                    path: "/health".into(),
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(1),
                    rise: 2,
                    fall: 3,
                }),
                discovered: Vec::new(),
                backends: vec![
                    backend("web1", "127.0.0.1:8001", 1),
                    backend("web2", "127.0.0.1:8002", 2),
                ],
                tls_listen: Vec::new(),
                tls: None,
                redirect_https: false,
                backend_tls: None,
                cdn: None,
                accept_proxy: None,
                send_proxy: None,
            },
            ServiceConfig {
                name: "app".into(),
                listen: vec![addr("127.0.0.1:8081")],
                policy: Policy::UrlHash,
                hash_balance_factor: Some(125),
                persistence: Persistence::Session(SessionPersistence {
                    cookie: Some("JSESSIONID".into()),
                    url_param: Some("jsessionid".into()),
                    groups: 1024,
                    group_idle: Duration::from_secs(30 * 60),
                }),
                backend_keepalive: true,
                retries: 2,
                max_body_bytes: None,
                passive: PassiveHealth::default(),
                health: None,
                discovered: Vec::new(),
                backends: vec![
                    backend("app1", "127.0.0.1:9001", 1),
                    backend("app2", "127.0.0.1:9002", 1),
                ],
                tls_listen: Vec::new(),
                tls: None,
                redirect_https: false,
                backend_tls: None,
                cdn: None,
                accept_proxy: None,
                send_proxy: None,
            },
        ],
        tickets: TicketKeys {
            keys: Vec::new(),
            lifetime: Duration::from_secs(12 * 60 * 60),
        },
        array: None,
    };
    assert_eq!(inline(example()).unwrap(), expected);
    assert_eq!(
        expected.service("app").map(|s| s.policy),
        Some(Policy::UrlHash)
    );
}

#[test]
fn defaults_apply_when_tables_are_absent() {
    let config = inline(
        r#"
        [[service]]
        name = "web"
        listen = ["127.0.0.1:8080"]
        [[service.backend]]
        name = "web1"
        address = "127.0.0.1:8001"
        "#,
    )
    .unwrap();
    assert_eq!(config.node, NodeConfig::default());
    assert_eq!(config.limits, Limits::default());
    let s = &config.services[0];
    assert_eq!(s.policy, Policy::LeastConn);
    assert_eq!(s.hash_balance_factor, None);
    assert_eq!(s.persistence, Persistence::None);
    assert!(s.backend_keepalive);
    assert_eq!(s.retries, 2);
    assert_eq!(s.passive, PassiveHealth::default());
    assert_eq!(s.health, None);
    assert_eq!(s.backends, [backend("web1", "127.0.0.1:8001", 1)]);
}

#[test]
fn syntax_error_reports_line_and_column() {
    let err = inline("[node]\naccess_log = true\nshutdown_grace = \"30s\n").unwrap_err();
    let ConfigError::Syntax {
        source_name,
        errors,
    } = &err
    else {
        panic!("expected a syntax error, got {err:?}");
    };
    // Column 22 is just past `"30s`, where the closing quote is missing.
    assert_eq!(source_name, "test");
    assert_eq!((errors[0].line, errors[0].column), (3, 22));
    assert!(err.to_string().starts_with("test:3:22: "), "{err}");
}

#[test]
fn every_syntax_error_is_reported_at_once() {
    let err =
        inline("[node]\nadmin = \"a\"\nadmin = \"b\"\n[limits]\nmax_headers = \n").unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("test:3:1: duplicate key `admin` in [node]"),
        "{text}"
    );
    assert!(lines[1].starts_with("test:5:"), "{text}");
}

#[test]
fn every_type_error_unknown_key_and_rule_is_reported_at_once() {
    // A type error, an unknown key, and a broken rule further down: all three, in file order.
    let text = "[limits]\nidle_timeout = 60\nmax_headers = 0\n[node]\nacess_log = true\n\
                [[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:8080\"]\n\
                [[service.backend]]\nname = \"b\"\naddress = \"nowhere\"\n";
    let err = inline(text).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "limits.idle_timeout",
            "limits.max_headers",
            "node.acess_log",
            "service[0].backend[0].address"
        ],
        "{err}"
    );
    let rendered = err.to_string();
    assert!(
        rendered.contains("test:2: limits.idle_timeout: invalid type: integer `60`"),
        "{rendered}"
    );
    assert!(
        rendered.contains("test:5: node.acess_log: unknown field `acess_log`"),
        "{rendered}"
    );
}

#[test]
fn a_key_of_the_wrong_type_is_not_also_called_missing() {
    let text = "[[service]]\nname = 5\nlisten = [\"127.0.0.1:8080\"]\n\
                [[service.backend]]\nname = \"b\"\naddress = \"127.0.0.1:8001\"\n";
    let err = inline(text).unwrap_err();
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key, "service[0].name");
}

#[test]
fn unknown_key_is_reported_with_its_line() {
    let text = example().replace("weight = 2", "wieght = 2");
    let line = text.lines().position(|l| l.starts_with("wieght")).unwrap() + 1;
    let err = inline(&text).unwrap_err();
    let [problem] = err.problems() else {
        panic!("expected one problem, got {err:?}");
    };
    assert_eq!(problem.line, line);
    assert_eq!(problem.key, "service[0].backend[1].wieght");
    assert!(
        problem.message.starts_with("unknown field `wieght`"),
        "{}",
        problem.message
    );
}

#[test]
fn a_number_where_a_duration_belongs_says_what_a_duration_looks_like() {
    let err = inline("[limits]\nidle_timeout = 60\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("test:2: limits.idle_timeout: invalid type: integer `60`"),
        "{err}"
    );
    assert!(
        err.to_string().contains("a duration string such as"),
        "{err}"
    );
}

#[test]
fn load_of_a_missing_file_names_the_path() {
    let path = PathBuf::from("/nonexistent/pentaflow/array.toml");
    let err = load(&path).unwrap_err();
    assert!(matches!(&err, ConfigError::Read { path: p, .. } if *p == path));
    assert!(
        err.to_string()
            .contains("/nonexistent/pentaflow/array.toml"),
        "{err}"
    );
    // The reason is in the message itself, not only in the source chain.
    assert!(
        err.to_string()
            .contains("no such file, and its directory /nonexistent/pentaflow does not exist"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("io cause");
    assert!(source.is::<std::io::Error>());
}

/// A scratch directory unique to this test process, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("pentaflow-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_reads_a_relative_secret_file_next_to_the_config() {
    let dir = TempDir::new("secret");
    std::fs::write(dir.0.join("cookie.key"), "0123456789abcdef-shared\n").unwrap();
    let text = example().replace(
        "secret = \"change me: at least 16 bytes\"",
        "secret_file = \"cookie.key\"",
    );
    let path = dir.0.join("array.toml");
    std::fs::write(&path, text).unwrap();
    let config = load(&path).unwrap();
    let Persistence::Cookie(c) = &config.services[0].persistence else {
        panic!("not cookie persistence");
    };
    // The trailing newline of `echo key > file` is not part of the key.
    assert_eq!(c.secret, b"0123456789abcdef-shared");

    // Errors from a loaded file name the file.
    std::fs::write(dir.0.join("cookie.key"), "short\r\n").unwrap();
    let err = load(&path).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:", path.display())),
        "{shown}"
    );
    assert!(shown.contains("at least 16 bytes, it has 5"), "{shown}");

    // A file far larger than any key is refused, not read whole.
    std::fs::write(dir.0.join("cookie.key"), vec![b'k'; 5000]).unwrap();
    let shown = load(&path).unwrap_err().to_string();
    assert!(shown.contains("larger than 4096 bytes"), "{shown}");
}

#[test]
fn tls_example_loads_once_its_files_exist() {
    let dir = TempDir::new("tls-example");
    let path = dir.0.join("array.toml");
    std::fs::write(&path, tls_example()).unwrap();
    // Without its files the example is refused, each file named on its own line.
    let err = load(&path).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tls_tickets.keys_file",
            "service[0].tls.certificate[0].cert",
            "service[0].tls.certificate[0].key",
            "service[0].tls.certificate[1].cert",
            "service[0].tls.certificate[1].key",
            "service[0].backend_tls.ca_file",
        ],
        "{err}"
    );

    std::fs::create_dir_all(dir.0.join("certs")).unwrap();
    for name in [
        "shop.pem",
        "shop.key",
        "api.pem",
        "api.key",
        "backend-ca.pem",
    ] {
        std::fs::write(dir.0.join("certs").join(name), "PEM is parsed by the proxy").unwrap();
    }
    let newest = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let older = "f".repeat(64);
    std::fs::write(
        dir.0.join("ticket.keys"),
        format!("# newest first\n{newest}\n{older}\n"),
    )
    .unwrap();
    let config = load(&path).unwrap();
    // 00 11 22 .. ff, twice.
    let first: [u8; 32] = std::array::from_fn(|i| (i % 16) as u8 * 0x11);
    assert_eq!(
        config.tickets,
        TicketKeys {
            keys: vec![first, [0xff; 32]],
            lifetime: Duration::from_secs(12 * 60 * 60),
        }
    );
    let certs = dir.0.join("certs");
    let s = &config.services[0];
    assert_eq!(s.listen, [addr("127.0.0.1:8080")]);
    assert_eq!(s.tls_listen, [addr("127.0.0.1:8443")]);
    assert!(s.redirect_https);
    assert_eq!(
        s.tls,
        Some(TlsConfig {
            certificates: vec![
                CertificateConfig {
                    cert: certs.join("shop.pem"),
                    key: certs.join("shop.key"),
                    default: true,
                },
                CertificateConfig {
                    cert: certs.join("api.pem"),
                    key: certs.join("api.key"),
                    default: false,
                },
            ],
            unknown_sni: UnknownSni::Default,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            http2: true,
        })
    );
    assert_eq!(
        s.backend_tls,
        Some(BackendTls {
            verify: true,
            ca_file: Some(certs.join("backend-ca.pem")),
            server_name: Some("backend.internal".into()),
        })
    );
    assert_eq!(
        s.backends,
        [
            backend("shop1", "127.0.0.1:9443", 1),
            backend("shop2", "127.0.0.1:9444", 1)
        ]
    );
}

#[test]
fn array_example_describes_a_three_node_array() {
    let config = inline(array_example()).unwrap();
    let array = config.array.expect("the example has an [array] section");
    assert_eq!(array.vip.to_string(), "10.77.1.10");
    assert_eq!(array.ports, vec![80, 443]);
    assert_eq!(array.nodes.len(), 3);
    assert_eq!(array.scheduler, 1);
    assert_eq!(
        array.node_id, None,
        "every node gets the same file: --node-id says which"
    );
    assert_eq!(array.table_size, 65536);
    assert_eq!(array.bucket_idle, Duration::from_secs(60));
}

/// The array example (three nodes) with a cluster key and `extra` keys in `[array]`.
fn cluster_example(extra: &str) -> String {
    const AT: &str = "\nvip = \"10.77.1.10\"";
    let with = format!("{AT}\nkey = \"a cluster key of 16+ bytes\"\n{extra}");
    assert!(array_example().contains(AT));
    array_example().replacen(AT, &with, 1)
}

#[test]
fn quorum_defaults_to_a_majority_and_refuses_a_minority_or_more_than_the_nodes() {
    let array = inline(&cluster_example("")).unwrap().array.unwrap();
    assert_eq!(array.quorum(), 2, "two of three nodes");
    let array = inline(&cluster_example("quorum = 3\n"))
        .unwrap()
        .array
        .unwrap();
    assert_eq!(array.quorum(), 3);
    for (q, says) in [("1", "split brain"), ("4", "more than the 3")] {
        let err = inline(&cluster_example(&format!("quorum = {q}\n"))).unwrap_err();
        let p = err
            .problems()
            .iter()
            .find(|p| p.key == "array.quorum")
            .unwrap_or_else(|| panic!("quorum {q}: {err}"));
        assert!(p.message.contains(says), "{}", p.message);
    }
    let at = "\nvip = \"10.77.1.10\"";
    let err = inline(&array_example().replacen(at, &format!("{at}\nquorum = 2"), 1));
    assert!(
        err.unwrap_err()
            .problems()
            .iter()
            .any(|p| p.key == "array.quorum" && p.message.contains("cluster key")),
        "quorum without a cluster key means nothing"
    );
}

//! DNS service discovery end to end: a real DNS server (Debian's dnsmasq on a loopback high
//! port, answering from a hosts file the test rewrites and then SIGHUPs it), two real
//! back-ends A and B on two loopback addresses at one port, and a real `pentaflow serve`
//! whose back-ends are `address = "app.test:PORT"` and `srv = "_http._tcp.app.test"`.
//!
//! The name → A: traffic goes to A; → A and B: both get traffic; → B: A drains, then is
//! removed, all traffic on B; the DNS server stops: the last good set keeps serving and
//! `/status`, `pentaflow status` and the metrics say the resolution fails.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{free_addr, get_once, named_backend_on, temp_dir, wait_listening, Running};

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");
const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// How long a change may take to show (TTL 1 s, resolve_max_ttl 2 s: a few seconds at most).
const PATIENCE: Duration = Duration::from_secs(20);
/// Requests of one look at where traffic goes.
const SAMPLE: usize = 24;

/// One GET on a new connection: the `x-backend` that answered, or what failed.
async fn get(addr: SocketAddr) -> Result<String, String> {
    let answer = get_once(addr, "/", &[("host", "app.test")]).await?;
    match answer.status {
        200 => Ok(answer.field("x-backend")),
        status => Err(format!("status {status}")),
    }
}

/// The back-ends that answered `SAMPLE` requests; every request must succeed.
async fn sample(addr: SocketAddr) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..SAMPLE {
        match get(addr).await {
            Ok(b) => seen.insert(b),
            Err(e) => panic!("a request to {addr} failed: {e}"),
        };
    }
    seen
}

/// Samples until the back-ends seen are exactly `want` (failing after [`PATIENCE`]); a
/// failed request before the first answer (nothing resolved yet) is allowed only then.
async fn until_served_by(addr: SocketAddr, want: &[&str], allow_503_first: bool) {
    let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
    let until = Instant::now() + PATIENCE;
    loop {
        if allow_503_first && get(addr).await.is_err() {
            assert!(Instant::now() < until, "{addr} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let seen = sample(addr).await;
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < until,
            "{addr}: served by {seen:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /status` of the node, as JSON.
async fn status(admin: SocketAddr) -> serde_json::Value {
    let body = admin_get(admin, "/status").await;
    serde_json::from_str(&body).unwrap()
}

async fn admin_get(admin: SocketAddr, path: &str) -> String {
    let fields = [("host", "admin"), ("accept", "text/plain")];
    let answer = get_once(admin, path, &fields).await.unwrap();
    String::from_utf8_lossy(&answer.body).into_owned()
}

/// The `discovery` row of the entry `app` of `service`.
fn row<'a>(doc: &'a serde_json::Value, service: &str) -> &'a serde_json::Value {
    doc["discovery"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["service"] == service))
        .unwrap_or_else(|| panic!("no discovery row of {service}: {doc}"))
}

/// Waits until `check` holds for the status document.
async fn until_status(admin: SocketAddr, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let until = Instant::now() + PATIENCE;
    loop {
        let doc = status(admin).await;
        if check(&doc) {
            return;
        }
        assert!(Instant::now() < until, "never {what}: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// dnsmasq answering from `hosts` only (TTL 1 s), authoritative for `.test`, on `port`; its
/// SRV record `_http._tcp.app.test` names `b.app.test` at `srv_port`.
fn start_dnsmasq(dir: &Path, hosts: &Path, port: u16, srv_port: u16) -> Running {
    let child = Command::new(DNSMASQ)
        .arg("--keep-in-foreground")
        .arg("--conf-file=/dev/null")
        .arg("--no-resolv")
        .arg("--no-hosts")
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg("--local=/test/")
        .arg("--local-ttl=1")
        .arg("--listen-address=127.0.0.1")
        .arg("--bind-interfaces")
        .arg(format!("--port={port}"))
        .arg("--pid-file=")
        .arg("--user=root")
        .arg(format!(
            "--srv-host=_http._tcp.app.test,b.app.test,{srv_port},0,5"
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dnsmasq.log")).unwrap())
        .spawn()
        .unwrap();
    Running(child)
}

fn write_hosts(hosts: &Path, lines: &str) {
    // Write then rename: dnsmasq must never read half a file.
    let temp = hosts.with_extension("new");
    std::fs::write(&temp, lines).unwrap();
    std::fs::rename(&temp, hosts).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_follow_their_dns_records() {
    if !Path::new(DNSMASQ).exists() {
        if std::env::var_os("PENTAFLOW_REQUIRE_TOOLS").is_some() {
            panic!("{DNSMASQ} not found: run scripts/install-deps (dnsmasq-base)");
        }
        eprintln!("SKIPPED: {DNSMASQ} not found (scripts/install-deps installs dnsmasq-base)");
        return;
    }
    let dir: PathBuf = temp_dir("dns-discovery");
    // A and B at one port on two loopback addresses: an A record names the address only.
    let port = free_addr().port();
    let a = named_backend_on(SocketAddr::from(([127, 0, 0, 2], port)), "a").await;
    let b = named_backend_on(SocketAddr::from(([127, 0, 0, 3], port)), "b").await;
    let dns_port = free_addr().port();
    let hosts = dir.join("hosts");
    write_hosts(&hosts, "127.0.0.2 app.test\n127.0.0.3 b.app.test\n");
    let dns = start_dnsmasq(&dir, &hosts, dns_port, port);

    let listen = free_addr();
    let srv_listen = free_addr();
    let admin = free_addr();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
admin = "{admin}"
resolvers = ["127.0.0.1:{dns_port}"]
resolve_min_ttl = "1s"
resolve_max_ttl = "2s"
resolve_drain = "2s"

[[service]]
name = "web"
listen = ["{listen}"]

[[service.backend]]
name = "app"
address = "app.test:{port}"

[[service]]
name = "srv"
listen = ["{srv_listen}"]

[[service.backend]]
name = "app"
srv = "_http._tcp.app.test"
"#
        ),
    )
    .unwrap();
    let checked = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(checked.status.success(), "check: {checked:?}");
    let _node = Running(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("node.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listening(listen).await;
    wait_listening(admin).await;

    // app.test → A: every request to A. The SRV names B (its port, its weight).
    until_served_by(listen, &["a"], true).await;
    until_served_by(srv_listen, &["b"], true).await;
    let doc = status(admin).await;
    assert_eq!(
        row(&doc, "web")["addresses"],
        serde_json::json!([a.to_string()])
    );
    assert_eq!(row(&doc, "web")["target"], format!("app.test:{port}"));
    assert!(row(&doc, "web")["last_error"].is_null(), "{doc}");
    assert!(
        row(&doc, "web")["last_success_unix"].as_u64().is_some(),
        "{doc}"
    );

    // → A and B: both get traffic.
    write_hosts(
        &hosts,
        "127.0.0.2 app.test\n127.0.0.3 app.test\n127.0.0.3 b.app.test\n",
    );
    dns.signal("HUP");
    until_served_by(listen, &["a", "b"], false).await;

    // → B: A drains (new requests all to B), then is removed after resolve_drain.
    write_hosts(&hosts, "127.0.0.3 app.test\n127.0.0.3 b.app.test\n");
    dns.signal("HUP");
    until_served_by(listen, &["b"], false).await;
    until_status(admin, "A removed after its drain", |doc| {
        let r = row(doc, "web");
        r["addresses"] == serde_json::json!([b.to_string()])
            && r["draining"] == serde_json::json!([])
            && !doc["web_servers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["address"] == a.to_string())
    })
    .await;
    // Discovered back-ends are run-time state: the file is untouched.
    assert!(!std::fs::read_to_string(&config).unwrap().contains('#'));

    // The DNS server stops: the last good set keeps serving, and the node says why.
    drop(dns);
    until_status(admin, "a failed resolution reported", |doc| {
        let r = row(doc, "web");
        r["last_error"].is_string() && r["consecutive_failures"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(sample(listen).await, BTreeSet::from(["b".to_owned()]));
    let doc = status(admin).await;
    assert_eq!(
        row(&doc, "web")["addresses"],
        serde_json::json!([b.to_string()])
    );
    let metrics = admin_get(admin, "/metrics").await;
    let failed = metrics
        .lines()
        .find(|l| {
            l.starts_with("pentaflow_dns_resolutions_total{")
                && l.contains("service=\"web\"")
                && l.contains("result=\"failed\"")
        })
        .unwrap_or_else(|| panic!("no failed-resolution counter: {metrics}"));
    assert!(!failed.ends_with(" 0"), "{failed}");
    assert!(
        metrics.contains("pentaflow_dns_addresses{service=\"web\",backend=\"app\"} 1"),
        "{metrics}"
    );
    let table = Command::new(BIN)
        .args(["status", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("DNS BACK-END"), "{table}");
    assert!(table.contains(&format!("app.test:{port}")), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

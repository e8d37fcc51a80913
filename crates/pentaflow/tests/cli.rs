//! End-to-end tests of the `pentaflow` binary: `check`, `demo` (stickiness, admin API, status
//! table, SIGTERM) and `serve` (SIGHUP reload, bad reload refused). Real processes, real sockets
//! on loopback ports allocated at run time, a real HTTP client.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

mod support;
use support::{free_addr, named_backend, temp_dir, wait_listening, Running};

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");

/// `promtool`, from `PATH` or where `scripts/install-promtool` puts it; `None` if neither.
fn promtool() -> Option<std::path::PathBuf> {
    let installed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools/prometheus/usr/bin/promtool");
    if installed.is_file() {
        return Some(installed);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join("promtool"))
        .find(|p| p.is_file())
}

/// `promtool check metrics` on `body`: its exit status and what it printed.
fn promtool_check(tool: &std::path::Path, body: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A child process that is killed (by its PID) if the test ends early.
/// GET on a new connection: (status, x-backend, our set-cookie, body).
async fn get(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "demo.test");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let backend = resp
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    // The demo back-ends set JSESSIONID too; ours is the PFSRV one.
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("PFSRV="));
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    (status, backend, set_cookie, body)
}

#[test]
fn check_accepts_a_good_file_and_names_file_line_key_of_a_bad_one() {
    let dir = temp_dir("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:8080\"]\n[[service.backend]]\nname = \"a\"\naddress = \"127.0.0.1:8001\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 service(s), 1 back-end(s))"));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:8080\"]\npolicy = \"fastest\"\n[[service.backend]]\nname = \"a\"\naddress = \"nowhere\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4", bad.display())),
        "policy problem on line 4: {err}"
    );
    assert!(
        err.contains(&format!("{}:7", bad.display())),
        "address problem on line 7: {err}"
    );
    assert!(err.contains("policy") && err.contains("address"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// An active-active array of two nodes (issue 12), valid for `check`.
const ACTIVE_ACTIVE: &str = "[[service]]\nname = \"web\"\nlisten = [\"10.77.1.10:80\"]\n[[service.backend]]\nname = \"a\"\naddress = \"10.77.1.101:8001\"\n[array]\nmode = \"active-active\"\nvip = \"10.77.1.10\"\ninterface = \"eth0\"\nkey = \"a cluster key of 16+ bytes\"\nnode_id = 1\n[[array.node]]\nid = 1\naddress = \"10.77.1.11\"\nmac = \"02:77:01:00:00:01\"\n[[array.node]]\nid = 2\naddress = \"10.77.1.12\"\nmac = \"02:77:01:00:00:02\"\n";

#[test]
fn check_prints_the_mode_and_serve_refuses_active_active_until_its_packet_path_is_wired() {
    let dir = temp_dir("active-active");
    let path = dir.join("aa.toml");
    std::fs::write(&path, ACTIVE_ACTIVE).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("; mode active-active, 2 node(s)"),
        "{stdout}"
    );

    let scheduler = dir.join("scheduler.toml");
    let text = ACTIVE_ACTIVE.replace("mode = \"active-active\"\n", "");
    std::fs::write(&scheduler, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&scheduler)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("; mode scheduler, 2 node(s)"), "{stdout}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, ACTIVE_ACTIVE.replace("\"active-active\"", "\"mesh\"")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:8", bad.display())), "{err}");
    assert!(
        err.contains("array.mode") && err.contains("use \"scheduler\" or \"active-active\""),
        "{err}"
    );

    // Refused before anything is set up: no root, no interface, no VIP needed to see it.
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("active-active mode is not runnable in this build yet (issue 12): "),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_reports_every_problem_at_once_and_why_a_file_cannot_be_read() {
    let dir = temp_dir("check-all");
    // A type error (line 2), an unknown key (line 3) and a broken rule (line 8): all three.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\nidle_timeout = 60\nmax_conections = 5\n[[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:8080\"]\n[[service.backend]]\naddress = \"nowhere\"\nname = \"a\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (line, key) in [
        (2, "limits.idle_timeout"),
        (3, "limits.max_conections"),
        (8, "service[0].backend[0].address"),
    ] {
        assert!(
            err.contains(&format!("{}:{line}: {key}: ", bad.display())),
            "{key} on line {line}: {err}"
        );
    }
    // A duplicate key names the key.
    std::fs::write(&bad, "[node]\naccess_log = true\naccess_log = false\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("duplicate key `access_log` in [node]"),
        "{err}"
    );
    // A missing file: the path, why, and the operating system's words.
    let missing = dir.join("no/such/dir/pentaflow.toml");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("does not exist either"), "{err}");
    assert!(err.contains("os error 2"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn demo_serves_sticky_sessions_and_the_admin_api_then_stops_on_sigterm() {
    let (listen, admin, https) = (free_addr(), free_addr(), free_addr());
    let mut demo = Running(
        Command::new(BIN)
            .args([
                "demo",
                "--listen",
                &listen.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .args(["--https", &https.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(listen).await;
    wait_listening(admin).await;

    let (status, first, set_cookie, body) = get(listen, "/", None).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(&format!("Hello from {first}")), "{body}");
    let cookie = set_cookie
        .expect("PFSRV injected")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("PFSRV="));
    for _ in 0..10 {
        let (_, backend, _, _) = get(listen, "/", Some(&cookie)).await;
        assert_eq!(
            backend, first,
            "the cookie keeps the client on its back-end"
        );
    }
    let mut others = std::collections::HashSet::new();
    for _ in 0..12 {
        others.insert(get(listen, "/", None).await.1);
    }
    assert!(others.len() >= 2, "new clients are spread: {others:?}");

    let (status, _, _, json) = get(admin, "/status", None).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = doc["web_servers"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let hits: u64 = rows.iter().map(|r| r["hits"].as_u64().unwrap()).sum();
    assert!(hits >= 23, "{hits}");
    // HTTPS with real tools: curl over HTTP/2 with the same cookie lands on the same back-end,
    // and openssl s_client resumes its TLS 1.2 session on every reconnect.
    let port = https.port();
    let out = Command::new("curl")
        .args([
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args([
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "-b",
            &cookie,
        ])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains(&format!("x-backend: {first}")), "{text}");
    assert!(
        text.trim_end().ends_with("2 200"),
        "HTTP/2 over TLS: {text}"
    );
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &https.to_string(),
            "-servername",
            "localhost",
        ])
        .args(["-reconnect", "-tls1_2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("Reused, TLSv1.2").count() >= 5,
        "openssl resumes: {text}"
    );

    // The demo page: asset URLs rewritten to the placeholder CDN, links left alone; the second
    // copy comes from the page cache (a response that injects a cookie is never cached, so the
    // client sends the one it has).
    let (status, _, _, page) = get(listen, "/demo/page.html", Some(&cookie)).await;
    assert_eq!(status, 200);
    let cdn_logo = r#"src="https://cdn.pentaflow-demo.example/demo/img/logo.png""#;
    assert!(page.contains(cdn_logo), "{page}");
    let cdn_css = r#"href="https://cdn.pentaflow-demo.example/demo/css/site.css""#;
    assert!(page.contains(cdn_css), "{page}");
    assert!(page.contains(r#"<a href="/demo/about.html">"#), "{page}");
    let (_, _, _, again) = get(listen, "/demo/page.html", Some(&cookie)).await;
    assert_eq!(again, page);
    let (_, _, _, cdn) = get(admin, "/cdn", None).await;
    let cdn: serde_json::Value = serde_json::from_str(&cdn).unwrap();
    assert_eq!(cdn["demo"]["cdn_host"], "cdn.pentaflow-demo.example");

    // Without an Accept header: the classic text format, as promtool and most scrapers read it.
    let (_, _, _, metrics) = get(admin, "/metrics", None).await;
    match promtool() {
        Some(tool) => {
            let (ok, said) = promtool_check(&tool, &metrics);
            assert!(ok && said.trim().is_empty(), "promtool: {said}\n{metrics}");
        }
        None if std::env::var_os("PENTAFLOW_REQUIRE_TOOLS").is_some() => {
            panic!("promtool not found: run scripts/install-promtool (scripts/install-deps does)")
        }
        None => eprintln!(
            "SKIPPED promtool check: promtool not found (scripts/install-promtool installs it)"
        ),
    }
    for name in [
        "pentaflow_backend_hits_total",
        "pentaflow_tls_resumed_total",
        "pentaflow_cdn_cache_hits_total 1",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }

    let table = Command::new(BIN)
        .args(["status", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    for name in ["demo-web1", "demo-web2", "demo-web3"] {
        assert!(table.contains(name), "{table}");
    }

    demo.signal("TERM");
    assert!(demo.wait_exit(Duration::from_secs(10)).success());
}

/// A back-end that answers with its name.
#[tokio::test]
async fn serve_reloads_on_sighup_and_refuses_a_bad_file() {
    let (one, two) = (named_backend("one").await, named_backend("two").await);
    let listen = free_addr();
    let dir = temp_dir("serve");
    let path = dir.join("node.toml");
    let head =
        format!("[[service]]\nname = \"web\"\nlisten = [\"{listen}\"]\npolicy = \"round_robin\"\n");
    std::fs::write(
        &path,
        format!("{head}[[service.backend]]\nname = \"one\"\naddress = \"{one}\"\n"),
    )
    .unwrap();
    let mut node = Running(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(listen).await;
    for _ in 0..4 {
        assert_eq!(get(listen, "/", None).await.1, "one");
    }

    std::fs::write(
        &path,
        format!("{head}[[service.backend]]\nname = \"one\"\naddress = \"{one}\"\n[[service.backend]]\nname = \"two\"\naddress = \"{two}\"\n"),
    )
    .unwrap();
    node.signal("HUP");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if get(listen, "/", None).await.1 == "two" {
            break;
        }
        assert!(Instant::now() < until, "reload never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(&path, "this is = not [valid").unwrap();
    node.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let (status, backend, _, _) = get(listen, "/", None).await;
        assert_eq!(status, 200, "still serving after a bad reload");
        seen.insert(backend);
    }
    assert_eq!(
        seen.len(),
        2,
        "the running configuration was kept: {seen:?}"
    );

    node.signal("TERM");
    assert!(node.wait_exit(Duration::from_secs(10)).success());
    let _ = std::fs::remove_dir_all(dir);
}

/// `requests` GETs one after another on one keep-alive connection: the `x-backend` of each.
async fn keep_alive_gets(addr: SocketAddr, requests: usize) -> Vec<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut seen = Vec::with_capacity(requests);
    for _ in 0..requests {
        let req = http::Request::get("/").header("host", "workers.test");
        let resp = sender
            .send_request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let backend = resp.headers()["x-backend"].to_str().unwrap().to_owned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, backend.as_bytes());
        seen.push(backend);
    }
    seen
}

/// `pentaflow_worker_connections_accepted_total` per worker, from the admin API's metrics.
async fn accepted_by_worker(admin: SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let (status, _, _, metrics) = get(admin, "/metrics", None).await;
    assert_eq!(status, 200);
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("pentaflow_worker_connections_accepted_total{"))
        .map(|rest| {
            let (labels, value) = rest.split_once("} ").unwrap();
            let worker = labels
                .split(',')
                .find_map(|l| l.strip_prefix("worker=\""))
                .unwrap()
                .trim_end_matches('"')
                .to_owned();
            (worker, value.trim().parse().unwrap())
        })
        .collect()
}

/// `serve --workers 2`: each worker runs its own runtime and accept loop on the one listening
/// socket. Many concurrent keep-alive clients are served, by both workers (each counts what it
/// accepted); connections kept open across a SIGHUP reload are scheduled by the new
/// configuration whichever worker holds them; SIGTERM drains and the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_two_workers_spreads_keep_alive_clients_reloads_and_stops() {
    let (one, two) = (named_backend("one").await, named_backend("two").await);
    let (listen, admin) = (free_addr(), free_addr());
    let dir = temp_dir("serve-workers");
    let path = dir.join("node.toml");
    let head = format!(
        "[node]\nadmin = \"{admin}\"\nshutdown_grace = \"5s\"\n\n[[service]]\nname = \"web\"\n\
         listen = [\"{listen}\"]\npolicy = \"round_robin\"\n"
    );
    let backend_one = format!("[[service.backend]]\nname = \"one\"\naddress = \"{one}\"\n");
    std::fs::write(&path, format!("{head}{backend_one}")).unwrap();
    let mut node = Running(
        Command::new(BIN)
            .args(["serve", "--workers", "2", "--config"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = {
        use std::io::Read as _;
        let mut stderr = node.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        })
    };
    wait_listening(listen).await;
    wait_listening(admin).await;

    // Waves of 64 concurrent keep-alive connections, 20 requests each, until both workers
    // have accepted some (the kernel hands each connection to whichever worker takes it).
    let mut waves = 0;
    let by_worker = loop {
        let clients: Vec<_> = (0..64)
            .map(|_| tokio::spawn(keep_alive_gets(listen, 20)))
            .collect();
        for c in clients {
            assert!(c.await.unwrap().iter().all(|b| b == "one"));
        }
        waves += 1;
        let by_worker = accepted_by_worker(admin).await;
        if by_worker.values().all(|n| *n > 0) || waves == 10 {
            break by_worker;
        }
    };
    assert_eq!(
        by_worker.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2"],
        "one counter per worker: {by_worker:?}"
    );
    assert!(
        by_worker.values().all(|n| *n > 0),
        "both workers accept connections ({waves} waves of 64): {by_worker:?}"
    );
    let total: u64 = by_worker.values().sum();
    assert!(
        total > 64 * waves,
        "every client connection was counted: {by_worker:?}"
    );

    // Keep-alive connections held open across the reload (on both workers, by the spread
    // above), each then asking on.
    let held: Vec<_> = {
        let mut held = Vec::new();
        for _ in 0..32 {
            let stream = tokio::net::TcpStream::connect(listen).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut sender = sender;
            let req = http::Request::get("/").header("host", "workers.test");
            let resp = sender
                .send_request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.headers()["x-backend"], "one");
            resp.into_body().collect().await.unwrap();
            held.push(sender);
        }
        held
    };
    let backend_two = format!("[[service.backend]]\nname = \"two\"\naddress = \"{two}\"\n");
    std::fs::write(&path, format!("{head}{backend_one}{backend_two}")).unwrap();
    node.signal("HUP");
    let until = Instant::now() + Duration::from_secs(10);
    while get(listen, "/", None).await.1 != "two" {
        assert!(Instant::now() < until, "reload never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut seen = std::collections::HashSet::new();
    let mut held = held;
    for sender in &mut held {
        for _ in 0..2 {
            sender
                .ready()
                .await
                .expect("a connection held across the reload stays open");
            let req = http::Request::get("/").header("host", "workers.test");
            let resp = sender
                .send_request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "a connection held across the reload");
            seen.insert(resp.headers()["x-backend"].to_str().unwrap().to_owned());
            resp.into_body().collect().await.unwrap();
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "connections opened before the reload use the new back-end set: {seen:?}"
    );

    // The held connections are idle keep-alive clients when the node drains: every worker
    // closes its own, well within the grace, and the process exits cleanly.
    node.signal("TERM");
    assert!(
        node.wait_exit(Duration::from_secs(15)).success(),
        "stopped cleanly"
    );
    let log = log.join().unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("stopped") && l.contains("clean=true")),
        "every connection ended within shutdown_grace: {log}"
    );
    for mut sender in held {
        assert!(
            sender.ready().await.is_err(),
            "a kept-alive connection is closed by the drain"
        );
    }
    assert!(
        tokio::net::TcpStream::connect(listen).await.is_err(),
        "no worker accepts after the stop"
    );
    let _ = std::fs::remove_dir_all(dir);
}

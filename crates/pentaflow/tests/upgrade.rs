//! Zero-downtime binary upgrade end to end: a real `pentaflow serve`, clients sending requests
//! all along on new connections, `SIGUSR2`; the process started again from the same binary
//! takes the listening sockets over, the old one drains and exits, and no request fails. A new
//! process that cannot start (here: the file became invalid) is stopped and the old one keeps
//! serving.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::{free_addr, named_backend, temp_dir, wait_listening, Running};

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");

/// One at a time: both tests hand sockets between processes and watch their logs.
static ONE_NODE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One GET on a new connection: whether a whole 200 came back.
fn get_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("one")
}

/// The process's log lines as they come.
fn collect_log(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn wait_for_line(lines: &Mutex<Vec<String>>, needle: &str, within: Duration) -> String {
    let until = Instant::now() + within;
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        assert!(
            Instant::now() < until,
            "no log line with {needle:?} in {within:?}: {:#?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
}

struct Node {
    old: Running,
    log: Arc<Mutex<Vec<String>>>,
    listen: SocketAddr,
    admin: SocketAddr,
    config: std::path::PathBuf,
}

/// A `pentaflow serve` with `extra` arguments (e.g. `--workers 2`) in front of one back-end.
async fn start(tag: &str, extra: &[&str]) -> Node {
    let backend = named_backend("one").await;
    let (listen, admin) = (free_addr(), free_addr());
    let dir = temp_dir(tag);
    let config = dir.join("pentaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nadmin = \"{admin}\"\nshutdown_grace = \"2s\"\n\n[[service]]\nname = \"web\"\n\
             listen = [\"{listen}\"]\n\n[[service.backend]]\nname = \"one\"\naddress = \"{backend}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(extra)
        .arg("--config")
        .arg(&config)
        .env("PENTAFLOW_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_log(&mut child);
    wait_listening(listen).await;
    wait_listening(admin).await;
    Node {
        old: Running(child),
        log,
        listen,
        admin,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_hands_the_sockets_to_a_new_process_and_no_request_fails() {
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let node = start("upgrade", &["--workers", "1"]).await;
    let _new = hand_over_with_clients_all_along(node).await;
}

/// The same with two worker runtimes in each process (`--workers 2`, handed on to the new
/// process with the other arguments): every worker of the old one stops accepting and drains,
/// both workers of the new one accept on the handed-over socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_with_two_workers_hands_the_sockets_over_and_no_request_fails() {
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let node = start("upgrade-workers", &["--workers", "2"]).await;
    let admin = node.admin;
    let _new = hand_over_with_clients_all_along(node).await;
    let metrics = admin_get(admin, "/metrics");
    let accepted: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("pentaflow_worker_connections_accepted_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        accepted.len(),
        2,
        "two workers in the new process: {metrics}"
    );
    assert!(
        accepted.iter().all(|n| *n > 0),
        "both workers of the new process accept: {accepted:?}"
    );
}

/// A GET on the admin API: the whole answer.
fn admin_get(admin: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// Clients on new connections all along, `SIGUSR2`: the new process serves, the old one
/// drains and exits, no request fails, the admin API is handed over too.
/// Returns the new process (stopped when that is dropped).
async fn hand_over_with_clients_all_along(mut node: Node) -> KillOnDrop {
    let listen = node.listen;
    // Clients all along: four loops, each a new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if get_ok(listen) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0, "the node serves");
    node.old.signal("USR2");
    let line = wait_for_line(
        &node.log,
        "upgrade: the new process serves",
        Duration::from_secs(30),
    );
    let pid: u32 = line
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let new = KillOnDrop(pid);
    let status = node.old.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "the old process drained and exited: {status}"
    );
    // The new process serves on the same sockets, the admin API's included.
    let at_exit = ok.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().unwrap();
    }
    let after = ok.load(Ordering::Relaxed) - at_exit;
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "upgrade: {before} requests before SIGUSR2, {at_exit} until the old process exited, \
         {after} after, {failed} failed; new pid {pid}"
    );
    assert_eq!(failed, 0, "no request failed across the upgrade");
    assert!(after > 0, "the new process serves");
    assert!(alive(pid), "the new process runs on");
    assert!(get_ok(listen));
    let status = TcpStream::connect(node.admin).map(|mut s| {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut a = String::new();
        let _ = s.read_to_string(&mut a);
        a
    });
    assert!(
        status
            .as_deref()
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
        "the admin API was handed over too: {status:?}"
    );
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let mut node = start("upgrade-bad", &[]).await;
    std::fs::write(&node.config, "[[service]]\nname = 1\n").unwrap();
    node.old.signal("USR2");
    wait_for_line(
        &node.log,
        "upgrade failed; this process keeps serving",
        Duration::from_secs(30),
    );
    assert!(
        node.old.0.try_wait().unwrap().is_none(),
        "the old process runs on"
    );
    assert!(get_ok(node.listen), "and serves");
}

/// The new process is not a child of the test: stopped by its PID when the test ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
        let until = Instant::now() + Duration::from_secs(10);
        while alive(self.0) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

//! End to end through the binary, as root: `pentaflow lab up --nodes 3 --webs 3 --clients 1`
//! builds the lab and starts `pentaflow serve` with the generated `[array]` config in every
//! node (node1 the scheduler, also serving); hundreds of keep-alive connections from the
//! client namespace; then `pentaflow lab down`.
//!
//! Proves: every request is answered by the right back-end path; connections spread evenly
//! over the three nodes (the bucket table's least-assigned rule hands fresh buckets round
//! the nodes), as the nodes' kernels (nftables egress sets) and their admin counters agree;
//! node1 sends no reply of a connection it forwarded; the scheduler's Summary Web Server Status
//! Table sums, per back-end, the hits of the three nodes' own tables (and its Node Status Table
//! has its own row); the scheduler's own counters (logged on SIGTERM) show frames forwarded to
//! node2/node3 and delivered locally; SIGTERM restores
//! node1's kernel; a node refuses to start without privileges, and a failed start leaves the
//! running node alone; `lab down` leaves no namespace. Skipped, with a printed reason, when not
//! root.

// Helpers of an integration test are not `#[test]` fns, so `allow-unwrap-in-tests` does not
// reach them; the policy is the same: a panic here is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pentaflow_lab::Lab;

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");

/// The tests of this file build labs and compare the machine's labs before and after: one at
/// a time, or one would take (and tear down) the other's lab as its own.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Keep-alive connections the client opens (the issue asks for hundreds).
const CONNECTIONS: usize = 300;
/// Requests per connection.
const ROUNDS: usize = 3;
/// Bound on any single socket operation, so a broken data path fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole test, lab included, must stay well inside CI's budget.
const TEST_BUDGET: Duration = Duration::from_secs(60);
const NODES: [&str; 3] = ["node1", "node2", "node3"];

/// On each node's LAN interface: the client port of every connection it accepted (SYN-ACK
/// from the VIP) and of every data reply it sent from the VIP (longer than bare headers).
const EGRESS_SETS: &str = "table netdev pflabtest {
    set accepted { type inet_service; flags dynamic; size 65535; }
    set replied { type inet_service; flags dynamic; size 65535; }
    chain egress {
        type filter hook egress device \"eth0\" priority 0; policy accept;
        ip saddr 10.77.1.10 tcp sport 80 tcp flags & (syn | ack) == syn | ack add @accepted { tcp dport }
        ip saddr 10.77.1.10 tcp sport 80 ip length > 64 add @replied { tcp dport }
    }
}
";

/// The lab made by `pentaflow lab up`; `pentaflow lab down` on drop, also during a panic.
struct LabGuard {
    prefix: String,
    down: bool,
}

impl LabGuard {
    fn down(&mut self) -> std::process::Output {
        self.down = true;
        Command::new(BIN)
            .args(["lab", "down", &self.prefix])
            .output()
            .unwrap()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.down();
        }
    }
}

/// Runs `args` in `host` of `lab` with `stdin`, asserting success; returns stdout.
fn run_in(lab: &Lab, host: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = lab
        .command(host, args)
        .unwrap()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} in {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Client ports recorded in one of a node's egress sets.
fn set_ports(lab: &Lab, node: &str, set: &str) -> BTreeSet<u16> {
    let json = run_in(
        lab,
        node,
        &["nft", "-j", "list", "set", "netdev", "pflabtest", set],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut ports = BTreeSet::new();
    for item in v["nftables"].as_array().unwrap() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let n = e.as_u64().or_else(|| e["elem"]["val"].as_u64()).unwrap();
            ports.insert(u16::try_from(n).unwrap());
        }
    }
    ports
}

/// `pentaflow_connections_accepted_total` from a node's admin API (on its own loopback).
fn accepted_total(lab: &Lab, node: &str) -> u64 {
    let metrics = run_in(
        lab,
        node,
        &[
            "curl",
            "-sf",
            "-H",
            &admin_auth(lab),
            "http://127.0.0.1:9090/metrics",
        ],
        None,
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("pentaflow_connections_accepted_total "))
        .unwrap_or_else(|| panic!("no connections_accepted in {node}'s metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// A JSON page of a node's admin API (on its own loopback).
fn admin_json(lab: &Lab, node: &str, path: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:9090{path}");
    let auth = admin_auth(lab);
    serde_json::from_str(&run_in(
        lab,
        node,
        &["curl", "-sf", "-H", &auth, &url],
        None,
    ))
    .unwrap()
}

/// The `Authorization` header the lab's admin APIs want (the token `lab up` wrote).
fn admin_auth(lab: &Lab) -> String {
    let config = std::fs::read_to_string(lab.state().dir().join("array.toml")).unwrap();
    let token = config
        .lines()
        .find_map(|l| l.strip_prefix("admin_token = "))
        .unwrap()
        .trim_matches('"');
    format!("Authorization: Bearer {token}")
}

/// Per `service/back-end`, the hits of a node's own Web Server Status Table (`/status`).
fn own_hits(lab: &Lab, node: &str) -> BTreeMap<String, u64> {
    let doc = admin_json(lab, node, "/status");
    doc["web_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = format!(
                "{}/{}",
                r["service"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            );
            (key, r["hits"].as_u64().unwrap())
        })
        .collect()
}

/// Waits until the scheduler's Summary Web Server Status Table (`/cluster`'s `summary`) shows,
/// per back-end, the sum of every node's own hits, reported by all three nodes; returns the
/// summary's hits and the `/cluster` document. The load has stopped, so the counters stand
/// still; what is waited for is one poll sweep (~0.2 s per node) and the 250 ms republishing.
fn summary_agrees(lab: &Lab) -> (BTreeMap<String, u64>, serde_json::Value) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for n in NODES {
            for (k, hits) in own_hits(lab, n) {
                *want.entry(k).or_default() += hits;
            }
        }
        let doc = admin_json(lab, "node1", "/cluster");
        let rows = doc["summary"].as_array().cloned().unwrap_or_default();
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|r| {
                let key = format!(
                    "{}/{}",
                    r["service"].as_str().unwrap(),
                    r["backend"].as_str().unwrap()
                );
                (key, r["hits"].as_u64().unwrap())
            })
            .collect();
        let everyone = rows.iter().all(|r| r["nodes_reporting"] == 3);
        if got == want && everyone && !rows.is_empty() {
            return (got, doc);
        }
        assert!(
            Instant::now() < until,
            "the summary never matched the nodes' own tables: want {want:?}, summary {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads one HTTP/1.1 response (status 200, Content-Length body) and returns the body.
fn read_response(reader: &mut BufReader<TcpStream>) -> String {
    let (status, body) = pentaflow_lab::test_support::read_response(reader).unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Opens `count` connections, then sends `rounds` requests on each, checking every answer
/// (`web<N> <path>` from the back-end); returns the client ports.
fn client_run(vip: SocketAddr, count: usize, rounds: usize) -> Vec<u16> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let s = TcpStream::connect_timeout(&vip, IO_TIMEOUT).expect("connect to the VIP");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let port = s.local_addr().unwrap().port();
        conns.push((port, BufReader::new(s)));
    }
    for round in 0..rounds {
        for (i, (port, reader)) in conns.iter_mut().enumerate() {
            let path = format!("/c{i}/r{round}");
            let req = format!("GET {path} HTTP/1.1\r\nHost: vip\r\n\r\n");
            reader.get_mut().write_all(req.as_bytes()).expect("send");
            let body = read_response(reader);
            let (web, echoed) = body.trim_end().split_once(' ').expect("`<web> <path>`");
            assert!(web.starts_with("web"), "port {port}: {body:?}");
            assert_eq!(echoed, path, "port {port}: the answer to this request");
        }
    }
    conns.into_iter().map(|(port, _)| port).collect()
}

/// The `key=value` of the log line containing `needle`.
fn log_field<'a>(log: &'a str, needle: &str, key: &str) -> &'a str {
    let line = log
        .lines()
        .rfind(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"));
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn wait_exit(pid: u32, limit: Duration) {
    let until = Instant::now() + limit;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < until,
            "pid {pid} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lab_up_gives_a_working_array_and_down_removes_it() {
    if !pentaflow_lab::require_root("lab_up_gives_a_working_array_and_down_removes_it") {
        return;
    }
    let _one = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let up = Command::new(BIN)
        .args(["lab", "up", "--nodes", "3", "--webs", "3", "--clients", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "lab up: {stdout}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let prefix = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("lab "))
        .and_then(|l| l.split_whitespace().next())
        .expect("`lab <prefix> (VIP ...)` first")
        .to_owned();
    let mut guard = LabGuard {
        prefix: prefix.clone(),
        down: false,
    };
    let up_took = started.elapsed();
    assert!(stdout.contains("pentaflow lab exec client1 -- curl -s http://10.77.1.10/"));
    let lab = Lab::open(&prefix).unwrap();
    let vip = SocketAddr::from((lab.state().vip, 80));

    // The newcomer's command works.
    let curl = Command::new(BIN)
        .args([
            "lab", "exec", "--lab", &prefix, "client1", "--", "curl", "-sf",
        ])
        .arg("http://10.77.1.10/hello")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success() && body.ends_with(" /hello\n"),
        "{body:?}"
    );
    let status = Command::new(BIN)
        .args(["lab", "status", &prefix])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let scheduler_rows: Vec<&str> = status.lines().filter(|l| l.ends_with(" yes")).collect();
    assert_eq!(scheduler_rows.len(), 1, "{status}");
    assert!(
        scheduler_rows[0].trim_start().starts_with("node1 "),
        "{status}"
    );

    // Refusals that must leave the running array alone: without privileges (clear error),
    // and a second node2 whose proxy cannot bind (its array set-up is undone on the way out).
    let config = lab.state().dir().join("array.toml");
    let config = config.to_str().unwrap();
    let serve = [BIN, "serve", "--config", config, "--node-id", "2"];
    let mut unprivileged = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    unprivileged.extend(serve);
    // setpriv is in util-linux (Debian: essential), but do not fail on an odd image.
    if Command::new("setpriv").arg("--version").output().is_ok() {
        let out = lab.exec("node2", &unprivileged).unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains("CAP_NET_ADMIN"),
            "{said}"
        );
    } else {
        eprintln!("lab e2e: no setpriv; the unprivileged start is not checked");
    }
    let out = lab.exec("node2", &serve).unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("cannot start the proxy"),
        "{said}"
    );
    let lo = run_in(
        &lab,
        "node2",
        &["ip", "-4", "-o", "addr", "show", "dev", "lo"],
        None,
    );
    assert!(
        lo.contains("10.77.1.10/32"),
        "the first node2 keeps its VIP: {lo}"
    );

    for n in NODES {
        run_in(&lab, n, &["nft", "-f", "-"], Some(EGRESS_SETS));
    }
    let before: Vec<u64> = NODES.iter().map(|n| accepted_total(&lab, n)).collect();
    let load = Instant::now();
    let ports = lab
        .run_in("client1", || client_run(vip, CONNECTIONS, ROUNDS))
        .unwrap();
    let load_took = load.elapsed();
    let after: Vec<u64> = NODES.iter().map(|n| accepted_total(&lab, n)).collect();

    let accepted: BTreeMap<&str, BTreeSet<u16>> = NODES
        .iter()
        .map(|n| (*n, set_ports(&lab, n, "accepted")))
        .collect();
    let replied: BTreeMap<&str, BTreeSet<u16>> = NODES
        .iter()
        .map(|n| (*n, set_ports(&lab, n, "replied")))
        .collect();
    let all: BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(all.len(), CONNECTIONS, "client ports are distinct");
    let spread: BTreeMap<&str, usize> = accepted
        .iter()
        .map(|(n, p)| (*n, p.intersection(&all).count()))
        .collect();

    // The scheduler's Summary Web Server Status Table (seed 002 Fig. 8) sums every node's own
    // table: per back-end, the hits of the three nodes' `/status`, all three reporting.
    let (summary, cluster_doc) = summary_agrees(&lab);
    let summed: u64 = summary.values().sum();
    assert!(
        summed >= (CONNECTIONS * ROUNDS) as u64,
        "every request through the VIP is a hit: {summary:?}"
    );
    // The Node Status Table has every node's row, the scheduler's own at age 0.
    let table = cluster_doc["nodes"].as_array().unwrap();
    assert!(
        table.iter().all(|n| n["hits"].as_u64().is_some()),
        "{table:?}"
    );
    let own = table.iter().find(|n| n["self"] == true).unwrap();
    assert_eq!(own["id"], 1);
    assert_eq!(own["status_age_ms"], 0, "{own}");

    // SIGTERM the scheduler node: it logs its counters and restores its kernel.
    let node1 = lab
        .state()
        .processes
        .iter()
        .find(|p| p.host == "node1" && p.what == "pentaflow serve")
        .cloned()
        .expect("node1's pentaflow is recorded");
    let raw_pid = i32::try_from(node1.pid).unwrap();
    assert_eq!(sigterm(raw_pid), 0, "SIGTERM node1");
    wait_exit(node1.pid, Duration::from_secs(10));
    let log = std::fs::read_to_string(node1.log.as_ref().unwrap()).unwrap();
    let forwarded: BTreeMap<String, u64> = log_field(&log, "scheduler stopped", "forwarded")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect();
    let local: u64 = log_field(&log, "scheduler stopped", "local")
        .parse()
        .unwrap();
    let send_errors: u64 = log_field(&log, "scheduler stopped", "send_errors")
        .parse()
        .unwrap();
    let arp_ignore = run_in(
        &lab,
        "node1",
        &["sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore"],
        None,
    );
    let lo = run_in(
        &lab,
        "node1",
        &["ip", "-4", "-o", "addr", "show", "dev", "lo"],
        None,
    );
    let tables = run_in(&lab, "node1", &["nft", "list", "tables"], None);

    eprintln!(
        "lab e2e: up in {up_took:?}; {CONNECTIONS} connections x {ROUNDS} requests in \
         {load_took:?}; connections per node {spread:?}; admin accepted before {before:?} after \
         {after:?}; scheduler frames forwarded {forwarded:?}, local {local}, send errors \
         {send_errors}; summary hits {summary:?}"
    );

    // Every connection was accepted by exactly one node ...
    let mut union = BTreeSet::new();
    for (n, p) in &accepted {
        assert!(
            union.is_disjoint(p),
            "{n} accepted a connection another node accepted"
        );
        union.extend(p.iter().copied());
    }
    assert!(
        all.is_subset(&union),
        "every connection was accepted by a node"
    );
    // ... and answered only by that node: node1 (the scheduler) sent no reply of a
    // connection it forwarded.
    for (n, p) in &replied {
        assert!(
            p.is_subset(&accepted[n]),
            "{n} replied on connections it did not accept"
        );
    }
    assert!(
        all.is_subset(&replied.values().flatten().copied().collect()),
        "every connection got replies"
    );
    // Spread over the three nodes in turn (least-assigned buckets), and the proxies' own
    // counters agree with the kernels'.
    for (i, n) in NODES.iter().enumerate() {
        let got = spread[n];
        assert!(
            got.abs_diff(CONNECTIONS / 3) <= CONNECTIONS / 20,
            "{n} got {got}: {spread:?}"
        );
        assert_eq!(after[i] - before[i], got as u64, "{n}'s admin counter");
    }
    // The scheduler forwarded to node2 and node3 and served its own share locally.
    assert!(
        forwarded.get("2").copied().unwrap_or(0) > 0,
        "{forwarded:?}"
    );
    assert!(
        forwarded.get("3").copied().unwrap_or(0) > 0,
        "{forwarded:?}"
    );
    assert!(
        !forwarded.contains_key("1"),
        "its own buckets go to the TAP, not the LAN"
    );
    assert!(local > 0);
    assert_eq!(send_errors, 0);
    // SIGTERM restored node1: ARP as before, no VIP on lo, no scheduler table.
    assert_eq!(arp_ignore.trim(), "0");
    assert!(!lo.contains("10.77.1.10/32"), "{lo}");
    assert!(!tables.contains("pentaflow_"), "{tables}");

    let down = guard.down();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(
        !netns.contains(&format!("{prefix}-")),
        "namespaces left: {netns}"
    );
    assert!(!pentaflow_lab::list_labs().contains(&prefix));
    assert!(
        started.elapsed() < TEST_BUDGET,
        "took {:?}",
        started.elapsed()
    );
}

/// SIGTERM by PID through `kill(1)` (the test crate forbids `unsafe`); 0 on success.
fn sigterm(pid: i32) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    status.code().unwrap_or(1)
}

/// A directory of links to every program on `PATH` except `missing`, to run as `PATH`.
fn path_without(missing: &str) -> tempfile_dir::Dir {
    let dir = tempfile_dir::Dir::new("pentaflow-core-path");
    let path = std::env::var("PATH").unwrap_or_default();
    for d in path.split(':').filter(|d| !d.is_empty()) {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name == missing {
                continue;
            }
            // The first PATH entry wins, as in a shell; later duplicates fail to link.
            let _ = std::os::unix::fs::symlink(e.path(), dir.path().join(&name));
        }
    }
    dir
}

/// A temporary directory removed on drop (also during a panic).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new(prefix: &str) -> Self {
            let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Issue 17 item 14: without `nft` no node can start the scheduler's data plane. `lab up`
/// must not report "array up": it fails, naming the missing program and how to install it
/// (each node logged the whole cause chain and stepped down, as `/cluster` shows), and
/// leaves no lab behind.
#[test]
fn lab_up_fails_and_names_the_missing_program_when_no_data_plane_can_start() {
    if !pentaflow_lab::require_root(
        "lab_up_fails_and_names_the_missing_program_when_no_data_plane_can_start",
    ) {
        return;
    }
    let _one = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = pentaflow_lab::list_labs();
    let path = path_without("nft");
    let up = Command::new(BIN)
        .args(["lab", "up", "--nodes", "2", "--webs", "1", "--clients", "1"])
        .env("PATH", path.path())
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    // Whatever failed, never leave a lab behind.
    for prefix in pentaflow_lab::list_labs() {
        if !before.contains(&prefix) {
            let _ = Command::new(BIN).args(["lab", "down", &prefix]).output();
            panic!("lab {prefix} left behind:\n{out}");
        }
    }
    assert!(!up.status.success(), "lab up reported success:\n{out}");
    assert!(!out.contains("array up in"), "{out}");
    assert!(
        out.contains("`nft`") && out.contains("apt-get install nftables"),
        "the missing program and its package are named:\n{out}"
    );
}

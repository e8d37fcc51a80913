//! Chaos in the lab, through the binary, as root: hundreds of keep-alive connections issue
//! requests continuously while a node is SIGKILLed or added, and every failure is counted.
//!
//! * (a) SIGKILL the scheduler: a new connection to the VIP is answered again within 1 s, and
//!   no request fails on a connection whose node survived;
//! * (b) SIGKILL a non-scheduler node: only its own connections fail, new connections succeed
//!   within 1 s;
//! * (c) add a node under load: no request fails, and the new node receives new connections
//!   (fresh buckets go to the least-loaded node);
//! * (d) push and commit (`pentaflow config push|commit` through a node's admin API) a config
//!   that removes a back-end, under load: no request fails, and the back-end gets no more;
//!   one that changes node weights and priorities applies live, one that moves the VIP is
//!   refused by every node;
//! * (e) take the scheduler's LAN link down for 500 ms: its data plane dies, it steps down,
//!   another node answers new connections within 1 s, no request fails on the other nodes,
//!   and the node rejoins as a standby showing the failure and its cause in `/cluster`.
//!
//! The measured figures are printed (`--nocapture` shows them; they go into BENCHMARKS.md).
//! Scenarios run one after the other (they share the machine's two cores). Skipped, with a
//! printed reason, when not root.

// Helpers of an integration test are not `#[test]` fns, so `allow-unwrap-in-tests` does not
// reach them; the policy is the same: a panic here is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pentaflow_lab::Lab;

const BIN: &str = env!("CARGO_BIN_EXE_pentaflow");
/// Keep-alive connections of the load (the issue asks for hundreds).
const CONNECTIONS: usize = 300;
/// Threads issuing the load; each owns a share of the connections.
const WORKERS: usize = 6;
/// A request may take this long before it counts as failed: TCP retransmits what was lost
/// while the VIP moved (RTO 200 ms, doubling), which is latency, not failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// One probe's connect and answer bounds: short, so a probe lost in the outage does not wait
/// for the kernel's 1 s SYN retransmit (the next probes, started meanwhile, tell the time).
const PROBE_CONNECT: Duration = Duration::from_millis(100);
const PROBE_ANSWER: Duration = Duration::from_millis(500);
/// A new probe starts this often (they overlap).
const PROBE_GAP: Duration = Duration::from_millis(10);
/// How long new connections are probed after a fault.
const PROBE_WINDOW: Duration = Duration::from_millis(2500);
/// The bound for the VIP to answer new connections after a fault.
const RECOVERY_LIMIT: Duration = Duration::from_secs(1);
/// Load kept running after the probes, to see the surviving connections carry on.
const SETTLE: Duration = Duration::from_millis(500);
const VIP: &str = "10.77.1.10:80";
/// The load runs this long before a fault: a steady state, where the router's ARP entry for
/// the VIP is older than Linux's 1 s `locktime` (an entry younger than that ignores the new
/// scheduler's gratuitous ARP until the lock ends; the scheduler repeats it every 100 ms).
const STEADY: Duration = Duration::from_millis(1500);

/// Scenarios share two cores: never two labs under load at once.
static SERIAL: Mutex<()> = Mutex::new(());

/// A scenario's lab: `None` (skipped, saying why) when not root; otherwise the lock that runs
/// the scenarios one at a time (they share two cores) and a lab of `nodes` nodes (`spare` of
/// them not started) and `webs` web servers. Keep the lock for the whole scenario.
fn scenario_lab(
    nodes: usize,
    spare: usize,
    webs: usize,
) -> Option<(MutexGuard<'static, ()>, LabGuard)> {
    scenario_lab_on(nodes, spare, webs, "af_packet")
}

/// [`scenario_lab`] with the scheduler's data plane (`lab up --data-plane`).
fn scenario_lab_on(
    nodes: usize,
    spare: usize,
    webs: usize,
    data_plane: &str,
) -> Option<(MutexGuard<'static, ()>, LabGuard)> {
    if !pentaflow_lab::require_root("chaos scenario") {
        return None;
    }
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    Some((serial, LabGuard::up_with(nodes, spare, webs, data_plane)))
}

/// A lab made by `pentaflow lab up`; `pentaflow lab down` on drop, also during a panic.
struct LabGuard {
    lab: Lab,
}

impl LabGuard {
    fn up_with(nodes: usize, spare: usize, webs: usize, data_plane: &str) -> LabGuard {
        let out = Command::new(BIN)
            .args(["lab", "up", "--webs", &webs.to_string(), "--clients", "1"])
            .args(["--nodes", &nodes.to_string(), "--spare", &spare.to_string()])
            .args(["--data-plane", data_plane])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "lab up: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let prefix = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("down:   pentaflow lab down "))
            .unwrap_or_else(|| panic!("no prefix in {stdout}"))
            .trim()
            .to_owned();
        LabGuard {
            lab: Lab::open(&prefix).unwrap(),
        }
    }

    fn prefix(&self) -> String {
        self.lab.state().prefix.clone()
    }

    /// The configuration file `lab up` gave every node.
    fn active_config(&self) -> String {
        std::fs::read_to_string(self.lab.state().dir().join("array.toml")).unwrap()
    }

    /// The admin token of that file.
    fn admin_token(&self) -> String {
        self.active_config()
            .lines()
            .find_map(|l| l.strip_prefix("admin_token = "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    }

    /// `pentaflow lab VERB NODE --lab PREFIX`, asserting success.
    fn verb(&self, verb: &str, node: Option<&str>) {
        let mut c = Command::new(BIN);
        c.args(["lab", verb, "--lab", &self.prefix()]);
        if let Some(n) = node {
            c.arg(n);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "lab {verb} {node:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The node whose kernel holds the scheduler's table, per `lab status`.
    fn scheduler(&self) -> String {
        let out = Command::new(BIN)
            .args(["lab", "status", &self.prefix()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows: Vec<&str> = text.lines().filter(|l| l.ends_with(" yes")).collect();
        assert_eq!(rows.len(), 1, "one scheduler: {text}");
        rows[0].split_whitespace().next().unwrap().to_owned()
    }

    /// Client ports of the established VIP connections on `node`.
    fn client_ports(&self, node: &str) -> BTreeSet<u16> {
        let out = self
            .lab
            .exec(
                node,
                &["ss", "-Htn", "state", "established", "( sport = :80 )"],
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|peer| peer.rsplit_once(':'))
            .filter_map(|(_, port)| port.parse().ok())
            .collect()
    }

    /// client port → node, for every node.
    fn owners(&self, nodes: &[&str]) -> BTreeMap<u16, String> {
        let mut map = BTreeMap::new();
        for n in nodes {
            for p in self.client_ports(n) {
                map.insert(p, (*n).to_owned());
            }
        }
        map
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["lab", "down", &self.prefix()])
            .output();
    }
}

/// One GET on a keep-alive connection; the body must be `web<N> <path>`.
fn request(reader: &mut BufReader<TcpStream>, path: &str) -> Result<(), String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: vip\r\n\r\n");
    reader
        .get_mut()
        .write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let (status, body) = pentaflow_lab::test_support::read_response(reader)?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    match body.trim_end().split_once(' ') {
        Some((web, echoed)) if web.starts_with("web") && echoed == path => Ok(()),
        _ => Err(format!("wrong answer {body:?} to {path}")),
    }
}

/// The client load: connections opened in the client namespace, then worker threads that
/// issue requests on them round-robin until stopped. A failed connection is not reused.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<(u16, Duration, String)>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    ports: Vec<u16>,
    started: Instant,
}

impl Load {
    fn start(lab: &LabGuard) -> Load {
        let vip: SocketAddr = VIP.parse().unwrap();
        let conns: Vec<(u16, BufReader<TcpStream>)> = lab
            .lab
            .run_in("client1", move || {
                (0..CONNECTIONS)
                    .map(|_| {
                        let s = TcpStream::connect_timeout(&vip, REQUEST_TIMEOUT).unwrap();
                        s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
                        s.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
                        (s.local_addr().unwrap().port(), BufReader::new(s))
                    })
                    .collect()
            })
            .unwrap();
        let ports = conns.iter().map(|(p, _)| *p).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let mut shares: Vec<Vec<(u16, BufReader<TcpStream>)>> =
            (0..WORKERS).map(|_| Vec::new()).collect();
        for (i, c) in conns.into_iter().enumerate() {
            shares[i % WORKERS].push(c);
        }
        let workers = shares
            .into_iter()
            .map(|mut share| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || {
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) && !share.is_empty() {
                        share.retain_mut(|(port, reader)| {
                            let path = format!("/p{port}/r{round}");
                            match request(reader, &path) {
                                Ok(()) => {
                                    ok.fetch_add(1, Ordering::Relaxed);
                                    true
                                }
                                Err(e) => {
                                    let at = started.elapsed();
                                    let mut f =
                                        failures.lock().unwrap_or_else(PoisonError::into_inner);
                                    f.push((*port, at, e));
                                    false
                                }
                            }
                        });
                        round += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            workers,
            ports,
            started,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the workers; returns the failures `(client port, when, why)`.
    fn finish(self) -> Vec<(u16, Duration, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        f.clone()
    }
}

/// One new connection and one request: answered?
fn probe(vip: SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect_timeout(&vip, PROBE_CONNECT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_ANSWER));
    let _ = s.set_write_timeout(Some(PROBE_ANSWER));
    request(&mut BufReader::new(s), "/probe").is_ok()
}

/// What the probes saw after a fault at `fault`.
#[derive(Debug)]
struct Recovery {
    /// Start of the first answered probe after the fault.
    first_ok: Option<Duration>,
    /// Start of the last unanswered probe (`None`: none failed).
    last_failed: Option<Duration>,
    probes: usize,
    failed: usize,
}

/// Probes new connections from the client for [`PROBE_WINDOW`] after `fault`.
fn probe_after(lab: &LabGuard, fault: Instant) -> Recovery {
    let vip: SocketAddr = VIP.parse().unwrap();
    lab.lab
        .run_in("client1", move || {
            let mut r = Recovery {
                first_ok: None,
                last_failed: None,
                probes: 0,
                failed: 0,
            };
            // A probe starts every PROBE_GAP, each on its own thread (threads inherit this
            // thread's namespace), so one waiting out its timeout does not delay the next:
            // the recovery time is known to PROBE_GAP, not to PROBE_CONNECT.
            let mut running = Vec::new();
            while fault.elapsed() < PROBE_WINDOW {
                let at = fault.elapsed();
                running.push(std::thread::spawn(move || (at, probe(vip))));
                std::thread::sleep(PROBE_GAP);
            }
            let mut results: Vec<(Duration, bool)> =
                running.into_iter().map(|t| t.join().unwrap()).collect();
            results.sort();
            for (at, ok) in results {
                r.probes += 1;
                if ok {
                    r.first_ok.get_or_insert(at);
                } else {
                    r.failed += 1;
                    r.last_failed = Some(at);
                }
            }
            r
        })
        .unwrap()
}

/// Warm-up: the load runs at least [`STEADY`] and every connection has carried requests.
fn warm(load: &Load) {
    let until = Instant::now() + Duration::from_secs(5);
    while load.ok() < (CONNECTIONS as u64) * 2 || load.started.elapsed() < STEADY {
        assert!(
            Instant::now() < until,
            "the load does not run: {} ok",
            load.ok()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a fault under load did: recovery, failures by owner node, connections per node,
/// requests ok after the fault.
type FaultOutcome = (
    Recovery,
    BTreeMap<String, usize>,
    BTreeMap<String, usize>,
    u64,
);

/// A node fault under load: kill `victim`; see [`FaultOutcome`].
fn kill_under_load(lab: &LabGuard, victim: &str, nodes: &[&str]) -> FaultOutcome {
    fault_under_load(lab, victim, nodes, || lab.verb("kill", Some(victim)))
}

/// A fault of `victim` under load, done by `fault` (which must return at once: the probes
/// start when it returns); see [`FaultOutcome`].
fn fault_under_load(
    lab: &LabGuard,
    victim: &str,
    nodes: &[&str],
    fault: impl FnOnce(),
) -> FaultOutcome {
    let load = Load::start(lab);
    warm(&load);
    let owners = lab.owners(nodes);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &load.ports {
        let owner = owners.get(p).cloned().unwrap_or_else(|| "?".into());
        *per_node.entry(owner).or_default() += 1;
    }
    // A connection no node lists would make its failures unattributable: at most a few may
    // still be settling in a node's table when `ss` runs (their failures then count as "?",
    // which the scenarios treat as a survivor's).
    assert!(
        per_node.get("?").copied().unwrap_or(0) <= 3,
        "every connection has a node: {per_node:?}"
    );
    let before = load.ok();
    eprintln!(
        "load before the fault: {before} requests in {:?}",
        load.started.elapsed()
    );
    let at = Instant::now();
    eprintln!("fault at {:?}", std::time::SystemTime::now());
    let since_start = load.started.elapsed();
    fault();
    let recovery = probe_after(lab, at);
    let at_probe_end = load.ok() - before;
    std::thread::sleep(SETTLE);
    let after = load.ok() - before;
    eprintln!(
        "after the fault: {at_probe_end} requests during the probes, {after} with the settle time"
    );
    let failures = load.finish();
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for (port, at, why) in &failures {
        let owner = owners.get(port).cloned().unwrap_or_else(|| "?".into());
        assert!(
            *at >= since_start,
            "port {port} ({owner}) failed before the fault: {why}"
        );
        if owner != victim && !by_owner.contains_key(&owner) {
            eprintln!("first survivor failure: port {port} on {owner} at {at:?}: {why}");
        }
        *by_owner.entry(owner).or_default() += 1;
    }
    (recovery, by_owner, per_node, after)
}

#[test]
fn a_killed_scheduler_is_replaced_without_breaking_surviving_connections() {
    killed_scheduler_is_replaced("af_packet");
}

/// Chaos (a) with the XDP data plane: the replicated table reaches the new scheduler's BPF
/// map, so surviving connections keep their node.
#[test]
fn a_killed_xdp_scheduler_is_replaced_without_breaking_surviving_connections() {
    killed_scheduler_is_replaced("xdp");
}

/// Which data plane `node`'s log says its scheduler got (`data_plane=...` of "scheduler up").
fn data_plane_of(lab: &LabGuard, node: &str) -> String {
    let log = std::fs::read_to_string(lab.lab.state().dir().join(format!("{node}.log")))
        .unwrap_or_default();
    log.lines()
        .rev()
        .filter(|l| l.contains("scheduler up"))
        .filter_map(|l| l.split("data_plane=").nth(1))
        .find_map(|rest| rest.split_whitespace().next())
        .unwrap_or("none")
        .trim_matches('"')
        .to_owned()
}

fn killed_scheduler_is_replaced(data_plane: &str) {
    let Some((_serial, lab)) = scenario_lab_on(3, 0, 2, data_plane) else {
        return;
    };
    let started = Instant::now();
    let want_kind = if data_plane == "xdp" {
        "xdp_generic"
    } else {
        "af_packet"
    };
    assert_eq!(
        data_plane_of(&lab, "node1"),
        want_kind,
        "node1's data plane"
    );
    assert_eq!(lab.scheduler(), "node1", "node1 is preferred");
    let nodes = ["node1", "node2", "node3"];
    let (rec, failed, per_node, after) = kill_under_load(&lab, "node1", &nodes);
    let new_scheduler = lab.scheduler();
    println!(
        "chaos (a) kill scheduler: connections {per_node:?}; failed {failed:?}; \
         new connections answered again after {:?} (last failed probe at {:?}, {}/{} probes \
         failed); {after} requests ok after the kill; new scheduler {new_scheduler}; {:.1} s",
        rec.first_ok,
        rec.last_failed,
        rec.failed,
        rec.probes,
        started.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(lab.lab.state().dir().join(format!("{new_scheduler}.log")))
        .unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("cluster") || l.contains("scheduler"))
    {
        eprintln!("  {new_scheduler}: {line}");
    }
    assert_ne!(new_scheduler, "node1");
    assert_eq!(
        data_plane_of(&lab, &new_scheduler),
        want_kind,
        "the new scheduler's data plane"
    );
    let survivors: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node1")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(
        survivors, 0,
        "no request fails on a surviving node: {failed:?}"
    );
    assert!(rec.first_ok.is_some_and(|t| t <= RECOVERY_LIMIT), "{rec:?}");
    assert!(
        rec.last_failed.is_none_or(|t| t <= RECOVERY_LIMIT),
        "{rec:?}"
    );
    assert!(after > 0, "the surviving connections carried on");
    // The operator's notify script (`[array] notify`; the lab's appends to notify.log): the
    // new scheduler said so, and every survivor reported node 1 failed.
    let id = &new_scheduler[4..];
    let notified = std::fs::read_to_string(lab.lab.state().dir().join("notify.log")).unwrap();
    let has = |line: &str| notified.lines().any(|l| l.ends_with(line));
    assert!(has(&format!(" scheduler {id}")), "{notified}");
    assert!(
        has(" node-failed 2 1") && has(" node-failed 3 1"),
        "{notified}"
    );
}

/// Issue 11 item 3: the scheduler's LAN link goes down for half a second under load. Its
/// data plane dies (the packet socket reports the interface down), the node logs it, counts
/// it and steps down; another node takes the VIP within the failover bound; no request fails
/// on a connection of a node whose link stayed up; once the link is back the node rejoins as
/// a standby and `/cluster` shows the failure with its cause.
#[test]
fn a_flapped_scheduler_link_hands_the_vip_on_within_the_bound() {
    flapped_scheduler_link("af_packet");
}

/// The link flap with the XDP data plane: its loop sees the lost carrier the same way.
#[test]
fn a_flapped_xdp_scheduler_link_hands_the_vip_on_within_the_bound() {
    flapped_scheduler_link("xdp");
}

fn flapped_scheduler_link(data_plane: &str) {
    let Some((_serial, lab)) = scenario_lab_on(3, 0, 2, data_plane) else {
        return;
    };
    let started = Instant::now();
    assert_eq!(lab.scheduler(), "node1", "node1 is preferred");
    let nodes = ["node1", "node2", "node3"];
    let router = lab
        .lab
        .state()
        .hosts_of(pentaflow_lab::Role::Router)
        .find_map(|h| h.ip)
        .unwrap()
        .to_string();
    let link = |state: &str| {
        let out = lab
            .lab
            .exec("node1", &["ip", "link", "set", "eth0", state])
            .unwrap();
        assert!(out.status.success(), "ip link set eth0 {state}");
        if state == "up" {
            // The kernel flushes a route through a link that goes down; a host's network
            // manager puts it back when the link returns, as this does.
            let out = lab
                .lab
                .exec(
                    "node1",
                    &["ip", "route", "replace", "default", "via", &router],
                )
                .unwrap();
            assert!(out.status.success(), "default route back");
        }
    };
    let flap = std::thread::scope(|scope| {
        let (rec, failed, per_node, after) = fault_under_load(&lab, "node1", &nodes, || {
            link("down");
            // Up again while the probes run.
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(500));
                link("up");
            });
        });
        (rec, failed, per_node, after)
    });
    let (rec, failed, per_node, after) = flap;
    // Let node1 hear the array again.
    std::thread::sleep(Duration::from_millis(1500));
    let new_scheduler = lab.scheduler();
    println!(
        "chaos (e) scheduler link down 500 ms: connections {per_node:?}; failed {failed:?}; \
         new connections answered again after {:?} (last failed probe at {:?}, {}/{} probes \
         failed); {after} requests ok after the flap; new scheduler {new_scheduler}; {:.1} s",
        rec.first_ok,
        rec.last_failed,
        rec.failed,
        rec.probes,
        started.elapsed().as_secs_f64()
    );
    assert_ne!(
        new_scheduler, "node1",
        "the node whose link failed handed the VIP on"
    );
    let survivors: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node1")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(
        survivors, 0,
        "no request fails on a node whose link stayed up: {failed:?}"
    );
    assert!(rec.first_ok.is_some_and(|t| t <= RECOVERY_LIMIT), "{rec:?}");
    assert!(
        rec.last_failed.is_none_or(|t| t <= RECOVERY_LIMIT),
        "new connections keep working once recovered, node1 back included: {rec:?}"
    );
    assert!(after > 0, "the surviving connections carried on");
    let token = lab.admin_token();
    let doc = pentaflow_in(&lab, "node1", &token, &["status", "--cluster", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["role"], "standby", "{doc}");
    let plane = &doc["data_plane"];
    assert!(plane["failures"].as_u64() >= Some(1), "{doc}");
    assert_eq!(plane["state"], "down", "{doc}");
    let cause = plane["last_failure"]["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("Network is down") || cause.contains("no carrier"),
        "the cause is named: {cause}"
    );
    let log = std::fs::read_to_string(lab.lab.state().dir().join("node1.log")).unwrap();
    assert!(
        log.contains("the scheduler's data plane died"),
        "logged with its cause"
    );
    let notified = std::fs::read_to_string(lab.lab.state().dir().join("notify.log")).unwrap();
    assert!(
        notified.lines().any(|l| l.ends_with(" fault 1")),
        "{notified}"
    );
}

#[test]
fn a_killed_standby_loses_only_its_own_connections() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let started = Instant::now();
    let nodes = ["node1", "node2", "node3"];
    let (rec, failed, per_node, after) = kill_under_load(&lab, "node3", &nodes);
    println!(
        "chaos (b) kill standby node3: connections {per_node:?}; failed {failed:?}; last \
         failed new connection at {:?} ({}/{} probes failed); {after} requests ok after the \
         kill; {:.1} s",
        rec.last_failed,
        rec.failed,
        rec.probes,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(lab.scheduler(), "node1", "the scheduler stays");
    let others: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node3")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(others, 0, "only node3's connections fail: {failed:?}");
    assert!(
        rec.last_failed.is_none_or(|t| t <= RECOVERY_LIMIT),
        "{rec:?}"
    );
    assert!(after > 0);
}

#[test]
fn a_node_added_under_load_breaks_nothing_and_takes_new_connections() {
    node_added_under_load("af_packet");
}

/// Chaos (c) with the XDP data plane: idle release reads the program's access times.
#[test]
fn a_node_added_under_load_with_xdp_breaks_nothing_and_takes_new_connections() {
    node_added_under_load("xdp");
}

fn node_added_under_load(data_plane: &str) {
    let Some((_serial, lab)) = scenario_lab_on(4, 1, 2, data_plane) else {
        return;
    };
    let started = Instant::now();
    let load = Load::start(&lab);
    warm(&load);
    let joined = Instant::now();
    lab.verb("add-node", None);
    // The node starts, is heard by the scheduler (one heartbeat) and becomes a candidate.
    let log = lab.lab.state().dir().join("node4.log");
    let until = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("node joined")
    {
        assert!(Instant::now() < until, "node4 never joined");
        std::thread::sleep(Duration::from_millis(20));
    }
    let join_time = joined.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    // New connections: fresh buckets go to the least-assigned node, which node4 is.
    let vip: SocketAddr = VIP.parse().unwrap();
    let fresh: Vec<TcpStream> = lab
        .lab
        .run_in("client1", move || {
            (0..60)
                .filter_map(|_| TcpStream::connect_timeout(&vip, REQUEST_TIMEOUT).ok())
                .collect()
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let on_node4 = lab.client_ports("node4");
    let fresh_ports: BTreeSet<u16> = fresh
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    let new_on_node4 = fresh_ports.intersection(&on_node4).count();
    let old_on_node4 = load.ports.iter().filter(|p| on_node4.contains(p)).count();
    std::thread::sleep(SETTLE);
    let ok = load.ok();
    let failures = load.finish();
    println!(
        "chaos (c) add node4 under load: joined after {join_time:?}; {new_on_node4}/{} new \
         connections on node4, {old_on_node4} old ones moved there; {} failed requests, {ok} \
         ok; {:.1} s",
        fresh_ports.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(old_on_node4, 0, "no live connection moves");
    assert!(new_on_node4 > 0, "node4 takes new connections");
}

/// `n` requests from `client1` to the VIP, each on a new connection (so each is scheduled
/// anew): every whole answer, as text.
fn new_requests(lab: &LabGuard, tag: &'static str, n: usize) -> Vec<String> {
    let vip: SocketAddr = VIP.parse().unwrap();
    lab.lab
        .run_in("client1", move || {
            (0..n)
                .map(|i| {
                    let s = TcpStream::connect_timeout(&vip, REQUEST_TIMEOUT).unwrap();
                    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
                    let mut r = BufReader::new(s);
                    let req =
                        format!("GET /{tag}{i} HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n");
                    r.get_mut().write_all(req.as_bytes()).unwrap();
                    let mut text = String::new();
                    let _ = r.read_to_string(&mut text);
                    text
                })
                .collect()
        })
        .unwrap()
}

/// `pentaflow ARGS` inside `host`, with the lab's admin token: its exit code and its stdout
/// followed by its stderr.
fn pentaflow_run(lab: &LabGuard, host: &str, token: &str, args: &[&str]) -> (Option<i32>, String) {
    let env = format!("PENTAFLOW_ADMIN_TOKEN={token}");
    let mut full = vec!["env", env.as_str(), BIN];
    full.extend_from_slice(args);
    let out = lab.lab.exec(host, &full).unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), said)
}

/// `pentaflow config push FILE` then `config commit` through `host`'s admin API, asserting
/// that the commit made `version` active.
fn push_and_commit(lab: &LabGuard, host: &str, token: &str, file: &std::path::Path, version: u64) {
    let push = pentaflow_in(
        lab,
        host,
        token,
        &["config", "push", file.to_str().unwrap()],
    );
    assert!(push.contains("as proposal"), "{push}");
    let commit = pentaflow_in(lab, host, token, &["config", "commit"]);
    let active = format!("version {version} is active");
    assert!(commit.contains(&active), "{commit}");
}

/// How many nodes `pentaflow config show` lists on `version`.
fn nodes_on_version(show: &str, version: u64) -> usize {
    let end = format!(" {version}");
    show.lines()
        .filter(|l| l.trim_end().ends_with(&end))
        .count()
}

/// [`pentaflow_run`], asserting success; returns stdout (and stderr, after it).
fn pentaflow_in(lab: &LabGuard, host: &str, token: &str, args: &[&str]) -> String {
    let (code, said) = pentaflow_run(lab, host, token, args);
    assert_eq!(code, Some(0), "pentaflow {args:?} in {host}: {said}");
    said
}

#[test]
fn a_pushed_and_committed_config_changes_the_backends_without_failures() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 3) else {
        return;
    };
    let started = Instant::now();
    let dir = lab.lab.state().dir();
    let active = lab.active_config();
    let token = lab.admin_token();
    // The same array without web3.
    let web3 = active.find("[[service.backend]]\nname = \"web3\"").unwrap();
    let array = active.find("[array]").unwrap();
    let pushed = format!("{}{}", &active[..web3], &active[array..]);
    let pushed_path = dir.join("pushed.toml");
    std::fs::write(&pushed_path, pushed).unwrap();

    let load = Load::start(&lab);
    warm(&load);
    let before = load.ok();
    let t = Instant::now();
    push_and_commit(&lab, "node2", &token, &pushed_path, 1);
    let took = t.elapsed();
    std::thread::sleep(SETTLE * 2);
    let after = load.ok() - before;
    // Every node applied it: new requests never reach web3.
    let answers = new_requests(&lab, "after", 30);
    let show = pentaflow_in(&lab, "node3", &token, &["config", "show"]);
    let failures = load.finish();
    println!(
        "chaos (d) push+commit removing web3 under load: took {took:?}; {} failed requests, \
         {after} ok during and after; {} of 30 new requests answered by web3; {:.1} s",
        failures.len(),
        answers.iter().filter(|a| a.contains("web3 ")).count(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{answers:?}"
    );
    assert!(!answers.iter().any(|a| a.contains("web3 ")), "{answers:?}");
    assert_eq!(nodes_on_version(&show, 1), 3, "{show}");
}

/// (d, continued) What a push may change of `[array]` applies live — here node 3's weight and
/// priority and the `bucket_idle` — and a push changing the VIP is refused by the nodes with a
/// message naming the key, and changes nothing.
#[test]
fn a_pushed_array_change_applies_live_and_a_restart_only_one_is_refused() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let dir = lab.lab.state().dir();
    let active = lab.active_config();
    let token = lab.admin_token();
    let live = active
        .replace("id = 3\n", "id = 3\nweight = 4\npriority = 150\n")
        .replace("[array]\n", "[array]\nbucket_idle = \"30s\"\n");
    assert_ne!(live, active);
    let live_path = dir.join("live.toml");
    std::fs::write(&live_path, live).unwrap();
    push_and_commit(&lab, "node2", &token, &live_path, 1);
    // The scheduler (node1) sees node 3 announce its new weight and priority.
    let until = Instant::now() + Duration::from_secs(3);
    let row = loop {
        let doc = pentaflow_in(&lab, "node1", &token, &["status", "--cluster", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let row = doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == 3)
            .cloned()
            .unwrap();
        if row["weight"] == 4 && row["priority"] == 150 || Instant::now() > until {
            break row;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (&row["weight"], &row["priority"]),
        (&4.into(), &150.into()),
        "{row}"
    );
    assert_eq!(
        lab.scheduler(),
        "node1",
        "no preemption by a raised priority"
    );
    // Every node wrote the committed file over the one it started from, so a restart or a
    // SIGHUP keeps it. (The lab's nodes share one file, so which copy `.previous` holds depends
    // on their order; the unit test of `persist` checks it.)
    assert_eq!(
        lab.active_config(),
        std::fs::read_to_string(&live_path).unwrap()
    );
    assert!(dir.join("array.toml.previous").exists());

    // Moving the VIP needs a restart: every node refuses it, naming the key.
    let moved = active
        .replace("10.77.1.10\"", "10.77.1.20\"")
        .replace("10.77.1.10:", "10.77.1.20:");
    assert_ne!(moved, active);
    let moved_path = dir.join("moved.toml");
    std::fs::write(&moved_path, moved).unwrap();
    let moved_path = moved_path.to_str().unwrap();
    let (code, said) = pentaflow_run(&lab, "node2", &token, &["config", "push", moved_path]);
    assert_ne!(code, Some(0), "{said}");
    assert!(
        said.contains("array.vip") && said.contains("restart"),
        "{said}"
    );
    let show = pentaflow_in(&lab, "node3", &token, &["config", "show"]);
    println!(
        "array change: node 3 row after commit {row}; VIP move refused: {}",
        said.trim()
    );
    assert_eq!(nodes_on_version(&show, 1), 3, "{show}");
}

/// (d, continued) Nodes leave and join the array by push: node 4 (configured but not started)
/// is removed, then added back, by two commits; started afterwards with the file it was
/// installed with (version 0), it catches up with the array's committed version from a node
/// that has it, and the scheduler routes new connections to it.
#[test]
fn a_node_added_by_push_joins_and_catches_up_with_the_committed_config() {
    let Some((_serial, lab)) = scenario_lab(4, 1, 2) else {
        return;
    };
    let dir = lab.lab.state().dir();
    let active = lab.active_config();
    let token = lab.admin_token();
    let node4 = active.find("[[array.node]]\nid = 4\n").unwrap();
    let without = format!(
        "{}{}",
        &active[..node4],
        active[node4..]
            .split_once("\n\n")
            .map_or("", |(_, rest)| rest)
    );
    assert!(!without.contains("id = 4\n"), "{without}");
    for (i, text) in [without, active.clone()].iter().enumerate() {
        let path = dir.join(format!("step{i}.toml"));
        std::fs::write(&path, text).unwrap();
        push_and_commit(&lab, "node2", &token, &path, i as u64 + 1);
    }
    let started = Instant::now();
    lab.verb("add-node", None);
    let until = Instant::now() + Duration::from_secs(5);
    let show = loop {
        let show = pentaflow_in(&lab, "node1", &token, &["config", "show"]);
        if nodes_on_version(&show, 2) == 4 || Instant::now() > until {
            break show;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let caught_up = started.elapsed();
    println!("node4 added by push, started, on the committed version after {caught_up:?}:\n{show}");
    assert_eq!(
        nodes_on_version(&show, 2),
        4,
        "every node, node4 included, runs version 2:\n{show}"
    );
    // New connections reach node4 (fresh buckets go to the least-assigned node).
    let vip: SocketAddr = VIP.parse().unwrap();
    let fresh: Vec<TcpStream> = lab
        .lab
        .run_in("client1", move || {
            (0..40)
                .filter_map(|_| TcpStream::connect_timeout(&vip, REQUEST_TIMEOUT).ok())
                .collect()
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let on4 = lab.client_ports("node4");
    let reached = fresh
        .iter()
        .filter(|s| on4.contains(&s.local_addr().unwrap().port()))
        .count();
    assert!(reached > 0, "node4 gets new connections");
}

/// Keep-alive connections from client1 to the VIP, each with one request answered.
fn held_connections(lab: &LabGuard, n: usize) -> Vec<BufReader<TcpStream>> {
    let vip: SocketAddr = VIP.parse().unwrap();
    lab.lab
        .run_in("client1", move || {
            (0..n)
                .map(|i| {
                    let s = TcpStream::connect_timeout(&vip, REQUEST_TIMEOUT).unwrap();
                    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
                    let mut r = BufReader::new(s);
                    request(&mut r, &format!("/held{i}")).unwrap();
                    r
                })
                .collect()
        })
        .unwrap()
}

/// Drain (issue 5 item 4): a drained node keeps its connections, gets no new ones, and
/// `pentaflow node drain --wait` reports when its last connection is gone.
#[test]
fn a_drained_node_keeps_its_connections_and_reports_when_idle() {
    drained_node_keeps_its_connections("af_packet");
}

/// The drain scenario with the XDP data plane: a disabled node keeps its buckets in the map.
#[test]
fn a_drained_node_keeps_its_connections_with_xdp() {
    drained_node_keeps_its_connections("xdp");
}

fn drained_node_keeps_its_connections(data_plane: &str) {
    let Some((_serial, lab)) = scenario_lab_on(3, 0, 2, data_plane) else {
        return;
    };
    let token = lab.admin_token();
    let mut held = held_connections(&lab, 30);
    let owners = lab.owners(&["node2", "node3"]);
    let port_of = |r: &BufReader<TcpStream>| r.get_ref().local_addr().unwrap().port();
    // The standby serving more of them (30 connections over 3 nodes: it serves some).
    let on = |node: &str| {
        held.iter()
            .filter(|r| owners.get(&port_of(r)).is_some_and(|n| n == node))
            .count()
    };
    let victim = if on("node3") >= on("node2") {
        "node3"
    } else {
        "node2"
    };
    assert!(on(victim) > 0, "{owners:?}");
    let drain =
        |wait: &str| pentaflow_run(&lab, victim, &token, &["node", "drain", "--wait", wait]);
    // Its load (open connections against max_connections) reaches the scheduler's table.
    let id: u64 = victim[4..].parse().unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let load = loop {
        let doc = pentaflow_in(&lab, "node1", &token, &["status", "--cluster", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let row = doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap();
        let load = row["load_permille"].as_u64().unwrap_or(0);
        if load > 0 || Instant::now() > until {
            break load;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(load > 0, "{victim} announces its load");
    let (code, said) = drain("1s");
    assert_eq!(code, Some(1), "live connections left: {said}");
    assert!(said.contains("buckets with live connections"), "{said}");
    // Its connections still work; new ones go elsewhere.
    for (i, r) in held.iter_mut().enumerate() {
        request(r, &format!("/still{i}")).unwrap();
    }
    let fresh = held_connections(&lab, 30);
    let on_victim = lab.client_ports(victim);
    let new_there = fresh
        .iter()
        .filter(|r| on_victim.contains(&port_of(r)))
        .count();
    // A bucket keeps its node while it is in use, drained or not: a fresh connection whose
    // client port falls in a bucket the victim already serves (one of ~10 of 65,536, about
    // one chance in 200 per connection) goes there. Without the drain a third would.
    assert!(
        new_there <= 2,
        "{new_there} of 30 new connections on the drained {victim}"
    );
    drop(held);
    drop(fresh);
    let (code, said) = drain("10s");
    println!("drain of {victim}: {}", said.trim());
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("drained after"), "{said}");
    let enabled = pentaflow_in(&lab, victim, &token, &["node", "enable"]);
    assert!(enabled.contains("enabled"), "{enabled}");
}

/// The failover benchmark of BENCHMARKS.md (not in CI: ~1 min): 20 SIGKILLs of whichever node
/// is the scheduler, each under the full load, the killed node restarted in between. Prints
/// the time until new connections are answered again (median, max) and the requests lost on
/// surviving nodes. Run: `cargo test -p pentaflow --test chaos -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: about a minute; run by hand for BENCHMARKS.md"]
fn failover_benchmark_20_kills() {
    const KILLS: usize = 20;
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let nodes = ["node1", "node2", "node3"];
    let mut recovered = Vec::new();
    let mut lost_on_survivors = 0usize;
    for round in 0..KILLS {
        let victim = lab.scheduler();
        let (rec, failed, _, _) = kill_under_load(&lab, &victim, &nodes);
        lost_on_survivors += failed
            .iter()
            .filter(|(n, _)| **n != victim)
            .map(|(_, c)| c)
            .sum::<usize>();
        let t = rec.first_ok.unwrap_or(PROBE_WINDOW);
        let lost: usize = failed
            .iter()
            .filter(|(n, _)| **n != victim)
            .map(|(_, c)| c)
            .sum();
        println!("kill {round}: {victim} → answered again after {t:?}, {lost} lost on survivors");
        if lost > 0 || t > Duration::from_millis(700) {
            for n in nodes {
                let log = std::fs::read_to_string(lab.lab.state().dir().join(format!("{n}.log")))
                    .unwrap_or_default();
                let events = ["failed", "elected", "stepping", "joined", "scheduler up"];
                for line in log
                    .lines()
                    .rev()
                    .take(40)
                    .filter(|l| events.iter().any(|e| l.contains(e)))
                {
                    println!("    {n}: {}", line.get(..160).unwrap_or(line));
                }
            }
        }
        recovered.push(t);
        lab.verb("start", Some(&victim));
        // The restarted node rejoins as a standby (no preemption) before the next kill.
        std::thread::sleep(Duration::from_millis(1500));
    }
    recovered.sort();
    println!(
        "failover over {KILLS} kills: median {:?}, max {:?}; requests lost on surviving nodes: \
         {lost_on_survivors}",
        recovered[KILLS / 2],
        recovered[KILLS - 1]
    );
}

/// (d, runtime API) A back-end change made through one array node's runtime API
/// (`pentaflow backend maintenance`) goes through the array's push and commit: every node
/// stops sending new requests to the back-end, every node is on the committed version, the
/// file is rewritten with the back-end's state, and no request fails meanwhile.
#[test]
fn a_runtime_backend_change_on_an_array_node_reaches_every_node() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 3) else {
        return;
    };
    let token = lab.admin_token();
    let load = Load::start(&lab);
    warm(&load);
    let said = pentaflow_in(
        &lab,
        "node2",
        &token,
        &[
            "backend",
            "maintenance",
            "--service",
            "web",
            "--name",
            "web3",
        ],
    );
    assert!(said.contains("committed as version 1"), "{said}");
    std::thread::sleep(SETTLE * 2);
    let answers = new_requests(&lab, "rt", 30);
    let show = pentaflow_in(&lab, "node1", &token, &["config", "show"]);
    let failures = load.finish();
    println!(
        "chaos (d) runtime API maintenance of web3 through node2: {} failed requests; {} of 30 \
         new requests answered by web3",
        failures.len(),
        answers.iter().filter(|a| a.contains("web3 ")).count(),
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{answers:?}"
    );
    assert!(!answers.iter().any(|a| a.contains("web3 ")), "{answers:?}");
    assert_eq!(nodes_on_version(&show, 1), 3, "{show}");
    assert!(
        lab.active_config().contains("state = \"maintenance\""),
        "the committed file was written over the nodes' file"
    );
}

// ---- issue 17 items 11–13: partitions, lossy LANs, double kills ----------------------------

/// The array's UDP control port in the lab (the `[array] port` default).
const CLUSTER_PORT: &str = "7946";

/// An nftables table in `node`'s namespace that drops cluster datagrams: `rule` is what
/// follows the match (`drop`, or `numgen random mod 100 < 20 drop` for 20 % loss), on input
/// and on output. Removed with [`uncut`].
fn cut(lab: &LabGuard, node: &str, rule: &str) {
    let script = format!(
        "table inet pfchaos {{\n\
           chain in {{ type filter hook input priority 0; udp dport {CLUSTER_PORT} {rule}; }}\n\
           chain out {{ type filter hook output priority 0; udp dport {CLUSTER_PORT} {rule}; }}\n\
         }}\n"
    );
    let path = lab.lab.state().dir().join(format!("pfchaos-{node}.nft"));
    std::fs::write(&path, script).unwrap();
    let out = lab
        .lab
        .exec(node, &["nft", "-f", path.to_str().unwrap()])
        .unwrap();
    assert!(
        out.status.success(),
        "nft on {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An nftables table in `node`'s namespace that applies `rule` to the cluster datagrams it
/// sends (a lossy LAN: each datagram crosses one such filter, so `numgen random mod 100 < 40
/// drop` loses 40 % end to end, as the issue measures). Removed with [`uncut`].
fn lossy_sender(lab: &LabGuard, node: &str, rule: &str) {
    let script = format!(
        "table inet pfchaos {{\n\
           chain out {{ type filter hook output priority 0; udp dport {CLUSTER_PORT} {rule}; }}\n\
         }}\n"
    );
    let path = lab.lab.state().dir().join(format!("pfchaos-{node}.nft"));
    std::fs::write(&path, script).unwrap();
    let out = lab
        .lab
        .exec(node, &["nft", "-f", path.to_str().unwrap()])
        .unwrap();
    assert!(
        out.status.success(),
        "nft on {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes what [`cut`] added.
fn uncut(lab: &LabGuard, node: &str) {
    let out = lab
        .lab
        .exec(node, &["nft", "delete", "table", "inet", "pfchaos"])
        .unwrap();
    assert!(out.status.success(), "nft delete on {node}");
}

/// `(scheduler events, node-failed events)` in the lab's notify.log so far.
fn notify_counts(lab: &LabGuard) -> (usize, usize) {
    let log = std::fs::read_to_string(lab.lab.state().dir().join("notify.log")).unwrap_or_default();
    let count = |e: &str| log.lines().filter(|l| l.contains(e)).count();
    (count(" scheduler "), count(" node-failed "))
}

/// Item 11: the scheduler is cut off the cluster port for 3 s under load. It hears no
/// majority, so it steps down; the two others elect one scheduler within the failover bound
/// and no connection of theirs fails; after the cut the old scheduler rejoins as a standby
/// (no second election, no preemption).
#[test]
fn a_scheduler_cut_off_the_cluster_steps_down_and_the_majority_carries_on() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let started = Instant::now();
    assert_eq!(lab.scheduler(), "node1", "node1 is preferred");
    let nodes = ["node1", "node2", "node3"];
    let (rec, failed, per_node, after) = std::thread::scope(|scope| {
        fault_under_load(&lab, "node1", &nodes, || {
            cut(&lab, "node1", "drop");
            scope.spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                uncut(&lab, "node1");
            });
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let new_scheduler = lab.scheduler();
    let (elections, failures) = notify_counts(&lab);
    println!(
        "chaos (f) scheduler cut off the cluster 3 s: connections {per_node:?}; failed \
         {failed:?}; new connections answered again after {:?} (last failed probe at {:?}, \
         {}/{} probes failed); {after} requests ok; scheduler after the cut {new_scheduler}; \
         notify: {elections} scheduler events, {failures} node-failed; {:.1} s",
        rec.first_ok,
        rec.last_failed,
        rec.failed,
        rec.probes,
        started.elapsed().as_secs_f64()
    );
    assert_ne!(new_scheduler, "node1", "the majority's scheduler stays");
    let survivors: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node1")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(
        survivors, 0,
        "no request fails on the majority side: {failed:?}"
    );
    assert!(rec.first_ok.is_some_and(|t| t <= RECOVERY_LIMIT), "{rec:?}");
    assert!(
        rec.last_failed.is_none_or(|t| t <= RECOVERY_LIMIT),
        "{rec:?}"
    );
    // node1 at start, then exactly one takeover: node1 never elected itself again.
    assert_eq!(elections, 2, "one election during the cut, none after it");
    let log = std::fs::read_to_string(lab.lab.state().dir().join("node1.log")).unwrap();
    assert!(log.contains("quorum"), "node1 said why it stepped down");
}

/// Item 11: a standby cut off for 3 s never elects itself (it hears no majority), and the
/// scheduler stays where it is; only the cut-off node's own connections may fail.
#[test]
fn a_standby_cut_off_the_cluster_never_elects_itself() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let nodes = ["node1", "node2", "node3"];
    let (rec, failed, per_node, _) = std::thread::scope(|scope| {
        fault_under_load(&lab, "node3", &nodes, || {
            cut(&lab, "node3", "drop");
            scope.spawn(|| {
                std::thread::sleep(Duration::from_secs(3));
                uncut(&lab, "node3");
            });
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (elections, failures) = notify_counts(&lab);
    println!(
        "chaos (g) standby cut off the cluster 3 s: connections {per_node:?}; failed \
         {failed:?}; {}/{} probes failed; notify: {elections} scheduler events, {failures} \
         node-failed",
        rec.failed, rec.probes
    );
    assert_eq!(lab.scheduler(), "node1");
    assert_eq!(elections, 1, "node3 never took the VIP");
    let others: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node3")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(others, 0, "{failed:?}");
}

/// Item 12: `percent` % of every node's cluster datagrams dropped for 12 s under load (on
/// the way out of every node: `percent` % end to end, the measure):
/// `(failed requests, scheduler events, node-failed events)` meanwhile. (BENCHMARKS.md also
/// has runs that dropped on both ends, 36 % and 64 % end to end.)
fn lossy_cluster(lab: &LabGuard, percent: u32) -> (usize, usize, usize) {
    let nodes = ["node1", "node2", "node3"];
    let load = Load::start(lab);
    warm(&load);
    let before = notify_counts(lab);
    let rule = format!("numgen random mod 100 < {percent} drop");
    for n in nodes {
        lossy_sender(lab, n, &rule);
    }
    std::thread::sleep(Duration::from_secs(12));
    for n in nodes {
        uncut(lab, n);
    }
    let ok = load.ok();
    let failures = load.finish();
    let after = notify_counts(lab);
    println!(
        "chaos (h) {percent} % cluster loss for 12 s: {ok} requests ok, {} failed; {} \
         scheduler events, {} node-failed events",
        failures.len(),
        after.0 - before.0,
        after.1 - before.1
    );
    (failures.len(), after.0 - before.0, after.1 - before.1)
}

#[test]
fn twenty_percent_cluster_loss_fails_no_node_and_no_request() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let (failed, elections, node_failures) = lossy_cluster(&lab, 20);
    assert_eq!(lab.scheduler(), "node1");
    assert_eq!((elections, node_failures), (0, 0), "no false failure");
    assert_eq!(failed, 0, "no request failed");
}

#[test]
fn forty_percent_cluster_loss_never_moves_the_vip() {
    let Some((_serial, lab)) = scenario_lab(3, 0, 2) else {
        return;
    };
    let (_failed, elections, _node_failures) = lossy_cluster(&lab, 40);
    assert_eq!(lab.scheduler(), "node1");
    assert_eq!(elections, 0, "no false failover");
}

/// Item 13: the scheduler and the next in line are SIGKILLed together under load (five
/// nodes, so three still make a quorum): new connections are answered again within the
/// single-kill bound and no request fails on the three survivors.
#[test]
fn a_double_kill_fails_over_within_the_single_kill_bound() {
    let Some((_serial, lab)) = scenario_lab(5, 0, 2) else {
        return;
    };
    assert_eq!(lab.scheduler(), "node1");
    let nodes = ["node1", "node2", "node3", "node4", "node5"];
    let (rec, failed, per_node, after) = fault_under_load(&lab, "node1", &nodes, || {
        lab.verb("kill", Some("node1"));
        lab.verb("kill", Some("node2"));
    });
    let new_scheduler = lab.scheduler();
    println!(
        "chaos (i) double kill node1+node2: connections {per_node:?}; failed {failed:?}; new \
         connections answered again after {:?} (last failed probe at {:?}, {}/{} probes \
         failed); {after} requests ok; new scheduler {new_scheduler}",
        rec.first_ok, rec.last_failed, rec.failed, rec.probes
    );
    let survivors: usize = failed
        .iter()
        .filter(|(n, _)| n.as_str() != "node1" && n.as_str() != "node2")
        .map(|(_, c)| c)
        .sum();
    assert_eq!(survivors, 0, "{failed:?}");
    assert!(
        rec.first_ok
            .is_some_and(|t| t <= Duration::from_millis(500)),
        "{rec:?}"
    );
    assert!(
        rec.last_failed
            .is_none_or(|t| t <= Duration::from_millis(500)),
        "{rec:?}"
    );
}

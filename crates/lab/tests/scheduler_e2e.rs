//! End to end, as root: a lab of 3 nodes, 3 web servers and a client; node1 runs the L4
//! scheduler (and serves its own share through its TAP, or with XDP by passing its frames to
//! its own stack); every node answers on the VIP. The same scenario runs with each data
//! plane: AF_PACKET, and the XDP program (`data_plane = "xdp"`, generic mode on veth).
//!
//! Proves: every request on hundreds of keep-alive connections gets the right answer; the
//! connections spread over all three nodes as the bucket table's least-assigned rule says;
//! no reply of a connection forwarded to node2/node3 leaves node1 (an nftables egress set on
//! node1 records the client port of every reply it sends from the VIP); the bridge sees VIP
//! replies entering from each node's port; the kernel settings are restored afterwards.
//!
//! The node servers are the real `pentaflow` binary (a plain proxy node) when it is built
//! beside this test, else the lab's HTTP responder bound to VIP:80 (it names the node in
//! each answer); see [`node_server`]. Skipped, with a printed reason, when not root.

// Helpers of an integration test are not `#[test]` fns, so `allow-unwrap-in-tests` does not
// reach them; the policy is the same: a panic here is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pentaflow_balance::NodeId;
use pentaflow_lab::{responder_command, wait_listening, Lab, LabSpec, Role, LAN_IFACE, WEB_PORT};
use pentaflow_packet::setup::{prepare_node, read_sysctl};
use pentaflow_packet::{
    spawn_scheduler, DataPlaneChoice, DataPlaneKind, DropReason, MacAddr, NodeEntry,
    SchedulerConfig,
};

/// Labs share addresses and names: the tests of this file run one at a time.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Keep-alive connections the client opens (the issue asks for hundreds).
const CONNECTIONS: usize = 300;
/// Requests per connection.
const ROUNDS: usize = 3;
/// Connections uploading a large body.
const UPLOADS: usize = 12;
/// Size of each upload.
const UPLOAD_BYTES: usize = 1 << 20;
/// Connections opened after node3 is declared dead.
const AFTER_FAILURE: usize = 60;
/// Bound on any single socket operation, so a broken data path fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Records, on a node's LAN interface, the client port of every connection it accepted
/// (SYN-ACK sent from the VIP) and of every data reply it sent from the VIP (an IP packet
/// longer than bare headers). Bare RST/ACKs are left out: after node3 is declared dead, a
/// late ACK of one of its closing connections lands on a survivor, which answers RST.
const EGRESS_SET: &str = "table netdev pfe2e {
    set accepted { type inet_service; flags dynamic; size 65535; }
    set replied { type inet_service; flags dynamic; size 65535; }
    chain egress {
        type filter hook egress device \"eth0\" priority 0; policy accept;
        ip saddr 10.77.1.10 tcp sport 80 tcp flags & (syn | ack) == syn | ack add @accepted { tcp dport }
        ip saddr 10.77.1.10 tcp sport 80 ip length > 64 counter add @replied { tcp dport }
    }
}
";

/// One answered request: the client port of its connection and the node named in the body.
struct Answer {
    port: u16,
    node: String,
}

fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let (status, body) = pentaflow_lab::test_support::read_response(reader)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

/// Opens `count` connections, then sends `rounds` requests on each; checks every answer.
fn client_run(vip: SocketAddr, count: usize, rounds: usize) -> Vec<Answer> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        let s = TcpStream::connect_timeout(&vip, IO_TIMEOUT).expect("connect to the VIP");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let port = s.local_addr().unwrap().port();
        conns.push((port, BufReader::new(s), None::<String>));
    }
    for round in 0..rounds {
        for (i, (port, reader, node)) in conns.iter_mut().enumerate() {
            let path = format!("/c{i}/r{round}");
            let req = format!("GET {path} HTTP/1.1\r\nHost: vip\r\n\r\n");
            reader
                .get_mut()
                .write_all(req.as_bytes())
                .expect("send request");
            let body = read_response(reader).expect("read response");
            let (who, echoed) = body
                .trim_end()
                .split_once(' ')
                .expect("body `<node> <path>`");
            assert_eq!(
                echoed, path,
                "answer to the request that was sent (port {port})"
            );
            match node {
                // The responder names the node; a real proxy names the back-end, which may
                // change per request, so stickiness is checked on the responder only.
                Some(n) if responder_nodes() => {
                    assert_eq!(n, who, "a connection stays on its node")
                }
                Some(_) => {}
                None => *node = Some(who.to_owned()),
            }
        }
    }
    conns
        .into_iter()
        .map(|(port, _, node)| Answer {
            port,
            node: node.unwrap_or_default(),
        })
        .collect()
}

/// What the nodes run on VIP:80.
enum NodeServer {
    /// `PENTAFLOW_E2E_NODE_CMD`: whitespace-separated, with `{node}`, `{vip}` and `{prefix}`
    /// replaced (e.g. `/path/pentaflow serve --config /tmp/{prefix}-{node}.toml`).
    Template(String),
    /// The workspace's `pentaflow` binary as a plain proxy node (no `[array]`: this test
    /// sets up the VIP and the scheduler itself) in front of the lab's web servers.
    Binary(PathBuf),
    /// The lab's responder, which names the node in each body.
    Responder,
}

/// The node server: `PENTAFLOW_E2E_NODE_CMD` if set; else the real `pentaflow` binary when
/// it is built beside this test (cargo builds it for the binary's own tests, so a workspace
/// run uses it) unless `PENTAFLOW_E2E_RESPONDER` is set; else the lab's responder.
fn node_server() -> NodeServer {
    if let Ok(template) = std::env::var("PENTAFLOW_E2E_NODE_CMD") {
        if !template.trim().is_empty() {
            return NodeServer::Template(template);
        }
    }
    if std::env::var_os("PENTAFLOW_E2E_RESPONDER").is_some() {
        return NodeServer::Responder;
    }
    // target/<profile>/deps/<this test> → target/<profile>/pentaflow
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("pentaflow")));
    match bin {
        Some(bin) if bin.is_file() => NodeServer::Binary(bin),
        _ => NodeServer::Responder,
    }
}

/// Whether the nodes run the lab's responder (which names the node in each body) rather
/// than a proxy (whose bodies come from back-ends).
fn responder_nodes() -> bool {
    matches!(node_server(), NodeServer::Responder)
}

/// The command line of the server on `node`.
fn node_command(lab: &Lab, node: &str) -> Vec<String> {
    let vip = lab.state().vip;
    match node_server() {
        NodeServer::Template(template) => template
            .split_whitespace()
            .map(|w| {
                w.replace("{node}", node)
                    .replace("{vip}", &vip.to_string())
                    .replace("{prefix}", &lab.state().prefix)
            })
            .collect(),
        NodeServer::Binary(bin) => {
            let mut config = format!(
                "[node]\naccess_log = false\nshutdown_grace = \"1s\"\n\n\
                 [[service]]\nname = \"web\"\nlisten = [\"{vip}:80\"]\n"
            );
            for web in lab.state().hosts_of(Role::Web) {
                let ip = web.ip.unwrap();
                config.push_str(&format!(
                    "\n[[service.backend]]\nname = \"{}\"\naddress = \"{ip}:{WEB_PORT}\"\n",
                    web.name
                ));
            }
            let path = lab.state().dir().join("node.toml");
            std::fs::write(&path, config).unwrap();
            vec![
                bin.to_string_lossy().into_owned(),
                "serve".into(),
                "--config".into(),
                path.to_string_lossy().into_owned(),
            ]
        }
        NodeServer::Responder => responder_command(node, vip, 80),
    }
}

/// Uploads [`UPLOAD_BYTES`] on each of [`UPLOADS`] connections: client frames large enough
/// to arrive at the scheduler as GSO super-frames with unfinished checksums, which it must
/// pass on with their virtio-net header for the node (or its own stack) to accept them.
fn client_uploads(vip: SocketAddr) -> Vec<Answer> {
    let payload = vec![b'x'; UPLOAD_BYTES];
    (0..UPLOADS)
        .map(|i| {
            let s = TcpStream::connect_timeout(&vip, IO_TIMEOUT).expect("connect to the VIP");
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            let port = s.local_addr().unwrap().port();
            let mut reader = BufReader::new(s);
            let head = format!(
                "POST /up{i} HTTP/1.1\r\nHost: vip\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n"
            );
            reader.get_mut().write_all(head.as_bytes()).unwrap();
            reader.get_mut().write_all(&payload).expect("upload");
            let body = read_response(&mut reader).expect("upload answer");
            let mut words = body.split_whitespace();
            let who = words.next().unwrap_or_default().to_owned();
            assert_eq!(words.next(), Some(format!("/up{i}").as_str()), "{body}");
            assert_eq!(
                words.next(),
                Some(UPLOAD_BYTES.to_string().as_str()),
                "every byte arrived: {body}"
            );
            Answer { port, node: who }
        })
        .collect()
}

fn nft(lab: &Lab, host: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut full = vec!["nft"];
    full.extend_from_slice(args);
    let mut cmd = lab.command(host, &full).unwrap();
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?} in {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `packets N` of the rule whose line contains `needle`.
fn counter(listing: &str, needle: &str) -> u64 {
    let line = listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule {needle}"));
    let after = line.split("packets ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Client ports recorded in one of a node's egress sets.
fn set_ports(lab: &Lab, node: &str, set: &str) -> BTreeSet<u16> {
    let json = nft(
        lab,
        node,
        &["-j", "list", "set", "netdev", "pfe2e", set],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut ports = BTreeSet::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(elems) = item["set"]["elem"].as_array() {
            for e in elems {
                let n = e.as_u64().or_else(|| e["elem"]["val"].as_u64()).unwrap();
                ports.insert(u16::try_from(n).unwrap());
            }
        }
    }
    ports
}

#[test]
fn scheduler_forwards_by_mac_and_nodes_answer_directly() {
    if !pentaflow_lab::require_root("scheduler_forwards_by_mac_and_nodes_answer_directly") {
        return;
    }
    forwards_by_mac(DataPlaneChoice::AfPacket);
}

#[test]
fn xdp_scheduler_forwards_by_mac_and_nodes_answer_directly() {
    if !pentaflow_lab::require_root("xdp_scheduler_forwards_by_mac_and_nodes_answer_directly") {
        return;
    }
    forwards_by_mac(DataPlaneChoice::Xdp);
}

/// Whether an XDP program is attached to node1's LAN interface.
fn xdp_attached(lab: &Lab) -> bool {
    let out = lab
        .run_in("node1", || {
            std::process::Command::new("ip")
                .args(["-d", "link", "show", "dev", LAN_IFACE])
                .output()
        })
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

fn forwards_by_mac(plane: DataPlaneChoice) {
    let _one = ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let xdp = plane != DataPlaneChoice::AfPacket;
    let started = Instant::now();
    match node_server() {
        NodeServer::Template(t) => eprintln!("e2e: nodes run PENTAFLOW_E2E_NODE_CMD {t:?}"),
        NodeServer::Binary(b) => eprintln!("e2e: nodes run {} serve", b.display()),
        NodeServer::Responder => eprintln!("e2e: nodes run the lab's responder"),
    }
    let lab = Lab::up(LabSpec {
        nodes: 3,
        webs: 3,
        clients: 1,
    })
    .expect("lab up");
    let vip = lab.state().vip;
    let nodes: Vec<_> = lab.state().hosts_of(Role::Node).cloned().collect();

    // Every node: VIP on lo, no ARP for it (pentaflow's own set-up), and a server on VIP:80.
    let mut guards = Vec::new();
    let mut servers = Vec::new();
    for n in &nodes {
        let guard = lab
            .run_in(&n.name, || prepare_node(LAN_IFACE, vip))
            .unwrap()
            .expect("prepare node");
        guards.push((n.name.clone(), guard));
        let args = node_command(&lab, &n.name);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        servers.push(lab.spawn(&n.name, &argv).unwrap());
        wait_listening(&n.netns, SocketAddr::from((vip, 80)), IO_TIMEOUT).expect("node server up");
    }

    // Evidence collectors: each node's VIP replies (by client port), VIP frames per bridge port.
    for n in &nodes {
        nft(&lab, &n.name, &["-f", "-"], Some(EGRESS_SET));
    }
    nft(
        &lab,
        "switch",
        &["-f", "-"],
        Some(
            "table bridge pfe2e {\n\
           chain ports { type filter hook forward priority 0; policy accept;\n\
             iifname \"node1\" ip saddr 10.77.1.10 counter\n\
             iifname \"node2\" ip saddr 10.77.1.10 counter\n\
             iifname \"node3\" ip saddr 10.77.1.10 counter\n\
             iifname \"router\" ip daddr 10.77.1.10 counter\n\
           }\n\
         }\n",
        ),
    );

    let entries: Vec<NodeEntry> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeEntry {
            id: NodeId(i as u16 + 1),
            mac: n.mac.as_deref().unwrap().parse::<MacAddr>().unwrap(),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect();
    // A scheduler that fails part-way through its set-up (TAP name too long) reports it and
    // leaves node2's kernel as it found it.
    let mut bad = SchedulerConfig::new(LAN_IFACE, vip, NodeId(2), entries.clone());
    bad.tap = "a-tap-name-too-long".into();
    if xdp {
        // The XDP plane has no TAP; its bad set-up is a table it cannot hold.
        bad.data_plane = plane;
        bad.table_size = 3;
    }
    let failed = lab.run_in("node2", || spawn_scheduler(bad)).unwrap();
    assert!(failed.is_err(), "set-up with a bad TAP name must fail");
    let node2_arp = lab
        .run_in("node2", || read_sysctl("net.ipv4.conf.eth0.arp_ignore"))
        .unwrap()
        .unwrap();
    assert_eq!(node2_arp, "1", "failed set-up restored arp_ignore");
    assert!(
        !lab.status().iter().any(|h| h.scheduler),
        "no nft table left behind"
    );

    let mut cfg = SchedulerConfig::new(LAN_IFACE, vip, NodeId(1), entries.clone());
    cfg.data_plane = plane;
    let scheduler = lab
        .run_in("node1", || spawn_scheduler(cfg))
        .unwrap()
        .expect("scheduler up");
    eprintln!("e2e: data plane {:?}", scheduler.data_plane());
    if xdp {
        // On veth the program runs in generic mode (native XDP_TX needs the peer's NAPI).
        assert_eq!(scheduler.data_plane().kind, DataPlaneKind::XdpGeneric);
        assert!(xdp_attached(&lab), "the program is attached to node1's LAN");
        let tables = lab
            .run_in("node1", || {
                std::process::Command::new("nft")
                    .args(["list", "tables"])
                    .output()
            })
            .unwrap()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&tables.stdout).contains("pentaflow_"),
            "no nftables ingress drop with XDP: it would drop the frames passed to the stack"
        );
        assert!(lab
            .status()
            .iter()
            .any(|h| h.host.name == "node1" && h.scheduler));
    } else {
        assert_eq!(scheduler.data_plane().kind, DataPlaneKind::AfPacket);
        assert!(lab
            .status()
            .iter()
            .any(|h| h.host.name == "node1" && h.scheduler));
    }

    let vip_addr = SocketAddr::from((vip, 80));
    // Phase 1: hundreds of keep-alive connections, several requests each.
    let answers = lab
        .run_in("client1", || client_run(vip_addr, CONNECTIONS, ROUNDS))
        .unwrap();
    // Phase 2: large uploads (GSO frames through the scheduler).
    let uploads = lab.run_in("client1", || client_uploads(vip_addr)).unwrap();
    // Phase 3: node3 fails; its buckets are released and new connections avoid it.
    std::thread::sleep(Duration::from_millis(300)); // let the closed connections finish
    let mut without3 = entries.clone();
    without3[2].alive = false;
    scheduler.update_nodes(without3);
    std::thread::sleep(Duration::from_millis(200));
    let after = lab
        .run_in("client1", || client_run(vip_addr, AFTER_FAILURE, 1))
        .unwrap();
    let counters = scheduler.stop().expect("scheduler stop");

    // Which node answered each connection, from the kernels' own egress records (this works
    // whatever the node server is); with the responder the bodies name the node too.
    let accepted: BTreeMap<&str, BTreeSet<u16>> = ["node1", "node2", "node3"]
        .into_iter()
        .map(|n| (n, set_ports(&lab, n, "accepted")))
        .collect();
    let replied: BTreeMap<&str, BTreeSet<u16>> = ["node1", "node2", "node3"]
        .into_iter()
        .map(|n| (n, set_ports(&lab, n, "replied")))
        .collect();
    let phase1: BTreeSet<u16> = answers.iter().map(|a| a.port).collect();
    let spread: BTreeMap<&str, usize> = accepted
        .iter()
        .map(|(n, p)| (*n, p.intersection(&phase1).count()))
        .collect();
    let bridge = nft(&lab, "switch", &["list", "table", "bridge", "pfe2e"], None);
    let from = |port: &str| counter(&bridge, &format!("iifname \"{port}\" ip saddr"));
    let (b1, b2, b3) = (from("node1"), from("node2"), from("node3"));
    let inbound = counter(&bridge, "iifname \"router\" ip daddr");
    eprintln!(
        "e2e: {} connections x {ROUNDS} requests in {:?}; connections per node {spread:?}; \
         scheduler: forwarded {:?}, local {}, dropped {}, send errors {}; bridge: VIP frames \
         in from router {inbound}, VIP replies in from node1 {b1} node2 {b2} node3 {b3}",
        answers.len(),
        started.elapsed(),
        counters.forwarded,
        counters.local,
        counters.dropped_total(),
        counters.send_errors,
    );

    // Every connection answered (client_run checks each body) ...
    assert_eq!(answers.len(), CONNECTIONS);
    let all_ports: BTreeSet<u16> = answers
        .iter()
        .chain(&uploads)
        .chain(&after)
        .map(|a| a.port)
        .collect();
    assert_eq!(
        all_ports.len(),
        CONNECTIONS + UPLOADS + AFTER_FAILURE,
        "client ports are distinct"
    );
    // ... accepted by exactly one node ...
    let mut union = BTreeSet::new();
    for (n, ports) in &accepted {
        assert!(
            union.is_disjoint(ports),
            "{n} accepted a connection another node accepted"
        );
        union.extend(ports.iter().copied());
    }
    assert_eq!(
        union, all_ports,
        "every connection was accepted by exactly one node"
    );
    // ... and answered only by that node: in particular node1 (the scheduler) sent no reply
    // of a connection it forwarded.
    for (n, ports) in &replied {
        assert!(
            ports.is_subset(&accepted[n]),
            "{n} sent data on connections it did not accept"
        );
    }
    assert_eq!(
        replied
            .values()
            .flatten()
            .copied()
            .collect::<BTreeSet<u16>>(),
        all_ports,
        "every connection got its replies"
    );
    // With the responder, the node named in the body is the node whose egress replied.
    if responder_nodes() {
        for a in answers.iter().chain(&uploads).chain(&after) {
            assert!(
                accepted[a.node.as_str()].contains(&a.port),
                "port {} body {}",
                a.port,
                a.node
            );
        }
    }
    // Spread over all three nodes, evenly: the least-assigned rule hands fresh buckets round
    // the nodes in turn.
    for (n, got) in &spread {
        assert!(
            got.abs_diff(CONNECTIONS / 3) <= CONNECTIONS / 20,
            "{n} served {got}: {spread:?}"
        );
    }
    // After node3 failed, nothing went to it.
    for a in &after {
        assert!(
            !accepted["node3"].contains(&a.port),
            "port {} went to the dead node3",
            a.port
        );
    }
    assert!(
        b2 > 0 && b3 > 0 && b1 > 0,
        "replies enter the bridge from each node's port"
    );
    // The scheduler saw the inbound frames: forwarded to 2 and 3, delivered locally for 1.
    assert!(counters.forwarded_to(NodeId(2)) > 0 && counters.forwarded_to(NodeId(3)) > 0);
    assert!(counters.local > 0);
    assert_eq!(counters.dropped(DropReason::NoNode), 0);
    assert_eq!(counters.send_errors, 0);
    assert!(
        counters.forwarded_total() + counters.local <= inbound,
        "only VIP frames reached user space"
    );

    // Restore: the scheduler removed its nft table (or detached its XDP program) and put
    // arp_ignore back; now the nodes.
    assert!(
        !lab.status().iter().any(|h| h.scheduler),
        "scheduler table removed on stop"
    );
    assert!(!xdp_attached(&lab), "the XDP program is detached on stop");
    if xdp {
        // `auto` falls back to AF_PACKET when XDP cannot take the configuration (more
        // services than the program checks), and says why.
        let mut auto = SchedulerConfig::new(LAN_IFACE, vip, NodeId(1), entries.clone());
        auto.data_plane = DataPlaneChoice::Auto;
        auto.services = (1000..1017)
            .map(|p| (pentaflow_packet::L4Proto::Tcp, p))
            .collect();
        let fallback = lab
            .run_in("node1", || spawn_scheduler(auto))
            .unwrap()
            .expect("auto falls back");
        let report = fallback.data_plane().clone();
        fallback.stop().expect("stop");
        assert_eq!(report.kind, DataPlaneKind::AfPacket, "{report:?}");
        assert!(report.reason.contains("XDP unavailable"), "{report:?}");
        assert!(
            !xdp_attached(&lab),
            "nothing left attached by the failed XDP try"
        );
    }
    for (name, guard) in guards {
        let errors = lab.run_in(&name, move || guard.restore()).unwrap();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let arp = lab
            .run_in(&name, || read_sysctl("net.ipv4.conf.eth0.arp_ignore"))
            .unwrap()
            .unwrap();
        assert_eq!(arp, "0", "{name}: arp_ignore restored");
    }
    let netns: Vec<String> = lab.state().hosts.iter().map(|h| h.netns.clone()).collect();
    lab.down().expect("lab down");
    for mut s in servers {
        s.wait().unwrap(); // killed by the teardown; reap it
    }
    for ns in netns {
        assert!(
            !std::path::Path::new("/run/netns").join(&ns).exists(),
            "{ns} removed"
        );
    }
}

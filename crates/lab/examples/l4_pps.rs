//! Packets per second through the L4 scheduler vs. the kernel forwarding the same packets on
//! the same topology, in one run (issue 4, item 8). Needs root.
//!
//! ```text
//! cargo run --release -p pentaflow-lab --example l4_pps -- [seconds per mode, default 3]
//! ```
//!
//! A UDP generator in `client1` sends 64-byte frames from many source ports through the
//! router to node1, which passes them on to node2/node3 — either as the pentaflow scheduler
//! (AF_PACKET, MAC rewrite; node1 has weight 0 so every frame is forwarded) or as a plain
//! kernel router (IP forwarding of a routed prefix). nftables counters at the ingress of
//! node2/node3 count what arrived. On a shared 2-core machine the generator, the router and
//! node1 compete for the same cores, so compare the rows, not absolute numbers.
//!
//! A third row runs the XDP data plane (`data_plane = "xdp"`: the C program, generic mode on
//! the lab's veth) on the same traffic; with `kernel.bpf_stats_enabled` on for the run, the
//! kernel's own run-time accounting gives the program's nanoseconds per packet. Every row
//! also shows the whole machine's busy CPU-seconds (generator included), since an XDP
//! program's work runs in softirq context and belongs to no thread.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pentaflow_balance::NodeId;
use pentaflow_lab::{Lab, LabSpec, LAN_IFACE};
use pentaflow_packet::{
    prepare_node, spawn_scheduler, DataPlaneChoice, L4Proto, MacAddr, NodeEntry, SchedulerConfig,
};

/// The UDP port the generator targets (discard).
const PORT: u16 = 9;
/// Source sockets: flows spread over the bucket table.
const SOURCES: usize = 64;
/// A routed prefix for the kernel-forwarding run: router → node1 → node2.
const ROUTED_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 9, 9);
/// UDP payload giving a 64-byte Ethernet frame (14 + 20 + 8 + 18 + 4 FCS).
const PAYLOAD: [u8; 18] = [0x5a; 18];

fn sh(lab: &Lab, host: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = lab.command(host, args).expect("host");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{args:?} in {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends for `secs` seconds to `dst`, round-robin over the source sockets; returns frames sent.
fn generate(dst: SocketAddr, secs: f64) -> u64 {
    let socks: Vec<UdpSocket> = (0..SOURCES)
        .map(|_| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            s.connect(dst).expect("connect");
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        for s in &socks {
            for _ in 0..16 {
                if s.send(&PAYLOAD).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    sent
}

/// Frames counted at node2 + node3 ingress.
fn delivered(lab: &Lab) -> u64 {
    ["node2", "node3"]
        .iter()
        .map(|n| {
            let text = sh(lab, n, &["nft", "list", "table", "netdev", "pfpps"], None);
            text.split("packets ")
                .skip(1)
                .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Busy CPU-seconds of the whole machine so far (all of /proc/stat's `cpu` line but idle and
/// iowait).
fn machine_busy_secs() -> f64 {
    /// Clock ticks per second of /proc/stat (USER_HZ).
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    (total - idle) / USER_HZ
}

/// `(run_time_ns, run_cnt)` of the loaded `pf_scheduler` programs, from bpftool (needs
/// `kernel.bpf_stats_enabled=1` to be non-zero).
fn program_stats() -> (u64, u64) {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output();
    let Ok(out) = out else {
        eprintln!("bpftool not found (apt-get install bpftool): no per-packet program time");
        return (0, 0);
    };
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    progs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "pf_scheduler")
        .fold((0, 0), |(t, c), p| {
            (
                t + p["run_time_ns"].as_u64().unwrap_or(0),
                c + p["run_cnt"].as_u64().unwrap_or(0),
            )
        })
}

/// CPU seconds used so far by this process's thread named `name` (utime + stime).
fn thread_cpu_secs(name: &str) -> f64 {
    /// Clock ticks per second of /proc stat fields (USER_HZ, 100 on Linux).
    const USER_HZ: f64 = 100.0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|stat| stat.contains(&format!("({name})")))
        .map(|stat| {
            let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
            let f: Vec<&str> = after.split_whitespace().collect();
            // Fields after "comm)": state is [0], utime is [11], stime is [12].
            let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (tick(11) + tick(12)) / USER_HZ
        })
        .sum()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3.0);
    if !pentaflow_lab::is_root() {
        eprintln!("l4_pps needs root (network namespaces)");
        return;
    }
    let lab = Lab::up(LabSpec {
        nodes: 3,
        webs: 0,
        clients: 1,
    })
    .expect("lab up");
    let vip = lab.state().vip;
    // Receivers: count and drop the test traffic at ingress (no ICMP port-unreachable storm).
    // Only frames addressed to the node's own MAC count: the bridge floods frames for a MAC
    // it has not learnt (receivers never send here), and those must not count twice.
    for n in ["node2", "node3"] {
        let mac = lab
            .state()
            .host(n)
            .and_then(|h| h.mac.clone())
            .expect("mac");
        let rules = format!(
            "table netdev pfpps {{\n\
             chain count {{\n\
             type filter hook ingress device \"{LAN_IFACE}\" priority -400; policy accept;\n\
             ether daddr {mac} ip daddr {{ {vip}, {ROUTED_IP} }} udp dport {PORT} counter drop\n\
             }}\n\
             }}\n"
        );
        sh(&lab, n, &["nft", "-f", "-"], Some(&rules));
    }
    // Kernel path: router → node1 → node2 by plain IP forwarding.
    sh(
        &lab,
        "router",
        &["ip", "route", "add", "10.77.9.0/24", "via", "10.77.1.11"],
        None,
    );
    sh(
        &lab,
        "node1",
        &["ip", "route", "add", "10.77.9.0/24", "via", "10.77.1.12"],
        None,
    );
    for kv in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.send_redirects=0",
        "net.ipv4.conf.eth0.send_redirects=0",
    ] {
        sh(&lab, "node1", &["sysctl", "-q", "-w", kv], None);
    }
    let mut rows = Vec::new();

    // Rule counters only grow (`nft reset` covers named counters only): measure deltas.
    let before = delivered(&lab);
    let busy = machine_busy_secs();
    let sent = lab
        .run_in("client1", || {
            generate(SocketAddr::from((ROUTED_IP, PORT)), secs)
        })
        .expect("client");
    std::thread::sleep(Duration::from_millis(300));
    rows.push((
        "kernel IP forwarding (node1)",
        sent,
        delivered(&lab) - before,
        machine_busy_secs() - busy,
    ));

    // Scheduler path. node1 has weight 0: it forwards everything, serves nothing.
    let guards: Vec<_> = ["node2", "node3"]
        .iter()
        .map(|n| {
            lab.run_in(n, || prepare_node(LAN_IFACE, vip))
                .expect("enter")
                .expect("prepare")
        })
        .collect();
    let nodes: Vec<NodeEntry> = (1..=3u16)
        .map(|i| {
            let host = lab.state().host(&format!("node{i}")).expect("node");
            NodeEntry {
                id: NodeId(i),
                mac: host
                    .mac
                    .as_deref()
                    .unwrap_or_default()
                    .parse::<MacAddr>()
                    .expect("mac"),
                weight: u32::from(i != 1),
                enabled: true,
                alive: true,
            }
        })
        .collect();
    let mut cfg = SchedulerConfig::new(LAN_IFACE, vip, NodeId(1), nodes);
    cfg.services = vec![(L4Proto::Udp, PORT)];
    let xdp_cfg = SchedulerConfig {
        data_plane: DataPlaneChoice::Xdp,
        ..cfg.clone()
    };
    let scheduler = lab
        .run_in("node1", || spawn_scheduler(cfg))
        .expect("enter")
        .expect("scheduler");
    let before = delivered(&lab);
    let busy = machine_busy_secs();
    let cpu_before = thread_cpu_secs("pf-scheduler");
    let sent = lab
        .run_in("client1", || generate(SocketAddr::from((vip, PORT)), secs))
        .expect("client");
    std::thread::sleep(Duration::from_millis(300));
    let cpu = thread_cpu_secs("pf-scheduler") - cpu_before;
    let counters = scheduler.stop().expect("stop");
    rows.push((
        "pentaflow scheduler (AF_PACKET)",
        sent,
        delivered(&lab) - before,
        machine_busy_secs() - busy,
    ));

    // The XDP data plane on the same traffic, with the kernel's program run-time accounting.
    let stats_was = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .unwrap_or_else(|_| "0".into());
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    let xdp = lab
        .run_in("node1", || spawn_scheduler(xdp_cfg))
        .expect("enter")
        .expect("XDP scheduler");
    let plane = xdp.data_plane().clone();
    let (t0, c0) = program_stats();
    let before = delivered(&lab);
    let busy = machine_busy_secs();
    let sent = lab
        .run_in("client1", || generate(SocketAddr::from((vip, PORT)), secs))
        .expect("client");
    std::thread::sleep(Duration::from_millis(300));
    let xdp_busy = machine_busy_secs() - busy;
    let (t1, c1) = program_stats();
    let xdp_counters = xdp.stop().expect("stop XDP");
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", stats_was.trim());
    rows.push((
        "pentaflow scheduler (XDP generic)",
        sent,
        delivered(&lab) - before,
        xdp_busy,
    ));

    println!(
        "{:<34} {:>12} {:>12} {:>10} {:>8} {:>10} {:>14}",
        "path", "sent pps", "fwd pps", "fwd", "loss", "busy CPU-s", "fwd/busy CPU-s"
    );
    for (name, sent, got, busy) in &rows {
        let loss = 100.0 * (1.0 - *got as f64 / (*sent).max(1) as f64);
        println!(
            "{name:<34} {:>12.0} {:>12.0} {got:>10} {loss:>7.1}% {busy:>10.2} {:>14.0}",
            *sent as f64 / secs,
            *got as f64 / secs,
            *got as f64 / busy.max(0.01)
        );
    }
    let runs = c1.saturating_sub(c0);
    println!(
        "XDP program ({} — {}): {runs} runs, {:.0} ns per packet in the program; forwarded \
         {}, dropped {}",
        plane.kind.as_str(),
        plane.reason,
        t1.saturating_sub(t0) as f64 / runs.max(1) as f64,
        xdp_counters.forwarded_total(),
        xdp_counters.dropped_total()
    );
    let forwarded = counters.forwarded_total() as f64;
    println!(
        "scheduler thread: {cpu:.2} CPU-s for {forwarded} frames = {:.0} frames per CPU-second \
         (send path includes veth + bridge + receiver ingress)",
        forwarded / cpu.max(0.01)
    );
    println!(
        "scheduler counters: forwarded {:?}, local {}, dropped {}, send errors {}",
        counters.forwarded,
        counters.local,
        counters.dropped_total(),
        counters.send_errors
    );
    for (n, g) in ["node2", "node3"].iter().zip(guards) {
        let _ = lab.run_in(n, move || g.restore());
    }
    lab.down().expect("down");
}

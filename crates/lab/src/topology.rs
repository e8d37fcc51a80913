//! The address plan, building it with `ip`, and tearing it down.
//!
//! Owns: names, addresses and MACs of every host, the order of `ip` commands, the web
//! servers, and the kill-then-delete teardown. Must not create anything outside the lab's
//! namespaces: every `ip` call runs with `-n <lab namespace>` or creates a namespace.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::{self, ip, sysctl};
use crate::{
    Host, LabError, LabSpec, LabState, Role, LAN_IFACE, MAX_CLIENTS, MAX_NODES, MAX_WEBS, VIP,
    WEB_PORT,
};

/// Processes get this long to exit on SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long `up` waits for a web server to accept connections.
const WEB_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The router's address on the array LAN (the nodes' default gateway).
const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// The router's address on the client subnet (the clients' default gateway).
const ROUTER_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);

/// A minimal keep-alive HTTP/1.1 server answering `<name> <path>` to every GET and
/// `<name> <path> <bytes received>` to every POST: a real server for the lab, with no
/// dependency beyond python3.
const RESPONDER: &str = r#"
import http.server, sys
name, bind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle holds the body until the
    # proxy's delayed ACK (40 ms per keep-alive request).
    disable_nagle_algorithm = True
    def do_GET(self):
        body = ("%s %s\n" % (name, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = 0
        while got < n:
            chunk = self.rfile.read(min(65536, n - got))
            if not chunk:
                break
            got += len(chunk)
        body = ("%s %s %d\n" % (name, self.path, got)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer.request_queue_size = 1024
http.server.ThreadingHTTPServer((bind, port), H).serve_forever()
"#;

/// The argument vector of the lab's HTTP responder: answers `<name> <path>` on `bind:port`.
/// Run it in a host with [`crate::Lab::spawn`].
pub fn responder_command(name: &str, bind: Ipv4Addr, port: u16) -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        RESPONDER.into(),
        name.into(),
        bind.to_string(),
        port.to_string(),
    ]
}

pub(crate) fn validate(spec: &LabSpec) -> Result<(), LabError> {
    let bad = |reason: String| Err(LabError::BadSpec { reason });
    if !(1..=MAX_NODES).contains(&spec.nodes) {
        return bad(format!("nodes must be 1..={MAX_NODES}, got {}", spec.nodes));
    }
    if spec.webs > MAX_WEBS {
        return bad(format!("webs must be 0..={MAX_WEBS}, got {}", spec.webs));
    }
    if !(1..=MAX_CLIENTS).contains(&spec.clients) {
        return bad(format!(
            "clients must be 1..={MAX_CLIENTS}, got {}",
            spec.clients
        ));
    }
    Ok(())
}

/// `pf` + 4 hex digits, not used by any namespace yet. Mixes the pid (two processes) with a
/// clock reading and a counter (two labs in one process).
pub(crate) fn fresh_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = std::process::id()
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(nanos)
        .wrapping_add(
            COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x85EB_CA6B),
        );
    loop {
        let prefix = format!("pf{:04x}", x & 0xFFFF);
        let taken = std::path::Path::new("/run/netns")
            .join(format!("{prefix}-switch"))
            .exists()
            || crate::state_path(&prefix).exists();
        if !taken {
            return prefix;
        }
        x = x.wrapping_mul(0x2545_F491).wrapping_add(1);
    }
}

fn host(
    prefix: &str,
    name: String,
    role: Role,
    ip: Option<Ipv4Addr>,
    iface: &str,
    mac: Option<String>,
) -> Host {
    Host {
        netns: format!("{prefix}-{name}"),
        name,
        role,
        ip,
        iface: iface.into(),
        mac,
    }
}

/// The whole address plan of a lab (nothing is created).
pub(crate) fn plan(prefix: &str, spec: LabSpec, owner_pid: u32) -> LabState {
    let mut hosts = vec![
        host(prefix, "switch".into(), Role::Switch, None, "br0", None),
        host(
            prefix,
            "router".into(),
            Role::Router,
            Some(ROUTER_LAN_IP),
            "lan0",
            Some("02:77:01:00:02:01".into()),
        ),
    ];
    for i in 1..=spec.nodes {
        let ip = Ipv4Addr::new(10, 77, 1, 10 + i as u8);
        hosts.push(host(
            prefix,
            format!("node{i}"),
            Role::Node,
            Some(ip),
            LAN_IFACE,
            Some(format!("02:77:01:00:00:{i:02x}")),
        ));
    }
    for j in 1..=spec.webs {
        let ip = Ipv4Addr::new(10, 77, 1, 100 + j as u8);
        hosts.push(host(
            prefix,
            format!("web{j}"),
            Role::Web,
            Some(ip),
            LAN_IFACE,
            Some(format!("02:77:01:00:01:{j:02x}")),
        ));
    }
    for k in 1..=spec.clients {
        let ip = Ipv4Addr::new(10, 77, 2, 10 + k as u8);
        hosts.push(host(
            prefix,
            format!("client{k}"),
            Role::Client,
            Some(ip),
            LAN_IFACE,
            Some(format!("02:77:02:00:00:{k:02x}")),
        ));
    }
    LabState {
        prefix: prefix.into(),
        spec,
        vip: VIP,
        hosts,
        owner_pid,
        processes: Vec::new(),
    }
}

/// Creates namespaces, links, addresses and routes, then starts and waits for the web servers.
pub(crate) fn build(state: &LabState) -> Result<Vec<Child>, LabError> {
    for h in &state.hosts {
        ip(None, &["netns", "add", &h.netns])?;
        ip(Some(&h.netns), &["link", "set", "lo", "up"])?;
        // Quiet links: no IPv6 router solicitations or DAD in captures and counters.
        sysctl(&h.netns, "net.ipv6.conf.all.disable_ipv6", "1")?;
        sysctl(&h.netns, "net.ipv6.conf.default.disable_ipv6", "1")?;
    }
    let switch = ns_of(state, "switch")?;
    let router = ns_of(state, "router")?;
    bridge(&switch, "br0")?;
    bridge(&router, "cbr0")?;
    sysctl(&router, "net.ipv4.ip_forward", "1")?;
    ip(
        Some(&router),
        &[
            "addr",
            "add",
            &format!("{ROUTER_CLIENT_IP}/24"),
            "dev",
            "cbr0",
        ],
    )?;
    for h in &state.hosts {
        let (bridge_ns, bridge_name, port) = match h.role {
            Role::Switch => continue,
            Role::Router => (&switch, "br0", "router".to_owned()),
            Role::Node | Role::Web => (&switch, "br0", h.name.clone()),
            Role::Client => (&router, "cbr0", h.name.clone()),
        };
        ip(
            Some(bridge_ns),
            &[
                "link", "add", &port, "type", "veth", "peer", "name", &h.iface, "netns", &h.netns,
            ],
        )?;
        ip(
            Some(bridge_ns),
            &["link", "set", &port, "master", bridge_name, "up"],
        )?;
        if let Some(mac) = &h.mac {
            ip(Some(&h.netns), &["link", "set", &h.iface, "address", mac])?;
        }
        ip(Some(&h.netns), &["link", "set", &h.iface, "up"])?;
        if let Some(addr) = h.ip {
            ip(
                Some(&h.netns),
                &["addr", "add", &format!("{addr}/24"), "dev", &h.iface],
            )?;
        }
        match h.role {
            Role::Node | Role::Web => {
                ip(
                    Some(&h.netns),
                    &["route", "add", "default", "via", &ROUTER_LAN_IP.to_string()],
                )?;
            }
            Role::Client => {
                ip(
                    Some(&h.netns),
                    &[
                        "route",
                        "add",
                        "default",
                        "via",
                        &ROUTER_CLIENT_IP.to_string(),
                    ],
                )?;
            }
            _ => {}
        }
    }
    let mut children = Vec::new();
    for h in state.hosts.iter().filter(|h| h.role == Role::Web) {
        let Some(addr) = h.ip else { continue };
        let args = responder_command(&h.name, addr, WEB_PORT);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut full = vec!["netns", "exec", &h.netns];
        full.extend(argv);
        // Never the caller's stdout/stderr: `pentaflow lab up` exits while the servers run,
        // and a reader of its output (a test) must see EOF then.
        let log = state.dir().join(format!("{}.log", h.name));
        let stderr = std::fs::File::create(&log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Command::new("ip")
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: "python3 responder".into(),
                source,
            })?;
        children.push(child);
    }
    for h in state.hosts.iter().filter(|h| h.role == Role::Web) {
        let Some(addr) = h.ip else { continue };
        wait_listening(
            &h.netns,
            SocketAddr::from((addr, WEB_PORT)),
            WEB_READY_TIMEOUT,
        )?;
    }
    Ok(children)
}

fn ns_of(state: &LabState, name: &str) -> Result<String, LabError> {
    state
        .host(name)
        .map(|h| h.netns.clone())
        .ok_or_else(|| LabError::NoSuchHost {
            prefix: state.prefix.clone(),
            host: name.into(),
        })
}

fn bridge(netns: &str, name: &str) -> Result<(), LabError> {
    ip(
        Some(netns),
        &["link", "add", name, "type", "bridge", "stp_state", "0"],
    )?;
    ip(Some(netns), &["link", "set", name, "up"]).map(drop)
}

/// Waits until `addr` accepts TCP connections from inside `netns`.
pub fn wait_listening(netns: &str, addr: SocketAddr, timeout: Duration) -> Result<(), LabError> {
    let ok = cmd::in_netns(netns, || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })?;
    if ok {
        Ok(())
    } else {
        Err(LabError::Netns {
            netns: netns.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing listens on {addr}"),
            ),
        })
    }
}

/// PIDs of the processes in a namespace (never our own).
pub(crate) fn netns_pids(netns: &str) -> Vec<u32> {
    let me = std::process::id();
    cmd::output("ip", &["netns", "pids", netns])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|&p| p != me)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a pentaflow scheduler runs in `netns`: its nftables table exists (the AF_PACKET
/// data plane) or an XDP program is attached to the LAN interface (the XDP data plane).
pub(crate) fn has_scheduler(netns: &str) -> bool {
    let nft = cmd::output("ip", &["netns", "exec", netns, "nft", "list", "tables"])
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("pentaflow_"))
        .unwrap_or(false);
    nft || cmd::output(
        "ip",
        &["-n", netns, "-d", "link", "show", "dev", crate::LAN_IFACE],
    )
    .map(|o| String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
    .unwrap_or(false)
}

fn signal_all(pids: &[u32], sig: Signal) {
    for &p in pids {
        if let Ok(raw) = i32::try_from(p) {
            let _ = kill(Pid::from_raw(raw), sig);
        }
    }
}

/// Kills every process of every namespace of the lab (TERM, then KILL), deletes the
/// namespaces and the state file. Namespaces already gone are fine.
pub(crate) fn teardown(state: &LabState) -> Result<(), LabError> {
    let existing: Vec<&Host> = state
        .hosts
        .iter()
        .filter(|h| std::path::Path::new("/run/netns").join(&h.netns).exists())
        .collect();
    let pids: Vec<u32> = existing.iter().flat_map(|h| netns_pids(&h.netns)).collect();
    signal_all(&pids, Signal::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    loop {
        let left: Vec<u32> = existing.iter().flat_map(|h| netns_pids(&h.netns)).collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            signal_all(&left, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut first_err = None;
    for h in existing {
        if let Err(e) = ip(None, &["netns", "del", &h.netns]) {
            first_err.get_or_insert(e);
        }
    }
    let _ = std::fs::remove_file(state.path());
    let _ = std::fs::remove_dir_all(state.dir());
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_addresses_and_macs() {
        let s = plan(
            "pf00ab",
            LabSpec {
                nodes: 3,
                webs: 2,
                clients: 2,
            },
            1,
        );
        assert_eq!(s.hosts.len(), 2 + 3 + 2 + 2);
        let n2 = s.host("node2").unwrap();
        assert_eq!(n2.netns, "pf00ab-node2");
        assert_eq!(n2.ip, Some(Ipv4Addr::new(10, 77, 1, 12)));
        assert_eq!(n2.mac.as_deref(), Some("02:77:01:00:00:02"));
        assert_eq!(
            s.host("web2").unwrap().ip,
            Some(Ipv4Addr::new(10, 77, 1, 102))
        );
        assert_eq!(
            s.host("client1").unwrap().ip,
            Some(Ipv4Addr::new(10, 77, 2, 11))
        );
        let mut ips: Vec<_> = s.hosts.iter().filter_map(|h| h.ip).collect();
        ips.push(VIP);
        let n = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), n, "addresses are unique and avoid the VIP");
        assert!(s
            .hosts
            .iter()
            .all(|h| h.ip.is_none_or(|ip| ip.octets()[..2] == [10, 77])));
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        let s = plan(
            "pfffff",
            LabSpec {
                nodes: MAX_NODES,
                webs: MAX_WEBS,
                clients: MAX_CLIENTS,
            },
            1,
        );
        for h in &s.hosts {
            assert!(h.iface.len() <= 15 && h.name.len() <= 15, "{h:?}");
        }
    }

    #[test]
    fn specs_outside_the_plan_are_refused() {
        assert!(validate(&LabSpec {
            nodes: 0,
            webs: 1,
            clients: 1
        })
        .is_err());
        assert!(validate(&LabSpec {
            nodes: MAX_NODES + 1,
            webs: 1,
            clients: 1
        })
        .is_err());
        assert!(validate(&LabSpec {
            nodes: 1,
            webs: MAX_WEBS + 1,
            clients: 1
        })
        .is_err());
        assert!(validate(&LabSpec {
            nodes: 1,
            webs: 0,
            clients: 0
        })
        .is_err());
        assert!(validate(&LabSpec {
            nodes: 3,
            webs: 3,
            clients: 1
        })
        .is_ok());
    }

    #[test]
    fn prefixes_are_short_and_distinct() {
        let a = fresh_prefix();
        let b = fresh_prefix();
        assert_eq!(a.len(), 6);
        assert!(a.starts_with("pf"));
        assert_ne!(a, b);
    }
}

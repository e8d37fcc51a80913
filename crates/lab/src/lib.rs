//! pentaflow-lab: a whole array on one machine, in network namespaces.
//!
//! ```text
//!  client1..K ──(cbr0 in router ns)── router ──(br0 in lan ns)── node1..N, web1..M
//!  10.77.2.0/24                         .1 / .1                 10.77.1.0/24, VIP 10.77.1.10
//! ```
//!
//! Owns: creating the namespaces, veth pairs and bridges of one lab under a unique prefix,
//! starting the web servers, running commands or closures inside a host, recording the
//! long-running processes started in it ([`Lab::spawn_logged`], logs in the lab's directory
//! [`LabState::dir`]), reporting status, and tearing everything down — on [`Lab::down`], on
//! drop (also during a panic), or from another process through the state file under
//! [`STATE_DIR`]; before any of that, what the machine must have ([`Preflight`]), and the logs
//! of a lab that failed to come up ([`LabState::keep_logs`]).
//!
//! Must not: touch the host's own network. Every address lives inside namespaces this lab
//! created; even the bridges live in a namespace of their own, so no interface, route or
//! address is added to the caller's namespace. It does not configure pentaflow itself (VIP
//! on lo, the scheduler): that is pentaflow's job, so the lab tests exercise it.

#![forbid(unsafe_code)]

mod cmd;
mod kept_logs;
mod preflight;
#[cfg(feature = "test-support")]
pub mod test_support;
mod topology;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde::{Deserialize, Serialize};

pub use cmd::in_netns;
pub use kept_logs::{tail, KEPT_LOGS_DIR};
pub use preflight::{install_missing, Preflight, Requirement, REQUIREMENTS};
pub use topology::{responder_command, wait_listening};

/// Directory of the state files that let `lab down`/`exec`/`status` find a lab.
pub const STATE_DIR: &str = "/run/pentaflow-lab";
/// The VIP of every lab (private, and only inside the lab's namespaces).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 10);
/// Port of the lab's web servers.
pub const WEB_PORT: u16 = 8080;
/// Name of the array-facing interface inside node and web namespaces.
pub const LAN_IFACE: &str = "eth0";
/// Most nodes a lab builds (node addresses are 10.77.1.11 ..= .99).
pub const MAX_NODES: usize = 89;
/// Most web servers (10.77.1.101 ..= .250).
pub const MAX_WEBS: usize = 150;
/// Most clients (10.77.2.11 ..= .250).
pub const MAX_CLIENTS: usize = 240;

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// Array nodes (`node1`..).
    pub nodes: usize,
    /// Web servers (`web1`..), each running a small HTTP server on [`WEB_PORT`].
    pub webs: usize,
    /// Client namespaces (`client1`..) behind the router.
    pub clients: usize,
}

/// The role of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// A client, on the client subnet.
    Client,
    /// The router between the client subnet and the array LAN.
    Router,
    /// An array node.
    Node,
    /// A back-end web server.
    Web,
    /// The namespace holding the array's bridge (no address).
    Switch,
}

/// One host of the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Short name (`client1`, `router`, `node2`, `web3`, `switch`).
    pub name: String,
    /// The network namespace (`<prefix>-<name>`).
    pub netns: String,
    /// Its role.
    pub role: Role,
    /// Its address (`None` for the switch).
    pub ip: Option<Ipv4Addr>,
    /// Its main interface (`eth0`; `lan0` for the router's LAN side).
    pub iface: String,
    /// MAC address of that interface (fixed, so configs can name it).
    pub mac: Option<String>,
}

/// Everything known about a lab, saved as JSON under [`STATE_DIR`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The unique prefix of every namespace (`pf` + 4 hex digits).
    pub prefix: String,
    /// What was built.
    pub spec: LabSpec,
    /// The VIP.
    pub vip: Ipv4Addr,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// PID of the process that built it.
    pub owner_pid: u32,
    /// Long-running processes started in the lab (web servers, pentaflow nodes), so that
    /// `status` can show them and `down` can stop them first. Older state files lack it.
    #[serde(default)]
    pub processes: Vec<LabProcess>,
}

/// A long-running process started in one of the lab's hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabProcess {
    /// The host it runs in.
    pub host: String,
    /// Its PID (of `ip netns exec`, which execs the command: the same process).
    pub pid: u32,
    /// What it is, e.g. `web server` or `pentaflow serve`.
    pub what: String,
    /// Where its stdout and stderr go, if captured.
    pub log: Option<PathBuf>,
}

/// Status of one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host.
    pub host: Host,
    /// Its namespace exists.
    pub up: bool,
    /// Processes running in it.
    pub pids: Vec<u32>,
    /// A pentaflow scheduler has its nftables table there (nodes only).
    pub scheduler: bool,
}

/// What can go wrong in the lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Not root: namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN.
    #[error("the lab needs root (namespaces, veth, bridges)")]
    NotRoot,
    /// The spec is outside the lab's address plan.
    #[error("invalid lab spec: {reason}")]
    BadSpec {
        /// What is wrong.
        reason: String,
    },
    /// A command could not start.
    #[error("could not run `{command}` (see scripts/install-lab-deps.sh)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("entering network namespace {netns}")]
    Netns {
        /// The namespace.
        netns: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No host of that name.
    #[error("lab {prefix} has no host {host:?}")]
    NoSuchHost {
        /// The lab.
        prefix: String,
        /// The name asked for.
        host: String,
    },
    /// The state file could not be read or written.
    #[error("lab state file {path}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A lab that exists; dropping it tears it down unless [`Lab::detach`] was called.
#[derive(Debug)]
pub struct Lab {
    state: LabState,
    /// Tear down on drop.
    owned: bool,
    /// Processes this value started (the web servers), waited for after teardown kills them.
    children: Vec<Child>,
}

impl LabState {
    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The hosts of a role, in order.
    pub fn hosts_of(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    /// Path of this lab's state file.
    pub fn path(&self) -> PathBuf {
        state_path(&self.prefix)
    }

    /// This lab's own directory under [`STATE_DIR`] (generated configs, logs); created by
    /// [`Lab::up`] and removed with the lab.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(STATE_DIR).join(&self.prefix)
    }
}

fn state_path(prefix: &str) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{prefix}.json"))
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The environment variable that turns a root-only test's skip into a failure (CI sets it:
/// a test that passes without having run is a defect).
pub const REQUIRE_ROOT_VAR: &str = "PENTAFLOW_REQUIRE_ROOT";

/// For a root-only test named `test`: true when it may run (root). Otherwise it says loudly
/// that it is skipped and why, and returns false — unless `PENTAFLOW_REQUIRE_ROOT=1`, where it
/// panics, so the skip fails the run instead of passing it.
///
/// # Panics
/// When not root and `PENTAFLOW_REQUIRE_ROOT` is `1`.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = "needs root (network namespaces, AF_PACKET, nftables)";
    assert!(
        !root_required(std::env::var(REQUIRE_ROOT_VAR).ok().as_deref()),
        "{test} {why}, and {REQUIRE_ROOT_VAR}=1: a skipped test is not a pass"
    );
    eprintln!("SKIPPED {test}: {why} (set {REQUIRE_ROOT_VAR}=1 to fail instead)");
    false
}

/// Whether the value of [`REQUIRE_ROOT_VAR`] asks for root (`1`, `true` or `yes`).
fn root_required(value: Option<&str>) -> bool {
    matches!(value.map(str::trim), Some("1" | "true" | "yes"))
}

/// Prefixes of the labs that have a state file.
pub fn list_labs() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    out.sort();
    out
}

impl LabState {
    /// A human-readable summary for `pentaflow lab up`: prefix, VIP and one line per host.
    pub fn summary(&self) -> String {
        let mut out = format!("lab {} (VIP {})\n", self.prefix, self.vip);
        for h in &self.hosts {
            let ip = h.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
            let mac = h.mac.as_deref().unwrap_or("-");
            // `{:?}` of a derived enum ignores the width: render it first.
            let role = format!("{:?}", h.role);
            out.push_str(&format!(
                "  {:<9} {:<7} {:<12} {:<17} {}\n",
                h.name, role, ip, mac, h.netns
            ));
        }
        out
    }
}

/// A human-readable table of [`Lab::status`] for `pentaflow lab status`.
pub fn render_status(status: &[HostStatus]) -> String {
    let mut out = String::from("  host      role    address      up   procs  scheduler\n");
    for s in status {
        let ip = s
            .host
            .ip
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        out.push_str(&format!(
            "  {:<9} {:<7} {:<12} {:<4} {:<6} {}\n",
            s.host.name,
            format!("{:?}", s.host.role),
            ip,
            if s.up { "yes" } else { "NO" },
            s.pids.len(),
            if s.scheduler { "yes" } else { "" },
        ));
    }
    out
}

impl Lab {
    /// Builds a lab; on any failure everything made so far is removed again.
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        topology::validate(&spec)?;
        let prefix = topology::fresh_prefix();
        let state = topology::plan(&prefix, spec, std::process::id());
        // Owned from the start: a failure (or panic) part-way tears down what exists.
        let mut lab = Lab {
            state,
            owned: true,
            children: Vec::new(),
        };
        lab.save()?;
        let dir = lab.state.dir();
        std::fs::create_dir_all(&dir).map_err(|source| LabError::State {
            path: dir.clone(),
            source,
        })?;
        lab.children = topology::build(&lab.state)?;
        let webs: Vec<String> = lab
            .state
            .hosts_of(Role::Web)
            .map(|h| h.name.clone())
            .collect();
        for (child, host) in lab.children.iter().zip(webs) {
            let log = Some(dir.join(format!("{host}.log")));
            lab.state.processes.push(LabProcess {
                host,
                pid: child.id(),
                what: "web server".into(),
                log,
            });
        }
        lab.save()?;
        Ok(lab)
    }

    /// Opens an existing lab from its state file, without owning it (dropping it leaves the
    /// lab up; call [`Lab::down`] to remove it).
    pub fn open(prefix: &str) -> Result<Lab, LabError> {
        let path = state_path(prefix);
        let text = std::fs::read_to_string(&path).map_err(|source| LabError::State {
            path: path.clone(),
            source,
        })?;
        let state = serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        Ok(Lab {
            state,
            owned: false,
            children: Vec::new(),
        })
    }

    /// Keeps the lab up after this value is dropped (for `pentaflow lab up`). Its processes
    /// keep running; the lab's teardown finds them by namespace.
    pub fn detach(mut self) -> LabState {
        self.owned = false;
        // Dropping a `Child` neither kills nor waits: the processes outlive this value.
        self.children.clear();
        self.state.clone()
    }

    /// The lab's addressing and hosts.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The host called `name`, or an error naming the lab.
    pub fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.state.host(name).ok_or_else(|| LabError::NoSuchHost {
            prefix: self.state.prefix.clone(),
            host: name.to_owned(),
        })
    }

    /// Runs `args` inside host `host` and waits for it (any exit status is returned).
    pub fn exec(&self, host: &str, args: &[&str]) -> Result<Output, LabError> {
        self.command(host, args)?
            .stdin(Stdio::null())
            .output()
            .map_err(|source| LabError::Spawn {
                command: args.join(" "),
                source,
            })
    }

    /// Starts `args` inside host `host` (stdin null, stdout/stderr inherited). The process is
    /// killed at teardown like every other process of the namespace.
    pub fn spawn(&self, host: &str, args: &[&str]) -> Result<Child, LabError> {
        self.command(host, args)?
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: args.join(" "),
                source,
            })
    }

    /// Starts `args` inside host `host` as a long-running process of the lab: stdin null,
    /// stdout and stderr appended to `log`, recorded in the state file (see
    /// [`LabState::processes`]) as `what`. Returns its PID; it is not a child this value waits
    /// for, so it survives [`Lab::detach`] and the exit of this process, and teardown kills it.
    pub fn spawn_logged(
        &mut self,
        host: &str,
        args: &[&str],
        what: &str,
        log: &Path,
    ) -> Result<u32, LabError> {
        let state_err = |source| LabError::State {
            path: log.to_owned(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(state_err)?;
        let err = out.try_clone().map_err(state_err)?;
        let child = self
            .command(host, args)?
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Spawn {
                command: args.join(" "),
                source,
            })?;
        let pid = child.id();
        self.state.processes.push(LabProcess {
            host: host.to_owned(),
            pid,
            what: what.to_owned(),
            log: Some(log.to_owned()),
        });
        self.children.push(child);
        self.save()?;
        Ok(pid)
    }

    /// A `Command` that runs `args` inside host `host` via `ip netns exec`, to adjust stdio.
    pub fn command(&self, host: &str, args: &[&str]) -> Result<Command, LabError> {
        let netns = self.host(host)?.netns.clone();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &netns]).args(args);
        Ok(c)
    }

    /// Runs `f` on a thread inside host `host`'s network namespace (see [`in_netns`]).
    pub fn run_in<T: Send>(&self, host: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        cmd::in_netns(&self.host(host)?.netns, f)
    }

    /// Per-host status: namespace present, processes, scheduler role.
    pub fn status(&self) -> Vec<HostStatus> {
        self.state
            .hosts
            .iter()
            .map(|h| {
                let up = PathBuf::from("/run/netns").join(&h.netns).exists();
                let pids = if up {
                    topology::netns_pids(&h.netns)
                } else {
                    Vec::new()
                };
                // A killed scheduler leaves its table behind: only a running node counts.
                let scheduler = up
                    && h.role == Role::Node
                    && !pids.is_empty()
                    && topology::has_scheduler(&h.netns);
                HostStatus {
                    host: h.clone(),
                    up,
                    pids,
                    scheduler,
                }
            })
            .collect()
    }

    /// Tears the lab down: kills its processes, deletes its namespaces (and with them every
    /// veth and bridge), removes the state file. Idempotent.
    pub fn down(mut self) -> Result<(), LabError> {
        self.owned = false;
        let r = topology::teardown(&self.state);
        self.reap();
        r
    }

    /// Waits for the processes this value started; teardown has killed them.
    fn reap(&mut self) {
        for mut c in self.children.drain(..) {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    fn save(&self) -> Result<(), LabError> {
        let path = self.state.path();
        let io = |source| LabError::State {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(STATE_DIR).map_err(io)?;
        let text = serde_json::to_string_pretty(&self.state)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        std::fs::write(&path, text).map_err(io)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = topology::teardown(&self.state) {
                tracing::warn!(prefix = %self.state.prefix, error = %e, "lab teardown");
            }
            self.reap();
        }
    }
}

#[cfg(test)]
mod require_root_tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_requires_root() {
        for yes in ["1", "true", "yes", " 1\n"] {
            assert!(root_required(Some(yes)), "{yes:?}");
        }
        for no in [None, Some(""), Some("0"), Some("no")] {
            assert!(!root_required(no), "{no:?}");
        }
    }

    #[test]
    fn as_root_a_root_only_test_runs() {
        // Whoever runs this: root may always run it; a non-root run without the variable
        // skips (and must not panic).
        if is_root() || std::env::var(REQUIRE_ROOT_VAR).is_err() {
            assert_eq!(require_root("this test"), is_root());
        }
    }
}

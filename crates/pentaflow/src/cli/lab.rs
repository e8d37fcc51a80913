//! `pentaflow lab up|down|exec|status|kill|start|add-node`: a working array in network
//! namespaces (root).
//!
//! `up` asks the lab crate for the namespaces and web servers, writes one array
//! configuration for the lab (under the lab's state directory: a cluster key, an admin token,
//! node1 the preferred scheduler), starts `pentaflow serve --node-id N` in every node
//! namespace but the `--spare` ones, and returns once a client request through the VIP has
//! been answered. `kill` SIGKILLs a node's pentaflow (a crash), `start` starts it again,
//! `add-node` starts the next spare node; `status` adds each running node's role as its admin
//! API reports it. The lab crate owns namespaces, processes and teardown; this module only
//! decides what pentaflow runs in it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use pentaflow_lab::{Lab, LabSpec, LabState, Role, LAN_IFACE, WEB_PORT};

/// The preferred scheduler of a lab: it wins the first election (priority 200); any other
/// node takes over when it fails.
const LAB_SCHEDULER: u16 = 1;
/// Cluster timers of the lab: the defaults (50 ms heartbeat, failed after 200 ms), written out
/// so the generated file shows what the tests and benchmarks ran with.
const LAB_CLUSTER: &str = "heartbeat = \"50ms\"\ndead_after = \"200ms\"\n";
/// The HTTP port the lab's array serves on the VIP.
const LAB_HTTP_PORT: u16 = 80;
/// Each node's admin API, on its own loopback (every node has its own namespace).
const LAB_ADMIN: &str = "127.0.0.1:9090";
/// How long `up` waits for the array to answer through the VIP: node start-up is a few
/// hundred milliseconds; the rest is slack for a loaded CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `lab` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
    /// Build a lab and start a working array in it; prints the VIP, the hosts and a command
    /// to try. The lab stays up until `pentaflow lab down`.
    Up {
        /// Array nodes (node1 is the scheduler).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Web servers behind the array.
        #[arg(long, default_value_t = 3)]
        webs: usize,
        /// Client namespaces.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Nodes of the array (counted in --nodes, the last ones) that are configured but not
        /// started: `lab add-node` starts them, to watch a node join under load.
        #[arg(long, default_value_t = 0)]
        spare: usize,
        /// Install what the lab needs and is missing (iproute2, nftables, procps, python3)
        /// with apt-get before building it.
        #[arg(long)]
        install_deps: bool,
        /// The scheduler's data plane, written as `[array] data_plane` into the lab's
        /// config: `af_packet`, `xdp` (generic mode on the lab's veth) or `auto`.
        #[arg(long, default_value = "af_packet", value_parser = ["af_packet", "xdp", "auto"])]
        data_plane: String,
    },
    /// SIGKILL a node's pentaflow (a crash: nothing is restored), e.g. `lab kill node1`.
    Kill {
        /// The lab (needed only when several labs are up).
        #[arg(long)]
        lab: Option<String>,
        /// The node: node1, node2, ...
        node: String,
    },
    /// Start a node's pentaflow again (after `lab kill` or a SIGTERM).
    Start {
        /// The lab (needed only when several labs are up).
        #[arg(long)]
        lab: Option<String>,
        /// The node: node1, node2, ...
        node: String,
    },
    /// Start the next spare node (see `lab up --spare`): it joins the array under load and
    /// gets only idle buckets.
    AddNode {
        /// The lab (needed only when several labs are up).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Tear a lab down (every lab when no prefix is given): kill its processes, delete its
    /// namespaces and state.
    Down {
        /// The lab's prefix, as printed by `lab up` (e.g. pf1a2b).
        prefix: Option<String>,
    },
    /// Run a command inside a host of a lab, e.g. `lab exec client1 -- curl -s http://10.77.1.10/`.
    Exec {
        /// The lab (needed only when several labs are up).
        #[arg(long)]
        lab: Option<String>,
        /// The host: client1.., node1.., web1.., router, switch.
        host: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the hosts of a lab (every lab when no prefix is given) and which node is the
    /// scheduler.
    Status {
        /// The lab's prefix.
        prefix: Option<String>,
    },
}

/// Runs one `lab` verb.
pub(crate) fn run(command: LabCommand) -> anyhow::Result<ExitCode> {
    match command {
        LabCommand::Up {
            nodes,
            webs,
            clients,
            spare,
            install_deps,
            data_plane,
        } => up(
            LabSpec {
                nodes,
                webs,
                clients,
            },
            spare,
            install_deps,
            &data_plane,
        ),
        LabCommand::Kill { lab, node } => kill(lab, &node),
        LabCommand::Start { lab, node } => start(lab, &node),
        LabCommand::AddNode { lab } => add_node(lab),
        LabCommand::Down { prefix } => down(prefix),
        LabCommand::Exec { lab, host, command } => exec(lab, &host, &command),
        LabCommand::Status { prefix } => status(prefix),
    }
}

fn up(
    spec: LabSpec,
    spare: usize,
    install_deps: bool,
    data_plane: &str,
) -> anyhow::Result<ExitCode> {
    if spec.webs == 0 {
        bail!("the array needs at least one web server (--webs 1 or more)");
    }
    if spare >= spec.nodes {
        bail!(
            "--spare {spare} leaves no node to start (--nodes {})",
            spec.nodes
        );
    }
    // Before anything is built: root, the tools, the state directory (or install them).
    let mut check = pentaflow_lab::Preflight::check();
    if !check.is_ok() && install_deps {
        check = pentaflow_lab::install_missing(&check).context("lab up --install-deps")?;
    }
    if !check.is_ok() {
        bail!(
            "lab up: this machine cannot run the lab yet:\n{}",
            check.report().trim_end()
        );
    }
    let exe = std::env::current_exe().context("cannot find the pentaflow binary")?;
    let exe = exe.to_string_lossy().into_owned();
    let started = Instant::now();
    // Owned until detached: any failure below tears the lab down again, so the logs are
    // copied out first and the failing one quoted.
    let mut lab = Lab::up(spec).context("cannot build the lab")?;
    let mut nodes = Vec::new();
    if let Err(e) = start_array(&mut lab, &exe, spec, spare, data_plane, &mut nodes) {
        return Err(with_kept_logs(lab.state(), &nodes, e));
    }
    let took = started.elapsed();
    let state = lab.detach();
    let config = state.dir().join("array.toml");
    print!("{}", state.summary());
    println!(
        "array up in {:.1} s: node1 is the preferred scheduler (the nodes elect another if it \
         fails); every node serves http://{}:{LAB_HTTP_PORT}/",
        took.as_secs_f64(),
        state.vip
    );
    println!("  config: {}  (logs beside it)", config.display());
    println!(
        "  try:    pentaflow lab exec client1 -- curl -s http://{}/",
        state.vip
    );
    println!("  status: pentaflow lab status {}", state.prefix);
    println!("  down:   pentaflow lab down {}", state.prefix);
    Ok(ExitCode::SUCCESS)
}

/// Lines of a failing node's log quoted in the error of a failed `lab up`.
const TAIL_LINES: usize = 20;

/// The error of a failed `lab up`, with where its logs are kept (the teardown removes the
/// lab's directory) and the last lines of the log of each node that exited — or of every
/// started node when none did (the array did not answer).
fn with_kept_logs(
    state: &LabState,
    nodes: &[(String, u32, std::path::PathBuf)],
    error: anyhow::Error,
) -> anyhow::Error {
    let kept = state.keep_logs();
    let (kept, kept_dir) = match kept {
        Ok(dir) => (format!("logs kept in {}", dir.display()), Some(dir)),
        Err(e) => (format!("the logs could not be kept: {e}"), None),
    };
    let exited: Vec<_> = nodes.iter().filter(|(_, pid, _)| !alive(*pid)).collect();
    let quoted = if exited.is_empty() {
        nodes.iter().collect()
    } else {
        exited
    };
    let mut text = format!("{error:#}\n{kept}");
    for (name, _, log) in quoted {
        // Name the copy: the lab's own directory goes with the teardown.
        let shown = match (&kept_dir, log.file_name()) {
            (Some(dir), Some(file)) => dir.join(file),
            _ => log.clone(),
        };
        let _ = write!(
            text,
            "\n--- last lines of {name}'s log ({}) ---\n{}",
            shown.display(),
            pentaflow_lab::tail(log, TAIL_LINES)
        );
    }
    anyhow::anyhow!(text)
}

/// Writes the lab's configuration and starts the nodes (all but the spare ones), recording
/// each in `nodes`, then waits until the array answers through the VIP.
fn start_array(
    lab: &mut Lab,
    exe: &str,
    spec: LabSpec,
    spare: usize,
    data_plane: &str,
    nodes: &mut Vec<(String, u32, std::path::PathBuf)>,
) -> anyhow::Result<()> {
    let state = lab.state().clone();
    write_notify_script(&state.dir())?;
    let config_path = state.dir().join("array.toml");
    let mut config = array_config(&state);
    if data_plane != "af_packet" {
        config = config.replacen(
            "\n[array]\n",
            &format!("\n[array]\ndata_plane = \"{data_plane}\"\n"),
            1,
        );
    }
    std::fs::write(&config_path, config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let to_start: Vec<String> = state
        .hosts_of(Role::Node)
        .take(spec.nodes - spare)
        .map(|h| h.name.clone())
        .collect();
    for name in to_start {
        let (pid, log) = spawn_node(lab, exe, &name)?;
        nodes.push((name, pid, log));
    }
    wait_ready(lab, nodes)
}

/// Starts `pentaflow serve` for node host `name` (`nodeN` is node id N) with the lab's
/// config; its log is appended to `<name>.log` beside the config.
fn spawn_node(lab: &mut Lab, exe: &str, name: &str) -> anyhow::Result<(u32, std::path::PathBuf)> {
    let state = lab.state();
    let index = state
        .hosts_of(Role::Node)
        .position(|h| h.name == name)
        .with_context(|| format!("{name} is not a node of lab {}", state.prefix))?;
    let id = (index + 1).to_string();
    let config = state.dir().join("array.toml");
    let config = config.to_string_lossy().into_owned();
    let log = state.dir().join(format!("{name}.log"));
    // `env` execs, so the recorded PID is pentaflow's; NO_COLOR keeps the log plain text.
    let args = [
        "env",
        "NO_COLOR=1",
        exe,
        "serve",
        "--config",
        &config,
        "--node-id",
        &id,
    ];
    let pid = lab.spawn_logged(name, &args, "pentaflow serve", &log)?;
    Ok((pid, log))
}

/// The running pentaflow of host `name`, if any.
fn running_node(lab: &Lab, name: &str) -> Option<u32> {
    lab.state()
        .processes
        .iter()
        .filter(|p| p.host == name && p.what == "pentaflow serve")
        .map(|p| p.pid)
        .find(|pid| alive(*pid))
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn kill(prefix: Option<String>, node: &str) -> anyhow::Result<ExitCode> {
    let lab = pick(prefix)?;
    lab.host(node)?;
    let Some(pid) = running_node(&lab, node) else {
        bail!("no pentaflow runs on {node}");
    };
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -KILL {pid} failed");
    }
    println!("{node}: pentaflow (pid {pid}) killed");
    Ok(ExitCode::SUCCESS)
}

fn start(prefix: Option<String>, node: &str) -> anyhow::Result<ExitCode> {
    let mut lab = pick(prefix)?;
    if let Some(pid) = running_node(&lab, node) {
        bail!("pentaflow already runs on {node} (pid {pid})");
    }
    let exe = std::env::current_exe().context("cannot find the pentaflow binary")?;
    let (pid, log) = spawn_node(&mut lab, &exe.to_string_lossy(), node)?;
    println!(
        "{node}: pentaflow started (pid {pid}, log {})",
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn add_node(prefix: Option<String>) -> anyhow::Result<ExitCode> {
    let lab = pick(prefix)?;
    let never_started = lab
        .state()
        .hosts_of(Role::Node)
        .map(|h| h.name.clone())
        .find(|name| {
            !lab.state()
                .processes
                .iter()
                .any(|p| &p.host == name && p.what == "pentaflow serve")
        });
    let Some(node) = never_started else {
        bail!("every node of the lab has been started (make spare ones with `lab up --spare N`)");
    };
    start(Some(lab.state().prefix.clone()), &node)
}

/// Waits until every node's proxy listens and a client request through the VIP is
/// answered; fails early, with the node's log, if a node exits.
fn wait_ready(lab: &Lab, nodes: &[(String, u32, std::path::PathBuf)]) -> anyhow::Result<()> {
    let vip = SocketAddr::from((lab.state().vip, LAB_HTTP_PORT));
    let deadline = Instant::now() + READY_TIMEOUT;
    let client = lab
        .state()
        .hosts_of(Role::Client)
        .next()
        .map(|h| h.name.clone())
        .context("the lab has no client")?;
    loop {
        for (name, pid, log) in nodes {
            // Not `/proc/PID` exists: a node that exited stays a zombie until the lab reaps it.
            if !alive(*pid) {
                bail!(
                    "pentaflow on {name} exited during start-up (log {})",
                    log.display()
                );
            }
        }
        let answered = lab.run_in(&client, || probe(vip))?;
        // An answer alone is not an array: a node's kernel can answer the VIP for a moment
        // while its scheduler's data plane fails to start; every node must follow one
        // scheduler whose data plane is up.
        let why = match (answered, array_up(lab, nodes)?) {
            (true, Ok(())) => return Ok(()),
            (true, Err(why)) => why,
            (false, Ok(())) => format!("no answer through the VIP {vip}"),
            (false, Err(why)) => format!("no answer through the VIP {vip}; {why}"),
        };
        if Instant::now() >= deadline {
            bail!("the array is not up within {READY_TIMEOUT:?}: {why}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether every started node reports (its `/cluster`) the same scheduler and that node's
/// data plane is up; otherwise what is wrong, node by node, with each data plane's last
/// failure and its cause.
fn array_up(
    lab: &Lab,
    nodes: &[(String, u32, std::path::PathBuf)],
) -> anyhow::Result<Result<(), String>> {
    let admin: SocketAddr = LAB_ADMIN.parse()?;
    let token = lab_admin_token(&lab.state().prefix);
    let mut schedulers = std::collections::BTreeSet::new();
    let mut up = None;
    let mut problems = Vec::new();
    for (name, _, _) in nodes {
        let doc = lab.run_in(name, || super::cluster_status::fetch(admin, Some(&token)))?;
        let doc = match doc {
            Ok(d) if !d.is_null() => d,
            Ok(_) => {
                problems.push(format!("{name}: not in a cluster"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{name}: admin API: {e:#}"));
                continue;
            }
        };
        let doc: pentaflow_admin::ClusterDocument = match serde_json::from_value(doc) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{name}: unexpected /cluster document: {e}"));
                continue;
            }
        };
        schedulers.insert(doc.scheduler);
        let Some(plane) = &doc.data_plane else {
            problems.push(format!(
                "{name}: /cluster has no data_plane (an older build?)"
            ));
            continue;
        };
        if doc.role == "scheduler" && plane.state == "up" {
            up = doc.node;
        }
        if let Some(f) = &plane.last_failure {
            problems.push(format!(
                "{name}: its scheduler data plane failed {} time(s), last: {}",
                plane.failures, f.cause
            ));
        }
    }
    if let (Some(id), 1) = (up, schedulers.len()) {
        if schedulers.contains(&Some(id)) {
            return Ok(Ok(()));
        }
    }
    if problems.is_empty() {
        problems.push(format!(
            "no node runs the scheduler's data plane yet (schedulers seen: {schedulers:?})"
        ));
    }
    Ok(Err(problems.join("; ")))
}

/// One `GET /` to `vip` answered with 200.
fn probe(vip: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&vip, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let request = b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    s.write_all(request).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// The lab's `[array] notify` script (beside the configuration): every node appends its
/// events to `notify.log` there, so a failover can be followed (and tested) from outside.
const LAB_NOTIFY: &str = "notify.sh";

/// Writes [`LAB_NOTIFY`] into the lab's state directory `dir`.
fn write_notify_script(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(LAB_NOTIFY);
    let script = "#!/bin/sh
# pentaflow lab: one line per event: time, event, node, detail.
                  echo \"$(date +%s.%N) $*\" >> \"$(dirname \"$0\")/notify.log\"\n";
    std::fs::write(&path, script)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The admin token of lab `prefix` (in its generated configuration; root on this machine is
/// the lab's only operator, so it is no secret beyond that).
pub(crate) fn lab_admin_token(prefix: &str) -> String {
    format!("pentaflow lab {prefix} admin token")
}

/// The one configuration every node of the lab gets: a service on VIP:80 in front of every
/// web server, and the `[array]` of all nodes with node 1 the scheduler.
pub(crate) fn array_config(state: &LabState) -> String {
    let mut out = format!(
        "# Generated by `pentaflow lab up` for lab {prefix}; each node runs\n\
         # `pentaflow serve --config <this file> --node-id N`.\n\n\
         [node]\n\
         admin = \"{LAB_ADMIN}\"\n\
         access_log = false\n\
         shutdown_grace = \"1s\"\n\n\
         [[service]]\n\
         name = \"web\"\n\
         listen = [\"{vip}:{LAB_HTTP_PORT}\"]\n",
        prefix = state.prefix,
        vip = state.vip,
    );
    for web in state.hosts_of(Role::Web) {
        let ip = web.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let _ = write!(
            out,
            "\n[[service.backend]]\nname = \"{}\"\naddress = \"{ip}:{WEB_PORT}\"\n",
            web.name
        );
    }
    // The cluster key and admin token only have to be shared by the lab's nodes and its
    // operator (root on this machine); they are no secret beyond them.
    let _ = write!(
        out,
        "\n[array]\nvip = \"{}\"\ninterface = \"{LAN_IFACE}\"\nscheduler = {LAB_SCHEDULER}\n\
         key = \"pentaflow lab {prefix} cluster key\"\n\
         admin_token = \"{token}\"\nnotify = \"{LAB_NOTIFY}\"\n{LAB_CLUSTER}",
        state.vip,
        prefix = state.prefix,
        token = lab_admin_token(&state.prefix),
    );
    for (i, node) in state.hosts_of(Role::Node).enumerate() {
        let ip = node.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mac = node.mac.as_deref().unwrap_or_default();
        let _ = write!(
            out,
            "\n[[array.node]]\nid = {}\naddress = \"{ip}\"\nmac = \"{mac}\"\n",
            i + 1
        );
    }
    out
}

fn down(prefix: Option<String>) -> anyhow::Result<ExitCode> {
    let prefixes = match prefix {
        Some(p) => vec![p],
        None => pentaflow_lab::list_labs(),
    };
    if prefixes.is_empty() {
        println!("no lab is up");
    }
    for p in prefixes {
        let lab = Lab::open(&p).with_context(|| format!("no lab {p}"))?;
        lab.down()
            .with_context(|| format!("tearing down lab {p}"))?;
        println!("lab {p} removed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The lab named, or the only one up.
fn pick(prefix: Option<String>) -> anyhow::Result<Lab> {
    let prefix = match prefix {
        Some(p) => p,
        None => {
            let labs = pentaflow_lab::list_labs();
            match labs.as_slice() {
                [only] => only.clone(),
                [] => bail!("no lab is up (pentaflow lab up)"),
                _ => bail!(
                    "several labs are up ({}): name one with --lab",
                    labs.join(", ")
                ),
            }
        }
    };
    Lab::open(&prefix).with_context(|| format!("no lab {prefix}"))
}

fn exec(prefix: Option<String>, host: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let lab = pick(prefix)?;
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let status = lab
        .command(host, &args)?
        .status()
        .with_context(|| format!("cannot run {command:?} in {host}"))?;
    // The command's own exit code, so `lab exec` composes in scripts.
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(ExitCode::from(code))
}

fn status(prefix: Option<String>) -> anyhow::Result<ExitCode> {
    let labs = match prefix {
        Some(p) => vec![Lab::open(&p).with_context(|| format!("no lab {p}"))?],
        None => pentaflow_lab::list_labs()
            .iter()
            .filter_map(|p| Lab::open(p).ok())
            .collect(),
    };
    if labs.is_empty() {
        println!("no lab is up");
    }
    for lab in labs {
        let state = lab.state();
        println!("lab {} (VIP {})", state.prefix, state.vip);
        print!("{}", pentaflow_lab::render_status(&lab.status()));
        // Roles as each running node reports them (its admin API, on its own loopback).
        let admin: SocketAddr = LAB_ADMIN.parse()?;
        for host in state.hosts_of(Role::Node) {
            if running_node(&lab, &host.name).is_none() {
                println!("  {:<9} down", host.name);
                continue;
            }
            let token = lab_admin_token(&lab.state().prefix);
            let doc = lab.run_in(&host.name, || {
                super::cluster_status::fetch(admin, Some(&token))
            })?;
            match doc {
                Ok(d) if !d.is_null() => println!(
                    "  {:<9} {:<10} scheduler {} table v{} config v{}",
                    host.name,
                    d["role"].as_str().unwrap_or("-"),
                    d["scheduler"],
                    d["buckets"]["version"],
                    d["config_version"]
                ),
                Ok(_) => println!("  {:<9} not in a cluster", host.name),
                Err(e) => println!("  {:<9} no answer: {e:#}", host.name),
            }
        }
        for p in &state.processes {
            let log = p
                .log
                .as_ref()
                .map_or_else(String::new, |l| format!("  log {}", l.display()));
            println!("  {:<9} pid {:<7} {}{log}", p.host, p.pid, p.what);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn state() -> LabState {
        let text = r#"{"prefix":"pf00ab","spec":{"nodes":2,"webs":2,"clients":1},"vip":"10.77.1.10",
          "hosts":[
            {"name":"node1","netns":"pf00ab-node1","role":"node","ip":"10.77.1.11","iface":"eth0","mac":"02:77:01:00:00:01"},
            {"name":"node2","netns":"pf00ab-node2","role":"node","ip":"10.77.1.12","iface":"eth0","mac":"02:77:01:00:00:02"},
            {"name":"web1","netns":"pf00ab-web1","role":"web","ip":"10.77.1.101","iface":"eth0","mac":"02:77:01:00:01:01"},
            {"name":"web2","netns":"pf00ab-web2","role":"web","ip":"10.77.1.102","iface":"eth0","mac":"02:77:01:00:01:02"}],
          "owner_pid":1}"#;
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn generated_config_is_a_valid_array() {
        // As `lab up` writes it: the file and the notify script in one directory.
        let dir = std::env::temp_dir().join(format!("pf-lab-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_notify_script(&dir).unwrap();
        let text = array_config(&state());
        let path = dir.join("array.toml");
        std::fs::write(&path, &text).unwrap();
        let config = pentaflow_config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            config
                .array
                .as_ref()
                .unwrap()
                .cluster
                .as_ref()
                .unwrap()
                .notify,
            Some(path.with_file_name(LAB_NOTIFY))
        );
        let array = config.array.unwrap();
        assert_eq!(array.vip, Ipv4Addr::new(10, 77, 1, 10));
        assert_eq!(array.ports, vec![80]);
        assert_eq!(array.scheduler, 1);
        assert_eq!(
            array.nodes[0].priority, 200,
            "node1 is the preferred scheduler"
        );
        let cluster = array.cluster.as_ref().unwrap();
        assert!(
            cluster.admin_token.is_some(),
            "operator actions work in the lab"
        );
        assert_eq!(array.nodes.len(), 2);
        assert_eq!(array.self_node(Some(2)).unwrap().mac, [2, 0x77, 1, 0, 0, 2]);
        let backends: Vec<String> = config.services[0]
            .backends
            .iter()
            .map(|b| b.address.to_string())
            .collect();
        assert_eq!(backends, ["10.77.1.101:8080", "10.77.1.102:8080"]);
        assert_eq!(config.node.admin.unwrap().to_string(), LAB_ADMIN);
    }
}

//! Kernel set-up for the VIP and the scheduler role, and its exact undo.
//!
//! Owns: the VIP on `lo`, the ARP sysctls (`arp_ignore`/`arp_announce`), `rp_filter` for the
//! local-delivery TAP, and the nftables netdev-ingress rule that keeps the scheduler's own
//! stack off VIP frames (the packet socket still gets its copy: taps run before ingress).
//! Every change is recorded in a [`KernelGuard`] and undone in reverse order, only if this
//! process made it. Must not touch anything but the interfaces it is given.
//!
//! Sysctls are written through `/proc/sys` directly. Addresses and nftables are changed by
//! running `ip` and `nft`: this happens once per role change, never on the data path; the
//! commands are exactly what an operator would type (and are logged), and they avoid
//! hand-writing netlink messages for nf_tables, which no well-kept Rust crate covers.
//!
//! Everything acts in the network namespace of the calling thread (child processes and
//! `/proc/sys/net` follow the thread). A guard remembers that namespace and refuses to undo
//! from another one rather than change the wrong namespace.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Linux capability number of CAP_NET_ADMIN (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
/// Linux capability number of CAP_NET_RAW (linux/capability.h).
const CAP_NET_RAW: u32 = 13;
/// Priority of the ingress drop chain: well before any other netdev ingress chain.
const NFT_INGRESS_PRIORITY: i32 = -500;

/// What can go wrong while changing kernel settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The process lacks a capability (run as root, or grant CAP_NET_ADMIN and CAP_NET_RAW).
    #[error("the scheduler needs root or CAP_NET_ADMIN and CAP_NET_RAW; missing {missing}")]
    NotPermitted {
        /// The missing capability.
        missing: &'static str,
    },
    /// A command could not be started (not installed?).
    #[error(
        "could not run `{command}`: is `{program}` installed? (Debian/Ubuntu: `apt-get install {package}`; scripts/install-lab-deps.sh installs every tool the lab needs)"
    )]
    Spawn {
        /// The command line.
        command: String,
        /// The program.
        program: String,
        /// The Debian package that provides it.
        package: &'static str,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A sysctl could not be read or written.
    #[error("sysctl {key}")]
    Sysctl {
        /// The sysctl key (dotted).
        key: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A system call on an interface failed.
    #[error("{what} on interface {interface}")]
    Interface {
        /// What was being done.
        what: &'static str,
        /// The interface.
        interface: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
}

/// One change to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Undo {
    /// Write back the old value of a sysctl.
    Sysctl { key: String, old: String },
    /// Remove an address this guard added to `lo`.
    LoAddress { vip: Ipv4Addr },
    /// Delete an nftables table this guard created.
    NftTable { family: &'static str, name: String },
}

/// The kernel changes made so far; undone in reverse order by [`KernelGuard::restore`] or on
/// drop.
#[derive(Debug, Default)]
#[must_use = "dropping the guard undoes the kernel changes at once"]
pub struct KernelGuard {
    undo: Vec<Undo>,
    netns: Option<String>,
}

/// Fails with [`SetupError::NotPermitted`] unless the effective capability set holds
/// CAP_NET_ADMIN and CAP_NET_RAW (read from `/proc/self/status`).
pub fn check_privileges() -> Result<(), SetupError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    missing_capability(&status).map_or(Ok(()), |missing| Err(SetupError::NotPermitted { missing }))
}

/// The first capability the scheduler needs that a `/proc/<pid>/status` text lacks.
fn missing_capability(status: &str) -> Option<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ]
    .into_iter()
    .find(|(bit, _)| eff & (1 << bit) == 0)
    .map(|(_, name)| name)
}

/// Runs a command, failing with its stderr.
/// The Debian package providing each program the set-up runs.
fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        "ip" | "tc" => "iproute2",
        "sysctl" => "procps",
        _ => "the package providing it",
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, SetupError> {
    let command = format!("{program} {}", args.join(" "));
    tracing::debug!(%command, "kernel set-up");
    let spawn_err = |source| SetupError::Spawn {
        command: command.clone(),
        program: program.to_owned(),
        package: package_of(program),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(SetupError::Command {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Reads a sysctl by dotted key (interface names with dots are not supported).
pub fn read_sysctl(key: &str) -> Result<String, SetupError> {
    std::fs::read_to_string(sysctl_path(key))
        .map(|s| s.trim().to_owned())
        .map_err(|source| SetupError::Sysctl {
            key: key.to_owned(),
            source,
        })
}

fn write_sysctl(key: &str, value: &str) -> Result<(), SetupError> {
    std::fs::write(sysctl_path(key), value).map_err(|source| SetupError::Sysctl {
        key: key.to_owned(),
        source,
    })
}

/// The calling thread's network namespace, as `net:[inode]`.
fn current_netns() -> Option<String> {
    std::fs::read_link("/proc/thread-self/ns/net")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl KernelGuard {
    /// An empty guard bound to the calling thread's network namespace.
    pub fn new() -> Self {
        KernelGuard {
            undo: Vec::new(),
            netns: current_netns(),
        }
    }

    /// Sets a sysctl, remembering the old value if it changes.
    pub fn set_sysctl(&mut self, key: &str, value: &str) -> Result<(), SetupError> {
        let old = read_sysctl(key)?;
        if old != value {
            write_sysctl(key, value)?;
            self.undo.push(Undo::Sysctl {
                key: key.to_owned(),
                old,
            });
        }
        Ok(())
    }

    /// Puts `vip/32` on `lo` unless it is there already.
    pub fn add_vip_to_lo(&mut self, vip: Ipv4Addr) -> Result<(), SetupError> {
        let present = run("ip", &["-4", "-o", "addr", "show", "dev", "lo"], None)?;
        let needle = format!(" {vip}/32 ");
        if !present.contains(&needle) {
            let cidr = format!("{vip}/32");
            run("ip", &["addr", "add", &cidr, "dev", "lo"], None)?;
            self.undo.push(Undo::LoAddress { vip });
        }
        Ok(())
    }

    /// Installs the netdev ingress chain that drops IPv4 to the VIP on `lan` (ARP passes, so
    /// the kernel keeps answering ARP for the VIP). Replaces a stale table of the same name.
    pub fn drop_vip_ingress(&mut self, lan: &str, vip: Ipv4Addr) -> Result<(), SetupError> {
        let name = nft_table_name(lan);
        let _ = run("nft", &["delete", "table", "netdev", &name], None);
        let rules = format!(
            "table netdev {name} {{\n\
             \tchain vip_ingress {{\n\
             \t\ttype filter hook ingress device \"{lan}\" priority {NFT_INGRESS_PRIORITY}; policy accept;\n\
             \t\tip daddr {vip} counter drop\n\
             \t}}\n\
             }}\n"
        );
        run("nft", &["-f", "-"], Some(&rules))?;
        self.undo.push(Undo::NftTable {
            family: "netdev",
            name,
        });
        Ok(())
    }

    /// Brings interface `name` up.
    pub fn link_up(&mut self, name: &str) -> Result<(), SetupError> {
        run("ip", &["link", "set", "dev", name, "up"], None).map(drop)
    }

    /// Adds the changes of `other` after this guard's (they are undone first).
    pub fn absorb(&mut self, mut other: KernelGuard) {
        self.undo.append(&mut other.undo);
    }

    /// Undoes every change, newest first. Errors are returned, not fatal: the rest is still
    /// undone. From another network namespace nothing is touched.
    pub fn restore(mut self) -> Vec<SetupError> {
        self.restore_in_place()
    }

    fn restore_in_place(&mut self) -> Vec<SetupError> {
        let mut errors = Vec::new();
        if self.undo.is_empty() {
            return errors;
        }
        if current_netns() != self.netns {
            tracing::warn!(
                made_in = ?self.netns,
                "kernel guard dropped in another network namespace; leaving its changes alone"
            );
            self.undo.clear();
            return errors;
        }
        while let Some(u) = self.undo.pop() {
            let r = match &u {
                Undo::Sysctl { key, old } => write_sysctl(key, old),
                Undo::LoAddress { vip } => {
                    let cidr = format!("{vip}/32");
                    run("ip", &["addr", "del", &cidr, "dev", "lo"], None).map(drop)
                }
                Undo::NftTable { family, name } => {
                    run("nft", &["delete", "table", family, name], None).map(drop)
                }
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "undoing a kernel change failed");
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        let _ = self.restore_in_place();
    }
}

/// Name of the nftables table of the scheduler on `lan`.
pub fn nft_table_name(lan: &str) -> String {
    let safe: String = lan
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("pentaflow_{safe}")
}

/// Prepares any node (scheduler or not) to accept VIP traffic without answering ARP for it:
/// VIP on `lo`, `arp_ignore=1` and `arp_announce=2` on `lan` (LVS-DR "real server" set-up).
pub fn prepare_node(lan: &str, vip: Ipv4Addr) -> Result<KernelGuard, SetupError> {
    check_privileges()?;
    // A scheduler killed before it could restore leaves its ingress drop behind, which would
    // make this node (now a standby) drop every frame forwarded to it. Its sysctls are
    // overwritten below; the TAP died with its process.
    let _ = run(
        "nft",
        &["delete", "table", "netdev", &nft_table_name(lan)],
        None,
    );
    // Likewise its XDP program, which outlives a crash on purpose (crate::xdp): a standby
    // must not forward the frames the new scheduler sends it.
    let _ = crate::xdp::remove_leftover(lan);
    let mut g = KernelGuard::new();
    g.set_sysctl(&format!("net.ipv4.conf.{lan}.arp_ignore"), "1")?;
    g.set_sysctl(&format!("net.ipv4.conf.{lan}.arp_announce"), "2")?;
    g.add_vip_to_lo(vip)?;
    Ok(g)
}

/// Prepares the scheduler role on `lan` (before the data plane opens): VIP on `lo`, and the
/// kernel answers ARP for it (`arp_ignore=0` on `lan` and `all`, since the kernel uses the
/// larger of the two).
pub fn prepare_scheduler(lan: &str, vip: Ipv4Addr) -> Result<KernelGuard, SetupError> {
    check_privileges()?;
    let mut g = KernelGuard::new();
    g.add_vip_to_lo(vip)?;
    g.set_sysctl("net.ipv4.conf.all.arp_ignore", "0")?;
    g.set_sysctl(&format!("net.ipv4.conf.{lan}.arp_ignore"), "0")?;
    Ok(g)
}

/// Makes the local-delivery TAP usable (after it exists): up, no IPv6 chatter, and
/// `rp_filter` off for it and `all` — frames from clients arrive on the TAP while the route
/// back to them is via `lan`, which strict reverse-path filtering would drop.
pub fn prepare_tap(tap: &str) -> Result<KernelGuard, SetupError> {
    let mut g = KernelGuard::new();
    let _ = g.set_sysctl(&format!("net.ipv6.conf.{tap}.disable_ipv6"), "1");
    g.set_sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    g.set_sysctl(&format!("net.ipv4.conf.{tap}.rp_filter"), "0")?;
    g.link_up(tap)?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_names_are_safe() {
        assert_eq!(nft_table_name("eth0"), "pentaflow_eth0");
        assert_eq!(nft_table_name("a-b.c"), "pentaflow_a_b_c");
    }

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.rp_filter"),
            "/proc/sys/net/ipv4/conf/all/rp_filter"
        );
    }

    #[test]
    fn capabilities_are_read_from_status() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert_eq!(missing_capability(root), None);
        let user = "CapEff:\t0000000000000000\n";
        assert_eq!(missing_capability(user), Some("CAP_NET_ADMIN"));
        let admin_only = "CapEff:\t0000000000001000\n";
        assert_eq!(missing_capability(admin_only), Some("CAP_NET_RAW"));
        assert_eq!(missing_capability(""), Some("CAP_NET_ADMIN"));
        let msg = SetupError::NotPermitted {
            missing: "CAP_NET_RAW",
        }
        .to_string();
        assert!(msg.contains("root") && msg.contains("CAP_NET_RAW"), "{msg}");
    }

    #[test]
    fn an_empty_guard_restores_nothing() {
        assert!(KernelGuard::new().restore().is_empty());
    }
}

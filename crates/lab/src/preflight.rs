//! What a lab needs from this machine, checked before anything is built: root, the tools the
//! lab and pentaflow's array nodes run (`ip`, `nft`, `sysctl`, `python3`), each named with
//! the Debian package that provides it, and a writable state directory. With
//! [`install_missing`], the missing packages are installed with `apt-get`.
//!
//! Owns: the list of requirements and the operator's message. Must not: build or change
//! anything of a lab; the check itself only reads (`PATH`, the effective uid, the state
//! directory), so a failed check leaves nothing behind. [`Preflight::check_with`] is pure, so
//! the message is tested without a machine that lacks the tools.

use std::path::{Path, PathBuf};

use crate::cmd;
use crate::{LabError, STATE_DIR};

/// A command the lab runs, and where it comes from on Debian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The command looked up in `PATH`.
    pub tool: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
    /// What it is needed for, in a few words.
    pub why: &'static str,
}

/// Everything the lab and its array nodes run.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        tool: "ip",
        package: "iproute2",
        why: "namespaces, veth pairs, bridges, the VIP",
    },
    Requirement {
        tool: "nft",
        package: "nftables",
        why: "the scheduler's ingress rule on every array node",
    },
    Requirement {
        tool: "sysctl",
        package: "procps",
        why: "forwarding and ARP settings inside the namespaces",
    },
    Requirement {
        tool: "python3",
        package: "python3",
        why: "the lab's web servers",
    },
];

/// The outcome of the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// Whether the process runs as root.
    pub root: bool,
    /// The requirements not found in `PATH`.
    pub missing: Vec<Requirement>,
    /// Why the state directory cannot be used, if it cannot.
    pub state_dir: Option<String>,
}

impl Preflight {
    /// Checks this machine: the effective uid, `PATH`, and [`STATE_DIR`].
    pub fn check() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        let mut check = Self::check_with(crate::is_root(), |tool| {
            dirs.iter().any(|d| is_executable(&d.join(tool)))
        });
        check.state_dir = state_dir_problem(Path::new(STATE_DIR));
        check
    }

    /// The check with the uid and the `PATH` lookup given (pure).
    pub fn check_with(root: bool, found: impl Fn(&str) -> bool) -> Self {
        Self {
            root,
            missing: REQUIREMENTS
                .iter()
                .filter(|r| !found(r.tool))
                .copied()
                .collect(),
            state_dir: None,
        }
    }

    /// Nothing is missing.
    pub fn is_ok(&self) -> bool {
        self.root && self.missing.is_empty() && self.state_dir.is_none()
    }

    /// The Debian packages to install, in order, without repeats.
    pub fn packages(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for r in &self.missing {
            if !out.contains(&r.package) {
                out.push(r.package);
            }
        }
        out
    }

    /// What is wrong and what to do, one line each; empty when [`Preflight::is_ok`].
    pub fn report(&self) -> String {
        let mut out = String::new();
        if !self.root {
            out.push_str(
                "  - not root: the lab creates network namespaces, veth pairs and bridges; run it with sudo\n",
            );
        }
        for r in &self.missing {
            out.push_str(&format!(
                "  - `{}` not found in PATH ({}): apt-get install {}\n",
                r.tool, r.why, r.package
            ));
        }
        if let Some(problem) = &self.state_dir {
            out.push_str(&format!("  - {problem}\n"));
        }
        if !self.missing.is_empty() {
            out.push_str(&format!(
                "  Install them with `sudo apt-get install {}`, or run `lab up --install-deps`.\n",
                self.packages().join(" ")
            ));
        }
        out
    }
}

/// Installs the packages of the missing requirements with `apt-get` (root), then checks
/// again; the new check is returned, so the caller reports whatever is still missing.
pub fn install_missing(check: &Preflight) -> Result<Preflight, LabError> {
    let packages = check.packages();
    if packages.is_empty() {
        return Ok(check.clone());
    }
    if !check.root {
        return Err(LabError::NotRoot);
    }
    eprintln!("lab: installing {} (apt-get)", packages.join(" "));
    cmd::run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages.iter().copied());
    apt_get_install(&args)?;
    Ok(Preflight::check())
}

/// `apt-get install …` without questions (`DEBIAN_FRONTEND=noninteractive`).
fn apt_get_install(args: &[&str]) -> Result<(), LabError> {
    let command = cmd::render("apt-get", args);
    let out = std::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why `dir` cannot hold the lab's state (it is created if missing), or `None`.
fn state_dir_problem(dir: &Path) -> Option<String> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Some(format!(
            "cannot create the state directory {}: {e}",
            dir.display()
        ));
    }
    let probe = dir.join(format!(".preflight-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "cannot write in the state directory {}: {e}",
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_present_as_root_is_ok() {
        let check = Preflight::check_with(true, |_| true);
        assert!(check.is_ok());
        assert_eq!(check.report(), "");
    }

    #[test]
    fn each_missing_tool_is_named_with_its_package() {
        let check = Preflight::check_with(false, |tool| tool == "ip" || tool == "python3");
        assert!(!check.is_ok());
        assert_eq!(check.packages(), ["nftables", "procps"]);
        let report = check.report();
        assert!(report.contains("not root"), "{report}");
        assert!(report.contains("`nft` not found in PATH"), "{report}");
        assert!(report.contains("apt-get install nftables\n"), "{report}");
        assert!(report.contains("apt-get install procps\n"), "{report}");
        assert!(
            report.contains("sudo apt-get install nftables procps"),
            "{report}"
        );
        assert!(report.contains("--install-deps"), "{report}");
        assert!(!report.contains("`ip`"), "{report}");
    }

    #[test]
    fn an_unwritable_state_directory_is_named() {
        // A path under a regular file can never be a directory.
        let file = std::env::temp_dir().join(format!("pentaflow-preflight-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        let problem = state_dir_problem(&file.join("state")).unwrap();
        assert!(
            problem.contains("cannot create the state directory"),
            "{problem}"
        );
        std::fs::remove_file(&file).unwrap();
        let dir = std::env::temp_dir();
        assert_eq!(state_dir_problem(&dir), None);
    }
}

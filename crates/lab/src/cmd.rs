//! Running `ip` and friends, and entering a namespace from a thread.
//!
//! Owns: command execution with typed errors, and [`in_netns`] (a fresh thread that joins a
//! named network namespace). Must not keep state.

use std::fs::File;
use std::process::{Command, Output, Stdio};

use nix::sched::{setns, CloneFlags};

use crate::LabError;

/// Runs a command to completion; a non-zero exit is an error carrying stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<Output, LabError> {
    let out = output(program, args)?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: render(program, args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// Runs a command to completion and returns its output whatever the exit status.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<Output, LabError> {
    tracing::trace!(command = %render(program, args), "lab");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: render(program, args),
            source,
        })
}

/// `ip` with arguments, in namespace `ns` when given.
pub(crate) fn ip(ns: Option<&str>, args: &[&str]) -> Result<Output, LabError> {
    let mut full: Vec<&str> = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = ns {
        full.extend(["-n", ns]);
    }
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Writes a sysctl inside namespace `ns`.
pub(crate) fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), LabError> {
    let kv = format!("{key}={value}");
    run("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", &kv]).map(drop)
}

pub(crate) fn render(program: &str, args: &[&str]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `f` on a new thread that has joined the network namespace `netns` (a name under
/// `/run/netns`). Sockets, devices and child processes created by `f` live in that namespace;
/// the caller's thread is untouched, and the thread ends with `f`.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T, LabError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = format!("/run/netns/{netns}");
    let file = File::open(&path).map_err(|source| LabError::Netns {
        netns: netns.to_owned(),
        source,
    })?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| LabError::Netns {
                netns: netns.to_owned(),
                source: std::io::Error::from(errno),
            })?;
            Ok(f())
        });
        match worker.join() {
            Ok(r) => r,
            // Re-raise the closure's panic on the caller: it is the failure report.
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}
